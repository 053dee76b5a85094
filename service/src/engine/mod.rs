//! The chain engine: intake of application objects, the userspace linker,
//! and per-interface chains that are swapped in atomically.

pub mod actions;
mod btf;
pub mod chain;
mod elf;
mod insn;
pub mod linker;
pub mod object;
pub mod run_config;
pub mod stats;

pub use actions::{Action, ActionSet};
pub use chain::{
    next_member_id, reserve_member_ids, AddOptions, Chain, CounterResume, Gate, Member, MemberId, Proposal,
    RestoredMember,
};
pub use linker::{LinkMode, LinkedChain};
pub use object::{LoadedProgram, ProgramMap};
pub use run_config::RunConfig;
pub use stats::Stats;

pub use crate::kernel::hook::{AttachMode, ForeignProgram};
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
    VerifierRejected { program: String, summary: String, log: String },
    /// The program verifies alone but the linked chain does not (combined
    /// limits: stack, call depth, complexity).
    #[error("the chain does not verify with program '{member}'{}: {summary}", insn.map(|i| format!(" at its instruction {i}")).unwrap_or_default())]
    ChainRejected { member_id: Option<MemberId>, member: String, insn: Option<usize>, summary: String, log: String },
    /// A program attached by someone else holds the interface.
    #[error("{0}")]
    Busy(ForeignProgram),
    /// The chain changed under us, or the request contradicts the chain's state.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("no program {0} on this interface")]
    NoSuchProgram(MemberId),
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The change could not be made durable (its record, object or pins); nothing changed.
    #[error("not durable: {0}")]
    NotDurable(String),
    #[error("kernel error: {0}")]
    Kernel(#[from] KernelError),
}
