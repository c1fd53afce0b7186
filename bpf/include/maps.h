/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one map ABI shared by every Sluice BPF program (sock_lb.c, policy.c) and
 * mirrored by the TypeScript agent (bpf/agent/codec.ts, checked against this
 * object's BTF at load time).
 *
 * Rules of the ABI:
 *  - IPv4 addresses and ports are in network byte order everywhere.
 *  - Every struct has explicit padding; keys are zero-initialised on both sides
 *    so padding never makes a hash lookup miss.
 *  - Maps are pinned by name under the agent's pin directory
 *    (default /sys/fs/bpf/sluice/maps/<name>) and shared by both objects.
 */
#ifndef SLUICE_MAPS_H
#define SLUICE_MAPS_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

/* Slots in one service's Maglev table (a prime). */
#define SL_LB_SLOTS 1021

/* ---------------------------------------------------------------- identities
 * Numeric security identities, as Cilium numbers its reserved ones.
 * 0 in a policy key means "any peer". Endpoint identities start at 256;
 * CIDR identities have bit 24 set. */
#define SL_ID_ANY 0
#define SL_ID_HOST 1
#define SL_ID_WORLD 2     /* destination in no ipcache prefix */
#define SL_ID_INGRESS 8   /* the gateway's own sockets */

/* ---------------------------------------------------------------- services */

#define SL_PROTO_TCP 6
#define SL_PROTO_UDP 17
#define SL_PROTO_SCTP 132

struct sl_svc_key {
	__u32 vip;         /* be */
	__u16 port;        /* be */
	__u8 proto;        /* SL_PROTO_* */
	__u8 pad;
};

#define SL_SVC_MODE_RANDOM 0      /* a random slot per connection */
#define SL_SVC_MODE_AFFINITY 1    /* slot = hash(netns cookie, cgroup id, vip): a client stays on one endpoint */

struct sl_svc_val {
	__u32 svc_id;      /* key into sl_lb_tables */
	__u16 count;       /* endpoints in the table; 0 = connect() fails with ECONNREFUSED */
	__u8 mode;         /* SL_SVC_MODE_* */
	__u8 flags;        /* reserved, 0 */
};

struct sl_lb_table {
	__u32 backend_id[SL_LB_SLOTS];   /* keys into sl_backends */
};

struct sl_backend {
	__u32 ip;          /* be */
	__u16 port;        /* be */
	__u8 proto;
	__u8 flags;        /* reserved, 0 */
};

/* Reverse translation for recvmsg4/getpeername4: socket cookie + backend -> VIP. */
struct sl_revnat_key {
	__u64 cookie;
	__u32 ip;          /* backend, be */
	__u16 port;        /* be */
	__u16 pad;
};

struct sl_revnat_val {
	__u32 vip;         /* be */
	__u16 port;        /* be */
	__u16 pad;
};

/* ---------------------------------------------------------------- policy */

struct sl_ipcache_key {
	__u32 prefixlen;   /* LPM prefix over `ip` (0..32) */
	__u32 ip;          /* be */
};

struct sl_ipcache_val {
	__u32 identity;
	__u32 flags;       /* reserved, 0 */
};

#define SL_DIR_INGRESS 0   /* local = destination endpoint, remote = the gateway */
#define SL_DIR_EGRESS 1    /* local = the gateway, remote = destination */

/* LPM key: local, remote and direction are always whole (72 bits); protocol
 * (8 bits, prefixlen 80) and port (16 bits, prefixlen up to 96) may be
 * wildcarded by a shorter prefix. A port range is written as several
 * prefix-aligned entries. remote = SL_ID_ANY is its own entry (looked up second). */
struct sl_policy_key {
	__u32 prefixlen;
	__u32 local_id;
	__u32 remote_id;
	__u8 direction;    /* SL_DIR_* */
	__u8 proto;        /* SL_PROTO_* */
	__u16 dport;       /* be */
};
#define SL_POLICY_PREFIX_FIXED 72   /* local_id + remote_id + direction */
#define SL_POLICY_PREFIX_PROTO 80
#define SL_POLICY_PREFIX_FULL 96

struct sl_policy_val {
	__u32 rule_id;     /* the IR rule id, reported in events */
	__u32 flags;       /* reserved, 0 */
};

/* sl_enforced: identity -> SL_ENF_* flags. An identity absent from it is unrestricted. */
#define SL_ENF_INGRESS (1u << 0)        /* selected by an ingress policy: default deny at ingress */
#define SL_ENF_EGRESS (1u << 1)         /* selected by an egress policy: default deny at egress */
#define SL_ENF_AUDIT_INGRESS (1u << 2)  /* ingress verdicts are reported, never enforced */
#define SL_ENF_AUDIT_EGRESS (1u << 3)
#define SL_ENF_RULES_INGRESS (1u << 4)  /* has ingress rules but no default deny: a deny decides, a miss forwards */
#define SL_ENF_RULES_EGRESS (1u << 5)

/* ---------------------------------------------------------------- events and counters */

#define SL_VERDICT_FORWARDED 0
#define SL_VERDICT_DROPPED 1
#define SL_VERDICT_AUDIT 2   /* would have been dropped; audit mode forwarded it */

#define SL_REASON_NONE 0
#define SL_REASON_POLICY_DENY 1    /* an explicit deny rule matched */
#define SL_REASON_DEFAULT_DENY 2   /* enforced and no allow rule matched */
#define SL_REASON_NO_BACKEND 3     /* a VIP whose service has no endpoints */

#define SL_HOOK_CONNECT4 0
#define SL_HOOK_SENDMSG4 1
#define SL_HOOK_SKB_EGRESS 2

struct sl_flow_event {
	__u64 ts_ns;       /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	__u64 cookie;      /* socket cookie */
	__u32 src_ip;      /* be; 0 at connect time (not bound yet) */
	__u32 dst_ip;      /* be; the endpoint after translation */
	__u32 vip;         /* be; the VIP the socket asked for, 0 if it was not a service */
	__u16 src_port;    /* be */
	__u16 dst_port;    /* be */
	__u16 vip_port;    /* be */
	__u8 proto;
	__u8 verdict;      /* SL_VERDICT_* */
	__u8 reason;       /* SL_REASON_* */
	__u8 hook;         /* SL_HOOK_* */
	__u8 direction;    /* SL_DIR_* of the deciding check (ingress when no check decided) */
	__u8 pad;
	__u32 src_id;
	__u32 dst_id;
	__u32 rule_id;     /* 0 = no rule (default deny, or forwarded by no policy) */
	__u32 pad2;        /* sizeof = 56 */
};

/* sl_counters: PERCPU_ARRAY indexed by SL_CNT_*; userspace sums over possible CPUs. */
#define SL_CNT_FORWARDED 0
#define SL_CNT_DROPPED 1
#define SL_CNT_AUDIT 2
#define SL_CNT_LB_TRANSLATED 3
#define SL_CNT_DROP_POLICY_DENY 4
#define SL_CNT_DROP_DEFAULT_DENY 5
#define SL_CNT_DROP_NO_BACKEND 6
#define SL_CNT_EVENTS_LOST 7      /* ring buffer full */
#define SL_CNT_MAX 16

/* sl_config: ARRAY[1] of struct sl_config, written by the agent. */
#define SL_CFG_TRACE_FORWARDED (1u << 0)  /* also emit an event for every forwarded connect/sendmsg */
struct sl_config {
	__u32 flags;
	__u32 pad;
};

/* ---------------------------------------------------------------- the maps */

#define SL_MAX_SERVICES 65536
#define SL_MAX_BACKENDS 262144
#define SL_MAX_IPCACHE 262144
#define SL_MAX_POLICY 262144

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_SERVICES);
	__type(key, struct sl_svc_key);
	__type(value, struct sl_svc_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_services SEC(".maps");

/* A 4 KiB value in a HASH map: one update swaps a whole table under RCU (an ARRAY would be torn). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct sl_lb_table);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_lb_tables SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct sl_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SL_MAX_BACKENDS);
	__type(key, struct sl_revnat_key);
	__type(value, struct sl_revnat_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SL_MAX_IPCACHE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sl_ipcache_key);
	__type(value, struct sl_ipcache_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_ipcache SEC(".maps");

/* Two tries so that deny always wins: deny entries are looked up first. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SL_MAX_POLICY);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sl_policy_key);
	__type(value, struct sl_policy_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_policy_deny SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SL_MAX_POLICY);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sl_policy_key);
	__type(value, struct sl_policy_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_policy_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_MAX_IPCACHE);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_enforced SEC(".maps");

/* cgroup id (of the socket's cgroup) -> the identity its sockets carry as a source. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_cg_identity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SL_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_config SEC(".maps");

/* Sockets that opened a flow through connect4/sendmsg4 (outbound, policed). The
 * packet hook enforces only these: replies on connections the gateway accepted
 * never passed connect4 and must not be judged as if the gateway had opened them. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_sk_outbound SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_events SEC(".maps");

#endif /* SLUICE_MAPS_H */
