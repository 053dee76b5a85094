//! Who is calling: the caller's identity as the bus reports it, and opening
//! a path with the caller's own file-system identity.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use zbus::message::Header;
use zbus::Connection;

use crate::dbus::error::ServiceError;

/// The process on the other end of a method call.
#[derive(Debug, Clone)]
pub struct Caller {
    pub unique_name: String,
    pub uid: u32,
    pub gids: Vec<u32>,
    pub pid: Option<u32>,
}

impl Caller {
    /// Asks the bus for the credentials of the sender of `header`.
    pub async fn of(connection: &Connection, header: &Header<'_>) -> Result<Caller, ServiceError> {
        let sender = header.sender().ok_or_else(|| ServiceError::AccessDenied("the call has no sender".into()))?;
        let dbus = zbus::fdo::DBusProxy::builder(connection)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(|e| ServiceError::Failed(e.to_string()))?;
        let creds = dbus
            .get_connection_credentials(sender.clone().into())
            .await
            .map_err(|e| ServiceError::AccessDenied(format!("cannot learn who is calling: {e}")))?;
        let uid = creds
            .unix_user_id()
            .ok_or_else(|| ServiceError::AccessDenied("the bus did not say who is calling".into()))?;
        Ok(Caller {
            unique_name: sender.to_string(),
            uid,
            gids: creds.unix_group_ids().cloned().unwrap_or_default(),
            pid: creds.process_id(),
        })
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "uid {} ({}", self.uid, self.unique_name)?;
        if let Some(pid) = self.pid {
            write!(f, ", pid {pid}")?;
        }
        write!(f, ")")
    }
}

/// Opens `path` read-only as the caller would: with its uid, gid and groups
/// as the file-system identity, so the service never reads a file the caller
/// could not. Runs on a short-lived thread, because the file-system identity
/// (setfsuid, setfsgid, and setgroups as a raw syscall) is per thread.
/// Opening never blocks: O_NONBLOCK keeps a FIFO from hanging the service.
pub fn open_as(caller: &Caller, path: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let (uid, gids) = (caller.uid, caller.gids.clone());
    // Without group information, "nogroup": never more access than the caller has.
    let primary = gids.first().copied().unwrap_or(65534);
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
