//! `deploy` and `destroy`: reconcile what an interrupted run left, plan, ask, apply.

use std::sync::Arc;

use anyhow::anyhow;
use serde::de::DeserializeOwned;

use super::args::{Common, RunArgs};
use super::context::{confirm, decrypt, read_secrets, secret_box, style, waiting_for, Answer, Interrupted};
use super::{progress, show, Program, EXIT_INTERRUPTED};
use crate::apply::Engine;
use crate::interrupt::Interrupt;
use crate::stack::Desired;
use crate::state::locked::with_lock;
use crate::state::StateSession;

/// What the run is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Deploy,
    /// Every resource goes: the desired stack is empty, and the user is always asked.
    Destroy,
}

pub(super) async fn deploy<C: DeserializeOwned>(
    program: &Program<C>,
    common: &Common,
    run: &RunArgs,
    mode: Mode,
    interrupt: &Interrupt,
) -> anyhow::Result<u8> {
    let env = program.environment(common)?;
    let backend = program.backend(&env, common)?;
    let (desired, operation) = match mode {
        Mode::Deploy => (program.build(&env, read_secrets(common))?, "deploy"),
        Mode::Destroy => (Desired { stack: env.stack.clone(), ..Desired::default() }, "destroy"),
    };
    let timeout = run.lock.lock_timeout;
    with_lock(backend.as_ref(), operation, timeout, interrupt, waiting_for(timeout), async |session| {
        deploy_locked(program, common, run, &desired, mode, session, interrupt).await
    })
    .await
}

async fn deploy_locked<C: DeserializeOwned>(
    program: &Program<C>,
    common: &Common,
    run: &RunArgs,
    desired: &Desired,
    mode: Mode,
    session: &mut dyn StateSession,
    interrupt: &Interrupt,
) -> anyhow::Result<u8> {
    let style = style();
    let raw = session.load().await?;
    let b = secret_box(common, &raw, Some(desired), Some(session)).await?;
    let mut state = decrypt(raw, &b)?;
    let progress = Arc::new(progress::Progress::new());
    let events = {
        let progress = progress.clone();
        Arc::new(move |e| progress.event(e))
    };
    let engine = Engine {
        registry: program.registry.clone(),
        stack: desired.stack.clone(),
        secrets: b.clone(),
        parallel: run.parallel,
        events,
    };
    if !state.pending.is_empty() {
        println!(
            "reconciling {} operation{} left by an interrupted run",
            state.pending.len(),
            if state.pending.len() == 1 { "" } else { "s" }
        );
        engine.recover_until(session, &state, Some(desired), &interrupt.cancel()).await.map_err(|e| anyhow!(e))?;
        state = decrypt(session.load().await?, &b)?;
    }
    let plan = crate::plan::plan(desired, &state)?;
    print!("{}", show::text(&plan, style));
    if !plan.has_changes() {
        return Ok(0);
    }
    let question = match mode {
        Mode::Destroy => format!("destroy every resource of {}", desired.stack),
        Mode::Deploy => "deploy these changes".to_string(),
    };
    if confirm(&question, run.yes, interrupt).await? == Answer::No {
        println!("cancelled: nothing was changed");
        return Ok(1);
    }
    if interrupt.is_requested() {
        return Err(Interrupted("interrupted before anything was changed").into());
    }
    progress.start(plan.steps.iter().filter(|s| s.is_change()).count());
    let outcome = engine.apply(session, &plan, desired, &state, interrupt.cancel()).await;
    progress.finish();
    print!("{}", show::outcome(&outcome, style));
    Ok(if outcome.interrupted {
        EXIT_INTERRUPTED
    } else if outcome.succeeded() {
        0
    } else {
        1
    })
}
