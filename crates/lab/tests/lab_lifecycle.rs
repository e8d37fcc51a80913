//! The lab itself, as root: two labs at once, traffic client → router → web, status, a state
//! file another process can open, and teardown on panic. Skipped, with a reason, when not root.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use pentaflow_lab::{Lab, LabSpec, Role, WEB_PORT};

fn get(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn two_labs_run_at_once_and_tear_down() {
    if !pentaflow_lab::require_root("two_labs_run_at_once_and_tear_down") {
        return;
    }
    let a = Lab::up(LabSpec {
        nodes: 1,
        webs: 2,
        clients: 1,
    })
    .expect("lab a");
    let b = Lab::up(LabSpec {
        nodes: 2,
        webs: 1,
        clients: 2,
    })
    .expect("lab b");
    assert_ne!(a.state().prefix, b.state().prefix);

    // Client → router → web on both labs, same addresses, no interference.
    for lab in [&a, &b] {
        let web1 = lab.state().host("web1").expect("web1").ip.expect("ip");
        let answer = lab
            .run_in("client1", move || get(SocketAddr::from((web1, WEB_PORT))))
            .expect("enter client1");
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("web1 /hello\n"),
            "{answer}"
        );
        let out = lab
            .exec(
                "client1",
                &["ip", "-4", "-o", "addr", "show", "dev", "eth0"],
            )
            .expect("exec");
        assert!(String::from_utf8_lossy(&out.stdout).contains("10.77.2.11/24"));
    }

    // Another process would find lab b through its state file.
    let opened = Lab::open(&b.state().prefix).expect("open by prefix");
    assert_eq!(opened.state(), b.state());
    drop(opened); // not owned: lab b stays up
    let status = b.status();
    let table = pentaflow_lab::render_status(&status);
    assert!(
        table.contains("client2") && table.contains("web1"),
        "{table}"
    );
    assert!(b.state().summary().contains("10.77.1.10"));
    assert!(status.iter().all(|h| h.up), "{status:?}");
    assert_eq!(
        status
            .iter()
            .filter(|h| h.host.role == Role::Web && !h.pids.is_empty())
            .count(),
        1
    );

    // A panic while holding lab a still tears it down.
    let a_ns: Vec<String> = a.state().hosts.iter().map(|h| h.netns.clone()).collect();
    let a_state = a.state().path();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _held = a;
        panic!("test panic while a lab is held");
    }));
    assert!(panicked.is_err());
    for ns in &a_ns {
        assert!(
            !std::path::Path::new("/run/netns").join(ns).exists(),
            "{ns} left behind"
        );
    }
    assert!(!a_state.exists());

    let b_ns: Vec<String> = b.state().hosts.iter().map(|h| h.netns.clone()).collect();
    b.down().expect("down b");
    for ns in &b_ns {
        assert!(
            !std::path::Path::new("/run/netns").join(ns).exists(),
            "{ns} left behind"
        );
    }
}
