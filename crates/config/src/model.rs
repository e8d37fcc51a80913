//! The validated configuration: what the rest of pentaflow reads.
//!
//! These types are produced only by [`crate::load`] / [`crate::parse`] after every check has
//! passed, so consumers never re-validate: addresses are parsed, durations are `Duration`s,
//! names are unique, weights are non-zero. They must not know about TOML.
//!
//! The `Default` impls hold the documented defaults of the file's optional tables; the
//! validator fills absent keys from them, and tests may build configs from them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// A whole, validated configuration file.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Settings of this node that are not per service.
    pub node: NodeConfig,
    /// Limits and timeouts applied to every client and back-end connection.
    pub limits: Limits,
    /// The load-balanced services, in file order. Names are unique.
    pub services: Vec<ServiceConfig>,
    /// Session-ticket keys shared by the array (`[tls_tickets]`).
    pub tickets: TicketKeys,
    /// The array this node belongs to (`[array]`); `None` = a plain proxy node.
    pub array: Option<ArrayConfig>,
}

/// `[array]`: the nodes that publish one VIP together, and the (static) scheduler among them.
///
/// Every node gets the same file; which node *this* process is comes from `node_id` or from
/// the command line ([`ArrayConfig::self_node`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ArrayConfig {
    /// How the array schedules (`mode`): one scheduler, or every node (seed 004).
    pub mode: ArrayMode,
    /// The virtual IP the array publishes.
    pub vip: Ipv4Addr,
    /// The LAN interface carrying VIP traffic (at most 15 bytes, as the kernel requires).
    pub interface: String,
    /// This node's id, if the file names it; always one of `nodes`.
    pub node_id: Option<u16>,
    /// Id of the static scheduler (no `[array] key`), or of the preferred one when the cluster
    /// elects it (its default `priority` is then [`PREFERRED_PRIORITY`]); 0 = none preferred
    /// (only with a key).
    pub scheduler: u16,
    /// Buckets in the client IP/port table: a power of two.
    pub table_size: usize,
    /// A bucket idle this long may be handed to another node (how new nodes enter gradually).
    pub bucket_idle: Duration,
    /// The scheduler's data plane (`data_plane`).
    pub data_plane: DataPlane,
    /// TCP ports served on the VIP, sorted and unique; frames to other ports are dropped.
    pub ports: Vec<u16>,
    /// Every node of the array, this one included, in file order; ids, addresses and MACs
    /// are unique.
    pub nodes: Vec<ArrayNode>,
    /// The control plane (heartbeats, election, table replication); `None` without a cluster
    /// key, and then `scheduler` is static.
    pub cluster: Option<ClusterSettings>,
}

/// The cluster part of `[array]`: present when a cluster key is set.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// The shared HMAC key that authenticates every control datagram (>= 16 bytes).
    pub key: Vec<u8>,
    /// UDP control port, on each node's LAN address.
    pub port: u16,
    /// Each node announces itself this often.
    pub heartbeat: Duration,
    /// A node not heard from this long is failed.
    pub dead_after: Duration,
    /// A returning higher-priority node takes the scheduler role back (off: no flapping).
    pub preempt: bool,
    /// The scheduler polls one node's status this often; also the delay before a retry.
    pub status_poll: Duration,
    /// Polls a node may miss in a row, after the first, before it is failed by the poll.
    pub status_retries: u32,
    /// `[array] quorum` as written: nodes (itself included) a node must hear to take or keep
    /// the scheduler role; `None` = the default, see [`ArrayConfig::quorum`].
    pub quorum: Option<u16>,
    /// An executable run on role changes and array events (`[array] notify`).
    pub notify: Option<PathBuf>,
    /// The token the admin API's operator actions need; `None` refuses them.
    pub admin_token: Option<Vec<u8>>,
}

impl fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("key", &format_args!("<{} bytes, redacted>", self.key.len()))
            .field("port", &self.port)
            .field("heartbeat", &self.heartbeat)
            .field("dead_after", &self.dead_after)
            .field("preempt", &self.preempt)
            .field("status_poll", &self.status_poll)
            .field("status_retries", &self.status_retries)
            .field("quorum", &self.quorum)
            .field("notify", &self.notify)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// `[[array.node]]`: one node as the scheduler routes to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArrayNode {
    /// The node's number (1..=65534), shared by the bucket table and the cluster.
    pub id: u16,
    /// Its IPv4 address on the LAN.
    pub address: Ipv4Addr,
    /// The MAC address of its LAN interface: where the scheduler sends its frames.
    pub mac: [u8; 6],
    /// Share of new buckets (1..=1000).
    pub weight: u32,
    /// Administratively enabled; a disabled node keeps its buckets but gets no new ones.
    pub enabled: bool,
    /// Election priority (higher wins, then the lower id; 0 = never the scheduler).
    pub priority: u8,
}

/// `[tls_tickets]`: keys that encrypt TLS session tickets. Every node of an array gets the same
/// keys, so a client resumes its TLS session on whichever node its next connection lands.
#[derive(Clone, PartialEq)]
pub struct TicketKeys {
    /// AES-256 keys, newest first: the first encrypts new tickets, all decrypt (rotation keeps
    /// the previous ones for a while). Empty = a random key per process (no cross-node resumption).
    pub keys: Vec<[u8; 32]>,
    /// How long a ticket is valid (default 12 h).
    pub lifetime: Duration,
}

impl fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKeys")
            .field(
                "keys",
                &format_args!("<{} keys, redacted>", self.keys.len()),
            )
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// Node-wide settings (`[node]`).
#[derive(Clone, PartialEq)]
pub struct NodeConfig {
    /// Address of the admin HTTP listener (status JSON, Prometheus metrics); `None` = off.
    pub admin: Option<SocketAddr>,
    /// Emit one structured access-log line per request.
    pub access_log: bool,
    /// Grace period for in-flight requests on SIGTERM.
    pub shutdown_grace: Duration,
    /// The token the runtime back-end API (`POST /backend/...`) needs (`admin_token` or
    /// `admin_token_file`); `None` refuses it (unless the array's token is set).
    pub admin_token: Option<Vec<u8>>,
    /// How back-ends named by DNS are re-resolved (`resolvers`, `resolve_*`).
    pub resolve: ResolveSettings,
}

/// How back-ends named by DNS (`address = "name:port"` or `srv = "..."`) are followed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveSettings {
    /// DNS servers asked (`ip:port`, UDP then TCP); empty = those of `/etc/resolv.conf`.
    pub resolvers: Vec<SocketAddr>,
    /// A record's TTL is raised to at least this before the name is asked again: a TTL of 0
    /// must not make every node query in a loop.
    pub min_ttl: Duration,
    /// ... and lowered to at most this: a day-long TTL must not hide a moved back-end for a day.
    /// After a failed resolution the name is asked again after `min_ttl`, doubled with each
    /// failure in a row, at most this.
    pub max_ttl: Duration,
    /// How long an address that left the answer stays draining before it is removed (its
    /// cookie and session clients keep reaching it meanwhile, as `state = "drain"`).
    pub drain: Duration,
}

/// A `[[service.backend]]` named by DNS: each address the name resolves to becomes a
/// back-end `<name>#<ip:port>` at run time; none is in the validated file's `backends`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredBackend {
    /// The entry's name (`name`), the prefix of each discovered back-end's name.
    pub name: String,
    /// What is resolved.
    pub target: DnsTarget,
    /// Weight of each discovered address (an SRV record's own weight replaces it).
    pub weight: u32,
    /// The operator's state, applied to every discovered address.
    pub state: BackendAdminState,
}

/// The DNS question of a [`DiscoveredBackend`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsTarget {
    /// `address = "host:port"`: the host's A and AAAA records, each at `port`.
    Host {
        /// The DNS name (no trailing dot needed).
        host: String,
        /// The back-ends' port.
        port: u16,
    },
    /// `srv = "_service._proto.name"`: the SRV records, each target's addresses at the
    /// record's port and with its weight; only the records of the lowest priority are used.
    Srv {
        /// The SRV owner name.
        name: String,
    },
}

impl DnsTarget {
    /// The name as written, for status pages and logs (`app.internal:8080`, `_http._tcp.x`).
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Host { host, port } => format!("{host}:{port}"),
            Self::Srv { name } => format!("SRV {name}"),
        }
    }
}

impl Default for ResolveSettings {
    /// `/etc/resolv.conf`, TTLs bounded to 1 s..=300 s, 30 s of drain.
    fn default() -> Self {
        ResolveSettings {
            resolvers: Vec::new(),
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(300),
            drain: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeConfig")
            .field("admin", &self.admin)
            .field("access_log", &self.access_log)
            .field("shutdown_grace", &self.shutdown_grace)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("resolve", &self.resolve)
            .finish()
    }
}

/// Limits and timeouts (`[limits]`); every field has a safe default.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Maximum bytes of a request head (request line + headers); larger gets 431.
    pub max_header_bytes: usize,
    /// Maximum number of request header fields; more gets 431.
    pub max_headers: usize,
    /// Time allowed for a client to send a complete request head once it started; 408 after.
    pub header_read_timeout: Duration,
    /// Time an idle client keep-alive connection is kept open.
    pub idle_timeout: Duration,
    /// Time allowed to connect to a back-end; on expiry the request is rerouted.
    pub connect_timeout: Duration,
    /// Time allowed for a back-end to send its response head; 504 after.
    pub response_timeout: Duration,
    /// Longest silence allowed inside a request body; 408 and a close after (nginx
    /// `client_body_timeout`).
    pub client_body_timeout: Duration,
    /// Longest a client may take to accept one write of a response; the connection is closed
    /// after (nginx `send_timeout`).
    pub send_timeout: Duration,
    /// Maximum concurrent client connections per node; at the cap the node stops accepting and
    /// further connections wait in the listen backlog (HAProxy's `maxconn`), never a reset.
    pub max_connections: usize,
    /// Maximum concurrent client connections from one client IP address; a connection past it
    /// is answered `503` with `Connection: close` (plain HTTP) or closed (TLS). `None` (the
    /// default) = no limit: a carrier-grade NAT, a corporate proxy or a load generator puts
    /// thousands of legitimate clients behind one address, and neither HAProxy nor nginx limits
    /// per source unless told to.
    pub max_connections_per_client: Option<usize>,
    /// HTTP/2 "glitches" (floods of SETTINGS, PING, PRIORITY, empty or unknown frames) a client
    /// connection may have within [`Limits::h2_glitch_window`] before it is closed with GOAWAY
    /// `ENHANCE_YOUR_CALM` (HAProxy's `tune.h2.fe.glitches-threshold`); 0 = no limit.
    pub h2_glitch_threshold: u32,
    /// How long the glitch meter takes to forget `h2_glitch_threshold` glitches (a leaky
    /// bucket, so a long-lived connection with occasional PINGs is never cut).
    pub h2_glitch_window: Duration,
}

/// One load-balanced service (`[[service]]`).
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceConfig {
    /// Unique name, used in logs, metrics and the admin API.
    pub name: String,
    /// Plain-HTTP listen addresses.
    pub listen: Vec<SocketAddr>,
    /// How a request without persistence is placed on a back-end.
    pub policy: Policy,
    /// Load bound for `url_hash`, in percent of the average load (HAProxy's
    /// `hash-balance-factor`); `None` = unbounded. Always > 100 when set.
    pub hash_balance_factor: Option<u32>,
    /// Persistence layered on top of the policy.
    pub persistence: Persistence,
    /// Keep pooled keep-alive connections to back-ends (`true`, default) or open one per
    /// request (`false`, the seed's mode).
    pub backend_keepalive: bool,
    /// How many other back-ends a request may be rerouted to after a failure.
    pub retries: u32,
    /// Largest request body accepted, in bytes (413 and a close past it); `None` = no limit.
    /// A declared `Content-Length` is checked before any byte is forwarded.
    pub max_body_bytes: Option<u64>,
    /// Passive failure detection (claim 13).
    pub passive: PassiveHealth,
    /// Optional active health check.
    pub health: Option<HealthCheck>,
    /// The back-end web servers, in file order. Names are unique within the service.
    /// Back-ends found by DNS are not here (see `discovered`): the node adds them at run time.
    pub backends: Vec<BackendConfig>,
    /// `[[service.backend]]`s named by DNS, in file order; their names are unique among
    /// `backends` too. A service may have only these (it answers 503 until one resolves).
    pub discovered: Vec<DiscoveredBackend>,
    /// HTTPS listen addresses (TLS is terminated on this node); empty = no HTTPS.
    pub tls_listen: Vec<SocketAddr>,
    /// TLS settings: `Some` exactly when `tls_listen` is not empty.
    pub tls: Option<TlsConfig>,
    /// Answer plain-HTTP requests with a permanent redirect to HTTPS (needs `tls`).
    pub redirect_https: bool,
    /// Re-encrypt to the back-ends (`[service.backend_tls]`); `None` = plain HTTP to back-ends.
    pub backend_tls: Option<BackendTls>,
    /// Rewrite asset URLs in outgoing HTML to a CDN (`[service.cdn]`); `None` = off.
    pub cdn: Option<CdnConfig>,
    /// Every connection to this service's listeners starts with a PROXY protocol header
    /// (`accept_proxy = true`, HAProxy's `accept-proxy`); `None` = off.
    pub accept_proxy: Option<AcceptProxy>,
    /// Write a PROXY protocol header first on each new back-end connection
    /// (`send_proxy = "v1" | "v2"`, HAProxy's `send-proxy` / `send-proxy-v2`); `None` = off.
    pub send_proxy: Option<ProxyVersion>,
}

/// `accept_proxy = true`: the service's listeners sit behind a trusted L4 proxy or balancer
/// that opens every connection with a PROXY protocol header (v1 or v2).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AcceptProxy {
    /// `proxy_trusted`: the networks a connection may come from; empty = any source (as
    /// HAProxy's `accept-proxy` alone: the listener must then be reachable only by the proxy).
    pub trusted: Vec<Cidr>,
}

impl AcceptProxy {
    /// Whether a connection from `peer` may send a header.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.trusted.is_empty() || self.trusted.iter().any(|c| c.contains(peer))
    }
}

/// A network, `10.0.0.0/8` or `2001:db8::/32` (a bare address is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network address (no host bits set).
    pub network: IpAddr,
    /// The prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside this network. An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, as
    /// a dual-stack socket reports an IPv4 client) counts as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    /// Parses `ip/prefix` or a bare `ip`; refuses host bits set (`10.0.0.1/8` is a typo for
    /// `10.0.0.0/8` or `10.0.0.1/32`, and guessing which would widen or narrow trust).
    fn from_str(text: &str) -> Result<Self, String> {
        let (ip, prefix) = match text.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = ip
            .parse()
            .map_err(|_| format!("{ip:?} is not an IP address"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("{p:?} is not a prefix length 0..={max}")),
            },
        };
        let cidr = Cidr { network, prefix };
        let masked = match network {
            IpAddr::V4(n) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(n) & mask).into())
            }
            IpAddr::V6(n) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(n) & mask).into())
            }
        };
        if masked != network {
            return Err(format!(
                "{text:?} has host bits set: write {masked}/{prefix} for the network, or {network} alone for one address"
            ));
        }
        Ok(cidr)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Which PROXY protocol header a service writes toward its back-ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyVersion {
    /// The text header (`PROXY TCP4 ...\r\n`).
    V1,
    /// The binary header.
    V2,
}

/// `[service.cdn]`: CDN URL rewriting of outgoing HTML and the cache of rewritten pages
/// (claims 14–15). The proxy turns this into the rewriter's rules.
#[derive(Clone, Debug, PartialEq)]
pub struct CdnConfig {
    /// Host of the CDN; may contain `{client_token}` (a token derived from the client's network).
    pub host: String,
    /// Hosts that are "this site" (absolute URLs with another host are left alone); empty = the
    /// request's own Host only.
    pub site_hosts: Vec<String>,
    /// Path prefixes eligible for the CDN (empty = every path).
    pub path_prefixes: Vec<String>,
    /// File extensions eligible for the CDN (empty = the rewriter's default list of static types).
    pub extensions: Vec<String>,
    /// `auto`: choose objects from sampled traffic instead of the rules alone.
    pub auto: Option<CdnAuto>,
    /// Fraction of responses sampled for the object statistics (0.0..=1.0).
    pub sample_rate: f64,
    /// Pages larger than this (decoded) are passed through unchanged.
    pub max_page_bytes: u64,
    /// Ask back-ends for uncompressed pages (`Accept-Encoding: identity`) instead of decoding.
    pub ask_identity: bool,
    /// Memory for the cache of rewritten pages, in bytes (0 = no cache).
    pub cache_bytes: usize,
}

/// `mode = "auto"` settings of `[service.cdn]`.
#[derive(Clone, Debug, PartialEq)]
pub struct CdnAuto {
    /// Sampled hits an object needs before it is sent to the CDN.
    pub min_hits: u64,
    /// At most this many objects (the most popular); `None` = no limit.
    pub top_k: Option<usize>,
    /// Content types eligible (empty = any static type).
    pub content_types: Vec<String>,
}

/// `[service.tls]`: TLS termination for a service's `tls_listen` addresses.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsConfig {
    /// Certificates, chosen by SNI against the names in each certificate (at least one).
    pub certificates: Vec<CertificateConfig>,
    /// What to do with a ClientHello whose SNI (or lack of one) matches no certificate.
    pub unknown_sni: UnknownSni,
    /// Time allowed for a TLS handshake (default 10 s).
    pub handshake_timeout: Duration,
    /// Concurrent handshakes per node for this service (default 1024); more are closed at once.
    pub max_handshakes: usize,
    /// Offer HTTP/2 by ALPN (default true); HTTP/1.1 is always offered.
    pub http2: bool,
}

/// `[[service.tls.certificate]]`: one certificate chain and its private key (PEM files).
#[derive(Clone, Debug, PartialEq)]
pub struct CertificateConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1; ECDSA, RSA or Ed25519).
    pub key: PathBuf,
    /// The certificate for clients whose SNI matches none (at most one; default: the first).
    pub default: bool,
}

/// Handling of an SNI that matches no certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UnknownSni {
    /// Serve the default certificate (default).
    #[default]
    Default,
    /// Refuse the handshake.
    Refuse,
}

/// `[service.backend_tls]`: TLS from this node to the back-ends.
#[derive(Clone, Debug, PartialEq)]
pub struct BackendTls {
    /// Verify the back-end's certificate (default true).
    pub verify: bool,
    /// PEM file of CA certificates to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Server name sent in SNI and verified (default: the back-end's IP address).
    pub server_name: Option<String>,
}

/// Base scheduling policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// Weighted least connections (fewest in-flight requests per unit of weight); the default.
    #[default]
    LeastConn,
    /// Smooth weighted round-robin.
    RoundRobin,
    /// Consistent hash of the request path + query (bounded by `hash_balance_factor`).
    UrlHash,
}

/// Persistence mode of a service.
#[derive(Clone, Debug, PartialEq)]
pub enum Persistence {
    /// Every request is scheduled by the policy alone.
    None,
    /// The proxy injects its own signed cookie naming the back-end.
    Cookie(CookiePersistence),
    /// The application's session ID is hashed into a fixed number of hash groups.
    Session(SessionPersistence),
}

/// `[service.cookie]`: cookie injection.
///
/// `Debug` shows the secret's length, never its bytes, so configs can be logged.
#[derive(Clone, PartialEq)]
pub struct CookiePersistence {
    /// Name of the injected cookie.
    pub name: String,
    /// Key that signs cookie values (at least 16 bytes); all nodes of an array share it.
    pub secret: Vec<u8>,
    /// Older keys whose values are still honoured (and re-issued under `secret`), newest
    /// first: how a key is rotated without moving clients.
    pub previous_secrets: Vec<Vec<u8>>,
    /// A value not refreshed for this long is ignored (HAProxy's `maxidle`); `None` = never.
    pub max_idle: Option<Duration>,
    /// A value first issued this long ago is ignored (HAProxy's `maxlife`); `None` = never.
    pub max_life: Option<Duration>,
    /// Name of the application's session cookie whose lifetime the injected cookie copies
    /// (e.g. `JSESSIONID`); `None` = always a session cookie.
    pub follow: Option<String>,
    /// Mark the cookie `Secure` (default: only when the client came over HTTPS).
    pub secure: Option<bool>,
    /// `HttpOnly` attribute (default true).
    pub http_only: bool,
    /// `SameSite` attribute, if any (`Lax`, `Strict`, `None`).
    pub same_site: Option<String>,
}

/// `[service.session]`: session-ID hash-group persistence.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionPersistence {
    /// Cookie carrying the session ID (e.g. `JSESSIONID`); `None` = don't look at cookies.
    pub cookie: Option<String>,
    /// URL parameter carrying the session ID, looked for as a path parameter
    /// (`;jsessionid=`) and as a query parameter; `None` = don't look at the URL.
    pub url_param: Option<String>,
    /// Number of hash groups (fixed; the table never grows).
    pub groups: usize,
    /// A group unused for this long may be moved to another back-end.
    pub group_idle: Duration,
}

/// `[service.passive]`: passive failure detection.
#[derive(Clone, Debug, PartialEq)]
pub struct PassiveHealth {
    /// Consecutive failures that mark a back-end down.
    pub max_fails: u32,
    /// How long a back-end marked down by passive detection stays out before it is
    /// tried again (when no active check is configured).
    pub fail_timeout: Duration,
}

/// `[service.health]`: active HTTP health check.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthCheck {
    /// Path requested with GET.
    pub path: String,
    /// Time between checks of one back-end.
    pub interval: Duration,
    /// Time allowed for one check.
    pub timeout: Duration,
    /// Consecutive successes that bring a down back-end up.
    pub rise: u32,
    /// Consecutive failures that take an up back-end down.
    pub fall: u32,
}

/// One back-end web server (`[[service.backend]]`).
#[derive(Clone, Debug, PartialEq)]
pub struct BackendConfig {
    /// Stable name: injected cookies and session groups refer to it, so it survives reloads.
    pub name: String,
    /// Address of the back-end's HTTP listener.
    pub address: SocketAddr,
    /// Relative weight (> 0).
    pub weight: u32,
    /// The operator's state of the back-end (`state`): ready, draining or in maintenance.
    pub state: BackendAdminState,
}

/// `[array] mode`: who decides where a new connection goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ArrayMode {
    /// One node (static, or elected with a cluster key) owns the VIP by ARP and routes every
    /// inbound frame by the client IP/port bucket table (seed 002; the default).
    #[default]
    Scheduler,
    /// An upstream router spreads the VIP's traffic over every node and each node decides as
    /// an individual load balancer: rendezvous owner and backup per connection, hand-off to
    /// the owner, announced associations (seed 004). Needs a cluster key and two nodes.
    ActiveActive,
}

impl ArrayMode {
    /// Every mode, in the order the documentation lists them.
    pub const ALL: [ArrayMode; 2] = [ArrayMode::Scheduler, ArrayMode::ActiveActive];

    /// The word used in the file.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduler => "scheduler",
            Self::ActiveActive => "active-active",
        }
    }

    /// The mode a word names, if any.
    #[must_use]
    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == word)
    }
}

/// `[array] data_plane`: which data plane the scheduler runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DataPlane {
    /// XDP native, then XDP generic, then AF_PACKET: the first that loads and attaches.
    Auto,
    /// The XDP program (native, else generic); the role is refused if it cannot load.
    Xdp,
    /// The AF_PACKET socket and TAP (the default: it runs on any kernel and interface).
    #[default]
    AfPacket,
}

impl DataPlane {
    /// The word used in the file.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Xdp => "xdp",
            Self::AfPacket => "af_packet",
        }
    }

    /// The data plane a word names, if any.
    #[must_use]
    pub fn from_word(word: &str) -> Option<Self> {
        match word {
            "auto" => Some(Self::Auto),
            "xdp" => Some(Self::Xdp),
            "af_packet" => Some(Self::AfPacket),
            _ => None,
        }
    }
}

/// `state` of a `[[service.backend]]`: what the operator allows, independent of its health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackendAdminState {
    /// Takes new clients (the default).
    #[default]
    Ready,
    /// No new clients or sessions; clients that persist to it (cookie, session group) stay
    /// until it is removed (HAProxy's `drain`).
    Drain,
    /// No traffic at all; persistent clients move to another back-end (HAProxy's `maint`).
    Maintenance,
}

impl BackendAdminState {
    /// The word used in the file and the admin API.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Drain => "drain",
            Self::Maintenance => "maintenance",
        }
    }

    /// The state a word names, if any.
    #[must_use]
    pub fn from_word(word: &str) -> Option<Self> {
        match word {
            "ready" => Some(Self::Ready),
            "drain" => Some(Self::Drain),
            "maintenance" => Some(Self::Maintenance),
            _ => None,
        }
    }
}

/// Where a configuration came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A file on disk.
    File(PathBuf),
    /// Text given directly (tests, the embedded demo), with a label.
    Inline(String),
    /// Text that is to become the file `dest` (a configuration pushed to an array node): named
    /// by `label` in errors, its relative paths resolve against `dest`'s directory.
    Pushed {
        /// How errors name it.
        label: String,
        /// The file it will be written to.
        dest: PathBuf,
    },
}

/// Default `[tls_tickets] lifetime`: a working day, so a returning client resumes, while a
/// stolen ticket is useless by the next day.
const DEFAULT_TICKET_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Default `[service.tls] handshake_timeout`: ample for a slow mobile link, short enough that
/// a client stalling mid-handshake cannot hold a handshake slot for long.
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `[service.tls] max_handshakes`: handshakes cost CPU; this bounds a flood of them
/// per node and service while leaving room for any honest burst.
const DEFAULT_MAX_HANDSHAKES: usize = 1024;

/// Default `[node] shutdown_grace`: long enough for ordinary requests to finish, short
/// enough for an orchestrator's stop timeout.
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Default `[array] table_size`: the seed's 65,536 buckets — fine-grained enough to spread
/// load evenly over dozens of nodes, small enough (a few hundred KiB) to replicate quickly.
pub const DEFAULT_TABLE_SIZE: usize = 1 << 16;
/// Default `[array] bucket_idle`: past the idle timeout of ordinary keep-alive connections, so
/// a bucket moved to a new node almost never carries a live connection.
pub const DEFAULT_BUCKET_IDLE: Duration = Duration::from_secs(60);
/// Default `[array] port`: the UDP control port (memberlist's well-known port, so firewalls
/// written for such clusters already let it through on the LAN).
pub const DEFAULT_CLUSTER_PORT: u16 = 7946;
/// Default `[array] heartbeat`: four announcements fit in `dead_after`, so three lost in a row
/// never fail a node (the cluster crate's `DEFAULT_INTERVAL_MS`).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(50);
/// Default `[array] dead_after`: a crash is detected within 150–200 ms, inside the 300 ms
/// failover goal with room for the takeover (the cluster crate's `DEFAULT_DEAD_AFTER_MS`).
pub const DEFAULT_DEAD_AFTER: Duration = Duration::from_millis(200);
/// Default `[array] status_poll`: a sweep of a ten-node array takes two seconds; status is
/// for monitoring and for nodes that stop answering while still announcing themselves.
pub const DEFAULT_STATUS_POLL: Duration = Duration::from_millis(200);
/// Default `[array] status_retries`: one lost query or answer never fails a node.
pub const DEFAULT_STATUS_RETRIES: u32 = 2;
/// Default node `priority` of the preferred `scheduler`: above [`DEFAULT_PRIORITY`], so it
/// wins the first election.
pub const PREFERRED_PRIORITY: u8 = 200;
/// Default node `priority` of every other node.
pub const DEFAULT_PRIORITY: u8 = 100;

impl ArrayConfig {
    /// Nodes (itself included) a node must hear to take or keep the scheduler role: the
    /// configured `[array] quorum`, else a strict majority of the nodes — 1 for one or two
    /// nodes, where a majority would make every single failure fatal (two nodes cannot tell a
    /// dead peer from a cut cable; like keepalived, each then serves alone). 1 without a
    /// cluster (a static scheduler elects nothing).
    #[must_use]
    pub fn quorum(&self) -> u16 {
        let configured = self.cluster.as_ref().and_then(|c| c.quorum);
        configured.unwrap_or_else(|| {
            let n = self.nodes.len();
            if n <= 2 {
                1
            } else {
                u16::try_from(n / 2 + 1).unwrap_or(u16::MAX)
            }
        })
    }
}

impl Config {
    /// The service called `name`, if any.
    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.name == name)
    }
}

impl ArrayConfig {
    /// The node with id `id`, if listed.
    pub fn node(&self, id: u16) -> Option<&ArrayNode> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// This node: `override_id` (the command line) if given, else the file's `node_id`.
    /// `None` when neither names a listed node.
    pub fn self_node(&self, override_id: Option<u16>) -> Option<&ArrayNode> {
        override_id.or(self.node_id).and_then(|id| self.node(id))
    }

    /// Whether node `id` is the static scheduler (always false when the cluster elects it).
    pub fn is_scheduler(&self, id: u16) -> bool {
        self.cluster.is_none() && self.scheduler == id
    }
}

impl fmt::Debug for CookiePersistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookiePersistence")
            .field("name", &self.name)
            .field(
                "secret",
                &format_args!("<{} bytes, redacted>", self.secret.len()),
            )
            .field(
                "previous_secrets",
                &format_args!("<{} keys, redacted>", self.previous_secrets.len()),
            )
            .field("max_idle", &self.max_idle)
            .field("max_life", &self.max_life)
            .field("follow", &self.follow)
            .field("secure", &self.secure)
            .field("http_only", &self.http_only)
            .field("same_site", &self.same_site)
            .finish()
    }
}

impl Default for NodeConfig {
    /// No admin listener, access log on, 30 s grace.
    fn default() -> Self {
        NodeConfig {
            admin: None,
            access_log: true,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            admin_token: None,
            resolve: ResolveSettings::default(),
        }
    }
}

impl Default for Limits {
    /// Conservative limits that suit ordinary web traffic (nginx/HAProxy-like values).
    fn default() -> Self {
        Limits {
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(30),
            client_body_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_connections_per_client: None,
            h2_glitch_threshold: 1000,
            h2_glitch_window: Duration::from_secs(10),
        }
    }
}

impl Default for TicketKeys {
    /// No keys (a random key per process) and a 12 h ticket lifetime.
    fn default() -> Self {
        TicketKeys {
            keys: Vec::new(),
            lifetime: DEFAULT_TICKET_LIFETIME,
        }
    }
}

impl Default for TlsConfig {
    /// The defaults of `[service.tls]`: unknown SNI gets the default certificate, 10 s
    /// handshake timeout, 1024 concurrent handshakes, HTTP/2 offered. `certificates` is
    /// empty, which the file does not allow: the validator always fills it.
    fn default() -> Self {
        TlsConfig {
            certificates: Vec::new(),
            unknown_sni: UnknownSni::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            http2: true,
        }
    }
}

impl UnknownSni {
    /// The name used in the file (`default`, `refuse`).
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownSni::Default => "default",
            UnknownSni::Refuse => "refuse",
        }
    }
}

impl Default for BackendTls {
    /// Verify back-ends against the system roots, with their IP address as the name.
    fn default() -> Self {
        BackendTls {
            verify: true,
            ca_file: None,
            server_name: None,
        }
    }
}

impl Policy {
    /// The name used in the file (`least_conn`, `round_robin`, `url_hash`).
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::LeastConn => "least_conn",
            Policy::RoundRobin => "round_robin",
            Policy::UrlHash => "url_hash",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Default for PassiveHealth {
    /// Three consecutive failures, ten seconds out.
    fn default() -> Self {
        PassiveHealth {
            max_fails: 3,
            fail_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for HealthCheck {
    /// `GET /` every 2 s with a 1 s timeout; up after 2 successes, down after 3 failures.
    fn default() -> Self {
        HealthCheck {
            path: "/".to_owned(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
        }
    }
}

impl Source {
    /// How the source is named in error messages: the path, or the inline label.
    pub fn name(&self) -> String {
        match self {
            Source::File(path) => path.display().to_string(),
            Source::Inline(label) | Source::Pushed { label, .. } => label.clone(),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_debug_redacts_the_secret() {
        let cookie = CookiePersistence {
            name: "PFSRV".into(),
            secret: b"do-not-log-this-key".to_vec(),
            previous_secrets: vec![b"old-key-do-not-log".to_vec()],
            max_idle: None,
            max_life: None,
            follow: None,
            secure: None,
            http_only: true,
            same_site: None,
        };
        let shown = format!("{cookie:?}");
        assert!(!shown.contains("do-not-log"), "{shown}");
        assert!(shown.contains("<19 bytes, redacted>"), "{shown}");
        assert!(!shown.contains("old-key"), "{shown}");
        assert!(shown.contains("<1 keys, redacted>"), "{shown}");
    }

    #[test]
    fn ticket_keys_debug_redacts_the_keys() {
        let tickets = TicketKeys {
            keys: vec![[0xab; 32], [0xcd; 32]],
            ..TicketKeys::default()
        };
        let shown = format!("{tickets:?}");
        assert!(!shown.contains("171") && !shown.contains("ab"), "{shown}");
        assert!(shown.contains("<2 keys, redacted>"), "{shown}");
        assert_eq!(tickets.lifetime, Duration::from_secs(12 * 60 * 60));
    }
}
