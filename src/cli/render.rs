//! `render` and `graph`: the program alone, no state, no secrets read.

use std::path::Path;

use anyhow::Context as _;
use serde::de::DeserializeOwned;

use super::args::{Common, GraphFormat};
use super::Program;
use crate::config::SecretMode;

pub(super) fn render<C: DeserializeOwned>(
    program: &Program<C>,
    common: &Common,
    out: Option<&Path>,
) -> anyhow::Result<u8> {
    let desired = program.build(&program.environment(common)?, SecretMode::Redacted)?;
    match out {
        Some(dir) => {
            let written =
                crate::render::write(&desired, dir).with_context(|| format!("cannot write to {}", dir.display()))?;
            for p in written {
                println!("{}", dir.join(p).display());
            }
        }
        None => print!("{}", crate::render::document(&desired)),
    }
    Ok(0)
}

pub(super) fn graph<C: DeserializeOwned>(
    program: &Program<C>,
    common: &Common,
    format: GraphFormat,
) -> anyhow::Result<u8> {
    let desired = program.build(&program.environment(common)?, SecretMode::Redacted)?;
    print!(
        "{}",
        match format {
            GraphFormat::Dot => crate::graph::dot(&desired),
            GraphFormat::Mermaid => crate::graph::mermaid(&desired),
        }
    );
    Ok(0)
}
