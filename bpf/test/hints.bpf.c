/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * XDP hints: the metadata kfuncs a device implements (veth does). Counts the
 * packets whose receive hash the device gave, and keeps the last hash. Such
 * a program must be loaded bound to its device.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

enum xdp_rss_hash_type { XDP_RSS_TYPE_NONE = 0 };

extern int bpf_xdp_metadata_rx_hash(const struct xdp_md *ctx, __u32 *hash,
				    enum xdp_rss_hash_type *rss_type) __ksym;

__u64 hashed;
__u64 unhashed;
__u32 last_hash;

SEC("xdp") int rx_hash(struct xdp_md *ctx)
{
	enum xdp_rss_hash_type type;
	__u32 hash = 0;

	if (bpf_xdp_metadata_rx_hash(ctx, &hash, &type) == 0) {
		__sync_fetch_and_add(&hashed, 1);
		last_hash = hash;
	} else {
		__sync_fetch_and_add(&unhashed, 1);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
