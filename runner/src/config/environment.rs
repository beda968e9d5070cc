//! Configuration from environment variables.
//!
//! Every config key has one variable, named from its TOML path: `RUNNER_` followed by the path
//! in capitals with `__` between its parts (`server.listen` is `RUNNER_SERVER__LISTEN`,
//! `images.ecr.enabled` is `RUNNER_IMAGES__ECR__ENABLED`). A value is read with the same types
//! and the same validation as the file: it is put into the file's TOML table in place of the
//! file's value, and the merged table is deserialized once. The flags have variables of their
//! own (`RUNNER_CONFIG`, `RUNNER_LISTEN`, `RUNNER_INSECURE_NO_AUTH`) that act like the flag
//! when the flag is not given.
//!
//! An unknown `RUNNER_*` variable is an error, so a typo never goes unnoticed. Values of
//! secret keys (bearer tokens, registry passwords) never appear in an error or a log line.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::ConfigError;

/// Every variable the runner reads starts with this.
pub const PREFIX: &str = "RUNNER_";
/// `--config`, when the flag is not given.
pub const CONFIG_VAR: &str = "RUNNER_CONFIG";
/// `--listen`, when the flag is not given.
pub const LISTEN_VAR: &str = "RUNNER_LISTEN";
/// `--insecure-no-auth`, when the flag is not given (`true` or `false`).
pub const INSECURE_NO_AUTH_VAR: &str = "RUNNER_INSECURE_NO_AUTH";
/// The log filter, read by `main` before anything else.
pub const LOG_VAR: &str = "RUNNER_LOG";

/// `RUNNER_*` variables that are not the runner's settings, so not errors: knobs of this
/// repository's scripts (`scripts/runner-image.sh`, `scripts/runner-fuzz.sh`), which a shell
/// that starts a runner may have exported, and the ones GitHub Actions sets in every job.
pub const OTHERS: &[&str] = &[
    "RUNNER_IMAGE_SKIP_BUILD",
    "RUNNER_FUZZ_MAX_EXAMPLES",
    "RUNNER_ARCH",
    "RUNNER_DEBUG",
    "RUNNER_ENVIRONMENT",
    "RUNNER_NAME",
    "RUNNER_OS",
    "RUNNER_PERFLOG",
    "RUNNER_TEMP",
    "RUNNER_TOOL_CACHE",
    "RUNNER_TRACKING_ID",
    "RUNNER_WORKSPACE",
];

/// How a variable's text becomes a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// The text itself, as a string (names, addresses, the pull policy).
    Text,
    /// The text as a string; empty means "not set" (optional paths and URLs).
    OptionalText,
    /// A TOML literal: an integer, a float or `true`/`false`. Text that is not one is passed on
    /// as a string, so the type error reads exactly as it would for the file.
    Literal,
    /// Items separated by commas (spaces around them ignored), or a TOML array when the text
    /// starts with `[`. Empty is the empty list.
    List,
    /// A TOML inline table.
    Table,
}

/// One config key as the environment sees it.
struct Key {
    path: &'static str,
    form: Form,
    /// Never echoed, in errors or logs.
    secret: bool,
    /// What a good value looks like, for errors and `--help`.
    expected: &'static str,
}

const fn key(path: &'static str, form: Form, expected: &'static str) -> Key {
    Key { path, form, secret: false, expected }
}

const fn secret(path: &'static str, form: Form, expected: &'static str) -> Key {
    Key { path, form, secret: true, expected }
}

const MS: &str = "a whole number of milliseconds";
const BYTES: &str = "a whole number of bytes";
const BOOL: &str = "true or false";

/// Every config key, in the order of README.md. A unit test checks this against `Config`.
const KEYS: &[Key] = &[
    key("server.listen", Form::Text, "an IP address and port, such as 0.0.0.0:8448"),
    key("server.shutdown_grace_ms", Form::Literal, MS),
    key("server.instance", Form::Text, "a name of letters, digits, '-', '_' and '.'"),
    key("auth.htpasswd_file", Form::OptionalText, "a file path (empty: none)"),
    secret("auth.bearer_tokens", Form::List, "tokens separated by commas, or a TOML array of strings"),
    key("auth.insecure_no_auth", Form::Literal, BOOL),
    key("limits.max_body_bytes", Form::Literal, BYTES),
    key("limits.max_concurrent_tasks", Form::Literal, "a whole number"),
    key("limits.max_queued_tasks", Form::Literal, "a whole number"),
    key("limits.queue_timeout_ms", Form::Literal, MS),
    key("limits.rate_limit_enabled", Form::Literal, BOOL),
    key("limits.rate_limit_per_second", Form::Literal, "a number of requests per second, such as 10.0"),
    key("limits.rate_limit_burst", Form::Literal, "a whole number of requests"),
    key("tasks.default_timeout_ms", Form::Literal, MS),
    key("tasks.max_timeout_ms", Form::Literal, MS),
    key("tasks.default_memory_bytes", Form::Literal, BYTES),
    key("tasks.max_memory_bytes", Form::Literal, BYTES),
    key("tasks.default_cpus", Form::Literal, "a number of CPUs, such as 1.5"),
    key("tasks.max_cpus", Form::Literal, "a number of CPUs, such as 1.5"),
    key("tasks.default_pids_limit", Form::Literal, "a whole number of processes"),
    key("tasks.max_pids_limit", Form::Literal, "a whole number of processes"),
    key("tasks.default_output_limit_bytes", Form::Literal, BYTES),
    key("tasks.max_output_limit_bytes", Form::Literal, BYTES),
    key("tasks.default_network", Form::Text, "a Docker network name"),
    key("tasks.allowed_networks", Form::List, "network names separated by commas, or a TOML array of strings"),
    key("tasks.default_read_only_rootfs", Form::Literal, BOOL),
    key("images.pull_policy", Form::Text, "always, if-not-present or never"),
    key("images.pull_timeout_ms", Form::Literal, MS),
    secret(
        "images.registries",
        Form::Table,
        "a TOML inline table such as {\"registry.example.com:5000\" = {username = \"u\", password_file = \"/run/secrets/pw\"}}",
    ),
    key("images.ecr.enabled", Form::Literal, BOOL),
    key("images.ecr.endpoint_url", Form::OptionalText, "a URL (empty: AWS's own)"),
    key("images.ecr.refresh_before_expiry_ms", Form::Literal, MS),
    key("images.ecr.timeout_ms", Form::Literal, MS),
    key("tls.cert", Form::OptionalText, "a PEM file path (empty: none)"),
    key("tls.key", Form::OptionalText, "a PEM file path (empty: none)"),
    key("tls.hsts_max_age_secs", Form::Literal, "a whole number of seconds"),
    key("tls.handshake_timeout_ms", Form::Literal, MS),
    key("reaper.interval_ms", Form::Literal, "a whole number of milliseconds (0: off)"),
    key("reaper.min_age_ms", Form::Literal, MS),
];

/// The variable for a config key: `server.listen` is `RUNNER_SERVER__LISTEN`.
pub fn var_name(path: &str) -> String {
    format!("{PREFIX}{}", path.to_ascii_uppercase().replace('.', "__"))
}

fn key_by_var(var: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| var_name(k.path) == var)
}

/// The flag variables: (variable, flag, config key it sets).
const FLAG_VARS: &[(&str, &str, Option<&str>)] = &[
    (CONFIG_VAR, "--config", None),
    (LISTEN_VAR, "--listen", Some("server.listen")),
    (INSECURE_NO_AUTH_VAR, "--insecure-no-auth", Some("auth.insecure_no_auth")),
];

/// The runner's own `RUNNER_*` variables, read from the process environment (or given by a test).
///
/// Its `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment").field("vars", &self.vars.keys().collect::<Vec<_>>()).finish()
    }
}

impl Environment {
    /// The process's variables.
    pub fn from_process() -> Result<Environment, ConfigError> {
        Environment::from_vars(std::env::vars_os())
    }

    /// Keeps the runner's variables among `vars`. Unknown `RUNNER_*` names are an error (all of
    /// them in one), as are two variables for the same key and a value that is not UTF-8.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Environment, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let mut out = BTreeMap::new();
        let mut unknown = Vec::new();
        for (name, value) in vars {
            let name = name.into().to_string_lossy().into_owned();
            if !name.starts_with(PREFIX) || name == LOG_VAR || OTHERS.contains(&name.as_str()) {
                continue;
            }
            if key_by_var(&name).is_none() && !FLAG_VARS.iter().any(|(var, _, _)| *var == name) {
                unknown.push(name);
                continue;
            }
            let value = value.into().into_string().map_err(|_| ConfigError::Env {
                var: name.clone(),
                about: about(&name),
                message: "the value is not valid UTF-8".to_string(),
            })?;
            out.insert(name, value);
        }
        if !unknown.is_empty() {
            unknown.sort();
            let names = unknown.iter().map(|n| with_hint(n)).collect::<Vec<_>>().join(", ");
            return Err(ConfigError::UnknownEnv { names });
        }
        for (flag_var, _, key) in FLAG_VARS {
            if let Some(key) = key {
                let key_var = var_name(key);
                if out.contains_key(*flag_var) && out.contains_key(&key_var) {
                    return Err(ConfigError::Env {
                        var: flag_var.to_string(),
                        about: about(flag_var),
                        message: format!("{key_var} sets the same key; set only one of them"),
                    });
                }
            }
        }
        Ok(Environment { vars: out })
    }

    /// The names of the variables that were read (never their values), for the startup log.
    pub fn names(&self) -> Vec<&str> {
        self.vars.keys().map(String::as_str).collect()
    }

    /// `RUNNER_CONFIG`; empty means none.
    pub fn config_file(&self) -> Option<PathBuf> {
        self.vars.get(CONFIG_VAR).filter(|v| !v.is_empty()).map(PathBuf::from)
    }

    /// `RUNNER_LISTEN`.
    pub fn listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let Some(value) = self.vars.get(LISTEN_VAR) else { return Ok(None) };
        value.parse().map(Some).map_err(|e| ConfigError::Env {
            var: LISTEN_VAR.to_string(),
            about: about(LISTEN_VAR),
            message: format!("{e}; expected an IP address and port, such as 0.0.0.0:8448, got {value:?}"),
        })
    }

    /// `RUNNER_INSECURE_NO_AUTH`.
    pub fn insecure_no_auth(&self) -> Result<Option<bool>, ConfigError> {
        match self.vars.get(INSECURE_NO_AUTH_VAR).map(String::as_str) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(ConfigError::Env {
                var: INSECURE_NO_AUTH_VAR.to_string(),
                about: about(INSECURE_NO_AUTH_VAR),
                message: format!("expected true or false, got {other:?}"),
            }),
        }
    }

    /// Puts each key variable's value into `table` (the file's), replacing what was there.
    /// A list or table replaces the file's whole list or table; it is not merged.
    pub(super) fn overlay(&self, table: &mut toml::Table) -> Result<(), ConfigError> {
        for key in KEYS {
            let var = var_name(key.path);
            let Some(raw) = self.vars.get(&var) else { continue };
            match to_value(key, &var, raw)? {
                Some(value) => set(table, key.path, value),
                None => unset(table, key.path),
            }
        }
        Ok(())
    }

    /// The key variable that supplied `config_key` (or the key it is part of), if any.
    fn source(&self, config_key: &str) -> Option<(&'static Key, String)> {
        KEYS.iter()
            .filter(|k| {
                config_key == k.path || config_key.strip_prefix(k.path).is_some_and(|rest| rest.starts_with(['.', '[']))
            })
            .map(|k| (k, var_name(k.path)))
            .find(|(_, var)| self.vars.contains_key(var))
    }

    /// A deserialization error at `config_key`: names the variable when one supplied the key,
    /// with what was expected, and with any value of a secret key cut out.
    pub(super) fn type_error(&self, config_key: String, message: String) -> ConfigError {
        match self.source(&config_key) {
            None => ConfigError::Invalid { key: config_key, message },
            Some((key, var)) => {
                let message = if key.secret { redact(&message) } else { message };
                ConfigError::Env {
                    about: about_key(&config_key),
                    var,
                    message: format!("{message}; expected {}", key.expected),
                }
            }
        }
    }

    /// A validation error: names the variable that supplied the key, or else one that supplied
    /// another key the message names (`... is above tasks.max_timeout_ms`).
    pub(super) fn attribute(&self, err: ConfigError) -> ConfigError {
        let ConfigError::Invalid { key, message } = err else { return err };
        if let Some((_, var)) = self.source(&key) {
            return ConfigError::Env { var, about: about_key(&key), message };
        }
        let mentioned = KEYS
            .iter()
            .filter(|k| message.contains(k.path))
            .map(|k| (k, var_name(k.path)))
            .find(|(_, var)| self.vars.contains_key(var));
        match mentioned {
            Some((other, var)) => ConfigError::Env {
                var,
                about: about_key(other.path),
                message: format!("{}: {message}", about_key(&key)),
            },
            None => ConfigError::Invalid { key, message },
        }
    }
}

fn about_key(config_key: &str) -> String {
    format!("config key `{config_key}`")
}

/// What a variable is about, for its errors.
fn about(var: &str) -> String {
    if let Some((_, flag, key)) = FLAG_VARS.iter().find(|(v, _, _)| *v == var) {
        return match key {
            Some(key) => format!("flag {flag}, config key `{key}`"),
            None => format!("flag {flag}"),
        };
    }
    key_by_var(var).map(|k| about_key(k.path)).unwrap_or_default()
}

/// The TOML value a variable stands for; `None` unsets the key.
fn to_value(key: &Key, var: &str, raw: &str) -> Result<Option<toml::Value>, ConfigError> {
    let error = |message: String| ConfigError::Env {
        var: var.to_string(),
        about: about_key(key.path),
        message: format!("{message}; expected {}", key.expected),
    };
    let value = match key.form {
        Form::Text => toml::Value::String(raw.to_string()),
        Form::OptionalText if raw.is_empty() => return Ok(None),
        Form::OptionalText => toml::Value::String(raw.to_string()),
        Form::Literal => toml_value(raw).unwrap_or_else(|_| toml::Value::String(raw.to_string())),
        Form::List if raw.trim().is_empty() => toml::Value::Array(Vec::new()),
        Form::List if raw.trim_start().starts_with('[') => {
            toml_value(raw).map_err(|e| error(syntax_message("not a TOML array", key, &e)))?
        }
        Form::List => {
            let items: Vec<&str> = raw.split(',').map(str::trim).collect();
            if items.iter().any(|item| item.is_empty()) {
                return Err(error("an item of the list is empty".to_string()));
            }
            toml::Value::Array(items.into_iter().map(|item| toml::Value::String(item.to_string())).collect())
        }
        Form::Table => toml_value(raw).map_err(|e| error(syntax_message("not a TOML inline table", key, &e)))?,
    };
    Ok(Some(value))
}

/// Parses one TOML value (`5`, `true`, `["a"]`, `{a = 1}`); error positions are in `raw`.
fn toml_value(raw: &str) -> Result<toml::Value, toml::de::Error> {
    use serde::Deserialize as _;
    toml::Value::deserialize(toml::de::ValueDeserializer::new(raw))
}

/// toml's message for a syntax error, on one line; for a secret key only where it is.
fn syntax_message(what: &str, key: &Key, err: &toml::de::Error) -> String {
    let at = err.span().map(|s| format!(" at character {}", s.start + 1)).unwrap_or_default();
    if key.secret {
        format!("{what}{at} (details not shown: the value holds secrets)")
    } else {
        let details = err.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(", ");
        format!("{what}{at}: {details}")
    }
}

/// Cuts the value out of a serde message about a secret key. Messages that name only fields
/// (unknown, missing, duplicate field) are kept; the others keep only what was expected.
fn redact(message: &str) -> String {
    if ["unknown field", "missing field", "duplicate field"].iter().any(|p| message.starts_with(p)) {
        return message.to_string();
    }
    // serde's "invalid type: <the value>, expected <what the type wants>": the last part comes
    // from the type, never from the value.
    match message.rfind(", expected ") {
        Some(at) => format!("invalid value (not shown: it may be secret){}", &message[at..]),
        None => "invalid value (not shown: it may be secret)".to_string(),
    }
}

/// Sets `path` (`images.ecr.enabled`) in `table`, making the tables on the way. A part of the
/// path that is not a table in the file is left as it is: deserializing then reports it.
fn set(table: &mut toml::Table, path: &str, value: toml::Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut current = table;
    for part in parts {
        let entry = current.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(next) => current = next,
            _ => return,
        }
    }
    current.insert(last.to_string(), value);
}

fn unset(table: &mut toml::Table, path: &str) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut current = table;
    for part in parts {
        match current.get_mut(part) {
            Some(toml::Value::Table(next)) => current = next,
            _ => return,
        }
    }
    current.remove(last);
}

/// `RUNNER_SERVER__LISTN (did you mean RUNNER_SERVER__LISTEN?)`, when a known name is close.
fn with_hint(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    let known = KEYS.iter().map(|k| var_name(k.path)).chain(FLAG_VARS.iter().map(|(v, _, _)| v.to_string()));
    let best = known.map(|k| (distance(&upper, &k), k)).min();
    match best {
        Some((d, k)) if d <= 3 => format!("{name} (did you mean {k}?)"),
        _ => name.to_string(),
    }
}

/// Levenshtein distance, by bytes.
fn distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The environment section of `runner --help`, made from the same table the runner reads.
pub fn help() -> String {
    let mut out = String::from(
        "Environment variables (precedence: defaults < --config file < environment < flags):\n\
         \x20 RUNNER_CONFIG, RUNNER_LISTEN, RUNNER_INSECURE_NO_AUTH\n\
         \x20     the flags above, when the flag is not given (RUNNER_LISTEN and RUNNER_SERVER__LISTEN\n\
         \x20     may not both be set, nor RUNNER_INSECURE_NO_AUTH and RUNNER_AUTH__INSECURE_NO_AUTH)\n\
         \x20 RUNNER_LOG\n\
         \x20     log filter (default info)\n\
         \x20 RUNNER_<SECTION>__<KEY>\n\
         \x20     every config key: its TOML path in capitals, `__` between the parts;\n\
         \x20     values as in the file, without TOML quotes for strings; empty unsets an\n\
         \x20     optional path; lists and tables replace the file's:\n",
    );
    for key in KEYS {
        let _ = writeln!(
            out,
            "  {}\n      {}{}",
            var_name(key.path),
            key.expected,
            if key.secret { " (secret)" } else { "" }
        );
    }
    out.push_str(
        "Any other RUNNER_* variable is an error, except those of this repository's scripts and of \
         GitHub Actions (README.md lists them).",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Flags};
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Environment {
        Environment::from_vars(vars.iter().copied()).unwrap()
    }

    fn env_err(vars: &[(&str, &str)]) -> String {
        Environment::from_vars(vars.iter().copied()).unwrap_err().to_string()
    }

    fn load(vars: &[(&str, &str)]) -> Result<Config, String> {
        Config::load(&Flags::default(), &env(vars)).map_err(|e| e.to_string())
    }

    /// Writes `text` to a fresh file; returns its path.
    fn file(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("runner-env-test-{}-{name}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn names_follow_the_toml_path() {
        assert_eq!(var_name("server.listen"), "RUNNER_SERVER__LISTEN");
        assert_eq!(var_name("images.ecr.enabled"), "RUNNER_IMAGES__ECR__ENABLED");
        assert_eq!(var_name("limits.max_concurrent_tasks"), "RUNNER_LIMITS__MAX_CONCURRENT_TASKS");
    }

    /// Every key of `Config` has a variable and every variable a key: walks the default
    /// configuration's fields.
    #[test]
    fn every_config_key_has_a_variable() {
        fn walk(prefix: &str, value: &serde_json::Value, seen: &mut Vec<String>) {
            let serde_json::Value::Object(map) = value else { unreachable!() };
            for (name, value) in map {
                let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
                if KEYS.iter().any(|k| k.path == path) {
                    seen.push(path);
                } else if value.is_object() {
                    walk(&path, value, seen);
                } else {
                    panic!("config key {path} has no environment variable in KEYS");
                }
            }
        }
        let mut seen = Vec::new();
        walk("", &serde_json::to_value(Config::default()).unwrap(), &mut seen);
        for key in KEYS {
            assert!(seen.contains(&key.path.to_string()), "{} in KEYS is not a config key", key.path);
        }
        assert_eq!(seen.len(), KEYS.len());
    }

    /// Each key's form fits its type: every variable set to the default (or, for keys unset by
    /// default, a sample) comes back as that value.
    #[test]
    fn every_variable_reads_back_its_value() {
        let defaults = serde_json::to_value(Config::default()).unwrap();
        let mut vars = Vec::new();
        let mut expected = defaults.clone();
        for key in KEYS {
            let pointer = format!("/{}", key.path.replace('.', "/"));
            let text = match defaults.pointer(&pointer).unwrap() {
                serde_json::Value::Null => {
                    *expected.pointer_mut(&pointer).unwrap() = serde_json::json!("/sample");
                    "/sample".to_string()
                }
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(items) => {
                    items.iter().map(|i| i.as_str().unwrap().to_string()).collect::<Vec<_>>().join(",")
                }
                serde_json::Value::Object(map) if map.is_empty() => "{}".to_string(),
                other => other.to_string(),
            };
            vars.push((var_name(key.path), text));
        }
        let env = Environment::from_vars(vars).unwrap();
        let mut table = toml::Table::new();
        env.overlay(&mut table).unwrap();
        // Deserialized without validation: tls.cert alone would be refused.
        let config = Config::from_table(table).unwrap();
        assert_eq!(serde_json::to_value(config).unwrap(), expected);
    }

    #[test]
    fn values_are_read_with_the_file_types() {
        let config = load(&[
            ("RUNNER_SERVER__LISTEN", "0.0.0.0:9000"),
            ("RUNNER_AUTH__BEARER_TOKENS", "tok-1, tok-2"),
            ("RUNNER_LIMITS__MAX_CONCURRENT_TASKS", "3"),
            ("RUNNER_LIMITS__RATE_LIMIT_PER_SECOND", "2"),
            ("RUNNER_LIMITS__RATE_LIMIT_ENABLED", "false"),
            ("RUNNER_TASKS__DEFAULT_CPUS", "0.5"),
            ("RUNNER_TASKS__ALLOWED_NETWORKS", "[\"none\", \"bridge\"]"),
            ("RUNNER_TASKS__DEFAULT_NETWORK", "bridge"),
            ("RUNNER_IMAGES__PULL_POLICY", "never"),
            ("RUNNER_IMAGES__ECR__ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("RUNNER_IMAGES__REGISTRIES", "{\"r.example:5000\" = {username = \"u\", password = \"p\"}}"),
            ("RUNNER_REAPER__INTERVAL_MS", "0"),
        ])
        .unwrap();
        assert_eq!(config.server.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(config.auth.bearer_tokens, ["tok-1", "tok-2"]);
        assert_eq!(config.limits.max_concurrent_tasks, 3);
        assert_eq!(config.limits.rate_limit_per_second, 2.0);
        assert!(!config.limits.rate_limit_enabled);
        assert_eq!(config.tasks.default_cpus, 0.5);
        assert_eq!(config.tasks.allowed_networks, ["none", "bridge"]);
        assert_eq!(config.tasks.default_network, "bridge");
        assert_eq!(config.images.pull_policy, super::super::PullPolicy::Never);
        assert_eq!(config.images.ecr.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(config.images.registries["r.example:5000"].password.as_deref(), Some("p"));
        assert_eq!(config.reaper.interval_ms, 0);
    }

    #[test]
    fn precedence_is_defaults_file_environment_flags() {
        let path = file(
            "precedence",
            "[server]\nlisten = \"127.0.0.1:1001\"\ninstance = \"from-file\"\n\
             [limits]\nmax_queued_tasks = 5\n[tls]\nhsts_max_age_secs = 60\n\
             [auth]\nbearer_tokens = [\"file-token\"]\nhtpasswd_file = \"/etc/htpasswd\"\n",
        );
        let config_var = ("RUNNER_CONFIG", path.to_str().unwrap());
        // The file beats the defaults.
        let config = load(&[config_var]).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:1001");
        assert_eq!(config.limits.max_queued_tasks, 5);
        assert_eq!(config.limits.max_concurrent_tasks, 16);
        // The environment beats the file, key by key; lists are replaced, and empty unsets.
        let vars = [
            config_var,
            ("RUNNER_SERVER__LISTEN", "127.0.0.1:1002"),
            ("RUNNER_LIMITS__MAX_QUEUED_TASKS", "7"),
            ("RUNNER_AUTH__BEARER_TOKENS", "env-token"),
            ("RUNNER_AUTH__HTPASSWD_FILE", ""),
        ];
        let config = load(&vars).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:1002");
        assert_eq!(config.server.instance, "from-file");
        assert_eq!(config.limits.max_queued_tasks, 7);
        assert_eq!(config.tls.hsts_max_age_secs, 60);
        assert_eq!(config.auth.bearer_tokens, ["env-token"]);
        assert_eq!(config.auth.htpasswd_file, None);
        // A flag beats the environment.
        let flags =
            Flags { listen: Some("127.0.0.1:1003".parse().unwrap()), insecure_no_auth: true, ..Flags::default() };
        let config = Config::load(&flags, &env(&vars)).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:1003");
        assert!(config.auth.insecure_no_auth);
        // The flags' variables act as the flags, and a flag beats its variable.
        let config =
            load(&[config_var, ("RUNNER_LISTEN", "127.0.0.1:1004"), ("RUNNER_INSECURE_NO_AUTH", "true")]).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:1004");
        assert!(config.auth.insecure_no_auth);
        let config = Config::load(&flags, &env(&[config_var, ("RUNNER_LISTEN", "127.0.0.1:1004")])).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:1003");
        // --config beats RUNNER_CONFIG.
        let other = file("precedence-other", "[server]\ninstance = \"other-file\"\n");
        let flags = Flags { config: Some(other.clone()), ..Flags::default() };
        assert_eq!(Config::load(&flags, &env(&[config_var])).unwrap().server.instance, "other-file");
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(other);
    }

    #[test]
    fn bad_values_name_the_variable_the_key_and_what_was_expected() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "RUNNER_LIMITS__MAX_CONCURRENT_TASKS",
                "lots",
                &["limits.max_concurrent_tasks", "invalid type: string \"lots\", expected usize", "a whole number"],
            ),
            ("RUNNER_LIMITS__MAX_CONCURRENT_TASKS", "-1", &["expected usize"]),
            ("RUNNER_LIMITS__MAX_CONCURRENT_TASKS", "0", &["limits.max_concurrent_tasks", "must be > 0"]),
            ("RUNNER_SERVER__LISTEN", "nowhere", &["server.listen", "invalid socket address", "such as 0.0.0.0:8448"]),
            ("RUNNER_SERVER__SHUTDOWN_GRACE_MS", "1.5", &["server.shutdown_grace_ms", "milliseconds"]),
            ("RUNNER_SERVER__INSTANCE", "a b", &["server.instance", "must be non-empty"]),
            ("RUNNER_IMAGES__PULL_POLICY", "sometimes", &["images.pull_policy", "unknown variant `sometimes`"]),
            ("RUNNER_IMAGES__ECR__ENABLED", "yes", &["images.ecr.enabled", "expected true or false"]),
            ("RUNNER_TASKS__DEFAULT_TIMEOUT_MS", "999999999", &["tasks.default_timeout_ms", "is above"]),
            (
                "RUNNER_TASKS__ALLOWED_NETWORKS",
                "none,,bridge",
                &["tasks.allowed_networks", "item of the list is empty"],
            ),
            ("RUNNER_TASKS__ALLOWED_NETWORKS", "[\"none\"", &["tasks.allowed_networks", "not a TOML array"]),
            ("RUNNER_TLS__CERT", "/x.pem", &["RUNNER_TLS__CERT", "tls.key", "set together"]),
            (
                "RUNNER_TASKS__MAX_TIMEOUT_MS",
                "10",
                &["(config key `tasks.max_timeout_ms`)", "tasks.default_timeout_ms", "is above"],
            ),
            ("RUNNER_LISTEN", "nowhere", &["flag --listen", "server.listen", "such as 0.0.0.0:8448"]),
            ("RUNNER_INSECURE_NO_AUTH", "1", &["flag --insecure-no-auth", "expected true or false"]),
        ];
        for (var, value, wanted) in cases {
            let message = load(&[(var, value)]).unwrap_err();
            assert!(message.contains(&format!("environment variable {var}")), "{var}={value}: {message}");
            for want in *wanted {
                assert!(message.contains(want), "{var}={value}: {message:?} lacks {want:?}");
            }
        }
    }

    #[test]
    fn errors_in_the_file_still_name_only_the_key() {
        let path = file("file-error", "[limits]\nmax_concurrent_tasks = \"x\"\n");
        let message = load(&[("RUNNER_CONFIG", path.to_str().unwrap()), ("RUNNER_SERVER__INSTANCE", "x")]).unwrap_err();
        assert!(message.starts_with("config key `limits.max_concurrent_tasks`"), "{message}");
        // A bad file value that the environment replaces is never looked at.
        let message = load(&[("RUNNER_CONFIG", path.to_str().unwrap()), ("RUNNER_LIMITS__MAX_CONCURRENT_TASKS", "2")]);
        assert_eq!(message.unwrap().limits.max_concurrent_tasks, 2);
        let _ = std::fs::remove_file(path);
        let message = load(&[("RUNNER_CONFIG", "/nonexistent/runner.toml")]).unwrap_err();
        assert!(message.contains("RUNNER_CONFIG") && message.contains("/nonexistent/runner.toml"), "{message}");
    }

    #[test]
    fn unknown_runner_variables_are_errors_with_a_hint() {
        let message = env_err(&[
            ("RUNNER_SERVER__LISTN", "val-xq1"),
            ("RUNNER_SERVER_LISTEN", "val-xq2"),
            ("RUNNER_NOPE", "val-xq3"),
        ]);
        assert!(message.contains("RUNNER_SERVER__LISTN (did you mean RUNNER_SERVER__LISTEN?)"), "{message}");
        assert!(message.contains("RUNNER_SERVER_LISTEN (did you mean RUNNER_SERVER__LISTEN?)"), "{message}");
        assert!(message.contains("RUNNER_NOPE"), "{message}");
        assert!(!message.contains("RUNNER_NOPE (did you mean"), "{message}");
        // Values are never part of it.
        assert!(!message.contains("val-xq"), "{message}");
        let message = env_err(&[("RUNNER_server__listen", "x")]);
        assert!(message.contains("did you mean RUNNER_SERVER__LISTEN?"), "{message}");
        // Not the runner's: other prefixes, RUNNER_LOG, the scripts' and GitHub Actions' variables.
        let env = env(&[
            ("RUNNER", "x"),
            ("MY_RUNNER_THING", "x"),
            ("RUNNER_LOG", "debug"),
            ("RUNNER_FUZZ_MAX_EXAMPLES", "5"),
            ("RUNNER_IMAGE_SKIP_BUILD", "1"),
            ("RUNNER_OS", "Linux"),
            ("RUNNER_TEMP", "/tmp"),
        ]);
        assert!(env.names().is_empty(), "{env:?}");
    }

    #[test]
    fn two_variables_for_one_key_are_an_error() {
        let message = env_err(&[("RUNNER_LISTEN", "127.0.0.1:1"), ("RUNNER_SERVER__LISTEN", "127.0.0.1:1")]);
        assert!(message.contains("RUNNER_LISTEN") && message.contains("RUNNER_SERVER__LISTEN"), "{message}");
        let message = env_err(&[("RUNNER_INSECURE_NO_AUTH", "true"), ("RUNNER_AUTH__INSECURE_NO_AUTH", "true")]);
        assert!(message.contains("set only one"), "{message}");
    }

    #[cfg(unix)]
    #[test]
    fn a_value_that_is_not_utf8_is_an_error() {
        use std::os::unix::ffi::OsStringExt;
        let vars = [(OsString::from("RUNNER_SERVER__INSTANCE"), OsString::from_vec(vec![0xff, 0xfe]))];
        let message = Environment::from_vars(vars).unwrap_err().to_string();
        assert!(message.contains("RUNNER_SERVER__INSTANCE") && message.contains("UTF-8"), "{message}");
    }

    #[test]
    fn secrets_are_never_echoed() {
        const SECRET: &str = "hunter2-s3cret";
        let cases = [
            ("RUNNER_AUTH__BEARER_TOKENS", format!("[\"{SECRET}\", 12345]"), "12345"),
            ("RUNNER_AUTH__BEARER_TOKENS", format!("[\"{SECRET}\""), SECRET),
            (
                "RUNNER_IMAGES__REGISTRIES",
                format!("{{\"r:5000\" = {{username = \"u\", password = {SECRET}}}}}"),
                SECRET,
            ),
            ("RUNNER_IMAGES__REGISTRIES", "{\"r:5000\" = {username = \"u\", password = 12345}}".to_string(), "12345"),
            (
                "RUNNER_IMAGES__REGISTRIES",
                format!("{{\"r:5000\" = {{username = \"u\", password = \"{SECRET}\", pasword = 1}}}}"),
                SECRET,
            ),
            ("RUNNER_IMAGES__REGISTRIES", format!("\"{SECRET}\""), SECRET),
        ];
        for (var, value, secret) in &cases {
            let message = load(&[(var, value)]).unwrap_err();
            assert!(message.contains(var), "{message}");
            assert!(!message.contains(secret), "{var}: {message}");
        }
        // What is left still says what is wrong.
        let message = load(&[("RUNNER_IMAGES__REGISTRIES", &cases[3].1)]).unwrap_err();
        assert!(
            message.contains("images.registries.r:5000.password") && message.contains("expected a string"),
            "{message}"
        );
        let message = load(&[("RUNNER_IMAGES__REGISTRIES", &cases[4].1)]).unwrap_err();
        assert!(message.contains("unknown field `pasword`"), "{message}");
        // The configuration's Debug hides them too.
        let config = load(&[
            ("RUNNER_AUTH__BEARER_TOKENS", SECRET),
            ("RUNNER_IMAGES__REGISTRIES", &format!("{{\"r:5000\" = {{username = \"u\", password = \"{SECRET}\"}}}}")),
        ])
        .unwrap();
        assert!(!format!("{config:?}").contains(SECRET));
        assert!(!format!("{:?}", env(&[("RUNNER_AUTH__BEARER_TOKENS", SECRET)])).contains(SECRET));
    }

    #[test]
    fn help_lists_every_variable() {
        let help = help();
        for key in KEYS {
            assert!(help.contains(&var_name(key.path)), "{}", key.path);
        }
    }
}
