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

/// SSH from anywhere: the rule someone adds to a security group by hand.
pub fn ssh_from_anywhere() -> aws_sdk_ec2::types::IpPermission {
    aws_sdk_ec2::types::IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .ip_ranges(aws_sdk_ec2::types::IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .build()
}
