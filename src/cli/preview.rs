//! `preview`: the plan, without the lock.

use serde::de::DeserializeOwned;

use super::args::{Common, PlanFormat};
use super::context::{decrypt, read_secrets, secret_box, style};
use super::{show, Program};

pub(super) async fn preview<C: DeserializeOwned>(
    program: &Program<C>,
    common: &Common,
    format: PlanFormat,
    detailed_exitcode: bool,
) -> anyhow::Result<u8> {
    let env = program.environment(common)?;
    let backend = program.backend(&env, common)?;
    let desired = program.build(&env, read_secrets(common))?;
    let state = backend.read().await?;
    let b = secret_box(common, &state, Some(&desired), None).await?;
    let state = decrypt(state, &b)?;
    if !state.pending.is_empty() {
        eprintln!(
            "warning: {} operation{} of an interrupted run will be reconciled (read back) at the next deploy; this preview assumes they did not happen",
            state.pending.len(),
            if state.pending.len() == 1 { "" } else { "s" }
        );
    }
    let plan = crate::plan::plan(&desired, &state)?;
    match format {
        PlanFormat::Text => print!("{}", show::text(&plan, style())),
        PlanFormat::Markdown => print!("{}", show::markdown(&plan)),
        PlanFormat::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
    }
    Ok(if detailed_exitcode && plan.has_changes() { 2 } else { 0 })
}
