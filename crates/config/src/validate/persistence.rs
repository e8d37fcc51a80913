//! Checks of `persistence` and its `[service.cookie]` / `[service.session]` tables.
//!
//! Reads the cookie `secret_file` (through `files`: bounded, regular files only).

use std::ops::RangeInclusive;
use std::time::Duration;

use toml::Spanned;

use super::{is_name, is_token, Checker, Zero};
use crate::file::{FileCookie, FileDuration, FileService, FileSession};
use crate::model::{CookiePersistence, Persistence, SessionPersistence};

/// `[service.session] groups`: the table is fixed-size; 2^20 groups keeps it a few MiB.
const SESSION_GROUPS: RangeInclusive<i64> = 1..=1_048_576;
/// Default number of session hash groups.
const DEFAULT_SESSION_GROUPS: usize = 1024;
/// Default idle time after which a session group may move: a typical session lifetime.
const DEFAULT_GROUP_IDLE: Duration = Duration::from_secs(30 * 60);
/// Default name of the injected persistence cookie.
const DEFAULT_COOKIE_NAME: &str = "PFSRV";

/// Most previous cookie secrets kept for decoding (the codec's rotation window).
const MAX_PREVIOUS_SECRETS: usize = 8;

/// Bounds of `max_idle` / `max_life`: a second to ten years (the value's times are u32 Unix
/// seconds, so longer would be meaningless).
const COOKIE_LIFETIME: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(10 * 365 * 24 * 3600);
/// Shortest cookie-signing secret: 128 bits, so signatures cannot be brute-forced.
const MIN_SECRET_BYTES: usize = 16;
/// Longest `secret_file`: far beyond any HMAC key, small enough to read without a thought.
const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// The persistence mode named in the file, before its table is checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    None,
    Cookie,
    Session,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Cookie => "cookie",
            Mode::Session => "session",
        }
    }
}

impl Checker<'_> {
    /// `persistence` and the table it needs; a table for another mode is an error too.
    pub(super) fn persistence(&mut self, key: &str, s: &FileService) -> Persistence {
        let mode = match &s.persistence {
            None => Some(Mode::None),
            Some(p) => {
                let mode = match p.get_ref().as_str() {
                    "none" => Some(Mode::None),
                    "cookie" => Some(Mode::Cookie),
                    "session" => Some(Mode::Session),
                    _ => None,
                };
                if mode.is_none() {
                    let message = format!(
                        "{:?} is not a persistence mode: use none, cookie or session",
                        p.get_ref()
                    );
                    self.report(p.span(), &format!("{key}.persistence"), message);
                }
                mode
            }
        };
        // An unknown mode was reported already; judging the tables against it adds noise.
        let Some(mode) = mode else {
            return Persistence::None;
        };
        let persistence_line = s.persistence.as_ref().map(|p| p.span());
        let stray = |checker: &mut Self, table: &str, span| {
            let message = format!(
                r#"[service.{table}] is set but persistence is "{}": set persistence = "{table}" or remove the table"#,
                mode.as_str()
            );
            checker.report(span, &format!("{key}.{table}"), message);
        };
        if let Some(cookie) = s.cookie.as_ref().filter(|_| mode != Mode::Cookie) {
            stray(self, "cookie", cookie.span());
        }
        if let Some(session) = s.session.as_ref().filter(|_| mode != Mode::Session) {
            stray(self, "session", session.span());
        }
        let missing = |checker: &mut Self, table: &str| {
            let span = persistence_line.clone().unwrap_or(0..0);
            let message = format!(r#"persistence = "{table}" needs a [service.{table}] table"#);
            checker.report(span, &format!("{key}.{table}"), message);
            Persistence::None
        };
        match mode {
            Mode::None => Persistence::None,
            Mode::Cookie => match &s.cookie {
                Some(cookie) => Persistence::Cookie(self.cookie(key, cookie)),
                None => missing(self, "cookie"),
            },
            Mode::Session => match &s.session {
                Some(session) => Persistence::Session(self.session(key, session)),
                None => missing(self, "session"),
            },
        }
    }

    fn cookie(&mut self, key: &str, table: &Spanned<FileCookie>) -> CookiePersistence {
        let c = table.get_ref();
        let name = match &c.name {
            None => DEFAULT_COOKIE_NAME.to_owned(),
            Some(name) => self.token(name, &format!("{key}.cookie.name")),
        };
        let secret = match (&c.secret, &c.secret_file) {
            (Some(_), Some(file)) => {
                self.report(
                    file.span(),
                    &format!("{key}.cookie.secret_file"),
                    "set either secret or secret_file, not both",
                );
                Vec::new()
            }
            (None, None) => {
                self.report(
                    table.span(),
                    &format!("{key}.cookie.secret"),
                    "missing: set secret or secret_file",
                );
                Vec::new()
            }
            (Some(secret), None) => {
                let bytes = secret.get_ref().as_bytes().to_vec();
                // Never quote the secret itself: error messages end up in logs.
                self.secret_length(&bytes, secret.span(), &format!("{key}.cookie.secret"), "");
                bytes
            }
            (None, Some(file)) => self.secret_file(file, &format!("{key}.cookie.secret_file")),
        };
        let follow = c
            .follow
            .as_ref()
            .map(|f| self.token(f, &format!("{key}.cookie.follow")));
        let same_site = c.same_site.as_ref().and_then(|s| {
            let canonical = ["Lax", "Strict", "None"]
                .into_iter()
                .find(|v| v.eq_ignore_ascii_case(s.get_ref()));
            let sk = format!("{key}.cookie.same_site");
            match canonical {
                None => {
                    let message = format!("{:?} is not Lax, Strict or None", s.get_ref());
                    self.report(s.span(), &sk, message);
                }
                Some("None") if c.secure == Some(false) => self.report(
                    s.span(),
                    &sk,
                    "SameSite=None needs the Secure attribute (browsers drop it otherwise); remove secure = false",
                ),
                Some(_) => {}
            }
            canonical.map(str::to_owned)
        });
        let previous_secrets = self.previous_secrets(key, c);
        let max_idle = self.cookie_lifetime(c.max_idle.as_ref(), &format!("{key}.cookie.max_idle"));
        let max_life = self.cookie_lifetime(c.max_life.as_ref(), &format!("{key}.cookie.max_life"));
        CookiePersistence {
            name,
            secret,
            previous_secrets,
            max_idle,
            max_life,
            follow,
            secure: c.secure,
            http_only: c.http_only.unwrap_or(true),
            same_site,
        }
    }

    /// `previous_secrets` then `previous_secret_files`, each checked like `secret`.
    fn previous_secrets(&mut self, key: &str, c: &FileCookie) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        if let Some(list) = &c.previous_secrets {
            let k = format!("{key}.cookie.previous_secrets");
            for secret in list.get_ref() {
                let bytes = secret.get_ref().as_bytes().to_vec();
                self.secret_length(&bytes, secret.span(), &k, "");
                keys.push(bytes);
            }
        }
        if let Some(list) = &c.previous_secret_files {
            let k = format!("{key}.cookie.previous_secret_files");
            for file in list.get_ref() {
                keys.push(self.secret_file(file, &k));
            }
        }
        if keys.len() > MAX_PREVIOUS_SECRETS {
            let span = c
                .previous_secrets
                .as_ref()
                .or(c.previous_secret_files.as_ref())
                .map_or(0..0, Spanned::span);
            let message = format!(
                "{} previous secrets: at most {MAX_PREVIOUS_SECRETS} are kept for rotation; drop the oldest",
                keys.len()
            );
            self.report(span, &format!("{key}.cookie.previous_secrets"), message);
        }
        keys
    }

    /// An optional `max_idle`/`max_life` within [`COOKIE_LIFETIME`].
    fn cookie_lifetime(
        &mut self,
        value: Option<&Spanned<FileDuration>>,
        key: &str,
    ) -> Option<Duration> {
        let value = value?;
        let d = self.duration(Some(value), key, Duration::ZERO, Zero::Rejected);
        if d.is_zero() {
            return None; // reported by `duration`
        }
        if !COOKIE_LIFETIME.contains(&d) {
            self.report(
                value.span(),
                key,
                format!("{:?} is out of range: 1s to 10 years", value.get_ref().0),
            );
            return None;
        }
        Some(d)
    }

    /// Read a `secret_file` (relative to the config file's directory), minus one trailing
    /// line break.
    fn secret_file(&mut self, file: &Spanned<String>, key: &str) -> Vec<u8> {
        let Some((path, mut bytes)) = self.read_small_file(file, key, MAX_SECRET_FILE_BYTES) else {
            return Vec::new();
        };
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        let from = format!(" (read from {})", path.display());
        self.secret_length(&bytes, file.span(), key, &from);
        bytes
    }

    fn secret_length(
        &mut self,
        secret: &[u8],
        span: std::ops::Range<usize>,
        key: &str,
        from: &str,
    ) {
        if secret.len() < MIN_SECRET_BYTES {
            let message = format!(
                "the secret{from} must be at least {MIN_SECRET_BYTES} bytes, it has {}",
                secret.len()
            );
            self.report(span, key, message);
        }
    }

    /// A cookie name that must be an HTTP token.
    fn token(&mut self, value: &Spanned<String>, key: &str) -> String {
        if !is_token(value.get_ref()) {
            let message = format!(
                "{:?} is not a valid cookie name (letters, digits and !#$%&'*+-.^_`|~)",
                value.get_ref()
            );
            self.report(value.span(), key, message);
        }
        value.get_ref().clone()
    }

    fn session(&mut self, key: &str, table: &Spanned<FileSession>) -> SessionPersistence {
        let s = table.get_ref();
        if s.cookie.is_none() && s.url_param.is_none() {
            self.report(
                table.span(),
                &format!("{key}.session"),
                "set cookie, url_param or both: where to find the session ID",
            );
        }
        let cookie = s
            .cookie
            .as_ref()
            .map(|c| self.token(c, &format!("{key}.session.cookie")));
        let url_param = s.url_param.as_ref().map(|p| {
            // Unreserved URL characters only, so the name matches literally in `;p=` / `?p=`.
            if !is_name(p.get_ref(), |c| {
                c.is_ascii_alphanumeric() || "._~-".contains(c)
            }) {
                let message = format!(
                    "{:?} is not a valid URL parameter name: use letters, digits and ._~-",
                    p.get_ref()
                );
                self.report(p.span(), &format!("{key}.session.url_param"), message);
            }
            p.get_ref().clone()
        });
        SessionPersistence {
            cookie,
            url_param,
            groups: self.int(
                s.groups.as_ref(),
                &format!("{key}.session.groups"),
                SESSION_GROUPS,
                DEFAULT_SESSION_GROUPS,
            ),
            group_idle: self.duration(
                s.group_idle.as_ref(),
                &format!("{key}.session.group_idle"),
                DEFAULT_GROUP_IDLE,
                Zero::Rejected,
            ),
        }
    }
}
