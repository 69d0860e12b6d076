//! Where a consumer stands in a partition, from what it has already fetched
//! (no broker round trip).

use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};
use std::ffi::CString;

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
