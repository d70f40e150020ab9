/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Local endpoints and the security identities of addresses. */
#ifndef PORIN_IDENTITY_H
#define PORIN_IDENTITY_H

#include "common.h"
#include "maps.h"

static __always_inline const struct endpoint_value *endpoint_lookup(__be32 addr)
{
	return bpf_map_lookup_elem(&porin_endpoints, &addr);
}

static __always_inline __u32 ipcache_identity(__be32 addr)
{
	struct ipcache_key key = { .prefixlen = 32, .addr = addr };
	const struct ipcache_value *value;

	value = bpf_map_lookup_elem(&porin_ipcache, &key);
	/* The agent's 0.0.0.0/0 entry makes a miss a transient state only. */
	return value ? value->identity : IDENTITY_WORLD;
}

/* The identity of addr, whose local endpoint (or NULL) is ep. */
static __always_inline __u32 identity_of(__be32 addr, const struct endpoint_value *ep)
{
	return ep ? ep->identity : ipcache_identity(addr);
}

/* The proxy's upstream packets carry their original source's identity in
 * the mark; nothing else in the node sets this magic. */
static __always_inline bool mark_identity(const struct __sk_buff *skb, __u32 *identity)
{
	if ((skb->mark & MARK_MAGIC_MASK) != MARK_MAGIC_IDENTITY)
		return false;
	*identity = skb->mark >> 16;
	return true;
}

#endif /* PORIN_IDENTITY_H */
