//! `BPF_PROG_LOAD` of a finished XDP image (a linked chain): with its BTF,
//! func_info and line_info, as an unprivileged loader when asked, and once
//! more with a verifier log when the kernel refuses it, so the caller can
//! say why.

use std::ffi::{c_char, CStr};
use std::os::fd::{FromRawFd, OwnedFd};

use super::btf::{Btf, FuncInfo, LineInfo};
use super::caps;
use super::insn::Insn;

/// Size of the verifier log of a refused image.
const LOG_SIZE: usize = 4 << 20;

/// The merged debug info of an image: BTF and the records pointing into it.
pub struct DebugInfo {
    /// Types of every function of the image.
    pub btf: Btf,
    /// One record per function.
    pub func_info: Vec<FuncInfo>,
    /// Source lines (may be empty).
    pub line_info: Vec<LineInfo>,
}

/// One XDP program image to load.
pub struct Image<'a> {
    /// Name the kernel shows (`bpftool prog`).
    pub name: &'a CStr,
    /// `GPL` or another license string (decides which helpers are allowed).
    pub license: &'a CStr,
    /// The instructions, map references already patched with descriptors.
    pub insns: &'a [Insn],
    /// Load with `BPF_F_XDP_HAS_FRAGS`.
    pub frags: bool,
    /// Load for this device (hardware offload).
    pub offload_ifindex: Option<u32>,
    /// Load bound to this device (`BPF_F_XDP_DEV_BOUND_ONLY`: XDP hints).
    pub dev_bound_ifindex: Option<u32>,
    /// Verify as an unprivileged loader (no CAP_SYS_ADMIN/CAP_PERFMON).
    pub as_user: bool,
}

/// The kernel refused the image.
#[derive(Debug)]
pub struct Refused {
    /// errno of the first attempt.
    pub errno: i32,
    /// The verifier's log of the second attempt; `None` when the errno was
    /// not one the verifier gives (no second attempt was made).
    pub log: Option<String>,
}

fn load_once(image: &Image<'_>, debug: &mut Option<DebugInfo>, log: Option<&mut [c_char]>) -> Result<OwnedFd, i32> {
    let mut opts = libbpf_sys::bpf_prog_load_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_prog_load_opts>() as _,
        expected_attach_type: libbpf_sys::BPF_XDP,
        prog_flags: if image.frags { libbpf_sys::BPF_F_XDP_HAS_FRAGS } else { 0 }
            | if image.dev_bound_ifindex.is_some() { libbpf_sys::BPF_F_XDP_DEV_BOUND_ONLY } else { 0 },
        prog_ifindex: image.offload_ifindex.or(image.dev_bound_ifindex).unwrap_or(0),
        ..Default::default()
    };
    if let Some(d) = debug.as_mut() {
        opts.prog_btf_fd = d.btf.load().map_err(|e| e.errno())? as u32;
        opts.func_info = d.func_info.as_ptr().cast();
        opts.func_info_cnt = d.func_info.len() as u32;
        opts.func_info_rec_size = std::mem::size_of::<FuncInfo>() as u32;
        if !d.line_info.is_empty() {
            opts.line_info = d.line_info.as_ptr().cast();
            opts.line_info_cnt = d.line_info.len() as u32;
            opts.line_info_rec_size = std::mem::size_of::<LineInfo>() as u32;
        }
    }
    if let Some(log) = log {
        opts.log_buf = log.as_mut_ptr();
        opts.log_size = log.len() as u32;
        opts.log_level = 1;
    }
    // SAFETY: every pointer in opts and the image stays valid across the call.
    let mut load = || unsafe {
        libbpf_sys::bpf_prog_load(
            libbpf_sys::BPF_PROG_TYPE_XDP,
            image.name.as_ptr(),
            image.license.as_ptr(),
            image.insns.as_ptr().cast(),
            image.insns.len() as _,
            &mut opts,
        )
    };
    let fd = if image.as_user { caps::without_admin(load).unwrap_or_else(|e| -e.errno()) } else { load() };
    if fd >= 0 {
        // SAFETY: a non-negative return is a fresh descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    } else {
        Err(-fd)
    }
}

/// Loads `image`. When the kernel refuses it with an errno the verifier
/// gives (EINVAL, EACCES, E2BIG, EFAULT), loads it again with a log: a
/// second attempt that succeeds is taken, one that fails returns the log.
pub fn load(image: &Image<'_>, mut debug: Option<DebugInfo>) -> Result<OwnedFd, Refused> {
    match load_once(image, &mut debug, None) {
        Ok(fd) => Ok(fd),
        Err(errno) if matches!(errno, libc::EINVAL | libc::EACCES | libc::E2BIG | libc::EFAULT) => {
            let mut log = vec![0 as c_char; LOG_SIZE];
            let second = load_once(image, &mut debug, Some(&mut log));
            // SAFETY: the buffer is zero-initialised and the kernel NUL-terminates the log.
            let log = unsafe { CStr::from_ptr(log.as_ptr()) }.to_string_lossy().into_owned();
            second.map_err(|_| Refused { errno, log: Some(log) })
        }
        Err(errno) => Err(Refused { errno, log: None }),
    }
}
