/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/* Run-config metadata with a member libxdp does not know: must be refused. */
#include "probe.h"
#include "xdpd_run_config.h"

struct {
	__uint(priority, 5);
	__uint(XDP_BOGUS, 1);
} XDP_RUN_CONFIG(bad_member);
SEC("xdp") int bad_member(struct xdp_md *ctx) { return XDP_PASS; }

char LICENSE[] SEC("license") = "GPL";
