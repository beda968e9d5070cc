//! The crate's single error type.

use std::fmt;

use reqwest::StatusCode;

/// Maximum number of operations Consul accepts in one transaction.
pub const MAX_TXN_OPS: usize = 64;

/// Everything that can go wrong talking to Consul.
///
/// Every variant that concerns a request names the operation (for example
/// `"kv get"`) and, where there is one, the key, prefix or session id involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client configuration is invalid (bad address, unreadable
    /// certificate, malformed environment variable, ...).
    #[error("invalid Consul client configuration: {message}")]
    Config {
        /// What is wrong, naming the setting or environment variable.
        message: String,
    },

    /// A key cannot be addressed through Consul's HTTP path: it has an empty
    /// (`a//b`, `/a`), `.` or `..` segment, which the agent would redirect to
    /// a different key. The request was not sent.
    #[error("consul {operation} {key:?}: invalid key: {reason}")]
    InvalidKey {
        /// The operation that was attempted.
        operation: &'static str,
        /// The rejected key or prefix.
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// Consul answered with an unexpected HTTP status.
    #[error("consul {operation}{}: HTTP {status}: {}", fmt_key(.key), fmt_body(.message))]
    Http {
        /// The operation that failed, e.g. `"kv put"`.
        operation: &'static str,
        /// Key, prefix or session id the operation was about.
        key: Option<String>,
        /// HTTP status returned by Consul.
        status: StatusCode,
        /// Consul's response body (its error text), trimmed.
        message: String,
    },

    /// The request could not be sent or the response not received
    /// (connection refused, TLS failure, timeout, ...).
    #[error("consul {operation}{}: request failed: {source}", fmt_key(.key))]
    Transport {
        /// The operation that failed.
        operation: &'static str,
        /// Key, prefix or session id the operation was about.
        key: Option<String>,
        /// The underlying HTTP client error.
        #[source]
        source: reqwest::Error,
    },

    /// Consul's response could not be decoded.
    #[error("consul {operation}{}: cannot decode response: {message}", fmt_key(.key))]
    Decode {
        /// The operation whose response was malformed.
        operation: &'static str,
        /// Key, prefix or session id the operation was about.
        key: Option<String>,
        /// What could not be decoded.
        message: String,
    },

    /// A transaction was rolled back because one or more operations failed
    /// (HTTP 409).
    #[error("consul txn rolled back: {}", fmt_txn_errors(.errors))]
    TxnFailed {
        /// Per-operation failures reported by Consul.
        errors: Vec<TxnError>,
    },

    /// A transaction has more operations than Consul accepts; it was not sent.
    #[error("consul txn has {ops} operations, more than the limit of {max}", max = MAX_TXN_OPS)]
    TxnTooLarge {
        /// Number of operations in the rejected transaction.
        ops: usize,
    },
}

impl Error {
    /// The HTTP status Consul returned, for [`Error::Http`].
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::Config { message: message.into() }
    }
}

/// One failed operation of a rolled-back transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TxnError {
    /// Zero-based index of the failing operation in the submitted list.
    pub op_index: usize,
    /// Consul's description of the failure.
    pub what: String,
}

impl fmt::Display for TxnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "operation {}: {}", self.op_index, self.what)
    }
}

fn fmt_key(key: &Option<String>) -> String {
    match key {
        Some(k) => format!(" {k:?}"),
        None => String::new(),
    }
}

fn fmt_body(message: &str) -> &str {
    if message.is_empty() {
        "(empty response body)"
    } else {
        message
    }
}

fn fmt_txn_errors(errors: &[TxnError]) -> String {
    if errors.is_empty() {
        return "no error details".to_owned();
    }
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_operation_and_key() {
        let e = Error::Http {
            operation: "kv put",
            key: Some("a/b".into()),
            status: StatusCode::FORBIDDEN,
            message: "Permission denied".into(),
        };
        assert_eq!(e.to_string(), "consul kv put \"a/b\": HTTP 403 Forbidden: Permission denied");
        assert_eq!(e.status(), Some(StatusCode::FORBIDDEN));

        let e = Error::TxnFailed { errors: vec![TxnError { op_index: 1, what: "boom".into() }] };
        assert_eq!(e.to_string(), "consul txn rolled back: operation 1: boom");
        assert_eq!(
            Error::TxnTooLarge { ops: 65 }.to_string(),
            "consul txn has 65 operations, more than the limit of 64"
        );
    }
}
