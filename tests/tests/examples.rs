//! The example programs of bpf/ (ip_blocklist, port_block, proto_count) in one
//! chain, as demo/run and bpf/README.md use them, on crafted frames with
//! BPF_PROG_TEST_RUN: the priorities of their metadata, every case of the
//! filters, every class of the counter. demo/run shows them on live traffic.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use xdpd::engine::object::{self, Privilege};
use xdpd::engine::{Action, ActionSet, AddOptions, Chain};
use xdpd_tests::require_root;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;
const GRE: u8 = 47;
const HOP_BY_HOP: u8 = 0;

// Classes of proto_count (bpf/proto_count.bpf.c).
const OTHER: u32 = 0;
const ARP: u32 = 1;
const IPV4_TCP: u32 = 2;
const IPV4_UDP: u32 = 3;
const IPV4_ICMP: u32 = 4;
const IPV4_OTHER: u32 = 5;
const IPV6_TCP: u32 = 6;
const IPV6_UDP: u32 = 7;
const IPV6_ICMP: u32 = 8;
const IPV6_OTHER: u32 = 9;

// --- frames -------------------------------------------------------------------

fn eth(tags: &[u16], proto: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    for (i, &tpid) in tags.iter().enumerate() {
        f.extend(tpid.to_be_bytes());
        f.extend((100 + i as u16).to_be_bytes()); // VLAN id
    }
    f.extend(proto.to_be_bytes());
    f.extend(payload);
    f
}

/// An IPv4 header (`options` 4-byte words of options) followed by `l4`.
fn ipv4(src: [u8; 4], proto: u8, l4: &[u8], frag_off: u16, options: usize) -> Vec<u8> {
    let ihl = 5 + options;
    let mut h = vec![(4 << 4) | ihl as u8, 0];
    h.extend(((ihl * 4 + l4.len()) as u16).to_be_bytes());
    h.extend([0, 1]);
    h.extend(frag_off.to_be_bytes());
    h.extend([64, proto, 0, 0]);
    h.extend(src);
    h.extend([10, 199, 77, 2]);
    h.extend(std::iter::repeat_n(1u8, options * 4)); // NOP options
    h.extend(l4);
    h
}

fn ipv6(next: u8, l4: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend((l4.len() as u16).to_be_bytes());
    h.extend([next, 64]);
    h.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    h.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    h.extend(l4);
    h
}

fn udp(dport: u16) -> Vec<u8> {
    let mut h = 40000u16.to_be_bytes().to_vec();
    h.extend(dport.to_be_bytes());
    h.extend(12u16.to_be_bytes());
    h.extend([0, 0, b'd', b'e', b'm', b'o']);
    h
}

fn tcp(dport: u16) -> Vec<u8> {
    let mut h = 40000u16.to_be_bytes().to_vec();
    h.extend(dport.to_be_bytes());
    h.extend([0, 0, 0, 1, 0, 0, 0, 0, 5 << 4, 0x02, 0xff, 0xff, 0, 0, 0, 0]); // SYN
    h
}

fn icmp() -> Vec<u8> {
    vec![8, 0, 0, 0, 0, 1, 0, 1]
}

fn arp() -> Vec<u8> {
    let mut p = vec![0, 1, 8, 0, 6, 4, 0, 1];
    p.extend([0x02, 0, 0, 0, 0, 1, 10, 199, 77, 1, 0, 0, 0, 0, 0, 0, 10, 199, 77, 2]);
    p
}

const ALLOWED: [u8; 4] = [10, 199, 77, 1];
const BLOCKED: [u8; 4] = [10, 199, 77, 66];

fn v4(src: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    eth(&[], ETH_P_IP, &ipv4(src, proto, l4, 0, 0))
}

// --- maps ---------------------------------------------------------------------

fn update(fd: BorrowedFd<'_>, key: &[u8], value: &[u8]) {
    // SAFETY: key and value have the map's key and value sizes.
    let ret = unsafe { libbpf_sys::bpf_map_update_elem(fd.as_raw_fd(), key.as_ptr().cast(), value.as_ptr().cast(), 0) };
    assert_eq!(ret, 0, "map update: {}", std::io::Error::last_os_error());
}

fn delete(fd: BorrowedFd<'_>, key: &[u8]) {
    // SAFETY: key has the map's key size.
    let ret = unsafe { libbpf_sys::bpf_map_delete_elem(fd.as_raw_fd(), key.as_ptr().cast()) };
    assert_eq!(ret, 0, "map delete: {}", std::io::Error::last_os_error());
}

/// The u64 value of `key`, summed over CPUs for a per-CPU map; 0 if absent.
fn read_u64(fd: BorrowedFd<'_>, key: &[u8], per_cpu: bool) -> u64 {
    // SAFETY: no arguments.
    let cpus = if per_cpu { (unsafe { libbpf_sys::libbpf_num_possible_cpus() }) as usize } else { 1 };
    let mut value = vec![0u8; 8 * cpus];
    // SAFETY: value holds one 8-byte slot per possible CPU.
    let ret =
        unsafe { libbpf_sys::bpf_map_lookup_elem(fd.as_raw_fd(), key.as_ptr().cast(), value.as_mut_ptr().cast()) };
    if ret != 0 {
        return 0;
    }
    value.chunks(8).map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes"))).sum()
}

fn prefix(len: u32, addr: [u8; 4]) -> Vec<u8> {
    let mut key = len.to_ne_bytes().to_vec();
    key.extend(addr);
    key
}

/// The three examples in one unattached chain, each with the options of its
/// metadata, added as a non-root user's: verified as an unprivileged loader's
/// (the examples are written for the restricted verifier).
struct Examples {
    chain: Chain,
}

impl Examples {
    fn new() -> Examples {
        require_root();
        let mut chain = Chain::unattached();
        for name in ["proto_count", "port_block", "ip_blocklist"] {
            let bytes = xdpd_bpf::object_bytes(name);
            let program = object::load_with(&bytes, Some(name), object::DEFAULT_MAX_OBJECT_SIZE, None, Privilege::User)
                .expect("the example verifies for an unprivileged loader");
            chain.add(program, AddOptions { privilege: Privilege::User, ..Default::default() }).expect("add example");
        }
        Examples { chain }
    }

    fn map(&self, name: &str) -> BorrowedFd<'_> {
        let member =
            self.chain.members().iter().find(|m| m.program.map(name).is_some()).expect("a member with the map");
        member.program.map(name).expect("map").fd.as_fd()
    }

    fn run(&self, frame: &[u8]) -> u32 {
        self.chain.program().expect("chain is linked").test_run(frame, 1).expect("BPF_PROG_TEST_RUN").retval
    }

    fn block_port(&self, port: u32) {
        update(self.map("blocked_ports"), &port.to_ne_bytes(), &0u64.to_ne_bytes());
    }

    fn port_drops(&self, port: u32) -> u64 {
        read_u64(self.map("blocked_ports"), &port.to_ne_bytes(), false)
    }

    fn block_prefix(&self, len: u32, addr: [u8; 4]) {
        update(self.map("blocklist"), &prefix(len, addr), &0u64.to_ne_bytes());
    }

    fn prefix_drops(&self, len: u32, addr: [u8; 4]) -> u64 {
        read_u64(self.map("blocklist"), &prefix(len, addr), false)
    }

    fn counted(&self, class: u32) -> (u64, u64) {
        let key = class.to_ne_bytes();
        (read_u64(self.map("packets"), &key, true), read_u64(self.map("bytes"), &key, true))
    }
}

#[test]
fn metadata_orders_blocklist_then_ports_then_counter() {
    let ex = Examples::new();
    let mut members: Vec<(i32, String)> =
        ex.chain.members().iter().map(|m| (m.priority, m.program.name.clone())).collect();
    members.sort();
    let expected = [(10, "ip_blocklist"), (20, "port_block"), (90, "proto_count")];
    assert_eq!(members, expected.map(|(p, n)| (p, n.to_string())));
    for m in ex.chain.members() {
        assert_eq!(m.proceed_on, ActionSet::of(&[Action::Pass]), "{}", m.program.name);
        assert!(m.program.frags, "{} declares xdp.frags", m.program.name);
    }

    // A packet both filters would drop is dropped (and counted) by the first one only.
    ex.block_prefix(26, [10, 199, 77, 64]);
    ex.block_port(9000);
    assert_eq!(ex.run(&v4(BLOCKED, UDP, &udp(9000))), XDP_DROP);
    assert_eq!(ex.prefix_drops(26, [10, 199, 77, 64]), 1);
    assert_eq!(ex.port_drops(9000), 0);
    assert_eq!(ex.counted(IPV4_UDP).0, 0, "the counter runs last: it never saw the dropped packet");
}

#[test]
fn port_block_drops_tcp_and_udp_to_listed_ports() {
    let ex = Examples::new();
    // Nothing listed: everything passes.
    assert_eq!(ex.run(&v4(ALLOWED, UDP, &udp(9000))), XDP_PASS);
    ex.block_port(9000);
    ex.block_port(22);

    let dropped = [
        v4(ALLOWED, UDP, &udp(9000)),
        v4(ALLOWED, TCP, &tcp(22)),
        eth(&[], ETH_P_IPV6, &ipv6(UDP, &udp(9000))),
        eth(&[], ETH_P_IPV6, &ipv6(TCP, &tcp(22))),
        eth(&[ETH_P_8021Q], ETH_P_IP, &ipv4(ALLOWED, UDP, &udp(9000), 0, 0)),
        eth(&[ETH_P_8021AD, ETH_P_8021Q], ETH_P_IP, &ipv4(ALLOWED, UDP, &udp(9000), 0, 0)),
        eth(&[], ETH_P_IP, &ipv4(ALLOWED, TCP, &tcp(22), 0, 3)), // IPv4 options: ihl 8
        eth(&[], ETH_P_IP, &ipv4(ALLOWED, UDP, &udp(9000), 0x2000, 0)), // first fragment (MF)
    ];
    for frame in &dropped {
        assert_eq!(ex.run(frame), XDP_DROP, "{frame:02x?}");
    }
    assert_eq!(ex.port_drops(9000) + ex.port_drops(22), dropped.len() as u64);

    let passed = [
        v4(ALLOWED, UDP, &udp(9001)),
        v4(ALLOWED, TCP, &tcp(9001)),
        v4(ALLOWED, UDP, &udp(22 << 8)), // byte order: port 5632, not 22
        eth(&[], ETH_P_IP, &ipv4(ALLOWED, UDP, &udp(9000), 185, 0)), // a later fragment has no ports
        eth(&[], ETH_P_IPV6, &ipv6(HOP_BY_HOP, &udp(9000))), // extension headers are not followed
        v4(ALLOWED, ICMP, &icmp()),
        v4(ALLOWED, UDP, &udp(9000)[..3]), // truncated transport header
        eth(&[], ETH_P_ARP, &arp()),
    ];
    for frame in &passed {
        assert_eq!(ex.run(frame), XDP_PASS, "{frame:02x?}");
    }

    // Unlisting a port lets it through again; its counter goes with it.
    delete(ex.map("blocked_ports"), &9000u32.to_ne_bytes());
    assert_eq!(ex.run(&v4(ALLOWED, UDP, &udp(9000))), XDP_PASS);
}

#[test]
fn ip_blocklist_drops_sources_in_its_prefixes() {
    let ex = Examples::new();
    ex.block_prefix(26, [10, 199, 77, 64]);
    ex.block_prefix(32, [10, 199, 77, 70]);
    ex.block_prefix(8, [192, 0, 0, 0]);

    assert_eq!(ex.run(&v4(BLOCKED, ICMP, &icmp())), XDP_DROP);
    assert_eq!(ex.run(&v4([10, 199, 77, 127], TCP, &tcp(80))), XDP_DROP);
    assert_eq!(ex.run(&v4([192, 168, 1, 1], UDP, &udp(53))), XDP_DROP);
    assert_eq!(ex.run(&v4([10, 199, 77, 70], ICMP, &icmp())), XDP_DROP); // the /32 inside the /26
    assert_eq!(ex.run(&eth(&[ETH_P_8021Q], ETH_P_IP, &ipv4(BLOCKED, UDP, &udp(53), 0, 0))), XDP_DROP);
    // The most specific prefix counts each drop.
    assert_eq!(ex.prefix_drops(26, [10, 199, 77, 64]), 3);
    assert_eq!(ex.prefix_drops(32, [10, 199, 77, 70]), 1);
    assert_eq!(ex.prefix_drops(8, [192, 0, 0, 0]), 1);

    for frame in [
        v4(ALLOWED, ICMP, &icmp()),
        v4([10, 199, 77, 63], ICMP, &icmp()),
        v4([10, 199, 77, 128], ICMP, &icmp()),
        v4([193, 0, 0, 1], ICMP, &icmp()),
        eth(&[], ETH_P_IPV6, &ipv6(ICMPV6, &icmp())),
        eth(&[], ETH_P_ARP, &arp()),
        eth(&[], ETH_P_IP, &ipv4(BLOCKED, UDP, &udp(53), 0, 0)[..12]), // truncated IPv4 header
    ] {
        assert_eq!(ex.run(&frame), XDP_PASS, "{frame:02x?}");
    }
}

#[test]
fn proto_count_counts_every_class_and_always_passes() {
    let ex = Examples::new();
    let frames: [(u32, Vec<u8>); 12] = [
        (ARP, eth(&[], ETH_P_ARP, &arp())),
        (IPV4_TCP, v4(ALLOWED, TCP, &tcp(80))),
        (IPV4_UDP, v4(ALLOWED, UDP, &udp(53))),
        (IPV4_UDP, eth(&[ETH_P_8021Q], ETH_P_IP, &ipv4(ALLOWED, UDP, &udp(53), 0, 0))),
        (IPV4_ICMP, v4(ALLOWED, ICMP, &icmp())),
        (IPV4_OTHER, v4(ALLOWED, GRE, &[0; 8])),
        (IPV6_TCP, eth(&[], ETH_P_IPV6, &ipv6(TCP, &tcp(80)))),
        (IPV6_UDP, eth(&[], ETH_P_IPV6, &ipv6(UDP, &udp(53)))),
        (IPV6_ICMP, eth(&[], ETH_P_IPV6, &ipv6(ICMPV6, &icmp()))),
        (IPV6_OTHER, eth(&[], ETH_P_IPV6, &ipv6(HOP_BY_HOP, &[0; 8]))),
        (OTHER, eth(&[], 0x88b5, &[0; 46])),
        (OTHER, eth(&[], ETH_P_IP, &[0x45, 0, 0])), // truncated IPv4 header
    ];
    let mut expected = [(0u64, 0u64); 10];
    for (class, frame) in &frames {
        assert_eq!(ex.run(frame), XDP_PASS, "{frame:02x?}");
        expected[*class as usize].0 += 1;
        expected[*class as usize].1 += frame.len() as u64;
    }
    for (class, want) in expected.iter().enumerate() {
        assert_eq!(ex.counted(class as u32), *want, "class {class}");
    }
}
