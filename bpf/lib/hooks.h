/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The steps from_pod and to_pod share once they know their flow. */
#ifndef PORIN_HOOKS_H
#define PORIN_HOOKS_H

#include "common.h"
#include "conntrack.h"
#include "events.h"
#include "flow.h"
#include "maps.h"
#include "policy.h"

/* Reads what every verdict of this packet is computed at. */
static __always_inline void flow_start(struct flow *f)
{
	f->now = bpf_ktime_get_ns();
	f->revision = policy_revision();
}

/* ICMP errors never start flows: they pass only for a tracked one. */
static __always_inline int flow_icmp_error(const struct __sk_buff *skb, const struct flow *f)
{
	if (!ct_related(&f->pkt.inner, f->direction, f->now))
		return drop(skb, f, DROP_POLICY_DENIED);
	return forward();
}

/* A packet of a tracked flow, found under key. Returns false when the
 * current policy revoked the flow: the entry is gone, the event sent, and
 * the caller drops the packet. */
static __always_inline bool flow_established(const struct __sk_buff *skb, const struct flow *f,
					     const struct ct_key *key, struct ct_entry *entry)
{
	struct verdict denial;

	if (ct_revalidate(key, entry, f->revision, &denial)) {
		ct_refresh(entry, f, skb->len);
		return true;
	}

	bpf_map_delete_elem(&porin_ct, key);
	count(COUNTER_REVOKED);
	count(COUNTER_DROPPED);
	emit_event(skb, f, EVENT_REVOKED, VERDICT_DROPPED, &denial);
	return false;
}

/* Tracks a new flow that verdict v admits and reports it. Returns false
 * when it could not be tracked: the packet was dropped. */
static __always_inline bool flow_admit(const struct __sk_buff *skb, const struct flow *f,
				       const struct verdict *v, __u32 remote_identity, __u16 flags)
{
	int reason = ct_create(f, v, remote_identity, flags, skb->len);

	if (reason) {
		drop(skb, f, reason);
		return false;
	}
	emit_event(skb, f, EVENT_FLOW,
		   v->action == ACTION_REDIRECT ? VERDICT_REDIRECTED : VERDICT_FORWARDED, v);
	return true;
}

#endif /* PORIN_HOOKS_H */
