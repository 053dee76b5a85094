//! A change that touches one segment of a running segmented chain: only
//! that segment is linked and verified again. Its tail call names the slot
//! of the running version's program array that holds the segment after it,
//! so the other segments stay exactly as they run; the change is made by
//! putting it in its slot of that array (one map update, atomic for every
//! packet) or, for the first segment, by swapping it onto the hook.
//!
//! A change takes this path when the plan of the new chain has the running
//! chain's segments but for one: the same number of segments, and every
//! other segment the same members in the same order with the same proceed-on
//! sets, counter slots and verifier context, for the same target (device,
//! frags, link mode, budget). Anything else (several segments touched, a
//! segment more or less, a chain of one program) links every segment again.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use super::emit::Next;
use super::segmented::segment_of;
use super::{link_program, load, plan, LinkInput, LinkTarget, LinkedChain, LinkedSegment, Program, ProgramTarget};
use crate::engine::member::MemberId;
use crate::engine::segments::{self, MemberNeeds, SegmentPlan};
use crate::engine::Error;

/// The one segment a change touches, linked and verified, not yet running.
#[derive(Debug)]
pub struct Relinked {
    /// Its index in run order.
    index: usize,
    program: Program,
    segment: LinkedSegment,
    /// The plan of the whole new chain (the others' member ranges move).
    plan: Vec<SegmentPlan>,
}

impl Relinked {
    /// Whether it is the first segment (it goes onto the hook, not into the array).
    pub fn is_first(&self) -> bool {
        self.index == 0
    }

    /// Its index in run order.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The new program.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.program.fd.as_fd()
    }

    /// Kernel id of the new program.
    pub fn prog_id(&self) -> u32 {
        self.program.info.id
    }
}

/// Slot of the running array that holds segment `index` of `count` (the
/// segments are linked back to front: the last one is in slot 0).
fn slot(count: usize, index: usize) -> u32 {
    (count - 1 - index) as u32
}

/// Links only the segment `members` (in run order) change in `running`;
/// `None` when the change must link the whole chain (see the module doc).
/// A refusal of a segment of several members is `None` too: the whole
/// chain's path cuts it around the member at fault and names it.
pub fn relink_one(
    running: &LinkedChain,
    members: &[LinkInput<'_>],
    target: LinkTarget,
) -> Option<Result<Relinked, Error>> {
    let array = running.array.as_ref()?;
    if members.is_empty() || running.target != target || target.offload_ifindex.is_some() {
        return None;
    }
    let members = &members[..plan::reachable(members.iter().map(|m| m.proceed_on))];
    if load::frags(members) != running.frags {
        return None;
    }
    let needs: Vec<MemberNeeds> = members.iter().map(|m| MemberNeeds::of(m.id, m.program, m.privilege)).collect();
    let plan = segments::plan(&needs, &target.budget).ok()?;
    let index = touched(&running.segments, members, &plan)?;
    let segment = plan[index].clone();
    let inputs = segment_inputs(members, &segment);
    let count = plan.len();
    let next = (index + 1 < count).then(|| Next { array_fd: array.as_fd().as_raw_fd(), index: slot(count, index + 1) });
    let program_target = ProgramTarget { target, privilege: segment.privilege, frags: running.frags, next };
    match link_program(&inputs, program_target) {
        Ok(program) => {
            // Its members as the chain has them (counters included), as `segmented` records them.
            let linked = segment_of(&program, segment.clone(), &members[segment.members]);
            Some(Ok(Relinked { index, program, segment: linked, plan }))
        }
        Err(Error::ChainRejected { .. }) if inputs.len() > 1 => None,
        Err(e) => Some(Err(e)),
    }
}

/// The members of `segment` as it links them (no counters when it is uncounted).
fn segment_inputs<'m>(members: &[LinkInput<'m>], segment: &SegmentPlan) -> Vec<LinkInput<'m>> {
    members[segment.members.clone()]
        .iter()
        .map(|m| LinkInput { counters: m.counters.filter(|_| !segment.uncounted), ..*m })
        .collect()
}

/// The one segment of `plan` that differs from the running `segments`, if
/// exactly one does and the plan has as many.
fn touched(segments: &[LinkedSegment], members: &[LinkInput<'_>], plan: &[SegmentPlan]) -> Option<usize> {
    if segments.len() < 2 || segments.len() != plan.len() {
        return None;
    }
    let same = |old: &LinkedSegment, new: &SegmentPlan| {
        let keys = members[new.members.clone()].iter().map(LinkInput::key).collect::<Vec<_>>();
        (old.plan.privilege, old.plan.gpl, old.plan.uncounted) == (new.privilege, new.gpl, new.uncounted)
            && old.inputs == keys
    };
    let mut differ = segments.iter().zip(plan).enumerate().filter(|(_, (old, new))| !same(old, new)).map(|(k, _)| k);
    match (differ.next(), differ.next()) {
        (Some(k), None) => Some(k),
        _ => None,
    }
}

impl LinkedChain {
    /// Puts `relinked` into the running version's array (not the first
    /// segment: that one goes onto the hook, see [`Relinked::is_first`]).
    pub fn set_segment(&self, relinked: &Relinked) -> Result<(), Error> {
        let Some(array) = self.array.as_ref() else {
            return Err(Error::InvalidArgument("a chain of one program has no segment to replace".into()));
        };
        Ok(array.set(slot(self.segments.len(), relinked.index), relinked.as_fd())?)
    }

    /// Takes `relinked` in as the segment it replaces, once it runs.
    pub fn put_segment(&mut self, relinked: Relinked) {
        let Relinked { index, program, segment, plan } = relinked;
        let old: Vec<MemberId> = self.segments[index].members.clone();
        let earlier: Vec<MemberId> = self.segments[..index].iter().flat_map(|s| s.members.iter().copied()).collect();
        let (mut layout, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.layout)
            .into_iter()
            .filter(|s| !old.contains(&s.id))
            .partition(|s| earlier.contains(&s.id));
        layout.extend(program.layout);
        layout.extend(later);
        self.layout = layout;
        let (mut inlined, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.inlined_members)
            .into_iter()
            .filter(|id| !old.contains(id))
            .partition(|id| earlier.contains(id));
        inlined.extend(program.inlined_members);
        inlined.extend(later);
        self.inlined_members = inlined;
        self.inlined = self.inlined_members.len();
        self.insn_count = self.insn_count - self.segments[index].insn_count + segment.insn_count;
        self.segments[index] = segment;
        for (s, p) in self.segments.iter_mut().zip(plan) {
            s.plan = p;
        }
        if index == 0 {
            self.fd = program.fd;
            self.info = program.info;
        } else {
            self.rest[index - 1] = program.fd;
        }
    }
}
