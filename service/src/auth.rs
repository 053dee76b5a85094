//! Authorization through polkit.
//!
//! Every request that changes a chain is checked with polkit's
//! CheckAuthorization on the service's own bus connection, the subject being
//! the caller's unique bus name. uid 0 is allowed without asking. The call's
//! ALLOW_INTERACTIVE_AUTHORIZATION flag is passed on; a challenge the caller
//! did not allow becomes InteractiveAuthorizationRequired, a denial
//! AccessDenied. When polkit cannot be reached, non-root callers are denied.

use std::collections::HashMap;

use zbus::message::{Flags, Header};
use zbus::Connection;
use zbus_polkit::policykit1::{AuthorityProxy, CheckAuthorizationFlags, Subject};

use crate::caller::Caller;
use crate::error::ServiceError;

/// The polkit actions of the contract (polkit/org.xdp.manager1.policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Add a program to an interface's chain.
    AddProgram,
    /// Remove (or replace) one's own program.
    RemoveProgram,
    /// Others' programs, taking over a foreign program, choosing a link's mode, reclaiming.
    Manage,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::AddProgram, Action::RemoveProgram, Action::Manage];

    pub fn id(self) -> &'static str {
        match self {
            Action::AddProgram => "org.xdp.manager1.add-program",
            Action::RemoveProgram => "org.xdp.manager1.remove-program",
            Action::Manage => "org.xdp.manager1.manage",
        }
    }
}

/// What the request is about, shown in polkit's messages and usable in rules
/// (`action.lookup("interface")`). The service vouches for `interface`,
/// `ifindex` and `caller_uid`, and for `sha256`/`object_sha256` (an object
/// whose hash differs from the announced one is refused after reading);
/// `program` and `tag` are whatever the caller chose: rules must not trust them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    pub interface: String,
    pub ifindex: u32,
    pub caller_uid: u32,
    /// The program's function name (caller-chosen).
    pub program: String,
    /// The program's tag (caller-chosen).
    pub tag: String,
    /// The object's SHA-256, when known before reading (announced, or recorded).
    pub sha256: Option<String>,
}

impl Details {
    fn as_map(&self) -> HashMap<&'static str, String> {
        let mut map = HashMap::from([
            ("interface", self.interface.clone()),
            ("ifindex", self.ifindex.to_string()),
            ("caller_uid", self.caller_uid.to_string()),
            ("program", self.program.clone()),
            ("tag", self.tag.clone()),
        ]);
        if let Some(sha256) = &self.sha256 {
            map.insert("sha256", sha256.clone());
            map.insert("object_sha256", sha256.clone());
        }
        map
    }
}

/// Checks that the caller of `header` may perform `action`.
pub async fn authorize(
    connection: &Connection,
    header: &Header<'_>,
    caller: &Caller,
    action: Action,
    details: &Details,
) -> Result<(), ServiceError> {
    if caller.is_root() {
        return Ok(());
    }
    let interactive = header.primary().flags().contains(Flags::ALLOW_INTERACTIVE_AUTH);
    let denied = |why: &str| {
        tracing::info!(%caller, action = action.id(), interface = %details.interface, program = ?details.program, "denied: {why}");
        ServiceError::AccessDenied(format!("{} is not allowed: {why}", action.id()))
    };
    let subject = Subject::new_for_message_header(header).map_err(|e| denied(&e.to_string()))?;
    let flags =
        if interactive { CheckAuthorizationFlags::ALLOW_USER_INTERACTION } else { CheckAuthorizationFlags::empty() };
    let result = async {
        // No property cache: it would cost a GetAll round trip per check.
        let authority =
            AuthorityProxy::builder(connection).cache_properties(zbus::proxy::CacheProperties::No).build().await?;
        let details = details.as_map();
        let details: HashMap<&str, &str> = details.iter().map(|(k, v)| (*k, v.as_str())).collect();
        authority.check_authorization(&subject, action.id(), &details, flags, "").await
    }
    .await;
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(%caller, action = action.id(), "polkit cannot be reached, denying: {e}");
            return Err(ServiceError::AccessDenied(format!(
                "{} is not allowed: the authorization service (polkit) cannot be reached",
                action.id()
            )));
        }
    };
    if result.is_authorized {
        tracing::debug!(%caller, action = action.id(), "authorized by polkit");
        return Ok(());
    }
    if result.is_challenge && !interactive {
        tracing::info!(%caller, action = action.id(), "needs interactive authorization, which the call did not allow");
        return Err(ServiceError::InteractiveAuthorizationRequired(format!(
            "{} needs authentication; call again allowing interactive authorization",
            action.id()
        )));
    }
    Err(denied("polkit said no"))
}

#[cfg(test)]
mod tests {
    use super::Action;

    /// The action ids the code uses and the ones the .policy file declares are the same.
    #[test]
    fn policy_file_and_code_agree() {
        let policy = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../polkit/org.xdp.manager1.policy"))
            .expect("polkit/org.xdp.manager1.policy");
        let mut declared: Vec<&str> =
            policy.split("<action id=\"").skip(1).filter_map(|rest| rest.split('"').next()).collect();
        declared.sort_unstable();
        let mut used: Vec<&str> = Action::ALL.iter().map(|a| a.id()).collect();
        used.sort_unstable();
        assert_eq!(declared, used);
    }
}
