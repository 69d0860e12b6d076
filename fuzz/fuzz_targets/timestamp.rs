//! Timestamps: ISO-8601 text and epoch numbers of any magnitude.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| neonblue_fuzz::timestamp(data));
