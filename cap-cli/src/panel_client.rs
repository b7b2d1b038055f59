//! A running Panel's API over HTTP, as the `cap` commands that act on one
//! use it (`cap panel marketplace …`, `cap egg import`): where the Panel is
//! (`--panel`, `CAP_PANEL_URL`), who asks (`--token`, `CAP_PANEL_TOKEN`: an
//! API key or session token), and refusals printed from the Panel's problem
//! documents: the title and code, then the detail, then one line per field
//! problem, then a hint where `cap` knows what to do about the code.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

/// Where the Panel is and who asks: the flags of every command that talks
/// to a running Panel.
#[derive(Debug, Args)]
pub(crate) struct PanelConnection {
    /// The Panel's URL
    #[arg(
        long,
        value_name = "URL",
        env = "CAP_PANEL_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    panel: String,
    /// An admin's API key or session token (needs admin.plugins)
    #[arg(
        long,
        value_name = "TOKEN",
        env = "CAP_PANEL_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
}

impl PanelConnection {
    /// A client of the Panel whose calls each give up after `timeout`.
    ///
    /// # Errors
    ///
    /// No token was given.
    pub(crate) fn client(&self, timeout: Duration) -> anyhow::Result<PanelClient> {
        let token = self.token.clone().context(
            "the Panel needs an admin's token: pass --token or set CAP_PANEL_TOKEN (an API key with admin.plugins)",
        )?;
        Ok(PanelClient {
            base: self.panel.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .context("setting up HTTP")?,
        })
    }
}

/// The Panel's API over HTTP.
pub(crate) struct PanelClient {
    /// The Panel's URL, without a trailing slash.
    pub(crate) base: String,
    token: String,
    http: reqwest::Client,
}

impl PanelClient {
    /// Calls `path` (under `/api/v1`) with a JSON body, if any; the answer
    /// as JSON.
    ///
    /// # Errors
    ///
    /// The Panel cannot be reached, or refuses ([`refusal`]).
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.request(method, path, query)?;
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    /// Sends `bytes` as they are (`application/octet-stream`) to `path`.
    ///
    /// # Errors
    ///
    /// As for [`PanelClient::call`].
    pub(crate) async fn upload(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        bytes: Vec<u8>,
    ) -> anyhow::Result<Value> {
        let request = self
            .request(method, path, query)?
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes);
        self.send(request).await
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        let mut url = format!("{}/api/v1{path}", self.base);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&serde_urlencoded::to_string(query).context("encoding the query")?);
        }
        Ok(self.http.request(method, &url).bearer_auth(&self.token))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the Panel at {}", self.base))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .context("reading the Panel's answer")?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(value);
        }
        bail!("{}", refusal(status.as_u16(), &value))
    }
}

/// A problem document as one message: title (code): detail, plus any
/// field errors and a hint for the codes `cap` has one for.
pub(crate) fn refusal(status: u16, problem: &Value) -> String {
    let title = problem["title"].as_str().unwrap_or("refused");
    let code = problem["code"].as_str().unwrap_or("unknown");
    let mut message = format!("the Panel answered {status}: {title} ({code})");
    if let Some(detail) = problem["detail"].as_str() {
        message.push_str(":\n");
        message.push_str(detail);
    } else if let Some(text) = problem.as_str() {
        message.push_str(": ");
        message.push_str(text);
    }
    for error in problem["errors"].as_array().into_iter().flatten() {
        message.push_str(&format!(
            "\n  {}: {}",
            error["field"].as_str().unwrap_or("?"),
            error["message"].as_str().unwrap_or("?")
        ));
    }
    let hint = match code {
        "unauthenticated" => Some("pass an admin's API key with --token or CAP_PANEL_TOKEN"),
        "license-required" => {
            Some("buy it with `cap panel marketplace buy <id>`, pay, then install again")
        }
        "game-type-exists" => Some("pass --replace to replace it"),
        _ => None,
    };
    if let Some(hint) = hint {
        message.push_str("\nhint: ");
        message.push_str(hint);
    }
    message
}
