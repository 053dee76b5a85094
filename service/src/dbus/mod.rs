//! The D-Bus face of the service: object paths, the three interfaces of the
//! contract, its errors and its options. Handlers here stay thin: they check
//! arguments, learn who is calling, and hand the work to the link's owner.

pub mod error;
pub mod link;
pub mod manager;
pub mod options;
pub mod program;

use zbus::OwnedObjectPath;

pub const BUS_NAME: &str = "org.xdp.Manager1";
pub const MANAGER_PATH: &str = "/org/xdp/Manager1";

fn path(p: String) -> OwnedObjectPath {
    // Paths built from numbers only: always valid.
    OwnedObjectPath::try_from(p).unwrap_or_else(|_| OwnedObjectPath::try_from(MANAGER_PATH).expect("static path"))
}

pub fn link_path(ifindex: u32) -> OwnedObjectPath {
    path(format!("{MANAGER_PATH}/link/{ifindex}"))
}

pub fn program_path(ifindex: u32, id: u64) -> OwnedObjectPath {
    path(format!("{MANAGER_PATH}/link/{ifindex}/program/{id}"))
}
