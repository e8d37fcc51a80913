// SPDX-License-Identifier: Apache-2.0
//
// pentaflow's scheduler data plane in XDP: what crates/packet/src/scheduler.rs does per frame,
// in the kernel, before an skb exists.
//
// Owns: parsing Ethernet/IPv4/TCP+UDP exactly as `frame::parse_flow` does (same order of
// checks, so the same drop reason), the VIP and served-port checks, the bucket lookup with the
// bucket hash of `pentaflow_balance::bucket_hash` (lookup3/jhash over the 20-byte key, IPv4 as
// ::ffff:a.b.c.d), the last-access stamp (bpf_ktime_get_ns = CLOCK_MONOTONIC, the clock of the
// Rust data plane), the MAC rewrite, and reporting every new assignment on a ring buffer.
//
// Must not: choose a node by policy. The least-assigned-per-weight choice stays in user space
// (balance's BucketTable, the one policy in the code base); it pre-computes the "next" node,
// the program only takes it. A bucket whose node is gone or dead takes "next" too, as
// `BucketTable::route` does.
//
// What reaches the kernel's stack (XDP_PASS) and what is dropped: a frame is *ours* when it is
// IPv4 with the VIP as destination. Ours and routable: XDP_TX to the node's MAC, or XDP_PASS
// when the scheduler serves it itself (no TAP: the VIP is on lo). Ours and not routable
// (fragment, bad header, unserved port, ICMP, no node, takeover hold): XDP_DROP, as the
// AF_PACKET path's nftables rule drops it. Not ours (ARP, IPv6, VLAN-tagged, other
// destinations, frames too short to show a destination): XDP_PASS, the kernel decides.
// Every frame is counted once in pf_stats under the reason the Rust core would count, apart
// for dropped (ours) and passed (not ours) frames.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "scheduler.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* The bucket table: the same 16-byte entries as balance's BucketEntry. Sized by the loader;
 * mmapable, so user space reads last-access times and swaps assignments without syscalls. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct pf_bucket);
	__uint(max_entries, 1 << 16);
} pf_buckets SEC(".maps");

/* Addressing and services: one entry, written by user space before the program is attached. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct pf_config);
	__uint(max_entries, 1);
} pf_config SEC(".maps");

/* The nodes user space computed that the next new buckets take, in order: the sequence the
 * least-assigned rule gives from the current counts (balance's `least_assigned`, applied
 * again after each pick). The program takes one entry per assignment with an atomic cursor;
 * user space rewrites the sequence (cursor back to 0) whenever it has heard of assignments or
 * the nodes changed. So a burst of new flows spreads as the Rust core spreads it, without
 * the policy living here. Mmapable: rewriting it costs no system call. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct pf_next);
	__uint(max_entries, 1);
} pf_next SEC(".maps");

/* Node id -> MAC and liveness. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct pf_node);
	__uint(max_entries, PF_MAX_NODES);
} pf_nodes SEC(".maps");

/* Frames forwarded per node id (per CPU: no atomics on the hot path). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, PF_MAX_NODES);
} pf_node_tx SEC(".maps");

/* Counters (PF_STAT_*), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, PF_STAT_COUNT);
} pf_stats SEC(".maps");

/* New assignments, for replication and the supervisor. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PF_EVENTS_BYTES);
} pf_events SEC(".maps");

static __always_inline void count(__u32 stat)
{
	__u64 *c = bpf_map_lookup_elem(&pf_stats, &stat);
	if (c)
		*c += 1;
}

static __always_inline __u32 rol32(__u32 x, int k)
{
	return (x << k) | (x >> (32 - k));
}

/* lookup3 hashlittle() over the 20-byte bucket key, unrolled: the key's five little-endian
 * words are 0, 0, 0xffff0000 (the ::ffff: prefix), the address and the port (both as they lie
 * in the packet, network order, read little-endian — what balance's `jhash` reads). */
static __always_inline __u32 pf_bucket_hash_v4(__u32 addr_raw, __u16 port_raw)
{
	__u32 a, b, c;
	a = b = c = 0xdeadbeef + PF_BUCKET_KEY_LEN + PF_BUCKET_HASH_SEED;
	/* words 0..2, then mix() */
	c += 0xffff0000;
	a -= c; a ^= rol32(c, 4);  c += b;
	b -= a; b ^= rol32(a, 6);  a += c;
	c -= b; c ^= rol32(b, 8);  b += a;
	a -= c; a ^= rol32(c, 16); c += b;
	b -= a; b ^= rol32(a, 19); a += c;
	c -= b; c ^= rol32(b, 4);  b += a;
	/* words 3..4 and the zero tail, then final() */
	a += addr_raw;
	b += (__u32)port_raw;
	c ^= b; c -= rol32(b, 14);
	a ^= c; a -= rol32(c, 11);
	b ^= a; b -= rol32(a, 25);
	c ^= b; c -= rol32(b, 16);
	a ^= c; a -= rol32(c, 4);
	b ^= a; b -= rol32(a, 14);
	c ^= b; c -= rol32(b, 24);
	return c;
}

/* A frame that is ours is dropped when it cannot be routed; any other is the kernel's. */
static __always_inline int refuse(__u32 stat, int ours)
{
	count(ours ? stat : PF_STAT_PASSED + stat);
	return ours ? XDP_DROP : XDP_PASS;
}

static __always_inline void report(__u32 bucket, __u32 node, __u64 now)
{
	struct pf_event *ev = bpf_ringbuf_reserve(&pf_events, sizeof(*ev), 0);
	if (!ev) {
		/* User space reconciles from the map (a periodic full read); count the gap. */
		count(PF_STAT_EVENTS_LOST);
		return;
	}
	ev->bucket = bucket;
	ev->node = (__u16)node;
	ev->reserved = 0;
	ev->at = now;
	bpf_ringbuf_submit(ev, 0);
}

SEC("xdp")
int pf_scheduler(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 zero = 0;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return refuse(PF_STAT_TRUNCATED, 0);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		count(PF_STAT_IPV6);
		return XDP_PASS;
	}
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return refuse(PF_STAT_NOT_IP, 0);

	struct pf_config *cfg = bpf_map_lookup_elem(&pf_config, &zero);
	if (!cfg)
		return XDP_PASS;

	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)ip + sizeof(*ip) > end)
		return refuse(PF_STAT_TRUNCATED, 0);
	int ours = ip->daddr == cfg->vip;
	if (ip->version != 4)
		return refuse(PF_STAT_MALFORMED, ours);
	__u32 ihl = (__u32)ip->ihl * 4;
	if (ihl < sizeof(*ip))
		return refuse(PF_STAT_MALFORMED, ours);
	if ((void *)ip + ihl > end)
		return refuse(PF_STAT_TRUNCATED, ours);
	if (ip->frag_off & bpf_htons(PF_IP_MF | PF_IP_OFFSET_MASK))
		return refuse(PF_STAT_FRAGMENT, ours);

	void *l4 = (void *)ip + ihl;
	__u16 sport, dport;
	__u8 proto = ip->protocol;
	if (proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) > end)
			return refuse(PF_STAT_TRUNCATED, ours);
		__u32 doff = (__u32)tcp->doff * 4;
		if (doff < sizeof(*tcp))
			return refuse(PF_STAT_MALFORMED, ours);
		if (l4 + doff > end)
			return refuse(PF_STAT_TRUNCATED, ours);
		sport = tcp->source;
		dport = tcp->dest;
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;
		if ((void *)(udp + 1) > end)
			return refuse(PF_STAT_TRUNCATED, ours);
		sport = udp->source;
		dport = udp->dest;
	} else {
		return refuse(PF_STAT_UNSUPPORTED_PROTOCOL, ours);
	}
	if (!ours)
		return refuse(PF_STAT_NOT_VIP, 0);

	int served = 0;
#pragma unroll
	for (int i = 0; i < PF_MAX_SERVICES; i++) {
		if (i < cfg->n_services && cfg->services[i].proto == proto &&
		    cfg->services[i].port == dport)
			served = 1;
	}
	if (!served)
		return refuse(PF_STAT_UNSERVED_PORT, 1);
	/* A takeover's live-bucket merge is running: hold every flow (TCP retransmits). */
	if (!cfg->accepting)
		return refuse(PF_STAT_NO_NODE, 1);

	__u32 bucket = pf_bucket_hash_v4(ip->saddr, sport) & cfg->bucket_mask;
	struct pf_bucket *e = bpf_map_lookup_elem(&pf_buckets, &bucket);
	if (!e)
		return refuse(PF_STAT_NO_NODE, 1);
	__u64 now = bpf_ktime_get_ns();

	__u64 word = e->word;
	__u32 node = (__u32)(word & 0xffff);
	struct pf_node *n = 0;
	if (node != PF_UNASSIGNED)
		n = bpf_map_lookup_elem(&pf_nodes, &node);
	if (!n || !n->alive) {
		/* Unassigned, or its node died or left: take the next pre-computed node. */
		struct pf_next *next = bpf_map_lookup_elem(&pf_next, &zero);
		if (!next)
			return refuse(PF_STAT_NO_NODE, 1);
		/* User space died (its lease ran out; the program outlives it on purpose, see
		 * sys::set_xdp): keep forwarding established buckets, assign no new ones — a
		 * new scheduler elsewhere owns them, and nobody here would replicate them. */
		if (now > next->alive_until)
			return refuse(PF_STAT_NO_NODE, 1);
		__u32 len = next->len;
		if (len == 0 || len > PF_NEXT_LEN)
			return refuse(PF_STAT_NO_NODE, 1);
		__u32 at = __sync_fetch_and_add(&next->cursor, 1);
		/* Past the end (user space is behind): keep taking the last one. */
		if (at >= len)
			at = len - 1;
		__u32 want = next->nodes[at & (PF_NEXT_LEN - 1)];
		if (want == PF_UNASSIGNED)
			return refuse(PF_STAT_NO_NODE, 1);
		n = bpf_map_lookup_elem(&pf_nodes, &want);
		if (!n || !n->alive)
			return refuse(PF_STAT_NO_NODE, 1);
		/* Another CPU may assign the same bucket at the same moment: one wins, the loser
		 * routes to the winner's node, and only the winner reports. */
		__u64 old = __sync_val_compare_and_swap(&e->word, word, (__u64)want);
		if (old == word) {
			node = want;
			count(PF_STAT_ASSIGNED);
			report(bucket, node, now);
		} else {
			node = (__u32)(old & 0xffff);
			n = bpf_map_lookup_elem(&pf_nodes, &node);
			if (!n || !n->alive)
				return refuse(PF_STAT_NO_NODE, 1);
		}
	}
	e->last_used = now;

	if (node == cfg->self_id) {
		/* Served here: the stack takes it as addressed to us (the VIP is on lo). */
		__builtin_memcpy(eth->h_dest, cfg->lan_mac, ETH_ALEN);
		count(PF_STAT_LOCAL);
		return XDP_PASS;
	}
	/* Destination the node, source us: the bridge must not learn the client's MAC on our
	 * port (DESIGN.md, field notes). */
	__builtin_memcpy(eth->h_dest, n->mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->lan_mac, ETH_ALEN);
	count(PF_STAT_FORWARDED);
	__u64 *tx = bpf_map_lookup_elem(&pf_node_tx, &node);
	if (tx) {
		*tx += 1;
	} else {
		__u64 one = 1;
		bpf_map_update_elem(&pf_node_tx, &node, &one, BPF_NOEXIST);
	}
	return XDP_TX;
}

/* For the golden vectors only: hashes the 4-byte address and 2-byte port at the start of the
 * frame with the program's own function and writes the 32-bit result (little-endian) after
 * them, so a test through BPF_PROG_TEST_RUN reads the C side's full hash. Never attached. */
SEC("xdp")
int pf_hash_probe(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if (data + 10 > end)
		return XDP_ABORTED;
	__u32 addr = *(__u32 *)data;
	__u16 port = *(__u16 *)(data + 4);
	__u32 h = pf_bucket_hash_v4(addr, port);
	__builtin_memcpy(data + 6, &h, sizeof(h));
	return XDP_PASS;
}
