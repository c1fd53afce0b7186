/* SPDX-License-Identifier: Apache-2.0 */
/* Fixture for test/bpf/native.test.ts and test/bench/bpf-maps.ts: one map of
 * each kind the agent uses, a tc program that writes to the ring buffer (run
 * through BPF_PROG_TEST_RUN) and a cgroup program to attach. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

/* btfStructs checks this layout: size 24, members at bits 0, 32, 48, 56, 64, 128, 160. */
struct fx_pair {
	__u32 a;
	__u16 b;
	__u8 c;
	__u8 pad;
	__u64 d;
	__u32 e;
	__u32 pad2;
};

/* One ring buffer sample: 16 bytes. */
struct fx_event {
	__u32 seq;     /* 0, 1, 2, ... across runs */
	__u32 magic;   /* FX_MAGIC */
	__u32 len;     /* skb->len of the run that emitted it */
	__u32 pad;
};
#define FX_MAGIC 0x51c3e7a1

/* u32 -> 8 bytes, room for the bench's 60k entries and the batch test's 10k. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fx_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct fx_pair);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fx_pairs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fx_percpu SEC(".maps");

/* Not pinned: each load gets a fresh one (the bench and the batch tests use it). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} fx_scratch SEC(".maps");

/* The next event sequence number. Not pinned, so every load starts at 0. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} fx_seq SEC(".maps");

/* 1 MiB: room for 5000 samples of 24 bytes (16 + 8 header) and more. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fx_events SEC(".maps");

/* Emits one event per run; returns the packet length so the test can check
 * that progTestRun passes data_in and reports retval. */
SEC("tc")
int fx_emit(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u64 *next = bpf_map_lookup_elem(&fx_seq, &zero);
	if (!next)
		return TC_ACT_SHOT;
	struct fx_event *e = bpf_ringbuf_reserve(&fx_events, sizeof(*e), 0);
	if (!e)
		return TC_ACT_SHOT;
	e->seq = (__u32)__sync_fetch_and_add(next, 1);
	e->magic = FX_MAGIC;
	e->len = skb->len;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return skb->len;
}

/* Counts egress packets of the cgroup it is attached to in fx_percpu[1], and
 * lets them pass. */
SEC("cgroup_skb/egress")
int fx_cg_egress(struct __sk_buff *skb)
{
	__u32 one = 1;
	__u64 *count = bpf_map_lookup_elem(&fx_percpu, &one);
	if (count)
		(*count)++;
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
