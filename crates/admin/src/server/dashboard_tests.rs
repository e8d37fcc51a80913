//! The dashboard over HTTP: the page is open (it asks for the token), its data is not, and
//! the sampler fills the history.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pentaflow_balance::{BackendState, BucketSnapshot, NodeId, WebServerStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::model::{NodeMetric, StatusSource};
use crate::{serve_with, AdminOptions};

struct Source;

impl StatusSource for Source {
    fn web_servers(&self) -> Vec<WebServerStatus> {
        vec![WebServerStatus {
            service: "web".into(),
            name: "app1".into(),
            address: "127.0.0.1:1".into(),
            state: BackendState::Up,
            weight: 1,
            avg_response_ms: 1.0,
            hits: 7,
            open_connections: 0,
            active_requests: 0,
            failures: 0,
            session_groups: 0,
        }]
    }
    fn node_metrics(&self) -> Vec<NodeMetric> {
        Vec::new()
    }
    fn bucket_table(&self) -> Option<Arc<BucketSnapshot>> {
        Some(Arc::new(BucketSnapshot {
            size: 4,
            version: 2,
            assigned: vec![(1, NodeId(3))],
        }))
    }
}

async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String, String) {
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n{auth}\r\n");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn the_page_is_open_its_data_needs_the_token_and_history_fills() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, shutdown) = watch::channel(false);
    let options = AdminOptions::default().with_token(b"secret-token".to_vec());
    tokio::spawn(serve_with(
        listener,
        Arc::new(Source),
        "n".into(),
        shutdown,
        options,
    ));

    for path in ["/", "/ui/app.js", "/ui/style.css"] {
        let (code, head, _) = get(addr, path, None).await;
        assert_eq!(code, 200, "{path} is open");
        assert!(head.contains("cache-control: no-store"), "{head}");
        assert!(
            head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
            "{head}"
        );
        assert!(head.contains("x-frame-options: deny"), "{head}");
    }
    let post = "POST / HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(post.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert_eq!(get(addr, "/ui/history", None).await.0, 401);
    assert_eq!(get(addr, "/ui/buckets", Some("wrong")).await.0, 401);
    assert_eq!(get(addr, "/status", None).await.0, 401);

    let (code, _, body) = get(addr, "/ui/buckets", Some("secret-token")).await;
    assert_eq!(code, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["node"], serde_json::json!([null, 3, null, null]));

    // The sampler runs once a second from the start: two observations within a few seconds.
    let mut seq = 0;
    for _ in 0..50 {
        let (code, _, body) = get(
            addr,
            "/ui/history?since=0&events_since=0",
            Some("secret-token"),
        )
        .await;
        assert_eq!(code, 200);
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        seq = doc["seq"].as_u64().unwrap();
        if seq >= 2 {
            assert_eq!(doc["series"][0]["name"], "app1");
            assert_eq!(
                doc["series"][0]["rate"].as_array().unwrap().len() as u64,
                seq
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seq >= 2, "history not sampled: seq {seq}");
    let (_, _, body) = get(
        addr,
        &format!("/ui/history?since={seq}"),
        Some("secret-token"),
    )
    .await;
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    let newer = doc["series"][0]["rate"].as_array().unwrap().len() as u64;
    assert_eq!(
        newer,
        doc["seq"].as_u64().unwrap() - seq,
        "only what is newer than since"
    );
}
