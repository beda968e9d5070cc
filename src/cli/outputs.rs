//! `outputs`: the stack's outputs, from state.

use serde::de::DeserializeOwned;

use super::args::Common;
use super::context::{decrypt, secret_box};
use super::Program;

pub(super) async fn outputs<C: DeserializeOwned>(
    program: &Program<C>,
    common: &Common,
    json: bool,
    show_secrets: bool,
) -> anyhow::Result<u8> {
    let env = program.environment(common)?;
    let state = program.backend(&env, common)?.read().await?;
    let outputs: std::collections::BTreeMap<String, serde_json::Value> = if show_secrets {
        let b = secret_box(common, &state, None, None).await?;
        decrypt(state, &b)?.outputs.into_iter().map(|(k, v)| (k, crate::value::reveal(&v))).collect()
    } else {
        state.outputs.into_iter().map(|(k, v)| (k, crate::render::display_value(&v))).collect()
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&outputs)?);
    } else {
        for (k, v) in outputs {
            match v {
                serde_json::Value::String(s) => println!("{k} = {s}"),
                other => println!("{k} = {other}"),
            }
        }
    }
    Ok(0)
}
