/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/* A program the verifier must refuse on its own. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Reads the packet without a bounds check: the verifier must refuse it. */
SEC("xdp") int unchecked_read(struct xdp_md *ctx)
{
	__u8 *p = (__u8 *)(long)ctx->data;

	return p[20];
}

char LICENSE[] SEC("license") = "GPL";
