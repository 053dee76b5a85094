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
use super::durable::{self, Draft};
use super::handle::Handle;
use super::map_access::map_selection;
use super::publish::{IfaceProperty, IfaceView, ProgramView, Publish};
use super::restore::UNEXPLAINED;
use super::shared_maps;
use super::view::{NetnsTag, Observed};

mod batch;
mod plan;
mod upkeep;
use crate::caller::Caller;
use crate::engine::{next_free_member_id, AddOptions, Chain, LoadedProgram, MemberId};
use crate::error::ServiceError;
use crate::kernel::bpffs::Bpffs;
use crate::kernel::netns::Netns;
use crate::limits::{Charge, Limits};
use crate::program::ProgramSpec;
use crate::state::{snapshot, IfaceRecord, MemberRecord, Store};

/// What an owner needs from the service.
#[derive(Clone)]
pub struct Context {
    pub store: Arc<Store>,
    pub limits: Arc<Limits>,
    pub publish: Arc<dyn Publish>,
    /// Where this namespace's interfaces are pinned (`<root>` or `<root>/netns/<name>`).
    pub bpffs_root: PathBuf,
    /// The service's bpffs root: owners' maps pinned by name are shared across namespaces.
    pub shared_root: PathBuf,
    /// The namespace of the interfaces (None: the service's own), and what it shows.
    pub netns: Option<Netns>,
    pub netns_tag: NetnsTag,
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
    /// Ending because the namespace went: persistent programs stay recorded
    /// for a namespace of the same name.
    keep_persistent: bool,
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// What the chain decided for new member `id`: priority, proceed-on, map
/// ids, and the maps it carried over from the program it replaced.
type MemberFacts = (MemberId, i32, Vec<String>, std::collections::HashMap<String, u32>, Vec<String>);

fn member_facts(chain: &Chain, id: MemberId) -> Result<MemberFacts, crate::engine::Error> {
    let m = chain.member(id).ok_or(crate::engine::Error::NoSuchProgram(id))?;
    let maps = m.program.maps.iter().map(|map| (map.name.clone(), map.id)).collect();
    Ok((id, m.priority, m.proceed_on.names(), maps, m.carried_maps.clone()))
}

/// How the engine adds a program `caller` asked for.
fn add_options(request: &AddRequest, caller: &Caller) -> AddOptions {
    AddOptions {
        priority: request.priority,
        proceed_on: request.proceed_on,
        tag: request.tag.clone(),
        mode: request.mode,
        force: request.force,
        privilege: caller.privilege(),
        fresh_maps: request.fresh_maps,
    }
}

/// Refuses a change based on another generation than the chain's (expected-generation).
fn check_generation(chain: &Chain, expected: Option<u64>) -> Result<(), crate::engine::Error> {
    match expected.filter(|&g| g != chain.generation()) {
        Some(g) => {
            let now = chain.generation();
            Err(crate::engine::Error::Conflict(format!("the chain is at generation {now}, not {g}")))
        }
        None => Ok(()),
    }
}

/// A new program's spec, but for what the chain decides (priority, proceed-on).
fn spec_template(program: &LoadedProgram, request: &AddRequest, caller: &Caller) -> ProgramSpec {
    ProgramSpec {
        object: program.object.clone(),
        function: program.name.clone(),
        sha256: program.sha256.clone(),
        tag: request.tag.clone(),
        owner_uid: caller.uid,
        loaded_at: now_micros(),
        persist: request.persist,
        snapshot: request.snapshot,
        map_bytes: program.maps.iter().map(|m| m.bytes).sum(),
        config: request.config.clone(),
        ..Default::default()
    }
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
        let netns = cx.netns_tag.clone();
        let (view, view_rx) = watch::channel(IfaceView { index: ifindex, name, netns, ..Default::default() });
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
            keep_persistent: false,
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
                Command::Change { request, caller, reply } => {
                    let _ = reply.send(self.change(*request, caller).await);
                }
                Command::PlanChange { request, caller, reply } => {
                    let _ = reply.send(self.dry_run_change(*request, caller).await);
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
                Command::Plan { program, request, caller, reply } => {
                    let _ = reply.send(self.dry_run(*program, request, caller).await);
                }
                Command::Explain { reply } => {
                    let _ = reply.send(self.explain().await);
                }
                Command::SetHold { on, caller, reply } => {
                    let _ = reply.send(self.set_hold(on, caller).await);
                }
                Command::SetCounting { on, caller, reply } => {
                    let _ = reply.send(self.set_counting(on, caller).await);
                }
                Command::SaveSnapshots { reply } => {
                    let _ = reply.send(self.save_snapshots().await);
                }
                Command::CheckForeign => self.check_foreign().await,
                Command::Renamed(name) => self.renamed(name).await,
                Command::Gone => break,
                Command::NetnsGone { keep_persistent } => {
                    self.keep_persistent = keep_persistent;
                    break;
                }
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
        let unexplained = self.unexplained();
        self.view.send_modify(|v| {
            observed.apply(v);
            v.programs.extend(unexplained);
        });
    }

    /// The program standing for a running chain no record explains (see `restore::unexplained`).
    fn unexplained(&self) -> Option<MemberId> {
        self.programs.values().find(|p| p.spec.sha256.is_empty() && p.spec.tag == UNEXPLAINED).map(|p| p.id)
    }

    async fn add(
        &mut self,
        program: LoadedProgram,
        object: Arc<Vec<u8>>,
        request: AddRequest,
        caller: Caller,
    ) -> Result<MemberId, ServiceError> {
        let replaced = self.replaced_by(&request, &caller);
        self.check_add(&program, &request)?;
        // A replacement keeps the count; a new program needs room under the
        // uid's limits, and so do its maps (the replaced program's are released after).
        let new_programs = usize::from(replaced.is_none());
        let charge = Charge::new(program.maps.iter().map(|m| m.bytes).sum(), request.snapshot);
        self.cx.limits.reserve_program(caller.uid, new_programs, charge)?;
        let old_charge = replaced.and_then(|old| self.programs.get(&old)).map(|p| p.spec.charge());
        let (function, sha256) = (program.name.clone(), program.sha256.clone());
        // The object is stored (durably) before the chain changes: a full disk refuses the request.
        let result = match self.cx.store.hold_object(&sha256, &object) {
            Ok(()) => {
                crate::crash::at("stored");
                let added = self.add_to_chain(program, &request, &caller, replaced).await;
                self.cx.store.release_object(&sha256);
                added
            }
            Err(e) => Err(ServiceError::NotDurable(format!("cannot store the object in the state directory: {e}"))),
        };
        let (id, view) = result.inspect_err(|e| {
            self.cx.limits.release_program(caller.uid, new_programs, charge);
            if matches!(e, ServiceError::VerifierRejected(..)) {
                let message_id = crate::log::message_id::PROGRAM_REJECTED;
                tracing::info!(message_id, %caller, interface = %self.ifname(), program = ?function, "add refused: {e}");
            } else {
                tracing::info!(%caller, interface = %self.ifname(), program = ?function, "add refused: {e}");
            }
        })?;
        if let Some(old) = old_charge {
            self.cx.limits.release_program(caller.uid, 0, old);
        }
        let (message_id, chain_priority) = (crate::log::message_id::PROGRAM_ADDED, view.spec.priority);
        tracing::info!(message_id, %caller, interface = %self.ifname(), program = ?function, id, chain_priority, replaced = ?replaced, "program added");
        self.changed(vec![view], replaced.into_iter().collect()).await;
        Ok(id)
    }

    /// The program `request` replaces: the caller's own with the same tag, with `replace`.
    fn replaced_by(&self, request: &AddRequest, caller: &Caller) -> Option<MemberId> {
        request
            .replace
            .then(|| self.programs.values().find(|p| p.spec.tag == request.tag && p.spec.owner_uid == caller.uid))
            .flatten()
            .map(|p| p.id)
    }

    /// Refuses an add the service could not keep its promises for: while an
    /// unexplained chain runs, or a snapshot of maps that cannot be saved.
    fn check_add(&self, program: &LoadedProgram, request: &AddRequest) -> Result<(), ServiceError> {
        if let Some(id) = self.unexplained() {
            return Err(ServiceError::Conflict(format!(
                "a chain no record explains runs on this interface (program {id}, tagged '{UNEXPLAINED}'); an administrator removes it first"
            )));
        }
        let unsaveable = snapshot::unsaveable(program.maps.iter().map(|m| (m.name.as_str(), m.map_type)));
        if request.snapshot && !unsaveable.is_empty() {
            return Err(ServiceError::InvalidArgs(format!(
                "snapshot: the contents of map {} cannot be saved (only hash, array, LRU and LPM trie maps and their per-CPU forms can)",
                unsaveable.join(", ")
            )));
        }
        Ok(())
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
        let options = add_options(request, caller);
        let expected = request.expected_generation;
        let template = spec_template(&program, request, caller);
        let (id, priority, proceed_on, map_ids, carried_maps) = self
            .durably(vec![template.clone()], move |chain| {
                check_generation(chain, expected)?;
                let id = match replaced {
                    Some(old) => chain.replace(old, program, options)?,
                    None => chain.add(program, options)?,
                };
                member_facts(chain, id)
            })
            .await?;
        let spec = ProgramSpec { priority, proceed_on, carried_maps, ..template };
        Ok((id, ProgramView { ifindex: self.ifindex, id, spec, map_ids }))
    }

    /// Runs change `f` on the chain behind a gate that makes it durable
    /// before the swap (see `durable`); commits the record after the swap,
    /// and undoes what was prepared when the change did not happen.
    async fn durably<T: Send + 'static>(
        &self,
        added: Vec<ProgramSpec>,
        f: impl FnOnce(&mut Chain) -> Result<T, crate::engine::Error> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let draft = Draft {
            store: self.cx.store.clone(),
            ifindex: self.ifindex,
            name: self.ifname(),
            maps_root: self.maps_root.clone(),
            specs: self.programs.iter().map(|(id, p)| (*id, p.spec.clone())).collect(),
            shared_dir: added.first().map(|s| Bpffs::new(&self.cx.shared_root).owner_dir(s.owner_uid)),
            added,
        };
        let (store, ifindex, maps_root) = (self.cx.store.clone(), self.ifindex, self.maps_root.clone());
        self.with_chain(move |chain| {
            chain.gate_next_change(draft.gate());
            let result = f(chain);
            let unused = chain.take_gate().is_some();
            match result {
                Ok(value) if unused => Ok(value),
                Ok(value) => {
                    crate::crash::at("swapped");
                    let committed = durable::commit(&store, ifindex).map(|()| value);
                    crate::crash::at("committed");
                    committed
                }
                Err(e) => {
                    let ids: Vec<MemberId> = chain.members().iter().map(|m| m.id).collect();
                    durable::undo(&store, ifindex, &maps_root, &ids);
                    Err(e.into())
                }
            }
        })
        .await?
    }

    async fn remove(&mut self, id: MemberId, caller: Caller) -> Result<(), ServiceError> {
        let spec = self.programs.get(&id).map(|p| p.spec.clone()).ok_or_else(|| no_such_program(id))?;
        if self.unexplained() == Some(id) {
            self.durably(Vec::new(), |chain| chain.clear()).await?;
        } else {
            self.durably(Vec::new(), move |chain| chain.remove(id)).await?;
        }
        self.cx.limits.release_program(spec.owner_uid, 1, spec.charge());
        let message_id = crate::log::message_id::PROGRAM_REMOVED;
        tracing::info!(message_id, %caller, interface = %self.ifname(), id, "program removed");
        self.changed(Vec::new(), vec![id]).await;
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

    async fn set_counting(&mut self, on: bool, caller: Caller) -> Result<(), ServiceError> {
        self.durably(Vec::new(), move |chain| chain.set_counting(on)).await?;
        tracing::info!(%caller, interface = %self.ifname(), on, "verdict counting switched");
        self.changed(Vec::new(), Vec::new()).await;
        Ok(())
    }

    async fn set_hold(&mut self, on: bool, caller: Caller) -> Result<(), ServiceError> {
        if self.unexplained().is_some() && on {
            return Err(ServiceError::Conflict(format!(
                "a chain no record explains runs on this interface (tagged '{UNEXPLAINED}'); an administrator removes it first"
            )));
        }
        self.durably(Vec::new(), move |chain| chain.set_hold(on)).await?;
        tracing::info!(%caller, interface = %self.ifname(), on, "hook hold switched");
        self.changed(Vec::new(), Vec::new()).await;
        Ok(())
    }

    /// Makes the published objects and signals follow a change of the chain,
    /// once it is durable (see `durably`): a new program's maps were pinned
    /// before the record named it; a removed program's pins, snapshot and
    /// object go only after the record dropped it.
    async fn changed(&mut self, added: Vec<ProgramView>, removed: Vec<MemberId>) {
        for view in &added {
            self.programs.insert(view.id, view.clone());
        }
        let mut removed_owners = Vec::new();
        for gone in removed.iter().filter_map(|id| self.programs.remove(id)) {
            let _ = std::fs::remove_dir_all(self.maps_root.join(gone.id.to_string()));
            self.cx.store.remove_snapshot(gone.id);
            if !gone.spec.sha256.is_empty() {
                self.cx.store.drop_object_if_unused(&gone.spec.sha256);
            }
            removed_owners.push(gone.spec.owner_uid);
        }
        self.refresh_view().await;
        removed_owners.sort_unstable();
        removed_owners.dedup();
        for uid in removed_owners {
            let bpffs = Bpffs::new(&self.cx.shared_root);
            let _ = tokio::task::spawn_blocking(move || shared_maps::collect(&bpffs, uid)).await;
        }
        for id in removed {
            self.cx.publish.program_removed(self.ifindex, id).await;
        }
        for view in added {
            self.cx.publish.program_added(&self.handle, view).await;
        }
        self.cx.publish.chain_changed(&self.view()).await;
    }
}
