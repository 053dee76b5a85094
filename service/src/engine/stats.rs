//! Per-member verdict counters. A chain has one counter table, a
//! memory-mapped single-element array map with a region per possible CPU and
//! in it a record per member: packets and bytes for each verdict (aborted,
//! drop, pass, tx, redirect, other). The linked program counts a packet
//! where the chain decides it (see `linker::count`), each CPU in its own
//! region without atomics; a member's counts are summed over the regions
//! when read. One map for the whole chain, because the kernel lets a program
//! use at most 64 maps; memory-mapped, so a record is read and cleared in
//! place without disturbing the counts of the others. A member keeps its
//! record for life, so its counts survive relinks; the table is pinned, so
//! they survive restarts.

use std::sync::Arc;

use crate::kernel::counter_table::CounterTable;

/// Names of the counted verdicts, in record order.
pub const SLOTS: [&str; 6] = ["aborted", "drop", "pass", "tx", "redirect", "other"];

/// Counts per verdict, in the order of [`SLOTS`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets per verdict.
    pub packets: [u64; 6],
    /// Bytes of those packets per verdict (the length when the verdict was given).
    pub bytes: [u64; 6],
}

impl Stats {
    /// `(name, packets)` pairs in record order, for display.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        SLOTS.iter().copied().zip(self.packets)
    }

    /// `(name, bytes)` pairs in record order.
    pub fn named_bytes(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        SLOTS.iter().copied().zip(self.bytes)
    }

    fn from_record(record: [u64; crate::kernel::counter_table::RECORD_WORDS]) -> Stats {
        let mut stats = Stats::default();
        for v in 0..SLOTS.len() {
            stats.packets[v] = record[2 * v];
            stats.bytes[v] = record[2 * v + 1];
        }
        stats
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
        Stats::from_record(self.table.read(self.slot))
    }

    /// The table the member counts in.
    pub fn table(&self) -> &CounterTable {
        &self.table
    }
}
