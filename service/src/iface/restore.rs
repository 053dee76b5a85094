//! Carries out a [`RecoveryPlan`] for an appearing interface: drops stale
//! records and leftover pins, loads the recorded objects (reusing their
//! pinned maps, or filling fresh ones from a snapshot), and rebuilds the
//! chain with `Chain::restore` (which adopts a chain that still runs).

use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsFd;
use std::path::Path;

use super::publish::ProgramView;
use crate::caller;
use crate::config::Config;
use crate::engine::object::Privilege;
use crate::engine::sandbox::{Job, Sandbox};
use crate::engine::{ActionSet, Chain, CounterResume, LoadedProgram, MemberId, ProgramMap, RestoredMember};
use crate::kernel::bpffs::Bpffs;
use crate::program::ProgramSpec;
use crate::state::recovery::{Facts, Planned, Source};
use crate::state::{snapshot, RecoveryPlan, Store};

/// A restored interface: its chain, its programs' views, and whether the
/// chain was linked anew (then ChainChanged tells the clients).
pub type Restored = (Chain, BTreeMap<MemberId, ProgramView>, bool);

/// Rebuilds interface `ifindex` (called `name`) from the records; `present`
/// are the interfaces present now. Blocks (files, libbpf, the kernel).
pub fn restore(config: &Config, store: &Store, ifindex: u32, name: &str, present: &HashMap<u32, String>) -> Restored {
    let root = &config.bpffs_root;
    let maps_root = root.join(ifindex.to_string()).join("prog");
    let live = crate::kernel::hook::Hook::new(ifindex, root).attached_prog_id().is_some();
    let facts =
        Facts { ifindex, name, live, own: store.link(ifindex), all: store.links(), present, pins: pins(&maps_root) };
    let plan = RecoveryPlan::decide(facts);
    log_source(&plan.source, ifindex, name);
    for index in &plan.drop_records {
        store.remove_link(*index);
    }
    if plan.clear_pins {
        let _ = std::fs::remove_dir_all(&maps_root);
    }
    for pin in &plan.leftover_pins {
        let path = maps_root.join(pin);
        tracing::info!(ifindex, pin = %path.display(), "removing leftover pins");
        let _ = std::fs::remove_dir_all(path);
    }
    // Generations go on from the highest one this interface ever had.
    let floor = store.high_water().generation(name);
    let fresh = || {
        let chain = Chain::for_interface(ifindex, root).with_generation(floor);
        let programs = unexplained(&chain, store, name).into_iter().map(|p| (p.id, p)).collect();
        (chain, programs, false)
    };
    let Some(record) = &plan.record else { return fresh() };
    let (members, mut programs) = load_members(config, store, ifindex, &plan);
    let resume = CounterResume {
        counting: record.counting,
        slots: record.members.iter().filter_map(|m| Some((m.id, m.counter_slot?))).collect(),
        hold: record.hold,
    };
    let generation = record.generation.max(floor);
    match Chain::restore_counting(ifindex, root, members, generation, plan.running, &resume) {
        Ok(mut chain) => {
            // Without its pinned counter table counting starts again from zero (a relink).
            if record.counting && !chain.counting() {
                tracing::warn!(ifindex, "the verdict counter table was lost: counting starts again from zero");
                if let Err(e) = chain.set_counting(true) {
                    tracing::error!(ifindex, "cannot switch verdict counting back on: {e}");
                }
            }
            // A held interface's pass-through is explained by its record.
            if chain.members().is_empty() && !chain.hold() {
                programs.extend(unexplained(&chain, store, name).map(|p| (p.id, p)));
            }
            let relinked = chain.generation() != generation;
            (chain, programs, relinked)
        }
        Err(e) => {
            tracing::error!(ifindex, interface = name, "cannot restore the recorded chain: {e}");
            fresh()
        }
    }
}

/// Loads the planned members (their pinned maps, or the running chain's, or
/// a snapshot) and pins their maps again; the views of those that came back.
fn load_members(
    config: &Config,
    store: &Store,
    ifindex: u32,
    plan: &RecoveryPlan,
) -> (Vec<RestoredMember>, BTreeMap<MemberId, ProgramView>) {
    let maps_root = config.bpffs_root.join(ifindex.to_string()).join("prog");
    let mut members = Vec::new();
    let mut programs = BTreeMap::new();
    let mut loaded: Vec<(&Planned, LoadedProgram)> = plan
        .members
        .iter()
        .filter_map(|planned| Some((planned, load_member(config, store, ifindex, &maps_root, planned)?)))
        .collect();
    if plan.running != 0 {
        // The running program's maps are the truth: its members keep using them.
        adopt_running_maps(plan.running, loaded.iter_mut().map(|(_, p)| p));
    }
    for (planned, program) in loaded {
        if let Err(e) = program.pin_maps(&maps_root.join(planned.member.id.to_string())) {
            tracing::error!(ifindex, id = planned.member.id, "cannot pin the maps of a restored program: {e}");
        }
        let m = &planned.member;
        let map_ids = program.maps.iter().map(|map| (map.name.clone(), map.id)).collect();
        programs.insert(m.id, ProgramView { ifindex, id: m.id, spec: m.spec.clone(), map_ids });
        members.push(RestoredMember {
            id: m.id,
            program,
            priority: m.spec.priority,
            proceed_on: ActionSet::from_names(&m.spec.proceed_on).unwrap_or_default(),
            tag: m.spec.tag.clone(),
            seq: planned.seq,
            privilege: caller::privilege_of(m.spec.owner_uid),
        });
    }
    (members, programs)
}

/// The tag of a chain that runs on the interface but that no record explains.
pub const UNEXPLAINED: &str = "unexplained";

/// A chain that runs through xdpd's pinned link while no restored member
/// explains it (its record is missing, unreadable, from another version, or
/// none of its programs came back): shown as one program tagged
/// [`UNEXPLAINED`], owned by root, whose removal detaches it. Never invisible.
fn unexplained(chain: &Chain, store: &Store, name: &str) -> Option<ProgramView> {
    let ifindex = chain.hook()?.ifindex();
    let running = chain.hook()?.attached_prog_id()?;
    let id = crate::engine::next_free_member_id();
    crate::engine::reserve_member_ids(id);
    if let Err(e) = store.raise_high_water(id + 1, name, chain.generation()) {
        tracing::error!(ifindex, "cannot record the ids handed out: {e}");
    }
    tracing::error!(
        ifindex,
        interface = name,
        kernel_id = running,
        id,
        "a chain runs on this interface that no readable record explains: shown as program {id} tagged '{UNEXPLAINED}'; an administrator removes it (xdpctl remove {id}) or keeps it running"
    );
    let spec = ProgramSpec { function: format!("chain-{running}"), tag: UNEXPLAINED.into(), ..Default::default() };
    Some(ProgramView { ifindex, id, spec, map_ids: Default::default() })
}

/// Names of the per-member pin directories under `maps_root`.
fn pins(maps_root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(maps_root) else { return Vec::new() };
    entries.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
}

fn log_source(source: &Source, ifindex: u32, name: &str) {
    match source {
        Source::IndexReused { recorded } => {
            tracing::info!(ifindex, interface = name, %recorded, "a new interface reuses a recorded index: starting empty")
        }
        Source::Followed { from } => {
            tracing::info!(
                ifindex,
                interface = name,
                recorded_index = from,
                "the interface's recorded programs follow its name"
            )
        }
        Source::Nothing | Source::Own => {}
    }
}

/// Makes the members of an adopted chain use the maps the running program
/// `running` uses: a member's map whose pin was lost (a fresh map) is
/// replaced by the running program's map of the same name and type that no
/// other member claims.
fn adopt_running_maps<'a>(running: u32, programs: impl Iterator<Item = &'a mut LoadedProgram>) {
    use crate::kernel::bpf;
    let used = bpf::prog_fd_by_id(running).and_then(|fd| bpf::prog_map_ids(fd.as_fd()));
    let used = match used {
        Ok(ids) => ids,
        Err(e) => return tracing::error!(running, "cannot read the running chain's maps: {e}"),
    };
    let mut programs: Vec<&mut LoadedProgram> = programs.collect();
    let mut free: Vec<u32> =
        used.iter().copied().filter(|id| !programs.iter().any(|p| p.maps.iter().any(|m| m.id == *id))).collect();
    for program in programs.iter_mut() {
        // Only maps the member's code refers to are in the running program.
        let referenced: Vec<usize> = program.map_refs.iter().map(|&(_, i)| i).collect();
        let maps = program.maps.iter_mut().enumerate().filter(|(i, _)| referenced.contains(i)).map(|(_, m)| m);
        adopt_maps(maps, &used, &mut free);
    }
}

/// Gives each of `maps` the running chain's map of the same name and type from `free`.
fn adopt_maps<'a>(maps: impl Iterator<Item = &'a mut ProgramMap>, used: &[u32], free: &mut Vec<u32>) {
    use crate::kernel::bpf;
    for map in maps {
        if used.contains(&map.id) || free.is_empty() {
            continue;
        }
        let found = free.iter().position(|&id| {
            let info = bpf::map_fd_by_id(id).and_then(|fd| bpf::map_info(fd.as_fd()));
            info.is_ok_and(|i| i.map_type == map.map_type && map.name.starts_with(&i.name) && !i.name.is_empty())
        });
        let Some(at) = found else { continue };
        let id = free.remove(at);
        match bpf::map_fd_by_id(id) {
            Ok(fd) => {
                tracing::warn!(map = %map.name, was = map.id, now = id, "a lost map pin: the member keeps the map its running chain uses");
                (map.fd, map.id) = (fd, id);
            }
            Err(e) => tracing::error!(map = %map.name, "cannot open the running chain's map {id}: {e}"),
        }
    }
}

/// Loads one recorded member's object, with its pinned maps (or its snapshot).
fn load_member(
    config: &Config,
    store: &Store,
    ifindex: u32,
    maps_root: &Path,
    planned: &Planned,
) -> Option<LoadedProgram> {
    let m = &planned.member;
    let maps = maps_root.join(m.id.to_string());
    let loaded = store.object(&m.spec.sha256).map_err(|e| format!("object {}: {e}", m.spec.sha256)).and_then(|bytes| {
        let job = Job {
            function: Some(m.spec.function.clone()),
            max_size: config.max_object_size,
            maps_dir: Some(maps.clone()),
            shared_dir: Some(Bpffs::new(&config.bpffs_root).owner_dir(m.spec.owner_uid)),
            user: caller::privilege_of(m.spec.owner_uid) == Privilege::User,
            map_budget: None,
            object_name: Some(m.spec.object.clone()).filter(|o| !o.is_empty()),
        };
        // A recorded object is still a caller's bytes: libbpf parses them in a child.
        Sandbox::of_this_executable().and_then(|s| s.load(&bytes, &job)).map_err(|e| e.to_string())
    });
    let program = match loaded {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(ifindex, id = m.id, program = ?m.spec.function, "cannot restore a recorded program: {e}");
            return None;
        }
    };
    if planned.restore_snapshot {
        match store.snapshot(m.id) {
            Some(saved) => snapshot::restore(program.maps.iter().map(|m| (m.name.as_str(), m.fd.as_fd())), &saved),
            None => tracing::warn!(ifindex, id = m.id, "no map snapshot to restore: maps start empty"),
        }
    }
    Some(program)
}
