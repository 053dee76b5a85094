/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * Members for live-traffic tests on a veth pair: udp_drop drops IPv4 UDP to
 * port 9999; udp_count counts IPv4 UDP to port 9998 (packets[0]) and passes;
 * port_block drops IPv4 UDP to the port in blocked_port[0] (0: none), set by
 * the application through the map.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} packets SEC(".maps");

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

SEC("xdp") int udp_drop(struct xdp_md *ctx)
{
	return udp_dport(ctx) == 9999 ? XDP_DROP : XDP_PASS;
}

SEC("xdp") int udp_count(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *count;

	if (udp_dport(ctx) != 9998)
		return XDP_PASS;
	count = bpf_map_lookup_elem(&packets, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	return XDP_PASS;
}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} blocked_port SEC(".maps");

SEC("xdp") int port_block(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u32 *port = bpf_map_lookup_elem(&blocked_port, &key);
	int dport = udp_dport(ctx);

	return port && *port && dport == (int)*port ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
