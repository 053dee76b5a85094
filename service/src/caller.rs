//! Who is calling: the identity the bus vouched for (learned by `request`),
//! and what it implies. No I/O here.

use crate::engine::object::Privilege;

/// The process on the other end of a method call.
#[derive(Debug, Clone)]
pub struct Caller {
    pub unique_name: String,
    pub uid: u32,
    pub gids: Vec<u32>,
    pub pid: Option<u32>,
}

/// How the programs of `uid` are verified: root's with the service's own
/// privileges, everyone else's as an unprivileged loader's would be.
pub fn privilege_of(uid: u32) -> Privilege {
    if uid == 0 {
        Privilege::Full
    } else {
        Privilege::User
    }
}

impl Caller {
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    pub fn privilege(&self) -> Privilege {
        privilege_of(self.uid)
    }
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "uid {} ({}", self.uid, self.unique_name)?;
        if let Some(pid) = self.pid {
            write!(f, ", pid {pid}")?;
        }
        write!(f, ")")
    }
}
