//! Network namespaces other than the service's own. A [`Netns`] names a
//! namespace by a path (`/run/netns/NAME`, `/proc/PID/ns/net`) and the inode
//! it had when it was found; every use opens the path again and checks the
//! inode, so a deleted namespace is never kept alive by the service (an open
//! namespace descriptor would keep it, and its interfaces, alive) and a
//! namespace re-created under the same name is never taken for the old one.
//!
//! Work that must happen inside the namespace (creating a netlink socket,
//! `BPF_LINK_CREATE`, whose `target_ifindex` is looked up in the calling
//! thread's namespace) runs on a short-lived thread that joined it with
//! `setns` (which affects that thread only); sockets keep the namespace they
//! were created in.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The filesystem type of nsfs (`NSFS_MAGIC`).
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// A network namespace found at `path`, with the inode it had then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    path: PathBuf,
    inode: u64,
}

/// The inode of the calling thread's network namespace.
pub fn own_inode() -> io::Result<u64> {
    Ok(std::fs::metadata("/proc/thread-self/ns/net")?.ino())
}

fn is_nsfs(file: &std::fs::File) -> io::Result<bool> {
    // SAFETY: an all-zero statfs is a valid value for the kernel to fill.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and a pointer to a statfs we own.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64 == NSFS_MAGIC)
}

impl Netns {
    /// The network namespace at `path` now (a bind mount under `/run/netns`,
    /// `/proc/PID/ns/net`); an error when it is none.
    pub fn at(path: &Path) -> io::Result<Netns> {
        let file = std::fs::File::open(path)?;
        if !is_nsfs(&file)? {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not a namespace", path.display())));
        }
        let inode = file.metadata()?.ino();
        Ok(Netns { path: path.to_path_buf(), inode })
    }

    /// The inode of the namespace (its identity while it lives).
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// Where it was found.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the namespace is still at its path (not deleted, not replaced).
    pub fn is_present(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.inode)
    }

    /// Runs `f` on a thread inside the namespace. Fails with `ENOENT` when
    /// the namespace is gone (or another one took its path).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        let file = std::fs::File::open(&self.path)?;
        if file.metadata()?.ino() != self.inode || !is_nsfs(&file)? {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: setns on a namespace descriptor; it moves this thread only.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("a thread inside a network namespace panicked")))
        })
    }
}

/// The real, effective, saved and file-system uids of process `pid` (from
/// `/proc/PID/status`).
fn uids_of(pid: u32) -> io::Result<[u32; 4]> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:")).ok_or_else(|| io::Error::other("no Uid line"))?;
    let uids: Vec<u32> = line.split_whitespace().filter_map(|u| u.parse().ok()).collect();
    uids.try_into().map_err(|_| io::Error::other("a Uid line without four uids"))
}

/// The network namespace of process `pid` and the uids that process runs
/// with, read after its namespace was opened and checked again afterwards:
/// they belong to the process whose namespace it is (not to a process that
/// took its pid meanwhile).
pub fn of_process(pid: u32) -> io::Result<(Netns, [u32; 4])> {
    if pid == 0 {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    let netns = Netns::at(Path::new(&format!("/proc/{pid}/ns/net")))?;
    let uids = uids_of(pid)?;
    if !netns.is_present() {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok((netns, uids))
}

/// `NS_GET_NSTYPE`: the type (`CLONE_NEW*`) of a namespace descriptor.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// The inode of the network namespace `fd` refers to; an error when it
/// refers to anything else.
pub fn of_descriptor(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let file = std::fs::File::from(fd.try_clone_to_owned()?);
    // SAFETY: an ioctl without arguments on a descriptor we own.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
    if !is_nsfs(&file)? || kind != libc::CLONE_NEWNET {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a network namespace"));
    }
    Ok(file.metadata()?.ino())
}

/// A path the network namespace with inode `inode` can be opened at while
/// it lives, without holding it: a bind mount of it (as `ip netns` and
/// container runtimes make, anywhere), else a process in it.
pub fn path_of(inode: u64) -> Option<PathBuf> {
    let root = format!("net:[{inode}]");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounted = mountinfo.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        (fields.get(3) == Some(&root.as_str())).then(|| fields.get(4).map(|p| unescape(p)))?
    });
    let found = |path: &Path| std::fs::metadata(path).is_ok_and(|m| m.ino() == inode);
    if let Some(path) = mounted.filter(|p| found(p)) {
        return Some(path);
    }
    let processes = std::fs::read_dir("/proc").ok()?;
    processes
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .map(|e| e.path().join("ns/net"))
        .find(|p| found(p))
}

/// A mount point as mountinfo spells it (`\040` for a space, ...).
fn unescape(field: &str) -> PathBuf {
    let mut out = Vec::new();
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|o| u8::from_str_radix(std::str::from_utf8(o).ok()?, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

/// Runs `f` in `netns`, or here (the service's own namespace) when `None`.
pub fn run_in<T: Send>(netns: Option<&Netns>, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    match netns {
        Some(ns) => ns.run(f),
        None => Ok(f()),
    }
}

/// A namespace's name as one file name in bpffs and the state directory,
/// which refuse or misread some characters (bpffs refuses dots): letters,
/// digits, `_` and `-` stay, every other byte is `%XX`.
pub fn file_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_plain_file_names() {
        assert_eq!(file_name("pod-1_a"), "pod-1_a");
        assert_eq!(file_name("cni.42"), "cni%2E42");
        assert_eq!(file_name("a/b %"), "a%2Fb%20%25");
    }

    #[test]
    fn mount_points_as_mountinfo_spells_them() {
        assert_eq!(unescape("/run/netns/a\\040b"), PathBuf::from("/run/netns/a b"));
        assert_eq!(unescape("/run/netns/plain"), PathBuf::from("/run/netns/plain"));
    }

    #[test]
    fn a_namespace_by_descriptor_and_where_it_is() {
        let own = std::fs::File::open("/proc/self/ns/net").map(std::os::fd::OwnedFd::from);
        let own = own.as_ref().map(|fd| of_descriptor(std::os::fd::AsFd::as_fd(fd)).ok());
        assert_eq!(own.ok().flatten(), own_inode().ok());
        let file = std::fs::File::open("/proc/self/status").map(std::os::fd::OwnedFd::from);
        assert!(file.is_ok_and(|fd| of_descriptor(std::os::fd::AsFd::as_fd(&fd)).is_err()));
        assert!(own_inode().ok().and_then(path_of).is_some(), "a process of the own namespace");
    }

    #[test]
    fn own_namespace_and_a_file_that_is_none() {
        assert!(own_inode().is_ok_and(|i| i > 0));
        let own = Netns::at(Path::new("/proc/self/ns/net")).map(|n| n.inode());
        assert_eq!(own.ok(), own_inode().ok());
        assert!(Netns::at(Path::new("/proc/self/status")).is_err());
    }
}
