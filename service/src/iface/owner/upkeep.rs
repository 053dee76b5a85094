//! What an owner does besides changing the chain on request: reclaim, map
//! snapshots, the record outside a change, renames, the foreign-program
//! check, and the end of an interface.

use super::*;

impl Owner {
    /// Saves the maps of members that asked for a snapshot (map reads and
    /// file writes: blocking). An error names the program and the map; the
    /// previous snapshot of that program stays as it was.
    pub(super) async fn save_snapshots(&self) -> Result<(), ServiceError> {
        let (ifindex, store) = (self.ifindex, self.cx.store.clone());
        let ids: Vec<MemberId> = self.programs.values().filter(|p| p.spec.snapshot).map(|p| p.id).collect();
        self.with_chain(move |chain| {
            for (id, member) in ids.into_iter().filter_map(|id| Some((id, chain.member(id)?))) {
                let maps = member.program.maps.iter().map(|m| (m.name.as_str(), std::os::fd::AsFd::as_fd(&m.fd)));
                let failed = |e: String| ServiceError::NotDurable(format!("program {id}: cannot save its maps: {e}"));
                let saved = snapshot::take(maps).map_err(failed)?;
                store.save_snapshot(id, &saved).map_err(|e| failed(e.to_string()))?;
                tracing::info!(ifindex, id, maps = saved.len(), "map snapshot saved");
            }
            Ok(())
        })
        .await?
    }

    /// Reclaim re-attaches the same program: its record (generation + 1) is
    /// prepared first, and committed only if the generation moved.
    pub(super) async fn reclaim(&mut self, caller: Caller) -> Result<(), ServiceError> {
        let (store, ifindex) = (self.cx.store.clone(), self.ifindex);
        let mut record = self.record();
        self.with_chain(move |chain| {
            let before = chain.generation();
            record.generation = before + 1;
            record.kernel_program_id = chain.running_prog_id().unwrap_or(0);
            let not_durable = |e: std::io::Error| ServiceError::NotDurable(format!("cannot write the record: {e}"));
            store.raise_high_water(next_free_member_id(), &record.name, before + 1).map_err(not_durable)?;
            let keep = !record.members.is_empty() || record.hold;
            store.prepare_link(ifindex, keep.then_some(&record)).map_err(not_durable)?;
            match chain.reclaim() {
                Ok(()) if chain.generation() != before => durable::commit(&store, ifindex),
                Ok(()) => {
                    store.discard_link(ifindex);
                    Ok(())
                }
                Err(e) => {
                    store.discard_link(ifindex);
                    Err(e.into())
                }
            }
        })
        .await??;
        tracing::warn!(%caller, interface = %self.ifname(), "interface reclaimed from a foreign program");
        self.changed(Vec::new(), Vec::new()).await;
        Ok(())
    }

    /// The record of this interface as it is now.
    pub(super) fn record(&self) -> IfaceRecord {
        let view = self.view();
        let slots: std::collections::HashMap<MemberId, usize> = match self.handle.counters.read() {
            Ok(counters) => counters.iter().map(|(id, c)| (*id, c.slot())).collect(),
            Err(_) => Default::default(),
        };
        IfaceRecord {
            ifindex: self.ifindex,
            name: view.name,
            generation: view.generation,
            kernel_program_id: view.kernel_program_id,
            counting: view.counting,
            hold: view.hold,
            members: view
                .programs
                .iter()
                .filter_map(|id| self.programs.get(id))
                .filter(|p| !p.spec.sha256.is_empty())
                .map(|p| MemberRecord { counter_slot: slots.get(&p.id).copied(), ..MemberRecord::new(p.id, &p.spec) })
                .collect(),
        }
    }

    pub fn save_record(&self) {
        self.write_record(self.record());
    }

    /// After a restore that adopted the running chain: the record as it is
    /// now, but naming the program the record already names. A change of one
    /// segment records that segment's new program (see `engine::chain`), which
    /// identifies the version that runs as well as the hook's program does;
    /// keeping it leaves the record as it was across a restart.
    pub fn save_adopted_record(&self) {
        let mut record = self.record();
        if let Some(old) = self.cx.store.link(self.ifindex) {
            if old.generation == record.generation && old.kernel_program_id != 0 && record.kernel_program_id != 0 {
                record.kernel_program_id = old.kernel_program_id;
            }
        }
        self.write_record(record);
    }

    /// Writes the record outside a change (after a restore, a rename): there
    /// is no caller to refuse, so a failure is logged and the next change
    /// writes the whole record again.
    pub(super) fn write_record(&self, record: IfaceRecord) {
        let high_water = self.cx.store.raise_high_water(next_free_member_id(), &record.name, record.generation);
        let result = if record.members.is_empty() && !record.hold {
            self.cx.store.remove_link(self.ifindex);
            Ok(())
        } else {
            self.cx.store.save_link(&record)
        };
        if let Err(e) = high_water.and(result) {
            tracing::error!(ifindex = self.ifindex, "cannot write the record: {e}");
        }
    }

    /// Records the new name before showing it: whoever sees it finds it recorded.
    pub(super) async fn renamed(&mut self, name: String) {
        if self.view.borrow().name == name {
            return;
        }
        tracing::info!(ifindex = self.ifindex, interface = %name, "interface renamed");
        if !self.programs.is_empty() || self.view.borrow().hold {
            self.write_record(IfaceRecord { name: name.clone(), ..self.record() });
        }
        self.view.send_modify(|v| v.name = name);
        self.cx.publish.properties_changed(&self.view(), &[IfaceProperty::Name]).await;
    }

    /// Notices a chain detached or replaced behind our back: says so loudly
    /// (log, ForeignProgramId, ForeignProgramDetected) and does not fight.
    pub(super) async fn check_foreign(&mut self) {
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

    pub(super) async fn gone(mut self) {
        tracing::info!(ifindex = self.ifindex, netns = %self.cx.netns_tag.name, "interface removed");
        let record = self.record();
        // Moved to another namespace, its chain still running on it: the chain goes along.
        let moved = match self.keep_persistent || self.programs.is_empty() {
            true => None,
            false => self.with_chain(|chain| chain.hook().and_then(|h| h.moved_prog_id())).await.ok().flatten(),
        };
        let mut owners = std::collections::BTreeSet::new();
        for (id, p) in std::mem::take(&mut self.programs) {
            self.cx.limits.release_program(p.spec.owner_uid, 1, p.spec.charge());
            owners.insert(p.spec.owner_uid);
            self.cx.publish.program_removed(self.ifindex, id).await;
        }
        if let Some(prog_id) = moved {
            if self.hand_over(prog_id, &record) {
                self.cx.store.remove_link(self.ifindex);
                return self.cx.publish.interface_gone(self.ifindex).await;
            }
        }
        // The device is gone and its link with it: drop the pins, the chain and the record.
        let _ = self.with_chain(|chain| chain.forget()).await;
        let _ = std::fs::remove_dir_all(&self.maps_root);
        if let Some(dir) = self.maps_root.parent() {
            let _ = std::fs::remove_dir(dir);
        }
        let bpffs = Bpffs::new(&self.cx.shared_root);
        let _ =
            tokio::task::spawn_blocking(move || owners.into_iter().for_each(|uid| shared_maps::collect(&bpffs, uid)))
                .await;
        let persistent: Vec<_> = record.members.into_iter().filter(|m| m.spec.persist).collect();
        if self.keep_persistent && !persistent.is_empty() {
            let record = IfaceRecord { kernel_program_id: 0, members: persistent, ..record };
            if let Err(e) = self.cx.store.save_link(&record) {
                tracing::error!(ifindex = self.ifindex, "cannot keep the record of persistent programs: {e}");
            }
        } else {
            self.cx.store.remove_link(self.ifindex);
        }
        self.cx.publish.interface_gone(self.ifindex).await;
    }

    /// Leaves the interface's pins and record where the namespace it moved
    /// to finds them by its chain program `prog_id` (`restore::take_moved`);
    /// the chain keeps running meanwhile (its link stays pinned). False when
    /// that cannot be done: then the chain goes as for a deleted interface.
    fn hand_over(&self, prog_id: u32, record: &IfaceRecord) -> bool {
        let Some(from) = self.maps_root.parent() else { return false };
        let to = Bpffs::new(&self.cx.shared_root).moving_dir(prog_id);
        let moved = to.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::rename(from, &to));
        if let Err(e) = moved.and_then(|()| self.cx.store.save_moving(prog_id, record)) {
            tracing::error!(ifindex = self.ifindex, "cannot keep the chain of an interface that moved away: {e}");
            let _ = std::fs::rename(&to, from);
            return false;
        }
        tracing::info!(
            ifindex = self.ifindex,
            prog_id,
            "the interface moved to another namespace: its chain goes along"
        );
        true
    }
}
