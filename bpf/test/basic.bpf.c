/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/* Simple members: pass, drop, frags-aware pass, and a few deliberately awkward ones. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp") int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }

SEC("xdp") int xdp_drop(struct xdp_md *ctx) { return XDP_DROP; }

SEC("xdp.frags") int xdp_pass_frags(struct xdp_md *ctx) { return XDP_PASS; }

/* Named like libxdp's dispatcher, to stand in for one in tests. */
SEC("xdp") int xdp_dispatcher(struct xdp_md *ctx) { return XDP_PASS; }

/* Eight frames deep (main + 7 nested calls): the most a program may use
 * alone, one too many behind a dispatcher. */
#define NEST(name, next) \
	static __attribute__((noinline)) int name(struct xdp_md *ctx) { return next(ctx) + 1; }
static __attribute__((noinline)) int depth7(struct xdp_md *ctx) { return ctx->rx_queue_index; }
NEST(depth6, depth7) NEST(depth5, depth6) NEST(depth4, depth5) NEST(depth3, depth4)
NEST(depth2, depth3) NEST(depth1, depth2)

SEC("xdp") int deep_calls(struct xdp_md *ctx)
{
	return depth1(ctx) == 12345 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
