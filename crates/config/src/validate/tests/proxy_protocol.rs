//! Rules of `accept_proxy`, `proxy_trusted` and `send_proxy` (the PROXY protocol).

use super::{only_problem, service_with, Source};
use crate::{parse, AcceptProxy, Cidr, ProxyVersion};

fn service(extra: &str) -> crate::ServiceConfig {
    let text = service_with(extra);
    match parse(&text, Source::Inline("t".into())) {
        Ok(mut config) => config.services.remove(0),
        Err(err) => panic!("{err}\n--- text:\n{text}"),
    }
}

#[test]
fn proxy_protocol_is_off_by_default() {
    let s = service("");
    assert_eq!(s.accept_proxy, None);
    assert_eq!(s.send_proxy, None);
    assert_eq!(service("accept_proxy = false").accept_proxy, None);
}

#[test]
fn accept_proxy_alone_trusts_any_source() {
    let s = service("accept_proxy = true");
    let a = s.accept_proxy.expect("on");
    assert_eq!(a, AcceptProxy::default());
    assert!(a.trusts("192.0.2.7".parse().unwrap()));
}

#[test]
fn proxy_trusted_takes_networks_and_addresses() {
    let s = service(
        r#"accept_proxy = true
proxy_trusted = ["10.0.0.0/8", "192.0.2.9", "2001:db8::/32"]"#,
    );
    let a = s.accept_proxy.expect("on");
    assert_eq!(
        a.trusted,
        [
            "10.0.0.0/8".parse::<Cidr>().unwrap(),
            "192.0.2.9/32".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ]
    );
    assert!(a.trusts("10.200.1.2".parse().unwrap()));
    assert!(a.trusts("::ffff:10.0.0.1".parse().unwrap()), "v4-mapped");
    assert!(a.trusts("192.0.2.9".parse().unwrap()));
    assert!(!a.trusts("192.0.2.10".parse().unwrap()));
    assert!(a.trusts("2001:db8:1::5".parse().unwrap()));
    assert!(!a.trusts("2001:db9::5".parse().unwrap()));
    assert!(!a.trusts("11.0.0.1".parse().unwrap()));
    let all: Cidr = "0.0.0.0/0".parse().unwrap();
    assert!(all.contains("203.0.113.1".parse().unwrap()));
}

#[test]
fn proxy_trusted_needs_accept_proxy() {
    let text = service_with(r#"proxy_trusted = ["10.0.0.0/8"]"#);
    only_problem(
        &text,
        "proxy_trusted",
        "service[0].proxy_trusted",
        "needs accept_proxy = true",
    );
}

#[test]
fn proxy_trusted_refuses_bad_networks() {
    let text =
        service_with("accept_proxy = true\nproxy_trusted = [\"10.0.0.0/8\",\n \"10.0.0.1/8\"]");
    only_problem(
        &text,
        "10.0.0.1/8",
        "service[0].proxy_trusted[1]",
        "host bits set: write 10.0.0.0/8",
    );
    let text = service_with("accept_proxy = true\nproxy_trusted = [\"10.0.0.0/33\"]");
    only_problem(
        &text,
        "proxy_trusted",
        "service[0].proxy_trusted[0]",
        "prefix length 0..=32",
    );
    let text = service_with("accept_proxy = true\nproxy_trusted = [\"lb.example\"]");
    only_problem(
        &text,
        "proxy_trusted",
        "service[0].proxy_trusted[0]",
        "not an IP address",
    );
    let text = service_with("accept_proxy = true\nproxy_trusted = []");
    only_problem(
        &text,
        "proxy_trusted",
        "service[0].proxy_trusted",
        "trusts nobody",
    );
}

#[test]
fn send_proxy_versions() {
    assert_eq!(
        service(r#"send_proxy = "v1""#).send_proxy,
        Some(ProxyVersion::V1)
    );
    assert_eq!(
        service(r#"send_proxy = "v2""#).send_proxy,
        Some(ProxyVersion::V2)
    );
    let text = service_with(r#"send_proxy = "2""#);
    only_problem(
        &text,
        "send_proxy",
        "service[0].send_proxy",
        "not a PROXY protocol version",
    );
}
