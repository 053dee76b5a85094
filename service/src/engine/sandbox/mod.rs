//! Intake in a sandbox: an object a caller hands over is parsed by libbpf and
//! loaded standalone in a short-lived child process, never in the service.
//!
//! libbpf is not hardened against hostile ELF or BTF (a mutated kfunc
//! prototype made it segfault). The child is the service's own executable
//! started as `xdpd __intake`: it confines itself (limits on memory, CPU time
//! and descriptors, no new privileges, no core dump, dies with the service),
//! reads the object from its standard input (a memfd), loads it, and hands back
//! what the linker needs over its standard output, a `SOCK_SEQPACKET` socket:
//! one message with a small header, a memfd holding the program as JSON, and
//! the descriptors of the program's maps. A crash, a hang or a flood of output
//! costs only that request: it answers `InvalidObject` naming what happened.
//!
//! The child inherits no descriptor of the service: a caller's instruction
//! naming a descriptor number can only reach the child's own maps.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod wire;

use self::wire::{WireError, WireProgram};
use super::maps::estimated_bytes;
use super::object::{self, LoadOptions, LoadedProgram, Privilege};
use super::Error;
use crate::kernel::bpf;
use crate::kernel::btf::Btf;
use crate::kernel::object::MapDefinition;
use crate::kernel::process::{self, Confinement, MAX_FDS_PER_MESSAGE};
use crate::kernel::regular_file;
use crate::kernel::KernelError;

/// The first argument that makes the service's executable an intake child.
pub const CHILD_ARG: &str = "__intake";
/// Largest JSON description of a program the service accepts from a child.
const MAX_REPLY: usize = 256 << 20;
const HEADER_MAGIC: &str = "xdpd-intake/1";

/// What to load, as the child is told on its command line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// Function name asked for; `None`: the only XDP program.
    pub function: Option<String>,
    /// Objects larger than this are refused.
    pub max_size: usize,
    /// Reuse maps pinned here (a restored program finds its state).
    pub maps_dir: Option<PathBuf>,
    /// Maps the object pins by name are shared through this directory (the
    /// owner's own); libbpf's pinning anywhere else is off.
    pub shared_dir: Option<PathBuf>,
    /// Verify with the service's privileges or those of an unprivileged loader.
    pub user: bool,
    /// Map memory the caller may still use; `None`: no limit (root).
    pub map_budget: Option<object::MapBudget>,
    /// The object's name (after its file); `None`: the default.
    #[serde(default)]
    pub object_name: Option<String>,
    /// Values of global variables and map sizes, set before loading.
    #[serde(default)]
    pub config: crate::program::ObjectConfig,
    /// The interface the program is for (XDP hints bind to it).
    #[serde(default)]
    pub ifindex: Option<u32>,
}

/// How intake children are started and bounded.
#[derive(Debug, Clone)]
pub struct Sandbox {
    exe: PathBuf,
    timeout: Duration,
    confinement: Confinement,
}

impl Sandbox {
    /// Children run `exe` (normally the service's own executable).
    pub fn new(exe: PathBuf) -> Sandbox {
        Sandbox {
            exe,
            timeout: Duration::from_secs(60),
            confinement: Confinement { memory: 2 << 30, cpu_seconds: 60, files: 4096 },
        }
    }

    /// The running executable, as the service itself uses it.
    pub fn of_this_executable() -> Result<Sandbox, Error> {
        // /proc/self/exe stays valid even if the binary is replaced by an upgrade.
        let exe = PathBuf::from("/proc/self/exe");
        if !exe.exists() {
            return Err(Error::Kernel(KernelError::new("finding /proc/self/exe for the intake sandbox", libc::ENOENT)));
        }
        Ok(Sandbox::new(exe))
    }

    /// Wall-clock time a child gets before it is killed.
    pub fn with_timeout(mut self, timeout: Duration) -> Sandbox {
        self.timeout = timeout;
        self
    }

    /// Loads the object `bytes` in a child, as [`object::load_with`] would in-process.
    pub fn load(&self, bytes: &[u8], job: &Job) -> Result<LoadedProgram, Error> {
        if bytes.len() > job.max_size {
            return Err(Error::LimitExceeded(format!(
                "object is {} bytes, the limit is {}",
                bytes.len(),
                job.max_size
            )));
        }
        let fault =
            |op: &str, e: std::io::Error| Error::Kernel(KernelError::new(op, e.raw_os_error().unwrap_or(libc::EIO)));
        let input = process::memfd_with(c"xdpd-object", bytes).map_err(|e| fault("creating the intake memfd", e))?;
        let (ours, theirs) = process::seqpacket_pair().map_err(|e| fault("creating the intake socket", e))?;
        let job_arg = serde_json::to_string(job).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let mut child = Command::new(&self.exe)
            .arg(CHILD_ARG)
            .arg(job_arg)
            .arg(self.confinement.memory.to_string())
            .arg(self.confinement.cpu_seconds.to_string())
            .arg(self.confinement.files.to_string())
            .env_clear()
            .stdin(Stdio::from(input))
            .stdout(Stdio::from(theirs))
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fault("starting the intake process", e))?;
        let reply = receive(&ours, self.timeout);
        if matches!(reply, Err(Reply::TimedOut)) {
            let _ = child.kill();
        }
        let status = child.wait().map_err(|e| fault("waiting for the intake process", e))?;
        match reply {
            Ok(program) => program.and_then(|p| vouch(p, bytes)),
            Err(Reply::TimedOut) => Err(Error::InvalidObject(format!(
                "loading the object took longer than {} s; it was stopped",
                self.timeout.as_secs()
            ))),
            Err(Reply::Bad(why)) => Err(Error::InvalidObject(match status.signal() {
                Some(sig) => format!("the object crashed libbpf while it was parsed or loaded ({})", signal_name(sig)),
                None if status.code() == Some(0) => format!("the intake process answered nonsense: {why}"),
                None => format!("the intake process failed ({status}): {why}"),
            })),
        }
    }
}

/// What the service itself checks of a child's answer, so that a child
/// libbpf may have been subverted in cannot lie where it matters: the hash
/// is the service's own (polkit's `object_sha256` relies on it), each map's
/// id, type and size come from the kernel (the per-user map limit relies on
/// them; a descriptor that is no map is refused), and the BTF the linker will
/// parse with libbpf is first accepted by the kernel.
pub fn vouch(mut program: LoadedProgram, bytes: &[u8]) -> Result<LoadedProgram, Error> {
    program.sha256 = object::sha256_hex(bytes);
    for map in &mut program.maps {
        let info = bpf::map_info(map.fd.as_fd()).map_err(|e| {
            Error::InvalidObject(format!("the intake process sent map {:?} that is no map: {e}", map.name))
        })?;
        let definition = MapDefinition {
            name: info.name.clone(),
            map_type: info.map_type,
            max_entries: info.max_entries,
            key_size: info.key_size,
            value_size: info.value_size,
        };
        (map.id, map.map_type, map.bytes) = (info.id, info.map_type, estimated_bytes(&definition));
    }
    if let Some(raw) = &program.btf {
        Btf::kernel_accepts(raw)
            .map_err(|e| Error::InvalidObject(format!("the intake process sent BTF the kernel refuses: {e}")))?;
    }
    Ok(program)
}

enum Reply {
    TimedOut,
    Bad(String),
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGSEGV => "SIGSEGV, a memory fault".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGKILL => "SIGKILL: out of its CPU time or memory".into(),
        libc::SIGXCPU => "SIGXCPU: out of its CPU time".into(),
        libc::SIGILL => "SIGILL".into(),
        libc::SIGFPE => "SIGFPE".into(),
        other => format!("signal {other}"),
    }
}

/// Reads the child's answer: header + description memfd + map descriptors.
fn receive(sock: &OwnedFd, timeout: Duration) -> Result<Result<LoadedProgram, Error>, Reply> {
    let deadline = std::time::Instant::now() + timeout;
    let next = || -> Result<(Vec<u8>, Vec<OwnedFd>), Reply> {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match process::wait_readable(sock.as_fd(), left) {
            Ok(true) => {}
            Ok(false) => return Err(Reply::TimedOut),
            Err(e) => return Err(Reply::Bad(e.to_string())),
        }
        process::recv_with_fds(sock.as_fd(), 256).map_err(|e| Reply::Bad(e.to_string()))
    };
    let (header, mut fds) = next()?;
    if header.is_empty() && fds.is_empty() {
        return Err(Reply::Bad("no answer".into()));
    }
    let header = String::from_utf8(header).map_err(|_| Reply::Bad("a header that is not text".into()))?;
    let maps: usize = header
        .strip_prefix(HEADER_MAGIC)
        .and_then(|rest| rest.trim().parse().ok())
        .ok_or_else(|| Reply::Bad("an unknown header".into()))?;
    if fds.is_empty() {
        return Err(Reply::Bad("no description".into()));
    }
    let description = fds.remove(0);
    while fds.len() < maps {
        let (_, more) = next()?;
        if more.is_empty() {
            return Err(Reply::Bad(format!("{} of {maps} map descriptors", fds.len())));
        }
        fds.extend(more);
    }
    if fds.len() != maps {
        return Err(Reply::Bad(format!("{} map descriptors where {maps} were announced", fds.len())));
    }
    let json = regular_file::read(description.as_fd(), MAX_REPLY).map_err(|e| Reply::Bad(e.to_string()))?;
    let wire: Result<WireProgram, WireError> =
        serde_json::from_slice(&json).map_err(|e| Reply::Bad(format!("an unreadable description: {e}")))?;
    Ok(match wire {
        Ok(program) => program.into_loaded(fds),
        Err(error) => Err(error.into()),
    })
}

/// The child's side: `xdpd __intake JOB MEMORY CPU FILES`, stdin the object,
/// stdout the answer socket. Never returns to the caller's logic.
pub fn child_main(args: &[String]) -> std::process::ExitCode {
    let parse = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok());
    let (Some(job), Some(memory), Some(cpu_seconds), Some(files)) =
        (args.first().and_then(|j| serde_json::from_str::<Job>(j).ok()), parse(1), parse(2), parse(3))
    else {
        eprintln!("xdpd {CHILD_ARG} is started by the service itself");
        return std::process::ExitCode::from(2);
    };
    if process::confine_self(Confinement { memory, cpu_seconds, files }).is_err() {
        return std::process::ExitCode::from(3);
    }
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let result = match regular_file::read(stdin.as_fd(), job.max_size) {
        Ok(bytes) => object::load_opts(
            &bytes,
            &LoadOptions {
                function: job.function.as_deref(),
                max_size: job.max_size,
                maps_dir: job.maps_dir.as_deref(),
                shared_dir: job.shared_dir.as_deref(),
                privilege: if job.user { Privilege::User } else { Privilege::Full },
                budget: job.map_budget,
                object_name: job.object_name.as_deref(),
                config: Some(&job.config),
                ifindex: job.ifindex,
            },
        ),
        Err(e) => Err(Error::LimitExceeded(format!("reading the object: {e}"))),
    };
    match answer(stdout.as_fd(), result) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::from(4),
    }
}

fn answer(sock: std::os::fd::BorrowedFd<'_>, result: Result<LoadedProgram, Error>) -> std::io::Result<()> {
    let (wire, maps): (Result<WireProgram, WireError>, Vec<OwnedFd>) = match result {
        Ok(program) => {
            let (wire, fds) = WireProgram::from_loaded(program);
            (Ok(wire), fds)
        }
        Err(e) => (Err(WireError::from(e)), Vec::new()),
    };
    let json = serde_json::to_vec(&wire).map_err(std::io::Error::other)?;
    let description = process::memfd_with(c"xdpd-intake-reply", &json)?;
    let header = format!("{HEADER_MAGIC} {}", maps.len());
    let mut chunks = maps.chunks(MAX_FDS_PER_MESSAGE - 1);
    let first: Vec<_> =
        std::iter::once(description.as_fd()).chain(chunks.next().unwrap_or(&[]).iter().map(|f| f.as_fd())).collect();
    process::send_with_fds(sock, header.as_bytes(), &first)?;
    for chunk in chunks {
        let fds: Vec<_> = chunk.iter().map(|f| f.as_fd()).collect();
        process::send_with_fds(sock, b"+", &fds)?;
    }
    Ok(())
}
