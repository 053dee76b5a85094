//! A chain of several segments: each segment is one program of consecutive
//! members that ends, when every member proceeded, in a tail call to the
//! next one through a program array that belongs to this version of the
//! chain only. The segments are linked back to front (a segment's tail call
//! names the slot of the one after it), all of them before anything is
//! swapped in, so a failed change changes nothing.
//!
//! A segment the verifier refuses is cut around the member it stopped in
//! and linked again: a combined limit (complexity, stack) never makes one
//! owner's member fail because of another's; only a member that fails on
//! its own, in a segment of its own, fails the change, with its own log.

use std::os::fd::{AsFd, AsRawFd};

use super::{link_program, LinkInput, LinkTarget, LinkedChain, LinkedSegment, Next, Program, ProgramTarget};
use crate::engine::segments::{self, MemberNeeds, SegmentPlan};
use crate::engine::Error;
use crate::kernel::prog_array::ProgArray;

/// The chain of one program (no array, no tail call): today's chain.
pub(super) fn single(
    program: Program,
    plan: SegmentPlan,
    members: &[LinkInput<'_>],
    frags: bool,
    target: LinkTarget,
) -> LinkedChain {
    let segment = segment_of(&program, plan, members);
    LinkedChain {
        inlined: program.inlined_members.len(),
        fd: program.fd,
        info: program.info,
        layout: program.layout,
        insn_count: program.insn_count,
        frags,
        inlined_members: program.inlined_members,
        segments: vec![segment],
        rest: Vec::new(),
        array: None,
        target,
    }
}

/// What `program`, loaded by `plan` with `members`, is as plain data.
pub(super) fn segment_of(program: &Program, plan: SegmentPlan, members: &[LinkInput<'_>]) -> LinkedSegment {
    LinkedSegment {
        members: members.iter().map(|m| m.id).collect(),
        plan,
        prog_id: program.info.id,
        insn_count: program.insn_count,
        map_count: program.map_count,
        verified_insns: program.info.verified_insns,
        verify_time: program.verify_time,
        inputs: members.iter().map(LinkInput::key).collect(),
    }
}

/// Segments loaded so far, last segment first.
struct Builder<'a, 'm> {
    members: &'a [LinkInput<'m>],
    needs: &'a [MemberNeeds],
    target: LinkTarget,
    frags: bool,
    array: ProgArray,
    loaded: Vec<(SegmentPlan, Program)>,
}

/// Links the segments of `plan` (in run order) and fills their array.
pub(super) fn link(
    members: &[LinkInput<'_>],
    needs: &[MemberNeeds],
    plan: Vec<SegmentPlan>,
    target: LinkTarget,
    frags: bool,
) -> Result<LinkedChain, Error> {
    let slots = u32::try_from(members.len()).map_err(|_| Error::LimitExceeded("too many programs".into()))?;
    let array = ProgArray::create(slots)?;
    let mut builder = Builder { members, needs, target, frags, array, loaded: Vec::new() };
    for segment in plan.into_iter().rev() {
        builder.link_back(segment)?;
    }
    let final_plan: Vec<SegmentPlan> = builder.loaded.iter().rev().map(|(p, _)| p.clone()).collect();
    segments::check_tail_calls(&final_plan, needs)?;
    builder.finish()
}

impl Builder<'_, '_> {
    /// The slot the segment loaded last went to: the next of the one before it.
    fn next(&self) -> Option<Next> {
        let index = u32::try_from(self.loaded.len()).ok()?.checked_sub(1)?;
        Some(Next { array_fd: self.array.as_fd().as_raw_fd(), index })
    }

    /// Links `segment` in front of those loaded so far; a refusal inside a
    /// segment of several members cuts it around the member at fault.
    fn link_back(&mut self, segment: SegmentPlan) -> Result<(), Error> {
        let range = segment.members.clone();
        let target =
            ProgramTarget { target: self.target, privilege: segment.privilege, frags: self.frags, next: self.next() };
        // A segment without the counter table links its members without counters.
        let members: Vec<LinkInput<'_>> = self.members[range.clone()]
            .iter()
            .map(|m| LinkInput { counters: m.counters.filter(|_| !segment.uncounted), ..*m })
            .collect();
        match link_program(&members, target) {
            Ok(program) => {
                let slot = self.loaded.len() as u32;
                self.array.set(slot, program.fd.as_fd())?;
                self.loaded.push((segment, program));
                Ok(())
            }
            Err(Error::ChainRejected { member_id, .. }) if range.len() > 1 => {
                // The member the verifier stopped in; for the chain as a whole, the middle.
                let at = member_id
                    .and_then(|id| self.members[range.clone()].iter().position(|m| m.id == id))
                    .map_or(range.start + range.len() / 2, |i| range.start + i);
                tracing::debug!("segment {range:?} does not verify; cutting it at member {at}");
                for piece in cut(range, at).into_iter().rev() {
                    self.link_back(sub_plan(&segment, piece, self.needs))?;
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn finish(self) -> Result<LinkedChain, Error> {
        let mut loaded = self.loaded;
        loaded.reverse();
        let segments: Vec<LinkedSegment> =
            loaded.iter().map(|(plan, p)| segment_of(p, plan.clone(), &self.members[plan.members.clone()])).collect();
        let mut programs = loaded.into_iter().map(|(_, p)| p);
        let (Some(first), Some(plan)) = (programs.next(), segments.first()) else {
            return Err(Error::InvalidArgument("a chain needs at least one program".into()));
        };
        let mut chain = single(first, plan.plan.clone(), &[], self.frags, self.target);
        chain.segments = segments;
        for p in programs {
            chain.layout.extend(p.layout);
            chain.insn_count += p.insn_count;
            chain.inlined_members.extend(p.inlined_members);
            chain.rest.push(p.fd);
        }
        chain.inlined = chain.inlined_members.len();
        chain.array = Some(self.array);
        Ok(chain)
    }
}

/// `range` cut before and after member `at`: the pieces that are not empty.
fn cut(range: std::ops::Range<usize>, at: usize) -> Vec<std::ops::Range<usize>> {
    let at = at.clamp(range.start, range.end - 1);
    [range.start..at, at..at + 1, at + 1..range.end].into_iter().filter(|r| !r.is_empty()).collect()
}

/// The plan of a piece of `segment`.
fn sub_plan(segment: &SegmentPlan, members: std::ops::Range<usize>, needs: &[MemberNeeds]) -> SegmentPlan {
    let mut maps: Vec<u32> = needs[members.clone()].iter().flat_map(|m| m.maps.iter().copied()).collect();
    maps.sort_unstable();
    maps.dedup();
    let insns = needs[members.clone()].iter().map(|m| m.insns).sum();
    SegmentPlan {
        members,
        privilege: segment.privilege,
        gpl: segment.gpl,
        maps: maps.len(),
        insns,
        uncounted: segment.uncounted,
    }
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn a_refused_segment_is_cut_around_the_member_at_fault() {
        assert_eq!(cut(0..5, 2), vec![0..2, 2..3, 3..5]);
        assert_eq!(cut(3..5, 3), vec![3..4, 4..5]);
        assert_eq!(cut(3..5, 4), vec![3..4, 4..5]);
        assert_eq!(cut(0..1, 0), vec![0..1]);
    }
}
