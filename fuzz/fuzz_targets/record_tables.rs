//! One record of the `tables` layout (plain or schema-wrapped JsonConverter).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    neonblue_fuzz::record(neonblue::config::Layout::Tables, data)
});
