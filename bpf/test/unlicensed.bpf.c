/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/* An instrumented program (probe.h, slot 14) in an object without a license
 * section: not GPL-compatible, so no chain it shares a program with may call
 * GPL-only helpers or kfuncs. */
#include "probe.h"

SEC("xdp") int unlicensed(struct xdp_md *ctx)
{
	return probe(ctx, 14);
}
