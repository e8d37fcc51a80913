//! `pentaflow serve` under a service manager: with `NOTIFY_SOCKET` set (as systemd sets it
//! for `Type=notify`), `READY=1` arrives only once the proxy and the admin API accept
//! connections; SIGHUP brings `RELOADING=1` then `READY=1`; SIGTERM brings `STOPPING=1` and a
//! clean exit. A real process and a real notify socket (a Unix datagram socket, as systemd's).

// Test helpers: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{free_addr, Running};

const BIN: &str = env!("CARGO_BIN_EXE_pentaflow");

/// The node, killed by its PID if the test ends early.
/// The next notify message, within `within`.
fn next_message(socket: &UnixDatagram, within: Duration) -> String {
    socket.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("no notify message in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn serve_notifies_ready_once_listening_then_reloading_and_stopping() {
    let dir = std::env::temp_dir().join(format!("pentaflow-readiness-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&socket_path);
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let (listen, admin, backend) = (free_addr(), free_addr(), free_addr());
    let config = dir.join("pentaflow.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nadmin = \"{admin}\"\nshutdown_grace = \"1s\"\n\n[[service]]\nname = \"web\"\n\
             listen = [\"{listen}\"]\n\n[[service.backend]]\nname = \"web1\"\naddress = \"{backend}\"\n"
        ),
    )
    .unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("PENTAFLOW_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut node = Running(child);

    let started = Instant::now();
    let ready = next_message(&socket, Duration::from_secs(20));
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    // Ready means ready: both listeners accept now, with no retry.
    TcpStream::connect(listen).expect("the proxy listens once READY=1 is sent");
    TcpStream::connect(admin).expect("the admin API listens once READY=1 is sent");
    assert!(started.elapsed() < Duration::from_secs(20));

    node.signal("HUP");
    let reloading = next_message(&socket, Duration::from_secs(10));
    assert!(
        reloading.lines().any(|l| l == "RELOADING=1"),
        "{reloading:?}"
    );
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading:?}");
    let again = next_message(&socket, Duration::from_secs(10));
    assert!(again.lines().any(|l| l == "READY=1"), "{again:?}");
    assert!(
        again.contains("STATUS=serving (configuration reloaded)"),
        "{again:?}"
    );

    node.signal("TERM");
    let stopping = next_message(&socket, Duration::from_secs(10));
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = node.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
