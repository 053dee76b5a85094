/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * Instrumented test programs: each records its slot in the packet and returns
 * the action the packet asks of that slot, so BPF_PROG_TEST_RUN shows exactly
 * which members ran, in which order, and what each returned.
 *
 * Test packet (offsets from the Ethernet header; when the frame starts with the
 * 4-byte tag "HEAD" pushed by head_push, everything moves 4 bytes back):
 *   14 + (slot % 16)  action the member in this slot returns
 *   30                number of trace entries
 *   31 .. 46          slots in the order the members ran
 *   47 .. 50          metadata copied by meta_read
 */
#ifndef XDPD_TEST_PROBE_H
#define XDPD_TEST_PROBE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define PROBE_ACTIONS 14
#define PROBE_TRACE_LEN 30
#define PROBE_TRACE 31
#define PROBE_MAX_TRACE 16
#define PROBE_META_COPY 47
#define PROBE_MIN_LEN 51

static __always_inline __u8 *probe_base(struct xdp_md *ctx)
{
	__u8 *p = (__u8 *)(long)ctx->data;
	__u8 *end = (__u8 *)(long)ctx->data_end;

	if (p + 4 <= end && p[0] == 'H' && p[1] == 'E' && p[2] == 'A' && p[3] == 'D')
		p += 4;
	if (p + PROBE_MIN_LEN > end)
		return 0;
	return p;
}

/* Appends `slot` to the packet's trace. */
static __always_inline int probe_trace(struct xdp_md *ctx, __u8 slot)
{
	__u8 *p = probe_base(ctx);
	__u8 *entry;
	__u8 n;

	if (!p)
		return -1;
	n = p[PROBE_TRACE_LEN];
	if (n >= PROBE_MAX_TRACE)
		return 0;
	/* A variable offset loses the range proven above: check the entry itself. */
	entry = p + PROBE_TRACE + (n & (PROBE_MAX_TRACE - 1));
	if (entry + 1 > (__u8 *)(long)ctx->data_end)
		return -1;
	*entry = slot;
	p[PROBE_TRACE_LEN] = n + 1;
	return 0;
}

/* Traces `slot` and returns the action the packet holds for it. */
static __always_inline int probe(struct xdp_md *ctx, __u8 slot)
{
	__u8 *p;

	if (probe_trace(ctx, slot))
		return XDP_ABORTED;
	p = probe_base(ctx);
	if (!p)
		return XDP_ABORTED;
	return p[PROBE_ACTIONS + (slot & 15)];
}

#endif
