/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/* Twenty maps: more descriptors than one system-bus message may carry (16). */
#include "counter_maps.h"

COUNTER_MAP(m0);
COUNTER_MAP(m1);
COUNTER_MAP(m2);
COUNTER_MAP(m3);
COUNTER_MAP(m4);
COUNTER_MAP(m5);
COUNTER_MAP(m6);
COUNTER_MAP(m7);
COUNTER_MAP(m8);
COUNTER_MAP(m9);
COUNTER_MAP(m10);
COUNTER_MAP(m11);
COUNTER_MAP(m12);
COUNTER_MAP(m13);
COUNTER_MAP(m14);
COUNTER_MAP(m15);
COUNTER_MAP(m16);
COUNTER_MAP(m17);
COUNTER_MAP(m18);
COUNTER_MAP(m19);

static __always_inline __u64 touch(void *map)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(map, &key);

	return v ? *v : 0;
}

SEC("xdp") int many_maps(struct xdp_md *ctx)
{
	__u64 sum = 0;

	sum += touch(&m0);
	sum += touch(&m1);
	sum += touch(&m2);
	sum += touch(&m3);
	sum += touch(&m4);
	sum += touch(&m5);
	sum += touch(&m6);
	sum += touch(&m7);
	sum += touch(&m8);
	sum += touch(&m9);
	sum += touch(&m10);
	sum += touch(&m11);
	sum += touch(&m12);
	sum += touch(&m13);
	sum += touch(&m14);
	sum += touch(&m15);
	sum += touch(&m16);
	sum += touch(&m17);
	sum += touch(&m18);
	sum += touch(&m19);
	return sum == 12345 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
