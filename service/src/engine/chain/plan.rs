//! Dry runs: the chain a change would make, linked and verified as
//! [`Chain::commit`] would, and reported instead of swapped in; and the
//! report of the running chain.

use super::*;

impl Chain {
    /// A dry run of [`Chain::add`]: links and verifies the chain it would
    /// produce and reports it (the new member has id 0), with the same
    /// refusals, but attaches, records and changes nothing.
    pub fn plan_add(&mut self, program: LoadedProgram, options: &AddOptions) -> Result<ChainReport, Error> {
        self.check_room()?;
        let mut candidate = self.members.clone();
        candidate.push(Member::planned(program, options, self.next_seq + 1));
        self.plan(candidate, options)
    }

    /// A dry run of [`Chain::replace`] (maps carried over as it would).
    pub fn plan_replace(
        &mut self,
        id: MemberId,
        mut program: LoadedProgram,
        options: &AddOptions,
    ) -> Result<ChainReport, Error> {
        let old = self.member(id).ok_or(Error::NoSuchProgram(id))?;
        let (seq, running) = (old.seq, old.program.clone());
        let carried =
            if options.fresh_maps { Vec::new() } else { crate::engine::carry::carry_maps(&running, &mut program)? };
        let mut member = Member::planned(program, options, seq);
        member.carried_maps = carried;
        let candidate = self.members.iter().map(|m| if m.id == id { member.clone() } else { m.clone() }).collect();
        self.plan(candidate, options)
    }

    /// Links `candidate` as [`Chain::commit`] would, and reports it instead of swapping it in.
    pub(super) fn plan(&mut self, mut candidate: Vec<Member>, options: &AddOptions) -> Result<ChainReport, Error> {
        candidate.sort_by_key(|m| (m.priority, m.seq));
        if self.counting && !candidate.is_empty() {
            self.assign_counter_slots(&mut candidate)?;
        }
        self.check_mode(options)?;
        let linked = self.link(&candidate, options)?;
        Ok(report::of_linked(self.generation, &candidate, &linked))
    }

    /// The report of the running chain (see [`ChainReport`]); `None` when nothing runs.
    pub fn report(&self) -> Option<ChainReport> {
        match self.running.as_ref()? {
            Running::Linked(linked) => Some(report::of_linked(self.generation, &self.members, linked)),
            Running::Adopted { fd, info, .. } => {
                let maps = bpf::prog_map_ids(fd.as_fd()).map_or(0, |ids| ids.len());
                Some(report::of_adopted(self.generation, &self.members, maps, info.verified_insns))
            }
        }
    }

    /// A dry run of [`Chain::change`].
    pub fn plan_change(
        &mut self,
        removed: &[MemberId],
        added: Vec<(LoadedProgram, AddOptions, Option<MemberId>)>,
        options: &AddOptions,
    ) -> Result<ChainReport, Error> {
        let (candidate, _) = self.changed_members(removed, added, true)?;
        self.plan(candidate, options)
    }
}
