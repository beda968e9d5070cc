//! `state list|show|rm|orphans|export|migrate|import` and `unlock`.

use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use serde::de::DeserializeOwned;

use super::args::{Common, StateCommand};
use super::context::{backend_at, confirm, waiting_for, Answer, Environment};
use super::Program;
use crate::interrupt::Interrupt;
use crate::state::locked::with_lock;
use crate::state::{Change, StackState, StateBackend};

pub(super) async fn run<C: DeserializeOwned>(
    program: &Program<C>,
    command: StateCommand,
    interrupt: &Interrupt,
) -> anyhow::Result<u8> {
    match command {
        StateCommand::List { common } => list(program, &common).await,
        StateCommand::Show { common, urn } => show(program, &common, &urn).await,
        StateCommand::Orphans { common, scopes, json } => orphans(program, &common, &scopes, json).await,
        StateCommand::Export { common, out } => export(program, &common, out.as_deref()).await,
        StateCommand::Rm { common, urn, yes, lock } => {
            rm(program, &common, &urn, yes, lock.lock_timeout, interrupt).await
        }
        StateCommand::Migrate { common, to, keep_source, yes, lock } => {
            migrate(program, &common, &to, keep_source, yes, lock.lock_timeout, interrupt).await
        }
        StateCommand::Import { common, file, yes, lock } => {
            import(program, &common, &file, yes, lock.lock_timeout, interrupt).await
        }
    }
}

/// The environment and its backend.
fn open<C: DeserializeOwned>(
    program: &Program<C>,
    common: &Common,
) -> anyhow::Result<(Environment, Box<dyn StateBackend>)> {
    let env = program.environment(common)?;
    let backend = program.backend(&env, common)?;
    Ok((env, backend))
}

async fn list<C: DeserializeOwned>(program: &Program<C>, common: &Common) -> anyhow::Result<u8> {
    let state = open(program, common)?.1.read().await?;
    for r in state.resources.values() {
        println!("{}  {}  {}", r.urn, r.type_token, r.id);
    }
    for r in state.retired.values() {
        println!("{}  {}  {}  (replaced, to delete)", r.urn, r.type_token, r.id);
    }
    for p in state.pending.values() {
        println!("{}  {}  (pending {:?} since {})", p.urn, p.urn.type_token(), p.kind, p.started);
    }
    Ok(0)
}

async fn show<C: DeserializeOwned>(program: &Program<C>, common: &Common, urn: &str) -> anyhow::Result<u8> {
    let (env, backend) = open(program, common)?;
    let state = backend.read().await?;
    let r = state
        .resources
        .get(&crate::Urn::from(urn))
        .ok_or_else(|| anyhow!("`{urn}` is not in the state of {}", env.stack))?;
    let mut v = serde_json::to_value(r)?;
    v["inputs"] = crate::render::display_value(&r.inputs);
    v["outputs"] = crate::render::display_value(&r.outputs);
    let mut out = String::new();
    crate::render::canonical(&v, 0, &mut out);
    println!("{out}");
    Ok(0)
}

async fn orphans<C: DeserializeOwned>(
    program: &Program<C>,
    common: &Common,
    scopes: &[String],
    json: bool,
) -> anyhow::Result<u8> {
    let (env, backend) = open(program, common)?;
    let stack = &env.stack;
    let state = backend.read().await?;
    let inventories = program.registry.inventories();
    if inventories.is_empty() {
        bail!("no provider of this program can list what it manages, so orphans cannot be found");
    }
    let mut listed = Vec::new();
    for inventory in inventories {
        let found = inventory
            .list(stack, &state, scopes)
            .await
            .map_err(|e| anyhow!("listing {} failed: {e}", inventory.name()))?;
        listed.extend(found);
    }
    let orphans = crate::provider::orphans(listed, &state);
    if json {
        println!("{}", serde_json::to_string_pretty(&orphans)?);
    } else if orphans.is_empty() {
        eprintln!("no orphans: state knows every resource tagged for {stack}");
    } else {
        for o in &orphans {
            println!("{}  {}", o.id, o.urn.as_deref().unwrap_or("(no urn tag)"));
        }
        eprintln!(
            "{} resource(s) tagged for {stack} that state does not know: cairn will neither \
             change nor delete them; adopt one with the `import` resource option, or delete it",
            orphans.len()
        );
    }
    Ok(if orphans.is_empty() { 0 } else { 2 })
}

async fn export<C: DeserializeOwned>(program: &Program<C>, common: &Common, out: Option<&Path>) -> anyhow::Result<u8> {
    let state = open(program, common)?.1.read().await?;
    let mut text = serde_json::to_string_pretty(&state)?;
    text.push('\n');
    match out {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(0)
}

async fn rm<C: DeserializeOwned>(
    program: &Program<C>,
    common: &Common,
    urn: &str,
    yes: bool,
    timeout: Option<std::time::Duration>,
    interrupt: &Interrupt,
) -> anyhow::Result<u8> {
    let (env, backend) = open(program, common)?;
    with_lock(backend.as_ref(), "state rm", timeout, interrupt, waiting_for(timeout), async |session| {
        let state = session.load().await?;
        let urn = crate::Urn::from(urn);
        let r = state.resources.get(&urn).ok_or_else(|| anyhow!("`{urn}` is not in the state of {}", env.stack))?;
        let dependents: Vec<&crate::Urn> =
            state.resources.values().filter(|o| o.dependencies.contains(&urn)).map(|o| &o.urn).collect();
        if !dependents.is_empty() {
            eprintln!(
                "warning: these resources depend on it: {}",
                dependents.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
        if confirm(&format!("forget `{urn}` (id {}) without deleting it", r.id), yes, interrupt).await? == Answer::No {
            println!("cancelled: state was not changed");
            return Ok(1);
        }
        session.write(vec![Change::RemoveResource(urn.clone())]).await?;
        println!("removed `{urn}` from state; the real resource was left in place");
        Ok(0)
    })
    .await
}

async fn migrate<C: DeserializeOwned>(
    program: &Program<C>,
    common: &Common,
    to: &str,
    keep_source: bool,
    yes: bool,
    timeout: Option<std::time::Duration>,
    interrupt: &Interrupt,
) -> anyhow::Result<u8> {
    let (env, source) = open(program, common)?;
    let stack = &env.stack;
    let destination = backend_at(to, stack)?;
    if source.describe() == destination.describe() {
        bail!("the source and the destination are the same: {}", source.describe());
    }
    with_lock(source.as_ref(), "state migrate", timeout, interrupt, waiting_for(timeout), async |from| {
        with_lock(destination.as_ref(), "state migrate", timeout, interrupt, waiting_for(timeout), async |into| {
            let state = from.load().await?;
            let existing = into.load().await?;
            if !existing.is_empty() || !existing.outputs.is_empty() {
                bail!(
                    "{} already holds state for {stack} ({} resources); refusing to overwrite it",
                    destination.describe(),
                    existing.resources.len()
                );
            }
            let question = format!(
                "move the state of {stack} ({} resources) from {} to {}",
                state.resources.len(),
                source.describe(),
                destination.describe()
            );
            if confirm(&question, yes, interrupt).await? == Answer::No {
                println!("cancelled: nothing was changed");
                return Ok(1);
            }
            into.replace(state.clone()).await?;
            let copied = into.load().await?;
            if copied != state {
                bail!(
                    "the copy in {} does not read back equal to the source; the source was left as it was",
                    destination.describe()
                );
            }
            if !keep_source {
                from.replace(StackState::empty(stack)).await?;
            }
            println!(
                "moved {} resources to {}{}",
                state.resources.len(),
                destination.describe(),
                if keep_source { " (the source keeps its copy)" } else { "" }
            );
            Ok(0)
        })
        .await
    })
    .await
}

async fn import<C: DeserializeOwned>(
    program: &Program<C>,
    common: &Common,
    file: &Path,
    yes: bool,
    timeout: Option<std::time::Duration>,
    interrupt: &Interrupt,
) -> anyhow::Result<u8> {
    let (env, backend) = open(program, common)?;
    let stack = &env.stack;
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let imported: StackState =
        serde_json::from_str(&text).with_context(|| format!("{} is not an exported cairn state", file.display()))?;
    if imported.version > crate::state::SCHEMA_VERSION {
        bail!(
            "{} has schema version {}, newer than this cairn's {}",
            file.display(),
            imported.version,
            crate::state::SCHEMA_VERSION
        );
    }
    if &imported.stack != stack {
        bail!("{} is the state of stack `{}`, not `{stack}`", file.display(), imported.stack);
    }
    with_lock(backend.as_ref(), "state import", timeout, interrupt, waiting_for(timeout), async |session| {
        let current = session.load().await?;
        let question = format!(
            "replace the state of {stack} ({} resources) with {} ({} resources)",
            current.resources.len(),
            file.display(),
            imported.resources.len()
        );
        if confirm(&question, yes, interrupt).await? == Answer::No {
            println!("cancelled: state was not changed");
            return Ok(1);
        }
        session.replace(imported).await?;
        println!("imported {}", file.display());
        Ok(0)
    })
    .await
}

pub(super) async fn unlock<C: DeserializeOwned>(
    program: &Program<C>,
    common: &Common,
    lock_id: &str,
) -> anyhow::Result<u8> {
    let info = open(program, common)?.1.force_unlock(lock_id).await?;
    println!(
        "released lock {} held by {} (pid {}) for `{}` since {}",
        info.id, info.who, info.pid, info.operation, info.created
    );
    Ok(0)
}
