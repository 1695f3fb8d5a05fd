//! Polling 1,000 Celery queues × 4 priority lists on the local Redis: the source's one
//! pipelined round trip, beside a serial loop of one LLEN round trip per key (the baseline),
//! the same LLENs all in flight at once, and redis-py with a pipeline (benches/peers/celery_llen.py).
//!
//! `cargo bench --bench celery` (needs Redis on 127.0.0.1:6379, or TEST_REDIS_URL; the redis-py
//! peer needs python3, and installs redis-py from PyPI when it is missing)

mod common;
mod peers;

use std::time::Duration;

use queue_autoscaler::secret::SecretUrl;
use queue_autoscaler::source::celery::CelerySettings;
use queue_autoscaler::source::{Settings, Source, SourceSpec};

const QUEUES: usize = 1000;

const REDIS_PY: peers::Package = peers::Package { module: "redis", requirement: "redis==8.1.0" };

fn main() {
    let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let prefix = format!("bench-celery-{}:", std::process::id());
    let queues: Vec<String> = (0..QUEUES).map(|i| format!("queue-{i}")).collect();
    let mut settings = CelerySettings::for_queues(&queues.iter().map(String::as_str).collect::<Vec<_>>());
    settings.global_keyprefix = prefix.clone();
    let keys = settings.list_keys();

    let client = redis::Client::open(url.as_str()).expect("redis url");
    let mut connection = runtime
        .block_on(client.get_multiplexed_async_connection())
        .unwrap_or_else(|e| panic!("Redis is not reachable at {url} ({e}); start it: redis-server --daemonize yes"));
    // Every key holds 1..=3 messages, so every LLEN does real work.
    runtime.block_on(async {
        let mut pipe = redis::pipe();
        for (i, key) in keys.iter().enumerate() {
            for _ in 0..(i % 3 + 1) {
                pipe.cmd("LPUSH").arg(key).arg("{}").ignore();
            }
        }
        let () = pipe.query_async(&mut connection).await.expect("fill");
    });
    let expected: usize = (0..keys.len()).map(|i| i % 3 + 1).sum();

    let spec = SourceSpec {
        url: Some(SecretUrl::new(url.clone())),
        timeout: Duration::from_secs(10),
        settings: Settings::Celery(settings),
    };
    let source = Source::new(&spec).expect("source");
    let ops = keys.len() as u64;
    let serial = common::measure("serial loop: one LLEN round trip per key (baseline)", ops, 2, 15, || {
        let total = runtime.block_on(async {
            let mut total = 0u64;
            for key in &keys {
                let n: u64 = redis::cmd("LLEN").arg(key).query_async(&mut connection).await.expect("LLEN");
                total += n;
            }
            total
        });
        assert_eq!(total as usize, expected);
    });
    // One request per key as well, but all in flight together on the multiplexed connection.
    let concurrent = common::measure("concurrent: one LLEN per key, all in flight at once", ops, 2, 15, || {
        let lengths = runtime.block_on(futures_util::future::join_all(keys.iter().map(|key| {
            let mut connection = connection.clone();
            async move { redis::cmd("LLEN").arg(key).query_async::<u64>(&mut connection).await.expect("LLEN") }
        })));
        assert_eq!(lengths.iter().sum::<u64>() as usize, expected);
    });
    let mut samples = vec![serial, concurrent];
    let job = serde_json::json!({ "url": url, "keys": keys, "expected": expected, "warmup": 2, "runs": 15 });
    match peers::run("redis-py: one pipeline of LLENs", ops, "celery_llen.py", &REDIS_PY, &job, || {}) {
        Ok(sample) => samples.push(sample),
        Err(reason) => println!("  skipped the redis-py peer: {reason}"),
    }
    samples.push(common::measure("source poll: one pipelined round trip", ops, 2, 15, || {
        let reading = runtime.block_on(source.poll()).expect("poll");
        assert_eq!(reading.value as usize, expected);
    }));
    common::report(&format!("celery: {QUEUES} queues × 4 priority lists = {} keys, local Redis", keys.len()), &samples);

    runtime.block_on(async {
        for chunk in keys.chunks(500) {
            let () = redis::cmd("DEL").arg(chunk).query_async(&mut connection).await.expect("DEL");
        }
    });
}
