//! Paths of the BPF objects compiled from `bpf/*.bpf.c` and `bpf/test/*.bpf.c`.

use std::path::PathBuf;

/// Directory holding every compiled object, named after its source (`probe.bpf.c` → `probe.o`).
pub const OBJECT_DIR: &str = env!("XDPD_BPF_OBJECTS");

/// Path of the compiled object `name` (without `.o`).
pub fn object_path(name: &str) -> PathBuf {
    PathBuf::from(OBJECT_DIR).join(format!("{name}.o"))
}

/// Bytes of the compiled object `name`; panics if it was not built (a build error, not input).
pub fn object_bytes(name: &str) -> Vec<u8> {
    let path = object_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
