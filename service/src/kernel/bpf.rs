//! Object-level BPF syscalls: program, map and link information, lookups by
//! id, and BPF_PROG_TEST_RUN.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{check, KernelError};

/// What the kernel reports about a loaded program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgInfo {
    /// Kernel id of the program.
    pub id: u32,
    /// Its name (truncated to 15 bytes by the kernel).
    pub name: String,
    /// `BPF_PROG_TYPE_*`.
    pub prog_type: u32,
    /// The kernel's tag: a hash of the program's instructions.
    pub tag: [u8; 8],
    /// Instructions the verifier processed to accept it (its complexity).
    pub verified_insns: u32,
}

impl ProgInfo {
    /// The tag as lowercase hex, as bpftool shows it.
    pub fn tag_hex(&self) -> String {
        self.tag.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What the kernel reports about a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapInfo {
    /// Kernel id of the map.
    pub id: u32,
    /// Its name.
    pub name: String,
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    /// Bytes per key.
    pub key_size: u32,
    /// Bytes per value.
    pub value_size: u32,
    /// Entries (bytes for ring buffers).
    pub max_entries: u32,
    /// `BPF_F_*` flags it was created with.
    pub map_flags: u32,
}

/// What the kernel reports about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Kernel id of the link.
    pub id: u32,
    /// The program it runs (0 once detached).
    pub prog_id: u32,
    /// For XDP links: the interface it is attached to (0 once detached; 0 for other links).
    pub xdp_ifindex: u32,
}

/// Ids of the maps the program `fd` uses.
pub fn prog_map_ids(fd: BorrowedFd<'_>) -> Result<Vec<u32>, KernelError> {
    let mut info = libbpf_sys::bpf_prog_info::default();
    let mut len = std::mem::size_of_val(&info) as u32;
    // SAFETY: info is a valid bpf_prog_info of `len` bytes; the first call only counts.
    check(unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) }, || {
        "reading program information".into()
    })?;
    let mut ids = vec![0u32; info.nr_map_ids as usize];
    let mut info = libbpf_sys::bpf_prog_info { nr_map_ids: ids.len() as u32, ..Default::default() };
    info.map_ids = ids.as_mut_ptr() as u64;
    let mut len = std::mem::size_of_val(&info) as u32;
    // SAFETY: the kernel writes at most nr_map_ids ids into `ids`, which outlives the call.
    check(unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) }, || {
        "reading the program's map ids".into()
    })?;
    ids.truncate(info.nr_map_ids as usize);
    Ok(ids)
}

fn c_name(raw: &[std::ffi::c_char]) -> String {
    let bytes: Vec<u8> = raw.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// What the kernel reports about the program `fd`.
pub fn prog_info(fd: BorrowedFd<'_>) -> Result<ProgInfo, KernelError> {
    let mut info = libbpf_sys::bpf_prog_info::default();
    let mut len = std::mem::size_of_val(&info) as u32;
    // SAFETY: info is a valid bpf_prog_info of `len` bytes.
    check(unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) }, || {
        "reading program information".into()
    })?;
    Ok(ProgInfo {
        id: info.id,
        name: c_name(&info.name),
        prog_type: info.type_,
        tag: info.tag,
        verified_insns: info.verified_insns,
    })
}

/// What the kernel reports about the map `fd`.
pub fn map_info(fd: BorrowedFd<'_>) -> Result<MapInfo, KernelError> {
    let mut info = libbpf_sys::bpf_map_info::default();
    let mut len = std::mem::size_of_val(&info) as u32;
    // SAFETY: info is a valid bpf_map_info of `len` bytes.
    check(unsafe { libbpf_sys::bpf_map_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) }, || {
        "reading map information".into()
    })?;
    Ok(MapInfo {
        id: info.id,
        name: c_name(&info.name),
        map_type: info.type_,
        key_size: info.key_size,
        value_size: info.value_size,
        max_entries: info.max_entries,
        map_flags: info.map_flags,
    })
}

/// What the kernel reports about the link `fd` (through libbpf-rs).
pub fn link_info(fd: BorrowedFd<'_>) -> Result<LinkInfo, KernelError> {
    let info = libbpf_rs::query::LinkInfo::from_fd(fd)
        .map_err(|e| KernelError::from_libbpf_rs("reading link information", e))?;
    let xdp_ifindex = match &info.info {
        libbpf_rs::query::LinkTypeInfo::Xdp(xdp) => xdp.ifindex,
        _ => 0,
    };
    Ok(LinkInfo { id: info.id, prog_id: info.prog_id, xdp_ifindex })
}

fn owned(ret: i32, op: impl FnOnce() -> String) -> Result<OwnedFd, KernelError> {
    let fd = check(ret, op)?;
    // SAFETY: the kernel just returned this descriptor to us and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A descriptor of the program `id` (to compare-and-exchange against it).
pub fn prog_fd_by_id(id: u32) -> Result<OwnedFd, KernelError> {
    // SAFETY: plain syscall wrapper.
    owned(unsafe { libbpf_sys::bpf_prog_get_fd_by_id(id) }, || format!("opening program {id}"))
}

/// A descriptor of the map with kernel id `id`.
pub fn map_fd_by_id(id: u32) -> Result<OwnedFd, KernelError> {
    // SAFETY: plain syscall wrapper.
    owned(unsafe { libbpf_sys::bpf_map_get_fd_by_id(id) }, || format!("opening map {id}"))
}

/// A descriptor of the link `id` (to find who holds an interface).
pub fn link_fd_by_id(id: u32) -> Result<OwnedFd, KernelError> {
    // SAFETY: plain syscall wrapper.
    owned(unsafe { libbpf_sys::bpf_link_get_fd_by_id(id) }, || format!("opening link {id}"))
}

/// Opens a pinned BPF object.
pub fn obj_get(path: &CStr) -> Result<OwnedFd, KernelError> {
    // SAFETY: path is NUL-terminated.
    owned(unsafe { libbpf_sys::bpf_obj_get(path.as_ptr()) }, || format!("opening pin {}", path.to_string_lossy()))
}

/// Pins `fd` at `path` in bpffs, so it outlives this process.
pub fn obj_pin(fd: BorrowedFd<'_>, path: &CStr) -> Result<(), KernelError> {
    // SAFETY: path is NUL-terminated, fd is open.
    check(unsafe { libbpf_sys::bpf_obj_pin(fd.as_raw_fd(), path.as_ptr()) }, || {
        format!("pinning {}", path.to_string_lossy())
    })
    .map(drop)
}

/// The result of one BPF_PROG_TEST_RUN.
#[derive(Debug, Clone)]
pub struct TestRun {
    /// What the program returned.
    pub retval: u32,
    /// The packet as the program left it (starting at its metadata, if any).
    pub data: Vec<u8>,
    /// Average run time per repetition, in nanoseconds.
    pub duration_ns: u32,
}

/// Runs an XDP program on `packet` `repeat` times with BPF_PROG_TEST_RUN.
pub fn test_run(prog: BorrowedFd<'_>, packet: &[u8], repeat: u32) -> Result<TestRun, KernelError> {
    let mut out = vec![0u8; packet.len() + 4096];
    let mut opts = libbpf_sys::bpf_test_run_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as _,
        data_in: packet.as_ptr().cast(),
        data_out: out.as_mut_ptr().cast(),
        data_size_in: packet.len() as u32,
        data_size_out: out.len() as u32,
        repeat: repeat as i32,
        ..Default::default()
    };
    // SAFETY: data_in/data_out point to buffers of the declared sizes.
    check(unsafe { libbpf_sys::bpf_prog_test_run_opts(prog.as_raw_fd(), &mut opts) }, || "BPF_PROG_TEST_RUN".into())?;
    out.truncate(opts.data_size_out as usize);
    Ok(TestRun { retval: opts.retval, data: out, duration_ns: opts.duration })
}

/// Every (key, value) of a map whose values are plain bytes (not per-CPU).
pub fn map_entries(fd: BorrowedFd<'_>, key_size: usize, value_size: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut key: Option<Vec<u8>> = None;
    loop {
        let mut next = vec![0u8; key_size];
        let prev = key.as_ref().map_or(std::ptr::null(), |k| k.as_ptr().cast());
        // SAFETY: buffers of the map's key size; a NULL previous key asks for the first.
        if unsafe { libbpf_sys::bpf_map_get_next_key(fd.as_raw_fd(), prev, next.as_mut_ptr().cast()) } != 0 {
            return out;
        }
        let mut value = vec![0u8; value_size];
        // SAFETY: buffers of the map's key and value sizes.
        if unsafe { libbpf_sys::bpf_map_lookup_elem(fd.as_raw_fd(), next.as_ptr().cast(), value.as_mut_ptr().cast()) }
            == 0
        {
            out.push((next.clone(), value));
        }
        key = Some(next);
    }
}

/// One map entry: key and value bytes.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Every (key, value) of a map, or the error that stopped the walk; `value_size`
/// is what one lookup returns (for per-CPU maps, every CPU's value).
pub fn map_dump(fd: BorrowedFd<'_>, key_size: usize, value_size: usize) -> Result<Vec<Entry>, KernelError> {
    let mut out = Vec::new();
    let mut key: Option<Vec<u8>> = None;
    loop {
        let mut next = vec![0u8; key_size];
        let prev = key.as_ref().map_or(std::ptr::null(), |k| k.as_ptr().cast());
        // SAFETY: buffers of the map's key size; a NULL previous key asks for the first.
        let ret = unsafe { libbpf_sys::bpf_map_get_next_key(fd.as_raw_fd(), prev, next.as_mut_ptr().cast()) };
        if ret == -libc::ENOENT {
            return Ok(out);
        }
        check(ret, || "walking a map's keys".into())?;
        let mut value = vec![0u8; value_size];
        // SAFETY: buffers of the map's key and (per-CPU) value sizes.
        let ret =
            unsafe { libbpf_sys::bpf_map_lookup_elem(fd.as_raw_fd(), next.as_ptr().cast(), value.as_mut_ptr().cast()) };
        // An entry deleted between the two calls is simply not there.
        if ret != -libc::ENOENT {
            check(ret, || "reading a map entry".into())?;
            out.push((next.clone(), value));
        }
        key = Some(next);
    }
}

/// The number of possible CPUs (the number of values of a per-CPU map entry).
pub fn possible_cpus() -> Result<usize, KernelError> {
    // SAFETY: reads /sys/devices/system/cpu/possible; no arguments.
    check(unsafe { libbpf_sys::libbpf_num_possible_cpus() }, || "counting the possible CPUs".into()).map(|n| n as usize)
}

/// Writes one entry of a map.
pub fn map_update(fd: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> Result<(), KernelError> {
    // SAFETY: the caller passes buffers of the map's key and value sizes.
    check(
        unsafe { libbpf_sys::bpf_map_update_elem(fd.as_raw_fd(), key.as_ptr().cast(), value.as_ptr().cast(), 0) },
        || "writing a map entry".into(),
    )
    .map(drop)
}
