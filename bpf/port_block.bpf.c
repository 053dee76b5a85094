/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * port_block: drops TCP and UDP packets (over IPv4 or IPv6) whose destination
 * port is a key of the hash map blocked_ports; everything else continues
 * (XDP_PASS). The application, or an administrator with `xdpctl maps --set`,
 * fills the map; the program counts the drops in the port's value.
 *
 * Map:
 *   blocked_ports  hash, 1024 entries
 *                  key   __u32 destination port, host byte order (9000 is 9000)
 *                  value __u64 packets dropped for that port (write 0 to add a port)
 *
 * Non-first IPv4 fragments carry no port and pass; so do IPv6 packets with
 * extension headers before the transport header.
 *
 * Priority 20: after ip_blocklist (10), which rejects whole sources more
 * cheaply, and before observers such as proto_count (90).
 */
#include "xdpd_parse.h"
#include "xdpd_run_config.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} blocked_ports SEC(".maps");

struct {
	__uint(priority, 20);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(port_block);

SEC("xdp.frags") int port_block(struct xdp_md *ctx)
{
	struct xdpd_packet pkt;
	__u64 *dropped;
	__u32 port;
	int dport;

	if (xdpd_parse(ctx, &pkt))
		return XDP_PASS;
	dport = xdpd_dest_port(ctx, &pkt);
	if (dport < 0)
		return XDP_PASS;
	port = dport;
	dropped = bpf_map_lookup_elem(&blocked_ports, &port);
	if (!dropped)
		return XDP_PASS;
	/* Shared by all CPUs: count atomically. */
	__sync_fetch_and_add(dropped, 1);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
