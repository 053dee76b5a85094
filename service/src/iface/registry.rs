//! Every interface of one network namespace (the service's own, or one
//! `netns` follows), by index: starts an owner when one appears (after
//! restoring its record), and forwards renames, disappearance and changes
//! of an interface's XDP programs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::command::Command;
use super::handle::Handle;
use super::owner::{Context, Owner};
use super::publish::Publish;
use super::restore::{restore, Site};
use super::view::NetnsTag;
use crate::config::Config;
use crate::engine::Chain;
use crate::kernel::hook::Attached;
use crate::kernel::netlink::Link;
use crate::kernel::netns::{own_inode, Netns};
use crate::limits::Limits;
use crate::state::Store;

pub struct Registry {
    config: Arc<Config>,
    cx: Context,
    handles: Mutex<HashMap<u32, Handle>>,
    /// Interfaces whose restored chain was linked anew, not yet announced.
    relinked: Mutex<Vec<Handle>>,
    /// The service holds its name: announce relinks at once.
    named: std::sync::atomic::AtomicBool,
}

impl Registry {
    pub fn new(
        config: Arc<Config>,
        store: Arc<Store>,
        limits: Arc<Limits>,
        publish: Arc<dyn Publish>,
    ) -> Arc<Registry> {
        let netns_tag = NetnsTag { name: String::new(), inode: own_inode().unwrap_or(0), own: true };
        let (bpffs_root, shared_root) = (config.bpffs_root.clone(), config.bpffs_root.clone());
        let cx = Context { store, limits, publish, bpffs_root, shared_root, netns: None, netns_tag };
        Arc::new(Registry {
            config,
            cx,
            handles: Mutex::new(HashMap::new()),
            relinked: Mutex::new(Vec::new()),
            named: Default::default(),
        })
    }

    /// The registry of namespace `netns`, called `name` ("" : a namespace a
    /// caller designated, which has none): its records in the state
    /// directory's `links/netns/<file name>`, its pins under `<bpffs
    /// root>/netns/<file name>` (the name, or `#<inode>` without one),
    /// sharing limits, ids and objects with this one.
    pub fn for_netns(&self, netns: Netns, name: &str) -> std::io::Result<Arc<Registry>> {
        let key = if name.is_empty() { format!("#{}", netns.inode()) } else { name.to_string() };
        let file_name = crate::kernel::netns::file_name(&key);
        let store = Arc::new(self.cx.store.for_netns(&file_name)?);
        let netns_tag = NetnsTag { name: name.to_string(), inode: netns.inode(), own: false };
        let cx = Context {
            store,
            limits: self.cx.limits.clone(),
            publish: self.cx.publish.for_netns(netns.inode()),
            bpffs_root: self.cx.shared_root.join("netns").join(file_name),
            shared_root: self.cx.shared_root.clone(),
            netns: Some(netns),
            netns_tag,
        };
        Ok(Arc::new(Registry {
            config: self.config.clone(),
            cx,
            handles: Mutex::new(HashMap::new()),
            relinked: Mutex::new(Vec::new()),
            named: std::sync::atomic::AtomicBool::new(self.named.load(std::sync::atomic::Ordering::SeqCst)),
        }))
    }

    /// The namespace whose interfaces these are (None: the service's own).
    pub fn netns(&self) -> Option<&Netns> {
        self.cx.netns.as_ref()
    }

    /// What the namespace shows (name, inode).
    pub fn netns_tag(&self) -> &NetnsTag {
        &self.cx.netns_tag
    }

    /// The namespace went: every owner ends; pins, chains and objects go,
    /// the records of persistent programs stay when `keep_persistent` (for
    /// a namespace of the same name). Returns once every owner has ended.
    pub async fn close(&self, keep_persistent: bool) {
        let handles = self.handles.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default();
        for h in handles.values() {
            let _ = h.tx.send(Command::NetnsGone { keep_persistent }).await;
        }
        for h in handles.values() {
            h.tx.closed().await;
        }
        // Only when empty: the namespace's pins and records directories.
        let _ = std::fs::remove_dir(&self.cx.bpffs_root);
        self.cx.store.remove_links_dir_if_empty();
    }

    /// The service's bpffs root (of every namespace).
    pub fn shared_root(&self) -> &std::path::Path {
        &self.cx.shared_root
    }

    /// The records of this registry's namespace.
    pub fn store(&self) -> &Arc<Store> {
        &self.cx.store
    }

    /// Interfaces that moved here with a chain running but were shown
    /// before that chain was left for them (the namespace they left had not
    /// noticed yet): their owners start again, which takes the chain.
    pub async fn adopt_moved(&self, now: &HashMap<u32, Link>, present: &Arc<HashMap<u32, String>>) {
        let moving = self.cx.shared_root.join("moving");
        let Ok(entries) = std::fs::read_dir(&moving) else { return };
        let ids: Vec<u32> = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
        for (index, link) in now.iter().filter(|(_, l)| l.xdp.ids().any(|id| ids.contains(&id))) {
            let Some(handle) = self.handles.lock().ok().and_then(|mut l| l.remove(index)) else { continue };
            let _ = handle.tx.send(Command::Gone).await;
            handle.tx.closed().await;
            self.appeared(*index, link.name.clone(), present).await;
        }
    }

    /// Where this registry's interfaces are restored.
    fn site(&self) -> Site {
        Site { netns: self.cx.netns.clone(), pins: self.cx.bpffs_root.clone(), shared: self.cx.shared_root.clone() }
    }

    pub fn get(&self, ifindex: u32) -> Option<Handle> {
        self.handles.lock().ok()?.get(&ifindex).cloned()
    }

    pub fn by_name(&self, name: &str) -> Option<Handle> {
        let handles = self.handles.lock().ok()?;
        handles.values().find(|h| h.view.borrow().name == name).cloned()
    }

    pub fn indexes(&self) -> Vec<u32> {
        self.handles.lock().map(|l| l.keys().copied().collect()).unwrap_or_default()
    }

    fn all(&self) -> Vec<Handle> {
        self.handles.lock().map(|l| l.values().cloned().collect()).unwrap_or_default()
    }

    /// An interface appeared: restore its recorded chain, start its owner and
    /// publish it. `present` are the interfaces present now (shared, not copied).
    pub async fn appeared(&self, ifindex: u32, name: String, present: &Arc<HashMap<u32, String>>) {
        if self.get(ifindex).is_some() {
            return;
        }
        let (config, store, ifname, present) =
            (self.config.clone(), self.cx.store.clone(), name.clone(), Arc::clone(present));
        let site = self.site();
        let (chain, programs, relinked) =
            tokio::task::spawn_blocking(move || restore(&config, &store, &site, (ifindex, &ifname), &present))
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(ifindex, "restoring the chain failed: {e}");
                    let floor = self.cx.store.high_water().generation(&name);
                    let chain = Chain::for_interface_in(self.cx.netns.clone(), ifindex, &self.cx.bpffs_root)
                        .with_generation(floor);
                    (chain, Default::default(), false)
                });
        let chain = chain.with_max_members(self.config.max_programs_per_link);
        let (handle, owner, rx) = Owner::new(self.cx.clone(), ifindex, name.clone(), chain, programs);
        owner.refresh_view().await;
        if let Ok(mut handles) = self.handles.lock() {
            handles.insert(ifindex, handle.clone());
        }
        self.cx.publish.interface_added(&handle).await;
        for view in owner.programs() {
            self.cx.limits.count_program(view.spec.owner_uid, view.spec.charge());
            self.cx.publish.program_added(&handle, view.clone()).await;
        }
        let count = owner.programs().count();
        if count > 0 {
            let view = owner.view();
            tracing::info!(ifindex, interface = %name, programs = count, kernel_id = view.kernel_program_id, "chain restored");
            if view.kernel_program_id == 0 {
                tracing::warn!(ifindex, interface = %name, foreign = view.foreign_program_id, "the recorded chain is not attached: it was detached or replaced behind xdpd's back; Reclaim takes the interface back");
            }
            if relinked {
                owner.save_record();
            } else {
                owner.save_adopted_record();
            }
            if relinked {
                // Told once the service holds its name (at start-up), or now.
                if let Ok(mut pending) = self.relinked.lock() {
                    pending.push(handle.clone());
                }
                if self.named.load(std::sync::atomic::Ordering::SeqCst) {
                    self.announce_relinked().await;
                }
            }
        } else {
            // Nothing came back (e.g. no persistent programs after a reboot).
            self.cx.store.remove_link(ifindex);
        }
        tracing::debug!(ifindex, interface = %name, "interface appeared");
        tokio::spawn(owner.run(rx));
    }

    /// Sends ChainChanged for every restored chain that was linked anew
    /// (a relink is a change like any other: new KernelProgramId, Generation).
    pub async fn announce_relinked(&self) {
        self.named.store(true, std::sync::atomic::Ordering::SeqCst);
        let pending = self.relinked.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
        for handle in pending {
            let view = handle.view.borrow().clone();
            self.cx.publish.chain_changed(&view).await;
        }
    }

    pub async fn renamed(&self, ifindex: u32, name: String) {
        if let Some(h) = self.get(ifindex) {
            let _ = h.tx.send(Command::Renamed(name)).await;
        }
    }

    pub async fn disappeared(&self, ifindex: u32) {
        let handle = self.handles.lock().ok().and_then(|mut l| l.remove(&ifindex));
        if let Some(h) = handle {
            let _ = h.tx.send(Command::Gone).await;
        }
    }

    /// Names of the interfaces whose record holds persistent programs but which
    /// are not present (after a reboot, until they appear): the service waits
    /// for them rather than exit idle, so their chains come back as soon as
    /// they appear. Reads the records (files): call it rarely.
    pub fn awaited(&self) -> Vec<String> {
        let present: Vec<String> = self.all().iter().map(|h| h.view.borrow().name.clone()).collect();
        let mut names: Vec<String> = (self.cx.store.links().into_iter())
            .filter(|r| r.members.iter().any(|m| m.spec.persist) && !present.contains(&r.name))
            .map(|r| r.name)
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Saves the maps of persistent programs that asked for a snapshot (at exit).
    /// Every failure is returned (each names its program and map).
    pub async fn save_snapshots(&self) -> Result<(), Vec<crate::error::ServiceError>> {
        let mut errors = Vec::new();
        for h in self.all() {
            if let Err(e) = h.ask(|reply| Command::SaveSnapshots { reply }).await {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Compares the XDP programs the kernel shows on `ifindex` with what its
    /// owner last showed (its view: the chain's program, a foreign one), and
    /// asks the owner to look again only when they differ (an owner whose
    /// queue is full is busy changing the chain and looks afterwards anyway).
    pub fn check_foreign(&self, ifindex: u32, xdp: Attached) {
        let Some(h) = self.get(ifindex) else { return };
        let (ours, foreign) = {
            let view = h.view.borrow();
            (view.kernel_program_id, view.foreign_program_id)
        };
        let shown = |id: u32| id == 0 || xdp.ids().any(|x| x == id);
        if !(xdp.ids().all(|id| id == ours || id == foreign) && shown(ours) && shown(foreign)) {
            let _ = h.tx.try_send(Command::CheckForeign);
        }
    }
}
