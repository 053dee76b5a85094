//! `org.xdp.Manager1.Program`: one object per program in a chain.

use std::collections::HashMap;

use zbus::message::Header;
use zbus::OwnedObjectPath;
use zbus::{interface, Connection};

use super::error::ServiceError;
use crate::auth::{self, Action};
use crate::caller::Caller;
use crate::links::{LinkHandle, ProgramInfo};

pub struct ProgramIface {
    info: ProgramInfo,
    link: LinkHandle,
}

impl ProgramIface {
    pub fn new(info: ProgramInfo, link: LinkHandle) -> ProgramIface {
        ProgramIface { info, link }
    }

    fn details(&self) -> auth::Details {
        auth::Details {
            interface: self.link.snapshot().name,
            program: self.info.name.clone(),
            tag: self.info.tag.clone(),
            sha256: self.info.sha256.clone(),
        }
    }
}

#[interface(name = "org.xdp.Manager1.Program")]
impl ProgramIface {
    /// Removes this program from its chain (its owner needs
    /// org.xdp.manager1.remove-program, anyone else org.xdp.manager1.manage).
    async fn remove(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<(), ServiceError> {
        let _busy = self.link.activity.begin();
        let caller = Caller::of(connection, &header).await?;
        let _request = self.link.limits.begin_request(&caller.unique_name)?;
        let action = if caller.uid == self.info.owner { Action::RemoveProgram } else { Action::Manage };
        auth::authorize(connection, &header, &caller, action, &self.details()).await?;
        self.link.remove(self.info.id, caller).await
    }

    /// Descriptors of the program's maps by name, for its owner (anyone else
    /// needs org.xdp.manager1.manage): how an application fills its tables.
    #[zbus(out_args("maps"))]
    async fn get_maps(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<HashMap<String, zbus::OwnedFd>, ServiceError> {
        let _busy = self.link.activity.begin();
        let caller = Caller::of(connection, &header).await?;
        let _request = self.link.limits.begin_request(&caller.unique_name)?;
        if caller.uid != self.info.owner {
            auth::authorize(connection, &header, &caller, Action::Manage, &self.details()).await?;
        }
        let maps = self.link.get_maps(self.info.id, caller).await?;
        Ok(maps.into_iter().map(|(name, fd)| (name, zbus::OwnedFd::from(fd))).collect())
    }

    /// The program's id, also the last element of its object path.
    #[zbus(property(emits_changed_signal = "const"))]
    fn id(&self) -> u64 {
        self.info.id
    }

    /// Function name of the program in its object.
    #[zbus(property(emits_changed_signal = "const"))]
    fn name(&self) -> String {
        self.info.name.clone()
    }

    /// The link object of the interface whose chain holds this program.
    #[zbus(property(emits_changed_signal = "const"))]
    fn link(&self) -> OwnedObjectPath {
        self.info.link.clone()
    }

    /// Lower runs first; equal priorities run in the order they were added.
    #[zbus(property(emits_changed_signal = "const"))]
    fn priority(&self) -> i32 {
        self.info.priority
    }

    /// Actions on which the chain proceeds to the next program.
    #[zbus(property(emits_changed_signal = "const"))]
    fn proceed_on(&self) -> Vec<String> {
        self.info.proceed_on.clone()
    }

    /// The application's name for itself.
    #[zbus(property(emits_changed_signal = "const"))]
    fn tag(&self) -> String {
        self.info.tag.clone()
    }

    /// Uid of the caller who added the program.
    #[zbus(property(emits_changed_signal = "const"))]
    fn owner(&self) -> u32 {
        self.info.owner
    }

    /// SHA-256 of the object the program came from, hex.
    #[zbus(property(emits_changed_signal = "const"))]
    fn sha256(&self) -> String {
        self.info.sha256.clone()
    }

    /// When the program was added, in microseconds since the epoch.
    #[zbus(property(emits_changed_signal = "const"))]
    fn loaded_at(&self) -> u64 {
        self.info.loaded_at
    }

    /// Map name → kernel map id.
    #[zbus(property(emits_changed_signal = "const"))]
    fn map_ids(&self) -> HashMap<String, u32> {
        self.info.map_ids.clone()
    }

    /// Verdict counts: aborted, drop, pass, tx, redirect, other (results of 5 and more);
    /// empty while counting was never on for the link.
    #[zbus(property(emits_changed_signal = "false"))]
    fn stats(&self) -> HashMap<String, u64> {
        let stats = self.link.stats(self.info.id).unwrap_or_default();
        if !self.link.snapshot().counting && stats == Default::default() {
            return HashMap::new();
        }
        stats.named().map(|(name, count)| (name.to_string(), count)).collect()
    }
}

pub async fn export(connection: &Connection, ifindex: u32, id: u64, iface: ProgramIface) {
    if let Err(e) = connection.object_server().at(super::program_path(ifindex, id), iface).await {
        tracing::error!(ifindex, id, "cannot export the program object: {e}");
    }
}

pub async fn unexport(connection: &Connection, ifindex: u32, id: u64) {
    let _ = connection.object_server().remove::<ProgramIface, _>(super::program_path(ifindex, id)).await;
}
