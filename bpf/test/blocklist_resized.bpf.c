/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
/* blocklist_v2.bpf.c with a blocklist of 1024 entries: its map cannot take
 * the place of the 4096-entry blocklist of ip_blocklist (upgrade tests). */
#define BLOCKLIST_ENTRIES 1024
#include "blocklist_v2.bpf.c"
