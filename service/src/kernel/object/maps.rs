//! What libbpf knows of an object's maps before they exist, and the pins
//! the service (never libbpf itself) decides to reuse.

use std::os::fd::AsRawFd;
use std::path::Path;

use super::{cstr, Object};
use crate::kernel::{bpf, path_cstring, KernelError};

/// A map as its object defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDefinition {
    /// Map name in the object.
    pub name: String,
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    /// Entries (bytes for ring buffers).
    pub max_entries: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes (per CPU for per-CPU maps).
    pub value_size: u32,
}

/// How many CPUs per-CPU maps hold a value for.
pub fn possible_cpus() -> u32 {
    // SAFETY: no arguments; a count or a negative errno.
    u32::try_from(unsafe { libbpf_sys::libbpf_num_possible_cpus() }).unwrap_or(1).max(1)
}

impl Object {
    /// Turns libbpf's own pinning off for every map (it would pin at, or
    /// reuse from, `/sys/fs/bpf/<name>` with the service's rights) and returns
    /// the names of the maps the object declared pinned by name.
    pub fn take_over_pinning(&self) -> Result<Vec<String>, KernelError> {
        let mut pinned = Vec::new();
        for map in self.maps() {
            // SAFETY: map pointers are valid while the object lives.
            if unsafe { libbpf_sys::bpf_map__pin_path(map) }.is_null() {
                continue;
            }
            // SAFETY: as above; a NULL path turns pinning off for this map.
            let ret = unsafe { libbpf_sys::bpf_map__set_pin_path(map, std::ptr::null()) };
            // SAFETY: as above.
            let name = cstr(unsafe { libbpf_sys::bpf_map__name(map) });
            if ret < 0 {
                return Err(KernelError::new(format!("turning off libbpf's pinning of map {name}"), -ret));
            }
            pinned.push(name);
        }
        Ok(pinned)
    }

    /// Makes libbpf use the map pinned at `pin` for the map `name`; libbpf
    /// checks that the pinned map matches the object's definition.
    pub fn reuse_pin(&self, name: &str, pin: &Path) -> Result<(), KernelError> {
        // SAFETY: map pointers are valid while the object lives.
        let Some(map) = self.maps().into_iter().find(|&m| cstr(unsafe { libbpf_sys::bpf_map__name(m) }) == name) else {
            return Err(KernelError::invalid(format!("reusing pinned map {name}"), "no such map in the object"));
        };
        let fd = bpf::obj_get(&path_cstring(pin)?)?;
        // SAFETY: libbpf dups the descriptor; ours closes when `fd` drops.
        let ret = unsafe { libbpf_sys::bpf_map__reuse_fd(map, fd.as_raw_fd()) };
        if ret < 0 {
            return Err(KernelError::new(format!("reusing pinned map {}", pin.display()), -ret));
        }
        Ok(())
    }

    /// What the object declares of every map, before any is created.
    pub fn map_definitions(&self) -> Vec<MapDefinition> {
        let define = |map: *mut libbpf_sys::bpf_map| {
            // SAFETY: map pointers are valid while the object lives.
            unsafe {
                MapDefinition {
                    name: cstr(libbpf_sys::bpf_map__name(map)),
                    map_type: libbpf_sys::bpf_map__type(map),
                    max_entries: libbpf_sys::bpf_map__max_entries(map),
                    key_size: libbpf_sys::bpf_map__key_size(map),
                    value_size: libbpf_sys::bpf_map__value_size(map),
                }
            }
        };
        self.maps().into_iter().map(define).collect()
    }

    /// Makes libbpf use the map pinned as `<dir>/<map name>` instead of
    /// creating one, for every map that has such a pin.
    pub fn reuse_pinned_maps(&self, dir: &Path) -> Result<(), KernelError> {
        for map in self.maps() {
            // SAFETY: map pointers are valid while the object lives.
            let name = cstr(unsafe { libbpf_sys::bpf_map__name(map) });
            let pin = dir.join(crate::kernel::bpffs::pin_name(&name));
            if !pin.exists() {
                continue;
            }
            let fd = bpf::obj_get(&path_cstring(&pin)?)?;
            // SAFETY: libbpf dups the descriptor; ours closes when `fd` drops.
            let ret = unsafe { libbpf_sys::bpf_map__reuse_fd(map, fd.as_raw_fd()) };
            if ret < 0 {
                return Err(KernelError::new(format!("reusing pinned map {}", pin.display()), -ret));
            }
        }
        Ok(())
    }
}
