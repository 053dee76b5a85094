/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * An ld_imm64 a test rewrites into "r1 = map descriptor N": a caller's
 * instruction naming a descriptor number it never handed in. The object has
 * no maps of its own.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp") int fd_probe(struct xdp_md *ctx)
{
	asm volatile("r1 = 0x5eed5eed ll" ::: "r1");
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
