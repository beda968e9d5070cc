//! Integration tests against a real Consul dev agent (see `support`).
//!
//! Every test starts its own agent; the consul binary must be installed
//! (`bash scripts/install-consul.sh`), otherwise the tests fail.

mod acl;
mod kv;
mod session;
mod support;
mod tls;
mod transport;
mod txn;
