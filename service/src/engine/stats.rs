//! Per-member verdict counters. A chain has one counter table, a
//! memory-mapped single-element array map with a slot of six u64 per member
//! (aborted, drop, pass, tx, redirect, other), which the dispatcher increments
//! after each member runs. One map for the whole chain, because the kernel
//! lets a program use at most 64 maps; memory-mapped, so a slot is read and
//! cleared in place without disturbing the counts of the others. A member
//! keeps its slot for life, so its counts survive relinks.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use crate::kernel::counter_table::CounterTable;
use crate::kernel::counter_table::RECORD_BYTES;
use crate::kernel::insn::{self, Insn, R0, R1};

/// Names of the counted verdicts, in slot order.
pub const SLOTS: [&str; 6] = ["aborted", "drop", "pass", "tx", "redirect", "other"];
const SLOT_BYTES: usize = RECORD_BYTES;

/// Counts per verdict, in the order of [`SLOTS`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats(pub [u64; 6]);

impl Stats {
    /// `(name, count)` pairs in slot order, for display.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        SLOTS.iter().copied().zip(self.0)
    }
}

/// What a restored chain's record says besides its members: whether
/// counting was on and each member's slot in the counter table pinned for
/// the interface, and whether the hook was held.
#[derive(Debug, Clone, Default)]
pub struct CounterResume {
    /// Counting was on.
    pub counting: bool,
    /// `(member, slot)` as recorded.
    pub slots: Vec<(super::member::MemberId, usize)>,
    /// The interface keeps a pass-through program attached without members.
    pub hold: bool,
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
        (slot < table.slots()).then_some(VerdictCounters { table, slot })
    }

    /// Takes `slot` of `table`, starting from zero.
    pub fn new(table: Arc<CounterTable>, slot: usize) -> VerdictCounters {
        table.clear(slot);
        VerdictCounters { table, slot }
    }

    /// Where in the table the member counts.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// The member's counts now.
    pub fn read(&self) -> Stats {
        Stats(self.table.read(self.slot))
    }

    /// Instructions that count the verdict in r0 (clobbers r1 and r2):
    /// `r1 = &slot; r2 = min(w0, 5) * 8; lock *(u64 *)(r1 + r2) += 1`.
    pub fn count_r0(&self) -> Vec<Insn> {
        const R2: u8 = 2;
        let fd = self.table.map_fd().as_raw_fd();
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
