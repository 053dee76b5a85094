//! The report of a chain on the wire (`a{sv}`, nested `aa{sv}`): what
//! PlanAddProgram answers and Explain tells of the running chain. Built from
//! the engine's [`ChainReport`]; names in kebab-case like the options.

use zbus::{OwnedObjectPath, SerializeDict, Type};

use crate::engine::{ChainReport, MemberReport, SegmentReport};

/// One member: `id` (t, 0 for the program a dry run would add), `path` (o,
/// "/" for it), `name`, `tag`, `linking` (s), `priority` (i), `instructions`
/// (u), `carried-maps` (as).
#[derive(Debug, SerializeDict, Type)]
#[zbus(signature = "dict", rename_all = "kebab-case")]
pub struct Member {
    id: u64,
    path: OwnedObjectPath,
    name: String,
    tag: String,
    linking: String,
    priority: i32,
    instructions: u32,
    carried_maps: Vec<String>,
}

/// One loaded program of the chain, against the kernel's limits.
#[derive(Debug, SerializeDict, Type)]
#[zbus(signature = "dict", rename_all = "kebab-case")]
pub struct Segment {
    members: Vec<u64>,
    instructions: u32,
    instruction_limit: u32,
    maps: u32,
    map_limit: u32,
    verified_instructions: u32,
    verified_limit: u32,
    verify_usec: u64,
}

/// A chain: the generation it is based on, its members in run order, its segments.
#[derive(Debug, SerializeDict, Type)]
#[zbus(signature = "dict", rename_all = "kebab-case")]
pub struct Report {
    generation: u64,
    members: Vec<Member>,
    segments: Vec<Segment>,
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn member(ifindex: u32, m: &MemberReport) -> Member {
    let path = if m.id == 0 { super::root_path() } else { super::program_path(ifindex, m.id) };
    Member {
        id: m.id,
        path,
        name: m.name.clone(),
        tag: m.tag.clone(),
        linking: m.linking.clone(),
        priority: m.priority,
        instructions: clamp(m.insns),
        carried_maps: m.carried_maps.clone(),
    }
}

fn segment(s: &SegmentReport) -> Segment {
    Segment {
        members: s.members.clone(),
        instructions: clamp(s.insns),
        instruction_limit: clamp(s.insn_limit),
        maps: clamp(s.maps),
        map_limit: clamp(s.map_limit),
        verified_instructions: s.verified_insns,
        verified_limit: clamp(s.verified_limit),
        verify_usec: u64::try_from(s.verify_time.as_micros()).unwrap_or(u64::MAX),
    }
}

impl Report {
    /// The wire form of `report` for interface `ifindex`; with nothing
    /// running, no members and no segments at `generation`.
    pub fn of(ifindex: u32, report: Option<&ChainReport>, generation: u64) -> Report {
        let Some(r) = report else { return Report { generation, members: Vec::new(), segments: Vec::new() } };
        Report {
            generation: r.generation,
            members: r.members.iter().map(|m| member(ifindex, m)).collect(),
            segments: r.segments.iter().map(segment).collect(),
        }
    }
}
