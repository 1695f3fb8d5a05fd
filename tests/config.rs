//! Config loading: the example file, defaults, overrides, and errors that name the key path.

use std::time::Duration;

use queue_autoscaler::config::{Config, ConfigError, WorkloadKind};
use queue_autoscaler::policy::{Fallback, RateUnit, ScalingRules, Select};
use queue_autoscaler::source::Settings;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Vec::new())
}

fn problems(text: &str) -> Vec<String> {
    parse(text).expect_err("config should be rejected").problems.iter().map(|p| p.to_string()).collect()
}

const MINIMAL: &str = r#"
[sources.q]
kind = "celery"
url = "redis://127.0.0.1:6379/0"
queues = ["default"]

[[targets]]
name = "w"
deployment = "worker"
max_replicas = 10
triggers = [{ source = "q", per_replica = 5 }]
"#;

#[test]
fn the_example_config_is_valid_and_says_what_it_shows() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml")).unwrap();
    let config = parse(&text).unwrap_or_else(|e| panic!("config.example.toml is invalid:\n{e}"));
    assert_eq!(config.daemon.interval, Duration::from_secs(15));
    let target = &config.targets[0];
    assert_eq!((target.namespace.as_str(), target.workload.as_str()), ("data", "celery-worker"));
    assert_eq!(target.interval, Duration::from_secs(10));
    assert_eq!(target.policy.scale_up, ScalingRules::hpa_scale_up());
    assert_eq!(target.policy.cooldown, Duration::from_secs(60));
    let objective = target.policy.objective.as_ref().expect("the first target sizes for a wait");
    assert_eq!((objective.max_wait, objective.slots, objective.task_seconds), (Duration::from_secs(60), 16, Some(2.0)));
    let Settings::Celery(celery) = &config.sources["celery_default"].settings else { panic!("a celery source") };
    assert_eq!(celery.separator, "\u{6}\u{16}");
    assert_eq!(celery.priority_steps, vec![0, 3, 6, 9]);
    assert!(!celery.events, "events are opt-in");
}

#[test]
fn defaults_are_the_hpa_defaults() {
    let config = parse(MINIMAL).unwrap();
    let target = &config.targets[0];
    assert_eq!(target.namespace, "default");
    assert_eq!(target.policy.min_replicas, 1);
    assert_eq!(target.interval, Duration::from_secs(15));
    assert_eq!(target.policy.scale_up, ScalingRules::hpa_scale_up());
    assert_eq!(target.policy.scale_down, ScalingRules::hpa_scale_down());
    assert_eq!(target.policy.cooldown, Duration::ZERO);
    assert_eq!((target.policy.fallback_threshold, target.policy.fallback), (3, Fallback::Hold));
    assert_eq!(config.sources["q"].timeout, Duration::from_secs(5));
    assert_eq!(config.daemon.field_manager, "queue-autoscaler");
    assert!(!config.daemon.dry_run);
}

#[test]
fn behavior_fields_default_one_by_one() {
    let text = format!(
        "{MINIMAL}\n[targets.scale_down]\nstabilization = \"1m\"\nselect = \"min\"\n[targets.fallback]\nreplicas = 4\n"
    );
    let policy = parse(&text).unwrap().targets.remove(0).policy;
    assert_eq!(policy.scale_down.stabilization, Duration::from_secs(60));
    assert_eq!(policy.scale_down.select, Select::Min);
    assert_eq!(policy.scale_down.policies, ScalingRules::hpa_scale_down().policies);
    assert_eq!(policy.fallback, Fallback::Replicas(4));
}

#[test]
fn unknown_keys_are_errors_naming_path_and_line() {
    let text = MINIMAL.replace("max_replicas = 10", "max_replicas = 10\nmax_replica = 11")
        + "\n[targets.scale_up]\npolicies = [{ type = \"pods\", value = 1, period = \"15s\", burst = 2 }]\n"
        + "[daemon]\nintervall = \"5s\"\n";
    let found = problems(&text);
    assert!(found.contains(&"line 11: targets[0].max_replica: unknown key".to_owned()), "{found:#?}");
    assert!(found.iter().any(|p| p.ends_with("targets[0].scale_up.policies[0].burst: unknown key")), "{found:#?}");
    assert!(found.contains(&"line 17: daemon.intervall: unknown key".to_owned()), "{found:#?}");
}

#[test]
fn unknown_keys_inside_a_source_are_errors() {
    let found = problems(&MINIMAL.replace("queues = [\"default\"]", "queues = [\"default\"]\nqueue = \"x\""));
    assert_eq!(found, vec!["line 6: sources.q.queue: unknown key"]);
}

#[test]
fn type_errors_name_the_key() {
    let found = problems(&MINIMAL.replace("max_replicas = 10", "max_replicas = \"ten\""));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].starts_with("line 10: targets[0].max_replicas: "), "{found:#?}");
    let found = problems(&MINIMAL.replace("per_replica = 5", "per_replica = 5, activation = \"x\""));
    assert!(found[0].contains("targets[0].triggers[0].activation"), "{found:#?}");
    let found = problems(&format!(
        "{MINIMAL}\n[targets.scale_up]\npolicies = [{{ type = \"pods\", value = 1, period = \"soon\" }}]\n"
    ));
    assert!(found[0].contains("targets[0].scale_up.policies[0].period: \"soon\" is not a duration"), "{found:#?}");
    let found = problems(&format!("{MINIMAL}\n[targets.scale_up]\nselect = \"most\"\n"));
    assert_eq!(
        found,
        vec!["line 14: targets[0].scale_up.select: \"most\" is not one of \"max\", \"min\", \"disabled\""]
    );
}

#[test]
fn missing_required_keys_are_named() {
    let found = problems(&MINIMAL.replace("max_replicas = 10\n", ""));
    assert_eq!(found, vec!["line 7: targets[0].max_replicas: required key is missing"]);
}

#[test]
fn semantic_problems_are_all_reported() {
    let text = MINIMAL
        .replace("max_replicas = 10", "min_replicas = 12\nmax_replicas = 10")
        .replace("source = \"q\", per_replica = 5", "source = \"nope\", per_replica = 0")
        .replace("queues = [\"default\"]", "queues = []")
        .replace("kind = \"celery\"", "kind = \"celery\"\ntimeout = \"0s\"");
    let found = problems(&text);
    let expected = [
        "sources.q.timeout: must be from 1ms to 5m",
        "sources.q.queues: must name at least one queue",
        "targets[0].min_replicas: 12 is above max_replicas 10",
        "targets[0].triggers[0].source: no source named \"nope\" (defined: q)",
        "targets[0].triggers[0].per_replica: must be a number above 0",
    ];
    for e in expected {
        assert!(found.iter().any(|p| p.ends_with(e)), "missing {e:?} in {found:#?}");
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
}

#[test]
fn rate_policy_limits_follow_the_hpa() {
    let text = format!(
        "{MINIMAL}\n[targets.scale_down]\nstabilization = \"2h\"\npolicies = [{{ type = \"percent\", value = 0, period = \"31m\" }}]\n"
    );
    let found = problems(&text);
    assert!(
        found.iter().any(|p| p.ends_with("scale_down.stabilization: must be at most 1h (the HPA's limit)")),
        "{found:#?}"
    );
    assert!(found.iter().any(|p| p.ends_with("scale_down.policies[0].value: must be at least 1")), "{found:#?}");
    assert!(
        found.iter().any(|p| p.contains("scale_down.policies[0].period: must be more than 0s and at most 30m")),
        "{found:#?}"
    );
    let disabled = format!("{MINIMAL}\n[targets.scale_up]\npolicies = []\nselect = \"disabled\"\n");
    assert_eq!(parse(&disabled).unwrap().targets[0].policy.scale_up.select, Select::Disabled);
}

#[test]
fn duplicate_targets_and_deployments_are_rejected() {
    let text = format!(
        "{MINIMAL}\n[[targets]]\nname = \"w\"\ndeployment = \"worker\"\nmax_replicas = 3\ntriggers = [{{ source = \"q\", per_replica = 1 }}]\n"
    );
    let found = problems(&text);
    assert!(found.iter().any(|p| p.ends_with("targets[1].name: another target is already named \"w\"")), "{found:#?}");
    assert!(
        found.iter().any(|p| p.contains("targets[1].deployment: default/worker is already scaled by another target")),
        "{found:#?}"
    );
}

#[test]
fn invalid_toml_gives_the_line() {
    let found = problems("[daemon]\ninterval = \n");
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("line 2: invalid TOML"), "{found:#?}");
}

#[test]
fn unknown_source_kinds_list_the_known_ones() {
    let found = problems(&MINIMAL.replace("kind = \"celery\"", "kind = \"sqs\""));
    assert!(
        found.contains(&"line 3: sources.q.kind: unknown kind \"sqs\" (one of: celery, airflow, kafka)".to_owned()),
        "{found:#?}"
    );
}

#[test]
fn environment_overrides_any_key_including_array_items() {
    let env = [
        ("QUEUE_AUTOSCALER__DAEMON__DRY_RUN", "true"),
        ("QUEUE_AUTOSCALER__DAEMON__INTERVAL", "7s"),
        ("QUEUE_AUTOSCALER__TARGETS__0__MAX_REPLICAS", "30"),
        ("QUEUE_AUTOSCALER__TARGETS__0__SCALE_DOWN__COOLDOWN", "1m"),
        ("QUEUE_AUTOSCALER__SOURCES__Q__QUEUES", "[\"a\", \"b\"]"),
        ("QUEUE_AUTOSCALER__SOURCES__Q__INCLUDE_UNACKED", "true"),
    ];
    let config = Config::parse(MINIMAL, env.map(|(k, v)| (k.to_owned(), v.to_owned()))).unwrap();
    assert!(config.daemon.dry_run);
    assert_eq!(config.daemon.interval, Duration::from_secs(7));
    assert_eq!(config.targets[0].interval, Duration::from_secs(7), "targets inherit the overridden default");
    assert_eq!(config.targets[0].policy.max_replicas, 30);
    assert_eq!(config.targets[0].policy.cooldown, Duration::from_secs(60));
    let Settings::Celery(celery) = &config.sources["q"].settings else { panic!("a celery source") };
    assert_eq!(celery.queues, vec!["a", "b"]);
    assert!(celery.include_unacked);
}

#[test]
fn a_bad_override_is_reported_under_its_key() {
    let env = [("QUEUE_AUTOSCALER__TARGETS__0__MAX_REPLICAS".to_owned(), "lots".to_owned())];
    let found: Vec<String> = Config::parse(MINIMAL, env).unwrap_err().problems.iter().map(|p| p.to_string()).collect();
    assert!(found[0].contains("targets[0].max_replicas"), "{found:#?}");
}

#[test]
fn urls_come_inline_or_from_the_environment_and_never_show_secrets() {
    let text = MINIMAL.replace("url = \"redis://127.0.0.1:6379/0\"", "url_env = \"CELERY_BROKER_URL\"");
    let env = [("CELERY_BROKER_URL".to_owned(), "redis://:hunter2@redis:6379/0".to_owned())];
    let config = Config::parse(&text, env).unwrap();
    let url = config.sources["q"].url.as_ref().unwrap();
    assert_eq!(url.expose(), "redis://:hunter2@redis:6379/0");
    assert!(!format!("{config:?}").contains("hunter2"));
    let found = problems(&text);
    assert_eq!(found, vec!["line 4: sources.q.url_env: environment variable CELERY_BROKER_URL is not set"]);
    let both = MINIMAL.replace("queues", "url_env = \"X\"\nqueues");
    assert!(problems(&both)[0].contains("give either `url` or `url_env`, not both"));
}

#[test]
fn fallback_replicas_must_be_within_bounds() {
    let found = problems(&format!("{MINIMAL}\n[targets.fallback]\nreplicas = 50\nfailure_threshold = 0\n"));
    assert!(
        found
            .iter()
            .any(|p| p.ends_with("targets[0].fallback.replicas: 50 is outside [min_replicas, max_replicas] = [1, 10]")),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|p| p.ends_with("targets[0].fallback.failure_threshold: must be at least 1")),
        "{found:#?}"
    );
    let found = problems(&format!("{MINIMAL}\n[targets.fallback]\nreplicas = \"some\"\n"));
    assert!(found[0].contains("\"some\" is neither \"hold\" nor a number"), "{found:#?}");
}

#[test]
fn policy_units_parse() {
    let text =
        format!("{MINIMAL}\n[targets.scale_up]\npolicies = [{{ type = \"percent\", value = 50, period = \"1m\" }}]\n");
    let policy = &parse(&text).unwrap().targets[0].policy;
    assert_eq!(policy.scale_up.policies[0].unit, RateUnit::Percent);
    assert_eq!(policy.scale_up.policies[0].period, Duration::from_secs(60));
}

const SPOT: &str = "\n[targets.spot]\ndeployment = \"worker-spot\"\non_demand_base = 2\non_demand_percentage = 25\n";

#[test]
fn spot_twin_with_defaults() {
    let config = parse(&format!("{MINIMAL}{SPOT}")).unwrap();
    let spot = config.targets[0].spot.as_ref().expect("spot");
    assert_eq!(spot.deployment, "worker-spot");
    assert_eq!((spot.policy.on_demand_base, spot.policy.on_demand_percentage), (2, 25));
    assert_eq!(spot.unschedulable_after, Duration::from_secs(180));
    assert_eq!(spot.policy.retry_spot_after, Duration::from_secs(600));
    assert!(spot.extra_taints.is_empty());
    assert!(parse(MINIMAL).unwrap().targets[0].spot.is_none());
}

#[test]
fn spot_problems_are_named() {
    let text = format!("{MINIMAL}{SPOT}").replace("percentage = 25", "percentage = 150\nunschedulable_after = \"0s\"");
    let found = problems(&text);
    assert!(
        found.iter().any(|p| p.ends_with("targets[0].spot.on_demand_percentage: 150 is not a percentage (0 to 100)")),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|p| p.ends_with("targets[0].spot.unschedulable_after: must be from 1s to 1day")),
        "{found:#?}"
    );
    let found = problems(&format!("{MINIMAL}{SPOT}").replace("\"worker-spot\"", "\"worker\""));
    assert!(found.iter().any(|p| p.contains("targets[0].spot.deployment: must be the spot twin")), "{found:#?}");
    let found = problems(&format!("{MINIMAL}{}", SPOT.replace("on_demand_base = 2\n", "")));
    assert_eq!(found, vec!["line 13: targets[0].spot.on_demand_base: required key is missing"]);
}

#[test]
fn a_spot_twin_cannot_be_another_targets_deployment() {
    let other = "\n[[targets]]\nname = \"b\"\ndeployment = \"worker-spot\"\nmax_replicas = 3\ntriggers = [{ source = \"q\", per_replica = 1 }]\n";
    let found = problems(&format!("{MINIMAL}{SPOT}{other}"));
    assert!(
        found
            .iter()
            .any(|p| p.contains("targets[1].deployment: default/worker-spot is already scaled by another target")),
        "{found:#?}"
    );
}

const AIRFLOW: &str = "\n[sources.af]\nkind = \"airflow\"\nurl = \"postgres://airflow@db/airflow\"\n";

#[test]
fn busy_workers_use_the_targets_airflow_trigger() {
    let text =
        format!("{AIRFLOW}{}", MINIMAL.replace("source = \"q\", per_replica = 5", "source = \"af\", per_replica = 16"))
            .replace("max_replicas = 10", "max_replicas = 10\nprotect_busy_workers = true");
    let busy = parse(&text).unwrap().targets.remove(0).busy.expect("protected");
    assert_eq!((busy.source.as_str(), busy.floor), ("af", true));
    assert!(parse(MINIMAL).unwrap().targets[0].busy.is_none(), "off by default");
}

#[test]
fn busy_workers_need_an_airflow_source_or_celery_events() {
    let text = MINIMAL.replace("max_replicas = 10", "max_replicas = 10\nprotect_busy_workers = true");
    let found = problems(&text);
    assert_eq!(
        found,
        vec![
            "line 11: targets[0].protect_busy_workers: needs busy_workers_source, or exactly one trigger on an airflow source or a celery source with `events = true` to ask which workers are busy"
        ]
    );
    let named = format!(
        "{AIRFLOW}{}",
        text.replace(
            "protect_busy_workers = true",
            "protect_busy_workers = true\nbusy_workers_source = \"q\"\nbusy_workers_floor = false"
        )
    );
    assert!(
        problems(&named)[0]
            .contains("targets[0].busy_workers_source: \"q\" is a celery source without `events = true`"),
        "{:?}",
        problems(&named)
    );
    let fine = named.replace("busy_workers_source = \"q\"", "busy_workers_source = \"af\"");
    let busy = parse(&fine).unwrap().targets.remove(0).busy.unwrap();
    assert_eq!((busy.source.as_str(), busy.floor), ("af", false));
}

#[test]
fn busy_workers_from_a_celery_source_with_events() {
    let text = MINIMAL
        .replace("queues = [\"default\"]", "queues = [\"default\"]\nevents = true")
        .replace("max_replicas = 10", "max_replicas = 10\nprotect_busy_workers = true");
    let config = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.targets[0].busy.as_ref().map(|b| b.source.as_str()), Some("q"), "its only trigger that can");
    let named = text.replace("protect_busy_workers = true", "protect_busy_workers = true\nbusy_workers_source = \"q\"");
    assert!(parse(&named).is_ok());
}

#[test]
fn celery_events_settings_are_checked() {
    let with = |lines: &str| MINIMAL.replace("queues = [\"default\"]", &format!("queues = [\"default\"]\n{lines}"));
    let found = problems(&with("hostname_pattern = \"celery@{pod}\""));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("sources.q.hostname_pattern: applies to the event stream only: set `events = true`"));
    let found = problems(&with("events = true\nhostname_pattern = \"celery@host\""));
    assert!(found[0].contains("hostname_pattern") && found[0].contains("{pod}"), "{found:?}");
    let amqp = with("events = true").replace("redis://127.0.0.1:6379/0", "amqp://guest@127.0.0.1:5672/%2f");
    let found = problems(&amqp);
    assert!(
        found.iter().any(|p| p.contains("sources.q.events") && p.contains("over RabbitMQ is not supported")),
        "{found:?}"
    );
    let fine = with(
        "events = true\nhostname_pattern = \"*@{pod}\"\nfanout_prefix = \"/x{db}.\"\nfanout_patterns = false\nevent_exchange = \"ev\"",
    );
    assert!(parse(&fine).is_ok(), "{:?}", problems(&fine));
}

#[test]
fn airflow_settings_and_defaults() {
    let text = format!(
        "{AIRFLOW}queues = [\"default\"]\nexclude_executors = [\"KubernetesExecutor\"]\nexclude_queues = [\"kubernetes\"]\n{MINIMAL}"
    );
    let config = parse(&text).unwrap();
    let Settings::Airflow(af) = &config.sources["af"].settings else { panic!("an airflow source") };
    assert_eq!(af.states, vec!["queued", "running"]);
    assert_eq!((af.queues.len(), af.exclude_executors.len(), af.exclude_queues.len()), (1, 1, 1));
    let found = problems(&format!("{AIRFLOW}states = [\"queued\", \"runing\"]\n{MINIMAL}"));
    assert!(found[0].starts_with("line 5: sources.af.states: \"runing\" is not an Airflow task state"), "{found:#?}");
    let found = problems(&format!("{}{MINIMAL}", AIRFLOW.replace("url = \"postgres://airflow@db/airflow\"", "")));
    assert!(found[0].ends_with("sources.af.url: this airflow source needs `url` or `url_env`"), "{found:#?}");
}

const KAFKA: &str = "\n[sources.lag]\nkind = \"kafka\"\nbrokers = \"kafka:9092\"\ngroup = \"orders\"\n";

#[test]
fn kafka_sources_check_their_knobs() {
    let text = format!("{KAFKA}offset_reset = \"oldest\"\nisolation = \"committed\"\nurl = \"kafka://x\"\n{MINIMAL}");
    let found = problems(&text);
    for expected in [
        "sources.lag.offset_reset: \"oldest\" is not one of \"latest\", \"earliest\"",
        "sources.lag.isolation: \"committed\" is not one of \"read_committed\", \"read_uncommitted\"",
        "sources.lag.url: a kafka source takes `brokers`, not `url`",
    ] {
        assert!(found.iter().any(|p| p.ends_with(expected)), "missing {expected:?} in {found:#?}");
    }
    let own = format!("{KAFKA}[sources.lag.librdkafka]\n\"group.id\" = \"other\"\n{MINIMAL}");
    assert!(problems(&own)[0].contains("group.id is set by the source itself"), "{:?}", problems(&own));
}

#[test]
fn kafka_secrets_come_from_the_environment() {
    let text = format!("{KAFKA}[sources.lag.librdkafka_env]\n\"sasl.password\" = \"KAFKA_PASSWORD\"\n{MINIMAL}");
    let found = problems(&text);
    assert!(
        found[0].ends_with("sources.lag.librdkafka_env: environment variable KAFKA_PASSWORD is not set"),
        "{found:#?}"
    );
    let env = [("KAFKA_PASSWORD".to_owned(), "hunter2".to_owned())];
    let config = Config::parse(&text, env).unwrap();
    let Settings::Kafka(kafka) = &config.sources["lag"].settings else { panic!("kafka") };
    assert_eq!(kafka.client_properties()["sasl.password"], "hunter2");
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn durations_are_bounded_so_no_clock_arithmetic_can_overflow() {
    let huge = "\"100000000000h\"";
    let text = format!(
        "[daemon]\ninterval = {huge}\nkube_timeout = {huge}\nconfig_check_interval = {huge}\n\
         [daemon.leader_election]\nenabled = true\nlease_duration = {huge}\n{}\n\
         [targets.scale_down]\ncooldown = {huge}\n\
         [targets.spot]\ndeployment = \"worker-spot\"\non_demand_base = 1\non_demand_percentage = 0\nretry_spot_after = {huge}\n",
        MINIMAL.replace("max_replicas = 10", &format!("max_replicas = 10\ninterval = {huge}"))
    );
    let found = problems(&text).join("\n");
    for key in [
        "daemon.interval: must be from 1s to 1h",
        "daemon.kube_timeout: must be from 1ms to 5m",
        "daemon.config_check_interval: must be from 1s to 1h",
        "daemon.leader_election.lease_duration: must be from 1s to 1h",
        "targets[0].interval: must be from 1s to 1h",
        "targets[0].scale_down.cooldown: must be at most 1day",
        "targets[0].spot.retry_spot_after: must be at most 1day",
    ] {
        assert!(found.contains(key), "{key} missing:\n{found}");
    }
}

#[test]
fn a_lease_shorter_than_a_second_and_a_timeout_under_a_millisecond_are_rejected() {
    let text = format!(
        "[daemon.leader_election]\nenabled = true\nlease_duration = \"800ms\"\nrenew_deadline = \"500ms\"\nretry_period = \"100ms\"\n{}",
        MINIMAL.replace("kind = \"celery\"", "kind = \"celery\"\ntimeout = \"500us\"")
    );
    let found = problems(&text).join("\n");
    assert!(found.contains("daemon.leader_election.lease_duration: must be from 1s to 1h"), "{found}");
    assert!(found.contains("sources.q.timeout: must be from 1ms to 5m"), "{found}");
}

#[test]
fn a_kube_timeout_as_long_as_the_lease_is_rejected_and_the_defaults_leave_a_margin() {
    let election = |daemon: &str| format!("[daemon]\n{daemon}\n[daemon.leader_election]\nenabled = true\n{MINIMAL}");
    assert_eq!(
        problems(&election("kube_timeout = \"15s\"")),
        vec![
            "line 2: daemon.kube_timeout: must be shorter than daemon.leader_election.lease_duration (15s): a write may land \
             kube_timeout after it starts, so the leader would never write; lower kube_timeout or raise lease_duration"
        ]
    );
    let defaults = parse(&election("")).expect("the default kube_timeout under the default lease");
    let lease = defaults.daemon.leader_election.expect("enabled");
    let margin = lease.lease_duration - defaults.daemon.kube_timeout;
    assert!(margin > lease.retry_period.mul_f64(1.2), "a leader can write between two renewals: {margin:?}");
    assert!(parse(&format!("[daemon]\nkube_timeout = \"15s\"\n{MINIMAL}")).is_ok(), "no election, no margin");
}

#[test]
fn a_config_needs_a_target() {
    let text = MINIMAL.split("[[targets]]").next().unwrap_or_default();
    assert_eq!(problems(text), vec!["targets: needs at least one [[targets]] entry"]);
}

#[test]
fn an_objective_makes_per_replica_optional_and_changes_the_default_behavior() {
    let text =
        MINIMAL.replace("per_replica = 5", "activation = 0") + "\n[targets.objective]\nmax_wait = \"45s\"\nslots = 8\n";
    let config = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let policy = &config.targets[0].policy;
    let objective = policy.objective.as_ref().expect("an objective");
    assert_eq!((objective.max_wait, objective.slots, objective.task_seconds), (Duration::from_secs(45), 8, None));
    assert_eq!(policy.triggers[0].per_replica, None);
    assert_eq!(policy.scale_up, ScalingRules::unlimited(), "the objective plans for start-up: no rate limit up");
    assert_eq!(policy.scale_down, ScalingRules::objective_scale_down(), "and has its own hysteresis: no window down");
    let found = problems(&MINIMAL.replace("per_replica = 5", "activation = 0"));
    assert_eq!(
        found,
        vec![
            "line 11: targets[0].triggers[0].per_replica: required key is missing (or give the target a [targets.objective] to size for a wait)"
        ]
    );
}

#[test]
fn objective_values_are_checked() {
    let text = format!(
        "{MINIMAL}\n[targets.objective]\nmax_wait = \"0s\"\nslots = 0\ntask_seconds = -1\nhysteresis = 2\nstartup = \"48h\"\n"
    );
    let found = problems(&text).join("\n");
    for key in ["max_wait", "slots", "task_seconds", "hysteresis", "startup"] {
        assert!(found.contains(&format!("targets[0].objective.{key}: must")), "{key}:\n{found}");
    }
}

#[test]
fn the_first_simulation_model_still_reads_and_says_what_replaces_it() {
    let old = format!("{MINIMAL}\n[targets.simulation]\nthroughput_per_replica = 4.0\n");
    let sim = parse(&old).unwrap().targets.remove(0).simulation.expect("a simulation");
    assert_eq!((sim.slots, sim.service_seconds), (1, 0.25), "one slot, a quarter second a task");
    let both = format!("{MINIMAL}\n[targets.simulation]\nthroughput_per_replica = 4.0\nservice_seconds = 2\n");
    assert!(
        problems(&both)[0].contains("give service_seconds (with slots), or the older throughput_per_replica, not both")
    );
    let none = format!("{MINIMAL}\n[targets.simulation]\nslots = 4\n");
    assert!(problems(&none)[0].contains("targets[0].simulation.service_seconds: required key is missing"));
}

/// Asserts that `text` is rejected with a problem containing `expected`.
fn rejects(text: &str, expected: &str) {
    let found = problems(text);
    assert!(found.iter().any(|p| p.contains(expected)), "no {expected:?} in {found:#?}");
}

/// MINIMAL's target as a StatefulSet `airflow-worker`, with `extra` appended to it.
fn statefulset(extra: &str) -> String {
    MINIMAL.replace(
        "deployment = \"worker\"",
        &format!("kind = \"StatefulSet\"\nstatefulset = \"airflow-worker\"\n{extra}"),
    )
}

#[test]
fn a_target_is_a_deployment_unless_its_kind_says_statefulset() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!((config.targets[0].kind, config.targets[0].workload.as_str()), (WorkloadKind::Deployment, "worker"));
    let config = parse(&statefulset("")).unwrap_or_else(|e| panic!("{e}"));
    let target = &config.targets[0];
    assert_eq!((target.kind, target.workload.as_str()), (WorkloadKind::StatefulSet, "airflow-worker"));
    // A Deployment and a StatefulSet of one name are two workloads.
    let both = format!(
        "{}\n[[targets]]\nname = \"d\"\ndeployment = \"airflow-worker\"\nmax_replicas = 2\ntriggers = [{{ source = \"q\", per_replica = 1 }}]\n",
        statefulset("")
    );
    assert!(parse(&both).is_ok());
}

#[test]
fn a_statefulset_target_is_named_by_its_own_key_and_its_kind_is_checked() {
    rejects(
        &MINIMAL.replace("deployment = \"worker\"", "kind = \"StatefulSet\"\ndeployment = \"worker\""),
        "targets[0].deployment: names a Deployment, but kind = \"StatefulSet\"",
    );
    rejects(
        &MINIMAL.replace("deployment = \"worker\"", "statefulset = \"worker\""),
        "targets[0].statefulset: names a StatefulSet: add kind = \"StatefulSet\"",
    );
    rejects(
        &MINIMAL.replace("deployment = \"worker\"", "kind = \"StatefulSet\""),
        "targets[0].statefulset: required key is missing",
    );
    rejects(&MINIMAL.replace("deployment = \"worker\"\n", ""), "targets[0].deployment: required key is missing");
    let found = problems(&MINIMAL.replace("deployment = \"worker\"", "kind = \"DaemonSet\"\ndeployment = \"worker\""));
    let unknown_kind = "targets[0].kind: \"DaemonSet\" is not one of \"Deployment\", \"StatefulSet\"";
    assert!(found.iter().any(|p| p.ends_with(unknown_kind)), "{found:#?}");
    let twice = format!(
        "{}{}",
        statefulset(""),
        statefulset("")
            .replace("[sources.q]", "[sources.r]")
            .replace("source = \"q\"", "source = \"r\"")
            .replace("name = \"w\"", "name = \"w2\"")
    );
    rejects(&twice, "targets[1].statefulset: default/airflow-worker is already scaled by another target");
}

#[test]
fn a_statefulset_cannot_have_a_spot_twin_or_go_without_the_busy_floor() {
    let spot = "\n[targets.spot]\ndeployment = \"airflow-worker-spot\"\non_demand_base = 1\non_demand_percentage = 0\n";
    rejects(
        &format!("{}{spot}", statefulset("")),
        "targets[0].spot: a spot twin needs Deployments: a StatefulSet's pods are numbered",
    );
    let text = format!(
        "{AIRFLOW}{}",
        statefulset("protect_busy_workers = true\nbusy_workers_source = \"af\"\nbusy_workers_floor = false")
    );
    rejects(&text, "targets[0].busy_workers_floor: a StatefulSet removes its highest ordinals first");
    let text = format!("{AIRFLOW}{}", statefulset("protect_busy_workers = true\nbusy_workers_source = \"af\""));
    let config = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.targets[0].busy.as_ref().is_some_and(|b| b.floor));
}
