//! A chain's members: their identity for life, what a member is, and the
//! options a program joins a chain with.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::actions::ActionSet;
use super::object::{LoadedProgram, Privilege};
use super::stats::{Stats, VerdictCounters};
use crate::kernel::hook::AttachMode;

/// Identifies a member for its whole life; never reused within a process,
/// nor across restarts (see [`reserve_member_ids`]), so a D-Bus object path
/// or a record never names two programs.
pub type MemberId = u64;

static NEXT_MEMBER_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh member id.
pub(crate) fn next_member_id() -> MemberId {
    NEXT_MEMBER_ID.fetch_add(1, Ordering::Relaxed)
}

/// The id the next new member will get (every id below it was handed out),
/// without handing it out: for the high-water mark the service records.
pub fn next_free_member_id() -> MemberId {
    NEXT_MEMBER_ID.load(Ordering::Relaxed)
}

/// Makes sure ids handed out from now on are above `id` (after a restart).
pub fn reserve_member_ids(id: MemberId) {
    NEXT_MEMBER_ID.fetch_max(id + 1, Ordering::Relaxed);
}

/// One program in a chain.
#[derive(Debug, Clone)]
pub struct Member {
    /// Its id for life.
    pub id: MemberId,
    /// The program, shared by the chains that include it (maps stay alive).
    pub program: Arc<LoadedProgram>,
    /// Lower runs first.
    pub priority: i32,
    /// Results that let the next member run.
    pub proceed_on: ActionSet,
    /// The application's name for itself.
    pub tag: String,
    /// Order of addition, the tie-break between equal priorities.
    pub(super) seq: u64,
    /// Verdict counters, created when counting is first switched on.
    pub(super) stats: Option<Arc<VerdictCounters>>,
    /// Whose program it is: a user's makes the whole chain verified as a user's.
    pub(super) privilege: Privilege,
    /// Maps it took over from the program it replaced (same kernel maps), sorted.
    pub carried_maps: Vec<String>,
}

impl Member {
    /// A new member (fresh id) of `program` under `options`, `seq`-th in order of addition.
    pub(super) fn new(program: LoadedProgram, options: &AddOptions, seq: u64) -> Member {
        Member { id: next_member_id(), ..Member::planned(program, options, seq) }
    }

    /// The member a dry run would add: id 0, which no member ever has.
    pub(super) fn planned(program: LoadedProgram, options: &AddOptions, seq: u64) -> Member {
        Member {
            id: 0,
            priority: options.priority.unwrap_or(program.run_config.priority),
            proceed_on: options.proceed_on.unwrap_or(program.run_config.proceed_on),
            tag: options.tag.clone(),
            program: Arc::new(program),
            seq,
            stats: None,
            privilege: options.privilege,
            carried_maps: Vec::new(),
        }
    }

    /// The member's verdict counters, once counting was switched on.
    pub fn counters(&self) -> Option<Arc<VerdictCounters>> {
        self.stats.clone()
    }

    /// Verdicts counted for this member (all zero while counting is off).
    pub fn stats(&self) -> Stats {
        self.stats.as_ref().map(|s| s.read()).unwrap_or_default()
    }

    /// Position among members of equal priority (order of addition).
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// A member as recorded before a restart.
#[derive(Debug)]
pub struct RestoredMember {
    /// Its id, kept across the restart.
    pub id: MemberId,
    /// The program, loaded again (reusing its pinned maps).
    pub program: LoadedProgram,
    /// Lower runs first.
    pub priority: i32,
    /// Results that let the next member run.
    pub proceed_on: ActionSet,
    /// The application's name for itself.
    pub tag: String,
    /// Order of addition.
    pub seq: u64,
    /// Whose program it is.
    pub privilege: Privilege,
}

impl From<RestoredMember> for Member {
    fn from(m: RestoredMember) -> Member {
        reserve_member_ids(m.id);
        Member {
            id: m.id,
            program: Arc::new(m.program),
            priority: m.priority,
            proceed_on: m.proceed_on,
            tag: m.tag,
            seq: m.seq,
            stats: None,
            privilege: m.privilege,
            carried_maps: Vec::new(),
        }
    }
}

/// How a program joins a chain; unset fields come from the object's run config.
#[derive(Debug, Clone, Default)]
pub struct AddOptions {
    /// Overrides the object's priority.
    pub priority: Option<i32>,
    /// Overrides the object's proceed-on set.
    pub proceed_on: Option<ActionSet>,
    /// The application's name for itself.
    pub tag: String,
    /// Only for the first program of an interface. `None`: native, falling
    /// back to generic where the driver has no native XDP.
    pub mode: Option<AttachMode>,
    /// Take the interface over from a program attached by someone else.
    pub force: bool,
    /// A user's program: the chain is verified as an unprivileged loader's.
    pub privilege: Privilege,
    /// On replace: start the new program with its own maps instead of
    /// carrying the replaced program's maps over (see `carry`).
    pub fresh_maps: bool,
}

/// The privilege a chain of `members` is verified with: a user's as soon as
/// one member is a user's.
pub(super) fn chain_privilege(members: &[Member]) -> Privilege {
    if members.iter().any(|m| m.privilege == Privilege::User) {
        Privilege::User
    } else {
        Privilege::Full
    }
}
