//! `runner`: parses arguments and configuration, then serves. Everything else lives in
//! the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use runner::config::{environment, Config, Environment, Flags};
use runner::observe::BufferedStdout;
use tracing_subscriber::EnvFilter;

/// Runs commands in fresh Docker containers over HTTP (ecs API v1.1).
///
/// Configuration, each over the one before: defaults, the TOML file, environment variables,
/// flags. See README.md for the keys.
#[derive(Debug, Parser)]
#[command(
    name = "runner",
    version,
    after_help = "Every config key can also be set from the environment, as RUNNER_<SECTION>__<KEY> \
                  (server.listen: RUNNER_SERVER__LISTEN); --help lists them.",
    after_long_help = environment::help()
)]
struct Args {
    /// Address to listen on [default: 127.0.0.1:8448, or server.listen from the config or the
    /// environment] [env: RUNNER_LISTEN]
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Configuration file (TOML); see README.md for the keys [env: RUNNER_CONFIG]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Serve without authentication. Refused unless the listen address is loopback
    /// [env: RUNNER_INSECURE_NO_AUTH=true]
    #[arg(long)]
    insecure_no_auth: bool,
}

fn main() -> ExitCode {
    // JSON lines on stdout, written in batches (see `BufferedStdout`).
    let log = BufferedStdout::new(Duration::from_millis(20));
    tracing_subscriber::fmt()
        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
        .event_format(runner::observe::JsonLines)
        .with_writer(log.clone())
        .with_env_filter(EnvFilter::try_from_env("RUNNER_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let code = match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            log.flush_now();
            eprintln!("runner: {message}");
            ExitCode::FAILURE
        }
    };
    log.flush_now();
    code
}

fn load(args: &Args, env: &Environment) -> Result<Config, String> {
    let flags = Flags { config: args.config.clone(), listen: args.listen, insecure_no_auth: args.insecure_no_auth };
    let config = Config::load(&flags, env).map_err(|e| e.to_string())?;
    if config.auth.insecure_no_auth && !runner::is_loopback(&config.server.listen) {
        return Err(format!(
            "--insecure-no-auth (auth.insecure_no_auth, RUNNER_INSECURE_NO_AUTH, \
             RUNNER_AUTH__INSECURE_NO_AUTH) is only allowed on a loopback address, not {}",
            config.server.listen
        ));
    }
    Ok(config)
}

fn run() -> Result<(), String> {
    let args = Args::parse();
    let env = Environment::from_process().map_err(|e| e.to_string())?;
    let config = load(&args, &env)?;
    // Which variables were read; never their values.
    let env_names = env.names().join(",");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let docker = runner::connect_docker(runner::docker_timeout(&config))
            .await
            .map_err(|e| format!("cannot connect to the Docker engine: {e}"))?;
        let listen = config.server.listen;
        let state = runner::AppState::new(config, docker).map_err(|e| e.to_string())?;
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        tracing::info!(
            %listen,
            version = env!("CARGO_PKG_VERSION"),
            auth = state.auth().enabled(),
            environment = %env_names,
            "runner listening"
        );
        runner::serve(listener, state, shutdown_signal()).await.map_err(|e| format!("server failed: {e}"))
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
