//! Who the client is on the network, and the per-address request limits.
//!
//! # The client address
//!
//! [`assign`] runs early and puts a [`ClientAddr`] into every request's
//! extensions; [`crate::http::auth::client_ip`] reads it for rate limits and
//! audit records. It is the TCP peer unless the peer is one of the
//! configured trusted proxies ([`crate::config::Config::trusted_proxies`]);
//! then `X-Forwarded-For` is read from the right, skipping trusted
//! addresses, and the first untrusted address is the client (the right-most
//! untrusted one: whatever a client wrote further left is its own claim, so
//! it is never believed). A malformed entry ends the walk at the last
//! trusted hop. With no trusted proxies the header is ignored entirely.
//!
//! # Request limits
//!
//! [`limit`] takes a token from the client address's bucket of its route
//! class before the handler runs and answers `429 rate-limited` with
//! `Retry-After` when it is empty:
//!
//! | Class | Requests | Rule |
//! | --- | --- | --- |
//! | auth | `POST`, `PUT`, `PATCH`, `DELETE` under `/api/v1/auth/` and `/api/v1/account/` (logins, refreshes, second factors, passwords, API keys, TOTP) | `auth-per-ip` |
//! | writes | every other `POST`, `PUT`, `PATCH`, `DELETE` | `writes-per-ip` |
//!
//! Reads are not limited here: they are cheap, cached and what dashboards
//! poll. The login, second-factor and refresh routes keep their own, stricter
//! rules per address and per account on top ([`crate::identity::rate_limit`]).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;

use super::AppState;

/// The client's address as [`assign`] decided it; `None` when the
/// connection has no peer address (in-process calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|net| net.contains(&ip))
}

fn parse_hop(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// The client address for a connection from `peer` carrying `headers`,
/// believing `X-Forwarded-For` only from `proxies` (see the module docs).
pub fn resolve(peer: Option<IpAddr>, headers: &HeaderMap, proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    if !trusted(peer, proxies) {
        return Some(peer);
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("").split(','))
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            break;
        };
        client = ip;
        if !trusted(ip, proxies) {
            break;
        }
    }
    Some(client)
}

/// Middleware: decides the [`ClientAddr`] of the request.
pub async fn assign(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let addr = resolve(peer, request.headers(), &state.config().trusted_proxies);
    request.extensions_mut().insert(ClientAddr(addr));
    next.run(request).await
}

/// The classes of [`limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Authentication and account routes.
    Auth,
    /// Any other mutating request.
    Writes,
}

impl RouteClass {
    /// The class of a request, or `None` for one that is not limited here.
    pub fn of(method: &Method, path: &str) -> Option<RouteClass> {
        if !matches!(
            *method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        ) {
            return None;
        }
        if path.starts_with("/api/v1/auth/") || path.starts_with("/api/v1/account/") {
            Some(RouteClass::Auth)
        } else {
            Some(RouteClass::Writes)
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            RouteClass::Auth => "auth",
            RouteClass::Writes => "writes",
        }
    }
}

/// Middleware: the per-address request limits of the module docs.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(class) = RouteClass::of(request.method(), request.uri().path()) {
        let limits = &state.config().rate_limits;
        let rule = match class {
            RouteClass::Auth => limits.auth_per_ip,
            RouteClass::Writes => limits.writes_per_ip,
        };
        let addr = request
            .extensions()
            .get::<ClientAddr>()
            .and_then(|ClientAddr(ip)| *ip)
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let key = format!("{}:{addr}", class.as_str());
        if let Err(wait) = state.request_limiter().check(&key, rule) {
            return super::error::ApiError::rate_limited(wait).into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append("x-forwarded-for", value.parse().expect("a header value"));
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("a CIDR")).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let forged = headers(&["198.51.100.7"]);
        assert_eq!(
            resolve(Some(ip("203.0.113.9")), &forged, &nets(&["10.0.0.0/8"])),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            resolve(Some(ip("203.0.113.9")), &forged, &[]),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let proxies = nets(&["10.0.0.0/8"]);
        // The client claims 1.1.1.1; the outer proxy saw 198.51.100.7.
        let chain = headers(&["1.1.1.1, 198.51.100.7", "10.0.0.3"]);
        assert_eq!(
            resolve(Some(ip("10.0.0.2")), &chain, &proxies),
            Some(ip("198.51.100.7"))
        );
        // Only proxies in the chain: the left-most is the client.
        let internal = headers(&["10.1.1.1, 10.0.0.3"]);
        assert_eq!(
            resolve(Some(ip("10.0.0.2")), &internal, &proxies),
            Some(ip("10.1.1.1"))
        );
        // No header: the proxy itself.
        assert_eq!(
            resolve(Some(ip("10.0.0.2")), &HeaderMap::new(), &proxies),
            Some(ip("10.0.0.2"))
        );
        // A malformed hop ends the walk at the last trusted one.
        let garbage = headers(&["198.51.100.7, not-an-ip, 10.0.0.3"]);
        assert_eq!(
            resolve(Some(ip("10.0.0.2")), &garbage, &proxies),
            Some(ip("10.0.0.3"))
        );
        // Mapped IPv4 peers match IPv4 ranges.
        assert_eq!(
            resolve(
                Some(ip("::ffff:10.0.0.2")),
                &headers(&["[2001:db8::1]:443"]),
                &proxies
            ),
            Some(ip("2001:db8::1"))
        );
    }

    #[test]
    fn classes_cover_account_and_mutating_routes_only() {
        assert_eq!(
            RouteClass::of(&Method::POST, "/api/v1/auth/login"),
            Some(RouteClass::Auth)
        );
        assert_eq!(
            RouteClass::of(&Method::DELETE, "/api/v1/account/api-keys/k"),
            Some(RouteClass::Auth)
        );
        assert_eq!(RouteClass::of(&Method::GET, "/api/v1/auth/me"), None);
        assert_eq!(
            RouteClass::of(&Method::DELETE, "/api/v1/servers/x"),
            Some(RouteClass::Writes)
        );
        assert_eq!(
            RouteClass::of(&Method::PATCH, "/api/v1/users/x"),
            Some(RouteClass::Writes)
        );
        assert_eq!(RouteClass::of(&Method::GET, "/api/v1/servers"), None);
    }
}
