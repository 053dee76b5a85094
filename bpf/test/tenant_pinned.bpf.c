/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * A map pinned by name, as xdp-filter and L3AF declare theirs: programs of
 * one owner share it; another owner's, or root's pin of the same name under
 * /sys/fs/bpf, must never be reached. shared_verdict[0] == 1 drops.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shared_verdict SEC(".maps");

static __always_inline int verdict(void)
{
	__u32 key = 0;
	__u32 *v = bpf_map_lookup_elem(&shared_verdict, &key);

	return v && *v == 1 ? XDP_DROP : XDP_PASS;
}

SEC("xdp") int pinned_verdict(struct xdp_md *ctx) { return verdict(); }

SEC("xdp") int pinned_verdict2(struct xdp_md *ctx) { return verdict(); }

char LICENSE[] SEC("license") = "GPL";
