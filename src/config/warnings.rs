//! Warnings about a valid config: settings that work, but leave a connection open to a
//! machine in the middle, or a leader that would often decline to write. `validate` prints them;
//! the daemon logs the database ones when it opens each pool.

use std::collections::BTreeMap;
use std::fmt;

use super::Config;
use crate::source::airflow::Db;
use crate::source::kafka::ConfValue;
use crate::source::{Settings, SourceSpec};

/// One thing an operator should change, with the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Dotted key path, like a [`super::Problem`]'s.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every warning about `config`: the leader's write window, then source by source.
pub fn warnings(config: &Config) -> Vec<Warning> {
    let sources = config.sources.iter().flat_map(|(name, spec)| source_warnings(&format!("sources.{name}"), spec));
    fencing_warning(&config.daemon).into_iter().chain(sources).collect()
}

/// A leader starts a write only while `lease_duration − kube_timeout` has not passed since its
/// last renewal, which it sends every `retry_period`. When that window is not comfortably longer
/// than the period, writes are declined between renewals. client-go asks the same of its renew
/// deadline (`renewDeadline > JitterFactor × retryPeriod`, JitterFactor 1.2, in
/// k8s.io/client-go/tools/leaderelection `NewLeaderElector`).
fn fencing_warning(daemon: &super::Daemon) -> Option<Warning> {
    let election = daemon.leader_election.as_ref()?;
    let window = election.lease_duration.saturating_sub(daemon.kube_timeout).min(election.renew_deadline);
    (window.as_secs_f64() <= 1.2 * election.retry_period.as_secs_f64()).then(|| Warning {
        path: "daemon.kube_timeout".to_owned(),
        message: format!(
            "a write may start only within {window:?} of each lease renewal (lease_duration {:?} − kube_timeout {:?}, \
             at most renew_deadline), not above 1.2 × retry_period {:?}: the leader will decline writes between \
             renewals; lower kube_timeout or retry_period, or raise lease_duration",
            election.lease_duration, daemon.kube_timeout, election.retry_period
        ),
    })
}

fn source_warnings(path: &str, spec: &SourceSpec) -> Vec<Warning> {
    let warning = |key: &str, message: String| Warning { path: format!("{path}.{key}"), message };
    match (&spec.settings, &spec.url) {
        (Settings::Airflow(_), Some(url)) => Db::warnings(url).into_iter().map(|m| warning("url", m)).collect(),
        (Settings::Kafka(kafka), _) => {
            kafka_warnings(&kafka.librdkafka).into_iter().map(|(key, m)| warning(&key, m)).collect()
        }
        _ => Vec::new(),
    }
}

/// librdkafka properties (CONFIGURATION.md of librdkafka) that let a man in the middle read the
/// traffic or pose as the broker: (key path under the source, message).
fn kafka_warnings(properties: &BTreeMap<String, ConfValue>) -> Vec<(String, String)> {
    let value = |name: &str| properties.get(name).map(|v| v.0.trim().to_ascii_lowercase());
    let key = |name: &str| format!("librdkafka.\"{name}\"");
    let mut warnings = Vec::new();
    if matches!(value("enable.ssl.certificate.verification").as_deref(), Some("false" | "0")) {
        warnings.push((
            key("enable.ssl.certificate.verification"),
            "disables certificate verification: any broker certificate is accepted; remove it and set ssl.ca.location"
                .to_owned(),
        ));
    }
    if value("ssl.endpoint.identification.algorithm").as_deref() == Some("none") {
        warnings.push((
            key("ssl.endpoint.identification.algorithm"),
            "\"none\": the broker's host name is not checked against its certificate; set \"https\" (the default)"
                .to_owned(),
        ));
    }
    let plain_sasl = value("security.protocol").as_deref() == Some("sasl_plaintext")
        && value("sasl.mechanisms").or_else(|| value("sasl.mechanism")).as_deref() == Some("plain");
    if plain_sasl && properties.contains_key("sasl.password") {
        warnings.push((
            key("security.protocol"),
            "sasl_plaintext with the PLAIN mechanism sends sasl.password unencrypted; set sasl_ssl".to_owned(),
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(sources: &str) -> Config {
        let text = format!(
            "{sources}\n[[targets]]\nname = \"t\"\ndeployment = \"d\"\nmax_replicas = 2\ntriggers = [{{ source = \"s\", per_replica = 1 }}]\n"
        );
        Config::parse(&text, Vec::new()).unwrap()
    }

    fn shown(config: &Config) -> Vec<String> {
        warnings(config).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_write_window_not_above_the_renewal_period_is_warned_about() {
        let election = |timings: &str| {
            let text = format!(
                "[daemon]\n{timings}\n[daemon.leader_election]\nenabled = true\n[sources.s]\nkind = \"celery\"\nurl = \"redis://r\"\nqueues = [\"q\"]"
            );
            config(&text)
        };
        assert!(shown(&election("")).is_empty(), "the defaults: 5 s to write after each 2 s renewal");
        let narrow = shown(&election("kube_timeout = \"13s\""));
        assert_eq!(narrow.len(), 1, "{narrow:?}");
        assert!(
            narrow[0].starts_with("daemon.kube_timeout: a write may start only within 2s of each lease renewal"),
            "{narrow:?}"
        );
        assert!(
            shown(&config("[sources.s]\nkind = \"celery\"\nurl = \"redis://r\"\nqueues = [\"q\"]")).is_empty(),
            "no election"
        );
    }

    #[test]
    fn unverified_databases_are_warned_about() {
        let unverified =
            config("[sources.s]\nkind = \"airflow\"\nurl = \"postgres://airflow:pw@db.example:5432/airflow\"");
        assert_eq!(
            shown(&unverified),
            ["sources.s.url: connection to db.example is not verified; set sslmode=verify-full"]
        );
        let verified = config(
            "[sources.s]\nkind = \"airflow\"\nurl = \"mysql://airflow:pw@db/airflow?ssl-mode=VERIFY_IDENTITY&ssl-ca=/ca.pem\"",
        );
        assert!(shown(&verified).is_empty());
    }

    #[test]
    fn kafka_passthrough_that_disables_verification_is_warned_about() {
        let kafka = |properties: &str| {
            config(&format!(
                "[sources.s]\nkind = \"kafka\"\nbrokers = \"k:9092\"\ngroup = \"g\"\n[sources.s.librdkafka]\n{properties}"
            ))
        };
        assert!(shown(&kafka("\"security.protocol\" = \"ssl\"")).is_empty());
        let insecure = kafka(
            "\"enable.ssl.certificate.verification\" = false\n\"ssl.endpoint.identification.algorithm\" = \"none\"",
        );
        let shown = shown(&insecure);
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(shown[0].starts_with("sources.s.librdkafka.\"enable.ssl.certificate.verification\": disables"));
        assert!(shown[1].starts_with("sources.s.librdkafka.\"ssl.endpoint.identification.algorithm\": \"none\""));
        let clear = kafka(
            "\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanisms\" = \"PLAIN\"\n\"sasl.password\" = \"pw\"",
        );
        assert_eq!(warnings(&clear)[0].path, "sources.s.librdkafka.\"security.protocol\"");
    }
}
