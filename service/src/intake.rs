//! Intake of a caller's object, once the caller is authorized: open it (a
//! path is opened as the caller), reserve memory for it under the service's
//! in-flight budget, read it, verify its program standalone (which hashes it,
//! once), and check the hash the caller announced. All of it runs on the
//! blocking pool, never on the async workers.
//!
//! The budget bounds the bytes of objects held by requests in flight, across
//! all clients: [`IN_FLIGHT_OBJECTS`] objects of the largest allowed size. A
//! request that cannot get its share waits for it (in order of arrival); the
//! per-client request limit bounds how many may wait.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::caller::Caller;
use crate::engine::maps::MapBudget;
use crate::engine::object::{self, LoadedProgram};
use crate::engine::sandbox::{Job, Sandbox};
use crate::error::ServiceError;
use crate::kernel::bpffs::Bpffs;
use crate::limits::Limits;

/// How many objects of the largest allowed size may be in flight at once.
pub const IN_FLIGHT_OBJECTS: usize = 4;
/// The budget counts in units of this many bytes (tokio counts permits in u32).
const UNIT: usize = 4096;

/// Where a caller's object comes from.
pub enum Source {
    /// A descriptor the caller passed (a regular file or a memfd).
    Fd(OwnedFd),
    /// An absolute path, opened with the caller's own file-system identity.
    Path(String),
}

impl Source {
    /// Checks a path argument before anything is opened.
    pub fn path(path: String) -> Result<Source, ServiceError> {
        if !path.starts_with('/') {
            return Err(ServiceError::InvalidArgs(format!("{path:?} is not an absolute path")));
        }
        Ok(Source::Path(path))
    }
}

/// A verified program, its object's bytes, and the memory reserved for them.
pub struct Verified {
    pub program: LoadedProgram,
    pub object: Arc<Vec<u8>>,
    /// Released when dropped: keep it until the object is no longer needed.
    pub budget: OwnedSemaphorePermit,
}

pub struct Intake {
    max_object_size: usize,
    budget: Arc<Semaphore>,
    limits: Arc<Limits>,
    bpffs: Bpffs,
    sandbox: Arc<Sandbox>,
}

/// Opens `path` read-only as `caller` would: the service never reads a file
/// the caller could not (uid, gid, groups; O_NONBLOCK so a FIFO cannot hang it).
pub fn open_as(caller: &Caller, path: &Path) -> std::io::Result<OwnedFd> {
    crate::kernel::files::open_as(caller.uid, &caller.gids, path)
}

fn units(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX)
}

/// Runs blocking work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ServiceError::Failed(format!("worker task failed: {e}")))?
}

impl Intake {
    /// Objects up to `max_object_size`; maps charged to `limits`; maps pinned
    /// by name shared under `bpffs`'s owner directories; libbpf run in `sandbox`.
    pub fn new(max_object_size: usize, limits: Arc<Limits>, bpffs: Bpffs, sandbox: Sandbox) -> Arc<Intake> {
        let total = units(max_object_size.saturating_add(1)).saturating_mul(IN_FLIGHT_OBJECTS as u32);
        Arc::new(Intake {
            max_object_size,
            budget: Arc::new(Semaphore::new(total as usize)),
            limits,
            bpffs,
            sandbox: Arc::new(sandbox),
        })
    }

    /// Reads the object of `source`, verifies its program `function` ("" for
    /// the only XDP program) with the caller's privilege, and checks the
    /// announced `sha256`. The caller must be authorized already.
    pub async fn take(
        &self,
        source: Source,
        caller: &Caller,
        function: &str,
        sha256: Option<&str>,
    ) -> Result<Verified, ServiceError> {
        let opener = caller.clone();
        let (fd, size, object_name) = blocking(move || open(source, &opener)).await?;
        let (cap, reserve) = reservation(size, self.max_object_size);
        let budget = self.reserve(units(reserve)).await?;
        let map_budget = self.limits.map_budget(caller.uid);
        let opened = Opened { fd, cap, name: object_name };
        let (program, object) = self.load(opened, caller, function, sha256, map_budget).await?;
        Ok(Verified { program, object, budget })
    }

    /// The objects of one change (source, function, announced SHA-256), read
    /// and verified in order; the first failure ends it, named by its index.
    /// Their memory is reserved at once, so that two such changes cannot each
    /// hold part of the budget while waiting for the rest.
    pub async fn take_all(
        &self,
        entries: Vec<(Source, String, Option<String>)>,
        caller: &Caller,
    ) -> Result<(Vec<(LoadedProgram, Arc<Vec<u8>>)>, OwnedSemaphorePermit), ServiceError> {
        let mut opened = Vec::with_capacity(entries.len());
        let mut total: u64 = 0;
        for (i, (source, function, sha256)) in entries.into_iter().enumerate() {
            let opener = caller.clone();
            let (fd, size, name) = blocking(move || open(source, &opener))
                .await
                .map_err(|e| e.context(&format!("program {i} of the change: ")))?;
            let (cap, reserve) = reservation(size, self.max_object_size);
            total += u64::from(units(reserve));
            opened.push((Opened { fd, cap, name }, function, sha256));
        }
        // Half of the memory for objects in flight, so that one change never
        // holds all of it while its programs are verified one after another.
        let most = units(self.max_object_size.saturating_add(1)).saturating_mul(IN_FLIGHT_OBJECTS as u32) / 2;
        let total = u32::try_from(total).ok().filter(|t| *t <= most).ok_or_else(|| {
            ServiceError::LimitExceeded(format!(
                "the objects of one change may total at most {} bytes (half the service's memory for objects in flight)",
                u64::from(most) * UNIT as u64
            ))
        })?;
        let budget = self.reserve(total).await?;
        let mut loaded: Vec<(LoadedProgram, Arc<Vec<u8>>)> = Vec::with_capacity(opened.len());
        // The uid's map memory is shared by the parts: each gets what the earlier ones left.
        let mut map_budget = self.limits.map_budget(caller.uid);
        for (i, (object, function, sha256)) in opened.into_iter().enumerate() {
            let program = self.load(object, caller, &function, sha256.as_deref(), map_budget).await;
            let program = program.map_err(|e| e.context(&format!("program {i} of the change: ")))?;
            let used: u64 = program.0.maps.iter().map(|m| m.bytes).sum();
            if let Some(budget) = &mut map_budget {
                budget.remaining = budget.remaining.saturating_sub(used);
            }
            loaded.push(program);
        }
        Ok((loaded, budget))
    }

    async fn reserve(&self, units: u32) -> Result<OwnedSemaphorePermit, ServiceError> {
        self.budget
            .clone()
            .acquire_many_owned(units)
            .await
            .map_err(|_| ServiceError::Failed("the intake budget is closed".into()))
    }

    /// Reads at most `cap` bytes of the object and verifies its program `function`
    /// as `caller`'s, in the sandbox; checks the announced `sha256`.
    async fn load(
        &self,
        Opened { fd, cap, name: object_name }: Opened,
        caller: &Caller,
        function: &str,
        sha256: Option<&str>,
        map_budget: Option<MapBudget>,
    ) -> Result<(LoadedProgram, Arc<Vec<u8>>), ServiceError> {
        let max = self.max_object_size;
        let job = Job {
            function: Some(function.to_string()).filter(|f| !f.is_empty()),
            max_size: max,
            maps_dir: None,
            shared_dir: Some(self.bpffs.owner_dir(caller.uid)),
            // A non-root user's program is verified as an unprivileged loader's would be.
            user: !caller.is_root(),
            map_budget,
            object_name: Some(object_name),
        };
        let (sandbox, uid) = (self.sandbox.clone(), caller.uid);
        let (program, object) = blocking(move || {
            let bytes = read(fd, cap, max)?;
            // libbpf parses the caller's bytes in a child: a crash there costs only this request.
            let program = sandbox.load(&bytes, &job).inspect_err(|e| {
                if let crate::engine::Error::VerifierRejected { program, summary, .. } = e {
                    let message_id = crate::log::message_id::PROGRAM_REJECTED;
                    tracing::info!(message_id, uid, program = ?program, "the verifier refused a program on its own: {summary:?}");
                }
            })?;
            Ok((program, Arc::new(bytes)))
        })
        .await?;
        if let Some(expected) = sha256.filter(|s| *s != program.sha256) {
            return Err(ServiceError::InvalidArgs(format!(
                "the object's SHA-256 is {}, not {expected} as option 'sha256' says",
                program.sha256
            )));
        }
        Ok((program, object))
    }
}

/// An object's descriptor, how much of it to read at most, and libbpf's name for it.
struct Opened {
    fd: OwnedFd,
    cap: usize,
    name: String,
}

/// How much of an object of `size` to read at most, and how many bytes of
/// budget it takes (`max`: the service's limit).
fn reservation(size: Option<usize>, max: usize) -> (usize, usize) {
    match size {
        // Not a regular file: the read refuses it without reading.
        None => (0, 1),
        // A regular file that does not tell its size (procfs): up to the limit.
        Some(0) => (max, max + 1),
        // Over the limit: refused by the read without reading.
        Some(size) if size > max => (max, 1),
        Some(size) => (size, size + 1),
    }
}

/// Opens the source (a path as the caller) and tells its size (`None` for
/// what is not a regular file: the read refuses it with the precise reason)
/// and the object name libbpf would give it (after its file name).
fn open(source: Source, caller: &Caller) -> Result<(OwnedFd, Option<usize>, String), ServiceError> {
    let (fd, path) = match source {
        Source::Fd(fd) => {
            // The file the caller's descriptor names, if it is one (not a memfd or a pipe).
            let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok();
            (fd, link.filter(|p| p.is_absolute() && !p.starts_with("/memfd:")))
        }
        Source::Path(path) => {
            let fd = open_as(caller, Path::new(&path))
                .map_err(|e| ServiceError::InvalidObject(format!("cannot open {path:?} as uid {}: {e}", caller.uid)))?;
            (fd, Some(path.into()))
        }
    };
    let name = path.as_deref().and_then(object::object_name_of);
    let meta = fd.try_clone().map(File::from).and_then(|f| f.metadata());
    let size = meta.ok().filter(|m| m.file_type().is_file()).map(|m| usize::try_from(m.len()).unwrap_or(usize::MAX));
    Ok((fd, size, name.unwrap_or_else(|| object::DEFAULT_OBJECT_NAME.to_string())))
}

/// Reads at most `cap` bytes (the size reserved for); `max` is the service's limit.
fn read(fd: OwnedFd, cap: usize, max: usize) -> Result<Vec<u8>, ServiceError> {
    match object::read_fd(fd.as_fd(), cap) {
        Err(crate::engine::Error::LimitExceeded(_)) if cap < max => Err(ServiceError::LimitExceeded(format!(
            "the object grew past {cap} bytes while it was read (the service reserves memory for the size it had)"
        ))),
        other => other.map_err(ServiceError::from),
    }
}
