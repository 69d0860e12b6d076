//! The records of `<app_id>-repartition` (SPEC 3, 5.1): re-keyed domain
//! records carrying their input partition's stream time, and watermarks.

use crate::domain::{Micros, Routed};
use neonblue_topology::SourceTime;
use serde::{Deserialize, Serialize};

/// Version of the record format; the first byte of every record.
const FORMAT: u8 = 2;

/// One record of the repartition topic.
// Records far outnumber watermarks: boxing the record would cost an
// allocation per record for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Repartitioned {
    /// A re-keyed record, with its input partition's stream time as the
    /// record found it (`before`, after a snapshot's release) and as it left
    /// it (`after`).
    Record {
        /// The record.
        routed: Routed,
        /// Stream time of the input partition just before the record.
        before: Option<Micros>,
        /// Stream time of the input partition just after the record.
        after: Option<Micros>,
    },
    /// An input partition's stream time, sent to every repartition partition.
    Watermark {
        /// Input topic.
        topic: String,
        /// Input partition.
        partition: i32,
        /// Its position, stream time and idleness.
        time: SourceTime,
    },
}

/// A repartition record this version cannot read.
#[derive(Debug, thiserror::Error)]
#[error("{0}; the repartition topic holds records of another neonblue version: finish (drain) the application with the version that wrote them, or replay into a fresh --app-id")]
pub struct FormatError(String);

impl Repartitioned {
    /// The record's bytes: the format byte, then bincode.
    pub fn encode(&self) -> Vec<u8> {
        neonblue_state::encode_after(&[FORMAT], self)
    }

    /// Reads a record written by [`Repartitioned::encode`].
    pub fn decode(bytes: Option<&[u8]>) -> Result<Self, FormatError> {
        match bytes {
            Some([FORMAT, rest @ ..]) => neonblue_state::decode(rest)
                .map_err(|e| FormatError(format!("undecodable record: {e}"))),
            Some([v, ..]) => Err(FormatError(format!("record format {v}, expected {FORMAT}"))),
            _ => Err(FormatError("empty record".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_foreign_formats() {
        let w = Repartitioned::Watermark {
            topic: "t".into(),
            partition: 3,
            time: SourceTime {
                position: 7,
                time: Some(42),
                idle: true,
            },
        };
        assert_eq!(Repartitioned::decode(Some(&w.encode())).unwrap(), w);
        let e = Repartitioned::decode(Some(&[1, 2, 3]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("format 1") && e.contains("fresh --app-id"),
            "{e}"
        );
        assert!(Repartitioned::decode(None).is_err());
        assert!(Repartitioned::decode(Some(&[FORMAT, 0xff])).is_err());
    }
}
