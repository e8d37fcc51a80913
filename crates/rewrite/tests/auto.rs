//! `auto` mode: sampled traffic decides which objects go to the CDN; the report says why.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use pentaflow_rewrite::{CdnRules, Mode, Rewriter, Why};

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn auto_rules(top_k: Option<usize>) -> CdnRules {
    CdnRules {
        mode: Mode::Auto { min_hits: 3, top_k },
        sample_rate: 1.0,
        content_types: vec!["image/".into(), "text/css".into()],
        ..rules()
    }
}

/// Serves an object response for `path` through the rewriter (as the proxy does for every
/// response), `n` times.
async fn serve_object(
    rw: &Rewriter,
    path: &str,
    content_type: &str,
    cache_control: &str,
    n: usize,
) {
    for _ in 0..n {
        let headers = [
            ("content-type", content_type),
            ("cache-control", cache_control),
            ("content-length", "1234"),
        ];
        let out = rw.rewrite_at(response(&headers, &[0u8; 1234], 1234), &req(path), t(0));
        assert!(!out.body().is_rewriting());
        collect(out.into_body()).await.expect("passes through");
    }
}

async fn page(rw: &Rewriter, now: SystemTime) -> String {
    let html = br#"<img src="/img/a.png"><img src="/img/b.png"><img src="/img/c.png"><link rel="stylesheet" href="/s.css"><script src="/app.js"></script>"#;
    let out = rw.rewrite_at(
        response(&[("content-type", "text/html")], html, 1000),
        &req("/"),
        now,
    );
    String::from_utf8(collect(out.into_body()).await.expect("rewrites").to_vec())
        .expect("utf-8 in, utf-8 out")
}

#[tokio::test]
async fn popular_static_objects_of_the_right_type_go_to_the_cdn() {
    let rw = Rewriter::new(auto_rules(None), 1 << 20).unwrap();
    // Nothing is known yet: nothing is rewritten.
    assert!(!page(&rw, t(0)).await.contains(CDN));

    serve_object(&rw, "/img/a.png", "image/png", "public, max-age=86400", 5).await;
    serve_object(&rw, "/img/b.png", "image/png", "no-store", 5).await;
    serve_object(&rw, "/img/c.png", "image/png", "max-age=600", 2).await;
    serve_object(&rw, "/s.css", "text/css", "max-age=600", 3).await;
    serve_object(&rw, "/app.js", "application/javascript", "max-age=600", 9).await;

    let out = page(&rw, t(10)).await;
    assert!(
        out.contains(r#"<img src="https://cdn.example.net/img/a.png">"#),
        "{out}"
    );
    assert!(out.contains(r#"<img src="/img/b.png">"#), "not static");
    assert!(out.contains(r#"<img src="/img/c.png">"#), "too few hits");
    assert!(
        out.contains(r#"href="https://cdn.example.net/s.css""#),
        "{out}"
    );
    assert!(
        out.contains(r#"<script src="/app.js">"#),
        "content type not configured"
    );

    let report = rw.report();
    let why: Vec<(String, bool, Why)> = report
        .objects
        .iter()
        .map(|o| (o.path.clone(), o.on_cdn, o.why))
        .collect();
    assert_eq!(
        why,
        vec![
            ("/app.js".into(), false, Why::ContentType),
            ("/img/a.png".into(), true, Why::Popular),
            ("/img/b.png".into(), false, Why::NotStatic),
            ("/s.css".into(), true, Why::Popular),
            ("/img/c.png".into(), false, Why::TooFewHits),
        ]
    );
    assert_eq!(report.pages.sampled, 24);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["mode"]["kind"], "auto");
    assert_eq!(json["objects"][1]["why"], "popular");
    assert_eq!(json["objects"][1]["hits"], 5);
    assert_eq!(json["objects"][1]["bytes"], 1234);
}

#[tokio::test]
async fn top_k_keeps_only_the_most_hit_and_reselection_waits_a_moment() {
    let rw = Rewriter::new(auto_rules(Some(1)), 1 << 20).unwrap();
    serve_object(&rw, "/img/a.png", "image/png", "max-age=600", 4).await;
    serve_object(&rw, "/img/b.png", "image/png", "max-age=600", 6).await;
    let out = page(&rw, t(0)).await;
    assert!(out.contains("https://cdn.example.net/img/b.png"));
    assert!(!out.contains("https://cdn.example.net/img/a.png"));

    // a.png overtakes b.png; the selection follows once the reselection interval passed.
    serve_object(&rw, "/img/a.png", "image/png", "max-age=600", 5).await;
    assert!(page(&rw, t(0))
        .await
        .contains("https://cdn.example.net/img/b.png"));
    let out = page(&rw, t(5)).await;
    assert!(out.contains("https://cdn.example.net/img/a.png"), "{out}");
    assert!(!out.contains("https://cdn.example.net/img/b.png"));
    let b = rw
        .report()
        .objects
        .into_iter()
        .find(|o| o.path == "/img/b.png")
        .unwrap();
    assert_eq!(b.why, Why::OutsideTopK);
}

#[tokio::test]
async fn sampling_takes_the_configured_fraction() {
    let rw = Rewriter::new(
        CdnRules {
            sample_rate: 0.25,
            ..auto_rules(None)
        },
        0,
    )
    .unwrap();
    serve_object(&rw, "/img/a.png", "image/png", "max-age=600", 40).await;
    let report = rw.report();
    assert_eq!(report.pages.sampled, 10);
    assert_eq!(report.objects[0].stat.hits, 10);
}

#[tokio::test]
async fn explicit_mode_reports_rule_matches() {
    let rw = Rewriter::new(
        CdnRules {
            sample_rate: 1.0,
            ..rules()
        },
        0,
    )
    .unwrap();
    serve_object(&rw, "/img/a.png", "image/png", "no-store", 1).await;
    serve_object(&rw, "/api/data", "application/json", "no-store", 1).await;
    let report = rw.report();
    let why: Vec<(bool, Why)> = report.objects.iter().map(|o| (o.on_cdn, o.why)).collect();
    assert_eq!(
        why,
        vec![(false, Why::OutsideRules), (true, Why::MatchesRules)]
    );
    assert!(page(&rw, t(0))
        .await
        .contains("https://cdn.example.net/img/a.png"));
    let left_alone: u64 = report.pages.left_alone.iter().map(|(_, n)| n).sum();
    assert_eq!(left_alone, 2);
}
