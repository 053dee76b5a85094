/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * Stores a kernel address (a map pointer) into its own map, where GetMaps
 * would let its owner read it: the verifier allows that only to loaders with
 * CAP_PERFMON, so xdpd must refuse it from a non-root user.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} leaked SEC(".maps");

SEC("xdp") int leak_pointer(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *slot = bpf_map_lookup_elem(&leaked, &key);

	if (slot)
		*slot = (__u64)(long)&leaked;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
