//! Credentials for Amazon ECR registries (`<account>.dkr.ecr.<region>.amazonaws.com`).
//!
//! A pull from an ECR host without request `creds` gets a token from ECR's
//! GetAuthorizationToken (through `aws-sdk-ecr`). The token is base64 of `AWS:<password>` and
//! lasts 12 hours; it is cached per region (one token serves every registry the caller may
//! read in that region) until `images.ecr.refresh_before_expiry_ms` before it expires.
//! Concurrent pulls that need the same region's token share one call.
//!
//! AWS credentials come from the standard chain of `aws-config`, loaded once on the first call
//! and shared after: the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`), the shared config and credentials files (`AWS_PROFILE`,
//! `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`: static keys, `credential_process`, SSO,
//! role assumption), web identity (`AWS_WEB_IDENTITY_TOKEN_FILE`, EKS), the ECS task role, and EC2
//! instance metadata (IMDSv2, the instance profile), first that answers wins. Its credentials
//! provider sits behind the SDK's identity cache, which keeps credentials until shortly before
//! they expire and then fetches new ones (an instance profile's rotate every few hours), so
//! nothing here refreshes them. A failure to get credentials is reported with every source the
//! chain tried and why each gave nothing.
//!
//! GetAuthorizationToken goes to the registry host's region whatever the chain's region is,
//! and to `images.ecr.endpoint_url` when that is set (else the chain's endpoint settings,
//! `AWS_ENDPOINT_URL_ECR` or `AWS_ENDPOINT_URL`, else AWS). `images.ecr.timeout_ms` bounds one
//! call, getting credentials included.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use futures_util::future::BoxFuture;

use crate::images::Credentials;
use crate::metrics::Metrics;

/// What an ECR registry host names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrHost {
    pub account: String,
    pub region: String,
}

/// Parses `<12 digits>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]`; None for any other host.
pub fn parse_host(host: &str) -> Option<EcrHost> {
    let host = host.to_ascii_lowercase();
    let rest = host.strip_suffix(".amazonaws.com.cn").or_else(|| host.strip_suffix(".amazonaws.com"))?;
    let mut parts = rest.split('.');
    let (account, dkr, ecr, region) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let valid = parts.next().is_none()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && dkr == "dkr"
        && (ecr == "ecr" || ecr == "ecr-fips")
        && !region.is_empty()
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then(|| EcrHost { account: account.to_string(), region: region.to_string() })
}

/// A decoded authorization token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub username: String,
    pub password: String,
    pub expires_at: SystemTime,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("username", &self.username)
            .field("password", &"[secret]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Decodes GetAuthorizationToken's `authorizationToken`: base64 of `user:password`.
pub fn decode_token(encoded: &str, expires_at: SystemTime) -> Result<Token, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| format!("the ECR authorization token is not base64: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "the ECR authorization token is not UTF-8".to_string())?;
    let (username, password) =
        text.split_once(':').ok_or_else(|| "the ECR authorization token is not `user:password`".to_string())?;
    if username.is_empty() || password.is_empty() {
        return Err("the ECR authorization token has an empty user or password".into());
    }
    Ok(Token { username: username.to_string(), password: password.to_string(), expires_at })
}

/// Fetches a region's raw token: (base64 `authorizationToken`, expiry).
pub type FetchToken = Arc<dyn Fn(String) -> BoxFuture<'static, Result<(String, SystemTime), String>> + Send + Sync>;

/// Cached ECR tokens, one per region.
pub struct EcrAuth {
    fetch: FetchToken,
    refresh_before: Duration,
    /// region -> its slot; the slot's async lock makes concurrent callers share one fetch.
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Token>>>>>,
}

impl fmt::Debug for EcrAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcrAuth").field("refresh_before", &self.refresh_before).finish_non_exhaustive()
    }
}

impl EcrAuth {
    pub fn new(fetch: FetchToken, refresh_before: Duration) -> EcrAuth {
        EcrAuth { fetch, refresh_before, slots: Mutex::new(HashMap::new()) }
    }

    /// The real thing: GetAuthorizationToken through aws-sdk-ecr.
    #[cfg(feature = "ecr")]
    pub fn from_config(config: &crate::config::EcrConfig) -> EcrAuth {
        EcrAuth::new(sdk::fetcher(config), Duration::from_millis(config.refresh_before_expiry_ms))
    }

    /// Registry credentials for `host` when it is an ECR host, else None.
    pub async fn credentials(&self, host: &str, metrics: &Metrics) -> Option<Result<Credentials, String>> {
        let ecr = parse_host(host)?;
        Some(self.token(&ecr.region, metrics).await.map(|token| Credentials {
            email: None,
            username: Some(token.username),
            password: Some(token.password),
        }))
    }

    /// The region's token, from the cache while it has more than `refresh_before` left.
    pub async fn token(&self, region: &str, metrics: &Metrics) -> Result<Token, String> {
        let slot = self.slots.lock().expect("ecr slots lock").entry(region.to_string()).or_default().clone();
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref() {
            if SystemTime::now() + self.refresh_before < token.expires_at {
                metrics.inc("runner_ecr_token_requests_total", &[("result", "cached")]);
                return Ok(token.clone());
            }
        }
        let fetched = (self.fetch)(region.to_string()).await.and_then(|(raw, expires)| decode_token(&raw, expires));
        match fetched {
            Ok(token) => {
                metrics.inc("runner_ecr_token_requests_total", &[("result", "fetched")]);
                tracing::info!(
                    region,
                    expires_in_s = secs_until(token.expires_at),
                    "fetched an ECR authorization token"
                );
                // A token that is already (almost) stale serves this pull but is not kept.
                *cached = (SystemTime::now() + self.refresh_before < token.expires_at).then(|| token.clone());
                Ok(token)
            }
            Err(message) => {
                metrics.inc("runner_ecr_token_requests_total", &[("result", "error")]);
                *cached = None;
                Err(format!("ECR GetAuthorizationToken in {region} failed: {message}"))
            }
        }
    }
}

fn secs_until(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::now()) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

#[cfg(feature = "ecr")]
mod sdk {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use aws_config::{BehaviorVersion, SdkConfig};
    use aws_credential_types::provider::error::CredentialsError;
    use aws_sdk_ecr::config::Region;
    use aws_sdk_ecr::error::ProvideErrorMetadata;
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    use futures_util::FutureExt;
    use tokio::sync::OnceCell;

    use super::FetchToken;
    use crate::config::EcrConfig;

    /// The standard chain (`aws_config::defaults`), with the HTTPS client every call shares
    /// (it pools the connections): rustls on ring instead of the SDK's default aws-lc.
    async fn load_chain() -> SdkConfig {
        let http =
            aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
        aws_config::defaults(BehaviorVersion::latest()).http_client(http).load().await
    }

    /// An SDK error as one line: its chain of causes, each said once. A failure to get AWS
    /// credentials says so, with what the chain reports (every source it tried, and why each
    /// gave nothing) instead of the dispatch layers around it.
    pub(super) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut next = Some(e);
        while let Some(err) = next {
            if err.downcast_ref::<CredentialsError>().is_some() {
                parts = vec!["could not get AWS credentials".to_string()];
            }
            let text = err.to_string();
            if !parts.iter().any(|p| p.contains(&text)) {
                parts.push(text);
            }
            next = err.source();
        }
        // The chain lists its attempts one per indented line.
        parts.join(": ").replace(":\n  ", ": ").replace("\n  ", "; ")
    }

    pub(super) fn fetcher(config: &EcrConfig) -> FetchToken {
        // Loaded on the first call, then shared: its credentials provider (behind the SDK's
        // identity cache, which every client built from it shares) caches credentials and
        // refreshes them before they expire.
        let chain: Arc<OnceCell<SdkConfig>> = Arc::default();
        let endpoint = config.endpoint_url.clone();
        let timeout = Duration::from_millis(config.timeout_ms);
        Arc::new(move |region: String| {
            let (chain, endpoint) = (chain.clone(), endpoint.clone());
            async move {
                let call = async {
                    let base = chain.get_or_init(load_chain).await;
                    // A client per call is cheap (connections and credentials live in `base`);
                    // the region is always the registry host's.
                    let mut builder = aws_sdk_ecr::config::Builder::from(base).region(Region::new(region));
                    if let Some(url) = endpoint {
                        builder = builder.endpoint_url(url);
                    }
                    aws_sdk_ecr::Client::from_conf(builder.build()).get_authorization_token().send().await
                };
                let output = tokio::time::timeout(timeout, call)
                    .await
                    .map_err(|_| format!("timed out after {} ms", timeout.as_millis()))?
                    .map_err(|e| match (e.code(), e.message()) {
                        // AWS answered with an error: its code and message.
                        (Some(code), Some(message)) => format!("{code}: {message}"),
                        (Some(code), None) => code.to_string(),
                        // No answer (credentials, network, timeout): what happened.
                        _ => describe(&e),
                    })?;
                let data = output.authorization_data().first().ok_or("the answer has no authorizationData")?;
                let token = data.authorization_token().ok_or("the answer has no authorizationToken")?.to_string();
                let expires = data
                    .expires_at()
                    .and_then(|t| SystemTime::try_from(*t).ok())
                    .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(12 * 3600));
                Ok((token, expires))
            }
            .boxed()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn parses_ecr_hosts() {
        let ok = parse_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com").unwrap();
        assert_eq!(ok, EcrHost { account: "123456789012".into(), region: "eu-west-1".into() });
        assert_eq!(
            parse_host("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com").unwrap().region,
            "us-gov-west-1"
        );
        assert_eq!(parse_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").unwrap().region, "cn-north-1");
        for bad in [
            "registry.example.com",
            "12345678901.dkr.ecr.eu-west-1.amazonaws.com",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.com",
            "x.123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "123456789012.dkr.s3.eu-west-1.amazonaws.com",
            "127.0.0.1:5000",
        ] {
            assert_eq!(parse_host(bad), None, "{bad}");
        }
    }

    #[test]
    fn decodes_tokens() {
        let t = SystemTime::now();
        let token = decode_token("QVdTOnNlY3JldDpwYXJ0", t).unwrap(); // AWS:secret:part
        assert_eq!((token.username.as_str(), token.password.as_str()), ("AWS", "secret:part"));
        assert!(!format!("{token:?}").contains("secret:part"));
        assert!(decode_token("not base64!", t).unwrap_err().contains("base64"));
        assert!(decode_token("bm9jb2xvbg==", t).unwrap_err().contains("user:password"));
        // nocolon
    }

    fn counting_fetcher(calls: Arc<AtomicUsize>, lifetime: Duration, delay: Duration) -> FetchToken {
        Arc::new(move |region: String| {
            let calls = calls.clone();
            Box::pin(async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(delay).await;
                let raw = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{region}-{n}"));
                Ok((raw, SystemTime::now() + lifetime))
            })
        })
    }

    #[tokio::test]
    async fn tokens_are_cached_until_shortly_before_expiry() {
        let metrics = Metrics::new();
        let calls = Arc::new(AtomicUsize::new(0));
        // Lives 12 h, refreshed 15 min before: cached.
        let auth = EcrAuth::new(
            counting_fetcher(calls.clone(), Duration::from_secs(12 * 3600), Duration::ZERO),
            Duration::from_secs(900),
        );
        let host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
        let first = auth.credentials(host, &metrics).await.unwrap().unwrap();
        assert_eq!(first.username.as_deref(), Some("AWS"));
        assert_eq!(first.password.as_deref(), Some("eu-west-1-1"));
        let second = auth.credentials(host, &metrics).await.unwrap().unwrap();
        assert_eq!(second, first);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Another account in the same region shares the token; another region does not.
        auth.credentials("210987654321.dkr.ecr.eu-west-1.amazonaws.com", &metrics).await.unwrap().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let other = auth.credentials("123456789012.dkr.ecr.us-east-1.amazonaws.com", &metrics).await.unwrap().unwrap();
        assert_eq!(other.password.as_deref(), Some("us-east-1-2"));
        assert!(auth.credentials("registry.example.com", &metrics).await.is_none());
        assert_eq!(metrics.counter("runner_ecr_token_requests_total", &[("result", "cached")]), 2.0);
        assert_eq!(metrics.counter("runner_ecr_token_requests_total", &[("result", "fetched")]), 2.0);

        // A token within the refresh margin of its expiry is fetched again each time.
        let calls = Arc::new(AtomicUsize::new(0));
        let auth = EcrAuth::new(
            counting_fetcher(calls.clone(), Duration::from_secs(600), Duration::ZERO),
            Duration::from_secs(900),
        );
        auth.token("eu-west-1", &metrics).await.unwrap();
        auth.token("eu-west-1", &metrics).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let metrics = Metrics::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let auth = EcrAuth::new(
            counting_fetcher(calls.clone(), Duration::from_secs(3600), Duration::from_millis(100)),
            Duration::from_secs(60),
        );
        let (a, b, c) = tokio::join!(auth.token("r", &metrics), auth.token("r", &metrics), auth.token("r", &metrics));
        assert_eq!(a.unwrap(), b.unwrap());
        assert!(c.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[cfg(feature = "ecr")]
    #[test]
    fn a_credentials_failure_is_named_with_the_chains_report() {
        use aws_credential_types::provider::error::CredentialsError;

        #[derive(Debug)]
        struct Dispatch(CredentialsError);
        impl fmt::Display for Dispatch {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("dispatch failure")
            }
        }
        impl std::error::Error for Dispatch {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = Dispatch(CredentialsError::not_loaded("no credentials found in chain. Attempted:\n  A: x\n  B: y"));
        assert_eq!(
            sdk::describe(&err),
            "could not get AWS credentials: the credential provider was not enabled: \
             no credentials found in chain. Attempted: A: x; B: y"
        );
    }

    #[tokio::test]
    async fn failures_are_reported_and_not_cached() {
        let metrics = Metrics::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let auth = EcrAuth::new(
            Arc::new(move |_region| {
                counter.fetch_add(1, Ordering::SeqCst);
                Box::pin(async { Err::<(String, SystemTime), _>("AccessDenied".to_string()) })
            }),
            Duration::from_secs(60),
        );
        let err = auth.token("eu-west-1", &metrics).await.unwrap_err();
        assert!(err.contains("eu-west-1") && err.contains("AccessDenied"), "{err}");
        assert!(auth.token("eu-west-1", &metrics).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
