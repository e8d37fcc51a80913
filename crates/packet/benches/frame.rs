//! Criterion benches of the scheduler's per-frame work: parsing a frame, and the whole
//! decision (parse + VIP/port check + bucket route + MAC rewrite) on a warm table.

// criterion_group!/criterion_main! generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pentaflow_packet::frame::parse_flow;
use pentaflow_packet::synth::FrameSpec;
use pentaflow_packet::{
    BucketTable, CoreParams, L4Proto, MacAddr, NodeEntry, NodeId, SchedulerCore,
};

/// Distinct client flows cycled through, so the route touches many buckets.
const FLOWS: u16 = 4096;

fn frames() -> Vec<Vec<u8>> {
    (0..FLOWS)
        .map(|i| {
            FrameSpec {
                src: IpAddr::V4(Ipv4Addr::new(10, 77, 2, (i % 200) as u8 + 11)),
                src_port: 30_000 + i,
                payload_len: 64,
                ..FrameSpec::default()
            }
            .build()
        })
        .collect()
}

fn core() -> SchedulerCore {
    let nodes = (1..=3u16)
        .map(|id| NodeEntry {
            id: NodeId(id),
            mac: MacAddr([2, 0, 0, 0, 1, id as u8]),
            weight: 1,
            enabled: true,
            alive: true,
        })
        .collect();
    let params = CoreParams {
        vip: IpAddr::V4(Ipv4Addr::new(10, 77, 1, 10)),
        services: vec![(L4Proto::Tcp, 80), (L4Proto::Tcp, 443)],
        self_id: NodeId(1),
        lan_mac: MacAddr([2, 0, 0, 0, 1, 1]),
        local_mac: MacAddr([2, 0, 0, 0, 0xee, 1]),
    };
    SchedulerCore::new(
        params,
        nodes,
        BucketTable::new(1 << 16).expect("table size"),
    )
}

fn bench(c: &mut Criterion) {
    let mut frames = frames();
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("parse_flow", |b| {
        b.iter(|| {
            i = (i + 1) % frames.len();
            black_box(parse_flow(black_box(&frames[i])))
        })
    });
    let mut core = core();
    let mut now = 0u64;
    g.bench_function("parse_route_rewrite", |b| {
        b.iter(|| {
            i = (i + 1) % frames.len();
            now += 1;
            black_box(core.handle(black_box(&mut frames[i]), now / 1000))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
