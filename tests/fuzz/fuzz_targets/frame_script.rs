#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tensorcity_fuzz::frame_script(data));
