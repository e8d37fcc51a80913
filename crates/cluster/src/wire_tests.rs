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
            heard: vec![(NodeId(2), 30), (NodeId(3), u16::MAX)],
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
        Message::ServerStatus {
            poll: 77,
            chunk: 1,
            chunks: 2,
            rows: vec![server_row(), ServerRow::default()],
        },
    ]
}

fn server_row() -> ServerRow {
    ServerRow {
        service: "shop".into(),
        name: "web1".into(),
        address: "10.0.0.1:80".into(),
        up: true,
        hits: 258,
        open_connections: 3,
        avg_response_us: 1_500,
        session_groups: 4,
    }
}

/// A ServerStatus body with one row whose bytes after the fixed header are `row`.
fn server_status_bytes(chunk: u16, chunks: u16, count: u16, row: &[u8]) -> Vec<u8> {
    let mut b = encode(&env(Message::NodeStatusQuery { poll: 1 })).unwrap();
    b.truncate(HEADER_LEN);
    b[1] = 13;
    b.extend_from_slice(&1u32.to_be_bytes());
    b.extend_from_slice(&chunk.to_be_bytes());
    b.extend_from_slice(&chunks.to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(row);
    b
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
    let header = "02010001000201020304050607080000000000000009";
    let a = encode(&env(samples().remove(0))).unwrap();
    assert_eq!(
        hex(&a),
        format!(
            "{header}02070100000003000000000000002a000000000000000500fa000100020002001e0003ffff"
        )
    );
    let d = encode(&env(samples().remove(4))).unwrap();
    assert_eq!(
        hex(&d),
        "02040001000201020304050607080000000000000009\
         00000000000000080000000000000009000200000005000200000006ffff"
    );
    // ServerStatus: poll, chunk, chunks, count, then per row three length-prefixed texts,
    // up, hits, open connections, avg µs, session groups.
    let server = Message::ServerStatus {
        poll: 77,
        chunk: 0,
        chunks: 1,
        rows: vec![server_row()],
    };
    assert_eq!(
        hex(&encode(&env(server)).unwrap()),
        "020d0001000201020304050607080000000000000009\
         0000004d000000010001\
         0473686f7004776562310b31302e302e302e313a3830\
         01000000000000010200000003000005dc00000004"
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
        Message::ServerStatus {
            poll: 1,
            chunk: 0,
            chunks: 1,
            rows: vec![ServerRow::default(); MAX_CHUNK_ROWS],
        },
        // The longest row: three texts cut to MAX_TEXT.
        Message::ServerStatus {
            poll: 1,
            chunk: 0,
            chunks: 1,
            rows: vec![ServerRow {
                service: "s".repeat(1000),
                name: "n".repeat(1000),
                address: "a".repeat(1000),
                ..ServerRow::default()
            }],
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
    v[0] = 1;
    assert_eq!(decode(&v), Err(WireError::BadVersion { version: 1 }));
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

#[test]
fn hostile_server_status_is_refused_before_allocating() {
    let fixed_rest = [0u8; SERVER_ROW_FIXED - 3];
    // A valid empty row, as a baseline.
    let mut ok_row = vec![0u8, 0, 0];
    ok_row.extend_from_slice(&fixed_rest);
    assert!(decode(&server_status_bytes(0, 1, 1, &ok_row)).is_ok());
    // Chunk numbers no sender produces.
    for (chunk, chunks) in [(0, 0), (1, 1), (5, 2), (0, u16::MAX)] {
        assert_eq!(
            decode(&server_status_bytes(chunk, chunks, 0, &[])),
            Err(WireError::BadField {
                kind: 13,
                field: "chunk"
            }),
            "{chunk}/{chunks}"
        );
    }
    // More rows than a chunk can hold, or than the bytes left can: refused up front.
    assert_eq!(
        decode(&server_status_bytes(0, 1, u16::MAX, &[])),
        Err(WireError::BadField {
            kind: 13,
            field: "count"
        })
    );
    let n = u16::try_from(MAX_CHUNK_ROWS).unwrap();
    assert!(matches!(
        decode(&server_status_bytes(0, 1, n, &ok_row)),
        Err(WireError::Truncated { kind: 13, .. })
    ));
    // A text length beyond the bytes left.
    let mut long = vec![200u8];
    long.extend_from_slice(&fixed_rest);
    assert!(matches!(
        decode(&server_status_bytes(0, 1, 1, &long)),
        Err(WireError::Truncated { kind: 13, .. })
    ));
    // A text that is not UTF-8, and an `up` byte that is neither 0 nor 1.
    let mut bad_utf8 = vec![1u8, 0xff, 0, 0];
    bad_utf8.extend_from_slice(&fixed_rest);
    assert!(matches!(
        decode(&server_status_bytes(0, 1, 1, &bad_utf8)),
        Err(WireError::BadText {
            kind: 13,
            field: "service",
            ..
        })
    ));
    let mut bad_up = ok_row.clone();
    bad_up[3] = 2;
    assert_eq!(
        decode(&server_status_bytes(0, 1, 1, &bad_up)),
        Err(WireError::BadField {
            kind: 13,
            field: "up"
        })
    );
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
    fn mutated_messages_never_panic(i in any::<prop::sample::Index>(), pos in 0usize..128, byte in any::<u8>()) {
        let all = samples();
        let mut bytes = encode(&env(all[i.index(all.len())].clone())).unwrap();
        if pos < bytes.len() {
            bytes[pos] = byte;
        }
        let _ = decode(&bytes);
    }
}
