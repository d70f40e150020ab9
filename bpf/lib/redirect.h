/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Steering packets to the L7 proxy. The proxy listens with IP_TRANSPARENT on
 * 0.0.0.0:proxy_port in the node's netns; a packet assigned to its socket
 * keeps its original destination, which is how the proxy learns it. The
 * redirect mark makes the agent's `ip rule` route the packet locally.
 *
 * Each lookup sits in its own non-inlined function and releases its
 * reference before returning: the two lookups return different socket
 * pointer types, which the verifier will not merge into one variable.
 */
#ifndef PORIN_REDIRECT_H
#define PORIN_REDIRECT_H

#include "common.h"
#include "events.h"
#include "flow.h"

static __always_inline bool proxy_supports(__u8 protocol)
{
	return protocol == IPPROTO_TCP || protocol == IPPROTO_UDP;
}

static __always_inline int assign_and_release(struct __sk_buff *skb, struct bpf_sock *sk)
{
	long err = bpf_sk_assign(skb, sk, 0);

	bpf_sk_release(sk);
	return err ? DROP_PROXY_SET_FAILED : 0;
}

/* The proxy's socket for a connection it already accepted (or is
 * accepting): its local address is the original destination. Listeners on
 * that address are not the proxy's. TIME_WAIT sockets are taken too: the
 * listener cannot accept a SYN whose tuple one still holds, while the
 * TIME_WAIT socket's answer gets the client to clear it and retry. */
static __noinline int assign_established(struct __sk_buff *skb, struct bpf_sock_tuple *tuple)
{
	struct bpf_sock *sk;

	sk = bpf_skc_lookup_tcp(skb, tuple, sizeof(tuple->ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return DROP_PROXY_LOOKUP_FAILED;
	if (sk->state == BPF_TCP_LISTEN) {
		bpf_sk_release(sk);
		return DROP_PROXY_LOOKUP_FAILED;
	}
	return assign_and_release(skb, sk);
}

/* The proxy's listener: the tuple with the proxy port as destination. */
static __noinline int assign_listener(struct __sk_buff *skb, struct bpf_sock_tuple *tuple,
				      __u8 protocol)
{
	struct bpf_sock *sk;

	if (protocol == IPPROTO_TCP)
		sk = bpf_sk_lookup_tcp(skb, tuple, sizeof(tuple->ipv4), BPF_F_CURRENT_NETNS, 0);
	else
		sk = bpf_sk_lookup_udp(skb, tuple, sizeof(tuple->ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return DROP_PROXY_LOOKUP_FAILED;
	return assign_and_release(skb, sk);
}

/* Hands the packet of f to the proxy on proxy_port. Returns TC_ACT_OK (the
 * socket assignment must not be overridden by later programs) or drops. */
static __always_inline int redirect(struct __sk_buff *skb, const struct flow *f,
				    __u16 proxy_port)
{
	struct bpf_sock_tuple tuple = {
		.ipv4 = {
			.saddr = f->pkt.tuple.saddr,
			.daddr = f->pkt.tuple.daddr,
			.sport = f->pkt.tuple.sport,
			.dport = f->pkt.tuple.dport,
		},
	};
	int reason = DROP_PROXY_LOOKUP_FAILED;

	if (f->pkt.tuple.protocol == IPPROTO_TCP)
		reason = assign_established(skb, &tuple);
	if (reason == DROP_PROXY_LOOKUP_FAILED) {
		tuple.ipv4.dport = bpf_htons(proxy_port);
		reason = assign_listener(skb, &tuple, f->pkt.tuple.protocol);
	}
	if (reason)
		return drop(skb, f, reason);

	skb->mark = MARK_MAGIC_REDIRECT;
	count(COUNTER_REDIRECTED);
	return TC_ACT_OK;
}

#endif /* PORIN_REDIRECT_H */
