//! Ownership of an interface's XDP hook through a `bpf_link` pinned in bpffs.
//!
//! The first chain is attached with `BPF_LINK_CREATE`; every later chain
//! replaces it with `BPF_LINK_UPDATE` + `BPF_F_REPLACE`, a compare-and-exchange
//! against the program we believe is running, so the interface is never
//! without a program and a change behind our back is noticed, not clobbered.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use libbpf_rs::query::{LinkInfoIter, LinkTypeInfo};

use super::bpf;
use super::bpffs::Bpffs;
use super::netns::{run_in, Netns};
use super::{check, path_cstring, KernelError};

/// Why the hook could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// A program attached by someone else holds the interface.
    #[error("{0}")]
    Busy(ForeignProgram),
    /// The hook is not in the state the request expects (changed behind our back).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The kernel refused.
    #[error("kernel error: {0}")]
    Kernel(#[from] KernelError),
}

const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_FLAGS_HW_MODE: u32 = 1 << 3;
/// Name of libxdp's multi-program dispatcher.
pub const LIBXDP_DISPATCHER: &str = "xdp_dispatcher";

/// Where in the driver stack the chain runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachMode {
    /// In the driver (XDP_FLAGS_DRV_MODE).
    Native,
    /// In the generic network stack (XDP_FLAGS_SKB_MODE); works on any interface.
    Generic,
    /// On the NIC (XDP_FLAGS_HW_MODE).
    Offload,
}

impl AttachMode {
    /// The name used on D-Bus and the command line.
    pub fn name(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
            AttachMode::Offload => "offload",
        }
    }

    /// The mode of a D-Bus / command-line name.
    pub fn from_name(name: &str) -> Option<AttachMode> {
        [AttachMode::Native, AttachMode::Generic, AttachMode::Offload].into_iter().find(|m| m.name() == name)
    }

    fn flags(self) -> u32 {
        match self {
            AttachMode::Native => XDP_FLAGS_DRV_MODE,
            AttachMode::Generic => XDP_FLAGS_SKB_MODE,
            AttachMode::Offload => XDP_FLAGS_HW_MODE,
        }
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An XDP program on the interface that xdpd did not attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignProgram {
    /// The interface.
    pub ifindex: u32,
    /// Kernel id of the program.
    pub prog_id: u32,
    /// Its name, to tell what it is (e.g. libxdp's dispatcher).
    pub name: String,
    /// The id of the bpf_link that holds it, when it is held by a link.
    pub link_id: Option<u32>,
}

impl ForeignProgram {
    /// Whether it is libxdp's dispatcher, for a hint in the error.
    pub fn is_libxdp_dispatcher(&self) -> bool {
        self.name == LIBXDP_DISPATCHER
    }
}

impl fmt::Display for ForeignProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "interface {} already runs XDP program '{}' (id {}) attached by someone else",
            self.ifindex, self.name, self.prog_id
        )?;
        match self.link_id {
            Some(link) => write!(f, " through bpf_link {link}")?,
            None => write!(f, " through netlink")?,
        }
        if self.is_libxdp_dispatcher() {
            write!(f, "; it is libxdp's dispatcher (xdp-loader, libxdp applications)")?;
        }
        write!(f, "; pass force to take the interface over")
    }
}

/// Ids of the XDP programs attached to an interface, per mode (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attached {
    /// In the driver.
    pub native: u32,
    /// In the generic stack.
    pub generic: u32,
    /// On the NIC.
    pub offload: u32,
}

impl Attached {
    /// The ids that are set.
    pub fn ids(self) -> impl Iterator<Item = u32> {
        [self.native, self.generic, self.offload].into_iter().filter(|&id| id != 0)
    }
}

/// Asks the kernel (one rtnetlink request for this interface) which XDP programs run on `ifindex`.
pub fn attached(ifindex: u32) -> Result<Attached, KernelError> {
    attached_in(None, ifindex)
}

/// [`attached`] for interface `ifindex` of namespace `netns` (None: the service's own).
pub fn attached_in(netns: Option<&Netns>, ifindex: u32) -> Result<Attached, KernelError> {
    let op = || format!("querying the XDP programs of interface {ifindex}");
    match super::netlink::link_in(netns, ifindex) {
        Ok(Some(link)) => Ok(link.xdp),
        Ok(None) => Err(KernelError::new(op(), libc::ENODEV)),
        Err(e) => Err(KernelError { op: op(), source: e }),
    }
}

/// The program the link pinned for `ifindex` under `bpffs_dir` runs, when
/// the pin is there and the link is attached to the interface. A probe
/// without side effects: unlike [`Hook::new`], it removes no stale pin.
pub fn pinned_prog_id(ifindex: u32, bpffs_dir: &Path) -> Option<u32> {
    let path = path_cstring(&Bpffs::new(bpffs_dir).link_pin(ifindex)).ok()?;
    let link = bpf::obj_get(&path).ok()?;
    bpf::link_info(link.as_fd()).ok().filter(|i| i.xdp_ifindex == ifindex && i.prog_id != 0).map(|i| i.prog_id)
}

/// Attaches `prog` to `ifindex` through a new `bpf_link` (BPF_LINK_CREATE),
/// inside `netns` (the kernel finds `ifindex` in the caller's namespace).
fn link_create(
    netns: Option<&Netns>,
    prog: BorrowedFd<'_>,
    ifindex: u32,
    mode: AttachMode,
) -> Result<OwnedFd, KernelError> {
    let op = || format!("attaching the chain to interface {ifindex} in {mode} mode");
    let (prog, flags) = (prog.as_raw_fd(), mode.flags());
    let create = move || {
        let opts = libbpf_sys::bpf_link_create_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _,
            flags,
            ..Default::default()
        };
        // SAFETY: opts is a valid, sized options struct.
        unsafe { libbpf_sys::bpf_link_create(prog, ifindex as i32, libbpf_sys::BPF_XDP, &opts) }
    };
    let ret = run_in(netns, create).map_err(|e| KernelError { op: op(), source: e })?;
    let fd = check(ret, op)?;
    // SAFETY: fresh descriptor from the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The XDP hook of one interface, as far as xdpd owns it.
#[derive(Debug)]
pub struct Hook {
    ifindex: u32,
    /// The namespace of the interface (None: the service's own).
    netns: Option<Netns>,
    pin_path: PathBuf,
    link: Option<OwnedFd>,
    mode: Option<AttachMode>,
}

impl Hook {
    /// The hook of `ifindex`, its link pinned under `<bpffs_dir>/<ifindex>/link`.
    /// A live link pinned there by an earlier run is adopted.
    pub fn new(ifindex: u32, bpffs_dir: &Path) -> Hook {
        Hook::new_in(None, ifindex, bpffs_dir)
    }

    /// [`Hook::new`] for interface `ifindex` of namespace `netns` (None: the service's own).
    pub fn new_in(netns: Option<Netns>, ifindex: u32, bpffs_dir: &Path) -> Hook {
        let pin_path = Bpffs::new(bpffs_dir).link_pin(ifindex);
        let mut hook = Hook { ifindex, netns, pin_path, link: None, mode: None };
        if let Ok(fd) = path_cstring(&hook.pin_path).and_then(|path| bpf::obj_get(&path)) {
            match bpf::link_info(fd.as_fd()) {
                Ok(info) if info.xdp_ifindex == ifindex => {
                    // The mode is wherever the kernel shows the link's program.
                    hook.mode = hook.attached_now().ok().and_then(|a| {
                        [
                            (a.native, AttachMode::Native),
                            (a.generic, AttachMode::Generic),
                            (a.offload, AttachMode::Offload),
                        ]
                        .into_iter()
                        .find(|&(id, _)| id == info.prog_id)
                        .map(|(_, mode)| mode)
                    });
                    hook.link = Some(fd);
                }
                _ => {
                    tracing::warn!(ifindex, pin = %hook.pin_path.display(), "removing a stale link pin");
                    hook.unpin();
                }
            }
        }
        hook
    }

    /// The interface.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The namespace of the interface (None: the service's own).
    pub fn netns(&self) -> Option<&Netns> {
        self.netns.as_ref()
    }

    /// The XDP programs on the interface now (one rtnetlink request in its namespace).
    pub fn attached_now(&self) -> Result<Attached, KernelError> {
        attached_in(self.netns.as_ref(), self.ifindex)
    }

    /// Where the link is pinned in bpffs.
    pub fn pin_path(&self) -> &Path {
        &self.pin_path
    }

    /// Whether we hold a link (attached, or adopted from an earlier run).
    pub fn is_attached(&self) -> bool {
        self.link.is_some()
    }

    /// The mode the chain runs in (None when detached).
    pub fn mode(&self) -> Option<AttachMode> {
        self.mode
    }

    /// The id of the program our link runs, if we hold a link.
    /// The id of the program our link runs, while the link is attached to the
    /// interface (someone may have detached it behind our back).
    pub fn attached_prog_id(&self) -> Option<u32> {
        let link = self.link.as_ref()?;
        bpf::link_info(link.as_fd())
            .ok()
            .filter(|i| i.xdp_ifindex == self.ifindex)
            .map(|i| i.prog_id)
            .filter(|&id| id != 0)
    }

    /// The program our link runs while its device is no longer this
    /// interface of this namespace but still exists: it moved to another
    /// namespace (the kernel keeps XDP attached across a move). None when
    /// the device is gone or nothing runs.
    pub fn moved_prog_id(&self) -> Option<u32> {
        let link = self.link.as_ref()?;
        bpf::link_info(link.as_fd()).ok().filter(|i| i.xdp_ifindex != 0 && i.prog_id != 0).map(|i| i.prog_id)
    }

    /// An XDP program on the interface that is not ours, if any.
    pub fn foreign(&self) -> Result<Option<ForeignProgram>, KernelError> {
        let ours = self.attached_prog_id();
        let Some(prog_id) = self.attached_now()?.ids().find(|&id| Some(id) != ours) else { return Ok(None) };
        let name =
            bpf::prog_fd_by_id(prog_id).and_then(|fd| bpf::prog_info(fd.as_fd())).map(|i| i.name).unwrap_or_default();
        // libbpf-rs's safe walk over every bpf_link of the host.
        let links: Vec<u32> = LinkInfoIter::default()
            .filter(|l| l.prog_id == prog_id && matches!(&l.info, LinkTypeInfo::Xdp(x) if x.ifindex == self.ifindex))
            .map(|l| l.id)
            .collect();
        // Several: interfaces of that index in several namespaces run it; which is ours is unknown.
        let link_id = links.first().copied().filter(|_| links.len() == 1);
        Ok(Some(ForeignProgram { ifindex: self.ifindex, prog_id, name, link_id }))
    }

    /// Removes a foreign program (for a forced takeover): through netlink
    /// in the interface's namespace first (refused, with no effect, when a
    /// link holds it), then by detaching the link that holds it — found by
    /// program and index among every link of the host, so only when exactly
    /// one matches (another namespace may have an interface of that index).
    fn evict(&self, foreign: &ForeignProgram) -> Result<(), KernelError> {
        tracing::warn!(ifindex = self.ifindex, prog_id = foreign.prog_id, name = %foreign.name, "taking over the interface from a foreign XDP program");
        let prog = bpf::prog_fd_by_id(foreign.prog_id)?;
        let (old_prog_fd, ifindex) = (prog.as_raw_fd(), self.ifindex as i32);
        let detach = move |flags: u32| {
            let opts = libbpf_sys::bpf_xdp_attach_opts {
                sz: std::mem::size_of::<libbpf_sys::bpf_xdp_attach_opts>() as _,
                old_prog_fd,
                ..Default::default()
            };
            // SAFETY: opts is a valid, sized options struct.
            unsafe { libbpf_sys::bpf_xdp_detach(ifindex, flags, &opts) }
        };
        let mut last = Ok(0);
        let op = || format!("detaching foreign program {} from interface {}", foreign.prog_id, self.ifindex);
        for flags in [XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE, XDP_FLAGS_HW_MODE] {
            let ret = run_in(self.netns.as_ref(), || detach(flags)).map_err(|e| KernelError { op: op(), source: e })?;
            last = check(ret, op);
            if last.is_ok() {
                return Ok(());
            }
        }
        let Some(link_id) = foreign.link_id else { return last.map(drop) };
        let link = bpf::link_fd_by_id(link_id)?;
        // SAFETY: plain syscall wrapper.
        check(unsafe { libbpf_sys::bpf_link_detach(link.as_raw_fd()) }, || format!("detaching foreign link {link_id}"))
            .map(drop)
    }

    /// Attaches `prog` as the first chain of the interface. A foreign program
    /// is an error unless `force`; native mode falls back to generic only when
    /// `fallback_to_generic`.
    pub fn attach(
        &mut self,
        prog: BorrowedFd<'_>,
        mode: AttachMode,
        fallback_to_generic: bool,
        force: bool,
    ) -> Result<AttachMode, HookError> {
        if self.link.is_some() {
            return Err(HookError::Conflict(format!("interface {} already has a chain attached", self.ifindex)));
        }
        if let Some(foreign) = self.foreign()? {
            if !force {
                return Err(HookError::Busy(foreign));
            }
            self.evict(&foreign)?;
        }
        let create = |mode: AttachMode| link_create(self.netns.as_ref(), prog, self.ifindex, mode);
        let (link, mode) = match create(mode) {
            Ok(link) => (link, mode),
            Err(e)
                if mode == AttachMode::Native
                    && fallback_to_generic
                    && matches!(e.errno(), libc::EOPNOTSUPP | libc::EINVAL) =>
            {
                tracing::info!(ifindex = self.ifindex, "native XDP unsupported, attaching in generic mode");
                (create(AttachMode::Generic)?, AttachMode::Generic)
            }
            Err(e) if e.errno() == libc::EBUSY => {
                // Someone attached between our query and our attach.
                return Err(match self.foreign()? {
                    Some(foreign) => HookError::Busy(foreign),
                    None => HookError::Kernel(e),
                });
            }
            Err(e) => return Err(e.into()),
        };
        if let Err(e) = self.pin(link.as_fd()) {
            // Without a pin the chain would vanish with this process: undo.
            // SAFETY: plain syscall wrapper.
            unsafe { libbpf_sys::bpf_link_detach(link.as_raw_fd()) };
            return Err(e.into());
        }
        self.link = Some(link);
        self.mode = Some(mode);
        Ok(mode)
    }

    fn pin(&self, link: BorrowedFd<'_>) -> Result<(), KernelError> {
        if let Some(dir) = self.pin_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                KernelError::new(format!("creating {}", dir.display()), e.raw_os_error().unwrap_or(libc::EIO))
            })?;
        }
        bpf::obj_pin(link, &path_cstring(&self.pin_path)?)
    }

    fn unpin(&self) {
        let _ = std::fs::remove_file(&self.pin_path);
        if let Some(dir) = self.pin_path.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// Swaps in `new` if `expected` is still the running program.
    pub fn replace(&mut self, new: BorrowedFd<'_>, expected: BorrowedFd<'_>) -> Result<(), HookError> {
        let Some(link) = &self.link else {
            return Err(HookError::Conflict(format!("interface {} has no chain attached", self.ifindex)));
        };
        let opts = libbpf_sys::bpf_link_update_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_link_update_opts>() as _,
            flags: libbpf_sys::BPF_F_REPLACE,
            old_prog_fd: expected.as_raw_fd() as u32,
            ..Default::default()
        };
        // SAFETY: opts is a valid, sized options struct.
        let ret = unsafe { libbpf_sys::bpf_link_update(link.as_raw_fd(), new.as_raw_fd(), &opts) };
        match -ret {
            0 => Ok(()),
            libc::EPERM => Err(HookError::Conflict(format!(
                "the program on interface {} is not the chain xdpd attached: it was replaced behind xdpd's back",
                self.ifindex
            ))),
            libc::ENOLINK => Err(HookError::Conflict(format!(
                "xdpd's link on interface {} was detached behind its back; call Reclaim to take the interface back",
                self.ifindex
            ))),
            errno => Err(KernelError::new(format!("replacing the chain on interface {}", self.ifindex), errno).into()),
        }
    }

    /// Lets go of the link and its pin without detaching (the device is gone).
    pub fn forget(&mut self) {
        self.link = None;
        self.mode = None;
        self.unpin();
    }

    /// Detaches the chain and removes the pin.
    pub fn detach(&mut self) -> Result<(), HookError> {
        if let Some(link) = self.link.take() {
            // SAFETY: plain syscall wrapper.
            let ret = unsafe { libbpf_sys::bpf_link_detach(link.as_raw_fd()) };
            if ret < 0 && -ret != libc::ENOLINK {
                self.link = Some(link);
                return Err(
                    KernelError::new(format!("detaching the chain from interface {}", self.ifindex), -ret).into()
                );
            }
        }
        self.unpin();
        self.mode = None;
        Ok(())
    }
}
