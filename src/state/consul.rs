//! The Consul backend: state in Consul's KV store, a session lock shared by every deployer.
//!
//! ```text
//! <prefix>/<stack>/meta                 {"version", "stack", "outputs", "secrets"}
//! <prefix>/<stack>/resources/<urn>      one key per resource (URN with `/` escaped)
//! <prefix>/<stack>/retired/<urn>        replaced resources still to delete
//! <prefix>/<stack>/pending/<urn>        pending operations
//! <prefix>/<stack>/lock/holder          held by the deployer's session; value: its LockInfo
//! <prefix>/<stack>/lock/heartbeat       rewritten by the holder every second
//! ```
//!
//! - **Per-resource keys.** A step writes only its resource's keys, in one transaction.
//!   Values over 4 KiB are gzip-compressed when that makes them smaller (KV flag 1); a value
//!   still too large for one transaction (512 KiB request, base64) is refused with an error
//!   naming the resource, before anything is sent.
//! - **Fencing.** Every write is a `/v1/txn` whose first operation is `check-session` on the
//!   lock key: a deployer whose session was invalidated cannot write anything, even before it
//!   notices. When it notices (a refused write, a failed renewal), [`StateSession::lost`] says
//!   why and the executor stops launching steps.
//! - **Waiting.** A deployer creates one session, then waits for the lock with blocking
//!   queries on `lock/` (no tight polling), reusing that one session until it gets the lock or
//!   gives up, and destroys it in every case.
//! - **Release.** The lock key is released first (no lock delay for the next deployer), then
//!   the session is destroyed.
//! - **Crash takeover.** The holder rewrites `lock/heartbeat` every second. A waiter that sees
//!   no heartbeat for `takeover_after` (default 5 s), measured with its own monotonic clock
//!   through blocking queries, destroys the holder's session and takes the lock after the lock
//!   delay (default 1 s). This is safe only because of fencing: the old holder, if it was
//!   merely paused, can no longer write, and the new holder reconciles its pending operations
//!   by reading the resources back. A holder on the same host whose process is gone is taken
//!   over at once.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consul_api::{Client, Error as ConsulError, KvPair, SessionBehavior, SessionRequest, TxnOp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

use super::{Change, LockInfo, StackState, StateBackend, StateError, StateSession, SCHEMA_VERSION};
use crate::urn::Urn;

/// The largest value one write can carry: Consul limits a transaction's request body to
/// 512 KiB (`txn_max_req_len`), and values travel base64-encoded (4/3 larger) in it.
pub const MAX_VALUE_BYTES: usize = 380 * 1024;
const COMPRESS_ABOVE: usize = 4096;
const FLAG_GZIP: u64 = 1;
/// Operations per transaction (Consul's limit is 64; one is the fencing check).
const OPS_PER_TXN: usize = 63;

/// What a transaction body may carry, leaving room for the JSON around it.
const TXN_BUDGET: usize = 480 * 1024;

/// Roughly what an operation adds to a transaction's JSON body.
fn encoded_size(op: &TxnOp) -> usize {
    match op {
        TxnOp::Cas { key, value, .. } | TxnOp::Set { key, value, .. } => key.len() + value.len().div_ceil(3) * 4 + 96,
        _ => 160,
    }
}

/// Key -> modify index as last seen by this run; 0 or absent: the key does not exist.
type Indexes = std::collections::HashMap<String, u64>;

/// Timing of the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockOptions {
    /// Session TTL; renewed at half of it.
    pub ttl: Duration,
    /// Consul's lock delay after a session is invalidated.
    pub lock_delay: Duration,
    /// How often the holder rewrites its heartbeat.
    pub heartbeat: Duration,
    /// How long without a heartbeat before a waiter takes over.
    pub takeover_after: Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            ttl: Duration::from_secs(15),
            lock_delay: Duration::from_secs(1),
            heartbeat: Duration::from_secs(1),
            takeover_after: Duration::from_secs(5),
        }
    }
}

/// Stack state in Consul.
#[derive(Clone)]
pub struct ConsulBackend {
    client: Client,
    /// `<prefix>/<stack>/`.
    base: String,
    stack: String,
    url: String,
    options: LockOptions,
}

impl std::fmt::Debug for ConsulBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsulBackend").field("url", &self.url).field("base", &self.base).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Meta {
    version: u32,
    stack: String,
    #[serde(default)]
    outputs: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secrets: Option<super::SecretsMeta>,
}

fn consul_err(e: ConsulError) -> StateError {
    StateError::Other(e.to_string())
}

/// A URN as one key segment: `%` and `/` escaped.
fn escape(urn: &Urn) -> String {
    urn.as_str().replace('%', "%25").replace('/', "%2F")
}

fn unescape(segment: &str) -> Urn {
    Urn::from(segment.replace("%2F", "/").replace("%25", "%"))
}

fn is_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl ConsulBackend {
    /// The backend for `stack` under `prefix`, through `client`.
    pub fn new(client: Client, prefix: &str, stack: &str, options: LockOptions) -> ConsulBackend {
        let prefix = prefix.trim_matches('/');
        let address = &client.config().address;
        let host = format!("{}:{}", address.host_str().unwrap_or("?"), address.port_or_known_default().unwrap_or(8500));
        let url = format!("consul://{host}/{prefix}");
        ConsulBackend { client, base: format!("{prefix}/{stack}/"), stack: stack.to_string(), url, options }
    }

    /// From `consul://[host:port]/<prefix>[?ttl=15s&lock_delay=1s&takeover=5s]`. The address
    /// defaults to `CONSUL_HTTP_ADDR`; the token and TLS settings come from the standard
    /// `CONSUL_*` variables.
    pub fn from_url(url: &str, stack: &str) -> Result<ConsulBackend, StateError> {
        let bad = |why: String| StateError::Other(format!("invalid Consul state URL `{url}`: {why}"));
        let rest = url.strip_prefix("consul://").ok_or_else(|| bad("it must start with consul://".into()))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        if prefix.is_empty() {
            return Err(bad("it needs a key prefix, e.g. consul://127.0.0.1:8500/cairn".into()));
        }
        if prefix.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(bad(format!("the prefix `{prefix}` has an empty, `.` or `..` segment")));
        }
        let mut config = consul_api::Config::from_env().map_err(consul_err)?;
        if !host.is_empty() {
            let scheme = config.address.scheme().to_string();
            let with = consul_api::Config::new(&format!("{scheme}://{host}")).map_err(consul_err)?;
            config.address = with.address;
        }
        let mut options = LockOptions::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| bad(format!("`{pair}` is not key=value")))?;
            let d = humantime::parse_duration(v).map_err(|e| bad(format!("`{k}`: `{v}` is not a duration: {e}")))?;
            match k {
                "ttl" => options.ttl = d,
                "lock_delay" => options.lock_delay = d,
                "takeover" => options.takeover_after = d,
                "heartbeat" => options.heartbeat = d,
                other => return Err(bad(format!("unknown option `{other}` (ttl, lock_delay, takeover, heartbeat)"))),
            }
        }
        if options.ttl < Duration::from_secs(10) {
            return Err(bad("ttl must be at least 10s (Consul's minimum)".into()));
        }
        if options.takeover_after < options.heartbeat * 3 {
            return Err(bad("takeover must be at least three heartbeats".into()));
        }
        let client = Client::new(config).map_err(consul_err)?;
        Ok(ConsulBackend::new(client, prefix, stack, options))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The full key of `rest` under this stack.
    pub fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.base)
    }

    fn lock_key(&self) -> String {
        self.key("lock/holder")
    }

    fn corrupt(&self, key: &str, message: String) -> StateError {
        StateError::Corrupt { path: PathBuf::from(format!("{}/{key}", self.url)), line: None, message }
    }

    fn decode(&self, pair: &KvPair) -> Result<Vec<u8>, StateError> {
        if pair.flags & FLAG_GZIP == 0 {
            return Ok(pair.value.clone());
        }
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&pair.value[..])
            .read_to_end(&mut out)
            .map_err(|e| self.corrupt(&pair.key, format!("bad gzip data: {e}")))?;
        Ok(out)
    }

    async fn load(&self) -> Result<StackState, StateError> {
        self.load_indexed().await.map(|(state, _)| state)
    }

    /// The state, and the modify index of every key it was read from (for check-and-set).
    async fn load_indexed(&self) -> Result<(StackState, Indexes), StateError> {
        let pairs = self.client.list(&self.base).await.map_err(consul_err)?;
        let mut indexes = Indexes::new();
        let mut state = StackState::empty(&self.stack);
        let mut meta: Option<Meta> = None;
        for pair in &pairs {
            let rel = pair.key.strip_prefix(&self.base).unwrap_or(&pair.key);
            if rel.starts_with("lock/") {
                continue;
            }
            indexes.insert(pair.key.clone(), pair.modify_index);
            let bytes = self.decode(pair)?;
            let parse = |what: &str| -> Result<Value, StateError> {
                serde_json::from_slice(&bytes).map_err(|e| self.corrupt(&pair.key, format!("{what} is not JSON: {e}")))
            };
            if rel == "meta" {
                let v = parse("stack metadata")?;
                let version = v.get("version").and_then(Value::as_u64).unwrap_or(0);
                if version > u64::from(SCHEMA_VERSION) {
                    return Err(StateError::NewerSchema {
                        path: PathBuf::from(format!("{}/{}", self.url, pair.key)),
                        found: version as u32,
                        supported: SCHEMA_VERSION,
                    });
                }
                let m: Meta = serde_json::from_value(v).map_err(|e| self.corrupt(&pair.key, e.to_string()))?;
                if m.stack != self.stack {
                    return Err(StateError::WrongStack {
                        path: PathBuf::from(format!("{}/{}", self.url, pair.key)),
                        found: m.stack,
                        expected: self.stack.clone(),
                    });
                }
                meta = Some(m);
            } else if let Some(name) = rel.strip_prefix("resources/") {
                let r: super::ResourceState =
                    serde_json::from_value(parse("a resource")?).map_err(|e| self.corrupt(&pair.key, e.to_string()))?;
                state.resources.insert(unescape(name), r);
            } else if let Some(name) = rel.strip_prefix("retired/") {
                let r: super::ResourceState =
                    serde_json::from_value(parse("a resource")?).map_err(|e| self.corrupt(&pair.key, e.to_string()))?;
                state.retired.insert(unescape(name), r);
            } else if let Some(name) = rel.strip_prefix("pending/") {
                let p: super::PendingOp = serde_json::from_value(parse("a pending operation")?)
                    .map_err(|e| self.corrupt(&pair.key, e.to_string()))?;
                state.pending.insert(unescape(name), p);
            } else {
                tracing::warn!(key = %pair.key, "ignoring an unknown key in the stack's state");
            }
        }
        if let Some(m) = meta {
            state.outputs = m.outputs;
            state.secrets = m.secrets;
        }
        Ok((state, indexes))
    }

    fn encode(&self, what: &str, v: &impl Serialize) -> Result<(Vec<u8>, Option<u64>), StateError> {
        let bytes = serde_json::to_vec(v).map_err(|e| StateError::Other(format!("cannot serialize {what}: {e}")))?;
        let (bytes, flags) = if bytes.len() > COMPRESS_ABOVE {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&bytes).and_then(|_| gz.finish()).map_or((bytes.clone(), None), |c| {
                if c.len() < bytes.len() {
                    (c, Some(FLAG_GZIP))
                } else {
                    (bytes, None)
                }
            })
        } else {
            (bytes, None)
        };
        if bytes.len() > MAX_VALUE_BYTES {
            return Err(StateError::Other(format!(
                "the state of {what} is {} KiB even compressed, more than fits in one Consul transaction ({} KiB of value within the 512 KiB request limit); nothing was written",
                bytes.len() / 1024,
                MAX_VALUE_BYTES / 1024
            )));
        }
        Ok((bytes, flags))
    }

    /// The transaction operations for a batch of changes (without the fencing check). Every
    /// write is a check-and-set against the modify index this run last saw (0: absent), so a
    /// writer that bypassed the lock is detected, never silently overwritten.
    fn ops(&self, changes: &[Change], meta: &mut Meta, indexes: &Indexes) -> Result<Vec<TxnOp>, StateError> {
        let mut sets: BTreeMap<String, (Vec<u8>, Option<u64>)> = BTreeMap::new();
        let mut deletes: Vec<String> = Vec::new();
        let mut meta_changed = false;
        let mut delete = |key: String, sets: &BTreeMap<String, (Vec<u8>, Option<u64>)>| {
            if !sets.contains_key(&key) && !deletes.contains(&key) {
                deletes.push(key);
            }
        };
        for change in changes {
            match change {
                Change::PutResource(r) => {
                    sets.insert(
                        self.key(&format!("resources/{}", escape(&r.urn))),
                        self.encode(&format!("`{}`", r.urn), r)?,
                    );
                    delete(self.key(&format!("pending/{}", escape(&r.urn))), &sets);
                }
                Change::PutRetired(r) => {
                    sets.insert(
                        self.key(&format!("retired/{}", escape(&r.urn))),
                        self.encode(&format!("`{}`", r.urn), r)?,
                    );
                    delete(self.key(&format!("pending/{}", escape(&r.urn))), &sets);
                }
                Change::RemoveResource(urn) => {
                    delete(self.key(&format!("resources/{}", escape(urn))), &sets);
                    delete(self.key(&format!("pending/{}", escape(urn))), &sets);
                }
                Change::RemoveRetired(urn) => {
                    delete(self.key(&format!("retired/{}", escape(urn))), &sets);
                    delete(self.key(&format!("pending/{}", escape(urn))), &sets);
                }
                Change::PutPending(p) => {
                    let key = self.key(&format!("pending/{}", escape(&p.urn)));
                    sets.insert(key, self.encode(&format!("the pending operation of `{}`", p.urn), p)?);
                }
                Change::ClearPending(urn) => delete(self.key(&format!("pending/{}", escape(urn))), &sets),
                Change::PutOutputs(o) => {
                    meta.outputs = o.clone();
                    meta_changed = true;
                }
                Change::PutSecrets(s) => {
                    meta.secrets = Some(s.clone());
                    meta_changed = true;
                }
            }
        }
        if meta_changed {
            sets.insert(self.key("meta"), self.encode("the stack metadata", meta)?);
        }
        let mut ops: Vec<TxnOp> = sets
            .into_iter()
            .map(|(key, (value, flags))| {
                let index = indexes.get(&key).copied().unwrap_or(0);
                TxnOp::Cas { key, value, flags, index }
            })
            .collect();
        // Deleting a key this run never saw is a no-op; a key someone else created meanwhile
        // is left alone rather than deleted blind.
        ops.extend(deletes.into_iter().filter_map(|key| match indexes.get(&key) {
            Some(&index) if index > 0 => Some(TxnOp::delete_cas(key, index)),
            _ => None,
        }));
        Ok(ops)
    }

    /// Creates the deployer's one session.
    async fn create_session(&self, info: &LockInfo) -> Result<String, StateError> {
        let request = SessionRequest::new(format!("cairn {} {} ({})", info.operation, self.stack, info.who))
            .with_ttl(self.options.ttl)
            .with_lock_delay(self.options.lock_delay)
            .with_behavior(SessionBehavior::Release);
        self.client.session_create(&request).await.map_err(consul_err)
    }

    async fn holder(&self) -> Result<Option<(LockInfo, String)>, StateError> {
        let Some(pair) = self.client.get(&self.lock_key()).await.map_err(consul_err)? else { return Ok(None) };
        let Some(session) = pair.session.clone() else { return Ok(None) };
        let info = parse_holder(&pair).map_err(|m| self.corrupt(&pair.key, m))?;
        Ok(Some((info, session)))
    }

    /// Waits for the lock with blocking queries, taking over from a holder that stopped
    /// beating. `session` is this deployer's only session.
    async fn acquire(&self, info: &LockInfo, session: &str, timeout: Option<Duration>) -> Result<(), StateError> {
        let body = serde_json::to_vec_pretty(info).expect("lock info serializes");
        let started = Instant::now();
        let deadline = timeout.map(|t| started + t);
        let lock_prefix = self.key("lock/");
        let mut index = 0u64;
        let mut last_beat = Instant::now();
        let mut beat_index = 0u64;
        let mut last_renew = Instant::now();
        let mut announced: Option<String> = None;
        let mut free_misses = 0u32;
        loop {
            if self.client.acquire(&self.lock_key(), body.clone(), session).await.map_err(consul_err)? {
                return Ok(());
            }
            let (pairs, new_index) = {
                let wait = match deadline {
                    Some(d) => d.saturating_duration_since(Instant::now()).min(self.options.heartbeat),
                    None => Duration::ZERO,
                };
                if wait.is_zero() {
                    (self.client.list(&lock_prefix).await.map_err(consul_err)?, index)
                } else {
                    self.client.list_blocking(&lock_prefix, index, wait).await.map_err(consul_err)?
                }
            };
            let holder = pairs.iter().find(|p| p.key == self.lock_key());
            let beat = pairs.iter().find(|p| p.key.ends_with("/lock/heartbeat"));
            if let Some(b) = beat {
                if b.modify_index != beat_index {
                    beat_index = b.modify_index;
                    last_beat = Instant::now();
                }
            }
            let held = holder.and_then(|h| h.session.clone().map(|s| (h, s)));
            match held {
                None => {
                    // Free: try again at once. Still refused while free means the lock delay
                    // after an invalidation is running: try again shortly.
                    if free_misses > 0 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    free_misses += 1;
                }
                Some((pair, holder_session)) => {
                    free_misses = 0;
                    let holder_info = parse_holder(pair).map_err(|m| self.corrupt(&pair.key, m))?;
                    let now = Instant::now();
                    let same_host_dead =
                        holder_info.host == info.host && holder_info.pid != 0 && !is_alive(holder_info.pid);
                    let silent = now.duration_since(last_beat);
                    if deadline.is_none() && !same_host_dead {
                        return Err(StateError::LockHeld { holder: Box::new(holder_info), waited: None });
                    }
                    if same_host_dead || silent >= self.options.takeover_after {
                        let why = if same_host_dead {
                            format!("its process (pid {}) is gone", holder_info.pid)
                        } else {
                            format!(
                                "no heartbeat for {}",
                                humantime::format_duration(Duration::from_secs(silent.as_secs()))
                            )
                        };
                        tracing::warn!(
                            "taking over the lock of {} (pid {}, `{}`, lock id {}): {why}",
                            holder_info.who,
                            holder_info.pid,
                            holder_info.operation,
                            holder_info.id
                        );
                        self.client.session_destroy(&holder_session).await.map_err(consul_err)?;
                        last_beat = Instant::now();
                        continue;
                    }
                    if announced.as_deref() != Some(holder_info.id.as_str()) {
                        tracing::warn!(
                            "waiting for the lock held by {} (pid {}, `{}` since {}, lock id {})",
                            holder_info.who,
                            holder_info.pid,
                            holder_info.operation,
                            holder_info.created,
                            holder_info.id
                        );
                        announced = Some(holder_info.id.clone());
                    }
                    if let Some(d) = deadline {
                        if now >= d {
                            return Err(StateError::LockHeld {
                                holder: Box::new(holder_info),
                                waited: Some(started.elapsed()),
                            });
                        }
                    }
                }
            }
            index = if new_index < index { 0 } else { new_index };
            if last_renew.elapsed() >= self.options.ttl / 2 {
                self.client
                    .session_renew(session)
                    .await
                    .map_err(consul_err)?
                    .ok_or_else(|| StateError::Other("our Consul session expired while waiting for the lock".into()))?;
                last_renew = Instant::now();
            }
        }
    }

    /// Writes `state` as the whole state, in fenced transactions of at most 64 operations,
    /// removing keys it does not have.
    async fn replace_all(
        &self,
        session: &str,
        state: &StackState,
        meta: &mut Meta,
        indexes: &mut Indexes,
    ) -> Result<(), StateError> {
        let (_, current) = self.load_indexed().await?;
        *indexes = current;
        let mut changes: Vec<Change> = Vec::new();
        changes.extend(state.resources.values().cloned().map(Change::PutResource));
        changes.extend(state.retired.values().cloned().map(Change::PutRetired));
        changes.extend(state.pending.values().cloned().map(Change::PutPending));
        changes.push(Change::PutOutputs(state.outputs.clone()));
        if let Some(s) = &state.secrets {
            changes.push(Change::PutSecrets(s.clone()));
        }
        meta.stack = self.stack.clone();
        meta.version = SCHEMA_VERSION;
        let mut keep: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        let mut ops = Vec::new();
        for change in &changes {
            for op in self.ops(std::slice::from_ref(change), meta, indexes)? {
                if let TxnOp::Cas { key, .. } = &op {
                    keep.insert(key.clone());
                    ops.push(op);
                }
            }
        }
        for (key, &index) in indexes.iter() {
            if !keep.contains(key) {
                ops.push(TxnOp::delete_cas(key.clone(), index));
            }
        }
        // Transactions of at most 63 operations and well under the 512 KiB request limit.
        let mut chunk: Vec<TxnOp> = Vec::new();
        let mut size = 0;
        for op in ops {
            let s = encoded_size(&op);
            if !chunk.is_empty() && (chunk.len() == OPS_PER_TXN || size + s > TXN_BUDGET) {
                self.fenced_txn(session, std::mem::take(&mut chunk), indexes).await?;
                size = 0;
            }
            size += s;
            chunk.push(op);
        }
        if !chunk.is_empty() {
            self.fenced_txn(session, chunk, indexes).await?;
        }
        Ok(())
    }

    /// Runs `ops` after a `check-session` on the lock key, then records the new modify
    /// indexes of what was written.
    async fn fenced_txn(&self, session: &str, ops: Vec<TxnOp>, indexes: &mut Indexes) -> Result<(), StateError> {
        let mut all = Vec::with_capacity(ops.len() + 1);
        all.push(TxnOp::check_session(self.lock_key(), session));
        let written: Vec<(String, bool)> = ops
            .iter()
            .filter_map(|op| match op {
                TxnOp::Cas { key, .. } => Some((key.clone(), true)),
                TxnOp::DeleteCas { key, .. } => Some((key.clone(), false)),
                _ => None,
            })
            .collect();
        all.extend(ops);
        match self.client.txn(all).await {
            Ok(results) => {
                for (key, put) in written {
                    if !put {
                        indexes.remove(&key);
                    }
                }
                for pair in results.results {
                    if pair.key != self.lock_key() {
                        indexes.insert(pair.key, pair.modify_index);
                    }
                }
                Ok(())
            }
            Err(ConsulError::TxnFailed { errors }) if errors.iter().any(|e| e.op_index == 0) => Err(StateError::Fenced(format!(
                "this run no longer holds the lock on {} (its Consul session {session} was invalidated); nothing more can be written",
                self.base.trim_end_matches('/')
            ))),
            Err(ConsulError::TxnFailed { errors }) => {
                let what: Vec<String> = errors
                    .iter()
                    .map(|e| {
                        let key = written.get(e.op_index.saturating_sub(1)).map(|(k, _)| k.as_str()).unwrap_or("?");
                        format!("{key}: {}", e.what)
                    })
                    .collect();
                Err(StateError::Conflict(format!(
                    "state in Consul was changed by another writer since this run read it ({}); nothing was overwritten",
                    what.join("; ")
                )))
            }
            Err(e) => Err(consul_err(e)),
        }
    }
}

fn parse_holder(pair: &KvPair) -> Result<LockInfo, String> {
    serde_json::from_slice(&pair.value).map_err(|e| format!("bad lock info: {e}"))
}

#[async_trait::async_trait]
impl StateBackend for ConsulBackend {
    fn describe(&self) -> String {
        format!("{}/{}", self.url, self.stack)
    }

    async fn read(&self) -> Result<StackState, StateError> {
        self.load().await
    }

    async fn lock_until(
        &self,
        info: LockInfo,
        timeout: Option<Duration>,
        cancel: watch::Receiver<bool>,
    ) -> Result<Box<dyn StateSession>, StateError> {
        let session = self.create_session(&info).await?;
        let acquired = tokio::select! {
            acquired = self.acquire(&info, &session, timeout) => acquired,
            () = crate::interrupt::until_true(cancel) => Err(StateError::Interrupted),
        };
        if let Err(e) = acquired {
            // Destroying the session releases the lock too, if it was taken just now.
            let _ = tokio::time::timeout(Duration::from_secs(5), self.client.session_destroy(&session)).await;
            return Err(e);
        }
        let (state, indexes) = match self.load_indexed().await {
            Ok(s) => s,
            Err(e) => {
                let _ = self.client.release(&self.lock_key(), Vec::new(), &session).await;
                let _ = self.client.session_destroy(&session).await;
                return Err(e);
            }
        };
        let meta =
            Meta { version: SCHEMA_VERSION, stack: self.stack.clone(), outputs: state.outputs, secrets: state.secrets };
        let lost = Arc::new(Mutex::new(None));
        let (stop, stopped) = watch::channel(false);
        let keeper = tokio::spawn(keep_alive(self.clone(), session.clone(), lost.clone(), stopped));
        Ok(Box::new(ConsulSession {
            backend: self.clone(),
            info,
            session,
            written: tokio::sync::Mutex::new((meta, indexes)),
            lost,
            stop,
            keeper: Some(keeper),
        }))
    }

    async fn lock_holder(&self) -> Result<Option<LockInfo>, StateError> {
        Ok(self.holder().await?.map(|(info, _)| info))
    }

    async fn force_unlock(&self, lock_id: &str) -> Result<LockInfo, StateError> {
        match self.holder().await? {
            Some((info, session)) if info.id == lock_id => {
                self.client.session_destroy(&session).await.map_err(consul_err)?;
                Ok(info)
            }
            other => {
                Err(StateError::LockMismatch { given: lock_id.to_string(), current: other.map(|(i, _)| Box::new(i)) })
            }
        }
    }
}

/// Renews the session at TTL/2 and rewrites the heartbeat; records why the lock was lost.
async fn keep_alive(
    backend: ConsulBackend,
    session: String,
    lost: Arc<Mutex<Option<String>>>,
    mut stop: watch::Receiver<bool>,
) {
    let heartbeat_key = backend.key("lock/heartbeat");
    let mut last_renew = Instant::now();
    let mut last_ok = Instant::now();
    let mut beat: u64 = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(backend.options.heartbeat) => {}
            _ = stop.changed() => return,
        }
        beat += 1;
        let mut failure: Option<String> = None;
        match backend.client.acquire(&heartbeat_key, beat.to_string(), &session).await {
            Ok(true) => last_ok = Instant::now(),
            Ok(false) => failure = Some("another deployer took the lock over".into()),
            Err(e) if e.status().is_some() => failure = Some(format!("the heartbeat was refused: {e}")),
            Err(e) => tracing::warn!("cannot reach Consul to renew the lock: {e}"),
        }
        if failure.is_none() && last_renew.elapsed() >= backend.options.ttl / 2 {
            match backend.client.session_renew(&session).await {
                Ok(Some(_)) => last_renew = Instant::now(),
                Ok(None) => failure = Some("the Consul session expired or was destroyed".into()),
                Err(e) => tracing::warn!("cannot renew the Consul session: {e}"),
            }
        }
        if failure.is_none() && last_ok.elapsed() >= backend.options.ttl {
            failure = Some(format!("Consul was unreachable for {}", humantime::format_duration(backend.options.ttl)));
        }
        if let Some(why) = failure {
            tracing::error!("lost the state lock: {why}");
            lost.lock().expect("lock poisoned").get_or_insert(why);
            return;
        }
    }
}

struct ConsulSession {
    backend: ConsulBackend,
    info: LockInfo,
    session: String,
    /// The stack metadata and the key indexes as of this run's last read or write.
    written: tokio::sync::Mutex<(Meta, Indexes)>,
    lost: Arc<Mutex<Option<String>>>,
    stop: watch::Sender<bool>,
    keeper: Option<tokio::task::JoinHandle<()>>,
}

impl ConsulSession {
    fn mark_lost(&self, why: &str) {
        self.lost.lock().expect("lock poisoned").get_or_insert_with(|| why.to_string());
    }
}

#[async_trait::async_trait]
impl StateSession for ConsulSession {
    fn lock_info(&self) -> &LockInfo {
        &self.info
    }

    async fn load(&mut self) -> Result<StackState, StateError> {
        let (state, indexes) = self.backend.load_indexed().await?;
        let mut written = self.written.lock().await;
        written.0.outputs = state.outputs.clone();
        written.0.secrets = state.secrets.clone();
        written.1 = indexes;
        Ok(state)
    }

    async fn write(&self, changes: Vec<Change>) -> Result<(), StateError> {
        if let Some(why) = self.lost() {
            return Err(StateError::Fenced(format!("the state lock was lost ({why}); nothing more can be written")));
        }
        let mut written = self.written.lock().await;
        let (meta, indexes) = &mut *written;
        let mut next = meta.clone();
        let ops = self.backend.ops(&changes, &mut next, indexes)?;
        let size: usize = ops.iter().map(encoded_size).sum();
        if ops.len() > OPS_PER_TXN || size > TXN_BUDGET {
            return Err(StateError::Other(format!(
                "a state batch of {} operations and about {} KiB exceeds what one Consul transaction takes; nothing was written",
                ops.len(),
                size / 1024
            )));
        }
        match self.backend.fenced_txn(&self.session, ops, indexes).await {
            Ok(()) => {
                *meta = next;
                Ok(())
            }
            Err(e) => {
                if let StateError::Fenced(why) = &e {
                    self.mark_lost(why);
                }
                Err(e)
            }
        }
    }

    async fn replace(&self, state: StackState) -> Result<(), StateError> {
        let mut written = self.written.lock().await;
        let (meta, indexes) = &mut *written;
        let mut next = meta.clone();
        self.backend.replace_all(&self.session, &state, &mut next, indexes).await?;
        *meta = next;
        Ok(())
    }

    fn lost(&self) -> Option<String> {
        self.lost.lock().expect("lock poisoned").clone()
    }

    async fn release(mut self: Box<Self>) -> Result<(), StateError> {
        let _ = self.stop.send(true);
        if let Some(k) = self.keeper.take() {
            let _ = k.await;
        }
        // Release first, so that the next deployer does not wait for the lock delay.
        let released = self.backend.client.release(&self.backend.lock_key(), Vec::new(), &self.session).await;
        let destroyed = self.backend.client.session_destroy(&self.session).await;
        released.map_err(consul_err)?;
        destroyed.map_err(consul_err)
    }
}

impl Drop for ConsulSession {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urns_escape_to_one_segment() {
        let urn = Urn::from("s/web/aws:ec2:Vpc/main%1");
        let e = escape(&urn);
        assert!(!e.contains('/'));
        assert_eq!(unescape(&e), urn);
    }

    #[test]
    fn urls_are_checked() {
        let err = |u: &str| ConsulBackend::from_url(u, "s").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err("consul://127.0.0.1:8500").contains("needs a key prefix"));
        assert!(err("consul://127.0.0.1:8500/a//b").contains("empty"));
        assert!(err("consul://127.0.0.1:8500/cairn?ttl=5s").contains("at least 10s"));
        assert!(err("consul://127.0.0.1:8500/cairn?nope=1s").contains("unknown option `nope`"));
        assert!(err("consul://127.0.0.1:8500/cairn?ttl=soon").contains("not a duration"));
        assert!(ConsulBackend::from_url("consul://127.0.0.1:8500/cairn/team?ttl=20s&takeover=4s", "s").is_ok());
    }
}
