//! `refresh`: read every resource back, show drift, record it.

use std::sync::Arc;

use anyhow::anyhow;
use serde::de::DeserializeOwned;

use super::args::{Common, RunArgs};
use super::context::{confirm, decrypt, secret_box, style, waiting_for, Answer};
use super::{show, Program};
use crate::apply::Engine;
use crate::interrupt::Interrupt;
use crate::secrets::SecretBox;
use crate::state::locked::with_lock;

pub(super) async fn refresh<C: DeserializeOwned>(
    program: &Program<C>,
    common: &Common,
    run: &RunArgs,
    dry_run: bool,
    interrupt: &Interrupt,
) -> anyhow::Result<u8> {
    let env = program.environment(common)?;
    let backend = program.backend(&env, common)?;
    let progress = Arc::new(super::progress::Progress::new());
    let engine_for = |b: Option<Arc<SecretBox>>| Engine {
        registry: program.registry.clone(),
        stack: env.stack.clone(),
        secrets: b,
        parallel: run.parallel,
        events: {
            let progress = progress.clone();
            Arc::new(move |e| progress.event(e))
        },
    };
    if dry_run {
        let raw = backend.read().await?;
        let b = secret_box(common, &raw, None, None).await?;
        let state = decrypt(raw, &b)?;
        let drifts = engine_for(b).refresh_until(&state, interrupt.cancel()).await.map_err(|e| anyhow!(e))?;
        print!("{}", show::drift(&drifts, style()));
        return Ok(if drifts.is_empty() { 0 } else { 2 });
    }
    let timeout = run.lock.lock_timeout;
    with_lock(backend.as_ref(), "refresh", timeout, interrupt, waiting_for(timeout), async |session| {
        let raw = session.load().await?;
        let b = secret_box(common, &raw, None, Some(&*session)).await?;
        let state = decrypt(raw, &b)?;
        let engine = engine_for(b);
        let drifts = engine.refresh_until(&state, interrupt.cancel()).await.map_err(|e| anyhow!(e))?;
        print!("{}", show::drift(&drifts, style()));
        if drifts.is_empty() {
            return Ok(0);
        }
        if confirm("record what is really there in state", run.yes, interrupt).await? == Answer::No {
            println!("cancelled: state was not changed");
            return Ok(1);
        }
        engine.write_refresh(&*session, &drifts).await.map_err(|e| anyhow!(e))?;
        println!("state updated; run `deploy` to bring the resources back to what the program declares");
        Ok(0)
    })
    .await
}
