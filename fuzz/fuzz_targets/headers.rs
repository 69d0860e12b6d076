//! Record headers: JSON objects (file mode) and name/value pairs (Kafka).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| neonblue_fuzz::headers(data));
