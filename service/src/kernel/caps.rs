//! Running kernel work with fewer capabilities on the current thread.
//!
//! A program a non-root user hands over is verified without CAP_SYS_ADMIN
//! and CAP_PERFMON: the verifier then refuses pointer leaks (kernel addresses
//! stored into maps the user can read with GetMaps) and applies its Spectre
//! hardening, exactly as for an unprivileged loader with CAP_BPF and
//! CAP_NET_ADMIN. Capabilities are per thread in Linux, so lowering the
//! effective set here affects nothing else; it is raised again afterwards
//! (it stays in the permitted set).

use super::{last_errno, KernelError};

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn get() -> Option<[Data; 2]> {
    let mut header = Header { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [Data::default(); 2];
    // SAFETY: capget with a v3 header and two data structs, for this thread.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &mut header as *mut Header, data.as_mut_ptr()) };
    (ret == 0).then_some(data)
}

fn set(data: &[Data; 2]) -> bool {
    let mut header = Header { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    // SAFETY: capset with a v3 header and two data structs, for this thread only (raw syscall).
    unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) == 0 }
}

/// Runs `f` on this thread without CAP_SYS_ADMIN and CAP_PERFMON in effect.
/// Fails closed: when the capabilities cannot be lowered, `f` does not run
/// (a user's program must never be verified with the service's privileges).
pub fn without_admin<T>(f: impl FnOnce() -> T) -> Result<T, KernelError> {
    let lowering = "lowering the thread's capabilities for an unprivileged verification";
    let original = get().ok_or_else(|| KernelError::new(lowering, last_errno()))?;
    let mut lowered = original;
    for cap in [CAP_SYS_ADMIN, CAP_PERFMON] {
        lowered[(cap / 32) as usize].effective &= !(1 << (cap % 32));
    }
    if !set(&lowered) {
        return Err(KernelError::new(lowering, last_errno()));
    }
    let result = f();
    if !set(&original) {
        // Nothing to undo: this thread stays unprivileged, which fails safe.
        tracing::error!("cannot restore the thread's capabilities: {}", std::io::Error::last_os_error());
    }
    Ok(result)
}
