/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * proto_count: counts the packets and bytes of every protocol class and lets
 * each packet go on (XDP_PASS): an observer that never changes a verdict.
 *
 * Maps (per-CPU arrays: one value per CPU, add them up to read a total):
 *   packets  key __u32 class (below)  value __u64 packets seen
 *   bytes    key __u32 class (below)  value __u64 bytes seen (whole frame,
 *                                     all fragments of a multi-buffer packet)
 *
 * Classes: 0 other, 1 arp, 2 ipv4-tcp, 3 ipv4-udp, 4 ipv4-icmp, 5 ipv4-other,
 * 6 ipv6-tcp, 7 ipv6-udp, 8 ipv6-icmp, 9 ipv6-other. VLAN tags are skipped;
 * IPv6 extension headers are not followed (such packets count as ipv6-other).
 *
 * Priority 90: it runs after the filters (ip_blocklist 10, port_block 20), so
 * it counts what the chain lets through to the host; the filters count their
 * own drops. Give it a priority below 10 to count everything that arrives.
 */
#include "xdpd_parse.h"
#include "xdpd_run_config.h"

enum proto_class {
	CLASS_OTHER,
	CLASS_ARP,
	CLASS_IPV4_TCP,
	CLASS_IPV4_UDP,
	CLASS_IPV4_ICMP,
	CLASS_IPV4_OTHER,
	CLASS_IPV6_TCP,
	CLASS_IPV6_UDP,
	CLASS_IPV6_ICMP,
	CLASS_IPV6_OTHER,
	CLASS_COUNT,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CLASS_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} packets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CLASS_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} bytes SEC(".maps");

static __always_inline __u32 classify(struct xdp_md *ctx)
{
	struct xdpd_packet pkt;

	if (xdpd_parse(ctx, &pkt))
		return CLASS_OTHER;
	switch (pkt.ethertype) {
	case ETH_P_ARP:
		return CLASS_ARP;
	case ETH_P_IP:
		switch (pkt.l4_proto) {
		case IPPROTO_TCP:
			return CLASS_IPV4_TCP;
		case IPPROTO_UDP:
			return CLASS_IPV4_UDP;
		case IPPROTO_ICMP:
			return CLASS_IPV4_ICMP;
		}
		return CLASS_IPV4_OTHER;
	case ETH_P_IPV6:
		switch (pkt.l4_proto) {
		case IPPROTO_TCP:
			return CLASS_IPV6_TCP;
		case IPPROTO_UDP:
			return CLASS_IPV6_UDP;
		case IPPROTO_ICMPV6:
			return CLASS_IPV6_ICMP;
		}
		return CLASS_IPV6_OTHER;
	}
	return CLASS_OTHER;
}

struct {
	__uint(priority, 90);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(proto_count);

SEC("xdp.frags") int proto_count(struct xdp_md *ctx)
{
	__u32 class = classify(ctx);
	__u64 *n;

	/* Per-CPU values: no other CPU writes them, no atomic operation needed. */
	n = bpf_map_lookup_elem(&packets, &class);
	if (n)
		*n += 1;
	n = bpf_map_lookup_elem(&bytes, &class);
	if (n)
		*n += bpf_xdp_get_buff_len(ctx);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
