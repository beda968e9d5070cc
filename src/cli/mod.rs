//! The command line every stack program gets: `render`, `preview`, `deploy`, `destroy`,
//! `refresh`, `outputs`, `state`, `unlock`, `graph`.
//!
//! ```ignore
//! fn main() -> std::process::ExitCode {
//!     cairn::cli::main(cairn::cli::Program::new("hello", build).config_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/config")))
//! }
//! ```

mod progress;
pub mod show;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::apply::{Engine, DEFAULT_PARALLEL};
use crate::provider::Registry;
use crate::secrets::{self, SecretBox};
use crate::stack::{Desired, Stack};
use crate::state::consul::ConsulBackend;
use crate::state::file::FileBackend;
use crate::state::{Change, LockInfo, StackState, StateBackend, StateSession};
use show::Style;

/// What a stack program builds its stack with.
pub type BuildFn<C> = fn(&mut Stack, &C) -> anyhow::Result<()>;

/// A stack program: its name, where its config lives, how it builds, and its providers.
pub struct Program<C> {
    name: String,
    config_dir: PathBuf,
    state: String,
    build: BuildFn<C>,
    registry: Registry,
}

impl<C> std::fmt::Debug for Program<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("name", &self.name)
            .field("config_dir", &self.config_dir)
            .finish_non_exhaustive()
    }
}

impl<C: DeserializeOwned> Program<C> {
    /// A program named `name` (stacks are `<name>-<env>`), configured from `config/<env>.toml`
    /// by default, with the local providers.
    pub fn new(name: &str, build: BuildFn<C>) -> Program<C> {
        Program {
            name: name.to_string(),
            config_dir: PathBuf::from("config"),
            state: ".cairn".to_string(),
            build,
            registry: crate::providers::local::registry(),
        }
    }

    /// Where `<env>.toml` files are read from.
    pub fn config_dir(mut self, dir: impl Into<PathBuf>) -> Program<C> {
        self.config_dir = dir.into();
        self
    }

    /// Where the program's stacks keep state unless `--state` / `CAIRN_STATE` says otherwise:
    /// a directory, `file://<dir>` or `consul://[host:port]/<prefix>` (default `.cairn`).
    pub fn state(mut self, location: &str) -> Program<C> {
        self.state = location.to_string();
        self
    }

    /// The providers the program's resources need (replaces the default set).
    pub fn providers(mut self, registry: Registry) -> Program<C> {
        self.registry = registry;
        self
    }

    /// Loads `<env>.toml` and builds the desired stack.
    pub fn desired(&self, env: &str, config_dir: Option<&Path>) -> anyhow::Result<Desired> {
        crate::urn::validate_name("environment", env).map_err(|e| anyhow!(e))?;
        let dir = config_dir.unwrap_or(&self.config_dir);
        let path = dir.join(format!("{env}.toml"));
        if !path.exists() {
            let mut envs: Vec<String> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".toml")).map(str::to_string))
                .collect();
            envs.sort();
            bail!(
                "no config for environment `{env}`: {} does not exist (environments here: {})",
                path.display(),
                if envs.is_empty() { "none".into() } else { envs.join(", ") }
            );
        }
        let config: C = crate::config::load(&path)?;
        let mut stack = Stack::new(&self.name, env);
        (self.build)(&mut stack, &config)
            .with_context(|| format!("the stack program failed for `{}`", stack.name()))?;
        Ok(stack.finish()?)
    }
}

#[derive(Parser, Debug)]
#[command(name = "cairn", version, about = "Infrastructure as code in typed Rust: render, preview, deploy", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// The environment: reads `<config-dir>/<env>.toml`; the stack is `<program>-<env>`.
    #[arg(long, short, env = "CAIRN_ENV")]
    env: String,
    /// Where state is kept: a directory, `file://<dir>`, or
    /// `consul://[host:port]/<prefix>[?ttl=15s&lock_delay=1s&takeover=5s]` (token and TLS from
    /// the `CONSUL_*` variables). Default: the program's choice, else `.cairn`.
    #[arg(long, env = "CAIRN_STATE")]
    state: Option<String>,
    /// Where `<env>.toml` is read from (default: the program's own config directory).
    #[arg(long, env = "CAIRN_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    /// A file holding the passphrase for secrets (instead of `CAIRN_PASSPHRASE`).
    #[arg(long, env = "CAIRN_PASSPHRASE_FILE")]
    passphrase_file: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
struct LockArgs {
    /// Wait this long for another run's lock (e.g. `30s`, `5m`); default: fail at once.
    #[arg(long, value_parser = parse_duration)]
    lock_timeout: Option<Duration>,
}

#[derive(Args, Debug, Clone)]
struct RunArgs {
    /// Apply without asking (required when not on a terminal).
    #[arg(long, short)]
    yes: bool,
    /// How many steps may run at once.
    #[arg(long, default_value_t = DEFAULT_PARALLEL, value_parser = parse_parallel)]
    parallel: usize,
    #[command(flatten)]
    lock: LockArgs,
}

fn parse_parallel(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!("`{s}` is not a number of steps from 1 to 1024")),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration like `30s` or `5m`: {e}"))
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum PlanFormat {
    Text,
    Json,
    Markdown,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum GraphFormat {
    Dot,
    Mermaid,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write the canonical document of the desired stack and its rendered files.
    Render {
        #[command(flatten)]
        common: Common,
        /// Directory to write `stack.json` and `files/` into; without it the document is printed.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show what a deploy would change.
    Preview {
        #[command(flatten)]
        common: Common,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Exit 0 when there are no changes, 2 when there are, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Make the real stack match the program.
    #[command(alias = "up")]
    Deploy {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Delete every resource of the stack.
    Destroy {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Read every resource back, show drift, and record what is really there.
    Refresh {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        run: RunArgs,
        /// Only show drift; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the stack's outputs.
    Outputs {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        json: bool,
        /// Show secret outputs in clear (needs the passphrase).
        #[arg(long)]
        show_secrets: bool,
    },
    /// Inspect or edit state.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Release a lock left by a run that is gone; the lock id must match.
    Unlock {
        #[command(flatten)]
        common: Common,
        lock_id: String,
    },
    /// Print the dependency graph.
    Graph {
        #[command(flatten)]
        common: Common,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
}

#[derive(Subcommand, Debug)]
enum StateCommand {
    /// List the resources in state.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Show one resource's record (secrets redacted).
    Show {
        #[command(flatten)]
        common: Common,
        urn: String,
    },
    /// Forget a resource: remove it from state, leave the real resource alone.
    Rm {
        #[command(flatten)]
        common: Common,
        urn: String,
        #[arg(long, short)]
        yes: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// List the resources that the managed systems hold for this stack (for AWS: tagged
    /// `cairn:stack=<stack>`) but state does not know: left by a run that died before recording
    /// them, or forgotten with `state rm`. Exits 0 when there are none, 2 when there are.
    Orphans {
        #[command(flatten)]
        common: Common,
        /// Also look here (for AWS: a region), besides where the state's resources are. Repeatable.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Print JSON: an array of {id, urn}.
        #[arg(long)]
        json: bool,
    },
    /// Print the whole state as JSON (secrets stay encrypted).
    Export {
        #[command(flatten)]
        common: Common,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Move the stack's state to another backend (under both locks), e.g.
    /// `--to consul://127.0.0.1:8500/cairn` or `--to .cairn`.
    Migrate {
        #[command(flatten)]
        common: Common,
        /// The destination, in the same forms as --state.
        #[arg(long)]
        to: String,
        /// Keep the state in the source too (default: the source is emptied once the copy is
        /// verified, so that nobody deploys against a stale copy).
        #[arg(long)]
        keep_source: bool,
        #[arg(long, short)]
        yes: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Replace the state with an exported one.
    Import {
        #[command(flatten)]
        common: Common,
        file: PathBuf,
        #[arg(long, short)]
        yes: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
}

/// An error that already printed itself and carries its exit code.
#[derive(Debug)]
struct Exit(u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// Runs the command line for `program`; returns the process's exit code.
pub fn main<C: DeserializeOwned>(program: Program<C>) -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&program, cli.command)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
                return ExitCode::from(*code);
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && color_allowed())
        .with_target(false)
        .try_init();
}

fn color_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn style() -> Style {
    Style { color: std::io::stdout().is_terminal() && color_allowed() }
}

fn backend<C>(program: &Program<C>, common: &Common, stack: &str) -> anyhow::Result<Box<dyn StateBackend>> {
    backend_at(common.state.as_deref().unwrap_or(&program.state), stack)
}

/// The backend a `--state` value names: a directory, `file://<dir>` or
/// `consul://[host:port]/<prefix>`.
fn backend_at(spec: &str, stack: &str) -> anyhow::Result<Box<dyn StateBackend>> {
    if let Some(rest) = spec.strip_prefix("file://") {
        return Ok(Box::new(FileBackend::new(rest, stack)));
    }
    if spec.starts_with("consul://") {
        return Ok(Box::new(ConsulBackend::from_url(spec, stack)?));
    }
    if let Some((scheme, _)) = spec.split_once("://") {
        bail!("state backend `{scheme}://` is not supported; use a directory, file://<dir> or consul://<host:port>/<prefix>");
    }
    Ok(Box::new(FileBackend::new(spec, stack)))
}

fn stack_name<C: DeserializeOwned>(program: &Program<C>, env: &str) -> anyhow::Result<String> {
    crate::urn::validate_name("environment", env).map_err(|e| anyhow!(e))?;
    Ok(format!("{}-{env}", program.name))
}

/// Takes the lock, telling the user who holds it while waiting.
async fn lock(
    backend: &dyn StateBackend,
    operation: &str,
    timeout: Option<Duration>,
) -> anyhow::Result<Box<dyn StateSession>> {
    if let Some(t) = timeout {
        if let Some(holder) = backend.lock_holder().await? {
            eprintln!(
                "waiting up to {} for the lock held by {} (pid {}, `{}` since {}, lock id {})",
                humantime::format_duration(t),
                holder.who,
                holder.pid,
                holder.operation,
                holder.created,
                holder.id
            );
        }
    }
    Ok(backend.lock(LockInfo::new(operation), timeout).await?)
}

/// Runs `f` holding the stack's lock, and releases the lock whatever `f` did.
async fn locked(
    backend: &dyn StateBackend,
    operation: &str,
    timeout: Option<Duration>,
    f: impl AsyncFnOnce(&mut dyn StateSession) -> anyhow::Result<u8>,
) -> anyhow::Result<u8> {
    let mut session = lock(backend, operation, timeout).await?;
    let result = f(session.as_mut()).await;
    let released = session.release().await;
    let code = result?;
    released.context("releasing the lock")?;
    Ok(code)
}

/// Opens the stack's secret key when anything needs it. With `create`, a stack that has
/// secrets to store but no key yet gets one (and the session records it).
async fn secret_box(
    common: &Common,
    state: &StackState,
    desired: Option<&Desired>,
    session: Option<&dyn StateSession>,
) -> anyhow::Result<Option<Arc<SecretBox>>> {
    let desired_secrets = desired.is_some_and(|d| {
        d.resources.values().any(|r| crate::value::has_secrets(&r.inputs))
            || d.outputs.values().any(crate::value::has_secrets)
    });
    let state_secrets = secrets::state_has_ciphertext(state);
    if !desired_secrets && !state_secrets {
        return Ok(None);
    }
    let pass = secrets::passphrase(common.passphrase_file.as_deref())?.ok_or(secrets::SecretsError::Missing)?;
    match &state.secrets {
        Some(meta) => Ok(Some(Arc::new(SecretBox::open(meta, &pass)?))),
        None => {
            let Some(session) = session else {
                // Nothing encrypted yet and nothing will be written: no key needed to read.
                return Ok(None);
            };
            let (b, meta) = SecretBox::create(&pass);
            session.write(vec![Change::PutSecrets(meta)]).await?;
            Ok(Some(Arc::new(b)))
        }
    }
}

fn decrypt(state: StackState, b: &Option<Arc<SecretBox>>) -> anyhow::Result<StackState> {
    match b {
        Some(b) => Ok(b.decrypt_state(state)?),
        None => Ok(state),
    }
}

fn confirm(question: &str, yes: bool) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail!("not on a terminal: pass --yes to {question} without confirmation");
    }
    print!("Do you want to {question}? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// Turns SIGINT and SIGTERM into a `true` on the returned channel.
fn interrupt_channel() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    let (tx, rx) = watch::channel(false);
    let signal_tx = tx.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        eprintln!("\ninterrupted: no new steps will start; waiting for running steps to finish and be saved");
        let _ = signal_tx.send(true);
    });
    (tx, rx)
}

async fn run<C: DeserializeOwned>(program: &Program<C>, command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Render { common, out } => {
            let desired = program.desired(&common.env, common.config_dir.as_deref())?;
            match out {
                Some(dir) => {
                    let written = crate::render::write(&desired, &dir)
                        .with_context(|| format!("cannot write to {}", dir.display()))?;
                    for p in written {
                        println!("{}", dir.join(p).display());
                    }
                }
                None => print!("{}", crate::render::document(&desired)),
            }
            Ok(0)
        }
        Command::Graph { common, format } => {
            let desired = program.desired(&common.env, common.config_dir.as_deref())?;
            print!(
                "{}",
                match format {
                    GraphFormat::Dot => crate::graph::dot(&desired),
                    GraphFormat::Mermaid => crate::graph::mermaid(&desired),
                }
            );
            Ok(0)
        }
        Command::Preview { common, format, detailed_exitcode } => {
            let desired = program.desired(&common.env, common.config_dir.as_deref())?;
            let backend = backend(program, &common, &desired.stack)?;
            let state = backend.read().await?;
            let b = secret_box(&common, &state, Some(&desired), None).await?;
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
        Command::Deploy { common, run } => {
            let desired = program.desired(&common.env, common.config_dir.as_deref())?;
            deploy(program, &common, &run, desired, "deploy").await
        }
        Command::Destroy { common, run } => {
            let stack = stack_name(program, &common.env)?;
            let desired = Desired { stack, ..Desired::default() };
            deploy(program, &common, &run, desired, "destroy").await
        }
        Command::Refresh { common, run, dry_run } => refresh(program, &common, &run, dry_run).await,
        Command::Outputs { common, json, show_secrets } => {
            let stack = stack_name(program, &common.env)?;
            let backend = backend(program, &common, &stack)?;
            let state = backend.read().await?;
            let outputs = if show_secrets {
                let b = secret_box(&common, &state, None, None).await?;
                decrypt(state, &b)?.outputs.into_iter().map(|(k, v)| (k, crate::value::reveal(&v))).collect()
            } else {
                state
                    .outputs
                    .into_iter()
                    .map(|(k, v)| (k, crate::render::display_value(&v)))
                    .collect::<std::collections::BTreeMap<_, _>>()
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
        Command::Unlock { common, lock_id } => {
            let stack = stack_name(program, &common.env)?;
            let backend = backend(program, &common, &stack)?;
            let info = backend.force_unlock(&lock_id).await?;
            println!(
                "released lock {} held by {} (pid {}) for `{}` since {}",
                info.id, info.who, info.pid, info.operation, info.created
            );
            Ok(0)
        }
        Command::State { command } => state_command(program, command).await,
    }
}

async fn deploy<C: DeserializeOwned>(
    program: &Program<C>,
    common: &Common,
    run: &RunArgs,
    desired: Desired,
    operation: &str,
) -> anyhow::Result<u8> {
    let backend = backend(program, common, &desired.stack)?;
    locked(backend.as_ref(), operation, run.lock.lock_timeout, async |session| {
        deploy_locked(program, common, run, &desired, operation, session).await
    })
    .await
}

async fn deploy_locked<C: DeserializeOwned>(
    program: &Program<C>,
    common: &Common,
    run: &RunArgs,
    desired: &Desired,
    operation: &str,
    session: &mut dyn StateSession,
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
        engine.recover(session, &state, Some(desired)).await.map_err(|e| anyhow!(e))?;
        state = decrypt(session.load().await?, &b)?;
    }
    let plan = crate::plan::plan(desired, &state)?;
    print!("{}", show::text(&plan, style));
    if !plan.has_changes() {
        return Ok(0);
    }
    let question = if operation == "destroy" {
        format!("destroy every resource of {}", desired.stack)
    } else {
        format!("{operation} these changes")
    };
    if !confirm(&question, run.yes)? {
        println!("cancelled: nothing was changed");
        return Ok(1);
    }
    let (_keep, cancel) = interrupt_channel();
    progress.start(plan.steps.iter().filter(|s| s.is_change()).count());
    let outcome = engine.apply(session, &plan, desired, &state, cancel).await;
    progress.finish();
    print!("{}", show::outcome(&outcome, style));
    Ok(if outcome.interrupted {
        130
    } else if outcome.succeeded() {
        0
    } else {
        1
    })
}

async fn refresh<C: DeserializeOwned>(
    program: &Program<C>,
    common: &Common,
    run: &RunArgs,
    dry_run: bool,
) -> anyhow::Result<u8> {
    let stack = stack_name(program, &common.env)?;
    let backend = backend(program, common, &stack)?;
    let engine_for = |b: Option<Arc<SecretBox>>| Engine {
        registry: program.registry.clone(),
        stack: stack.clone(),
        secrets: b,
        parallel: run.parallel,
        events: Arc::new(|_| {}),
    };
    if dry_run {
        let raw = backend.read().await?;
        let b = secret_box(common, &raw, None, None).await?;
        let state = decrypt(raw, &b)?;
        let drifts = engine_for(b).refresh(&state).await.map_err(|e| anyhow!(e))?;
        print!("{}", show::drift(&drifts, style()));
        return Ok(if drifts.is_empty() { 0 } else { 2 });
    }
    locked(backend.as_ref(), "refresh", run.lock.lock_timeout, async |session| {
        let raw = session.load().await?;
        let b = secret_box(common, &raw, None, Some(&*session)).await?;
        let state = decrypt(raw, &b)?;
        let engine = engine_for(b);
        let drifts = engine.refresh(&state).await.map_err(|e| anyhow!(e))?;
        print!("{}", show::drift(&drifts, style()));
        if drifts.is_empty() {
            return Ok(0);
        }
        if !confirm("record what is really there in state", run.yes)? {
            println!("cancelled: state was not changed");
            return Ok(1);
        }
        engine.write_refresh(&*session, &drifts).await.map_err(|e| anyhow!(e))?;
        println!("state updated; run `deploy` to bring the resources back to what the program declares");
        Ok(0)
    })
    .await
}

async fn state_command<C: DeserializeOwned>(program: &Program<C>, command: StateCommand) -> anyhow::Result<u8> {
    match command {
        StateCommand::List { common } => {
            let stack = stack_name(program, &common.env)?;
            let state = backend(program, &common, &stack)?.read().await?;
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
        StateCommand::Orphans { common, scopes, json } => {
            let stack = stack_name(program, &common.env)?;
            let state = backend(program, &common, &stack)?.read().await?;
            let inventories = program.registry.inventories();
            if inventories.is_empty() {
                bail!("no provider of this program can list what it manages, so orphans cannot be found");
            }
            let mut listed = Vec::new();
            for inventory in inventories {
                let found = inventory
                    .list(&stack, &state, &scopes)
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
        StateCommand::Show { common, urn } => {
            let stack = stack_name(program, &common.env)?;
            let state = backend(program, &common, &stack)?.read().await?;
            let r = state
                .resources
                .get(&crate::Urn::from(urn.as_str()))
                .ok_or_else(|| anyhow!("`{urn}` is not in the state of {stack}"))?;
            let mut v = serde_json::to_value(r)?;
            v["inputs"] = crate::render::display_value(&r.inputs);
            v["outputs"] = crate::render::display_value(&r.outputs);
            let mut out = String::new();
            crate::render::canonical(&v, 0, &mut out);
            println!("{out}");
            Ok(0)
        }
        StateCommand::Rm { common, urn, yes, lock: lock_args } => {
            let stack = stack_name(program, &common.env)?;
            let backend = backend(program, &common, &stack)?;
            locked(backend.as_ref(), "state rm", lock_args.lock_timeout, async |session| {
                let state = session.load().await?;
                let urn = crate::Urn::from(urn.as_str());
                let r = state.resources.get(&urn).ok_or_else(|| anyhow!("`{urn}` is not in the state of {stack}"))?;
                let dependents: Vec<&crate::Urn> =
                    state.resources.values().filter(|o| o.dependencies.contains(&urn)).map(|o| &o.urn).collect();
                if !dependents.is_empty() {
                    eprintln!(
                        "warning: these resources depend on it: {}",
                        dependents.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(", ")
                    );
                }
                if !confirm(&format!("forget `{urn}` (id {}) without deleting it", r.id), yes)? {
                    println!("cancelled: state was not changed");
                    return Ok(1);
                }
                session.write(vec![Change::RemoveResource(urn.clone())]).await?;
                println!("removed `{urn}` from state; the real resource was left in place");
                Ok(0)
            })
            .await
        }
        StateCommand::Export { common, out } => {
            let stack = stack_name(program, &common.env)?;
            let state = backend(program, &common, &stack)?.read().await?;
            let mut text = serde_json::to_string_pretty(&state)?;
            text.push('\n');
            match out {
                Some(path) => {
                    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?
                }
                None => print!("{text}"),
            }
            Ok(0)
        }
        StateCommand::Migrate { common, to, keep_source, yes, lock: lock_args } => {
            let stack = stack_name(program, &common.env)?;
            let source = backend(program, &common, &stack)?;
            let destination = backend_at(&to, &stack)?;
            if source.describe() == destination.describe() {
                bail!("the source and the destination are the same: {}", source.describe());
            }
            let mut from = lock(source.as_ref(), "state migrate", lock_args.lock_timeout).await?;
            let mut into = match lock(destination.as_ref(), "state migrate", lock_args.lock_timeout).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = from.release().await;
                    return Err(e);
                }
            };
            let result: anyhow::Result<u8> = async {
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
                if !confirm(&question, yes)? {
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
                    from.replace(StackState::empty(&stack)).await?;
                }
                println!(
                    "moved {} resources to {}{}",
                    state.resources.len(),
                    destination.describe(),
                    if keep_source { " (the source keeps its copy)" } else { "" }
                );
                Ok(0)
            }
            .await;
            let released = (into.release().await, from.release().await);
            let code = result?;
            released.0.context("releasing the destination's lock")?;
            released.1.context("releasing the source's lock")?;
            Ok(code)
        }
        StateCommand::Import { common, file, yes, lock: lock_args } => {
            let stack = stack_name(program, &common.env)?;
            let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let imported: StackState = serde_json::from_str(&text)
                .with_context(|| format!("{} is not an exported cairn state", file.display()))?;
            if imported.version > crate::state::SCHEMA_VERSION {
                bail!(
                    "{} has schema version {}, newer than this cairn's {}",
                    file.display(),
                    imported.version,
                    crate::state::SCHEMA_VERSION
                );
            }
            if imported.stack != stack {
                bail!("{} is the state of stack `{}`, not `{stack}`", file.display(), imported.stack);
            }
            let backend = backend(program, &common, &stack)?;
            locked(backend.as_ref(), "state import", lock_args.lock_timeout, async |session| {
                let current = session.load().await?;
                if !confirm(
                    &format!(
                        "replace the state of {stack} ({} resources) with {} ({} resources)",
                        current.resources.len(),
                        file.display(),
                        imported.resources.len()
                    ),
                    yes,
                )? {
                    println!("cancelled: state was not changed");
                    return Ok(1);
                }
                session.replace(imported).await?;
                println!("imported {}", file.display());
                Ok(0)
            })
            .await
        }
    }
}
