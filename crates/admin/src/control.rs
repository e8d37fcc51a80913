//! Operator actions through a node's admin API: on the array, config push and commit, drain
//! and re-enable; on the node, the runtime back-end API (`POST /backend/{add,remove,weight,
//! drain,maintenance,enable}` with a JSON body). Unlike the read-only pages they change the array, so every one needs the
//! admin token (`Authorization: Bearer <token>`); without a configured token they are refused.
//!
//! Owns: the routes, the token check (constant time) and the request bodies' limits. Must
//! not: act itself — the binary's [`StatusSource::control`] does, through the cluster.

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderMap, Method, StatusCode};

use pentaflow_config::edit::BackendChange;
use pentaflow_config::BackendAdminState;
use serde::Deserialize;

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
    /// `POST /backend/<verb>`: change one back-end of a service (written to the file).
    Backend(BackendChange),
}

/// The JSON body of a `/backend/...` action: `{"service": "web", "name": "web4", ...}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendBody {
    service: String,
    name: String,
    /// `add` only.
    address: Option<String>,
    /// `add` (optional) and `weight` (required).
    weight: Option<i64>,
    /// `add` only: `"ready"` (default), `"drain"` or `"maintenance"`.
    state: Option<String>,
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
    path.starts_with("/cluster/") || path.starts_with("/backend/")
}

/// A `/backend/<verb>` action from its JSON body.
fn backend(verb: &str, body: &Bytes) -> Result<ControlRequest, (StatusCode, String)> {
    let bad = |message: String| (StatusCode::BAD_REQUEST, message);
    let b: BackendBody = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "the body must be JSON like {{\"service\": \"web\", \"name\": \"web4\"}}: {e}\n"
        ))
    })?;
    let only_add = |field: &str, present: bool| {
        if present {
            Err(bad(format!("{field:?} is only for /backend/add\n")))
        } else {
            Ok(())
        }
    };
    let state = |state| BackendChange::State {
        service: b.service.clone(),
        name: b.name.clone(),
        state,
    };
    let change = match verb {
        "add" => {
            let address = b
                .address
                .clone()
                .ok_or_else(|| bad("add needs \"address\": \"ip:port\"\n".into()))?;
            let state = match b.state.as_deref() {
                None => None,
                Some(word) => Some(BackendAdminState::from_word(word).ok_or_else(|| {
                    bad(format!(
                        "{word:?} is not a back-end state: use \"ready\", \"drain\" or \"maintenance\"\n"
                    ))
                })?),
            };
            BackendChange::Add {
                service: b.service,
                name: b.name,
                address,
                weight: b.weight,
                state,
            }
        }
        "weight" => {
            only_add("address", b.address.is_some())?;
            only_add("state", b.state.is_some())?;
            let weight = b
                .weight
                .ok_or_else(|| bad("weight needs \"weight\": 1..=1000\n".into()))?;
            BackendChange::Weight {
                service: b.service,
                name: b.name,
                weight,
            }
        }
        "remove" | "drain" | "maintenance" | "enable" => {
            only_add("address", b.address.is_some())?;
            only_add("state", b.state.is_some())?;
            if b.weight.is_some() {
                return Err(bad(
                    "\"weight\" is only for /backend/add and /backend/weight\n".into(),
                ));
            }
            match verb {
                "remove" => BackendChange::Remove {
                    service: b.service,
                    name: b.name,
                },
                "drain" => state(BackendAdminState::Drain),
                "maintenance" => state(BackendAdminState::Maintenance),
                _ => state(BackendAdminState::Ready),
            }
        }
        _ => return Err((StatusCode::NOT_FOUND, "not found\n".into())),
    };
    Ok(ControlRequest::Backend(change))
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
    if let Some(verb) = path.strip_prefix("/backend/") {
        return backend(verb, body);
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
        let message = "operator actions need an admin token on this node \
            ([node] admin_token; on an array, [array] admin_token)\n";
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
    fn backend_routes_parse() {
        let post = Method::POST;
        let body = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert_eq!(
            parse(
                &post,
                "/backend/add",
                None,
                &body(r#"{"service":"web","name":"w4","address":"127.0.0.1:8004","weight":3}"#)
            ),
            Ok(ControlRequest::Backend(BackendChange::Add {
                service: "web".into(),
                name: "w4".into(),
                address: "127.0.0.1:8004".into(),
                weight: Some(3),
                state: None,
            }))
        );
        assert_eq!(
            parse(
                &post,
                "/backend/drain",
                None,
                &body(r#"{"service":"web","name":"w1"}"#)
            ),
            Ok(ControlRequest::Backend(BackendChange::State {
                service: "web".into(),
                name: "w1".into(),
                state: BackendAdminState::Drain,
            }))
        );
        assert_eq!(
            parse(
                &post,
                "/backend/weight",
                None,
                &body(r#"{"service":"web","name":"w1","weight":9}"#)
            ),
            Ok(ControlRequest::Backend(BackendChange::Weight {
                service: "web".into(),
                name: "w1".into(),
                weight: 9,
            }))
        );
        for (path, text) in [
            ("/backend/add", r#"{"service":"web","name":"w4"}"#),
            (
                "/backend/add",
                r#"{"service":"web","name":"w4","address":"x","state":"off"}"#,
            ),
            ("/backend/weight", r#"{"service":"web","name":"w1"}"#),
            (
                "/backend/drain",
                r#"{"service":"web","name":"w1","weight":2}"#,
            ),
            (
                "/backend/drain",
                r#"{"service":"web","name":"w1","colour":2}"#,
            ),
            ("/backend/drain", "not json"),
        ] {
            assert_eq!(
                parse(&post, path, None, &body(text)).unwrap_err().0,
                400,
                "{path} {text}"
            );
        }
        assert_eq!(
            parse(
                &post,
                "/backend/nope",
                None,
                &body(r#"{"service":"a","name":"b"}"#)
            )
            .unwrap_err()
            .0,
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
