//! The compatibility suite's shared packets: IPv4/IPv6, TCP/UDP/ICMP, VLAN,
//! QinQ, fragments, tunnels (IPIP, GRE, 6in4, 4in6, VXLAN), and truncated
//! and malformed frames. Built by hand, byte by byte, so every field is known.

const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const V4_SRC: [u8; 4] = [198, 51, 100, 1];
const V4_DST: [u8; 4] = [198, 51, 100, 2];
const V6_SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes.chunks(2).map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = [DST_MAC, SRC_MAC].concat();
    f.extend(ethertype.to_be_bytes());
    f.extend(payload);
    f
}

/// A VLAN tag's TCI and the next ethertype, then the payload.
fn tag(vid: u16, inner_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vid.to_be_bytes().to_vec();
    f.extend(inner_type.to_be_bytes());
    f.extend(payload);
    f
}

/// An IPv4 header and payload; `frag` is the flags+offset word.
fn ipv4(proto: u8, frag: u16, payload: &[u8]) -> Vec<u8> {
    let len = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend(len.to_be_bytes());
    h.extend(0x1234u16.to_be_bytes());
    h.extend(frag.to_be_bytes());
    h.extend([64, proto, 0, 0]);
    h.extend(V4_SRC);
    h.extend(V4_DST);
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend(payload);
    h
}

fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend((payload.len() as u16).to_be_bytes());
    h.extend([next, 64]);
    h.extend(V6_SRC);
    h.extend(V6_DST);
    h.extend(payload);
    h
}

fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = sport.to_be_bytes().to_vec();
    h.extend(dport.to_be_bytes());
    h.extend(1000u32.to_be_bytes());
    h.extend(0u32.to_be_bytes());
    h.extend([0x50, flags]);
    h.extend(8192u16.to_be_bytes());
    h.extend([0, 0, 0, 0]);
    h.extend(payload);
    h
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = sport.to_be_bytes().to_vec();
    h.extend(dport.to_be_bytes());
    h.extend(((8 + payload.len()) as u16).to_be_bytes());
    h.extend([0, 0]);
    h.extend(payload);
    h
}

fn icmp_echo(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![kind, 0, 0, 0, 0x00, 0x07, 0x00, 0x01];
    h.extend(payload);
    let c = checksum(&h);
    h[2..4].copy_from_slice(&c.to_be_bytes());
    h
}

const DATA: &[u8] = b"xdpd compatibility suite payload";

/// Every packet of the suite, named.
pub fn packets() -> Vec<(&'static str, Vec<u8>)> {
    let v4 = |proto, payload: &[u8]| eth(0x0800, &ipv4(proto, 0x4000, payload));
    let v6 = |next, payload: &[u8]| eth(0x86dd, &ipv6(next, payload));
    let inner_v4_udp = ipv4(UDP, 0x4000, &udp(5353, 53, DATA));
    let inner_v6_tcp = ipv6(TCP, &tcp(40000, 443, 0x02, &[]));
    let mut gre = vec![0, 0, 0x08, 0x00];
    gre.extend(&inner_v4_udp);
    let mut vxlan = vec![0x08, 0, 0, 0, 0, 0x12, 0x34, 0];
    vxlan.extend(eth(0x0800, &ipv4(TCP, 0x4000, &tcp(1234, 80, 0x18, DATA))));
    let mut v6_frag = vec![UDP, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef];
    v6_frag.extend(udp(5000, 6000, DATA));
    let mut bad_ihl = ipv4(UDP, 0, &udp(1, 2, DATA));
    bad_ihl[0] = 0x42;
    let mut long_ihl = ipv4(TCP, 0, &tcp(1, 2, 0x02, &[]));
    long_ihl[0] = 0x4f;
    let mut v6_long = ipv6(UDP, &udp(7, 7, DATA));
    v6_long[4..6].copy_from_slice(&4000u16.to_be_bytes());
    let arp = [[0, 1, 8, 0, 6, 4, 0, 1].as_slice(), &SRC_MAC, &V4_SRC, &[0; 6], &V4_DST].concat();
    vec![
        ("ipv4-tcp-syn", v4(TCP, &tcp(40000, 80, 0x02, &[]))),
        ("ipv4-tcp-data", v4(TCP, &tcp(22, 51000, 0x18, DATA))),
        ("ipv4-udp-dns", v4(UDP, &udp(5353, 53, DATA))),
        ("ipv4-udp-9000", v4(UDP, &udp(1000, 9000, DATA))),
        ("ipv4-icmp-echo", v4(ICMP, &icmp_echo(8, DATA))),
        ("ipv6-tcp-syn", v6(TCP, &tcp(40000, 443, 0x02, &[]))),
        ("ipv6-udp", v6(UDP, &udp(5000, 6000, DATA))),
        ("ipv6-icmp-echo", v6(ICMPV6, &icmp_echo(128, DATA))),
        ("vlan-ipv4-udp", eth(0x8100, &tag(100, 0x0800, &ipv4(UDP, 0, &udp(1, 53, DATA))))),
        ("vlan-ipv6-tcp", eth(0x8100, &tag(200, 0x86dd, &inner_v6_tcp))),
        ("qinq-ipv4-tcp", eth(0x88a8, &tag(10, 0x8100, &tag(20, 0x0800, &ipv4(TCP, 0, &tcp(5, 80, 0x02, &[])))))),
        ("ipv4-frag-first", v4frag(0x2000, &udp(5000, 6000, DATA))),
        ("ipv4-frag-later", v4frag(0x0004, DATA)),
        ("ipv6-frag", v6(44, &v6_frag)),
        ("ipip", v4(4, &inner_v4_udp)),
        ("gre-ipv4", v4(47, &gre)),
        ("6in4", v4(41, &inner_v6_tcp)),
        ("4in6", v6(4, &inner_v4_udp)),
        ("vxlan", v4(UDP, &udp(49152, 4789, &vxlan))),
        ("arp", eth(0x0806, &arp)),
        ("eth-only", eth(0x0800, &[])),
        ("ipv4-truncated", eth(0x0800, &ipv4(TCP, 0, &tcp(1, 2, 0x02, &[]))[..10])),
        ("tcp-truncated", eth(0x0800, &ipv4(TCP, 0, &tcp(1, 2, 0x02, &[]))[..28])),
        ("ipv6-truncated", eth(0x86dd, &ipv6(UDP, &udp(1, 2, DATA))[..30])),
        ("ipv4-bad-ihl", eth(0x0800, &bad_ihl)),
        ("ipv4-ihl-past-end", eth(0x0800, &long_ihl)),
        ("ipv6-length-past-end", eth(0x86dd, &v6_long)),
        ("unknown-ethertype", eth(0x88b5, DATA)),
    ]
}

fn v4frag(frag: u16, payload: &[u8]) -> Vec<u8> {
    eth(0x0800, &ipv4(UDP, frag, payload))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_packet_has_an_ethernet_header() {
        assert!(super::packets().iter().all(|(_, p)| p.len() >= 14));
    }
}
