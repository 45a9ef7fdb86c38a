// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * xskd.bpf.c: the XDP program of xskd.
 *
 * It steers to the AF_XDP socket in xsks_map[ctx->rx_queue_index] only the traffic that the
 * configuration claims, and XDP_PASSes everything else to the kernel, so ARP, ICMP, SSH and any
 * unclaimed flow keep working on an interface that xskd runs on.
 *
 * Configuration (written by the loader, nic/src/xdp.rs, before the program is attached):
 *   claim_all  (.rodata)  1 = claim every frame without parsing it;
 *   n_rules    (.rodata)  number of valid entries in claim_rules (0..=MAX_RULES);
 *   claim_rules (ARRAY)   the rules, first match wins.
 * The rules are filled in before attach, so a half-written rule table is never in use.
 *
 * Parsing: Ethernet, at most one 802.1Q tag (TPID 0x8100), then IPv4 (header length from IHL)
 * or IPv6 (fixed 40-byte header only: extension headers are NOT walked, so for a packet with
 * extension headers the "protocol" is the first next-header value and it has no port), then the
 * UDP or TCP destination port. IPv4 non-first fragments have no port. A field that could not be
 * parsed is "absent": a rule that needs it does not match.
 *
 * Counters (xskd_stats, per CPU): every frame the program sees increments exactly one of
 *   REDIRECTED        claimed and handed to bpf_redirect_map() successfully;
 *   PASSED_UNCLAIMED  no rule matched (headers complete as far as parsed);
 *   PASSED_NO_SOCKET  claimed, but xsks_map has no socket for this rx queue: passed to the kernel;
 *   PARSE_SHORT       no rule matched and a header was truncated: passed to the kernel.
 * REDIRECTED counts the XDP verdict; drops behind it (full RX ring, empty fill ring) are in the
 * socket's XDP_STATISTICS.
 */
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_QUEUES 64
#define MAX_RULES 16

#ifndef ETH_P_8021Q
#define ETH_P_8021Q 0x8100
#endif

/* Counter indices of xskd_stats. Mirrored by nic::xdp::StatIndex (nic/src/xdp.rs); a unit test
 * there checks that both sides agree. */
enum xskd_stat {
	XSKD_STAT_REDIRECTED = 0,
	XSKD_STAT_PASSED_UNCLAIMED = 1,
	XSKD_STAT_PASSED_NO_SOCKET = 2,
	XSKD_STAT_PARSE_SHORT = 3,
	XSKD_STAT_MAX = 4,
};

/*
 * One claim rule, 28 bytes, alignment 2, no implicit padding. Mirrored by
 * nic::xdp::ClaimRuleRaw (#[repr(C)], same size and offsets asserted on both sides).
 *
 *   off size field
 *     0    2 ethertype   host byte order; 0 = any. Compared with the ethertype after the VLAN tag.
 *     2    1 proto       IP protocol (IPv4 protocol / IPv6 next header); 0 = any.
 *     3    1 family      0 = no destination match; 4 = IPv4; 6 = IPv6.
 *     4    1 prefix_len  destination prefix length in bits (<= 32 for IPv4, <= 128 for IPv6).
 *     5    3 pad         zero.
 *     8   16 dst         destination address in network byte order; IPv4 uses dst[0..4].
 *    24    2 port_lo     UDP/TCP destination port range, host byte order, inclusive;
 *    26    2 port_hi     port_lo = port_hi = 0 means any port (and no L4 header is needed).
 */
struct claim_rule {
	__u16 ethertype;
	__u8 proto;
	__u8 family;
	__u8 prefix_len;
	__u8 pad[3];
	__u8 dst[16];
	__u16 port_lo;
	__u16 port_hi;
};

_Static_assert(sizeof(struct claim_rule) == 28, "claim_rule layout changed: update ClaimRuleRaw");
_Static_assert(offsetof(struct claim_rule, proto) == 2, "claim_rule.proto offset");
_Static_assert(offsetof(struct claim_rule, family) == 3, "claim_rule.family offset");
_Static_assert(offsetof(struct claim_rule, prefix_len) == 4, "claim_rule.prefix_len offset");
_Static_assert(offsetof(struct claim_rule, dst) == 8, "claim_rule.dst offset");
_Static_assert(offsetof(struct claim_rule, port_lo) == 24, "claim_rule.port_lo offset");
_Static_assert(offsetof(struct claim_rule, port_hi) == 26, "claim_rule.port_hi offset");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_RULES);
	__type(key, __u32);
	__type(value, struct claim_rule);
} claim_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XSKD_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} xskd_stats SEC(".maps");

/* Patched by the loader in .rodata before load. */
const volatile __u8 claim_all = 0;
const volatile __u32 n_rules = 0;

/* What the parser found. A field is valid only if its have_* flag is set. */
struct pkt {
	__u16 ethertype; /* host order, after the optional VLAN tag */
	__u8 have_ip;    /* 4 or 6 when an IP header was parsed, else 0 */
	__u8 proto;
	__u8 have_port;
	__u8 short_hdr;  /* some header was truncated */
	__u16 dport;     /* host order */
	__u8 dst[16];    /* network order; IPv4 in dst[0..4] */
};

static __always_inline int count(__u32 idx, int action)
{
	__u64 *v = bpf_map_lookup_elem(&xskd_stats, &idx);

	if (v)
		*v += 1;
	return action;
}

static __always_inline void parse_l4(struct pkt *p, void *l4, void *data_end)
{
	if (p->proto != IPPROTO_UDP && p->proto != IPPROTO_TCP)
		return;
	/* The destination port is at offset 2 in both UDP and TCP. */
	if (l4 + 4 > data_end) {
		p->short_hdr = 1;
		return;
	}
	p->dport = bpf_ntohs(((struct udphdr *)l4)->dest);
	p->have_port = 1;
}

static __always_inline void parse(struct pkt *p, void *data, void *data_end)
{
	struct ethhdr *eth = data;
	void *l3;

	if ((void *)(eth + 1) > data_end) {
		p->short_hdr = 1;
		return;
	}
	p->ethertype = bpf_ntohs(eth->h_proto);
	l3 = eth + 1;
	if (p->ethertype == ETH_P_8021Q) {
		/* 802.1Q tag: TCI (2 bytes) then the encapsulated ethertype (2 bytes). */
		if (l3 + 4 > data_end) {
			p->short_hdr = 1;
			return;
		}
		p->ethertype = bpf_ntohs(*(__be16 *)(l3 + 2));
		l3 += 4;
	}

	if (p->ethertype == ETH_P_IP) {
		struct iphdr *ip = l3;
		__u32 hlen;

		if ((void *)(ip + 1) > data_end) {
			p->short_hdr = 1;
			return;
		}
		hlen = ip->ihl * 4;
		if (hlen < sizeof(*ip)) {
			p->short_hdr = 1;
			return;
		}
		p->have_ip = 4;
		p->proto = ip->protocol;
		__builtin_memcpy(p->dst, &ip->daddr, 4);
		if (ip->frag_off & bpf_htons(0x1fff))
			return; /* non-first fragment: no L4 header */
		parse_l4(p, l3 + hlen, data_end);
	} else if (p->ethertype == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > data_end) {
			p->short_hdr = 1;
			return;
		}
		p->have_ip = 6;
		p->proto = ip6->nexthdr; /* no extension-header walk */
		__builtin_memcpy(p->dst, &ip6->daddr, 16);
		parse_l4(p, (void *)(ip6 + 1), data_end);
	}
}

/* Byte-wise prefix compare of the first prefix_len bits; the last byte may be partial. */
static __always_inline int prefix6_match(const __u8 *addr, const __u8 *want, __u32 plen)
{
#pragma unroll
	for (int i = 0; i < 16; i++) {
		__u32 bit = i * 8;

		if (plen <= bit)
			return 1;
		if (plen >= bit + 8) {
			if (addr[i] != want[i])
				return 0;
		} else {
			__u8 mask = (__u8)(0xff << (8 - (plen - bit)));

			return ((addr[i] ^ want[i]) & mask) == 0;
		}
	}
	return 1;
}

static __always_inline int prefix4_match(const __u8 *addr, const __u8 *want, __u32 plen)
{
	__u32 a, w, mask;

	if (plen == 0)
		return 1;
	if (plen > 32)
		plen = 32;
	__builtin_memcpy(&a, addr, 4);
	__builtin_memcpy(&w, want, 4);
	mask = bpf_htonl(0xffffffffu << (32 - plen));
	return ((a ^ w) & mask) == 0;
}

static __always_inline int rule_match(const struct claim_rule *r, const struct pkt *p)
{
	if (r->ethertype && r->ethertype != p->ethertype)
		return 0;
	if (r->proto && (!p->have_ip || r->proto != p->proto))
		return 0;
	if (r->family == 4) {
		if (p->have_ip != 4 || !prefix4_match(p->dst, r->dst, r->prefix_len))
			return 0;
	} else if (r->family == 6) {
		if (p->have_ip != 6 || !prefix6_match(p->dst, r->dst, r->prefix_len))
			return 0;
	} else if (r->family != 0) {
		return 0; /* unknown family: never matches */
	}
	if (r->port_lo || r->port_hi) {
		if (!p->have_port || p->dport < r->port_lo || p->dport > r->port_hi)
			return 0;
	}
	return 1;
}

static __always_inline int claimed(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct pkt p = {};
	__u32 n = n_rules;

	parse(&p, data, data_end);
	if (n > MAX_RULES)
		n = MAX_RULES;
	for (__u32 i = 0; i < MAX_RULES; i++) {
		const struct claim_rule *r;
		__u32 key = i;

		if (i >= n)
			break;
		r = bpf_map_lookup_elem(&claim_rules, &key);
		if (!r)
			break;
		if (rule_match(r, &p))
			return 1;
	}
	return p.short_hdr ? -1 : 0;
}

SEC("xdp")
int xskd_xdp(struct xdp_md *ctx)
{
	__u32 qid = ctx->rx_queue_index;
	int act;

	if (!claim_all) {
		int c = claimed(ctx);

		if (c < 0)
			return count(XSKD_STAT_PARSE_SHORT, XDP_PASS);
		if (c == 0)
			return count(XSKD_STAT_PASSED_UNCLAIMED, XDP_PASS);
	}
	if (!bpf_map_lookup_elem(&xsks_map, &qid))
		return count(XSKD_STAT_PASSED_NO_SOCKET, XDP_PASS);
	/* The socket can go away between the lookup and the redirect: the fallback action is
	 * XDP_PASS, counted as "no socket". */
	act = bpf_redirect_map(&xsks_map, qid, XDP_PASS);
	if (act != XDP_REDIRECT)
		return count(XSKD_STAT_PASSED_NO_SOCKET, act);
	return count(XSKD_STAT_REDIRECTED, act);
}

/* Not GPL-compatible on purpose: the program uses no GPL-only helper. */
char LICENSE[] SEC("license") = "MIT OR Apache-2.0";
