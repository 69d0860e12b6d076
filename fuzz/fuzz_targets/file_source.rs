//! A whole input file read in chunks of lines and resumed at checkpoints.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| neonblue_fuzz::file_source(data));
