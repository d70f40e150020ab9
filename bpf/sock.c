/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Service translation at the socket, as Cilium's socket load balancer does
 * it: cgroup sock_addr programs rewrite a ClusterIP:port to one of the
 * service's backends when the application connects (connect4) or sends an
 * unconnected datagram (sendmsg4), and show the ClusterIP again where the
 * application reads its peer (recvmsg4, getpeername4). Packets therefore
 * leave the pod addressed to the backend pod, and the tc programs see the
 * backend's identity: no per-packet NAT, no conntrack for services.
 *
 * Every program allows the call (returns 1), except connect4 and sendmsg4
 * for a service without backends: they return 0, which fails the call with
 * EPERM (the kernel offers no ECONNREFUSED here). Addresses that are no
 * service pass untouched.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "lib/shared.h"

#define SYS_PROCEED 1
#define SYS_REJECT 0

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct service_key);
	__type(value, struct service_value);
	__uint(max_entries, SERVICES_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} porin_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct backend_key);
	__type(value, struct backend_value);
	__uint(max_entries, BACKENDS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} porin_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct sock_revnat_key);
	__type(value, struct sock_revnat_value);
	__uint(max_entries, SOCK_REVNAT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} porin_sock_revnat SEC(".maps");

/* Points the socket address at a backend if it is a service frontend.
 * SYS_REJECT only for a service without (reachable) backends. */
static __always_inline int translate(struct bpf_sock_addr *ctx, __u8 protocol)
{
	struct service_key key = {
		.address = ctx->user_ip4,
		/* user_port holds the network-order port in its low 16 bits. */
		.port = (__be16)ctx->user_port,
		.protocol = protocol,
	};
	struct sock_revnat_value frontend = { .address = key.address, .port = key.port };
	const struct service_value *service;
	const struct backend_value *backend;
	struct sock_revnat_key revnat = {};
	struct backend_key slot;

	service = bpf_map_lookup_elem(&porin_services, &key);
	if (!service)
		return SYS_PROCEED;
	if (!service->count)
		return SYS_REJECT;
	slot.service = service->id;
	slot.slot = bpf_get_prandom_u32() % service->count;
	backend = bpf_map_lookup_elem(&porin_backends, &slot);
	if (!backend)
		return SYS_REJECT;

	revnat.cookie = bpf_get_socket_cookie(ctx);
	revnat.address = backend->address;
	revnat.port = backend->port;
	/* Without the record replies would show the backend: refuse instead. */
	if (bpf_map_update_elem(&porin_sock_revnat, &revnat, &frontend, BPF_ANY))
		return SYS_REJECT;
	ctx->user_ip4 = backend->address;
	ctx->user_port = (__u32)backend->port;
	return SYS_PROCEED;
}

/* Shows the frontend in place of a backend this socket was translated to. */
static __always_inline void reverse(struct bpf_sock_addr *ctx)
{
	struct sock_revnat_key revnat = {
		.cookie = bpf_get_socket_cookie(ctx),
		.address = ctx->user_ip4,
		.port = (__be16)ctx->user_port,
	};
	const struct sock_revnat_value *frontend;

	frontend = bpf_map_lookup_elem(&porin_sock_revnat, &revnat);
	if (!frontend)
		return;
	ctx->user_ip4 = frontend->address;
	ctx->user_port = (__u32)frontend->port;
}

/* connect() of TCP and UDP sockets. */
SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	if (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP)
		return SYS_PROCEED;
	return translate(ctx, ctx->protocol);
}

/* sendto()/sendmsg() with an address on an unconnected UDP socket. */
SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return translate(ctx, IPPROTO_UDP);
}

/* recvfrom()/recvmsg() on a UDP socket: the datagram's source address. */
SEC("cgroup/recvmsg4")
int sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	reverse(ctx);
	return SYS_PROCEED;
}

/* getpeername() of a connected socket. */
SEC("cgroup/getpeername4")
int sock_getpeername4(struct bpf_sock_addr *ctx)
{
	reverse(ctx);
	return SYS_PROCEED;
}

char _license[] SEC("license") = "Dual BSD/GPL";
