/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * Header parsing shared by the example programs: the Ethernet header with at
 * most two VLAN tags, then the IPv4 or IPv6 header and the transport protocol.
 * Every access is bounds-checked against data_end, as the verifier demands.
 * Written for the restricted verifier (a non-root user's programs): no
 * packet pointer is compared with 0 and none moves by a variable offset.
 */
#ifndef XDPD_PARSE_H
#define XDPD_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct xdpd_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct xdpd_packet {
	void *l3;          /* the network header */
	void *l4;          /* the transport header, when has_l4 */
	__u16 ethertype;   /* host byte order, after VLAN tags */
	__u8 l4_proto;     /* IPPROTO_*, or 0 when not IP */
	__u8 has_l4;       /* l4 is set (not for fragments, extension headers, unknown) */
};

/*
 * Fills `pkt` from the packet. Returns 0 when the Ethernet header (and the IP
 * header, for IPv4 and IPv6) was complete, -1 for a truncated packet.
 */
static __always_inline int xdpd_parse(struct xdp_md *ctx, struct xdpd_packet *pkt)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *cursor = eth + 1;
	void *l4;
	__u16 proto;
	int i;

	pkt->l3 = 0;
	pkt->l4 = 0;
	pkt->ethertype = 0;
	pkt->l4_proto = 0;
	pkt->has_l4 = 0;
	if (cursor > end)
		return -1;
	proto = bpf_ntohs(eth->h_proto);
#pragma unroll
	for (i = 0; i < 2; i++) {
		struct xdpd_vlan_hdr *vlan = cursor;

		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		if ((void *)(vlan + 1) > end)
			return -1;
		proto = bpf_ntohs(vlan->proto);
		cursor = vlan + 1;
	}
	pkt->ethertype = proto;
	pkt->l3 = cursor;

	if (proto == ETH_P_IP) {
		struct iphdr *ip = cursor;

		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return -1;
		pkt->l4_proto = ip->protocol;
		/* Only the first fragment carries the transport header. */
		if (ip->frag_off & bpf_htons(0x1fff))
			return 0;
		l4 = ip + 1;
		/* Past the options in constant steps (a variable offset into the
		 * packet is refused to unprivileged loaders; asm keeps clang from
		 * folding the steps into one). */
#pragma unroll
		for (i = 5; i < 15; i++) {
			if (i >= ip->ihl)
				break;
			asm volatile("%[p] += 4" : [p] "+r"(l4));
		}
		pkt->l4 = l4;
		pkt->has_l4 = 1;
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = cursor;

		if ((void *)(ip6 + 1) > end)
			return -1;
		/* Extension headers are not followed: nexthdr is the protocol seen. */
		pkt->l4_proto = ip6->nexthdr;
		pkt->l4 = ip6 + 1;
		pkt->has_l4 = 1;
	}
	return 0;
}

/*
 * Destination port (host byte order) of a TCP or UDP packet parsed by
 * xdpd_parse, or -1 when it is neither or its header is cut short.
 */
static __always_inline int xdpd_dest_port(struct xdp_md *ctx, const struct xdpd_packet *pkt)
{
	__be16 *ports = pkt->l4;

	if (!pkt->has_l4 || (pkt->l4_proto != IPPROTO_TCP && pkt->l4_proto != IPPROTO_UDP))
		return -1;
	/* Source and destination port lead both headers. */
	if ((void *)(ports + 2) > (void *)(long)ctx->data_end)
		return -1;
	return bpf_ntohs(ports[1]);
}

#endif
