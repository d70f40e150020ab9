/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Counters, flow events and the pass/drop exits of both hooks. Events go
 * out per new flow, per drop and per revocation, never per forwarded packet
 * of an established flow.
 */
#ifndef PORIN_EVENTS_H
#define PORIN_EVENTS_H

#include "common.h"
#include "flow.h"
#include "maps.h"
#include "policy.h"

static __always_inline void count(enum counter counter)
{
	__u32 key = counter;
	__u64 *value;

	value = bpf_map_lookup_elem(&porin_counters, &key);
	if (value)
		*value += 1;
}

static __always_inline void emit_event(const struct __sk_buff *skb, const struct flow *f,
				       __u8 type, __u8 verdict, const struct verdict *v)
{
	const struct packet *pkt = &f->pkt;
	struct flow_event *event;

	event = bpf_ringbuf_reserve(&porin_events, sizeof(*event), 0);
	if (!event) {
		count(COUNTER_EVENTS_LOST);
		return;
	}

	event->timestamp_ns = f->now;
	event->saddr = pkt->tuple.saddr;
	event->daddr = pkt->tuple.daddr;
	if (pkt->tuple.protocol == IPPROTO_ICMP) {
		event->sport = bpf_htons(pkt->icmp_type << 8 | pkt->icmp_code);
		event->dport = pkt->icmp_echo_id;
	} else {
		event->sport = pkt->tuple.sport;
		event->dport = pkt->tuple.dport;
	}
	event->src_identity = f->src_identity;
	event->dst_identity = f->dst_identity;
	event->ifindex = skb->ifindex;
	event->protocol = pkt->tuple.protocol;
	event->type = type;
	event->verdict = verdict;
	event->drop_reason = v->drop_reason;
	event->direction = v->direction;
	event->is_reply = f->is_reply;
	event->proxy_port = v->proxy_port;
	event->len = skb->len;
	event->pad = 0;
	bpf_ringbuf_submit(event, 0);
}

/* TC_ACT_UNSPEC rather than TC_ACT_OK: later tcx programs still run. */
static __always_inline int forward(void)
{
	count(COUNTER_FORWARDED);
	return TC_ACT_UNSPEC;
}

static __always_inline int drop_verdict(const struct __sk_buff *skb, const struct flow *f,
					const struct verdict *v)
{
	count(COUNTER_DROPPED);
	emit_event(skb, f, EVENT_DROP, VERDICT_DROPPED, v);
	return TC_ACT_SHOT;
}

/* A drop the hook itself decides, not a policy entry. */
static __always_inline int drop(const struct __sk_buff *skb, const struct flow *f,
				__u8 reason)
{
	struct verdict v = verdict_deny(f->direction, reason);

	return drop_verdict(skb, f, &v);
}

#endif /* PORIN_EVENTS_H */
