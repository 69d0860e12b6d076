//! The configuration: a TOML file, NEONBLUE_* variables and flags, durations.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| neonblue_fuzz::config(data));
