//! `config set`: edit `<env>.toml`, keeping its comments and layout; secrets are stored
//! encrypted.

use std::io::{IsTerminal, Read};

use anyhow::{anyhow, bail, Context as _};
use serde::de::DeserializeOwned;

use super::args::{Common, ConfigCommand};
use super::context::Interrupted;
use super::Program;
use crate::config::SecretMode;
use crate::interrupt::Interrupt;
use crate::resource::Secret;
use crate::secrets::{self, SecretBox};

pub(super) async fn run<C: DeserializeOwned>(
    program: &Program<C>,
    command: ConfigCommand,
    interrupt: &Interrupt,
) -> anyhow::Result<u8> {
    match command {
        ConfigCommand::Set { common, key, value, secret } => {
            set(program, &common, &key, value, secret, interrupt).await
        }
    }
}

async fn set<C: DeserializeOwned>(
    program: &Program<C>,
    common: &Common,
    key: &str,
    value: Option<String>,
    secret: bool,
    interrupt: &Interrupt,
) -> anyhow::Result<u8> {
    let env = program.environment(common)?;
    let path = &env.config;
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut doc: toml_edit::DocumentMut =
        text.parse().with_context(|| format!("{} is not valid TOML; fix it first", path.display()))?;
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("`{key}` is not a dotted key like `database.password`");
    }
    let existing_is_secret = lookup(&doc, &parts).is_some_and(is_secret_source);
    let new_value: toml_edit::Value = if secret {
        if value.is_some() {
            bail!("a secret is never given on the command line (it would stay in the shell's history): pipe it in, or type it at the prompt");
        }
        let plain = read_secret_value(key, interrupt).await?;
        let pass = secrets::passphrase(common.passphrase_file.as_deref())?.ok_or(secrets::SecretsError::Missing)?;
        let salt = shared_salt(&doc, &pass, path)?;
        let sealed = SecretBox::seal_config(&pass, salt.as_deref(), plain.expose())?;
        let mut table = toml_edit::InlineTable::new();
        table.insert("ciphertext", sealed.into());
        toml_edit::Value::InlineTable(table)
    } else {
        let Some(value) = value else {
            bail!("give the value after the key, or use --secret to type a secret");
        };
        if existing_is_secret {
            bail!("`{key}` holds a secret; set it with --secret so that it stays encrypted");
        }
        // `3`, `true`, `["a"]` as TOML; anything else as a string.
        value.parse::<toml_edit::Value>().unwrap_or_else(|_| toml_edit::Value::from(value.as_str()))
    };
    insert(&mut doc, &parts, new_value).map_err(|e| anyhow!("cannot set `{key}` in {}: {e}", path.display()))?;
    let new_text = doc.to_string();
    // The program must still accept the file (secrets are not read for this check).
    crate::config::parse::<C>(path, &new_text, SecretMode::Redacted)
        .map_err(|e| anyhow!("the file would no longer fit the program's config, so it was not changed:\n{e}"))?;
    crate::config::state_backend_of(path, &new_text)
        .map_err(|e| anyhow!("the file's [state] table would be wrong, so it was not changed:\n{e}"))?;
    let tmp = path.with_extension("toml.cairn-tmp");
    std::fs::write(&tmp, &new_text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    println!("set `{key}` in {}{}", path.display(), if secret { " (encrypted)" } else { "" });
    Ok(0)
}

/// The item at a dotted key, if there is one.
fn lookup<'d>(doc: &'d toml_edit::DocumentMut, parts: &[&str]) -> Option<&'d toml_edit::Item> {
    let mut item = doc.as_item();
    for p in parts {
        item = item.get(p)?;
    }
    Some(item)
}

/// Whether an item is a secret's source (`{ env = ... }`, `{ file = ... }`, `{ ciphertext = ... }`).
fn is_secret_source(item: &toml_edit::Item) -> bool {
    let keys: Vec<&str> = match item {
        toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => t.iter().map(|(k, _)| k).collect(),
        toml_edit::Item::Table(t) => t.iter().map(|(k, _)| k).collect(),
        _ => return false,
    };
    keys.len() == 1 && ["env", "file", "ciphertext"].contains(&keys[0])
}

/// Sets `value` at a dotted key, making tables on the way.
fn insert(doc: &mut toml_edit::DocumentMut, parts: &[&str], value: toml_edit::Value) -> Result<(), String> {
    let (last, path) = parts.split_last().expect("at least one part");
    let mut table: &mut dyn toml_edit::TableLike = doc.as_table_mut();
    for p in path {
        if table.get(p).is_none() {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            table.insert(p, toml_edit::Item::Table(t));
        }
        table = table.get_mut(p).and_then(|i| i.as_table_like_mut()).ok_or_else(|| format!("`{p}` is not a table"))?;
    }
    table.insert(last, toml_edit::Item::Value(value));
    Ok(())
}

/// The salt of the file's other secrets, once the passphrase is shown to open them: every
/// secret of one file is under one key, so a load derives it once.
fn shared_salt(
    doc: &toml_edit::DocumentMut,
    pass: &Secret<String>,
    path: &std::path::Path,
) -> anyhow::Result<Option<String>> {
    let mut found = Vec::new();
    collect_ciphertexts(doc.as_item(), &mut found);
    let Some(first) = found.first() else { return Ok(None) };
    let (salt, _) = secrets::parse_config_ciphertext(first)?;
    SecretBox::for_config(pass, salt)?.open_config(first).map_err(|_| {
        anyhow!(
            "the passphrase does not open the secrets already in {}: use the passphrase they were set with",
            path.display()
        )
    })?;
    Ok(Some(salt.to_string()))
}

fn collect_ciphertexts(item: &toml_edit::Item, into: &mut Vec<String>) {
    match item {
        toml_edit::Item::Table(t) => t.iter().for_each(|(k, i)| visit(k, i, into)),
        toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => {
            t.iter().for_each(|(k, v)| visit(k, &toml_edit::Item::Value(v.clone()), into))
        }
        toml_edit::Item::ArrayOfTables(a) => a.iter().for_each(|t| t.iter().for_each(|(k, i)| visit(k, i, into))),
        _ => {}
    }
}

fn visit(key: &str, item: &toml_edit::Item, into: &mut Vec<String>) {
    match item.as_str() {
        Some(s) if key == "ciphertext" && s.starts_with(secrets::CONFIG_CIPHERTEXT) => into.push(s.to_string()),
        _ => collect_ciphertexts(item, into),
    }
}

/// The secret's value: typed without echo on a terminal, else all of standard input (one
/// trailing newline dropped).
async fn read_secret_value(key: &str, interrupt: &Interrupt) -> anyhow::Result<Secret<String>> {
    let prompt = format!("value of `{key}` (not shown): ");
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        if std::io::stdin().is_terminal() {
            rpassword::prompt_password(prompt)
        } else {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            Ok(text)
        }
    });
    let text = tokio::select! {
        r = read => r.map_err(|e| anyhow!("reading the secret failed: {e}"))?.context("reading the secret")?,
        () = interrupt.requested() => return Err(Interrupted("cancelled: the config was not changed").into()),
    };
    let text = crate::config::without_line_end(&text).to_string();
    if text.is_empty() {
        bail!("the secret is empty; nothing was changed");
    }
    Ok(Secret::new(text))
}
