//! Where a partition's log ends: from what a consumer has already fetched
//! (no broker round trip), or asked of the brokers for many partitions at once.

use super::KafkaError;
use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::ffi::CString;
use std::time::Duration;

/// The end of a partition's log (its high watermark) as reported by the
/// latest fetch response of this client, or `None` before the first fetch.
///
/// Unlike a ListOffsets request this costs nothing and is what librdkafka
/// itself compares its position with to signal a partition's end. (Some
/// brokers, Tansu among them, answer ListOffsets with a stale end.)
pub fn fetched_log_end<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let topic = CString::new(topic).ok()?;
    let (mut low, mut high) = (0i64, 0i64);
    // SAFETY: the client pointer is valid for the client's lifetime; the
    // topic is a NUL-terminated string; low/high are valid out-pointers.
    let err = unsafe {
        rd::rd_kafka_get_watermark_offsets(
            client.native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}

/// (start, end) of each (topic, partition)'s log.
pub type LogBounds = HashMap<(String, i32), (i64, i64)>;

/// The (start, end) of each partition's log, as the brokers answer
/// ListOffsets: two requests per leader for all of `partitions`, where
/// `fetch_watermarks` takes two per partition. A partition the brokers
/// left out is missing from the map. Some brokers answer with a stale end
/// (see [`fetched_log_end`]): good for progress figures, not for deciding
/// that a log was read to its end.
pub fn query_log_bounds<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &[(String, i32)],
    timeout: Duration,
) -> Result<LogBounds, KafkaError> {
    let starts = list_offsets(consumer, partitions, Offset::Beginning, timeout)?;
    let ends = list_offsets(consumer, partitions, Offset::End, timeout)?;
    Ok(starts
        .into_iter()
        .filter_map(|(k, start)| {
            let end = *ends.get(&k)?;
            Some((k, (start, end)))
        })
        .collect())
}

/// One ListOffsets round for `bound` (`Beginning` or `End`) of every partition.
fn list_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &[(String, i32)],
    bound: Offset,
    timeout: Duration,
) -> Result<HashMap<(String, i32), i64>, KafkaError> {
    if partitions.is_empty() {
        return Ok(HashMap::new());
    }
    let mut tpl = TopicPartitionList::new();
    for (topic, partition) in partitions {
        tpl.add_partition_offset(topic, *partition, bound)?;
    }
    // A ListOffsets "timestamp" of -2 / -1 asks for the log's start / end.
    let found = consumer.offsets_for_times(tpl, timeout)?;
    Ok(found
        .elements()
        .iter()
        .filter_map(|e| {
            let offset = e.offset().to_raw().filter(|o| *o >= 0)?;
            Some(((e.topic().to_string(), e.partition()), offset))
        })
        .collect())
}
