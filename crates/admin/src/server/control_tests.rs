//! The operator actions over HTTP: token required, routed to the source, refusals mapped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use pentaflow_balance::WebServerStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::control::{ControlError, ControlRequest};
use crate::model::{NodeMetric, StatusSource};
use crate::{serve, serve_with, AdminOptions};

#[derive(Default)]
struct Source {
    seen: Mutex<Vec<ControlRequest>>,
}

impl StatusSource for Source {
    fn web_servers(&self) -> Vec<WebServerStatus> {
        Vec::new()
    }
    fn node_metrics(&self) -> Vec<NodeMetric> {
        Vec::new()
    }
    fn cluster_report(&self) -> serde_json::Value {
        serde_json::json!({"role": "scheduler"})
    }
    fn control(&self, request: ControlRequest) -> Result<serde_json::Value, ControlError> {
        self.seen.lock().unwrap().push(request.clone());
        match request {
            ControlRequest::PushConfig(_) => Ok(serde_json::json!({"proposal": 5})),
            ControlRequest::CommitConfig { .. } => Err(ControlError::new(409, "not acked yet")),
            _ => Ok(serde_json::json!({})),
        }
    }
}

async fn start(token: Option<&[u8]>) -> (SocketAddr, Arc<Source>, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let source = Arc::new(Source::default());
    let (stop, shutdown) = watch::channel(false);
    let dyn_source: Arc<dyn StatusSource> = Arc::clone(&source) as _;
    let name = "pentaflow 0.1.0".to_owned();
    match token {
        Some(t) => {
            let options = AdminOptions::default().with_token(t.to_vec());
            tokio::spawn(serve_with(listener, dyn_source, name, shutdown, options));
        }
        None => {
            tokio::spawn(serve(listener, dyn_source, name, shutdown));
        }
    }
    (addr, source, stop)
}

async fn post(addr: SocketAddr, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_owned(),
    )
}

#[tokio::test]
async fn actions_need_the_token_and_reach_the_source() {
    let (addr, source, _stop) = start(Some(b"0123456789abcdef")).await;
    assert_eq!(post(addr, "/cluster/drain", None, "").await.0, 401);
    assert_eq!(post(addr, "/cluster/drain", Some("wrong"), "").await.0, 401);
    let (code, body) = post(
        addr,
        "/cluster/config",
        Some("0123456789abcdef"),
        "[node]\n",
    )
    .await;
    assert_eq!((code, body.as_str()), (200, r#"{"proposal":5}"#));
    let (code, body) = post(
        addr,
        "/cluster/commit?proposal=5",
        Some("0123456789abcdef"),
        "",
    )
    .await;
    assert_eq!((code, body.trim()), (409, "not acked yet"));
    assert_eq!(
        *source.seen.lock().unwrap(),
        vec![
            ControlRequest::PushConfig("[node]\n".into()),
            ControlRequest::CommitConfig { proposal: Some(5) }
        ],
        "refused requests never reach the source"
    );
}

#[tokio::test]
async fn without_a_token_actions_are_forbidden_and_cluster_is_readable() {
    let (addr, source, _stop) = start(None).await;
    assert_eq!(
        post(addr, "/cluster/drain", Some("anything"), "").await.0,
        403
    );
    assert!(source.seen.lock().unwrap().is_empty());
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /cluster HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with(r#"{"role":"scheduler"}"#), "{response}");
}

/// `GET path` with an optional bearer token: the status code.
async fn get_code(addr: SocketAddr, path: &str, token: Option<&str>) -> u16 {
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{auth}\r\n");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn with_a_token_every_page_but_healthz_needs_it() {
    let token = "0123456789abcdef";
    let (addr, _source, _stop) = start(Some(token.as_bytes())).await;
    for page in ["/status", "/metrics", "/cdn", "/cluster"] {
        assert_eq!(get_code(addr, page, None).await, 401, "{page}");
        assert_eq!(get_code(addr, page, Some("wrong")).await, 401, "{page}");
        assert_eq!(get_code(addr, page, Some(token)).await, 200, "{page}");
    }
    assert_eq!(get_code(addr, "/healthz", None).await, 200);
    let doc = crate::fetch_status(addr, Some(token)).await.unwrap();
    assert_eq!(doc.node, "pentaflow 0.1.0");
    assert!(crate::fetch_status(addr, None).await.is_err());
}
