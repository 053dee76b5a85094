//! `org.xdp.Manager1` at /org/xdp/Manager1: find links, and what this kernel allows.

use std::sync::Arc;

use zbus::message::Header;
use zbus::{interface, Connection, OwnedObjectPath};

use crate::auth::{Action, Details};
use crate::error::ServiceError;
use crate::iface::netns::Namespaces;
use crate::iface::Registry;
use crate::request::Front;

pub struct Manager {
    pub registry: Arc<Registry>,
    pub namespaces: Arc<Namespaces>,
    pub front: Arc<Front>,
    pub features: Vec<String>,
}

#[interface(name = "org.xdp.Manager1")]
impl Manager {
    /// The link object of the interface called `name`.
    #[zbus(out_args("link"))]
    async fn get_link_by_name(&self, name: String) -> Result<OwnedObjectPath, ServiceError> {
        let _busy = self.front.busy();
        self.registry
            .by_name(&name)
            .map(|h| super::link_path(h.ifindex))
            .ok_or_else(|| ServiceError::NoSuchLink(format!("no interface called '{name}'")))
    }

    /// The link object of the interface with index `index`.
    #[zbus(out_args("link"))]
    async fn get_link_by_index(&self, index: i32) -> Result<OwnedObjectPath, ServiceError> {
        let _busy = self.front.busy();
        u32::try_from(index)
            .ok()
            .and_then(|i| self.registry.get(i))
            .map(|h| super::link_path(h.ifindex))
            .ok_or_else(|| ServiceError::NoSuchLink(format!("no interface with index {index}")))
    }

    /// The link object of the interface called `name` in the network
    /// namespace called `netns` (its name under `/run/netns`, as `ip -n`
    /// takes it; "" for the service's own namespace).
    #[zbus(out_args("link"))]
    async fn get_link_in_netns(&self, netns: String, name: String) -> Result<OwnedObjectPath, ServiceError> {
        let _busy = self.front.busy();
        let registry = self
            .namespaces
            .registry(&netns)
            .ok_or_else(|| ServiceError::NoSuchLink(format!("no network namespace called '{netns}'")))?;
        let scope = registry.netns_tag().scope();
        registry.by_name(&name).map(|h| super::link_path_in(scope, h.ifindex)).ok_or_else(|| {
            ServiceError::NoSuchLink(format!("no interface called '{name}' in network namespace '{netns}'"))
        })
    }

    /// The link object of the interface called `name` in the network
    /// namespace whose inode is `inode` (one the service follows: named,
    /// designated, or its own).
    #[zbus(out_args("link"))]
    async fn get_link_in_netns_by_inode(&self, inode: u64, name: String) -> Result<OwnedObjectPath, ServiceError> {
        let _busy = self.front.busy();
        let registry = self
            .namespaces
            .by_inode(inode)
            .ok_or_else(|| ServiceError::NoSuchLink(format!("no followed network namespace with inode {inode}")))?;
        let scope = registry.netns_tag().scope();
        registry.by_name(&name).map(|h| super::link_path_in(scope, h.ifindex)).ok_or_else(|| {
            ServiceError::NoSuchLink(format!("no interface called '{name}' in network namespace {inode}"))
        })
    }

    /// Follows the network namespace of process `pid` (as long as that
    /// process lives in it): its interfaces get link objects like any
    /// other. Needs org.xdp.manager1.follow-netns, and the caller must see
    /// that namespace itself (root, or the process runs as the caller).
    #[zbus(out_args("inode"))]
    async fn follow_netns_of_process(
        &self,
        pid: u32,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<u64, ServiceError> {
        let admitted = self.front.begin(connection, &header).await?;
        let uid = admitted.caller().uid;
        let details = Details { caller_uid: uid, pid: Some(pid), ..Default::default() };
        admitted.authorize(Action::FollowNetns, &details).await?;
        self.namespaces.designate(pid, uid).await
    }

    /// Follows the network namespace `netns` refers to (a descriptor of
    /// /run/netns/NAME, /proc/PID/ns/net, a container runtime's bind mount):
    /// found again by a bind mount of it or a process in it. Needs
    /// org.xdp.manager1.follow-netns; the caller sees the namespace (it sent it).
    #[zbus(out_args("inode"))]
    async fn follow_netns_by_descriptor(
        &self,
        netns: zbus::OwnedFd,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<u64, ServiceError> {
        let admitted = self.front.begin(connection, &header).await?;
        let details = Details { caller_uid: admitted.caller().uid, ..Default::default() };
        admitted.authorize(Action::FollowNetns, &details).await?;
        self.namespaces.designate_fd(netns.into()).await
    }

    /// The inode of the service's own network namespace.
    #[zbus(property(emits_changed_signal = "const"))]
    fn netns_inode(&self) -> u64 {
        self.registry.netns_tag().inode
    }

    /// Version of the service.
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    /// What this service reports about the kernel: `bpf-link` (the chain is
    /// held by a pinned bpf_link), `frags` (XDP multi-buffer).
    #[zbus(property(emits_changed_signal = "const"))]
    fn features(&self) -> Vec<String> {
        self.features.clone()
    }
}
