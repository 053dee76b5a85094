//! The one description of a program in a chain, from which the durable
//! record (`state::record`) and the D-Bus views (`iface::publish`) derive.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How a program's object is configured before it is loaded, as libbpf
/// skeletons do: values of global variables and sizes of maps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectConfig {
    /// A variable of `.rodata`, `.data` or `.bss` (or `.data.*`, `.rodata.*`)
    /// by name → its value as text: decimal, `0x` hexadecimal, `true`/`false`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub globals: BTreeMap<String, String>,
    /// A map by name → its `max_entries`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub map_sizes: BTreeMap<String, u32>,
    /// The object's name as the caller gives it (libbpf derives the names of
    /// global-data maps from it: `<object>.bss`), for a descriptor that names
    /// no file; the name in effect is recorded as [`ProgramSpec::object`].
    #[serde(skip)]
    pub object_name: Option<String>,
}

impl ObjectConfig {
    /// Nothing to configure.
    pub fn is_empty(&self) -> bool {
        self.globals.is_empty() && self.map_sizes.is_empty()
    }
}

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
    /// How the object was configured before it was loaded (again so on a restore).
    #[serde(default, skip_serializing_if = "ObjectConfig::is_empty")]
    pub config: ObjectConfig,
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
