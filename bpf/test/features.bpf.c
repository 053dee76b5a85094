/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * One program per linker feature that must survive linking: global and static
 * subprograms, global data, bpf_loop callbacks, kfunc calls, spin locks.
 * Each returns XDP_PASS when everything worked and XDP_ABORTED otherwise,
 * and counts its runs in a map or a global so tests see its state.
 */
#include "probe.h"

/* --- global (independently verified) and static subprograms --- */
__attribute__((noinline)) int global_pick(struct xdp_md *ctx)
{
	return probe(ctx, 5);
}

static __attribute__((noinline)) int static_double_check(int action)
{
	return action < 0 ? XDP_ABORTED : action;
}

SEC("xdp") int subprogs(struct xdp_md *ctx)
{
	return static_double_check(global_pick(ctx));
}

/* --- bpf_loop with a callback --- */
__u64 loop_sum;

static long add_index(__u32 index, void *ctx)
{
	*(__u64 *)ctx += index;
	return 0;
}

SEC("xdp") int loop(struct xdp_md *ctx)
{
	__u64 sum = 0;

	if (bpf_loop(10, add_index, &sum, 0) != 10)
		return XDP_ABORTED;
	loop_sum += sum; /* 45 per packet */
	return sum == 45 ? XDP_PASS : XDP_ABORTED;
}

/* --- kfunc calls --- */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

__u64 kfunc_runs;

SEC("xdp") int kfunc(struct xdp_md *ctx)
{
	if (!bpf_cast_to_kern_ctx(ctx))
		return XDP_ABORTED;
	kfunc_runs++;
	return XDP_PASS;
}

/* --- spin locks in a map value --- */
struct locked_counter {
	struct bpf_spin_lock lock;
	__u64 count;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct locked_counter);
} locked SEC(".maps");

SEC("xdp") int spinlock(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct locked_counter *c = bpf_map_lookup_elem(&locked, &key);

	if (!c)
		return XDP_ABORTED;
	bpf_spin_lock(&c->lock);
	c->count++;
	bpf_spin_unlock(&c->lock);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
