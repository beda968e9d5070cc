//! The AWS providers against a real moto server (HTTP on 127.0.0.1, one server per test).
//! Needs `scripts/install-moto.sh`; never skipped.

mod common;

mod autoscaling;
mod client;
mod cloudwatch;
mod credentials;
mod ec2_compute;
mod ec2_network;
mod ecr;
mod elb;
mod engine;
mod faults;
mod iam;
mod import;
mod logs;
mod parent_in_place;
mod providers;
mod recovery;
mod refresh;
mod rollout;
mod route53;
mod sns;
