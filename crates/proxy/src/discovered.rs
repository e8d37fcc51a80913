//! Back-ends found at run time (the node's DNS discovery) layered over the configuration the
//! proxy was given.
//!
//! Owns the overlay — per `(service, discovered entry)` the back-ends that name resolves to
//! now — and [`effective`], the pure merge of a configuration with it. Every change of the
//! back-end set, from the file (reload) or from DNS, is applied as the one configuration
//! this produces, so a reload keeps what DNS found and a DNS change keeps what the file says.
//! Must not: resolve names or know where the sets come from.

use std::collections::HashMap;

use pentaflow_config::{BackendConfig, Config};

/// The back-ends of each discovered entry, by `(service name, entry name)`.
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    sets: HashMap<(String, String), Vec<BackendConfig>>,
}

impl Overlay {
    /// Replaces the set of one entry; returns the one it replaces.
    pub(crate) fn set(
        &mut self,
        service: &str,
        entry: &str,
        backends: Vec<BackendConfig>,
    ) -> Option<Vec<BackendConfig>> {
        self.sets
            .insert((service.to_owned(), entry.to_owned()), backends)
    }

    /// Puts back what [`Overlay::set`] replaced (a change the proxy refused).
    pub(crate) fn restore(
        &mut self,
        service: &str,
        entry: &str,
        previous: Option<Vec<BackendConfig>>,
    ) {
        let key = (service.to_owned(), entry.to_owned());
        match previous {
            Some(set) => self.sets.insert(key, set),
            None => self.sets.remove(&key),
        };
    }
}

/// `base` with each service's discovered back-ends appended after its own, in the order of
/// its `discovered` entries. Sets of entries `base` no longer has are left out, and so is a
/// discovered back-end whose name a back-end of the file already uses.
pub(crate) fn effective(base: &Config, overlay: &Overlay) -> Config {
    let mut config = base.clone();
    for service in &mut config.services {
        for entry in &service.discovered {
            let key = (service.name.clone(), entry.name.clone());
            let Some(set) = overlay.sets.get(&key) else {
                continue;
            };
            for b in set {
                if !service.backends.iter().any(|own| own.name == b.name) {
                    service.backends.push(b.clone());
                }
            }
        }
    }
    config
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use pentaflow_config::{parse, BackendAdminState, Source};

    const TEXT: &str = "[[service]]\nname = \"web\"\nlisten = [\"127.0.0.1:0\"]\n\
        [[service.backend]]\nname = \"a\"\naddress = \"127.0.0.1:9\"\n\
        [[service.backend]]\nname = \"app\"\naddress = \"app.internal:80\"\n";

    fn found(name: &str, port: u16) -> BackendConfig {
        BackendConfig {
            name: name.into(),
            address: format!("127.0.0.2:{port}").parse().unwrap(),
            weight: 1,
            state: BackendAdminState::Ready,
        }
    }

    #[test]
    fn discovered_backends_follow_the_file_and_vanish_with_their_entry() {
        let base = parse(TEXT, Source::Inline("t".into())).unwrap();
        let mut overlay = Overlay::default();
        assert_eq!(effective(&base, &overlay).services[0].backends.len(), 1);
        overlay.set("web", "app", vec![found("app#1", 80), found("a", 81)]);
        // An entry the file does not have (removed by a reload) contributes nothing.
        overlay.set("web", "gone", vec![found("gone#1", 82)]);
        let names: Vec<String> = effective(&base, &overlay).services[0]
            .backends
            .iter()
            .map(|b| b.name.clone())
            .collect();
        assert_eq!(names, ["a", "app#1"]);
        let previous = overlay.set("web", "app", Vec::new());
        assert_eq!(effective(&base, &overlay).services[0].backends.len(), 1);
        overlay.restore("web", "app", previous);
        assert_eq!(effective(&base, &overlay).services[0].backends.len(), 2);
    }
}
