//! Typed per-environment configuration: `<config dir>/<env>.toml` into the program's struct.
//!
//! Errors name the file, line and column, the key path, and show the line. Mark config
//! structs `#[serde(deny_unknown_fields)]` so that a misspelt key is an error, not a default.
//!
//! Two things in the file are cairn's own, not the program's:
//!
//! - The top-level `[state]` table names where the environment's state lives
//!   (`backend = "consul://consul.internal:8500/cairn"`, or a directory); the program's
//!   config type never sees it ([`state_backend`]).
//! - A [`Secret`] field is never written in plain text. It names where its value comes
//!   from: `{ env = "DB_PASSWORD" }` (an environment variable), `{ file = "~/.secrets/db" }`
//!   (a file; a relative path is relative to the config file), or `{ ciphertext = "..." }`
//!   (encrypted with the stack's passphrase by `cairn config set --secret <key>`). A plain
//!   value is an error that says so. Render and graph never read a secret ([`SecretMode`]),
//!   so their output is the same on every machine.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use crate::resource::Secret;
use crate::secrets::{self, SecretBox, SecretsError};

/// The top-level tables that belong to cairn, not to the program's config type.
const OWN_TABLES: &[&str] = &["state"];

/// How the [`Secret`]s of a config are read while it is loaded.
#[derive(Debug, Clone)]
pub enum SecretMode {
    /// Read every secret from its source (deploy, preview): an environment variable, a file,
    /// or a ciphertext opened with the passphrase (from `passphrase_file`, else
    /// `CAIRN_PASSPHRASE`).
    Read { passphrase_file: Option<PathBuf> },
    /// Read none: every secret is `[secret]` (render, graph, snapshots), so that what is
    /// rendered does not depend on the machine. Each secret's form is still checked.
    Redacted,
}

/// What a `Secret` being deserialized needs: set by [`load`] for the length of one load.
struct LoadContext {
    mode: SecretMode,
    /// The config file's directory: relative secret files are found from there.
    dir: PathBuf,
    passphrase: Option<Secret<String>>,
    /// Opened keys, by their salt: one key derivation per salt and load.
    boxes: HashMap<String, SecretBox>,
}

thread_local! {
    static LOADING: RefCell<Option<LoadContext>> = const { RefCell::new(None) };
}

/// Where a secret's value comes from, as written in a config file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretSource {
    env: Option<String>,
    file: Option<String>,
    ciphertext: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SecretField {
    Source(SecretSource),
    Plain(IgnoredAny),
}

const PLAIN_SECRET: &str = "a secret is never written in plain text";

const SECRET_FORMS: &str = "write `{ env = \"VARIABLE\" }`, `{ file = \"path\" }`, or set it encrypted with \
     `cairn config set --secret <key>`";

/// The text of the secret a config field names, as [`LoadContext`] says to read it.
fn read_secret(source: SecretSource) -> Result<Secret<String>, String> {
    let given = [source.env.is_some(), source.file.is_some(), source.ciphertext.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(format!("a secret names exactly one source: {SECRET_FORMS}"));
    }
    LOADING.with_borrow_mut(|ctx| {
        let mut fallback;
        let ctx = match ctx {
            Some(ctx) => ctx,
            None => {
                fallback = LoadContext {
                    mode: SecretMode::Read { passphrase_file: None },
                    dir: PathBuf::from("."),
                    passphrase: None,
                    boxes: HashMap::new(),
                };
                &mut fallback
            }
        };
        let passphrase_file = match &ctx.mode {
            SecretMode::Redacted => return Ok(Secret::new(crate::value::REDACTED.to_string())),
            SecretMode::Read { passphrase_file } => passphrase_file.clone(),
        };
        if let Some(name) = source.env {
            return match std::env::var(&name) {
                Ok(v) if v.is_empty() => {
                    Err(format!("the environment variable `{name}` that holds this secret is empty"))
                }
                Ok(v) => Ok(Secret::new(v)),
                Err(std::env::VarError::NotPresent) => {
                    Err(format!("the environment variable `{name}` that holds this secret is not set"))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(format!("the environment variable `{name}` that holds this secret is not UTF-8"))
                }
            };
        }
        if let Some(file) = source.file {
            let path = match file.strip_prefix("~/") {
                Some(rest) => std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(rest),
                None => ctx.dir.join(&file),
            };
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read the secret file {}: {e}", path.display()))?;
            let text = without_line_end(&text);
            if text.is_empty() {
                return Err(format!("the secret file {} is empty", path.display()));
            }
            return Ok(Secret::new(text.to_string()));
        }
        let sealed = source.ciphertext.unwrap_or_default();
        let (salt, _) = secrets::parse_config_ciphertext(&sealed).map_err(|e| e.to_string())?;
        if ctx.passphrase.is_none() {
            ctx.passphrase = Some(
                secrets::passphrase(passphrase_file.as_deref())
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| SecretsError::Missing.to_string())?,
            );
        }
        let pass = ctx.passphrase.as_ref().expect("set above");
        let b = match ctx.boxes.entry(salt.to_string()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(SecretBox::for_config(pass, salt).map_err(|e| e.to_string())?)
            }
        };
        b.open_config(&sealed).map_err(|e| e.to_string())
    })
}

/// `text` without one trailing line end (`\n` or `\r\n`): what a file or a program's
/// output holds as one value.
pub(crate) fn without_line_end(text: &str) -> &str {
    text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(text)
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret<T>, D::Error> {
        use serde::de::Error;
        let source = match SecretField::deserialize(d)? {
            SecretField::Source(s) => s,
            SecretField::Plain(_) => return Err(D::Error::custom(format!("{PLAIN_SECRET}: {SECRET_FORMS}"))),
        };
        let text = read_secret(source).map_err(D::Error::custom)?;
        let text = text.expose().clone();
        let value = T::deserialize(serde::de::value::StringDeserializer::<D::Error>::new(text.clone()))
            .or_else(|_| serde_json::from_str::<T>(&text))
            .map_err(|_| D::Error::custom("the secret's value does not have the field's type"))?;
        Ok(Secret::new(value))
    }
}

/// A config file that could not be read or does not fit the program's config type.
#[derive(Debug)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// Dotted key path, when known.
    pub key: Option<String>,
    pub message: String,
    /// The offending line and a caret under the span.
    pub snippet: Option<String>,
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(key) = &self.key {
            write!(f, " (at key `{key}`)")?;
        }
        if let Some(snippet) = &self.snippet {
            write!(f, "\n{snippet}")?;
        }
        Ok(())
    }
}

fn position(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

fn snippet(src: &str, span: std::ops::Range<usize>) -> String {
    let (line, col) = position(src, span.start);
    let text = src.lines().nth(line - 1).unwrap_or("");
    let width = src[span.start.min(src.len())..span.end.min(src.len())]
        .split('\n')
        .next()
        .map(|s| s.chars().count())
        .unwrap_or(1)
        .max(1);
    let gutter = line.to_string().len();
    format!(
        "{:gutter$} |\n{line} | {text}\n{:gutter$} | {}{}",
        "",
        "",
        " ".repeat(col - 1),
        "^".repeat(width),
        gutter = gutter
    )
}

/// Parses TOML text (named `path` in errors) into `T`, leaving cairn's own tables out and
/// reading secrets as `mode` says.
pub fn parse<T: DeserializeOwned>(path: &Path, src: &str, mode: SecretMode) -> Result<T, ConfigError> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let previous = LOADING.replace(Some(LoadContext { mode, dir, passphrase: None, boxes: HashMap::new() }));
    let result = parse_without_own(path, src);
    LOADING.set(previous);
    result
}

fn parse_without_own<T: DeserializeOwned>(path: &Path, src: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(WithoutOwn(toml::Deserializer::new(src))).map_err(|e| located(path, src, e))
}

/// A TOML error with its file, line, column, key path and line, except that a secret written
/// in plain text is not shown again.
fn located(path: &Path, src: &str, e: serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
    let key = e.path().to_string();
    let inner = e.into_inner();
    let span = inner.span();
    let message = inner.message().trim().to_string();
    let show_line = !message.starts_with(PLAIN_SECRET);
    ConfigError {
        path: path.to_path_buf(),
        position: span.clone().map(|s| position(src, s.start)),
        key: (key != "." && !key.is_empty()).then_some(key),
        message,
        snippet: span.filter(|_| show_line).map(|s| snippet(src, s)),
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        position: None,
        key: None,
        message: format!("cannot read config: {e}"),
        snippet: None,
    })
}

/// Reads and parses a config file.
pub fn load<T: DeserializeOwned>(path: &Path, mode: SecretMode) -> Result<T, ConfigError> {
    parse(path, &read(path)?, mode)
}

/// cairn's `[state]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateTable {
    /// Where the environment's state lives, in the forms of `--state`.
    backend: String,
}

#[derive(Debug, Deserialize)]
struct OwnTables {
    state: Option<StateTable>,
}

/// The state backend a config file names in its `[state]` table, if it has one.
pub fn state_backend(path: &Path) -> Result<Option<String>, ConfigError> {
    state_backend_of(path, &read(path)?)
}

/// [`state_backend`] of a config's text (named `path` in errors).
pub fn state_backend_of(path: &Path, src: &str) -> Result<Option<String>, ConfigError> {
    let own: OwnTables =
        serde_path_to_error::deserialize(toml::Deserializer::new(src)).map_err(|e| located(path, src, e))?;
    match own.state {
        Some(t) if t.backend.trim().is_empty() => Err(ConfigError {
            path: path.to_path_buf(),
            position: None,
            key: Some("state.backend".into()),
            message: "the state backend is empty".into(),
            snippet: None,
        }),
        other => Ok(other.map(|t| t.backend)),
    }
}

/// Deserializes a document with cairn's own top-level tables ([`OWN_TABLES`]) left out, so
/// that the program's config type (with `deny_unknown_fields`) never sees them. Keys and
/// values still come from the TOML deserializer, so errors keep their positions.
struct WithoutOwn<D>(D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for WithoutOwn<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(SkipOwn(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_struct(name, fields, SkipOwn(visitor))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(SkipOwn(visitor))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct enum identifier ignored_any
    }
}

struct SkipOwn<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for SkipOwn<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(SkipOwnMap(map))
    }
}

struct SkipOwnMap<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for SkipOwnMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        let mut seed = seed;
        loop {
            match self.0.next_key_seed(KeyFilter(seed))? {
                None => return Ok(None),
                Some(Ok(key)) => return Ok(Some(key)),
                Some(Err(unused)) => {
                    self.0.next_value::<IgnoredAny>()?;
                    seed = unused;
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

/// Reads a key; one of cairn's own gives its seed back unused.
struct KeyFilter<K>(K);

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeyFilter<K> {
    type Value = Result<K::Value, K>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let key = String::deserialize(d)?;
        if OWN_TABLES.contains(&key.as_str()) {
            return Ok(Err(self.0));
        }
        self.0.deserialize(serde::de::value::StringDeserializer::<D::Error>::new(key)).map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Site {
        title: String,
        server: Server,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Server {
        port: u16,
    }

    fn err(src: &str) -> String {
        parse::<Site>(Path::new("stacks/dev.toml"), src, SecretMode::Redacted).unwrap_err().to_string()
    }

    #[test]
    fn wrong_type_names_file_line_column_and_key() {
        let e = err("title = \"x\"\n[server]\nport = \"eighty\"\n");
        assert!(
            e.starts_with("stacks/dev.toml:3:8: invalid type: string \"eighty\", expected u16 (at key `server.port`)"),
            "{e}"
        );
        assert!(e.contains("3 | port = \"eighty\""), "{e}");
        assert!(e.contains("^^^^^^^^"), "{e}");
    }

    #[test]
    fn unknown_key_is_an_error() {
        let e = err("title = \"x\"\ntitel = \"y\"\n[server]\nport = 80\n");
        assert!(e.starts_with("stacks/dev.toml:2:1: unknown field `titel`"), "{e}");
    }

    #[test]
    fn missing_key_is_an_error() {
        let e = err("title = \"x\"\n[server]\n");
        assert!(e.contains("missing field `port`"), "{e}");
        assert!(e.contains("server"), "{e}");
    }

    #[test]
    fn the_state_table_is_cairns_and_errors_keep_their_place() {
        let src = "title = \"x\"\n[state]\nbackend = \"consul://c:8500/cairn\"\n[server]\nport = 80\n";
        let s: Site = parse(Path::new("x.toml"), src, SecretMode::Redacted).unwrap();
        assert_eq!(s.server.port, 80);
        assert_eq!(state_backend_of(Path::new("x.toml"), src).unwrap().as_deref(), Some("consul://c:8500/cairn"));
        let e = err("[state]\nbackend = \"b\"\n[server]\nport = 80\nextra = 1\n");
        assert!(e.starts_with("stacks/dev.toml:5:1: unknown field `extra`"), "{e}");
        let e = state_backend_of(Path::new("x.toml"), "[state]\nbackedn = \"b\"\n").unwrap_err().to_string();
        assert!(e.starts_with("x.toml:2:1: unknown field `backedn`, expected `backend`"), "{e}");
        assert_eq!(state_backend_of(Path::new("x.toml"), "title = 1\n").unwrap(), None);
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct WithSecret {
        password: Secret<String>,
    }

    fn secret_of(src: &str, mode: SecretMode) -> Result<String, String> {
        parse::<WithSecret>(Path::new("config/prod.toml"), src, mode)
            .map(|w| w.password.expose().clone())
            .map_err(|e| e.to_string())
    }

    fn read() -> SecretMode {
        SecretMode::Read { passphrase_file: None }
    }

    #[test]
    fn a_secret_is_never_plain_text() {
        let e = secret_of("password = \"hunter2\"\n", read()).unwrap_err();
        assert!(e.starts_with("config/prod.toml:1:12: a secret is never written in plain text"), "{e}");
        // The line is not shown: it holds the secret.
        assert!(e.contains("cairn config set --secret") && !e.contains("hunter2"), "{e}");
        let e = secret_of("password = \"hunter2\"\n", SecretMode::Redacted).unwrap_err();
        assert!(e.contains("never written in plain text"), "{e}");
        let e = secret_of("password = { env = \"A\", file = \"b\" }\n", read()).unwrap_err();
        assert!(e.contains("exactly one source"), "{e}");
    }

    #[test]
    fn secrets_come_from_the_environment_a_file_or_a_ciphertext() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("CAIRN_CONFIG_TEST_SECRET", "from-env");
        assert_eq!(secret_of("password = { env = \"CAIRN_CONFIG_TEST_SECRET\" }\n", read()).unwrap(), "from-env");
        let e = secret_of("password = { env = \"CAIRN_CONFIG_TEST_UNSET\" }\n", read()).unwrap_err();
        assert!(
            e.contains("`CAIRN_CONFIG_TEST_UNSET` that holds this secret is not set")
                && e.contains("(at key `password`)"),
            "{e}"
        );
        // Render reads nothing: the variable need not exist.
        assert_eq!(
            secret_of("password = { env = \"CAIRN_CONFIG_TEST_UNSET\" }\n", SecretMode::Redacted).unwrap(),
            "[secret]"
        );

        let file = dir.path().join("db");
        std::fs::write(&file, "from-file\n").unwrap();
        let src = format!("password = {{ file = {:?} }}\n", file.display().to_string());
        assert_eq!(secret_of(&src, read()).unwrap(), "from-file");

        let pass_file = dir.path().join("pass");
        std::fs::write(&pass_file, "correct horse\n").unwrap();
        let sealed = SecretBox::seal_config(&Secret::new("correct horse".into()), None, "from-ciphertext").unwrap();
        let src = format!("password = {{ ciphertext = \"{sealed}\" }}\n");
        let with_pass = SecretMode::Read { passphrase_file: Some(pass_file.clone()) };
        assert_eq!(secret_of(&src, with_pass).unwrap(), "from-ciphertext");
        std::fs::write(&pass_file, "wrong\n").unwrap();
        let e = secret_of(&src, SecretMode::Read { passphrase_file: Some(pass_file) }).unwrap_err();
        assert!(e.contains("passphrase is wrong"), "{e}");
    }

    #[test]
    fn good_config_parses() {
        let s: Site = parse(Path::new("x.toml"), "title = \"x\"\n[server]\nport = 80\n", SecretMode::Redacted).unwrap();
        assert_eq!(s.server.port, 80);
    }
}
