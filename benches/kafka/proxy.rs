//! A counting proxy in front of the broker: every client of the bench talks to the broker
//! through it (the broker advertises the proxy's address), so it sees each request of each poll,
//! whoever sends it, and how long the broker took to answer.

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy saw, per API key: requests, and the broker's time answering them (from the
/// request's arrival at the proxy to its whole response read back; requests in flight together
/// overlap, so the sum may exceed the poll's wall time).
#[derive(Default)]
pub struct Traffic {
    pub requests: BTreeMap<i16, u64>,
    pub broker_time: BTreeMap<i16, Duration>,
}

pub fn api_name(key: i16) -> String {
    match key {
        2 => "ListOffsets".into(),
        3 => "Metadata".into(),
        9 => "OffsetFetch".into(),
        10 => "FindCoordinator".into(),
        18 => "ApiVersions".into(),
        71 => "GetTelemetrySubscriptions".into(),
        other => format!("api {other}"),
    }
}

impl Traffic {
    /// Requests and broker time per poll, by API: `OffsetFetch 1 (2.1 ms), ListOffsets 1 (…)`.
    pub fn per_poll(&self, polls: usize) -> String {
        let polls = polls.max(1);
        let entries: Vec<String> = self
            .requests
            .iter()
            .map(|(key, n)| {
                let time = self.broker_time.get(key).copied().unwrap_or_default() / u32::try_from(polls).unwrap_or(1);
                format!("{} {:.1} ({})", api_name(*key), *n as f64 / polls as f64, crate::common::fmt(time))
            })
            .collect();
        entries.join(", ")
    }
}

/// Starts the proxy on `listen`, forwarding to `broker`; returns what it counts.
pub fn start(listen: TcpListener, broker: String) -> Arc<Mutex<Traffic>> {
    let traffic = Arc::new(Mutex::new(Traffic::default()));
    let counted = traffic.clone();
    std::thread::spawn(move || {
        for client in listen.incoming().flatten() {
            let (broker, traffic) = (broker.clone(), counted.clone());
            std::thread::spawn(move || forward(client, &broker, traffic));
        }
    });
    traffic
}

/// Takes what was counted since the last call.
pub fn take(traffic: &Mutex<Traffic>) -> Traffic {
    std::mem::take(&mut *traffic.lock().unwrap())
}

/// One client connection: request frames (4-byte size, then the API key) go up, each timed until
/// its response comes down (Kafka answers in order on a connection).
fn forward(client: TcpStream, broker: &str, traffic: Arc<Mutex<Traffic>>) {
    let Ok(upstream) = TcpStream::connect(broker) else { return };
    // The proxy must not add delays of its own.
    let _ = (upstream.set_nodelay(true), client.set_nodelay(true));
    let sent: Arc<Mutex<VecDeque<(i16, Instant)>>> = Arc::default();
    let (mut from_client, mut to_broker) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let (mut from_broker, mut to_client) = (upstream, client);
    let (sent2, traffic2) = (sent.clone(), traffic.clone());
    std::thread::spawn(move || {
        while let Some(frame) = read_frame(&mut from_broker) {
            if let Some((key, at)) = sent2.lock().unwrap().pop_front() {
                *traffic2.lock().unwrap().broker_time.entry(key).or_default() += at.elapsed();
            }
            if to_client.write_all(&frame).is_err() {
                return;
            }
        }
    });
    while let Some(frame) = read_frame(&mut from_client) {
        let key = i16::from_be_bytes([frame[4], frame[5]]);
        *traffic.lock().unwrap().requests.entry(key).or_default() += 1;
        // Queued before it is sent, so that its response always finds it.
        sent.lock().unwrap().push_back((key, Instant::now()));
        if to_broker.write_all(&frame).is_err() {
            return;
        }
    }
}

fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let mut frame = vec![0u8; 4 + u32::from_be_bytes(size) as usize];
    frame[..4].copy_from_slice(&size);
    stream.read_exact(&mut frame[4..]).ok()?;
    Some(frame)
}
