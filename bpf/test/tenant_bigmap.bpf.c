/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/* One array of 256 MiB: more map memory than a user may have (64 MiB by default). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct value {
	__u8 bytes[28];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8388608);
	__type(key, __u32);
	__type(value, struct value);
} bigmap SEC(".maps");

SEC("xdp") int bigmap_pass(struct xdp_md *ctx)
{
	__u32 key = 0;

	return bpf_map_lookup_elem(&bigmap, &key) ? XDP_PASS : XDP_ABORTED;
}

char LICENSE[] SEC("license") = "GPL";
