//! Who holds a stack's lock.

use serde::{Deserialize, Serialize};

/// Written where the lock lives, so that others can see who holds it and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Random, unique per lock; `cairn unlock` takes it.
    pub id: String,
    /// The command that took the lock, e.g. `deploy`.
    pub operation: String,
    /// `user@host`.
    pub who: String,
    pub host: String,
    pub pid: u32,
    /// cairn's version.
    pub version: String,
    /// When the lock was taken (RFC 3339, UTC).
    pub created: String,
}

impl LockInfo {
    pub fn new(operation: &str) -> LockInfo {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
        LockInfo {
            id: random_id(),
            operation: operation.to_string(),
            who: format!("{user}@{host}"),
            host,
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            created: now_rfc3339(),
        }
    }
}

/// 128 random bits as 32 hex digits.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The current time, RFC 3339 in UTC, to the second.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
