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
use crate::engine::object::load_with;
use crate::engine::{ActionSet, Chain, LoadedProgram, MemberId, RestoredMember};
use crate::state::recovery::{Facts, Planned, Source};
use crate::state::{snapshot, RecoveryPlan, Store};

/// Rebuilds interface `ifindex` (called `name`) from the records; `present`
/// are the interfaces present now. Blocks (files, libbpf, the kernel).
pub fn restore(
    config: &Config,
    store: &Store,
    ifindex: u32,
    name: &str,
    present: &HashMap<u32, String>,
) -> (Chain, BTreeMap<MemberId, ProgramView>) {
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
    let fresh = || (Chain::for_interface(ifindex, root).with_generation(floor), BTreeMap::new());
    let Some(record) = &plan.record else { return fresh() };
    let mut members = Vec::new();
    let mut programs = BTreeMap::new();
    for planned in &plan.members {
        let Some(program) = load_member(config, store, ifindex, &maps_root, planned) else { continue };
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
    match Chain::restore(ifindex, root, members, record.generation.max(floor), plan.running) {
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

/// Loads one recorded member's object, with its pinned maps (or its snapshot), and pins them.
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
        let privilege = caller::privilege_of(m.spec.owner_uid);
        load_with(&bytes, Some(&m.spec.function), config.max_object_size, Some(&maps), privilege)
            .map_err(|e| e.to_string())
    });
    let program = match loaded {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(ifindex, id = m.id, program = %m.spec.function, "cannot restore a recorded program: {e}");
            return None;
        }
    };
    if planned.restore_snapshot {
        match store.snapshot(m.id) {
            Some(saved) => snapshot::restore(program.maps.iter().map(|m| (m.name.as_str(), m.fd.as_fd())), &saved),
            None => tracing::warn!(ifindex, id = m.id, "no map snapshot to restore: maps start empty"),
        }
    }
    if let Err(e) = program.pin_maps(&maps) {
        tracing::error!(ifindex, id = m.id, "cannot pin the maps of a restored program: {e}");
    }
    Some(program)
}
