//! Prometheus metrics, served at `GET /metrics`.
//!
//! Off by default: the route answers `404` as if it did not exist. Turned
//! on with a token ([`crate::config::Config::metrics_token`]), it answers
//! only `Authorization: Bearer <token>`, compared in constant time, and
//! `401` to anyone else. Request counts by route and status tell an outsider
//! what the Panel is used for and when; they are for the operator's
//! scraper alone.
//!
//! Every request is counted in `http_requests_total` and timed in the
//! histogram `http_request_duration_seconds` (time to the response head),
//! labelled with `method`, `route` (the route *template*, such as
//! `/api/v1/settings/{name}`, or `unmatched`, so that labels stay few) and
//! `status`. `cap_panel_build_info{version}` is always 1.
//!
//! Each [`Metrics`] owns its own recorder instead of installing a
//! process-global one, so several Panels in one process (tests, `cap up`)
//! keep separate numbers. Code that records metrics uses the `metrics`
//! crate's macros inside [`Metrics::record`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::Label;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use super::AppState;

/// Histogram buckets for request latency, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// How often histogram samples are folded into buckets when nobody scrapes.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The content type of the Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A Panel's metrics registry. Cheap to clone; clones share the registry.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry holding only the build-info gauge.
    pub fn new() -> Metrics {
        let builder = PrometheusBuilder::new();
        let builder = match builder.set_buckets_for_metric(
            Matcher::Full("http_request_duration_seconds".to_owned()),
            &LATENCY_BUCKETS,
        ) {
            Ok(builder) => builder,
            // Only an empty bucket list is refused; ours is not empty.
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let metrics = Metrics {
            recorder: Arc::new(recorder),
            handle,
        };
        metrics.record(|| {
            metrics::gauge!("cap_panel_build_info", "version" => env!("CARGO_PKG_VERSION"))
                .set(1.0);
        });
        metrics
    }

    /// Runs `f` with this registry as the recorder for the `metrics`
    /// crate's macros.
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&*self.recorder, f)
    }

    /// Folds pending histogram samples into buckets. The Panel runs this
    /// every [`UPKEEP_INTERVAL`] and before each render.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The registry in the Prometheus text format.
    pub fn render(&self) -> String {
        self.upkeep();
        self.handle.render()
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: counts and times each request.
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method());
    let response = next.run(request).await;
    let elapsed = start.elapsed().as_secs_f64();
    let labels = vec![
        Label::new("method", method),
        Label::new("route", route),
        Label::new("status", response.status().as_u16().to_string()),
    ];
    metrics.record(|| {
        metrics::counter!("http_requests_total", labels.clone()).increment(1);
        metrics::histogram!("http_request_duration_seconds", labels).record(elapsed);
    });
    response
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "system",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Metrics in the Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "The metrics token is missing or wrong"),
        (status = 404, description = "Metrics are off"),
    )
)]
pub(super) async fn scrape(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, super::ApiError> {
    let Some(token) = &state.config().metrics_token else {
        return Err(super::ApiError::NotFound(
            "no route matches this path".into(),
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !token.matches(presented) {
        return Err(super::ApiError::Unauthenticated(
            "send the metrics token as a bearer token".into(),
        ));
    }
    Ok((
        [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
        state.metrics().render(),
    )
        .into_response())
}
