//! Configuring an open object before it is loaded, as libbpf skeletons do:
//! the initial contents of its global-data maps and the sizes of its maps.

use std::ffi::CString;

use super::{cstr, Object};
use crate::kernel::KernelError;

impl Object {
    fn map_by_name(&self, name: &str) -> Option<*mut libbpf_sys::bpf_map> {
        let name = CString::new(name).ok()?;
        // SAFETY: a NUL-terminated name; NULL when there is no such map.
        let map = unsafe { libbpf_sys::bpf_object__find_map_by_name(self.0.as_ptr(), name.as_ptr()) };
        (!map.is_null()).then_some(map)
    }

    /// The initial contents of the global-data map of ELF section `section`
    /// (`.rodata`, `.data`, `.bss`, `.data.custom`), writable until the
    /// object is loaded; `None` when the object has no such map.
    pub fn initial_value_mut(&mut self, section: &str) -> Option<&mut [u8]> {
        if !section.starts_with('.') {
            return None;
        }
        let map = self.map_by_name(section)?;
        let mut size = 0usize;
        // SAFETY: libbpf's buffer of `size` bytes, owned by the open object,
        // which `&mut self` borrows for as long as the slice lives.
        unsafe {
            let data = libbpf_sys::bpf_map__initial_value(map, (&mut size as *mut usize).cast());
            (!data.is_null()).then(|| std::slice::from_raw_parts_mut(data.cast::<u8>(), size))
        }
    }

    /// Whether the map `name` (as [`map_definitions`](Object::map_definitions)
    /// names it) holds global data (libbpf's internal maps); `None`: no such map.
    pub fn is_global_data(&self, name: &str) -> Option<bool> {
        // SAFETY: map pointers are valid while the object lives.
        let map = self.maps().into_iter().find(|&m| cstr(unsafe { libbpf_sys::bpf_map__name(m) }) == name)?;
        // SAFETY: a map of this object.
        Some(unsafe { libbpf_sys::bpf_map__is_internal(map) })
    }

    /// Sets the map `name`'s `max_entries` before it is created.
    pub fn set_max_entries(&self, name: &str, max_entries: u32) -> Result<(), KernelError> {
        let map = self
            .maps()
            .into_iter()
            // SAFETY: map pointers are valid while the object lives.
            .find(|&m| cstr(unsafe { libbpf_sys::bpf_map__name(m) }) == name)
            .ok_or_else(|| KernelError::invalid(format!("sizing map '{name}'"), "no such map"))?;
        // SAFETY: a map of this object, not created yet.
        let ret = unsafe { libbpf_sys::bpf_map__set_max_entries(map, max_entries) };
        if ret < 0 {
            return Err(KernelError::new(format!("sizing map '{name}'"), -ret));
        }
        Ok(())
    }
}

impl Object {
    /// Loads the program `chosen` bound to the device `ifindex`
    /// (`BPF_F_XDP_DEV_BOUND_ONLY`), as programs that call the device's XDP
    /// metadata kfuncs must be.
    pub fn bind_to_device(&self, chosen: &super::ProgramEntry, ifindex: u32) -> Result<(), KernelError> {
        let prog = self
            .program(chosen)
            .ok_or_else(|| KernelError::invalid(format!("binding program '{}'", chosen.name), "not of this object"))?;
        // SAFETY: a program of this object, not loaded yet.
        let ret = unsafe {
            let flags = libbpf_sys::bpf_program__flags(prog) | libbpf_sys::BPF_F_XDP_DEV_BOUND_ONLY;
            libbpf_sys::bpf_program__set_ifindex(prog, ifindex);
            libbpf_sys::bpf_program__set_flags(prog, flags)
        };
        if ret < 0 {
            return Err(KernelError::new(format!("binding program '{}' to a device", chosen.name), -ret));
        }
        Ok(())
    }
}
