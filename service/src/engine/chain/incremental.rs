//! A change that touches one segment of a running segmented chain links
//! and verifies only that segment (see `linker::relink_one`): the gate
//! sees the change first, then the segment goes into its slot of the
//! running version's program array (one map update, atomic for every
//! packet), or onto the hook when it is the first. A failure anywhere
//! before that changes nothing; the other segments keep running as they are.

use super::{Chain, Running};
use crate::engine::chain::Gate;
use crate::engine::linker::{self, Relinked};
use crate::engine::member::{AddOptions, Member};
use crate::engine::Error;

impl Chain {
    /// The one segment `candidate` changes in the running chain, linked
    /// and verified; `None` when the change links the whole chain.
    pub(super) fn relink_touched(&self, candidate: &[Member], options: &AddOptions) -> Option<Result<Relinked, Error>> {
        let Some(Running::Linked(running)) = &self.running else { return None };
        // Only into a chain the hook still runs (otherwise the whole path says why not).
        if self.hook.as_ref().is_some_and(|h| h.attached_prog_id() != Some(running.info.id)) {
            return None;
        }
        if options.mode.is_some_and(|m| self.hook.as_ref().and_then(|h| h.mode()) != Some(m)) {
            return None;
        }
        let (inputs, target) = self.link_inputs(candidate, options);
        linker::relink_one(running, &inputs, target)
    }

    /// Passes the gate, then puts `relinked` in place of the segment it
    /// replaces: into the running array, or onto the hook (the first one).
    pub(super) fn put_segment(
        &mut self,
        gate: Option<Gate>,
        candidate: &[Member],
        relinked: Relinked,
        options: &AddOptions,
    ) -> Result<(), Error> {
        // The new segment's id: a record of this change matches the running
        // version only once the kernel runs it (see `Chain::runs`).
        self.pass_gate(gate, candidate, relinked.prog_id())?;
        if relinked.is_first() {
            self.swap_in_fd(relinked.as_fd(), options)?;
        } else if let Some(Running::Linked(running)) = &self.running {
            running.set_segment(&relinked)?;
        }
        if let Some(Running::Linked(running)) = &mut self.running {
            running.put_segment(relinked);
        }
        Ok(())
    }
}
