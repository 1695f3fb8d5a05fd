//! The Celery source on the machine's real RabbitMQ: tasks published by real Celery (priority
//! queues), unacked messages held by a real Celery worker's prefetch, queues that do not exist
//! yet, and connections that fail.

mod support;

use std::time::{Duration, Instant};

use queue_autoscaler::config::Config;
use queue_autoscaler::secret::SecretUrl;
use queue_autoscaler::source::{Settings, Source, SourceError};
use support::rabbitmq::{self, CeleryWorker, Cleanup, Proxy};
use support::unique;

/// A source as the config file makes it: `[sources.q]` with `url` and these extra lines.
fn source_from(url: &str, lines: &str) -> Source {
    let text = format!(
        "[sources.q]\nkind = \"celery\"\nurl = \"{url}\"\ntimeout = \"3s\"\n{lines}\n\
         [[targets]]\nname = \"t\"\ndeployment = \"d\"\nmax_replicas = 1\ntriggers = [{{ source = \"q\", per_replica = 1 }}]\n"
    );
    let config = Config::parse(&text, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    Source::new(&config.sources["q"]).expect("source")
}

fn queues_line(queues: &[&str]) -> String {
    format!("queues = [{}]", queues.iter().map(|q| format!("\"{q}\"")).collect::<Vec<_>>().join(", "))
}

fn source(queues: &[&str]) -> Source {
    source_from(&rabbitmq::url(), &queues_line(queues))
}

async fn poll(source: &Source) -> f64 {
    source.poll().await.expect("poll").value
}

#[tokio::test]
async fn ready_tasks_published_by_celery_count_once_per_priority_queue() {
    rabbitmq::require();
    let (urgent, bulk, absent) = (unique("celery-urgent"), unique("celery-bulk"), unique("celery-absent"));
    let _cleanup = Cleanup(vec![urgent.clone(), bulk.clone()]);
    rabbitmq::celery_publish(&urgent, &[0, 3, 9, 9, 5]);
    rabbitmq::celery_publish(&bulk, &[1, 1, 2]);
    // Every priority sits in the one x-max-priority queue: no priority lists to add up.
    let reading = source(&[&urgent, &bulk, &absent]).poll().await.expect("poll");
    assert_eq!(reading.value, 8.0);
    assert_eq!(reading.skipped, 0);
    assert_eq!(poll(&source(&[&bulk])).await, 3.0);
}

#[tokio::test]
async fn missing_queues_count_zero_wherever_they_are_in_the_list() {
    let (_connection, channel) = rabbitmq::channel().await;
    // 300 queues, every third missing: more than one window of declares, and a closed channel
    // (404 NOT_FOUND) to replace at every missing one.
    let names: Vec<String> = (0..300).map(|i| unique(&format!("amqp-mixed-{i}"))).collect();
    let _cleanup = Cleanup(names.clone());
    let present: Vec<(String, usize)> =
        names.iter().enumerate().filter(|(i, _)| i % 3 != 1).map(|(i, q)| (q.clone(), i % 4)).collect();
    rabbitmq::fill(&channel, &present).await;
    let expected: usize = present.iter().map(|(_, n)| n).sum();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let source = source(&all);
    assert_eq!(poll(&source).await, expected as f64);
    assert_eq!(poll(&source).await, expected as f64, "the same connection, polled again");
    let only_missing: Vec<&str> = names.iter().skip(1).step_by(3).map(String::as_str).collect();
    assert_eq!(poll(&self::source(&only_missing)).await, 0.0);
}

#[tokio::test]
async fn unacked_messages_of_a_celery_worker_prefetch_count_with_the_management_api() {
    rabbitmq::require();
    let queue = unique("celery-prefetch");
    let _cleanup = Cleanup(vec![queue.clone()]);
    rabbitmq::celery_publish(&queue, &[0; 10]);
    let mut worker = CeleryWorker::start(&queue, 4);
    // acks_late, prefetch 4, one task at a time (each sleeps): 4 delivered and unacked, 6 ready.
    support::eventually(Duration::from_secs(30), "the worker's prefetch in the broker's statistics", || {
        worker.check();
        rabbitmq::queue_stats(&queue).filter(|stats| *stats == (6, 4))
    })
    .await;
    let ready_only = source(&[&queue]);
    assert_eq!(poll(&ready_only).await, 6.0, "queue.declare counts ready messages only");
    let lines = format!(
        "{}\ninclude_unacked = true\nmanagement_url = \"{}\"",
        queues_line(&[&queue]),
        rabbitmq::management_url()
    );
    let with_unacked = source_from(&rabbitmq::url(), &lines);
    assert_eq!(poll(&with_unacked).await, 10.0, "6 ready + 4 unacked");
}

#[tokio::test]
async fn the_management_url_can_come_from_the_environment() {
    rabbitmq::require();
    let text = format!(
        "[sources.q]\nkind = \"celery\"\nurl = \"{}\"\nqueues = [\"celery\"]\ninclude_unacked = true\n\
         management_url_env = \"RABBIT_API\"\n[[targets]]\nname = \"t\"\ndeployment = \"d\"\nmax_replicas = 1\n\
         triggers = [{{ source = \"q\", per_replica = 1 }}]\n",
        rabbitmq::url()
    );
    let env = vec![("RABBIT_API".to_owned(), rabbitmq::management_url())];
    let config = Config::parse(&text, env).unwrap_or_else(|e| panic!("{e}"));
    let Settings::Celery(settings) = &config.sources["q"].settings else { unreachable!("a celery source") };
    assert_eq!(settings.management_url.as_ref().map(SecretUrl::expose), Some(rabbitmq::management_url().as_str()));
    assert!(!format!("{settings:?}").contains("guest:guest"), "the password never shows in Debug");
    Source::new(&config.sources["q"]).expect("source").poll().await.expect("poll");
}

#[tokio::test]
async fn a_wrong_management_password_fails_the_poll_and_says_so() {
    rabbitmq::require();
    let wrong = rabbitmq::management_url().replace("guest:guest@", "guest:not-the-password@");
    let lines = format!("queues = [\"celery\"]\ninclude_unacked = true\nmanagement_url = \"{wrong}\"");
    let error = source_from(&rabbitmq::url(), &lines).poll().await.expect_err("401");
    assert!(matches!(error, SourceError::Query(_)), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("401") && text.contains("password"), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
}

#[tokio::test]
async fn an_unreachable_broker_is_a_connect_error_within_the_timeout() {
    let port = support::daemon::free_port();
    let started = Instant::now();
    let result = source_from(&format!("amqp://guest:guest@127.0.0.1:{port}/%2f"), "queues = [\"q\"]").poll().await;
    assert!(matches!(result, Err(SourceError::Connect(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_wrong_password_is_a_connect_error_that_does_not_show_it() {
    rabbitmq::require();
    let url = rabbitmq::url().replace("guest:guest@", "guest:hunter2@");
    let started = Instant::now();
    let error = source_from(&url, "queues = [\"q\"]").poll().await.expect_err("refused");
    assert!(matches!(error, SourceError::Connect(_) | SourceError::Timeout(_)), "{error:?}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn a_cut_connection_is_replaced_at_the_next_poll() {
    let (_connection, channel) = rabbitmq::channel().await;
    let queue = unique("amqp-reconnect");
    let _cleanup = Cleanup(vec![queue.clone()]);
    rabbitmq::fill(&channel, &[(queue.clone(), 7)]).await;
    let proxy = Proxy::start(rabbitmq::broker_address()).await;
    let source = source_from(&rabbitmq::url_through(&proxy), &queues_line(&[&queue]));
    assert_eq!(poll(&source).await, 7.0);
    proxy.cut();
    // The poll right after the cut may see it (a failed poll) or find the connection closed and
    // open a new one; the one after must read the queue again.
    let after_cut = source.poll().await;
    if let Err(error) = &after_cut {
        assert!(matches!(error, SourceError::Connect(_)), "{error:?}");
    }
    assert_eq!(poll(&source).await, 7.0);
}

#[tokio::test]
async fn redis_layout_keys_on_an_amqp_url_are_config_errors() {
    let text = "[sources.q]\nkind = \"celery\"\nurl = \"amqp://rabbit/%2f\"\nqueues = [\"celery\"]\n\
                priority_steps = [0, 5]\ninclude_unacked = true\n[[targets]]\nname = \"t\"\ndeployment = \"d\"\n\
                max_replicas = 1\ntriggers = [{ source = \"q\", per_replica = 1 }]\n";
    let error = Config::parse(text, Vec::new()).expect_err("invalid").to_string();
    assert!(error.contains("sources.q.priority_steps") && error.contains("x-max-priority"), "{error}");
    assert!(error.contains("sources.q.include_unacked") && error.contains("management_url"), "{error}");
}
