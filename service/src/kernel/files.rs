//! Opening a file with someone else's file-system identity.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

/// The group of last resort: never more access than the caller has.
const NOGROUP: u32 = 65534;

/// Opens `path` read-only with `uid`, `gids` (the first is the primary group,
/// "nogroup" if empty) as the file-system identity. Runs on a short-lived
/// thread, because the file-system identity (setfsuid, setfsgid, and
/// setgroups as a raw syscall) is per thread. O_NONBLOCK keeps a FIFO from
/// hanging the caller.
pub fn open_as(uid: u32, gids: &[u32], path: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let gids = gids.to_vec();
    let primary = gids.first().copied().unwrap_or(NOGROUP);
    std::thread::spawn(move || -> std::io::Result<OwnedFd> {
        // SAFETY: these syscalls change only this thread's credentials; the thread ends right after.
        unsafe {
            if libc::syscall(libc::SYS_setgroups, gids.len(), gids.as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::setfsgid(primary);
            libc::setfsuid(uid);
            if libc::setfsuid(u32::MAX) as u32 != uid || libc::setfsgid(u32::MAX) as u32 != primary {
                return Err(std::io::Error::other("cannot take the caller's file-system identity"));
            }
            let fd = libc::open(cpath.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(OwnedFd::from_raw_fd(fd))
        }
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("the thread opening the file panicked")))
}
