/* SPDX-License-Identifier: Apache-2.0 */
/* Fixture the verifier must reject: a map value used without the NULL check.
 * test/bpf/native.test.ts expects openObject to throw with the verifier's
 * message ("invalid mem access 'map_value_or_null'"). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH); /* not ARRAY: since 6.13 the verifier knows a constant in-range ARRAY lookup is non-NULL */
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} bad_values SEC(".maps");

SEC("tc")
int bad_deref(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&bad_values, &zero);
	return (int)*v; /* no NULL check */
}

char LICENSE[] SEC("license") = "GPL";
