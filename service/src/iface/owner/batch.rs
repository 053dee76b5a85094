//! A change of several parts made as one (`Link.ChangeChain`, used by
//! `xdpctl apply`): every part is checked first, then the chain is linked
//! and swapped in once, so packets meet the chain as it was or as it is
//! after, never in between, and a failing part changes nothing.

use super::{add_options, member_facts, spec_template, Owner};
use crate::caller::Caller;
use crate::engine::{AddOptions, ChainReport, MemberId};
use crate::error::ServiceError;
use crate::iface::command::{ChangeAdd, ChangeRequest};
use crate::iface::publish::ProgramView;
use crate::limits::Charge;
use crate::program::ProgramSpec;

/// What `plan` found: the member each added program replaces, if any.
struct Plan {
    replaced: Vec<Option<MemberId>>,
}

/// The programs a change adds and the charge of their maps, for the caller's limits.
fn cost(request: &ChangeRequest, plan: &Plan) -> (usize, Charge) {
    let new_programs = plan.replaced.iter().filter(|r| r.is_none()).count();
    let charge =
        request.add.iter().map(|a| Charge::new(a.program.maps.iter().map(|m| m.bytes).sum(), a.request.snapshot)).sum();
    (new_programs, charge)
}

/// The added programs as the engine takes them: each with its options and the member it replaces.
fn engine_parts(
    add: Vec<ChangeAdd>,
    plan: &Plan,
    caller: &Caller,
) -> Vec<(crate::engine::LoadedProgram, AddOptions, Option<MemberId>)> {
    add.into_iter()
        .zip(&plan.replaced)
        .map(|(a, old)| {
            let options = AddOptions { mode: None, force: false, ..add_options(&a.request, caller) };
            (a.program, options, *old)
        })
        .collect()
}

impl Owner {
    /// A dry run of [`Owner::change`]: the same checks, limits and refusals,
    /// the chain linked and verified, reported and dropped.
    pub(super) async fn dry_run_change(
        &mut self,
        request: ChangeRequest,
        caller: Caller,
    ) -> Result<ChainReport, ServiceError> {
        let plan = self.plan(&request, &caller)?;
        let (new_programs, charge) = cost(&request, &plan);
        let freed = self.freed(&request, &plan, &caller);
        self.cx.limits.reserve_program_freeing(caller.uid, new_programs, charge, freed)?;
        let ChangeRequest { add, remove, mode, force, expected_generation } = request;
        let parts = engine_parts(add, &plan, &caller);
        let options = AddOptions { mode, force, privilege: caller.privilege(), ..Default::default() };
        let planned = self
            .with_chain(move |chain| {
                super::check_generation(chain, expected_generation)?;
                chain.plan_change(&remove, parts, &options)
            })
            .await;
        self.cx.limits.release_program(caller.uid, new_programs, charge);
        tracing::debug!(%caller, interface = %self.ifname(), ok = matches!(planned, Ok(Ok(_))), "dry run of a change");
        Ok(planned??)
    }

    pub(super) async fn change(
        &mut self,
        request: ChangeRequest,
        caller: Caller,
    ) -> Result<Vec<MemberId>, ServiceError> {
        let plan = self.plan(&request, &caller)?;
        let (new_programs, charge) = cost(&request, &plan);
        self.cx.limits.reserve_program_freeing(
            caller.uid,
            new_programs,
            charge,
            self.freed(&request, &plan, &caller),
        )?;
        let held = self.hold_objects(&request.add);
        let result = match held {
            Ok(()) => self.change_chain(request, &plan, &caller).await,
            Err(e) => Err(e),
        };
        let (views, removed) = result.inspect_err(|e| {
            self.cx.limits.release_program(caller.uid, new_programs, charge);
            tracing::info!(%caller, interface = %self.ifname(), "change refused: {e}");
        })?;
        // What the replaced and removed programs were charged goes back to their owners.
        for id in removed.iter().chain(plan.replaced.iter().flatten()) {
            if let Some(p) = self.programs.get(id) {
                let programs = usize::from(!plan.replaced.contains(&Some(*id)));
                self.cx.limits.release_program(p.spec.owner_uid, programs, p.spec.charge());
            }
        }
        for view in &views {
            let (message_id, chain_priority) = (crate::log::message_id::PROGRAM_ADDED, view.spec.priority);
            tracing::info!(message_id, %caller, interface = %self.ifname(), program = ?view.spec.function, id = view.id, chain_priority, "program added");
        }
        for id in &removed {
            let message_id = crate::log::message_id::PROGRAM_REMOVED;
            tracing::info!(message_id, %caller, interface = %self.ifname(), id, "program removed");
        }
        let ids = views.iter().map(|v| v.id).collect();
        let gone = removed.into_iter().chain(plan.replaced.iter().flatten().copied()).collect();
        self.changed(views, gone).await;
        Ok(ids)
    }

    /// What the change gives back to the caller's own limits: its programs the
    /// change removes (count and charge) and replaces (charge).
    fn freed(&self, request: &ChangeRequest, plan: &Plan, caller: &Caller) -> (usize, Charge) {
        let own = |id: &MemberId| self.programs.get(id).filter(|p| p.spec.owner_uid == caller.uid);
        let removed: Vec<Charge> = request.remove.iter().filter_map(own).map(|p| p.spec.charge()).collect();
        let replaced = plan.replaced.iter().flatten().filter_map(own).map(|p| p.spec.charge());
        let charge = removed.iter().copied().chain(replaced).sum();
        (removed.len(), charge)
    }

    /// Checks every part against the chain as it is; decides what each added program replaces.
    fn plan(&self, request: &ChangeRequest, caller: &Caller) -> Result<Plan, ServiceError> {
        if request.add.is_empty() && request.remove.is_empty() {
            return Err(ServiceError::InvalidArgs("the change is empty: nothing to add or remove".into()));
        }
        for (i, id) in request.remove.iter().enumerate() {
            if !self.programs.contains_key(id) {
                return Err(super::no_such_program(*id));
            }
            if request.remove[..i].contains(id) {
                return Err(ServiceError::InvalidArgs(format!("program {id} is removed twice")));
            }
            if self.unexplained() == Some(*id) {
                return Err(ServiceError::Conflict(format!(
                    "program {id} stands for a chain no record explains; remove it with its own Remove call, which detaches the chain"
                )));
            }
        }
        let mut replaced = Vec::with_capacity(request.add.len());
        for (i, add) in request.add.iter().enumerate() {
            let context = format!("program {i} of the change: ");
            self.check_add(&add.program, &add.request).map_err(|e| e.context(&context))?;
            let same = |other: &ChangeAdd| {
                other.program.sha256 == add.program.sha256
                    && other.program.name == add.program.name
                    && other.request.tag == add.request.tag
            };
            // Maps shared by name are created by the first program that
            // declares them; two new ones in one change would each get their own.
            let shared_with = |other: &ChangeAdd| {
                add.program
                    .maps
                    .iter()
                    .filter(|m| m.shared)
                    .any(|m| other.program.maps.iter().any(|o| o.shared && o.name == m.name && o.id != m.id))
            };
            if let Some(j) = request.add[..i].iter().position(shared_with) {
                return Err(ServiceError::InvalidArgs(format!(
                    "{context}it shares a map pinned by name with program {j} of the change, which would create it: \
                     add the two in separate changes"
                )));
            }
            if request.add[..i].iter().any(same) {
                return Err(ServiceError::InvalidArgs(format!(
                    "{context}the same object, function and tag as an earlier one"
                )));
            }
            let old = add
                .request
                .replace
                .then(|| {
                    self.programs.values().find(|p| p.spec.tag == add.request.tag && p.spec.owner_uid == caller.uid)
                })
                .flatten()
                .map(|p| p.id);
            if let Some(old) = old {
                if request.remove.contains(&old) || replaced.contains(&Some(old)) {
                    return Err(ServiceError::InvalidArgs(format!(
                        "{context}it replaces program {old}, which the change already removes or replaces"
                    )));
                }
            }
            replaced.push(old);
        }
        Ok(Plan { replaced })
    }

    /// Stores every added object durably before the chain changes.
    fn hold_objects(&self, adds: &[ChangeAdd]) -> Result<(), ServiceError> {
        for (i, add) in adds.iter().enumerate() {
            if let Err(e) = self.cx.store.hold_object(&add.program.sha256, &add.object) {
                for earlier in &adds[..i] {
                    self.cx.store.release_object(&earlier.program.sha256);
                }
                return Err(ServiceError::NotDurable(format!("cannot store the object in the state directory: {e}")));
            }
        }
        Ok(())
    }

    /// Links the changed chain and swaps it in once; the new programs' views and the removed ids.
    async fn change_chain(
        &self,
        request: ChangeRequest,
        plan: &Plan,
        caller: &Caller,
    ) -> Result<(Vec<ProgramView>, Vec<MemberId>), ServiceError> {
        let ChangeRequest { add, remove, mode, force, expected_generation } = request;
        let shas: Vec<String> = add.iter().map(|a| a.program.sha256.clone()).collect();
        let templates: Vec<ProgramSpec> = add.iter().map(|a| spec_template(&a.program, &a.request, caller)).collect();
        let parts = engine_parts(add, plan, caller);
        let options = AddOptions { mode, force, privilege: caller.privilege(), ..Default::default() };
        let removed = remove.clone();
        let result = self
            .durably(templates.clone(), move |chain| {
                super::check_generation(chain, expected_generation)?;
                let ids = chain.change(&removed, parts, &options)?;
                ids.into_iter().map(|id| member_facts(chain, id)).collect::<Result<Vec<_>, _>>()
            })
            .await;
        for sha in &shas {
            self.cx.store.release_object(sha);
        }
        let views = result?
            .into_iter()
            .zip(templates)
            .map(|((id, priority, proceed_on, map_ids, carried_maps), template)| {
                let spec = ProgramSpec { priority, proceed_on, carried_maps, ..template };
                ProgramView { ifindex: self.ifindex, id, spec, map_ids }
            })
            .collect();
        Ok((views, remove))
    }
}
