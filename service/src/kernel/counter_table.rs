//! A memory-mapped BPF array with one value of `slots` records of six u64:
//! the verdict counters of a chain. Memory-mapped, so one record is read and
//! cleared in place without disturbing the others (a map update would
//! overwrite the whole value). What the words mean is the engine's business.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use libbpf_rs::{MapHandle, MapType};

use super::{last_errno, KernelError};

/// Words per record.
pub const RECORD_WORDS: usize = 6;
/// Bytes per record.
pub const RECORD_BYTES: usize = 8 * RECORD_WORDS;

/// The map and its shared mapping, unmapped on drop.
#[derive(Debug)]
pub struct CounterTable {
    map: MapHandle,
    memory: *mut u64,
    bytes: usize,
    slots: usize,
}

// SAFETY: the mapping is shared memory read and written with volatile word accesses only.
unsafe impl Send for CounterTable {}
// SAFETY: as above; no method hands out references into the mapping.
unsafe impl Sync for CounterTable {}

impl CounterTable {
    /// Creates a single-element `BPF_F_MMAPABLE` array of `slots` records and maps it.
    pub fn create(slots: usize) -> Result<CounterTable, KernelError> {
        let opts = libbpf_sys::bpf_map_create_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_map_create_opts>() as _,
            map_flags: libbpf_sys::BPF_F_MMAPABLE,
            ..Default::default()
        };
        let value_size = u32::try_from(RECORD_BYTES * slots)
            .map_err(|_| KernelError::invalid("creating the verdict counter table", "too many slots"))?;
        let map = MapHandle::create(MapType::Array, Some("xdpd_stats"), 4, value_size, 1, &opts)
            .map_err(|e| KernelError::from_libbpf_rs("creating the verdict counter table", e))?;
        CounterTable::mapped(map, value_size as usize, slots)
    }

    /// The table pinned at `path` by an earlier run, with the counts it holds.
    pub fn open_pinned(path: &Path) -> Result<CounterTable, KernelError> {
        let map = MapHandle::from_pinned_path(path)
            .map_err(|e| KernelError::from_libbpf_rs(format!("opening {}", path.display()), e))?;
        let info = super::bpf::map_info(map.as_fd())?;
        let size = info.value_size as usize;
        if info.name != "xdpd_stats"
            || info.map_type != libbpf_sys::BPF_MAP_TYPE_ARRAY
            || !size.is_multiple_of(RECORD_BYTES)
        {
            return Err(KernelError::invalid(format!("opening {}", path.display()), "not a verdict counter table"));
        }
        CounterTable::mapped(map, size, size / RECORD_BYTES)
    }

    /// Pins the table at `path` (replacing a stale pin), so the counts outlive the process.
    pub fn pin(&self, path: &Path) -> Result<(), KernelError> {
        let _ = std::fs::remove_file(path);
        super::bpf::obj_pin(self.map.as_fd(), &super::path_cstring(path)?)
    }

    fn mapped(map: MapHandle, value_size: usize, slots: usize) -> Result<CounterTable, KernelError> {
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
        Ok(CounterTable { map, memory: memory.cast(), bytes, slots })
    }

    /// Number of records.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The map, for the instructions that increment its records.
    pub fn map_fd(&self) -> BorrowedFd<'_> {
        self.map.as_fd()
    }

    fn word(&self, slot: usize, i: usize) -> Option<*mut u64> {
        // SAFETY: slot < slots and i < RECORD_WORDS, checked: inside the mapping.
        (slot < self.slots && i < RECORD_WORDS).then(|| unsafe { self.memory.add(slot * RECORD_WORDS + i) })
    }

    /// The record `slot` (zeros for a slot out of range).
    pub fn read(&self, slot: usize) -> [u64; RECORD_WORDS] {
        let mut out = [0u64; RECORD_WORDS];
        for (i, v) in out.iter_mut().enumerate() {
            if let Some(word) = self.word(slot, i) {
                // SAFETY: an aligned word inside the mapping.
                *v = unsafe { std::ptr::read_volatile(word) };
            }
        }
        out
    }

    /// Zeroes the record `slot`.
    pub fn clear(&self, slot: usize) {
        for i in 0..RECORD_WORDS {
            if let Some(word) = self.word(slot, i) {
                // SAFETY: an aligned word inside the mapping.
                unsafe { std::ptr::write_volatile(word, 0) };
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
