//! Intake of one application's object: read it, pick its XDP program, read
//! its run config, load it standalone with libbpf (so the verifier judges it
//! alone, in its own instruction numbers) and capture, through libbpf's
//! prepare-load hook, everything the linker needs to place it in a chain.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use sha2::{Digest, Sha256};

use super::btf_ext;
use super::elf::Elf;
use super::maps::prepare_maps;
pub use super::maps::{estimated_bytes, is_pin_name, MapBudget};
use super::run_config::{self, RunConfig};
use super::Error;
use crate::kernel::btf::{FuncInfo, LineInfo};
use crate::kernel::insn::{self, Insn};
use crate::kernel::object::{self as libbpf_object, LibbpfFailure, Object, ProgramEntry};
use crate::kernel::regular_file::{self, ReadError};
use crate::kernel::{bpf, KernelError};

/// Objects larger than this are refused unless the caller sets another cap.
pub const DEFAULT_MAX_OBJECT_SIZE: usize = 16 << 20;

/// One map of a program: created at intake, reused by every chain that
/// includes the program, so its contents survive any relink.
#[derive(Debug)]
pub struct ProgramMap {
    /// Map name in the object (what applications ask for).
    pub name: String,
    /// Kernel id of the map.
    pub id: u32,
    /// `BPF_MAP_TYPE_*`, to decide what a snapshot keeps.
    pub map_type: u32,
    /// Our descriptor: keeps the map alive across relinks.
    pub fd: OwnedFd,
    /// Declared `pinning = LIBBPF_PIN_BY_NAME`: shared between the programs of
    /// one owner through a pin in that owner's directory (never anyone else's).
    pub shared: bool,
    /// Kernel memory the map may take, estimated from its definition
    /// (entries x (key + value per CPU)); what the per-user limit counts.
    pub bytes: u64,
}

/// How one object is loaded.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions<'a> {
    /// Function name asked for; `None` or "": the only XDP program.
    pub function: Option<&'a str>,
    /// Objects larger than this are refused.
    pub max_size: usize,
    /// Reuse maps pinned as `<maps_dir>/<map name>` (a restored program).
    pub maps_dir: Option<&'a std::path::Path>,
    /// Maps declared pinned by name are reused from here (the owner's own
    /// directory) when pinned there; never from or to anywhere else.
    pub shared_dir: Option<&'a std::path::Path>,
    /// Whose verifier judges the program.
    pub privilege: Privilege,
    /// Map memory the caller may still use; `None`: no limit.
    pub budget: Option<MapBudget>,
    /// The object's name (after its file, see [`object_name_of`]); `None`: [`DEFAULT_OBJECT_NAME`].
    pub object_name: Option<&'a str>,
    /// Values of global variables and map sizes, set before loading.
    pub config: Option<&'a crate::program::ObjectConfig>,
    /// The interface the program is for: a program that calls the XDP
    /// metadata kfuncs is loaded bound to it (see [`super::hints`]).
    pub ifindex: Option<u32>,
}

/// The object name when the object's file name is not known.
pub const DEFAULT_OBJECT_NAME: &str = "xdpd-object";

/// The object name libbpf would give the file at `path`: its file name up to
/// the first dot (`ip_blocklist.bpf.o` → `ip_blocklist`). libbpf derives the
/// names of global-data maps from it (`<object>.data`).
pub fn object_name_of(path: &std::path::Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let name = file.split('.').next().filter(|n| !n.is_empty())?;
    Some(name.to_string())
}

/// An application's program, verified on its own and ready to be linked.
#[derive(Debug)]
pub struct LoadedProgram {
    /// The object name libbpf knew it under (see [`LoadOptions::object_name`]).
    pub object: String,
    /// Function name of the program in its object.
    pub name: String,
    /// ELF section it came from (`xdp`, `xdp.frags`, ...).
    pub section: String,
    /// Priority and proceed-on set the object declares (or the defaults).
    pub run_config: RunConfig,
    /// Whether the program declares XDP frags support (`SEC("xdp.frags")`).
    pub frags: bool,
    /// Loaded bound to this device (it calls XDP metadata kfuncs): a chain
    /// holding it is bound too.
    pub dev_bound: Option<u32>,
    /// The object's license: decides whether the chain is GPL.
    pub license: String,
    /// SHA-256 of the object file, hex.
    pub sha256: String,
    /// Kernel tag of the standalone program, hex.
    pub kernel_tag: String,
    /// Its maps, shared by every chain that includes it.
    pub maps: Vec<ProgramMap>,
    /// Final instructions (relocated, subprograms appended); map references
    /// are patched with this program's map descriptors at link time.
    pub(crate) insns: Vec<Insn>,
    /// `(instruction index, index into maps)` of every ld_imm64 map reference.
    pub(crate) map_refs: Vec<(usize, usize)>,
    /// Instructions whose immediate is a type id of `btf`
    /// (`bpf_core_type_id_local()`), shifted with it in a chain.
    pub(crate) type_id_refs: Vec<usize>,
    /// Raw BTF of the object as the kernel accepted it.
    pub(crate) btf: Option<Vec<u8>>,
    pub(crate) func_info: Vec<FuncInfo>,
    pub(crate) line_info: Vec<LineInfo>,
}

impl LoadedProgram {
    /// Number of instructions the program adds to a chain.
    pub fn insn_count(&self) -> usize {
        self.insns.len()
    }

    /// The map `name`, for reading and writing it on an application's behalf.
    pub fn map(&self, name: &str) -> Option<&ProgramMap> {
        self.maps.iter().find(|m| m.name == name)
    }
}

/// SHA-256 of an object, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads an object from a descriptor: regular files (including memfds) only,
/// at most `max_size` bytes, from offset 0 whatever the file position.
pub fn read_fd(fd: BorrowedFd<'_>, max_size: usize) -> Result<Vec<u8>, Error> {
    regular_file::read(fd, max_size).map_err(|e| match e {
        ReadError::TooLarge { .. } | ReadError::Grew(_) => Error::LimitExceeded(e.to_string()),
        ReadError::Io(_) | ReadError::NotRegular(_) => Error::InvalidObject(e.to_string()),
    })
}

fn with_messages(summary: &str, messages: &[String]) -> String {
    if messages.is_empty() {
        summary.to_string()
    } else {
        format!("{summary}: {}", messages.join("; "))
    }
}

/// Chooses the program: by function name, or the only XDP program.
fn select<'a>(programs: &'a [ProgramEntry], function: Option<&str>) -> Result<&'a ProgramEntry, Error> {
    let xdp: Vec<&ProgramEntry> = programs.iter().filter(|p| p.prog_type == libbpf_sys::BPF_PROG_TYPE_XDP).collect();
    let list = |ps: &[&ProgramEntry]| ps.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ");
    let chosen = match function.filter(|f| !f.is_empty()) {
        Some(name) => programs.iter().find(|p| p.name == name).ok_or_else(|| {
            let all: Vec<&ProgramEntry> = programs.iter().collect();
            Error::InvalidObject(if all.is_empty() {
                format!("no program named '{name}': the object has no programs")
            } else {
                format!("no program named '{name}'; the object has: {}", list(&all))
            })
        })?,
        None => match xdp.as_slice() {
            [only] => only,
            [] if programs.is_empty() => return Err(Error::InvalidObject("the object has no BPF programs".into())),
            [] => {
                let all: Vec<&ProgramEntry> = programs.iter().collect();
                return Err(Error::InvalidObject(format!("the object has no XDP program (it has: {})", list(&all))));
            }
            many => {
                return Err(Error::InvalidObject(format!(
                    "the object has {} XDP programs ({}); name the one to add",
                    many.len(),
                    list(many)
                )))
            }
        },
    };
    if chosen.prog_type != libbpf_sys::BPF_PROG_TYPE_XDP {
        return Err(Error::InvalidObject(format!(
            "program '{}' is a {} program (section '{}'), not an XDP program: libbpf loads section '{}' as {}; \
             xdpd loads as XDP the sections 'xdp', 'xdp.frags' and any section libbpf does not know \
             (legacy names such as 'prog' or 'xdp_foo')",
            chosen.name,
            libbpf_object::prog_type_name(chosen.prog_type),
            chosen.section,
            chosen.section,
            libbpf_object::prog_type_name(chosen.prog_type),
        )));
    }
    Ok(chosen)
}

/// Loads the program `function` (or the only XDP program) of the ELF object `bytes`.
pub fn load(bytes: &[u8], function: Option<&str>, max_size: usize) -> Result<LoadedProgram, Error> {
    load_with(bytes, function, max_size, None, Privilege::Full)
}

/// Whose program is verified: the service's own privileges, or those of an
/// unprivileged loader (no pointer leaks, Spectre hardening) for programs
/// that non-root users hand over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Privilege {
    #[default]
    /// The service's own capabilities (root's programs).
    Full,
    /// An unprivileged loader's: pointer leaks refused, Spectre hardening applied.
    User,
}

/// Like [`load_with`] with the service's own privileges.
pub fn load_reusing(
    bytes: &[u8],
    function: Option<&str>,
    max_size: usize,
    maps_dir: Option<&std::path::Path>,
) -> Result<LoadedProgram, Error> {
    load_with(bytes, function, max_size, maps_dir, Privilege::Full)
}

/// Like [`load`], but every map pinned as `<maps_dir>/<map name>` is reused
/// instead of created (a program restored after a restart finds its state),
/// and the program is verified with `privilege`.
pub fn load_with(
    bytes: &[u8],
    function: Option<&str>,
    max_size: usize,
    maps_dir: Option<&std::path::Path>,
    privilege: Privilege,
) -> Result<LoadedProgram, Error> {
    load_opts(bytes, &LoadOptions { function, max_size, maps_dir, privilege, ..Default::default() })
}

/// Loads a program of the ELF object `bytes` as `opts` say.
pub fn load_opts(bytes: &[u8], opts: &LoadOptions<'_>) -> Result<LoadedProgram, Error> {
    let (function, max_size, privilege) = (opts.function, opts.max_size, opts.privilege);
    if bytes.len() > max_size {
        return Err(Error::LimitExceeded(format!("object is {} bytes, the limit is {max_size}", bytes.len())));
    }
    let elf = Elf::parse(bytes).map_err(Error::InvalidObject)?;
    let license = elf.license().unwrap_or_default();
    libbpf_object::register_hook()?;
    let object_name = opts.object_name.unwrap_or(DEFAULT_OBJECT_NAME);
    let mut object = open(bytes, object_name)?;
    let programs = object.programs();
    let chosen = select(&programs, function)?;
    object.set_autoload_only(chosen);
    let run_config = object
        .with_btf(|btf| run_config::read(Some(btf), &chosen.name))
        .unwrap_or_else(|| Ok(RunConfig::default()))
        .map_err(Error::InvalidObject)?;
    if let Some(config) = opts.config {
        super::configure::apply(&mut object, config)?;
    }
    let dev_bound = super::hints::bind_if_needed(&object, chosen, opts.ifindex)?.then_some(opts.ifindex).flatten();
    let (sizes, shared) = prepare_maps(&object, opts)?;
    let capture = object.load(chosen, privilege == Privilege::User).map_err(|f| load_failure(&chosen.name, f))?;
    if !capture.seen || capture.insns.is_empty() {
        return Err(Error::InvalidObject(format!(
            "program '{}' was not loaded through an XDP section handler",
            chosen.name
        )));
    }
    let kernel_tag = bpf::prog_info(object.prog_fd(chosen)?)?.tag_hex();
    let (mut maps, map_refs) = take_maps(&object, &capture.insns, &chosen.name)?;
    for map in &mut maps {
        map.shared = shared.contains(&map.name);
        map.bytes = sizes.iter().find(|(n, _)| *n == map.name).map_or(0, |(_, b)| *b);
    }
    let (btf, type_id_refs) = debug_parts(&elf, &capture, &chosen.name)?;
    let (func_info, line_info) =
        if btf.is_some() { (capture.func_info, capture.line_info) } else { (Vec::new(), Vec::new()) };
    Ok(LoadedProgram {
        object: object_name.to_string(),
        name: chosen.name.clone(),
        section: chosen.section.clone(),
        run_config,
        frags: capture.frags,
        dev_bound,
        license,
        sha256: sha256_hex(bytes),
        kernel_tag,
        maps,
        insns: capture.insns,
        map_refs,
        type_id_refs,
        btf,
        func_info,
        line_info,
    })
}

/// Opens the object under `object_name` (see [`LoadOptions::object_name`]).
fn open(bytes: &[u8], object_name: &str) -> Result<Object, Error> {
    let name = std::ffi::CString::new(object_name)
        .map_err(|_| Error::InvalidArgument(format!("object name {object_name:?} has a NUL byte")))?;
    Object::open_named(bytes, &name).map_err(|f| {
        let summary = format!("libbpf cannot open the object ({})", std::io::Error::from_raw_os_error(f.errno));
        Error::InvalidObject(with_messages(&summary, &f.messages))
    })
}

/// The program's BTF as the kernel accepted it (when it has function
/// records) and the instructions that carry its local type ids.
fn debug_parts(
    elf: &Elf<'_>,
    capture: &libbpf_object::Capture,
    program: &str,
) -> Result<(Option<Vec<u8>>, Vec<usize>), Error> {
    let btf = if capture.btf_fd > 0 && !capture.func_info.is_empty() {
        Some(libbpf_object::kernel_btf(capture.btf_fd)?)
    } else {
        None
    };
    let type_id_refs = btf_ext::local_type_id_sites(elf, &capture.insns, &capture.func_info)
        .map_err(|why| Error::InvalidObject(format!("program '{program}': {why}")))?;
    if btf.is_none() && !type_id_refs.is_empty() {
        return Err(Error::InvalidObject(format!(
            "program '{program}' uses local BTF type ids but the object has no function records (.BTF.ext)"
        )));
    }
    Ok((btf, type_id_refs))
}

/// What a failed libbpf load means: the verifier refused the program, the
/// service lacks privileges or memory, or libbpf refused the object.
fn load_failure(program: &str, f: LibbpfFailure) -> Error {
    if !f.log.trim().is_empty() {
        return Error::VerifierRejected { program: program.to_string(), summary: verifier_summary(&f.log), log: f.log };
    }
    if matches!(f.errno, libc::EPERM | libc::EACCES | libc::ENOMEM) {
        // Not the object's fault: privileges or kernel memory.
        return Error::Kernel(KernelError::new(format!("loading program '{program}'"), f.errno));
    }
    Error::InvalidObject(with_messages(
        &format!("libbpf cannot load program '{program}' ({})", std::io::Error::from_raw_os_error(f.errno)),
        &f.messages,
    ))
}

/// `(instruction index, index into maps)` of every map reference.
type MapRefs = Vec<(usize, usize)>;

/// Takes our own descriptors of the object's maps (the program references
/// them by descriptor number, which the linker rewrites) and finds those references.
fn take_maps(object: &Object, insns: &[Insn], program: &str) -> Result<(Vec<ProgramMap>, MapRefs), Error> {
    let created = object.created_maps()?;
    let by_fd = libbpf_object::index_by_libbpf_fd(&created);
    let mut maps = Vec::with_capacity(created.len());
    for m in created {
        let info = bpf::map_info(m.fd.as_fd())?;
        maps.push(ProgramMap { name: m.name, id: info.id, map_type: info.map_type, fd: m.fd, shared: false, bytes: 0 });
    }
    let map_refs = find_map_refs(insns, &by_fd, program)?;
    Ok((maps, map_refs))
}

/// Reads an object from `fd` and loads it (see [`read_fd`] and [`load`]).
pub fn load_fd(fd: BorrowedFd<'_>, function: Option<&str>, max_size: usize) -> Result<LoadedProgram, Error> {
    load(&read_fd(fd, max_size)?, function, max_size)
}

/// Finds every map reference in `insns` and checks that nothing refers to
/// kernel objects the linker cannot carry over (module BTF, fd arrays).
fn find_map_refs(
    insns: &[Insn],
    by_fd: &std::collections::HashMap<i32, usize>,
    program: &str,
) -> Result<Vec<(usize, usize)>, Error> {
    let unsupported = |what: &str, at: usize| {
        Error::InvalidObject(format!("program '{program}' instruction {at}: {what} cannot be linked into a chain"))
    };
    let mut refs = Vec::new();
    let mut i = 0;
    while i < insns.len() {
        let ins = insns[i];
        if ins.is_ld_imm64() {
            match ins.src() {
                insn::PSEUDO_MAP_FD | insn::PSEUDO_MAP_VALUE => {
                    let map =
                        by_fd.get(&ins.imm).ok_or_else(|| unsupported("a reference to a map outside the object", i))?;
                    refs.push((i, *map));
                }
                insn::PSEUDO_BTF_ID if insns.get(i + 1).is_some_and(|next| next.imm != 0) => {
                    return Err(unsupported("a kernel-module variable (ksym)", i));
                }
                insn::PSEUDO_MAP_IDX | insn::PSEUDO_MAP_IDX_VALUE => {
                    return Err(unsupported("an fd_array map reference", i))
                }
                _ => {}
            }
            i += 2;
            continue;
        }
        if ins.is_kfunc_call() && ins.off != 0 {
            return Err(unsupported("a call of a kernel-module kfunc", i));
        }
        i += 1;
    }
    Ok(refs)
}

/// The line of a verifier log that says what went wrong (its last non-empty
/// line before libbpf's or the kernel's statistics).
pub(crate) fn verifier_summary(log: &str) -> String {
    log.lines()
        .rev()
        .map(str::trim)
        .find(|l| {
            !l.is_empty()
                && !l.starts_with("processed ")
                && !l.starts_with("verification time")
                && !l.starts_with("stack depth")
                && !l.starts_with("-- ")
        })
        .unwrap_or("the verifier gave no reason")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ld(src: u8, imm: i32) -> [Insn; 2] {
        [Insn::new(insn::LD_IMM64, 1, src, 0, imm), Insn::new(0, 0, 0, 0, 0)]
    }

    #[test]
    fn map_references_are_found_by_descriptor() {
        let mut code = Vec::new();
        code.extend(ld(insn::PSEUDO_MAP_FD, 7));
        code.push(Insn::mov32_imm(0, 2));
        code.extend(ld(insn::PSEUDO_MAP_VALUE, 9));
        code.push(Insn::exit());
        let by_fd = HashMap::from([(7, 0), (9, 1)]);
        assert_eq!(find_map_refs(&code, &by_fd, "p").ok(), Some(vec![(0, 0), (3, 1)]));
    }

    #[test]
    fn what_cannot_be_carried_into_a_chain_is_refused() {
        let refused = |code: &[Insn]| match find_map_refs(code, &HashMap::new(), "p") {
            Err(Error::InvalidObject(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(refused(&ld(insn::PSEUDO_MAP_FD, 3)).contains("a map outside the object"));
        assert!(refused(&ld(insn::PSEUDO_MAP_IDX, 0)).contains("fd_array"));
        let mut ksym = ld(insn::PSEUDO_BTF_ID, 100);
        ksym[1].imm = 5; // a module BTF descriptor
        assert!(refused(&ksym).contains("kernel-module variable"));
        let kfunc = Insn::new(insn::CALL, 0, insn::PSEUDO_KFUNC_CALL, 1, 42);
        assert!(refused(&[kfunc]).contains("kernel-module kfunc"));
        let vmlinux_kfunc = Insn::new(insn::CALL, 0, insn::PSEUDO_KFUNC_CALL, 0, 42);
        assert!(find_map_refs(&[vmlinux_kfunc], &HashMap::new(), "p").is_ok_and(|r| r.is_empty()));
    }

    #[test]
    fn the_summary_is_the_last_line_before_the_statistics() {
        let log = "0: (b7) r0 = 0\nR1 invalid mem access 'scalar'\nprocessed 2 insns (limit 1000000)\n\n";
        assert_eq!(verifier_summary(log), "R1 invalid mem access 'scalar'");
        assert_eq!(verifier_summary(""), "the verifier gave no reason");
    }
}
