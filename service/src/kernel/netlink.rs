//! The interface list and rtnetlink link events: the raw libc calls behind
//! `iface::watch`.

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// The interfaces present now: index → name.
pub fn interfaces() -> HashMap<u32, String> {
    let mut out = HashMap::new();
    // SAFETY: if_nameindex returns an array terminated by a zero entry, freed below.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return out;
        }
        let mut entry = list;
        while (*entry).if_index != 0 {
            if !(*entry).if_name.is_null() {
                out.insert((*entry).if_index, CStr::from_ptr((*entry).if_name).to_string_lossy().into_owned());
            }
            entry = entry.add(1);
        }
        libc::if_freenameindex(list);
    }
    out
}

fn link_events_socket() -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket calls; the descriptor is owned right away.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        addr.nl_groups = libc::RTMGRP_LINK as u32;
        let len = std::mem::size_of::<libc::sockaddr_nl>() as u32;
        if libc::bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_nl).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(fd)
    }
}

/// A non-blocking rtnetlink socket subscribed to link events, registered with tokio.
pub fn link_events() -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open and the same while registered.
    unsafe { AsyncFd::register(link_events_socket()?) }.map_err(|e| e.into_parts().1)
}

/// Reads and drops every queued event (their contents do not matter: a
/// rescan tells what changed; an overflow, ENOBUFS, just means "rescan").
pub fn drain(socket: &AsyncFd<OwnedFd>, buf: &mut [u8]) {
    loop {
        // SAFETY: reading into our buffer, within its length.
        let n = unsafe { libc::recv(socket.get_ref().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock {
            break;
        }
        if n == 0 {
            break;
        }
    }
}
