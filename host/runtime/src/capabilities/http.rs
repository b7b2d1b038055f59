//! `http`: outbound HTTP limited to the hosts a manifest allow-lists and the
//! admin grants.
//!
//! # What a plugin can reach
//!
//! An allow-list entry ([`HostPattern`]) is one of
//!
//! | entry | reaches |
//! |---|---|
//! | `discord.com`, `discord.com:8443`, `discord.com:*` | that name, on the scheme's default port, that port, or any port |
//! | `127.0.0.1`, `127.0.0.1:8080`, `[::1]:*` | that address (IPv6 in brackets) |
//! | `10.0.0.0/8`, `10.0.0.0/8:*`, `[fd00::/8]:443` | every address of that range |
//!
//! A name on the list is not enough: the name is resolved by the host, and
//! **every** address it resolves to must be a public address or one the
//! list names explicitly (an IP literal or a range). Loopback, link-local,
//! private, unique-local, CGNAT, unspecified, multicast, broadcast and
//! reserved addresses ([`is_special`]), and the IPv4-mapped, -compatible,
//! NAT64 and 6to4 IPv6 forms of those, are refused otherwise. The checked
//! addresses are then pinned for the request: the connection goes to one of
//! them and nowhere else, so a DNS answer that changes between the check
//! and the connect (rebinding) cannot move it. Each request gets its own
//! connection (no pool shared across plugins and grants), no proxy from the
//! environment (a proxy would connect on our behalf, past the check) and
//! never follows a redirect (a redirect could leave the allow-list); the
//! plugin sees the 3xx and decides.
//!
//! Plugins may not set `Host` (the request would reach a granted address
//! while naming another site), `Proxy-*`, `Content-Length` (derived from the
//! body) or the hop-by-hop headers ([`FORBIDDEN_HEADERS`]); such a request
//! is refused with [`HttpError::Denied`] naming the header.
//!
//! Response bodies are read in chunks and abandoned past
//! [`MAX_RESPONSE_BYTES`], and every request, its name resolution included,
//! is bounded by the call's own deadline.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::api::{HttpError, HttpMethod, HttpRequest, HttpResponse, KeyValue};
use crate::plugin::PluginState;

/// Largest request body, in bytes.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Largest response body, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Request headers a plugin may not set (compared case-insensitively; every
/// `proxy-*` header is refused as well).
pub const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "http2-settings",
];

/// What an allow-list entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A host name (lowercase); its addresses must be public.
    Name(String),
    /// An address or a range the admin granted explicitly.
    Net(IpNet),
}

/// One allow-list entry: a host name, an IP address or a CIDR range, each
/// with an optional `:port` or `:*` (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    target: Target,
    /// `None` means the scheme's default port; `Some(None)` any port.
    port: Option<Option<u16>>,
}

impl HostPattern {
    /// Parses an allow-list entry, explaining what is wrong.
    pub fn parse(entry: &str) -> Result<Self, String> {
        if entry.contains("://") {
            return Err(format!(
                "{entry:?} must be a host or host:port, without scheme or path"
            ));
        }
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (inside, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{entry:?} opens a bracket it does not close"))?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| format!("{entry:?} has text after its IPv6 address"))?,
                ),
            };
            if inside.parse::<Ipv6Addr>().is_err()
                && !inside
                    .parse::<IpNet>()
                    .is_ok_and(|net| matches!(net, IpNet::V6(_)))
            {
                return Err(format!(
                    "{entry:?} does not hold an IPv6 address or range in its brackets"
                ));
            }
            (inside, port)
        } else {
            match entry.split(':').count() {
                1 => (entry, None),
                2 => entry
                    .split_once(':')
                    .map(|(h, p)| (h, Some(p)))
                    .unwrap_or((entry, None)),
                _ => {
                    return Err(format!(
                        "{entry:?}: write IPv6 addresses in brackets, e.g. [::1]:8080"
                    ));
                }
            }
        };
        let port = match port {
            None => None,
            Some("*") => Some(None),
            Some(p) => {
                Some(Some(p.parse::<u16>().map_err(|_| {
                    format!("{entry:?} has an invalid port {p:?}")
                })?))
            }
        };
        let target = if let Ok(ip) = host.parse::<IpAddr>() {
            Target::Net(IpNet::from(canonical(ip)))
        } else if host.contains('/') {
            let net = host.parse::<IpNet>().map_err(|_| {
                format!("{entry:?} must be a host or host:port, without scheme or path")
            })?;
            Target::Net(net.trunc())
        } else {
            let valid_host = !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !valid_host {
                return Err(format!(
                    "{entry:?} is not a valid host name, IP address or CIDR range"
                ));
            }
            Target::Name(host.to_ascii_lowercase())
        };
        Ok(Self { target, port })
    }

    fn port_allows(&self, url: &url::Url) -> bool {
        match self.port {
            Some(None) => true,
            Some(Some(p)) => url.port_or_known_default() == Some(p),
            None => url.port().is_none(),
        }
    }

    /// Whether `url` targets this entry: its host is this name, or an
    /// address inside this address or range, and the port matches.
    pub fn allows(&self, url: &url::Url) -> bool {
        let host_matches = match (&self.target, url.host()) {
            (Target::Name(name), Some(url::Host::Domain(host))) => host.eq_ignore_ascii_case(name),
            (Target::Net(net), Some(url::Host::Ipv4(ip))) => net.contains(&canonical(ip.into())),
            (Target::Net(net), Some(url::Host::Ipv6(ip))) => net.contains(&canonical(ip.into())),
            _ => false,
        };
        host_matches && self.port_allows(url)
    }

    /// Whether this entry grants `addr` explicitly (an address or range
    /// containing it, with a matching port) for a request to `url`.
    fn grants_address(&self, url: &url::Url, addr: IpAddr) -> bool {
        match &self.target {
            Target::Net(net) => net.contains(&canonical(addr)) && self.port_allows(url),
            Target::Name(_) => false,
        }
    }
}

/// `ip` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) turned into
/// its IPv4 address, so that a grant or a refusal covers both spellings.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_canonical(),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// IPv4 ranges no plugin reaches without an explicit grant.
const SPECIAL_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network", unspecified
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // CGNAT shared address space
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local (cloud metadata)
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, and 255.255.255.255 broadcast
];

/// IPv6 ranges no plugin reaches without an explicit grant (the forms that
/// embed an IPv4 address are judged by that address, see [`is_special`]).
const SPECIAL_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 128), // unspecified
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1), 128), // loopback
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // NAT64 local use
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64), // discard
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF protocol assignments, Teredo
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7), // unique local
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), // link-local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10), // site-local (deprecated)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8), // multicast
];

fn in_v4(ip: Ipv4Addr, table: &[(Ipv4Addr, u8)]) -> bool {
    table.iter().any(|&(net, len)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        u32::from(ip) & mask == u32::from(net) & mask
    })
}

fn in_v6(ip: Ipv6Addr, table: &[(Ipv6Addr, u8)]) -> bool {
    table.iter().any(|&(net, len)| {
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        u128::from(ip) & mask == u128::from(net) & mask
    })
}

/// Whether `ip` is an address a plugin may not reach unless the admin
/// grants it explicitly: loopback, private, link-local, unique-local,
/// CGNAT, unspecified, multicast, broadcast, documentation, benchmarking or
/// reserved — in IPv4 or IPv6, including the IPv6 forms that carry an IPv4
/// address (mapped `::ffff:0:0/96`, compatible `::/96`, NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`), which are judged by that address.
pub fn is_special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => in_v4(v4, SPECIAL_V4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let low_v4 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
            if bits >> 32 == 0xffff || bits >> 32 == 0 {
                // IPv4-mapped and IPv4-compatible (`::` and `::1` included).
                return bits <= 1 || in_v4(low_v4, SPECIAL_V4);
            }
            if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
                return in_v4(low_v4, SPECIAL_V4);
            }
            if bits >> 112 == 0x2002 {
                let embedded = Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32);
                return in_v4(embedded, SPECIAL_V4);
            }
            in_v6(v6, SPECIAL_V6)
        }
    }
}

/// Resolves host names to addresses (the system resolver by default; tests
/// substitute their own).
pub trait Resolve: Send + Sync + 'static {
    /// The addresses of `host`, with `port` filled in.
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>>;
}

/// The operating system's resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// The outbound client: checks a request against an allow-list, resolves
/// and checks its addresses, and sends it pinned to them.
#[derive(Clone)]
pub struct HttpClient {
    resolver: Arc<dyn Resolve>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

fn transport(error: &reqwest::Error) -> HttpError {
    if error.is_timeout() {
        HttpError::Timeout
    } else {
        HttpError::Transport(error.to_string())
    }
}

impl HttpClient {
    /// A client using the system resolver.
    pub fn new() -> Self {
        Self::with_resolver(Arc::new(SystemResolver))
    }

    /// A client resolving names with `resolver`.
    pub fn with_resolver(resolver: Arc<dyn Resolve>) -> Self {
        Self { resolver }
    }

    /// Sends `request` if `allow` lets it through (see the module docs),
    /// all of it within `timeout`.
    ///
    /// # Errors
    ///
    /// [`HttpError::Denied`] for a target off the list, an address that is
    /// not public and not granted, or a forbidden header;
    /// [`HttpError::InvalidRequest`] for a malformed request;
    /// [`HttpError::Timeout`], [`HttpError::Transport`] and
    /// [`HttpError::TooLarge`] as their names say.
    pub async fn fetch(
        &self,
        allow: &[HostPattern],
        request: HttpRequest,
        timeout: Duration,
    ) -> Result<HttpResponse, HttpError> {
        tokio::time::timeout(timeout, self.checked_fetch(allow, request, timeout))
            .await
            .map_err(|_| HttpError::Timeout)?
    }

    async fn checked_fetch(
        &self,
        allow: &[HostPattern],
        request: HttpRequest,
        timeout: Duration,
    ) -> Result<HttpResponse, HttpError> {
        let url = url::Url::parse(&request.url)
            .map_err(|e| HttpError::InvalidRequest(format!("bad URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpError::InvalidRequest(
                "only http and https URLs are allowed".into(),
            ));
        }
        if let Some(KeyValue { key, .. }) = request.headers.iter().find(|h| {
            let name = h.key.to_ascii_lowercase();
            name.starts_with("proxy-") || FORBIDDEN_HEADERS.contains(&name.as_str())
        }) {
            return Err(HttpError::Denied(format!(
                "plugins may not set the {key:?} header (Host, Proxy-*, Content-Length and hop-by-hop headers are the host's)"
            )));
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        if !allow.iter().any(|p| p.allows(&url)) {
            let target = match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            };
            return Err(HttpError::Denied(format!(
                "{target} is not on this plugin's allow-list"
            )));
        }
        if request.body.len() > MAX_REQUEST_BYTES {
            return Err(HttpError::InvalidRequest(format!(
                "request bodies are at most {MAX_REQUEST_BYTES} bytes"
            )));
        }
        let name = match url.host() {
            Some(url::Host::Domain(name)) => Some(name.to_owned()),
            _ => None,
        };
        let addrs: Vec<SocketAddr> = match (url.host(), &name) {
            (Some(url::Host::Ipv4(ip)), _) => vec![SocketAddr::new(ip.into(), port)],
            (Some(url::Host::Ipv6(ip)), _) => vec![SocketAddr::new(ip.into(), port)],
            (_, Some(name)) => self
                .resolver
                .resolve(name, port)
                .await
                .map_err(|e| HttpError::Transport(format!("resolving {name}: {e}")))?,
            _ => return Err(HttpError::InvalidRequest("the URL has no host".into())),
        };
        if addrs.is_empty() {
            return Err(HttpError::Transport(format!("{host} has no address")));
        }
        for addr in &addrs {
            let ip = addr.ip();
            if is_special(ip) && !allow.iter().any(|p| p.grants_address(&url, ip)) {
                return Err(HttpError::Denied(format!(
                    "{host} resolves to {ip}, a loopback, private, link-local or otherwise non-public address; \
                     an admin must grant that address or its range explicitly"
                )));
            }
        }
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(0)
            .user_agent(concat!("ctrl-alt-play/", env!("CARGO_PKG_VERSION")));
        if let Some(name) = &name {
            // Pin the checked addresses: the connector uses these and does
            // not resolve the name again.
            client = client.resolve_to_addrs(name, &addrs);
        }
        let client = client
            .build()
            .map_err(|e| HttpError::Transport(format!("building the client: {e}")))?;
        let method = match request.method {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Head => reqwest::Method::HEAD,
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Patch => reqwest::Method::PATCH,
            HttpMethod::Delete => reqwest::Method::DELETE,
        };
        let mut builder = client.request(method, url).timeout(timeout);
        for KeyValue { key, value } in request.headers {
            builder = builder.header(key, value);
        }
        let mut response = builder
            .body(request.body)
            .send()
            .await
            .map_err(|e| transport(&e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.as_str().to_string(),
                value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(&e))? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// `http.fetch`, bounded by the call's deadline; denials are logged with
/// the plugin id.
pub(crate) async fn fetch(
    state: &mut PluginState,
    request: HttpRequest,
) -> Result<HttpResponse, HttpError> {
    let remaining = state
        .deadline
        .saturating_duration_since(std::time::Instant::now());
    let timeout = request
        .timeout_ms
        .map(|ms| Duration::from_millis(ms.into()).min(remaining))
        .unwrap_or(remaining);
    let fetch = state
        .caps
        .services
        .http
        .fetch(&state.caps.http_allow, request, timeout);
    let result = tokio::time::timeout_at(state.deadline.into(), fetch)
        .await
        .unwrap_or(Err(HttpError::Timeout));
    if let Err(HttpError::Denied(why)) = &result {
        tracing::warn!(plugin = %state.caps.plugin_id, %why, "http request denied");
    }
    result
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn allows(pattern: &str, url: &str) -> bool {
        HostPattern::parse(pattern)
            .expect("pattern")
            .allows(&url::Url::parse(url).expect("url"))
    }

    fn patterns(entries: &[&str]) -> Vec<HostPattern> {
        entries
            .iter()
            .map(|e| HostPattern::parse(e).expect("pattern"))
            .collect()
    }

    fn get(url: &str, headers: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            method: HttpMethod::Get,
            url: url.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| KeyValue {
                    key: (*k).to_owned(),
                    value: (*v).to_owned(),
                })
                .collect(),
            body: Vec::new(),
            timeout_ms: None,
        }
    }

    /// A resolver answering from a fixed table (and nothing else).
    struct TableResolver(HashMap<&'static str, Vec<IpAddr>>);

    impl Resolve for TableResolver {
        fn resolve<'a>(
            &'a self,
            host: &'a str,
            port: u16,
        ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>> {
            let found = self.0.get(host).map(|ips| {
                ips.iter()
                    .map(|ip| SocketAddr::new(*ip, port))
                    .collect::<Vec<_>>()
            });
            Box::pin(async move {
                found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "unknown"))
            })
        }
    }

    fn resolving(table: &[(&'static str, &str)]) -> HttpClient {
        let mut map: HashMap<&'static str, Vec<IpAddr>> = HashMap::new();
        for (name, ip) in table {
            map.entry(name).or_default().push(ip.parse().expect("ip"));
        }
        HttpClient::with_resolver(Arc::new(TableResolver(map)))
    }

    /// A loopback HTTP server answering every request with `reply`; the
    /// request heads it received are collected.
    async fn server(reply: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                log.lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&head).into_owned());
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        (port, seen)
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello";

    fn denied(result: &Result<HttpResponse, HttpError>) -> &str {
        match result {
            Err(HttpError::Denied(why)) => why,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn matches_hosts_and_ports_exactly() {
        assert!(allows("discord.com", "https://discord.com/api/webhooks/1"));
        assert!(allows("Discord.com", "https://DISCORD.com/"));
        assert!(!allows("discord.com", "https://discord.com:8443/"));
        assert!(!allows("discord.com", "https://evil-discord.com/"));
        assert!(!allows("discord.com", "https://discord.com.evil.net/"));
        assert!(allows("127.0.0.1:*", "http://127.0.0.1:4000/hook"));
        assert!(allows("127.0.0.1:8080", "http://127.0.0.1:8080/"));
        assert!(!allows("127.0.0.1:8080", "http://127.0.0.1:8081/"));
    }

    #[test]
    fn ranges_and_bracketed_ipv6_entries_match_the_addresses_inside_them() {
        assert!(allows("10.0.0.0/8:*", "http://10.1.2.3:9000/"));
        assert!(!allows("10.0.0.0/8:*", "http://11.1.2.3:9000/"));
        assert!(allows("10.0.0.0/8", "http://10.1.2.3/"));
        assert!(!allows("10.0.0.0/8", "http://10.1.2.3:81/"));
        assert!(allows("[::1]:*", "http://[::1]:8080/"));
        assert!(allows("[fd00::/8]:443", "https://[fd12::1]/"));
        assert!(!allows("[fd00::/8]:443", "https://[fe80::1]/"));
        // An IPv4 grant covers the IPv4-mapped spelling of the same address.
        assert!(allows("127.0.0.1:*", "http://[::ffff:127.0.0.1]:80/"));
        // A name entry never matches an address, nor a range a name.
        assert!(!allows("localhost:*", "http://127.0.0.1:80/"));
        assert!(!allows("127.0.0.0/8:*", "http://localhost:80/"));
    }

    #[test]
    fn rejects_patterns_with_a_scheme_or_path() {
        assert!(HostPattern::parse("https://discord.com").is_err());
        assert!(HostPattern::parse("discord.com/api").is_err());
        assert!(HostPattern::parse("host:notaport").is_err());
        assert!(HostPattern::parse("").is_err());
        assert!(HostPattern::parse("::1").is_err(), "IPv6 needs brackets");
        assert!(HostPattern::parse("[::1").is_err());
        assert!(HostPattern::parse("[example.com]:80").is_err());
        assert!(HostPattern::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn every_non_public_address_and_its_ipv6_spellings_are_special() {
        for special in [
            "0.0.0.0",
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(is_special(special.parse().expect(special)), "{special}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "169.253.255.255",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!is_special(public.parse().expect(public)), "{public}");
        }
    }

    #[tokio::test]
    async fn a_granted_name_that_resolves_to_loopback_is_refused() {
        let (port, seen) = server(OK).await;
        let result = HttpClient::new()
            .fetch(
                &patterns(&["localhost:*"]),
                get(&format!("http://localhost:{port}/"), &[]),
                Duration::from_secs(5),
            )
            .await;
        assert!(denied(&result).contains("127.0.0.1"), "{result:?}");
        assert!(seen.lock().expect("lock").is_empty(), "nothing was sent");
    }

    #[tokio::test]
    async fn a_granted_name_that_resolves_to_the_metadata_address_is_refused() {
        let client = resolving(&[("metadata.example", "169.254.169.254")]);
        let result = client
            .fetch(
                &patterns(&["metadata.example"]),
                get("http://metadata.example/latest/meta-data/", &[]),
                Duration::from_secs(5),
            )
            .await;
        assert!(denied(&result).contains("169.254.169.254"), "{result:?}");
        let literal = client
            .fetch(
                &patterns(&["metadata.example"]),
                get("http://169.254.169.254/latest/meta-data/", &[]),
                Duration::from_secs(5),
            )
            .await;
        assert!(denied(&literal).contains("allow-list"), "{literal:?}");
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_an_ipv4_mapped_loopback_address_is_refused() {
        let (port, seen) = server(OK).await;
        let client = resolving(&[("mapped.example", "::ffff:127.0.0.1")]);
        let result = client
            .fetch(
                &patterns(&["mapped.example:*"]),
                get(&format!("http://mapped.example:{port}/"), &[]),
                Duration::from_secs(5),
            )
            .await;
        assert!(denied(&result).contains("::ffff:127.0.0.1"), "{result:?}");
        assert!(seen.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn one_non_public_address_among_public_ones_refuses_the_name() {
        let client = resolving(&[
            ("split.example", "93.184.215.14"),
            ("split.example", "10.0.0.7"),
        ]);
        let result = client
            .fetch(
                &patterns(&["split.example"]),
                get("http://split.example/", &[]),
                Duration::from_secs(5),
            )
            .await;
        assert!(denied(&result).contains("10.0.0.7"), "{result:?}");
    }

    #[tokio::test]
    async fn an_explicit_grant_of_the_loopback_address_reaches_a_loopback_server() {
        let (port, seen) = server(OK).await;
        let response = HttpClient::new()
            .fetch(
                &patterns(&["127.0.0.1:*"]),
                get(&format!("http://127.0.0.1:{port}/hook"), &[]),
                Duration::from_secs(5),
            )
            .await
            .expect("an explicit grant reaches the server");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"hello");
        assert_eq!(seen.lock().expect("lock").len(), 1);
    }

    #[tokio::test]
    async fn a_range_grant_lets_a_name_reach_the_checked_address_it_is_pinned_to() {
        let (port, seen) = server(OK).await;
        // `game.lan` exists only in this resolver: the request can only
        // reach the server through the pinned, checked address.
        let client = resolving(&[("game.lan", "127.0.0.1")]);
        let response = client
            .fetch(
                &patterns(&["game.lan:*", "127.0.0.0/8:*"]),
                get(&format!("http://game.lan:{port}/"), &[]),
                Duration::from_secs(5),
            )
            .await
            .expect("the range is granted");
        assert_eq!(response.status, 200);
        let heads = seen.lock().expect("lock").clone();
        assert!(
            heads[0]
                .to_ascii_lowercase()
                .contains(&format!("host: game.lan:{port}")),
            "{heads:?}"
        );
        let other_port = client
            .fetch(
                &patterns(&["game.lan:*", "127.0.0.0/8:1"]),
                get(&format!("http://game.lan:{port}/"), &[]),
                Duration::from_secs(5),
            )
            .await;
        denied(&other_port);
    }

    #[tokio::test]
    async fn plugins_may_not_set_host_proxy_or_hop_by_hop_headers() {
        let (port, seen) = server(OK).await;
        let allow = patterns(&["127.0.0.1:*"]);
        for header in [
            "Host",
            "host",
            "Proxy-Authorization",
            "Proxy-Connection",
            "proxy-anything",
            "Connection",
            "Keep-Alive",
            "TE",
            "Trailer",
            "Transfer-Encoding",
            "Upgrade",
            "Content-Length",
        ] {
            let result = HttpClient::new()
                .fetch(
                    &allow,
                    get(&format!("http://127.0.0.1:{port}/"), &[(header, "x")]),
                    Duration::from_secs(5),
                )
                .await;
            assert!(denied(&result).contains(header), "{header}: {result:?}");
        }
        assert!(seen.lock().expect("lock").is_empty(), "nothing was sent");
        let fine = HttpClient::new()
            .fetch(
                &allow,
                get(
                    &format!("http://127.0.0.1:{port}/"),
                    &[("Authorization", "Bot x"), ("Content-Type", "text/plain")],
                ),
                Duration::from_secs(5),
            )
            .await
            .expect("ordinary headers pass");
        assert_eq!(fine.status, 200);
    }

    #[tokio::test]
    async fn a_redirect_is_handed_to_the_plugin_and_never_followed() {
        let (port, seen) = server(
            "HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/latest/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        )
        .await;
        let response = HttpClient::new()
            .fetch(
                &patterns(&["127.0.0.1:*"]),
                get(&format!("http://127.0.0.1:{port}/"), &[]),
                Duration::from_secs(5),
            )
            .await
            .expect("the 3xx itself is the answer");
        assert_eq!(response.status, 302);
        assert_eq!(seen.lock().expect("lock").len(), 1);
    }
}
