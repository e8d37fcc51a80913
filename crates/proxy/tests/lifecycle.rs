//! Reload without dropping connections or losing stickiness, and graceful shutdown.

// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::*;

const SESSION: &str =
    "persistence = \"session\"\n[service.session]\ncookie = \"JSESSIONID\"\ngroups = 128\n";

#[tokio::test]
async fn reload_keeps_connections_and_session_groups() {
    let b = backends(3).await;
    let text =
        (service(SESSION) + &backend_tables(&b)).replace("127.0.0.1:0", &free_addr().to_string());
    let (proxy, addr) = start_proxy(&text).await;
    let listen_text = text.clone();
    let mut client = Client::connect(addr).await;
    let mut before = Vec::new();
    for u in 0..12 {
        before.push(
            client
                .get("/", &[("cookie", &format!("JSESSIONID=u{u}"))])
                .await
                .backend(),
        );
    }
    // Same services and back-ends, a changed setting: the open connection and every session stay.
    proxy
        .reload(&config(
            &listen_text.replace("groups = 128", "groups = 128\ngroup_idle = \"10m\""),
        ))
        .await
        .unwrap();
    for (u, owner) in before.iter().enumerate() {
        let a = client
            .get("/", &[("cookie", &format!("JSESSIONID=u{u}"))])
            .await;
        assert_eq!(&a.backend(), owner, "session u{u} moved on reload");
    }
    assert_eq!(proxy.counters().connections_accepted, 1);
}

#[tokio::test]
async fn reload_that_removes_a_backend_moves_only_its_sessions() {
    let b = backends(3).await;
    let fixed = free_addr().to_string();
    let (proxy, addr) =
        start_proxy(&(service(SESSION) + &backend_tables(&b)).replace("127.0.0.1:0", &fixed)).await;
    let listen = service(SESSION).replace("127.0.0.1:0", &fixed);
    let mut owners = Vec::new();
    for u in 0..30 {
        owners.push(
            get(addr, "/", &[("cookie", &format!("JSESSIONID=u{u}"))])
                .await
                .backend(),
        );
    }
    proxy
        .reload(&config(&(listen + &backend_tables(&b[..2]))))
        .await
        .unwrap();
    for (u, owner) in owners.iter().enumerate() {
        let now = get(addr, "/", &[("cookie", &format!("JSESSIONID=u{u}"))])
            .await
            .backend();
        if owner != "web3" {
            assert_eq!(&now, owner, "u{u} was on a surviving back-end and moved");
        } else {
            assert_ne!(now, "web3");
        }
    }
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight() {
    let b = backends(1).await;
    let (proxy, addr) = start_proxy(&(service("") + &backend_tables(&b))).await;
    let inflight = tokio::spawn(async move { get(addr, "/slow?sleep=500", &[]).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let clean = proxy.shutdown(Duration::from_secs(5)).await;
    let a = inflight.await.unwrap();
    assert_eq!(a.status, 200, "the in-flight request completed");
    assert!(clean);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn reload_applies_a_new_connection_limit() {
    let b = backends(1).await;
    let text = format!(
        "[limits]\nmax_connections = 1\n{}{}",
        service(""),
        backend_tables(&b)
    )
    .replace("127.0.0.1:0", &free_addr().to_string());
    let (proxy, addr) = start_proxy(&text).await;
    let mut first = Client::connect(addr).await;
    assert_eq!(first.get("/", &[]).await.status, 200);
    // Over the limit of 1 the second client waits in the backlog...
    let waiting = tokio::spawn(raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "over the limit of 1");
    proxy
        .reload(&config(
            &text.replace("max_connections = 1", "max_connections = 2"),
        ))
        .await
        .unwrap();
    // ...and the raised limit admits it while the first stays open.
    let out = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the raised limit admits a second client")
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert_eq!(first.get("/", &[]).await.status, 200);
}

#[tokio::test]
async fn live_client_addresses_are_reported_while_connections_are_open() {
    let b = backends(1).await;
    let (proxy, addr) = start_proxy(&(service("") + &backend_tables(&b))).await;
    let one = tokio::net::TcpStream::connect(addr).await.unwrap();
    let two = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mine = [one.local_addr().unwrap(), two.local_addr().unwrap()];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut live = proxy.live_clients();
    live.sort();
    let mut expected = mine.to_vec();
    expected.sort();
    assert_eq!(live, expected);
    drop((one, two));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(proxy.live_clients().is_empty());
}
