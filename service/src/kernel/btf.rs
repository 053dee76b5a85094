//! An owned libbpf `struct btf` with the few reads and writes the engine needs:
//! walking types (for libxdp's run config) and building a chain's merged BTF;
//! and the kernel's func_info / line_info records that point into it.

use std::ffi::{CStr, CString};
use std::ptr::NonNull;

use super::{c_string, check, last_errno, KernelError};

/// `struct bpf_func_info`: which BTF FUNC describes the function starting at
/// `insn_off` (the verifier needs it for global functions and callbacks).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuncInfo {
    /// Instruction where the function starts.
    pub insn_off: u32,
    /// Its BTF FUNC type.
    pub type_id: u32,
}

/// `struct bpf_line_info`: the source line of an instruction, so verifier
/// logs quote the member's source.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineInfo {
    /// Instruction the line starts at.
    pub insn_off: u32,
    /// File name, an offset into the BTF strings.
    pub file_name_off: u32,
    /// Source text, an offset into the BTF strings.
    pub line_off: u32,
    /// Line and column, packed as the kernel packs them.
    pub line_col: u32,
}

// BTF kinds (linux/btf.h) the engine reads.
#[allow(missing_docs)]
pub const KIND_INT: u32 = 1;
#[allow(missing_docs)]
pub const KIND_PTR: u32 = 2;
#[allow(missing_docs)]
pub const KIND_ARRAY: u32 = 3;
#[allow(missing_docs)]
pub const KIND_STRUCT: u32 = 4;
#[allow(missing_docs)]
pub const KIND_ENUM: u32 = 6;
#[allow(missing_docs)]
pub const KIND_TYPEDEF: u32 = 8;
#[allow(missing_docs)]
pub const KIND_VOLATILE: u32 = 9;
#[allow(missing_docs)]
pub const KIND_CONST: u32 = 10;
#[allow(missing_docs)]
pub const KIND_RESTRICT: u32 = 11;
#[allow(missing_docs)]
pub const KIND_VAR: u32 = 14;
#[allow(missing_docs)]
pub const KIND_DATASEC: u32 = 15;
#[allow(missing_docs)]
pub const KIND_TYPE_TAG: u32 = 18;
#[allow(missing_docs)]
pub const KIND_ENUM64: u32 = 19;

/// Type information of an object or a chain, owned (freed on drop).
pub struct Btf(NonNull<libbpf_sys::btf>);

// SAFETY: a struct btf is plain heap data with no thread affinity; &self methods only read.
unsafe impl Send for Btf {}
unsafe impl Sync for Btf {}

impl Drop for Btf {
    fn drop(&mut self) {
        // SAFETY: we own the pointer.
        unsafe { libbpf_sys::btf__free(self.0.as_ptr()) }
    }
}

/// A type's header fields, decoded.
#[derive(Debug, Clone, Copy)]
pub struct TypeHeader {
    /// Name, an offset into the strings.
    pub name_off: u32,
    /// One of the `KIND_*`.
    pub kind: u32,
    /// Number of members, parameters or variables that follow.
    pub vlen: u32,
    /// `size` or `type`, depending on the kind.
    pub size_or_type: u32,
}

impl Btf {
    fn from_ptr(ptr: *mut libbpf_sys::btf, what: &str) -> Result<Btf, KernelError> {
        NonNull::new(ptr).map(Btf).ok_or_else(|| KernelError::new(what, last_errno()))
    }

    /// A BTF with no types yet, to build a chain's merged BTF in.
    pub fn empty() -> Result<Btf, KernelError> {
        // SAFETY: plain constructor.
        Btf::from_ptr(unsafe { libbpf_sys::btf__new_empty() }, "creating BTF")
    }

    /// Has the kernel check raw BTF (BPF_BTF_LOAD), which is hardened against
    /// hostile input where libbpf's parser is not; the loaded copy is dropped.
    pub fn kernel_accepts(raw: &[u8]) -> Result<(), KernelError> {
        // SAFETY: the kernel reads `raw.len()` bytes from `raw`; no options.
        let fd = unsafe { libbpf_sys::bpf_btf_load(raw.as_ptr().cast(), raw.len() as _, std::ptr::null_mut()) };
        if fd < 0 {
            return Err(KernelError::new("loading BTF into the kernel", -fd));
        }
        // SAFETY: a fresh descriptor of ours.
        drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
        Ok(())
    }

    /// Parses raw BTF (as the kernel or `raw_data` returns it).
    pub fn from_raw(raw: &[u8]) -> Result<Btf, KernelError> {
        // SAFETY: libbpf copies the buffer.
        Btf::from_ptr(unsafe { libbpf_sys::btf__new(raw.as_ptr().cast(), raw.len() as u32) }, "parsing BTF")
    }

    /// Reads back the BTF the kernel holds under `fd`.
    pub fn from_kernel_fd(fd: i32) -> Result<Btf, KernelError> {
        let mut info = libbpf_sys::bpf_btf_info::default();
        let mut len = std::mem::size_of_val(&info) as u32;
        // SAFETY: info is a valid bpf_btf_info of `len` bytes.
        check(unsafe { libbpf_sys::bpf_btf_get_info_by_fd(fd, &mut info, &mut len) }, || {
            "reading BTF information".into()
        })?;
        // SAFETY: plain constructor.
        Btf::from_ptr(unsafe { libbpf_sys::btf__load_from_kernel_by_id(info.id) }, "reading BTF from the kernel")
    }

    /// Borrows libbpf's BTF of an object without taking ownership.
    ///
    /// # Safety
    /// `ptr` must stay valid while `f` runs.
    pub(super) unsafe fn with_borrowed<T>(ptr: *mut libbpf_sys::btf, f: impl FnOnce(&Btf) -> T) -> Option<T> {
        let btf = std::mem::ManuallyDrop::new(Btf(NonNull::new(ptr)?));
        Some(f(&btf))
    }

    fn as_ptr(&self) -> *mut libbpf_sys::btf {
        self.0.as_ptr()
    }

    /// The BTF as bytes (what the kernel accepts and [`Btf::from_raw`] parses).
    pub fn raw_data(&self) -> Vec<u8> {
        let mut size = 0u32;
        // SAFETY: libbpf returns a pointer to `size` bytes owned by the btf.
        let data = unsafe { libbpf_sys::btf__raw_data(self.as_ptr(), &mut size) };
        if data.is_null() {
            return Vec::new();
        }
        // SAFETY: see above.
        unsafe { std::slice::from_raw_parts(data.cast::<u8>(), size as usize) }.to_vec()
    }

    /// Number of type ids, including the void type 0.
    pub fn type_count(&self) -> u32 {
        // SAFETY: read-only access.
        unsafe { libbpf_sys::btf__type_cnt(self.as_ptr()) }
    }

    fn raw_type(&self, id: u32) -> Option<*const u32> {
        // SAFETY: read-only access; NULL for a bad id.
        let t = unsafe { libbpf_sys::btf__type_by_id(self.as_ptr(), id) };
        (!t.is_null()).then_some(t.cast::<u32>())
    }

    /// The header of type `id`, `None` for an unknown id.
    pub fn header(&self, id: u32) -> Option<TypeHeader> {
        let t = self.raw_type(id)?;
        // SAFETY: every btf_type starts with three u32s.
        let (name_off, info, size_or_type) = unsafe { (*t, *t.add(1), *t.add(2)) };
        Some(TypeHeader { name_off, kind: (info >> 24) & 0x1f, vlen: info & 0xffff, size_or_type })
    }

    /// The `index`-th u32 of the data that follows the type's header.
    fn extra(&self, id: u32, index: usize) -> Option<u32> {
        let t = self.raw_type(id)?;
        let h = self.header(id)?;
        let words = match h.kind {
            KIND_INT | KIND_VAR => 1,
            KIND_ARRAY => 3,
            KIND_STRUCT | 5 | KIND_DATASEC => 3 * h.vlen as usize,
            _ => 0,
        };
        // SAFETY: libbpf validated the type, so `words` u32s follow its header.
        (index < words).then(|| unsafe { *t.add(3 + index) })
    }

    /// The string at `offset` of the string section.
    pub fn name(&self, offset: u32) -> Option<String> {
        // SAFETY: read-only access; NULL for a bad offset.
        let s = unsafe { libbpf_sys::btf__name_by_offset(self.as_ptr(), offset) };
        // SAFETY: libbpf returns a NUL-terminated string inside its string section.
        (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
    }

    /// The name of type `id`.
    pub fn type_name(&self, id: u32) -> Option<String> {
        self.name(self.header(id)?.name_off)
    }

    /// Follows typedefs and qualifiers.
    pub fn skip_modifiers(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.header(id) {
                Some(h)
                    if matches!(h.kind, KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG) =>
                {
                    id = h.size_or_type
                }
                _ => break,
            }
        }
        id
    }

    /// The id of the type named `name` of kind `kind`.
    pub fn find(&self, name: &str, kind: u32) -> Option<u32> {
        let name = CString::new(name).ok()?;
        // SAFETY: read-only access with a NUL-terminated name.
        let id = unsafe { libbpf_sys::btf__find_by_name_kind(self.as_ptr(), name.as_ptr(), kind) };
        u32::try_from(id).ok().filter(|&id| id > 0)
    }

    /// `(name, type id)` of each member of a struct.
    pub fn struct_members(&self, id: u32) -> Vec<(String, u32)> {
        let vlen = self.header(id).map_or(0, |h| h.vlen as usize);
        (0..vlen)
            .filter_map(|i| {
                let name = self.name(self.extra(id, 3 * i)?)?;
                Some((name, self.extra(id, 3 * i + 1)?))
            })
            .collect()
    }

    /// Type ids of the variables of a DATASEC.
    pub fn datasec_vars(&self, id: u32) -> Vec<u32> {
        let vlen = self.header(id).map_or(0, |h| h.vlen as usize);
        (0..vlen).filter_map(|i| self.extra(id, 3 * i)).collect()
    }

    /// `(variable type id, offset, size)` of each variable of a DATASEC.
    pub fn datasec_entries(&self, id: u32) -> Vec<(u32, u32, u32)> {
        let vlen = self.header(id).map_or(0, |h| h.vlen as usize);
        (0..vlen)
            .filter_map(|i| Some((self.extra(id, 3 * i)?, self.extra(id, 3 * i + 1)?, self.extra(id, 3 * i + 2)?)))
            .collect()
    }

    /// The encoding word of an INT type: `encoding << 24 | offset << 16 | bits`
    /// (encoding: 1 signed, 2 char, 4 bool).
    pub fn int_encoding(&self, id: u32) -> Option<u32> {
        (self.header(id)?.kind == KIND_INT).then(|| self.extra(id, 0)).flatten()
    }

    /// Element count of an array type.
    pub fn array_len(&self, id: u32) -> Option<u32> {
        (self.header(id)?.kind == KIND_ARRAY).then(|| self.extra(id, 2)).flatten()
    }

    // --- building ---

    fn added(ret: i32, what: &str) -> Result<u32, KernelError> {
        check(ret, || format!("adding {what} to BTF")).map(|id| id as u32)
    }

    /// Appends all types of `other`; returns the id its type 1 got.
    pub fn append(&mut self, other: &Btf) -> Result<u32, KernelError> {
        // SAFETY: both pointers are valid btf objects.
        Btf::added(unsafe { libbpf_sys::btf__add_btf(self.as_ptr(), other.as_ptr()) }, "types")
    }

    /// Adds a string (NUL bytes dropped, as they could not be stored); returns its offset.
    pub fn add_str(&mut self, s: &str) -> Result<u32, KernelError> {
        let s = CString::new(s.replace('\0', ""))
            .map_err(|_| KernelError::invalid("adding a string to BTF", "NUL byte"))?;
        // SAFETY: NUL-terminated string.
        Btf::added(unsafe { libbpf_sys::btf__add_str(self.as_ptr(), s.as_ptr()) }, "a string")
    }

    /// Adds an integer type; returns its id.
    pub fn add_int(&mut self, name: &str, bytes: usize, signed: bool) -> Result<u32, KernelError> {
        let name = c_string(name, "adding an int to BTF")?;
        let encoding = if signed { libbpf_sys::BTF_INT_SIGNED as i32 } else { 0 };
        // SAFETY: NUL-terminated name.
        Btf::added(unsafe { libbpf_sys::btf__add_int(self.as_ptr(), name.as_ptr(), bytes as _, encoding) }, "an int")
    }

    /// Adds a forward declaration of a struct; returns its id.
    pub fn add_struct_fwd(&mut self, name: &str) -> Result<u32, KernelError> {
        let name = c_string(name, "adding a fwd to BTF")?;
        // SAFETY: NUL-terminated name.
        Btf::added(
            unsafe { libbpf_sys::btf__add_fwd(self.as_ptr(), name.as_ptr(), libbpf_sys::BTF_FWD_STRUCT) },
            "a fwd",
        )
    }

    /// Adds a pointer to type `to`; returns its id.
    pub fn add_ptr(&mut self, to: u32) -> Result<u32, KernelError> {
        // SAFETY: plain call.
        Btf::added(unsafe { libbpf_sys::btf__add_ptr(self.as_ptr(), to as i32) }, "a pointer")
    }

    /// Adds `ret (*)(params...)` and returns the FUNC_PROTO's id.
    pub fn add_func_proto(&mut self, ret: u32, params: &[(&str, u32)]) -> Result<u32, KernelError> {
        // SAFETY: plain call.
        let proto = Btf::added(unsafe { libbpf_sys::btf__add_func_proto(self.as_ptr(), ret as i32) }, "a proto")?;
        for (name, ty) in params {
            let name = c_string(name, "adding a param to BTF")?;
            // SAFETY: NUL-terminated name; params follow their proto directly.
            Btf::added(
                unsafe { libbpf_sys::btf__add_func_param(self.as_ptr(), name.as_ptr(), *ty as i32) },
                "a param",
            )?;
        }
        Ok(proto)
    }

    /// Adds a FUNC of prototype `proto`; global functions are verified on their own.
    pub fn add_func(&mut self, name: &str, global: bool, proto: u32) -> Result<u32, KernelError> {
        let name = c_string(name, "adding a func to BTF")?;
        let linkage = if global { libbpf_sys::BTF_FUNC_GLOBAL } else { libbpf_sys::BTF_FUNC_STATIC };
        // SAFETY: NUL-terminated name.
        Btf::added(unsafe { libbpf_sys::btf__add_func(self.as_ptr(), name.as_ptr(), linkage, proto as i32) }, "a func")
    }

    /// Loads this BTF into the kernel and returns its descriptor (owned by the btf).
    pub fn load(&mut self) -> Result<i32, KernelError> {
        // SAFETY: read-only access.
        let fd = unsafe { libbpf_sys::btf__fd(self.as_ptr()) };
        if fd >= 0 {
            return Ok(fd);
        }
        // SAFETY: plain call; libbpf keeps the fd inside the btf and closes it on free.
        check(unsafe { libbpf_sys::btf__load_into_kernel(self.as_ptr()) }, || "loading the chain's BTF".into())?;
        // SAFETY: read-only access.
        Ok(unsafe { libbpf_sys::btf__fd(self.as_ptr()) })
    }
}
