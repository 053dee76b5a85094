/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * Programs for the benchmarks (bench/):
 *  - realistic: parses Ethernet/IPv4/UDP, looks the destination port up in a
 *    hash map and counts the packet in it; always XDP_PASS.
 *  - tc_trivial / tc_realistic: the same work as xdp_pass / realistic, then a
 *    tail call to slot next_slot of chain_table: a prog-array chain as L3AF
 *    and Katran build them, the outside reference. next_slot is set per load.
 *  - gen_tx: returns XDP_TX, for a BPF_PROG_TEST_RUN live-frames generator.
 *  - count_all: counts every packet (packets[0]) and passes.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} port_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 128);
	__type(key, __u32);
	__type(value, __u32);
} chain_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} packets SEC(".maps");

const volatile __u32 next_slot = 0;

static __always_inline void count_port(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u32 port;
	__u64 *count;

	if ((void *)(udp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_UDP)
		return;
	port = bpf_ntohs(udp->dest);
	count = bpf_map_lookup_elem(&port_counts, &port);
	if (count)
		__sync_fetch_and_add(count, 1);
}

SEC("xdp") int realistic(struct xdp_md *ctx)
{
	count_port(ctx);
	return XDP_PASS;
}

SEC("xdp") int tc_trivial(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &chain_table, next_slot);
	return XDP_PASS;
}

SEC("xdp") int tc_realistic(struct xdp_md *ctx)
{
	count_port(ctx);
	bpf_tail_call(ctx, &chain_table, next_slot);
	return XDP_PASS;
}

SEC("xdp") int gen_tx(struct xdp_md *ctx)
{
	return XDP_TX;
}

SEC("xdp") int count_all(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&packets, &key);

	if (count)
		__sync_fetch_and_add(count, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
