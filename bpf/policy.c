/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-packet L3/L4 policy for the gateway's sockets (cgroup_skb/egress).
 * connect4/sendmsg4 already refused denied flows and reported audits; this
 * hook enforces every packet of the flows they let through, e.g. when a policy
 * changed after the connection opened.
 * Only drops are reported here, so a flow is not reported once per packet.
 */
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include "policy_check.h"

char LICENSE[] SEC("license") = "GPL";   /* ringbuf and cgroup helpers are GPL-only */

#define SL_IP_FRAG_OFFSET 0x1fff   /* fragment offset bits of iphdr.frag_off (host order) */

SEC("cgroup_skb/egress")
int sl_skb_egress(struct __sk_buff *skb)
{
	struct sl_flow_event ev = {};
	struct sl_revnat_val *nat;
	struct bpf_sock *sk;
	struct iphdr ip;
	__u16 ports[2];

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return 1;
	/* Only flows the gateway opened (marked by connect4/sendmsg4): replies on
	 * accepted connections, request and time-wait sockets go to clients that no
	 * backend policy governs. The one socket without a protocol is the dummy
	 * BPF_PROG_TEST_RUN makes, which the unit tests use: it is judged. */
	sk = skb->sk;
	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	if (sk->protocol != 0 && !bpf_sk_storage_get(&sl_sk_outbound, sk, 0, 0))
		return 1;
	/* cgroup_skb data starts at the IP header. */
	if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
		return 1;
	/* Later fragments carry no ports; they are useless if the first one was dropped. */
	if (ip.frag_off & bpf_htons(SL_IP_FRAG_OFFSET))
		return 1;

	ev.hook = SL_HOOK_SKB_EGRESS;
	ev.src_ip = ip.saddr;
	ev.dst_ip = ip.daddr;
	ev.proto = ip.protocol;
	/* TCP, UDP and SCTP all start with source and destination port. */
	if (ip.protocol == IPPROTO_TCP || ip.protocol == IPPROTO_UDP || ip.protocol == IPPROTO_SCTP) {
		if (bpf_skb_load_bytes(skb, ip.ihl * 4, ports, sizeof(ports)) < 0)
			return 1;
		ev.src_port = ports[0];
		ev.dst_port = ports[1];
	}

	/* The cgroup of the socket that sent the packet (0 when it has none). */
	sl_policy_verdict(bpf_skb_cgroup_id(skb), &ev);
	sl_count_verdict(&ev);
	if (ev.verdict != SL_VERDICT_DROPPED)
		return 1;

	ev.cookie = bpf_get_socket_cookie(skb);
	nat = sl_revnat_lookup(ev.cookie, ev.dst_ip, ev.dst_port);
	if (nat) {
		ev.vip = nat->vip;
		ev.vip_port = nat->port;
	}
	sl_emit(&ev);
	return 0;
}
