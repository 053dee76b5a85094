#![doc = include_str!("../README.md")]

use std::collections::HashMap;

use zbus::{proxy, OwnedObjectPath, Variant};

pub const BUS_NAME: &str = "org.xdp.Manager1";
pub const MANAGER_PATH: &str = "/org/xdp/Manager1";

/// `org.xdp.Manager1` at /org/xdp/Manager1.
#[proxy(interface = "org.xdp.Manager1", default_service = "org.xdp.Manager1", default_path = "/org/xdp/Manager1")]
pub trait Manager {
    /// The link object of the interface called `name`.
    fn get_link_by_name(&self, name: &str) -> zbus::Result<OwnedObjectPath>;

    /// The link object of the interface with index `index`.
    fn get_link_by_index(&self, index: i32) -> zbus::Result<OwnedObjectPath>;

    /// The link object of the interface called `name` in the named network
    /// namespace `netns` ("" : the service's own).
    fn get_link_in_netns(&self, netns: &str, name: &str) -> zbus::Result<OwnedObjectPath>;

    /// The link object of the interface called `name` in the followed network
    /// namespace whose inode is `inode`.
    fn get_link_in_netns_by_inode(&self, inode: u64, name: &str) -> zbus::Result<OwnedObjectPath>;

    /// Has the service follow the network namespace of process `pid`; its inode.
    fn follow_netns_of_process(&self, pid: u32) -> zbus::Result<u64>;

    /// Has the service follow the network namespace `netns` refers to; its inode.
    fn follow_netns_by_descriptor(&self, netns: zbus::Fd<'_>) -> zbus::Result<u64>;

    /// The inode of the service's own network namespace.
    #[zbus(property)]
    fn netns_inode(&self) -> zbus::Result<u64>;

    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;

    #[zbus(property)]
    fn features(&self) -> zbus::Result<Vec<String>>;
}

/// A chain as Link.Explain and Link.PlanAddProgram report it (`a{sv}`).
#[derive(Debug, Clone, PartialEq, Eq, zbus::DeserializeDict, zbus::Type)]
#[zbus(signature = "dict", rename_all = "kebab-case")]
pub struct ChainReport {
    /// The chain's generation the report is based on.
    pub generation: u64,
    /// Members in run order.
    pub members: Vec<MemberReport>,
    /// The loaded programs of the chain in run order (the segments of a segmented chain).
    pub segments: Vec<SegmentReport>,
}

/// One member of a [`ChainReport`].
#[derive(Debug, Clone, PartialEq, Eq, zbus::DeserializeDict, zbus::Type)]
#[zbus(signature = "dict", rename_all = "kebab-case")]
pub struct MemberReport {
    /// 0 for the program a dry run would add.
    pub id: u64,
    /// "/" for the program a dry run would add.
    pub path: OwnedObjectPath,
    pub name: String,
    pub tag: String,
    /// inline, call, not-linked, or "" when not known.
    pub linking: String,
    pub priority: i32,
    /// Instructions of its own program.
    pub instructions: u32,
    /// Maps it takes over from the program it replaces.
    pub carried_maps: Vec<String>,
}

/// One loaded program of a [`ChainReport`], against the kernel's limits.
#[derive(Debug, Clone, PartialEq, Eq, zbus::DeserializeDict, zbus::Type)]
#[zbus(signature = "dict", rename_all = "kebab-case")]
pub struct SegmentReport {
    pub members: Vec<u64>,
    pub instructions: u32,
    pub instruction_limit: u32,
    pub maps: u32,
    pub map_limit: u32,
    pub verified_instructions: u32,
    pub verified_limit: u32,
    pub verify_usec: u64,
}

/// `org.xdp.Manager1.Link`: one object per network interface.
#[proxy(interface = "org.xdp.Manager1.Link", default_service = "org.xdp.Manager1")]
pub trait Link {
    /// Adds the program `program` of the object read from `object`.
    fn add_program(
        &self,
        object: zbus::Fd<'_>,
        program: &str,
        options: HashMap<&str, Variant<'_>>,
    ) -> zbus::Result<OwnedObjectPath>;

    /// Adds the program `program` of the object at `path` (opened as the caller).
    fn add_program_from_path(
        &self,
        path: &str,
        program: &str,
        options: HashMap<&str, Variant<'_>>,
    ) -> zbus::Result<OwnedObjectPath>;

    /// A dry run of AddProgram: the chain the change would produce; nothing changes.
    fn plan_add_program(
        &self,
        object: zbus::Fd<'_>,
        program: &str,
        options: HashMap<&str, Variant<'_>>,
    ) -> zbus::Result<ChainReport>;

    /// A dry run of AddProgramFromPath.
    fn plan_add_program_from_path(
        &self,
        path: &str,
        program: &str,
        options: HashMap<&str, Variant<'_>>,
    ) -> zbus::Result<ChainReport>;

    /// A dry run of ChangeChain.
    #[allow(clippy::type_complexity)]
    fn plan_change_chain(
        &self,
        add: Vec<(zbus::Fd<'_>, &str, HashMap<&str, Variant<'_>>)>,
        remove: Vec<u64>,
        options: HashMap<&str, Variant<'_>>,
    ) -> zbus::Result<ChainReport>;

    /// The running chain, as PlanAddProgram reports a planned one.
    fn explain(&self) -> zbus::Result<ChainReport>;

    /// Adds the programs of `add` and removes those of `remove` (ids) as one
    /// change of the chain; returns the new programs' objects in order.
    #[allow(clippy::type_complexity)]
    fn change_chain(
        &self,
        add: Vec<(zbus::Fd<'_>, &str, HashMap<&str, Variant<'_>>)>,
        remove: Vec<u64>,
        options: HashMap<&str, Variant<'_>>,
    ) -> zbus::Result<Vec<OwnedObjectPath>>;

    /// Takes the interface back from a foreign program.
    fn reclaim(&self) -> zbus::Result<()>;

    /// Switches per-program verdict counting on or off.
    fn set_counting(&self, enabled: bool) -> zbus::Result<()>;

    #[zbus(property)]
    fn counting(&self) -> zbus::Result<bool>;

    /// Holds the hook with a pass-through program without programs, or lets it go.
    fn set_hold(&self, enabled: bool) -> zbus::Result<()>;

    #[zbus(property)]
    fn hold(&self) -> zbus::Result<bool>;

    #[zbus(property)]
    fn index(&self) -> zbus::Result<i32>;

    #[zbus(property)]
    fn name(&self) -> zbus::Result<String>;

    /// The interface's network namespace by name ("" : the service's own).
    #[zbus(property)]
    fn netns(&self) -> zbus::Result<String>;

    /// The inode of the interface's network namespace.
    #[zbus(property)]
    fn netns_inode(&self) -> zbus::Result<u64>;

    #[zbus(property)]
    fn mode(&self) -> zbus::Result<String>;

    #[zbus(property)]
    fn generation(&self) -> zbus::Result<u64>;

    #[zbus(property)]
    fn programs(&self) -> zbus::Result<Vec<OwnedObjectPath>>;

    #[zbus(property)]
    fn kernel_program_id(&self) -> zbus::Result<u32>;

    #[zbus(property)]
    fn foreign_program_id(&self) -> zbus::Result<u32>;

    #[zbus(property)]
    fn linking(&self) -> zbus::Result<HashMap<OwnedObjectPath, String>>;

    #[zbus(signal)]
    fn chain_changed(&self, generation: u64, programs: Vec<OwnedObjectPath>) -> zbus::Result<()>;

    #[zbus(signal)]
    fn foreign_program_detected(&self, id: u32) -> zbus::Result<()>;
}

/// `org.xdp.Manager1.Program`: one object per program in a chain.
#[proxy(interface = "org.xdp.Manager1.Program", default_service = "org.xdp.Manager1")]
pub trait Program {
    fn remove(&self) -> zbus::Result<()>;

    fn get_maps(&self) -> zbus::Result<HashMap<String, zbus::OwnedFd>>;

    fn get_maps_by_name(&self, names: &[&str]) -> zbus::Result<HashMap<String, zbus::OwnedFd>>;

    #[zbus(property)]
    fn id(&self) -> zbus::Result<u64>;

    #[zbus(property)]
    fn name(&self) -> zbus::Result<String>;

    #[zbus(property)]
    fn link(&self) -> zbus::Result<OwnedObjectPath>;

    #[zbus(property)]
    fn priority(&self) -> zbus::Result<i32>;

    #[zbus(property)]
    fn proceed_on(&self) -> zbus::Result<Vec<String>>;

    #[zbus(property)]
    fn tag(&self) -> zbus::Result<String>;

    #[zbus(property)]
    fn owner(&self) -> zbus::Result<u32>;

    #[zbus(property)]
    fn sha256(&self) -> zbus::Result<String>;

    #[zbus(property)]
    fn loaded_at(&self) -> zbus::Result<u64>;

    #[zbus(property)]
    fn map_ids(&self) -> zbus::Result<HashMap<String, u32>>;

    /// Global variables set before the object was loaded (option `globals`).
    #[zbus(property)]
    fn globals(&self) -> zbus::Result<HashMap<String, String>>;

    /// Map sizes set before the object was loaded (option `map-sizes`).
    #[zbus(property)]
    fn map_sizes(&self) -> zbus::Result<HashMap<String, u32>>;
    /// Maps taken over from the program this one replaced (same kernel maps).
    #[zbus(property)]
    fn carried_maps(&self) -> zbus::Result<Vec<String>>;

    /// Verdict counts; never signalled (they change with every packet), so not cached.
    #[zbus(property(emits_changed_signal = "false"))]
    fn stats(&self) -> zbus::Result<HashMap<String, u64>>;

    /// Bytes of the packets counted in `stats`, by verdict; not cached either.
    #[zbus(property(emits_changed_signal = "false"))]
    fn bytes(&self) -> zbus::Result<HashMap<String, u64>>;
}
