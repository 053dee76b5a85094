//! libFuzzer target: object intake (ELF checks, libbpf's parser, BTF and
//! run-config metadata, and as root the verifier). See xdpd_fuzz::object_intake.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdpd_fuzz::object_intake(data));
