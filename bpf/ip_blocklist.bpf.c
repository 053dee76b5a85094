/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * ip_blocklist: drops IPv4 packets whose source address lies in a prefix of
 * the longest-prefix-match trie blocklist; everything else (other sources,
 * IPv6, ARP) continues (XDP_PASS). The most specific matching prefix counts
 * the drop in its value.
 *
 * Map:
 *   blocklist  lpm_trie, 4096 entries
 *              key   struct { __u32 prefixlen;   host byte order, 0..32
 *                             __u8  addr[4]; }   network byte order (10.0.0.0 is 0a 00 00 00)
 *              value __u64 packets dropped from that prefix (write 0 to add a prefix)
 *
 * `xdpctl maps IFACE ID blocklist --set 192.0.2.0/24=0` writes such a key.
 *
 * Priority 10: first in the chain, so a blocked source costs one lookup and
 * no other program ever sees its packets.
 */
#include "xdpd_parse.h"
#include "xdpd_run_config.h"

struct ipv4_prefix {
	__u32 prefixlen;
	__u8 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipv4_prefix);
	__type(value, __u64);
} blocklist SEC(".maps");

struct {
	__uint(priority, 10);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(ip_blocklist);

SEC("xdp.frags") int ip_blocklist(struct xdp_md *ctx)
{
	struct ipv4_prefix key = { .prefixlen = 32 };
	struct xdpd_packet pkt;
	struct iphdr *ip;
	__u64 *dropped;

	if (xdpd_parse(ctx, &pkt) || pkt.ethertype != ETH_P_IP)
		return XDP_PASS;
	ip = pkt.l3;
	/* xdpd_parse checked the whole IPv4 header; the verifier wants it again. */
	if ((void *)(ip + 1) > (void *)(long)ctx->data_end)
		return XDP_PASS;
	__builtin_memcpy(key.addr, &ip->saddr, sizeof(key.addr));
	dropped = bpf_map_lookup_elem(&blocklist, &key);
	if (!dropped)
		return XDP_PASS;
	__sync_fetch_and_add(dropped, 1);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
