/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connection tracking. An entry is keyed by its flow's first tuple and the
 * direction of the endpoint that tracks it: from_pod tracks the flows its
 * pod opens as DIR_EGRESS, to_pod the ones its pod accepts as DIR_INGRESS.
 * A packet at a hook whose endpoint direction is `out` is either a flow
 * tracked under (tuple, out) or the reply of one under (swapped, !out).
 *
 * Entries outlive policy changes only through revalidation: a hit whose
 * entry was computed at an older policy revision recomputes the verdict.
 */
#ifndef PORIN_CONNTRACK_H
#define PORIN_CONNTRACK_H

#include "common.h"
#include "events.h"
#include "identity.h"
#include "maps.h"
#include "parse.h"
#include "policy.h"

#define CT_LIFETIME_TCP (6 * 3600 * NSEC_PER_SEC)
#define CT_LIFETIME_TCP_CLOSING (10 * NSEC_PER_SEC)
#define CT_LIFETIME_OTHER (60 * NSEC_PER_SEC)
/* last_seen_ns is written at most this often, not on every packet. */
#define CT_REFRESH_INTERVAL NSEC_PER_SEC

static __always_inline __u8 direction_opposite(__u8 direction)
{
	return direction == DIR_EGRESS ? DIR_INGRESS : DIR_EGRESS;
}

static __always_inline struct ct_key ct_key_of(const struct ct_key *t, __u8 direction)
{
	return (struct ct_key){
		.saddr = t->saddr,
		.daddr = t->daddr,
		.sport = t->sport,
		.dport = t->dport,
		.protocol = t->protocol,
		.direction = direction,
	};
}

static __always_inline struct ct_key ct_key_swapped(const struct ct_key *t, __u8 direction)
{
	return (struct ct_key){
		.saddr = t->daddr,
		.daddr = t->saddr,
		.sport = t->dport,
		.dport = t->sport,
		.protocol = t->protocol,
		.direction = direction,
	};
}

static __always_inline __u64 ct_lifetime(const struct ct_key *key, const struct ct_entry *entry)
{
	if (key->protocol != IPPROTO_TCP)
		return CT_LIFETIME_OTHER;
	return entry->flags & CT_F_CLOSING ? CT_LIFETIME_TCP_CLOSING : CT_LIFETIME_TCP;
}

/* An expired entry counts as missing; the LRU reclaims it eventually. */
static __always_inline struct ct_entry *ct_lookup_live(const struct ct_key *key, __u64 now)
{
	struct ct_entry *entry = bpf_map_lookup_elem(&porin_ct, key);

	/* Not `now - last_seen`: another CPU may have stored a later time. */
	if (entry && now > entry->last_seen_ns + ct_lifetime(key, entry))
		return NULL;
	return entry;
}

/* The entry of f's flow and the key it is stored under, or NULL for a new
 * flow. Sets f->is_reply. */
static __always_inline struct ct_entry *ct_lookup(struct flow *f, struct ct_key *key)
{
	struct ct_entry *entry;

	*key = ct_key_of(&f->pkt.tuple, f->direction);
	entry = ct_lookup_live(key, f->now);
	if (entry)
		return entry;

	*key = ct_key_swapped(&f->pkt.tuple, direction_opposite(f->direction));
	entry = ct_lookup_live(key, f->now);
	f->is_reply = entry != NULL;
	return entry;
}

/* Whether an ICMP error quoting inner relates to a tracked flow. The quoted
 * packet crossed this endpoint in the other direction than the error, so it
 * is looked up as the opposite hook would: (inner, !out), then the reply
 * orientation (swapped inner, out). */
static __always_inline bool ct_related(const struct ct_key *inner, __u8 out, __u64 now)
{
	struct ct_key key = ct_key_of(inner, direction_opposite(out));

	if (ct_lookup_live(&key, now))
		return true;
	key = ct_key_swapped(inner, out);
	return ct_lookup_live(&key, now) != NULL;
}

/* Closing once both sides sent FIN (a half-closed connection still carries
 * data the other way) or after RST; a new SYN on the tuple starts over. */
static __always_inline __u16 ct_tcp_state(const struct flow *f, __u16 flags)
{
	const struct packet *pkt = &f->pkt;

	if (pkt->tuple.protocol != IPPROTO_TCP)
		return flags;
	if (tcp_is_syn(pkt))
		return flags & ~(CT_F_CLOSING | CT_F_FIN_ORIGINAL | CT_F_FIN_REPLY);
	if (pkt->tcp_flags & TH_FIN)
		flags |= f->is_reply ? CT_F_FIN_REPLY : CT_F_FIN_ORIGINAL;
	if ((pkt->tcp_flags & TH_RST) ||
	    ((flags & CT_F_FIN_ORIGINAL) && (flags & CT_F_FIN_REPLY)))
		flags |= CT_F_CLOSING;
	return flags;
}

static __always_inline void ct_refresh(struct ct_entry *entry, const struct flow *f, __u32 len)
{
	__u16 flags = ct_tcp_state(f, entry->flags);

	__sync_fetch_and_add(&entry->packets, 1);
	__sync_fetch_and_add(&entry->bytes, len);
	if (f->is_reply)
		flags |= CT_F_SEEN_REPLY;
	/* Written only on change: the entry's cache line is shared by CPUs. */
	if (flags != entry->flags)
		entry->flags = flags;
	if (f->now > entry->last_seen_ns + CT_REFRESH_INTERVAL)
		entry->last_seen_ns = f->now;
}

/* Tracks the new flow f under (tuple, f->direction). Returns 0 or a DROP_*
 * reason. */
static __always_inline int ct_create(const struct flow *f, const struct verdict *v,
				     __u32 remote_identity, __u16 flags, __u32 len)
{
	struct ct_key key = ct_key_of(&f->pkt.tuple, f->direction);
	struct ct_entry entry = {
		.last_seen_ns = f->now,
		.revision = f->revision,
		.remote_identity = remote_identity,
		.proxy_port = v->proxy_port,
		.flags = ct_tcp_state(f, flags),
		.packets = 1,
		.bytes = len,
	};

	if (v->action == ACTION_REDIRECT)
		entry.flags |= CT_F_REDIRECT;
	/* BPF_ANY: the key may still hold an expired entry. */
	if (bpf_map_update_elem(&porin_ct, &key, &entry, BPF_ANY) < 0) {
		count(COUNTER_CT_FULL);
		return DROP_CT_MAP_INSERTION_FAILED;
	}
	count(COUNTER_CT_CREATED);
	return 0;
}

/* The verdict a tracked flow would get as a new one now, from the point of
 * view of the endpoint that tracks it. *remote_identity is set to the peer's
 * current identity; an identity the proxy stamped stays as recorded. */
static __always_inline struct verdict
ct_flow_verdict(const struct ct_key *key, const struct ct_entry *entry, __u32 *remote_identity)
{
	bool egress = key->direction == DIR_EGRESS;
	bool from_proxy = entry->flags & CT_F_MARK_IDENTITY;
	__be32 local_addr = egress ? key->saddr : key->daddr;
	__be32 remote_addr = egress ? key->daddr : key->saddr;
	const struct endpoint_value *local = endpoint_lookup(local_addr);
	const struct endpoint_value *remote = endpoint_lookup(remote_addr);

	*remote_identity = from_proxy ? entry->remote_identity : identity_of(remote_addr, remote);
	if (egress)
		return egress_verdict(local, remote, identity_of(local_addr, local),
				      *remote_identity, key);
	return ingress_verdict(local, *remote_identity, from_proxy, key);
}

/* Brings an entry computed at an older policy revision up to date. Returns
 * false with *denial set when the flow is no longer allowed. */
static __always_inline bool ct_revalidate(const struct ct_key *key, struct ct_entry *entry,
					  __u32 revision, struct verdict *denial)
{
	__u32 remote_identity;
	struct verdict v;

	if (entry->revision == revision)
		return true;

	v = ct_flow_verdict(key, entry, &remote_identity);
	if (v.action == ACTION_DENY) {
		*denial = v;
		return false;
	}
	/* A connection cannot move into the proxy mid-stream (the proxy never
	 * saw its start); one already there stays, even if now plainly allowed. */
	if (v.action == ACTION_REDIRECT && !(entry->flags & CT_F_REDIRECT)) {
		*denial = verdict_deny(v.direction, DROP_POLICY_DENIED);
		return false;
	}

	entry->revision = revision;
	entry->remote_identity = remote_identity;
	count(COUNTER_REVALIDATED);
	return true;
}

#endif /* PORIN_CONNTRACK_H */
