//! Operator actions on the array through a node's admin API: config push and commit, drain
//! and re-enable. Unlike the read-only pages they change the array, so every one needs the
//! admin token (`Authorization: Bearer <token>`); without a configured token they are refused.
//!
//! Owns: the routes, the token check (constant time) and the request bodies' limits. Must
//! not: act itself — the binary's [`StatusSource::control`] does, through the cluster.

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderMap, Method, StatusCode};

use crate::model::StatusSource;

/// Largest request body (a pushed configuration): the cluster's own limit is smaller; this
/// only keeps a stray upload from filling memory.
pub(crate) const MAX_BODY_BYTES: usize = 1 << 20;

/// One operator action.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlRequest {
    /// `POST /cluster/config` (body: the TOML text): push to every node; answers the proposal.
    PushConfig(String),
    /// `POST /cluster/commit[?proposal=N]`: commit a proposal (default: this node's last).
    CommitConfig {
        /// The proposal, if named.
        proposal: Option<u64>,
    },
    /// `POST /cluster/drain`: this node gets no new buckets.
    Drain,
    /// `POST /cluster/enable`: this node gets new buckets again.
    Enable,
}

/// Why an action was refused, as an HTTP status and a message for the operator.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    /// The HTTP status: 409 (refused by the cluster: invalid, not ready, busy), 503 (no
    /// cluster on this node), 400 (a malformed request).
    pub status: u16,
    /// What happened.
    pub message: String,
}

impl ControlError {
    /// A refusal with `status`.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ControlError {
            status,
            message: message.into(),
        }
    }
}

/// Whether `path` is a control route.
pub(crate) fn is_control(path: &str) -> bool {
    path.starts_with("/cluster/")
}

/// The action asked for, or `(status, message)`.
pub(crate) fn parse(
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &Bytes,
) -> Result<ControlRequest, (StatusCode, String)> {
    if method != Method::POST {
        return Err((StatusCode::METHOD_NOT_ALLOWED, "use POST\n".into()));
    }
    match path {
        "/cluster/config" => match std::str::from_utf8(body) {
            Ok(text) if !text.trim().is_empty() => Ok(ControlRequest::PushConfig(text.to_owned())),
            Ok(_) => Err((StatusCode::BAD_REQUEST, "empty configuration\n".into())),
            Err(_) => Err((
                StatusCode::BAD_REQUEST,
                "configuration is not UTF-8\n".into(),
            )),
        },
        "/cluster/commit" => {
            let proposal = query
                .into_iter()
                .flat_map(|q| q.split('&'))
                .find_map(|kv| kv.strip_prefix("proposal="));
            match proposal.map(str::parse::<u64>) {
                None => Ok(ControlRequest::CommitConfig { proposal: None }),
                Some(Ok(p)) => Ok(ControlRequest::CommitConfig { proposal: Some(p) }),
                Some(Err(_)) => Err((StatusCode::BAD_REQUEST, "proposal is not a number\n".into())),
            }
        }
        "/cluster/drain" => Ok(ControlRequest::Drain),
        "/cluster/enable" => Ok(ControlRequest::Enable),
        _ => Err((StatusCode::NOT_FOUND, "not found\n".into())),
    }
}

/// Checks `Authorization: Bearer <token>` against `token`; `Err` is the refusal.
pub(crate) fn authorize(
    headers: &HeaderMap,
    token: Option<&[u8]>,
) -> Result<(), (StatusCode, String)> {
    let Some(token) = token else {
        let message = "operator actions need an admin token on this node ([array] admin_token)\n";
        return Err((StatusCode::FORBIDDEN, message.into()));
    };
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    match given {
        Some(given) if constant_time_eq(given, token) => Ok(()),
        _ => Err((
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token\n".into(),
        )),
    }
}

/// Equality whose time does not depend on where the inputs differ (only on the length).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Runs an authorized action on the source (on the blocking pool: it may wait for the cluster).
pub(crate) fn run(
    source: &dyn StatusSource,
    request: ControlRequest,
) -> Result<serde_json::Value, ControlError> {
    source.control(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        let post = Method::POST;
        let empty = Bytes::new();
        assert_eq!(
            parse(
                &post,
                "/cluster/config",
                None,
                &Bytes::from_static(b"[node]\n")
            ),
            Ok(ControlRequest::PushConfig("[node]\n".into()))
        );
        assert_eq!(
            parse(&post, "/cluster/commit", Some("proposal=7"), &empty),
            Ok(ControlRequest::CommitConfig { proposal: Some(7) })
        );
        assert_eq!(
            parse(&post, "/cluster/commit", None, &empty),
            Ok(ControlRequest::CommitConfig { proposal: None })
        );
        assert_eq!(
            parse(&post, "/cluster/drain", None, &empty),
            Ok(ControlRequest::Drain)
        );
        assert_eq!(
            parse(&post, "/cluster/enable", None, &empty),
            Ok(ControlRequest::Enable)
        );
        assert_eq!(
            parse(&Method::GET, "/cluster/drain", None, &empty)
                .unwrap_err()
                .0,
            405
        );
        assert_eq!(
            parse(&post, "/cluster/config", None, &empty).unwrap_err().0,
            400
        );
        assert_eq!(
            parse(&post, "/cluster/commit", Some("proposal=x"), &empty)
                .unwrap_err()
                .0,
            400
        );
        assert_eq!(
            parse(&post, "/cluster/nope", None, &empty).unwrap_err().0,
            404
        );
    }

    #[test]
    fn the_token_is_required_and_checked() {
        let mut h = HeaderMap::new();
        assert_eq!(authorize(&h, None).unwrap_err().0, StatusCode::FORBIDDEN);
        assert_eq!(
            authorize(&h, Some(b"secret-token")).unwrap_err().0,
            StatusCode::UNAUTHORIZED
        );
        h.insert(AUTHORIZATION, "Bearer wrong-token!".parse().unwrap());
        assert_eq!(
            authorize(&h, Some(b"secret-token")).unwrap_err().0,
            StatusCode::UNAUTHORIZED
        );
        h.insert(AUTHORIZATION, "Bearer secret-token".parse().unwrap());
        assert!(authorize(&h, Some(b"secret-token")).is_ok());
    }
}
