//! Carrying a replaced program's maps over to its replacement: the new
//! program's references to a map of the same name point at the running
//! program's map (the same kernel map, not a copy), so an upgrade keeps its
//! state and the swap is gapless for state as it is for code. The linker
//! patches map references with the member's descriptors, so carrying a map
//! over is handing the new member the old map's descriptor in place of its
//! own, once both are known to be interchangeable.

use std::os::fd::AsFd;

use super::object::{LoadedProgram, ProgramMap};
use super::Error;
use crate::kernel::bpf::{self, MapInfo};
use crate::kernel::object::map_type_name;
use crate::kernel::KernelError;

/// Whether map `name` is a program's read-only data (`.rodata`, `.kconfig`):
/// the constants of its version, never carried over.
fn read_only_data(name: &str) -> bool {
    name.contains(".rodata") || name.contains(".kconfig")
}

/// The first property in which the two maps differ, as the message says it.
fn difference(old: &MapInfo, new: &MapInfo) -> Option<String> {
    if old.map_type != new.map_type {
        let (was, is) = (map_type_name(old.map_type), map_type_name(new.map_type));
        return Some(format!("its type is {was} in the running program and {is} in the new one"));
    }
    let fields = [
        ("key size", old.key_size, new.key_size),
        ("value size", old.value_size, new.value_size),
        ("max_entries", old.max_entries, new.max_entries),
        ("flags", old.map_flags, new.map_flags),
    ];
    fields
        .iter()
        .find(|(_, o, n)| o != n)
        .map(|(what, o, n)| format!("its {what} is {o} in the running program and {n} in the new one"))
}

fn dup_failed(e: &std::io::Error) -> Error {
    Error::Kernel(KernelError::new("duplicating a map descriptor", e.raw_os_error().unwrap_or(libc::EIO)))
}

/// Hands `new` the maps of `old` whose name, type, key and value sizes,
/// max_entries and flags match (maps shared by name already are the owner's
/// one map; read-only data stays the new version's). Returns the names
/// carried over, sorted. A map of the same name that differs is an error
/// naming it, and `new` is left as it was.
pub(super) fn carry_maps(old: &LoadedProgram, new: &mut LoadedProgram) -> Result<Vec<String>, Error> {
    let mut swaps: Vec<(usize, &ProgramMap)> = Vec::new();
    for (index, map) in new.maps.iter().enumerate() {
        if map.shared || read_only_data(&map.name) {
            continue;
        }
        let Some(running) = old.maps.iter().find(|m| m.name == map.name && !m.shared) else { continue };
        let (was, is) = (bpf::map_info(running.fd.as_fd())?, bpf::map_info(map.fd.as_fd())?);
        if let Some(why) = difference(&was, &is) {
            return Err(Error::Conflict(format!(
                "map '{}' cannot be carried over to the new program: {why}; \
                 replace with the option fresh-maps to start the new program with its own empty maps",
                map.name
            )));
        }
        swaps.push((index, running));
    }
    let mut handed = Vec::with_capacity(swaps.len());
    for (index, running) in &swaps {
        handed.push((*index, running.fd.try_clone().map_err(|e| dup_failed(&e))?, running.id));
    }
    let mut names = Vec::with_capacity(handed.len());
    for (index, fd, id) in handed {
        if let Some(map) = new.maps.get_mut(index) {
            map.fd = fd;
            map.id = id;
            names.push(map.name.clone());
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(map_type: u32, key_size: u32, value_size: u32, max_entries: u32, map_flags: u32) -> MapInfo {
        MapInfo { id: 1, name: "m".into(), map_type, key_size, value_size, max_entries, map_flags }
    }

    #[test]
    fn the_first_difference_is_named() {
        assert_eq!(difference(&info(1, 4, 8, 16, 0), &info(1, 4, 8, 16, 0)), None);
        let why = difference(&info(1, 4, 8, 16, 0), &info(1, 4, 8, 32, 0)).unwrap_or_default();
        assert_eq!(why, "its max_entries is 16 in the running program and 32 in the new one");
        let why = difference(&info(1, 4, 8, 16, 0), &info(2, 4, 8, 16, 0)).unwrap_or_default();
        assert_eq!(why, "its type is hash in the running program and array in the new one");
        assert!(difference(&info(1, 4, 8, 16, 0), &info(1, 4, 8, 16, 1)).is_some_and(|w| w.contains("flags")));
    }

    #[test]
    fn read_only_data_stays_the_new_versions() {
        assert!(read_only_data("ip_blocklist.rodata"));
        assert!(read_only_data("obj.rodata.str1.1"));
        assert!(read_only_data("obj.kconfig"));
        assert!(!read_only_data("obj.bss") && !read_only_data("obj.data"));
        assert!(!read_only_data("blocklist"));
    }
}
