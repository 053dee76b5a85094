//! A client's handle on one interface's owner task: one async method per
//! command, and the interface's view and counters, readable without asking.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::command::{AddRequest, ChangeRequest, Command, Reply};
use super::publish::IfaceView;
use crate::caller::Caller;
use crate::engine::stats::VerdictCounters;
use crate::engine::{ChainReport, LoadedProgram, MemberId, Stats};
use crate::error::ServiceError;

/// After this long without an answer, a request logs that its owner is slow
/// (and keeps waiting: a verification may well take that long).
const SLOW_OWNER: Duration = Duration::from_secs(5);

/// Verdict counters of the members, shared by the owner and its handles.
pub type Counters = Arc<RwLock<HashMap<MemberId, Arc<VerdictCounters>>>>;

#[derive(Clone)]
pub struct Handle {
    pub ifindex: u32,
    pub(super) counters: Counters,
    pub(super) view: watch::Receiver<IfaceView>,
    pub(super) tx: mpsc::Sender<Command>,
}

impl Handle {
    /// What the interface shows now.
    pub fn view(&self) -> IfaceView {
        self.view.borrow().clone()
    }

    /// Verdicts counted for program `id` (none while counting never was on).
    pub fn stats(&self, id: MemberId) -> Option<Stats> {
        self.counters.read().ok()?.get(&id).map(|c| c.read())
    }

    pub(super) async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ServiceError> {
        let gone = || ServiceError::NoSuchLink(format!("interface {} is gone", self.ifindex));
        let (reply, answer) = oneshot::channel();
        let command = make(reply);
        let name = command.name();
        self.tx.send(command).await.map_err(|_| gone())?;
        tokio::pin!(answer);
        let answer = match tokio::time::timeout(SLOW_OWNER, &mut answer).await {
            Ok(answer) => answer,
            Err(_) => {
                tracing::warn!(
                    ifindex = self.ifindex,
                    command = name,
                    "the interface's owner has not answered for 5 s"
                );
                answer.await
            }
        };
        answer.map_err(|_| gone())?
    }

    /// Adds a verified program; `object` is its file, kept once it is in the chain.
    pub async fn add(
        &self,
        program: LoadedProgram,
        object: Arc<Vec<u8>>,
        request: AddRequest,
        caller: Caller,
    ) -> Result<MemberId, ServiceError> {
        self.ask(|reply| Command::Add { program: Box::new(program), object, request, caller, reply }).await
    }

    /// A dry run of [`Handle::add`]: the report of the chain it would produce.
    pub async fn plan(
        &self,
        program: LoadedProgram,
        request: AddRequest,
        caller: Caller,
    ) -> Result<ChainReport, ServiceError> {
        self.ask(|reply| Command::Plan { program: Box::new(program), request, caller, reply }).await
    }

    /// The report of the running chain; `None` when nothing runs.
    pub async fn explain(&self) -> Result<Option<ChainReport>, ServiceError> {
        self.ask(|reply| Command::Explain { reply }).await
    }

    /// Several adds, replaces and removals as one change; the new programs' ids in order.
    pub async fn change(&self, request: ChangeRequest, caller: Caller) -> Result<Vec<MemberId>, ServiceError> {
        self.ask(|reply| Command::Change { request: Box::new(request), caller, reply }).await
    }

    /// A dry run of [`Handle::change`].
    pub async fn plan_change(&self, request: ChangeRequest, caller: Caller) -> Result<ChainReport, ServiceError> {
        self.ask(|reply| Command::PlanChange { request: Box::new(request), caller, reply }).await
    }

    pub async fn remove(&self, id: MemberId, caller: Caller) -> Result<(), ServiceError> {
        self.ask(|reply| Command::Remove { id, caller, reply }).await
    }

    /// Descriptors of the program's maps: all (`names` None) or the named ones.
    pub async fn get_maps(
        &self,
        id: MemberId,
        caller: Caller,
        names: Option<Vec<String>>,
    ) -> Result<Vec<(String, OwnedFd)>, ServiceError> {
        self.ask(|reply| Command::GetMaps { id, caller, names, reply }).await
    }

    pub async fn reclaim(&self, caller: Caller) -> Result<(), ServiceError> {
        self.ask(|reply| Command::Reclaim { caller, reply }).await
    }

    pub async fn set_hold(&self, on: bool, caller: Caller) -> Result<(), ServiceError> {
        self.ask(|reply| Command::SetHold { on, caller, reply }).await
    }

    pub async fn set_counting(&self, on: bool, caller: Caller) -> Result<(), ServiceError> {
        self.ask(|reply| Command::SetCounting { on, caller, reply }).await
    }
}
