//! Providers that ship with the engine. AWS providers live in their own crate.

pub mod command;
pub mod local;
