#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tidings_core::fuzz::ws_frames(data, std::time::Instant::now()));
