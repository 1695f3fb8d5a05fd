//! The Celery source against a real Redis, with messages in kombu's real format.

mod support;

use std::time::Duration;

use queue_autoscaler::secret::SecretUrl;
use queue_autoscaler::source::celery::CelerySettings;
use queue_autoscaler::source::{Settings, Source, SourceError, SourceSpec};
use support::redis::{self as test_redis, PrivateRedis, push, unacked_entry};
use support::unique;

fn source(settings: CelerySettings) -> Source {
    source_at(&test_redis::url(), settings)
}

fn source_at(url: &str, settings: CelerySettings) -> Source {
    let spec = SourceSpec {
        url: Some(SecretUrl::new(url)),
        timeout: Duration::from_secs(2),
        settings: Settings::Celery(settings),
    };
    Source::new(&spec).expect("source")
}

/// Settings for `queues` under a key prefix of their own, so tests never see each other's keys.
fn isolated(prefix: &str, queues: &[&str]) -> CelerySettings {
    let mut settings = CelerySettings::for_queues(queues);
    settings.global_keyprefix = format!("{prefix}:");
    settings
}

#[tokio::test]
async fn depth_is_the_sum_over_every_priority_list_of_every_queue() {
    let mut redis = test_redis::connect().await;
    let prefix = unique("celery-depth");
    let p = format!("{prefix}:");
    let sep = "\u{6}\u{16}";
    push(&mut redis, &format!("{p}default"), "default", 7).await;
    push(&mut redis, &format!("{p}default{sep}3"), "default", 5).await;
    push(&mut redis, &format!("{p}default{sep}9"), "default", 2).await;
    push(&mut redis, &format!("{p}reports{sep}6"), "reports", 4).await;
    // Not ours: another queue, and a step that is not configured.
    push(&mut redis, &format!("{p}other"), "other", 100).await;
    push(&mut redis, &format!("{p}default{sep}5"), "default", 100).await;

    let reading = source(isolated(&prefix, &["default", "reports", "empty"])).poll().await.expect("poll");
    assert_eq!(reading.value, 18.0);
    assert_eq!(reading.skipped, 0);
    test_redis::clean(&mut redis, &prefix).await;
}

#[tokio::test]
async fn custom_separator_steps_and_prefix() {
    let mut redis = test_redis::connect().await;
    let prefix = unique("celery-custom");
    push(&mut redis, &format!("{prefix}:jobs"), "jobs", 3).await;
    push(&mut redis, &format!("{prefix}:jobs::5"), "jobs", 4).await;
    push(&mut redis, &format!("{prefix}:jobs\u{6}\u{16}3"), "jobs", 50).await; // kombu's default key: not ours now
    let mut settings = isolated(&prefix, &["jobs"]);
    settings.separator = "::".into();
    settings.priority_steps = vec![0, 5];
    assert_eq!(source(settings).poll().await.expect("poll").value, 7.0);
    test_redis::clean(&mut redis, &prefix).await;
}

#[tokio::test]
async fn reads_the_one_redis_db_in_the_url() {
    let mut redis = test_redis::connect().await;
    let prefix = unique("celery-db");
    let () = redis::cmd("SELECT").arg(3).query_async(&mut redis).await.expect("SELECT 3");
    push(&mut redis, &format!("{prefix}:q"), "q", 6).await;
    let db3 = test_redis::url().replace("/0", "/3");
    assert_eq!(source_at(&db3, isolated(&prefix, &["q"])).poll().await.expect("poll db 3").value, 6.0);
    assert_eq!(source(isolated(&prefix, &["q"])).poll().await.expect("poll db 0").value, 0.0);
    test_redis::clean(&mut redis, &prefix).await;
}

#[tokio::test]
async fn unacked_counts_our_due_reserved_messages_and_skips_unreadable_ones() {
    let mut redis = test_redis::connect().await;
    let prefix = unique("celery-unacked");
    let hash = format!("{prefix}:unacked");
    push(&mut redis, &format!("{prefix}:default"), "default", 3).await;
    let future_eta = "2999-01-01T00:00:00.000000+00:00";
    let past_eta = "2001-01-01T00:00:00.000000+00:00";
    let entries = [
        ("t1", unacked_entry("t1", "default", None)),
        ("t2", unacked_entry("t2", "default", None)),
        ("t3", unacked_entry("t3", "default", Some(past_eta))),
        ("t4", unacked_entry("t4", "default", Some(future_eta))), // not due: not demand yet
        ("t5", unacked_entry("t5", "other", None)),               // another queue's
        ("t6", "{this is not json".to_owned()),
        ("t7", "[1, 2]".to_owned()),
    ];
    for (tag, value) in &entries {
        let () = redis::cmd("HSET").arg(&hash).arg(*tag).arg(value).query_async(&mut redis).await.expect("HSET");
    }
    let mut settings = isolated(&prefix, &["default"]);
    assert_eq!(source(settings.clone()).poll().await.expect("poll").value, 3.0, "unacked off by default");
    settings.include_unacked = true;
    let reading = source(settings).poll().await.expect("poll");
    assert_eq!(reading.value, 6.0, "3 queued + t1, t2, t3");
    assert_eq!(reading.skipped, 2, "t6 and t7 are not kombu entries");
    test_redis::clean(&mut redis, &prefix).await;
}

#[tokio::test]
async fn a_large_unacked_hash_is_scanned_completely() {
    let mut redis = test_redis::connect().await;
    let prefix = unique("celery-hscan");
    let hash = format!("{prefix}:unacked");
    let mut pipe = redis::pipe();
    for i in 0..2500 {
        let queue = if i % 5 == 0 { "other" } else { "default" };
        pipe.cmd("HSET").arg(&hash).arg(format!("tag-{i}")).arg(unacked_entry(&format!("t{i}"), queue, None)).ignore();
    }
    let () = pipe.query_async(&mut redis).await.expect("fill unacked");
    let mut settings = isolated(&prefix, &["default"]);
    settings.include_unacked = true;
    assert_eq!(source(settings).poll().await.expect("poll").value, 2000.0);
    test_redis::clean(&mut redis, &prefix).await;
}

#[tokio::test]
async fn a_custom_unacked_key_is_used() {
    let mut redis = test_redis::connect().await;
    let prefix = unique("celery-unacked-key");
    let () = redis::cmd("HSET")
        .arg(format!("{prefix}:reserved"))
        .arg("t1")
        .arg(unacked_entry("t1", "default", None))
        .query_async(&mut redis)
        .await
        .expect("HSET");
    let mut settings = isolated(&prefix, &["default"]);
    settings.include_unacked = true;
    settings.unacked_key = "reserved".into();
    assert_eq!(source(settings).poll().await.expect("poll").value, 1.0);
    test_redis::clean(&mut redis, &prefix).await;
}

#[tokio::test]
async fn an_unreachable_redis_is_a_connect_error_within_the_timeout() {
    let port = support::daemon::free_port();
    let started = std::time::Instant::now();
    let result = source_at(&format!("redis://127.0.0.1:{port}/0"), CelerySettings::for_queues(&["q"])).poll().await;
    assert!(matches!(result, Err(SourceError::Connect(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_lost_connection_is_reopened_on_the_next_poll() {
    let port = support::daemon::free_port();
    let server = PrivateRedis::start(port, &[]);
    let source = source_at(&format!("redis://127.0.0.1:{}/0", server.port), CelerySettings::for_queues(&["q"]));
    assert_eq!(source.poll().await.expect("first poll").value, 0.0);
    drop(server);
    assert!(source.poll().await.is_err(), "Redis is down: the poll fails");
    let server = PrivateRedis::start(port, &[]);
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/0", server.port)).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    push(&mut connection, "q", "q", 2).await;
    assert_eq!(source.poll().await.expect("poll after restart").value, 2.0);
}

#[tokio::test]
async fn a_wrong_password_never_appears_in_the_error() {
    let port = support::daemon::free_port();
    let _server = PrivateRedis::start(port, &["--requirepass", "right-password"]);
    let url = format!("redis://:hunter2-wrong@127.0.0.1:{port}/0");
    let error = source_at(&url, CelerySettings::for_queues(&["q"])).poll().await.expect_err("wrong password");
    assert!(!error.to_string().contains("hunter2"), "{error}");
    let ok = source_at(&format!("redis://:right-password@127.0.0.1:{port}/0"), CelerySettings::for_queues(&["q"]));
    assert_eq!(ok.poll().await.expect("right password").value, 0.0);
}
