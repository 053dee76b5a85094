//! Intake of one application's object: read it, pick its XDP program, read
//! its run config, load it standalone with libbpf (so the verifier judges it
//! alone, in its own instruction numbers) and capture, through libbpf's
//! prepare-load hook, everything the linker needs to place it in a chain.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_long, CStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Once;

use sha2::{Digest, Sha256};

use super::btf::Btf;
use super::elf::Elf;
use super::insn::{self, Insn};
use super::run_config::{self, RunConfig};
use super::Error;
use crate::kernel::{bpf, libbpf_log, KernelError};

/// Objects larger than this are refused unless the caller sets another cap.
pub const DEFAULT_MAX_OBJECT_SIZE: usize = 16 << 20;
/// Verifier logs are kept up to this size (the end of a longer log is kept).
const LOG_SIZE: usize = 1 << 20;

/// One map of a program: created at intake, reused by every chain that
/// includes the program, so its contents survive any relink.
#[derive(Debug)]
pub struct ProgramMap {
    pub name: String,
    pub id: u32,
    pub map_type: u32,
    pub fd: OwnedFd,
}

/// `struct bpf_func_info`
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuncInfo {
    pub insn_off: u32,
    pub type_id: u32,
}

/// `struct bpf_line_info`
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineInfo {
    pub insn_off: u32,
    pub file_name_off: u32,
    pub line_off: u32,
    pub line_col: u32,
}

/// An application's program, verified on its own and ready to be linked.
#[derive(Debug)]
pub struct LoadedProgram {
    /// Function name of the program in its object.
    pub name: String,
    /// ELF section it came from (`xdp`, `xdp.frags`, ...).
    pub section: String,
    /// Priority and proceed-on set the object declares (or the defaults).
    pub run_config: RunConfig,
    /// Whether the program declares XDP frags support (`SEC("xdp.frags")`).
    pub frags: bool,
    pub license: String,
    /// SHA-256 of the object file, hex.
    pub sha256: String,
    /// Kernel tag of the standalone program, hex.
    pub kernel_tag: String,
    pub maps: Vec<ProgramMap>,
    /// Final instructions (relocated, subprograms appended); map references
    /// are patched with this program's map descriptors at link time.
    pub(crate) insns: Vec<Insn>,
    /// `(instruction index, index into maps)` of every ld_imm64 map reference.
    pub(crate) map_refs: Vec<(usize, usize)>,
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

    pub fn map(&self, name: &str) -> Option<&ProgramMap> {
        self.maps.iter().find(|m| m.name == name)
    }
}

/// SHA-256 of an object, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

// --- reading the object ---

/// Reads an object from a descriptor: regular files (including memfds) only,
/// at most `max_size` bytes, from offset 0 whatever the file position.
pub fn read_fd(fd: BorrowedFd<'_>, max_size: usize) -> Result<Vec<u8>, Error> {
    // SAFETY: fstat writes into a zeroed stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(Error::InvalidObject(format!("cannot stat the descriptor: {}", std::io::Error::last_os_error())));
    }
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFREG {
        let what = match kind {
            libc::S_IFIFO => "a pipe or FIFO",
            libc::S_IFSOCK => "a socket",
            libc::S_IFDIR => "a directory",
            libc::S_IFCHR => "a character device",
            libc::S_IFBLK => "a block device",
            _ => "not a regular file",
        };
        return Err(Error::InvalidObject(format!("the descriptor is {what}; pass a regular file or a memfd")));
    }
    if st.st_size as u64 > max_size as u64 {
        return Err(Error::LimitExceeded(format!("object is {} bytes, the limit is {max_size}", st.st_size)));
    }
    // Read at most one byte more than allowed, so a file growing meanwhile is caught.
    let mut bytes = vec![0u8; (st.st_size as usize).min(max_size) + 1];
    let mut len = 0;
    while len < bytes.len() {
        // SAFETY: the destination range lies inside `bytes`.
        let n = unsafe {
            libc::pread(fd.as_raw_fd(), bytes[len..].as_mut_ptr().cast(), bytes.len() - len, len as libc::off_t)
        };
        match n {
            0 => break,
            n if n > 0 => len += n as usize,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => continue,
            _ => {
                return Err(Error::InvalidObject(format!(
                    "cannot read the object: {}",
                    std::io::Error::last_os_error()
                )))
            }
        }
        if len == bytes.len() && len <= max_size {
            bytes.resize((len * 2).min(max_size + 1), 0);
        }
    }
    if len > max_size {
        return Err(Error::LimitExceeded(format!("object grew past the limit of {max_size} bytes while read")));
    }
    bytes.truncate(len);
    Ok(bytes)
}

// --- libbpf's prepare-load hook ---

const COOKIE_FRAGS: c_long = 1;

/// What the prepare-load hook saw of the program being loaded on this thread.
#[derive(Default)]
struct Capture {
    insns: Vec<Insn>,
    func_info: Vec<FuncInfo>,
    line_info: Vec<LineInfo>,
    btf_fd: i32,
    frags: bool,
    seen: bool,
}

thread_local! {
    static CAPTURE: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

/// Copies `cnt` records of `rec_size` bytes when they have the layout we know.
///
/// # Safety
/// `ptr` must point to `cnt * rec_size` readable bytes when non-null.
unsafe fn copy_records<T: Copy>(ptr: *const std::ffi::c_void, cnt: u32, rec_size: u32) -> Vec<T> {
    if ptr.is_null() || cnt == 0 || rec_size as usize != std::mem::size_of::<T>() {
        return Vec::new();
    }
    // SAFETY: per the function contract.
    unsafe { std::slice::from_raw_parts(ptr.cast::<T>(), cnt as usize) }.to_vec()
}

unsafe extern "C" fn prepare_load(
    prog: *mut libbpf_sys::bpf_program,
    opts: *mut libbpf_sys::bpf_prog_load_opts,
    cookie: c_long,
) -> c_int {
    // SAFETY: libbpf passes valid pointers for the duration of the call.
    let opts = unsafe { &mut *opts };
    // What libbpf's own handler does for XDP sections.
    if cookie & COOKIE_FRAGS != 0 {
        opts.prog_flags |= libbpf_sys::BPF_F_XDP_HAS_FRAGS;
    }
    CAPTURE.with(|c| {
        let mut c = c.borrow_mut();
        let Some(cap) = c.as_mut() else { return };
        // SAFETY: libbpf's final instructions, valid until the program is unloaded.
        let (insns, cnt) = unsafe { (libbpf_sys::bpf_program__insns(prog), libbpf_sys::bpf_program__insn_cnt(prog)) };
        if !insns.is_null() {
            // SAFETY: `cnt` instructions of identical layout.
            cap.insns = unsafe { std::slice::from_raw_parts(insns.cast::<Insn>(), cnt as usize) }.to_vec();
        }
        // SAFETY: libbpf's func/line info records, of the given counts and sizes.
        unsafe {
            cap.func_info = copy_records(opts.func_info, opts.func_info_cnt, opts.func_info_rec_size);
            cap.line_info = copy_records(opts.line_info, opts.line_info_cnt, opts.line_info_rec_size);
        }
        cap.btf_fd = if opts.func_info.is_null() { 0 } else { opts.prog_btf_fd as i32 };
        cap.frags = opts.prog_flags & libbpf_sys::BPF_F_XDP_HAS_FRAGS != 0;
        cap.seen = true;
    });
    0
}

/// Registers the prepare-load hook for XDP sections, once per process.
fn register_hook() -> Result<(), Error> {
    static ONCE: Once = Once::new();
    static mut RESULT: c_int = 0;
    ONCE.call_once(|| {
        for (sec, cookie) in [(c"xdp+", 0), (c"xdp.frags+", COOKIE_FRAGS)] {
            let opts = libbpf_sys::libbpf_prog_handler_opts {
                sz: std::mem::size_of::<libbpf_sys::libbpf_prog_handler_opts>() as _,
                cookie,
                prog_prepare_load_fn: Some(prepare_load),
                ..Default::default()
            };
            // SAFETY: static section name; libbpf copies the options.
            let ret = unsafe {
                libbpf_sys::libbpf_register_prog_handler(
                    sec.as_ptr(),
                    libbpf_sys::BPF_PROG_TYPE_XDP,
                    libbpf_sys::BPF_XDP,
                    &opts,
                )
            };
            if ret < 0 {
                // SAFETY: written once, inside call_once.
                unsafe { RESULT = ret };
            }
        }
    });
    // SAFETY: only read after call_once completed.
    match unsafe { RESULT } {
        0 => Ok(()),
        ret => Err(Error::Kernel(KernelError::new("registering libbpf's XDP section handler", -ret))),
    }
}

// --- the libbpf object ---

struct Object(NonNull<libbpf_sys::bpf_object>);

impl Drop for Object {
    fn drop(&mut self) {
        // SAFETY: we own the object.
        unsafe { libbpf_sys::bpf_object__close(self.0.as_ptr()) }
    }
}

struct ProgramEntry {
    ptr: *mut libbpf_sys::bpf_program,
    name: String,
    section: String,
    prog_type: u32,
}

fn cstr(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: libbpf returns NUL-terminated strings.
    unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned()
}

fn prog_type_name(t: u32) -> String {
    // SAFETY: returns a static string or NULL.
    let name = cstr(unsafe { libbpf_sys::libbpf_bpf_prog_type_str(t) });
    if name.is_empty() {
        format!("type {t}")
    } else {
        name
    }
}

impl Object {
    fn open(bytes: &[u8]) -> Result<Object, Error> {
        let name = c"xdpd-object";
        let opts = libbpf_sys::bpf_object_open_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_object_open_opts>() as _,
            object_name: name.as_ptr(),
            ..Default::default()
        };
        let (ptr, messages) = libbpf_log::collect(|| unsafe {
            libbpf_sys::bpf_object__open_mem(bytes.as_ptr().cast(), bytes.len() as _, &opts)
        });
        NonNull::new(ptr).map(Object).ok_or_else(|| {
            let errno = crate::kernel::last_errno();
            Error::InvalidObject(with_messages(
                &format!("libbpf cannot open the object ({})", std::io::Error::from_raw_os_error(errno)),
                &messages,
            ))
        })
    }

    fn programs(&self) -> Vec<ProgramEntry> {
        let mut out = Vec::new();
        let mut prog = std::ptr::null_mut();
        loop {
            // SAFETY: iterating the object's programs.
            prog = unsafe { libbpf_sys::bpf_object__next_program(self.0.as_ptr(), prog) };
            if prog.is_null() {
                return out;
            }
            // SAFETY: prog is valid while the object lives.
            out.push(unsafe {
                ProgramEntry {
                    ptr: prog,
                    name: cstr(libbpf_sys::bpf_program__name(prog)),
                    section: cstr(libbpf_sys::bpf_program__section_name(prog)),
                    prog_type: libbpf_sys::bpf_program__type(prog),
                }
            });
        }
    }

    fn maps(&self) -> Vec<*mut libbpf_sys::bpf_map> {
        let mut out = Vec::new();
        let mut map = std::ptr::null_mut();
        loop {
            // SAFETY: iterating the object's maps.
            map = unsafe { libbpf_sys::bpf_object__next_map(self.0.as_ptr(), map) };
            if map.is_null() {
                return out;
            }
            out.push(map);
        }
    }
}

fn with_messages(summary: &str, messages: &[String]) -> String {
    if messages.is_empty() {
        summary.to_string()
    } else {
        format!("{summary}: {}", messages.join("; "))
    }
}

fn dup(fd: i32, what: &str) -> Result<OwnedFd, Error> {
    // SAFETY: duplicating a descriptor libbpf owns; the copy is ours.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(Error::Kernel(KernelError::new(
            format!("duplicating the descriptor of {what}"),
            crate::kernel::last_errno(),
        )));
    }
    // SAFETY: fcntl returned a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
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
            "program '{}' is a {} program (section '{}'), not an XDP program",
            chosen.name,
            prog_type_name(chosen.prog_type),
            chosen.section
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
    Full,
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
    if bytes.len() > max_size {
        return Err(Error::LimitExceeded(format!("object is {} bytes, the limit is {max_size}", bytes.len())));
    }
    let elf = Elf::parse(bytes).map_err(Error::InvalidObject)?;
    let license = elf.license().unwrap_or_default();
    register_hook()?;

    let object = Object::open(bytes)?;
    let programs = object.programs();
    let chosen = select(&programs, function)?;
    for p in &programs {
        // SAFETY: program pointers are valid while the object lives.
        unsafe { libbpf_sys::bpf_program__set_autoload(p.ptr, p.ptr == chosen.ptr) };
    }
    // SAFETY: the object is open; its BTF (possibly NULL) lives as long as it.
    let run_config = unsafe {
        Btf::with_borrowed(libbpf_sys::bpf_object__btf(object.0.as_ptr()), |btf| {
            run_config::read(Some(btf), &chosen.name)
        })
    }
    .unwrap_or_else(|| Ok(RunConfig::default()))
    .map_err(Error::InvalidObject)?;

    if let Some(dir) = maps_dir {
        reuse_pinned_maps(&object, dir)?;
    }

    let mut log = vec![0 as c_char; LOG_SIZE];
    // SAFETY: the buffer outlives the load below.
    unsafe { libbpf_sys::bpf_program__set_log_buf(chosen.ptr, log.as_mut_ptr(), log.len() as _) };

    CAPTURE.with(|c| *c.borrow_mut() = Some(Capture::default()));
    // SAFETY: loading an open object.
    let load = || unsafe { libbpf_sys::bpf_object__load(object.0.as_ptr()) };
    let (ret, messages) = libbpf_log::collect(|| match privilege {
        Privilege::Full => load(),
        Privilege::User => crate::kernel::caps::without_admin(load),
    });
    let capture = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
    if ret < 0 {
        // SAFETY: libbpf NUL-terminates the log it wrote.
        let log = unsafe { CStr::from_ptr(log.as_ptr()) }.to_string_lossy().into_owned();
        let errno = -ret;
        if !log.trim().is_empty() {
            return Err(Error::VerifierRejected { program: chosen.name.clone(), summary: verifier_summary(&log), log });
        }
        if matches!(errno, libc::EPERM | libc::EACCES | libc::ENOMEM) {
            // Not the object's fault: privileges or kernel memory.
            return Err(Error::Kernel(KernelError::new(format!("loading program '{}'", chosen.name), errno)));
        }
        return Err(Error::InvalidObject(with_messages(
            &format!("libbpf cannot load program '{}' ({})", chosen.name, std::io::Error::from_raw_os_error(errno)),
            &messages,
        )));
    }
    if !capture.seen || capture.insns.is_empty() {
        return Err(Error::InvalidObject(format!(
            "program '{}' was not loaded through an XDP section handler",
            chosen.name
        )));
    }

    // SAFETY: the program was loaded, so its descriptor is valid.
    let prog_fd = unsafe { libbpf_sys::bpf_program__fd(chosen.ptr) };
    // SAFETY: the object owns prog_fd for as long as `object` lives.
    let kernel_tag = bpf::prog_info(unsafe { BorrowedFd::borrow_raw(prog_fd) }).map_err(Error::Kernel)?.tag_hex();

    // Take our own descriptors of the maps: the program references them by
    // descriptor number, which we rewrite at link time.
    let mut maps = Vec::new();
    let mut by_fd = std::collections::HashMap::new();
    for map in object.maps() {
        // SAFETY: map pointers are valid while the object lives.
        let (raw_fd, name) = unsafe { (libbpf_sys::bpf_map__fd(map), cstr(libbpf_sys::bpf_map__name(map))) };
        if raw_fd < 0 {
            continue; // not created (e.g. autocreate off)
        }
        let fd = dup(raw_fd, &format!("map {name}"))?;
        let info = bpf::map_info(fd.as_fd()).map_err(Error::Kernel)?;
        by_fd.insert(raw_fd, maps.len());
        maps.push(ProgramMap { name, id: info.id, map_type: info.map_type, fd });
    }
    let map_refs = find_map_refs(&capture.insns, &by_fd, &chosen.name)?;

    let btf = if capture.btf_fd > 0 && !capture.func_info.is_empty() {
        Some(Btf::from_kernel_fd(capture.btf_fd).map_err(Error::Kernel)?.raw_data())
    } else {
        None
    };
    let (func_info, line_info) =
        if btf.is_some() { (capture.func_info, capture.line_info) } else { (Vec::new(), Vec::new()) };

    Ok(LoadedProgram {
        name: chosen.name.clone(),
        section: chosen.section.clone(),
        run_config,
        frags: capture.frags,
        license,
        sha256: sha256_hex(bytes),
        kernel_tag,
        maps,
        insns: capture.insns,
        map_refs,
        btf,
        func_info,
        line_info,
    })
}

fn reuse_pinned_maps(object: &Object, dir: &std::path::Path) -> Result<(), Error> {
    for map in object.maps() {
        // SAFETY: map pointers are valid while the object lives.
        let name = cstr(unsafe { libbpf_sys::bpf_map__name(map) });
        let pin = dir.join(pin_name(&name));
        if !pin.exists() {
            continue;
        }
        let path = std::ffi::CString::new(pin.as_os_str().as_encoded_bytes()).unwrap_or_default();
        let fd = bpf::obj_get(&path)?;
        // SAFETY: libbpf dups the descriptor; ours closes when `fd` drops.
        let ret = unsafe { libbpf_sys::bpf_map__reuse_fd(map, fd.as_raw_fd()) };
        if ret < 0 {
            return Err(Error::Kernel(KernelError::new(format!("reusing pinned map {}", pin.display()), -ret)));
        }
    }
    Ok(())
}

/// The file name a map is pinned under: its name with `.` spelled `-`, because
/// bpffs refuses dots (`x.data`) and a map name cannot contain `-`, so no two
/// maps share a pin.
pub fn pin_name(map_name: &str) -> String {
    map_name.replace('.', "-")
}

impl LoadedProgram {
    /// Pins every map as `<dir>/<pin_name(map name)>`, so a later [`load_reusing`] finds them.
    pub fn pin_maps(&self, dir: &std::path::Path) -> Result<(), Error> {
        std::fs::create_dir_all(dir).map_err(|e| {
            KernelError::new(format!("creating {}", dir.display()), e.raw_os_error().unwrap_or(libc::EIO))
        })?;
        for map in &self.maps {
            let pin = dir.join(pin_name(&map.name));
            if pin.exists() {
                continue;
            }
            let path = std::ffi::CString::new(pin.as_os_str().as_encoded_bytes()).unwrap_or_default();
            bpf::obj_pin(map.fd.as_fd(), &path)?;
        }
        Ok(())
    }
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
