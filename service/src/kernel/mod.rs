#![warn(missing_docs)]
//! The only room with `unsafe`: thin, safe wrappers over the kernel's BPF
//! calls (through libbpf-sys) and the few libc calls the engine needs.
//!
//! Nothing here imports from the crate above it: every module returns its
//! own error type ([`KernelError`], [`hook::HookError`], ...) and the engine
//! converts. That keeps the audit of memory safety to this directory.

pub mod bpf;
pub mod bpffs;
pub mod btf;
pub mod caps;
pub mod counter_table;
pub mod files;
pub mod hook;
pub mod insn;
pub mod libbpf_log;
pub mod netlink;
pub mod netns;
pub mod object;
pub mod process;
pub mod prog;
pub mod prog_array;
pub mod regular_file;

use std::ffi::CString;
use std::io;
use std::path::Path;

/// A failed kernel call: what was attempted and the errno it returned.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {source}")]
pub struct KernelError {
    /// What was attempted, in words for a log or an error reply.
    pub op: String,
    /// The errno (or, for refused arguments, a plain I/O error without one).
    #[source]
    pub source: io::Error,
}

impl KernelError {
    /// An error of the operation `op` that failed with `errno`.
    pub fn new(op: impl Into<String>, errno: i32) -> Self {
        KernelError { op: op.into(), source: io::Error::from_raw_os_error(errno) }
    }

    /// An argument refused before any call (e.g. a string with a NUL byte):
    /// reported as `EINVAL`, the errno the kernel would have given.
    pub fn invalid(op: impl Into<String>, why: &str) -> Self {
        KernelError { op: format!("{}: {why}", op.into()), source: io::Error::from_raw_os_error(libc::EINVAL) }
    }

    /// A failure reported by libbpf-rs, whose errors keep only a kind: the
    /// errno is recovered where the kind names one, `EIO` otherwise.
    pub fn from_libbpf_rs(op: impl Into<String>, e: libbpf_rs::Error) -> Self {
        use libbpf_rs::ErrorKind as K;
        let errno = match e.kind() {
            K::NotFound => libc::ENOENT,
            K::PermissionDenied => libc::EPERM,
            K::AlreadyExists => libc::EEXIST,
            K::WouldBlock => libc::EAGAIN,
            K::InvalidInput | K::InvalidData => libc::EINVAL,
            K::TimedOut => libc::ETIMEDOUT,
            K::Interrupted => libc::EINTR,
            K::Unsupported => libc::EOPNOTSUPP,
            K::OutOfMemory => libc::ENOMEM,
            K::TooBig => libc::E2BIG,
            _ => libc::EIO,
        };
        KernelError::new(op, errno)
    }

    /// The errno of the failure (0 when there is none).
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

/// A C string for a name handed to libbpf; a NUL byte inside is an error,
/// never silently an empty name.
pub(crate) fn c_string(s: &str, what: &str) -> Result<CString, KernelError> {
    CString::new(s).map_err(|_| KernelError::invalid(what, "the name contains a NUL byte"))
}

/// A C string for a path handed to the kernel (pins in bpffs).
pub fn path_cstring(path: &Path) -> Result<CString, KernelError> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| KernelError::invalid(format!("using path {}", path.display()), "the path contains a NUL byte"))
}
