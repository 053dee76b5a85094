//! Per-member verdict counters. A chain has one counter table, a
//! memory-mapped single-element array map with a slot of six u64 per member
//! (aborted, drop, pass, tx, redirect, other), which the dispatcher increments
//! after each member runs. One map for the whole chain, because the kernel
//! lets a program use at most 64 maps; memory-mapped, so a slot is read and
//! cleared in place without disturbing the counts of the others. A member
//! keeps its slot for life, so its counts survive relinks.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use super::insn::{self, Insn, R0, R1};
use crate::kernel::{bpf, check, KernelError};

fn path_cstring(path: &Path) -> Result<CString, KernelError> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| KernelError::new(format!("{} has a NUL byte", path.display()), libc::EINVAL))
}

/// Names of the counted verdicts, in slot order.
pub const SLOTS: [&str; 6] = ["aborted", "drop", "pass", "tx", "redirect", "other"];
const SLOT_BYTES: usize = 8 * SLOTS.len();

/// Counts per verdict, in the order of [`SLOTS`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats(pub [u64; 6]);

impl Stats {
    pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        SLOTS.iter().copied().zip(self.0)
    }
}

#[derive(Debug)]
pub struct CounterTable {
    map: OwnedFd,
    memory: *mut u64,
    bytes: usize,
    slots: usize,
}

// SAFETY: the mapping is shared memory read and written with volatile word accesses only.
unsafe impl Send for CounterTable {}
unsafe impl Sync for CounterTable {}

impl CounterTable {
    pub fn create(slots: usize) -> Result<CounterTable, KernelError> {
        let name = CString::new("xdpd_stats").unwrap_or_default();
        let opts = libbpf_sys::bpf_map_create_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_map_create_opts>() as _,
            map_flags: libbpf_sys::BPF_F_MMAPABLE,
            ..Default::default()
        };
        let value_size = (SLOT_BYTES * slots) as u32;
        // SAFETY: plain map creation; the descriptor becomes ours.
        let fd = check(
            unsafe {
                libbpf_sys::bpf_map_create(libbpf_sys::BPF_MAP_TYPE_ARRAY, name.as_ptr(), 4, value_size, 1, &opts)
            },
            || "creating the verdict counter table".into(),
        )?;
        // SAFETY: fresh descriptor from the kernel.
        let map = unsafe { OwnedFd::from_raw_fd(fd) };
        CounterTable::mapped(map, value_size as usize, slots)
    }

    /// The table pinned at `path` by an earlier run, with the counts it holds.
    pub fn open_pinned(path: &Path) -> Result<CounterTable, KernelError> {
        let map = bpf::obj_get(&path_cstring(path)?)?;
        let info = bpf::map_info(map.as_fd())?;
        let size = info.value_size as usize;
        if info.name != "xdpd_stats" || info.map_type != libbpf_sys::BPF_MAP_TYPE_ARRAY || size % SLOT_BYTES != 0 {
            return Err(KernelError::new(format!("{} is not a verdict counter table", path.display()), libc::EINVAL));
        }
        CounterTable::mapped(map, size, size / SLOT_BYTES)
    }

    /// Pins the table at `path`, so the counts outlive the process.
    pub fn pin(&self, path: &Path) -> Result<(), KernelError> {
        let _ = std::fs::remove_file(path);
        bpf::obj_pin(self.map.as_fd(), &path_cstring(path)?)
    }

    fn mapped(map: OwnedFd, value_size: usize, slots: usize) -> Result<CounterTable, KernelError> {
        let page = 4096;
        let bytes = value_size.div_ceil(page) * page;
        // SAFETY: mapping the array's values, shared with the kernel, for our lifetime.
        let memory = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.as_raw_fd(),
                0,
            )
        };
        if memory == libc::MAP_FAILED {
            return Err(KernelError::new("mapping the verdict counter table", crate::kernel::last_errno()));
        }
        Ok(CounterTable { map, memory: memory.cast(), bytes, slots })
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    fn word(&self, slot: usize, i: usize) -> *mut u64 {
        // SAFETY: slot < slots and i < 6 by construction: inside the mapping.
        unsafe { self.memory.add(slot * SLOTS.len() + i) }
    }

    fn read(&self, slot: usize) -> Stats {
        let mut out = [0u64; 6];
        for (i, v) in out.iter_mut().enumerate() {
            // SAFETY: an aligned word inside the mapping.
            *v = unsafe { std::ptr::read_volatile(self.word(slot, i)) };
        }
        Stats(out)
    }

    fn clear(&self, slot: usize) {
        for i in 0..SLOTS.len() {
            // SAFETY: an aligned word inside the mapping, used by no running program.
            unsafe { std::ptr::write_volatile(self.word(slot, i), 0) };
        }
    }
}

impl Drop for CounterTable {
    fn drop(&mut self) {
        // SAFETY: unmapping what create() mapped.
        unsafe { libc::munmap(self.memory.cast(), self.bytes) };
    }
}

/// One member's slot in its chain's counter table.
#[derive(Debug)]
pub struct VerdictCounters {
    table: Arc<CounterTable>,
    slot: usize,
}

impl VerdictCounters {
    /// Takes `slot` of `table` back after a restart, with its counts.
    pub fn resume(table: Arc<CounterTable>, slot: usize) -> Option<VerdictCounters> {
        (slot < table.slots).then_some(VerdictCounters { table, slot })
    }

    /// Takes `slot` of `table`, starting from zero.
    pub fn new(table: Arc<CounterTable>, slot: usize) -> VerdictCounters {
        table.clear(slot);
        VerdictCounters { table, slot }
    }

    pub fn slot(&self) -> usize {
        self.slot
    }

    pub fn read(&self) -> Stats {
        self.table.read(self.slot)
    }

    /// Instructions that count the verdict in r0 (clobbers r1 and r2):
    /// `r1 = &slot; r2 = min(w0, 5) * 8; lock *(u64 *)(r1 + r2) += 1`.
    pub fn count_r0(&self) -> Vec<Insn> {
        const R2: u8 = 2;
        let fd = self.table.map.as_raw_fd();
        vec![
            Insn::new(insn::LD_IMM64, R1, insn::PSEUDO_MAP_VALUE, 0, fd),
            Insn::new(0, 0, 0, 0, (self.slot * SLOT_BYTES) as i32),
            Insn::new(insn::BPF_ALU | insn::BPF_MOV | insn::BPF_X, R2, R0, 0, 0),
            Insn::new(insn::BPF_JMP32 | insn::BPF_JLE | insn::BPF_K, R2, 0, 1, 4),
            Insn::mov32_imm(R2, 5),
            Insn::new(insn::BPF_ALU64 | insn::BPF_LSH | insn::BPF_K, R2, 0, 0, 3),
            Insn::new(insn::BPF_ALU64 | insn::BPF_ADD | insn::BPF_X, R1, R2, 0, 0),
            Insn::new(insn::BPF_ALU64 | insn::BPF_MOV | insn::BPF_K, R2, 0, 0, 1),
            Insn::new(insn::BPF_STX | insn::BPF_DW | insn::BPF_ATOMIC, R1, R2, 0, insn::BPF_ADD as i32),
        ]
    }
}
