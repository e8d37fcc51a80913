//! Rules of `[service.cookie]`, `[service.session]`, `[service.passive]`, `[service.health]`.

use super::{line_of, only_problem, problems, service_with, SERVICE};
use crate::{parse, Persistence, Source};

/// A cookie-persistence service with `cookie` as the body of its `[service.cookie]` table
/// (which starts on line 13).
fn cookie_service(cookie: &str) -> String {
    format!(
        "{}\n[service.cookie]\n{cookie}\n",
        service_with("persistence = \"cookie\"")
    )
}

/// A session-persistence service with `session` as the body of its `[service.session]` table.
fn session_service(session: &str) -> String {
    format!(
        "{}\n[service.session]\n{session}\n",
        service_with("persistence = \"session\"")
    )
}

const SECRET: &str = "secret = \"0123456789abcdef\"";

#[test]
fn cookie_defaults() {
    let config = parse(&cookie_service(SECRET), Source::Inline("t".into())).unwrap();
    let Persistence::Cookie(c) = &config.services[0].persistence else {
        panic!("not cookie persistence: {config:?}");
    };
    assert_eq!(c.name, "PFSRV");
    assert_eq!(c.secret, b"0123456789abcdef");
    assert_eq!(
        (c.follow.as_deref(), c.secure, c.http_only),
        (None, None, true)
    );
    assert_eq!(c.same_site, None);
}

#[test]
fn cookie_rotation_and_lifetime() {
    let text = cookie_service(&format!(
        "{SECRET}\nprevious_secrets = [\"older secret 0123\", \"oldest secret 0123\"]\nmax_idle = \"30m\"\nmax_life = \"7days\""
    ));
    let config = parse(&text, Source::Inline("t".into())).unwrap();
    let Persistence::Cookie(c) = &config.services[0].persistence else {
        panic!("not cookie persistence: {config:?}");
    };
    assert_eq!(
        c.previous_secrets,
        vec![
            b"older secret 0123".to_vec(),
            b"oldest secret 0123".to_vec()
        ]
    );
    assert_eq!(c.max_idle, Some(std::time::Duration::from_secs(1800)));
    assert_eq!(c.max_life, Some(std::time::Duration::from_secs(7 * 86_400)));
    // Defaults: no previous keys, no expiry.
    let config = parse(&cookie_service(SECRET), Source::Inline("t".into())).unwrap();
    let Persistence::Cookie(c) = &config.services[0].persistence else {
        panic!("not cookie persistence");
    };
    assert!(c.previous_secrets.is_empty());
    assert_eq!((c.max_idle, c.max_life), (None, None));
}

#[test]
fn cookie_rotation_and_lifetime_are_checked() {
    let text = cookie_service(&format!("{SECRET}\nprevious_secrets = [\"short\"]"));
    only_problem(
        &text,
        "short",
        "service[0].cookie.previous_secrets",
        "at least 16 bytes, it has 5",
    );
    assert!(!problems(&text)[0].message.contains("short"));
    let nine: Vec<String> = (0..9)
        .map(|i| format!("\"old secret number {i}\""))
        .collect();
    let text = cookie_service(&format!(
        "{SECRET}\nprevious_secrets = [{}]",
        nine.join(", ")
    ));
    only_problem(
        &text,
        "previous_secrets",
        "service[0].cookie.previous_secrets",
        "at most 8",
    );
    let text = cookie_service(&format!("{SECRET}\nmax_idle = \"0s\""));
    only_problem(
        &text,
        "max_idle",
        "service[0].cookie.max_idle",
        "longer than zero",
    );
    let text = cookie_service(&format!("{SECRET}\nmax_life = \"20years\""));
    only_problem(
        &text,
        "max_life",
        "service[0].cookie.max_life",
        "out of range",
    );
    let text = cookie_service(&format!(
        "{SECRET}\nprevious_secret_files = [\"/nonexistent/pentaflow/old.key\"]"
    ));
    only_problem(
        &text,
        "previous_secret_files",
        "service[0].cookie.previous_secret_files",
        "No such file",
    );
}

#[test]
fn cookie_names_must_be_tokens() {
    let text = cookie_service(&format!("{SECRET}\nname = \"my cookie\""));
    only_problem(
        &text,
        "my cookie",
        "service[0].cookie.name",
        "not a valid cookie name",
    );
    let text = cookie_service(&format!("{SECRET}\nfollow = \"a;b\""));
    only_problem(
        &text,
        "a;b",
        "service[0].cookie.follow",
        "not a valid cookie name",
    );
}

#[test]
fn cookie_secret_exactly_one_source() {
    let text = cookie_service("http_only = false");
    only_problem(
        &text,
        "[service.cookie]",
        "service[0].cookie.secret",
        "set secret or secret_file",
    );
    let text = cookie_service(&format!("{SECRET}\nsecret_file = \"key\""));
    only_problem(
        &text,
        "secret_file",
        "service[0].cookie.secret_file",
        "not both",
    );
}

#[test]
fn cookie_secret_needs_16_bytes_and_is_never_quoted() {
    let text = cookie_service("secret = \"hunter2\"");
    only_problem(
        &text,
        "hunter2",
        "service[0].cookie.secret",
        "at least 16 bytes, it has 7",
    );
    assert!(!problems(&text)[0].message.contains("hunter2"));
}

#[test]
fn cookie_secret_file_must_be_readable() {
    let text = cookie_service("secret_file = \"/nonexistent/pentaflow/cookie.key\"");
    only_problem(
        &text,
        "secret_file",
        "service[0].cookie.secret_file",
        "cannot use /nonexistent/pentaflow/cookie.key: No such file",
    );
    // Devices and directories are refused before reading (no hang on /dev/zero).
    let text = cookie_service("secret_file = \"/dev/zero\"");
    only_problem(
        &text,
        "secret_file",
        "service[0].cookie.secret_file",
        "not a regular file",
    );
    let text = cookie_service("secret_file = \"\"");
    only_problem(
        &text,
        "secret_file",
        "service[0].cookie.secret_file",
        "must not be empty",
    );
}

#[test]
fn cookie_same_site() {
    let text = cookie_service(&format!("{SECRET}\nsame_site = \"loose\""));
    only_problem(
        &text,
        "same_site",
        "service[0].cookie.same_site",
        "not Lax, Strict or None",
    );
    let text = cookie_service(&format!("{SECRET}\nsame_site = \"None\"\nsecure = false"));
    only_problem(
        &text,
        "same_site",
        "service[0].cookie.same_site",
        "needs the Secure attribute",
    );
    // Case-insensitive, stored canonically.
    let text = cookie_service(&format!("{SECRET}\nsame_site = \"strict\""));
    let config = parse(&text, Source::Inline("t".into())).unwrap();
    let Persistence::Cookie(c) = &config.services[0].persistence else {
        panic!("not cookie persistence");
    };
    assert_eq!(c.same_site.as_deref(), Some("Strict"));
}

#[test]
fn session_needs_a_place_to_look() {
    let text = session_service("groups = 16");
    only_problem(
        &text,
        "[service.session]",
        "service[0].session",
        "set cookie, url_param or both",
    );
}

#[test]
fn session_names() {
    let text = session_service("cookie = \"JSESSION ID\"");
    only_problem(
        &text,
        "JSESSION ID",
        "service[0].session.cookie",
        "not a valid cookie name",
    );
    let text = session_service("url_param = \"sid=\"");
    only_problem(
        &text,
        "sid=",
        "service[0].session.url_param",
        "not a valid URL parameter name",
    );
}

#[test]
fn session_groups_and_idle() {
    let text = session_service("cookie = \"JSESSIONID\"\ngroups = 0");
    only_problem(
        &text,
        "groups",
        "service[0].session.groups",
        "between 1 and 1048576, not 0",
    );
    let text = session_service("cookie = \"JSESSIONID\"\ngroups = 1048577");
    only_problem(&text, "groups", "service[0].session.groups", "not 1048577");
    let text = session_service("cookie = \"JSESSIONID\"\ngroup_idle = \"0s\"");
    only_problem(
        &text,
        "group_idle",
        "service[0].session.group_idle",
        "longer than zero",
    );

    let config = parse(
        &session_service("url_param = \"jsessionid\""),
        Source::Inline("t".into()),
    )
    .unwrap();
    let Persistence::Session(s) = &config.services[0].persistence else {
        panic!("not session persistence");
    };
    assert_eq!(
        (s.cookie.as_deref(), s.url_param.as_deref()),
        (None, Some("jsessionid"))
    );
    assert_eq!((s.groups, s.group_idle.as_secs()), (1024, 30 * 60));
}

#[test]
fn passive_rules() {
    let text = format!("{SERVICE}\n[service.passive]\nmax_fails = 0\n");
    only_problem(
        &text,
        "max_fails",
        "service[0].passive.max_fails",
        "at least 1, not 0",
    );
    let text = format!("{SERVICE}\n[service.passive]\nfail_timeout = \"0s\"\n");
    only_problem(
        &text,
        "fail_timeout",
        "service[0].passive.fail_timeout",
        "longer than zero",
    );
}

#[test]
fn health_path() {
    let text = format!("{SERVICE}\n[service.health]\npath = \"health\"\n");
    only_problem(
        &text,
        "path",
        "service[0].health.path",
        "must start with '/'",
    );
    let text = format!("{SERVICE}\n[service.health]\npath = \"/he alth\"\n");
    only_problem(
        &text,
        "path",
        "service[0].health.path",
        "printable ASCII without spaces",
    );
}

#[test]
fn health_durations_and_counts() {
    let text = format!("{SERVICE}\n[service.health]\ninterval = \"0s\"\n");
    let found = problems(&text);
    // Zero interval is reported; the defaulted timeout is then not compared against it.
    assert_eq!(found[0].key, "service[0].health.interval");
    assert_eq!(found[0].line, line_of(&text, "interval"));
    let text = format!("{SERVICE}\n[service.health]\ntimeout = \"0s\"\n");
    only_problem(
        &text,
        "timeout",
        "service[0].health.timeout",
        "longer than zero",
    );
    let text = format!("{SERVICE}\n[service.health]\nrise = 0\nfall = 1\n");
    only_problem(&text, "rise", "service[0].health.rise", "at least 1, not 0");
    let text = format!("{SERVICE}\n[service.health]\nfall = 0\n");
    only_problem(&text, "fall", "service[0].health.fall", "at least 1, not 0");
}

#[test]
fn health_timeout_must_be_shorter_than_interval() {
    let text = format!("{SERVICE}\n[service.health]\ninterval = \"1s\"\ntimeout = \"1s\"\n");
    only_problem(
        &text,
        "timeout",
        "service[0].health.timeout",
        "timeout (1s) must be shorter than interval (1s)",
    );
    // Only the interval written: point at it (the timeout is the default 1s).
    let text = format!("{SERVICE}\n[service.health]\ninterval = \"500ms\"\n");
    only_problem(
        &text,
        "interval",
        "service[0].health.interval",
        "shorter than interval (500ms)",
    );
}

#[test]
fn health_defaults() {
    let text = format!("{SERVICE}\n[service.health]\n");
    let config = parse(&text, Source::Inline("t".into())).unwrap();
    assert_eq!(
        config.services[0].health,
        Some(crate::HealthCheck::default())
    );
}
