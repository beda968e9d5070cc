//! The command line, end to end: the `test-stack` program on a temporary directory.

mod support;

mod aws;
mod consul;
mod crash;
mod deploy;
mod environments;
mod errors;
mod interrupts;
mod locking;
mod secrets;
mod views;
