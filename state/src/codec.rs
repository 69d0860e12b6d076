//! Binary encoding of keys and values (bincode over serde).

use serde::{de::DeserializeOwned, Serialize};

/// A value that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("state codec: {0}")]
pub struct CodecError(#[from] bincode::Error);

/// Encodes a value.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serialising plain data into a Vec cannot fail.
    bincode::serialize(value).expect("bincode serialisation of plain data")
}

/// Encodes a large value in one pass into `out` (cleared first; a buffer
/// reused from value to value): [`encode`] walks the value twice, first to
/// size its buffer (a third of the time of encoding a page).
pub(crate) fn encode_into<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    out.clear();
    // Serialising plain data into a Vec cannot fail.
    bincode::serialize_into(&mut *out, value).expect("bincode serialisation of plain data");
}

/// Encodes a value after `prefix` (a format byte, say), in one allocation.
pub fn encode_after<T: Serialize + ?Sized>(prefix: &[u8], value: &T) -> Vec<u8> {
    // Serialising plain data into a Vec cannot fail.
    let size = bincode::serialized_size(value).expect("bincode size of plain data");
    let mut out = Vec::with_capacity(prefix.len() + size as usize);
    out.extend_from_slice(prefix);
    bincode::serialize_into(&mut out, value).expect("bincode serialisation of plain data");
    out
}

/// Decodes a value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    Ok(bincode::deserialize(bytes)?)
}
