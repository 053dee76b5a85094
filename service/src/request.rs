//! The front door every method call goes through: mark the service busy
//! (idle timer), learn who calls (the bus vouches for it), take one of the
//! client's request slots, and ask polkit. Handlers then only decode, call
//! [`Front::begin`], [`Request::authorize`] and forward.

use std::sync::Arc;

use zbus::message::Header;
use zbus::Connection;

use crate::activity::{Activity, Busy};
use crate::auth::{self, Action, Details};
use crate::caller::Caller;
use crate::error::ServiceError;
use crate::limits::{self, Limits};

/// What every request needs before it may do work.
pub struct Front {
    activity: Activity,
    limits: Arc<Limits>,
}

/// One admitted request: counted as activity and in its client's slots until dropped.
pub struct Request<'a, 'h> {
    caller: Caller,
    connection: &'a Connection,
    header: &'a Header<'h>,
    _slot: limits::Request,
    _busy: Busy,
}

impl Front {
    pub fn new(activity: Activity, limits: Arc<Limits>) -> Arc<Front> {
        Arc::new(Front { activity, limits })
    }

    /// Marks the service busy, for requests that need no caller (lookups).
    pub fn busy(&self) -> Busy {
        self.activity.begin()
    }

    /// Admits the call of `header`: who calls, and a slot under the per-client limit.
    pub async fn begin<'a, 'h>(
        &self,
        connection: &'a Connection,
        header: &'a Header<'h>,
    ) -> Result<Request<'a, 'h>, ServiceError> {
        let busy = self.activity.begin();
        let caller = caller_of(connection, header).await?;
        let slot = self.limits.begin_request(&caller.unique_name)?;
        Ok(Request { caller, connection, header, _slot: slot, _busy: busy })
    }
}

impl Request<'_, '_> {
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Checks with polkit that the caller may perform `action` (root always may).
    pub async fn authorize(&self, action: Action, details: &Details) -> Result<(), ServiceError> {
        auth::authorize(self.connection, self.header, &self.caller, action, details).await
    }
}

/// Asks the bus for the credentials of the sender of `header`.
async fn caller_of(connection: &Connection, header: &Header<'_>) -> Result<Caller, ServiceError> {
    let sender = header.sender().ok_or_else(|| ServiceError::AccessDenied("the call has no sender".into()))?;
    let dbus = zbus::fdo::DBusProxy::builder(connection)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(|e| ServiceError::Failed(e.to_string()))?;
    let creds = dbus
        .get_connection_credentials(sender.clone().into())
        .await
        .map_err(|e| ServiceError::AccessDenied(format!("cannot learn who is calling: {e}")))?;
    let uid =
        creds.unix_user_id().ok_or_else(|| ServiceError::AccessDenied("the bus did not say who is calling".into()))?;
    Ok(Caller {
        unique_name: sender.to_string(),
        uid,
        gids: creds.unix_group_ids().cloned().unwrap_or_default(),
        pid: creds.process_id(),
    })
}
