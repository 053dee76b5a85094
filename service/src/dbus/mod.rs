//! The D-Bus face of the service: object paths, the three interfaces of the
//! contract, its errors and options, and the [`publisher::Publisher`] that
//! shows what the owners report. Every mutating method keeps one order:
//! decode → admit (`request::Front::begin`) → authorize → read the object
//! (`intake`) → hand the change to the interface's owner, which mutates,
//! persists and publishes → reply.

pub mod change;
pub mod change_options;
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

/// The object of interface `ifindex` (the only place paths are built).
pub fn link_path(ifindex: u32) -> OwnedObjectPath {
    path(format!("{MANAGER_PATH}/link/{ifindex}"))
}

/// "/": the path of no object (the program a dry run would add).
pub fn root_path() -> OwnedObjectPath {
    path("/".to_string())
}

/// The object of program `id` on interface `ifindex`.
pub fn program_path(ifindex: u32, id: u64) -> OwnedObjectPath {
    path(format!("{MANAGER_PATH}/link/{ifindex}/program/{id}"))
}
