/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Socket-level load balancing: a connect()/sendmsg() to a service VIP is
 * rewritten to one of its endpoints before any packet exists, so the dataplane
 * talks to endpoints directly and no per-packet NAT is needed. The policy
 * check runs here too, so a denied connect() fails at once with ECONNREFUSED
 * instead of retrying SYNs into a silent drop.
 *
 *   cgroup/connect4      TCP and connected UDP
 *   cgroup/sendmsg4      unconnected UDP, per datagram
 *   cgroup/recvmsg4      reply source shows the VIP again
 *   cgroup/getpeername4  the peer name shows the VIP again
 */
#include <linux/errno.h>
#include "policy_check.h"

char LICENSE[] SEC("license") = "GPL";   /* ringbuf and cgroup helpers are GPL-only */

/* Client affinity: one client (netns + cgroup) always maps to the same slot
 * of a VIP's table. The source address is not bound yet at connect(). */
static __always_inline __u32 sl_affinity_hash(__u64 netns_cookie, __u64 cgroup_id, __u32 vip)
{
	__u64 h = netns_cookie;

	h = (h ^ (h >> 31)) * 0x9e3779b97f4a7c15ULL + cgroup_id;
	h = (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ULL + vip;
	h = (h ^ (h >> 32)) * 0x94d049bb133111ebULL;
	return (__u32)(h ^ (h >> 32));
}

/* The endpoint for this connection or datagram; NULL when the service has none
 * (no endpoints, or a table/backend the agent has not written). */
static __always_inline struct sl_backend *sl_pick_backend(struct bpf_sock_addr *ctx, const struct sl_svc_val *svc,
							  __u32 vip)
{
	struct sl_lb_table *table;
	__u32 slot;

	if (svc->count == 0)
		return NULL;
	if (svc->mode == SL_SVC_MODE_AFFINITY)
		slot = sl_affinity_hash(bpf_get_netns_cookie(ctx), bpf_get_current_cgroup_id(), vip) % SL_LB_SLOTS;
	else
		slot = bpf_get_prandom_u32() % SL_LB_SLOTS;
	/* clang 14 proves slot < SL_LB_SLOTS and drops the check below, but
	 * the verifier cannot prove it: keep the check. */
	barrier_var(slot);
	if (slot >= SL_LB_SLOTS)
		return NULL;
	table = bpf_map_lookup_elem(&sl_lb_tables, &svc->svc_id);
	if (!table)
		return NULL;
	return bpf_map_lookup_elem(&sl_backends, &table->backend_id[slot]);
}

/* Counts a decision; reports drops and audits, forwards only when tracing. */
static __always_inline void sl_report(const struct sl_flow_event *ev)
{
	sl_count_verdict(ev);
	if (ev->verdict != SL_VERDICT_FORWARDED || sl_trace_forwarded())
		sl_emit(ev);
}

/* connect() fails with ECONNREFUSED (0 alone would be EPERM); sendmsg() gets EPERM. */
static __always_inline int sl_refuse(__u8 hook)
{
	if (hook == SL_HOOK_CONNECT4)
		bpf_set_retval(-ECONNREFUSED);
	return 0;
}

/* VIP -> endpoint for connect4 and sendmsg4, with the policy check on the endpoint. */
static __always_inline int sl_translate(struct bpf_sock_addr *ctx, __u8 hook)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct sl_flow_event ev = {};
	struct sl_svc_key key = {};
	struct sl_svc_val *svc;
	struct sl_backend *be;
	struct sl_revnat_key rk = {};
	struct sl_revnat_val rv = {};

	ev.cookie = bpf_get_socket_cookie(ctx);
	ev.dst_ip = ctx->user_ip4;
	ev.dst_port = (__u16)ctx->user_port;
	ev.proto = (__u8)ctx->protocol;
	ev.hook = hook;

	key.vip = ev.dst_ip;
	key.port = ev.dst_port;
	key.proto = ev.proto;
	svc = bpf_map_lookup_elem(&sl_services, &key);
	if (svc) {
		ev.vip = ev.dst_ip;
		ev.vip_port = ev.dst_port;
		be = sl_pick_backend(ctx, svc, ev.vip);
		if (!be) {
			sl_source_identity(cgroup_id, &ev);
			ev.verdict = SL_VERDICT_DROPPED;
			ev.reason = SL_REASON_NO_BACKEND;
			sl_report(&ev);
			return sl_refuse(hook);
		}
		ev.dst_ip = be->ip;
		ev.dst_port = be->port;
	}

	sl_policy_verdict(cgroup_id, &ev);
	sl_report(&ev);
	if (ev.verdict == SL_VERDICT_DROPPED)
		return sl_refuse(hook);
	/* From now on the packet hook polices this socket (see sl_sk_outbound). */
	if (ctx->sk)
		bpf_sk_storage_get(&sl_sk_outbound, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!svc)
		return 1;

	ctx->user_ip4 = ev.dst_ip;
	ctx->user_port = ev.dst_port;
	rk.cookie = ev.cookie;
	rk.ip = ev.dst_ip;
	rk.port = ev.dst_port;
	rv.vip = ev.vip;
	rv.port = ev.vip_port;
	bpf_map_update_elem(&sl_revnat, &rk, &rv, BPF_ANY);
	sl_count(SL_CNT_LB_TRANSLATED);
	return 1;
}

/* endpoint -> VIP for addresses the socket reads back. Must return 1. */
static __always_inline int sl_reverse(struct bpf_sock_addr *ctx)
{
	struct sl_revnat_val *v = sl_revnat_lookup(bpf_get_socket_cookie(ctx), ctx->user_ip4, (__u16)ctx->user_port);

	if (v) {
		ctx->user_ip4 = v->vip;
		ctx->user_port = v->port;
	}
	return 1;
}

SEC("cgroup/connect4")
int sl_connect4(struct bpf_sock_addr *ctx)
{
	return sl_translate(ctx, SL_HOOK_CONNECT4);
}

SEC("cgroup/sendmsg4")
int sl_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sl_translate(ctx, SL_HOOK_SENDMSG4);
}

SEC("cgroup/recvmsg4")
int sl_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sl_reverse(ctx);
}

SEC("cgroup/getpeername4")
int sl_getpeername4(struct bpf_sock_addr *ctx)
{
	return sl_reverse(ctx);
}
