/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/* One array of 32 MiB: within a user's map memory, but more than its snapshots may keep (16 MiB). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct value {
	__u8 bytes[12];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2097152);
	__type(key, __u32);
	__type(value, struct value);
} midmap SEC(".maps");

SEC("xdp") int midmap_pass(struct xdp_md *ctx)
{
	__u32 key = 0;

	return bpf_map_lookup_elem(&midmap, &key) ? XDP_PASS : XDP_ABORTED;
}

char LICENSE[] SEC("license") = "GPL";
