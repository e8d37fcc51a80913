/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The layout shared by scheduler.bpf.c and crates/packet/src/xdp/maps.rs: every struct here
 * has a #[repr(C)] twin there, and every constant a Rust constant of the same name; the Rust
 * side asserts sizes and offsets. Little-endian hosts only (x86-64, arm64), as the bucket
 * hash reads its key words little-endian.
 */
#ifndef PENTAFLOW_SCHEDULER_H
#define PENTAFLOW_SCHEDULER_H

#include <linux/types.h>

/* balance: BUCKET_HASH_SEED ("PFLW") and BUCKET_KEY_LEN. */
#define PF_BUCKET_HASH_SEED 0x50464c57u
#define PF_BUCKET_KEY_LEN 20u
/* balance: BucketEntry::UNASSIGNED. */
#define PF_UNASSIGNED 0xffffu

#define PF_MAX_SERVICES 16
#define PF_MAX_NODES 1024
#define PF_EVENTS_BYTES (256 * 1024)
/* Entries of the next-node sequence (a power of two). */
#define PF_NEXT_LEN 1024

#define PF_IP_MF 0x2000
#define PF_IP_OFFSET_MASK 0x1fff

/* Counters: 0..7 are frames of ours dropped, by DropReason::index() of the Rust core (in its
 * order); 8..15 frames not ours passed to the kernel, by the same reason (PF_STAT_PASSED +
 * index); then the rest. */
#define PF_STAT_TRUNCATED 0
#define PF_STAT_NOT_IP 1
#define PF_STAT_MALFORMED 2
#define PF_STAT_FRAGMENT 3
#define PF_STAT_UNSUPPORTED_PROTOCOL 4
#define PF_STAT_NOT_VIP 5
#define PF_STAT_UNSERVED_PORT 6
#define PF_STAT_NO_NODE 7
#define PF_STAT_PASSED 8
/* IPv6 frames, passed to the kernel unexamined (this data plane's VIP is IPv4). */
#define PF_STAT_IPV6 16
#define PF_STAT_FORWARDED 17
#define PF_STAT_LOCAL 18
#define PF_STAT_ASSIGNED 19
#define PF_STAT_EVENTS_LOST 20
#define PF_STAT_COUNT 21

/* balance's BucketEntry { node: u16, reserved: [u16; 3], last_used: u64 }: the first word
 * holds the node in its low 16 bits (little-endian) so one 64-bit compare-and-swap assigns. */
struct pf_bucket {
	__u64 word;
	__u64 last_used;
};

struct pf_service {
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 reserved;
	__u16 port; /* network order */
};

struct pf_config {
	__u32 vip; /* network order */
	__u32 bucket_mask;
	__u16 self_id;
	__u8 lan_mac[6];
	__u8 accepting;
	__u8 n_services;
	__u16 reserved;
	struct pf_service services[PF_MAX_SERVICES];
};

struct pf_next {
	__u32 cursor;      /* entries taken since user space last wrote the sequence */
	__u32 len;         /* entries valid; 0 = no eligible node */
	__u64 alive_until; /* user space's lease (CLOCK_MONOTONIC ns), renewed every turn */
	__u32 nodes[PF_NEXT_LEN];
};

struct pf_node {
	__u8 mac[6];
	__u8 alive;
	__u8 reserved;
};

struct pf_event {
	__u32 bucket;
	__u16 node;
	__u16 reserved;
	__u64 at;
};

#endif
