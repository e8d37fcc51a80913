//! The byte pipeline of one rewritten page: decode (gzip/deflate/br) → lol_html → encode again
//! in the same coding. Fed chunk by chunk; each push returns what can be sent so far.
//!
//! Memory stays bounded whatever the page size: decoders and encoders keep fixed windows, and
//! lol_html buffers at most one tag (capped by [`HTML_MEMORY_LIMIT`]). This module must not know
//! about HTTP heads, the cache or the rules' meaning: URL decisions come in as `PageRewrite`.

use std::cell::RefCell;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use flate2::write::{DeflateDecoder, DeflateEncoder, GzDecoder, ZlibDecoder, ZlibEncoder};
use flate2::{Compression, Crc};
use lol_html::errors::RewritingError;
use lol_html::send::HtmlRewriter;
use lol_html::{MemorySettings, OutputSink};

use crate::error::RewriteError;
use crate::html::{PageRewrite, PageState};
use crate::policy::{Coding, Plan};
use crate::scan::FastScan;

/// lol_html's cap on its own buffers. It holds one whole start tag when a selector matches it,
/// and an `<img>` with an inline `data:` image can legitimately be megabytes.
const HTML_MEMORY_LIMIT: usize = 4 << 20;
/// lol_html's initial parse buffer: most tags fit, larger ones grow it.
const HTML_PREALLOCATED: usize = 8 << 10;
/// gzip/deflate level when re-encoding: zlib's own default, the usual server setting.
const DEFLATE_LEVEL: u32 = 6;
/// Brotli quality when re-encoding: 5 is what on-the-fly servers use; 11 is for static files.
const BROTLI_QUALITY: u32 = 5;
/// Brotli window (log2 bytes): 22 is the library default and what browsers expect.
const BROTLI_LGWIN: u32 = 22;
/// Internal buffer of brotli's writer adapters.
const BROTLI_BUFFER: usize = 16 << 10;

/// One page being rewritten.
pub(crate) struct Pipeline {
    input: Input,
    out: Arc<Mutex<Output>>,
    coding: Coding,
    stop: Arc<AtomicBool>,
}

/// Decoding side; each variant owns the HTML stage it feeds.
enum Input {
    Identity(HtmlStage),
    Gzip(GzDecoder<HtmlStage>),
    Zlib(ZlibDecoder<HtmlStage>),
    RawDeflate(DeflateDecoder<HtmlStage>),
    Brotli(Box<brotli::DecompressorWriter<HtmlStage>>),
    /// `deflate` before its first two bytes tell zlib from raw deflate.
    SniffDeflate {
        head: Vec<u8>,
        stage: HtmlStage,
    },
    /// Transitional state while switching variants.
    Empty,
}

/// Feeds decoded bytes to the HTML engine; counts them against the page limit.
struct HtmlStage {
    engine: Engine,
    out: Arc<Mutex<Output>>,
    decoded: u64,
    limit: u64,
    stop: Arc<AtomicBool>,
    failed: Option<RewritingError>,
}

/// Which parser the page is in: the fast scan until it meets something it leaves to lol_html
/// (`scan` says what), then lol_html for the rest of the page.
enum Engine {
    Fast {
        scan: Box<FastScan>,
        page: Box<PageState>,
    },
    Full(Box<HtmlRewriter<'static, OutSink>>),
    /// Transitional state while switching.
    Empty,
}

/// lol_html's output sink: writes into the shared encoder.
struct OutSink(Arc<Mutex<Output>>);

/// Encoding side, shared between the sink (inside lol_html) and the pipeline.
struct Output {
    encoder: Encoder,
    /// lol_html's output since the last drain. lol_html emits many tiny pieces around each
    /// rewritten tag; handing each to a compressor costs a deflate call apiece, so they are
    /// gathered here and compressed once per input chunk.
    pending: Vec<u8>,
}

enum Encoder {
    Identity(Vec<u8>),
    /// gzip framed here around a pooled raw deflater: flate2's `GzEncoder` cannot be reset.
    Gzip {
        deflate: DeflateEncoder<Vec<u8>>,
        crc: Crc,
    },
    Zlib(ZlibEncoder<Vec<u8>>),
    RawDeflate(DeflateEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl Pipeline {
    /// A pipeline for a page planned as `plan`, rewriting URLs with `page`. Past `limit`
    /// decoded bytes, `page.stop` is raised and URLs are no longer rewritten.
    pub(crate) fn new(plan: &Plan, page: PageRewrite, limit: u64) -> Self {
        Self::with_engine(plan, page, limit, true)
    }

    /// [`Pipeline::new`], choosing whether the fast scan may be used (`fast`) or lol_html
    /// parses the whole page, deciding every URL afresh without the page's memo: the
    /// differential tests compare the two.
    pub(crate) fn with_engine(plan: &Plan, page: PageRewrite, limit: u64, fast: bool) -> Self {
        let out = Arc::new(Mutex::new(Output {
            encoder: Encoder::new(plan.coding, false),
            pending: Vec::new(),
        }));
        let stop = page.stop_flag();
        let stage_stop = stop.clone();
        let encoding: &'static encoding_rs::Encoding = plan.encoding.into();
        let page = page.into_state(fast);
        let engine = if fast {
            Engine::Fast {
                scan: Box::new(FastScan::new(encoding, plan.follow_meta_charset)),
                page: Box::new(page),
            }
        } else {
            Engine::Full(Box::new(full_rewriter(
                page,
                plan.encoding,
                plan.follow_meta_charset,
                &out,
            )))
        };
        let stage = HtmlStage {
            engine,
            out: out.clone(),
            decoded: 0,
            limit,
            stop,
            failed: None,
        };
        let input = match plan.coding {
            Coding::Identity => Input::Identity(stage),
            Coding::Gzip => Input::Gzip(GzDecoder::new(stage)),
            Coding::Deflate => Input::SniffDeflate {
                head: Vec::new(),
                stage,
            },
            Coding::Brotli => Input::Brotli(Box::new(brotli::DecompressorWriter::new(
                stage,
                BROTLI_BUFFER,
            ))),
        };
        Self {
            input,
            out,
            coding: plan.coding,
            stop: stage_stop,
        }
    }

    /// Whether the page went past the size limit (then it was only partly rewritten).
    pub(crate) fn over_limit(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Feeds one chunk of the back-end's body; returns the bytes ready to send (maybe none).
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<Bytes, RewriteError> {
        let written = match &mut self.input {
            Input::Identity(stage) => stage.write_all(chunk),
            Input::Gzip(d) => d.write_all(chunk),
            Input::Zlib(d) => d.write_all(chunk),
            Input::RawDeflate(d) => d.write_all(chunk),
            Input::Brotli(d) => d.write_all(chunk),
            Input::SniffDeflate { head, .. } => {
                head.extend_from_slice(chunk);
                if head.len() >= 2 {
                    self.start_deflate()
                } else {
                    Ok(())
                }
            }
            Input::Empty => Ok(()),
        };
        self.check(written)?;
        self.drain(true)
    }

    /// The back-end's body ended: flushes every stage and returns the last bytes.
    pub(crate) fn finish(mut self) -> Result<Bytes, RewriteError> {
        if let Input::SniffDeflate { .. } = self.input {
            // Fewer than two bytes in all: not a valid stream whichever it is.
            let started = self.start_deflate();
            self.check(started)?;
        }
        let input = std::mem::replace(&mut self.input, Input::Empty);
        let stage = match input {
            Input::Identity(stage) => Ok(stage),
            Input::Gzip(d) => d.finish(),
            Input::Zlib(d) => d.finish(),
            Input::RawDeflate(d) => d.finish(),
            Input::Brotli(mut d) => match d.close() {
                Ok(()) => d.into_inner().map_err(|_| truncated()),
                Err(e) => Err(e),
            },
            Input::SniffDeflate { .. } | Input::Empty => Err(truncated()),
        };
        let stage = match stage {
            Ok(stage) => stage,
            Err(source) => return Err(self.decode_error(source)),
        };
        stage
            .end()
            .map_err(|source| RewriteError::Html { source })?;
        self.drain(false)
    }

    /// Chooses zlib or raw deflate from the first two bytes and replays them.
    fn start_deflate(&mut self) -> io::Result<()> {
        let Input::SniffDeflate { head, stage } = std::mem::replace(&mut self.input, Input::Empty)
        else {
            return Ok(());
        };
        // RFC 1950: CM = 8 in the low nibble, and the 16-bit header is a multiple of 31.
        let zlib = head.len() >= 2
            && head[0] & 0x0f == 8
            && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
        if zlib {
            let mut d = ZlibDecoder::new(stage);
            let r = d.write_all(&head);
            self.input = Input::Zlib(d);
            r
        } else {
            lock(&self.out).encoder = Encoder::new(Coding::Deflate, true);
            let mut d = DeflateDecoder::new(stage);
            let r = d.write_all(&head);
            self.input = Input::RawDeflate(d);
            r
        }
    }

    fn check(&mut self, written: io::Result<()>) -> Result<(), RewriteError> {
        if let Some(source) = self.stage_mut().and_then(|s| s.failed.take()) {
            return Err(RewriteError::Html { source });
        }
        match written {
            Ok(()) => Ok(()),
            Err(source) => Err(self.decode_error(source)),
        }
    }

    fn decode_error(&self, source: io::Error) -> RewriteError {
        RewriteError::Decode {
            coding: self.coding,
            source,
        }
    }

    fn stage_mut(&mut self) -> Option<&mut HtmlStage> {
        match &mut self.input {
            Input::Identity(s) | Input::SniffDeflate { stage: s, .. } => Some(s),
            Input::Gzip(d) => Some(d.get_mut()),
            Input::Zlib(d) => Some(d.get_mut()),
            Input::RawDeflate(d) => Some(d.get_mut()),
            Input::Brotli(d) => Some(d.get_mut()),
            Input::Empty => None,
        }
    }

    /// Takes the encoder's output; `flush` pushes buffered data out so the client sees the page
    /// progressively, `!flush` finishes the encoded stream.
    fn drain(&mut self, flush: bool) -> Result<Bytes, RewriteError> {
        let mut out = lock(&self.out);
        let Output { encoder, pending } = &mut *out;
        let wrote = !pending.is_empty();
        let result = match encoder {
            // Identity: the gathered bytes are the output.
            Encoder::Identity(_) => Ok(Bytes::from(std::mem::take(pending))),
            _ => encoder.write_all(pending).and_then(|()| {
                pending.clear();
                if flush {
                    encoder.flush_and_take(wrote)
                } else {
                    encoder.finish_and_take()
                }
            }),
        };
        result.map_err(|source| RewriteError::Encode {
            coding: self.coding,
            source,
        })
    }
}

impl HtmlStage {
    /// Gives the page to lol_html from `rest` on (the fast scan stopped at a tag it leaves to it).
    fn hand_over(&mut self, rest: &[u8]) -> Result<(), RewritingError> {
        let Engine::Fast { scan, page } = std::mem::replace(&mut self.engine, Engine::Empty) else {
            return Ok(());
        };
        let handover = scan.handover();
        let encoding = lol_html::AsciiCompatibleEncoding::new(handover.encoding)
            .unwrap_or_else(lol_html::AsciiCompatibleEncoding::utf_8);
        let mut rewriter = Box::new(full_rewriter(
            *page,
            encoding,
            handover.follow_meta_charset,
            &self.out,
        ));
        let written = rewriter.write(rest);
        self.engine = Engine::Full(rewriter);
        written
    }

    fn feed(&mut self, buf: &[u8]) -> Result<(), RewritingError> {
        match &mut self.engine {
            Engine::Fast { scan, page } => {
                let mut out = lock(&self.out);
                // Room for the chunk and its rewritten URLs: no regrowing while scanning.
                out.pending.reserve(buf.len() + buf.len() / 4);
                let result = scan.push(buf, page, &mut out.pending);
                drop(out);
                match result {
                    Ok(()) => Ok(()),
                    Err(rest) => self.hand_over(&rest),
                }
            }
            Engine::Full(rewriter) => rewriter.write(buf),
            Engine::Empty => Ok(()),
        }
    }

    /// The page ended: flushes whichever engine has it.
    fn end(mut self) -> Result<(), RewritingError> {
        if let Some(failed) = self.failed.take() {
            return Err(failed);
        }
        if let Engine::Fast { scan, page } = &mut self.engine {
            let mut out = lock(&self.out);
            let result = scan.finish(page, &mut out.pending);
            drop(out);
            if let Err(rest) = result {
                self.hand_over(&rest)?;
            }
        }
        match std::mem::replace(&mut self.engine, Engine::Empty) {
            Engine::Full(rewriter) => rewriter.end(),
            Engine::Fast { .. } | Engine::Empty => Ok(()),
        }
    }
}

impl Write for HtmlStage {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.failed.is_some() {
            return Err(io::Error::other("html rewriting failed earlier"));
        }
        self.decoded = self.decoded.saturating_add(buf.len() as u64);
        if self.decoded > self.limit {
            self.stop.store(true, Ordering::Relaxed);
        }
        match self.feed(buf) {
            Ok(()) => Ok(buf.len()),
            Err(e) => {
                self.failed = Some(e);
                Err(io::Error::other("html rewriting failed"))
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// lol_html set up for a page (or the rest of one) with `page`'s handler.
fn full_rewriter(
    page: PageState,
    encoding: lol_html::AsciiCompatibleEncoding,
    follow_meta_charset: bool,
    out: &Arc<Mutex<Output>>,
) -> HtmlRewriter<'static, OutSink> {
    let settings = lol_html::send::Settings {
        element_content_handlers: page.into_handler().into_iter().collect(),
        encoding,
        adjust_charset_on_meta_tag: follow_meta_charset,
        memory_settings: MemorySettings {
            preallocated_parsing_buffer_size: HTML_PREALLOCATED,
            max_allowed_memory_usage: HTML_MEMORY_LIMIT,
        },
        // Ambiguous markup is passed through as parsed rather than failing the page.
        strict: false,
        ..lol_html::send::Settings::new_send()
    };
    HtmlRewriter::new(settings, OutSink(out.clone()))
}

impl OutputSink for OutSink {
    fn handle_chunk(&mut self, chunk: &[u8]) {
        lock(&self.0).pending.extend_from_slice(chunk);
    }
}

impl Encoder {
    fn new(coding: Coding, raw_deflate: bool) -> Self {
        let level = Compression::new(DEFLATE_LEVEL);
        match coding {
            Coding::Identity => Encoder::Identity(Vec::new()),
            Coding::Gzip => {
                let mut deflate = deflater();
                deflate.get_mut().extend_from_slice(&GZIP_HEADER);
                Encoder::Gzip {
                    deflate,
                    crc: Crc::new(),
                }
            }
            Coding::Deflate if raw_deflate => Encoder::RawDeflate(deflater()),
            Coding::Deflate => Encoder::Zlib(ZlibEncoder::new(Vec::new(), level)),
            Coding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                BROTLI_QUALITY,
                BROTLI_LGWIN,
            ))),
        }
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Identity(v) => {
                v.extend_from_slice(data);
                Ok(())
            }
            Encoder::Gzip { deflate, crc } => {
                crc.update(data);
                deflate.write_all(data)
            }
            Encoder::Zlib(e) => e.write_all(data),
            Encoder::RawDeflate(e) => e.write_all(data),
            Encoder::Brotli(e) => e.write_all(data),
        }
    }

    /// Flushes (when `wrote`: an empty flush would still emit a marker) and takes the output.
    fn flush_and_take(&mut self, wrote: bool) -> io::Result<Bytes> {
        if wrote {
            match self {
                Encoder::Identity(_) => {}
                Encoder::Gzip { deflate, .. } => deflate.flush()?,
                Encoder::Zlib(e) => e.flush()?,
                Encoder::RawDeflate(e) => e.flush()?,
                Encoder::Brotli(e) => e.flush()?,
            }
        }
        let buf = match self {
            Encoder::Identity(v) => v,
            Encoder::Gzip { deflate, .. } => deflate.get_mut(),
            Encoder::Zlib(e) => e.get_mut(),
            Encoder::RawDeflate(e) => e.get_mut(),
            Encoder::Brotli(e) => e.get_mut(),
        };
        Ok(Bytes::from(std::mem::take(buf)))
    }

    fn finish_and_take(&mut self) -> io::Result<Bytes> {
        let encoder = std::mem::replace(self, Encoder::Identity(Vec::new()));
        let buf = match encoder {
            Encoder::Identity(v) => v,
            Encoder::Gzip { mut deflate, crc } => {
                deflate.try_finish()?;
                let mut out = std::mem::take(deflate.get_mut());
                out.extend_from_slice(&crc.sum().to_le_bytes());
                out.extend_from_slice(&crc.amount().to_le_bytes());
                recycle(deflate);
                out
            }
            Encoder::Zlib(e) => e.finish()?,
            Encoder::RawDeflate(mut deflate) => {
                deflate.try_finish()?;
                let out = std::mem::take(deflate.get_mut());
                recycle(deflate);
                out
            }
            Encoder::Brotli(e) => e.into_inner(),
        };
        Ok(Bytes::from(buf))
    }
}

/// gzip's member header as flate2 writes it: deflate, no flags, no time, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// Deflaters each worker thread keeps between pages. A deflater's state (window and hash
/// chains, a few hundred KB) costs more to allocate and fault in than to reset.
const POOLED_DEFLATERS: usize = 4;

thread_local! {
    static DEFLATERS: RefCell<Vec<DeflateEncoder<Vec<u8>>>> = const { RefCell::new(Vec::new()) };
}

/// A raw deflater at [`DEFLATE_LEVEL`], from this thread's pool when it has one.
fn deflater() -> DeflateEncoder<Vec<u8>> {
    DEFLATERS
        .with(|pool| pool.borrow_mut().pop())
        .unwrap_or_else(|| DeflateEncoder::new(Vec::new(), Compression::new(DEFLATE_LEVEL)))
}

/// Returns a finished deflater to this thread's pool.
fn recycle(mut deflate: DeflateEncoder<Vec<u8>>) {
    if deflate.reset(Vec::new()).is_ok() {
        DEFLATERS.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOLED_DEFLATERS {
                pool.push(deflate);
            }
        });
    }
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "compressed stream is truncated",
    )
}

fn lock(out: &Mutex<Output>) -> std::sync::MutexGuard<'_, Output> {
    // A panic while holding the lock cannot leave the encoder half-written in a way that matters
    // more than the error the body already reports, so a poisoned lock is still used.
    out.lock().unwrap_or_else(PoisonError::into_inner)
}
