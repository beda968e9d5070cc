//! Sessions (`/v1/session`), used to hold KV locks.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::client::{decode_json, http_error, Response};
use crate::{duration, Client, Error};

/// What happens to the locks of a session when it is invalidated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SessionBehavior {
    /// Locks are released; the keys stay (Consul's default).
    #[default]
    Release,
    /// Locked keys are deleted.
    Delete,
}

impl SessionBehavior {
    fn as_str(self) -> &'static str {
        match self {
            SessionBehavior::Release => "release",
            SessionBehavior::Delete => "delete",
        }
    }
}

/// Parameters of a new session.
///
/// `SessionRequest::default()` (and [`SessionRequest::new`]) ask for a
/// session **without health checks** (`"Checks": []`), so it lives until it is
/// destroyed or its TTL runs out. Set `checks` to `None` to get Consul's
/// default instead (tie the session to the node's `serfHealth` check).
///
/// ```
/// # use std::time::Duration;
/// # use consul_api::{SessionBehavior, SessionRequest};
/// let req = SessionRequest::new("deploy-lock")
///     .with_ttl(Duration::from_secs(15))
///     .with_lock_delay(Duration::ZERO)
///     .with_behavior(SessionBehavior::Release);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    /// Human-readable name (omitted when empty).
    pub name: String,
    /// Node to attach the session to; `None`: the agent's node.
    pub node: Option<String>,
    /// Session TTL (Consul accepts 10 s to 24 h); `None`: no TTL.
    pub ttl: Option<Duration>,
    /// What to do with held locks on invalidation.
    pub behavior: SessionBehavior,
    /// Time after invalidation during which released locks cannot be
    /// re-acquired; `None`: Consul's default of 15 s.
    pub lock_delay: Option<Duration>,
    /// Health check ids the session depends on (sent as `Checks`).
    /// `Some(vec![])` (the default): no checks. `None`: field omitted, so
    /// Consul uses the node's `serfHealth` check.
    pub checks: Option<Vec<String>>,
}

impl Default for SessionRequest {
    fn default() -> Self {
        SessionRequest {
            name: String::new(),
            node: None,
            ttl: None,
            behavior: SessionBehavior::Release,
            lock_delay: None,
            checks: Some(Vec::new()),
        }
    }
}

impl SessionRequest {
    /// A request for a session named `name` with the defaults described on
    /// [`SessionRequest`].
    pub fn new(name: impl Into<String>) -> Self {
        SessionRequest { name: name.into(), ..SessionRequest::default() }
    }

    /// Sets the TTL.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets the invalidation behavior.
    pub fn with_behavior(mut self, behavior: SessionBehavior) -> Self {
        self.behavior = behavior;
        self
    }

    /// Sets the lock delay (`Duration::ZERO` disables it).
    pub fn with_lock_delay(mut self, lock_delay: Duration) -> Self {
        self.lock_delay = Some(lock_delay);
        self
    }

    /// Sets the node the session belongs to.
    pub fn with_node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// Ties the session to these health checks (an empty list: none).
    pub fn with_checks(mut self, checks: Vec<String>) -> Self {
        self.checks = Some(checks);
        self
    }

    /// Omits `Checks` so Consul applies its default (`serfHealth`).
    pub fn with_default_checks(mut self) -> Self {
        self.checks = None;
        self
    }

    fn to_wire(&self) -> WireSessionRequest<'_> {
        WireSessionRequest {
            name: Some(self.name.as_str()).filter(|n| !n.is_empty()),
            node: self.node.as_deref(),
            ttl: self.ttl.map(duration::format),
            behavior: self.behavior.as_str(),
            lock_delay: self.lock_delay.map(duration::format),
            checks: self.checks.as_deref(),
        }
    }
}

/// A session as reported by Consul.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// Session id.
    pub id: String,
    /// Session name (may be empty).
    pub name: String,
    /// Node the session belongs to.
    pub node: String,
    /// Lock delay.
    pub lock_delay: Duration,
    /// Invalidation behavior.
    pub behavior: SessionBehavior,
    /// TTL, if the session has one.
    pub ttl: Option<Duration>,
    /// Node health checks the session depends on.
    pub node_checks: Vec<String>,
    /// Raft index at which the session was created.
    pub create_index: u64,
    /// Raft index of the session's last modification.
    pub modify_index: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct WireSessionRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a str>,
    #[serde(rename = "TTL", skip_serializing_if = "Option::is_none")]
    ttl: Option<String>,
    behavior: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    lock_delay: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checks: Option<&'a [String]>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireSessionInfo {
    #[serde(rename = "ID")]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    node: String,
    /// Nanoseconds.
    #[serde(default)]
    lock_delay: u64,
    #[serde(default)]
    behavior: String,
    #[serde(rename = "TTL", default)]
    ttl: String,
    #[serde(default)]
    node_checks: Option<Vec<String>>,
    /// Pre-1.7 agents report node checks here.
    #[serde(default)]
    checks: Option<Vec<String>>,
    #[serde(default)]
    create_index: u64,
    #[serde(default)]
    modify_index: u64,
}

impl WireSessionInfo {
    fn decode(self, operation: &'static str) -> Result<SessionInfo, Error> {
        let bad = |message: String| Error::Decode { operation, key: Some(self.id.clone()), message };
        let behavior = match self.behavior.as_str() {
            "" | "release" => SessionBehavior::Release,
            "delete" => SessionBehavior::Delete,
            other => return Err(bad(format!("unknown session behavior {other:?}"))),
        };
        let ttl = match self.ttl.as_str() {
            "" => None,
            s => Some(duration::parse(s).ok_or_else(|| bad(format!("invalid TTL {s:?}")))?),
        };
        Ok(SessionInfo {
            behavior,
            ttl,
            lock_delay: Duration::from_nanos(self.lock_delay),
            node_checks: self.node_checks.or(self.checks).unwrap_or_default(),
            create_index: self.create_index,
            modify_index: self.modify_index,
            id: self.id,
            name: self.name,
            node: self.node,
        })
    }
}

#[derive(Deserialize)]
struct WireSessionId {
    #[serde(rename = "ID")]
    id: String,
}

fn decode_sessions(resp: &Response, operation: &'static str, id: Option<&str>) -> Result<Vec<SessionInfo>, Error> {
    let wire: Option<Vec<WireSessionInfo>> = decode_json(resp, operation, id)?;
    wire.unwrap_or_default().into_iter().map(|s| s.decode(operation)).collect()
}

impl Client {
    /// Creates a session and returns its id. Never retried.
    pub async fn session_create(&self, request: &SessionRequest) -> Result<String, Error> {
        const OP: &str = "session create";
        let key = Some(request.name.as_str()).filter(|n| !n.is_empty());
        let body = serde_json::to_vec(&request.to_wire()).map_err(|e| Error::Decode {
            operation: OP,
            key: key.map(str::to_owned),
            message: format!("cannot encode request ({e})"),
        })?;
        let mut call = self.call(OP, key, Method::PUT, self.url(&["session", "create"], None));
        call.body = Some(body);
        let resp = self.send(call).await?;
        if !resp.status.is_success() {
            return Err(http_error(resp, OP, key));
        }
        let created: WireSessionId = decode_json(&resp, OP, key)?;
        Ok(created.id)
    }

    /// Renews a session's TTL. `None` if the session no longer exists
    /// (expired or destroyed), which means its locks are lost.
    pub async fn session_renew(&self, id: &str) -> Result<Option<SessionInfo>, Error> {
        const OP: &str = "session renew";
        let url = self.url(&["session", "renew"], Some(id));
        let mut call = self.call(OP, Some(id), Method::PUT, url);
        call.idempotent = true;
        let resp = self.send(call).await?;
        match resp.status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(decode_sessions(&resp, OP, Some(id))?.into_iter().next()),
            _ => Err(http_error(resp, OP, Some(id))),
        }
    }

    /// Destroys a session, releasing or deleting its locks. Destroying a
    /// missing session succeeds.
    pub async fn session_destroy(&self, id: &str) -> Result<(), Error> {
        const OP: &str = "session destroy";
        let url = self.url(&["session", "destroy"], Some(id));
        let mut call = self.call(OP, Some(id), Method::PUT, url);
        call.idempotent = true;
        let resp = self.send(call).await?;
        if !resp.status.is_success() {
            return Err(http_error(resp, OP, Some(id)));
        }
        Ok(())
    }

    /// Reads a session; `None` if it does not exist.
    pub async fn session_info(&self, id: &str) -> Result<Option<SessionInfo>, Error> {
        const OP: &str = "session info";
        let url = self.url(&["session", "info"], Some(id));
        let resp = self.send(self.call(OP, Some(id), Method::GET, url)).await?;
        match resp.status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(decode_sessions(&resp, OP, Some(id))?.into_iter().next()),
            _ => Err(http_error(resp, OP, Some(id))),
        }
    }

    /// Lists all sessions in the datacenter.
    pub async fn session_list(&self) -> Result<Vec<SessionInfo>, Error> {
        const OP: &str = "session list";
        let url = self.url(&["session", "list"], None);
        let resp = self.send(self.call(OP, None, Method::GET, url)).await?;
        if !resp.status.is_success() {
            return Err(http_error(resp, OP, None));
        }
        decode_sessions(&resp, OP, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format() {
        let req = SessionRequest::new("lock")
            .with_ttl(Duration::from_secs(15))
            .with_lock_delay(Duration::ZERO)
            .with_behavior(SessionBehavior::Delete);
        assert_eq!(
            serde_json::to_value(req.to_wire()).unwrap(),
            serde_json::json!({
                "Name": "lock", "TTL": "15s", "Behavior": "delete",
                "LockDelay": "0s", "Checks": []
            })
        );
        let default_checks = SessionRequest::default().with_default_checks();
        assert_eq!(serde_json::to_value(default_checks.to_wire()).unwrap(), serde_json::json!({"Behavior": "release"}));
    }
}
