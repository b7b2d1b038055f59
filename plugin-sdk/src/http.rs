//! Outbound HTTP (capability `http = { allowed-hosts = [...] }`).
//!
//! The host performs the request; it refuses hosts that are not on the
//! plugin's allow-list ([`HttpError::Denied`]), caps the timeout and the
//! response size. An entry is a host name (`discord.com`, `discord.com:8443`,
//! `discord.com:*`), an IP address (`127.0.0.1:*`, `[::1]:8080`) or a CIDR
//! range (`10.0.0.0/8:*`, `[fd00::/8]:443`). A host name must resolve to
//! public addresses only: loopback, private, link-local and other
//! non-public addresses are refused unless an address or range entry names
//! them. Redirects are not followed (the plugin sees the 3xx), and the
//! `Host`, `Proxy-*`, `Content-Length` and hop-by-hop headers are the
//! host's: setting one is refused. Build requests with [`get`], [`post`], ... and send them
//! with [`RequestBuilder::send`]:
//!
//! ```no_run
//! use cap_plugin_sdk::http;
//!
//! # fn main() -> Result<(), cap_plugin_sdk::Error> {
//! let response = http::post("https://discord.com/api/webhooks/1/abc")
//!     .json(&serde_json::json!({ "content": "Server started" }))?
//!     .timeout_ms(5_000)
//!     .send()?;
//! if !response.is_success() {
//!     cap_plugin_sdk::log::warn!("Discord answered {}", response.status);
//! }
//! # Ok(())
//! # }
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::bindings::ctrl_alt_play::plugin::http as host;
use crate::types::KeyValue;

pub use host::{HttpError, Method, Request, Response};

/// Sends a request as it is.
///
/// ```no_run
/// use cap_plugin_sdk::http::{self, Method, Request};
///
/// let request = Request {
///     method: Method::Get,
///     url: "https://example.com/".into(),
///     headers: Vec::new(),
///     body: Vec::new(),
///     timeout_ms: None,
/// };
/// let response = http::fetch(&request)?;
/// # Ok::<(), http::HttpError>(())
/// ```
pub fn fetch(request: &Request) -> Result<Response, HttpError> {
    host::fetch(request)
}

/// A `GET` request to `url`.
///
/// ```no_run
/// let body = cap_plugin_sdk::http::get("https://example.com/status").send()?.text();
/// # Ok::<(), cap_plugin_sdk::http::HttpError>(())
/// ```
pub fn get(url: impl Into<String>) -> RequestBuilder {
    RequestBuilder::new(Method::Get, url)
}

/// A `POST` request to `url`.
///
/// ```
/// let request = cap_plugin_sdk::http::post("https://example.com/").body("hi").build();
/// assert_eq!(request.body, b"hi");
/// ```
pub fn post(url: impl Into<String>) -> RequestBuilder {
    RequestBuilder::new(Method::Post, url)
}

/// A `PUT` request to `url`.
///
/// ```
/// let request = cap_plugin_sdk::http::put("https://example.com/item/1").build();
/// assert_eq!(request.method, cap_plugin_sdk::http::Method::Put);
/// ```
pub fn put(url: impl Into<String>) -> RequestBuilder {
    RequestBuilder::new(Method::Put, url)
}

/// A `PATCH` request to `url`.
///
/// ```
/// let request = cap_plugin_sdk::http::patch("https://example.com/item/1").build();
/// assert_eq!(request.method, cap_plugin_sdk::http::Method::Patch);
/// ```
pub fn patch(url: impl Into<String>) -> RequestBuilder {
    RequestBuilder::new(Method::Patch, url)
}

/// A `DELETE` request to `url`.
///
/// ```
/// let request = cap_plugin_sdk::http::delete("https://example.com/item/1").build();
/// assert_eq!(request.method, cap_plugin_sdk::http::Method::Delete);
/// ```
pub fn delete(url: impl Into<String>) -> RequestBuilder {
    RequestBuilder::new(Method::Delete, url)
}

/// Builds a [`Request`] step by step.
///
/// ```
/// use cap_plugin_sdk::http::{Method, RequestBuilder};
///
/// let request = RequestBuilder::new(Method::Post, "https://example.com/hook")
///     .header("X-Token", "secret")
///     .json(&serde_json::json!({ "ok": true }))?
///     .timeout_ms(2_000)
///     .build();
/// assert_eq!(request.body, br#"{"ok":true}"#);
/// assert_eq!(request.timeout_ms, Some(2_000));
/// assert_eq!(request.headers.len(), 2);
/// # Ok::<(), cap_plugin_sdk::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a request builder does nothing until it is sent or built"]
pub struct RequestBuilder {
    request: Request,
}

impl RequestBuilder {
    /// A request with no headers, an empty body and the host's default
    /// timeout.
    ///
    /// ```
    /// use cap_plugin_sdk::http::{Method, RequestBuilder};
    ///
    /// let request = RequestBuilder::new(Method::Head, "https://example.com/").build();
    /// assert!(request.headers.is_empty());
    /// ```
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            request: Request {
                method,
                url: url.into(),
                headers: Vec::new(),
                body: Vec::new(),
                timeout_ms: None,
            },
        }
    }

    /// Adds a header (repeated names are sent repeatedly).
    ///
    /// ```
    /// let request = cap_plugin_sdk::http::get("https://example.com/")
    ///     .header("Accept", "application/json")
    ///     .build();
    /// assert_eq!(request.headers[0].value, "application/json");
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.request.headers.push(KeyValue::new(name, value));
        self
    }

    /// Sets the body.
    ///
    /// ```
    /// let request = cap_plugin_sdk::http::post("https://example.com/").body(vec![1, 2]).build();
    /// assert_eq!(request.body, [1, 2]);
    /// ```
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.request.body = body.into();
        self
    }

    /// Sets a JSON body and the `Content-Type: application/json` header.
    ///
    /// ```
    /// let request = cap_plugin_sdk::http::post("https://example.com/")
    ///     .json(&[1, 2, 3])?
    ///     .build();
    /// assert_eq!(request.headers[0].key, "Content-Type");
    /// # Ok::<(), cap_plugin_sdk::Error>(())
    /// ```
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, Error> {
        let body = serde_json::to_vec(value)?;
        Ok(self.header("Content-Type", "application/json").body(body))
    }

    /// Asks for a timeout in milliseconds (the host may cap it further).
    ///
    /// ```
    /// let request = cap_plugin_sdk::http::get("https://example.com/").timeout_ms(500).build();
    /// assert_eq!(request.timeout_ms, Some(500));
    /// ```
    pub fn timeout_ms(mut self, timeout_ms: u32) -> Self {
        self.request.timeout_ms = Some(timeout_ms);
        self
    }

    /// The finished request, for [`fetch`] or inspection in tests.
    ///
    /// ```
    /// let request = cap_plugin_sdk::http::get("https://example.com/").build();
    /// assert_eq!(request.url, "https://example.com/");
    /// ```
    pub fn build(self) -> Request {
        self.request
    }

    /// Sends the request through the host.
    ///
    /// ```no_run
    /// let response = cap_plugin_sdk::http::get("https://example.com/").send()?;
    /// # Ok::<(), cap_plugin_sdk::http::HttpError>(())
    /// ```
    pub fn send(self) -> Result<Response, HttpError> {
        host::fetch(&self.request)
    }
}

impl Response {
    /// Whether the status is 2xx.
    ///
    /// ```
    /// use cap_plugin_sdk::http::Response;
    ///
    /// let response = Response { status: 204, headers: Vec::new(), body: Vec::new() };
    /// assert!(response.is_success());
    /// ```
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The value of the first header named `name`, compared
    /// case-insensitively.
    ///
    /// ```
    /// use cap_plugin_sdk::http::Response;
    /// use cap_plugin_sdk::types::KeyValue;
    ///
    /// let response = Response {
    ///     status: 429,
    ///     headers: vec![KeyValue::new("Retry-After", "3")],
    ///     body: Vec::new(),
    /// };
    /// assert_eq!(response.header("retry-after"), Some("3"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|header| header.key.eq_ignore_ascii_case(name))
            .map(|header| header.value.as_str())
    }

    /// The body as text, with invalid UTF-8 replaced by U+FFFD.
    ///
    /// ```
    /// use cap_plugin_sdk::http::Response;
    ///
    /// let response = Response { status: 200, headers: Vec::new(), body: b"ok".to_vec() };
    /// assert_eq!(response.text(), "ok");
    /// ```
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body decoded from JSON.
    ///
    /// ```
    /// use cap_plugin_sdk::http::Response;
    ///
    /// let response = Response { status: 200, headers: Vec::new(), body: b"[1,2]".to_vec() };
    /// let numbers: Vec<u8> = response.json()?;
    /// assert_eq!(numbers, [1, 2]);
    /// # Ok::<(), cap_plugin_sdk::Error>(())
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

/// A one-line description of an HTTP error, for logs and error messages.
///
/// ```
/// use cap_plugin_sdk::http::{HttpError, describe};
///
/// assert_eq!(describe(&HttpError::Timeout), "timed out");
/// assert_eq!(
///     describe(&HttpError::Denied("evil.example".into())),
///     "denied by the host: evil.example"
/// );
/// ```
pub fn describe(error: &HttpError) -> String {
    match error {
        HttpError::Denied(detail) => format!("denied by the host: {detail}"),
        HttpError::InvalidRequest(detail) => format!("invalid request: {detail}"),
        HttpError::Timeout => "timed out".to_owned(),
        HttpError::Transport(detail) => format!("transport error: {detail}"),
        HttpError::TooLarge => "response too large".to_owned(),
    }
}
