//! Segment planning: which consecutive members of a chain share one BPF
//! program (a *segment*, one verifier context) and where the chain is cut.
//! A pure function of what each member needs, unit-tested below.
//!
//! Members share a segment when they have the same privilege class (root's
//! programs are verified with the service's privileges, a user's as an
//! unprivileged loader's), the same license class (GPL-compatible or not:
//! the segment is loaded under that license), and fit its budgets: the
//! kernel's 64 maps per program (less the chain's program array and the
//! counter table) and an instruction budget; a large member (more than
//! `LARGE_MEMBER_INSNS` instructions) runs alone, so that its neighbours'
//! changes do not verify it again. Segments pass the packet on
//! by a tail call; the kernel allows 33 per packet, so a chain has at most
//! 34 segments. A chain that fits one segment is one program, as before.

use std::collections::BTreeSet;
use std::ops::Range;

use super::elf::is_gpl_compatible;
use super::member::MemberId;
use super::object::{LoadedProgram, Privilege};
use super::Error;

/// Tail calls the kernel allows per packet (`MAX_TAIL_CALL_CNT`).
pub const MAX_TAIL_CALLS: usize = 33;
/// Programs one packet can run through: the first segment and 33 tail calls.
pub const MAX_SEGMENTS: usize = MAX_TAIL_CALLS + 1;
/// Maps one BPF program may use (`MAX_USED_MAPS`).
pub const MAX_MAPS: usize = 64;
/// Instructions the service puts in one segment at most (members and
/// dispatcher): it keeps one verification short; the kernel's own limit is
/// 1,000,000 instructions verified per program.
pub const SEGMENT_INSNS: usize = 32_768;
/// A member of more instructions than this (Katran's balancer has 2,741)
/// runs in a segment of its own when the chain has other members: a change
/// of its neighbours then links and verifies their segment, not it (see
/// `linker::relink_one`), at the cost of one tail call per packet.
pub const LARGE_MEMBER_INSNS: usize = 2_048;
/// Instructions the dispatcher adds per member at most (context, counting,
/// proceed-on test).
pub const DISPATCH_INSNS: usize = 16;

/// What one member needs from the segment it runs in.
#[derive(Debug, Clone)]
pub struct MemberNeeds {
    /// The member.
    pub id: MemberId,
    /// Its function name, for errors.
    pub name: String,
    /// Root's (service privileges) or a user's (unprivileged verifier).
    pub privilege: Privilege,
    /// Whether its license is GPL-compatible.
    pub gpl: bool,
    /// Kernel ids of its maps (shared maps count once per segment).
    pub maps: Vec<u32>,
    /// Its instructions.
    pub insns: usize,
    /// It has a program array of its own (it tail-calls).
    pub tail_calls: bool,
}

impl MemberNeeds {
    /// The needs of `program`, a member `id` of privilege `privilege`.
    /// Only the maps its instructions refer to count (what the kernel counts).
    pub fn of(id: MemberId, program: &LoadedProgram, privilege: Privilege) -> MemberNeeds {
        let used: BTreeSet<usize> = program.map_refs.iter().map(|&(_, map)| map).collect();
        let maps: Vec<_> = used.iter().filter_map(|&i| program.maps.get(i)).collect();
        MemberNeeds {
            id,
            name: program.name.clone(),
            privilege,
            gpl: is_gpl_compatible(&program.license),
            maps: maps.iter().map(|m| m.id).collect(),
            insns: program.insn_count(),
            tail_calls: maps.iter().any(|m| m.map_type == libbpf_sys::BPF_MAP_TYPE_PROG_ARRAY),
        }
    }
}

/// How a chain is cut into segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The counter table is one more map in every segment.
    pub counting: bool,
    /// Cut after this many members at most (benchmarks and tests force boundaries).
    pub max_members: Option<usize>,
    /// Instructions per segment at most.
    pub max_insns: usize,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget { counting: false, max_members: None, max_insns: SEGMENT_INSNS }
    }
}

/// One segment of a planned chain: plain data, also for reporting a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentPlan {
    /// Indices of its members in the chain's run order.
    pub members: Range<usize>,
    /// The verifier context it is loaded with.
    pub privilege: Privilege,
    /// Loaded as GPL (every member's license is GPL-compatible).
    pub gpl: bool,
    /// Distinct maps of its members (without the array and counter table).
    pub maps: usize,
    /// Instructions of its members.
    pub insns: usize,
    /// Loaded without the counter table: its one member needs every map
    /// the kernel allows, so its verdicts are not counted.
    pub uncounted: bool,
}

/// A segment being filled.
struct Open {
    plan: SegmentPlan,
    maps: BTreeSet<u32>,
    /// It holds a large member (alone).
    large: bool,
}

fn is_large(m: &MemberNeeds) -> bool {
    m.insns > LARGE_MEMBER_INSNS
}

impl Open {
    fn new(at: usize, m: &MemberNeeds) -> Open {
        let maps: BTreeSet<u32> = m.maps.iter().copied().collect();
        let plan = SegmentPlan {
            members: at..at + 1,
            privilege: m.privilege,
            gpl: m.gpl,
            maps: maps.len(),
            insns: m.insns,
            uncounted: false,
        };
        Open { plan, maps, large: is_large(m) }
    }

    /// Whether `m` may join, with room for `map_limit` maps of members.
    fn accepts(&self, m: &MemberNeeds, budget: &Budget, map_limit: usize) -> bool {
        let p = &self.plan;
        let maps = self.maps.len() + m.maps.iter().filter(|id| !self.maps.contains(id)).count();
        p.privilege == m.privilege
            && p.gpl == m.gpl
            && !self.large
            && !is_large(m)
            && budget.max_members.is_none_or(|n| p.members.len() < n)
            && p.insns + m.insns + DISPATCH_INSNS * (p.members.len() + 1) <= budget.max_insns
            && maps <= map_limit
    }

    fn push(&mut self, m: &MemberNeeds) {
        self.maps.extend(m.maps.iter().copied());
        self.plan.maps = self.maps.len();
        self.plan.insns += m.insns;
        self.plan.members.end += 1;
    }
}

/// Cuts `members` (in run order, every one reachable) into segments.
pub fn plan(members: &[MemberNeeds], budget: &Budget) -> Result<Vec<SegmentPlan>, Error> {
    let counter = usize::from(budget.counting);
    // Without a program array (one segment) or with one (several).
    let (alone, cut) = (MAX_MAPS - counter, MAX_MAPS - counter - 1);
    if let Some(one) = one_segment(members, budget, alone) {
        return Ok(vec![one]);
    }
    let mut out: Vec<SegmentPlan> = Vec::new();
    let mut open: Option<Open> = None;
    for (i, m) in members.iter().enumerate() {
        if let Some(o) = open.as_mut().filter(|o| o.accepts(m, budget, cut)) {
            o.push(m);
            continue;
        }
        out.extend(open.take().map(|o| o.plan));
        let last = i + 1 == members.len();
        let room = if last { alone } else { cut };
        let mut fresh = Open::new(i, m);
        if fresh.maps.len() > room + counter {
            return Err(too_many_maps(m, room + counter, 0, last));
        }
        if fresh.maps.len() > room {
            // Only without the counter table: alone, and not counted.
            fresh.plan.uncounted = true;
            out.push(fresh.plan);
            continue;
        }
        open = Some(fresh);
    }
    out.extend(open.map(|o| o.plan));
    check_tail_calls(&out, members)?;
    Ok(out)
}

/// The whole chain as one segment, when it fits one.
fn one_segment(members: &[MemberNeeds], budget: &Budget, map_limit: usize) -> Option<SegmentPlan> {
    let (first, rest) = members.split_first()?;
    let mut open = Open::new(0, first);
    for m in rest {
        if !open.accepts(m, budget, map_limit) {
            return None;
        }
        open.push(m);
    }
    (open.maps.len() <= map_limit).then_some(open.plan)
}

fn too_many_maps(m: &MemberNeeds, room: usize, counter: usize, last: bool) -> Error {
    let taken = if last { "" } else { ", less 1 for the chain's program array" };
    let counting = if counter > 0 { ", less 1 for the verdict counter table" } else { "" };
    Error::LimitExceeded(format!(
        "program '{}' (id {}) uses {} maps; where it runs in the chain it may use at most {room} \
         (the kernel's {MAX_MAPS} maps per program{taken}{counting}){}",
        m.name,
        m.id,
        m.maps.len(),
        if last { "" } else { "; only the chain's last program may use all of them" }
    ))
}

/// The kernel's 33 tail calls per packet: at most 34 segments, and a member
/// that tail-calls needs at least one left where it runs.
pub fn check_tail_calls(segments: &[SegmentPlan], members: &[MemberNeeds]) -> Result<(), Error> {
    if let Some(over) = segments.get(MAX_SEGMENTS) {
        let m = &members[over.members.start];
        return Err(Error::LimitExceeded(format!(
            "the chain would need {} segments, but the kernel allows {MAX_TAIL_CALLS} tail calls per packet \
             ({MAX_SEGMENTS} segments): program '{}' (id {}) would start segment {}",
            segments.len(),
            m.name,
            m.id,
            MAX_SEGMENTS + 1
        )));
    }
    for (k, segment) in segments.iter().enumerate() {
        let left = MAX_TAIL_CALLS - k;
        if let Some(m) = members[segment.members.clone()].iter().find(|m| m.tail_calls && left == 0) {
            return Err(Error::LimitExceeded(format!(
                "program '{}' (id {}) tail-calls, but it would run in segment {} where the chain's {k} \
                 boundaries have used all {MAX_TAIL_CALLS} tail calls the kernel allows per packet",
                m.name,
                m.id,
                k + 1
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one segment is a list of one range
mod tests {
    use super::*;

    fn member(id: u64, privilege: Privilege, gpl: bool, maps: Vec<u32>) -> MemberNeeds {
        MemberNeeds { id, name: format!("m{id}"), privilege, gpl, maps, insns: 50, tail_calls: false }
    }

    fn root(id: u64) -> MemberNeeds {
        member(id, Privilege::Full, true, vec![id as u32 * 1000])
    }

    fn ranges(plan: &[SegmentPlan]) -> Vec<Range<usize>> {
        plan.iter().map(|s| s.members.clone()).collect()
    }

    #[test]
    fn a_chain_that_fits_is_one_segment() {
        let members: Vec<_> = (1..=10).map(root).collect();
        let plan = plan(&members, &Budget::default()).unwrap();
        assert_eq!(ranges(&plan), [0..10]);
        assert_eq!((plan[0].privilege, plan[0].gpl, plan[0].maps, plan[0].insns), (Privilege::Full, true, 10, 500));
    }

    #[test]
    fn privilege_and_license_classes_cut_the_chain() {
        let members = vec![
            root(1),
            member(2, Privilege::User, true, vec![]),
            member(3, Privilege::User, true, vec![]),
            member(4, Privilege::User, false, vec![]),
            root(5),
        ];
        let plan = plan(&members, &Budget::default()).unwrap();
        assert_eq!(ranges(&plan), [0..1, 1..3, 3..4, 4..5]);
        assert_eq!(plan[1].privilege, Privilege::User);
        assert!(!plan[2].gpl);
    }

    #[test]
    fn sixty_four_maps_one_segment_more_cut_with_room_for_the_array() {
        let members: Vec<_> = (1..=64).map(root).collect();
        assert_eq!(ranges(&plan(&members, &Budget::default()).unwrap()), [0..64]);
        let counting = Budget { counting: true, ..Budget::default() };
        // 63 per segment with counting alone; cut: 62 (array and counter table).
        assert_eq!(ranges(&plan(&members, &counting).unwrap()), [0..62, 62..64]);
        let members: Vec<_> = (1..=500).map(root).collect();
        let plan = plan(&members, &Budget::default()).unwrap();
        assert_eq!(plan.len(), 8, "63 one-map members per segment");
        assert!(plan.iter().all(|s| s.maps <= 63));
    }

    #[test]
    fn shared_maps_count_once() {
        let members: Vec<_> = (1..=100).map(|id| member(id, Privilege::Full, true, vec![7])).collect();
        assert_eq!(ranges(&plan(&members, &Budget::default()).unwrap()), [0..100]);
    }

    #[test]
    fn a_member_with_sixty_four_maps_runs_last_or_is_refused_by_name() {
        let big = member(9, Privilege::User, true, (1..=64).collect());
        let plan_last = plan(&[root(1), big.clone()], &Budget::default()).unwrap();
        assert_eq!(ranges(&plan_last), [0..1, 1..2]);
        let Err(Error::LimitExceeded(why)) = plan(&[big, root(1)], &Budget::default()) else { panic!() };
        assert!(why.contains("'m9' (id 9) uses 64 maps") && why.contains("at most 63"), "{why}");
    }

    #[test]
    fn forced_boundaries_and_the_instruction_budget() {
        let members: Vec<_> = (1..=10).map(root).collect();
        let every3 = Budget { max_members: Some(3), ..Budget::default() };
        assert_eq!(ranges(&plan(&members, &every3).unwrap()), [0..3, 3..6, 6..9, 9..10]);
        let small = Budget { max_insns: 200, ..Budget::default() };
        assert_eq!(ranges(&plan(&members, &small).unwrap()), [0..3, 3..6, 6..9, 9..10]);
    }

    #[test]
    fn a_large_member_runs_in_a_segment_of_its_own_next_to_others() {
        let mut members: Vec<_> = (1..=4).map(root).collect();
        members[1].insns = LARGE_MEMBER_INSNS + 1;
        assert_eq!(ranges(&plan(&members, &Budget::default()).unwrap()), [0..1, 1..2, 2..4]);
        assert_eq!(ranges(&plan(&members[1..2], &Budget::default()).unwrap()), [0..1], "alone: one program");
        members[1].insns = LARGE_MEMBER_INSNS;
        assert_eq!(ranges(&plan(&members, &Budget::default()).unwrap()), [0..4]);
    }

    #[test]
    fn thirty_four_segments_at_most() {
        let alternating: Vec<_> = (1..=35)
            .map(|id| member(id, if id % 2 == 0 { Privilege::User } else { Privilege::Full }, true, vec![]))
            .collect();
        assert_eq!(plan(&alternating[..34], &Budget::default()).unwrap().len(), 34);
        let Err(Error::LimitExceeded(why)) = plan(&alternating, &Budget::default()) else { panic!() };
        assert!(why.contains("35 segments") && why.contains("33 tail calls") && why.contains("'m35' (id 35)"), "{why}");
    }

    #[test]
    fn a_member_that_tail_calls_needs_one_tail_call_left() {
        let mut members: Vec<_> = (1..=34)
            .map(|id| member(id, if id % 2 == 0 { Privilege::User } else { Privilege::Full }, true, vec![]))
            .collect();
        members[32].tail_calls = true;
        assert!(plan(&members, &Budget::default()).is_ok());
        members[33].tail_calls = true;
        let Err(Error::LimitExceeded(why)) = plan(&members, &Budget::default()) else { panic!() };
        assert!(why.contains("'m34' (id 34) tail-calls") && why.contains("segment 34"), "{why}");
    }
}
