//! Authentication: HTTP basic against an htpasswd file of bcrypt hashes, and/or bearer tokens.
//!
//! bcrypt is slow on purpose (tens of milliseconds per check), too slow to pay on every request
//! of a client that sends the same header each time. A successful check is therefore cached,
//! keyed by the SHA-256 of the whole `Authorization` header value: the cache holds no password,
//! and a different password for the same user is a different key that pays bcrypt again.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::config::{AuthConfig, ConfigError};
use crate::error::ApiError;
use crate::AppState;

/// Entries kept before the cache is cleared; bounds memory against header spraying.
const CACHE_CAPACITY: usize = 10_000;

/// Who made a request; the rate limiter keys on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Authentication is off (`--insecure-no-auth`).
    Anonymous,
    User(Arc<str>),
    /// The index of the token in `auth.bearer_tokens`; the token itself is never logged.
    Token(usize),
}

impl Identity {
    /// A stable key for per-client limits, or None when the client IP must be used.
    pub fn key(&self) -> Option<String> {
        match self {
            Identity::Anonymous => None,
            Identity::User(user) => Some(format!("user:{user}")),
            Identity::Token(index) => Some(format!("token:{index}")),
        }
    }
}

#[derive(Debug)]
pub struct Authenticator {
    enabled: bool,
    /// user -> bcrypt hash
    users: HashMap<String, String>,
    /// SHA-256 of each accepted bearer token.
    tokens: Vec<[u8; 32]>,
    /// SHA-256 of a verified `Authorization` value -> the user it proved.
    cache: Mutex<HashMap<[u8; 32], Arc<str>>>,
}

impl Authenticator {
    pub fn from_config(config: &AuthConfig) -> Result<Authenticator, ConfigError> {
        let users = match &config.htpasswd_file {
            Some(path) => load_htpasswd(path)?,
            None => HashMap::new(),
        };
        Ok(Authenticator {
            enabled: !config.insecure_no_auth,
            users,
            tokens: config.bearer_tokens.iter().map(|t| sha256(t.as_bytes())).collect(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether any credential could ever be accepted (an enabled authenticator with no users and
    /// no tokens refuses everything, which startup reports as a configuration error).
    pub fn has_credentials(&self) -> bool {
        !self.users.is_empty() || !self.tokens.is_empty()
    }

    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, ApiError> {
        if !self.enabled {
            return Ok(Identity::Anonymous);
        }
        let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(ApiError::Unauthorized)?;
        let (scheme, rest) = value.split_once(' ').ok_or(ApiError::Unauthorized)?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            let digest = sha256(rest.as_bytes());
            return self.tokens.iter().position(|t| *t == digest).map(Identity::Token).ok_or(ApiError::Unauthorized);
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(ApiError::Unauthorized);
        }
        let key = sha256(value.as_bytes());
        if let Some(user) = self.cache.lock().expect("auth cache").get(&key) {
            return Ok(Identity::User(user.clone()));
        }
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest).map_err(|_| ApiError::Unauthorized)?;
        let decoded = String::from_utf8(decoded).map_err(|_| ApiError::Unauthorized)?;
        let (user, password) = decoded.split_once(':').ok_or(ApiError::Unauthorized)?;
        let hash = self.users.get(user).ok_or(ApiError::Unauthorized)?.clone();
        let password = password.to_string();
        // bcrypt takes milliseconds of CPU: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .map_err(|e| ApiError::Internal(format!("auth task failed: {e}")))?
            .unwrap_or(false);
        if !ok {
            return Err(ApiError::Unauthorized);
        }
        let mut cache = self.cache.lock().expect("auth cache");
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        let user: Arc<str> = Arc::from(user);
        cache.insert(key, user.clone());
        Ok(Identity::User(user))
    }

    #[cfg(test)]
    fn cached(&self) -> usize {
        self.cache.lock().unwrap().len()
    }
}

/// Tower layer (via `axum::middleware::from_fn_with_state`): 401 unless authenticated; puts the
/// [`Identity`] into the request's extensions for the layers and handlers after it.
pub async fn require_auth(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let identity = state.auth().authenticate(request.headers()).await?;
    request.extensions_mut().insert(identity);
    Ok(next.run(request).await)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Reads `user:hash` lines; blank lines and `#` comments are skipped. Only bcrypt hashes
/// (`$2a$`, `$2b$`, `$2y$`) are accepted, as `htpasswd -B` writes them.
pub fn load_htpasswd(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Htpasswd { path: path.to_path_buf(), message: e.to_string() })?;
    parse_htpasswd(&text).map_err(|message| ConfigError::Htpasswd { path: path.to_path_buf(), message })
}

fn parse_htpasswd(text: &str) -> Result<HashMap<String, String>, String> {
    let mut users = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, hash) = line.split_once(':').ok_or_else(|| format!("line {}: expected user:hash", n + 1))?;
        if !["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
            return Err(format!("line {}: user {user:?} does not have a bcrypt hash (use `htpasswd -B`)", n + 1));
        }
        users.insert(user.to_string(), hash.to_string());
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {token}")).unwrap());
        headers
    }

    fn authenticator() -> Authenticator {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        Authenticator {
            enabled: true,
            users: parse_htpasswd(&format!("# comment\n\nalice:{hash}\n")).unwrap(),
            tokens: vec![sha256(b"tok-1"), sha256(b"tok-2")],
            cache: Mutex::new(HashMap::new()),
        }
    }

    #[tokio::test]
    async fn basic_auth_checks_the_password_and_caches_success() {
        let auth = authenticator();
        assert_eq!(auth.authenticate(&basic("alice", "s3cret")).await.unwrap(), Identity::User("alice".into()));
        assert_eq!(auth.cached(), 1);
        assert_eq!(auth.authenticate(&basic("alice", "s3cret")).await.unwrap(), Identity::User("alice".into()));
        assert_eq!(auth.cached(), 1);
        assert!(auth.authenticate(&basic("alice", "wrong")).await.is_err());
        assert!(auth.authenticate(&basic("bob", "s3cret")).await.is_err());
        assert_eq!(auth.cached(), 1);
        assert!(auth.authenticate(&HeaderMap::new()).await.is_err());
    }

    #[tokio::test]
    async fn bearer_tokens() {
        let auth = authenticator();
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer tok-2"));
        assert_eq!(auth.authenticate(&headers).await.unwrap(), Identity::Token(1));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer nope"));
        assert!(auth.authenticate(&headers).await.is_err());
    }

    #[test]
    fn htpasswd_rejects_non_bcrypt_hashes() {
        let err = parse_htpasswd("bob:$apr1$abc$def\n").unwrap_err();
        assert!(err.contains("line 1") && err.contains("bcrypt"), "{err}");
    }
}
