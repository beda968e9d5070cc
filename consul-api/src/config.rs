//! Client configuration, explicit or from the standard `CONSUL_*` environment
//! variables.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

use crate::Error;

/// Default agent address when none is configured.
pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:8500";

/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How idempotent requests are retried.
///
/// Only idempotent calls (reads, session renew/info/list, plain deletes) are
/// ever retried, and only after a transport error or an HTTP 5xx answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, including the first (1 disables retries).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for every further retry.
    pub initial_backoff: Duration,
    /// Upper bound of the delay between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(400),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }
    }

    /// Delay before retry number `retry` (1-based).
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// Settings for a [`Client`](crate::Client).
///
/// Build it from the environment with [`Config::from_env`], or explicitly:
///
/// ```
/// # use std::time::Duration;
/// let config = consul_api::Config::new("https://consul.example:8501")?
///     .with_token("secret")
///     .with_timeout(Duration::from_secs(10));
/// # Ok::<(), consul_api::Error>(())
/// ```
///
/// The `Debug` output redacts the token.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Base URL of the agent's HTTP API (`http` or `https`).
    pub address: Url,
    /// ACL token, sent as the `X-Consul-Token` header.
    pub token: Option<String>,
    /// PEM file with the CA certificate(s) that sign the agent's certificate.
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (requires `client_key`).
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Whether to verify the agent's TLS certificate (default `true`).
    pub verify_tls: bool,
    /// Timeout of one request. Blocking queries get their wait time on top.
    pub timeout: Duration,
    /// Retry policy for idempotent requests.
    pub retry: RetryPolicy,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("address", &self.address.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_cert", &self.ca_cert)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("verify_tls", &self.verify_tls)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

impl Default for Config {
    /// `http://127.0.0.1:8500`, no token, TLS verification on, 30 s timeout.
    fn default() -> Self {
        Config {
            address: Url::parse(DEFAULT_ADDRESS).expect("default address is a valid URL"),
            token: None,
            ca_cert: None,
            client_cert: None,
            client_key: None,
            verify_tls: true,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }
}

impl Config {
    /// Default configuration pointing at `address` (`host:port`,
    /// `http://host:port` or `https://host:port`).
    pub fn new(address: &str) -> Result<Self, Error> {
        Ok(Config { address: parse_address(address, false, "address")?, ..Config::default() })
    }

    /// Sets the ACL token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Sets the CA certificate file (PEM).
    pub fn with_ca_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_cert = Some(path.into());
        self
    }

    /// Sets the client certificate and key files (PEM) for mutual TLS.
    pub fn with_client_identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert = Some(cert.into());
        self.client_key = Some(key.into());
        self
    }

    /// Enables or disables verification of the agent's TLS certificate.
    pub fn with_verify_tls(mut self, verify: bool) -> Self {
        self.verify_tls = verify;
        self
    }

    /// Sets the per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the retry policy for idempotent requests.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Reads the standard Consul environment variables:
    ///
    /// | variable | meaning |
    /// | --- | --- |
    /// | `CONSUL_HTTP_ADDR` | `host:port`, `http://…` or `https://…` (default `127.0.0.1:8500`) |
    /// | `CONSUL_HTTP_SSL` | `true` makes a scheme-less address use `https` |
    /// | `CONSUL_HTTP_TOKEN` | ACL token |
    /// | `CONSUL_CACERT` | CA certificate file |
    /// | `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY` | client certificate and key |
    /// | `CONSUL_HTTP_SSL_VERIFY` | `true`/`false`/`1`/`0` (default `true`) |
    ///
    /// Empty variables count as unset.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Config::from_env`], but reads variables through `lookup`
    /// (returning `None` for unset ones) instead of the process environment.
    pub fn from_lookup<F>(lookup: F) -> Result<Self, Error>
    where
        F: Fn(&str) -> Option<String>,
    {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let bool_var =
            |name: &str| -> Result<Option<bool>, Error> { var(name).map(|v| parse_bool(name, &v)).transpose() };

        let use_https = bool_var("CONSUL_HTTP_SSL")?.unwrap_or(false);
        let address = match var("CONSUL_HTTP_ADDR") {
            Some(addr) => parse_address(&addr, use_https, "CONSUL_HTTP_ADDR")?,
            None if use_https => parse_address("127.0.0.1:8500", true, "CONSUL_HTTP_ADDR")?,
            None => Config::default().address,
        };
        Ok(Config {
            address,
            token: var("CONSUL_HTTP_TOKEN").map(|t| t.trim().to_owned()),
            ca_cert: var("CONSUL_CACERT").map(PathBuf::from),
            client_cert: var("CONSUL_CLIENT_CERT").map(PathBuf::from),
            client_key: var("CONSUL_CLIENT_KEY").map(PathBuf::from),
            verify_tls: bool_var("CONSUL_HTTP_SSL_VERIFY")?.unwrap_or(true),
            ..Config::default()
        })
    }
}

fn parse_bool(name: &str, value: &str) -> Result<bool, Error> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Error::config(format!("{name} must be true, false, 1 or 0, got {value:?}"))),
    }
}

/// Parses an agent address; `setting` names where it came from for errors.
fn parse_address(raw: &str, default_https: bool, setting: &str) -> Result<Url, Error> {
    let raw = raw.trim();
    let with_scheme = if raw.contains("://") {
        raw.to_owned()
    } else if default_https {
        format!("https://{raw}")
    } else {
        format!("http://{raw}")
    };
    let invalid = |why: &str| Error::config(format!("{setting} {raw:?} is not a valid address: {why}"));
    let url = Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string()))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(invalid(&format!("unsupported scheme {other:?} (use http or https)"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("missing host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not contain a query or fragment"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Config, Error> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn empty_environment_gives_defaults() {
        let c = from(&[]).unwrap();
        assert_eq!(c.address.as_str(), "http://127.0.0.1:8500/");
        assert_eq!(c.token, None);
        assert_eq!(c.ca_cert, None);
        assert!(c.verify_tls);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn address_forms() {
        let addr = |v: &str| from(&[("CONSUL_HTTP_ADDR", v)]).unwrap().address.to_string();
        assert_eq!(addr("10.0.0.5:8500"), "http://10.0.0.5:8500/");
        assert_eq!(addr("consul.local:8500"), "http://consul.local:8500/");
        assert_eq!(addr("http://consul.local:8500"), "http://consul.local:8500/");
        assert_eq!(addr("https://consul.local:8501"), "https://consul.local:8501/");
        assert_eq!(addr("  https://consul.local  "), "https://consul.local/");
        assert_eq!(addr(""), "http://127.0.0.1:8500/");

        let https = from(&[("CONSUL_HTTP_ADDR", "h:8501"), ("CONSUL_HTTP_SSL", "true")]).unwrap();
        assert_eq!(https.address.as_str(), "https://h:8501/");
    }

    #[test]
    fn bad_addresses_name_the_variable() {
        for bad in ["unix:///tmp/consul.sock", "http://", "http://h:8500/?x=1", "h:notaport"] {
            let err = from(&[("CONSUL_HTTP_ADDR", bad)]).unwrap_err();
            assert!(matches!(err, Error::Config { .. }), "{bad}: {err}");
            assert!(err.to_string().contains("CONSUL_HTTP_ADDR"), "{err}");
        }
    }

    #[test]
    fn token_and_tls_files() {
        let c = from(&[
            ("CONSUL_HTTP_TOKEN", "s3cr3t\n"),
            ("CONSUL_CACERT", "/etc/consul/ca.pem"),
            ("CONSUL_CLIENT_CERT", "/etc/consul/cli.pem"),
            ("CONSUL_CLIENT_KEY", "/etc/consul/cli-key.pem"),
        ])
        .unwrap();
        assert_eq!(c.token.as_deref(), Some("s3cr3t"));
        assert_eq!(c.ca_cert, Some(PathBuf::from("/etc/consul/ca.pem")));
        assert_eq!(c.client_cert, Some(PathBuf::from("/etc/consul/cli.pem")));
        assert_eq!(c.client_key, Some(PathBuf::from("/etc/consul/cli-key.pem")));
        assert!(!format!("{c:?}").contains("s3cr3t"), "Debug must redact the token");
    }

    #[test]
    fn ssl_verify_values() {
        let verify = |v: &str| from(&[("CONSUL_HTTP_SSL_VERIFY", v)]).map(|c| c.verify_tls);
        assert!(verify("true").unwrap());
        assert!(verify("TRUE").unwrap());
        assert!(verify("1").unwrap());
        assert!(!verify("false").unwrap());
        assert!(!verify("0").unwrap());
        let err = verify("maybe").unwrap_err();
        assert!(err.to_string().contains("CONSUL_HTTP_SSL_VERIFY"), "{err}");
        assert!(err.to_string().contains("maybe"), "{err}");
        let err = from(&[("CONSUL_HTTP_SSL", "yes")]).unwrap_err();
        assert!(err.to_string().contains("CONSUL_HTTP_SSL"), "{err}");
    }

    #[test]
    fn builder() {
        let c = Config::new("127.0.0.1:1234")
            .unwrap()
            .with_token("t")
            .with_verify_tls(false)
            .with_timeout(Duration::from_secs(3))
            .with_ca_cert("/ca.pem")
            .with_client_identity("/c.pem", "/k.pem")
            .with_retry(RetryPolicy::none());
        assert_eq!(c.address.as_str(), "http://127.0.0.1:1234/");
        assert_eq!(c.token.as_deref(), Some("t"));
        assert!(!c.verify_tls);
        assert_eq!(c.timeout, Duration::from_secs(3));
        assert_eq!(c.retry.max_attempts, 1);
        assert!(Config::new("ftp://x").is_err());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_millis(50));
        assert_eq!(p.backoff(2), Duration::from_millis(100));
        assert_eq!(p.backoff(3), Duration::from_millis(200));
        assert_eq!(p.backoff(4), Duration::from_millis(400));
        assert_eq!(p.backoff(10), Duration::from_millis(400));
        assert_eq!(p.backoff(100), Duration::from_millis(400));
    }
}
