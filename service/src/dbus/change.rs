//! The second half of `Link.ChangeChain`: authorize every part with what the
//! request says, then read all objects, then hand one change to the owner.

use std::collections::HashMap;

use zbus::{ObjectServer, OwnedObjectPath, OwnedVariant};

use super::link::LinkIface;
use super::options::{self, AddRequest};
use super::program::ProgramIface;
use super::report::Report;
use crate::auth::{Action, Details};
use crate::engine::MemberId;
use crate::error::ServiceError;
use crate::iface::command::{ChangeAdd, ChangeRequest};
use crate::intake::{Source, Wanted};
use crate::request::Request;
use tokio::sync::OwnedSemaphorePermit;

/// The most parts (programs added plus removed) one change may have.
pub const MAX_PARTS: usize = 64;
/// The most programs one change may add: one descriptor each, and the system
/// bus carries at most 16 in a message (its max_message_unix_fds).
pub const MAX_ADDS: usize = 16;

/// One program to add, decoded: its object, function and options.
pub struct Part {
    pub object: zbus::OwnedFd,
    pub function: String,
    pub request: AddRequest,
}

/// Decodes ChangeChain's arguments, refusing what cannot be a change before anything else.
pub fn decode(
    add: Vec<(zbus::OwnedFd, String, HashMap<String, OwnedVariant>)>,
    remove: &[u64],
    options: &HashMap<String, OwnedVariant>,
) -> Result<(Vec<Part>, AddRequest), ServiceError> {
    if add.len() + remove.len() > MAX_PARTS {
        return Err(ServiceError::LimitExceeded(format!(
            "a change has {} parts; at most {MAX_PARTS} programs added and removed together",
            add.len() + remove.len()
        )));
    }
    if add.len() > MAX_ADDS {
        return Err(ServiceError::LimitExceeded(format!(
            "a change adds {} programs; at most {MAX_ADDS} (one descriptor each, and the system bus carries 16 in a message)",
            add.len()
        )));
    }
    let change = options::parse_change(options)?;
    let parts = add
        .into_iter()
        .enumerate()
        .map(|(i, (object, function, options))| {
            options::function_name(&function).map_err(|e| e.context(&format!("program {i} of the change: ")))?;
            Ok(Part { object, function, request: options::parse_part(&options, i)? })
        })
        .collect::<Result<Vec<_>, ServiceError>>()?;
    Ok((parts, change))
}

impl LinkIface {
    /// Authorizes each part as its own AddProgram or Remove would be, then
    /// reads every object, then asks the owner for one change.
    pub(super) async fn change(
        &self,
        admitted: Request<'_, '_>,
        server: &ObjectServer,
        decoded: (Vec<Part>, AddRequest),
        remove: Vec<MemberId>,
    ) -> Result<Vec<OwnedObjectPath>, ServiceError> {
        let (request, budget) = self.read_change(&admitted, server, decoded, remove).await?;
        let ids = self.handle.change(request, admitted.caller().clone()).await?;
        drop(budget);
        let scope = self.handle.view().netns.scope();
        Ok(ids.into_iter().map(|id| super::program_path_in(scope, self.handle.ifindex, id)).collect())
    }

    /// PlanChangeChain: as `change`, but the owner reports the chain instead of changing it.
    pub(super) async fn plan_change(
        &self,
        admitted: Request<'_, '_>,
        server: &ObjectServer,
        decoded: (Vec<Part>, AddRequest),
        remove: Vec<MemberId>,
    ) -> Result<Report, ServiceError> {
        let (request, budget) = self.read_change(&admitted, server, decoded, remove).await?;
        let report = self.handle.plan_change(request, admitted.caller().clone()).await?;
        drop(budget);
        Ok(Report::of(self.at(), Some(&report), report.generation))
    }

    /// Authorizes the change, then reads and verifies every object it adds.
    async fn read_change(
        &self,
        admitted: &Request<'_, '_>,
        server: &ObjectServer,
        (parts, change): (Vec<Part>, AddRequest),
        remove: Vec<MemberId>,
    ) -> Result<(ChangeRequest, OwnedSemaphorePermit), ServiceError> {
        self.authorize_change(admitted, server, &parts, &change, &remove).await?;
        let (requests, entries): (Vec<AddRequest>, Vec<_>) = parts
            .into_iter()
            .map(|p| {
                let wanted = Wanted {
                    function: p.function,
                    sha256: p.request.sha256.clone(),
                    config: p.request.config.clone(),
                    ifindex: self.handle.ifindex,
                };
                (p.request, (Source::Fd(p.object.into()), wanted))
            })
            .unzip();
        let (loaded, budget) = self.intake.take_all(entries, admitted.caller()).await?;
        let add = loaded
            .into_iter()
            .zip(requests)
            .map(|((program, object), request)| ChangeAdd { program, object, request })
            .collect();
        let request = ChangeRequest {
            add,
            remove,
            mode: change.mode,
            force: change.force,
            expected_generation: change.expected_generation,
        };
        Ok((request, budget))
    }

    /// Asks polkit each distinct question of the change once (it may prompt
    /// for each): every part as its own AddProgram (replace, force, mode) or
    /// Remove would be asked.
    async fn authorize_change(
        &self,
        admitted: &Request<'_, '_>,
        server: &ObjectServer,
        parts: &[Part],
        change: &AddRequest,
        remove: &[MemberId],
    ) -> Result<(), ServiceError> {
        let mut asked: Vec<(Action, Details)> = Vec::new();
        for part in parts {
            let details = self.details(admitted, &part.function, &part.request.tag, part.request.sha256.clone());
            asked.push((Action::AddProgram, details.clone()));
            if part.request.replace {
                asked.push((Action::RemoveProgram, details.clone()));
            }
            if change.force || change.mode.is_some() {
                asked.push((Action::Manage, details));
            }
        }
        if parts.is_empty() && (change.force || change.mode.is_some()) {
            asked.push((Action::Manage, self.details(admitted, "", "", None)));
        }
        for id in remove {
            let path = super::program_path_in(self.handle.view().netns.scope(), self.handle.ifindex, *id);
            let program = server
                .interface::<_, ProgramIface>(&path)
                .await
                .map_err(|_| ServiceError::NoSuchProgram(format!("no program {id} on this interface")))?;
            let (details, owner) = {
                let program = program.get().await;
                let spec = &program.view.spec;
                let details = Details {
                    sha256: Some(spec.sha256.clone()),
                    ..self.details(admitted, &spec.function, &spec.tag, None)
                };
                (details, spec.owner_uid)
            };
            let action = if owner == admitted.caller().uid { Action::RemoveProgram } else { Action::Manage };
            asked.push((action, details));
        }
        for (i, (action, details)) in asked.iter().enumerate() {
            if !asked[..i].contains(&(*action, details.clone())) {
                admitted.authorize(*action, details).await?;
            }
        }
        Ok(())
    }
}
