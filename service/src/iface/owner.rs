//! The task that owns one interface's chain. Requests for one interface are
//! serialized through its command queue; different interfaces run in
//! parallel; property reads are served from the published view and never
//! wait behind a verification. Callers are authorized before a command gets
//! here, so an owner never waits on polkit. After each change the owner pins,
//! records, and then reports through [`Publish`], in an order that makes a
//! crash at any point recoverable.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use super::command::{AddRequest, Command};
use super::handle::Handle;
use super::map_access::map_selection;
use super::publish::{IfaceProperty, IfaceView, ProgramView, Publish};
use super::shared_maps;
use super::view::Observed;
use crate::caller::Caller;
use crate::engine::{AddOptions, Chain, LoadedProgram, MemberId};
use crate::error::ServiceError;
use crate::kernel::bpffs::Bpffs;
use crate::limits::{Charge, Limits};
use crate::program::ProgramSpec;
use crate::state::{snapshot, IfaceRecord, MemberRecord, Store};

/// What an owner needs from the service.
#[derive(Clone)]
pub struct Context {
    pub store: Arc<Store>,
    pub limits: Arc<Limits>,
    pub publish: Arc<dyn Publish>,
    pub bpffs_root: PathBuf,
}

/// The task that owns one interface's chain.
pub struct Owner {
    cx: Context,
    handle: Handle,
    ifindex: u32,
    /// `<bpffs root>/<ifindex>/prog`: maps pinned per member id.
    maps_root: PathBuf,
    /// Locked only by this task (the mutex lets the blocking pool borrow the chain).
    chain: Arc<Mutex<Chain>>,
    /// The members' specs and views; its keys are the chain's member ids.
    programs: BTreeMap<MemberId, ProgramView>,
    view: watch::Sender<IfaceView>,
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

fn no_such_program(id: MemberId) -> ServiceError {
    ServiceError::NoSuchProgram(format!("no program {id} on this interface"))
}

impl Owner {
    /// The owner of interface `ifindex` with a restored `chain`, a handle on
    /// it, and its queue (its view is empty until [`Owner::refresh_view`]).
    pub fn new(
        cx: Context,
        ifindex: u32,
        name: String,
        chain: Chain,
        programs: BTreeMap<MemberId, ProgramView>,
    ) -> (Handle, Owner, mpsc::Receiver<Command>) {
        let (view, view_rx) = watch::channel(IfaceView { index: ifindex, name, ..Default::default() });
        let (tx, rx) = mpsc::channel(64);
        let handle = Handle { ifindex, counters: Arc::new(RwLock::new(Default::default())), view: view_rx, tx };
        let maps_root = cx.bpffs_root.join(ifindex.to_string()).join("prog");
        let owner = Owner {
            cx,
            handle: handle.clone(),
            ifindex,
            maps_root,
            chain: Arc::new(Mutex::new(chain)),
            programs,
            view,
        };
        (handle, owner, rx)
    }

    pub fn programs(&self) -> impl Iterator<Item = &ProgramView> {
        self.programs.values()
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(command) = rx.recv().await {
            match command {
                Command::Add { program, object, request, caller, reply } => {
                    let _ = reply.send(self.add(*program, object, request, caller).await);
                }
                Command::Remove { id, caller, reply } => {
                    let _ = reply.send(self.remove(id, caller).await);
                }
                Command::GetMaps { id, caller, names, reply } => {
                    let _ = reply.send(self.get_maps(id, &caller, names).await);
                }
                Command::Reclaim { caller, reply } => {
                    let _ = reply.send(self.reclaim(caller).await);
                }
                Command::SetCounting { on, caller, reply } => {
                    let _ = reply.send(self.set_counting(on, caller).await);
                }
                Command::SaveSnapshots { reply } => {
                    self.save_snapshots().await;
                    let _ = reply.send(Ok(()));
                }
                Command::CheckForeign => self.check_foreign().await,
                Command::Renamed(name) => self.renamed(name).await,
                Command::Gone => break,
            }
        }
        self.gone().await;
    }

    pub fn view(&self) -> IfaceView {
        self.view.borrow().clone()
    }

    fn ifname(&self) -> String {
        self.view.borrow().name.clone()
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

    /// Brings the view and the shared counters in line with the chain and the
    /// kernel (whose queries run on the blocking pool).
    pub(super) async fn refresh_view(&self) {
        let observed = match self.with_chain(|chain| Observed::of(chain)).await {
            Ok(observed) => observed,
            Err(e) => return tracing::error!(ifindex = self.ifindex, "cannot read the chain's state: {e}"),
        };
        if let Ok(mut counters) = self.handle.counters.write() {
            counters.clone_from(&observed.counters);
        }
        self.view.send_modify(|v| observed.apply(v));
    }

    async fn add(
        &mut self,
        program: LoadedProgram,
        object: Arc<Vec<u8>>,
        request: AddRequest,
        caller: Caller,
    ) -> Result<MemberId, ServiceError> {
        let replaced = request
            .replace
            .then(|| self.programs.values().find(|p| p.spec.tag == request.tag && p.spec.owner_uid == caller.uid))
            .flatten()
            .map(|p| p.id);
        // A replacement keeps the count; a new program needs room under the
        // uid's limits, and so do its maps (the replaced program's are released after).
        let new_programs = usize::from(replaced.is_none());
        let charge = Charge::new(program.maps.iter().map(|m| m.bytes).sum(), request.snapshot);
        self.cx.limits.reserve_program(caller.uid, new_programs, charge)?;
        let old_charge = replaced.and_then(|old| self.programs.get(&old)).map(|p| p.spec.charge());
        let (function, sha256) = (program.name.clone(), program.sha256.clone());
        let result = self.add_to_chain(program, &request, &caller, replaced).await;
        let (id, view) = result.inspect_err(|e| {
            self.cx.limits.release_program(caller.uid, new_programs, charge);
            tracing::info!(%caller, interface = %self.ifname(), program = ?function, "add refused: {e}");
        })?;
        if let Some(old) = old_charge {
            self.cx.limits.release_program(caller.uid, 0, old);
        }
        // The object is kept only once its program is in the chain, and before
        // the record names it: a refused request leaves no file behind.
        if let Err(e) = self.cx.store.save_object(&sha256, &object) {
            tracing::error!(%caller, interface = %self.ifname(), "cannot keep a copy of the object; the program will not survive a restart: {e}");
        }
        tracing::info!(%caller, interface = %self.ifname(), program = ?function, id, priority = view.spec.priority, replaced = ?replaced, "program added");
        self.changed(Some(view), replaced).await;
        Ok(id)
    }

    /// Links the program into the chain (checking the expected generation)
    /// and describes the new member.
    async fn add_to_chain(
        &self,
        program: LoadedProgram,
        request: &AddRequest,
        caller: &Caller,
        replaced: Option<MemberId>,
    ) -> Result<(MemberId, ProgramView), ServiceError> {
        let options = AddOptions {
            priority: request.priority,
            proceed_on: request.proceed_on,
            tag: request.tag.clone(),
            mode: request.mode,
            force: request.force,
            privilege: caller.privilege(),
        };
        let expected = request.expected_generation;
        let (function, sha256) = (program.name.clone(), program.sha256.clone());
        let map_bytes = program.maps.iter().map(|m| m.bytes).sum();
        let (id, priority, proceed_on, map_ids) = self
            .with_chain(move |chain| {
                if let Some(g) = expected.filter(|&g| g != chain.generation()) {
                    let now = chain.generation();
                    return Err(crate::engine::Error::Conflict(format!("the chain is at generation {now}, not {g}")));
                }
                let id = match replaced {
                    Some(old) => chain.replace(old, program, options)?,
                    None => chain.add(program, options)?,
                };
                let m = chain.member(id).ok_or(crate::engine::Error::NoSuchProgram(id))?;
                let maps = m.program.maps.iter().map(|map| (map.name.clone(), map.id)).collect();
                Ok((id, m.priority, m.proceed_on.names(), maps))
            })
            .await??;
        let spec = ProgramSpec {
            function,
            sha256,
            priority,
            proceed_on,
            tag: request.tag.clone(),
            owner_uid: caller.uid,
            loaded_at: now_micros(),
            persist: request.persist,
            snapshot: request.snapshot,
            map_bytes,
        };
        Ok((id, ProgramView { ifindex: self.ifindex, id, spec, map_ids }))
    }

    async fn remove(&mut self, id: MemberId, caller: Caller) -> Result<(), ServiceError> {
        let spec = self.programs.get(&id).map(|p| p.spec.clone()).ok_or_else(|| no_such_program(id))?;
        self.with_chain(move |chain| chain.remove(id)).await??;
        self.cx.limits.release_program(spec.owner_uid, 1, spec.charge());
        tracing::info!(%caller, interface = %self.ifname(), id, "program removed");
        self.changed(None, Some(id)).await;
        Ok(())
    }

    async fn get_maps(
        &self,
        id: MemberId,
        caller: &Caller,
        names: Option<Vec<String>>,
    ) -> Result<Vec<(String, OwnedFd)>, ServiceError> {
        tracing::debug!(%caller, interface = %self.ifname(), id, "map descriptors handed out");
        self.with_chain(move |chain| {
            let member = chain.member(id).ok_or_else(|| no_such_program(id))?;
            let maps = &member.program.maps;
            let wanted = map_selection(maps.iter().map(|m| m.name.as_str()), names)?;
            maps.iter()
                .filter(|m| wanted.contains(&m.name))
                .map(|m| Ok((m.name.clone(), m.fd.try_clone().map_err(|e| ServiceError::Kernel(e.to_string()))?)))
                .collect()
        })
        .await?
    }

    /// Saves the maps of members that asked for a snapshot (map reads and file writes: blocking).
    async fn save_snapshots(&self) {
        let (ifindex, store) = (self.ifindex, self.cx.store.clone());
        let ids: Vec<MemberId> = self.programs.values().filter(|p| p.spec.snapshot).map(|p| p.id).collect();
        let _ = self
            .with_chain(move |chain| {
                for (id, member) in ids.into_iter().filter_map(|id| Some((id, chain.member(id)?))) {
                    let maps = member.program.maps.iter().map(|m| (m.name.as_str(), std::os::fd::AsFd::as_fd(&m.fd)));
                    let saved = snapshot::take(maps);
                    match store.save_snapshot(id, &saved) {
                        Ok(()) => tracing::info!(ifindex, id, maps = saved.len(), "map snapshot saved"),
                        Err(e) => tracing::error!(ifindex, id, "cannot save a map snapshot: {e}"),
                    }
                }
            })
            .await;
    }

    async fn set_counting(&mut self, on: bool, caller: Caller) -> Result<(), ServiceError> {
        self.with_chain(move |chain| chain.set_counting(on)).await??;
        tracing::info!(%caller, interface = %self.ifname(), on, "verdict counting switched");
        self.changed(None, None).await;
        Ok(())
    }

    async fn reclaim(&mut self, caller: Caller) -> Result<(), ServiceError> {
        self.with_chain(|chain| chain.reclaim()).await??;
        tracing::warn!(%caller, interface = %self.ifname(), "interface reclaimed from a foreign program");
        self.changed(None, None).await;
        Ok(())
    }

    /// The record of this interface as it is now.
    fn record(&self) -> IfaceRecord {
        let view = self.view();
        IfaceRecord {
            ifindex: self.ifindex,
            name: view.name,
            generation: view.generation,
            kernel_program_id: view.kernel_program_id,
            counting: view.counting,
            members: view
                .programs
                .iter()
                .filter_map(|id| self.programs.get(id))
                .map(|p| MemberRecord::new(p.id, &p.spec))
                .collect(),
        }
    }

    pub fn save_record(&self) {
        self.write_record(self.record());
    }

    fn write_record(&self, record: IfaceRecord) {
        let result = if record.members.is_empty() {
            self.cx.store.remove_link(self.ifindex);
            Ok(())
        } else {
            self.cx.store.save_link(&record)
        };
        if let Err(e) = result {
            tracing::error!(ifindex = self.ifindex, "cannot write the record: {e}");
        }
    }

    /// Makes pins, record, published objects and signals follow a change of
    /// the chain. The order makes a crash at any point recoverable: a new
    /// program's maps are pinned before the record names it, a removed
    /// program's pins go only after the record dropped it, and pins no record
    /// names are cleaned up at the next start.
    async fn changed(&mut self, added: Option<ProgramView>, removed: Option<MemberId>) {
        if let Some(view) = &added {
            let (id, dir) = (view.id, self.maps_root.join(view.id.to_string()));
            let shared = Bpffs::new(&self.cx.bpffs_root).owner_dir(view.spec.owner_uid);
            let pinned = self
                .with_chain(move |c| {
                    c.member(id).map(|m| m.program.pin_maps(&dir).and_then(|()| m.program.pin_shared_maps(&shared)))
                })
                .await;
            if let Ok(Some(Err(e))) = pinned {
                tracing::error!(ifindex = self.ifindex, id = view.id, "cannot pin the program's maps: {e}");
            }
            self.programs.insert(view.id, view.clone());
        }
        let removed_owner = removed.and_then(|id| self.programs.remove(&id)).map(|p| p.spec.owner_uid);
        self.refresh_view().await;
        self.save_record();
        if let Some(id) = removed {
            let _ = std::fs::remove_dir_all(self.maps_root.join(id.to_string()));
            if let Some(uid) = removed_owner {
                let bpffs = Bpffs::new(&self.cx.bpffs_root);
                let _ = tokio::task::spawn_blocking(move || shared_maps::collect(&bpffs, uid)).await;
            }
            self.cx.publish.program_removed(self.ifindex, id).await;
        }
        if let Some(view) = added {
            self.cx.publish.program_added(&self.handle, view).await;
        }
        self.cx.publish.chain_changed(&self.view()).await;
    }

    /// Records the new name before showing it: whoever sees it finds it recorded.
    async fn renamed(&mut self, name: String) {
        if self.view.borrow().name == name {
            return;
        }
        tracing::info!(ifindex = self.ifindex, interface = %name, "interface renamed");
        if !self.programs.is_empty() {
            self.write_record(IfaceRecord { name: name.clone(), ..self.record() });
        }
        self.view.send_modify(|v| v.name = name);
        self.cx.publish.properties_changed(&self.view(), &[IfaceProperty::Name]).await;
    }

    /// Notices a chain detached or replaced behind our back: says so loudly
    /// (log, ForeignProgramId, ForeignProgramDetected) and does not fight.
    async fn check_foreign(&mut self) {
        let before = self.view();
        self.refresh_view().await;
        let now = self.view();
        if (now.kernel_program_id, now.foreign_program_id) == (before.kernel_program_id, before.foreign_program_id) {
            return;
        }
        let has_chain = !now.programs.is_empty();
        now.log_foreign();
        let props = [IfaceProperty::KernelProgramId, IfaceProperty::ForeignProgramId, IfaceProperty::Mode];
        self.cx.publish.properties_changed(&now, &props).await;
        if has_chain || now.foreign_program_id != 0 {
            self.cx.publish.foreign_detected(&now, now.foreign_program_id).await;
        }
    }

    async fn gone(mut self) {
        tracing::info!(ifindex = self.ifindex, "interface removed");
        let mut owners = std::collections::BTreeSet::new();
        for (id, p) in std::mem::take(&mut self.programs) {
            self.cx.limits.release_program(p.spec.owner_uid, 1, p.spec.charge());
            owners.insert(p.spec.owner_uid);
            self.cx.publish.program_removed(self.ifindex, id).await;
        }
        // The device is gone and its link with it: drop the pins, the chain and the record.
        let _ = self.with_chain(|chain| chain.forget()).await;
        let _ = std::fs::remove_dir_all(&self.maps_root);
        if let Some(dir) = self.maps_root.parent() {
            let _ = std::fs::remove_dir(dir);
        }
        let bpffs = Bpffs::new(&self.cx.bpffs_root);
        let _ =
            tokio::task::spawn_blocking(move || owners.into_iter().for_each(|uid| shared_maps::collect(&bpffs, uid)))
                .await;
        self.cx.store.remove_link(self.ifindex);
        self.cx.publish.interface_gone(self.ifindex).await;
    }
}
