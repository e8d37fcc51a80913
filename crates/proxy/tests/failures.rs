//! Back-end failure: connect failures rerouted at once, passive marking down, active health
//! checks bringing a back-end back, idempotent-only retries after sending, 503 and 504.

// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use pentaflow_balance::BackendState;
use support::*;

/// An address where nothing listens (bound, then closed).
async fn dead_address() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn connect_failures_are_rerouted_and_the_backend_marked_down() {
    let b = backends(2).await;
    let dead = dead_address().await;
    let text = format!(
        "{}{}\n[[service.backend]]\nname = \"dead\"\naddress = \"{dead}\"\n",
        service(
            "policy = \"round_robin\"\n[service.passive]\nmax_fails = 2\nfail_timeout = \"60s\"\n"
        ),
        backend_tables(&b)
    );
    let (proxy, addr) = start_proxy(&text).await;
    let mut client = Client::connect(addr).await;
    for _ in 0..30 {
        let a = client.get("/", &[]).await;
        assert_eq!(a.status, 200, "every request answered: {}", a.body);
        assert!(a.backend() == "web1" || a.backend() == "web2");
    }
    let dead_row = proxy
        .status()
        .into_iter()
        .find(|r| r.name == "dead")
        .unwrap();
    assert_eq!(dead_row.state, BackendState::Down);
    assert_eq!(
        dead_row.failures, 2,
        "tried until marked down, then no more"
    );
}

#[tokio::test]
async fn no_healthy_backend_gets_503_with_a_clear_body() {
    let dead = dead_address().await;
    let text = format!(
        "{}\n[[service.backend]]\nname = \"dead\"\naddress = \"{dead}\"\n",
        service("")
    );
    let (_proxy, addr) = start_proxy(&text).await;
    let a = get(addr, "/", &[]).await;
    assert_eq!(a.status, 503);
    assert!(a.body.contains("no healthy back-end"), "{}", a.body);
}

#[tokio::test]
async fn failure_after_sending_is_retried_only_for_idempotent_methods() {
    let b = backends(2).await;
    b[0].drop_requests.store(true, Ordering::SeqCst);
    let text = service("policy = \"round_robin\"\n[service.passive]\nmax_fails = 100\n")
        + &backend_tables(&b);
    let (_proxy, addr) = start_proxy(&text).await;
    let mut gets = Vec::new();
    for _ in 0..6 {
        gets.push(get(addr, "/", &[]).await);
    }
    assert!(
        gets.iter()
            .all(|a| a.status == 200 && a.backend() == "web2"),
        "GETs retried on web2"
    );
    let mut posts = Vec::new();
    for _ in 0..6 {
        let req = http::Request::post("/")
            .header("host", "x")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(b"pay")))
            .unwrap();
        posts.push(Client::connect(addr).await.send(req).await.status);
    }
    assert!(
        posts.contains(&http::StatusCode::BAD_GATEWAY),
        "a POST that reached web1 is not replayed: {posts:?}"
    );
    assert!(posts.contains(&http::StatusCode::OK));
}

#[tokio::test]
async fn slow_backend_gets_504() {
    let b = backends(1).await;
    let text = format!(
        "[limits]\nresponse_timeout = \"300ms\"\n{}{}",
        service("retries = 0"),
        backend_tables(&b)
    );
    let (_proxy, addr) = start_proxy(&text).await;
    let a = get(addr, "/slow?sleep=2000", &[]).await;
    assert_eq!(a.status, 504);
}

#[tokio::test]
async fn active_health_check_takes_down_and_brings_back() {
    let b = backends(2).await;
    let text = service(
        "policy = \"round_robin\"\n[service.health]\npath = \"/health\"\ninterval = \"100ms\"\ntimeout = \"80ms\"\nrise = 2\nfall = 2\n",
    ) + &backend_tables(&b);
    let (proxy, addr) = start_proxy(&text).await;
    b[1].health.store(500, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let state =
        |p: &pentaflow_proxy::Proxy| p.status().iter().find(|r| r.name == "web2").unwrap().state;
    assert_eq!(state(&proxy), BackendState::Down);
    let mut client = Client::connect(addr).await;
    for _ in 0..10 {
        assert_eq!(client.get("/", &[]).await.backend(), "web1");
    }
    b[1].health.store(200, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(state(&proxy), BackendState::Up);
    let seen = tally((0..10).map(|_| String::new()));
    drop(seen);
    let mut names = Vec::new();
    for _ in 0..10 {
        names.push(client.get("/", &[]).await.backend());
    }
    assert!(names.contains(&"web2".to_owned()), "{names:?}");
}
