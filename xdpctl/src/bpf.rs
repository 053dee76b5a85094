//! The few bpf(2) commands `maps` needs, through the raw syscall: a map's
//! description (BPF_OBJ_GET_INFO_BY_FD), its entries (BPF_MAP_GET_NEXT_KEY,
//! BPF_MAP_LOOKUP_ELEM) and changes to them (BPF_MAP_UPDATE_ELEM,
//! BPF_MAP_DELETE_ELEM). All of them act on a descriptor the service handed
//! out, so no capability is needed.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// The map_*_elem part of `union bpf_attr`.
#[repr(C, align(8))]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value_or_next_key: u64,
    flags: u64,
}

/// The info part of `union bpf_attr`.
#[repr(C, align(8))]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The leading fields of `struct bpf_map_info` (the kernel fills what fits).
#[repr(C, align(8))]
#[derive(Default)]
struct RawMapInfo {
    map_type: u32,
    id: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    /// Not read, but part of the layout the kernel fills.
    _name: [u8; 16],
}

#[derive(Debug, Clone)]
pub struct MapInfo {
    pub map_type: u32,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

impl MapInfo {
    pub fn type_name(&self) -> String {
        type_name(self.map_type)
    }

    /// Array and per-CPU array maps: keys are indexes below max_entries.
    pub fn array(&self) -> bool {
        matches!(self.map_type, 2 | 6)
    }

    /// Longest-prefix-match tries: keys are a prefix length and an address.
    pub fn lpm_trie(&self) -> bool {
        self.map_type == 11
    }

    /// Per-CPU maps hold one value per possible CPU.
    pub fn per_cpu(&self) -> bool {
        // PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH, PERCPU_CGROUP_STORAGE
        matches!(self.map_type, 5 | 6 | 10 | 21)
    }
}

fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<()> {
    // SAFETY: attr is a properly laid out bpf_attr variant of size_of::<T>() bytes
    // whose pointers (if any) refer to live buffers of the sizes the kernel expects.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>() as libc::c_uint) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub fn map_info(fd: BorrowedFd<'_>) -> io::Result<MapInfo> {
    let mut info = RawMapInfo::default();
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<RawMapInfo>() as u32,
        info: &mut info as *mut RawMapInfo as u64,
    };
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(MapInfo {
        map_type: info.map_type,
        id: info.id,
        key_size: info.key_size,
        value_size: info.value_size,
        max_entries: info.max_entries,
    })
}

/// The key after `key` (the first key for `None`); `None` at the end.
pub fn next_key(fd: BorrowedFd<'_>, key: Option<&[u8]>, key_size: usize) -> io::Result<Option<Vec<u8>>> {
    let mut next = vec![0u8; key_size];
    let mut attr = ElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: key.map_or(0, |k| k.as_ptr() as u64),
        value_or_next_key: next.as_mut_ptr() as u64,
        ..Default::default()
    };
    match sys_bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
        Ok(()) => Ok(Some(next)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The value of `key` (`value_len` bytes); `None` if the key vanished meanwhile.
pub fn lookup(fd: BorrowedFd<'_>, key: &[u8], value_len: usize) -> io::Result<Option<Vec<u8>>> {
    let mut value = vec![0u8; value_len];
    let mut attr = ElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value_or_next_key: value.as_mut_ptr() as u64,
        ..Default::default()
    };
    match sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(()) => Ok(Some(value)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sets `key` to `value` (for per-CPU maps, one 8-byte aligned slot per possible CPU).
pub fn update(fd: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = ElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value_or_next_key: value.as_ptr() as u64,
        ..Default::default() // flags: BPF_ANY, create or replace
    };
    sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
}

/// Deletes `key`; `false` if there was no such key.
pub fn delete(fd: BorrowedFd<'_>, key: &[u8]) -> io::Result<bool> {
    let mut attr = ElemAttr { map_fd: fd.as_raw_fd() as u32, key: key.as_ptr() as u64, ..Default::default() };
    match sys_bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// How many CPUs the kernel may bring up (the count per-CPU lookups fill).
pub fn possible_cpus() -> io::Result<usize> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("cannot parse CPU list '{}'", text.trim()));
    let mut count = 0;
    for range in text.trim().split(',').filter(|r| !r.is_empty()) {
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        let (first, last): (usize, usize) = (first.parse().map_err(|_| bad())?, last.parse().map_err(|_| bad())?);
        count += last.checked_sub(first).ok_or_else(bad)? + 1;
    }
    if count == 0 {
        return Err(bad());
    }
    Ok(count)
}

fn type_name(map_type: u32) -> String {
    const NAMES: [&str; 34] = [
        "unspec",
        "hash",
        "array",
        "prog_array",
        "perf_event_array",
        "percpu_hash",
        "percpu_array",
        "stack_trace",
        "cgroup_array",
        "lru_hash",
        "lru_percpu_hash",
        "lpm_trie",
        "array_of_maps",
        "hash_of_maps",
        "devmap",
        "sockmap",
        "cpumap",
        "xskmap",
        "sockhash",
        "cgroup_storage",
        "reuseport_sockarray",
        "percpu_cgroup_storage",
        "queue",
        "stack",
        "sk_storage",
        "devmap_hash",
        "struct_ops",
        "ringbuf",
        "inode_storage",
        "task_storage",
        "bloom_filter",
        "user_ringbuf",
        "cgrp_storage",
        "arena",
    ];
    NAMES.get(map_type as usize).map_or_else(|| format!("type {map_type}"), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_count_parses() {
        assert!(super::possible_cpus().is_ok_and(|n| n >= 1));
        assert_eq!(super::type_name(2), "array");
        assert_eq!(super::type_name(999), "type 999");
    }
}
