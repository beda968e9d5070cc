//! cairn: infrastructure as code written as ordinary, typed Rust programs.
//!
//! A stack program declares resources on a [`Stack`]; cairn turns that declaration into a
//! [`Desired`] graph, [renders](render) it to a deterministic document, [plans](plan::plan) it
//! against the saved [state], and [applies](apply) the plan through [providers](provider),
//! saving state after every step. Programs hand themselves to [`cli::main`], which gives them
//! the `cairn` command line (`render`, `preview`, `deploy`, `destroy`, ...).
//!
//! See ARCHITECTURE.md at the repository root for the map of the code and its invariants.

pub mod apply;
pub mod cli;
pub mod config;
pub mod graph;
pub mod interrupt;
pub mod plan;
pub mod provider;
pub mod providers;
pub mod render;
pub mod resource;
pub mod secrets;
pub mod stack;
pub mod state;
pub mod urn;
pub mod value;

pub use resource::{
    interpolate, json, Declared, Dependency, Handle, Input, Join, Options, Output, Outputs, Part, ProviderSettings,
    Resource, Secret,
};
pub use stack::{Component, ComponentHandle, Desired, ProviderConfig, Stack};
pub use urn::Urn;
