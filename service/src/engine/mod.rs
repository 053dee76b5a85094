#![warn(missing_docs)]
//! The chain engine: intake of application objects, the userspace linker,
//! and per-interface chains that are swapped in atomically.
//!
//! Policy lives here, kernel calls do not: every libbpf or libc call, with
//! the memory-safety obligations that come with it, is in `crate::kernel`,
//! which knows nothing of the engine. Inside, the imports point one way:
//! `chain → {linker, member} → {object, stats, actions, run_config, elf}`.

pub mod actions;
mod carry;
pub mod chain;
mod elf;
pub mod linker;
pub mod maps;
pub mod member;
pub mod object;
pub mod report;
pub mod run_config;
pub mod sandbox;
pub mod stats;

pub use actions::{Action, ActionSet};
pub use chain::{Chain, CounterResume, Gate, Proposal};
pub use linker::{LinkMode, LinkedChain};
pub use member::{next_free_member_id, reserve_member_ids, AddOptions, Member, MemberId, RestoredMember};
pub use object::{LoadedProgram, ProgramMap};
pub use report::{ChainReport, MemberReport, SegmentReport};
pub use run_config::RunConfig;
pub use stats::Stats;

use crate::kernel::hook::{ForeignProgram, HookError};
use crate::kernel::KernelError;

/// Everything that can go wrong in the engine; each variant maps to one
/// error name of the D-Bus contract.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object is not something we can load (not ELF, not BPF, no such
    /// program, not XDP, bad metadata, ...).
    #[error("invalid object: {0}")]
    InvalidObject(String),
    /// The kernel verifier rejected the application's program on its own.
    #[error("the verifier rejected program '{program}': {summary}")]
    VerifierRejected {
        /// The program's function name.
        program: String,
        /// The log line that says why.
        summary: String,
        /// The whole verifier log, for the application's developer.
        log: String,
    },
    /// The program verifies alone but the linked chain does not (combined
    /// limits: stack, call depth, complexity).
    #[error("the chain does not verify with program '{member}'{}: {summary}", insn.map(|i| format!(" at its instruction {i}")).unwrap_or_default())]
    ChainRejected {
        /// The member the verifier stopped in, when known.
        member_id: Option<MemberId>,
        /// Its function name, or what else is at fault.
        member: String,
        /// The instruction, in the member's own numbering (as in its standalone log).
        insn: Option<usize>,
        /// The log line that says why.
        summary: String,
        /// The whole verifier log of the chain.
        log: String,
    },
    /// A program attached by someone else holds the interface.
    #[error("{0}")]
    Busy(ForeignProgram),
    /// The chain changed under us, or the request contradicts the chain's state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// No member has this id.
    #[error("no program {0} on this interface")]
    NoSuchProgram(MemberId),
    /// A cap (object size, members, counter slots) would be exceeded.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// The request itself is malformed (e.g. an empty chain to link).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The change could not be made durable (its record, object or pins); nothing changed.
    #[error("not durable: {0}")]
    NotDurable(String),
    /// A kernel call failed for reasons that are not the object's fault.
    #[error("kernel error: {0}")]
    Kernel(#[from] KernelError),
}

impl From<HookError> for Error {
    fn from(e: HookError) -> Error {
        match e {
            HookError::Busy(foreign) => Error::Busy(foreign),
            HookError::Conflict(why) => Error::Conflict(why),
            HookError::Kernel(e) => Error::Kernel(e),
        }
    }
}
