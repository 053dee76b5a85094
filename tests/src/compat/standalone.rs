//! A program loaded the way libxdp loads it, without xdpd: libbpf opens the
//! object file, the chosen program alone is loaded, as XDP
//! (`bpf_program__set_type`, what libxdp's `xdp_program__attach_single`
//! does), with its maps created fresh and pinned nowhere.

use std::ffi::{CStr, CString};
use std::os::fd::{BorrowedFd, RawFd};
use std::path::Path;

/// An open and loaded libbpf object, closed on drop.
pub struct Standalone {
    obj: *mut libbpf_sys::bpf_object,
    prog_fd: RawFd,
}

fn cstr(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: libbpf returns NUL-terminated strings.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

impl Standalone {
    /// Opens `path` and loads its program `function` as XDP; `Err` with
    /// libbpf's errno when libbpf or the verifier refuses it.
    pub fn load(path: &Path, function: &str) -> Result<Standalone, String> {
        let c_path = CString::new(path.to_str().ok_or("path")?).map_err(|e| e.to_string())?;
        // SAFETY: a valid path; libbpf returns NULL (errno set) on failure.
        let obj = unsafe { libbpf_sys::bpf_object__open_file(c_path.as_ptr(), std::ptr::null()) };
        if obj.is_null() {
            return Err(format!("libbpf cannot open the object: {}", std::io::Error::last_os_error()));
        }
        let mut loaded = Standalone { obj, prog_fd: -1 };
        let mut chosen = std::ptr::null_mut();
        let mut prog = std::ptr::null_mut();
        // SAFETY: iterating and configuring the programs and maps of an open object.
        unsafe {
            loop {
                prog = libbpf_sys::bpf_object__next_program(obj, prog);
                if prog.is_null() {
                    break;
                }
                let is_it = cstr(libbpf_sys::bpf_program__name(prog)) == function;
                libbpf_sys::bpf_program__set_autoload(prog, is_it);
                if is_it {
                    chosen = prog;
                }
            }
            if chosen.is_null() {
                return Err(format!("no program named '{function}'"));
            }
            libbpf_sys::bpf_program__set_type(chosen, libbpf_sys::BPF_PROG_TYPE_XDP);
            let mut map = std::ptr::null_mut();
            loop {
                map = libbpf_sys::bpf_object__next_map(obj, map);
                if map.is_null() {
                    break;
                }
                libbpf_sys::bpf_map__set_pin_path(map, std::ptr::null());
            }
            let ret = libbpf_sys::bpf_object__load(obj);
            if ret < 0 {
                return Err(format!("libbpf cannot load it: {}", std::io::Error::from_raw_os_error(-ret)));
            }
            loaded.prog_fd = libbpf_sys::bpf_program__fd(chosen);
        }
        Ok(loaded)
    }

    /// The loaded program.
    pub fn prog(&self) -> BorrowedFd<'_> {
        // SAFETY: the object owns the descriptor while it lives.
        unsafe { BorrowedFd::borrow_raw(self.prog_fd) }
    }

    /// `(name, descriptor)` of every map libbpf created.
    pub fn maps(&self) -> Vec<(String, BorrowedFd<'_>)> {
        let mut out = Vec::new();
        let mut map = std::ptr::null_mut();
        // SAFETY: iterating the maps of an open object.
        unsafe {
            loop {
                map = libbpf_sys::bpf_object__next_map(self.obj, map);
                if map.is_null() {
                    return out;
                }
                let fd = libbpf_sys::bpf_map__fd(map);
                if fd >= 0 {
                    out.push((cstr(libbpf_sys::bpf_map__name(map)), BorrowedFd::borrow_raw(fd)));
                }
            }
        }
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        // SAFETY: we own the object.
        unsafe { libbpf_sys::bpf_object__close(self.obj) }
    }
}
