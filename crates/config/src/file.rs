//! The configuration file as written: serde structs mirroring the TOML, with spans.
//!
//! This module owns the *shape* of the file and nothing else. Every table denies unknown
//! keys (so a typo is an error with its line, not a silently ignored setting); every value
//! that needs checking is kept raw (integers as `i64`, durations and addresses as strings)
//! and wrapped in [`Spanned`] so that [`crate::validate`] can check it, collect every problem
//! and name the line. Required keys are `Option`s here for the same reason: a missing key is
//! a validation problem reported with the line of its table, not a parse abort.
//! It must not apply defaults or judge values — that is `validate`'s job.
//!
//! # Schema
//!
//! ```toml
//! [node]                              # optional table
//! admin = "127.0.0.1:9090"            # optional; admin listener (absent = off); with [array] not a
//!                                     # wildcard nor the VIP (a management address)
//! access_log = true                   # default true
//! shutdown_grace = "30s"              # default 30s; "0s" = stop at once
//! admin_token_file = "admin.token"    # optional (or admin_token = "..."; not both; >= 16 bytes):
//!                                     # the token of the runtime back-end API (POST /backend/...)
//! resolvers = ["127.0.0.1:53"]        # optional; DNS servers (ip:port) for back-ends named by DNS;
//!                                     # absent = those of /etc/resolv.conf
//! resolve_min_ttl = "1s"              # default 1s; a record's TTL is raised to this ...
//! resolve_max_ttl = "300s"            # default 300s; ... and lowered to this (>= min); after a
//!                                     # failure: retried after min, doubling, at most max
//! resolve_drain = "30s"               # default 30s; an address gone from DNS drains this long,
//!                                     # then is removed
//!
//! [limits]                            # optional; all defaults safe
//! max_header_bytes = 16384            # default 16 KiB; 1024..=1 MiB
//! max_headers = 100                   # default 100; 1..=1000
//! header_read_timeout = "10s"         # default 10s
//! idle_timeout = "60s"                # default 60s
//! connect_timeout = "3s"              # default 3s
//! response_timeout = "30s"            # default 30s; from the request fully sent to the response
//!                                     # head, and the longest silence inside a response body
//! client_body_timeout = "60s"         # default 60s; longest silence inside a request body (408)
//! send_timeout = "60s"                # default 60s; longest a client may take to read a response write
//! max_connections = 10000             # default 10000; >= 1; at the cap new connections wait in
//!                                     # the listen backlog (accepting pauses), as in HAProxy
//! max_connections_per_client = 100    # optional (absent = no limit, as HAProxy and nginx): open
//!                                     # connections per client IP address; past it a new one gets
//!                                     # `503` + close (HTTP) or a close (TLS); >= 1
//! max_connections = 10000             # default 10000; >= 1
//! h2_glitch_threshold = 1000          # default 1000; 0 = no limit; an HTTP/2 connection with more
//!                                     # glitches (SETTINGS/PING/PRIORITY/empty/unknown frames) than
//!                                     # this in h2_glitch_window gets GOAWAY ENHANCE_YOUR_CALM
//! h2_glitch_window = "10s"            # default 10s; the meter forgets h2_glitch_threshold per window
//!
//! [tls_tickets]                       # optional; TLS session-ticket keys shared by the array
//! keys_file = "ticket.keys"           # one key per line: 64 hex digits (32 bytes), newest first;
//!                                     # '#' comments and blank lines ignored; <= 16 keys; file <= 4096 bytes
//! keys = ["<64 hex digits>"]          # alternative to keys_file (at most one of the two; neither = a
//!                                     # random key per process, so no resumption across nodes); <= 16 keys
//! lifetime = "12h"                    # default 12h; 1s..=7d
//!
//! [[service]]                         # >= 1
//! name = "web"                        # required, unique, [A-Za-z0-9_-]+
//! listen = ["127.0.0.1:8080"]         # plain-HTTP ip:port list; at least one of listen / tls_listen
//!                                     # must be non-empty; no address used twice anywhere
//! tls_listen = ["127.0.0.1:8443"]     # HTTPS ip:port list (TLS terminated here); claimed like listen
//! redirect_https = false              # default false; true needs tls_listen (and listen to redirect from)
//! policy = "least_conn"               # least_conn (default) | round_robin | url_hash
//! hash_balance_factor = 125           # optional, only with url_hash, integer > 100
//! persistence = "cookie"              # none (default) | cookie | session ; needs the matching table below
//! backend_keepalive = true            # default true
//! accept_proxy = false                # default false; true: every connection to listen and
//!                                     # tls_listen starts with a PROXY protocol v1/v2 header
//! proxy_trusted = ["10.0.0.0/8"]      # optional, needs accept_proxy: sources (CIDR or address)
//!                                     # allowed to connect; absent = any source
//! send_proxy = "v2"                   # optional: "v1" | "v2", a PROXY header first on each
//!                                     # new back-end connection
//! retries = 2                         # default 2; 0..=16
//! max_body_bytes = 1048576            # optional (absent = no limit, as HAProxy); larger request
//!                                     # bodies get 413 and a close; >= 0
//!
//! [service.cookie]                    # required iff persistence = "cookie"
//! name = "PFSRV"                      # default "PFSRV"; a valid cookie-name token
//! secret = "at least 16 bytes ..."    # exactly one of secret / secret_file; >= 16 bytes
//! secret_file = "/etc/pentaflow/cookie.key"   # relative paths resolve against the config file's directory
//! previous_secrets = ["..."]          # optional: older secrets still accepted (rotation), <= 8, each >= 16 bytes
//! previous_secret_files = ["old.key"] # optional: the same, read from files
//! max_idle = "1h"                     # optional: ignore a cookie not refreshed for this long (HAProxy maxidle)
//! max_life = "7d"                     # optional: ignore a cookie issued this long ago (HAProxy maxlife)
//! follow = "JSESSIONID"               # optional: copy this app cookie's lifetime
//! secure = true                       # optional (absent = Secure only over HTTPS)
//! http_only = true                    # default true
//! same_site = "Lax"                   # optional: Lax | Strict | None (None needs secure != false)
//!
//! [service.session]                   # required iff persistence = "session"
//! cookie = "JSESSIONID"               # at least one of cookie / url_param
//! url_param = "jsessionid"            # [A-Za-z0-9._~-]+
//! groups = 1024                       # default 1024; 1..=1_048_576
//! group_idle = "30m"                  # default 30m
//!
//! [service.passive]                   # optional
//! max_fails = 3                       # default 3; >= 1
//! fail_timeout = "10s"                # default 10s
//!
//! [service.health]                    # optional; presence enables active checks
//! path = "/health"                    # default "/"; must start with '/'
//! interval = "2s"                     # default 2s
//! timeout = "1s"                      # default 1s; must be < interval
//! rise = 2                            # default 2; >= 1
//! fall = 3                            # default 3; >= 1
//!
//! [service.tls]                       # required iff tls_listen is non-empty
//! unknown_sni = "default"             # default (serve the default certificate) | refuse
//! handshake_timeout = "10s"           # default 10s
//! max_handshakes = 1024               # default 1024; 1..=1_000_000 concurrent handshakes
//! http2 = true                        # default true: offer h2 by ALPN (http/1.1 always offered)
//!
//! [[service.tls.certificate]]         # >= 1
//! cert = "certs/site.pem"             # required; PEM chain, leaf first; a readable regular file
//! key = "certs/site.key"              # required; PEM private key; a readable regular file
//! default = false                     # default false; at most one true (none: the first is default)
//!
//! [service.backend_tls]               # optional; presence = TLS to the back-ends
//! verify = true                       # default true
//! ca_file = "ca.pem"                  # optional; readable file (absent = system roots); needs verify
//! server_name = "backend.internal"    # optional; DNS name or IP (absent = the back-end's IP)
//!
//! [service.cdn]                      # optional; presence = CDN rewriting of outgoing HTML
//! host = "cdn.example.net"            # required; may contain {client_token} (from the client's /24)
//! site_hosts = ["www.example.com"]    # hosts that are this site (default: the request's Host only)
//! path_prefixes = ["/static/"]        # default: every path
//! extensions = ["png", "css", "js"]   # default: common static types (css js png jpg gif svg webp woff2 ...)
//! mode = "explicit"                   # explicit (default: the rules above) | auto (from sampled traffic)
//! min_hits = 10                       # auto: sampled hits before an object goes to the CDN; default 10; >= 1
//! top_k = 100                         # auto: at most this many objects; optional; >= 1
//! content_types = ["image/"]          # auto: eligible content types (prefixes); default: any static type
//! sample_rate = 0.1                   # fraction of responses sampled; default 0.1; 0.0..=1.0
//! max_page_bytes = 8388608            # larger pages pass unchanged; default 8 MiB; >= 1
//! ask_identity = false                # ask back-ends for uncompressed pages; default false
//! cache_bytes = 67108864              # cache of rewritten pages; default 64 MiB; 0 = off
//!
//! [[service.backend]]                 # >= 1
//! name = "web1"                       # required, unique within the service, [A-Za-z0-9_.-]+
//! address = "127.0.0.1:8001"          # ip:port (port != 0), or "dns.name:port": every A/AAAA
//!                                     # address becomes a back-end "web1#ip:port", re-resolved
//! srv = "_http._tcp.app.internal"     # instead of address: the SRV records (ports, weights)
//! weight = 1                          # default 1; 1..=1000
//! state = "ready"                     # default "ready"; "drain" = no new clients (sticky ones
//!                                     # stay), "maintenance" = no traffic (sticky ones move)
//!
//! [array]                             # optional; absent = a plain proxy node (no VIP set-up)
//! mode = "scheduler"                  # default "scheduler": one node routes every inbound frame by
//!                                     # the bucket table; "active-active": every node decides (seed
//!                                     # 004; needs a key and >= 2 nodes; refuses scheduler,
//!                                     # table_size, bucket_idle, preempt and node priority)
//! vip = "10.77.1.10"                  # required; IPv4 the array publishes (put on lo, ARP by the scheduler)
//! interface = "eth0"                  # required; the LAN interface (<= 15 chars, no '/' or spaces)
//! node_id = 1                         # optional; this node's id (or `serve --node-id N`, env
//!                                     # PENTAFLOW_NODE_ID: every node gets the same file); listed below
//! scheduler = 1                       # required without a key: id of the static scheduler; with
//!                                     # a key optional: the preferred one (default priority 200)
//! table_size = 65536                  # default 65536; a power of two, 2..=16_777_216
//! bucket_idle = "60s"                 # default 60s; a bucket idle this long may move to another node
//! data_plane = "af_packet"            # default "af_packet"; the scheduler's data plane: "xdp" (the
//!                                     # XDP program, native else generic mode; refuse the role if
//!                                     # it cannot load), "auto" (XDP native, then generic, then
//!                                     # AF_PACKET; the log and `status` say which and why)
//! ports = [80, 443]                   # default: the ports of every listen/tls_listen address on the
//!                                     # VIP (or a wildcard); 1..=65535, no duplicates
//! key_file = "cluster.key"            # optional (or key = "..."; not both): the cluster HMAC key,
//!                                     # >= 16 bytes; set = the nodes elect the scheduler themselves
//! port = 7946                         # default 7946; UDP control port on each node's address
//! heartbeat = "50ms"                  # default 50ms; each node announces itself this often
//! dead_after = "200ms"                # default 200ms; a node silent this long is failed (> heartbeat)
//! preempt = false                     # default false; a returning higher priority takes over
//! status_poll = "200ms"               # default 200ms; the scheduler polls one node's status this
//!                                     # often (seed 002: one at a time; also the retry delay)
//! status_retries = 2                  # default 2; 0..=100; a node missing 1 + this many polls in
//!                                     # a row gets no new buckets and loses its buckets until it
//!                                     # answers again
//! quorum = 2                          # default: a majority of the [[array.node]]s (1 with one or
//!                                     # two nodes); nodes (itself included) a node must hear to take
//!                                     # or keep the VIP; more than half of the nodes, or 1..=2 with
//!                                     # two nodes (1: each serves alone, as keepalived; 2: never two
//!                                     # schedulers, but no failover)
//! notify = "notify.sh"                # optional; an executable run on every role change, as
//!                                     # `notify.sh EVENT NODE [DETAIL]` (see README), like
//!                                     # keepalived's notify scripts
//! admin_token_file = "admin.token"    # optional (or admin_token = "..."; not both; >= 16 bytes; needs
//!                                     # a key): the admin API (every page but /healthz, and the
//!                                     # operator actions: config push/commit, drain) needs
//!                                     # `Authorization: Bearer <token>`; none = pages open, actions refused
//!
//! [[array.node]]                      # >= 1; every node of the array, this one included
//! id = 1                              # required, unique; 1..=65534
//! address = "10.77.1.11"              # required, unique; IPv4 on the LAN, not the VIP
//! mac = "02:77:01:00:00:01"           # required (learning by ARP is not built yet), unique, unicast
//! weight = 1                          # default 1; 1..=1000 (share of new buckets)
//! enabled = true                      # default true; false = keeps its buckets, gets no new ones
//! priority = 100                      # default 100 (200 for `scheduler`); 0..=255, higher wins the
//!                                     # election, then the lower id; 0 = never the scheduler
//! ```
//!
//! Durations are strings parsed with `humantime` (`"500ms"`, `"2s"`, `"1m"`, `"1h 30m"`);
//! a zero duration is an error for timeouts and intervals. A secret read from
//! `secret_file` loses its trailing line break (`\n` or `\r\n`), so `echo key > file` works.
//! Relative paths (`secret_file`, `keys_file`, `cert`, `key`, `ca_file`) resolve against the
//! config file's directory. Files named by `cert`, `key` and `ca_file` are only checked to be
//! readable regular files here: the proxy parses the PEM.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub(crate) node: Option<Spanned<FileNode>>,
    pub(crate) limits: Option<Spanned<FileLimits>>,
    pub(crate) tls_tickets: Option<Spanned<FileTickets>>,
    #[serde(default)]
    pub(crate) service: Vec<Spanned<FileService>>,
    pub(crate) array: Option<Spanned<FileArray>>,
}

/// `[array]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileArray {
    pub(crate) mode: Option<Spanned<String>>,
    pub(crate) vip: Option<Spanned<String>>,
    pub(crate) interface: Option<Spanned<String>>,
    pub(crate) node_id: Option<Spanned<i64>>,
    pub(crate) scheduler: Option<Spanned<i64>>,
    pub(crate) table_size: Option<Spanned<i64>>,
    pub(crate) bucket_idle: Option<Spanned<FileDuration>>,
    pub(crate) data_plane: Option<Spanned<String>>,
    pub(crate) ports: Option<Spanned<Vec<Spanned<i64>>>>,
    pub(crate) key: Option<Spanned<String>>,
    pub(crate) key_file: Option<Spanned<String>>,
    pub(crate) port: Option<Spanned<i64>>,
    pub(crate) heartbeat: Option<Spanned<FileDuration>>,
    pub(crate) dead_after: Option<Spanned<FileDuration>>,
    pub(crate) preempt: Option<bool>,
    pub(crate) status_poll: Option<Spanned<FileDuration>>,
    pub(crate) status_retries: Option<Spanned<i64>>,
    pub(crate) quorum: Option<Spanned<i64>>,
    pub(crate) notify: Option<Spanned<String>>,
    pub(crate) admin_token: Option<Spanned<String>>,
    pub(crate) admin_token_file: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) node: Vec<Spanned<FileArrayNode>>,
}

/// `[[array.node]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileArrayNode {
    pub(crate) id: Option<Spanned<i64>>,
    pub(crate) address: Option<Spanned<String>>,
    pub(crate) mac: Option<Spanned<String>>,
    pub(crate) weight: Option<Spanned<i64>>,
    pub(crate) enabled: Option<bool>,
    pub(crate) priority: Option<Spanned<i64>>,
}

/// `[tls_tickets]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileTickets {
    pub(crate) keys_file: Option<Spanned<String>>,
    pub(crate) keys: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) lifetime: Option<Spanned<FileDuration>>,
}

/// `[node]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileNode {
    pub(crate) admin: Option<Spanned<String>>,
    pub(crate) access_log: Option<bool>,
    pub(crate) shutdown_grace: Option<Spanned<FileDuration>>,
    pub(crate) admin_token: Option<Spanned<String>>,
    pub(crate) admin_token_file: Option<Spanned<String>>,
    pub(crate) resolvers: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) resolve_min_ttl: Option<Spanned<FileDuration>>,
    pub(crate) resolve_max_ttl: Option<Spanned<FileDuration>>,
    pub(crate) resolve_drain: Option<Spanned<FileDuration>>,
}

/// `[limits]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileLimits {
    pub(crate) max_header_bytes: Option<Spanned<i64>>,
    pub(crate) max_headers: Option<Spanned<i64>>,
    pub(crate) header_read_timeout: Option<Spanned<FileDuration>>,
    pub(crate) idle_timeout: Option<Spanned<FileDuration>>,
    pub(crate) connect_timeout: Option<Spanned<FileDuration>>,
    pub(crate) response_timeout: Option<Spanned<FileDuration>>,
    pub(crate) client_body_timeout: Option<Spanned<FileDuration>>,
    pub(crate) send_timeout: Option<Spanned<FileDuration>>,
    pub(crate) max_connections: Option<Spanned<i64>>,
    pub(crate) max_connections_per_client: Option<Spanned<i64>>,
    pub(crate) h2_glitch_threshold: Option<Spanned<i64>>,
    pub(crate) h2_glitch_window: Option<Spanned<FileDuration>>,
}

/// `[[service]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileService {
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) listen: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) tls_listen: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) redirect_https: Option<Spanned<bool>>,
    pub(crate) policy: Option<Spanned<String>>,
    pub(crate) hash_balance_factor: Option<Spanned<i64>>,
    pub(crate) persistence: Option<Spanned<String>>,
    pub(crate) backend_keepalive: Option<bool>,
    pub(crate) accept_proxy: Option<Spanned<bool>>,
    pub(crate) proxy_trusted: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) send_proxy: Option<Spanned<String>>,
    pub(crate) retries: Option<Spanned<i64>>,
    pub(crate) max_body_bytes: Option<Spanned<i64>>,
    pub(crate) cookie: Option<Spanned<FileCookie>>,
    pub(crate) session: Option<Spanned<FileSession>>,
    pub(crate) passive: Option<Spanned<FilePassive>>,
    pub(crate) health: Option<Spanned<FileHealth>>,
    pub(crate) tls: Option<Spanned<FileTls>>,
    pub(crate) backend_tls: Option<Spanned<FileBackendTls>>,
    pub(crate) cdn: Option<Spanned<FileCdn>>,
    #[serde(default)]
    pub(crate) backend: Vec<Spanned<FileBackend>>,
}

/// `[service.cdn]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileCdn {
    pub(crate) host: Option<Spanned<String>>,
    pub(crate) site_hosts: Option<Vec<Spanned<String>>>,
    pub(crate) path_prefixes: Option<Vec<Spanned<String>>>,
    pub(crate) extensions: Option<Vec<Spanned<String>>>,
    pub(crate) mode: Option<Spanned<String>>,
    pub(crate) min_hits: Option<Spanned<i64>>,
    pub(crate) top_k: Option<Spanned<i64>>,
    pub(crate) content_types: Option<Vec<Spanned<String>>>,
    pub(crate) sample_rate: Option<Spanned<f64>>,
    pub(crate) max_page_bytes: Option<Spanned<i64>>,
    pub(crate) ask_identity: Option<bool>,
    pub(crate) cache_bytes: Option<Spanned<i64>>,
}

/// `[service.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileTls {
    pub(crate) unknown_sni: Option<Spanned<String>>,
    pub(crate) handshake_timeout: Option<Spanned<FileDuration>>,
    pub(crate) max_handshakes: Option<Spanned<i64>>,
    pub(crate) http2: Option<bool>,
    #[serde(default)]
    pub(crate) certificate: Vec<Spanned<FileCertificate>>,
}

/// `[[service.tls.certificate]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileCertificate {
    pub(crate) cert: Option<Spanned<String>>,
    pub(crate) key: Option<Spanned<String>>,
    pub(crate) default: Option<Spanned<bool>>,
}

/// `[service.backend_tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileBackendTls {
    pub(crate) verify: Option<bool>,
    pub(crate) ca_file: Option<Spanned<String>>,
    pub(crate) server_name: Option<Spanned<String>>,
}

/// `[service.cookie]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileCookie {
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) secret: Option<Spanned<String>>,
    pub(crate) secret_file: Option<Spanned<String>>,
    pub(crate) previous_secrets: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) previous_secret_files: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) max_idle: Option<Spanned<FileDuration>>,
    pub(crate) max_life: Option<Spanned<FileDuration>>,
    pub(crate) follow: Option<Spanned<String>>,
    pub(crate) secure: Option<bool>,
    pub(crate) http_only: Option<bool>,
    pub(crate) same_site: Option<Spanned<String>>,
}

/// `[service.session]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSession {
    pub(crate) cookie: Option<Spanned<String>>,
    pub(crate) url_param: Option<Spanned<String>>,
    pub(crate) groups: Option<Spanned<i64>>,
    pub(crate) group_idle: Option<Spanned<FileDuration>>,
}

/// `[service.passive]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilePassive {
    pub(crate) max_fails: Option<Spanned<i64>>,
    pub(crate) fail_timeout: Option<Spanned<FileDuration>>,
}

/// `[service.health]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileHealth {
    pub(crate) path: Option<Spanned<String>>,
    pub(crate) interval: Option<Spanned<FileDuration>>,
    pub(crate) timeout: Option<Spanned<FileDuration>>,
    pub(crate) rise: Option<Spanned<i64>>,
    pub(crate) fall: Option<Spanned<i64>>,
}

/// `[[service.backend]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileBackend {
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) address: Option<Spanned<String>>,
    pub(crate) srv: Option<Spanned<String>>,
    pub(crate) weight: Option<Spanned<i64>>,
    pub(crate) state: Option<Spanned<String>>,
}

/// A duration exactly as written. Only strings are accepted, and the type error for
/// anything else says what a duration looks like (`interval = 2` is a common slip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileDuration(pub(crate) String);

impl<'de> Deserialize<'de> for FileDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = FileDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a duration string such as "500ms", "2s" or "1m""#)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileDuration, E> {
                Ok(FileDuration(v.to_owned()))
            }
        }

        deserializer.deserialize_str(DurationVisitor)
    }
}
