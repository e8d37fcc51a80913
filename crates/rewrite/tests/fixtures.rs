//! Realistic pages rewritten and checked attribute by attribute, in one chunk and in tiny ones.

mod common;

use common::*;

const HTML_UTF8: (&str, &str) = ("content-type", "text/html; charset=utf-8");

async fn rewrite_fixture(name: &str, path: &str, content_type: &str, chunk: usize) -> Vec<u8> {
    let rw = rewriter();
    let (parts, body) = run(
        &rw,
        &req(path),
        &[("content-type", content_type)],
        &fixture(name),
        chunk,
    )
    .await;
    assert!(parts.headers.get("content-length").is_none());
    body.expect("rewrites").to_vec()
}

#[tokio::test]
async fn blog_page() {
    let out = rewrite_fixture(
        "blog.html",
        "/blog/moving-to-a-cdn.html",
        HTML_UTF8.1,
        1 << 20,
    )
    .await;
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        url_attrs(&out),
        rows(&[
            (
                "link",
                "href",
                "https://cdn.example.net/static/css/main.css?v=42"
            ),
            (
                "link",
                "href",
                "https://fonts.googleapis.com/css2?family=Inter"
            ),
            ("link", "href", "https://cdn.example.net/favicon.ico"),
            ("link", "href", "/feed.xml"),
            ("link", "href", "https://cdn.example.net/fonts/inter.woff2"),
            (
                "link",
                "href",
                "https://www.example.com/blog/moving-to-a-cdn.html"
            ),
            (
                "script",
                "src",
                "https://cdn.example.net/static/js/vendor.js"
            ),
            (
                "script",
                "src",
                "https://www.googletagmanager.com/gtag/js?id=G-XXXX"
            ),
            ("a", "href", "/"),
            ("img", "src", "https://cdn.example.net/static/img/logo.svg"),
            ("a", "href", "/blog/"),
            ("a", "href", "/about.html"),
            (
                "img",
                "src",
                "https://cdn.example.net/blog/images/diagram.png"
            ),
            ("a", "href", "images/diagram.png"),
            (
                "img",
                "src",
                "https://cdn.example.net/blog/images/chart.PNG"
            ),
            (
                "img",
                "src",
                "https://cdn.example.net/static/img/protocol-relative.jpg"
            ),
            ("img", "src", "https://cdn.other.org/img/foreign.png"),
            ("img", "src", "data:image/gif;base64,R0lGODlhAQABAAAAACw="),
            ("img", "src", "/cgi-bin/counter"),
            ("a", "href", "mailto:ada@example.com"),
            ("script", "src", "https://cdn.example.net/blog/app.js"),
        ])
    );
    // Everything else is byte for byte the original.
    let original = String::from_utf8(fixture("blog.html")).unwrap();
    assert!(out.contains("<title>Moving our assets to a CDN &mdash; The Example Blog</title>"));
    assert_eq!(out.lines().count(), original.lines().count());
    assert!(out.contains(r#"<img alt="no source">"#));
}

#[tokio::test]
async fn srcset_page() {
    let out = rewrite_fixture("srcset.html", "/gallery/index.html", HTML_UTF8.1, 1 << 20).await;
    let out = String::from_utf8(out).unwrap();
    let c = "https://cdn.example.net";
    assert_eq!(
        url_attrs(&out),
        rows(&[
            ("link", "href", &format!("{c}/media/hero-800.webp")),
            ("link", "imagesrcset", &format!("{c}/media/hero-800.webp 800w, {c}/media/hero-1600.webp 1600w")),
            ("source", "srcset", &format!("{c}/media/hero-800.avif 800w,\n                                    {c}/media/hero-1600.avif 1600w")),
            ("source", "srcset", &format!("{c}/media/hero-800.webp 800w, {c}/media/hero-1600.webp 1600w")),
            ("img", "src", &format!("{c}/media/hero-800.jpg")),
            ("img", "srcset", &format!("{c}/media/hero-800.jpg 1x, {c}/media/hero-1600.jpg 2x, https://elsewhere.net/hero.jpg 3x")),
            ("img", "srcset", &format!("{c}/gallery/thumbs/a.jpg 1x,{c}/gallery/thumbs/a@2x.jpg 2x")),
            ("img", "src", &format!("{c}/gallery/thumbs/a.jpg")),
            ("video", "src", &format!("{c}/media/intro.mp4")),
            ("video", "poster", &format!("{c}/media/intro-poster.jpg")),
            ("source", "src", &format!("{c}/media/intro.webm")),
            // <track> is not content the CDN rules cover (and .vtt is not a listed extension).
            ("track", "src", "/media/intro.vtt"),
            ("audio", "src", &format!("{c}/media/theme.mp3")),
            ("img", "src", &format!("{c}/media/unquoted.png")),
        ])
    );
    assert!(out.contains(r#"sizes="(max-width: 800px) 100vw, 800px""#));
}

#[tokio::test]
async fn inline_scripts_comments_base_and_broken_markup() {
    let out = rewrite_fixture("inline.html", "/index.html", HTML_UTF8.1, 1 << 20).await;
    let out = String::from_utf8(out).unwrap();
    let original = String::from_utf8(fixture("inline.html")).unwrap();
    // Text of scripts, styles, comments, textareas and attribute values is untouched.
    for kept in [
        r#"var tpl = '<img src="/static/img/in-script.png">';"#,
        r#"document.write('<script src="/static/js/late.js"><\/script>');"#,
        r#"console.log("<link rel=stylesheet href=/x.css>");"#,
        r#"background: url("/static/img/bg.png");"#,
        r#"<!-- <img src="/static/img/commented-out.png"> -->"#,
        r#"<!--[if lt IE 9]><script src="/static/js/html5shiv.js"></script><![endif]-->"#,
        r#"<textarea><img src="/static/img/in-textarea.png"></textarea>"#,
        r#"<div title="<img src='/static/img/in-attr.png'>">"#,
        "<p>Unclosed <b>bold <i>italic</p>",
    ] {
        assert!(out.contains(kept), "{kept} changed");
    }
    assert_eq!(
        url_attrs(&out),
        rows(&[
            ("base", "href", "/shop/"),
            ("base", "href", "/ignored/"),
            (
                "img",
                "src",
                "https://cdn.example.net/shop/products/shoe.jpg"
            ),
            ("img", "src", "https://cdn.example.net/static/img/up.gif"),
            (
                "img",
                "src",
                "https://cdn.example.net/static/img/broken.png"
            ),
            ("script", "src", "https://cdn.example.net/shop/js/shop.mjs"),
            (
                "img",
                "src",
                "https://cdn.example.net/static/img/after-mess.png"
            ),
        ])
    );
    assert!(out.len() > original.len());
}

#[tokio::test]
async fn windows_1252_page_by_meta_and_by_header() {
    let original = fixture("latin1.html");
    for content_type in [
        "text/html",
        "text/html; charset=windows-1252",
        "text/html; charset=iso-8859-1",
    ] {
        let out = rewrite_fixture("latin1.html", "/menu.html", content_type, 1 << 20).await;
        let (text, _, had_errors) = encoding_rs::WINDOWS_1252.decode(&out);
        assert!(!had_errors);
        assert_eq!(
            url_attrs(&text),
            rows(&[
                (
                    "link",
                    "href",
                    "https://cdn.example.net/static/caf\u{e9}.css"
                ),
                (
                    "img",
                    "src",
                    "https://cdn.example.net/static/img/cr\u{e8}me-br\u{fb}l\u{e9}e.jpg"
                ),
                ("img", "src", "https://cdn.example.net/static/img/plain.png"),
            ]),
            "{content_type}"
        );
        // Non-ASCII text is still in windows-1252, byte for byte.
        let title = "<title>Caf\u{e9} \u{ab} Le N\u{f4}tre \u{bb} \u{2014} menu</title>";
        let encoded = encoding_rs::WINDOWS_1252.encode(title).0;
        assert!(
            out.windows(encoded.len()).any(|w| w == &encoded[..]),
            "{content_type}"
        );
        assert!(out.windows(4).any(|w| w == b"caf\xe9"), "{content_type}");
        assert_eq!(
            out.len(),
            original.len() + 3 * "https://cdn.example.net".len()
        );
    }
}

/// The same references again and again, before and after `<base>` moves the resolution base,
/// a second `<base>` that HTML ignores, and an `<svg>` that hands the rest of the page to
/// lol_html: each repeat must be decided as the first one was, against the base in force (the
/// page's memo of URL decisions starts over at `<base>` and moves with the page to lol_html).
#[tokio::test]
async fn repeated_references_around_a_base_change() {
    let out = rewrite_fixture("repeated.html", "/blog/post.html", HTML_UTF8.1, 1 << 20).await;
    let out = String::from_utf8(out).unwrap();
    let c = "https://cdn.example.net";
    let before = |p: &str| format!("{c}/blog/{p}");
    let after = |p: &str| format!("{c}/assets/v2/{p}");
    assert_eq!(
        url_attrs(&out),
        rows(&[
            ("link", "href", &before("css/site.css")),
            ("link", "href", &format!("{c}/favicon.ico")),
            ("script", "src", &before("js/app.js")),
            ("img", "src", &before("img/logo.png")),
            (
                "img",
                "srcset",
                &format!(
                    "{} 1x, {} 2x, {} 3x",
                    before("img/logo.png"),
                    before("img/logo@2x.png"),
                    before("img/logo.png")
                )
            ),
            ("img", "src", &before("img/logo.png")),
            ("img", "src", "/about"),
            ("img", "src", "/about"),
            ("base", "href", "/assets/v2/"),
            ("base", "href", "/ignored/"),
            ("img", "src", &after("img/logo.png")),
            (
                "img",
                "srcset",
                &format!(
                    "{} 1x, {} 2x",
                    after("img/logo.png"),
                    after("img/logo@2x.png")
                )
            ),
            ("img", "src", &after("img/logo.png")),
            ("link", "href", &after("css/site.css")),
            ("script", "src", &after("js/app.js")),
            ("img", "src", "/about"),
            ("img", "src", &format!("{c}/favicon.ico")),
            ("img", "src", &format!("{c}/assets/img/logo.png")),
            ("image", "href", "img/logo.png"),
            ("img", "src", &after("img/logo.png")),
            (
                "img",
                "srcset",
                &format!(
                    "{} 1x, {} 2x",
                    after("img/logo.png"),
                    after("img/logo@2x.png")
                )
            ),
            ("link", "href", &after("css/site.css")),
            ("img", "src", &format!("{c}/favicon.ico")),
        ])
    );
}

/// References decided before a `<base>` of another site must not be reused after it: from
/// there on relative and root-relative references are that site's, not ours.
#[tokio::test]
async fn references_repeated_after_a_foreign_base_stay() {
    let page = br#"<img src="a.png"><img src="/b.png"><img src="a.png"><base href="https://other.org/x/"><img src="a.png"><img src="/b.png"><img src="//www.example.com/b.png">"#;
    let (_, body) = run(&rewriter(), &req("/p/q.html"), &[HTML_UTF8], page, 1 << 20).await;
    let body = String::from_utf8(body.expect("rewrites").to_vec()).expect("utf-8");
    assert_eq!(
        body,
        r#"<img src="https://cdn.example.net/p/a.png"><img src="https://cdn.example.net/b.png"><img src="https://cdn.example.net/p/a.png"><base href="https://other.org/x/"><img src="a.png"><img src="/b.png"><img src="https://cdn.example.net/b.png">"#
    );
}

#[tokio::test]
async fn tiny_chunks_give_the_same_bytes_as_one_chunk() {
    for (name, path) in [
        ("blog.html", "/blog/moving-to-a-cdn.html"),
        ("srcset.html", "/gallery/index.html"),
        ("inline.html", "/index.html"),
        ("latin1.html", "/menu.html"),
        ("repeated.html", "/blog/post.html"),
    ] {
        let whole = rewrite_fixture(name, path, "text/html", 1 << 20).await;
        for chunk in [1, 2, 7, 64, 1000] {
            let pieces = rewrite_fixture(name, path, "text/html", chunk).await;
            assert_eq!(pieces, whole, "{name} in chunks of {chunk}");
        }
    }
}

#[tokio::test]
async fn entities_and_quotes_in_urls_survive() {
    let page = br#"<img src="/i.png?a=1&amp;b=2"><img src='/q.png?x="y"'><img src="/s p.png">"#;
    let (_, body) = run(&rewriter(), &req("/"), &[HTML_UTF8], page, 5).await;
    let body = String::from_utf8(body.expect("rewrites").to_vec()).expect("utf-8");
    assert_eq!(
        body,
        r#"<img src="https://cdn.example.net/i.png?a=1&amp;b=2"><img src="https://cdn.example.net/q.png?x=&quot;y&quot;"><img src="https://cdn.example.net/s p.png">"#
    );
}
