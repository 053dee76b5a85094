/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * tail_entry tail-calls slot 0 of its program array; while the slot is empty
 * it traces slot 6 and continues with the packet's action. tail_target (loaded
 * by the test itself) traces slot 7 and returns XDP_TX.
 */
#include "probe.h"

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} jump_table SEC(".maps");

SEC("xdp") int tail_entry(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &jump_table, 0);
	return probe(ctx, 6);
}

SEC("xdp") int tail_target(struct xdp_md *ctx)
{
	probe_trace(ctx, 7);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
