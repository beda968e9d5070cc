//! The [`Client`] and the request plumbing shared by all endpoints:
//! URL building, the ACL header, timeouts and retries.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::{Config, Error};

/// Name of the header carrying the ACL token.
const TOKEN_HEADER: &str = "X-Consul-Token";
/// Name of the header carrying the blocking-query index.
const INDEX_HEADER: &str = "X-Consul-Index";
/// Longest Consul error body kept in [`Error::Http::message`].
const MAX_ERROR_BODY: usize = 2048;

/// An async client for one Consul agent.
///
/// Cheap to clone: clones share the connection pool and configuration.
/// Methods are grouped by endpoint: KV (`get`, `put`, ...), transactions
/// ([`Client::txn`]) and sessions (`session_*`).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    config: Arc<Config>,
}

/// One request as the endpoint modules describe it.
pub(crate) struct Call<'a> {
    /// Operation name for errors, e.g. `"kv get"`.
    pub operation: &'static str,
    /// Key, prefix or session id for errors.
    pub key: Option<&'a str>,
    pub method: Method,
    pub url: Url,
    pub body: Option<Vec<u8>>,
    /// Whether the call may be repeated safely (enables retries).
    pub idempotent: bool,
    /// Blocking-query wait, extending the timeout.
    pub wait: Option<Duration>,
}

/// A fully read response.
pub(crate) struct Response {
    pub status: StatusCode,
    pub index: Option<u64>,
    pub body: Vec<u8>,
}

impl Client {
    /// Creates a client. Reads the TLS files named in `config`; fails with
    /// [`Error::Config`] if they are unreadable or invalid.
    pub fn new(config: Config) -> Result<Client, Error> {
        let mut headers = HeaderMap::new();
        if let Some(token) = config.token.as_deref().filter(|t| !t.is_empty()) {
            let mut value = HeaderValue::from_str(token)
                .map_err(|_| Error::config("the ACL token contains characters not allowed in an HTTP header"))?;
            value.set_sensitive(true);
            headers.insert(TOKEN_HEADER, value);
        }

        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("consul-api/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.timeout)
            // The API never redirects; Consul's path cleaning does (for
            // `a//b`, `a/../b`), and following that would hit another key.
            .redirect(reqwest::redirect::Policy::none());

        if let Some(path) = &config.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| Error::config(format!("cannot read CA certificate {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::config(format!("invalid CA certificate {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(Error::config(format!(
                    "CA certificate file {} contains no PEM certificate",
                    path.display()
                )));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }

        match (&config.client_cert, &config.client_key) {
            (Some(cert), Some(key)) => {
                let read = |path: &std::path::Path, what: &str| {
                    std::fs::read(path)
                        .map_err(|e| Error::config(format!("cannot read client {what} {}: {e}", path.display())))
                };
                let mut pem = read(cert, "certificate")?;
                pem.push(b'\n');
                pem.extend(read(key, "key")?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    Error::config(format!(
                        "invalid client certificate {} or key {}: {e}",
                        cert.display(),
                        key.display()
                    ))
                })?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            _ => {
                return Err(Error::config(
                    "client_cert and client_key (CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY) must be set together",
                ))
            }
        }

        if !config.verify_tls {
            builder = builder.danger_accept_invalid_certs(true);
        }

        let http = builder.build().map_err(|e| Error::config(format!("cannot build HTTP client: {e}")))?;
        Ok(Client { http, config: Arc::new(config) })
    }

    /// Creates a client from the standard `CONSUL_*` environment variables
    /// (see [`Config::from_env`]).
    pub fn from_env() -> Result<Client, Error> {
        Client::new(Config::from_env()?)
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Address of the current Raft leader (`/v1/status/leader`), or an empty
    /// string while the cluster has none.
    pub async fn leader(&self) -> Result<String, Error> {
        let call = self.call("status leader", None, Method::GET, self.url(&["status", "leader"], None));
        let resp = self.send(call).await?;
        if !resp.status.is_success() {
            return Err(http_error(resp, "status leader", None));
        }
        decode_json(&resp, "status leader", None)
    }

    /// URL of `/v1/<segments>/<key>`; `key` is split on `/` and every
    /// segment percent-encoded.
    pub(crate) fn url(&self, segments: &[&str], key: Option<&str>) -> Url {
        let mut url = self.config.address.clone();
        {
            let mut path = url.path_segments_mut().expect("http(s) URLs always have a path");
            path.pop_if_empty().push("v1").extend(segments);
            if let Some(key) = key {
                path.extend(key.split('/'));
            }
        }
        url
    }

    /// A call with no body that is not retried; adjust fields as needed.
    pub(crate) fn call<'a>(&self, operation: &'static str, key: Option<&'a str>, method: Method, url: Url) -> Call<'a> {
        let idempotent = method == Method::GET;
        Call { operation, key, method, url, body: None, idempotent, wait: None }
    }

    /// Sends a call, retrying idempotent ones on transport errors and 5xx.
    /// Returns the response whatever its status.
    pub(crate) async fn send(&self, call: Call<'_>) -> Result<Response, Error> {
        let timeout = match call.wait {
            // Consul adds up to wait/16 of jitter to blocking queries.
            Some(wait) => wait + wait / 16 + self.config.timeout,
            None => self.config.timeout,
        };
        let policy = self.config.retry;
        let max_attempts = if call.idempotent { policy.max_attempts.max(1) } else { 1 };
        let mut attempt = 1;
        loop {
            let retry_left = attempt < max_attempts;
            match self.attempt(&call, timeout).await {
                Ok(resp) if resp.status.is_server_error() && retry_left => {}
                Ok(resp) => return Ok(resp),
                // A blocking query that timed out already waited a long time;
                // repeating it would multiply that.
                Err(e) if retry_left && !(call.wait.is_some() && e.is_timeout()) => {}
                Err(source) => {
                    return Err(Error::Transport {
                        operation: call.operation,
                        key: call.key.map(str::to_owned),
                        source,
                    })
                }
            }
            tokio::time::sleep(policy.backoff(attempt)).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, call: &Call<'_>, timeout: Duration) -> Result<Response, reqwest::Error> {
        let mut request = self.http.request(call.method.clone(), call.url.clone()).timeout(timeout);
        if let Some(body) = &call.body {
            request = request.body(body.clone());
        }
        let resp = request.send().await?;
        let status = resp.status();
        let index = resp.headers().get(INDEX_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
        let body = resp.bytes().await?.to_vec();
        Ok(Response { status, index, body })
    }
}

/// Checks that `key` survives Consul's HTTP path cleaning unchanged: no empty
/// segment except a trailing one (`prefix/`), no `.` or `..` segment.
pub(crate) fn check_key(operation: &'static str, key: &str) -> Result<(), Error> {
    let segments: Vec<&str> = key.split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        let reason = match *segment {
            "" if i < last => "empty path segment (leading or double slash)",
            "." | ".." => "`.` or `..` path segment",
            _ => continue,
        };
        return Err(Error::InvalidKey { operation, key: key.to_owned(), reason });
    }
    Ok(())
}

/// Builds [`Error::Http`] from an unexpected response.
pub(crate) fn http_error(resp: Response, operation: &'static str, key: Option<&str>) -> Error {
    let mut message = String::from_utf8_lossy(&resp.body).trim().to_owned();
    if message.len() > MAX_ERROR_BODY {
        let mut cut = MAX_ERROR_BODY;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    Error::Http { operation, key: key.map(str::to_owned), status: resp.status, message }
}

/// Decodes a JSON response body.
pub(crate) fn decode_json<T: DeserializeOwned>(
    resp: &Response,
    operation: &'static str,
    key: Option<&str>,
) -> Result<T, Error> {
    serde_json::from_slice(&resp.body).map_err(|e| Error::Decode {
        operation,
        key: key.map(str::to_owned),
        message: format!("invalid JSON ({e})"),
    })
}

/// The `X-Consul-Index` of a blocking-query response, sanitised as Consul
/// recommends: an index that went backwards resets to 0 (start over), and 0
/// otherwise becomes 1 so the next query blocks.
pub(crate) fn blocking_index(
    resp: &Response,
    previous: u64,
    operation: &'static str,
    key: Option<&str>,
) -> Result<u64, Error> {
    let index = resp.index.ok_or_else(|| Error::Decode {
        operation,
        key: key.map(str::to_owned),
        message: format!("missing or invalid {INDEX_HEADER} header"),
    })?;
    Ok(if index < previous { 0 } else { index.max(1) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(address: &str) -> Client {
        Client::new(Config::new(address).unwrap().with_token("s3cr3t-token")).unwrap()
    }

    #[test]
    fn urls_encode_each_key_segment() {
        let c = client("127.0.0.1:8500");
        let url = |key: &str| c.url(&["kv"], Some(key)).to_string();
        assert_eq!(url("a/b"), "http://127.0.0.1:8500/v1/kv/a/b");
        assert_eq!(url("a b?c#d%e"), "http://127.0.0.1:8500/v1/kv/a%20b%3Fc%23d%25e");
        assert_eq!(url("app/"), "http://127.0.0.1:8500/v1/kv/app/");
        assert_eq!(url(""), "http://127.0.0.1:8500/v1/kv/");
        assert_eq!(c.url(&["session", "list"], None).as_str(), "http://127.0.0.1:8500/v1/session/list");
    }

    #[test]
    fn keys_that_consul_would_redirect_are_rejected() {
        for ok in ["a", "a/b", "a/", "", "a.b/..c/.d", "a/b c"] {
            check_key("kv get", ok).unwrap();
        }
        for bad in ["/a", "a//b", "//", "a/./b", "a/..", ".", "../a"] {
            let err = check_key("kv get", bad).unwrap_err();
            assert!(matches!(err, Error::InvalidKey { .. }), "{bad}: {err:?}");
            assert!(err.to_string().starts_with(&format!("consul kv get {bad:?}")), "{err}");
        }
    }

    #[test]
    fn base_path_is_kept() {
        let c = client("https://proxy.example/consul/");
        assert_eq!(c.url(&["kv"], Some("k")).as_str(), "https://proxy.example/consul/v1/kv/k");
        let c = client("https://proxy.example/consul");
        assert_eq!(c.url(&["kv"], Some("k")).as_str(), "https://proxy.example/consul/v1/kv/k");
    }

    #[test]
    fn debug_output_hides_the_token() {
        let debug = format!("{:?}", client("127.0.0.1:8500"));
        assert!(!debug.contains("s3cr3t-token"), "{debug}");
    }

    #[test]
    fn invalid_token_is_a_config_error() {
        let err = Client::new(Config::default().with_token("bad\ntoken")).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{err:?}");
    }
}
