//! The program array of one version of a segmented chain: slot `k` holds
//! the segment the segment before it tail-calls into. Pinned for an
//! interface, because the kernel empties a program array as soon as no
//! descriptor and no pin refers to it (a chain that outlives the service
//! must keep its segments reachable).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use super::{bpf, check, path_cstring, KernelError};

/// The array's name, as the kernel shows it.
const NAME: &str = "xdpd_segments";

/// A `BPF_MAP_TYPE_PROG_ARRAY` of `u32` keys and program descriptors.
#[derive(Debug)]
pub struct ProgArray {
    fd: OwnedFd,
    slots: u32,
}

impl ProgArray {
    /// A new, empty array of `slots` programs.
    pub fn create(slots: u32) -> Result<ProgArray, KernelError> {
        let opts = libbpf_sys::bpf_map_create_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_map_create_opts>() as _,
            ..Default::default()
        };
        // SAFETY: the name is NUL-terminated and opts is a sized, zeroed struct.
        let fd = unsafe {
            libbpf_sys::bpf_map_create(
                libbpf_sys::BPF_MAP_TYPE_PROG_ARRAY,
                c"xdpd_segments".as_ptr(),
                4,
                4,
                slots,
                &opts,
            )
        };
        let fd = check(fd, || "creating the chain's program array".into())?;
        // SAFETY: a non-negative return is a fresh descriptor we own.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(ProgArray { fd, slots })
    }

    /// Number of slots.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// The map, for the tail calls that name it.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Puts `prog` in slot `index` (the kernel checks it is compatible with
    /// the programs that use the array: type, frags, device).
    pub fn set(&self, index: u32, prog: BorrowedFd<'_>) -> Result<(), KernelError> {
        let value = prog.as_raw_fd() as u32;
        // SAFETY: key and value are 4 bytes each, the array's sizes.
        let ret = unsafe {
            libbpf_sys::bpf_map_update_elem(
                self.fd.as_raw_fd(),
                (&index as *const u32).cast(),
                (&value as *const u32).cast(),
                0,
            )
        };
        check(ret, || format!("putting segment {index} into the chain's program array")).map(drop)
    }

    /// Kernel ids of the programs in its slots (the kernel answers a
    /// lookup in a program array with the id of the program in the slot).
    pub fn prog_ids(&self) -> Vec<u32> {
        (0..self.slots)
            .filter_map(|index| {
                let mut id: u32 = 0;
                // SAFETY: key and value are 4 bytes each, the array's sizes.
                let ret = unsafe {
                    libbpf_sys::bpf_map_lookup_elem(
                        self.fd.as_raw_fd(),
                        (&index as *const u32).cast(),
                        (&mut id as *mut u32).cast(),
                    )
                };
                (ret == 0).then_some(id)
            })
            .collect()
    }

    /// Pins the array at `path` (replacing a stale pin there).
    pub fn pin(&self, path: &Path) -> Result<(), KernelError> {
        let _ = std::fs::remove_file(path);
        bpf::obj_pin(self.fd.as_fd(), &path_cstring(path)?)
    }

    /// The chain's program array among the maps of the running program
    /// `prog` (found after a restart, whatever its pins say).
    pub fn of_program(prog: BorrowedFd<'_>) -> Result<Option<ProgArray>, KernelError> {
        for id in bpf::prog_map_ids(prog)? {
            let fd = bpf::map_fd_by_id(id)?;
            let info = bpf::map_info(fd.as_fd())?;
            if info.map_type == libbpf_sys::BPF_MAP_TYPE_PROG_ARRAY && info.name == NAME {
                return Ok(Some(ProgArray { fd, slots: info.max_entries }));
            }
        }
        Ok(None)
    }
}
