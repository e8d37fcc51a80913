//! Persistence end to end: injected cookies (signed, re-injected when stale, lifetime copied
//! from the application's session cookie) and session-ID hash groups (cookie and URL).

// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod support;

use support::*;

const COOKIE: &str = "persistence = \"cookie\"\n[service.cookie]\nname = \"PFSRV\"\nsecret = \"0123456789abcdef-test\"\nfollow = \"JSESSIONID\"\n";

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn injected_cookie_keeps_a_client_on_its_backend() {
    let b = backends(3).await;
    let (_proxy, addr) = start_proxy(&(service(COOKIE) + &backend_tables(&b))).await;
    let first = get(addr, "/", &[]).await;
    let set = first.set_cookie().expect("cookie injected on first visit");
    assert!(set.starts_with("PFSRV="), "{set}");
    assert!(
        set.contains("HttpOnly") && !set.contains("Secure") && !set.contains(&first.backend()),
        "{set}"
    );
    let pair = cookie_pair(&set);
    // New connections each time: only the cookie can keep the client on its back-end.
    for _ in 0..15 {
        let a = get(addr, "/", &[("cookie", &pair)]).await;
        assert_eq!(a.backend(), first.backend());
        assert!(
            a.set_cookie().is_none(),
            "no re-injection for a valid cookie"
        );
    }
}

#[tokio::test]
async fn forged_or_stale_cookie_is_rescheduled_and_reinjected() {
    let b = backends(2).await;
    let (_proxy, addr) = start_proxy(&(service(COOKIE) + &backend_tables(&b))).await;
    for bad in [
        "PFSRV=web1",
        "PFSRV=AAAAAAAAAAAAAAAA",
        "PFSRV=%%%",
        "PFSRV=",
    ] {
        let a = get(addr, "/", &[("cookie", bad)]).await;
        assert_eq!(a.status, 200);
        assert!(
            a.set_cookie().is_some_and(|c| c.starts_with("PFSRV=")),
            "{bad}: re-injected"
        );
    }
}

#[tokio::test]
async fn cookie_naming_a_dead_backend_moves_the_client() {
    let b = backends(2).await;
    let text = service(&format!(
        "{COOKIE}\n[service.passive]\nmax_fails = 1\nfail_timeout = \"60s\"\n"
    )) + &backend_tables(&b);
    let (_proxy, addr) = start_proxy(&text).await;
    let first = get(addr, "/", &[]).await;
    let pair = cookie_pair(&first.set_cookie().unwrap());
    let victim = b.iter().find(|x| x.name == first.backend()).unwrap();
    victim
        .drop_requests
        .store(true, std::sync::atomic::Ordering::SeqCst);
    // GET is idempotent: the failed attempt is retried on the other back-end, with a new cookie.
    let moved = get(addr, "/", &[("cookie", &pair)]).await;
    assert_eq!(moved.status, 200);
    assert_ne!(moved.backend(), first.backend());
    let new_pair = cookie_pair(&moved.set_cookie().expect("re-injected"));
    assert_ne!(new_pair, pair);
    let again = get(addr, "/", &[("cookie", &new_pair)]).await;
    assert_eq!(again.backend(), moved.backend());
}

#[tokio::test]
async fn injected_cookie_copies_the_application_session_lifetime() {
    let b = backends(1).await;
    let (_proxy, addr) = start_proxy(&(service(COOKIE) + &backend_tables(&b))).await;
    let persistent = get(addr, "/login", &[]).await;
    let all: Vec<String> = persistent
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let ours = all.iter().find(|c| c.starts_with("PFSRV=")).expect("ours");
    assert!(ours.contains("Max-Age=600"), "{ours}");
    let session = get(addr, "/login-session", &[]).await;
    let ours = session
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("PFSRV="))
        .unwrap();
    assert!(
        !ours.contains("Max-Age") && !ours.contains("Expires"),
        "session cookie: {ours}"
    );
}

const SECRET: &[u8] = b"0123456789abcdef-test";

fn now() -> u32 {
    u32::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// The value part of `PFSRV=...`.
fn value(pair: &str) -> &str {
    pair.strip_prefix("PFSRV=").unwrap()
}

#[tokio::test]
async fn every_client_gets_its_own_cookie_value() {
    // One back-end: every client is sent to it, yet no two cookies are alike, so comparing
    // cookies tells a client nothing about who shares its back-end.
    let b = backends(1).await;
    let (_proxy, addr) = start_proxy(&(service(COOKIE) + &backend_tables(&b))).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let pair = cookie_pair(&get(addr, "/", &[]).await.set_cookie().unwrap());
        let again = get(addr, "/", &[("cookie", &pair)]).await;
        assert_eq!(again.backend(), "web1");
        assert!(again.set_cookie().is_none(), "{pair} was honoured as is");
        assert!(seen.insert(pair.clone()), "{pair} given twice");
    }
}

#[tokio::test]
async fn a_cookie_set_by_one_node_is_honoured_by_another() {
    let b = backends(3).await;
    let text = service(COOKIE) + &backend_tables(&b);
    let (_one, a) = start_proxy(&text).await;
    let (_two, other) = start_proxy(&text).await;
    for _ in 0..6 {
        let first = get(a, "/", &[]).await;
        let pair = cookie_pair(&first.set_cookie().unwrap());
        let there = get(other, "/", &[("cookie", &pair)]).await;
        assert_eq!(there.backend(), first.backend());
        assert!(there.set_cookie().is_none());
    }
}

#[tokio::test]
async fn a_rotated_secret_keeps_clients_and_reissues_their_cookies() {
    let b = backends(3).await;
    let old = service(COOKIE) + &backend_tables(&b);
    let rotated = service(
        "persistence = \"cookie\"\n[service.cookie]\nname = \"PFSRV\"\nsecret = \"a brand new secret, 2026\"\nprevious_secrets = [\"0123456789abcdef-test\"]\n",
    ) + &backend_tables(&b);
    let (_old, old_addr) = start_proxy(&old).await;
    let (_new, new_addr) = start_proxy(&rotated).await;
    for _ in 0..6 {
        let first = get(old_addr, "/", &[]).await;
        let old_pair = cookie_pair(&first.set_cookie().unwrap());
        // The node with the new secret honours the old value and re-issues it.
        let moved = get(new_addr, "/", &[("cookie", &old_pair)]).await;
        assert_eq!(moved.backend(), first.backend());
        let new_pair = cookie_pair(&moved.set_cookie().expect("re-issued under the new key"));
        assert_ne!(new_pair, old_pair);
        let again = get(new_addr, "/", &[("cookie", &new_pair)]).await;
        assert_eq!(again.backend(), first.backend());
        assert!(again.set_cookie().is_none());
        // A node still on the old secret only does not know the new value.
        let codec = pentaflow_balance::CookieCodec::new(SECRET, &["web1", "web2", "web3"]);
        assert!(codec.decode(value(&new_pair)).is_err());
    }
}

#[tokio::test]
async fn max_idle_and_max_life_expire_and_refresh_cookies() {
    let b = backends(2).await;
    let text =
        service(&format!("{COOKIE}max_idle = \"10m\"\nmax_life = \"7d\"\n")) + &backend_tables(&b);
    let (_proxy, addr) = start_proxy(&text).await;
    let codec = pentaflow_balance::CookieCodec::new(SECRET, &["web1", "web2"]);
    let t = now();
    let pair = |issued, seen| format!("PFSRV={}", codec.token("web2", [9; 8], issued, seen));

    // Fresh: honoured as is.
    let a = get(addr, "/", &[("cookie", &pair(t - 60, t - 60))]).await;
    assert_eq!(a.backend(), "web2");
    assert!(a.set_cookie().is_none());

    // A quarter of max_idle since the last refresh: honoured, and refreshed keeping `issued`.
    let a = get(addr, "/", &[("cookie", &pair(t - 3600, t - 200))]).await;
    assert_eq!(a.backend(), "web2");
    let refreshed = cookie_pair(&a.set_cookie().expect("refreshed"));
    let d = codec.decode(value(&refreshed)).unwrap();
    assert_eq!(d.issued, t - 3600);
    assert!(d.seen >= t, "seen = now: {} vs {t}", d.seen);

    // Idle past max_idle, or older than max_life: ignored, the client is scheduled anew with
    // a new cookie issued now (a new client lands on either back-end).
    for stale in [pair(t - 3600, t - 700), pair(t - 8 * 86_400, t - 10)] {
        let a = get(addr, "/", &[("cookie", &stale)]).await;
        assert_eq!(a.status, 200);
        let fresh = cookie_pair(&a.set_cookie().expect("a new cookie"));
        let d = codec.decode(value(&fresh)).unwrap();
        assert!(d.issued >= t, "issued anew: {} vs {t}", d.issued);
        assert_eq!(
            pentaflow_balance::BackendId::from_name(&a.backend()),
            d.backend
        );
    }
}

const SESSION: &str = "persistence = \"session\"\n[service.session]\ncookie = \"JSESSIONID\"\nurl_param = \"jsessionid\"\ngroups = 64\n";

#[tokio::test]
async fn session_ids_stick_by_hash_group_from_cookie_and_url() {
    let b = backends(3).await;
    let (proxy, addr) = start_proxy(&(service(SESSION) + &backend_tables(&b))).await;
    let mut owners = std::collections::HashMap::new();
    for round in 0..3 {
        for user in 0..20 {
            let sid = format!("user{user}");
            let by_cookie = get(addr, "/", &[("cookie", &format!("JSESSIONID={sid}"))])
                .await
                .backend();
            let by_path = get(addr, &format!("/cart;jsessionid={sid}?x=1"), &[])
                .await
                .backend();
            let by_query = get(addr, &format!("/cart?jsessionid={sid}"), &[])
                .await
                .backend();
            assert_eq!(by_cookie, by_path, "round {round} {sid}");
            assert_eq!(by_cookie, by_query, "round {round} {sid}");
            let first = owners.entry(sid).or_insert(by_cookie.clone());
            assert_eq!(*first, by_cookie);
        }
    }
    let groups: usize = proxy.status().iter().map(|r| r.session_groups).sum();
    assert!(
        (1..=20).contains(&groups),
        "at most one group per session id, table bounded: {groups}"
    );
    assert!(tally(owners.into_values()).len() >= 2, "sessions spread");
}
