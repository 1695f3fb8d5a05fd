//! Kafka consumer-group lag: the total lag of one group over its topics, counted as KEDA's Kafka
//! scaler counts it (kedacore/keda `pkg/scalers/kafka_scaler.go`, `getTotalLag`), with the
//! requests batched per broker and one client per cluster.
//!
//! Per poll: one OffsetFetch for the group and one ListOffsets per partition leader (plus one
//! more per leader for log starts, only for uncommitted partitions under `earliest`); metadata
//! only for the group's topics, cached for a minute. One client per cluster, shared by every
//! source on it; the blocking librdkafka calls run on the blocking pool, bounded by the timeout.

mod cluster;
pub mod lag;
pub mod limitation;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::Offset;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::{Reading, SourceError};
use crate::policy::Load;
pub use cluster::Cluster;
use lag::{LagRules, OffsetReset, Offsets, PartitionLag, Persistence};
use limitation::{Limitation, PartitionIds};

/// `kind = "kafka"` settings.
#[derive(Clone, PartialEq, Deserialize)]
pub struct KafkaSettings {
    /// Bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: String,
    /// The consumer group whose lag is measured.
    pub group: String,
    /// Topics to measure; empty: every topic the group has committed offsets for.
    #[serde(default)]
    pub topics: Vec<String>,
    /// `latest` or `earliest`: what the group does with no committed offset.
    #[serde(default = "default_offset_reset")]
    pub offset_reset: String,
    /// `read_committed` (end = last stable offset) or `read_uncommitted` (high watermark).
    #[serde(default = "default_isolation")]
    pub isolation: String,
    /// A recommendation never exceeds the partitions (the group cannot use more consumers).
    #[serde(default = "default_true")]
    pub cap_at_partitions: bool,
    /// Cap at the partitions that have lag instead.
    #[serde(default)]
    pub limit_to_partitions_with_lag: bool,
    /// Leave out a partition whose commit has not moved for `persistent_lag_polls` polls while
    /// it lags (a stuck consumer that more replicas would not help).
    #[serde(default)]
    pub exclude_persistent_lag: bool,
    #[serde(default = "default_persistent_lag_polls")]
    pub persistent_lag_polls: u32,
    /// Only these partition ids of the topics count: ids and `"first-last"` ranges (KEDA's
    /// `partitionLimitation`).
    #[serde(default)]
    pub partition_limitation: Vec<PartitionIds>,
    /// Round the recommendation up to a factor of the partitions, so that every consumer gets
    /// as many (KEDA's `ensureEvenDistributionOfPartitions`).
    #[serde(default)]
    pub ensure_even_distribution: bool,
    /// A partition without a committed offset counts 0, not 1 (`latest`) or its retained
    /// messages (`earliest`) (KEDA's `scaleToZeroOnInvalidOffset`).
    #[serde(default)]
    pub scale_to_zero_on_invalid_offset: bool,
    /// Export each partition's lag as a metric (off by default: one series per partition).
    #[serde(default)]
    pub partition_metrics: bool,
    /// Passed through to librdkafka: `security.protocol`, `sasl.*`, `ssl.*`, …
    #[serde(default)]
    pub librdkafka: BTreeMap<String, ConfValue>,
    /// librdkafka properties read from environment variables (property → variable), to keep
    /// secrets such as `sasl.password` out of the file.
    #[serde(default)]
    pub librdkafka_env: BTreeMap<String, String>,
}

fn default_offset_reset() -> String {
    "latest".to_owned()
}

fn default_isolation() -> String {
    "read_committed".to_owned()
}

fn default_true() -> bool {
    true
}

fn default_persistent_lag_polls() -> u32 {
    5
}

/// librdkafka properties this source sets itself.
const OWN_PROPERTIES: [&str; 5] =
    ["bootstrap.servers", "group.id", "isolation.level", "enable.auto.commit", "client.id"];

/// A librdkafka property value: TOML strings, numbers and booleans, as librdkafka's strings.
#[derive(Clone, PartialEq)]
pub struct ConfValue(pub String);

impl<'de> Deserialize<'de> for ConfValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl Visitor<'_> for ValueVisitor {
            type Value = ConfValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ConfValue, E> {
                Ok(ConfValue(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ConfValue, E> {
                Ok(ConfValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ConfValue, E> {
                Ok(ConfValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ConfValue, E> {
                Ok(ConfValue(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ConfValue, E> {
                Ok(ConfValue(v.to_string()))
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let librdkafka: BTreeMap<&str, &str> =
            self.librdkafka.iter().map(|(k, v)| (k.as_str(), crate::secret::shown_property(k, &v.0))).collect();
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("group", &self.group)
            .field("topics", &self.topics)
            .field("offset_reset", &self.offset_reset)
            .field("isolation", &self.isolation)
            .field("librdkafka", &librdkafka)
            .finish_non_exhaustive()
    }
}

impl KafkaSettings {
    /// Problems with the values, as `(key, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.brokers.trim().is_empty() {
            problems.push(("brokers", "must name at least one broker (host:port)".to_owned()));
        }
        if self.group.is_empty() {
            problems.push(("group", "must name the consumer group".to_owned()));
        }
        if !matches!(self.offset_reset.as_str(), "latest" | "earliest") {
            problems.push(("offset_reset", format!("{:?} is not one of \"latest\", \"earliest\"", self.offset_reset)));
        }
        if !matches!(self.isolation.as_str(), "read_committed" | "read_uncommitted") {
            problems.push((
                "isolation",
                format!("{:?} is not one of \"read_committed\", \"read_uncommitted\"", self.isolation),
            ));
        }
        if self.persistent_lag_polls == 0 {
            problems.push(("persistent_lag_polls", "must be at least 1".to_owned()));
        }
        if let Err(found) = Limitation::parse(&self.partition_limitation) {
            problems.extend(found.into_iter().map(|message| ("partition_limitation", message)));
        }
        if !self.partition_limitation.is_empty() && self.topics.is_empty() {
            problems.push(("partition_limitation", "needs `topics`: the ids are those of the topics named".to_owned()));
        }
        if self.ensure_even_distribution && self.limit_to_partitions_with_lag {
            problems.push((
                "ensure_even_distribution",
                "cannot be combined with limit_to_partitions_with_lag (as in KEDA): the factors are those of \
                 all the partitions"
                    .to_owned(),
            ));
        }
        for property in
            self.librdkafka.keys().chain(self.librdkafka_env.keys()).filter(|k| OWN_PROPERTIES.contains(&k.as_str()))
        {
            problems
                .push(("librdkafka", format!("{property} is set by the source itself (brokers, group, isolation)")));
        }
        problems
    }

    /// Takes `librdkafka_env` values from `env`; returns the variables that are not set.
    pub fn resolve_env(&mut self, env: &std::collections::HashMap<String, String>) -> Vec<String> {
        let mut missing = Vec::new();
        for (property, variable) in &self.librdkafka_env {
            match env.get(variable) {
                Some(value) => {
                    self.librdkafka.insert(property.clone(), ConfValue(value.clone()));
                }
                None => missing.push(variable.clone()),
            }
        }
        missing
    }

    /// The client's librdkafka properties (what identifies a shared cluster client).
    pub fn client_properties(&self) -> BTreeMap<String, String> {
        let mut properties: BTreeMap<String, String> =
            self.librdkafka.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
        properties.insert("bootstrap.servers".into(), self.brokers.clone());
        properties.insert("isolation.level".into(), self.isolation.clone());
        properties
    }

    fn lag_rules(&self) -> LagRules {
        let reset = if self.offset_reset == "earliest" { OffsetReset::Earliest } else { OffsetReset::Latest };
        LagRules { reset, zero_without_commit: self.scale_to_zero_on_invalid_offset }
    }
}

/// A group's lag, measured through a shared cluster client.
pub struct KafkaSource {
    cluster: Arc<Cluster>,
    settings: KafkaSettings,
    limitation: Limitation,
    timeout: Duration,
    persistence: Arc<Mutex<Persistence>>,
}

impl KafkaSource {
    pub fn new(cluster: Arc<Cluster>, settings: KafkaSettings, timeout: Duration) -> Self {
        // Validated with the config; a list that does not parse here limits nothing.
        let limitation = Limitation::parse(&settings.partition_limitation).unwrap_or_default();
        KafkaSource { cluster, settings, limitation, timeout, persistence: Arc::default() }
    }

    pub fn partition_metrics(&self) -> bool {
        self.settings.partition_metrics
    }

    pub async fn poll(&self) -> Result<Reading, SourceError> {
        let (cluster, settings, limitation, timeout, persistence) = (
            self.cluster.clone(),
            self.settings.clone(),
            self.limitation.clone(),
            self.timeout,
            self.persistence.clone(),
        );
        tokio::task::spawn_blocking(move || measure(&cluster, &settings, &limitation, timeout, &persistence))
            .await
            .map_err(|e| SourceError::Protocol(format!("the Kafka poll task failed: {e}")))?
    }
}

/// One blocking poll: committed offsets, end offsets (and log starts where needed), the lag.
fn measure(
    cluster: &Cluster,
    settings: &KafkaSettings,
    limitation: &Limitation,
    timeout: Duration,
    persistence: &Mutex<Persistence>,
) -> Result<Reading, SourceError> {
    cluster.drain_events();
    let stable = settings.isolation == "read_committed";
    let (committed, topics) = if settings.topics.is_empty() {
        // Every topic the group has committed offsets for: OffsetFetch with no partitions.
        let committed = cluster.committed(&settings.group, None, stable, timeout)?;
        let topics: BTreeSet<String> = committed.keys().map(|(t, _)| t.clone()).collect();
        (Some(committed), topics.into_iter().collect())
    } else {
        (None, settings.topics.clone())
    };
    let mut partitions = Vec::new();
    for topic in &topics {
        let counted = cluster.partitions(topic, timeout)?.into_iter().filter(|p| limitation.counts(*p));
        partitions.extend(counted.map(|p| (topic.clone(), p)));
    }
    let (committed, ends) = match committed {
        Some(committed) => (committed, cluster.offsets(&partitions, Offset::End, timeout)?),
        None => std::thread::scope(|scope| {
            // The OffsetFetch and the ListOffsets go to different brokers: send them together.
            let ends = scope.spawn(|| cluster.offsets(&partitions, Offset::End, timeout));
            let committed = cluster.committed(&settings.group, Some(&partitions), stable, timeout);
            let ends =
                ends.join().unwrap_or_else(|_| Err(SourceError::Protocol("the ListOffsets thread panicked".into())));
            Ok::<_, SourceError>((committed?, ends?))
        })?,
    };
    let rules = settings.lag_rules();
    let uncommitted: Vec<(String, i32)> = partitions.iter().filter(|p| !committed.contains_key(*p)).cloned().collect();
    let lows = if rules.needs_log_starts() && !uncommitted.is_empty() {
        cluster.offsets(&uncommitted, Offset::Beginning, timeout)?
    } else {
        BTreeMap::new()
    };
    let offsets = join_offsets(&partitions, &committed, &ends, &lows)?;
    let mut persistence = persistence.lock().unwrap_or_else(|p| p.into_inner());
    let tracking = settings.exclude_persistent_lag.then_some((&mut *persistence, settings.persistent_lag_polls));
    let (lags, total) = lag::summarize(&offsets, rules, tracking);
    let (cap, even) = (cap(settings, &lags), settings.ensure_even_distribution);
    Ok(Reading { value: total as f64, skipped: 0, cap, even, load: load(&lags, total), partitions: lags, events: None })
}

/// Each partition's committed, end and low offsets. A partition missing from the ListOffsets
/// answer has an unknown lag, not a lag of 0: the poll fails, so that it never scales down
/// (issue #13).
fn join_offsets(
    partitions: &[(String, i32)],
    committed: &BTreeMap<(String, i32), i64>,
    ends: &BTreeMap<(String, i32), i64>,
    lows: &BTreeMap<(String, i32), i64>,
) -> Result<Vec<Offsets>, SourceError> {
    let end = |key: &(String, i32)| {
        let missing = || SourceError::Protocol(format!("no end offset for partition {} of topic {}", key.1, key.0));
        ends.get(key).copied().ok_or_else(missing)
    };
    partitions
        .iter()
        .map(|key| {
            Ok(Offsets {
                topic: key.0.clone(),
                partition: key.1,
                committed: committed.get(key).copied(),
                end: end(key)?,
                low: lows.get(key).copied(),
            })
        })
        .collect()
}

/// The load for the wait objective: the lag waits (messages being processed are not committed,
/// so they are in it too: in flight is not observable apart); the end offsets count what arrived,
/// and what arrived minus the lag what was consumed. Partitions left out of the lag (persistent,
/// or outside `partition_limitation`) are left out here too.
fn load(lags: &[PartitionLag], total: i64) -> Load {
    let ends = lags.iter().filter(|l| !l.persistent).map(|l| l.end.max(0) as u64).fold(0u64, u64::saturating_add);
    let lag = total.max(0) as u64;
    Load { waiting: lag as f64, arrived: Some(ends), completed: Some(ends.saturating_sub(lag)), ..Load::default() }
}

/// How many consumers the group could use: its partitions, or those with lag. An even spread
/// caps at the partitions whatever `cap_at_partitions` says, as in KEDA.
fn cap(settings: &KafkaSettings, lags: &[PartitionLag]) -> Option<u32> {
    if !settings.cap_at_partitions && !settings.ensure_even_distribution {
        return None;
    }
    let usable = if settings.limit_to_partitions_with_lag {
        lags.iter().filter(|l| l.lag > 0 && !l.persistent).count()
    } else {
        lags.len()
    };
    Some(u32::try_from(usable).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_missing_from_the_end_offsets_fails_the_poll() {
        let key = |p: i32| ("jobs".to_owned(), p);
        let partitions = [key(0), key(1)];
        let committed = BTreeMap::from([(key(0), 5), (key(1), 7)]);
        let lows = BTreeMap::new();
        let ends = BTreeMap::from([(key(0), 9), (key(1), 10)]);
        let joined = join_offsets(&partitions, &committed, &ends, &lows).expect("both answered");
        assert_eq!(joined.iter().map(|o| o.end).collect::<Vec<_>>(), [9, 10]);
        let ends = BTreeMap::from([(key(0), 9)]);
        let error = join_offsets(&partitions, &committed, &ends, &lows).expect_err("partition 1 has no end offset");
        assert!(error.to_string().contains("partition 1 of topic jobs"), "{error}");
    }
}
