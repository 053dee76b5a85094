/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * Legacy section names that libxdp, xdp-loader and `ip link ... xdp obj`
 * load as XDP: SEC("prog") (iproute2's default) and SEC("xdp_<name>").
 * legacy_prog counts and passes; legacy_drop drops everything.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 legacy_runs;

SEC("prog") int legacy_prog(struct xdp_md *ctx)
{
	__sync_fetch_and_add(&legacy_runs, 1);
	return XDP_PASS;
}

SEC("xdp_drop_all") int legacy_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
