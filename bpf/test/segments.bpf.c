/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * Members that cannot share one verifier context with others, for the tests
 * of segmented chains:
 *   seg_priv, seg_priv_count  store a kernel address into their own map: only
 *                             a loader with CAP_PERFMON may (root's programs)
 *   seg_gpl                   calls a kfunc and a GPL-only helper: only a
 *                             GPL-compatible program may
 * seg_priv and seg_gpl are instrumented (probe.h, slots 12 and 13);
 * seg_priv_count counts IPv4 UDP to port 9998 in `priv_packets` and passes.
 */
#include "probe.h"
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} leaked SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} priv_packets SEC(".maps");

/* Privileged only: a kernel address where the map's owner could read it. */
static __always_inline void leak(void)
{
	__u32 key = 0;
	__u64 *slot = bpf_map_lookup_elem(&leaked, &key);

	if (slot)
		*slot = (__u64)(long)&leaked;
}

static __always_inline int udp_dport(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	if (ip->protocol != IPPROTO_UDP || ip->ihl != 5)
		return -1;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return -1;
	return bpf_ntohs(udp->dest);
}

SEC("xdp") int seg_priv(struct xdp_md *ctx)
{
	leak();
	return probe(ctx, 12);
}

SEC("xdp") int seg_priv_count(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *count;

	leak();
	if (udp_dport(ctx) != 9998)
		return XDP_PASS;
	count = bpf_map_lookup_elem(&priv_packets, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	return XDP_PASS;
}

/* Kernel functions, and helpers such as bpf_probe_read_kernel, are for
 * GPL-compatible programs only. */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

SEC("xdp") int seg_gpl(struct xdp_md *ctx)
{
	__u64 from = 13, to = 0;

	if (!bpf_cast_to_kern_ctx(ctx))
		return XDP_ABORTED;
	if (bpf_probe_read_kernel(&to, sizeof(to), &from) || to != 13)
		return XDP_ABORTED;
	return probe(ctx, 13);
}

char LICENSE[] SEC("license") = "GPL";
