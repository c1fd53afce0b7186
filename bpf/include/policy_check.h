/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The L3/L4 policy verdict, counters and flow events, shared by sock_lb.c
 * (connect4/sendmsg4: fail fast) and policy.c (cgroup_skb/egress: every
 * packet). The policy check lives here once; both objects include it.
 */
#ifndef SLUICE_POLICY_CHECK_H
#define SLUICE_POLICY_CHECK_H

#include <stdbool.h>
#include <linux/bpf.h>   /* before maps.h: bpf_helpers.h and the map types need it */
#include "maps.h"

/* Per-CPU counter: no atomics needed. */
static __always_inline void sl_count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&sl_counters, &idx);

	if (c)
		*c += 1;
}

static __always_inline bool sl_trace_forwarded(void)
{
	__u32 zero = 0;
	struct sl_config *cfg = bpf_map_lookup_elem(&sl_config, &zero);

	return cfg && (cfg->flags & SL_CFG_TRACE_FORWARDED);
}

/* The VIP a socket asked for, if it was translated to this backend; NULL otherwise. */
static __always_inline struct sl_revnat_val *sl_revnat_lookup(__u64 cookie, __u32 ip, __u16 port)
{
	struct sl_revnat_key k = {};

	k.cookie = cookie;
	k.ip = ip;
	k.port = port;
	return bpf_map_lookup_elem(&sl_revnat, &k);
}

/* Copies a filled event into the ring; a full ring is counted, never retried.
 * A real function, not inlined: its prototype puts struct sl_flow_event into
 * the object's BTF, where the agent checks its codec (a ringbuf map has no
 * value type to carry it). */
static __noinline void sl_emit(const struct sl_flow_event *ev)
{
	struct sl_flow_event *e = bpf_ringbuf_reserve(&sl_events, sizeof(*e), 0);

	if (!e) {
		sl_count(SL_CNT_EVENTS_LOST);
		return;
	}
	*e = *ev;
	e->ts_ns = bpf_ktime_get_ns();
	bpf_ringbuf_submit(e, 0);
}

/* Counts one decision: its verdict, and for drops also the reason. */
static __always_inline void sl_count_verdict(const struct sl_flow_event *ev)
{
	if (ev->verdict == SL_VERDICT_FORWARDED) {
		sl_count(SL_CNT_FORWARDED);
		return;
	}
	if (ev->verdict == SL_VERDICT_AUDIT) {
		sl_count(SL_CNT_AUDIT);
		return;
	}
	sl_count(SL_CNT_DROPPED);
	if (ev->reason == SL_REASON_POLICY_DENY)
		sl_count(SL_CNT_DROP_POLICY_DENY);
	else if (ev->reason == SL_REASON_DEFAULT_DENY)
		sl_count(SL_CNT_DROP_DEFAULT_DENY);
	else if (ev->reason == SL_REASON_NO_BACKEND)
		sl_count(SL_CNT_DROP_NO_BACKEND);
}

/* Fills ev->src_id from the socket's cgroup. False: the socket has no
 * identity (not the gateway's), so no policy applies to it. */
static __always_inline bool sl_source_identity(__u64 cgroup_id, struct sl_flow_event *ev)
{
	__u32 *id = bpf_map_lookup_elem(&sl_cg_identity, &cgroup_id);

	if (!id)
		return false;
	ev->src_id = *id;
	return true;
}

static __always_inline __u32 sl_identity_of(__u32 ip)
{
	struct sl_ipcache_key k = { .prefixlen = 32, .ip = ip };
	struct sl_ipcache_val *v = bpf_map_lookup_elem(&sl_ipcache, &k);

	return v ? v->identity : SL_ID_WORLD;
}

/* A rule for exactly this remote first, then one for any remote. The key
 * carries the full proto and port; the trie's longest-prefix match lets
 * entries with shorter prefixes stand for any port or any protocol. */
static __always_inline struct sl_policy_val *sl_rule_lookup(void *trie, struct sl_policy_key *k, __u32 remote)
{
	struct sl_policy_val *v;

	k->remote_id = remote;
	v = bpf_map_lookup_elem(trie, k);
	if (v)
		return v;
	k->remote_id = SL_ID_ANY;
	return bpf_map_lookup_elem(trie, k);
}

/* One direction's check for an enforced local identity: deny rules first
 * (deny always wins), then allow rules, else default deny. Writes the matching
 * rule id (0 for default deny) and returns SL_REASON_NONE when allowed. */
static __always_inline __u8 sl_check_direction(__u32 local, __u32 remote, __u8 dir, __u8 proto, __u16 dport,
					       __u32 *rule_id)
{
	struct sl_policy_key k = {};
	struct sl_policy_val *v;

	k.prefixlen = SL_POLICY_PREFIX_FULL;
	k.local_id = local;
	k.direction = dir;
	k.proto = proto;
	k.dport = dport;

	v = sl_rule_lookup(&sl_policy_deny, &k, remote);
	if (v) {
		*rule_id = v->rule_id;
		return SL_REASON_POLICY_DENY;
	}
	v = sl_rule_lookup(&sl_policy_allow, &k, remote);
	if (v) {
		*rule_id = v->rule_id;
		return SL_REASON_NONE;
	}
	*rule_id = 0;
	return SL_REASON_DEFAULT_DENY;
}

/* Runs one direction's check (if `flags` enforce it) and folds it into ev.
 * An enforced denial decides at once. An audited denial is kept as the
 * verdict only while no enforced denial follows: audit mode on one side must
 * not switch off enforcement on the other. */
static __always_inline void sl_apply_direction(struct sl_flow_event *ev, __u32 flags, __u32 enforce_bit,
					       __u32 rules_bit, __u32 audit_bit, __u32 local, __u32 remote, __u8 dir)
{
	__u32 rule_id;
	__u8 reason;

	if (!(flags & (enforce_bit | rules_bit)))
		return;
	reason = sl_check_direction(local, remote, dir, ev->proto, ev->dst_port, &rule_id);
	/* Without default deny (enableDefaultDeny: false) only explicit deny rules refuse. */
	if (reason == SL_REASON_DEFAULT_DENY && !(flags & enforce_bit))
		return;
	if (reason == SL_REASON_NONE) {
		if (ev->verdict == SL_VERDICT_FORWARDED) {
			ev->rule_id = rule_id;
			ev->direction = dir;
		}
		return;
	}
	if ((flags & audit_bit) && ev->verdict == SL_VERDICT_AUDIT)
		return;   /* the first audited denial already explains it */
	ev->verdict = (flags & audit_bit) ? SL_VERDICT_AUDIT : SL_VERDICT_DROPPED;
	ev->reason = reason;
	ev->rule_id = rule_id;
	ev->direction = dir;
}

/*
 * The policy verdict for a flow from the socket in cgroup `cgroup_id` to
 * ev->dst_ip:ev->dst_port (ev->proto). Sets verdict, reason, direction,
 * src_id, dst_id and rule_id; the caller counts and reports it.
 */
static __always_inline void sl_policy_verdict(__u64 cgroup_id, struct sl_flow_event *ev)
{
	__u32 *flags;

	ev->verdict = SL_VERDICT_FORWARDED;
	ev->reason = SL_REASON_NONE;
	ev->direction = SL_DIR_INGRESS;
	ev->rule_id = 0;
	if (!sl_source_identity(cgroup_id, ev))
		return;
	ev->dst_id = sl_identity_of(ev->dst_ip);

	flags = bpf_map_lookup_elem(&sl_enforced, &ev->src_id);
	if (flags)
		sl_apply_direction(ev, *flags, SL_ENF_EGRESS, SL_ENF_RULES_EGRESS, SL_ENF_AUDIT_EGRESS, ev->src_id, ev->dst_id,
				   SL_DIR_EGRESS);
	if (ev->verdict == SL_VERDICT_DROPPED)
		return;
	flags = bpf_map_lookup_elem(&sl_enforced, &ev->dst_id);
	if (flags)
		sl_apply_direction(ev, *flags, SL_ENF_INGRESS, SL_ENF_RULES_INGRESS, SL_ENF_AUDIT_INGRESS, ev->dst_id, ev->src_id,
				   SL_DIR_INGRESS);
}

#endif /* SLUICE_POLICY_CHECK_H */
