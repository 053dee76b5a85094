//! A libbpf object opened from memory, loaded with libbpf, and what libbpf's
//! prepare-load hook saw of the program: its final instructions (relocated,
//! subprograms appended), func_info, line_info and BTF descriptor. The
//! engine decides which program and what to do with it; this file only
//! makes the calls.

mod maps;

pub use self::maps::{possible_cpus, MapDefinition};

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_long, CStr};
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::OnceLock;

use super::btf::{Btf, FuncInfo, LineInfo};
use super::insn::Insn;
use super::{caps, last_errno, libbpf_log, KernelError};

/// Verifier logs are kept up to this size (the end of a longer log is kept).
const LOG_SIZE: usize = 1 << 20;
const COOKIE_FRAGS: c_long = 1;

/// libbpf failed, with what it said on the way.
#[derive(Debug)]
pub struct LibbpfFailure {
    /// The errno libbpf returned.
    pub errno: i32,
    /// The verifier's log (empty when the verifier did not run).
    pub log: String,
    /// libbpf's own warnings and errors during the call.
    pub messages: Vec<String>,
}

/// What the prepare-load hook saw of the program loaded on this thread.
#[derive(Default, Debug)]
pub struct Capture {
    /// Final instructions.
    pub insns: Vec<Insn>,
    /// Function records, in the object's BTF.
    pub func_info: Vec<FuncInfo>,
    /// Line records, in the object's BTF.
    pub line_info: Vec<LineInfo>,
    /// Descriptor of the object's BTF in the kernel (0: none), owned by libbpf.
    pub btf_fd: i32,
    /// Loaded with `BPF_F_XDP_HAS_FRAGS`.
    pub frags: bool,
    /// The hook ran: the program went through an XDP section handler.
    pub seen: bool,
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

/// Registers the prepare-load hook for XDP sections, once per process; call
/// it before [`Object::open`], whose XDP programs are otherwise not captured.
pub fn register_hook() -> Result<(), KernelError> {
    static RESULT: OnceLock<Result<(), i32>> = OnceLock::new();
    let result = RESULT.get_or_init(|| {
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
                return Err(-ret);
            }
        }
        Ok(())
    });
    result.map_err(|errno| KernelError::new("registering libbpf's XDP section handler", errno))
}

fn cstr(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: libbpf returns NUL-terminated strings.
    unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned()
}

/// libbpf's name of a program type (`xdp`, `socket`, ...), or `type N`.
pub fn prog_type_name(t: u32) -> String {
    // SAFETY: returns a static string or NULL.
    let name = cstr(unsafe { libbpf_sys::libbpf_bpf_prog_type_str(t) });
    if name.is_empty() {
        format!("type {t}")
    } else {
        name
    }
}

/// libbpf's name of a map type (`hash`, `lpm_trie`, ...), or `type N`.
pub fn map_type_name(t: u32) -> String {
    // SAFETY: returns a static string or NULL.
    let name = cstr(unsafe { libbpf_sys::libbpf_bpf_map_type_str(t) });
    if name.is_empty() {
        format!("type {t}")
    } else {
        name
    }
}

/// One program of an open object: plain data naming it by its position,
/// so no pointer into libbpf outlives the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramEntry {
    index: usize,
    /// Function name.
    pub name: String,
    /// ELF section.
    pub section: String,
    /// `BPF_PROG_TYPE_*` libbpf derived from the section.
    pub prog_type: u32,
}

/// A map libbpf created for the object, with our own descriptor of it.
#[derive(Debug)]
pub struct CreatedMap {
    /// Map name in the object.
    pub name: String,
    /// The descriptor number libbpf wrote into the program's instructions.
    pub libbpf_fd: i32,
    /// Our duplicate, alive after the object is closed.
    pub fd: OwnedFd,
}

/// An open libbpf object, closed on drop (with the programs it loaded).
pub struct Object(NonNull<libbpf_sys::bpf_object>);

impl Drop for Object {
    fn drop(&mut self) {
        // SAFETY: we own the object.
        unsafe { libbpf_sys::bpf_object__close(self.0.as_ptr()) }
    }
}

impl Object {
    /// Opens an ELF object from memory (libbpf copies it).
    pub fn open(bytes: &[u8]) -> Result<Object, LibbpfFailure> {
        Object::open_named(bytes, c"xdpd-object")
    }

    /// Opens an ELF object from memory under the object name `name`, which
    /// libbpf derives the names of global-data maps from (`<name>.data`).
    pub fn open_named(bytes: &[u8], name: &CStr) -> Result<Object, LibbpfFailure> {
        let opts = libbpf_sys::bpf_object_open_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_object_open_opts>() as _,
            object_name: name.as_ptr(),
            ..Default::default()
        };
        // SAFETY: `bytes` and `opts` are valid for the call; libbpf copies the buffer.
        let (ptr, messages) = libbpf_log::collect(|| unsafe {
            libbpf_sys::bpf_object__open_mem(bytes.as_ptr().cast(), bytes.len() as _, &opts)
        });
        NonNull::new(ptr).map(Object).ok_or_else(|| LibbpfFailure { errno: last_errno(), log: String::new(), messages })
    }

    fn raw_programs(&self) -> Vec<*mut libbpf_sys::bpf_program> {
        let mut out = Vec::new();
        let mut prog = std::ptr::null_mut();
        loop {
            // SAFETY: iterating the object's programs.
            prog = unsafe { libbpf_sys::bpf_object__next_program(self.0.as_ptr(), prog) };
            if prog.is_null() {
                return out;
            }
            out.push(prog);
        }
    }

    /// The object's programs, in ELF order.
    pub fn programs(&self) -> Vec<ProgramEntry> {
        let entry = |(index, prog): (usize, *mut libbpf_sys::bpf_program)| {
            // SAFETY: prog is a program of this object, valid while the object lives.
            unsafe {
                ProgramEntry {
                    index,
                    name: cstr(libbpf_sys::bpf_program__name(prog)),
                    section: cstr(libbpf_sys::bpf_program__section_name(prog)),
                    prog_type: libbpf_sys::bpf_program__type(prog),
                }
            }
        };
        self.raw_programs().into_iter().enumerate().map(entry).collect()
    }

    /// The program `entry` names, if it is one of this object's.
    fn program(&self, entry: &ProgramEntry) -> Option<*mut libbpf_sys::bpf_program> {
        // SAFETY: prog is a program of this object, valid while the object lives.
        self.raw_programs()
            .get(entry.index)
            .copied()
            .filter(|&prog| cstr(unsafe { libbpf_sys::bpf_program__name(prog) }) == entry.name)
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

    /// Loads only `chosen` (of this object's [`programs`](Object::programs)).
    pub fn set_autoload_only(&self, chosen: &ProgramEntry) {
        let chosen = self.program(chosen);
        for p in self.raw_programs() {
            // SAFETY: program pointers are valid while the object lives.
            unsafe { libbpf_sys::bpf_program__set_autoload(p, Some(p) == chosen) };
        }
    }

    /// Runs `f` on the object's BTF, if it has one.
    pub fn with_btf<T>(&self, f: impl FnOnce(&Btf) -> T) -> Option<T> {
        // SAFETY: the object is open; its BTF (possibly NULL) lives as long as it.
        unsafe { Btf::with_borrowed(libbpf_sys::bpf_object__btf(self.0.as_ptr()), f) }
    }

    /// Loads the object (its autoloaded programs), as an unprivileged loader
    /// when `as_user`, and returns what the prepare-load hook captured of `chosen`.
    pub fn load(&self, chosen: &ProgramEntry, as_user: bool) -> Result<Capture, LibbpfFailure> {
        let not_ours = || LibbpfFailure {
            errno: libc::EINVAL,
            log: String::new(),
            messages: vec![format!("program '{}' is not one of this object's", chosen.name)],
        };
        let prog = self.program(chosen).ok_or_else(not_ours)?;
        let mut log = vec![0 as c_char; LOG_SIZE];
        // SAFETY: the buffer outlives the load below (libbpf uses it only while loading).
        unsafe { libbpf_sys::bpf_program__set_log_buf(prog, log.as_mut_ptr(), log.len() as _) };
        CAPTURE.with(|c| *c.borrow_mut() = Some(Capture::default()));
        // SAFETY: loading an open object.
        let load = || unsafe { libbpf_sys::bpf_object__load(self.0.as_ptr()) };
        let (ret, messages) = libbpf_log::collect(|| {
            if as_user {
                caps::without_admin(load).unwrap_or_else(|e| -e.errno())
            } else {
                load()
            }
        });
        let capture = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
        if ret < 0 {
            // SAFETY: the buffer is zero-initialised and libbpf NUL-terminates what it wrote.
            let log = unsafe { CStr::from_ptr(log.as_ptr()) }.to_string_lossy().into_owned();
            return Err(LibbpfFailure { errno: -ret, log, messages });
        }
        Ok(capture)
    }

    /// The descriptor of the loaded program `chosen`, owned by the object.
    pub fn prog_fd(&self, chosen: &ProgramEntry) -> Result<BorrowedFd<'_>, KernelError> {
        let prog = self
            .program(chosen)
            .ok_or_else(|| KernelError::invalid(format!("using program '{}'", chosen.name), "not of this object"))?;
        // SAFETY: a program of this object.
        let fd = unsafe { libbpf_sys::bpf_program__fd(prog) };
        if fd < 0 {
            return Err(KernelError::new(format!("program '{}' is not loaded", chosen.name), -fd));
        }
        // SAFETY: the object owns fd for as long as it (and the borrow) lives.
        Ok(unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// Every map libbpf created (or reused) for the object, with a duplicate
    /// descriptor of ours; maps not created (autocreate off) are left out.
    pub fn created_maps(&self) -> Result<Vec<CreatedMap>, KernelError> {
        let mut out = Vec::new();
        for map in self.maps() {
            // SAFETY: map pointers are valid while the object lives.
            let (raw_fd, name) = unsafe { (libbpf_sys::bpf_map__fd(map), cstr(libbpf_sys::bpf_map__name(map))) };
            if raw_fd < 0 {
                continue;
            }
            let fd = dup(raw_fd, &format!("map {name}"))?;
            out.push(CreatedMap { name, libbpf_fd: raw_fd, fd });
        }
        Ok(out)
    }
}

fn dup(fd: i32, what: &str) -> Result<OwnedFd, KernelError> {
    // SAFETY: duplicating a descriptor libbpf owns; the copy is ours.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(KernelError::new(format!("duplicating the descriptor of {what}"), last_errno()));
    }
    // SAFETY: fcntl returned a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// The raw BTF the kernel holds under `btf_fd` (a descriptor from a [`Capture`]).
pub fn kernel_btf(btf_fd: i32) -> Result<Vec<u8>, KernelError> {
    Ok(Btf::from_kernel_fd(btf_fd)?.raw_data())
}

/// Maps the `libbpf_fd` numbers of `maps` to their index.
pub fn index_by_libbpf_fd(maps: &[CreatedMap]) -> HashMap<i32, usize> {
    maps.iter().enumerate().map(|(i, m)| (m.libbpf_fd, i)).collect()
}
