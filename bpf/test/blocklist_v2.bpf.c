/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * A new version of the example ip_blocklist (bpf/ip_blocklist.bpf.c) for the
 * upgrade tests: the same `blocklist` map (so a replacement carries it over),
 * and a new map `looked_up` counting the IPv4 packets it looked up, which
 * shows that the new version is the one running. blocklist_resized.bpf.c
 * is the same with a blocklist of another size (cannot be carried over).
 */
#include "xdpd_parse.h"
#include "xdpd_run_config.h"

#ifndef BLOCKLIST_ENTRIES
#define BLOCKLIST_ENTRIES 4096
#endif

struct ipv4_prefix {
	__u32 prefixlen;
	__u8 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, BLOCKLIST_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipv4_prefix);
	__type(value, __u64);
} blocklist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} looked_up SEC(".maps");

struct {
	__uint(priority, 10);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(ip_blocklist);

SEC("xdp.frags") int ip_blocklist(struct xdp_md *ctx)
{
	struct ipv4_prefix key = { .prefixlen = 32 };
	struct xdpd_packet pkt;
	struct iphdr *ip;
	__u64 *dropped, *seen;
	__u32 zero = 0;

	if (xdpd_parse(ctx, &pkt) || pkt.ethertype != ETH_P_IP)
		return XDP_PASS;
	ip = pkt.l3;
	if ((void *)(ip + 1) > (void *)(long)ctx->data_end)
		return XDP_PASS;
	seen = bpf_map_lookup_elem(&looked_up, &zero);
	if (seen)
		__sync_fetch_and_add(seen, 1);
	__builtin_memcpy(key.addr, &ip->saddr, sizeof(key.addr));
	dropped = bpf_map_lookup_elem(&blocklist, &key);
	if (!dropped)
		return XDP_PASS;
	__sync_fetch_and_add(dropped, 1);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
