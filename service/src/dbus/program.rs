//! `org.xdp.Manager1.Program`: one object per program in a chain.

use std::collections::HashMap;
use std::sync::Arc;

use zbus::message::Header;
use zbus::OwnedObjectPath;
use zbus::{interface, Connection};

use crate::auth::{Action, Details};
use crate::engine::Stats;
use crate::error::ServiceError;
use crate::iface::{Handle, ProgramView};
use crate::request::{Front, Request};

/// The bus face of one program: its view, its interface's handle, the front door.
pub struct ProgramIface {
    pub(super) view: ProgramView,
    pub(super) handle: Handle,
    pub(super) front: Arc<Front>,
}

impl ProgramIface {
    /// What polkit is told: the service knows this program, so every detail is vouched for
    /// (but `program` and `tag` were chosen by the program's owner).
    fn details(&self, admitted: &Request<'_, '_>) -> Details {
        Details {
            interface: self.handle.view().name,
            ifindex: self.handle.ifindex,
            netns: self.handle.view().netns.name,
            netns_inode: self.handle.view().netns.inode,
            caller_uid: admitted.caller().uid,
            program: self.view.spec.function.clone(),
            tag: self.view.spec.tag.clone(),
            sha256: Some(self.view.spec.sha256.clone()),
            pid: None,
        }
    }

    /// GetMaps and GetMapsByName: the owner may; anyone else needs manage.
    async fn maps(
        &self,
        connection: &Connection,
        header: &Header<'_>,
        names: Option<Vec<String>>,
    ) -> Result<HashMap<String, zbus::OwnedFd>, ServiceError> {
        let admitted = self.front.begin(connection, header).await?;
        if admitted.caller().uid != self.view.spec.owner_uid {
            admitted.authorize(Action::Manage, &self.details(&admitted)).await?;
        }
        let maps = self.handle.get_maps(self.view.id, admitted.caller().clone(), names).await?;
        Ok(maps.into_iter().map(|(name, fd)| (name, zbus::OwnedFd::from(fd))).collect())
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
        let admitted = self.front.begin(connection, &header).await?;
        let own = admitted.caller().uid == self.view.spec.owner_uid;
        let action = if own { Action::RemoveProgram } else { Action::Manage };
        admitted.authorize(action, &self.details(&admitted)).await?;
        self.handle.remove(self.view.id, admitted.caller().clone()).await
    }

    /// Descriptors of the program's maps by name, for its owner (anyone else
    /// needs org.xdp.manager1.manage): how an application fills its tables.
    #[zbus(out_args("maps"))]
    async fn get_maps(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<HashMap<String, zbus::OwnedFd>, ServiceError> {
        self.maps(connection, &header, None).await
    }

    /// Descriptors of the named maps (at most 16, what one reply may carry
    /// on the system bus), with the same authorization as GetMaps.
    #[zbus(out_args("maps"))]
    async fn get_maps_by_name(
        &self,
        names: Vec<String>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<HashMap<String, zbus::OwnedFd>, ServiceError> {
        self.maps(connection, &header, Some(names)).await
    }

    /// The program's id, also the last element of its object path.
    #[zbus(property(emits_changed_signal = "const"))]
    fn id(&self) -> u64 {
        self.view.id
    }

    /// Function name of the program in its object.
    #[zbus(property(emits_changed_signal = "const"))]
    fn name(&self) -> String {
        self.view.spec.function.clone()
    }

    /// The link object of the interface whose chain holds this program.
    #[zbus(property(emits_changed_signal = "const"))]
    fn link(&self) -> OwnedObjectPath {
        super::link_path_in(self.handle.view().netns.scope(), self.view.ifindex)
    }

    /// Lower runs first; equal priorities run in the order they were added.
    #[zbus(property(emits_changed_signal = "const"))]
    fn priority(&self) -> i32 {
        self.view.spec.priority
    }

    /// Actions on which the chain proceeds to the next program.
    #[zbus(property(emits_changed_signal = "const"))]
    fn proceed_on(&self) -> Vec<String> {
        self.view.spec.proceed_on.clone()
    }

    /// The application's name for itself.
    #[zbus(property(emits_changed_signal = "const"))]
    fn tag(&self) -> String {
        self.view.spec.tag.clone()
    }

    /// Uid of the caller who added the program.
    #[zbus(property(emits_changed_signal = "const"))]
    fn owner(&self) -> u32 {
        self.view.spec.owner_uid
    }

    /// SHA-256 of the object the program came from, hex.
    #[zbus(property(emits_changed_signal = "const"))]
    fn sha256(&self) -> String {
        self.view.spec.sha256.clone()
    }

    /// When the program was added, in microseconds since the epoch.
    #[zbus(property(emits_changed_signal = "const"))]
    fn loaded_at(&self) -> u64 {
        self.view.spec.loaded_at
    }

    /// Map name → kernel map id.
    #[zbus(property(emits_changed_signal = "const"))]
    fn map_ids(&self) -> HashMap<String, u32> {
        self.view.map_ids.clone()
    }

    /// Global variables set before the object was loaded (option `globals`).
    #[zbus(property(emits_changed_signal = "const"))]
    fn globals(&self) -> HashMap<String, String> {
        self.view.spec.config.globals.clone().into_iter().collect()
    }

    /// Map sizes set before the object was loaded (option `map-sizes`).
    #[zbus(property(emits_changed_signal = "const"))]
    fn map_sizes(&self) -> HashMap<String, u32> {
        self.view.spec.config.map_sizes.clone().into_iter().collect()
    }

    /// Names of the maps this program took over from the program it replaced:
    /// the same kernel maps, with their contents; empty for a program added
    /// afresh or replaced with fresh-maps.
    #[zbus(property(emits_changed_signal = "const"))]
    fn carried_maps(&self) -> Vec<String> {
        self.view.spec.carried_maps.clone()
    }

    /// Verdict counts: aborted, drop, pass, tx, redirect, other (results of 5 and more);
    /// empty while counting was never on for the link.
    #[zbus(property(emits_changed_signal = "false"))]
    fn stats(&self) -> HashMap<String, u64> {
        self.counts().map(|s| s.named().map(|(name, n)| (name.to_string(), n)).collect()).unwrap_or_default()
    }

    /// Bytes of the packets counted in Stats, by the same verdict names.
    #[zbus(property(emits_changed_signal = "false"))]
    fn bytes(&self) -> HashMap<String, u64> {
        self.counts().map(|s| s.named_bytes().map(|(name, n)| (name.to_string(), n)).collect()).unwrap_or_default()
    }
}

impl ProgramIface {
    /// The program's counts; `None` while counting never was on for the link.
    fn counts(&self) -> Option<Stats> {
        // A client watching the counts is using the service: no idle exit under it.
        drop(self.front.busy());
        let stats = self.handle.stats(self.view.id).unwrap_or_default();
        (self.handle.view().counting || stats != Stats::default()).then_some(stats)
    }
}
