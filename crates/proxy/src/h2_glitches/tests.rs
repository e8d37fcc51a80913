use std::time::Duration;

use super::*;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn policy(threshold: u32) -> GlitchPolicy {
    GlitchPolicy {
        threshold,
        window: Duration::from_secs(10),
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = u32::to_be_bytes(payload.len() as u32)[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn start() -> Vec<u8> {
    let mut v = PREFACE.to_vec();
    v.extend(frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
    v
}

#[test]
fn a_burst_past_the_threshold_trips_and_a_slow_rate_never_does() {
    let mut m = GlitchMeter::new(policy(10), 0);
    assert!((0..10).all(|_| !m.glitch(0)));
    assert!(m.glitch(0), "the 11th glitch in one instant trips");

    // One glitch a second against 10 per 10 s: the level never builds up.
    let mut m = GlitchMeter::new(policy(10), 0);
    assert!((0..100_000u64).all(|s| !m.glitch(s * 1000)));

    // Two a second builds up and trips.
    let mut m = GlitchMeter::new(policy(10), 0);
    assert!((0..1000u64).any(|i| m.glitch(i * 500)));

    // 0 = no limit.
    let mut m = GlitchMeter::new(policy(0), 0);
    assert!((0..100_000).all(|_| !m.glitch(0)));
}

#[test]
fn ordinary_frames_are_not_glitches() {
    let mut c = ClientFrames::new(policy(1), 0);
    let server = ServerFrames {
        settings: 1,
        ..ServerFrames::default()
    };
    let mut bytes = start();
    bytes.extend(frame(SETTINGS, FLAG_ACK, 0, &[]));
    bytes.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 1, 0, 0]));
    bytes.extend(frame(
        HEADERS,
        FLAG_END_HEADERS | FLAG_END_STREAM,
        1,
        &[0x82; 20],
    ));
    bytes.extend(frame(HEADERS, FLAG_END_HEADERS, 3, &[0x82; 20]));
    bytes.extend(frame(DATA, 0, 3, b"hello"));
    bytes.extend(frame(DATA, FLAG_END_STREAM, 3, &[]));
    bytes.extend(frame(RST_STREAM, 0, 3, &[0, 0, 0, 8]));
    // Fed a byte at a time, as a slow network might deliver it.
    for b in &bytes {
        assert_eq!(c.feed(std::slice::from_ref(b), &server, 0), None);
    }
    assert_eq!(c.tally(), GlitchTally::default());
    assert_eq!(c.last_stream, 3);
}

#[test]
fn floods_of_each_kind_trip_at_the_frame_that_crosses_the_threshold() {
    let padded_empty = {
        let mut p = vec![4u8];
        p.extend([0; 4]);
        frame(DATA, FLAG_PADDED, 1, &p)
    };
    type Kind = fn(&GlitchTally) -> u64;
    let cases: Vec<(Vec<u8>, Kind)> = vec![
        (frame(SETTINGS, 0, 0, &[]), |t| t.settings),
        (frame(SETTINGS, FLAG_ACK, 0, &[]), |t| t.settings),
        (frame(PING, 0, 0, &[7; 8]), |t| t.pings),
        (frame(PING, FLAG_ACK, 0, &[7; 8]), |t| t.pings),
        (frame(PRIORITY, 0, 1, &[0, 0, 0, 0, 16]), |t| t.priority),
        (frame(DATA, 0, 1, &[]), |t| t.empty_frames),
        (padded_empty, |t| t.empty_frames),
        (frame(CONTINUATION, 0, 1, &[]), |t| t.empty_frames),
        (frame(0x42, 0, 0, b"xx"), |t| t.unknown_frames),
    ];
    for (one, kind) in cases {
        let mut c = ClientFrames::new(policy(3), 0);
        let server = ServerFrames::default();
        let mut bytes = start();
        let head = bytes.len();
        for _ in 0..5 {
            bytes.extend_from_slice(&one);
        }
        let cut = c.feed(&bytes, &server, 0);
        // The fourth glitch trips: h2 gets the first three.
        assert_eq!(cut, Some(head + 3 * one.len()), "{one:?}");
        assert_eq!(kind(&c.tally()), 4, "{one:?}");
    }
}

#[test]
fn the_server_side_stops_at_frame_boundaries_and_counts_what_we_asked_for() {
    let mut s = ServerFrames::default();
    let mut out = frame(SETTINGS, 0, 0, &[0, 4, 0, 1, 0, 0]);
    out.extend(frame(PING, 0, 0, &[1; 8]));
    out.extend(frame(PING, FLAG_ACK, 0, &[1; 8]));
    out.extend(frame(DATA, 0, 1, &[9; 100]));
    // Partial writes land mid-frame.
    assert_eq!(s.feed(&out[..5], false), 5);
    assert!(!s.at_boundary());
    let mut probe = s.clone();
    assert_eq!(
        probe.feed(&out[5..], true),
        15 - 5,
        "up to the end of SETTINGS"
    );
    assert!(probe.at_boundary());
    assert_eq!(s.feed(&out[5..], false), out.len() - 5);
    assert!(s.at_boundary());
    assert_eq!((s.settings, s.pings), (1, 1));
}

#[test]
fn the_goaway_says_enhance_your_calm_with_the_last_stream() {
    let f = goaway_frame(7);
    assert_eq!(&f[..9], &[0, 0, 25, GOAWAY, 0, 0, 0, 0, 0]);
    assert_eq!(&f[9..13], &7u32.to_be_bytes());
    assert_eq!(&f[13..17], &0xbu32.to_be_bytes());
}
