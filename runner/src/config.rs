//! Configuration: the TOML file's shape, its defaults, and validation that names the key at fault.
//!
//! Every section and key is optional; an empty file is the default configuration. Unknown keys
//! are errors, so a typo never silently falls back to a default. [`Config::load`] layers the
//! sources: defaults, the file, the environment ([`environment`]), the flags.

pub mod environment;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use environment::Environment;

/// A configuration problem, always naming the key (`limits.max_concurrent_tasks`) it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("cannot read htpasswd file {path} (config key `auth.htpasswd_file`): {message}")]
    Htpasswd { path: PathBuf, message: String },
    /// A variable's value is wrong. `about` names the config key (and flag) it sets. The
    /// message never holds the value of a secret key.
    #[error("environment variable {var} ({about}): {message}")]
    Env { var: String, about: String, message: String },
    #[error(
        "unknown environment variable(s) {names}: the runner reads RUNNER_<SECTION>__<KEY> for each \
         config key, RUNNER_CONFIG, RUNNER_LISTEN, RUNNER_INSECURE_NO_AUTH and RUNNER_LOG \
         (runner --help lists them)"
    )]
    UnknownEnv { names: String },
}

impl ConfigError {
    fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid { key: key.to_string(), message: message.into() }
    }
}

/// The whole configuration. See README.md for each key.
#[cfg_attr(test, derive(serde::Serialize))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub tasks: TaskConfig,
    pub images: ImageConfig,
    pub reaper: ReaperConfig,
    pub tls: TlsConfig,
}

/// HTTPS with rustls. Both `cert` and `key` set turn it on; TLS 1.2 and 1.3 only.
#[cfg_attr(test, derive(serde::Serialize))]
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file: the server certificate followed by its chain.
    pub cert: Option<PathBuf>,
    /// PEM file: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// `Strict-Transport-Security: max-age=...` sent on every response when TLS is on.
    pub hsts_max_age_secs: u64,
    /// How long a client has to finish the TLS handshake.
    pub handshake_timeout_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig { cert: None, key: None, hsts_max_age_secs: 31_536_000, handshake_timeout_ms: 10_000 }
    }
}

impl TlsConfig {
    pub fn enabled(&self) -> bool {
        self.cert.is_some() && self.key.is_some()
    }
}

#[cfg_attr(test, derive(serde::Serialize))]
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on; `--listen` overrides it.
    pub listen: SocketAddr,
    /// On SIGTERM/SIGINT: how long in-flight tasks may still run before they are killed.
    pub shutdown_grace_ms: u64,
    /// Names this runner's containers (label `cairn.runner.instance`), so that runners sharing
    /// one Docker engine never reap each other's containers.
    pub instance: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8448)),
            shutdown_grace_ms: 30_000,
            instance: "default".to_string(),
        }
    }
}

#[cfg_attr(test, derive(serde::Serialize))]
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// htpasswd file with bcrypt hashes (`user:$2y$...`), for HTTP basic auth.
    pub htpasswd_file: Option<PathBuf>,
    /// Accepted `Authorization: Bearer <token>` values.
    pub bearer_tokens: Vec<String>,
    /// Serve without authentication. Only allowed on a loopback listen address.
    pub insecure_no_auth: bool,
}

/// Hides the tokens.
impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("htpasswd_file", &self.htpasswd_file)
            .field("bearer_tokens", &format_args!("[{} secret(s)]", self.bearer_tokens.len()))
            .field("insecure_no_auth", &self.insecure_no_auth)
            .finish()
    }
}

#[cfg_attr(test, derive(serde::Serialize))]
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Tasks running at once.
    pub max_concurrent_tasks: usize,
    /// Tasks waiting for a slot; when full, new tasks get 503 with Retry-After.
    pub max_queued_tasks: usize,
    /// How long a queued task waits for a slot before it gets 503.
    pub queue_timeout_ms: u64,
    /// Token bucket per client (auth identity, or IP without auth): sustained rate.
    pub rate_limit_per_second: f64,
    /// Token bucket size: requests a client may make in a burst.
    pub rate_limit_burst: u32,
    /// Turns per-client rate limiting on or off.
    pub rate_limit_enabled: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 4 * 1024 * 1024,
            max_concurrent_tasks: 16,
            max_queued_tasks: 64,
            queue_timeout_ms: 30_000,
            rate_limit_per_second: 10.0,
            rate_limit_burst: 20,
            rate_limit_enabled: true,
        }
    }
}

/// Defaults for each per-request option, and the maxima a request may not exceed.
#[cfg_attr(test, derive(serde::Serialize))]
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskConfig {
    pub default_timeout_ms: u64,
    pub max_timeout_ms: u64,
    pub default_memory_bytes: i64,
    pub max_memory_bytes: i64,
    pub default_cpus: f64,
    pub max_cpus: f64,
    pub default_pids_limit: i64,
    pub max_pids_limit: i64,
    /// Per stream (stdout and stderr each).
    pub default_output_limit_bytes: usize,
    pub max_output_limit_bytes: usize,
    pub default_network: String,
    /// Networks a request may ask for.
    pub allowed_networks: Vec<String>,
    pub default_read_only_rootfs: bool,
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig {
            default_timeout_ms: 30_000,
            max_timeout_ms: 300_000,
            default_memory_bytes: 256 * 1024 * 1024,
            max_memory_bytes: 2 * 1024 * 1024 * 1024,
            default_cpus: 1.0,
            max_cpus: 2.0,
            default_pids_limit: 256,
            max_pids_limit: 4096,
            default_output_limit_bytes: 1024 * 1024,
            max_output_limit_bytes: 16 * 1024 * 1024,
            default_network: "none".to_string(),
            allowed_networks: vec!["none".to_string()],
            default_read_only_rootfs: false,
        }
    }
}

impl TaskConfig {
    pub fn default_timeout(&self) -> Duration {
        Duration::from_millis(self.default_timeout_ms)
    }
}

/// When to pull an image before running it.
#[cfg_attr(test, derive(serde::Serialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    /// Pull before every task; a failed pull fails the task.
    Always,
    /// Pull only when the image is not present locally.
    IfNotPresent,
    /// Never pull: a missing image is a 404.
    Never,
}

#[cfg_attr(test, derive(serde::Serialize))]
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageConfig {
    pub pull_policy: PullPolicy,
    pub pull_timeout_ms: u64,
    /// Credentials per registry host (`"registry.example.com:5000"`), used when a request has
    /// no `creds` of its own.
    pub registries: BTreeMap<String, RegistryAuth>,
    pub ecr: EcrConfig,
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            pull_policy: PullPolicy::IfNotPresent,
            pull_timeout_ms: 300_000,
            registries: BTreeMap::new(),
            ecr: EcrConfig::default(),
        }
    }
}

/// Configured credentials for one registry.
#[cfg_attr(test, derive(serde::Serialize))]
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryAuth {
    pub username: String,
    /// The password itself, or...
    pub password: Option<String>,
    /// ...a file holding it (trailing newline ignored), so it need not sit in the config.
    pub password_file: Option<PathBuf>,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[secret]"))
            .field("password_file", &self.password_file)
            .finish()
    }
}

/// ECR registries (`<account>.dkr.ecr.<region>.amazonaws.com`): a pull without request
/// `creds` gets a token from GetAuthorizationToken, cached until shortly before it expires.
#[cfg_attr(test, derive(serde::Serialize))]
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EcrConfig {
    pub enabled: bool,
    /// Send GetAuthorizationToken here instead of AWS (a local emulator, for tests). Unset: the
    /// standard chain's endpoint settings (`AWS_ENDPOINT_URL_ECR`, `AWS_ENDPOINT_URL`), or AWS.
    pub endpoint_url: Option<String>,
    /// A cached token is renewed once it has less than this left (tokens last 12 hours).
    pub refresh_before_expiry_ms: u64,
    /// Time limit of one GetAuthorizationToken call, getting AWS credentials included.
    pub timeout_ms: u64,
}

impl Default for EcrConfig {
    fn default() -> Self {
        EcrConfig { enabled: false, endpoint_url: None, refresh_before_expiry_ms: 15 * 60 * 1000, timeout_ms: 20_000 }
    }
}

#[cfg_attr(test, derive(serde::Serialize))]
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReaperConfig {
    /// How often leftover containers are looked for. 0 turns the periodic reaper off
    /// (the one at startup still runs).
    pub interval_ms: u64,
    /// A labelled container no task owns is only removed once it is this old, so a container
    /// being created right now is never mistaken for a leftover.
    pub min_age_ms: u64,
}

impl Default for ReaperConfig {
    fn default() -> Self {
        ReaperConfig { interval_ms: 60_000, min_age_ms: 60_000 }
    }
}

/// The command line's part of the configuration; `main` fills it from the flags.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--listen`: `server.listen`.
    pub listen: Option<SocketAddr>,
    /// `--insecure-no-auth`: `auth.insecure_no_auth = true`.
    pub insecure_no_auth: bool,
}

impl Config {
    /// Parses TOML text; errors name the key (`tasks.max_timeout_ms`) and say what is wrong.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config =
            Config::from_table(parse_file(text)?).map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        config.validate()?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        Config::from_toml(&read_file(path)?)
    }

    /// The whole configuration, each source over the one before: the defaults, the file
    /// (`--config`, else `RUNNER_CONFIG`), the environment (`RUNNER_<SECTION>__<KEY>`), the
    /// flags (each flag, else its variable). Everything is validated once, at the end; an
    /// error about a value from the environment names the variable as well as the key.
    pub fn load(flags: &Flags, env: &Environment) -> Result<Config, ConfigError> {
        let mut table = match &flags.config {
            Some(path) => parse_file(&read_file(path)?)?,
            None => match env.config_file() {
                Some(path) => parse_file(&read_file(&path).map_err(|err| ConfigError::Env {
                    var: environment::CONFIG_VAR.to_string(),
                    about: "flag --config".to_string(),
                    message: err.to_string(),
                })?)?,
                None => toml::Table::new(),
            },
        };
        env.overlay(&mut table)?;
        // A bad variable is an error even when its flag is given.
        let listen_var = env.listen()?;
        let insecure_var = env.insecure_no_auth()?;
        let server = table.entry("server").or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let (Some(listen), toml::Value::Table(server)) = (flags.listen.or(listen_var), server) {
            server.insert("listen".to_string(), toml::Value::String(listen.to_string()));
        }
        let insecure = if flags.insecure_no_auth { Some(true) } else { insecure_var };
        let auth = table.entry("auth").or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let (Some(insecure), toml::Value::Table(auth)) = (insecure, auth) {
            auth.insert("insecure_no_auth".to_string(), toml::Value::Boolean(insecure));
        }
        let config = Config::from_table(table).map_err(|(key, message)| env.type_error(key, message))?;
        config.validate().map_err(|err| env.attribute(err))?;
        Ok(config)
    }

    /// Deserializes a (merged) table without validating it; an error is (key, message).
    fn from_table(table: toml::Table) -> Result<Config, (String, String)> {
        serde_path_to_error::deserialize(table).map_err(|err| {
            let key = err.path().to_string();
            let inner = err.into_inner();
            // Keep only the first line of toml's message.
            let message = inner.message().lines().next().unwrap_or("").to_string();
            (if key == "." { "(file)".to_string() } else { key }, message)
        })
    }

    /// Checks relations between values that the types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.tasks;
        let l = &self.limits;
        if self.server.instance.is_empty()
            || !self.server.instance.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(ConfigError::invalid(
                "server.instance",
                "must be non-empty and use only letters, digits, '-', '_' and '.'",
            ));
        }
        if l.max_body_bytes == 0 {
            return Err(ConfigError::invalid("limits.max_body_bytes", "must be > 0"));
        }
        if l.max_concurrent_tasks == 0 {
            return Err(ConfigError::invalid("limits.max_concurrent_tasks", "must be > 0"));
        }
        if l.rate_limit_enabled {
            if !(l.rate_limit_per_second.is_finite() && l.rate_limit_per_second > 0.0) {
                return Err(ConfigError::invalid("limits.rate_limit_per_second", "must be a positive number"));
            }
            if l.rate_limit_burst == 0 {
                return Err(ConfigError::invalid("limits.rate_limit_burst", "must be > 0"));
            }
        }
        check_pair(
            "tasks.default_timeout_ms",
            t.default_timeout_ms as f64,
            "tasks.max_timeout_ms",
            t.max_timeout_ms as f64,
        )?;
        if t.default_timeout_ms == 0 {
            return Err(ConfigError::invalid("tasks.default_timeout_ms", "must be > 0"));
        }
        // Docker refuses memory limits below 6 MiB.
        if t.default_memory_bytes < MIN_MEMORY_BYTES {
            return Err(ConfigError::invalid(
                "tasks.default_memory_bytes",
                format!("must be at least {MIN_MEMORY_BYTES} (Docker's minimum)"),
            ));
        }
        check_pair(
            "tasks.default_memory_bytes",
            t.default_memory_bytes as f64,
            "tasks.max_memory_bytes",
            t.max_memory_bytes as f64,
        )?;
        if !(t.default_cpus.is_finite() && t.default_cpus > 0.0) {
            return Err(ConfigError::invalid("tasks.default_cpus", "must be a positive number"));
        }
        check_pair("tasks.default_cpus", t.default_cpus, "tasks.max_cpus", t.max_cpus)?;
        if t.default_pids_limit <= 0 {
            return Err(ConfigError::invalid("tasks.default_pids_limit", "must be > 0"));
        }
        check_pair(
            "tasks.default_pids_limit",
            t.default_pids_limit as f64,
            "tasks.max_pids_limit",
            t.max_pids_limit as f64,
        )?;
        check_pair(
            "tasks.default_output_limit_bytes",
            t.default_output_limit_bytes as f64,
            "tasks.max_output_limit_bytes",
            t.max_output_limit_bytes as f64,
        )?;
        if !t.allowed_networks.contains(&t.default_network) {
            return Err(ConfigError::invalid(
                "tasks.default_network",
                format!("{:?} is not in tasks.allowed_networks {:?}", t.default_network, t.allowed_networks),
            ));
        }
        if self.images.pull_timeout_ms == 0 {
            return Err(ConfigError::invalid("images.pull_timeout_ms", "must be > 0"));
        }
        for (host, auth) in &self.images.registries {
            let key = format!("images.registries.\"{host}\"");
            if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
                return Err(ConfigError::invalid(&key, "must be a registry host such as registry.example.com:5000"));
            }
            if auth.username.is_empty() {
                return Err(ConfigError::invalid(&format!("{key}.username"), "must be set"));
            }
            if auth.password.is_some() == auth.password_file.is_some() {
                return Err(ConfigError::invalid(
                    &format!("{key}.password"),
                    "set exactly one of password and password_file",
                ));
            }
        }
        if self.images.ecr.enabled && !cfg!(feature = "ecr") {
            return Err(ConfigError::invalid("images.ecr.enabled", "this runner was built without the `ecr` feature"));
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            let missing = if self.tls.cert.is_none() { "tls.cert" } else { "tls.key" };
            return Err(ConfigError::invalid(missing, "tls.cert and tls.key must be set together"));
        }
        if self.tls.handshake_timeout_ms == 0 {
            return Err(ConfigError::invalid("tls.handshake_timeout_ms", "must be > 0"));
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })
}

/// The file's TOML document; a syntax error is reported as the key `(file)`.
fn parse_file(text: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|err| ConfigError::Invalid {
        key: "(file)".to_string(),
        message: err.message().lines().next().unwrap_or("").to_string(),
    })
}

/// Docker's smallest accepted memory limit.
pub const MIN_MEMORY_BYTES: i64 = 6 * 1024 * 1024;

fn check_pair(default_key: &str, default: f64, max_key: &str, max: f64) -> Result<(), ConfigError> {
    if default > max {
        return Err(ConfigError::invalid(default_key, format!("{default} is above {max_key} ({max})")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn empty_file_is_the_default() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8448");
        assert_eq!(config.tasks.default_network, "none");
        assert_eq!(config.images.pull_policy, PullPolicy::IfNotPresent);
    }

    #[test]
    fn values_are_read() {
        let config =
            Config::from_toml("[limits]\nmax_concurrent_tasks = 3\n[images]\npull_policy = \"never\"\n").unwrap();
        assert_eq!(config.limits.max_concurrent_tasks, 3);
        assert_eq!(config.images.pull_policy, PullPolicy::Never);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[limits]\nmax_concurrent_tasks = \"x\"\n", "limits.max_concurrent_tasks"),
            ("[limits]\nmax_concurent_tasks = 1\n", "max_concurent_tasks"),
            ("[images]\npull_policy = \"sometimes\"\n", "images.pull_policy"),
            ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
            ("[tasks]\ndefault_timeout_ms = 10\nmax_timeout_ms = 5\n", "tasks.default_timeout_ms"),
            ("[tasks]\ndefault_memory_bytes = 1024\n", "tasks.default_memory_bytes"),
            ("[tasks]\ndefault_network = \"bridge\"\n", "tasks.default_network"),
            ("[limits]\nrate_limit_burst = 0\n", "limits.rate_limit_burst"),
            ("[server]\ninstance = \"a b\"\n", "server.instance"),
            ("[tls]\ncert = \"/x.pem\"\n", "tls.key"),
            ("[tls]\nkey = \"/x.pem\"\n", "tls.cert"),
            (
                "[images.registries.\"r.example:5000\"]\nusername = \"u\"\n",
                "images.registries.\"r.example:5000\".password",
            ),
            ("[images.ecr]\nenabled = \"yes\"\n", "images.ecr.enabled"),
        ];
        for (text, key) in cases {
            let message = err(text);
            assert!(message.contains(key), "{text:?}: {message}");
        }
    }
}
