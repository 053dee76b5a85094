/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/*
 * Run configuration of an XDP program, in the format libxdp reads: a BTF
 * variable `_<function>` in the section `.xdp_run_config` whose members are
 * pointers to arrays, the array length being the value (libbpf's __uint).
 *
 *   struct {
 *           __uint(priority, 10);
 *           __uint(XDP_PASS, 1);   // continue the chain when this returns XDP_PASS
 *           __uint(XDP_DROP, 1);   // ... and when it returns XDP_DROP
 *   } XDP_RUN_CONFIG(my_prog);
 *
 * Objects written for libxdp work with xdpd unchanged, and the other way round.
 */
#ifndef XDPD_RUN_CONFIG_H
#define XDPD_RUN_CONFIG_H

#define XDP_RUN_CONFIG(fn) _##fn __attribute__((section(".xdp_run_config"), used))

#endif
