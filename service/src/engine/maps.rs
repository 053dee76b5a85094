//! The maps of an object at intake: what they may cost (estimated from their
//! definitions and checked against the caller's budget before any exists),
//! who shares them (maps pinned by name: only the owner's own programs, through
//! the owner's directory; libbpf's pinning under `/sys/fs/bpf` is off), and
//! where they are pinned so a restart finds them.

use std::os::fd::AsFd;

use super::object::{LoadOptions, LoadedProgram, ProgramMap};
use super::Error;
use crate::kernel::object::{self as libbpf_object, Object};
use crate::kernel::{bpf, path_cstring, KernelError};

/// A limit on the kernel memory the maps of one object may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MapBudget {
    /// What the caller may still use.
    pub remaining: u64,
    /// The configured limit, for the message.
    pub limit: u64,
}

/// `(map name, estimated bytes)` of every map of an object.
type MapSizes = Vec<(String, u64)>;

/// Before anything is created: checks the maps against the budget, takes
/// pinning away from libbpf, and reuses what `opts` names. Returns every
/// map's estimated size and the names of the maps shared by name.
pub(super) fn prepare_maps(object: &Object, opts: &LoadOptions<'_>) -> Result<(MapSizes, Vec<String>), Error> {
    let sizes: Vec<(String, u64)> =
        object.map_definitions().iter().map(|d| (d.name.clone(), estimated_bytes(d))).collect();
    if let Some(budget) = opts.budget {
        check_budget(&sizes, budget)?;
    }
    let shared = object.take_over_pinning()?;
    for name in &shared {
        if !is_pin_name(name) {
            return Err(Error::InvalidObject(format!(
                "map '{name}' is pinned by name, but a pinned map's name may hold only letters, digits and '_'"
            )));
        }
        if let Some(pin) = opts.shared_dir.map(|d| d.join(name)).filter(|p| p.exists()) {
            object.reuse_pin(name, &pin).map_err(|e| {
                Error::InvalidObject(format!(
                    "map '{name}' is pinned by name, and the map of that name your other programs share does not match its definition ({e})"
                ))
            })?;
        }
    }
    if let Some(dir) = opts.maps_dir {
        object.reuse_pinned_maps(dir)?;
    }
    Ok((sizes, shared))
}

/// Kernel memory a map may take, from its definition: entries x (key +
/// value, per CPU for per-CPU maps); ring buffers hold max_entries bytes.
pub fn estimated_bytes(d: &libbpf_object::MapDefinition) -> u64 {
    let per_cpu = matches!(
        d.map_type,
        libbpf_sys::BPF_MAP_TYPE_PERCPU_HASH
            | libbpf_sys::BPF_MAP_TYPE_PERCPU_ARRAY
            | libbpf_sys::BPF_MAP_TYPE_LRU_PERCPU_HASH
            | libbpf_sys::BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE
    );
    let value = u64::from(d.value_size) * if per_cpu { u64::from(libbpf_object::possible_cpus()) } else { 1 };
    let (entries, key) = (u64::from(d.max_entries), u64::from(d.key_size));
    if key == 0 && value == 0 {
        entries
    } else {
        entries.saturating_mul(key + value)
    }
}

/// Refuses an object whose maps would take more than the caller may still use.
fn check_budget(sizes: &[(String, u64)], budget: MapBudget) -> Result<(), Error> {
    let total: u64 = sizes.iter().map(|(_, b)| *b).fold(0, u64::saturating_add);
    if total <= budget.remaining {
        return Ok(());
    }
    let (largest, bytes) = sizes.iter().max_by_key(|(_, b)| *b).cloned().unwrap_or_default();
    Err(Error::LimitExceeded(format!(
        "the object's maps need about {total} bytes of kernel memory (map '{largest}' alone {bytes}); \
         you may use {} more of your limit of {} bytes of map memory",
        budget.remaining, budget.limit
    )))
}

/// A name bpffs takes as one path element and libbpf as one map name.
pub fn is_pin_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

impl LoadedProgram {
    /// Pins every map as `<dir>/<map name>`, so a later [`load_reusing`] finds them.
    pub fn pin_maps(&self, dir: &std::path::Path) -> Result<(), Error> {
        std::fs::create_dir_all(dir).map_err(|e| {
            KernelError::new(format!("creating {}", dir.display()), e.raw_os_error().unwrap_or(libc::EIO))
        })?;
        for map in &self.maps {
            let pin = dir.join(crate::kernel::bpffs::pin_name(&map.name));
            if pin.exists() {
                continue;
            }
            bpf::obj_pin(map.fd.as_fd(), &path_cstring(&pin)?)?;
        }
        Ok(())
    }
}

impl LoadedProgram {
    /// Pins the maps the object shares by name as `<dir>/<map name>` (the
    /// owner's directory), where the owner's next programs find them; a map
    /// already pinned there is the one this program reused.
    pub fn pin_shared_maps(&self, dir: &std::path::Path) -> Result<(), Error> {
        let shared: Vec<&ProgramMap> = self.maps.iter().filter(|m| m.shared).collect();
        if shared.is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(dir).map_err(|e| {
            KernelError::new(format!("creating {}", dir.display()), e.raw_os_error().unwrap_or(libc::EIO))
        })?;
        for map in shared {
            let pin = dir.join(&map.name);
            if !pin.exists() {
                bpf::obj_pin(map.fd.as_fd(), &path_cstring(&pin)?)?;
            }
        }
        Ok(())
    }
}
