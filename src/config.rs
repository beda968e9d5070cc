//! Typed per-environment configuration: `<config dir>/<env>.toml` into the program's struct.
//!
//! Errors name the file, line and column, the key path, and show the line. Mark config
//! structs `#[serde(deny_unknown_fields)]` so that a misspelt key is an error, not a default.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

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

/// Parses TOML text (named `path` in errors) into `T`.
pub fn parse<T: DeserializeOwned>(path: &Path, src: &str) -> Result<T, ConfigError> {
    let de = toml::Deserializer::new(src);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let span = inner.span();
        ConfigError {
            path: path.to_path_buf(),
            position: span.clone().map(|s| position(src, s.start)),
            key: (key != "." && !key.is_empty()).then_some(key),
            message: inner.message().trim().to_string(),
            snippet: span.map(|s| snippet(src, s)),
        }
    })
}

/// Reads and parses a config file.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        position: None,
        key: None,
        message: format!("cannot read config: {e}"),
        snippet: None,
    })?;
    parse(path, &src)
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
        parse::<Site>(Path::new("stacks/dev.toml"), src).unwrap_err().to_string()
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
    fn good_config_parses() {
        let s: Site = parse(Path::new("x.toml"), "title = \"x\"\n[server]\nport = 80\n").unwrap();
        assert_eq!(s.server.port, 80);
    }
}
