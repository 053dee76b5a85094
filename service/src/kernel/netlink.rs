//! The interfaces of a network namespace (the service's own unless one is
//! named) and the XDP programs on them, from rtnetlink: one `RTM_GETLINK` dump tells every interface's name
//! and XDP program ids at once; a `RTM_GETLINK` for one index tells one
//! interface's (O(1), unlike libbpf's `bpf_xdp_query`, which dumps every
//! interface to find one). Messages are framed and parsed with
//! `netlink-packet-core`/`netlink-packet-route`; only the two attributes
//! used (`IFLA_IFNAME`, `IFLA_XDP`) are decoded. Sockets come from
//! `netlink-sys`.

use std::collections::HashMap;
use std::io;

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator, ParseableParametrized, NLMSG_DONE,
    NLMSG_ERROR, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkHeader, LinkMessage, LinkXdp};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use tokio::io::unix::AsyncFd;

use super::hook::Attached;
use super::netns::{run_in, Netns};

const RTM_NEWLINK: u16 = 16;
/// `sizeof(struct ifinfomsg)`.
const IFINFOMSG_LEN: usize = 16;
const IFLA_IFNAME: u16 = 3;
const IFLA_XDP: u16 = 43;
const RTMGRP_LINK: u32 = 1;

/// One interface as rtnetlink shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Link {
    /// Its name.
    pub name: String,
    /// The XDP programs attached to it, per mode.
    pub xdp: Attached,
}

/// A request socket of namespace `netns` (None: the service's own); a
/// socket keeps the namespace it was created in.
fn socket(netns: Option<&Netns>) -> io::Result<Socket> {
    let mut socket = run_in(netns, || Socket::new(NETLINK_ROUTE))??;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    Ok(socket)
}

/// Sends an `RTM_GETLINK` for `ifindex` (0 and `dump`: every interface).
fn request(socket: &Socket, ifindex: u32, dump: bool) -> io::Result<()> {
    let mut header = NetlinkHeader::default();
    header.flags = if dump { NLM_F_REQUEST | NLM_F_DUMP } else { NLM_F_REQUEST };
    header.sequence_number = 1;
    let mut link = LinkMessage::default();
    link.header.index = ifindex;
    let mut message = NetlinkMessage::new(header, NetlinkPayload::from(RouteNetlinkMessage::GetLink(link)));
    message.finalize();
    let mut buf = vec![0; message.header.length as usize];
    message.serialize(&mut buf);
    socket.send(&buf, 0)?;
    Ok(())
}

fn invalid(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("rtnetlink: {what}"))
}

/// The index and what we read of one `RTM_NEWLINK` payload.
fn parse_link(payload: &[u8]) -> io::Result<(u32, Link)> {
    let header = LinkHeader::parse(payload).map_err(invalid)?;
    let attributes = payload.get(IFINFOMSG_LEN..).ok_or_else(|| invalid("short link message"))?;
    let mut link = Link::default();
    for nla in NlasIterator::new(attributes) {
        let nla = nla.map_err(invalid)?;
        if nla.kind() != IFLA_IFNAME && nla.kind() != IFLA_XDP {
            continue;
        }
        match LinkAttribute::parse_with_param(&nla, header.interface_family).map_err(invalid)? {
            LinkAttribute::IfName(name) => link.name = name,
            LinkAttribute::Xdp(xdp) => {
                for x in xdp {
                    match x {
                        LinkXdp::DrvProgId(id) => link.xdp.native = id,
                        LinkXdp::SkbProgId(id) => link.xdp.generic = id,
                        LinkXdp::HwProgId(id) => link.xdp.offload = id,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok((header.index, link))
}

/// Reads the answer to [`request`] into `out` until it is complete. A dump
/// the kernel marks as interrupted (the interfaces changed meanwhile: some
/// may be missing) is an `Interrupted` error.
fn receive(socket: &Socket, dump: bool, out: &mut HashMap<u32, Link>) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut interrupted = false;
    loop {
        let n = socket.recv(&mut &mut buf[..], 0)?;
        let mut rest = buf.get(..n).unwrap_or_default();
        while !rest.is_empty() {
            let message = NetlinkBuffer::new_checked(rest).map_err(invalid)?;
            let len = (message.length() as usize).min(rest.len()).max(1);
            interrupted |= message.flags() & NLM_F_DUMP_INTR != 0;
            match message.message_type() {
                NLMSG_DONE if interrupted => return Err(io::Error::from(io::ErrorKind::Interrupted)),
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let code = message.payload().get(..4).and_then(|b| b.try_into().ok()).map(i32::from_ne_bytes);
                    return match code {
                        Some(0) => Ok(()),
                        Some(code) => Err(io::Error::from_raw_os_error(-code)),
                        None => Err(invalid("short error message")),
                    };
                }
                RTM_NEWLINK => {
                    let (index, link) = parse_link(message.payload())?;
                    out.insert(index, link);
                    if !dump {
                        return Ok(());
                    }
                }
                _ => {}
            }
            rest = rest.get(netlink_align(len)..).unwrap_or_default();
        }
    }
}

fn netlink_align(len: usize) -> usize {
    (len + 3) & !3
}

/// Every interface present now, by index: one `RTM_GETLINK` dump (again
/// when the kernel says it was interrupted by a change, a few times).
pub fn links() -> io::Result<HashMap<u32, Link>> {
    links_in(None)
}

/// [`links`] of namespace `netns` (None: the service's own).
pub fn links_in(netns: Option<&Netns>) -> io::Result<HashMap<u32, Link>> {
    let mut tries = 0;
    loop {
        let socket = socket(netns)?;
        request(&socket, 0, true)?;
        let mut out = HashMap::new();
        match receive(&socket, true, &mut out) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted && tries < 4 => tries += 1,
            result => return result.map(|()| out),
        }
    }
}

/// Interface `ifindex` (None: there is no such interface).
pub fn link(ifindex: u32) -> io::Result<Option<Link>> {
    link_in(None, ifindex)
}

/// [`link`] of namespace `netns` (None: the service's own).
pub fn link_in(netns: Option<&Netns>, ifindex: u32) -> io::Result<Option<Link>> {
    let socket = socket(netns)?;
    request(&socket, ifindex, false)?;
    let mut out = HashMap::new();
    match receive(&socket, false, &mut out) {
        Ok(()) => Ok(out.remove(&ifindex)),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A non-blocking rtnetlink socket subscribed to link events, registered with tokio.
pub fn link_events() -> io::Result<AsyncFd<Socket>> {
    link_events_in(None)
}

/// [`link_events`] of namespace `netns` (None: the service's own). The
/// socket keeps the namespace alive while it is open.
pub fn link_events_in(netns: Option<&Netns>) -> io::Result<AsyncFd<Socket>> {
    let mut socket = run_in(netns, || Socket::new(NETLINK_ROUTE))??;
    socket.bind(&SocketAddr::new(0, RTMGRP_LINK))?;
    socket.set_non_blocking(true)?;
    // SAFETY: the AsyncFd owns the Socket, so the descriptor stays open and the same while registered.
    unsafe { AsyncFd::register(socket) }.map_err(|e| e.into_parts().1)
}

/// Reads and drops every queued event (their contents do not matter: the
/// next dump tells what changed; an overflow, ENOBUFS, just means "dump").
pub fn drain(socket: &AsyncFd<Socket>, buf: &mut [u8]) {
    loop {
        match socket.get_ref().recv(&mut &mut buf[..], 0) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
            Err(_) => break,
        }
    }
}
