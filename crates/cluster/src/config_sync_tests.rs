use super::*;

fn validator() -> Validator {
    Box::new(|t: &str| {
        if t.contains("bad") {
            Err(format!("line 1: {t:?} is bad"))
        } else {
            Ok(())
        }
    })
}

/// Deliver the coordinator's messages to participant `p` (node 2) and its answers back.
fn exchange(c: &mut ConfigSync, p: &mut ConfigSync, out: Outbox, events: &mut Vec<ConfigEvent>) {
    let mut back = Vec::new();
    for (_, m) in out {
        match m {
            Message::ConfigPush {
                proposal,
                version,
                total,
                offset,
                bytes,
            } => {
                p.on_push(
                    NodeId(1),
                    (proposal, version, total, offset),
                    &bytes,
                    &mut back,
                );
            }
            Message::ConfigCommit { proposal, version } => p.on_commit(proposal, version, events),
            _ => {}
        }
    }
    for (_, m) in back {
        if let Message::ConfigAck { proposal, verdict } = m {
            c.on_ack(NodeId(2), proposal, verdict, events);
        }
    }
}

#[test]
fn push_ack_commit_activates_everywhere() {
    let (mut c, mut p) = (ConfigSync::new(validator()), ConfigSync::new(validator()));
    let text = "x".repeat(CONFIG_CHUNK * 2 + 7);
    let mut out = Vec::new();
    let id = c
        .push(NodeId(1), &text, 4, &[NodeId(2)], 0, &mut out)
        .unwrap();
    assert_eq!(out.len(), 3, "three chunks");
    let mut ev = Vec::new();
    // Not ready yet: committing now is refused and changes nothing.
    let err = c
        .commit(id, &[NodeId(2)], 0, &mut Vec::new(), &mut ev)
        .unwrap_err();
    assert_eq!(
        err,
        ConfigSyncError::NotReady {
            proposal: id,
            missing: vec![NodeId(2)]
        }
    );
    // The last chunk is lost; the resend completes it.
    out.remove(2);
    exchange(&mut c, &mut p, out, &mut ev);
    assert!(ev.is_empty());
    let mut resend = Vec::new();
    c.tick(250, &[NodeId(2)], &[], &mut resend, &mut ev);
    assert_eq!(resend.len(), 3);
    exchange(&mut c, &mut p, resend, &mut ev);
    assert_eq!(ev, [ConfigEvent::Ready { proposal: id }]);
    ev.clear();
    let mut commit = Vec::new();
    assert_eq!(c.commit(id, &[NodeId(2)], 300, &mut commit, &mut ev), Ok(5));
    exchange(&mut c, &mut p, commit, &mut ev);
    assert_eq!(ev.len(), 2, "committed on both: {ev:?}");
    assert_eq!((c.version(), p.version()), (5, 5));
    assert_eq!(p.active().as_deref(), Some(text.as_str()));
    // A lost commit is resent to laggards, rate-limited.
    let mut again = Vec::new();
    c.tick(350, &[NodeId(2)], &[NodeId(2)], &mut again, &mut ev);
    assert!(again.is_empty());
    c.tick(500, &[NodeId(2)], &[NodeId(2)], &mut again, &mut ev);
    assert_eq!(again.len(), 1);
}

#[test]
fn a_nack_changes_nothing() {
    let (mut c, mut p) = (
        ConfigSync::new(Box::new(|_: &str| Ok(()))),
        ConfigSync::new(validator()),
    );
    let mut out = Vec::new();
    let id = c
        .push(NodeId(1), "bad = 1", 0, &[NodeId(2)], 0, &mut out)
        .unwrap();
    let mut ev = Vec::new();
    exchange(&mut c, &mut p, out, &mut ev);
    assert!(
        matches!(&ev[..], [ConfigEvent::Rejected { node: NodeId(2), reason, .. }] if reason.contains("bad"))
    );
    let err = c
        .commit(id, &[NodeId(2)], 10, &mut Vec::new(), &mut ev)
        .unwrap_err();
    assert!(matches!(err, ConfigSyncError::Rejected { .. }));
    assert_eq!((c.version(), p.version()), (0, 0));
    // A forged commit for the refused proposal does nothing either.
    p.on_commit(id, 1, &mut ev);
    assert_eq!(p.version(), 0);
}

#[test]
fn local_checks_and_timeout() {
    let mut c = ConfigSync::new(validator());
    let mut out = Vec::new();
    assert!(matches!(
        c.push(NodeId(1), "bad", 0, &[], 0, &mut out),
        Err(ConfigSyncError::Invalid { .. })
    ));
    let big = "x".repeat(MAX_CONFIG_BYTES + 1);
    assert!(matches!(
        c.push(NodeId(1), &big, 0, &[], 0, &mut out),
        Err(ConfigSyncError::TooLarge { .. })
    ));
    let id = c
        .push(NodeId(1), "ok", 0, &[NodeId(2)], 0, &mut out)
        .unwrap();
    assert!(matches!(
        c.push(NodeId(1), "ok", 0, &[NodeId(2)], 0, &mut out),
        Err(ConfigSyncError::Busy { .. })
    ));
    let mut ev = Vec::new();
    c.tick(PUSH_TIMEOUT_MS, &[NodeId(2)], &[], &mut out, &mut ev);
    assert_eq!(ev, [ConfigEvent::TimedOut { proposal: id }]);
    assert!(matches!(
        c.commit(id, &[], 0, &mut out, &mut ev),
        Err(ConfigSyncError::Unknown { .. })
    ));
    // Alone in the array: ready at once, commit works.
    let id = c.push(NodeId(1), "ok", 0, &[], 0, &mut out).unwrap();
    assert_eq!(c.commit(id, &[], 0, &mut out, &mut ev), Ok(1));
}

#[test]
fn oversized_or_odd_chunks_are_refused() {
    let mut p = ConfigSync::new(validator());
    let mut out = Vec::new();
    let total = u32::try_from(MAX_CONFIG_BYTES + 1).unwrap();
    p.on_push(NodeId(1), (1, 1, total, 0), b"x", &mut out);
    assert!(matches!(
        &out[..],
        [(
            _,
            Message::ConfigAck {
                verdict: Err(_),
                ..
            }
        )]
    ));
    out.clear();
    p.on_push(NodeId(1), (2, 1, 10, 3), b"x", &mut out);
    p.on_push(NodeId(1), (2, 1, 10, 0), b"short", &mut out);
    assert!(out.is_empty());
    p.on_push(NodeId(1), (3, 1, 2, 0), &[0xff, 0xfe], &mut out);
    assert!(
        matches!(&out[..], [(_, Message::ConfigAck { verdict: Err(r), .. })] if r.contains("UTF-8"))
    );
}

#[test]
fn a_late_joiner_is_sent_the_committed_text_once_per_interval_by_one_node() {
    let (mut c, mut p) = (ConfigSync::new(validator()), ConfigSync::new(validator()));
    let text = "y".repeat(CONFIG_CHUNK + 3);
    let mut out = Vec::new();
    let id = c.push(NodeId(1), &text, 0, &[], 0, &mut out).unwrap();
    let v = c.commit(id, &[], 0, &mut out, &mut Vec::new()).unwrap();
    out.clear();
    // Node 3 lags; node 1 has the lowest id of the nodes holding the text: it sends.
    let members = [(NodeId(3), 0)];
    c.catch_up(NodeId(1), &members, 10, &mut out);
    assert!(out.is_empty(), "not before the grace");
    c.catch_up(NodeId(1), &members, 10 + CATCH_UP_GRACE_MS, &mut out);
    assert_eq!(out.len(), 3, "two chunks and the commit");
    let mut again = Vec::new();
    c.catch_up(NodeId(1), &members, 20 + CATCH_UP_GRACE_MS, &mut again);
    assert!(again.is_empty(), "at most once per interval");
    // Node 2 holds the same version too and has the lower id: node 4 leaves it to node 2.
    let mut other = Vec::new();
    let members = [(NodeId(2), v), (NodeId(3), 0)];
    let mut d = ConfigSync::new(validator());
    d.activate(id, v, Arc::from(text.as_str()), &mut Vec::new());
    d.catch_up(NodeId(4), &members, 0, &mut other);
    d.catch_up(NodeId(4), &members, 10 * CATCH_UP_MS, &mut other);
    assert!(other.is_empty());
    // The joiner validates and activates exactly the committed version.
    let mut ev = Vec::new();
    exchange(&mut c, &mut p, out, &mut ev);
    assert_eq!(p.version(), v);
    assert_eq!(p.active().as_deref(), Some(text.as_str()));
    assert!(matches!(&ev[..], [ConfigEvent::Committed { version, .. }] if *version == v));
}
