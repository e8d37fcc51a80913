//! Cost of sealing and opening control datagrams (every node handles 10 announces a second
//! per peer, and a takeover sends a table snapshot of ~100 chunks to each node).

// criterion_group!/criterion_main! generate undocumented public functions.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use pentaflow_balance::NodeId;
use pentaflow_cluster::wire::{Announce, Envelope, SNAPSHOT_CHUNK};
use pentaflow_cluster::{ClusterKey, Destination, Message, Role};

fn bench(c: &mut Criterion) {
    let key = ClusterKey::new(b"bench-cluster-key-0123".to_vec()).expect("key");
    let env = |message| Envelope {
        from: NodeId(1),
        to: Destination::Broadcast,
        incarnation: 1,
        sequence: 1,
        message,
    };
    let announce = env(Message::Announce(Announce {
        role: Role::Scheduler,
        priority: 5,
        enabled: true,
        weight: 1,
        table_version: 1_000,
        config_version: 3,
        load: 10,
        following: Some(NodeId(1)),
        heard: vec![(NodeId(2), 12), (NodeId(3), 40)],
    }));
    let chunk = env(Message::TableSnapshot {
        version: 1,
        size: 65_536,
        start: 0,
        nodes: vec![Some(NodeId(2)); SNAPSHOT_CHUNK],
    });
    for (name, e) in [("announce", announce), ("snapshot_chunk", chunk)] {
        let bytes = key.seal(&e).expect("seal");
        c.bench_function(&format!("seal_{name}"), |b| {
            b.iter(|| key.seal(black_box(&e)))
        });
        c.bench_function(&format!("open_{name}"), |b| {
            b.iter(|| key.open(black_box(&bytes)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
