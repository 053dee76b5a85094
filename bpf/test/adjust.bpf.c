/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * Members that change the packet's bounds. Each traces its slot (20..23) and
 * continues with XDP_PASS, so the members after it must see the new bounds.
 */
#include "probe.h"

SEC("xdp") int head_push(struct xdp_md *ctx)
{
	__u8 *p, *end;

	if (bpf_xdp_adjust_head(ctx, -4))
		return XDP_ABORTED;
	p = (__u8 *)(long)ctx->data;
	end = (__u8 *)(long)ctx->data_end;
	if (p + 4 > end)
		return XDP_ABORTED;
	p[0] = 'H'; p[1] = 'E'; p[2] = 'A'; p[3] = 'D';
	return probe_trace(ctx, 20) ? XDP_ABORTED : XDP_PASS;
}

SEC("xdp") int tail_grow(struct xdp_md *ctx)
{
	__u8 *p, *end;

	if (bpf_xdp_adjust_tail(ctx, 4))
		return XDP_ABORTED;
	p = (__u8 *)(long)ctx->data;
	end = (__u8 *)(long)ctx->data_end;
	/* No arithmetic on data_end: reach the tail from data. */
	p += (end - p - 4) & 0xfff;
	if (p + 4 > end)
		return XDP_ABORTED;
	p[0] = 'T'; p[1] = 'A'; p[2] = 'I'; p[3] = 'L';
	return probe_trace(ctx, 21) ? XDP_ABORTED : XDP_PASS;
}

SEC("xdp") int meta_write(struct xdp_md *ctx)
{
	__u32 *meta;

	if (bpf_xdp_adjust_meta(ctx, -4))
		return XDP_ABORTED;
	meta = (__u32 *)(long)ctx->data_meta;
	if ((void *)(meta + 1) > (void *)(long)ctx->data)
		return XDP_ABORTED;
	*meta = 0x4154454d; /* "META" */
	return probe_trace(ctx, 22) ? XDP_ABORTED : XDP_PASS;
}

SEC("xdp") int meta_read(struct xdp_md *ctx)
{
	__u8 *meta = (__u8 *)(long)ctx->data_meta;
	__u8 *p;

	if (probe_trace(ctx, 23))
		return XDP_ABORTED;
	p = probe_base(ctx);
	if (!p)
		return XDP_ABORTED;
	if (meta + 4 > (__u8 *)(long)ctx->data)
		return XDP_PASS; /* no metadata: leave the copy area alone */
	p[PROBE_META_COPY + 0] = meta[0];
	p[PROBE_META_COPY + 1] = meta[1];
	p[PROBE_META_COPY + 2] = meta[2];
	p[PROBE_META_COPY + 3] = meta[3];
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
