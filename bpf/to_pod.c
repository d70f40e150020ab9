/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * to_pod: tcx egress of a pod's host-side veth, i.e. packets the pod
 * receives. Enforces the pod's ingress policy. A REDIRECT verdict cannot be
 * carried out here (only an ingress hook can assign a socket): from_pod
 * steers such flows, and here they must arrive from the proxy.
 */
#include "lib/common.h"
#include "lib/conntrack.h"
#include "lib/events.h"
#include "lib/flow.h"
#include "lib/hooks.h"
#include "lib/identity.h"
#include "lib/parse.h"
#include "lib/policy.h"

SEC("classifier")
int to_pod(struct __sk_buff *skb)
{
	struct flow f = { .direction = DIR_INGRESS };
	const struct endpoint_value *dst;
	struct ct_entry *entry;
	struct ct_key key;
	struct verdict v;
	bool from_proxy;
	int ret;

	ret = parse_packet(skb, &f.pkt);
	if (ret == PARSE_PASS)
		return TC_ACT_UNSPEC;
	flow_start(&f);
	if (ret)
		return drop(skb, &f, ret);

	dst = endpoint_lookup(f.pkt.tuple.daddr);
	if (!dst)
		return TC_ACT_UNSPEC;
	from_proxy = mark_identity(skb, &f.src_identity);
	if (!from_proxy)
		f.src_identity = identity_of(f.pkt.tuple.saddr, endpoint_lookup(f.pkt.tuple.saddr));
	f.dst_identity = dst->identity;

	if (f.pkt.icmp_error)
		return flow_icmp_error(skb, &f);

	entry = ct_lookup(&f, &key);
	if (entry) {
		if (!flow_established(skb, &f, &key, entry))
			return TC_ACT_SHOT;
		return forward();
	}

	v = ingress_verdict(dst, f.src_identity, from_proxy, &f.pkt.tuple);
	if (v.action == ACTION_DENY)
		return drop_verdict(skb, &f, &v);

	if (!flow_admit(skb, &f, &v, f.src_identity, from_proxy ? CT_F_MARK_IDENTITY : 0))
		return TC_ACT_SHOT;
	return forward();
}

char _license[] SEC("license") = "Dual BSD/GPL";
