/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * A frags-aware program with a program array: its array is owned by a frags
 * program, so a chain without frags support (any member not declaring it)
 * cannot use the array. Verifies alone, refused in such a chain.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} frags_jump_table SEC(".maps");

SEC("xdp.frags") int tail_entry_frags(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &frags_jump_table, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
