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

/// Received bytes as text: borrowed when they are valid UTF-8 (checked by
/// the standard library's fast validator, several times quicker on long
/// ASCII text than the lossy decoder's), else with invalid sequences replaced
/// by U+FFFD.
pub fn text_of(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
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

#[cfg(test)]
mod tests {
    use super::text_of;
    use std::borrow::Cow;

    #[test]
    fn text_is_borrowed_when_valid_and_replaced_when_not() {
        assert!(matches!(
            text_of("{\"é\":1}".as_bytes()),
            Cow::Borrowed("{\"é\":1}")
        ));
        let damaged = text_of(b"{\"a\":\"\xff\"}");
        assert!(matches!(damaged, Cow::Owned(_)));
        assert_eq!(damaged, "{\"a\":\"\u{fffd}\"}");
    }
}
