//! One JSONL line of file mode, in every layout: the one-pass parser agrees
//! with decoding then parsing.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| neonblue_fuzz::file_line(data));
