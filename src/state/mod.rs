//! What cairn remembers about a deployed stack, and the backends that keep it.
//!
//! The engine talks to a backend through [`StateBackend`] (read without a lock, or take the
//! lock) and [`StateSession`] (holding the lock: write batches of [`Change`]s). A batch is
//! durable when `write` returns. Backends store encrypted secrets only: the engine encrypts
//! before it writes (see [`crate::secrets`]).

pub mod consul;
pub mod file;
pub mod lock;
pub mod locked;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::urn::Urn;
pub use lock::LockInfo;

/// The schema version this build of cairn reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// One deployed resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    pub urn: Urn,
    #[serde(rename = "type")]
    pub type_token: String,
    /// The provider's id for the real resource.
    pub id: String,
    pub inputs: Value,
    pub outputs: Value,
    #[serde(default)]
    pub dependencies: BTreeSet<Urn>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub protect: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retain_on_delete: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_before_replace: bool,
    /// The provider configuration it was made with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<crate::stack::ProviderUse>,
}

/// What a pending operation was about to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingKind {
    Create,
    Update,
    Delete,
}

/// An operation recorded before a provider call and cleared after its result is saved. One
/// left behind means the run died in between; the next run reads the resource back.
///
/// A URN has at most one pending operation at a time (the plan orders every step of a URN), so
/// pending operations are keyed by URN, and the change that records a step's result clears it.
/// Kept small: it is written once per step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingOp {
    pub urn: Urn,
    pub kind: PendingKind,
    /// The provider id, for updates and deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// What the provider needs to find the resource again (see `Provider::identity`).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub identity: Value,
    /// Whether the record concerns a replaced (retired) resource.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
    pub started: String,
}

/// Parameters of secret encryption for a stack (no secret material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretsMeta {
    /// Base64 salt for the key derivation.
    pub salt: String,
    /// A known value encrypted with the key: checks a passphrase before anything is written.
    pub check: String,
}

/// The whole state of one stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackState {
    pub version: u32,
    pub stack: String,
    #[serde(default)]
    pub resources: BTreeMap<Urn, ResourceState>,
    /// Replaced resources whose deletion has not happened yet.
    #[serde(default)]
    pub retired: BTreeMap<Urn, ResourceState>,
    #[serde(default)]
    pub pending: BTreeMap<Urn, PendingOp>,
    #[serde(default)]
    pub outputs: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<SecretsMeta>,
}

impl StackState {
    pub fn empty(stack: &str) -> StackState {
        StackState {
            version: SCHEMA_VERSION,
            stack: stack.to_string(),
            resources: BTreeMap::new(),
            retired: BTreeMap::new(),
            pending: BTreeMap::new(),
            outputs: BTreeMap::new(),
            secrets: None,
        }
    }

    pub fn apply(&mut self, change: &Change) {
        match change {
            // A step's result supersedes its pending record.
            Change::PutResource(r) | Change::PutRetired(r) => {
                self.pending.remove(&r.urn);
                if matches!(change, Change::PutResource(_)) {
                    self.resources.insert(r.urn.clone(), r.clone());
                } else {
                    self.retired.insert(r.urn.clone(), r.clone());
                }
            }
            Change::RemoveResource(urn) => {
                self.pending.remove(urn);
                self.resources.remove(urn);
            }
            Change::RemoveRetired(urn) => {
                self.pending.remove(urn);
                self.retired.remove(urn);
            }
            Change::PutPending(p) => {
                self.pending.insert(p.urn.clone(), p.clone());
            }
            Change::ClearPending(urn) => {
                self.pending.remove(urn);
            }
            Change::PutOutputs(o) => self.outputs = o.clone(),
            Change::PutSecrets(s) => self.secrets = Some(s.clone()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty() && self.retired.is_empty() && self.pending.is_empty()
    }
}

/// One change to a stack's state. A step writes a small batch of these, atomically. Putting or
/// removing a resource also clears the pending operation of its URN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "value", rename_all = "snake_case")]
pub enum Change {
    PutResource(ResourceState),
    RemoveResource(Urn),
    PutRetired(ResourceState),
    RemoveRetired(Urn),
    PutPending(PendingOp),
    ClearPending(Urn),
    PutOutputs(BTreeMap<String, Value>),
    PutSecrets(SecretsMeta),
}

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("state file {path} is corrupt{}: {message}; it was left untouched", line.map(|l| format!(" at line {l}")).unwrap_or_default())]
    Corrupt { path: PathBuf, line: Option<usize>, message: String },
    #[error("state file {path} has schema version {found}, newer than this cairn's {supported}; upgrade cairn. The file was left untouched")]
    NewerSchema { path: PathBuf, found: u32, supported: u32 },
    #[error("state at {path} belongs to stack `{found}`, not `{expected}`")]
    WrongStack { path: PathBuf, found: String, expected: String },
    #[error("{}", lock_held_message(.holder, .waited))]
    LockHeld { holder: Box<LockInfo>, waited: Option<Duration> },
    #[error("the lock `{given}` does not match the current lock{}", current.as_ref().map(|c| format!(" `{}` (held by {} for {})", c.id, c.who, c.operation)).unwrap_or_else(|| String::from(": no lock is held")))]
    LockMismatch { given: String, current: Option<Box<LockInfo>> },
    #[error("the lock is held by a running process (pid {pid} on {host}); stop that process instead of unlocking")]
    LockAlive { pid: u32, host: String },
    #[error("the state backend refused the write: {0}")]
    Fenced(String),
    #[error("write conflict: {0}")]
    Conflict(String),
    #[error("interrupted while waiting for the lock; nothing was changed")]
    Interrupted,
    #[error("stopped at once; operations in flight are left pending for the next run to reconcile")]
    Forced,
    #[error("{0}")]
    Other(String),
}

fn lock_held_message(holder: &LockInfo, waited: &Option<Duration>) -> String {
    let mut s = format!(
        "the stack is locked by {} (pid {}) since {} for `{}` (lock id {}, cairn {})",
        holder.who, holder.pid, holder.created, holder.operation, holder.id, holder.version
    );
    match waited {
        Some(d) => s.push_str(&format!("; gave up after waiting {}", humantime::format_duration(*d))),
        None => s.push_str("; pass --lock-timeout to wait for it, or `cairn unlock <lock-id>` if that run is gone"),
    }
    s
}

/// A place where stacks' state is kept.
#[async_trait::async_trait]
pub trait StateBackend: Send + Sync {
    /// A short description for messages, e.g. `file .cairn/hello-dev`.
    fn describe(&self) -> String;
    /// Reads the state without taking the lock (for preview, render and outputs). A stack that
    /// was never deployed reads as empty.
    async fn read(&self) -> Result<StackState, StateError>;
    /// Takes the lock, waiting up to `timeout` for another holder to release it.
    async fn lock(&self, info: LockInfo, timeout: Option<Duration>) -> Result<Box<dyn StateSession>, StateError> {
        let (_never, cancel) = tokio::sync::watch::channel(false);
        self.lock_until(info, timeout, cancel).await
    }
    /// Like [`StateBackend::lock`], giving up (with [`StateError::Interrupted`], having left
    /// nothing behind) when `cancel` turns true. Most callers want [`locked::with_lock`].
    async fn lock_until(
        &self,
        info: LockInfo,
        timeout: Option<Duration>,
        cancel: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Box<dyn StateSession>, StateError>;
    /// The current lock holder, if any.
    async fn lock_holder(&self) -> Result<Option<LockInfo>, StateError>;
    /// Releases a lock left behind by a run that is gone, only when `lock_id` matches.
    async fn force_unlock(&self, lock_id: &str) -> Result<LockInfo, StateError>;
}

/// The lock, held: the only way to write state.
#[async_trait::async_trait]
pub trait StateSession: Send + Sync {
    fn lock_info(&self) -> &LockInfo;
    /// The state as of taking the lock, with every write since.
    async fn load(&mut self) -> Result<StackState, StateError>;
    /// Writes one batch of changes atomically and durably.
    async fn write(&self, changes: Vec<Change>) -> Result<(), StateError>;
    /// Replaces the whole state (for `state import`).
    async fn replace(&self, state: StackState) -> Result<(), StateError>;
    /// Whether the lock is still ours; a backend that can lose its lock reports it here.
    fn lost(&self) -> Option<String> {
        None
    }
    /// Compacts what was written and releases the lock.
    async fn release(self: Box<Self>) -> Result<(), StateError>;
}
