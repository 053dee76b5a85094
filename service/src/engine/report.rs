//! What a linked chain is, as plain data: its members in run order and how
//! each is placed, and for each loaded program (a segment: see
//! `engine::segments`) its instructions and maps against the kernel's
//! limits, the instructions the verifier processed and how long it took. A dry run
//! answers with the report of the chain a change would produce; the running
//! chain's report says the same of what runs.

use std::time::Duration;

use super::linker::LinkedChain;
use super::member::{Member, MemberId};
use super::object::Privilege;

/// Largest program an unprivileged loader may load (the kernel's `BPF_MAXINSNS`).
pub const USER_INSN_LIMIT: usize = 4096;
/// Largest program, and most instructions the verifier processes, with
/// `CAP_BPF` (the kernel's `BPF_COMPLEXITY_LIMIT_INSNS`).
pub const INSN_LIMIT: usize = 1_000_000;
/// Most maps one program may use (the kernel's `MAX_USED_MAPS`).
pub const MAP_LIMIT: usize = 64;

/// One member of a reported chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberReport {
    /// Its id; 0 for the program a dry run would add.
    pub id: MemberId,
    /// Function name in its object.
    pub name: String,
    /// The application's name for itself.
    pub tag: String,
    /// Lower runs first.
    pub priority: i32,
    /// "inline", "call" or "not-linked" (an earlier member ends the chain);
    /// "" when not known (a chain adopted after a restart).
    pub linking: String,
    /// Instructions of its own program.
    pub insns: usize,
    /// Maps it took over from the program it replaces.
    pub carried_maps: Vec<String>,
}

/// One loaded program of a chain, against the kernel's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    /// Its members, in run order.
    pub members: Vec<MemberId>,
    /// Instructions of the linked program (0 when not known: adopted).
    pub insns: usize,
    /// Most instructions a program of this privilege may have.
    pub insn_limit: usize,
    /// Maps it uses, as the kernel counts them.
    pub maps: usize,
    /// Most maps a program may use.
    pub map_limit: usize,
    /// Instructions the verifier processed to accept it.
    pub verified_insns: u32,
    /// Most instructions the verifier processes.
    pub verified_limit: usize,
    /// How long loading (verification) took; zero when not known.
    pub verify_time: Duration,
}

/// A chain, linked: what a dry run answers and what explains a running chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainReport {
    /// The chain's generation the report is based on (a dry run's change
    /// would make it one more).
    pub generation: u64,
    /// Members in run order.
    pub members: Vec<MemberReport>,
    /// The loaded programs in run order: one, or the segments of a chain
    /// whose programs cannot share one verifier context.
    pub segments: Vec<SegmentReport>,
}

fn member_report(m: &Member, linking: &str) -> MemberReport {
    MemberReport {
        id: m.id,
        name: m.program.name.clone(),
        tag: m.tag.clone(),
        priority: m.priority,
        linking: linking.to_string(),
        insns: m.program.insn_count(),
        carried_maps: m.carried_maps.clone(),
    }
}

/// Most instructions a program loaded with `privilege` may have.
fn insn_limit(privilege: Privilege) -> usize {
    if privilege == Privilege::User {
        USER_INSN_LIMIT
    } else {
        INSN_LIMIT
    }
}

/// The report of `members` (run order) linked into `linked`, one entry per segment.
pub(super) fn of_linked(generation: u64, members: &[Member], linked: &LinkedChain) -> ChainReport {
    let segments = linked
        .segments
        .iter()
        .map(|s| SegmentReport {
            members: s.members.clone(),
            insns: s.insn_count,
            insn_limit: insn_limit(s.plan.privilege),
            maps: s.map_count,
            map_limit: MAP_LIMIT,
            verified_insns: s.verified_insns,
            verified_limit: INSN_LIMIT,
            verify_time: s.verify_time,
        })
        .collect();
    ChainReport {
        generation,
        members: members.iter().map(|m| member_report(m, linked.linking_of(m.id))).collect(),
        segments,
    }
}

/// The report of a chain adopted after a restart: what the kernel says of
/// the running program (`maps`, `verified_insns`); placement and size are
/// known again after the next change.
pub(super) fn of_adopted(generation: u64, members: &[Member], maps: usize, verified_insns: u32) -> ChainReport {
    // The first segment runs; its members, of one privilege, are not known apart from the others here.
    let privilege =
        if members.iter().any(|m| m.privilege == Privilege::User) { Privilege::User } else { Privilege::Full };
    let segment = SegmentReport {
        members: members.iter().map(|m| m.id).collect(),
        insns: 0,
        insn_limit: insn_limit(privilege),
        maps,
        map_limit: MAP_LIMIT,
        verified_insns,
        verified_limit: INSN_LIMIT,
        verify_time: Duration::ZERO,
    };
    ChainReport { generation, members: members.iter().map(|m| member_report(m, "")).collect(), segments: vec![segment] }
}
