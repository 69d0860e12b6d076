//! Payload rows and properties: the scanner against serde_json.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| neonblue_fuzz::payload(data));
