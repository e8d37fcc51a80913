//! `pentaflow demo`: the embedded default — one node on loopback in front of three built-in
//! demo back-ends that answer with their own name, with cookie-injection persistence and the
//! admin API. No root, no configuration file: the configuration is generated as TOML text and
//! goes through the same validation as any file.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use pentaflow_config::Source;
use tokio::net::TcpListener;

/// Options of the demo.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Where the node listens for clients.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the node listens for HTTPS (a certificate for localhost is generated at start).
    #[arg(long, default_value = "127.0.0.1:8443")]
    https: SocketAddr,
    /// Where the admin API listens.
    #[arg(long, default_value = "127.0.0.1:9090")]
    admin: SocketAddr,
    /// How many demo back-ends to start.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=16))]
    backends: u8,
}

/// Starts the demo back-ends, prints what to try, and runs the node until Ctrl-C.
pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let mut backends = Vec::new();
    for i in 1..=args.backends {
        let name = format!("demo-web{i}");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot start a demo back-end")?;
        backends.push((name.clone(), listener.local_addr()?));
        tokio::spawn(serve_demo_backend(listener, name));
    }
    let cert_dir = std::env::temp_dir().join(format!("pentaflow-demo-{}", std::process::id()));
    let (cert, key) = demo_certificate(&cert_dir)?;
    let text = demo_config(&args, &backends, &cert, &key);
    let config = pentaflow_config::parse(&text, Source::Inline("demo".into()))
        .map_err(|e| anyhow::anyhow!("the generated demo configuration is invalid:\n{e}"))?;
    let l = args.listen;
    let s = args.https;
    println!(
        "pentaflow demo: node on http://{l} and https://{s}, admin API on http://{admin}, {n} demo back-ends:",
        admin = args.admin,
        n = backends.len()
    );
    for (name, addr) in &backends {
        println!("  {name} at http://{addr}");
    }
    println!(
        "\nDashboard: http://{admin}/ (in a browser)\n\nTry it:\n  curl -s http://{l}/                       # each request may go to another back-end\n  \
         curl -s -c jar -b jar http://{l}/         # run it again: the injected PFSRV cookie keeps you on one\n  \
         curl -sk -b jar https://{s}/              # HTTPS (HTTP/2 by ALPN), same cookie, same back-end\n  \
         curl -s http://{admin}/status             # the Web Server Status Table (JSON)\n  \
         curl -s http://{admin}/metrics            # Prometheus metrics\n  \
         curl -s http://{l}/demo/page.html         # asset URLs rewritten to the CDN (then cached)\n  \
         curl -s http://{admin}/cdn                # what goes to the CDN and why\n  \
         pentaflow status --admin {admin}\n\nCtrl-C stops the demo.",
        admin = args.admin
    );
    let outcome = super::serve::run_node(config, None).await;
    let _ = std::fs::remove_dir_all(&cert_dir);
    outcome
}

/// A self-signed certificate for `localhost` / `127.0.0.1`, written as PEM files.
fn demo_certificate(
    dir: &std::path::Path,
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let key = rcgen::KeyPair::generate().context("cannot generate the demo key")?;
    let cert = rcgen::CertificateParams::new(names)
        .and_then(|p| p.self_signed(&key))
        .context("cannot make the demo certificate")?;
    let (cert_path, key_path) = (dir.join("demo.pem"), dir.join("demo.key"));
    std::fs::write(&cert_path, cert.pem())
        .with_context(|| format!("cannot write {}", cert_path.display()))?;
    std::fs::write(&key_path, key.serialize_pem())
        .with_context(|| format!("cannot write {}", key_path.display()))?;
    Ok((cert_path, key_path))
}

fn demo_config(
    args: &DemoArgs,
    backends: &[(String, SocketAddr)],
    cert: &std::path::Path,
    key: &std::path::Path,
) -> String {
    let mut text = format!(
        "[node]\nadmin = \"{admin}\"\naccess_log = true\nshutdown_grace = \"5s\"\n\n\
         [[service]]\nname = \"demo\"\nlisten = [\"{listen}\"]\ntls_listen = [\"{https}\"]\npolicy = \"least_conn\"\npersistence = \"cookie\"\n\n\
         [service.tls]\n[[service.tls.certificate]]\ncert = {cert:?}\nkey = {key:?}\n\n\
         [service.cookie]\nname = \"PFSRV\"\n# A fixed key is fine for a demo on loopback; real arrays use secret_file.\n\
         secret = \"pentaflow-demo-cookie-key\"\nfollow = \"JSESSIONID\"\n\n\
         [service.health]\npath = \"/health\"\ninterval = \"2s\"\ntimeout = \"1s\"\n\n\
         [service.cdn]\n# A placeholder CDN host: see the rewritten URLs in /demo/page.html.\nhost = \"cdn.pentaflow-demo.example\"\n",
        admin = args.admin,
        listen = args.listen,
        https = args.https,
        cert = cert.display().to_string(),
        key = key.display().to_string(),
    );
    for (name, addr) in backends {
        text.push_str(&format!(
            "\n[[service.backend]]\nname = \"{name}\"\naddress = \"{addr}\"\n"
        ));
    }
    text
}

/// The demo's HTML page: its images, stylesheet and scripts are rewritten to the CDN host;
/// links and the external script are left alone.
const DEMO_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>pentaflow demo page</title>
  <link rel="stylesheet" href="/demo/css/site.css">
  <link rel="preload" as="font" href="/demo/fonts/inter.woff2" crossorigin>
  <script src="/demo/js/app.js" defer></script>
  <script src="https://analytics.example.org/tag.js" async></script>
</head>
<body>
  <h1>Served through pentaflow</h1>
  <img src="/demo/img/logo.png" alt="logo">
  <img src="img/diagram.svg" srcset="img/diagram.svg 1x, img/diagram@2x.png 2x" alt="diagram">
  <video src="/demo/media/intro.mp4" poster="/demo/img/poster.jpg" controls></video>
  <p>Read <a href="/demo/about.html">about the demo</a>.</p>
  <script>console.log("inline scripts are left alone: /demo/js/app.js");</script>
</body>
</html>
"#;

/// A tiny real web server: answers with its name, and starts an application session
/// (`JSESSIONID`, a session cookie) for clients that have none.
async fn serve_demo_backend(listener: TcpListener, name: String) {
    let name: Arc<str> = Arc::from(name);
    let sessions = Arc::new(AtomicU64::new(0));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let name = Arc::clone(&name);
        let sessions = Arc::clone(&sessions);
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let name = Arc::clone(&name);
                let sessions = Arc::clone(&sessions);
                async move { Ok::<_, Infallible>(demo_answer(&name, &sessions, &req)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn demo_answer(name: &str, sessions: &AtomicU64, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("x-backend", name);
    if req.uri().path() == "/health" {
        return builder
            .body(Full::new(Bytes::from_static(b"ok\n")))
            .unwrap_or_default();
    }
    if req.uri().path() == "/demo/page.html" {
        // Static and cacheable, so the node keeps its rewritten copy (claim 15).
        return Response::builder()
            .header("x-backend", name)
            .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
            .header(header::CACHE_CONTROL, "public, max-age=30")
            .header(header::ETAG, "\"demo-page-1\"")
            .body(Full::new(Bytes::from_static(DEMO_PAGE.as_bytes())))
            .unwrap_or_default();
    }
    let has_session = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("JSESSIONID="));
    if !has_session {
        let id = sessions.fetch_add(1, Ordering::Relaxed);
        builder = builder.header(
            header::SET_COOKIE,
            format!("JSESSIONID={name}-{id}; Path=/; HttpOnly"),
        );
    }
    let body = format!("Hello from {name}: {} {}\n", req.method(), req.uri());
    builder
        .status(StatusCode::OK)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}
