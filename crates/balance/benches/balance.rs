//! Criterion benches of the per-packet and per-request decisions.
//!
//! Run with `cargo bench -p pentaflow-balance`. The numbers to watch: `bucket_route_hit` is paid
//! for every inbound packet on the scheduler; the others once per request on a node.

// criterion_group!/criterion_main! generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion};
use pentaflow_balance::hash::stable_hash;
use pentaflow_balance::{
    least_connections, url_hash_pick, BackendId, BucketTable, Candidate, CookieCodec,
    NodeCandidate, NodeId,
};

fn backends(n: u32) -> Vec<Candidate> {
    (0..n)
        .map(|i| Candidate {
            id: BackendId::from_name(&format!("web{i}")),
            weight: 1 + i % 3,
            available: true,
            active: (i * 7) % 5,
        })
        .collect()
}

fn bucket_route(c: &mut Criterion) {
    let nodes: Vec<NodeCandidate> = (1..=3)
        .map(|i| NodeCandidate {
            id: NodeId(i),
            weight: 1,
            enabled: true,
            alive: true,
        })
        .collect();
    let mut table = BucketTable::new(65_536).expect("valid size");
    for b in 0..table.len() {
        table.route(b, &nodes, 0);
    }
    let mut port = 1024u16;
    let mut now = 0u64;
    c.bench_function("bucket_route_hit", |b| {
        b.iter(|| {
            port = port.wrapping_add(1);
            now += 1;
            let ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, (port & 0xff) as u8));
            let bucket = table.bucket_of(black_box(ip), black_box(port));
            table.route(bucket, &nodes, now)
        });
    });
}

fn url_hash(c: &mut Criterion) {
    let pool = backends(8);
    let keys: Vec<u64> = (0..1024u32)
        .map(|i| stable_hash(format!("/item/{i}").as_bytes()))
        .collect();
    let mut i = 0usize;
    c.bench_function("url_hash_pick_8", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            url_hash_pick(black_box(keys[i]), &pool, None)
        });
    });
    c.bench_function("url_hash_pick_8_bounded", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            url_hash_pick(black_box(keys[i]), &pool, Some(125))
        });
    });
}

fn least_conn(c: &mut Criterion) {
    let pool = backends(8);
    let mut t = 0u64;
    c.bench_function("least_connections_8", |b| {
        b.iter(|| {
            t += 1;
            least_connections(black_box(&pool), t)
        });
    });
}

fn cookie_decode(c: &mut Criterion) {
    let names: Vec<String> = (0..8).map(|i| format!("web{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let codec = CookieCodec::new(b"bench secret", &refs);
    let good = codec.token("web3", [7; 8], 1_790_000_000, 1_790_000_000);
    c.bench_function("cookie_decode_hit", |b| {
        b.iter(|| codec.decode(black_box(&good)))
    });
    c.bench_function("cookie_decode_garbage", |b| {
        b.iter(|| codec.decode(black_box("not-a-cookie-value-at-all")))
    });
}

criterion_group!(benches, bucket_route, url_hash, least_conn, cookie_decode);
criterion_main!(benches);
