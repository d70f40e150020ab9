/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Structures and constants shared between the datapath and the agent.
 *
 * This header is the source of truth. host/src/datapath/abi.rs mirrors every
 * struct with #[repr(C)] and asserts sizes and field offsets; change both
 * together. Addresses and ports are in network byte order unless a field
 * says otherwise. IPv4 only.
 */
#ifndef PORIN_SHARED_H
#define PORIN_SHARED_H

#include <linux/types.h>

enum porin_direction {
	DIR_INGRESS = 0,
	DIR_EGRESS = 1,
};

/* ipcache: LPM trie, IPv4 prefix -> security identity. The agent always
 * installs 0.0.0.0/0 -> world, so every lookup succeeds. */
struct ipcache_key {
	__u32 prefixlen;
	__be32 addr;
};

struct ipcache_value {
	__u32 identity;
};

/* endpoints: hash, local pod IPv4 address -> endpoint. */
#define ENDPOINT_F_INGRESS_ENFORCED (1U << 0) /* default deny on ingress */
#define ENDPOINT_F_EGRESS_ENFORCED (1U << 1)  /* default deny on egress */

struct endpoint_value {
	__u32 id;       /* the endpoint's key in the policy map */
	__u32 identity;
	__u32 ifindex;  /* host side of the pod's veth (anti-spoofing) */
	__u32 flags;    /* ENDPOINT_F_* */
};

/* policy: LPM trie over (endpoint, remote identity, direction, protocol,
 * port). The first POLICY_PREFIX_FIXED bits are always part of the prefix;
 * an entry for a concrete protocol adds 8 bits, plus 0..16 bits of the
 * (aligned power-of-two) port block. identity 0 means "any peer": the
 * datapath looks up the peer's identity and 0, and the longer prefix wins,
 * the concrete identity on a tie (see host/src/policy/resolved.rs). */
#define POLICY_PREFIX_FIXED 72
#define POLICY_PREFIX_FULL 96

struct policy_key {
	__u32 prefixlen;
	__u32 endpoint;  /* host order */
	__u32 identity;  /* host order; 0 = any */
	__u8 direction;  /* enum porin_direction */
	__u8 protocol;   /* IPPROTO_*; 0 = any */
	__be16 port;
};

enum policy_action {
	ACTION_ALLOW = 1,
	ACTION_DENY = 2,
	ACTION_REDIRECT = 3,
};

struct policy_value {
	__u8 action;       /* enum policy_action */
	__u8 drop_reason;  /* Hubble drop reason code when action is DENY */
	__u8 prefixlen;    /* the key's prefixlen, to compare the two lookups */
	__u8 pad;
	__u16 proxy_port;  /* host order; the proxy's transparent port for REDIRECT */
	__u16 pad2;
};

/* config: array with one element. */
struct datapath_config {
	__u32 revision;  /* bumped by the agent after each policy change */
	__u32 flags;
};

/* conntrack: LRU hash. Keyed per direction because a pod-to-pod packet
 * passes both the source's from-pod and the destination's to-pod hook. The
 * tuple is the one of the flow's first packet; `direction` is the
 * direction of the endpoint that tracks it (EGRESS: it opened the flow). For
 * ICMP echo, sport is the echo id and dport 0. */
struct ct_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 protocol;
	__u8 direction;
	__u16 pad;
};

#define CT_F_REDIRECT (1U << 0)      /* steered to the L7 proxy */
#define CT_F_MARK_IDENTITY (1U << 1) /* source identity came from the proxy's mark */
#define CT_F_SEEN_REPLY (1U << 2)
#define CT_F_CLOSING (1U << 3)       /* FIN both ways, or RST, seen */
#define CT_F_FIN_ORIGINAL (1U << 4)  /* FIN from the side that opened the flow */
#define CT_F_FIN_REPLY (1U << 5)     /* FIN from the other side */

struct ct_entry {
	__u64 last_seen_ns;     /* bpf_ktime_get_ns() */
	__u32 revision;         /* config revision the verdict was computed at */
	__u32 remote_identity;
	__u16 proxy_port;       /* host order; for CT_F_REDIRECT */
	__u16 flags;            /* CT_F_* */
	__u32 pad;
	__u64 packets;
	__u64 bytes;
};

/* Marks. The proxy's upstream sockets carry the source identity:
 * identity << 16 | MARK_MAGIC_IDENTITY. Packets the datapath steers to the
 * proxy carry MARK_MAGIC_REDIRECT, which the agent's `ip rule` routes
 * to a table with `local 0.0.0.0/0 dev lo`. */
#define MARK_MAGIC_MASK 0xFFFF
#define MARK_MAGIC_IDENTITY 0x0A00
#define MARK_MAGIC_REDIRECT 0x0B00

/* Hubble drop reason codes (flow.proto DropReason). */
#define DROP_INVALID_SOURCE_IP 132
#define DROP_POLICY_DENIED 133
#define DROP_INVALID_PACKET 134
#define DROP_PROXY_LOOKUP_FAILED 137
#define DROP_PROXY_SET_FAILED 138
#define DROP_UNSUPPORTED_L3_PROTOCOL 139
#define DROP_CT_MAP_INSERTION_FAILED 155
#define DROP_PROXY_REDIRECT_UNSUPPORTED 180
#define DROP_POLICY_DENY 181

/* events: ring buffer, one per new flow, verdict change or drop. */
enum event_type {
	EVENT_FLOW = 1,    /* a new conntrack entry: verdict FORWARDED or REDIRECTED */
	EVENT_DROP = 2,
	EVENT_REVOKED = 3, /* an established flow that policy no longer allows */
};

enum event_verdict {
	VERDICT_FORWARDED = 1,
	VERDICT_DROPPED = 2,
	VERDICT_REDIRECTED = 3,
};

struct flow_event {
	__u64 timestamp_ns;   /* bpf_ktime_get_ns() */
	__be32 saddr;
	__be32 daddr;
	__be16 sport;         /* ICMP: type << 8 | code */
	__be16 dport;         /* ICMP: echo id, else 0 */
	__u32 src_identity;
	__u32 dst_identity;
	__u32 ifindex;
	__u8 protocol;
	__u8 type;            /* enum event_type */
	__u8 verdict;         /* enum event_verdict */
	__u8 drop_reason;     /* DROP_* when dropped */
	__u8 direction;       /* enum porin_direction of the enforcing endpoint */
	__u8 is_reply;
	__u16 proxy_port;     /* host order, when redirected */
	__u32 len;            /* packet length */
	__u32 pad;
};

/* counters: per-CPU array indexed by enum counter. */
enum counter {
	COUNTER_FORWARDED = 0,
	COUNTER_DROPPED,
	COUNTER_REDIRECTED,
	COUNTER_CT_CREATED,
	COUNTER_CT_FULL,
	COUNTER_REVALIDATED,
	COUNTER_REVOKED,
	COUNTER_EVENTS_LOST,
	COUNTER_MAX,
};

/* Services, translated at the socket (sock.c). porin_services: hash,
 * frontend (ClusterIP, port, protocol) -> service; porin_backends: hash,
 * (service id, slot 0..count-1) -> backend. The agent writes a service's
 * backend slots before raising its count and lowers the count before
 * removing slots, so a lookup never picks a missing slot. */
#define SERVICES_MAX 16384
#define BACKENDS_MAX 65536
#define SOCK_REVNAT_MAX 262144

struct service_key {
	__be32 address;
	__be16 port;
	__u8 protocol;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;
};

struct service_value {
	__u32 id;       /* the service's key in porin_backends */
	__u32 count;    /* backends; 0 refuses connections */
};

struct backend_key {
	__u32 service;  /* service_value.id */
	__u32 slot;
};

struct backend_value {
	__be32 address;
	__be16 port;
	__u16 pad;
};

/* sock_revnat: LRU hash, (socket, backend it was sent to) -> the frontend
 * the application asked for, so replies and getpeername() show the
 * frontend. Written only by sock.c. */
struct sock_revnat_key {
	__u64 cookie;   /* bpf_get_socket_cookie() */
	__be32 address; /* the backend */
	__be16 port;
	__u16 pad;
};

struct sock_revnat_value {
	__be32 address; /* the frontend */
	__be16 port;
	__u16 pad;
};

#endif /* PORIN_SHARED_H */
