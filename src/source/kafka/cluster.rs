//! One client per Kafka cluster, shared by every source on it: metadata for the configured
//! topics, end offsets in one ListOffsets per partition leader, and a group's committed offsets
//! in one OffsetFetch — for any group, through librdkafka's admin API (the safe rdkafka API
//! reads only the client's own `group.id`).

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::ptr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::bindings as rd;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use super::super::SourceError;

/// The reader's own (never joined) consumer group.
pub const READER_GROUP: &str = "queue-autoscaler.lag-reader";

/// How long topic metadata (partition counts) is trusted before it is fetched again.
const METADATA_TTL: Duration = Duration::from_secs(60);

/// A client on one cluster, with one isolation level.
pub struct Cluster {
    consumer: BaseConsumer,
    /// Partitions per topic, and when they were read.
    metadata: Mutex<BTreeMap<String, (Vec<i32>, Instant)>>,
}

/// librdkafka's refusal of a property, without the value it was given: a misspelt `sasl.password`
/// is not recognised as a secret, and librdkafka repeats invalid values in its description.
fn config_error(error: KafkaError) -> SourceError {
    match error {
        KafkaError::ClientConfig(_, description, property, value) => SourceError::Connect(format!(
            "librdkafka property {property}: {}",
            crate::secret::scrub(&description, &[value])
        )),
        other => SourceError::Connect(other.to_string()),
    }
}

impl Cluster {
    /// A client that never joins a group: it only asks.
    pub fn connect(settings: &BTreeMap<String, String>) -> Result<Cluster, SourceError> {
        let mut config = ClientConfig::new();
        // Small requests on a connection used rarely: Nagle's algorithm against the peer's
        // delayed ACK would add ~40 ms to each (measured: BENCHMARKS.md). Users may set it back.
        config.set("socket.nagle.disable", "true");
        for (key, value) in settings {
            config.set(key, value);
        }
        config
            .set("client.id", "queue-autoscaler")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        // A group of its own that it never joins. librdkafka 2.12 dereferences the client's group
        // when an OffsetFetch answers COORDINATOR_NOT_AVAILABLE (rd_kafka_handle_OffsetFetch →
        // rd_kafka_cgrp_op), even for the admin API: a client without one crashes there.
        config.set("group.id", READER_GROUP);
        let consumer = config.create::<BaseConsumer>().map_err(config_error)?;
        Ok(Cluster { consumer, metadata: Mutex::new(BTreeMap::new()) })
    }

    /// The partitions of `topic`, from metadata fetched for that topic only, cached for a minute.
    pub fn partitions(&self, topic: &str, timeout: Duration) -> Result<Vec<i32>, SourceError> {
        if let Some((partitions, at)) = self.lock().get(topic)
            && at.elapsed() < METADATA_TTL
        {
            return Ok(partitions.clone());
        }
        let metadata = self.consumer.fetch_metadata(Some(topic), timeout).map_err(error)?;
        let found = metadata.topics().iter().find(|t| t.name() == topic);
        let partitions = match found {
            Some(t) if t.error().is_none() => t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>(),
            Some(t) => {
                let code = t.error().map(RDKafkaErrorCode::from);
                return Err(SourceError::Query(format!("metadata for topic {topic}: {code:?}")));
            }
            None => return Err(SourceError::Query(format!("no metadata for topic {topic}"))),
        };
        self.lock().insert(topic.to_owned(), (partitions.clone(), Instant::now()));
        Ok(partitions)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Vec<i32>, Instant)>> {
        // A plain cache: whatever a panicking holder left is still a valid (maybe stale) map.
        self.metadata.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// End (`Offset::End`) or start (`Offset::Beginning`) offsets of many partitions at once:
    /// librdkafka groups them by leader and sends one ListOffsets per broker.
    pub fn offsets(
        &self,
        partitions: &[(String, i32)],
        at: Offset,
        timeout: Duration,
    ) -> Result<BTreeMap<(String, i32), i64>, SourceError> {
        let mut list = TopicPartitionList::new();
        for (topic, partition) in partitions {
            list.add_partition_offset(topic, *partition, at).map_err(error)?;
        }
        let found = self.consumer.offsets_for_times(list, timeout).map_err(error)?;
        let mut offsets = BTreeMap::new();
        for element in found.elements() {
            element.error().map_err(error)?;
            if let Offset::Offset(n) = element.offset() {
                offsets.insert((element.topic().to_owned(), element.partition()), n);
            }
        }
        Ok(offsets)
    }

    /// `group`'s committed offsets (one OffsetFetch to its coordinator): of `partitions`, or of
    /// every partition it has committed when `None`. Partitions without a commit are left out.
    pub fn committed(
        &self,
        group: &str,
        partitions: Option<&[(String, i32)]>,
        require_stable: bool,
        timeout: Duration,
    ) -> Result<BTreeMap<(String, i32), i64>, SourceError> {
        let list = partitions.map(|parts| {
            let mut list = TopicPartitionList::new();
            for (topic, partition) in parts {
                list.add_partition(topic, *partition);
            }
            list
        });
        let group = CString::new(group).map_err(|_| SourceError::Query("a group id cannot contain NUL".into()))?;
        list_group_offsets(&self.consumer, &group, list.as_ref(), require_stable, timeout)
    }

    /// Serves the client's own queue (errors, logs) so that events never pile up.
    pub fn drain_events(&self) {
        while self.consumer.poll(Duration::ZERO).is_some() {}
    }
}

/// Kafka errors as bounded source errors.
pub fn error(e: KafkaError) -> SourceError {
    let code = e.rdkafka_error_code();
    let message = e.to_string();
    match code {
        Some(RDKafkaErrorCode::OperationTimedOut | RDKafkaErrorCode::RequestTimedOut) => {
            SourceError::Query(format!("timed out: {message}"))
        }
        Some(
            RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::Resolve
            | RDKafkaErrorCode::BrokerNotAvailable
            | RDKafkaErrorCode::NetworkException,
        ) => SourceError::Connect(message),
        _ => SourceError::Query(message),
    }
}

/// Owns a librdkafka object and destroys it once, when dropped.
struct Owned<T>(*mut T, unsafe extern "C" fn(*mut T));

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from the matching librdkafka constructor, is non-null,
            // and this guard is its only owner, so it is destroyed exactly once.
            unsafe { (self.1)(self.0) }
        }
    }
}

/// `rd_kafka_ListConsumerGroupOffsets` for one group, waited for on a queue of its own.
fn list_group_offsets(
    consumer: &BaseConsumer,
    group: &CStr,
    partitions: Option<&TopicPartitionList>,
    require_stable: bool,
    timeout: Duration,
) -> Result<BTreeMap<(String, i32), i64>, SourceError> {
    let rk = consumer.client().native_ptr();
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY (the whole block): `rk` is the live handle of `consumer`, borrowed for the call.
    // Every object librdkafka allocates here is owned by an `Owned` guard (destroyed once,
    // after its last use) or, for the request, handed to librdkafka's call, which does not take
    // ownership of the array — so the request is destroyed by its guard too. The partition list
    // is only read by `_new`, which copies it. The result pointers are borrowed from `event` and
    // read before `event` is destroyed; librdkafka strings are NUL-terminated.
    unsafe {
        let queue = Owned(rd::rd_kafka_queue_new(rk), rd::rd_kafka_queue_destroy);
        let options = Owned(
            rd::rd_kafka_AdminOptions_new(rk, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS),
            rd::rd_kafka_AdminOptions_destroy,
        );
        if queue.0.is_null() || options.0.is_null() {
            return Err(SourceError::Query("librdkafka could not allocate an admin request".into()));
        }
        let mut errstr = [0 as std::ffi::c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(options.0, timeout_ms, errstr.as_mut_ptr(), errstr.len());
        let stable_error = rd::rd_kafka_AdminOptions_set_require_stable_offsets(options.0, i32::from(require_stable));
        if !stable_error.is_null() {
            rd::rd_kafka_error_destroy(stable_error);
        }
        let list = partitions.map_or(ptr::null(), |p| p.ptr() as *const rd::rd_kafka_topic_partition_list_t);
        let request = Owned(
            rd::rd_kafka_ListConsumerGroupOffsets_new(group.as_ptr(), list),
            rd::rd_kafka_ListConsumerGroupOffsets_destroy,
        );
        let mut requests = [request.0];
        rd::rd_kafka_ListConsumerGroupOffsets(rk, requests.as_mut_ptr(), 1, options.0, queue.0);
        // Allow the broker its request timeout plus a little for the queue hand-over.
        let event =
            Owned(rd::rd_kafka_queue_poll(queue.0, timeout_ms.saturating_add(1000)), rd::rd_kafka_event_destroy);
        if event.0.is_null() {
            return Err(SourceError::Timeout(timeout));
        }
        if rd::rd_kafka_event_type(event.0) != rd::RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT {
            return Err(SourceError::Protocol("unexpected librdkafka event for ListConsumerGroupOffsets".into()));
        }
        let code = rd::rd_kafka_event_error(event.0);
        if code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(code_error(code, c_string(rd::rd_kafka_event_error_string(event.0))));
        }
        let result = rd::rd_kafka_event_ListConsumerGroupOffsets_result(event.0);
        let mut count = 0usize;
        let groups = rd::rd_kafka_ListConsumerGroupOffsets_result_groups(result, &mut count);
        let mut committed = BTreeMap::new();
        for i in 0..count {
            let group_result = *groups.add(i);
            let group_error = rd::rd_kafka_group_result_error(group_result);
            if !group_error.is_null() {
                return Err(code_error(
                    rd::rd_kafka_error_code(group_error),
                    c_string(rd::rd_kafka_error_string(group_error)),
                ));
            }
            let list = rd::rd_kafka_group_result_partitions(group_result);
            if list.is_null() {
                continue;
            }
            let list = &*list;
            for j in 0..usize::try_from(list.cnt).unwrap_or(0) {
                let element = &*list.elems.add(j);
                // A partition without a commit comes back with offset -1 (INVALID -1001 in some versions).
                if element.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && element.offset >= 0 {
                    committed.insert((c_string(element.topic.cast_const()), element.partition), element.offset);
                }
            }
        }
        Ok(committed)
    }
}

/// A librdkafka string as an owned `String` (empty when null).
///
/// # Safety
/// `text` is null or a NUL-terminated string that stays valid during the call.
unsafe fn c_string(text: *const std::ffi::c_char) -> String {
    if text.is_null() {
        return String::new();
    }
    // SAFETY: non-null and NUL-terminated, per the function's contract.
    unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned()
}

/// An error code from the admin API, classified like any other, in librdkafka's own words.
fn code_error(code: rd::rd_kafka_resp_err_t, message: String) -> SourceError {
    match error(KafkaError::AdminOp(RDKafkaErrorCode::from(code))) {
        SourceError::Connect(_) => SourceError::Connect(message),
        SourceError::Protocol(_) => SourceError::Protocol(message),
        other => SourceError::Query(format!("{message} ({other})")),
    }
}
