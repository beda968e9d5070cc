//! The AWS providers against a real moto server (HTTP on 127.0.0.1, one server per test).
//! Needs `scripts/install-moto.sh`; never skipped.

mod common;

mod client;
mod ec2_network;
mod ecr;
mod engine;
mod logs;
mod sns;
