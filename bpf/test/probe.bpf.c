/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/* Sixteen instrumented programs in one object: probe0 .. probe15 (see probe.h). */
#include "probe.h"

#define PROBE(n) \
	SEC("xdp") int probe##n(struct xdp_md *ctx) { return probe(ctx, n); }

PROBE(0) PROBE(1) PROBE(2) PROBE(3) PROBE(4) PROBE(5) PROBE(6) PROBE(7)
PROBE(8) PROBE(9) PROBE(10) PROBE(11) PROBE(12) PROBE(13) PROBE(14) PROBE(15)

char LICENSE[] SEC("license") = "GPL";
