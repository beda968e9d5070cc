//! Images: parsing references, and pulling them.
//!
//! Pulls follow the configured [`PullPolicy`], applied in `api::run_task`: with
//! `if-not-present` a pull happens only after Docker said "no such image". Concurrent tasks
//! that need the same missing image share one pull: the first starts it in a spawned task (so
//! it finishes, and the image is cached, even if every requester goes away) and everyone
//! awaits the same shared result.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::auth::DockerCredentials;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::CreateImageOptions;
use bollard::Docker;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};

use crate::config::PullPolicy;
use crate::ecr::EcrAuth;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// A validated image reference: `[registry[:port]/][namespace/]name[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Everything before the tag: `registry.example.com:5000/team/app`.
    pub repository: String,
    pub tag: String,
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses `image`, with the older API's separate `tag` field if given. The tag defaults to
    /// `latest`. Errors say what is wrong, for a 400 naming the field.
    pub fn parse(image: &str, tag_field: Option<&str>) -> Result<ImageRef, String> {
        if image.is_empty() {
            return Err("must not be empty".into());
        }
        if image.len() > 255 {
            return Err("is longer than 255 characters".into());
        }
        let (name, digest) = match image.split_once('@') {
            Some((name, digest)) => {
                validate_digest(digest)?;
                (name, Some(digest.to_string()))
            }
            None => (image, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        validate_repository(repository)?;
        let tag = match (tag, tag_field) {
            (Some(_), Some(_)) => return Err("has a tag and the `tag` field is also given; use one".into()),
            (Some(tag), None) | (None, Some(tag)) => tag,
            (None, None) => "latest",
        };
        validate_tag(tag)?;
        Ok(ImageRef { repository: repository.to_string(), tag: tag.to_string(), digest })
    }

    /// The registry host, when the reference names one.
    pub fn registry(&self) -> Option<&str> {
        let (first, rest) = self.repository.split_once('/')?;
        (!rest.is_empty() && (first.contains('.') || first.contains(':') || first == "localhost")).then_some(first)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.digest {
            Some(digest) => write!(f, "{}@{digest}", self.repository),
            None => write!(f, "{}:{}", self.repository, self.tag),
        }
    }
}

fn validate_repository(repository: &str) -> Result<(), String> {
    let mut components: Vec<&str> = repository.split('/').collect();
    if components.len() > 1 {
        let first = components[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            validate_host(first)?;
            components.remove(0);
        }
    }
    for component in components {
        if !valid_path_component(component) {
            return Err(format!(
                "has an invalid name component {component:?}: use lowercase letters, digits \
                 and single separators (., _, __, -)"
            ));
        }
    }
    Ok(())
}

fn validate_host(host: &str) -> Result<(), String> {
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    if name_ok && port_ok {
        Ok(())
    } else {
        Err(format!("has an invalid registry host {host:?}"))
    }
}

fn valid_path_component(component: &str) -> bool {
    // [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
    let bytes = component.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if is_alnum(b) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "has an invalid tag {tag:?}: up to 128 letters, digits, '_', '.', '-', not starting with '.' or '-'"
        ))
    }
}

fn validate_digest(digest: &str) -> Result<(), String> {
    let ok = digest.split_once(':').is_some_and(|(algo, hex)| {
        !algo.is_empty()
            && algo.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && hex.len() >= 32
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if ok {
        Ok(())
    } else {
        Err(format!("has an invalid digest {digest:?}"))
    }
}

/// Why a pull failed; cloneable so every task sharing the pull gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullError {
    NotFound(String),
    /// The registry refused the credentials (or wanted some): 401/403 from the registry.
    Unauthorized(String),
    Failed(String),
    TimedOut(Duration),
}

pub type PullOutcome = Result<(), PullError>;

type InFlight = Arc<Mutex<HashMap<String, Shared<BoxFuture<'static, PullOutcome>>>>>;

/// Ensures images are present, pulling each missing one once however many tasks want it.
pub struct Images {
    docker: Docker,
    policy: PullPolicy,
    pull_timeout: Duration,
    in_flight: InFlight,
    /// Configured credentials by registry host (`images.registries`).
    registries: HashMap<String, Credentials>,
    ecr: Option<EcrAuth>,
}

impl fmt::Debug for Images {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Images")
            .field("policy", &self.policy)
            .field("pull_timeout", &self.pull_timeout)
            .finish_non_exhaustive()
    }
}

/// Registry credentials from a request.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub email: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[secret]"))
            .finish()
    }
}

/// Where the credentials of a pull came from; error messages say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    Request,
    Configured,
    Ecr,
    None,
}

impl CredentialSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialSource::Request => "request",
            CredentialSource::Configured => "configured",
            CredentialSource::Ecr => "ecr",
            CredentialSource::None => "none",
        }
    }
}

impl Images {
    pub fn new(docker: Docker, policy: PullPolicy, pull_timeout: Duration) -> Images {
        Images {
            docker,
            policy,
            pull_timeout,
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            registries: HashMap::new(),
            ecr: None,
        }
    }

    /// Credentials for pulls whose request has none: per registry host, and ECR tokens.
    pub fn with_auth(mut self, registries: HashMap<String, Credentials>, ecr: Option<EcrAuth>) -> Images {
        self.registries = registries;
        self.ecr = ecr;
        self
    }

    /// The credentials for a pull of `image`: the request's, else configured ones for its
    /// registry, else an ECR token when it is an ECR registry.
    async fn credentials(
        &self,
        image: &ImageRef,
        creds: Option<&Credentials>,
        metrics: &Metrics,
    ) -> Result<(Option<Credentials>, CredentialSource), ApiError> {
        if let Some(creds) = creds {
            return Ok((Some(creds.clone()), CredentialSource::Request));
        }
        let Some(host) = image.registry() else {
            return Ok((None, CredentialSource::None));
        };
        if let Some(configured) = self.registries.get(host) {
            return Ok((Some(configured.clone()), CredentialSource::Configured));
        }
        if let Some(ecr) = &self.ecr {
            match ecr.credentials(host, metrics).await {
                Some(Ok(token)) => return Ok((Some(token), CredentialSource::Ecr)),
                Some(Err(message)) => return Err(ApiError::ImagePull { image: image.to_string(), message }),
                None => {}
            }
        }
        Ok((None, CredentialSource::None))
    }

    pub fn policy(&self) -> PullPolicy {
        self.policy
    }

    /// Pulls `image`, sharing the pull with concurrent callers that want the same image with
    /// the same credentials.
    pub async fn pull(&self, image: &ImageRef, creds: Option<&Credentials>, metrics: &Metrics) -> Result<(), ApiError> {
        let reference = image.to_string();
        let (creds, source) = self.credentials(image, creds, metrics).await?;
        let creds = creds.as_ref();
        let docker = self.docker.clone();
        let credentials = creds.map(|c| DockerCredentials {
            username: c.username.clone(),
            password: c.password.clone(),
            email: c.email.clone(),
            serveraddress: image.registry().map(str::to_string),
            ..Default::default()
        });
        let options = CreateImageOptions {
            from_image: Some(image.repository.clone()),
            tag: Some(image.digest.clone().unwrap_or_else(|| image.tag.clone())),
            ..Default::default()
        };
        let timeout = self.pull_timeout;
        let pull = async move {
            let stream =
                docker.create_image(Some(options), None, credentials).try_for_each(|_progress| async { Ok(()) });
            match tokio::time::timeout(timeout, stream).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(classify_pull_error(&err)),
                Err(_) => Err(PullError::TimedOut(timeout)),
            }
        };
        // Different credentials must not share a pull: a bad password would fail the others.
        let key = match creds {
            Some(c) => {
                let digest = Sha256::digest(format!("{c:?}").as_bytes());
                format!("{reference}#{digest:x}")
            }
            None => reference.clone(),
        };
        let (shared, joined) = self.pull_once(key, pull);
        if joined {
            metrics.inc("runner_image_pull_joins_total", &[]);
        }
        let started = std::time::Instant::now();
        let outcome = shared.await;
        tracing::info!(image = %reference, joined, elapsed_ms = started.elapsed().as_millis() as u64, ok = outcome.is_ok(), "image pull finished");
        if !joined {
            let result = match &outcome {
                Ok(()) => "ok",
                Err(PullError::NotFound(_)) => "not_found",
                Err(PullError::Unauthorized(_)) => "unauthorized",
                Err(_) => "error",
            };
            metrics.inc("runner_image_pulls_total", &[("result", result)]);
        }
        outcome.map_err(|err| match err {
            PullError::NotFound(message) => ApiError::ImageNotFound { image: reference.clone(), detail: Some(message) },
            PullError::Unauthorized(message) => ApiError::RegistryAuth {
                image: reference.clone(),
                registry: image.registry().unwrap_or("docker.io").to_string(),
                credentials: source.as_str(),
                message,
            },
            PullError::Failed(message) => ApiError::ImagePull { image: reference.clone(), message },
            PullError::TimedOut(t) => ApiError::ImagePull {
                image: reference.clone(),
                message: format!("timed out after {} ms", t.as_millis()),
            },
        })
    }

    /// Starts `pull` under `key` unless a pull with that key is already running; returns the
    /// shared outcome and whether this call joined an existing pull.
    pub fn pull_once(
        &self,
        key: String,
        pull: impl Future<Output = PullOutcome> + Send + 'static,
    ) -> (Shared<BoxFuture<'static, PullOutcome>>, bool) {
        let mut in_flight = self.in_flight.lock().expect("pull map lock");
        if let Some(existing) = in_flight.get(&key) {
            return (existing.clone(), true);
        }
        let map = self.in_flight.clone();
        let task_key = key.clone();
        // The map's lock is held while spawning, so the task cannot remove its entry before
        // it has been inserted.
        let handle = tokio::spawn(async move {
            let outcome = pull.await;
            map.lock().expect("pull map lock").remove(&task_key);
            outcome
        });
        let shared =
            async move { handle.await.unwrap_or_else(|e| Err(PullError::Failed(format!("pull task failed: {e}")))) }
                .boxed()
                .shared();
        in_flight.insert(key, shared.clone());
        (shared, false)
    }
}

fn classify_pull_error(err: &DockerError) -> PullError {
    let message = err.to_string();
    if let DockerError::DockerResponseServerError { status_code: 404, .. } = err {
        return PullError::NotFound(message);
    }
    let lower = message.to_ascii_lowercase();
    // Docker Hub answers "pull access denied for x, repository does not exist or may require
    // 'docker login'" for a repository that does not exist: a 404 is the better guess there.
    if lower.contains("repository does not exist") {
        return PullError::NotFound(message);
    }
    let unauthorized = [
        "unauthorized",
        "authentication required",
        "no basic auth credentials",
        "incorrect username or password",
        "denied:",
        "access denied",
        "forbidden",
    ];
    if unauthorized.iter().any(|p| lower.contains(p)) {
        return PullError::Unauthorized(message);
    }
    let not_found = ["manifest unknown", "not found", "pull access denied"];
    if not_found.iter().any(|p| lower.contains(p)) {
        PullError::NotFound(message)
    } else {
        PullError::Failed(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn parses_references() {
        let cases: &[(&str, Option<&str>, &str, Option<&str>)] = &[
            ("busybox", None, "busybox:latest", None),
            ("busybox:1.36", None, "busybox:1.36", None),
            ("busybox", Some("1.36"), "busybox:1.36", None),
            ("library/busybox:1", None, "library/busybox:1", None),
            ("localhost:5000/a/b:c", None, "localhost:5000/a/b:c", Some("localhost:5000")),
            (
                "registry.example.com/team/app-x_y:v1.2",
                None,
                "registry.example.com/team/app-x_y:v1.2",
                Some("registry.example.com"),
            ),
            ("cairn-runner-test:busybox", None, "cairn-runner-test:busybox", None),
        ];
        for (input, tag, expected, registry) in cases {
            let image = ImageRef::parse(input, *tag).unwrap();
            assert_eq!(image.to_string(), *expected, "{input}");
            assert_eq!(image.registry(), *registry, "{input}");
        }
        let digest = format!("busybox@sha256:{}", "a".repeat(64));
        assert_eq!(ImageRef::parse(&digest, None).unwrap().to_string(), digest);
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "a//b",
            "-a",
            "a b",
            "exa mple.com/a",
            "host:port/a",
            "busybox@sha256:xyz",
        ] {
            assert!(ImageRef::parse(bad, None).is_err(), "{bad:?} should be rejected");
        }
        assert!(ImageRef::parse("busybox:1", Some("2")).is_err());
    }

    #[test]
    fn pull_errors_are_classified() {
        let not_found = DockerError::DockerStreamError { error: "manifest unknown".into() };
        assert!(matches!(classify_pull_error(&not_found), PullError::NotFound(_)));
        let network = DockerError::DockerResponseServerError {
            status_code: 500,
            message: "dial tcp: lookup registry: no such host".into(),
        };
        assert!(matches!(classify_pull_error(&network), PullError::Failed(_)));
        for refused in [
            "unauthorized: authentication required",
            "Head \"http://127.0.0.1:5999/v2/private/busybox/manifests/v1\": no basic auth credentials",
            "denied: requested access to the resource is denied",
        ] {
            let err = DockerError::DockerResponseServerError { status_code: 500, message: refused.into() };
            assert!(matches!(classify_pull_error(&err), PullError::Unauthorized(_)), "{refused}");
        }
        let hub = DockerError::DockerResponseServerError {
            status_code: 404,
            message: "pull access denied for nope, repository does not exist or may require 'docker login'".into(),
        };
        assert!(matches!(classify_pull_error(&hub), PullError::NotFound(_)));
    }

    #[tokio::test]
    async fn credentials_come_from_the_request_then_the_config_then_ecr() {
        use base64::Engine as _;
        let fetcher: crate::ecr::FetchToken = Arc::new(|region: String| {
            Box::pin(async move {
                let raw = base64::engine::general_purpose::STANDARD.encode(format!("AWS:token-{region}"));
                Ok((raw, std::time::SystemTime::now() + Duration::from_secs(3600)))
            })
        });
        let configured = Credentials { email: None, username: Some("u".into()), password: Some("p".into()) };
        let images = Images::new(
            Docker::connect_with_http("http://127.0.0.1:1", 1, bollard::API_DEFAULT_VERSION).unwrap(),
            PullPolicy::IfNotPresent,
            Duration::from_secs(1),
        )
        .with_auth(
            HashMap::from([("reg.example.com:5000".to_string(), configured.clone())]),
            Some(EcrAuth::new(fetcher, Duration::from_secs(60))),
        );
        let metrics = Metrics::new();
        let request = Credentials { email: None, username: Some("r".into()), password: Some("q".into()) };
        let cases = [
            ("reg.example.com:5000/a:1", Some(&request), Some(request.clone()), CredentialSource::Request),
            ("reg.example.com:5000/a:1", None, Some(configured.clone()), CredentialSource::Configured),
            ("busybox:1", None, None, CredentialSource::None),
            ("other.example.com/a:1", None, None, CredentialSource::None),
        ];
        for (image, given, expected, source) in cases {
            let image = ImageRef::parse(image, None).unwrap();
            let (got, got_source) = images.credentials(&image, given, &metrics).await.unwrap();
            assert_eq!((got, got_source), (expected, source), "{image}");
        }
        let ecr = ImageRef::parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1", None).unwrap();
        let (got, source) = images.credentials(&ecr, None, &metrics).await.unwrap();
        assert_eq!(source, CredentialSource::Ecr);
        assert_eq!(got.unwrap().password.as_deref(), Some("token-eu-west-1"));
    }

    #[tokio::test]
    async fn concurrent_pulls_of_one_image_share_one_pull() {
        let images = Images::new(
            Docker::connect_with_http("http://127.0.0.1:1", 1, bollard::API_DEFAULT_VERSION).unwrap(),
            PullPolicy::IfNotPresent,
            Duration::from_secs(1),
        );
        let started = Arc::new(AtomicUsize::new(0));
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let counter = started.clone();
        let (first, joined_first) = images.pull_once("img:1".into(), async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = wait.await;
            Ok(())
        });
        let counter = started.clone();
        let (second, joined_second) = images.pull_once("img:1".into(), async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        let (other, joined_other) = images.pull_once("img:2".into(), async { Err(PullError::Failed("x".into())) });
        assert!(!joined_first && joined_second && !joined_other);
        release.send(()).unwrap();
        assert_eq!(first.await, Ok(()));
        assert_eq!(second.await, Ok(()));
        assert!(other.await.is_err());
        assert_eq!(started.load(Ordering::SeqCst), 1);
        // Once finished, the next pull starts afresh.
        let (_, joined_again) = images.pull_once("img:1".into(), async { Ok(()) });
        assert!(!joined_again);
    }
}
