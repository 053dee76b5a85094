/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * Global data in all three sections: .rodata (frozen, constant-folded by the
 * verifier), .data and .bss. bss_runs counts the packets the program saw.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 rodata_answer = 42;
__u32 data_seed = 7;
__u64 bss_runs;

SEC("xdp") int global_data(struct xdp_md *ctx)
{
	__sync_fetch_and_add(&bss_runs, 1);
	data_seed += rodata_answer;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
