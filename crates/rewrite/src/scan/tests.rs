//! Differential tests: the fast scan and lol_html alone must write the same bytes and rewrite
//! the same number of URLs, for any input and any chunking.

use proptest::prelude::*;

use crate::differential::run;

/// lol_html's debug builds assert on an internal error it meets with `<style a=>` (release
/// builds fail the page instead); that one panic is expected and kept quiet, others are not.
const LOL_HTML_ASSERTION: &str = "Tag should be a start tag at this point";

fn quiet_lol_html_assertion() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied());
            if message != Some(LOL_HTML_ASSERTION) {
                previous(info);
            }
        }));
    });
}

fn assert_same(page: &[u8], chunk: usize, charset: Option<&str>) {
    quiet_lol_html_assertion();
    let full = std::panic::catch_unwind(|| run(page, chunk, false, charset));
    let fast = std::panic::catch_unwind(|| run(page, chunk, true, charset));
    let (full, fast) = match (full, fast) {
        (Ok(full), Ok(fast)) => (full, fast),
        // Both met lol_html's assertion: the fast scan handed that tag to lol_html.
        (Err(_), Err(_)) => return,
        (full, fast) => panic!(
            "only one engine panicked (full: {}, fast: {}) on {:?}",
            full.is_err(),
            fast.is_err(),
            String::from_utf8_lossy(page)
        ),
    };
    assert_eq!(
        String::from_utf8_lossy(&fast.0),
        String::from_utf8_lossy(&full.0),
        "page {:?}, chunk {chunk}",
        String::from_utf8_lossy(page)
    );
    assert_eq!(
        fast.1,
        full.1,
        "URL counts, page {:?}",
        String::from_utf8_lossy(page)
    );
}

/// Pieces of markup the generated pages are made of: every construct the scan distinguishes,
/// and the ways they go wrong.
const PIECES: &[&str] = &[
    "<img",
    "<IMG",
    "<source",
    "<video",
    "<audio",
    "<script",
    "<SCRIPT",
    "<link",
    "<base",
    "<meta",
    "<svg",
    "<math",
    "<style",
    "<textarea",
    "<title",
    "<iframe",
    "<noscript",
    "<xmp",
    "<plaintext",
    "<div",
    "<a",
    "</script",
    "</SCRIPT",
    "</style",
    "</title",
    "</div",
    "</svg",
    "</",
    "</>",
    "<",
    ">",
    "/>",
    "/",
    " ",
    "\n",
    "\t",
    "\r",
    "\x0c",
    "=",
    "\"",
    "'",
    "`",
    " src=",
    " SRC=",
    " href=",
    " srcset=",
    " poster=",
    " rel=",
    " charset=",
    " http-equiv=",
    " content=",
    " imagesrcset=",
    " rel=stylesheet",
    " rel=\"preload icon\"",
    "=\"",
    "='",
    "=>",
    "img/a.png",
    "/static/app.css",
    "../fonts/f.woff2",
    "https://www.example.com/x.js",
    "//www.example.com/y.png",
    "https://other.org/z.png",
    "a.png 1x, /b.png 2x",
    "data:x",
    "x.png?v=1#f",
    "\"/static/q\".png\"",
    "utf-8",
    "windows-1252",
    "text/html; charset=latin1",
    "<!--",
    "-->",
    "--!>",
    "-",
    "--",
    "<!-",
    "<!",
    "<!DOCTYPE html>",
    "<!doctype",
    "<?xml ?>",
    "<![CDATA[",
    "]]>",
    "&quot;",
    "&amp;",
    "é",
    "\u{feff}",
    "\0",
    "\u{fffd}",
    "text",
    "<script>var a = '<!--'; b--; c = '<script>';</script>",
    "<base href=/assets/>",
    "<base href=\"https://other.org/\">",
    "<img src=a.png/>",
    "<img src = \"x.png\" / >",
];

fn page_strategy() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(0..PIECES.len(), 0..60)
        .prop_map(|ix| ix.into_iter().flat_map(|i| PIECES[i].bytes()).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn fast_scan_equals_lol_html_on_markup_soup(
        page in page_strategy(),
        chunk in 1usize..40,
        charset in prop_oneof![Just(None), Just(Some("utf-8")), Just(Some("windows-1252")), Just(Some("shift_jis"))],
    ) {
        assert_same(&page, chunk, charset);
    }

    #[test]
    fn fast_scan_equals_lol_html_on_any_bytes(
        page in proptest::collection::vec(any::<u8>(), 0..300),
        chunk in 1usize..64,
    ) {
        assert_same(&page, chunk, None);
    }
}

#[test]
fn fast_scan_equals_lol_html_on_the_fixtures() {
    for name in [
        "blog.html",
        "inline.html",
        "latin1.html",
        "srcset.html",
        "repeated.html",
    ] {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let page = std::fs::read(&path).expect("fixture");
        for chunk in [1, 2, 3, 7, 64, 1000, 16 << 10, 1 << 20] {
            assert_same(&page, chunk, None);
            assert_same(&page, chunk, Some("utf-8"));
        }
        let (_, urls) = run(&page, 16 << 10, true, None);
        assert!(
            urls > 0 || name == "latin1.html",
            "{name}: nothing rewritten"
        );
    }
}

#[test]
fn constructs_the_scan_hands_over_still_match() {
    for page in [
        "<svg><script href=a.js></script><img src=a.png></svg><img src=b.png>",
        "<math><mi><img src=a.png></mi></math>",
        "<meta charset=windows-1252><img src=\"caf\u{e9}.png\">",
        "<meta http-equiv=content-type content=\"text/html; charset=latin1\"><img src=a.png>",
        "<img alt=><img src=a.png>",
        "<script src=>x</script><img src=a.png>",
    ] {
        for chunk in [1, 5, 1000] {
            assert_same(page.as_bytes(), chunk, None);
        }
    }
}

#[test]
fn fast_scan_rewrites_a_simple_page() {
    let page = b"<p>x</p><img src=img/a.png alt=\"y\"><script src=\"/static/app.js\"></script>";
    let (out, urls) = run(page, 4, true, None);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "<p>x</p><img src=\"https://cdn.example.net/blog/img/a.png\" alt=\"y\">\
         <script src=\"https://cdn.example.net/static/app.js\"></script>"
    );
    assert_eq!(urls, 2);
}

#[test]
fn long_tags_comments_and_scripts_across_chunks_match() {
    let long = "x".repeat(9000);
    let huge = "y".repeat(70 << 10);
    let page = format!(
        "<p>a</p><img alt=\"{long}\" src=img/a.png><!-- {long} --><script>{long}<!--<script>\
         </script>--></script><img src=/b.png><style>{long}</style><link rel=icon href=f.ico>\
         <img src=\"data:{huge}\"><img src=c.png>"
    );
    for chunk in [1000, 4095, 4096, 4097, 5000, 9001, 16 << 10, 100 << 10] {
        assert_same(page.as_bytes(), chunk, None);
    }
}
