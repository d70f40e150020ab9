/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Policy verdicts. The lookup semantics are the ones of
 * host/src/policy/resolved.rs: longest protocol/port prefix first, then a
 * concrete peer identity over "any", then default deny where enforced.
 */
#ifndef PORIN_POLICY_H
#define PORIN_POLICY_H

#include "common.h"
#include "maps.h"

struct verdict {
	__u8 action;       /* enum policy_action */
	__u8 drop_reason;  /* DROP_* when action is ACTION_DENY */
	__u8 direction;    /* the policy direction that decided */
	__u16 proxy_port;  /* host order, when action is ACTION_REDIRECT */
};

static __always_inline struct verdict verdict_allow(__u8 direction)
{
	return (struct verdict){ .action = ACTION_ALLOW, .direction = direction };
}

static __always_inline struct verdict verdict_deny(__u8 direction, __u8 reason)
{
	return (struct verdict){
		.action = ACTION_DENY,
		.drop_reason = reason,
		.direction = direction,
	};
}

/* The revision to stamp on verdicts. Read before any policy lookup: the
 * agent bumps it after its map writes, so a verdict is never stamped with a
 * revision newer than the policy it was computed from. */
static __always_inline __u32 policy_revision(void)
{
	const struct datapath_config *config;
	__u32 zero = 0;

	config = bpf_map_lookup_elem(&porin_config, &zero);
	return config ? config->revision : 0;
}

/* ICMP has no port: only protocol-wide entries can match it. */
static __always_inline __be16 policy_port(const struct ct_key *t)
{
	return t->protocol == IPPROTO_ICMP ? 0 : t->dport;
}

/* The most specific entry for the flow t, or NULL. Each trie lookup
 * returns its longest match; of the peer's and the "any peer" match the
 * longer prefix wins, the peer's on a tie. */
static __always_inline const struct policy_value *
policy_lookup(__u32 endpoint, __u8 direction, __u32 remote, const struct ct_key *t)
{
	struct policy_key key = {
		.prefixlen = POLICY_PREFIX_FULL,
		.endpoint = endpoint,
		.identity = remote,
		.direction = direction,
		.protocol = t->protocol,
		.port = policy_port(t),
	};
	const struct policy_value *peer, *any;

	peer = bpf_map_lookup_elem(&porin_policy, &key);
	key.identity = 0;
	any = bpf_map_lookup_elem(&porin_policy, &key);

	if (!peer)
		return any;
	if (any && any->prefixlen > peer->prefixlen)
		return any;
	return peer;
}

/* The verdict of ep's policy for flow t with a peer of identity remote.
 * A NULL ep is not a local endpoint and has no policy. */
static __always_inline struct verdict
endpoint_verdict(const struct endpoint_value *ep, __u8 direction, __u32 remote,
		 const struct ct_key *t)
{
	__u32 enforced = direction == DIR_EGRESS ? ENDPOINT_F_EGRESS_ENFORCED :
						   ENDPOINT_F_INGRESS_ENFORCED;
	const struct policy_value *entry;

	if (!ep)
		return verdict_allow(direction);

	entry = policy_lookup(ep->id, direction, remote, t);
	if (!entry)
		return ep->flags & enforced ? verdict_deny(direction, DROP_POLICY_DENIED) :
					      verdict_allow(direction);

	/* ACTION_DENY, and fail closed on an action this datapath does not know. */
	if (entry->action != ACTION_ALLOW && entry->action != ACTION_REDIRECT)
		return verdict_deny(direction, entry->drop_reason);

	return (struct verdict){
		.action = entry->action,
		.direction = direction,
		.proxy_port = entry->proxy_port,
	};
}

/* A flow leaving src (NULL: not a local endpoint) for dst. The source's
 * egress policy decides; if it plainly allows and dst is local, dst's
 * ingress REDIRECT is honoured here, because only an ingress hook can hand
 * a packet to the proxy's socket. dst's ingress deny is left to to_pod. */
static __always_inline struct verdict
egress_verdict(const struct endpoint_value *src, const struct endpoint_value *dst,
	       __u32 src_identity, __u32 dst_identity, const struct ct_key *t)
{
	struct verdict egress, ingress;

	egress = endpoint_verdict(src, DIR_EGRESS, dst_identity, t);
	if (egress.action != ACTION_ALLOW)
		return egress;

	ingress = endpoint_verdict(dst, DIR_INGRESS, src_identity, t);
	return ingress.action == ACTION_REDIRECT ? ingress : egress;
}

/* A flow arriving at dst. A REDIRECT is satisfied when the flow comes from
 * the proxy; anything else bypassed the proxy it must pass, so fail closed. */
static __always_inline struct verdict
ingress_verdict(const struct endpoint_value *dst, __u32 src_identity,
		bool from_proxy, const struct ct_key *t)
{
	struct verdict v = endpoint_verdict(dst, DIR_INGRESS, src_identity, t);

	if (v.action != ACTION_REDIRECT)
		return v;
	if (!from_proxy)
		return verdict_deny(DIR_INGRESS, DROP_PROXY_REDIRECT_UNSUPPORTED);
	return verdict_allow(DIR_INGRESS);
}

#endif /* PORIN_POLICY_H */
