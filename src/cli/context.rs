//! What every command needs: the environment (its config file, stack and state backend),
//! the stack's secret key, confirmation prompts that Ctrl-C can cancel, and styling.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _};
use serde::de::DeserializeOwned;

use super::args::Common;
use super::show::Style;
use super::Program;
use crate::config::SecretMode;
use crate::interrupt::Interrupt;
use crate::secrets::{self, SecretBox};
use crate::stack::{Desired, Stack};
use crate::state::consul::ConsulBackend;
use crate::state::file::FileBackend;
use crate::state::{Change, StackState, StateBackend, StateSession};

/// The one environment whose state may live on the deploying machine without saying so.
pub const LOCAL_ENV: &str = "dev";

/// Where `dev` keeps its state when nothing else is said.
pub const LOCAL_STATE: &str = ".cairn";

/// One environment of a program, as the command line named it.
#[derive(Debug, Clone)]
pub(super) struct Environment {
    pub name: String,
    /// `<program>-<env>`.
    pub stack: String,
    /// `<config dir>/<env>.toml` (it may not exist).
    pub config: PathBuf,
}

impl<C: DeserializeOwned> Program<C> {
    /// The environment `common` names.
    pub(super) fn environment(&self, common: &Common) -> anyhow::Result<Environment> {
        crate::urn::validate_name("environment", &common.env).map_err(|e| anyhow!(e))?;
        let dir = common.config_dir.as_deref().unwrap_or(&self.config_dir);
        Ok(Environment {
            name: common.env.clone(),
            stack: format!("{}-{}", self.name, common.env),
            config: dir.join(format!("{}.toml", common.env)),
        })
    }

    /// Loads the environment's config and builds the desired stack, reading secrets as
    /// `mode` says.
    pub(super) fn build(&self, env: &Environment, mode: SecretMode) -> anyhow::Result<Desired> {
        if !env.config.exists() {
            return Err(no_config(env));
        }
        let config: C = crate::config::load(&env.config, mode)?;
        let mut stack = Stack::new(&self.name, &env.name);
        (self.build)(&mut stack, &config)
            .with_context(|| format!("the stack program failed for `{}`", stack.name()))?;
        Ok(stack.finish()?)
    }

    /// Where the environment's state lives: `--state` / `CAIRN_STATE`, else the `[state]`
    /// table of its config, else the program's choice, else (for `dev` only) `.cairn`. Any
    /// other environment without one is refused before anything is read: state kept on
    /// one laptop by accident is how an environment gets created twice.
    pub(super) fn backend(&self, env: &Environment, common: &Common) -> anyhow::Result<Box<dyn StateBackend>> {
        let from_config = if env.config.exists() { crate::config::state_backend(&env.config)? } else { None };
        let spec = common.state.clone().or(from_config).or_else(|| self.state.clone());
        let spec = match spec {
            Some(s) => s,
            None if env.name == LOCAL_ENV => LOCAL_STATE.to_string(),
            None if !env.config.exists() => return Err(no_config(env)),
            None => bail!(
                "environment `{}` names no state backend, so its state would stay on this machine and another \
                 deployer would create everything again. Add\n\n    [state]\n    backend = \"consul://<host>:8500/cairn\"\n\n\
                 to {} (or `backend = \"file://<dir>\"` to keep it on this machine on purpose), or pass --state \
                 or CAIRN_STATE",
                env.name,
                env.config.display()
            ),
        };
        backend_at(&spec, &env.stack)
    }
}

/// The error for an environment without a config file, naming those there are.
fn no_config(env: &Environment) -> anyhow::Error {
    let dir = env.config.parent().unwrap_or(Path::new("."));
    let mut envs: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".toml")).map(str::to_string))
        .collect();
    envs.sort();
    anyhow!(
        "no config for environment `{}`: {} does not exist (environments here: {})",
        env.name,
        env.config.display(),
        if envs.is_empty() { "none".into() } else { envs.join(", ") }
    )
}

/// The backend a `--state` value names: a directory, `file://<dir>` or
/// `consul://[host:port]/<prefix>`.
pub(super) fn backend_at(spec: &str, stack: &str) -> anyhow::Result<Box<dyn StateBackend>> {
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

/// How secrets in config are read for commands that talk to the real stack.
pub(super) fn read_secrets(common: &Common) -> SecretMode {
    SecretMode::Read { passphrase_file: common.passphrase_file.clone() }
}

/// Opens the stack's secret key when anything needs it. With a session, a stack that has
/// secrets to store but no key yet gets one (and the session records it).
pub(super) async fn secret_box(
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

pub(super) fn decrypt(state: StackState, b: &Option<Arc<SecretBox>>) -> anyhow::Result<StackState> {
    match b {
        Some(b) => Ok(b.decrypt_state(state)?),
        None => Ok(state),
    }
}

/// The answer to a yes/no question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    Yes,
    No,
}

/// Asks `question` on the terminal (`yes`: don't ask). Not on a terminal, it is an error to
/// need an answer. Ctrl-C at the prompt is an interruption.
pub(super) async fn confirm(question: &str, yes: bool, interrupt: &Interrupt) -> anyhow::Result<Answer> {
    if yes {
        return Ok(Answer::Yes);
    }
    if !std::io::stdin().is_terminal() {
        bail!("not on a terminal: pass --yes to {question} without confirmation");
    }
    print!("Do you want to {question}? [y/N] ");
    std::io::stdout().flush()?;
    // Reading blocks a thread; the prompt gives way to Ctrl-C all the same.
    let read = tokio::task::spawn_blocking(|| {
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).map(|_| answer)
    });
    let answer = tokio::select! {
        a = read => a.map_err(|e| anyhow!("reading the answer failed: {e}"))??,
        () = interrupt.requested() => {
            println!();
            bail!(Interrupted("cancelled at the prompt: nothing was changed"));
        }
    };
    Ok(if matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") { Answer::Yes } else { Answer::No })
}

/// An interruption that a command reports as its result (exit 130).
#[derive(Debug)]
pub(super) struct Interrupted(pub &'static str);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Interrupted {}

fn color_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub(super) fn style() -> Style {
    Style { color: std::io::stdout().is_terminal() && color_allowed() }
}

pub(super) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && color_allowed())
        .with_target(false)
        .try_init();
}

/// Tells the user whose lock a command waits for.
pub(super) fn waiting_for(timeout: Option<std::time::Duration>) -> impl FnOnce(&crate::state::LockInfo) {
    move |holder| {
        eprintln!(
            "waiting up to {} for the lock held by {} (pid {}, `{}` since {}, lock id {})",
            timeout.map(|t| humantime::format_duration(t).to_string()).unwrap_or_default(),
            holder.who,
            holder.pid,
            holder.operation,
            holder.created,
            holder.id
        );
    }
}
