//! Polling 1,000 Celery queues on the local RabbitMQ: the source's passive declares, pipelined on
//! one connection (and with the management API's one listing for unacked messages), beside a
//! per-queue HTTP loop against the management API (what KEDA's RabbitMQ scaler does in HTTP
//! mode, a queue at a time) and a per-queue declare loop (its AMQP mode, a queue at a time).
//!
//! `cargo bench --bench rabbitmq` (needs RabbitMQ on 127.0.0.1:5672 with the management plugin,
//! or TEST_AMQP_URL and TEST_RABBITMQ_MANAGEMENT_URL)

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use base64::Engine;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use queue_autoscaler::config::Config;
use queue_autoscaler::source::Source;
use support::rabbitmq;

const QUEUES: usize = 1000;

fn source(queues: &[String], extra: &str) -> Source {
    let list = queues.iter().map(|q| format!("\"{q}\"")).collect::<Vec<_>>().join(", ");
    let text = format!(
        "[sources.q]\nkind = \"celery\"\nurl = \"{}\"\ntimeout = \"30s\"\nqueues = [{list}]\n{extra}\n\
         [[targets]]\nname = \"t\"\ndeployment = \"d\"\nmax_replicas = 1\ntriggers = [{{ source = \"q\", per_replica = 1 }}]\n",
        rabbitmq::url()
    );
    let config = Config::parse(&text, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    Source::new(&config.sources["q"]).expect("source")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let queues: Vec<String> = (0..QUEUES).map(|i| format!("bench-rabbitmq-{}-{i}", std::process::id())).collect();
    let _cleanup = rabbitmq::Cleanup(queues.clone());
    let filled: Vec<(String, usize)> = queues.iter().enumerate().map(|(i, q)| (q.clone(), i % 3 + 1)).collect();
    let expected: usize = filled.iter().map(|(_, n)| n).sum();
    let (connection, channel) = runtime.block_on(rabbitmq::channel());
    runtime.block_on(rabbitmq::fill(&channel, &filled));
    // The per-queue HTTP loop reads the broker's statistics: wait until they have every message.
    let last = queues.last().expect("queues").clone();
    runtime.block_on(support::eventually(Duration::from_secs(30), "statistics for the last queue", || {
        rabbitmq::queue_stats(&last).filter(|(ready, _)| *ready == (QUEUES as u64 - 1) % 3 + 1)
    }));

    let management = url::Url::parse(&rabbitmq::management_url()).expect("management URL");
    let credentials = format!("{}:{}", management.username(), management.password().unwrap_or(""));
    let authorization = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials));
    let http: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let base = format!("http://{}:{}", management.host_str().expect("host"), management.port().unwrap_or(15672));
    let ops = QUEUES as u64;

    let http_loop = common::measure("baseline: one management API GET per queue", ops, 1, 7, || {
        let total = runtime.block_on(async {
            let mut total = 0;
            for queue in &queues {
                let uri = format!("{base}/api/queues/%2F/{queue}");
                let request = http::Request::get(uri).header("authorization", &authorization).body(Empty::new());
                let response = http.request(request.expect("request")).await.expect("GET");
                let body = response.into_body().collect().await.expect("body").to_bytes();
                let stats: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
                total += stats["messages"].as_u64().expect("messages");
            }
            total
        });
        assert_eq!(total as usize, expected);
    });
    let declare_loop = common::measure("baseline: one passive queue.declare round trip per queue", ops, 1, 7, || {
        let total = runtime.block_on(async {
            let mut total = 0;
            for queue in &queues {
                let options = QueueDeclareOptions::default().passive();
                let declared = channel.queue_declare(queue.as_str().into(), options, FieldTable::default()).await;
                total += declared.expect("declare").message_count();
            }
            total
        });
        assert_eq!(total as usize, expected);
    });
    let ready = source(&queues, "");
    let pipelined = common::measure("source poll: pipelined passive declares, one connection", ops, 2, 15, || {
        assert_eq!(runtime.block_on(ready.poll()).expect("poll").value as usize, expected);
    });
    let unacked_lines = format!("include_unacked = true\nmanagement_url = \"{}\"", rabbitmq::management_url());
    let with_unacked = source(&queues, &unacked_lines);
    let both = common::measure("source poll + unacked: one management API listing besides", ops, 2, 15, || {
        assert_eq!(runtime.block_on(with_unacked.poll()).expect("poll").value as usize, expected);
    });
    common::report(
        &format!("rabbitmq: {QUEUES} queues holding 1-3 messages each, local RabbitMQ"),
        &[http_loop, declare_loop, pipelined, both],
    );

    drop((channel, connection));
}
