//! `http`: outbound HTTP limited to the hosts a manifest allow-lists.
//!
//! Redirects are not followed (a redirect could leave the allow-list); the
//! plugin sees the 3xx and decides. Response bodies are read in chunks and
//! abandoned past [`MAX_RESPONSE_BYTES`], and every request is bounded by the
//! call's own deadline.

use std::time::Duration;

use crate::bindings::v0_1::ctrl_alt_play::plugin::http::{
    Host, HttpError, Method, Request, Response,
};
use crate::bindings::v0_1::ctrl_alt_play::plugin::types::KeyValue;
use crate::plugin::PluginState;

/// Largest request body, in bytes.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Largest response body, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// One allow-list entry: `host`, `host:port` or `host:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: String,
    /// `None` means the scheme's default port; `Some(None)` any port.
    port: Option<Option<u16>>,
}

impl HostPattern {
    /// Parses an allow-list entry, explaining what is wrong.
    pub fn parse(entry: &str) -> Result<Self, String> {
        if entry.contains("://") || entry.contains('/') {
            return Err(format!(
                "{entry:?} must be a host or host:port, without scheme or path"
            ));
        }
        let (host, port) = match entry.rsplit_once(':') {
            Some((h, "*")) => (h, Some(None)),
            Some((h, p)) => (
                h,
                Some(Some(p.parse::<u16>().map_err(|_| {
                    format!("{entry:?} has an invalid port {p:?}")
                })?)),
            ),
            None => (entry, None),
        };
        let valid_host = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !valid_host {
            return Err(format!(
                "{entry:?} is not a valid host name or IPv4 address"
            ));
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether `url` targets this entry.
    pub fn allows(&self, url: &url::Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        if !host.eq_ignore_ascii_case(&self.host) {
            return false;
        }
        match self.port {
            Some(None) => true,
            Some(Some(p)) => url.port_or_known_default() == Some(p),
            None => url.port().is_none(),
        }
    }
}

/// The shared outbound client.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A client that never follows redirects.
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ctrl-alt-play/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { client }
    }

    async fn fetch(
        &self,
        request: Request,
        url: url::Url,
        timeout: Duration,
    ) -> Result<Response, HttpError> {
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self.client.request(method, url).timeout(timeout);
        for KeyValue { key, value } in request.headers {
            builder = builder.header(key, value);
        }
        let send = async {
            let mut response = builder.body(request.body).send().await.map_err(|e| {
                if e.is_timeout() {
                    HttpError::Timeout
                } else {
                    HttpError::Transport(e.to_string())
                }
            })?;
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
            while let Some(chunk) = response.chunk().await.map_err(|e| {
                if e.is_timeout() {
                    HttpError::Timeout
                } else {
                    HttpError::Transport(e.to_string())
                }
            })? {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(HttpError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Response {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(timeout, send)
            .await
            .map_err(|_| HttpError::Timeout)?
    }
}

impl Host for PluginState {
    async fn fetch(&mut self, request: Request) -> Result<Response, HttpError> {
        let url = url::Url::parse(&request.url)
            .map_err(|e| HttpError::InvalidRequest(format!("bad URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpError::InvalidRequest(
                "only http and https URLs are allowed".into(),
            ));
        }
        if !self.caps.http_allow.iter().any(|p| p.allows(&url)) {
            let host = url.host_str().unwrap_or_default();
            let target = match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            };
            tracing::warn!(plugin = %self.caps.plugin_id, %target, "http request to a host not on the allow-list");
            return Err(HttpError::Denied(format!(
                "{target} is not on this plugin's allow-list"
            )));
        }
        if request.body.len() > MAX_REQUEST_BYTES {
            return Err(HttpError::InvalidRequest(format!(
                "request bodies are at most {MAX_REQUEST_BYTES} bytes"
            )));
        }
        let remaining = self
            .deadline
            .saturating_duration_since(std::time::Instant::now());
        let timeout = request
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into()).min(remaining))
            .unwrap_or(remaining);
        let fetch = self.caps.services.http.fetch(request, url, timeout);
        tokio::time::timeout_at(self.deadline.into(), fetch)
            .await
            .unwrap_or(Err(HttpError::Timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(pattern: &str, url: &str) -> bool {
        HostPattern::parse(pattern)
            .expect("pattern")
            .allows(&url::Url::parse(url).expect("url"))
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
    fn rejects_patterns_with_a_scheme_or_path() {
        assert!(HostPattern::parse("https://discord.com").is_err());
        assert!(HostPattern::parse("discord.com/api").is_err());
        assert!(HostPattern::parse("host:notaport").is_err());
        assert!(HostPattern::parse("").is_err());
    }
}
