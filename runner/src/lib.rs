//! # cairn runner
//!
//! The workload cairn's fleet deploys: an HTTP service that runs one command in a fresh Docker
//! container and answers with its exit code, stdout and stderr, compatible with the "ecs"
//! API v1.1 (`POST /v1.1/tasks`).
//!
//! ## Layout
//!
//! - [`app`] builds the whole HTTP service from an [`AppState`]; tests drive it in-process with
//!   `tower::ServiceExt::oneshot`. [`serve`] runs it on a listener with graceful shutdown; the
//!   binary (`main.rs`) only parses arguments and configuration and calls it.
//! - [`api`]: thin handlers and the task request's validation.
//! - [`task`]: one container's lifecycle (create, attach, start, wait, kill, collect, remove),
//!   with a drop guard that removes the container whatever happens to the request.
//! - [`images`]: image references and pulls (policy, timeout, one shared pull per image).
//! - [`auth`], [`limits`], [`observe`]: cross-cutting behaviour as tower layers.
//! - [`reaper`]: removes leftover labelled containers at startup and periodically.
//! - [`status`]: tasks in flight, recent failures, and the HTML status page.
//! - [`tls`]: HTTPS with rustls; [`ecr`]: ECR registry tokens.
//! - [`metrics`], [`openapi`], [`config`], [`error`].
//!
//! ## Invariant
//!
//! Every container the runner creates is removed, whatever happens to the request: the
//! [`task::ContainerGuard`] removes it when dropped, shutdown waits for removals, and the
//! reaper removes whatever a crash left behind.

pub mod api;
pub mod auth;
pub mod config;
pub mod ecr;
pub mod error;
pub mod images;
pub mod limits;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod reaper;
pub mod status;
pub mod task;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderValue;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;
use bollard::Docker;

use crate::auth::Authenticator;
use crate::config::{Config, ConfigError};
use crate::images::Images;
use crate::limits::{RateLimiter, TaskGate};
use crate::metrics::Metrics;
use crate::reaper::ReaperStatus;
use crate::status::Activity;
use crate::task::Containers;

/// Everything the handlers and layers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    docker: Docker,
    images: Images,
    metrics: Metrics,
    auth: Authenticator,
    rate_limiter: RateLimiter,
    gate: TaskGate,
    containers: Containers,
    reaper: Mutex<ReaperStatus>,
    activity: Activity,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// `Strict-Transport-Security`, sent on every response when TLS is on.
    hsts: Option<HeaderValue>,
    shutting_down: AtomicBool,
    /// Set when the shutdown grace period is over: in-flight tasks are cancelled.
    cancel_tasks: tokio::sync::watch::Sender<bool>,
    started: Instant,
}

impl AppState {
    /// Builds the state from a validated configuration and a connected Docker client.
    /// Fails when authentication is on but no credential could ever be accepted.
    pub fn new(config: Config, docker: Docker) -> Result<AppState, ConfigError> {
        config.validate()?;
        let auth = Authenticator::from_config(&config.auth)?;
        if auth.enabled() && !auth.has_credentials() {
            return Err(ConfigError::Invalid {
                key: "auth".to_string(),
                message: "authentication is on but neither auth.htpasswd_file nor \
                          auth.bearer_tokens gives any credential (use --insecure-no-auth \
                          on a loopback address to run without)"
                    .to_string(),
            });
        }
        let tls = tls::server_config(&config.tls)?;
        let hsts = tls.as_ref().map(|_| {
            HeaderValue::from_str(&format!("max-age={}", config.tls.hsts_max_age_secs))
                .expect("a number is a valid header")
        });
        let images = Images::new(
            docker.clone(),
            config.images.pull_policy,
            Duration::from_millis(config.images.pull_timeout_ms),
        )
        .with_auth(registry_credentials(&config)?, ecr_auth(&config));
        let limits = &config.limits;
        Ok(AppState {
            inner: Arc::new(Inner {
                images,
                metrics: Metrics::new(),
                auth,
                rate_limiter: RateLimiter::new(
                    limits.rate_limit_enabled,
                    limits.rate_limit_per_second,
                    limits.rate_limit_burst,
                ),
                gate: TaskGate::new(
                    limits.max_concurrent_tasks,
                    limits.max_queued_tasks,
                    Duration::from_millis(limits.queue_timeout_ms),
                ),
                containers: Containers::default(),
                reaper: Mutex::new(ReaperStatus::default()),
                activity: Activity::default(),
                tls,
                hsts,
                shutting_down: AtomicBool::new(false),
                cancel_tasks: tokio::sync::watch::Sender::new(false),
                started: Instant::now(),
                docker,
                config,
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }
    pub fn docker(&self) -> &Docker {
        &self.inner.docker
    }
    pub fn images(&self) -> &Images {
        &self.inner.images
    }
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
    pub fn auth(&self) -> &Authenticator {
        &self.inner.auth
    }
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.inner.rate_limiter
    }
    pub fn gate(&self) -> &TaskGate {
        &self.inner.gate
    }
    pub fn containers(&self) -> &Containers {
        &self.inner.containers
    }
    pub fn activity(&self) -> &Activity {
        &self.inner.activity
    }
    /// The TLS configuration, when TLS is on.
    pub fn tls(&self) -> Option<&Arc<tokio_rustls::rustls::ServerConfig>> {
        self.inner.tls.as_ref()
    }
    pub(crate) fn hsts(&self) -> Option<&HeaderValue> {
        self.inner.hsts.as_ref()
    }
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }
    pub fn reaper_status(&self) -> ReaperStatus {
        self.reaper_status_mut().clone()
    }
    pub(crate) fn reaper_status_mut(&self) -> MutexGuard<'_, ReaperStatus> {
        self.inner.reaper.lock().expect("reaper status lock")
    }
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }
    /// From now on new tasks get 503 and `/healthz` turns red.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
    }
    /// Cancels every in-flight task: its request gets 503 and its container is removed.
    pub fn cancel_tasks(&self) {
        self.begin_shutdown();
        self.inner.cancel_tasks.send_replace(true);
    }
    /// Resolves once [`AppState::cancel_tasks`] has been called.
    pub async fn tasks_cancelled(&self) {
        let mut rx = self.inner.cancel_tasks.subscribe();
        // The sender lives in `self`, so this only fails if it was dropped: then never resolve.
        if rx.wait_for(|cancelled| *cancelled).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// `images.registries`, with passwords read from their files. Errors name the key.
fn registry_credentials(
    config: &Config,
) -> Result<std::collections::HashMap<String, images::Credentials>, ConfigError> {
    let mut out = std::collections::HashMap::new();
    for (host, auth) in &config.images.registries {
        let password = match (&auth.password, &auth.password_file) {
            (Some(password), _) => password.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Invalid {
                    key: format!("images.registries.\"{host}\".password_file"),
                    message: format!("cannot read {}: {e}", path.display()),
                })?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            (None, None) => String::new(),
        };
        out.insert(
            host.clone(),
            images::Credentials { email: None, username: Some(auth.username.clone()), password: Some(password) },
        );
    }
    Ok(out)
}

#[cfg(feature = "ecr")]
fn ecr_auth(config: &Config) -> Option<ecr::EcrAuth> {
    config.images.ecr.enabled.then(|| ecr::EcrAuth::from_config(&config.images.ecr))
}

#[cfg(not(feature = "ecr"))]
fn ecr_auth(_config: &Config) -> Option<ecr::EcrAuth> {
    None
}

/// Connects to Docker the standard way (`DOCKER_HOST`, else the local socket) and negotiates
/// the API version. `request_timeout` bounds each Docker call's wait for response headers; it
/// must exceed the longest task, since waiting for a container is one call.
pub async fn connect_docker(request_timeout: Duration) -> Result<Docker, bollard::errors::Error> {
    Docker::connect_with_defaults()?.with_timeout(request_timeout).negotiate_version().await
}

/// The Docker request timeout a configuration needs: its longest task or pull plus a margin.
pub fn docker_timeout(config: &Config) -> Duration {
    let longest = config.tasks.max_timeout_ms.max(config.images.pull_timeout_ms);
    Duration::from_millis(longest) + Duration::from_secs(60)
}

/// The whole HTTP service.
///
/// Public: `/healthz`, `/v1.1/_version`, `/v1.1/_health`, `/v1.1/openapi.json`.
/// Authenticated: `/metrics`, `/status`; authenticated and rate limited: `/v1.1/_noop`; and
/// `POST /v1.1/tasks`, which also passes the task gate (concurrency with a bounded queue) and
/// has the body limit.
pub fn app(state: AppState) -> Router {
    let v = format!("/v{}", api::API_VERSION);
    let tasks = Router::new()
        .route(&format!("{v}/tasks"), post(api::create_task))
        .layer(DefaultBodyLimit::max(state.config().limits.max_body_bytes))
        // Added last = runs first: auth and rate limit, then the task gate.
        .layer(from_fn_with_state(state.clone(), limits::admit_task))
        .layer(from_fn_with_state(state.clone(), limits::authenticate_and_limit));
    // A client's check that its credentials and the path work: the same stack as tasks, less
    // the task gate.
    let noop = Router::new()
        .route(&format!("{v}/_noop"), get(api::noop))
        .layer(from_fn_with_state(state.clone(), limits::authenticate_and_limit));
    let operators = Router::new()
        .route("/metrics", get(api::metrics))
        .route("/status", get(status::page))
        .layer(from_fn_with_state(state.clone(), auth::require_auth));
    let public = Router::new()
        .route("/healthz", get(api::healthz))
        .route(&format!("{v}/_version"), get(api::version))
        .route(&format!("{v}/_health"), get(api::health))
        .route(&format!("{v}/openapi.json"), get(api::openapi));
    Router::new()
        .merge(public)
        .merge(tasks)
        .merge(noop)
        .merge(operators)
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(from_fn_with_state(state.clone(), observe::observe))
        .with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then shuts down gracefully:
/// stop accepting, refuse new tasks, let in-flight requests finish for up to
/// `server.shutdown_grace_ms`, then drop what is left (their guards kill and remove their
/// containers) and wait for every removal.
///
/// Also runs the reaper: once now, then periodically.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match reaper::reap_once(&state, Duration::ZERO).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(removed = n, "removed leftover containers at startup"),
        Err(err) => tracing::error!(error = %err, "startup reaper failed"),
    }
    let periodic = reaper::spawn_periodic(state.clone());
    let grace = Duration::from_millis(state.config().server.shutdown_grace_ms);

    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let signal_state = state.clone();
    let graceful = async move {
        shutdown.await;
        tracing::info!(grace_ms = grace.as_millis() as u64, "shutting down");
        signal_state.begin_shutdown();
        let _ = started_tx.send(());
    };
    use axum::serve::ListenerExt as _;
    use std::future::IntoFuture as _;
    let service = app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    // Boxed so it can be dropped (with every request it still holds) before the cleanup below.
    // `tap_io` also gives both listeners the `ConnectInfo<SocketAddr>` the rate limiter uses.
    let mut server: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> = match state.tls() {
        Some(tls) => {
            let timeout = Duration::from_millis(state.config().tls.handshake_timeout_ms);
            let listener = tls::TlsListener::new(listener, tls.clone(), timeout)?.tap_io(|_| {});
            Box::pin(axum::serve(listener, service).with_graceful_shutdown(graceful).into_future())
        }
        None => {
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            Box::pin(axum::serve(listener, service).with_graceful_shutdown(graceful).into_future())
        }
    };

    let result = tokio::select! {
        result = &mut server => result,
        () = async {
            // Only after shutdown began: the grace period, then give up on what is left.
            if started_rx.await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("grace period over; cancelling in-flight tasks");
            state.cancel_tasks();
            // Cancelled tasks answer 503 at once, so connections close and serving ends.
            match tokio::time::timeout(Duration::from_secs(10), &mut server).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::error!("connections still open 10 s after cancelling; closing");
                    Ok(())
                }
            }
        }
    };
    drop(server);
    if let Some(periodic) = periodic {
        periodic.abort();
    }
    if !state.containers().wait_for_removals(Duration::from_secs(30)).await {
        tracing::error!(
            pending = state.containers().pending_removals(),
            "container removals still pending at exit; the reaper removes them at next start"
        );
    }
    // Belt and braces: anything of ours still there (a removal that failed) goes now.
    let _ = reaper::reap_once(&state, Duration::ZERO).await;
    tracing::info!("shutdown complete");
    result
}

/// Whether `addr` is a loopback address (`--insecure-no-auth` is only allowed there).
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}
