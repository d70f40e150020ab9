/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * from_pod: tcx ingress of a pod's host-side veth, i.e. packets the pod
 * sends. Enforces the pod's egress policy and steers flows that an egress
 * or the destination's ingress policy redirects to the L7 proxy.
 */
#include "lib/common.h"
#include "lib/conntrack.h"
#include "lib/events.h"
#include "lib/flow.h"
#include "lib/hooks.h"
#include "lib/identity.h"
#include "lib/parse.h"
#include "lib/policy.h"
#include "lib/redirect.h"

SEC("classifier")
int from_pod(struct __sk_buff *skb)
{
	struct flow f = { .direction = DIR_EGRESS };
	const struct endpoint_value *src, *dst;
	struct ct_entry *entry;
	struct ct_key key;
	struct verdict v;
	int ret;

	ret = parse_packet(skb, &f.pkt);
	if (ret == PARSE_PASS)
		return TC_ACT_UNSPEC;
	flow_start(&f);
	if (ret)
		return drop(skb, &f, ret);

	/* This hook sits only on pods' veths: a source that is not the pod
	 * behind this interface is spoofed, and would dodge its egress policy. */
	src = endpoint_lookup(f.pkt.tuple.saddr);
	dst = endpoint_lookup(f.pkt.tuple.daddr);
	f.src_identity = identity_of(f.pkt.tuple.saddr, src);
	f.dst_identity = identity_of(f.pkt.tuple.daddr, dst);
	if (!src || src->ifindex != skb->ifindex)
		return drop(skb, &f, DROP_INVALID_SOURCE_IP);

	if (f.pkt.icmp_error)
		return flow_icmp_error(skb, &f);

	entry = ct_lookup(&f, &key);
	if (entry) {
		if (!flow_established(skb, &f, &key, entry))
			return TC_ACT_SHOT;
		/* Every packet of a proxied flow goes to the proxy; its replies
		 * come from the proxy and never pass here. */
		if (!f.is_reply && (entry->flags & CT_F_REDIRECT))
			return redirect(skb, &f, entry->proxy_port);
		return forward();
	}

	v = egress_verdict(src, dst, f.src_identity, f.dst_identity, &f.pkt.tuple);
	if (v.action == ACTION_DENY)
		return drop_verdict(skb, &f, &v);
	if (v.action == ACTION_REDIRECT && !proxy_supports(f.pkt.tuple.protocol))
		return drop(skb, &f, DROP_PROXY_REDIRECT_UNSUPPORTED);

	if (!flow_admit(skb, &f, &v, f.dst_identity, 0))
		return TC_ACT_SHOT;
	if (v.action == ACTION_REDIRECT)
		return redirect(skb, &f, v.proxy_port);
	return forward();
}

char _license[] SEC("license") = "Dual BSD/GPL";
