use proptest::prelude::*;

use super::*;

fn env(message: Message) -> Envelope {
    Envelope {
        from: NodeId(1),
        to: Destination::Node(NodeId(2)),
        incarnation: 0x0102_0304_0506_0708,
        sequence: 9,
        message,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn samples() -> Vec<Message> {
    vec![
        Message::Announce(Announce {
            role: Role::Scheduler,
            priority: 7,
            enabled: true,
            weight: 3,
            table_version: 42,
            config_version: 5,
            load: 250,
            following: Some(NodeId(1)),
        }),
        Message::TableSnapshotRequest { have: None },
        Message::TableSnapshotRequest { have: Some(17) },
        Message::TableSnapshot {
            version: 8,
            size: 1024,
            start: 640,
            nodes: vec![Some(NodeId(1)), None, Some(NodeId(3))],
        },
        Message::TableDelta {
            base: 8,
            version: 9,
            changes: vec![(5, Some(NodeId(2))), (6, None)],
        },
        Message::VersionCheck {
            table_version: 9,
            config_version: 2,
        },
        Message::LiveBucketsQuery { query: 3 },
        Message::LiveBuckets {
            query: 3,
            chunk: 0,
            chunks: 2,
            buckets: vec![1, 65_535],
        },
        Message::ConfigPush {
            proposal: 0x1_0001,
            version: 4,
            total: 5,
            offset: 0,
            bytes: b"a = 1".to_vec(),
        },
        Message::ConfigCommit {
            proposal: 0x1_0001,
            version: 4,
        },
        Message::ConfigAck {
            proposal: 0x1_0001,
            verdict: Ok(()),
        },
        Message::ConfigAck {
            proposal: 0x1_0001,
            verdict: Err("line 3: bad key é".into()),
        },
        Message::NodeStatusQuery { poll: 77 },
        Message::NodeStatus {
            poll: 77,
            status: NodeStatus {
                open_connections: 10,
                hits: 1_000_000,
                avg_response_us: 1_500,
                live_buckets: 9,
            },
        },
    ]
}

#[test]
fn every_message_round_trips() {
    for m in samples() {
        let e = env(m);
        let bytes = encode(&e).unwrap();
        assert_eq!(decode(&bytes).unwrap(), e);
    }
    let b = Envelope {
        to: Destination::Broadcast,
        ..env(Message::LiveBucketsQuery { query: 1 })
    };
    assert_eq!(decode(&encode(&b).unwrap()).unwrap(), b);
}

#[test]
fn golden_vectors() {
    // Pins the layout of the header and of two bodies; a change here is a wire break and
    // needs a new WIRE_VERSION.
    let header = "01010001000201020304050607080000000000000009";
    let a = encode(&env(samples().remove(0))).unwrap();
    assert_eq!(
        hex(&a),
        format!("{header}02070100000003000000000000002a000000000000000500fa0001")
    );
    let d = encode(&env(samples().remove(4))).unwrap();
    assert_eq!(
        hex(&d),
        "01040001000201020304050607080000000000000009\
         00000000000000080000000000000009000200000005000200000006ffff"
    );
}

#[test]
fn full_chunks_fit_one_datagram() {
    let big = [
        Message::TableSnapshot {
            version: u64::MAX,
            size: u32::MAX,
            start: 0,
            nodes: vec![Some(NodeId(1)); SNAPSHOT_CHUNK],
        },
        Message::TableDelta {
            base: 1,
            version: 2,
            changes: vec![(1, None); DELTA_CHUNK],
        },
        Message::LiveBuckets {
            query: 1,
            chunk: 0,
            chunks: 1,
            buckets: vec![1; LIVE_CHUNK],
        },
        Message::ConfigPush {
            proposal: 1,
            version: 1,
            total: 1,
            offset: 0,
            bytes: vec![b'x'; CONFIG_CHUNK],
        },
        Message::ConfigAck {
            proposal: 1,
            verdict: Err("x".repeat(MAX_REASON * 2)),
        },
    ];
    for m in big {
        let bytes = encode(&env(m)).unwrap();
        assert!(bytes.len() + TAG_LEN <= MAX_DATAGRAM);
    }
    let too_big = Message::TableDelta {
        base: 1,
        version: 2,
        changes: vec![(1, None); DELTA_CHUNK * 2],
    };
    assert!(matches!(
        encode(&env(too_big)),
        Err(WireError::Oversized { .. })
    ));
}

#[test]
fn typed_errors_for_bad_input() {
    let good = encode(&env(Message::LiveBucketsQuery { query: 1 })).unwrap();
    assert!(matches!(
        decode(&good[..5]),
        Err(WireError::TooShort { .. })
    ));
    let mut v = good.clone();
    v[0] = 2;
    assert_eq!(decode(&v), Err(WireError::BadVersion { version: 2 }));
    let mut k = good.clone();
    k[1] = 200;
    assert_eq!(decode(&k), Err(WireError::UnknownKind { kind: 200 }));
    assert!(matches!(
        decode(&good[..good.len() - 1]),
        Err(WireError::Truncated { kind: 6, .. })
    ));
    let mut t = good.clone();
    t.push(0);
    assert_eq!(decode(&t), Err(WireError::Trailing { kind: 6, extra: 1 }));
    // A count that promises more elements than bytes follow is refused before allocating.
    let mut c = encode(&env(Message::LiveBuckets {
        query: 1,
        chunk: 0,
        chunks: 1,
        buckets: vec![],
    }))
    .unwrap();
    let n = c.len();
    c[n - 2..].copy_from_slice(&200u16.to_be_bytes());
    assert!(matches!(decode(&c), Err(WireError::Truncated { .. })));
    c[n - 2..].copy_from_slice(&u16::MAX.to_be_bytes());
    assert!(matches!(
        decode(&c),
        Err(WireError::BadField { field: "count", .. })
    ));
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
        if let Ok(e) = decode(&bytes) {
            // Whatever decodes re-encodes to the same bytes: the encoding is canonical.
            prop_assert_eq!(encode(&e).unwrap(), bytes);
        }
    }

    #[test]
    fn mutated_messages_never_panic(i in 0usize..14, pos in 0usize..64, byte in any::<u8>()) {
        let mut bytes = encode(&env(samples()[i].clone())).unwrap();
        if pos < bytes.len() {
            bytes[pos] = byte;
        }
        let _ = decode(&bytes);
    }
}
