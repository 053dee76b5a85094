//! How a candidate list of members becomes the chain: counter slots, the
//! mode and device checks, linking, the gate, and the swap.

use super::*;

impl Chain {
    pub(super) fn new_member(&mut self, program: LoadedProgram, options: &AddOptions, seq: Option<u64>) -> Member {
        let seq = seq.unwrap_or_else(|| {
            self.next_seq += 1;
            self.next_seq
        });
        Member::new(program, options, seq)
    }

    /// Links `candidate` and swaps it in; only then it becomes the chain:
    /// assign counter slots → check the mode → link → swap in.
    pub(super) fn commit(&mut self, mut candidate: Vec<Member>, options: &AddOptions) -> Result<(), Error> {
        let gate = self.gate.0.take();
        candidate.sort_by_key(|m| (m.priority, m.seq));
        if self.counting && !candidate.is_empty() {
            self.assign_counter_slots(&mut candidate)?;
        }
        self.check_mode(options)?;
        self.check_device_bound(&candidate, options)?;
        if candidate.is_empty() && self.hold && self.hook.is_some() {
            let target = LinkTarget {
                offload_ifindex: None,
                dev_bound_ifindex: None,
                mode: self.link_mode,
                budget: Budget::default(),
            };
            let linked = linker::pass_through(target)?;
            self.pass_gate(gate, &candidate, linked.info.id)?;
            self.swap_in(&linked, options)?;
            self.commit_segments(&linked);
            let old = self.running.replace(Running::Linked(linked));
            self.retire(old);
        } else if candidate.is_empty() {
            self.pass_gate(gate, &candidate, 0)?;
            if let Some(hook) = &mut self.hook {
                hook.detach()?;
            }
            self.unpin_segments();
            // No member, no counts to keep: the next chain counts in a new table.
            if let Some(pin) = &self.counter_pin {
                let _ = std::fs::remove_file(pin);
                self.counter_table = None;
            }
            let old = self.running.take();
            self.retire(old);
        } else if let Some(relinked) = self.relink_touched(&candidate, options).transpose()? {
            self.put_segment(gate, &candidate, relinked, options)?;
        } else {
            let linked = self.link(&candidate, options)?;
            self.stage_segments(&linked)?;
            let swapped =
                self.pass_gate(gate, &candidate, linked.info.id).and_then(|()| self.swap_in(&linked, options));
            if let Err(e) = swapped {
                self.unstage_segments();
                return Err(e);
            }
            self.commit_segments(&linked);
            let old = self.running.replace(Running::Linked(linked));
            self.retire(old);
        }
        self.members = candidate;
        self.generation += 1;
        Ok(())
    }

    /// Gives every candidate without counters a slot of the counter table
    /// that neither the running chain nor the candidate uses.
    pub(super) fn assign_counter_slots(&mut self, candidate: &mut [Member]) -> Result<(), Error> {
        let table = match &self.counter_table {
            Some(t) => t.clone(),
            None => {
                let table = CounterTable::create(self.max_members)?;
                if let Some(pin) = &self.counter_pin {
                    table.pin(pin)?;
                }
                self.counter_table.insert(Arc::new(table)).clone()
            }
        };
        let mut used: Vec<bool> = vec![false; table.slots()];
        for m in self.members.iter().chain(candidate.iter()) {
            if let Some(slot) = m.stats.as_ref().map(|c| c.slot()).filter(|&s| s < used.len()) {
                used[slot] = true;
            }
        }
        for m in candidate.iter_mut().filter(|m| m.stats.is_none()) {
            let slot = used.iter().position(|u| !u).ok_or_else(|| {
                Error::LimitExceeded("no free verdict counter slot; switch counting off and on again".into())
            })?;
            used[slot] = true;
            m.stats = Some(Arc::new(VerdictCounters::new(table.clone(), slot)));
        }
        Ok(())
    }

    /// The mode can be chosen only for an interface's first program.
    pub(super) fn check_mode(&self, options: &AddOptions) -> Result<(), Error> {
        if let (Some(mode), Some(hook)) = (options.mode, &self.hook) {
            if hook.is_attached() && hook.mode().is_some_and(|m| m != mode) {
                return Err(Error::Conflict(format!(
                    "the chain runs in {} mode; the mode can only be chosen for an interface's first program",
                    hook.mode().map_or("another", AttachMode::name)
                )));
            }
        }
        Ok(())
    }

    /// A chain with a member bound to a device (XDP hints) runs only on that
    /// device, in native mode: the kernel refuses it in generic mode.
    pub(super) fn check_device_bound(&self, candidate: &[Member], options: &AddOptions) -> Result<(), Error> {
        let Some(bound) = candidate.iter().find(|m| m.program.dev_bound.is_some()) else { return Ok(()) };
        let hook = self.hook.as_ref();
        let mode = hook.and_then(|h| h.mode()).or(options.mode).unwrap_or(AttachMode::Native);
        let other_device = hook.is_some_and(|h| bound.program.dev_bound != Some(h.ifindex()));
        if mode != AttachMode::Native || other_device {
            return Err(Error::InvalidArgument(format!(
                "program '{}' uses XDP hints (metadata kfuncs): it runs only bound to its device in native mode, \
                 and this chain runs {}",
                bound.program.name,
                if other_device { "on another device".to_string() } else { format!("in {mode} mode") }
            )));
        }
        Ok(())
    }

    /// Links the candidate members into one program.
    pub(super) fn link(&self, candidate: &[Member], options: &AddOptions) -> Result<LinkedChain, Error> {
        let (inputs, target) = self.link_inputs(candidate, options);
        linker::link(&inputs, target)
    }

    /// What [`Chain::link`] links: the members and the target.
    pub(super) fn link_inputs<'m>(
        &self,
        candidate: &'m [Member],
        options: &AddOptions,
    ) -> (Vec<LinkInput<'m>>, LinkTarget) {
        let offload = options.mode == Some(AttachMode::Offload);
        let budget = Budget { counting: self.counting, max_members: self.segment_members, ..Budget::default() };
        let target = LinkTarget {
            offload_ifindex: self.hook.as_ref().filter(|_| offload).map(Hook::ifindex),
            dev_bound_ifindex: candidate.iter().find_map(|m| m.program.dev_bound),
            mode: self.link_mode,
            budget,
        };
        let inputs: Vec<LinkInput<'_>> = candidate
            .iter()
            .map(|m| LinkInput {
                id: m.id,
                program: &m.program,
                proceed_on: m.proceed_on,
                counters: m.stats.as_deref().filter(|_| self.counting),
                privilege: m.privilege,
            })
            .collect();
        (inputs, target)
    }

    /// Puts `linked` on the hook: a compare-and-exchange against the program
    /// we believe runs, or the first attach.
    pub(super) fn swap_in(&mut self, linked: &LinkedChain, options: &AddOptions) -> Result<(), Error> {
        self.swap_in_fd(linked.as_fd(), options)
    }

    /// [`Chain::swap_in`] of the program `new` (a chain, or its first segment).
    pub(super) fn swap_in_fd(&mut self, new: BorrowedFd<'_>, options: &AddOptions) -> Result<(), Error> {
        let Some(hook) = &mut self.hook else { return Ok(()) };
        if !hook.is_attached() {
            let mode = options.mode.unwrap_or(AttachMode::Native);
            hook.attach(new, mode, options.mode.is_none(), options.force)?;
            return Ok(());
        }
        if let Some(running) = &self.running {
            return Ok(hook.replace(new, running.as_fd())?);
        }
        // A link pinned by an earlier run whose program we did not adopt:
        // expect the program it runs now.
        let current = hook.attached_prog_id().ok_or_else(|| {
            Error::Conflict(format!(
                "xdpd's link on interface {} was detached behind its back; call Reclaim to take the interface back",
                hook.ifindex()
            ))
        })?;
        let expected = bpf::prog_fd_by_id(current)?;
        Ok(hook.replace(new, expected.as_fd())?)
    }
}
