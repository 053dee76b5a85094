/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/* A tc classifier: not an XDP program, so xdpd must refuse it. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tc") int tc_pass(struct __sk_buff *skb) { return 0; }

char LICENSE[] SEC("license") = "GPL";
