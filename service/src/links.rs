//! The service's state: one owner task per network interface holding its
//! chain. Callers are authorized by the D-Bus handlers before a command
//! reaches the owner, so an owner never waits on polkit. D-Bus handlers never touch a chain: they send the owner a command
//! and wait for the reply, so requests for one interface are serialized,
//! requests for different interfaces run in parallel, and property reads
//! (served from a snapshot) never wait behind a verification.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use zbus::Connection;
use zbus::OwnedObjectPath;

use crate::activity::Activity;
use crate::caller::Caller;
use crate::config::Config;
use crate::dbus::error::ServiceError;
use crate::dbus::options::AddRequest;
use crate::dbus::{self, program::ProgramIface};
use crate::engine::object::{load_with, Privilege};
use crate::engine::stats::VerdictCounters;
use crate::engine::{ActionSet, AddOptions, Chain, LoadedProgram, MemberId, RestoredMember, Stats};
use crate::limits::Limits;
use crate::state::{LinkRecord, MemberRecord, Store};

/// What the Link interface's properties show; replaced after every change.
#[derive(Debug, Clone, Default)]
pub struct LinkSnapshot {
    pub index: u32,
    pub name: String,
    pub mode: String,
    pub generation: u64,
    pub programs: Vec<OwnedObjectPath>,
    pub kernel_program_id: u32,
    pub foreign_program_id: u32,
    pub counting: bool,
}

/// Everything a Program object shows; fixed for the program's life.
#[derive(Debug, Clone)]
pub struct ProgramInfo {
    pub id: MemberId,
    pub name: String,
    pub link: OwnedObjectPath,
    pub priority: i32,
    pub proceed_on: Vec<String>,
    pub tag: String,
    pub owner: u32,
    pub sha256: String,
    pub loaded_at: u64,
    pub map_ids: HashMap<String, u32>,
    pub persist: bool,
    pub snapshot: bool,
}

type Reply<T> = oneshot::Sender<Result<T, ServiceError>>;

enum Command {
    Add {
        program: Box<LoadedProgram>,
        object: Arc<Vec<u8>>,
        request: AddRequest,
        caller: Caller,
        reply: Reply<OwnedObjectPath>,
    },
    Remove {
        id: MemberId,
        caller: Caller,
        reply: Reply<()>,
    },
    GetMaps {
        id: MemberId,
        caller: Caller,
        reply: Reply<Vec<(String, OwnedFd)>>,
    },
    Reclaim {
        caller: Caller,
        reply: Reply<()>,
    },
    SetCounting {
        on: bool,
        caller: Caller,
        reply: Reply<()>,
    },
    SaveSnapshots {
        reply: Reply<()>,
    },
    CheckForeign,
    Renamed(String),
    Gone,
}

/// A handle on one interface's owner task.
#[derive(Clone)]
pub struct LinkHandle {
    pub ifindex: u32,
    /// Verdict counters of the members, readable without asking the owner.
    counters: Arc<RwLock<HashMap<MemberId, Arc<VerdictCounters>>>>,
    pub activity: Activity,
    pub limits: Arc<Limits>,
    pub store: Arc<Store>,
    snapshot: Arc<RwLock<LinkSnapshot>>,
    tx: mpsc::Sender<Command>,
}

impl LinkHandle {
    pub fn snapshot(&self) -> LinkSnapshot {
        self.snapshot.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Verdicts counted for program `id` (empty while counting never was on).
    pub fn stats(&self, id: MemberId) -> Option<Stats> {
        self.counters.read().ok()?.get(&id).map(|c| c.read())
    }

    pub async fn set_counting(&self, on: bool, caller: Caller) -> Result<(), ServiceError> {
        self.ask(|reply| Command::SetCounting { on, caller, reply }).await
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ServiceError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| ServiceError::NoSuchLink(format!("interface {} is gone", self.ifindex)))?;
        answer.await.map_err(|_| ServiceError::NoSuchLink(format!("interface {} is gone", self.ifindex)))?
    }

    /// Adds a verified program; `object` is its file, kept once it is in the chain.
    pub async fn add(
        &self,
        program: LoadedProgram,
        object: Arc<Vec<u8>>,
        request: AddRequest,
        caller: Caller,
    ) -> Result<OwnedObjectPath, ServiceError> {
        self.ask(|reply| Command::Add { program: Box::new(program), object, request, caller, reply }).await
    }

    pub async fn remove(&self, id: MemberId, caller: Caller) -> Result<(), ServiceError> {
        self.ask(|reply| Command::Remove { id, caller, reply }).await
    }

    pub async fn get_maps(&self, id: MemberId, caller: Caller) -> Result<Vec<(String, OwnedFd)>, ServiceError> {
        self.ask(|reply| Command::GetMaps { id, caller, reply }).await
    }

    pub async fn reclaim(&self, caller: Caller) -> Result<(), ServiceError> {
        self.ask(|reply| Command::Reclaim { caller, reply }).await
    }
}

/// All interfaces of the service's network namespace.
pub struct Links {
    config: Arc<Config>,
    activity: Activity,
    limits: Arc<Limits>,
    store: Arc<Store>,
    connection: Connection,
    links: Mutex<HashMap<u32, LinkHandle>>,
}

impl Links {
    pub fn new(config: Arc<Config>, connection: Connection, activity: Activity, store: Arc<Store>) -> Arc<Links> {
        let limits = Limits::new(config.max_programs_per_uid, config.max_requests_per_client);
        Arc::new(Links { config, activity, limits, store, connection, links: Mutex::new(HashMap::new()) })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn get(&self, ifindex: u32) -> Option<LinkHandle> {
        self.links.lock().ok()?.get(&ifindex).cloned()
    }

    pub fn by_name(&self, name: &str) -> Option<LinkHandle> {
        let links = self.links.lock().ok()?;
        links.values().find(|h| h.snapshot().name == name).cloned()
    }

    pub fn indexes(&self) -> Vec<u32> {
        self.links.lock().map(|l| l.keys().copied().collect()).unwrap_or_default()
    }

    /// An interface appeared: restore its recorded chain, start its owner
    /// and export its objects.
    pub async fn appeared(self: &Arc<Links>, ifindex: u32, name: String) {
        if self.get(ifindex).is_some() {
            return;
        }
        let (config, store, ifname) = (self.config.clone(), self.store.clone(), name.clone());
        let (chain, programs) =
            tokio::task::spawn_blocking(move || restore(&config, &store, ifindex, &ifname)).await.unwrap_or_else(|e| {
                tracing::error!(ifindex, "restoring the chain failed: {e}");
                (Chain::for_interface(ifindex, &self.config.bpffs_root), HashMap::new())
            });
        let snapshot = Arc::new(RwLock::new(LinkSnapshot { index: ifindex, name: name.clone(), ..Default::default() }));
        let (tx, rx) = mpsc::channel(64);
        let handle = LinkHandle {
            ifindex,
            counters: Arc::new(RwLock::new(HashMap::new())),
            activity: self.activity.clone(),
            limits: self.limits.clone(),
            store: self.store.clone(),
            snapshot: snapshot.clone(),
            tx,
        };
        let owner = Owner {
            handle: handle.clone(),
            ifindex,
            path: dbus::link_path(ifindex),
            chain: Arc::new(Mutex::new(chain.with_max_members(self.config.max_programs_per_link))),
            programs,
            snapshot,
            connection: self.connection.clone(),
            store: self.store.clone(),
            maps_root: self.config.bpffs_root.join(ifindex.to_string()).join("prog"),
        };
        owner.refresh_snapshot();
        if let Ok(mut links) = self.links.lock() {
            links.insert(ifindex, handle.clone());
        }
        if let Err(e) = dbus::link::export(&self.connection, handle.clone(), self.config.max_object_size).await {
            tracing::error!(ifindex, "cannot export the link object: {e}");
        }
        for info in owner.programs.values() {
            self.limits.count_program(info.owner);
            dbus::program::export(&self.connection, ifindex, info.id, ProgramIface::new(info.clone(), handle.clone()))
                .await;
        }
        if !owner.programs.is_empty() {
            let snapshot = owner.snapshot();
            tracing::info!(ifindex, interface = %name, programs = owner.programs.len(), kernel_id = snapshot.kernel_program_id, "chain restored");
            if snapshot.kernel_program_id == 0 {
                tracing::warn!(ifindex, interface = %name, foreign = snapshot.foreign_program_id, "the recorded chain is not attached: it was detached or replaced behind xdpd's back; Reclaim takes the interface back");
            }
            owner.save_record();
        } else {
            // Nothing came back (e.g. no persistent programs after a reboot).
            self.store.remove_link(ifindex);
        }
        tracing::debug!(ifindex, interface = %name, "interface appeared");
        tokio::spawn(owner.run(rx));
    }

    pub async fn renamed(&self, ifindex: u32, name: String) {
        if let Some(h) = self.get(ifindex) {
            let _ = h.tx.send(Command::Renamed(name)).await;
        }
    }

    /// Saves the maps of persistent programs that asked for a snapshot (at exit).
    pub async fn save_snapshots(&self) {
        let handles: Vec<LinkHandle> = self.links.lock().map(|l| l.values().cloned().collect()).unwrap_or_default();
        for h in handles {
            let _ = h.ask(|reply| Command::SaveSnapshots { reply }).await;
        }
    }

    /// Asks every owner to compare the kernel's XDP state with its own.
    pub async fn check_foreign(&self) {
        let handles: Vec<LinkHandle> = self.links.lock().map(|l| l.values().cloned().collect()).unwrap_or_default();
        for h in handles {
            let _ = h.tx.try_send(Command::CheckForeign);
        }
    }

    pub async fn disappeared(&self, ifindex: u32) {
        let handle = self.links.lock().ok().and_then(|mut l| l.remove(&ifindex));
        if let Some(h) = handle {
            let _ = h.tx.send(Command::Gone).await;
        }
    }
}

/// The task that owns one interface's chain.
struct Owner {
    handle: LinkHandle,
    store: Arc<Store>,
    /// `<bpffs root>/<ifindex>/prog`: maps pinned per member id.
    maps_root: std::path::PathBuf,
    ifindex: u32,
    path: OwnedObjectPath,
    chain: Arc<Mutex<Chain>>,
    programs: HashMap<MemberId, ProgramInfo>,
    snapshot: Arc<RwLock<LinkSnapshot>>,
    connection: Connection,
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

impl Owner {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(command) = rx.recv().await {
            match command {
                Command::Add { program, object, request, caller, reply } => {
                    let _ = reply.send(self.add(*program, object, request, caller).await);
                }
                Command::Remove { id, caller, reply } => {
                    let _ = reply.send(self.remove(id, caller).await);
                }
                Command::GetMaps { id, caller, reply } => {
                    let _ = reply.send(self.get_maps(id, &caller).await);
                }
                Command::Reclaim { caller, reply } => {
                    let _ = reply.send(self.reclaim(caller).await);
                }
                Command::SetCounting { on, caller, reply } => {
                    let _ = reply.send(self.set_counting(on, caller).await);
                }
                Command::SaveSnapshots { reply } => {
                    self.save_snapshots();
                    let _ = reply.send(Ok(()));
                }
                Command::CheckForeign => self.check_foreign().await,
                Command::Renamed(name) => {
                    let changed =
                        self.snapshot.write().map(|mut s| std::mem::replace(&mut s.name, name.clone()) != name);
                    if changed.unwrap_or(false) {
                        tracing::info!(ifindex = self.ifindex, interface = %name, "interface renamed");
                        if !self.programs.is_empty() {
                            self.save_record();
                        }
                        dbus::link::properties_changed(&self.connection, &self.path, &self.snapshot(), &["Name"]).await;
                    }
                }
                Command::Gone => break,
            }
        }
        self.gone().await;
    }

    fn snapshot(&self) -> LinkSnapshot {
        self.snapshot.read().map(|s| s.clone()).unwrap_or_default()
    }

    fn ifname(&self) -> String {
        self.snapshot().name
    }

    /// Runs `f` on the chain off the async runtime (the kernel work blocks).
    async fn with_chain<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Chain) -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        let chain = self.chain.clone();
        tokio::task::spawn_blocking(move || {
            let mut chain = chain.lock().map_err(|_| ServiceError::Failed("the chain's lock is poisoned".into()))?;
            Ok(f(&mut chain))
        })
        .await
        .map_err(|e| ServiceError::Failed(format!("chain task failed: {e}")))?
    }

    fn refresh_snapshot(&self) {
        let Ok(chain) = self.chain.lock() else { return };
        let hook = chain.hook();
        let programs = chain.members().iter().map(|m| dbus::program_path(self.ifindex, m.id)).collect();
        let kernel_program_id = hook.and_then(|h| h.attached_prog_id()).unwrap_or(0);
        let foreign_program_id = hook.and_then(|h| h.foreign().ok().flatten()).map_or(0, |f| f.prog_id);
        let mode = hook.and_then(|h| h.mode()).map_or("", |m| m.name()).to_string();
        if let Ok(mut counters) = self.handle.counters.write() {
            *counters = chain.members().iter().filter_map(|m| Some((m.id, m.counters()?))).collect();
        }
        if let Ok(mut s) = self.snapshot.write() {
            s.generation = chain.generation();
            s.programs = programs;
            s.kernel_program_id = kernel_program_id;
            s.foreign_program_id = foreign_program_id;
            s.mode = mode;
            s.counting = chain.counting();
        }
    }

    async fn add(
        &mut self,
        program: LoadedProgram,
        object: Arc<Vec<u8>>,
        request: AddRequest,
        caller: Caller,
    ) -> Result<OwnedObjectPath, ServiceError> {
        let ifname = self.ifname();
        let replaced = if request.replace {
            self.programs.values().find(|p| p.tag == request.tag && p.owner == caller.uid).map(|p| p.id)
        } else {
            None
        };
        let options = AddOptions {
            priority: request.priority,
            proceed_on: request.proceed_on,
            tag: request.tag.clone(),
            mode: request.mode,
            force: request.force,
            privilege: if caller.is_root() { Privilege::Full } else { Privilege::User },
        };
        let (sha256, name) = (program.sha256.clone(), program.name.clone());
        let expected = request.expected_generation;
        // A replacement keeps the count; a new program needs room under the uid's limit.
        if replaced.is_none() {
            self.handle.limits.reserve_program(caller.uid)?;
        }
        let release = |limits: &Limits| {
            if replaced.is_none() {
                limits.release_program(caller.uid);
            }
        };
        let result = self
            .with_chain(move |chain| {
                if let Some(g) = expected.filter(|&g| g != chain.generation()) {
                    return Err(crate::engine::Error::Conflict(format!(
                        "the chain is at generation {}, not {g}",
                        chain.generation()
                    )));
                }
                let id = match replaced {
                    Some(old) => chain.replace(old, program, options)?,
                    None => chain.add(program, options)?,
                };
                let member = chain.member(id).map(|m| {
                    let maps = m.program.maps.iter().map(|map| (map.name.clone(), map.id)).collect();
                    (m.priority, m.proceed_on.names(), maps)
                });
                Ok((id, member))
            })
            .await
            .inspect_err(|_| release(&self.handle.limits))?;
        let (id, member) = result.inspect_err(|e| {
            release(&self.handle.limits);
            tracing::info!(%caller, interface = %ifname, program = %name, "add refused: {e}");
        })?;
        // The object is kept only once its program is in the chain, and before
        // the record names it: a refused request leaves no file behind.
        if let Err(e) = self.store.save_object(&sha256, &object) {
            tracing::error!(%caller, interface = %ifname, "cannot keep a copy of the object; the program will not survive a restart: {e}");
        }
        let (priority, proceed_on, map_ids) = member.unwrap_or_default();
        let info = ProgramInfo {
            id,
            name: name.clone(),
            link: self.path.clone(),
            priority,
            proceed_on,
            tag: request.tag,
            owner: caller.uid,
            sha256,
            loaded_at: now_micros(),
            map_ids,
            persist: request.persist,
            snapshot: request.snapshot,
        };
        tracing::info!(%caller, interface = %ifname, program = %name, id, priority, replaced = ?replaced, "program added");
        let path = dbus::program_path(self.ifindex, id);
        self.publish(Some(info), replaced).await;
        Ok(path)
    }

    async fn remove(&mut self, id: MemberId, caller: Caller) -> Result<(), ServiceError> {
        if !self.programs.contains_key(&id) {
            return Err(no_such_program(id));
        }
        self.with_chain(move |chain| chain.remove(id)).await??;
        if let Some(owner) = self.programs.get(&id).map(|p| p.owner) {
            self.handle.limits.release_program(owner);
        }
        tracing::info!(%caller, interface = %self.ifname(), id, "program removed");
        self.publish(None, Some(id)).await;
        Ok(())
    }

    async fn get_maps(&self, id: MemberId, caller: &Caller) -> Result<Vec<(String, OwnedFd)>, ServiceError> {
        tracing::debug!(%caller, interface = %self.ifname(), id, "map descriptors handed out");
        let chain = self.chain.lock().map_err(|_| ServiceError::Failed("the chain's lock is poisoned".into()))?;
        let member = chain.member(id).ok_or_else(|| no_such_program(id))?;
        member
            .program
            .maps
            .iter()
            .map(|m| Ok((m.name.clone(), m.fd.try_clone().map_err(|e| ServiceError::Kernel(e.to_string()))?)))
            .collect()
    }

    fn save_snapshots(&self) {
        let Ok(chain) = self.chain.lock() else { return };
        for p in self.programs.values().filter(|p| p.snapshot) {
            let Some(member) = chain.member(p.id) else { continue };
            let snapshot = snapshot_maps(&member.program);
            match self.store.save_snapshot(p.id, &snapshot) {
                Ok(()) => {
                    tracing::info!(ifindex = self.ifindex, id = p.id, maps = snapshot.len(), "map snapshot saved")
                }
                Err(e) => tracing::error!(ifindex = self.ifindex, id = p.id, "cannot save a map snapshot: {e}"),
            }
        }
    }

    async fn set_counting(&mut self, on: bool, caller: Caller) -> Result<(), ServiceError> {
        self.with_chain(move |chain| chain.set_counting(on)).await??;
        tracing::info!(%caller, interface = %self.ifname(), on, "verdict counting switched");
        self.publish(None, None).await;
        Ok(())
    }

    async fn reclaim(&mut self, caller: Caller) -> Result<(), ServiceError> {
        self.with_chain(|chain| chain.reclaim()).await??;
        tracing::warn!(%caller, interface = %self.ifname(), "interface reclaimed from a foreign program");
        self.publish(None, None).await;
        Ok(())
    }

    /// The record of this interface as it is now.
    fn record(&self) -> LinkRecord {
        let snapshot = self.snapshot();
        let members =
            self.chain.lock().map(|c| c.members().iter().map(|m| m.id).collect::<Vec<_>>()).unwrap_or_default();
        LinkRecord {
            ifindex: self.ifindex,
            name: snapshot.name,
            generation: snapshot.generation,
            kernel_program_id: snapshot.kernel_program_id,
            counting: snapshot.counting,
            members: members
                .into_iter()
                .filter_map(|id| self.programs.get(&id))
                .map(|p| MemberRecord {
                    id: p.id,
                    function: p.name.clone(),
                    sha256: p.sha256.clone(),
                    priority: p.priority,
                    proceed_on: p.proceed_on.clone(),
                    tag: p.tag.clone(),
                    owner: p.owner,
                    loaded_at: p.loaded_at,
                    persist: p.persist,
                    snapshot: p.snapshot,
                })
                .collect(),
        }
    }

    fn save_record(&self) {
        let record = self.record();
        let result = if record.members.is_empty() {
            self.store.remove_link(self.ifindex);
            Ok(())
        } else {
            self.store.save_link(&record)
        };
        if let Err(e) = result {
            tracing::error!(ifindex = self.ifindex, "cannot write the record: {e}");
        }
    }

    /// Makes pins, record, D-Bus objects and signals follow a change of the
    /// chain. The order makes a crash at any point recoverable: a new
    /// program's maps are pinned before the record names it, a removed
    /// program's pins go only after the record dropped it, and pins no record
    /// names are cleaned up at the next start.
    async fn publish(&mut self, added: Option<ProgramInfo>, removed: Option<MemberId>) {
        if let Some(info) = &added {
            let dir = self.maps_root.join(info.id.to_string());
            let pinned = self.chain.lock().ok().and_then(|c| c.member(info.id).map(|m| m.program.pin_maps(&dir)));
            if let Some(Err(e)) = pinned {
                tracing::error!(ifindex = self.ifindex, id = info.id, "cannot pin the program's maps: {e}");
            }
            self.programs.insert(info.id, info.clone());
        }
        if let Some(id) = removed {
            self.programs.remove(&id);
        }
        self.refresh_snapshot();
        self.save_record();
        if let Some(id) = removed {
            let _ = std::fs::remove_dir_all(self.maps_root.join(id.to_string()));
            dbus::program::unexport(&self.connection, self.ifindex, id).await;
        }
        if let Some(info) = added {
            let id = info.id;
            dbus::program::export(&self.connection, self.ifindex, id, ProgramIface::new(info, self.handle.clone()))
                .await;
        }
        let snapshot = self.snapshot();
        dbus::link::chain_changed(&self.connection, &self.path, &snapshot).await;
    }

    /// Notices a chain detached or replaced behind our back: says so loudly
    /// (log, ForeignProgramId, ForeignProgramDetected) and does not fight.
    async fn check_foreign(&mut self) {
        let before = self.snapshot();
        self.refresh_snapshot();
        let now = self.snapshot();
        if (now.kernel_program_id, now.foreign_program_id) == (before.kernel_program_id, before.foreign_program_id) {
            return;
        }
        let has_chain = !now.programs.is_empty();
        if has_chain && now.kernel_program_id == 0 {
            match now.foreign_program_id {
                0 => {
                    tracing::warn!(ifindex = self.ifindex, interface = %now.name, "the chain was detached behind xdpd's back; Reclaim takes the interface back")
                }
                id => {
                    tracing::warn!(ifindex = self.ifindex, interface = %now.name, foreign = id, "the chain was replaced by a foreign program; Reclaim takes the interface back")
                }
            }
        } else if now.foreign_program_id != 0 {
            tracing::warn!(ifindex = self.ifindex, interface = %now.name, foreign = now.foreign_program_id, "a foreign XDP program is attached");
        }
        dbus::link::properties_changed(
            &self.connection,
            &self.path,
            &now,
            &["KernelProgramId", "ForeignProgramId", "Mode"],
        )
        .await;
        if has_chain || now.foreign_program_id != 0 {
            dbus::link::foreign_program_detected(&self.connection, &self.path, now.foreign_program_id).await;
        }
    }

    async fn gone(mut self) {
        tracing::info!(ifindex = self.ifindex, "interface removed");
        let ids: Vec<MemberId> = self.programs.keys().copied().collect();
        for id in ids {
            if let Some(p) = self.programs.remove(&id) {
                self.handle.limits.release_program(p.owner);
            }
            dbus::program::unexport(&self.connection, self.ifindex, id).await;
        }
        // The device is gone and its link with it: drop the pins, the chain and the record.
        let _ = self.with_chain(|chain| chain.forget()).await;
        let _ = std::fs::remove_dir_all(&self.maps_root);
        if let Some(dir) = self.maps_root.parent() {
            let _ = std::fs::remove_dir(dir);
        }
        self.store.remove_link(self.ifindex);

        dbus::link::unexport(&self.connection, self.ifindex).await;
    }
}

/// Rebuilds an interface's chain from its record (see `Chain::restore`). With
/// the link still pinned, every member comes back with its pinned maps; after
/// a reboot (no link), only members added with `persist` do, with fresh maps.
fn restore(config: &Config, store: &Store, ifindex: u32, name: &str) -> (Chain, HashMap<MemberId, ProgramInfo>) {
    let root = &config.bpffs_root;
    let fresh = || (Chain::for_interface(ifindex, root), HashMap::new());
    let maps_root = root.join(ifindex.to_string()).join("prog");
    let live = crate::kernel::hook::Hook::new(ifindex, root).attached_prog_id().is_some();
    let record = match store.link(ifindex) {
        Some(r) if live || r.name == name => Some(r),
        Some(r) => {
            tracing::info!(ifindex, interface = name, recorded = %r.name, "a new interface reuses a recorded index: starting empty");
            store.remove_link(ifindex);
            None
        }
        None => None,
    };
    // After a reboot indexes change: persistent programs follow the interface's name.
    let record = record.or_else(|| {
        let present = crate::interfaces::current();
        let moved = store
            .links()
            .into_iter()
            .find(|r| r.ifindex != ifindex && r.name == name && present.get(&r.ifindex).is_none_or(|n| n != name))?;
        tracing::info!(
            ifindex,
            interface = name,
            recorded_index = moved.ifindex,
            "the interface's recorded programs follow its name"
        );
        store.remove_link(moved.ifindex);
        Some(LinkRecord { ifindex, ..moved })
    });
    let Some(record) = record else {
        let _ = std::fs::remove_dir_all(&maps_root);
        return fresh();
    };
    // Pins of programs the record does not name are leftovers of an interrupted change.
    if let Ok(entries) = std::fs::read_dir(&maps_root) {
        for entry in entries.filter_map(Result::ok) {
            let known = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|id| record.members.iter().any(|m| m.id == id && (live || m.persist)));
            if !known {
                tracing::info!(ifindex, pin = %entry.path().display(), "removing leftover pins");
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let mut members = Vec::new();
    let mut programs = HashMap::new();
    for (position, m) in record.members.iter().enumerate() {
        if !live && !m.persist {
            continue;
        }
        let maps = maps_root.join(m.id.to_string());
        let loaded = store.object(&m.sha256).map_err(|e| format!("object {}: {e}", m.sha256)).and_then(|bytes| {
            load_with(
                &bytes,
                Some(&m.function),
                config.max_object_size,
                Some(&maps),
                if m.owner == 0 { Privilege::Full } else { Privilege::User },
            )
            .map_err(|e| e.to_string())
        });
        let program = match loaded {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(ifindex, id = m.id, program = %m.function, "cannot restore a recorded program: {e}");
                continue;
            }
        };
        if !live && m.snapshot {
            match store.snapshot(m.id) {
                Some(snapshot) => restore_maps(&program, &snapshot),
                None => tracing::warn!(ifindex, id = m.id, "no map snapshot to restore: maps start empty"),
            }
        }
        if let Err(e) = program.pin_maps(&maps) {
            tracing::error!(ifindex, id = m.id, "cannot pin the maps of a restored program: {e}");
        }
        programs.insert(
            m.id,
            ProgramInfo {
                id: m.id,
                name: m.function.clone(),
                link: dbus::link_path(ifindex),
                priority: m.priority,
                proceed_on: m.proceed_on.clone(),
                tag: m.tag.clone(),
                owner: m.owner,
                sha256: m.sha256.clone(),
                loaded_at: m.loaded_at,
                map_ids: program.maps.iter().map(|map| (map.name.clone(), map.id)).collect(),
                persist: m.persist,
                snapshot: m.snapshot,
            },
        );
        members.push(RestoredMember {
            id: m.id,
            program,
            priority: m.priority,
            proceed_on: ActionSet::from_names(&m.proceed_on).unwrap_or_default(),
            tag: m.tag.clone(),
            seq: position as u64 + 1,
            privilege: if m.owner == 0 { Privilege::Full } else { Privilege::User },
        });
    }
    let running = if live { record.kernel_program_id } else { 0 };
    match Chain::restore(ifindex, root, members, record.generation, running) {
        Ok(mut chain) => {
            // Counters are not kept across restarts: counting starts again from zero (a relink).
            if record.counting {
                if let Err(e) = chain.set_counting(true) {
                    tracing::error!(ifindex, "cannot switch verdict counting back on: {e}");
                }
            }
            (chain, programs)
        }
        Err(e) => {
            tracing::error!(ifindex, interface = name, "cannot restore the recorded chain: {e}");
            fresh()
        }
    }
}

/// Maps whose contents a snapshot keeps: hashes and arrays (not .rodata,
/// which is frozen, nor per-CPU maps or program arrays).
fn snapshotted(map: &crate::engine::ProgramMap) -> Option<crate::kernel::bpf::MapInfo> {
    const HASH: u32 = 1;
    const ARRAY: u32 = 2;
    const LRU_HASH: u32 = 9;
    let info = crate::kernel::bpf::map_info(std::os::fd::AsFd::as_fd(&map.fd)).ok()?;
    (matches!(info.map_type, HASH | ARRAY | LRU_HASH) && !map.name.ends_with(".rodata")).then_some(info)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

fn snapshot_maps(program: &LoadedProgram) -> crate::state::MapSnapshot {
    program
        .maps
        .iter()
        .filter_map(|map| {
            let info = snapshotted(map)?;
            let entries = crate::kernel::bpf::map_entries(
                std::os::fd::AsFd::as_fd(&map.fd),
                info.key_size as usize,
                info.value_size as usize,
            );
            Some((map.name.clone(), entries.iter().map(|(k, v)| (hex(k), hex(v))).collect()))
        })
        .collect()
}

fn restore_maps(program: &LoadedProgram, snapshot: &crate::state::MapSnapshot) {
    for map in &program.maps {
        let (Some(info), Some(entries)) = (snapshotted(map), snapshot.get(&map.name)) else { continue };
        for (k, v) in entries {
            let (Some(k), Some(v)) = (unhex(k), unhex(v)) else { continue };
            if k.len() != info.key_size as usize || v.len() != info.value_size as usize {
                tracing::warn!(map = %map.name, "a snapshot entry does not fit the map: skipped");
                continue;
            }
            if let Err(e) = crate::kernel::bpf::map_update(std::os::fd::AsFd::as_fd(&map.fd), &k, &v) {
                tracing::warn!(map = %map.name, "cannot restore a snapshot entry: {e}");
            }
        }
    }
}

fn no_such_program(id: MemberId) -> ServiceError {
    ServiceError::NoSuchProgram(format!("no program {id} on this interface"))
}
