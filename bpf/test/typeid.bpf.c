/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * Local BTF type ids, as AF_XDP metadata programs tag their metadata layout
 * with them: bpf_core_type_id_local() in the main function and in a
 * subprogram. In a chain, the ids must name the same types in the chain's
 * merged BTF.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct xdpd_meta_main {
	__u32 mark;
	__u16 queue;
};

struct xdpd_meta_sub {
	__u64 stamp;
};

__u32 main_type_id;
__u32 sub_type_id;

static __attribute__((noinline)) int tag_sub(struct xdp_md *ctx)
{
	sub_type_id = bpf_core_type_id_local(struct xdpd_meta_sub);
	return ctx->rx_queue_index == 12345 ? XDP_DROP : XDP_PASS;
}

SEC("xdp") int type_ids(struct xdp_md *ctx)
{
	main_type_id = bpf_core_type_id_local(struct xdpd_meta_main);
	return tag_sub(ctx);
}

char LICENSE[] SEC("license") = "GPL";
