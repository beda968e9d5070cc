//! Admission control as tower layers (built with `axum::middleware::from_fn_with_state`):
//!
//! - [`rate_limit`]: a token bucket per client (auth identity, else client IP); 429 with
//!   `Retry-After` and the `RateLimit-*` headers when a bucket is empty.
//! - [`admit_task`]: at most `max_concurrent_tasks` tasks run at once; up to
//!   `max_queued_tasks` more wait (for at most `queue_timeout_ms`); beyond that, 503 with
//!   `Retry-After`.
//!
//! The request body limit (413) is axum's `DefaultBodyLimit`, applied in [`crate::app`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::Identity;
use crate::error::ApiError;
use crate::AppState;

/// Buckets kept before idle (full) ones are dropped.
const MAX_BUCKETS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// What a rate-limit check decided, with the numbers for the headers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until one request is allowed (0 when allowed now).
    pub retry_after_secs: u64,
}

/// Token buckets keyed by client.
#[derive(Debug)]
pub struct RateLimiter {
    enabled: bool,
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(enabled: bool, rate_per_second: f64, burst: u32) -> RateLimiter {
        RateLimiter { enabled, rate: rate_per_second, burst: f64::from(burst), buckets: Mutex::new(HashMap::new()) }
    }

    pub fn check(&self, key: &str) -> Option<Decision> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Option<Decision> {
        if !self.enabled {
            return None;
        }
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if !buckets.contains_key(key) {
            if buckets.len() >= MAX_BUCKETS {
                let (rate, burst) = (self.rate, self.burst);
                buckets.retain(|_, b| b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < burst);
            }
            // Allocates the key only for a new client.
            buckets.insert(key.to_string(), Bucket { tokens: self.burst, updated: now });
        }
        let bucket = buckets.get_mut(key).expect("bucket just ensured");
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.updated = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        let retry_after_secs = if allowed { 0 } else { ((1.0 - bucket.tokens) / self.rate).ceil().max(1.0) as u64 };
        Some(Decision {
            allowed,
            limit: self.burst as u32,
            remaining: bucket.tokens.floor().max(0.0) as u32,
            reset_secs: ((self.burst - bucket.tokens) / self.rate).ceil().max(0.0) as u64,
            retry_after_secs,
        })
    }
}

/// The client's rate-limit key: its identity when authenticated, else its IP address.
fn client_key(request: &Request) -> String {
    if let Some(key) = request.extensions().get::<Identity>().and_then(|i| i.key()) {
        return key;
    }
    match request.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(addr)) => format!("ip:{}", addr.ip()),
        None => "ip:unknown".to_string(),
    }
}

/// Tower layer: per-client token bucket.
pub async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    let decision = state.rate_limiter().check(&client_key(&request));
    limited(&state, decision, request, next).await
}

/// Tower layer: authentication ([`crate::auth::require_auth`]) and then [`rate_limit`], in
/// one layer (one boxed future less per request on the hot paths).
pub async fn authenticate_and_limit(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let identity = state.auth().authenticate(request.headers()).await?;
    request.extensions_mut().insert(identity);
    let decision = state.rate_limiter().check(&client_key(&request));
    limited(&state, decision, request, next).await
}

async fn limited(
    state: &AppState,
    decision: Option<Decision>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(decision) = decision else {
        return Ok(next.run(request).await);
    };
    if !decision.allowed {
        state.metrics().inc("runner_rate_limited_total", &[]);
        return Err(ApiError::RateLimited {
            retry_after_secs: decision.retry_after_secs,
            limit: decision.limit,
            reset_secs: decision.reset_secs,
        });
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(decision.reset_secs));
    Ok(response)
}

/// Slots for running tasks and a bounded queue in front of them.
#[derive(Debug)]
pub struct TaskGate {
    slots: Arc<Semaphore>,
    max_queued: usize,
    queued: AtomicUsize,
    queue_timeout: Duration,
}

impl TaskGate {
    pub fn new(max_running: usize, max_queued: usize, queue_timeout: Duration) -> TaskGate {
        TaskGate {
            slots: Arc::new(Semaphore::new(max_running)),
            max_queued,
            queued: AtomicUsize::new(0),
            queue_timeout,
        }
    }

    /// Waits for a slot, or fails at once when the queue is full.
    pub async fn admit(&self, metrics: &crate::metrics::Metrics) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        // Reserve a queue place, or refuse.
        let reserved = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| (q < self.max_queued).then_some(q + 1))
            .is_ok();
        if !reserved {
            metrics.inc("runner_overloaded_total", &[("reason", "queue_full")]);
            return Err(ApiError::Overloaded {
                message: format!("all task slots are busy and the queue is full ({} waiting)", self.max_queued),
                retry_after_secs: 1,
            });
        }
        metrics.tasks_queued(1);
        // Leaves the queue however this future ends, including when it is dropped.
        let _leave = QueuePlace { gate: self, metrics };
        match tokio::time::timeout(self.queue_timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(ApiError::ShuttingDown),
            Err(_elapsed) => {
                metrics.inc("runner_overloaded_total", &[("reason", "queue_timeout")]);
                Err(ApiError::Overloaded {
                    message: format!("no task slot became free within {} ms", self.queue_timeout.as_millis()),
                    retry_after_secs: 1,
                })
            }
        }
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    pub fn available(&self) -> usize {
        self.slots.available_permits()
    }
}

struct QueuePlace<'a> {
    gate: &'a TaskGate,
    metrics: &'a crate::metrics::Metrics,
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.gate.queued.fetch_sub(1, Ordering::AcqRel);
        self.metrics.tasks_queued(-1);
    }
}

/// Tower layer: holds a task slot for the whole request, so the handler runs only when
/// admitted. Refuses new tasks once shutdown has begun.
pub async fn admit_task(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    if state.is_shutting_down() {
        return Err(ApiError::ShuttingDown);
    }
    let _permit = state.gate().admit(state.metrics()).await?;
    // When the shutdown grace period is over, the task's future is dropped here: its container
    // guard removes the container.
    tokio::select! {
        response = next.run(request) => Ok(response),
        () = state.tasks_cancelled() => Err(ApiError::ShuttingDown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn bucket_allows_a_burst_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(true, 2.0, 3);
        let t0 = Instant::now();
        for remaining in [2, 1, 0] {
            let d = limiter.check_at("a", t0).unwrap();
            assert!(d.allowed);
            assert_eq!(d.remaining, remaining);
            assert_eq!(d.limit, 3);
        }
        let refused = limiter.check_at("a", t0).unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 1);
        assert_eq!(refused.reset_secs, 2);
        // Another client has its own bucket.
        assert!(limiter.check_at("b", t0).unwrap().allowed);
        // Half a second later one token is back.
        assert!(limiter.check_at("a", t0 + Duration::from_millis(500)).unwrap().allowed);
        assert!(!limiter.check_at("a", t0 + Duration::from_millis(500)).unwrap().allowed);
    }

    #[test]
    fn disabled_limiter_decides_nothing() {
        assert!(RateLimiter::new(false, 1.0, 1).check("a").is_none());
    }

    #[tokio::test]
    async fn gate_queues_then_refuses() {
        let metrics = Metrics::new();
        let gate = TaskGate::new(1, 1, Duration::from_secs(5));
        let first = gate.admit(&metrics).await.unwrap();
        // The second waits in the queue...
        let waiting = gate.admit(&metrics);
        tokio::pin!(waiting);
        assert!(tokio::time::timeout(Duration::from_millis(20), waiting.as_mut()).await.is_err());
        assert_eq!(gate.queued(), 1);
        assert_eq!(metrics.queued(), 1);
        // ...the third finds the queue full.
        let err = gate.admit(&metrics).await.unwrap_err();
        assert!(matches!(err, ApiError::Overloaded { .. }));
        drop(first);
        let _second = waiting.await.unwrap();
        assert_eq!(gate.queued(), 0);
        assert_eq!(metrics.queued(), 0);
    }

    #[tokio::test]
    async fn queue_wait_times_out() {
        let metrics = Metrics::new();
        let gate = TaskGate::new(1, 4, Duration::from_millis(20));
        let _first = gate.admit(&metrics).await.unwrap();
        let err = gate.admit(&metrics).await.unwrap_err();
        assert!(matches!(err, ApiError::Overloaded { .. }), "{err:?}");
        assert_eq!(gate.queued(), 0);
    }
}
