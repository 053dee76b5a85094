//! Authorization of requests that change a chain.
//!
//! Until polkit is wired in, only uid 0 may change anything; everyone else
//! gets `org.freedesktop.DBus.Error.AccessDenied`. Reading needs nothing.

use crate::caller::Caller;
use crate::dbus::error::ServiceError;

/// The polkit actions of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    AddProgram,
    RemoveProgram,
    Manage,
}

impl Action {
    pub fn id(self) -> &'static str {
        match self {
            Action::AddProgram => "org.xdp.manager1.add-program",
            Action::RemoveProgram => "org.xdp.manager1.remove-program",
            Action::Manage => "org.xdp.manager1.manage",
        }
    }
}

/// Checks that `caller` may perform `action` on interface `ifname`.
pub async fn authorize(caller: &Caller, action: Action, ifname: &str) -> Result<(), ServiceError> {
    if caller.is_root() {
        return Ok(());
    }
    tracing::info!(%caller, action = action.id(), interface = ifname, "denied: only root may change chains");
    Err(ServiceError::AccessDenied(format!("{} on {ifname} is not allowed for uid {}", action.id(), caller.uid)))
}
