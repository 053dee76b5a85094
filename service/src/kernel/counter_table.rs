//! A memory-mapped BPF array with one value holding a region per possible
//! CPU, each region `slots` records of twelve u64: the verdict counters of a
//! chain. Each CPU writes only its own region (plain loads and stores, no
//! atomics); a record's counts are the sum over the regions. Memory-mapped,
//! so one record is read and cleared in place without disturbing the others
//! (a map update would overwrite the whole value). What the words mean is
//! the engine's business.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use libbpf_rs::{MapHandle, MapType};

use super::{last_errno, KernelError};

/// Words per record.
pub const RECORD_WORDS: usize = 12;
/// Bytes per record.
pub const RECORD_BYTES: usize = 8 * RECORD_WORDS;
/// The kernel's cap on an array's value (KMALLOC_MAX_SIZE on x86-64).
const MAX_VALUE_BYTES: usize = 4 << 20;
/// The map's name, by which a pinned table is recognised.
const NAME: &str = "xdpd_counts";

/// The map and its shared mapping, unmapped on drop.
#[derive(Debug)]
pub struct CounterTable {
    map: MapHandle,
    memory: *mut u64,
    bytes: usize,
    slots: usize,
    cpus: usize,
}

// SAFETY: the mapping is shared memory read and written with volatile word accesses only.
unsafe impl Send for CounterTable {}
// SAFETY: as above; no method hands out references into the mapping.
unsafe impl Sync for CounterTable {}

/// Bytes of one CPU's region of `slots` records (whole cache lines, so two
/// CPUs never write the same line).
pub fn region_bytes(slots: usize) -> usize {
    (RECORD_BYTES * slots).div_ceil(64) * 64
}

impl CounterTable {
    /// Creates a single-element `BPF_F_MMAPABLE` array with a region of
    /// `slots` records per possible CPU (fewer slots when that does not fit
    /// the kernel's cap on a value) and maps it.
    pub fn create(slots: usize) -> Result<CounterTable, KernelError> {
        let cpus = super::bpf::possible_cpus()?;
        let fit = (MAX_VALUE_BYTES / cpus) / RECORD_BYTES;
        let slots = slots.min(fit.saturating_sub(1)).max(1);
        let opts = libbpf_sys::bpf_map_create_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_map_create_opts>() as _,
            map_flags: libbpf_sys::BPF_F_MMAPABLE,
            ..Default::default()
        };
        let value_size = u32::try_from(region_bytes(slots) * cpus)
            .map_err(|_| KernelError::invalid("creating the verdict counter table", "too many slots"))?;
        let map = MapHandle::create(MapType::Array, Some(NAME), 4, value_size, 1, &opts)
            .map_err(|e| KernelError::from_libbpf_rs("creating the verdict counter table", e))?;
        CounterTable::mapped(map, value_size as usize, slots, cpus)
    }

    /// The table pinned at `path` by an earlier run, with the counts it holds.
    pub fn open_pinned(path: &Path) -> Result<CounterTable, KernelError> {
        let map = MapHandle::from_pinned_path(path)
            .map_err(|e| KernelError::from_libbpf_rs(format!("opening {}", path.display()), e))?;
        let info = super::bpf::map_info(map.as_fd())?;
        let cpus = super::bpf::possible_cpus()?;
        let size = info.value_size as usize;
        let region = size / cpus;
        let slots = region / RECORD_BYTES;
        if info.name != NAME
            || info.map_type != libbpf_sys::BPF_MAP_TYPE_ARRAY
            || !size.is_multiple_of(cpus)
            || region_bytes(slots) != region
        {
            return Err(KernelError::invalid(format!("opening {}", path.display()), "not a verdict counter table"));
        }
        CounterTable::mapped(map, size, slots, cpus)
    }

    /// Pins the table at `path` (replacing a stale pin), so the counts outlive the process.
    pub fn pin(&self, path: &Path) -> Result<(), KernelError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| KernelError::new(format!("creating {}", dir.display()), e.raw_os_error().unwrap_or(0)))?;
        }
        let _ = std::fs::remove_file(path);
        super::bpf::obj_pin(self.map.as_fd(), &super::path_cstring(path)?)
    }

    fn mapped(map: MapHandle, value_size: usize, slots: usize, cpus: usize) -> Result<CounterTable, KernelError> {
        let page = 4096;
        let bytes = value_size.div_ceil(page) * page;
        // SAFETY: mapping the array's values, shared with the kernel, for our lifetime.
        let memory = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.as_fd().as_raw_fd(),
                0,
            )
        };
        if memory == libc::MAP_FAILED {
            return Err(KernelError::new("mapping the verdict counter table", last_errno()));
        }
        Ok(CounterTable { map, memory: memory.cast(), bytes, slots, cpus })
    }

    /// Number of records per CPU.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Number of CPU regions (the possible CPUs).
    pub fn cpus(&self) -> usize {
        self.cpus
    }

    /// Bytes from one CPU's region to the next.
    pub fn region_bytes(&self) -> usize {
        region_bytes(self.slots)
    }

    /// The map, for the instructions that increment its records.
    pub fn map_fd(&self) -> BorrowedFd<'_> {
        self.map.as_fd()
    }

    fn word(&self, cpu: usize, slot: usize, i: usize) -> Option<*mut u64> {
        let at = cpu * self.region_bytes() / 8 + slot * RECORD_WORDS + i;
        // SAFETY: cpu < cpus, slot < slots and i < RECORD_WORDS, checked: inside the mapping.
        (cpu < self.cpus && slot < self.slots && i < RECORD_WORDS).then(|| unsafe { self.memory.add(at) })
    }

    /// The record `slot`, summed over the CPUs (zeros for a slot out of range).
    pub fn read(&self, slot: usize) -> [u64; RECORD_WORDS] {
        let mut out = [0u64; RECORD_WORDS];
        for cpu in 0..self.cpus {
            for (i, v) in out.iter_mut().enumerate() {
                if let Some(word) = self.word(cpu, slot, i) {
                    // SAFETY: an aligned word inside the mapping.
                    *v = v.wrapping_add(unsafe { std::ptr::read_volatile(word) });
                }
            }
        }
        out
    }

    /// Zeroes the record `slot` on every CPU.
    pub fn clear(&self, slot: usize) {
        for cpu in 0..self.cpus {
            for i in 0..RECORD_WORDS {
                if let Some(word) = self.word(cpu, slot, i) {
                    // SAFETY: an aligned word inside the mapping.
                    unsafe { std::ptr::write_volatile(word, 0) };
                }
            }
        }
    }
}

impl Drop for CounterTable {
    fn drop(&mut self) {
        // SAFETY: unmapping what create() mapped.
        unsafe { libc::munmap(self.memory.cast(), self.bytes) };
    }
}
