// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * xskd_tools.bpf.c: the measuring instruments of xskd's benchmarks and pktgen.
 *
 *   xskd_tx    returns XDP_TX. Run with BPF_PROG_RUN + BPF_F_TEST_XDP_LIVE_FRAMES on a template
 *              frame it transmits that frame out of the "ingress" device (the method of
 *              xdp-trafficgen): on a veth the frames go through ndo_xdp_xmit straight into the
 *              peer's ring, no skb. If `vary_sport` (.rodata) is non-zero and the frame is an
 *              untagged IPv4/UDP frame, the UDP source port is set to
 *              sport_base + (per-CPU counter % vary_sport) and the UDP checksum is updated
 *              incrementally (0 stays 0), so one template yields many flows.
 *              The counter `tx_seen` (per CPU) counts frames the program saw.
 *   xskd_sink  counts packets and bytes per CPU (sink_stats[0], [1]) and returns `sink_action`
 *              (.rodata; XDP_DROP by default, XDP_PASS to count and let the stack have them).
 *              With `sink_only_ip` (.rodata) set, only untagged IPv4 and IPv6 frames are counted
 *              and given `sink_action`; everything else (ARP) goes to the stack uncounted, so a
 *              host whose traffic is sunk still answers ARP.
 *   xskd_fwd   counts like the sink and redirects every frame to fwd_ports[0] (a DEVMAP):
 *              the in-kernel forwarding ceiling of a port pair. With `fwd_drop_every` = N > 0
 *              (.rodata) it drops every Nth frame it sees instead (frames N, 2N, ...; counted
 *              in fwd_dropped), a deterministic lossy link for testing loss accounting.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} sink_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} tx_seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} fwd_ports SEC(".maps");

volatile const __u32 sink_action = XDP_DROP;
volatile const __u16 vary_sport = 0;
volatile const __u16 sport_base = 0;
volatile const __u32 fwd_drop_every = 0;
volatile const __u32 sink_only_ip = 0;

static __always_inline void count(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&sink_stats, &k);
	if (v)
		*v += 1;
	k = 1;
	v = bpf_map_lookup_elem(&sink_stats, &k);
	if (v)
		*v += (__u64)(ctx->data_end - ctx->data);
}

/* RFC 1624: HC' = ~(~HC + ~m + m'). */
static __always_inline __u16 csum_replace2(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check + (__u16)~old + new;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

SEC("xdp")
int xskd_tx(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *seen = bpf_map_lookup_elem(&tx_seen, &k);
	__u64 n = 0;
	if (seen) {
		n = *seen;
		*seen = n + 1;
	}
	if (vary_sport == 0)
		return XDP_TX;

	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 ||
	    ip->protocol != IPPROTO_UDP)
		return XDP_TX;
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return XDP_TX;
	__u16 port = bpf_htons((__u16)(sport_base + (__u16)(n % vary_sport)));
	if (udp->check)
		udp->check = csum_replace2(udp->check, udp->source, port) ?: 0xffff;
	udp->source = port;
	return XDP_TX;
}

SEC("xdp")
int xskd_sink(struct xdp_md *ctx)
{
	if (sink_only_ip) {
		void *data = (void *)(long)ctx->data;
		void *end = (void *)(long)ctx->data_end;
		struct ethhdr *eth = data;
		if ((void *)(eth + 1) > end)
			return XDP_PASS;
		if (eth->h_proto != bpf_htons(ETH_P_IP) && eth->h_proto != bpf_htons(ETH_P_IPV6))
			return XDP_PASS;
	}
	count(ctx);
	return sink_action;
}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} fwd_dropped SEC(".maps");

SEC("xdp")
int xskd_fwd(struct xdp_md *ctx)
{
	count(ctx);
	if (fwd_drop_every) {
		/* A shared (not per-CPU) counter so "every Nth" holds across CPUs; index 0 counts
		 * frames seen, 1 frames dropped. */
		__u32 k = 0;
		__u64 *seen = bpf_map_lookup_elem(&fwd_dropped, &k);
		if (seen) {
			__u64 n = __sync_fetch_and_add(seen, 1) + 1;
			if (n % fwd_drop_every == 0) {
				k = 1;
				__u64 *d = bpf_map_lookup_elem(&fwd_dropped, &k);
				if (d)
					__sync_fetch_and_add(d, 1);
				return XDP_DROP;
			}
		}
	}
	return bpf_redirect_map(&fwd_ports, 0, XDP_DROP);
}

char _license[] SEC("license") = "GPL";
