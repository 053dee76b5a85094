//! Follows the named network namespaces (`/run/netns/NAME`, as `ip netns`
//! and container runtimes make them): each gets a [`Registry`] of its own
//! with its own `watch`, so its interfaces have owners, chains, pins and
//! records like the service's own. The directory is looked at every
//! second; a name that disappears, or that now names another namespace
//! (deleted and made again), ends its registry (its chains and pins go,
//! the records of persistent programs stay) and, for the new namespace,
//! starts one afresh, which brings persistent programs back.
//!
//! A caller may also designate a namespace that has no name, by a process
//! in it ([`Namespaces::designate`]): it is followed while that process
//! lives (`/proc/PID/ns/net` still is that namespace), like a named one but
//! without a name, so nothing of it is kept when it goes. The caller must
//! see that namespace itself: root, or the process runs as the caller
//! (all four uids), as the kernel asks of whoever opens `/proc/PID/ns/net`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::registry::Registry;
use super::watch;
use crate::error::ServiceError;
use crate::kernel::bpffs::Bpffs;
use crate::kernel::netns::{own_inode, Netns};

/// How often the namespace directory is looked at.
const POLL: Duration = Duration::from_secs(1);
/// How long the chain of an interface that moved away waits for a followed namespace to take it.
const MOVING: Duration = Duration::from_secs(10);

/// One followed namespace.
struct Followed {
    registry: Arc<Registry>,
    watcher: tokio::task::JoinHandle<()>,
}

/// Every named namespace the service follows, by name.
pub struct Namespaces {
    dir: PathBuf,
    own: Arc<Registry>,
    followed: Mutex<HashMap<String, Followed>>,
    /// Namespaces callers designated, by inode, with the path they are found at.
    designated: Mutex<HashMap<u64, (PathBuf, Followed)>>,
}

/// The namespaces under `dir` now, by name (the service's own left out: it
/// is followed as the default).
fn present(dir: &Path) -> HashMap<String, Netns> {
    let own = own_inode().unwrap_or(0);
    let Ok(entries) = std::fs::read_dir(dir) else { return HashMap::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().into_string().ok()?, Netns::at(&e.path()).ok()?)))
        .filter(|(_, ns)| ns.inode() != own)
        .collect()
}

impl Namespaces {
    /// Follows the namespaces named under `dir`, next to the service's own (`own`).
    pub fn new(dir: PathBuf, own: Arc<Registry>) -> Arc<Namespaces> {
        Arc::new(Namespaces { dir, own, followed: Default::default(), designated: Default::default() })
    }

    /// The registry of namespace `name` ("" : the service's own).
    pub fn registry(&self, name: &str) -> Option<Arc<Registry>> {
        if name.is_empty() {
            return Some(self.own.clone());
        }
        self.followed.lock().ok()?.get(name).map(|f| f.registry.clone())
    }

    /// The registry of the namespace whose inode is `inode` (the service's own too).
    pub fn by_inode(&self, inode: u64) -> Option<Arc<Registry>> {
        self.registries().into_iter().find(|r| r.netns_tag().inode == inode)
    }

    /// The registries of every followed namespace, the service's own first.
    pub fn registries(&self) -> Vec<Arc<Registry>> {
        let mut all = vec![self.own.clone()];
        if let Ok(followed) = self.followed.lock() {
            all.extend(followed.values().map(|f| f.registry.clone()));
        }
        if let Ok(designated) = self.designated.lock() {
            all.extend(designated.values().map(|(_, f)| f.registry.clone()));
        }
        all
    }

    /// Follows the network namespace of process `pid` for a caller `uid`
    /// (already authorized), who must see it: root, or the process runs as
    /// the caller. Returns the namespace's inode (also when it was followed
    /// already, by name or for someone else).
    pub async fn designate(&self, pid: u32, uid: u32) -> Result<u64, ServiceError> {
        let (netns, uids) = tokio::task::spawn_blocking(move || crate::kernel::netns::of_process(pid))
            .await
            .map_err(|e| ServiceError::Failed(e.to_string()))?
            .map_err(|e| ServiceError::InvalidArgs(format!("no network namespace of process {pid}: {e}")))?;
        if uid != 0 && uids.iter().any(|&u| u != uid) {
            tracing::info!(uid, pid, "denied: designating the network namespace of another user's process");
            return Err(ServiceError::AccessDenied(format!(
                "process {pid} runs as another user: the caller cannot see its network namespace"
            )));
        }
        self.designate_at(netns).await
    }

    /// Follows the network namespace `fd` refers to, for a caller who sent
    /// it (and so sees it), found again by a bind mount of it or a process
    /// in it (never by holding it, which would keep it alive). Returns its inode.
    pub async fn designate_fd(&self, fd: std::os::fd::OwnedFd) -> Result<u64, ServiceError> {
        let inode = crate::kernel::netns::of_descriptor(std::os::fd::AsFd::as_fd(&fd))
            .map_err(|e| ServiceError::InvalidArgs(format!("the descriptor is not a network namespace: {e}")))?;
        drop(fd);
        if self.by_inode(inode).is_some() {
            return Ok(inode);
        }
        let found = tokio::task::spawn_blocking(move || {
            let path = crate::kernel::netns::path_of(inode)?;
            Netns::at(&path).ok().filter(|ns| ns.inode() == inode)
        });
        let netns = found.await.map_err(|e| ServiceError::Failed(e.to_string()))?.ok_or_else(|| {
            ServiceError::InvalidArgs(format!(
                "network namespace {inode} has no bind mount and no process the service can find it by"
            ))
        })?;
        self.designate_at(netns).await
    }

    /// Follows `netns` (found at its path), recorded to be followed again after a restart.
    async fn designate_at(&self, netns: Netns) -> Result<u64, ServiceError> {
        let (inode, path) = (netns.inode(), netns.path().to_path_buf());
        if self.by_inode(inode).is_some() {
            return Ok(inode);
        }
        let followed = self.start(netns, "").await.map_err(|e| ServiceError::Kernel(e.to_string()))?;
        tracing::info!(inode, path = %path.display(), "following a designated network namespace");
        let twice = match self.designated.lock() {
            Ok(mut designated) if !designated.contains_key(&inode) => designated.insert(inode, (path, followed)),
            // Designated meanwhile by another call: that one stays.
            _ => Some((path, followed)),
        };
        if let Some((_, followed)) = twice {
            Namespaces::end(followed, &format!("#{inode}"), false).await;
            return Ok(inode);
        }
        // Followed again after a restart: durable before it is acknowledged.
        if let Err(e) = self.save_designated() {
            let undone = self.designated.lock().ok().and_then(|mut d| d.remove(&inode));
            if let Some((_, followed)) = undone {
                Namespaces::end(followed, &format!("#{inode}"), false).await;
            }
            return Err(ServiceError::NotDurable(format!("cannot record the designated namespace: {e}")));
        }
        Ok(inode)
    }

    /// A registry and its watcher for `netns` (called `name`, "" : none).
    async fn start(&self, netns: Netns, name: &str) -> std::io::Result<Followed> {
        let registry = self.own.for_netns(netns, name)?;
        let watcher = watch::watch(registry.clone()).await?;
        Ok(Followed { registry, watcher })
    }

    fn save_designated(&self) -> std::io::Result<()> {
        let list: Vec<(std::path::PathBuf, u64)> = self
            .designated
            .lock()
            .map(|d| d.iter().map(|(inode, (path, _))| (path.clone(), *inode)).collect())
            .unwrap_or_default();
        self.own.store().save_designated(&list)
    }

    /// After a restart: the designated namespaces whose process still lives
    /// in them are followed again (their chains adopted as they run); the
    /// pins and records of the others go.
    async fn resume_designated(&self) {
        for (path, inode) in self.own.store().designated() {
            let key = crate::kernel::netns::file_name(&format!("#{inode}"));
            match Netns::at(&path) {
                Ok(netns) if netns.inode() == inode => match self.start(netns, "").await {
                    Ok(followed) => {
                        if let Ok(mut designated) = self.designated.lock() {
                            designated.insert(inode, (path, followed));
                        }
                        continue;
                    }
                    Err(e) => tracing::error!(inode, "cannot follow a designated namespace again: {e}"),
                },
                _ => tracing::info!(inode, "a designated network namespace is gone: its pins and records go"),
            }
            self.own.store().remove_netns(&key);
            let _ = std::fs::remove_dir_all(self.own.shared_root().join("netns").join(&key));
        }
        if let Err(e) = self.save_designated() {
            tracing::error!("cannot record the designated namespaces: {e}");
        }
    }

    /// Brings the followed namespaces in line with the directory.
    pub async fn sync(&self) {
        let now = tokio::task::spawn_blocking({
            let dir = self.dir.clone();
            move || present(&dir)
        })
        .await
        .unwrap_or_default();
        let stale: Vec<String> = (self.followed.lock().map(|f| {
            f.iter()
                .filter(|(name, old)| now.get(*name).is_none_or(|ns| ns.inode() != old.registry.netns_tag().inode))
                .map(|(name, _)| name.clone())
                .collect()
        }))
        .unwrap_or_default();
        for name in stale {
            self.forget(&name).await;
        }
        let gone: Vec<u64> = (self.designated.lock().map(|d| {
            // A name given to a designated namespace: followed by its name from now on.
            let named = |inode: u64| now.values().any(|ns| ns.inode() == inode);
            d.iter()
                .filter(|(inode, (_, f))| named(**inode) || f.registry.netns().is_none_or(|ns| !ns.is_present()))
                .map(|(inode, _)| *inode)
                .collect()
        }))
        .unwrap_or_default();
        for inode in &gone {
            let designated = self.designated.lock().ok().and_then(|mut d| d.remove(inode));
            if let Some((_, followed)) = designated {
                Namespaces::end(followed, &format!("#{inode}"), false).await;
            }
        }
        if !gone.is_empty() {
            if let Err(e) = self.save_designated() {
                tracing::error!("cannot record the designated namespaces: {e}");
            }
        }
        for (name, netns) in now {
            if self.registry(&name).is_none() {
                self.follow(name, netns).await;
            }
        }
        self.sweep_moving();
    }

    /// Chains of interfaces that moved to a namespace the service does not
    /// follow (nobody took them within `MOVING`): their pins go, which
    /// detaches them, and their records.
    fn sweep_moving(&self) {
        let store = self.own.store();
        for prog_id in store.stale_moving(MOVING) {
            tracing::warn!(
                prog_id,
                "an interface moved to a network namespace the service does not follow: its chain is detached"
            );
            let _ = std::fs::remove_dir_all(Bpffs::new(self.own.shared_root()).moving_dir(prog_id));
            store.take_moving(prog_id);
        }
    }

    async fn follow(&self, name: String, netns: Netns) {
        let inode = netns.inode();
        match self.start(netns, &name).await {
            Ok(started) => {
                let interfaces = started.registry.indexes().len();
                tracing::info!(netns = %name, inode, interfaces, "following a network namespace");
                if let Ok(mut followed) = self.followed.lock() {
                    followed.insert(name, started);
                }
            }
            Err(e) => tracing::warn!(netns = %name, "cannot follow the network namespace: {e}"),
        }
    }

    /// Stops following namespace `name` (deleted, or replaced by another).
    async fn forget(&self, name: &str) {
        let Some(followed) = self.followed.lock().ok().and_then(|mut f| f.remove(name)) else { return };
        Namespaces::end(followed, name, true).await;
    }

    async fn end(followed: Followed, name: &str, keep_persistent: bool) {
        // The watcher's socket holds the namespace: it goes first.
        followed.watcher.abort();
        let _ = followed.watcher.await;
        tracing::info!(netns = %name, inode = followed.registry.netns_tag().inode, "network namespace gone");
        followed.registry.close(keep_persistent).await;
    }

    /// What keeps the service from exiting idle: interfaces persistent
    /// programs wait for (in any namespace: `NAME/IFACE` in another), named
    /// namespaces such programs wait for, and namespaces callers designated
    /// (they are followed while their process lives, which an exit would end).
    /// Reads the records (files): call it rarely.
    pub fn awaited(&self) -> Vec<String> {
        let mut awaited = Vec::new();
        let mut present = Vec::new();
        for registry in self.registries() {
            let tag = registry.netns_tag().clone();
            let key = if tag.name.is_empty() { format!("#{}", tag.inode) } else { tag.name.clone() };
            present.push(crate::kernel::netns::file_name(&key));
            let prefix = if tag.own { String::new() } else { format!("{}/", key) };
            awaited.extend(registry.awaited().into_iter().map(|i| format!("{prefix}{i}")));
            if !tag.own && tag.name.is_empty() {
                awaited.push(format!("designated namespace {}", tag.inode));
            }
        }
        let waiting = self.own.store().netns_with_persistent().into_iter().filter(|n| !present.contains(n));
        awaited.extend(waiting.map(|n| format!("namespace {n}")));
        awaited
    }

    /// Saves the snapshots of every namespace's persistent programs (at exit).
    pub async fn save_snapshots(&self) -> Result<(), Vec<ServiceError>> {
        let mut errors = Vec::new();
        for registry in self.registries() {
            if let Err(mut e) = registry.save_snapshots().await {
                errors.append(&mut e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Syncs once and returns the task that follows the directory.
    pub async fn watch(self: Arc<Namespaces>) -> tokio::task::JoinHandle<()> {
        self.resume_designated().await;
        self.sync().await;
        tokio::spawn(async move {
            let mut poll = tokio::time::interval(POLL);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                poll.tick().await;
                self.sync().await;
            }
        })
    }
}
