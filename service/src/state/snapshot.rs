//! Saved map contents ("snapshots"): which maps are kept, and their entries
//! as hex strings in JSON, read from and written back to the kernel's maps.

use std::os::fd::BorrowedFd;

use crate::kernel::bpf::{self, MapInfo};

/// A program's map contents: map name → (key, value) pairs, hex-encoded.
pub type MapSnapshot = std::collections::BTreeMap<String, Vec<(String, String)>>;

/// Map types whose entries can be walked, read and written back: hashes,
/// arrays, LRU hashes, LPM tries, and their per-CPU forms.
const SAVED: [u32; 7] = [
    libbpf_sys::BPF_MAP_TYPE_HASH,
    libbpf_sys::BPF_MAP_TYPE_ARRAY,
    libbpf_sys::BPF_MAP_TYPE_LRU_HASH,
    libbpf_sys::BPF_MAP_TYPE_LPM_TRIE,
    libbpf_sys::BPF_MAP_TYPE_PERCPU_HASH,
    libbpf_sys::BPF_MAP_TYPE_PERCPU_ARRAY,
    libbpf_sys::BPF_MAP_TYPE_LRU_PERCPU_HASH,
];

const PER_CPU: [u32; 3] = [
    libbpf_sys::BPF_MAP_TYPE_PERCPU_HASH,
    libbpf_sys::BPF_MAP_TYPE_PERCPU_ARRAY,
    libbpf_sys::BPF_MAP_TYPE_LRU_PERCPU_HASH,
];

/// `.rodata` is frozen: the object sets it, a snapshot has nothing to keep.
fn constant(name: &str) -> bool {
    name.ends_with(".rodata")
}

/// The maps among `maps` (name, type) whose contents a snapshot cannot keep
/// (program arrays, device maps, ring buffers, ...): a program that asks for
/// a snapshot with one of them is refused when it is added.
pub fn unsaveable<'a>(maps: impl IntoIterator<Item = (&'a str, u32)>) -> Vec<String> {
    maps.into_iter().filter(|(name, t)| !constant(name) && !SAVED.contains(t)).map(|(n, _)| n.to_string()).collect()
}

/// The map's layout, if a snapshot keeps its contents; `value_size` is what one
/// lookup reads (for per-CPU maps, every possible CPU's value, each 8-byte aligned).
fn kept(name: &str, fd: BorrowedFd<'_>) -> Result<Option<MapInfo>, String> {
    let mut info = bpf::map_info(fd).map_err(|e| format!("map {name}: {e}"))?;
    if constant(name) || !SAVED.contains(&info.map_type) {
        return Ok(None);
    }
    if PER_CPU.contains(&info.map_type) {
        let cpus = bpf::possible_cpus().map_err(|e| e.to_string())?;
        info.value_size = info.value_size.next_multiple_of(8) * cpus as u32;
    }
    Ok(Some(info))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Reads the contents of the kept maps among `maps` (name, descriptor); an
/// error names the map that could not be read.
pub fn take<'a>(maps: impl IntoIterator<Item = (&'a str, BorrowedFd<'a>)>) -> Result<MapSnapshot, String> {
    let mut out = MapSnapshot::new();
    for (name, fd) in maps {
        let Some(info) = kept(name, fd)? else { continue };
        let entries = bpf::map_dump(fd, info.key_size as usize, info.value_size as usize)
            .map_err(|e| format!("map {name}: {e}"))?;
        out.insert(name.to_string(), entries.iter().map(|(k, v)| (hex(k), hex(v))).collect());
    }
    Ok(out)
}

/// Writes `snapshot` back into the kept maps among `maps`; entries that do
/// not fit a map (its layout changed) are skipped with a warning.
pub fn restore<'a>(maps: impl IntoIterator<Item = (&'a str, BorrowedFd<'a>)>, snapshot: &MapSnapshot) {
    for (name, fd) in maps {
        let info = match kept(name, fd) {
            Ok(Some(info)) => info,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("cannot restore a snapshot: {e}");
                continue;
            }
        };
        let Some(entries) = snapshot.get(name) else { continue };
        for (k, v) in entries {
            let (Some(k), Some(v)) = (unhex(k), unhex(v)) else { continue };
            if k.len() != info.key_size as usize || v.len() != info.value_size as usize {
                tracing::warn!(map = %name, "a snapshot entry does not fit the map: skipped");
                continue;
            }
            if let Err(e) = bpf::map_update(fd, &k, &v) {
                tracing::warn!(map = %name, "cannot restore a snapshot entry: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_a_snapshot_cannot_keep() {
        let maps = [
            ("blocklist", libbpf_sys::BPF_MAP_TYPE_LPM_TRIE),
            ("counts", libbpf_sys::BPF_MAP_TYPE_PERCPU_ARRAY),
            ("x.rodata", libbpf_sys::BPF_MAP_TYPE_ARRAY),
            ("jumps", libbpf_sys::BPF_MAP_TYPE_PROG_ARRAY),
            ("events", libbpf_sys::BPF_MAP_TYPE_RINGBUF),
        ];
        assert_eq!(unsaveable(maps), ["jumps", "events"]);
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(unhex("00ab10"), Some(vec![0, 0xab, 0x10]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
