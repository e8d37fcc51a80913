//! Rules of `tls_listen`, `redirect_https`, `[service.tls]` and its certificates, and
//! `[service.backend_tls]`. Certificate files hold any bytes: only their presence is checked.

use std::path::PathBuf;
use std::time::Duration;

use super::{line_of, only_problem, problems, service_with, Scratch, SERVICE};
use crate::{load, parse, BackendTls, CertificateConfig, Config, Source, UnknownSni};

/// Certificate and key files in a scratch directory.
struct Certs {
    dir: Scratch,
    cert: String,
    key: String,
}

fn certs(tag: &str) -> Certs {
    let dir = Scratch::new(tag);
    let cert = dir.file("site.pem", "not really PEM");
    let key = dir.file("site.key", "not really PEM either");
    Certs { dir, cert, key }
}

/// `SERVICE` with `tls_listen` and `service_extra` after its listen line, then a
/// `[service.tls]` table with `tls_body` and one certificate of `certs`.
fn tls_service(certs: &Certs, service_extra: &str, tls_body: &str) -> String {
    format!(
        "{}\n[service.tls]\n{tls_body}\n[[service.tls.certificate]]\ncert = \"{}\"\nkey = \"{}\"\n",
        service_with(&format!(
            "tls_listen = [\"127.0.0.1:8443\"]\n{service_extra}"
        )),
        certs.cert,
        certs.key
    )
}

fn valid(text: &str) -> Config {
    match parse(text, Source::Inline("t".into())) {
        Ok(config) => config,
        Err(err) => panic!("{err}\n--- text:\n{text}"),
    }
}

#[test]
fn tls_defaults() {
    let c = certs("tls-defaults");
    let config = valid(&tls_service(&c, "", ""));
    let s = &config.services[0];
    assert_eq!(s.tls_listen, ["127.0.0.1:8443".parse().unwrap()]);
    assert!(!s.redirect_https);
    assert_eq!(s.backend_tls, None);
    let tls = s.tls.as_ref().unwrap();
    assert_eq!(
        tls.certificates,
        [CertificateConfig {
            cert: PathBuf::from(&c.cert),
            key: PathBuf::from(&c.key),
            default: false,
        }]
    );
    assert_eq!(tls.unknown_sni, UnknownSni::Default);
    assert_eq!(tls.handshake_timeout, Duration::from_secs(10));
    assert_eq!(tls.max_handshakes, 1024);
    assert!(tls.http2);

    let config = valid(&tls_service(
        &c,
        "redirect_https = true",
        "unknown_sni = \"refuse\"\nhandshake_timeout = \"3s\"\nmax_handshakes = 1000000\nhttp2 = false",
    ));
    let s = &config.services[0];
    assert!(s.redirect_https);
    let tls = s.tls.as_ref().unwrap();
    assert_eq!(
        (
            tls.unknown_sni,
            tls.handshake_timeout,
            tls.max_handshakes,
            tls.http2
        ),
        (UnknownSni::Refuse, Duration::from_secs(3), 1_000_000, false)
    );
}

#[test]
fn a_service_may_listen_on_https_only() {
    let c = certs("https-only");
    let text = tls_service(&c, "", "").replace("listen = [\"127.0.0.1:8080\"]\n", "");
    let config = valid(&text);
    assert!(config.services[0].listen.is_empty());
    let text = tls_service(&c, "", "").replace("[\"127.0.0.1:8080\"]", "[]");
    assert!(valid(&text).services[0].listen.is_empty());
}

#[test]
fn at_least_one_of_listen_and_tls_listen() {
    let text = SERVICE.replace("[\"127.0.0.1:8080\"]", "[]");
    only_problem(
        &text,
        "listen",
        "service[0].listen",
        "at least one of listen / tls_listen",
    );
    let text = SERVICE.replace("listen = [\"127.0.0.1:8080\"]", "tls_listen = []");
    only_problem(
        &text,
        "tls_listen",
        "service[0].tls_listen",
        "at least one of listen / tls_listen",
    );
}

#[test]
fn tls_listen_addresses_are_parsed_and_claimed() {
    let c = certs("tls-claim");
    let text = tls_service(&c, "", "").replace("127.0.0.1:8443", "127.0.0.1:8080");
    only_problem(
        &text,
        "tls_listen",
        "service[0].tls_listen[0]",
        "already used by service[0].listen[0] on line 3",
    );
    let text = tls_service(&c, "", "").replace("127.0.0.1:8443", "localhost:8443");
    only_problem(
        &text,
        "tls_listen",
        "service[0].tls_listen[0]",
        "\"localhost:8443\" is not an ip:port",
    );
    // Across services, and against the admin listener, too.
    let second = SERVICE
        .replace("\"web\"", "\"api\"")
        .replace("127.0.0.1:8080", "127.0.0.1:8443");
    let text = format!("{}\n{second}", tls_service(&c, "", ""));
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].key, "service[1].listen[0]");
    assert!(found[0]
        .message
        .contains("already used by service[0].tls_listen[0] on line 4"));
}

#[test]
fn tls_listen_needs_the_tls_table_and_the_table_needs_tls_listen() {
    let text = service_with("tls_listen = [\"127.0.0.1:8443\"]");
    only_problem(
        &text,
        "tls_listen",
        "service[0].tls",
        "tls_listen needs a [service.tls] table",
    );
    let c = certs("tls-stray");
    let text = format!(
        "{SERVICE}\n[service.tls]\n[[service.tls.certificate]]\ncert = \"{}\"\nkey = \"{}\"\n",
        c.cert, c.key
    );
    only_problem(
        &text,
        "[service.tls]",
        "service[0].tls",
        "[service.tls] is set but tls_listen is empty",
    );
}

#[test]
fn redirect_https_needs_both_kinds_of_listener() {
    let text = service_with("redirect_https = true");
    only_problem(
        &text,
        "redirect_https",
        "service[0].redirect_https",
        "needs tls_listen",
    );
    // false is the default and needs nothing.
    valid(&service_with("redirect_https = false"));
    let c = certs("redirect");
    let text = tls_service(&c, "redirect_https = true", "").replace("[\"127.0.0.1:8080\"]", "[]");
    only_problem(
        &text,
        "redirect_https",
        "service[0].redirect_https",
        "needs listen",
    );
}

#[test]
fn tls_table_values() {
    let c = certs("tls-values");
    for (body, key, says) in [
        (
            "unknown_sni = \"ignore\"",
            "service[0].tls.unknown_sni",
            "\"ignore\" is not default or refuse",
        ),
        (
            "handshake_timeout = \"0s\"",
            "service[0].tls.handshake_timeout",
            "longer than zero",
        ),
        (
            "max_handshakes = 0",
            "service[0].tls.max_handshakes",
            "between 1 and 1000000, not 0",
        ),
        (
            "max_handshakes = 1000001",
            "service[0].tls.max_handshakes",
            "not 1000001",
        ),
    ] {
        let text = tls_service(&c, "", body);
        only_problem(&text, body, key, says);
    }
}

#[test]
fn at_least_one_certificate() {
    let text = format!(
        "{}\n[service.tls]\nhttp2 = true\n",
        service_with("tls_listen = [\"127.0.0.1:8443\"]")
    );
    only_problem(
        &text,
        "[service.tls]",
        "service[0].tls.certificate",
        "at least one [[service.tls.certificate]]",
    );
}

#[test]
fn certificate_files_are_required_and_readable() {
    let c = certs("cert-files");
    let text = tls_service(&c, "", "").replace(&format!("key = \"{}\"\n", c.key), "");
    only_problem(
        &text,
        "[[service.tls.certificate]]",
        "service[0].tls.certificate[0].key",
        "missing required key",
    );
    let text = tls_service(&c, "", "").replace(&format!("cert = \"{}\"\n", c.cert), "");
    only_problem(
        &text,
        "[[service.tls.certificate]]",
        "service[0].tls.certificate[0].cert",
        "missing required key",
    );

    let missing = c.dir.0.join("gone.pem").display().to_string();
    let text = tls_service(&c, "", "").replace(&c.cert, &missing);
    only_problem(
        &text,
        "cert =",
        "service[0].tls.certificate[0].cert",
        &format!("cannot use {missing}: No such file"),
    );
    let dir = c.dir.0.display().to_string();
    let text = tls_service(&c, "", "").replace(&c.key, &dir);
    only_problem(
        &text,
        "key =",
        "service[0].tls.certificate[0].key",
        "not a regular file",
    );
    let text = tls_service(&c, "", "").replace(&c.key, "");
    only_problem(
        &text,
        "key =",
        "service[0].tls.certificate[0].key",
        "must not be empty",
    );
}

#[test]
fn at_most_one_default_certificate() {
    let c = certs("cert-default");
    let more = format!(
        "default = true\n[[service.tls.certificate]]\ncert = \"{0}\"\nkey = \"{1}\"\n\
         [[service.tls.certificate]]\ncert = \"{0}\"\nkey = \"{1}\"\ndefault = true\n",
        c.cert, c.key
    );
    let text = tls_service(&c, "", "") + &more;
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    let first_default = line_of(&text, "default = true");
    assert_eq!(found[0].key, "service[0].tls.certificate[2].default");
    assert_eq!(found[0].line, text.lines().count());
    assert!(
        found[0].message.contains(&format!(
            "service[0].tls.certificate[0] on line {first_default} already is"
        )),
        "{found:?}"
    );
    // One default (here the second certificate) is fine.
    let text = tls_service(&c, "", "")
        + &format!(
            "[[service.tls.certificate]]\ncert = \"{}\"\nkey = \"{}\"\ndefault = true\n",
            c.cert, c.key
        );
    let defaults: Vec<bool> = valid(&text).services[0]
        .tls
        .as_ref()
        .unwrap()
        .certificates
        .iter()
        .map(|c| c.default)
        .collect();
    assert_eq!(defaults, [false, true]);
}

#[test]
fn backend_tls() {
    let c = certs("backend-tls");
    let ca = c.dir.file("ca.pem", "CA bundle");
    let config = valid(&format!("{SERVICE}\n[service.backend_tls]\n"));
    assert_eq!(
        config.services[0].backend_tls,
        Some(BackendTls::default()),
        "an empty table means verified TLS"
    );
    assert!(BackendTls::default().verify);

    let text = format!(
        "{SERVICE}\n[service.backend_tls]\nca_file = \"{ca}\"\nserver_name = \"backend.internal\"\n"
    );
    assert_eq!(
        valid(&text).services[0].backend_tls,
        Some(BackendTls {
            verify: true,
            ca_file: Some(PathBuf::from(&ca)),
            server_name: Some("backend.internal".into()),
        })
    );
    for name in [
        "10.0.0.1",
        "::1",
        "web-1.example.com",
        "_svc.internal",
        "localhost",
    ] {
        valid(&format!(
            "{SERVICE}\n[service.backend_tls]\nserver_name = \"{name}\"\n"
        ));
    }
    for name in [
        "",
        "bad name",
        "-x.example",
        "a..b",
        "10.0.0",
        "x.",
        "é.example",
    ] {
        let text = format!("{SERVICE}\n[service.backend_tls]\nserver_name = \"{name}\"\n");
        only_problem(
            &text,
            "server_name",
            "service[0].backend_tls.server_name",
            "neither a DNS name",
        );
    }
    let text = format!("{SERVICE}\n[service.backend_tls]\nca_file = \"{ca}.gone\"\n");
    only_problem(
        &text,
        "ca_file",
        "service[0].backend_tls.ca_file",
        "cannot use",
    );
    let text = format!("{SERVICE}\n[service.backend_tls]\nverify = false\nca_file = \"{ca}\"\n");
    only_problem(
        &text,
        "ca_file",
        "service[0].backend_tls.ca_file",
        "no effect with verify = false",
    );
    let config = valid(&format!(
        "{SERVICE}\n[service.backend_tls]\nverify = false\n"
    ));
    assert_eq!(
        config.services[0].backend_tls.as_ref().map(|b| b.verify),
        Some(false)
    );
}

#[test]
fn relative_paths_resolve_against_the_config_file() {
    let dir = Scratch::new("tls-relative");
    dir.file("certs/site.pem", "chain");
    dir.file("certs/site.key", "key");
    dir.file("ca.pem", "ca");
    dir.file("ticket.keys", format!("{}\n", "ab".repeat(32)));
    let text = format!(
        "[tls_tickets]\nkeys_file = \"ticket.keys\"\n{}\n[service.tls]\n[[service.tls.certificate]]\n\
         cert = \"certs/site.pem\"\nkey = \"certs/site.key\"\n[service.backend_tls]\nca_file = \"ca.pem\"\n",
        service_with("tls_listen = [\"127.0.0.1:8443\"]")
    );
    let path = dir.file("array.toml", &text);
    let config = load(std::path::Path::new(&path)).unwrap();
    let s = &config.services[0];
    let cert = &s.tls.as_ref().unwrap().certificates[0];
    assert_eq!(cert.cert, dir.0.join("certs/site.pem"));
    assert_eq!(cert.key, dir.0.join("certs/site.key"));
    assert_eq!(
        s.backend_tls.as_ref().unwrap().ca_file.as_deref(),
        Some(dir.0.join("ca.pem").as_path())
    );
    assert_eq!(config.tickets.keys, [[0xab; 32]]);

    // A missing relative file is named by its resolved path, on its own line.
    std::fs::remove_file(dir.0.join("certs/site.key")).unwrap();
    let err = load(std::path::Path::new(&path)).unwrap_err();
    let shown = err.to_string();
    let line = line_of(&text, "key = \"certs/site.key\"");
    assert!(
        shown.starts_with(&format!(
            "{path}:{line}: service[0].tls.certificate[0].key: cannot use {}",
            dir.0.join("certs/site.key").display()
        )),
        "{shown}"
    );
}
