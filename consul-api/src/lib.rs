#![warn(missing_docs)]
//! An async client for the [Consul](https://developer.hashicorp.com/consul)
//! HTTP API, covering what is needed for coordination: the KV store,
//! transactions and sessions (locks).
//!
//! # Layout
//!
//! - [`Config`] (`src/config.rs`): agent address, ACL token, TLS files,
//!   timeout and [`RetryPolicy`]; built explicitly or from the standard
//!   `CONSUL_*` environment variables with [`Config::from_env`].
//! - [`Client`] (`src/client.rs`): one agent connection pool. Its methods are
//!   implemented per endpoint:
//!   - KV (`src/kv.rs`): [`Client::get`], [`Client::get_raw`],
//!     [`Client::list`], [`Client::keys`], [`Client::put`],
//!     [`Client::put_cas`], [`Client::delete`], [`Client::delete_cas`],
//!     [`Client::delete_tree`], [`Client::acquire`], [`Client::release`] and
//!     the blocking queries [`Client::get_blocking`] and
//!     [`Client::list_blocking`]; entries are [`KvPair`]s.
//!   - Transactions (`src/txn.rs`): [`Client::txn`] with [`TxnOp`]s,
//!     returning [`TxnResults`].
//!   - Sessions (`src/session.rs`): [`Client::session_create`] with a
//!     [`SessionRequest`], [`Client::session_renew`],
//!     [`Client::session_destroy`], [`Client::session_info`] and
//!     [`Client::session_list`], returning [`SessionInfo`].
//! - [`Error`] (`src/error.rs`): the single error type; every variant names
//!   the operation and key involved.
//!
//! Keys are percent-encoded per `/`-separated segment. Keys the HTTP API
//! cannot address (`a//b`, `/a`, `a/./b`, `a/../b`) are rejected with
//! [`Error::InvalidKey`] instead of being silently redirected by Consul to
//! another key; redirects are never followed.
//!
//! Idempotent calls (reads, plain deletes, session renew/info/list/destroy)
//! are retried with exponential backoff on transport errors and HTTP 5xx;
//! writes, check-and-set, lock acquisition, transactions and session creation
//! never are.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), consul_api::Error> {
//! use consul_api::{Client, Config};
//!
//! let client = Client::new(Config::from_env()?)?;
//! client.put("app/config", "v1", None).await?;
//! if let Some(pair) = client.get("app/config").await? {
//!     assert_eq!(pair.value, b"v1");
//!     // Only overwrite if nobody changed it in between.
//!     client.put_cas("app/config", "v2", pair.modify_index).await?;
//! }
//! # Ok(())
//! # }
//! ```

mod client;
mod config;
mod duration;
mod error;
mod kv;
mod session;
mod txn;

pub use client::Client;
pub use config::{Config, RetryPolicy, DEFAULT_ADDRESS, DEFAULT_TIMEOUT};
pub use error::{Error, TxnError, MAX_TXN_OPS};
pub use kv::KvPair;
pub use reqwest::StatusCode;
pub use session::{SessionBehavior, SessionInfo, SessionRequest};
pub use txn::{TxnOp, TxnResults};
