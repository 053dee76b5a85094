//! The D-Bus face of the service: object paths, the three interfaces of the
//! contract, its errors and options, and the [`publisher::Publisher`] that
//! shows what the owners report. Every mutating method keeps one order:
//! decode → admit (`request::Front::begin`) → authorize → read the object
//! (`intake`) → hand the change to the interface's owner, which mutates,
//! persists and publishes → reply.

pub mod change;
pub mod change_options;
pub mod config_options;
pub mod error;
pub mod introspect;
pub mod link;
pub mod manager;
pub mod objects;
pub mod options;
pub mod program;
pub mod publisher;
pub mod report;

use zbus::OwnedObjectPath;

pub const BUS_NAME: &str = "org.xdp.Manager1";
pub const MANAGER_PATH: &str = "/org/xdp/Manager1";

fn path(p: String) -> OwnedObjectPath {
    // Paths built from numbers only: always valid.
    OwnedObjectPath::try_from(p).unwrap_or_else(|_| OwnedObjectPath::try_from(MANAGER_PATH).expect("static path"))
}

/// The object of interface `ifindex` of the service's own network namespace
/// (the only place paths are built).
pub fn link_path(ifindex: u32) -> OwnedObjectPath {
    link_path_in(None, ifindex)
}

/// "/": the path of no object (the program a dry run would add).
pub fn root_path() -> OwnedObjectPath {
    path("/".to_string())
}

/// The object of program `id` on interface `ifindex` of the service's own namespace.
pub fn program_path(ifindex: u32, id: u64) -> OwnedObjectPath {
    program_path_in(None, ifindex, id)
}

/// The prefix of the objects of namespace `netns` (its inode; None: the
/// service's own, whose paths are those of a service that knows no other).
fn scope_prefix(netns: Option<u64>) -> String {
    match netns {
        None => MANAGER_PATH.to_string(),
        Some(inode) => format!("{MANAGER_PATH}/netns/{inode}"),
    }
}

/// The object of interface `ifindex` of namespace `netns`.
pub fn link_path_in(netns: Option<u64>, ifindex: u32) -> OwnedObjectPath {
    path(format!("{}/link/{ifindex}", scope_prefix(netns)))
}

/// The object of program `id` on interface `ifindex` of namespace `netns`.
pub fn program_path_in(netns: Option<u64>, ifindex: u32, id: u64) -> OwnedObjectPath {
    path(format!("{}/link/{ifindex}/program/{id}", scope_prefix(netns)))
}
