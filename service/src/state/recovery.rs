//! What comes back when an interface appears (at start, after a restart or a
//! reboot): decided here from plain facts, without touching the kernel or the
//! files, so every rule has a unit test. `iface::restore` carries the plan out.
//!
//! The rules: with the chain's link still pinned (`live`), the interface's
//! own record comes back whole, with its pinned maps. Without it (a reboot),
//! only members added with `persist` come back, with fresh maps (or their
//! snapshot), and since indexes change across reboots a record follows the
//! interface's *name*: a record of the same index but another name belongs to
//! an interface that is gone; a record of another index with this name, whose
//! index is not present under that name, moved here.

use std::collections::HashMap;

use super::record::{IfaceRecord, MemberRecord};

/// What is known when interface `ifindex` called `name` appears.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub ifindex: u32,
    pub name: &'a str,
    /// The interface's pinned link runs a program (the service restarted; no reboot).
    pub live: bool,
    /// The record stored under this index, if any.
    pub own: Option<IfaceRecord>,
    /// Every stored record (may include `own`).
    pub all: Vec<IfaceRecord>,
    /// The interfaces present now: index → name.
    pub present: &'a HashMap<u32, String>,
    /// Names of the per-member pin directories found under the interface's pins.
    pub pins: Vec<String>,
}

/// Where the restored record comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Nothing recorded for this interface: start empty.
    Nothing,
    /// The record of this index and name (or of this index, with the link live).
    Own,
    /// The index's record named another interface (`recorded`): dropped, start empty.
    IndexReused { recorded: String },
    /// The record of the same name under index `from` (a reboot renumbered it).
    Followed { from: u32 },
}

/// A member to bring back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub member: MemberRecord,
    /// Its place among the recorded members (keeps the order of equal priorities).
    pub seq: u64,
    /// Fill its fresh maps from the saved snapshot.
    pub restore_snapshot: bool,
}

/// The decisions for one appearing interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPlan {
    pub source: Source,
    /// Records (by index) to delete: consumed or stale.
    pub drop_records: Vec<u32>,
    /// The record to restore, already re-indexed to this interface.
    pub record: Option<IfaceRecord>,
    pub members: Vec<Planned>,
    /// Delete the interface's whole pin directory (nothing comes back).
    pub clear_pins: bool,
    /// Pin directories no restored member owns: leftovers of an interrupted change.
    pub leftover_pins: Vec<String>,
    /// Kernel id of the chain program to adopt as it runs (0: link the members anew).
    pub running: u32,
}

impl RecoveryPlan {
    pub fn decide(facts: Facts<'_>) -> RecoveryPlan {
        let (ifindex, name, live) = (facts.ifindex, facts.name, facts.live);
        let mut drop_records = Vec::new();
        let (source, record) = match facts.own {
            Some(r) if live || r.name == name => (Source::Own, Some(r)),
            Some(r) => {
                drop_records.push(ifindex);
                (Source::IndexReused { recorded: r.name }, None)
            }
            None => (Source::Nothing, None),
        };
        let (source, record) = match record {
            Some(r) => (source, Some(r)),
            None => match follow(&facts.all, ifindex, name, facts.present) {
                Some(moved) => {
                    drop_records.push(moved.ifindex);
                    (Source::Followed { from: moved.ifindex }, Some(IfaceRecord { ifindex, ..moved }))
                }
                None => (source, None),
            },
        };
        let Some(record) = record else {
            return RecoveryPlan {
                source,
                drop_records,
                record: None,
                members: Vec::new(),
                clear_pins: true,
                leftover_pins: Vec::new(),
                running: 0,
            };
        };
        let members: Vec<Planned> = record
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| live || m.spec.persist)
            .map(|(position, m)| Planned {
                member: m.clone(),
                seq: position as u64 + 1,
                restore_snapshot: !live && m.spec.snapshot,
            })
            .collect();
        let leftover_pins = facts
            .pins
            .into_iter()
            .filter(|pin| !pin.parse::<u64>().is_ok_and(|id| members.iter().any(|p| p.member.id == id)))
            .collect();
        let running = if live { record.kernel_program_id } else { 0 };
        RecoveryPlan { source, drop_records, record: Some(record), members, clear_pins: false, leftover_pins, running }
    }
}

/// The record of another index with this name, unless that index is present under that name.
fn follow(all: &[IfaceRecord], ifindex: u32, name: &str, present: &HashMap<u32, String>) -> Option<IfaceRecord> {
    all.iter()
        .find(|r| r.ifindex != ifindex && r.name == name && present.get(&r.ifindex).is_none_or(|n| n != name))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::ProgramSpec;

    fn member(id: u64, persist: bool, snapshot: bool) -> MemberRecord {
        MemberRecord::new(id, &ProgramSpec { function: format!("f{id}"), persist, snapshot, ..Default::default() })
    }

    fn record(ifindex: u32, name: &str, members: Vec<MemberRecord>) -> IfaceRecord {
        IfaceRecord {
            ifindex,
            name: name.into(),
            generation: 7,
            kernel_program_id: 42,
            counting: false,
            hold: false,
            members,
        }
    }

    fn ids(plan: &RecoveryPlan) -> Vec<u64> {
        plan.members.iter().map(|p| p.member.id).collect()
    }

    #[test]
    fn same_index() {
        let present = HashMap::from([(3, "eth0".to_string())]);
        let own = record(3, "eth0", vec![member(1, false, false), member(2, true, false)]);
        let facts = Facts {
            ifindex: 3,
            name: "eth0",
            live: true,
            own: Some(own.clone()),
            all: vec![own],
            present: &present,
            pins: vec!["1".into(), "2".into()],
        };
        let plan = RecoveryPlan::decide(facts);
        assert_eq!(plan.source, Source::Own);
        assert_eq!(ids(&plan), [1, 2]);
        assert_eq!(plan.members.iter().map(|p| p.seq).collect::<Vec<_>>(), [1, 2]);
        assert!(plan.drop_records.is_empty() && plan.leftover_pins.is_empty() && !plan.clear_pins);
        assert_eq!(plan.running, 42, "a live chain is adopted as it runs");
    }

    #[test]
    fn index_reused_by_another_name() {
        let present = HashMap::from([(3, "wlan0".to_string())]);
        let own = record(3, "eth0", vec![member(1, true, false)]);
        let facts = Facts {
            ifindex: 3,
            name: "wlan0",
            live: false,
            own: Some(own.clone()),
            all: vec![own],
            present: &present,
            pins: vec!["1".into()],
        };
        let plan = RecoveryPlan::decide(facts);
        assert_eq!(plan.source, Source::IndexReused { recorded: "eth0".into() });
        assert_eq!(plan.drop_records, [3]);
        assert!(plan.record.is_none() && plan.members.is_empty() && plan.clear_pins);
    }

    #[test]
    fn name_moved_to_a_new_index_after_a_reboot() {
        let present = HashMap::from([(5, "eth0".to_string()), (3, "veth9".to_string())]);
        let old = record(3, "eth0", vec![member(1, true, true), member(2, false, false)]);
        let facts =
            Facts { ifindex: 5, name: "eth0", live: false, own: None, all: vec![old], present: &present, pins: vec![] };
        let plan = RecoveryPlan::decide(facts);
        assert_eq!(plan.source, Source::Followed { from: 3 });
        assert_eq!(plan.drop_records, [3]);
        assert_eq!(plan.record.as_ref().map(|r| r.ifindex), Some(5));
        assert_eq!(ids(&plan), [1]);
        assert!(plan.members[0].restore_snapshot);
        assert_eq!(plan.running, 0);
        // The same name still present under its old index: that record is not ours.
        let present = HashMap::from([(5, "eth0".to_string()), (3, "eth0".to_string())]);
        let old = record(3, "eth0", vec![member(1, true, false)]);
        let facts =
            Facts { ifindex: 5, name: "eth0", live: false, own: None, all: vec![old], present: &present, pins: vec![] };
        assert_eq!(RecoveryPlan::decide(facts).source, Source::Nothing);
    }

    #[test]
    fn non_persistent_member_after_a_reboot() {
        let present = HashMap::from([(3, "eth0".to_string())]);
        let own = record(3, "eth0", vec![member(1, false, false), member(2, true, false), member(3, true, true)]);
        let facts = Facts {
            ifindex: 3,
            name: "eth0",
            live: false,
            own: Some(own.clone()),
            all: vec![own],
            present: &present,
            pins: vec![],
        };
        let plan = RecoveryPlan::decide(facts);
        assert_eq!(ids(&plan), [2, 3]);
        assert_eq!(plan.members.iter().map(|p| p.seq).collect::<Vec<_>>(), [2, 3], "places are kept");
        assert_eq!(plan.members.iter().map(|p| p.restore_snapshot).collect::<Vec<_>>(), [false, true]);
        assert_eq!(plan.running, 0, "nothing runs after a reboot: link anew");
    }

    #[test]
    fn leftover_pin() {
        let present = HashMap::from([(3, "eth0".to_string())]);
        let own = record(3, "eth0", vec![member(1, false, false), member(2, true, false)]);
        let pins = vec!["1".into(), "2".into(), "9".into(), "junk".into()];
        let facts = Facts {
            ifindex: 3,
            name: "eth0",
            live: true,
            own: Some(own.clone()),
            all: vec![own.clone()],
            present: &present,
            pins: pins.clone(),
        };
        assert_eq!(RecoveryPlan::decide(facts).leftover_pins, ["9", "junk"]);
        // After a reboot the pins of a member that does not come back are leftovers too.
        let facts = Facts {
            ifindex: 3,
            name: "eth0",
            live: false,
            own: Some(own.clone()),
            all: vec![own],
            present: &present,
            pins,
        };
        assert_eq!(RecoveryPlan::decide(facts).leftover_pins, ["1", "9", "junk"]);
    }
}
