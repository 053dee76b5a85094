//! Several changes as one ([`Chain::change`], for ChangeChain): removals,
//! replacements (maps carried over) and additions, linked and swapped once.

use super::*;

impl Chain {
    /// Several changes as one: the `removed` members go and each of `added`
    /// joins, in place of the member it replaces if it names one (its maps
    /// carried over, as `replace` does); the chain is linked and swapped in
    /// once (`options`: mode and force). Returns the new members' ids in the
    /// order of `added`.
    pub fn change(
        &mut self,
        removed: &[MemberId],
        added: Vec<(LoadedProgram, AddOptions, Option<MemberId>)>,
        options: &AddOptions,
    ) -> Result<Vec<MemberId>, Error> {
        let (candidate, ids) = self.changed_members(removed, added, false)?;
        self.commit(candidate, options)?;
        Ok(ids)
    }

    /// The members [`Chain::change`] would leave, and the new ones' ids
    /// (`planned`: members of a dry run, without ids of their own).
    pub(super) fn changed_members(
        &mut self,
        removed: &[MemberId],
        added: Vec<(LoadedProgram, AddOptions, Option<MemberId>)>,
        planned: bool,
    ) -> Result<(Vec<Member>, Vec<MemberId>), Error> {
        let replaced: Vec<MemberId> = added.iter().filter_map(|(_, _, old)| *old).collect();
        if let Some(id) = removed.iter().chain(&replaced).find(|id| self.member(**id).is_none()) {
            return Err(Error::NoSuchProgram(*id));
        }
        let mut candidate: Vec<Member> = self.members.iter().filter(|m| !removed.contains(&m.id)).cloned().collect();
        let grown = candidate.len() + added.len() - replaced.len();
        if grown > self.max_members.max(self.members.len()) {
            return Err(Error::LimitExceeded(format!(
                "the chain would have {grown} programs; the maximum is {}",
                self.max_members
            )));
        }
        let mut ids = Vec::with_capacity(added.len());
        for (i, (mut program, member_options, old)) in added.into_iter().enumerate() {
            let previous = old.and_then(|id| self.member(id)).map(|m| (m.seq, m.program.clone()));
            let carried = match &previous {
                Some((_, running)) if !member_options.fresh_maps => {
                    crate::engine::carry::carry_maps(running, &mut program).map_err(|e| match e {
                        Error::Conflict(m) => Error::Conflict(format!("program {i} of the change: {m}")),
                        other => other,
                    })?
                }
                _ => Vec::new(),
            };
            let seq = previous.map(|(seq, _)| seq);
            let mut member = if planned {
                Member::planned(program, &member_options, seq.unwrap_or(self.next_seq + 1 + i as u64))
            } else {
                self.new_member(program, &member_options, seq)
            };
            member.carried_maps = carried;
            ids.push(member.id);
            match old.and_then(|id| candidate.iter_mut().find(|m| m.id == id)) {
                Some(slot) => *slot = member,
                None => candidate.push(member),
            }
        }
        Ok((candidate, ids))
    }
}
