//! The command line's grammar (clap). Nothing here does anything; `mod.rs` dispatches.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::apply::DEFAULT_PARALLEL;

#[derive(Parser, Debug)]
#[command(
    name = "cairn",
    version,
    about = "Infrastructure as code in typed Rust: render, preview, deploy",
    long_about = None,
    after_help = "Exit codes: 0 success; 1 error or cancelled; 2 changes found (preview --detailed-exitcode, \
                  state orphans); 64 the command line is wrong; 130 interrupted (Ctrl-C, SIGTERM)."
)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub(super) struct Common {
    /// The environment: reads `<config-dir>/<env>.toml`; the stack is `<program>-<env>`.
    #[arg(long, short, env = "CAIRN_ENV")]
    pub env: String,
    /// Where state is kept, overriding the environment's `[state] backend`: a directory,
    /// `file://<dir>`, or `consul://[host:port]/<prefix>[?ttl=15s&lock_delay=1s&takeover=5s]`
    /// (token and TLS from the `CONSUL_*` variables). Only `dev` may go without one (it then
    /// uses `.cairn`).
    #[arg(long, env = "CAIRN_STATE")]
    pub state: Option<String>,
    /// Where `<env>.toml` is read from (default: the program's own config directory).
    #[arg(long, env = "CAIRN_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    /// A file holding the passphrase for secrets (instead of `CAIRN_PASSPHRASE`).
    #[arg(long, env = "CAIRN_PASSPHRASE_FILE")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub(super) struct LockArgs {
    /// Wait this long for another run's lock (e.g. `30s`, `5m`); default: fail at once.
    #[arg(long, value_parser = parse_duration)]
    pub lock_timeout: Option<Duration>,
}

#[derive(Args, Debug, Clone)]
pub(super) struct RunArgs {
    /// Apply without asking (required when not on a terminal).
    #[arg(long, short)]
    pub yes: bool,
    /// How many steps may run at once.
    #[arg(long, default_value_t = DEFAULT_PARALLEL, value_parser = parse_parallel)]
    pub parallel: usize,
    #[command(flatten)]
    pub lock: LockArgs,
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
pub(super) enum PlanFormat {
    Text,
    Json,
    Markdown,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GraphFormat {
    Dot,
    Mermaid,
}

#[derive(Subcommand, Debug)]
pub(super) enum Command {
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
    /// Delete every resource of the stack (always asks, unless --yes).
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
    /// Edit an environment's config file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
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
pub(super) enum StateCommand {
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

#[derive(Subcommand, Debug)]
pub(super) enum ConfigCommand {
    /// Set a key of `<env>.toml`, keeping the file's comments and layout. A plain value is
    /// written as TOML when it parses as TOML (`3`, `true`, `["a"]`) and as a string
    /// otherwise. With `--secret`, the value is read from standard input (typed without echo
    /// on a terminal) and stored encrypted with the passphrase, as `{ ciphertext = "..." }`.
    Set {
        #[command(flatten)]
        common: Common,
        /// A dotted key, e.g. `database.password`.
        key: String,
        /// The value (not with --secret: a secret never goes on a command line).
        value: Option<String>,
        /// Read the value from standard input and store it encrypted.
        #[arg(long)]
        secret: bool,
    },
}
