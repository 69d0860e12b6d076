//! One record of the `eventrouter` layout (plain or schema-wrapped, headers included).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    neonblue_fuzz::record(neonblue::config::Layout::Eventrouter, data)
});
