//! Per-request scheduling over one client keep-alive connection, every policy, and both
//! back-end connection modes — real proxy, real back-ends, real HTTP client.

// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::Ordering;

use support::*;

#[tokio::test]
async fn one_client_connection_spreads_requests_over_backends() {
    let b = backends(3).await;
    let (proxy, addr) =
        start_proxy(&(service("policy = \"round_robin\"") + &backend_tables(&b))).await;
    let mut client = Client::connect(addr).await;
    // The seed's a.html / b.gif / c.gif: one connection, each request scheduled on its own.
    let mut seen = Vec::new();
    for path in ["/a.html", "/b.gif", "/c.gif", "/a.html", "/b.gif", "/c.gif"] {
        let a = client.get(path, &[]).await;
        assert_eq!(a.status, 200);
        assert!(a.body.ends_with(&format!("{path} 0")), "{}", a.body);
        seen.push(a.backend());
    }
    let t = tally(seen);
    assert_eq!(t.len(), 3, "all three back-ends served: {t:?}");
    assert!(t.values().all(|&n| n == 2), "round robin is even: {t:?}");
    assert_eq!(
        proxy.counters().connections_accepted,
        1,
        "one client connection"
    );
}

#[tokio::test]
async fn weighted_round_robin_follows_weights() {
    let b = backends(2).await;
    let text = format!(
        "{}\n[[service.backend]]\nname = \"web1\"\naddress = \"{}\"\nweight = 3\n\n[[service.backend]]\nname = \"web2\"\naddress = \"{}\"\nweight = 1\n",
        service("policy = \"round_robin\""),
        b[0].addr,
        b[1].addr
    );
    let (_proxy, addr) = start_proxy(&text).await;
    let mut client = Client::connect(addr).await;
    let mut seen = Vec::new();
    for _ in 0..40 {
        seen.push(client.get("/", &[]).await.backend());
    }
    let t = tally(seen);
    assert_eq!(t["web1"], 30, "{t:?}");
    assert_eq!(t["web2"], 10, "{t:?}");
}

#[tokio::test]
async fn least_connections_avoids_the_busy_backend() {
    let b = backends(2).await;
    let (_proxy, addr) =
        start_proxy(&(service("policy = \"least_conn\"") + &backend_tables(&b))).await;
    // Hold one slow request open; while it runs, every new request goes to the other back-end.
    let slow = tokio::spawn(async move { get(addr, "/slow?sleep=800", &[]).await.backend() });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let mut client = Client::connect(addr).await;
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(client.get("/", &[]).await.backend());
    }
    let busy = slow.await.unwrap();
    assert!(
        seen.iter().all(|n| *n != busy),
        "{busy} was busy but got {seen:?}"
    );
}

#[tokio::test]
async fn url_hash_keeps_each_url_on_one_backend() {
    let b = backends(3).await;
    let (_proxy, addr) =
        start_proxy(&(service("policy = \"url_hash\"") + &backend_tables(&b))).await;
    let mut client = Client::connect(addr).await;
    let mut owners = std::collections::HashMap::new();
    for round in 0..3 {
        for i in 0..30 {
            let path = format!("/obj/{i}.png");
            let who = client.get(&path, &[]).await.backend();
            let first = owners.entry(path.clone()).or_insert_with(|| who.clone());
            assert_eq!(*first, who, "round {round}: {path} moved");
        }
    }
    let spread = tally(owners.into_values());
    assert_eq!(spread.len(), 3, "30 URLs use all back-ends: {spread:?}");
}

#[tokio::test]
async fn pooled_backend_connections_are_reused() {
    let b = backends(1).await;
    let (_proxy, addr) =
        start_proxy(&(service("backend_keepalive = true") + &backend_tables(&b))).await;
    let mut client = Client::connect(addr).await;
    for _ in 0..50 {
        assert_eq!(client.get("/", &[]).await.status, 200);
    }
    let conns = b[0].connections.load(Ordering::SeqCst);
    assert!(
        conns <= 2,
        "50 sequential requests used {conns} back-end connections"
    );
}

#[tokio::test]
async fn one_backend_connection_per_request_when_keepalive_is_off() {
    let b = backends(1).await;
    let (_proxy, addr) =
        start_proxy(&(service("backend_keepalive = false") + &backend_tables(&b))).await;
    let mut client = Client::connect(addr).await;
    for _ in 0..20 {
        assert_eq!(client.get("/", &[]).await.status, 200);
    }
    assert_eq!(b[0].connections.load(Ordering::SeqCst), 20);
}

#[tokio::test]
async fn request_and_response_bodies_stream_through() {
    let b = backends(1).await;
    let (_proxy, addr) = start_proxy(&(service("") + &backend_tables(&b))).await;
    let body = "x".repeat(3 * 1024 * 1024);
    let req = http::Request::post("/upload")
        .header("host", "site.test")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let a = Client::connect(addr).await.send(req).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, format!("web1 /upload {}", 3 * 1024 * 1024));
}
