//! The raw input record as read from a file line or a Kafka message.

/// Record headers, decoded lazily (only the `eventrouter` layout and the DLQ read them).
#[derive(Clone, Copy, Debug)]
pub enum Headers<'a> {
    /// No headers.
    None,
    /// A JSON object `{name: value}` (file mode); non-string values are read as their JSON text.
    Json(&'a str),
    /// Name/value pairs (Kafka mode); values are UTF-8 (lossy) text.
    Pairs(&'a [(String, String)]),
}

/// One input record: key and value are JSON text exactly as received.
#[derive(Clone, Copy, Debug)]
pub struct RawRecord<'a> {
    /// Source topic.
    pub topic: &'a str,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Key as JSON text (`None` when absent or null).
    pub key: Option<&'a str>,
    /// Value as JSON text (`None` when absent or JSON `null`: a tombstone).
    pub value: Option<&'a str>,
    /// Headers.
    pub headers: Headers<'a>,
}
