//! Runtime back-end changes as edits of the configuration text: add or remove a
//! `[[service.backend]]`, set its `weight` or its `state`.
//!
//! The file stays the one truth of a node: the admin API edits the operator's text here,
//! keeping every comment and the order of keys (`toml_edit`), validates the result like any
//! file ([`crate::parse`]), and the node applies it as a reload — so a restart or a SIGHUP
//! sees the same back-ends. Owns: finding the service and back-end, refusing what is unknown,
//! duplicated or out of range before anything changes. Must not: write files or apply
//! configurations (the binary does, atomically).

use std::net::SocketAddr;

use toml_edit::{value, ArrayOfTables, DocumentMut, Item, Table};

use crate::error::ConfigError;
use crate::model::{BackendAdminState, Config, Source};

/// The weights a back-end may have (as the validator checks `weight`).
pub const WEIGHT_RANGE: std::ops::RangeInclusive<i64> = 1..=1000;

/// One change to a service's back-ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendChange {
    /// A new `[[service.backend]]` at the end of the service's list.
    Add {
        /// The service's `name`.
        service: String,
        /// The new back-end's name (unique in the service).
        name: String,
        /// `ip:port` (unique in the service).
        address: String,
        /// Its weight; `None` = the default (1).
        weight: Option<i64>,
        /// Its state; `None` = ready.
        state: Option<BackendAdminState>,
    },
    /// Removes the back-end: clients that persisted to it move.
    Remove {
        /// The service's `name`.
        service: String,
        /// The back-end's name.
        name: String,
    },
    /// Sets its weight.
    Weight {
        /// The service's `name`.
        service: String,
        /// The back-end's name.
        name: String,
        /// The new weight.
        weight: i64,
    },
    /// Sets its state (`enable` = ready, `drain`, `maintenance`).
    State {
        /// The service's `name`.
        service: String,
        /// The back-end's name.
        name: String,
        /// The new state.
        state: BackendAdminState,
    },
}

/// Why a change was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// The running file is not TOML any more (edited by hand since it was loaded).
    #[error("the configuration file is not valid TOML: {0}")]
    Syntax(String),
    /// No `[[service]]` has that name.
    #[error("unknown service {0:?}")]
    UnknownService(String),
    /// The service has no back-end of that name.
    #[error("service {service:?} has no back-end {name:?}")]
    UnknownBackend {
        /// The service.
        service: String,
        /// The name asked for.
        name: String,
    },
    /// `add` with a name already used in the service.
    #[error("service {service:?} already has a back-end named {name:?}")]
    DuplicateName {
        /// The service.
        service: String,
        /// The name.
        name: String,
    },
    /// `add` with an address already used in the service.
    #[error("service {service:?} already has back-end {existing:?} at {address}")]
    DuplicateAddress {
        /// The service.
        service: String,
        /// The address.
        address: SocketAddr,
        /// The back-end that has it.
        existing: String,
    },
    /// Not `ip:port`, or port 0.
    #[error("{0:?} is not a back-end address: use ip:port with a port other than 0")]
    BadAddress(String),
    /// Outside [`WEIGHT_RANGE`].
    #[error("weight {0} is out of range: use 1..=1000")]
    WeightOutOfRange(i64),
    /// The service's back-ends are written in a form this edit does not rewrite.
    #[error("the back-ends of service {0:?} are not written as [[service.backend]] tables")]
    Unsupported(String),
    /// The edited file does not validate (e.g. the last back-end of a service removed).
    #[error("the change would make the configuration invalid:\n{0}")]
    Invalid(Box<ConfigError>),
}

impl BackendChange {
    /// The service it is about.
    #[must_use]
    pub fn service(&self) -> &str {
        match self {
            Self::Add { service, .. }
            | Self::Remove { service, .. }
            | Self::Weight { service, .. }
            | Self::State { service, .. } => service,
        }
    }
}

/// Applies `change` to the configuration `text` (read from `source`): the new text, with
/// every comment kept, and the configuration it validates to.
pub fn apply(
    text: &str,
    source: Source,
    change: &BackendChange,
) -> Result<(String, Config), EditError> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| EditError::Syntax(e.to_string()))?;
    let service = change.service().to_owned();
    let table = service_table(&mut doc, &service)?;
    let backends = match table.get_mut("backend") {
        None => return Err(EditError::Unsupported(service)),
        Some(item) => item
            .as_array_of_tables_mut()
            .ok_or_else(|| EditError::Unsupported(service.clone()))?,
    };
    match change {
        BackendChange::Add {
            name,
            address,
            weight,
            state,
            ..
        } => add(backends, &service, name, address, *weight, *state)?,
        BackendChange::Remove { name, .. } => {
            let i = position(backends, &service, name)?;
            backends.remove(i);
        }
        BackendChange::Weight { name, weight, .. } => {
            check_weight(*weight)?;
            let i = position(backends, &service, name)?;
            if let Some(t) = backends.get_mut(i) {
                t["weight"] = value(*weight);
            }
        }
        BackendChange::State { name, state, .. } => {
            let i = position(backends, &service, name)?;
            if let Some(t) = backends.get_mut(i) {
                match state {
                    // Ready is the default: no key, as the operator would write it.
                    BackendAdminState::Ready => {
                        t.remove("state");
                    }
                    other => t["state"] = value(other.as_str()),
                }
            }
        }
    }
    let new = doc.to_string();
    let config = crate::parse(&new, source).map_err(|e| EditError::Invalid(Box::new(e)))?;
    Ok((new, config))
}

/// The `[[service]]` named `name`.
fn service_table<'d>(doc: &'d mut DocumentMut, name: &str) -> Result<&'d mut Table, EditError> {
    let unknown = || EditError::UnknownService(name.to_owned());
    let services = doc
        .get_mut("service")
        .and_then(Item::as_array_of_tables_mut)
        .ok_or_else(unknown)?;
    services
        .iter_mut()
        .find(|t| t.get("name").and_then(Item::as_str) == Some(name))
        .ok_or_else(unknown)
}

/// Index of the back-end `name`.
fn position(backends: &ArrayOfTables, service: &str, name: &str) -> Result<usize, EditError> {
    backends
        .iter()
        .position(|t| t.get("name").and_then(Item::as_str) == Some(name))
        .ok_or_else(|| EditError::UnknownBackend {
            service: service.to_owned(),
            name: name.to_owned(),
        })
}

fn check_weight(weight: i64) -> Result<(), EditError> {
    if WEIGHT_RANGE.contains(&weight) {
        Ok(())
    } else {
        Err(EditError::WeightOutOfRange(weight))
    }
}

fn add(
    backends: &mut ArrayOfTables,
    service: &str,
    name: &str,
    address: &str,
    weight: Option<i64>,
    state: Option<BackendAdminState>,
) -> Result<(), EditError> {
    let addr: SocketAddr = address
        .parse()
        .ok()
        .filter(|a: &SocketAddr| a.port() != 0)
        .ok_or_else(|| EditError::BadAddress(address.to_owned()))?;
    if let Some(w) = weight {
        check_weight(w)?;
    }
    for t in backends.iter() {
        let existing = t.get("name").and_then(Item::as_str).unwrap_or_default();
        if existing == name {
            return Err(EditError::DuplicateName {
                service: service.to_owned(),
                name: name.to_owned(),
            });
        }
        let same = t
            .get("address")
            .and_then(Item::as_str)
            .and_then(|a| a.parse::<SocketAddr>().ok())
            == Some(addr);
        if same {
            return Err(EditError::DuplicateAddress {
                service: service.to_owned(),
                address: addr,
                existing: existing.to_owned(),
            });
        }
    }
    let mut t = Table::new();
    t["name"] = value(name);
    t["address"] = value(addr.to_string());
    if let Some(w) = weight {
        t["weight"] = value(w);
    }
    if let Some(s) = state.filter(|s| *s != BackendAdminState::Ready) {
        t["state"] = value(s.as_str());
    }
    backends.push(t);
    Ok(())
}

#[cfg(test)]
mod tests;
