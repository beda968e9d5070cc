//! Request observation as one tower layer: a request id (taken from a sane `X-Request-Id` or
//! made up), a tracing span carrying it (and the container id, once known), a log line per
//! request, and the HTTP metrics by route and status.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::AppState;

/// The request's id, in the request's extensions for handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn new_request_id() -> String {
    // Unique enough per process and across restarts: start time plus a counter.
    static EPOCH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let epoch =
        *EPOCH.get_or_init(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0));
    format!("{:x}-{:06x}", epoch & 0xffff_ffff_ffff, COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn accepted_request_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)))
        .then(|| s.to_string())
}

/// Tower layer (via `axum::middleware::from_fn_with_state`).
pub async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request.headers().get("x-request-id").and_then(accepted_request_id).unwrap_or_else(new_request_id);
    // Matched route templates only: raw paths would make unbounded label values.
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let method = request.method().clone();
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        route = %route,
        container_id = tracing::field::Empty,
    );
    // Counts and logs requests whose client went away (the future is dropped mid-way) as 499.
    let mut unfinished = Unfinished { state: Some(state.clone()), route: route.clone(), span: span.clone(), started };
    let mut response = next.run(request).instrument(span.clone()).await;
    unfinished.state = None;
    let status = response.status();
    let elapsed = started.elapsed();
    span.in_scope(|| {
        tracing::info!(status = status.as_u16(), latency_ms = elapsed.as_secs_f64() * 1000.0, "request finished")
    });
    let metrics = state.metrics();
    metrics.inc("runner_http_requests_total", &[("route", &route), ("status", status.as_str())]);
    metrics.observe("runner_http_request_duration_seconds", &[("route", &route)], elapsed);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

struct Unfinished {
    state: Option<AppState>,
    route: String,
    span: tracing::Span,
    started: Instant,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let Some(state) = self.state.take() else {
            return;
        };
        let elapsed = self.started.elapsed();
        self.span.in_scope(|| {
            tracing::warn!(
                latency_ms = elapsed.as_secs_f64() * 1000.0,
                "request dropped before it finished (client went away)"
            )
        });
        state.metrics().inc("runner_http_requests_total", &[("route", &self.route), ("status", "499")]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_client_ids_are_checked() {
        assert_ne!(new_request_id(), new_request_id());
        assert_eq!(accepted_request_id(&HeaderValue::from_static("abc-123")), Some("abc-123".into()));
        assert_eq!(accepted_request_id(&HeaderValue::from_static("a b")), None);
    }
}
