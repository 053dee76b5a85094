/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/* Programs that carry libxdp run-config metadata, and one that does not. */
#include "probe.h"
#include "xdpd_run_config.h"

/* priority 10, continue on {pass, drop} */
struct {
	__uint(priority, 10);
	__uint(XDP_DROP, 1);
} XDP_RUN_CONFIG(cfg_early);
SEC("xdp") int cfg_early(struct xdp_md *ctx) { return probe(ctx, 0); }

/* default priority 50, XDP_PASS is final: continue on nothing */
struct {
	__uint(XDP_PASS, 0);
} XDP_RUN_CONFIG(cfg_final);
SEC("xdp") int cfg_final(struct xdp_md *ctx) { return probe(ctx, 1); }

/* priority 70, continue on {pass, tx, redirect, aborted} */
struct {
	__uint(priority, 70);
	__uint(XDP_TX, 1);
	__uint(XDP_REDIRECT, 1);
	__uint(XDP_ABORTED, 1);
} XDP_RUN_CONFIG(cfg_late);
SEC("xdp") int cfg_late(struct xdp_md *ctx) { return probe(ctx, 2); }

/* no metadata: defaults (priority 50, continue on {pass}) */
SEC("xdp") int cfg_none(struct xdp_md *ctx) { return probe(ctx, 3); }

char LICENSE[] SEC("license") = "GPL";
