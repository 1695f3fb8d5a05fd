//! KEDA's Kafka lag poll, request for request, on the raw protocol (kedacore/keda
//! pkg/scalers/kafka_scaler.go, `getTotalLag`): a Metadata request for the topic
//! (`getTopicPartitions`, sarama's `DescribeTopics`), then the group's OffsetFetch to its
//! coordinator and one ListOffsets v1 per partition leader (`getProducerOffsets`), in flight
//! together (`getConsumerAndProducerOffsets`). ListOffsets v1 has no isolation level: KEDA reads
//! high watermarks, i.e. read_uncommitted.
//!
//! Raw requests rather than a client library, so that the bench compares request patterns and
//! not libraries. The connections are opened and the coordinator found before the timed section,
//! as sarama keeps both between polls. Metadata and OffsetFetch go as v1 (for KEDA's default
//! `version: 1.0.0` sarama sends v5 and v3: the same questions with a few more fields).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;

const LIST_OFFSETS: i16 = 2;
const METADATA: i16 = 3;
const OFFSET_FETCH: i16 = 9;
const FIND_COORDINATOR: i16 = 10;

/// A request body, in Kafka's big-endian primitives.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn i16(&mut self, v: i16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn len(&mut self, n: usize) -> &mut Self {
        self.i32(i32::try_from(n).unwrap())
    }
    fn string(&mut self, s: &str) -> &mut Self {
        self.i16(i16::try_from(s.len()).unwrap());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
}

/// A response body being read (the bench's own broker: malformed data is a bug, so it panics).
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        head.try_into().unwrap()
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take())
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take())
    }
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take())
    }
    fn string(&mut self) -> String {
        let n = usize::try_from(self.i16()).unwrap_or(0); // -1: a null string
        let (text, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8_lossy(text).into_owned()
    }
    fn array<T>(&mut self, mut item: impl FnMut(&mut Self) -> T) -> Vec<T> {
        let n = self.i32().max(0);
        (0..n).map(|_| item(self)).collect()
    }
}

/// One broker connection; requests may be pipelined, responses come back in order.
struct Conn {
    stream: TcpStream,
    correlation: i32,
}

impl Conn {
    fn open(address: &str) -> Conn {
        let stream = TcpStream::connect(address).unwrap_or_else(|e| panic!("connect {address}: {e}"));
        stream.set_nodelay(true).unwrap(); // as Go's net package does by default
        Conn { stream, correlation: 0 }
    }

    /// Request header v1: key, version, correlation id, client id.
    fn send(&mut self, api: i16, version: i16, body: &Writer) {
        self.correlation += 1;
        let mut frame = Writer::default();
        frame.i32(0).i16(api).i16(version).i32(self.correlation).string("sarama");
        frame.0.extend_from_slice(&body.0);
        let size = i32::try_from(frame.0.len() - 4).unwrap();
        frame.0[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&frame.0).unwrap();
    }

    /// The next response's body (after the correlation id).
    fn receive(&mut self) -> Vec<u8> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).unwrap();
        body.split_off(4)
    }
}

/// What a Metadata v1 response says about the brokers and one topic.
struct Metadata {
    brokers: BTreeMap<i32, String>,
    controller: i32,
    /// (partition, leader)
    leaders: Vec<(i32, i32)>,
}

fn metadata(conn: &mut Conn, topic: &str) -> Metadata {
    let mut body = Writer::default();
    body.len(1).string(topic);
    conn.send(METADATA, 1, &body);
    let bytes = conn.receive();
    let mut r = Reader(&bytes);
    let brokers = r.array(|r| {
        let (id, host, port) = (r.i32(), r.string(), r.i32());
        r.string(); // rack
        (id, format!("{host}:{port}"))
    });
    let controller = r.i32();
    let mut topics = r.array(|r| {
        assert_eq!(r.i16(), 0, "metadata error for {topic}");
        r.string();
        r.take::<1>(); // is_internal
        r.array(|r| {
            let (error, partition, leader) = (r.i16(), r.i32(), r.i32());
            assert_eq!(error, 0, "metadata error for {topic}/{partition}");
            r.array(Reader::i32);
            r.array(Reader::i32);
            (partition, leader)
        })
    });
    Metadata { brokers: brokers.into_iter().collect(), controller, leaders: topics.pop().unwrap_or_default() }
}

/// KEDA's poll of one group on one topic, with its connections open.
pub struct KedaPoll {
    brokers: BTreeMap<i32, Conn>,
    controller: i32,
    coordinator: i32,
    group: String,
    topic: String,
}

impl KedaPoll {
    pub fn connect(bootstrap: &str, group: &str, topic: &str) -> KedaPoll {
        let mut seed = Conn::open(bootstrap);
        let found = metadata(&mut seed, topic);
        let mut body = Writer::default();
        body.string(group);
        seed.send(FIND_COORDINATOR, 0, &body);
        let bytes = seed.receive();
        let mut r = Reader(&bytes);
        assert_eq!(r.i16(), 0, "no coordinator for {group}");
        let coordinator = r.i32();
        let brokers = found.brokers.iter().map(|(id, address)| (*id, Conn::open(address))).collect();
        let (group, topic) = (group.to_owned(), topic.to_owned());
        KedaPoll { brokers, controller: found.controller, coordinator, group, topic }
    }

    /// One poll: the group's total lag on the topic.
    pub fn poll(&mut self) -> i64 {
        let (controller, coordinator, group, topic) =
            (self.controller, self.coordinator, self.group.clone(), self.topic.clone());
        let leaders = metadata(self.broker(controller), &topic).leaders;
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for (partition, leader) in &leaders {
            by_leader.entry(*leader).or_default().push(*partition);
        }
        // Everything in flight at once; on each connection the OffsetFetch went first, so its
        // answer is read first.
        self.broker(coordinator).send(OFFSET_FETCH, 1, &offset_fetch(&group, &topic, &leaders));
        for (leader, partitions) in &by_leader {
            self.broker(*leader).send(LIST_OFFSETS, 1, &list_offsets(&topic, partitions));
        }
        let committed = read_committed(&self.broker(coordinator).receive());
        let mut lag = 0;
        for leader in by_leader.keys() {
            for (partition, end) in read_ends(&self.broker(*leader).receive()) {
                // KEDA's getLagForPartition with its defaults: no commit (-1) under the `latest`
                // reset counts 1; otherwise latest − committed, unclamped.
                lag += match committed.get(&partition).copied().unwrap_or(-1) {
                    -1 => 1,
                    committed => end - committed,
                };
            }
        }
        lag
    }

    fn broker(&mut self, id: i32) -> &mut Conn {
        self.brokers.get_mut(&id).unwrap_or_else(|| panic!("broker {id} is not in the metadata"))
    }
}

/// OffsetFetch v1: the group's commits on these partitions.
fn offset_fetch(group: &str, topic: &str, partitions: &[(i32, i32)]) -> Writer {
    let mut body = Writer::default();
    body.string(group).len(1).string(topic).len(partitions.len());
    for (partition, _) in partitions {
        body.i32(*partition);
    }
    body
}

/// partition → committed offset (-1: none).
fn read_committed(bytes: &[u8]) -> BTreeMap<i32, i64> {
    let mut r = Reader(bytes);
    let topics = r.array(|r| {
        r.string();
        r.array(|r| {
            let (partition, offset) = (r.i32(), r.i64());
            r.string(); // metadata
            assert_eq!(r.i16(), 0, "OffsetFetch error on partition {partition}");
            (partition, offset)
        })
    });
    topics.into_iter().flatten().collect()
}

/// ListOffsets v1 for the latest offsets (timestamp -1), as `sarama.OffsetNewest`.
fn list_offsets(topic: &str, partitions: &[i32]) -> Writer {
    let mut body = Writer::default();
    body.i32(-1).len(1).string(topic).len(partitions.len());
    for partition in partitions {
        body.i32(*partition).i64(-1);
    }
    body
}

/// (partition, end offset)
fn read_ends(bytes: &[u8]) -> Vec<(i32, i64)> {
    let mut r = Reader(bytes);
    let topics = r.array(|r| {
        r.string();
        r.array(|r| {
            let (partition, error) = (r.i32(), r.i16());
            assert_eq!(error, 0, "ListOffsets error on partition {partition}");
            r.i64(); // timestamp
            (partition, r.i64())
        })
    });
    topics.into_iter().flatten().collect()
}
