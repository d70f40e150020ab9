/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A packet as a hook sees it: parsed headers plus what the hook learned. */
#ifndef PORIN_FLOW_H
#define PORIN_FLOW_H

#include "common.h"
#include "parse.h"

struct flow {
	struct packet pkt;
	__u64 now;          /* bpf_ktime_get_ns() at the hook */
	__u32 revision;     /* policy revision read before any verdict */
	__u32 src_identity;
	__u32 dst_identity;
	__u8 direction;     /* the hook's endpoint direction (DIR_EGRESS: from_pod) */
	bool is_reply;      /* matched conntrack as the reply of a tracked flow */
};

#endif /* PORIN_FLOW_H */
