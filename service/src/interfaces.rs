//! Follows the network interfaces of the service's namespace, and the XDP
//! programs on them: an rtnetlink
//! socket subscribed to link events wakes us, and a rescan of the interface
//! list tells what appeared, disappeared or was renamed (no message parsing
//! to get wrong, and a lost event only delays the next rescan).

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;

use crate::links::Links;

const RTMGRP_LINK: u32 = 1;

/// The interfaces present now: index → name.
pub fn current() -> HashMap<u32, String> {
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
        addr.nl_groups = RTMGRP_LINK;
        let len = std::mem::size_of::<libc::sockaddr_nl>() as u32;
        if libc::bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_nl).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(fd)
    }
}

/// Brings `links` in line with the interfaces present now.
pub async fn sync(links: &Arc<Links>, known: &mut HashMap<u32, String>) {
    let now = current();
    for (index, name) in &now {
        match known.get(index) {
            None => links.appeared(*index, name.clone()).await,
            Some(old) if old != name => links.renamed(*index, name.clone()).await,
            Some(_) => {}
        }
    }
    for index in known.keys().filter(|i| !now.contains_key(i)).copied().collect::<Vec<_>>() {
        links.disappeared(index).await;
    }
    *known = now;
}

/// Subscribes to link events, syncs once, and returns the task that follows changes.
pub async fn watch(links: Arc<Links>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open and the same while registered.
    let socket = unsafe { AsyncFd::register(link_events_socket()?) }.map_err(|e| e.into_parts().1)?;
    let mut known = HashMap::new();
    sync(&links, &mut known).await;
    links.check_foreign().await;
    Ok(tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        // Detaching a bpf_link sends no netlink event: look every few seconds too.
        let mut poll = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            let readable = tokio::select! {
                r = socket.readable() => r,
                _ = poll.tick() => { links.check_foreign().await; continue }
            };
            let Ok(mut ready) = readable else { return };
            // Drain every queued event; an overflow (ENOBUFS) just means "rescan".
            loop {
                // SAFETY: reading into our buffer.
                let n = unsafe { libc::recv(socket.get_ref().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock {
                    break;
                }
                if n == 0 {
                    break;
                }
            }
            ready.clear_ready();
            sync(&links, &mut known).await;
            links.check_foreign().await;
        }
    }))
}
