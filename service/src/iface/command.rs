//! The requests an owner serves, one variant each, with their reply channel.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::caller::Caller;
use crate::engine::{ActionSet, ChainReport, LoadedProgram, MemberId};
use crate::error::ServiceError;
use crate::kernel::hook::AttachMode;

/// What a caller asked for when adding a program, decoded from its options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddRequest {
    pub priority: Option<i32>,
    pub proceed_on: Option<ActionSet>,
    pub mode: Option<AttachMode>,
    pub tag: String,
    pub replace: bool,
    pub expected_generation: Option<u64>,
    pub persist: bool,
    pub snapshot: bool,
    pub force: bool,
    /// The object's SHA-256 as the caller announces it (lowercase hex), checked after reading.
    pub sha256: Option<String>,
    /// Values of global variables and map sizes, set before the object is loaded.
    pub config: crate::program::ObjectConfig,
    /// On replace: the new program starts with its own maps (none carried over).
    pub fresh_maps: bool,
}

/// One program of a change of several parts (see [`Command::Change`]).
pub struct ChangeAdd {
    pub program: LoadedProgram,
    pub object: Arc<Vec<u8>>,
    /// Its own options; mode, force and expected-generation belong to the change.
    pub request: AddRequest,
}

/// A change of several parts, made as one (one link, one swap, one generation).
pub struct ChangeRequest {
    pub add: Vec<ChangeAdd>,
    pub remove: Vec<MemberId>,
    pub mode: Option<AttachMode>,
    pub force: bool,
    pub expected_generation: Option<u64>,
}

pub type Reply<T> = oneshot::Sender<Result<T, ServiceError>>;

pub enum Command {
    /// Add a verified program (replacing the caller's program of the same tag
    /// with `replace`); `object` is its file, kept once it is in the chain.
    Add {
        program: Box<LoadedProgram>,
        object: Arc<Vec<u8>>,
        request: AddRequest,
        caller: Caller,
        reply: Reply<MemberId>,
    },
    /// A dry run of Add: the report of the chain it would produce; nothing changes.
    Plan { program: Box<LoadedProgram>, request: AddRequest, caller: Caller, reply: Reply<ChainReport> },
    /// The report of the running chain (none when nothing runs).
    Explain { reply: Reply<Option<ChainReport>> },
    /// Several adds, replaces and removals as one change.
    Change { request: Box<ChangeRequest>, caller: Caller, reply: Reply<Vec<MemberId>> },
    /// A dry run of a Change: the chain it would make, reported.
    PlanChange { request: Box<ChangeRequest>, caller: Caller, reply: Reply<ChainReport> },
    /// Remove a member.
    Remove { id: MemberId, caller: Caller, reply: Reply<()> },
    /// Duplicates of a member's map descriptors, by map name.
    GetMaps { id: MemberId, caller: Caller, names: Option<Vec<String>>, reply: Reply<Vec<(String, OwnedFd)>> },
    /// Take the interface back from a foreign program.
    Reclaim { caller: Caller, reply: Reply<()> },
    /// Hold the hook with a pass-through program without members, or let it go.
    SetHold { on: bool, caller: Caller, reply: Reply<()> },
    /// Switch verdict counting on or off (a relink).
    SetCounting { on: bool, caller: Caller, reply: Reply<()> },
    /// Save the maps of members that asked for a snapshot (at exit).
    SaveSnapshots { reply: Reply<()> },
    /// Compare the kernel's XDP state with the owner's (no reply: a poll).
    CheckForeign,
    /// The interface got a new name.
    Renamed(String),
    /// The interface is gone: drop everything and end the task.
    Gone,
    /// The interface's namespace is gone: drop everything but the record of
    /// persistent programs (they come back with a namespace of that name).
    NetnsGone { keep_persistent: bool },
}

impl Command {
    /// For logs of a slow owner.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Add { .. } => "Add",
            Command::Plan { .. } => "Plan",
            Command::Explain { .. } => "Explain",
            Command::Change { .. } => "Change",
            Command::PlanChange { .. } => "PlanChange",
            Command::Remove { .. } => "Remove",
            Command::GetMaps { .. } => "GetMaps",
            Command::Reclaim { .. } => "Reclaim",
            Command::SetCounting { .. } => "SetCounting",
            Command::SetHold { .. } => "SetHold",
            Command::SaveSnapshots { .. } => "SaveSnapshots",
            Command::CheckForeign => "CheckForeign",
            Command::Renamed(_) => "Renamed",
            Command::Gone => "Gone",
            Command::NetnsGone { .. } => "NetnsGone",
        }
    }
}
