//! The runtime back-end API end to end: a real `pentaflow serve` in front of real back-ends,
//! changed with `pentaflow backend ...` while clients keep sending requests: no request
//! fails, clients that persist to untouched back-ends never move, a draining back-end keeps
//! its clients but gets no new ones, and the file on disk is updated (comments kept) and
//! still passes `pentaflow check`.

// Test helpers: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod support;
use support::{free_addr, get_once, named_backend, temp_dir, wait_listening, Running};

const BIN: &str = env!("CARGO_BIN_EXE_pentaflow");
const TOKEN: &str = "backend-api-test-token-0123";

/// The tests of this file pick free ports for their node, then start back-ends on ports the
/// kernel picks: run side by side, one test's back-end could take the port the other's node was
/// about to listen on. One at a time.
static ONE_NODE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Clients that hold a persistence cookie, spread over the back-ends.
const STICKY_CLIENTS: usize = 24;
/// Loops sending requests without a cookie (new clients) all along.
const NEW_CLIENT_LOOPS: usize = 3;

/// One GET on a new connection: (status, x-backend, the PFSRV cookie set), or what failed.
async fn get(
    addr: SocketAddr,
    cookie: Option<&str>,
) -> Result<(u16, String, Option<String>), String> {
    let mut fields = vec![("host", "api.test")];
    fields.extend(cookie.map(|c| ("cookie", c)));
    let answer = get_once(addr, "/", &fields).await?;
    let set = answer
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("PFSRV="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned());
    Ok((answer.status, answer.field("x-backend"), set))
}

/// `pentaflow backend ARGS...` against the node: (exit success, stdout + stderr).
fn backend_cli(admin: SocketAddr, token_file: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("backend")
        .args(args)
        .arg("--to")
        .arg(admin.to_string())
        .arg("--token-file")
        .arg(token_file)
        .env_remove("PENTAFLOW_ADMIN_TOKEN")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// A raw `POST /backend/...`: (status code, body).
fn post(admin: SocketAddr, path: &str, token: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let code = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (code, body)
}

/// A client that persists: its cookie, the back-end it is on, and whether the test allows it
/// to move (its back-end was put in maintenance or removed).
struct Sticky {
    cookie: String,
    home: String,
}

/// What the load saw.
#[derive(Default)]
struct Seen {
    failures: Vec<String>,
    /// Sticky clients that moved although their back-end was not touched.
    moved: Vec<String>,
    /// Back-ends new clients were sent to, counted, since the last reset.
    new_clients: HashMap<String, u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_change_at_runtime_under_load_without_failures_or_lost_stickiness() {
    let _one = ONE_NODE_AT_A_TIME.lock().await;
    let names = ["w1", "w2", "w3", "w4"];
    let mut addrs = HashMap::new();
    for n in names {
        addrs.insert(n, named_backend(n).await);
    }
    let listen = free_addr();
    let admin = free_addr();
    let dir = temp_dir("backend-api");
    let token_file = dir.join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let path = dir.join("node.toml");
    let text = format!(
        "# operator's header comment: must survive every change\n\
         [node]\nadmin = \"{admin}\"\nadmin_token_file = \"admin.token\"\n\n\
         [[service]]\nname = \"web\"\nlisten = [\"{listen}\"]\npolicy = \"round_robin\"\n\
         persistence = \"cookie\"\n\n\
         [service.cookie]\nsecret = \"a cookie secret of enough bytes\"\n\n\
         [[service.backend]]\nname = \"w1\"   # the one we drain\naddress = \"{}\"\n\n\
         [[service.backend]]\nname = \"w2\"\naddress = \"{}\"\n\n\
         [[service.backend]]\nname = \"w3\"\naddress = \"{}\"\n",
        addrs["w1"], addrs["w2"], addrs["w3"]
    );
    std::fs::write(&path, &text).unwrap();
    let node = Running(
        Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .env("PENTAFLOW_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(listen).await;
    wait_listening(admin).await;

    // Sticky clients: one first visit each, round robin spreads them over w1..w3.
    let mut stickies = Vec::new();
    for _ in 0..STICKY_CLIENTS {
        let (status, home, cookie) = get(listen, None).await.unwrap();
        assert_eq!(status, 200);
        stickies.push(Sticky {
            cookie: cookie.expect("a first visit gets a persistence cookie"),
            home,
        });
    }
    for n in ["w1", "w2", "w3"] {
        assert!(
            stickies.iter().any(|s| s.home == n),
            "no sticky client on {n}"
        );
    }
    let stickies = Arc::new(Mutex::new(stickies));
    // Back-ends whose clients may move (the test put them in maintenance or removed them).
    let movable: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));

    let mut load = Vec::new();
    {
        let (stickies, movable, seen, stop, requests) = (
            Arc::clone(&stickies),
            Arc::clone(&movable),
            Arc::clone(&seen),
            Arc::clone(&stop),
            Arc::clone(&requests),
        );
        load.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let (cookie, home) = {
                    let s = stickies.lock().unwrap();
                    let c = &s[i % s.len()];
                    (c.cookie.clone(), c.home.clone())
                };
                let answer = get(listen, Some(&cookie)).await;
                requests.fetch_add(1, Ordering::Relaxed);
                match answer {
                    Ok((200, backend, set)) if backend == home => {
                        if let Some(set) = set {
                            stickies.lock().unwrap()[i % STICKY_CLIENTS].cookie = set;
                        }
                    }
                    Ok((200, backend, set)) => {
                        if !movable.lock().unwrap().contains(&home) {
                            seen.lock()
                                .unwrap()
                                .moved
                                .push(format!("{home} -> {backend}"));
                        }
                        let mut s = stickies.lock().unwrap();
                        s[i % STICKY_CLIENTS].home = backend;
                        if let Some(set) = set {
                            s[i % STICKY_CLIENTS].cookie = set;
                        }
                    }
                    Ok((status, backend, _)) => seen
                        .lock()
                        .unwrap()
                        .failures
                        .push(format!("sticky: HTTP {status} from {backend:?}")),
                    Err(e) => seen.lock().unwrap().failures.push(format!("sticky: {e}")),
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    for _ in 0..NEW_CLIENT_LOOPS {
        let (seen, stop, requests) = (Arc::clone(&seen), Arc::clone(&stop), Arc::clone(&requests));
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let answer = get(listen, None).await;
                requests.fetch_add(1, Ordering::Relaxed);
                {
                    let mut seen = seen.lock().unwrap();
                    match answer {
                        Ok((200, backend, _)) => {
                            *seen.new_clients.entry(backend).or_default() += 1;
                        }
                        Ok((status, backend, _)) => {
                            seen.failures
                                .push(format!("new: HTTP {status} from {backend:?}"));
                        }
                        Err(e) => seen.failures.push(format!("new: {e}")),
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    let settle = || tokio::time::sleep(Duration::from_millis(400));
    let reset_new = |seen: &Mutex<Seen>| seen.lock().unwrap().new_clients.clear();
    let new_on = |seen: &Mutex<Seen>, n: &str| {
        seen.lock()
            .unwrap()
            .new_clients
            .get(n)
            .copied()
            .unwrap_or(0)
    };
    let cli = |args: Vec<String>| {
        let token_file = token_file.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            backend_cli(admin, &token_file, &args)
        })
    };
    let args = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
    settle().await;

    // Bad input: refused with a clear 4xx, the file untouched.
    let before = std::fs::read(&path).unwrap();
    let refusals = [
        (
            "/backend/add",
            TOKEN,
            r#"{"service":"nope","name":"x","address":"127.0.0.1:1"}"#,
            404,
            "unknown service",
        ),
        (
            "/backend/add",
            TOKEN,
            r#"{"service":"web","name":"w2","address":"127.0.0.1:1"}"#,
            409,
            "already has a back-end named",
        ),
        (
            "/backend/add",
            TOKEN,
            &format!(
                r#"{{"service":"web","name":"x","address":"{}"}}"#,
                addrs["w2"]
            ),
            409,
            "already has back-end",
        ),
        (
            "/backend/weight",
            TOKEN,
            r#"{"service":"web","name":"w2","weight":0}"#,
            400,
            "out of range",
        ),
        (
            "/backend/weight",
            TOKEN,
            r#"{"service":"web","name":"w2","weight":1001}"#,
            400,
            "out of range",
        ),
        (
            "/backend/drain",
            TOKEN,
            r#"{"service":"web","name":"ghost"}"#,
            404,
            "no back-end",
        ),
        (
            "/backend/add",
            TOKEN,
            r#"{"service":"web","name":"x"}"#,
            400,
            "address",
        ),
        (
            "/backend/drain",
            "wrong-token-wrong-token",
            r#"{"service":"web","name":"w1"}"#,
            401,
            "token",
        ),
    ];
    for (route, token, body, code, says) in refusals {
        let (got, answer) = tokio::task::spawn_blocking({
            let (route, token, body) = (route.to_owned(), token.to_owned(), body.to_owned());
            move || post(admin, &route, &token, &body)
        })
        .await
        .unwrap();
        assert_eq!(got, code, "{route} {body}: {answer}");
        assert!(answer.contains(says), "{route} {body}: {answer}");
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "a refused change touched the file"
    );

    // Add w4: new clients reach it, nobody sticky moves.
    let (ok, said) = cli(args(&format!(
        "add --service web --name w4 --address {} --weight 2",
        addrs["w4"]
    )))
    .await
    .unwrap();
    assert!(ok, "{said}");
    assert!(said.contains("web/w4: added"), "{said}");
    reset_new(&seen);
    settle().await;
    assert!(
        new_on(&seen, "w4") > 0,
        "new clients never reached the added w4"
    );

    // Re-weight w2: stickiness kept (checked by the load all along).
    let (ok, said) = cli(args("weight --service web --name w2 5")).await.unwrap();
    assert!(ok, "{said}");

    // Drain w1: no new client goes there, its sticky clients stay.
    let w1_clients = stickies
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.home == "w1")
        .count();
    assert!(w1_clients > 0);
    let (ok, said) = cli(args("drain --service web --name w1")).await.unwrap();
    assert!(ok, "{said}");
    // Requests already scheduled before the change may still land; then none.
    tokio::time::sleep(Duration::from_millis(100)).await;
    reset_new(&seen);
    settle().await;
    assert_eq!(
        new_on(&seen, "w1"),
        0,
        "a draining back-end got new clients"
    );
    assert!(new_on(&seen, "w2") > 0);
    let still = stickies
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.home == "w1")
        .count();
    assert_eq!(
        still, w1_clients,
        "a draining back-end lost its persistent clients"
    );

    // Maintenance of w3, then enable: its clients may move; the others may not.
    movable.lock().unwrap().push("w3".into());
    let (ok, said) = cli(args("maintenance --service web --name w3"))
        .await
        .unwrap();
    assert!(ok, "{said}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    reset_new(&seen);
    settle().await;
    assert_eq!(
        new_on(&seen, "w3"),
        0,
        "a back-end in maintenance got traffic"
    );
    assert!(
        stickies.lock().unwrap().iter().all(|s| s.home != "w3"),
        "clients of a back-end in maintenance did not move"
    );
    let status = Command::new(BIN)
        .args([
            "status",
            "--json",
            "--admin",
            &admin.to_string(),
            "--token-file",
        ])
        .arg(&token_file)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("\"w3\""), "{status}");
    let doc: serde_json::Value = serde_json::from_str(&status).unwrap();
    let state_of = |name: &str| {
        doc["web_servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["name"] == name)
            .map(|row| row["state"].clone())
    };
    assert_eq!(state_of("w3"), Some(serde_json::json!("down")), "{status}");
    assert_eq!(state_of("w2"), Some(serde_json::json!("up")), "{status}");
    let (ok, said) = cli(args("enable --service web --name w3")).await.unwrap();
    assert!(ok, "{said}");
    reset_new(&seen);
    settle().await;
    assert!(
        new_on(&seen, "w3") > 0,
        "an enabled back-end got no new clients"
    );

    // Remove w1: only now do its clients move.
    movable.lock().unwrap().push("w1".into());
    let (ok, said) = cli(args("remove --service web --name w1")).await.unwrap();
    assert!(ok, "{said}");
    settle().await;
    assert!(stickies.lock().unwrap().iter().all(|s| s.home != "w1"));

    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    {
        let seen = seen.lock().unwrap();
        let total = requests.load(Ordering::Relaxed);
        assert!(
            total > 200,
            "too little load to prove anything: {total} requests"
        );
        assert!(
            seen.failures.is_empty(),
            "{} of {total} requests failed: {:?}",
            seen.failures.len(),
            seen.failures
        );
        assert!(
            seen.moved.is_empty(),
            "persistent clients of untouched back-ends moved: {:?}",
            seen.moved
        );
    }

    // A SIGHUP reloads the file the API wrote: the same back-ends keep serving.
    let hup = Command::new("kill")
        .arg("-HUP")
        .arg(node.0.id().to_string())
        .status()
        .unwrap();
    assert!(hup.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut after = HashMap::<String, u32>::new();
    for _ in 0..20 {
        let (status, backend, _) = get(listen, None).await.unwrap();
        assert_eq!(status, 200);
        *after.entry(backend).or_default() += 1;
    }
    assert!(
        !after.contains_key("w1") && after.contains_key("w4"),
        "{after:?}"
    );

    // The file: every change is there, the comments too, and it is still valid.
    let file = std::fs::read_to_string(&path).unwrap();
    assert!(
        file.contains("# operator's header comment: must survive every change"),
        "{file}"
    );
    assert!(!file.contains("\"w1\""), "{file}");
    assert!(file.contains("name = \"w4\""), "{file}");
    assert!(file.contains("weight = 5"), "{file}");
    assert!(!file.contains("state"), "w3 was enabled again: {file}");
    let check = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Session-ID hash groups: a draining back-end keeps its sessions, removing it moves them,
/// and the sessions of the other back-ends never move — with requests in flight all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_groups_stay_on_a_draining_backend_and_move_only_when_it_is_removed() {
    let _one = ONE_NODE_AT_A_TIME.lock().await;
    let mut addrs = HashMap::new();
    for n in ["s1", "s2", "s3"] {
        addrs.insert(n, named_backend(n).await);
    }
    let listen = free_addr();
    let admin = free_addr();
    let dir = temp_dir("backend-api-sessions");
    let token_file = dir.join("admin.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let path = dir.join("node.toml");
    let text = format!(
        "[node]\nadmin = \"{admin}\"\nadmin_token = \"{TOKEN}\"\n\n\
         [[service]]\nname = \"app\"\nlisten = [\"{listen}\"]\npersistence = \"session\"\n\
         [service.session]\ncookie = \"JSESSIONID\"\n\n\
         [[service.backend]]\nname = \"s1\"\naddress = \"{}\"\n\
         [[service.backend]]\nname = \"s2\"\naddress = \"{}\"\n\
         [[service.backend]]\nname = \"s3\"\naddress = \"{}\"\n",
        addrs["s1"], addrs["s2"], addrs["s3"]
    );
    std::fs::write(&path, &text).unwrap();
    let _node = Running(
        Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .env("PENTAFLOW_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(listen).await;
    wait_listening(admin).await;
    let mut homes = HashMap::new();
    for i in 0..30 {
        let cookie = format!("JSESSIONID=session-{i}");
        let (status, home, _) = get(listen, Some(&cookie)).await.unwrap();
        assert_eq!(status, 200);
        homes.insert(cookie, home);
    }
    assert!(
        homes.values().any(|h| h == "s1"),
        "no session on s1: {homes:?}"
    );
    let homes = Arc::new(homes);
    let movable = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let problems: Arc<Mutex<Vec<String>>> = Arc::default();
    let load = {
        let (homes, movable, stop, problems) = (
            Arc::clone(&homes),
            Arc::clone(&movable),
            Arc::clone(&stop),
            Arc::clone(&problems),
        );
        tokio::spawn(async move {
            let mut requests = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (cookie, home) in homes.iter() {
                    let answer = get(listen, Some(cookie)).await;
                    requests += 1;
                    let problem = match answer {
                        Ok((200, b, _)) if b == *home => None,
                        Ok((200, b, _)) if home == "s1" && movable.load(Ordering::Relaxed) => {
                            (b == "s1").then(|| format!("{cookie} still on the removed s1"))
                        }
                        Ok((200, b, _)) => Some(format!("{cookie} moved {home} -> {b}")),
                        Ok((status, b, _)) => Some(format!("HTTP {status} from {b:?}")),
                        Err(e) => Some(e),
                    };
                    if let Some(p) = problem {
                        problems.lock().unwrap().push(p);
                    }
                }
            }
            requests
        })
    };
    let cli = |args: &'static str| {
        let token_file = token_file.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.split(' ').collect();
            backend_cli(admin, &token_file, &args)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, said) = cli("drain --service app --name s1").await.unwrap();
    assert!(ok, "{said}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok, said) = cli("weight --service app --name s2 7").await.unwrap();
    assert!(ok, "{said}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Removing s1 is the moment its sessions move (checked by the load from here on).
    movable.store(true, Ordering::Relaxed);
    let (ok, said) = cli("remove --service app --name s1").await.unwrap();
    assert!(ok, "{said}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let requests = load.await.unwrap();
    assert!(requests > 100, "too little load: {requests} requests");
    let problems = problems.lock().unwrap();
    assert!(
        problems.is_empty(),
        "{} of {requests}: {:?}",
        problems.len(),
        *problems
    );
    let file = std::fs::read_to_string(&path).unwrap();
    assert!(
        !file.contains("\"s1\"") && file.contains("weight = 7"),
        "{file}"
    );
    let check = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
