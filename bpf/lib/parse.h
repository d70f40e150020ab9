/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet parsing: Ethernet, IPv4 and the L4 fields policy and conntrack key
 * on. Headers are copied with bpf_skb_load_bytes(), which bounds-checks
 * against the whole skb, so non-linear packets (and the quoted header deep
 * inside an ICMP error) need no pulling.
 */
#ifndef PORIN_PARSE_H
#define PORIN_PARSE_H

#include "common.h"

#define PARSE_OK 0
#define PARSE_PASS 1 /* not IPv4 but let through (ARP); else a DROP_* reason */

#define IPV4_MF 0x2000
#define IPV4_FRAG_OFFSET 0x1fff

/* <linux/icmp.h> pulls in libc headers that do not build for BPF. */
#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

struct icmp_header {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 echo_id;
	__be16 echo_sequence;
};

#define TCP_FLAGS_OFFSET 13
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_ACK 0x10

struct packet {
	struct ct_key tuple;  /* direction unset; ICMP echo id in a port */
	struct ct_key inner;  /* ICMP error: the tuple of the packet it quotes */
	__be16 icmp_echo_id;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 tcp_flags;
	bool icmp_error;
};

/* A connection's first packet: SYN without ACK. */
static __always_inline bool tcp_is_syn(const struct packet *pkt)
{
	return pkt->tuple.protocol == IPPROTO_TCP &&
	       (pkt->tcp_flags & (TH_SYN | TH_ACK)) == TH_SYN;
}

static __always_inline bool icmp_is_error(__u8 type)
{
	return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED ||
	       type == ICMP_PARAMETERPROB;
}

static __always_inline bool icmp_is_echo(__u8 type)
{
	return type == ICMP_ECHO || type == ICMP_ECHOREPLY;
}

/* Fills addresses and protocol from the IPv4 header at off. Fragments are
 * refused: a non-first fragment carries no ports for policy to match, and
 * the datapath keeps no fragment state to relate it to its first one. */
static __always_inline int parse_ipv4(struct __sk_buff *skb, __u32 off,
				      struct ct_key *t, __u32 *l4_off)
{
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)) < 0)
		return DROP_INVALID_PACKET;
	if (ip.version != 4 || ip.ihl < 5)
		return DROP_INVALID_PACKET;
	if (ip.frag_off & bpf_htons(IPV4_MF | IPV4_FRAG_OFFSET))
		return DROP_INVALID_PACKET;

	t->saddr = ip.saddr;
	t->daddr = ip.daddr;
	t->protocol = ip.protocol;
	*l4_off = off + ip.ihl * 4;
	return PARSE_OK;
}

/* Fills the conntrack ports from the L4 header at off. An ICMP echo request
 * keys as (sport = id, dport = 0) and its reply as (0, id), so a reply's
 * swapped tuple is its request's; other ICMP messages key with ports 0. */
static __always_inline int parse_l4(struct __sk_buff *skb, __u32 off,
				    struct ct_key *t, struct icmp_header *icmp)
{
	struct {
		__be16 source;
		__be16 dest;
	} ports;

	switch (t->protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		if (bpf_skb_load_bytes(skb, off, &ports, sizeof(ports)) < 0)
			return DROP_INVALID_PACKET;
		t->sport = ports.source;
		t->dport = ports.dest;
		break;
	case IPPROTO_ICMP:
		if (bpf_skb_load_bytes(skb, off, icmp, sizeof(*icmp)) < 0)
			return DROP_INVALID_PACKET;
		if (icmp->type == ICMP_ECHO)
			t->sport = icmp->echo_id;
		else if (icmp->type == ICMP_ECHOREPLY)
			t->dport = icmp->echo_id;
		break;
	}
	return PARSE_OK;
}

/* The header an ICMP error quotes: IPv4 plus at least 8 bytes of L4. */
static __always_inline int parse_icmp_error(struct __sk_buff *skb, __u32 off,
					    struct ct_key *inner)
{
	struct icmp_header icmp;
	__u32 l4_off;
	int ret;

	ret = parse_ipv4(skb, off, inner, &l4_off);
	if (ret)
		return ret;
	return parse_l4(skb, l4_off, inner, &icmp);
}

/* Returns PARSE_OK with pkt filled, PARSE_PASS, or the DROP_* reason. */
static __always_inline int parse_packet(struct __sk_buff *skb, struct packet *pkt)
{
	struct icmp_header icmp;
	__u32 l4_off;
	int ret;

	if (skb->protocol == bpf_htons(ETH_P_ARP))
		return PARSE_PASS;
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return DROP_UNSUPPORTED_L3_PROTOCOL;

	ret = parse_ipv4(skb, ETH_HLEN, &pkt->tuple, &l4_off);
	if (ret)
		return ret;
	ret = parse_l4(skb, l4_off, &pkt->tuple, &icmp);
	if (ret)
		return ret;

	switch (pkt->tuple.protocol) {
	case IPPROTO_TCP:
		if (bpf_skb_load_bytes(skb, l4_off + TCP_FLAGS_OFFSET,
				       &pkt->tcp_flags, sizeof(pkt->tcp_flags)) < 0)
			return DROP_INVALID_PACKET;
		break;
	case IPPROTO_ICMP:
		pkt->icmp_type = icmp.type;
		pkt->icmp_code = icmp.code;
		if (icmp_is_echo(icmp.type))
			pkt->icmp_echo_id = icmp.echo_id;
		if (icmp_is_error(icmp.type)) {
			pkt->icmp_error = true;
			return parse_icmp_error(skb, l4_off + sizeof(icmp), &pkt->inner);
		}
		break;
	}
	return PARSE_OK;
}

#endif /* PORIN_PARSE_H */
