//! Debezium envelope parsing (SPEC 2): every JsonConverter form and layout.

pub mod raw;

#[cfg(feature = "bench")]
pub mod bench;
pub mod build;
pub mod common;
pub mod dead_letter;
pub mod dispatch;
pub mod eventrouter;
pub mod fields;
pub mod file_line;
pub mod headers;
pub mod json;
pub mod line_parse;
pub mod outbox;
pub mod payload;
mod scan;
pub mod tables;
pub mod timestamp;

#[cfg(test)]
mod dispatch_tests;
#[cfg(test)]
mod layout_tests;
#[cfg(all(test, feature = "bench"))]
mod perf_tests;

pub use common::ParseContext;
pub use dead_letter::DeadLetterRecord;
pub use dispatch::{parse_record, parse_record_serde};
pub use file_line::{decode_line, invalid_line_dead_letter, LineDecode};
pub use line_parse::{parse_line, ParsedLine};
pub use raw::{text_of, Headers, RawRecord};
