//! What the record of an interface says: its members, in run order, each
//! with its [`ProgramSpec`], and the chain's generation. Stored as JSON by
//! [`super::Store`]; the member fields are the spec's, flattened.

use serde::{Deserialize, Serialize};

use crate::program::ProgramSpec;

/// One member of a recorded chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub id: u64,
    #[serde(flatten)]
    pub spec: ProgramSpec,
    /// Its slot in the interface's pinned verdict counter table, once counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter_slot: Option<usize>,
}

/// The record of one interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfaceRecord {
    pub ifindex: u32,
    pub name: String,
    pub generation: u64,
    /// The chain program the kernel runs for this record (0: none).
    pub kernel_program_id: u32,
    /// Whether per-program verdict counting is on.
    #[serde(default)]
    pub counting: bool,
    /// Whether a pass-through program stays attached without members (a
    /// record without members says the interface is held).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hold: bool,
    /// In run order.
    pub members: Vec<MemberRecord>,
}

impl MemberRecord {
    pub fn new(id: u64, spec: &ProgramSpec) -> MemberRecord {
        MemberRecord { id, spec: spec.clone(), counter_slot: None }
    }
}
