//! `org.xdp.Manager1.Link`: one object per network interface.

use std::collections::HashMap;
use std::os::fd::AsFd;

use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::OwnedObjectPath;
use zbus::{interface, Connection, OwnedVariant, Variant};

use super::error::ServiceError;
use super::options;
use crate::auth::{self, Action};
use crate::caller::{self, Caller};
use crate::engine::object;
use crate::links::{LinkHandle, LinkSnapshot};

pub const INTERFACE: &str = "org.xdp.Manager1.Link";

pub struct LinkIface {
    handle: LinkHandle,
    max_object_size: usize,
}

/// Runs blocking work (reading, verifying) off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ServiceError::Failed(format!("worker task failed: {e}")))?
}

#[interface(name = "org.xdp.Manager1.Link")]
impl LinkIface {
    /// Adds the XDP program `program` (a function name; "" for the only XDP
    /// program) of the ELF object read from the descriptor `object` (a regular
    /// file or a memfd) to this interface's chain, and returns the new
    /// program's object path. `options`: priority (i), proceed-on (as), mode (s),
    /// tag (s), replace (b), expected-generation (t), persist (b), snapshot (b), force (b).
    #[zbus(out_args("program_path"))]
    async fn add_program(
        &self,
        object: zbus::OwnedFd,
        program: String,
        options: HashMap<String, OwnedVariant>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<OwnedObjectPath, ServiceError> {
        let _busy = self.handle.activity.begin();
        let request = options::parse(&options)?;
        let caller = Caller::of(connection, &header).await?;
        let _request = self.handle.limits.begin_request(&caller.unique_name)?;
        let fd: std::os::fd::OwnedFd = object.into();
        let max = self.max_object_size;
        let bytes = blocking(move || object::read_fd(fd.as_fd(), max).map_err(ServiceError::from)).await?;
        self.add(bytes, program, request, caller, &header, connection).await
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
        let _busy = self.handle.activity.begin();
        let request = options::parse(&options)?;
        let caller = Caller::of(connection, &header).await?;
        let _request = self.handle.limits.begin_request(&caller.unique_name)?;
        if !path.starts_with('/') {
            return Err(ServiceError::InvalidArgs(format!("'{path}' is not an absolute path")));
        }
        let max = self.max_object_size;
        let opener = caller.clone();
        let bytes = blocking(move || {
            // Opened as the caller: the caller learns nothing it could not read itself.
            let fd = caller::open_as(&opener, std::path::Path::new(&path))
                .map_err(|e| ServiceError::InvalidObject(format!("cannot open {path} as uid {}: {e}", opener.uid)))?;
            object::read_fd(fd.as_fd(), max).map_err(ServiceError::from)
        })
        .await?;
        self.add(bytes, program, request, caller, &header, connection).await
    }

    /// Takes the interface back after someone detached or replaced the chain
    /// behind the service's back (needs org.xdp.manager1.manage).
    async fn reclaim(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<(), ServiceError> {
        let _busy = self.handle.activity.begin();
        let caller = Caller::of(connection, &header).await?;
        let _request = self.handle.limits.begin_request(&caller.unique_name)?;
        let details = auth::Details { interface: self.handle.snapshot().name, ..Default::default() };
        auth::authorize(connection, &header, &caller, Action::Manage, &details).await?;
        self.handle.reclaim(caller).await
    }

    /// Switches counting of every program's verdicts on or off (a relink;
    /// needs org.xdp.manager1.manage). Counts show in each program's Stats.
    async fn set_counting(
        &self,
        enabled: bool,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<(), ServiceError> {
        let _busy = self.handle.activity.begin();
        let caller = Caller::of(connection, &header).await?;
        let _request = self.handle.limits.begin_request(&caller.unique_name)?;
        let details = auth::Details { interface: self.handle.snapshot().name, ..Default::default() };
        auth::authorize(connection, &header, &caller, Action::Manage, &details).await?;
        self.handle.set_counting(enabled, caller).await
    }

    /// Whether every program's verdicts are counted (see SetCounting).
    #[zbus(property)]
    fn counting(&self) -> bool {
        self.handle.snapshot().counting
    }

    /// The interface's index.
    #[zbus(property(emits_changed_signal = "const"))]
    fn index(&self) -> i32 {
        self.handle.ifindex as i32
    }

    /// The interface's name; follows renames.
    #[zbus(property)]
    fn name(&self) -> String {
        self.handle.snapshot().name
    }

    /// The mode the chain is attached in: native, generic, offload; "" when none.
    #[zbus(property)]
    fn mode(&self) -> String {
        self.handle.snapshot().mode
    }

    /// Increases by one on every change of the chain.
    #[zbus(property)]
    fn generation(&self) -> u64 {
        self.handle.snapshot().generation
    }

    /// The programs of the chain, in run order.
    #[zbus(property)]
    fn programs(&self) -> Vec<OwnedObjectPath> {
        self.handle.snapshot().programs
    }

    /// Kernel id of the attached chain program, 0 if none.
    #[zbus(property)]
    fn kernel_program_id(&self) -> u32 {
        self.handle.snapshot().kernel_program_id
    }

    /// Kernel id of an XDP program someone else attached, 0 if none.
    #[zbus(property)]
    fn foreign_program_id(&self) -> u32 {
        self.handle.snapshot().foreign_program_id
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
    /// The common second half of AddProgram and AddProgramFromPath: authorize
    /// with the object's details, verify it, and hand it to the link's owner.
    async fn add(
        &self,
        bytes: Vec<u8>,
        program: String,
        request: options::AddRequest,
        caller: Caller,
        header: &Header<'_>,
        connection: &Connection,
    ) -> Result<OwnedObjectPath, ServiceError> {
        let details = auth::Details {
            interface: self.handle.snapshot().name,
            program: program.clone(),
            tag: request.tag.clone(),
            sha256: object::sha256_hex(&bytes),
        };
        auth::authorize(connection, header, &caller, Action::AddProgram, &details).await?;
        if request.replace {
            auth::authorize(connection, header, &caller, Action::RemoveProgram, &details).await?;
        }
        if request.force || request.mode.is_some() {
            auth::authorize(connection, header, &caller, Action::Manage, &details).await?;
        }
        let (max, caller_is_root) = (self.max_object_size, caller.is_root());
        let bytes = std::sync::Arc::new(bytes);
        let object_bytes = bytes.clone();
        let loaded = blocking(move || {
            let function = Some(program.as_str()).filter(|p| !p.is_empty());
            // A non-root user's program is verified as an unprivileged loader's would be.
            let privilege = if caller_is_root { object::Privilege::Full } else { object::Privilege::User };
            object::load_with(&object_bytes, function, max, None, privilege).map_err(ServiceError::from)
        })
        .await?;
        self.handle.add(loaded, bytes, request, caller).await
    }
}

pub async fn export(connection: &Connection, handle: LinkHandle, max_object_size: usize) -> zbus::Result<()> {
    let path = super::link_path(handle.ifindex);
    connection.object_server().at(path, LinkIface { handle, max_object_size }).await.map(drop)
}

pub async fn unexport(connection: &Connection, ifindex: u32) {
    let _ = connection.object_server().remove::<LinkIface, _>(super::link_path(ifindex)).await;
}

/// Emits PropertiesChanged for `names` with their values from `snapshot`.
pub async fn properties_changed(
    connection: &Connection,
    path: &OwnedObjectPath,
    snapshot: &LinkSnapshot,
    names: &[&str],
) {
    let mut changed: HashMap<&str, Variant<'_>> = HashMap::new();
    for &name in names {
        let value = match name {
            "Name" => Variant::from(snapshot.name.clone()),
            "Mode" => Variant::from(snapshot.mode.clone()),
            "Generation" => Variant::from(snapshot.generation),
            "Programs" => Variant::from(snapshot.programs.iter().map(|p| p.as_ref()).collect::<Vec<_>>()),
            "KernelProgramId" => Variant::from(snapshot.kernel_program_id),
            "ForeignProgramId" => Variant::from(snapshot.foreign_program_id),
            "Counting" => Variant::from(snapshot.counting),
            _ => continue,
        };
        changed.insert(name, value);
    }
    let body = (INTERFACE, changed, Vec::<&str>::new());
    if let Err(e) = connection
        .emit_signal(None::<&str>, path.as_ref(), "org.freedesktop.DBus.Properties", "PropertiesChanged", &body)
        .await
    {
        tracing::warn!("cannot emit PropertiesChanged: {e}");
    }
}

/// Announces a changed chain: PropertiesChanged, then ChainChanged.
pub async fn chain_changed(connection: &Connection, path: &OwnedObjectPath, snapshot: &LinkSnapshot) {
    properties_changed(
        connection,
        path,
        snapshot,
        &["Generation", "Programs", "KernelProgramId", "Mode", "ForeignProgramId", "Counting"],
    )
    .await;
    let emitter = SignalEmitter::from_parts(connection.clone(), path.as_ref());
    if let Err(e) = LinkIface::chain_changed(&emitter, snapshot.generation, snapshot.programs.clone()).await {
        tracing::warn!("cannot emit ChainChanged: {e}");
    }
}

/// Emits ForeignProgramDetected(id) on a link object.
pub async fn foreign_program_detected(connection: &Connection, path: &OwnedObjectPath, id: u32) {
    let emitter = SignalEmitter::from_parts(connection.clone(), path.as_ref());
    if let Err(e) = LinkIface::foreign_program_detected(&emitter, id).await {
        tracing::warn!("cannot emit ForeignProgramDetected: {e}");
    }
}
