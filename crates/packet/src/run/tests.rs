//! The loop over an in-memory [`FrameIo`]: no root, no kernel.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc;
use std::sync::Arc;

use super::*;
use crate::frame::MacAddr;
use crate::synth::FrameSpec;
use crate::DropReason;

/// Frames to hand out, and what was sent where. Asks the loop to stop once drained.
struct MemIo {
    inbox: VecDeque<Vec<u8>>,
    sent: Vec<(Output, Vec<u8>)>,
    control: Arc<LoopControl>,
    /// The link's state as `link_up` reports it.
    link: bool,
}

impl FrameIo for MemIo {
    fn recv_batch(&mut self, bufs: &mut [PacketBuf], _timeout: Duration) -> io::Result<usize> {
        let mut n = 0;
        for buf in bufs.iter_mut() {
            let Some(f) = self.inbox.pop_front() else {
                break;
            };
            *buf = PacketBuf::from_frame(crate::io::VNET_HDR_LEN, &f);
            n += 1;
        }
        if n == 0 {
            self.control.request_stop();
        }
        Ok(n)
    }

    fn send(&mut self, out: Output, buf: &PacketBuf) -> io::Result<()> {
        assert_eq!(
            buf.wire().len(),
            buf.frame().len() + crate::io::VNET_HDR_LEN
        );
        self.sent.push((out, buf.frame().to_vec()));
        Ok(())
    }

    fn announce(&mut self, _frame: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn link_up(&mut self) -> io::Result<bool> {
        Ok(self.link)
    }
}

fn node(id: u16) -> NodeEntry {
    NodeEntry {
        id: NodeId(id),
        mac: MacAddr([2, 0, 0, 0, 1, id as u8]),
        weight: 1,
        enabled: true,
        alive: true,
    }
}

#[test]
fn loop_routes_every_frame_and_publishes_counters() {
    let control = Arc::new(LoopControl::default());
    let mut frames: VecDeque<Vec<u8>> = (0..300u16)
        .map(|p| {
            FrameSpec {
                src_port: 20_000 + p,
                ..FrameSpec::default()
            }
            .build()
        })
        .collect();
    frames.push_back(
        FrameSpec {
            dst_port: 25,
            ..FrameSpec::default()
        }
        .build(),
    );
    let mut io = MemIo {
        inbox: frames,
        sent: Vec::new(),
        control: Arc::clone(&control),
        link: true,
    };
    let params = CoreParams {
        vip: IpAddr::V4(Ipv4Addr::new(10, 77, 1, 10)),
        services: vec![(L4Proto::Tcp, 80)],
        self_id: NodeId(1),
        lan_mac: MacAddr([2, 0, 0, 0, 1, 1]),
        local_mac: MacAddr([2, 0, 0, 0, 0xee, 1]),
    };
    let mut core = SchedulerCore::new(
        params,
        vec![node(1), node(2), node(3)],
        BucketTable::new(1024).unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let (events_tx, events) = mpsc::sync_channel(16);
    core.record_changes();
    // Commands are applied in order before the first frame: the hold, then its end.
    tx.send(Command::AcceptingNew(false)).unwrap();
    tx.send(Command::AcceptingNew(true)).unwrap();
    let ports = LoopPorts {
        commands: rx,
        events: Some(events_tx),
    };
    run_loop(&mut io, &mut core, &control, &ports, DEFAULT_IDLE_MS, 16).unwrap();
    let assigned: usize = events
        .try_iter()
        .map(|SchedulerEvent::Assigned(c)| c.len())
        .sum();
    assert!(
        assigned > 0 && assigned <= 300,
        "every new bucket is reported once"
    );
    let c = control.counters();
    assert_eq!(io.sent.len(), 300);
    assert_eq!(c.forwarded_total() + c.local, 300);
    assert_eq!(c.dropped(DropReason::UnservedPort), 1);
    for id in [2, 3] {
        assert!(c.forwarded_to(NodeId(id)) > 60, "node {id}: {c:?}");
    }
    assert!(c.local > 60, "{c:?}");
    let local = io.sent.iter().filter(|(o, _)| *o == Output::Local).count() as u64;
    assert_eq!(local, c.local);
}

#[test]
fn a_link_without_carrier_ends_the_loop_with_an_error() {
    let control = Arc::new(LoopControl::default());
    let mut io = MemIo {
        inbox: (0..10u16)
            .map(|p| {
                FrameSpec {
                    src_port: 30_000 + p,
                    ..FrameSpec::default()
                }
                .build()
            })
            .collect(),
        sent: Vec::new(),
        control: Arc::clone(&control),
        link: false,
    };
    let params = CoreParams {
        vip: IpAddr::V4(Ipv4Addr::new(10, 77, 1, 10)),
        services: vec![(L4Proto::Tcp, 80)],
        self_id: NodeId(1),
        lan_mac: MacAddr([2, 0, 0, 0, 1, 1]),
        local_mac: MacAddr([2, 0, 0, 0, 0xee, 1]),
    };
    let mut core = SchedulerCore::new(params, vec![node(1)], BucketTable::new(64).unwrap());
    let (_tx, rx) = mpsc::channel();
    let ports = LoopPorts {
        commands: rx,
        events: None,
    };
    let e = run_loop(&mut io, &mut core, &control, &ports, DEFAULT_IDLE_MS, 4).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotConnected);
    assert!(e.to_string().contains("no carrier"), "{e}");
    assert_eq!(
        control.counters().local,
        4,
        "the first batch was served, then published"
    );
}
