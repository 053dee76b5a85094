//! The one description of a program in a chain, from which the durable
//! record (`state::record`) and the D-Bus views (`iface::publish`) derive.

use serde::{Deserialize, Serialize};

/// What a program is and how it joined its chain: fixed for the program's life.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramSpec {
    /// Function name of the program in its object.
    pub function: String,
    /// SHA-256 of the object the program came from, hex.
    pub sha256: String,
    /// The object's name as libbpf knows it (after its file name; global-data
    /// maps are `<object>.data`); empty in records written before it existed.
    #[serde(default)]
    pub object: String,
    /// Lower runs first.
    pub priority: i32,
    /// Actions on which the chain proceeds to the next program.
    pub proceed_on: Vec<String>,
    /// The application's name for itself.
    pub tag: String,
    /// Uid of the caller who added the program (`owner` in the record).
    #[serde(rename = "owner")]
    pub owner_uid: u32,
    /// When the program was added, in microseconds since the epoch.
    pub loaded_at: u64,
    /// Comes back after a reboot.
    pub persist: bool,
    /// Restore the maps from the snapshot saved when the service last stopped.
    #[serde(default)]
    pub snapshot: bool,
    /// Estimated kernel memory of the program's maps: what its owner is charged.
    #[serde(default)]
    pub map_bytes: u64,
    /// Maps taken over from the program this one replaced (the same kernel
    /// maps, with their contents), sorted; empty for a program added afresh.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carried_maps: Vec<String>,
}

impl ProgramSpec {
    /// What the program counts against its owner's limits.
    pub fn charge(&self) -> crate::limits::Charge {
        crate::limits::Charge::new(self.map_bytes, self.snapshot)
    }
}
