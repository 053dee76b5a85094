//! Saved map contents ("snapshots"): which maps are kept, and their entries
//! as hex strings in JSON, read from and written back to the kernel's maps.

use std::os::fd::BorrowedFd;

use crate::kernel::bpf::{self, MapInfo};

/// A program's map contents: map name → (key, value) pairs, hex-encoded.
pub type MapSnapshot = std::collections::BTreeMap<String, Vec<(String, String)>>;

/// Maps whose contents a snapshot keeps: hashes and arrays (not .rodata,
/// which is frozen, nor per-CPU maps or program arrays).
fn kept(name: &str, fd: BorrowedFd<'_>) -> Option<MapInfo> {
    const KEPT: [u32; 3] =
        [libbpf_sys::BPF_MAP_TYPE_HASH, libbpf_sys::BPF_MAP_TYPE_ARRAY, libbpf_sys::BPF_MAP_TYPE_LRU_HASH];
    let info = bpf::map_info(fd).ok()?;
    (KEPT.contains(&info.map_type) && !name.ends_with(".rodata")).then_some(info)
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

/// Reads the contents of the kept maps among `maps` (name, descriptor).
pub fn take<'a>(maps: impl IntoIterator<Item = (&'a str, BorrowedFd<'a>)>) -> MapSnapshot {
    maps.into_iter()
        .filter_map(|(name, fd)| {
            let info = kept(name, fd)?;
            let entries = bpf::map_entries(fd, info.key_size as usize, info.value_size as usize);
            Some((name.to_string(), entries.iter().map(|(k, v)| (hex(k), hex(v))).collect()))
        })
        .collect()
}

/// Writes `snapshot` back into the kept maps among `maps`; entries that do
/// not fit a map (its layout changed) are skipped with a warning.
pub fn restore<'a>(maps: impl IntoIterator<Item = (&'a str, BorrowedFd<'a>)>, snapshot: &MapSnapshot) {
    for (name, fd) in maps {
        let (Some(info), Some(entries)) = (kept(name, fd), snapshot.get(name)) else { continue };
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
    fn hex_round_trip() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(unhex("00ab10"), Some(vec![0, 0xab, 0x10]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
