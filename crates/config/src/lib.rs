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

pub mod error;
mod file;
pub mod model;
mod validate;

pub use error::{ConfigError, Problem};
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
        source,
    })?;
    parse(&text, Source::File(path.to_owned()))
}

/// Validate configuration text from any source (tests, an embedded demo config); `source`
/// names it in errors. For [`Source::File`], relative file paths resolve against
/// the file's directory; for [`Source::Inline`], against the current directory.
pub fn parse(text: &str, source: Source) -> Result<Config, ConfigError> {
    let file = file::parse(text).map_err(|err| {
        let (line, column) = err
            .span()
            .map_or((1, 1), |span| error::line_col(text, span.start));
        let message = err.message().trim_end();
        // Name the key for type errors and unknown keys (the text is valid TOML then).
        let message = match err.span().and_then(|span| file::key_at(text, span.start)) {
            Some(key) => format!("{key}: {message}"),
            None => message.to_owned(),
        };
        ConfigError::Syntax {
            source_name: source.name(),
            line,
            column,
            message,
        }
    })?;
    let base_dir = match &source {
        Source::File(path) | Source::Pushed { dest: path, .. } => path.parent(),
        Source::Inline(_) => None,
    };
    validate::validate(&file, text, base_dir).map_err(|mut problems| {
        // Checks run table by table; the operator reads the file top to bottom.
        problems.sort_by_key(|p| p.line);
        ConfigError::Invalid {
            source_name: source.name(),
            problems,
        }
    })
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
