//! The key/value store: `/v1/kv`.

use std::time::Duration;

use base64::Engine as _;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use crate::client::{blocking_index, check_key, decode_json, http_error, Call, Response};
use crate::{duration, Client, Error};

/// One key/value entry as stored by Consul.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KvPair {
    /// The full key.
    pub key: String,
    /// The value (decoded from base64; empty for a null value).
    pub value: Vec<u8>,
    /// Opaque user flags.
    pub flags: u64,
    /// Raft index at which the key was created.
    pub create_index: u64,
    /// Raft index of the last modification; use it for check-and-set.
    pub modify_index: u64,
    /// Number of times the lock on this key has been acquired.
    pub lock_index: u64,
    /// Session currently holding the lock, if any.
    pub session: Option<String>,
}

impl KvPair {
    /// The value as UTF-8 text, if it is valid UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

/// A KV entry as Consul encodes it in JSON.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WireKvPair {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    flags: u64,
    #[serde(default)]
    create_index: u64,
    #[serde(default)]
    modify_index: u64,
    #[serde(default)]
    lock_index: u64,
    #[serde(default)]
    session: Option<String>,
}

impl WireKvPair {
    pub(crate) fn decode(self, operation: &'static str) -> Result<KvPair, Error> {
        let value = match self.value {
            None => Vec::new(),
            Some(b64) => {
                base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()).map_err(|e| Error::Decode {
                    operation,
                    key: Some(self.key.clone()),
                    message: format!("value is not valid base64 ({e})"),
                })?
            }
        };
        Ok(KvPair {
            key: self.key,
            value,
            flags: self.flags,
            create_index: self.create_index,
            modify_index: self.modify_index,
            lock_index: self.lock_index,
            session: self.session.filter(|s| !s.is_empty()),
        })
    }
}

fn decode_pairs(resp: &Response, operation: &'static str, key: &str) -> Result<Vec<KvPair>, Error> {
    let wire: Option<Vec<WireKvPair>> = decode_json(resp, operation, Some(key))?;
    wire.unwrap_or_default().into_iter().map(|p| p.decode(operation)).collect()
}

/// Appends query parameters (`None` value: a bare flag like `?recurse`).
fn with_query(mut url: Url, pairs: &[(&str, Option<&str>)]) -> Url {
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            match value {
                Some(v) => query.append_pair(name, v),
                None => query.append_key_only(name),
            };
        }
    }
    url
}

impl Client {
    fn kv_url(&self, operation: &'static str, key: &str, query: &[(&str, Option<&str>)]) -> Result<Url, Error> {
        check_key(operation, key)?;
        Ok(with_query(self.url(&["kv"], Some(key)), query))
    }

    /// Sends a KV call whose answer is a JSON `true`/`false`.
    async fn kv_bool(&self, call: Call<'_>) -> Result<bool, Error> {
        let (operation, key) = (call.operation, call.key);
        let resp = self.send(call).await?;
        if !resp.status.is_success() {
            return Err(http_error(resp, operation, key));
        }
        decode_json(&resp, operation, key)
    }

    /// Reads one key; `None` if it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<KvPair>, Error> {
        const OP: &str = "kv get";
        let url = self.kv_url(OP, key, &[])?;
        let resp = self.send(self.call(OP, Some(key), Method::GET, url)).await?;
        match resp.status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(decode_pairs(&resp, OP, key)?.into_iter().next()),
            _ => Err(http_error(resp, OP, Some(key))),
        }
    }

    /// Reads the raw value of one key (`?raw`); `None` if it does not exist.
    pub async fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        const OP: &str = "kv get raw";
        let url = self.kv_url(OP, key, &[("raw", None)])?;
        let resp = self.send(self.call(OP, Some(key), Method::GET, url)).await?;
        match resp.status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(resp.body)),
            _ => Err(http_error(resp, OP, Some(key))),
        }
    }

    /// Reads every entry whose key starts with `prefix` (`?recurse`), sorted by
    /// key. Empty if there is none.
    pub async fn list(&self, prefix: &str) -> Result<Vec<KvPair>, Error> {
        const OP: &str = "kv list";
        let url = self.kv_url(OP, prefix, &[("recurse", None)])?;
        let resp = self.send(self.call(OP, Some(prefix), Method::GET, url)).await?;
        match resp.status {
            StatusCode::NOT_FOUND => Ok(Vec::new()),
            s if s.is_success() => decode_pairs(&resp, OP, prefix),
            _ => Err(http_error(resp, OP, Some(prefix))),
        }
    }

    /// Lists the keys under `prefix` (`?keys`). With a `separator`, keys are
    /// only listed up to the next separator after the prefix (like a
    /// directory listing: `"a/"` for `a/b/c`).
    pub async fn keys(&self, prefix: &str, separator: Option<&str>) -> Result<Vec<String>, Error> {
        const OP: &str = "kv keys";
        let url = match separator {
            Some(sep) => self.kv_url(OP, prefix, &[("keys", None), ("separator", Some(sep))])?,
            None => self.kv_url(OP, prefix, &[("keys", None)])?,
        };
        let resp = self.send(self.call(OP, Some(prefix), Method::GET, url)).await?;
        match resp.status {
            StatusCode::NOT_FOUND => Ok(Vec::new()),
            s if s.is_success() => {
                let keys: Option<Vec<String>> = decode_json(&resp, OP, Some(prefix))?;
                Ok(keys.unwrap_or_default())
            }
            _ => Err(http_error(resp, OP, Some(prefix))),
        }
    }

    /// Writes a key, optionally with user `flags`. Returns Consul's answer
    /// (`true` on success). Never retried.
    pub async fn put(&self, key: &str, value: impl Into<Vec<u8>>, flags: Option<u64>) -> Result<bool, Error> {
        const OP: &str = "kv put";
        let url = match flags {
            Some(flags) => self.kv_url(OP, key, &[("flags", Some(&flags.to_string()))])?,
            None => self.kv_url(OP, key, &[])?,
        };
        let mut call = self.call(OP, Some(key), Method::PUT, url);
        call.body = Some(value.into());
        self.kv_bool(call).await
    }

    /// Check-and-set write: succeeds (`true`) only if the key's modify index
    /// is still `modify_index`. An index of 0 means "only if the key does not
    /// exist yet". `false` on conflict. Never retried.
    pub async fn put_cas(&self, key: &str, value: impl Into<Vec<u8>>, modify_index: u64) -> Result<bool, Error> {
        const OP: &str = "kv put cas";
        let url = self.kv_url(OP, key, &[("cas", Some(&modify_index.to_string()))])?;
        let mut call = self.call(OP, Some(key), Method::PUT, url);
        call.body = Some(value.into());
        self.kv_bool(call).await
    }

    /// Deletes one key. Deleting a missing key succeeds.
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        const OP: &str = "kv delete";
        let url = self.kv_url(OP, key, &[])?;
        let mut call = self.call(OP, Some(key), Method::DELETE, url);
        call.idempotent = true;
        self.kv_bool(call).await.map(drop)
    }

    /// Deletes one key only if its modify index is still `modify_index`;
    /// `false` on conflict. Never retried.
    pub async fn delete_cas(&self, key: &str, modify_index: u64) -> Result<bool, Error> {
        const OP: &str = "kv delete cas";
        let url = self.kv_url(OP, key, &[("cas", Some(&modify_index.to_string()))])?;
        self.kv_bool(self.call(OP, Some(key), Method::DELETE, url)).await
    }

    /// Deletes every key starting with `prefix` (`?recurse`).
    ///
    /// Careful: an empty prefix deletes the whole KV store.
    pub async fn delete_tree(&self, prefix: &str) -> Result<(), Error> {
        const OP: &str = "kv delete tree";
        let url = self.kv_url(OP, prefix, &[("recurse", None)])?;
        let mut call = self.call(OP, Some(prefix), Method::DELETE, url);
        call.idempotent = true;
        self.kv_bool(call).await.map(drop)
    }

    /// Tries to take the lock on `key` for `session`, writing `value`.
    /// `true` if this session now holds the lock. Never retried.
    pub async fn acquire(&self, key: &str, value: impl Into<Vec<u8>>, session: &str) -> Result<bool, Error> {
        const OP: &str = "kv acquire";
        let url = self.kv_url(OP, key, &[("acquire", Some(session))])?;
        let mut call = self.call(OP, Some(key), Method::PUT, url);
        call.body = Some(value.into());
        self.kv_bool(call).await
    }

    /// Releases the lock on `key` held by `session`, writing `value`.
    /// `false` if `session` did not hold it. Never retried.
    pub async fn release(&self, key: &str, value: impl Into<Vec<u8>>, session: &str) -> Result<bool, Error> {
        const OP: &str = "kv release";
        let url = self.kv_url(OP, key, &[("release", Some(session))])?;
        let mut call = self.call(OP, Some(key), Method::PUT, url);
        call.body = Some(value.into());
        self.kv_bool(call).await
    }

    /// Blocking read of one key: waits up to `wait` (Consul caps it at 10
    /// minutes and adds up to `wait/16` of jitter) for the key's index to
    /// exceed `index`, then returns the entry and the new index to pass to
    /// the next call. Returns at once when `index` is 0.
    ///
    /// On timeout the same index comes back. The index is sanitised as
    /// Consul recommends: if it went backwards it is reset to 0.
    pub async fn get_blocking(&self, key: &str, index: u64, wait: Duration) -> Result<(Option<KvPair>, u64), Error> {
        const OP: &str = "kv get blocking";
        let resp = self.kv_blocking(OP, key, index, wait, false).await?;
        match resp.status {
            StatusCode::NOT_FOUND => Ok((None, blocking_index(&resp, index, OP, Some(key))?)),
            s if s.is_success() => {
                let new_index = blocking_index(&resp, index, OP, Some(key))?;
                Ok((decode_pairs(&resp, OP, key)?.into_iter().next(), new_index))
            }
            _ => Err(http_error(resp, OP, Some(key))),
        }
    }

    /// Blocking variant of [`Client::list`]; see [`Client::get_blocking`].
    pub async fn list_blocking(&self, prefix: &str, index: u64, wait: Duration) -> Result<(Vec<KvPair>, u64), Error> {
        const OP: &str = "kv list blocking";
        let resp = self.kv_blocking(OP, prefix, index, wait, true).await?;
        match resp.status {
            StatusCode::NOT_FOUND => Ok((Vec::new(), blocking_index(&resp, index, OP, Some(prefix))?)),
            s if s.is_success() => {
                let new_index = blocking_index(&resp, index, OP, Some(prefix))?;
                Ok((decode_pairs(&resp, OP, prefix)?, new_index))
            }
            _ => Err(http_error(resp, OP, Some(prefix))),
        }
    }

    async fn kv_blocking(
        &self,
        operation: &'static str,
        key: &str,
        index: u64,
        wait: Duration,
        recurse: bool,
    ) -> Result<Response, Error> {
        let index_s = index.to_string();
        let wait_s = duration::format(wait);
        let mut query = vec![("index", Some(index_s.as_str())), ("wait", Some(wait_s.as_str()))];
        if recurse {
            query.push(("recurse", None));
        }
        let url = self.kv_url(operation, key, &query)?;
        let mut call = self.call(operation, Some(key), Method::GET, url);
        call.wait = Some(wait);
        self.send(call).await
    }
}
