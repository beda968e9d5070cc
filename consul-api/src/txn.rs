//! Atomic multi-key transactions: `/v1/txn`.

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::client::{decode_json, http_error};
use crate::error::{TxnError, MAX_TXN_OPS};
use crate::kv::{KvPair, WireKvPair};
use crate::{Client, Error};

/// One KV operation of a transaction.
///
/// All operations of a transaction succeed or none does. The `check-*`
/// operations write nothing; they only make the whole transaction fail when
/// their condition does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxnOp {
    /// Write `key` unconditionally.
    Set {
        /// Key to write.
        key: String,
        /// New value.
        value: Vec<u8>,
        /// Optional user flags.
        flags: Option<u64>,
    },
    /// Write `key` only if its modify index is `index` (0: only if absent).
    Cas {
        /// Key to write.
        key: String,
        /// New value.
        value: Vec<u8>,
        /// Optional user flags.
        flags: Option<u64>,
        /// Expected modify index.
        index: u64,
    },
    /// Read `key`; the transaction fails if it does not exist.
    Get {
        /// Key to read.
        key: String,
    },
    /// Read every key under `prefix`.
    GetTree {
        /// Prefix to read.
        prefix: String,
    },
    /// Delete `key` (succeeds if it is absent).
    Delete {
        /// Key to delete.
        key: String,
    },
    /// Delete every key under `prefix`.
    DeleteTree {
        /// Prefix to delete.
        prefix: String,
    },
    /// Delete `key` only if its modify index is `index`.
    DeleteCas {
        /// Key to delete.
        key: String,
        /// Expected modify index.
        index: u64,
    },
    /// Fail unless `key`'s modify index is `index`.
    CheckIndex {
        /// Key to check.
        key: String,
        /// Expected modify index.
        index: u64,
    },
    /// Fail unless `key` is locked by `session`.
    CheckSession {
        /// Key to check.
        key: String,
        /// Session expected to hold the lock.
        session: String,
    },
    /// Fail if `key` exists.
    CheckNotExists {
        /// Key to check.
        key: String,
    },
    /// Acquire the lock on `key` for `session`, writing `value`.
    Lock {
        /// Key to lock.
        key: String,
        /// New value.
        value: Vec<u8>,
        /// Session taking the lock.
        session: String,
    },
    /// Release `session`'s lock on `key`, writing `value`.
    Unlock {
        /// Key to unlock.
        key: String,
        /// New value.
        value: Vec<u8>,
        /// Session holding the lock.
        session: String,
    },
}

impl TxnOp {
    /// [`TxnOp::Set`] without flags.
    pub fn set(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        TxnOp::Set { key: key.into(), value: value.into(), flags: None }
    }

    /// [`TxnOp::Cas`] without flags.
    pub fn cas(key: impl Into<String>, value: impl Into<Vec<u8>>, index: u64) -> Self {
        TxnOp::Cas { key: key.into(), value: value.into(), flags: None, index }
    }

    /// [`TxnOp::Get`].
    pub fn get(key: impl Into<String>) -> Self {
        TxnOp::Get { key: key.into() }
    }

    /// [`TxnOp::Delete`].
    pub fn delete(key: impl Into<String>) -> Self {
        TxnOp::Delete { key: key.into() }
    }

    /// [`TxnOp::DeleteCas`].
    pub fn delete_cas(key: impl Into<String>, index: u64) -> Self {
        TxnOp::DeleteCas { key: key.into(), index }
    }

    /// [`TxnOp::CheckIndex`].
    pub fn check_index(key: impl Into<String>, index: u64) -> Self {
        TxnOp::CheckIndex { key: key.into(), index }
    }

    /// [`TxnOp::CheckSession`].
    pub fn check_session(key: impl Into<String>, session: impl Into<String>) -> Self {
        TxnOp::CheckSession { key: key.into(), session: session.into() }
    }

    /// [`TxnOp::CheckNotExists`].
    pub fn check_not_exists(key: impl Into<String>) -> Self {
        TxnOp::CheckNotExists { key: key.into() }
    }

    fn to_wire(&self) -> WireOp<'_> {
        let b64 = |v: &[u8]| Some(base64::engine::general_purpose::STANDARD.encode(v));
        let op = |verb, key: &str| WireKvOp {
            verb,
            key: key.to_owned(),
            value: None,
            flags: None,
            index: None,
            session: None,
        };
        let kv = match self {
            TxnOp::Set { key, value, flags } => WireKvOp { value: b64(value), flags: *flags, ..op("set", key) },
            TxnOp::Cas { key, value, flags, index } => {
                WireKvOp { value: b64(value), flags: *flags, index: Some(*index), ..op("cas", key) }
            }
            TxnOp::Get { key } => op("get", key),
            TxnOp::GetTree { prefix } => op("get-tree", prefix),
            TxnOp::Delete { key } => op("delete", key),
            TxnOp::DeleteTree { prefix } => op("delete-tree", prefix),
            TxnOp::DeleteCas { key, index } => WireKvOp { index: Some(*index), ..op("delete-cas", key) },
            TxnOp::CheckIndex { key, index } => WireKvOp { index: Some(*index), ..op("check-index", key) },
            TxnOp::CheckSession { key, session } => WireKvOp { session: Some(session), ..op("check-session", key) },
            TxnOp::CheckNotExists { key } => op("check-not-exists", key),
            TxnOp::Lock { key, value, session } => {
                WireKvOp { value: b64(value), session: Some(session), ..op("lock", key) }
            }
            TxnOp::Unlock { key, value, session } => {
                WireKvOp { value: b64(value), session: Some(session), ..op("unlock", key) }
            }
        };
        WireOp { kv }
    }
}

/// The results of a successful transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TxnResults {
    /// KV entries returned by the operations, in operation order. `Get` and
    /// `GetTree` return full entries; writes, locks, `CheckIndex` and
    /// `CheckSession` return the entry without its value; deletes and
    /// `CheckNotExists` return nothing.
    pub results: Vec<KvPair>,
}

#[derive(Serialize)]
struct WireOp<'a> {
    #[serde(rename = "KV")]
    kv: WireKvOp<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct WireKvOp<'a> {
    verb: &'static str,
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireTxnResponse {
    #[serde(default)]
    results: Option<Vec<WireTxnResult>>,
    #[serde(default)]
    errors: Option<Vec<WireTxnError>>,
}

#[derive(Deserialize)]
struct WireTxnResult {
    #[serde(rename = "KV", default)]
    kv: Option<WireKvPair>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireTxnError {
    op_index: usize,
    what: String,
}

impl Client {
    /// Runs `ops` atomically (`PUT /v1/txn`).
    ///
    /// Fails with [`Error::TxnTooLarge`] without sending anything if there
    /// are more than 64 operations, and with [`Error::TxnFailed`] listing the
    /// failing operations if Consul rolled the transaction back. Never retried.
    pub async fn txn(&self, ops: Vec<TxnOp>) -> Result<TxnResults, Error> {
        const OP: &str = "txn";
        if ops.len() > MAX_TXN_OPS {
            return Err(Error::TxnTooLarge { ops: ops.len() });
        }
        let wire: Vec<WireOp<'_>> = ops.iter().map(TxnOp::to_wire).collect();
        let body = serde_json::to_vec(&wire).map_err(|e| Error::Decode {
            operation: OP,
            key: None,
            message: format!("cannot encode request ({e})"),
        })?;
        let mut call = self.call(OP, None, Method::PUT, self.url(&["txn"], None));
        call.body = Some(body);
        let resp = self.send(call).await?;
        match resp.status {
            s if s.is_success() => {
                let wire: WireTxnResponse = decode_json(&resp, OP, None)?;
                let results = wire
                    .results
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|r| r.kv)
                    .map(|kv| kv.decode(OP))
                    .collect::<Result<_, _>>()?;
                Ok(TxnResults { results })
            }
            StatusCode::CONFLICT => match decode_json::<WireTxnResponse>(&resp, OP, None) {
                Ok(WireTxnResponse { errors: Some(errors), .. }) => Err(Error::TxnFailed {
                    errors: errors.into_iter().map(|e| TxnError { op_index: e.op_index, what: e.what }).collect(),
                }),
                _ => Err(http_error(resp, OP, None)),
            },
            _ => Err(http_error(resp, OP, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        let ops = [
            TxnOp::set("a", "hi"),
            TxnOp::Cas { key: "b".into(), value: vec![0, 255], flags: Some(7), index: 3 },
            TxnOp::check_session("c", "sid"),
            TxnOp::check_not_exists("d"),
        ];
        let wire: Vec<_> = ops.iter().map(TxnOp::to_wire).collect();
        assert_eq!(
            serde_json::to_value(&wire).unwrap(),
            serde_json::json!([
                {"KV": {"Verb": "set", "Key": "a", "Value": "aGk="}},
                {"KV": {"Verb": "cas", "Key": "b", "Value": "AP8=", "Flags": 7, "Index": 3}},
                {"KV": {"Verb": "check-session", "Key": "c", "Session": "sid"}},
                {"KV": {"Verb": "check-not-exists", "Key": "d"}},
            ])
        );
    }
}
