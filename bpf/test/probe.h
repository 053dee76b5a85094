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

/* Skips the "HEAD" tag pushed by head_push, if the frame starts with it. */
static __always_inline __u8 *probe_skip_head(__u8 *p, __u8 *end)
{
	if (p + 4 <= end && p[0] == 'H' && p[1] == 'E' && p[2] == 'A' && p[3] == 'D')
		p += 4;
	return p;
}

/* The probe data, or 0 when the frame is too short (for privileged tests:
 * the restricted verifier refuses comparing a pointer with 0). */
static __always_inline __u8 *probe_base(struct xdp_md *ctx)
{
	__u8 *end = (__u8 *)(long)ctx->data_end;
	__u8 *p = probe_skip_head((__u8 *)(long)ctx->data, end);

	if (p + PROBE_MIN_LEN > end)
		return 0;
	return p;
}

/* Trace entry `n` is the byte at `off` = PROBE_TRACE + n. */
#define PROBE_STORE(n, off)                                                         \
	case n:                                                                     \
		asm volatile("*(u8 *)(%[p] + " #off ") = %[s]" ::[p] "r"(p), [s] "r"((__u64)slot) \
			     : "memory");                                           \
		break;

/*
 * Appends `slot` to the packet's trace. Written for the restricted verifier
 * (a user's programs): no pointer is ever compared with 0.
 */
static __always_inline int probe_trace(struct xdp_md *ctx, __u8 slot)
{
	__u8 *end = (__u8 *)(long)ctx->data_end;
	__u8 *p = probe_skip_head((__u8 *)(long)ctx->data, end);
	__u8 n;

	if (p + PROBE_MIN_LEN > end)
		return -1;
	n = p[PROBE_TRACE_LEN];
	if (n >= PROBE_MAX_TRACE)
		return 0;
	/* Constant offsets only: the restricted verifier refuses a variable
	 * offset into the packet (and clang would merge plain stores into one). */
	switch (n) {
	PROBE_STORE(0, 31) PROBE_STORE(1, 32) PROBE_STORE(2, 33) PROBE_STORE(3, 34)
	PROBE_STORE(4, 35) PROBE_STORE(5, 36) PROBE_STORE(6, 37) PROBE_STORE(7, 38)
	PROBE_STORE(8, 39) PROBE_STORE(9, 40) PROBE_STORE(10, 41) PROBE_STORE(11, 42)
	PROBE_STORE(12, 43) PROBE_STORE(13, 44) PROBE_STORE(14, 45) PROBE_STORE(15, 46)
	}
	p[PROBE_TRACE_LEN] = n + 1;
	return 0;
}

/* Traces `slot` and returns the action the packet holds for it. */
static __always_inline int probe(struct xdp_md *ctx, __u8 slot)
{
	__u8 *end = (__u8 *)(long)ctx->data_end;
	__u8 *p;

	if (probe_trace(ctx, slot))
		return XDP_ABORTED;
	p = probe_skip_head((__u8 *)(long)ctx->data, end);
	if (p + PROBE_MIN_LEN > end)
		return XDP_ABORTED;
	return p[PROBE_ACTIONS + (slot & 15)];
}

#endif
