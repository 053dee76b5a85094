/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/* One-entry array maps of u64 counters, for test programs that need many maps. */
#ifndef XDPD_TEST_ARRAY_MAPS_H
#define XDPD_TEST_ARRAY_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define COUNTER_MAP(name)                       \
	struct {                                \
		__uint(type, BPF_MAP_TYPE_ARRAY); \
		__uint(max_entries, 1);         \
		__type(key, __u32);             \
		__type(value, __u64);           \
	} name SEC(".maps")

#endif
