//! Active health checks: an HTTP GET on a configured path, per back-end, on an interval, with
//! rise/fall thresholds. Owns nothing but the check loop; the verdict lives in the back-end.
//! With `send_proxy`, a check opens with a v2 `LOCAL` (v1 `UNKNOWN`) header, as HAProxy's do:
//! the back-end sees the node's own connection, not a client's.

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::backend::Backend;
use crate::service::Service;

/// Starts one check loop per back-end of `service` (none when no check is configured).
pub(crate) fn spawn_checks(service: &Service) -> Vec<JoinHandle<()>> {
    let Some(check) = service.config.health.clone() else {
        return Vec::new();
    };
    let connect_timeout = check.timeout;
    service
        .backends
        .iter()
        .map(|backend| {
            let backend = Arc::clone(backend);
            let check = check.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(check.interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let ok = tokio::time::timeout(
                        check.timeout,
                        probe(&backend, &check.path, connect_timeout),
                    )
                    .await
                    .unwrap_or(false);
                    backend.record_check(ok, check.rise, check.fall);
                }
            })
        })
        .collect()
}

/// One check on a fresh connection (never a pooled one, so a check tests connecting too).
async fn probe(backend: &Arc<Backend>, path: &str, connect_timeout: std::time::Duration) -> bool {
    let Ok(mut conn) = backend
        .connect(connect_timeout, crate::proxy_protocol::Outbound::Check)
        .await
    else {
        return false;
    };
    let head = format!(
        "GET {path} HTTP/1.1\r\nhost: {}\r\nuser-agent: pentaflow-health-check\r\nconnection: close\r\n\r\n",
        backend.address()
    );
    if conn
        .send::<http_body_util::Empty<bytes::Bytes>>(head.as_bytes(), None, false)
        .await
        .is_err()
    {
        return false;
    }
    match conn.read_final_head(false).await {
        Ok(resp) => resp.status.is_success() || resp.status.is_redirection(),
        Err(_) => false,
    }
}
