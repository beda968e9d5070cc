//! The command line every stack program gets: `render`, `preview`, `deploy`, `destroy`,
//! `refresh`, `outputs`, `state`, `config`, `unlock`, `graph`.
//!
//! ```ignore
//! fn main() -> std::process::ExitCode {
//!     cairn::cli::main(cairn::cli::Program::new("hello", build).config_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/config")))
//! }
//! ```
//!
//! The CLI parses and prints; each command is a small module (`render.rs`, `preview.rs`,
//! `deploy.rs`, `refresh.rs`, `outputs.rs`, `state.rs`, `config.rs`), the environment and its
//! backend are chosen in `context.rs`, and the lock's lifetime (take, release on every way
//! out, Ctrl-C) lives beside the backends in [`crate::state::locked`].

mod args;
mod config;
mod context;
mod deploy;
mod outputs;
mod preview;
mod progress;
mod refresh;
mod render;
pub mod show;
mod state;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use serde::de::DeserializeOwned;

use crate::config::SecretMode;
use crate::interrupt::Interrupt;
use crate::provider::Registry;
use crate::stack::{Desired, Stack};
use crate::state::StateError;
use args::{Cli, Command};
pub use context::{LOCAL_ENV, LOCAL_STATE};

/// What a stack program builds its stack with.
pub type BuildFn<C> = fn(&mut Stack, &C) -> anyhow::Result<()>;

/// A stack program: its name, where its config lives, how it builds, and its providers.
pub struct Program<C> {
    name: String,
    config_dir: PathBuf,
    state: Option<String>,
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
            state: None,
            build,
            registry: crate::providers::local::registry(),
        }
    }

    /// Where `<env>.toml` files are read from.
    pub fn config_dir(mut self, dir: impl Into<PathBuf>) -> Program<C> {
        self.config_dir = dir.into();
        self
    }

    /// Where every environment of the program keeps state unless its `<env>.toml` says (in
    /// `[state] backend`) or `--state` / `CAIRN_STATE` does: a directory, `file://<dir>` or
    /// `consul://[host:port]/<prefix>`. Without it, only `dev` may go without a backend.
    pub fn state(mut self, location: &str) -> Program<C> {
        self.state = Some(location.to_string());
        self
    }

    /// The providers the program's resources need (replaces the default set).
    pub fn providers(mut self, registry: Registry) -> Program<C> {
        self.registry = registry;
        self
    }

    /// Loads `<env>.toml` and builds the desired stack as render shows it: secrets in the
    /// config are not read (every one is `[secret]`), so the result is the same on every
    /// machine.
    pub fn desired(&self, env: &str, config_dir: Option<&Path>) -> anyhow::Result<Desired> {
        self.desired_with(env, config_dir, SecretMode::Redacted)
    }

    /// Loads `<env>.toml` and builds the desired stack, reading secrets as `mode` says.
    pub fn desired_with(&self, env: &str, config_dir: Option<&Path>, mode: SecretMode) -> anyhow::Result<Desired> {
        let common = args::Common {
            env: env.to_string(),
            state: None,
            config_dir: config_dir.map(Path::to_path_buf),
            passphrase_file: None,
        };
        self.build(&self.environment(&common)?, mode)
    }
}

/// The exit code of a command line that could not be parsed (BSD's `EX_USAGE`): never 2,
/// which `preview --detailed-exitcode` uses for "changes".
pub const EXIT_USAGE: u8 = 64;
/// The exit code of an interrupted command (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Runs the command line for `program`; returns the process's exit code.
pub fn main<C: DeserializeOwned>(program: Program<C>) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(EXIT_USAGE) } else { ExitCode::SUCCESS };
        }
    };
    context::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        let interrupt = Interrupt::install();
        // Commands that change something stop at their next safe point on the first Ctrl-C
        // (and release their lock on the second, within `FORCED_RELEASE`); the others have
        // nothing to save and stop at once.
        let safe_points = matches!(
            cli.command,
            Command::Deploy { .. } | Command::Destroy { .. } | Command::Refresh { .. } | Command::Config { .. }
        ) || matches!(
            cli.command,
            Command::State {
                command: args::StateCommand::Rm { .. }
                    | args::StateCommand::Migrate { .. }
                    | args::StateCommand::Import { .. }
            }
        );
        let stop = async {
            if safe_points {
                interrupt.forced().await;
                tokio::time::sleep(crate::state::locked::FORCED_RELEASE + std::time::Duration::from_secs(1)).await;
            } else {
                interrupt.requested().await;
            }
        };
        let result = tokio::select! {
            r = run(&program, cli.command, &interrupt) => r,
            () = stop => Err(if safe_points {
                // The lock could not be released in time: it frees itself (the OS drops a
                // file lock with the process, a Consul session expires).
                StateError::Forced.into()
            } else {
                context::Interrupted("stopped; nothing was changed").into()
            }),
        };
        match result {
            Ok(code) => code,
            Err(e) => {
                let interrupted = interrupt.is_requested()
                    || e.downcast_ref::<context::Interrupted>().is_some()
                    || matches!(e.downcast_ref::<StateError>(), Some(StateError::Interrupted | StateError::Forced));
                if interrupted {
                    eprintln!("interrupted: {e:#}");
                    EXIT_INTERRUPTED
                } else {
                    eprintln!("error: {e:#}");
                    1
                }
            }
        }
    });
    // A prompt's reading thread may still wait for a line: do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    ExitCode::from(code)
}

async fn run<C: DeserializeOwned>(program: &Program<C>, command: Command, interrupt: &Interrupt) -> anyhow::Result<u8> {
    match command {
        Command::Render { common, out } => render::render(program, &common, out.as_deref()),
        Command::Graph { common, format } => render::graph(program, &common, format),
        Command::Preview { common, format, detailed_exitcode } => {
            preview::preview(program, &common, format, detailed_exitcode).await
        }
        Command::Deploy { common, run } => {
            deploy::deploy(program, &common, &run, deploy::Mode::Deploy, interrupt).await
        }
        Command::Destroy { common, run } => {
            deploy::deploy(program, &common, &run, deploy::Mode::Destroy, interrupt).await
        }
        Command::Refresh { common, run, dry_run } => refresh::refresh(program, &common, &run, dry_run, interrupt).await,
        Command::Outputs { common, json, show_secrets } => outputs::outputs(program, &common, json, show_secrets).await,
        Command::Unlock { common, lock_id } => state::unlock(program, &common, &lock_id).await,
        Command::State { command } => state::run(program, command, interrupt).await,
        Command::Config { command } => config::run(program, command, interrupt).await,
    }
}
