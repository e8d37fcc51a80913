//! pentaflow-config: the TOML configuration file, parsed and validated into [`Config`].
//!
//! Loading is a pipeline: text → `file` (serde structs mirroring the TOML, with spans) →
//! `validate` (every rule checked, every problem collected) → [`Config`] (the typed model the
//! rest of pentaflow reads). Errors name the file, the line and the key, see [`ConfigError`].
//! The text source is injectable ([`parse`] takes a string), so tests need no files.
//!
//! This crate must not know about sockets, the proxy or the cluster: it only describes what
//! the operator asked for. [`example`] is a complete, commented configuration; it is the
//! reference for every key, its default and its range ([`tls_example`] for the TLS keys).
//!
//! ```
//! let config = pentaflow_config::parse(
//!     r#"
//!     [[service]]
//!     name = "web"
//!     listen = ["127.0.0.1:8080"]
//!
//!     [[service.backend]]
//!     name = "web1"
//!     address = "127.0.0.1:8001"
//!     "#,
//!     pentaflow_config::Source::Inline("doc".into()),
//! )?;
//! assert_eq!(config.services[0].backends[0].weight, 1);
//! # Ok::<(), pentaflow_config::ConfigError>(())
//! ```

#![forbid(unsafe_code)]

use std::path::Path;

pub mod diff;
pub mod edit;
pub mod error;
mod file;
pub mod model;
mod read;
mod validate;

pub use diff::{diff_array, ArrayChange, ChangeKind};
pub use error::{ConfigError, Problem, SyntaxError};
pub use model::*;

/// A complete, valid, commented configuration showing every key with its default and range.
const EXAMPLE: &str = include_str!("../example.toml");
/// A commented configuration showing the TLS keys; valid once the files it names exist.
const TLS_EXAMPLE: &str = include_str!("../example-tls.toml");
/// A commented configuration of a three-node array (`[array]`).
const ARRAY_EXAMPLE: &str = include_str!("../example-array.toml");

/// Read and validate the configuration file at `path`.
///
/// Relative paths in it (`secret_file`, `keys_file`, `cert`, `key`, `ca_file`) resolve
/// against the file's directory.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        why: why_unreadable(path, &source),
        source,
    })?;
    parse(&text, Source::File(path.to_owned()))
}

/// What is wrong with a path that could not be read, in the operator's words.
fn why_unreadable(path: &Path, err: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::NotFound => match path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) if !dir.is_dir() => format!(
                "no such file, and its directory {} does not exist either",
                dir.display()
            ),
            _ => "no such file".to_owned(),
        },
        ErrorKind::PermissionDenied => "permission denied (check the file's owner and mode, \
            and that every directory above it may be entered)"
            .to_owned(),
        ErrorKind::InvalidData => "the file is not UTF-8 text".to_owned(),
        _ if path.is_dir() => "it is a directory, not a file".to_owned(),
        _ => err.to_string(),
    }
}

/// Validate configuration text from any source (tests, an embedded demo config); `source`
/// names it in errors. For [`Source::File`], relative file paths resolve against
/// the file's directory; for [`Source::Inline`], against the current directory.
///
/// Every problem is reported at once: all syntax errors; or else every value of the wrong
/// type, every unknown key and every broken rule, sorted by line.
pub fn parse(text: &str, source: Source) -> Result<Config, ConfigError> {
    let (file, shape) = match read::read(text) {
        read::Read::Syntax(errors) => {
            return Err(ConfigError::Syntax {
                source_name: source.name(),
                errors: errors
                    .into_iter()
                    .map(|e| {
                        let (line, column) = error::line_col(text, e.offset);
                        SyntaxError {
                            line,
                            column,
                            message: e.message,
                        }
                    })
                    .collect(),
            })
        }
        read::Read::Shaped { file, problems } => (file, problems),
    };
    let mut problems: Vec<Problem> = shape
        .iter()
        .map(|p| Problem {
            line: error::line_col(text, p.offset).0,
            key: if p.key.is_empty() {
                "(file)".to_owned()
            } else {
                p.key.clone()
            },
            message: p.message.clone(),
        })
        .collect();
    let base_dir = match &source {
        Source::File(path) | Source::Pushed { dest: path, .. } => path.parent(),
        Source::Inline(_) => None,
    };
    if let Some(file) = file {
        match validate::validate(&file, text, base_dir) {
            Ok(config) if problems.is_empty() => return Ok(config),
            Ok(_) => {}
            // A key taken out for its shape is not also "missing".
            Err(found) => problems.extend(
                found
                    .into_iter()
                    .filter(|p| !shape.iter().any(|s| covers(s.removed_key(), &p.key))),
            ),
        }
    }
    // Checks run table by table; the operator reads the file top to bottom.
    problems.sort_by_key(|p| p.line);
    Err(ConfigError::Invalid {
        source_name: source.name(),
        problems,
    })
}

/// Whether a problem about `key` is about the key `removed` (or something inside it).
fn covers(removed: &str, key: &str) -> bool {
    !removed.is_empty()
        && key
            .strip_prefix(removed)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// A complete, commented example configuration (valid: [`parse`] accepts it). It documents
/// every key, its default and its allowed range.
pub fn example() -> &'static str {
    EXAMPLE
}

/// A commented example of HTTPS termination: `[tls_tickets]`, `tls_listen`,
/// `redirect_https`, `[service.tls]` with two certificates and `[service.backend_tls]`.
/// It documents every TLS key, its default and its range.
///
/// Unlike [`example`] it names files, relative to the configuration file's directory:
/// `ticket.keys` (lines of 64 hex digits), `certs/shop.pem`, `certs/shop.key`,
/// `certs/api.pem`, `certs/api.key` and `certs/backend-ca.pem`. [`load`] accepts it once
/// they exist; this crate checks only that they are readable regular files.
pub fn tls_example() -> &'static str {
    TLS_EXAMPLE
}

/// A commented example of an array: one service on the VIP and the `[array]` section of
/// three nodes, node 1 the scheduler. It documents every `[array]` key, its default and its
/// range. Every node gets this same file and says which node it is with
/// `pentaflow serve --node-id N` (or `node_id` in the file).
pub fn array_example() -> &'static str {
    ARRAY_EXAMPLE
}
