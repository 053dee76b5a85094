//! libFuzzer target: the a{sv} options of AddProgram. See xdpd_fuzz::options.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdpd_fuzz::options(data));
