//! Makes a change of a chain durable before the kernel sees it. The owner
//! sets a [`Draft`]'s gate on its chain for the next change; the chain calls
//! it once the new program is loaded and before the swap, and the gate pins
//! the new members' maps, raises the high-water marks of ids and generations
//! and writes the next record under a temporary name. A failure there cancels
//! the change with the kernel untouched. After the swap [`commit`] renames the
//! record into place (no space needed); after a failure [`undo`] removes what
//! the gate prepared.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::{next_free_member_id, Error, Gate, Member, MemberId, Proposal};
use crate::error::ServiceError;
use crate::program::ProgramSpec;
use crate::state::{IfaceRecord, MemberRecord, Store};

/// What the next record of an interface is made of, but for what the change decides.
pub struct Draft {
    pub store: Arc<Store>,
    pub ifindex: u32,
    pub name: String,
    /// `<bpffs root>/<ifindex>/prog`.
    pub maps_root: PathBuf,
    /// The specs of the members as they are now.
    pub specs: BTreeMap<MemberId, ProgramSpec>,
    /// The specs of the programs being added (priority and proceed-on come
    /// from the chain), told apart by object, function and tag.
    pub added: Vec<ProgramSpec>,
    /// Its owner's directory of maps shared by name.
    pub shared_dir: Option<PathBuf>,
}

impl Draft {
    pub fn gate(self) -> Gate {
        Box::new(move |proposal| self.prepare(proposal).map_err(Error::NotDurable))
    }

    fn prepare(&self, p: &Proposal<'_>) -> Result<(), String> {
        let mut members = Vec::with_capacity(p.members.len());
        for m in p.members {
            let spec = match self.specs.get(&m.id) {
                Some(spec) => spec.clone(),
                None => self.new_member(m)?,
            };
            let counter_slot = m.counters().map(|c| c.slot());
            members.push(MemberRecord { counter_slot, ..MemberRecord::new(m.id, &spec) });
        }
        if p.members.iter().any(|m| !self.specs.contains_key(&m.id)) {
            crate::crash::at("pinned");
        }
        self.store
            .raise_high_water(next_free_member_id(), &self.name, p.generation)
            .map_err(|e| format!("cannot record the ids handed out (ids.json): {e}"))?;
        let record = IfaceRecord {
            ifindex: self.ifindex,
            name: self.name.clone(),
            generation: p.generation,
            kernel_program_id: p.program_id,
            counting: p.counting,
            hold: p.hold,
            members,
        };
        let keep = !record.members.is_empty() || record.hold;
        self.store
            .prepare_link(self.ifindex, keep.then_some(&record))
            .map_err(|e| format!("cannot write the record of interface {}: {e}", self.ifindex))?;
        crate::crash::at("prepared");
        Ok(())
    }

    /// Pins a new member's maps and completes its spec from the chain.
    fn new_member(&self, m: &Member) -> Result<ProgramSpec, String> {
        let mut spec = self
            .added
            .iter()
            .find(|s| s.sha256 == m.program.sha256 && s.function == m.program.name && s.tag == m.tag)
            .cloned()
            .ok_or_else(|| format!("member {} has no spec", m.id))?;
        spec.priority = m.priority;
        spec.proceed_on = m.proceed_on.names();
        spec.carried_maps.clone_from(&m.carried_maps);
        let dir = self.maps_root.join(m.id.to_string());
        let shared = self.shared_dir.as_deref();
        let pinned = m.program.pin_maps(&dir).and_then(|()| shared.map_or(Ok(()), |d| m.program.pin_shared_maps(d)));
        pinned.map_err(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            format!("cannot pin the maps of program {}: {e}", m.id)
        })?;
        Ok(spec)
    }
}

/// After the swap: the prepared record becomes the record.
pub fn commit(store: &Store, ifindex: u32) -> Result<(), ServiceError> {
    store.commit_link(ifindex).map_err(|e| {
        ServiceError::NotDurable(format!("the chain changed but its record could not be renamed into place: {e}"))
    })
}

/// After a change that did not happen: the prepared record and the pins of
/// members that are not in the chain go.
pub fn undo(store: &Store, ifindex: u32, maps_root: &Path, members: &[MemberId]) {
    store.discard_link(ifindex);
    let Ok(entries) = std::fs::read_dir(maps_root) else { return };
    for entry in entries.filter_map(Result::ok) {
        let id = entry.file_name().to_str().and_then(|n| n.parse::<MemberId>().ok());
        if id.is_some_and(|id| !members.contains(&id)) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
