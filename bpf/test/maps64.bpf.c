/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/* Sixty-four maps, the kernel's limit for one program, each counting every
 * packet; instrumented (probe.h, slot 15). */
#include "probe.h"
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
COUNTER_MAP(m20);
COUNTER_MAP(m21);
COUNTER_MAP(m22);
COUNTER_MAP(m23);
COUNTER_MAP(m24);
COUNTER_MAP(m25);
COUNTER_MAP(m26);
COUNTER_MAP(m27);
COUNTER_MAP(m28);
COUNTER_MAP(m29);
COUNTER_MAP(m30);
COUNTER_MAP(m31);
COUNTER_MAP(m32);
COUNTER_MAP(m33);
COUNTER_MAP(m34);
COUNTER_MAP(m35);
COUNTER_MAP(m36);
COUNTER_MAP(m37);
COUNTER_MAP(m38);
COUNTER_MAP(m39);
COUNTER_MAP(m40);
COUNTER_MAP(m41);
COUNTER_MAP(m42);
COUNTER_MAP(m43);
COUNTER_MAP(m44);
COUNTER_MAP(m45);
COUNTER_MAP(m46);
COUNTER_MAP(m47);
COUNTER_MAP(m48);
COUNTER_MAP(m49);
COUNTER_MAP(m50);
COUNTER_MAP(m51);
COUNTER_MAP(m52);
COUNTER_MAP(m53);
COUNTER_MAP(m54);
COUNTER_MAP(m55);
COUNTER_MAP(m56);
COUNTER_MAP(m57);
COUNTER_MAP(m58);
COUNTER_MAP(m59);
COUNTER_MAP(m60);
COUNTER_MAP(m61);
COUNTER_MAP(m62);
COUNTER_MAP(m63);

#define TOUCH(map)                                              \
	do {                                                    \
		__u64 *v = bpf_map_lookup_elem(&map, &key);     \
		if (v)                                          \
			__sync_fetch_and_add(v, 1);             \
	} while (0)

SEC("xdp") int maps64(struct xdp_md *ctx)
{
	__u32 key = 0;

	TOUCH(m0);
	TOUCH(m1);
	TOUCH(m2);
	TOUCH(m3);
	TOUCH(m4);
	TOUCH(m5);
	TOUCH(m6);
	TOUCH(m7);
	TOUCH(m8);
	TOUCH(m9);
	TOUCH(m10);
	TOUCH(m11);
	TOUCH(m12);
	TOUCH(m13);
	TOUCH(m14);
	TOUCH(m15);
	TOUCH(m16);
	TOUCH(m17);
	TOUCH(m18);
	TOUCH(m19);
	TOUCH(m20);
	TOUCH(m21);
	TOUCH(m22);
	TOUCH(m23);
	TOUCH(m24);
	TOUCH(m25);
	TOUCH(m26);
	TOUCH(m27);
	TOUCH(m28);
	TOUCH(m29);
	TOUCH(m30);
	TOUCH(m31);
	TOUCH(m32);
	TOUCH(m33);
	TOUCH(m34);
	TOUCH(m35);
	TOUCH(m36);
	TOUCH(m37);
	TOUCH(m38);
	TOUCH(m39);
	TOUCH(m40);
	TOUCH(m41);
	TOUCH(m42);
	TOUCH(m43);
	TOUCH(m44);
	TOUCH(m45);
	TOUCH(m46);
	TOUCH(m47);
	TOUCH(m48);
	TOUCH(m49);
	TOUCH(m50);
	TOUCH(m51);
	TOUCH(m52);
	TOUCH(m53);
	TOUCH(m54);
	TOUCH(m55);
	TOUCH(m56);
	TOUCH(m57);
	TOUCH(m58);
	TOUCH(m59);
	TOUCH(m60);
	TOUCH(m61);
	TOUCH(m62);
	TOUCH(m63);
	return probe(ctx, 15);
}

char LICENSE[] SEC("license") = "GPL";
