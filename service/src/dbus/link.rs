//! `org.xdp.Manager1.Link`: one object per network interface.

use std::collections::HashMap;
use std::sync::Arc;

use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::OwnedObjectPath;
use zbus::{interface, Connection, ObjectServer, OwnedVariant};

use super::change;
use super::options::{self, AddRequest};
use super::report::Report;
use crate::auth::{Action, Details};
use crate::error::ServiceError;
use crate::iface::Handle;
use crate::intake::{Intake, Source, Verified, Wanted};
use crate::request::{Front, Request};

pub const INTERFACE: &str = "org.xdp.Manager1.Link";

/// The bus face of one interface: its owner's handle and the front door.
pub struct LinkIface {
    pub(super) handle: Handle,
    pub(super) front: Arc<Front>,
    pub(super) intake: Arc<Intake>,
}

#[interface(name = "org.xdp.Manager1.Link")]
impl LinkIface {
    /// Adds the XDP program `program` (a function name; "" for the only XDP
    /// program) of the ELF object read from the descriptor `object` (a regular
    /// file or a memfd) to this interface's chain, and returns the new
    /// program's object path. `options`: priority (i), proceed-on (as), mode (s),
    /// tag (s), replace (b), expected-generation (t), persist (b), snapshot (b),
    /// force (b), sha256 (s), fresh-maps (b).
    #[zbus(out_args("program_path"))]
    async fn add_program(
        &self,
        object: zbus::OwnedFd,
        program: String,
        options: HashMap<String, OwnedVariant>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<OwnedObjectPath, ServiceError> {
        let _busy = self.front.busy();
        let request = options::parse(&options)?;
        let admitted = self.front.begin(connection, &header).await?;
        self.add(admitted, Source::Fd(object.into()), program, request).await
    }

    /// Like AddProgram, for callers that cannot pass descriptors (busctl,
    /// gdbus): the service opens `path` with the caller's own uid, gid and
    /// groups, so it never reads a file the caller could not read.
    #[zbus(out_args("program_path"))]
    async fn add_program_from_path(
        &self,
        path: String,
        program: String,
        options: HashMap<String, OwnedVariant>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<OwnedObjectPath, ServiceError> {
        let _busy = self.front.busy();
        let request = options::parse(&options)?;
        let admitted = self.front.begin(connection, &header).await?;
        self.add(admitted, Source::path(path)?, program, request).await
    }

    /// A dry run of AddProgram with the same arguments and options: links and
    /// verifies the chain the change would produce and answers with it (see
    /// Explain), without attaching, recording or changing anything. Refused
    /// with the errors the change would get; needs what the change needs.
    #[zbus(out_args("report"))]
    async fn plan_add_program(
        &self,
        object: zbus::OwnedFd,
        program: String,
        options: HashMap<String, OwnedVariant>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<Report, ServiceError> {
        let _busy = self.front.busy();
        let request = options::parse(&options)?;
        let admitted = self.front.begin(connection, &header).await?;
        self.plan(admitted, Source::Fd(object.into()), program, request).await
    }

    /// PlanAddProgram for a path, opened as AddProgramFromPath opens it.
    #[zbus(out_args("report"))]
    async fn plan_add_program_from_path(
        &self,
        path: String,
        program: String,
        options: HashMap<String, OwnedVariant>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<Report, ServiceError> {
        let _busy = self.front.busy();
        let request = options::parse(&options)?;
        let admitted = self.front.begin(connection, &header).await?;
        self.plan(admitted, Source::path(path)?, program, request).await
    }

    /// The running chain: its members in run order and how each is linked,
    /// and per loaded program its instructions and maps against the kernel's
    /// limits, the instructions the verifier processed and how long it took.
    /// Needs no authorization, but takes one of the caller's request slots
    /// (it waits in the interface's queue like a change).
    #[zbus(out_args("report"))]
    async fn explain(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<Report, ServiceError> {
        let _busy = self.front.busy();
        let _admitted = self.front.begin(connection, &header).await?;
        let report = self.handle.explain().await?;
        Ok(Report::of(self.at(), report.as_ref(), self.handle.view().generation))
    }

    /// Makes several changes of this interface's chain as one: adds each
    /// program of `add` (object descriptor, function, AddProgram's options
    /// without mode, force and expected-generation), removes the programs
    /// `remove` names by id, links the chain once and swaps it in: one
    /// generation, one ChainChanged. `options`: mode (s), force (b),
    /// expected-generation (t). Returns the new programs' paths in order.
    #[zbus(out_args("program_paths"))]
    async fn change_chain(
        &self,
        add: Vec<(zbus::OwnedFd, String, HashMap<String, OwnedVariant>)>,
        remove: Vec<u64>,
        options: HashMap<String, OwnedVariant>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<Vec<OwnedObjectPath>, ServiceError> {
        let _busy = self.front.busy();
        let decoded = change::decode(add, &remove, &options)?;
        let admitted = self.front.begin(connection, &header).await?;
        self.change(admitted, server, decoded, remove).await
    }

    /// A dry run of ChangeChain: the same arguments, authorization, checks
    /// and refusals; the chain the change would make, linked, verified and
    /// reported (as PlanAddProgram reports) instead of swapped in.
    #[zbus(out_args("report"))]
    async fn plan_change_chain(
        &self,
        add: Vec<(zbus::OwnedFd, String, HashMap<String, OwnedVariant>)>,
        remove: Vec<u64>,
        options: HashMap<String, OwnedVariant>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<Report, ServiceError> {
        let _busy = self.front.busy();
        let decoded = change::decode(add, &remove, &options)?;
        let admitted = self.front.begin(connection, &header).await?;
        self.plan_change(admitted, server, decoded, remove).await
    }

    /// Takes the interface back after someone detached or replaced the chain
    /// behind the service's back (needs org.xdp.manager1.manage).
    async fn reclaim(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<(), ServiceError> {
        let admitted = self.front.begin(connection, &header).await?;
        admitted.authorize(Action::Manage, &self.details(&admitted, "", "", None)).await?;
        self.handle.reclaim(admitted.caller().clone()).await
    }

    /// Switches counting of every program's verdicts on or off (a relink;
    /// needs org.xdp.manager1.manage). Counts show in each program's Stats.
    async fn set_counting(
        &self,
        enabled: bool,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<(), ServiceError> {
        let admitted = self.front.begin(connection, &header).await?;
        admitted.authorize(Action::Manage, &self.details(&admitted, "", "", None)).await?;
        self.handle.set_counting(enabled, admitted.caller().clone()).await
    }

    /// Keeps the hook held (or lets it go; needs org.xdp.manager1.manage):
    /// while held, the interface keeps a pass-through program attached
    /// through xdpd's link when its last program is removed, and gets one now
    /// if it has none, so after the first attach it only sees replacements.
    async fn set_hold(
        &self,
        enabled: bool,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<(), ServiceError> {
        let admitted = self.front.begin(connection, &header).await?;
        admitted.authorize(Action::Manage, &self.details(&admitted, "", "", None)).await?;
        self.handle.set_hold(enabled, admitted.caller().clone()).await
    }

    /// Whether the hook is held (see SetHold).
    #[zbus(property)]
    fn hold(&self) -> bool {
        self.handle.view().hold
    }

    /// Whether every program's verdicts are counted (see SetCounting).
    #[zbus(property)]
    fn counting(&self) -> bool {
        self.handle.view().counting
    }

    /// The interface's index.
    #[zbus(property(emits_changed_signal = "const"))]
    fn index(&self) -> i32 {
        self.handle.ifindex as i32
    }

    /// The name of the interface's network namespace under the namespace
    /// directory (`/run/netns`); "" for the service's own namespace.
    #[zbus(property(emits_changed_signal = "const"))]
    fn netns(&self) -> String {
        self.handle.view().netns.name
    }

    /// The inode of the interface's network namespace (as `ls -i
    /// /run/netns/NAME` or `readlink /proc/PID/ns/net` show it), also for the
    /// service's own.
    #[zbus(property(emits_changed_signal = "const"))]
    fn netns_inode(&self) -> u64 {
        self.handle.view().netns.inode
    }

    /// The interface's name; follows renames.
    #[zbus(property)]
    fn name(&self) -> String {
        self.handle.view().name
    }

    /// The mode the chain is attached in: native, generic, offload; "" when none.
    #[zbus(property)]
    fn mode(&self) -> String {
        self.handle.view().mode
    }

    /// Increases by one on every change of the chain.
    #[zbus(property)]
    fn generation(&self) -> u64 {
        self.handle.view().generation
    }

    /// The programs of the chain, in run order.
    #[zbus(property)]
    fn programs(&self) -> Vec<OwnedObjectPath> {
        let view = self.handle.view();
        view.programs.iter().map(|id| super::program_path_in(view.netns.scope(), view.index, *id)).collect()
    }

    /// Kernel id of the attached chain program, 0 if none.
    #[zbus(property)]
    fn kernel_program_id(&self) -> u32 {
        self.handle.view().kernel_program_id
    }

    /// How each program runs in the linked chain: "inline" (spliced into the
    /// dispatcher), "call" (a BPF-to-BPF call) or "not-linked" (an earlier
    /// program ends the chain); empty when not known (a chain adopted after a
    /// restart, until its next change).
    #[zbus(property)]
    fn linking(&self) -> HashMap<OwnedObjectPath, String> {
        linking(&self.handle.view())
    }

    /// Kernel id of an XDP program someone else attached, 0 if none.
    #[zbus(property)]
    fn foreign_program_id(&self) -> u32 {
        self.handle.view().foreign_program_id
    }

    /// The chain changed: its new generation and programs in run order.
    #[zbus(signal)]
    async fn chain_changed(
        emitter: &SignalEmitter<'_>,
        generation: u64,
        programs: Vec<OwnedObjectPath>,
    ) -> zbus::Result<()>;

    /// Someone else replaced or removed the chain: `id` is their program (0: none).
    #[zbus(signal)]
    async fn foreign_program_detected(emitter: &SignalEmitter<'_>, id: u32) -> zbus::Result<()>;
}

impl LinkIface {
    /// This link: its namespace (inode; None for the service's own) and index.
    pub(super) fn at(&self) -> (Option<u64>, u32) {
        (self.handle.view().netns.scope(), self.handle.ifindex)
    }

    /// What polkit is told; only what the request says (nothing is read yet).
    pub(super) fn details(
        &self,
        admitted: &Request<'_, '_>,
        program: &str,
        tag: &str,
        sha256: Option<String>,
    ) -> Details {
        Details {
            interface: self.handle.view().name,
            ifindex: self.handle.ifindex,
            netns: self.handle.view().netns.name,
            netns_inode: self.handle.view().netns.inode,
            caller_uid: admitted.caller().uid,
            program: program.to_string(),
            tag: tag.to_string(),
            sha256,
            pid: None,
        }
    }

    /// The common second half of AddProgram and AddProgramFromPath: authorize
    /// with what the request says, and only then read and verify the object
    /// and hand it to the interface's owner.
    async fn add(
        &self,
        admitted: Request<'_, '_>,
        source: Source,
        program: String,
        request: AddRequest,
    ) -> Result<OwnedObjectPath, ServiceError> {
        let verified = self.take(&admitted, source, &program, &request).await?;
        let id = self.handle.add(verified.program, verified.object, request, admitted.caller().clone()).await?;
        drop(verified.budget);
        Ok(super::program_path_in(self.handle.view().netns.scope(), self.handle.ifindex, id))
    }

    /// The second half of PlanAddProgram*: as `add`, but the owner reports instead of changing.
    async fn plan(
        &self,
        admitted: Request<'_, '_>,
        source: Source,
        program: String,
        request: AddRequest,
    ) -> Result<Report, ServiceError> {
        let verified = self.take(&admitted, source, &program, &request).await?;
        let report = self.handle.plan(verified.program, request, admitted.caller().clone()).await?;
        drop(verified.budget);
        Ok(Report::of(self.at(), Some(&report), report.generation))
    }

    /// Authorizes what the request says, and only then reads and verifies the object.
    async fn take(
        &self,
        admitted: &Request<'_, '_>,
        source: Source,
        program: &str,
        request: &AddRequest,
    ) -> Result<Verified, ServiceError> {
        options::function_name(program)?;
        let details = self.details(admitted, program, &request.tag, request.sha256.clone());
        admitted.authorize(Action::AddProgram, &details).await?;
        if request.replace {
            admitted.authorize(Action::RemoveProgram, &details).await?;
        }
        if request.force || request.mode.is_some() {
            admitted.authorize(Action::Manage, &details).await?;
        }
        let wanted = Wanted {
            function: program.to_string(),
            sha256: request.sha256.clone(),
            config: request.config.clone(),
            ifindex: self.handle.ifindex,
        };
        self.intake.take(source, admitted.caller(), &wanted).await
    }

    /// Emits a link's ChainChanged signal.
    pub(super) async fn emit_chain_changed(
        emitter: &SignalEmitter<'_>,
        generation: u64,
        programs: Vec<OwnedObjectPath>,
    ) -> zbus::Result<()> {
        LinkIface::chain_changed(emitter, generation, programs).await
    }

    /// Emits a link's ForeignProgramDetected signal.
    pub(super) async fn emit_foreign_program_detected(emitter: &SignalEmitter<'_>, id: u32) -> zbus::Result<()> {
        LinkIface::foreign_program_detected(emitter, id).await
    }
}

/// The Linking property of `view`: program path to how it runs.
pub(super) fn linking(view: &crate::iface::IfaceView) -> HashMap<OwnedObjectPath, String> {
    let at = |id: u64| super::program_path_in(view.netns.scope(), view.index, id);
    view.linking.iter().map(|(id, how)| (at(*id), how.clone())).collect()
}
