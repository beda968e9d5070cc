//! Test support: the moto server, its SDK clients and the faulty proxy come from
//! `cairn_tests::moto`; here, the test stack's URNs and contexts.

use cairn::provider::Context;
use cairn::Urn;
pub use cairn_tests::moto::{Fault, Faults, FaultyProxy, Moto};

/// The stack name every test context uses.
pub const STACK: &str = "test-stack";

/// A URN of the test stack.
pub fn urn(type_token: &str, name: &str) -> Urn {
    Urn::from(format!("{STACK}/{type_token}/{name}"))
}

pub fn ctx(urn: &Urn) -> Context<'_> {
    Context::new(urn, STACK)
}
