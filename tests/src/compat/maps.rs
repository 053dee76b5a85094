//! Map contents, to compare what two copies of a program did to their maps.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Every `(key, value)` of a map, sorted; `None` for map types whose
/// contents are not data (program arrays, device maps, sockets, rings).
pub type Contents = Option<Vec<(Vec<u8>, Vec<u8>)>>;

fn info(fd: BorrowedFd<'_>) -> libbpf_sys::bpf_map_info {
    let mut info = libbpf_sys::bpf_map_info::default();
    let mut len = std::mem::size_of::<libbpf_sys::bpf_map_info>() as u32;
    // SAFETY: a properly sized buffer.
    let ret = unsafe { libbpf_sys::bpf_map_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    assert_eq!(ret, 0, "map info: {}", std::io::Error::last_os_error());
    info
}

/// At most this many entries of a map are compared (Katran's arrays hold
/// millions; what a program writes on the suite's packets is far fewer).
pub const MAX_ENTRIES: usize = 1 << 16;

/// The contents of the map `fd`.
pub fn contents(fd: BorrowedFd<'_>) -> Contents {
    let info = info(fd);
    let per_cpu = matches!(
        info.type_,
        libbpf_sys::BPF_MAP_TYPE_PERCPU_HASH
            | libbpf_sys::BPF_MAP_TYPE_PERCPU_ARRAY
            | libbpf_sys::BPF_MAP_TYPE_LRU_PERCPU_HASH
    );
    let data = matches!(
        info.type_,
        libbpf_sys::BPF_MAP_TYPE_HASH
            | libbpf_sys::BPF_MAP_TYPE_ARRAY
            | libbpf_sys::BPF_MAP_TYPE_LRU_HASH
            | libbpf_sys::BPF_MAP_TYPE_LPM_TRIE
    ) || per_cpu;
    if !data {
        return None;
    }
    // SAFETY: no arguments.
    let cpus = if per_cpu { (unsafe { libbpf_sys::libbpf_num_possible_cpus() }) as usize } else { 1 };
    let value_size = if per_cpu { (info.value_size as usize).div_ceil(8) * 8 * cpus } else { info.value_size as usize };
    let mut key = vec![0u8; info.key_size as usize];
    let mut next = key.clone();
    let mut out = Vec::new();
    let mut first = true;
    loop {
        let prev = if first { std::ptr::null() } else { key.as_ptr().cast() };
        // SAFETY: key buffers of the map's key size.
        let ret = unsafe { libbpf_sys::bpf_map_get_next_key(fd.as_raw_fd(), prev, next.as_mut_ptr().cast()) };
        if ret < 0 {
            break;
        }
        first = false;
        let mut value = vec![0u8; value_size];
        // SAFETY: a value buffer of the map's value size (per CPU for per-CPU maps).
        let ok =
            unsafe { libbpf_sys::bpf_map_lookup_elem(fd.as_raw_fd(), next.as_ptr().cast(), value.as_mut_ptr().cast()) }
                == 0;
        if ok {
            out.push((next.clone(), value));
        }
        key.clone_from(&next);
        if out.len() >= MAX_ENTRIES {
            break;
        }
    }
    out.sort();
    Some(out)
}

/// The contents of every map, by name.
pub fn all<'a>(maps: impl IntoIterator<Item = (String, BorrowedFd<'a>)>) -> BTreeMap<String, Contents> {
    maps.into_iter().map(|(name, fd)| (name, contents(fd))).collect()
}
