//! The gate of a change: the chain shows what a change is about to be (its
//! members, the new program's id, the next generation) once the new program
//! is loaded and before it is swapped in, so the caller can make the change
//! durable first; an error there cancels the change with the kernel untouched.

use std::sync::Arc;

use super::{Chain, CounterResume};
use crate::engine::member::Member;
use crate::engine::stats::VerdictCounters;
use crate::engine::Error;
use crate::kernel::counter_table::CounterTable;

/// What a change is about to make of the chain, shown to its [`Gate`].
pub struct Proposal<'a> {
    /// The members in run order.
    pub members: &'a [Member],
    /// The kernel id of the new program (0: the chain becomes empty); for a
    /// change that links one segment of a segmented chain again, that
    /// segment's (the hook may keep running the same first segment).
    pub program_id: u32,
    /// The chain's generation once the change is made.
    pub generation: u64,
    /// Whether the new program counts verdicts.
    pub counting: bool,
    /// Whether the hook is held (a pass-through program runs without members).
    pub hold: bool,
}

/// Runs once in the next change, after its program is loaded and before it
/// is swapped in: the caller makes the change durable there, and an error
/// cancels the change with the kernel untouched.
pub type Gate = Box<dyn FnOnce(&Proposal<'_>) -> Result<(), Error> + Send>;

/// The gate of the next change, if any.
#[derive(Default)]
pub(super) struct GateSlot(pub(super) Option<Gate>);

impl std::fmt::Debug for GateSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "GateSlot(set)" } else { "GateSlot(none)" })
    }
}

/// What the service adds to a chain to keep its promises across restarts:
/// generations that never go back, the gate, counts taken back.
impl Chain {
    /// Starts the generation count at `generation` (the high-water mark of
    /// the interface: a generation is never handed out twice).
    pub fn with_generation(mut self, generation: u64) -> Chain {
        self.generation = self.generation.max(generation);
        self
    }

    /// Sets the gate the next change passes before its swap (see [`Gate`]).
    pub fn gate_next_change(&mut self, gate: Gate) {
        self.gate.0 = Some(gate);
    }

    /// Takes back a gate no change used (the call changed nothing).
    pub fn take_gate(&mut self) -> Option<Gate> {
        self.gate.0.take()
    }

    /// Shows the change to its gate, if any (see [`Gate`]).
    pub(super) fn pass_gate(&self, gate: Option<Gate>, members: &[Member], program_id: u32) -> Result<(), Error> {
        let Some(gate) = gate else { return Ok(()) };
        let (generation, counting, hold) = (self.generation + 1, self.counting, self.hold);
        gate(&Proposal { members, program_id, generation, counting, hold })
    }

    /// Takes back the pinned counter table and the members' slots (see [`CounterResume`]).
    pub(super) fn resume_counters(&mut self, resume: &CounterResume) {
        // Until the table is back, the running program is not known to count.
        self.counting = false;
        let Some(pin) = self.counter_pin.as_ref().filter(|p| p.exists()) else { return };
        let table = match CounterTable::open_pinned(pin) {
            Ok(table) => Arc::new(table),
            Err(e) => return tracing::warn!("verdict counts start again: {e}"),
        };
        for m in &mut self.members {
            let slot = resume.slots.iter().find(|(id, _)| *id == m.id).map(|&(_, slot)| slot);
            m.stats = slot.and_then(|slot| VerdictCounters::resume(table.clone(), slot)).map(Arc::new);
        }
        // Counting stays on only if every member has its counts back.
        self.counting = resume.counting && self.members.iter().all(|m| m.stats.is_some());
        self.counter_table = Some(table);
    }
}
