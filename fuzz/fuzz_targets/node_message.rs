#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tidings_core::fuzz::node_message(data, std::time::Instant::now()));
