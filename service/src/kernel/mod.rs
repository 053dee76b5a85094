//! Thin, safe wrappers over the kernel's BPF and netlink calls (through libbpf-sys).

pub mod bpf;
pub mod caps;
pub mod files;
pub mod hook;
pub mod libbpf_log;
pub mod netlink;

use std::io;

/// A failed kernel call: what was attempted and the errno it returned.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {source}")]
pub struct KernelError {
    pub op: String,
    #[source]
    pub source: io::Error,
}

impl KernelError {
    pub fn new(op: impl Into<String>, errno: i32) -> Self {
        KernelError { op: op.into(), source: io::Error::from_raw_os_error(errno) }
    }

    pub fn errno(&self) -> i32 {
        self.source.raw_os_error().unwrap_or(0)
    }
}

/// libbpf (in 1.0 mode) returns `-errno` on failure; turns that into a `KernelError`.
pub(crate) fn check(ret: i32, op: impl FnOnce() -> String) -> Result<i32, KernelError> {
    if ret < 0 {
        Err(KernelError::new(op(), -ret))
    } else {
        Ok(ret)
    }
}

/// For libbpf calls that return a pointer and set errno on failure.
pub(crate) fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL)
}
