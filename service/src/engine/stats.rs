//! Per-member verdict counters: a one-element array map per member holding
//! one u64 per action (aborted, drop, pass, tx, redirect, other), which the
//! dispatcher increments after the member runs. The map belongs to the
//! member, so its counts survive relinks.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use super::insn::{self, Insn, R0, R1};
use crate::kernel::{check, KernelError};

/// Names of the counted verdicts, in slot order.
pub const SLOTS: [&str; 6] = ["aborted", "drop", "pass", "tx", "redirect", "other"];

/// Counts per verdict, in the order of [`SLOTS`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats(pub [u64; 6]);

impl Stats {
    pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        SLOTS.iter().copied().zip(self.0)
    }
}

#[derive(Debug)]
pub struct VerdictCounters {
    map: OwnedFd,
}

impl VerdictCounters {
    pub fn create() -> Result<VerdictCounters, KernelError> {
        let name = CString::new("xdpd_stats").unwrap_or_default();
        // SAFETY: plain map creation; the descriptor becomes ours.
        let fd = check(
            unsafe {
                libbpf_sys::bpf_map_create(libbpf_sys::BPF_MAP_TYPE_ARRAY, name.as_ptr(), 4, 48, 1, std::ptr::null())
            },
            || "creating a verdict counter map".into(),
        )?;
        // SAFETY: fresh descriptor from the kernel.
        Ok(VerdictCounters { map: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    pub fn read(&self) -> Stats {
        let mut value = [0u64; 6];
        let key = 0u32;
        // SAFETY: key and value have the map's sizes (4 and 48 bytes).
        let ret = unsafe {
            libbpf_sys::bpf_map_lookup_elem(
                self.map.as_raw_fd(),
                (&key as *const u32).cast(),
                value.as_mut_ptr().cast(),
            )
        };
        if ret != 0 {
            return Stats::default();
        }
        Stats(value)
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.map.as_fd()
    }

    /// Instructions that count the verdict in r0 (clobbers r1 and r2):
    /// `slot = min(w0, 5); lock *(u64 *)(counters + slot * 8) += 1`.
    pub fn count_r0(&self) -> Vec<Insn> {
        const R2: u8 = 2;
        let fd = self.map.as_raw_fd();
        vec![
            Insn::new(insn::LD_IMM64, R1, insn::PSEUDO_MAP_VALUE, 0, fd),
            Insn::new(0, 0, 0, 0, 0),
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
