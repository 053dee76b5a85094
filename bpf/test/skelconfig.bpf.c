/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * Configured before loading, as libbpf skeleton programs are: const volatile
 * variables in .rodata (constant-folded by the verifier), a .data variable,
 * and a map whose size the loader chooses. The program copies what it was
 * configured with into .bss (seen), and drops UDP to the configured port
 * when enabled.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

enum mode { MODE_OFF, MODE_COUNT, MODE_DROP };

struct pair {
	__u32 a, b;
};

const volatile bool enabled = false;
const volatile __u16 drop_port = 0;
const volatile __s8 bias = 0;
const volatile enum mode mode = MODE_OFF;
const volatile struct pair not_a_scalar = {};
__u64 data_limit = 100;

struct {
	__u64 enabled, drop_port, bias, mode, data_limit;
} seen;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} flows SEC(".maps");

SEC("xdp") int configured(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);

	seen.enabled = enabled;
	seen.drop_port = drop_port;
	seen.bias = (__u64)(__s64)bias;
	seen.mode = mode;
	seen.data_limit = data_limit + not_a_scalar.a;
	if (!enabled || (void *)(udp + 1) > end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	if (mode == MODE_DROP && udp->dest == bpf_htons(drop_port))
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
