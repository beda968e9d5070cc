//! `local:File`: a file on the deploying machine, written atomically.
//!
//! Its identity is its path: creating a file that already exists takes it over, so a create
//! retried after a crash never leaves a duplicate. Changing the path replaces the resource.

use std::fs;
use std::io::{ErrorKind, Write};
#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::provider::{Context, Created, Observed, Provider, ProviderError};
use crate::resource::{Input, Resource};

/// A file with the given content (and optionally mode), written through a temporary file and
/// renamed into place.
#[derive(Debug, Clone, Serialize)]
pub struct File {
    /// Path of the file, relative to the directory cairn runs in, or absolute.
    pub path: String,
    pub content: Input<String>,
    /// Unix permission bits, e.g. `0o644`. Unset: the process's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

crate::outputs! {
    /// The outputs of a [`File`].
    pub struct FileOutputs {
        pub path: String,
        /// Hex SHA-256 of the content.
        pub sha256: String,
        pub size: u64,
    }
}

impl Resource for File {
    const TYPE: &'static str = "local:File";
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["path"];
    // Writing new content in place changes its hash and size.
    const UPDATABLE_OUTPUTS: &'static [&'static str] = &["sha256", "size"];
    type Outputs = FileOutputs;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileInputs {
    path: String,
    content: String,
    #[serde(default)]
    mode: Option<u32>,
}

fn parse(inputs: &Value) -> Result<FileInputs, ProviderError> {
    serde_json::from_value(inputs.clone()).map_err(|e| ProviderError::new(format!("invalid local:File inputs: {e}")))
}

fn outputs(path: &str, content: &[u8]) -> Value {
    let digest = Sha256::digest(content);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    json!({"path": path, "sha256": hex, "size": content.len()})
}

fn write_file(f: &FileInputs) -> Result<(), ProviderError> {
    let target = PathBuf::from(&f.path);
    let err =
        |action: &str, p: &Path, e: std::io::Error| ProviderError::new(format!("cannot {action} {}: {e}", p.display()));
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| err("create directory", dir, e))?;
    let name = target.file_name().ok_or_else(|| ProviderError::new(format!("`{}` is not a file path", f.path)))?;
    let tmp = dir.join(format!(".{}.cairn-tmp-{}", name.to_string_lossy(), std::process::id()));
    let mut file = fs::File::create(&tmp).map_err(|e| err("create", &tmp, e))?;
    file.write_all(f.content.as_bytes()).map_err(|e| err("write", &tmp, e))?;
    #[cfg(unix)]
    if let Some(mode) = f.mode {
        file.set_permissions(fs::Permissions::from_mode(mode)).map_err(|e| err("set permissions of", &tmp, e))?;
    }
    file.sync_all().map_err(|e| err("sync", &tmp, e))?;
    drop(file);
    fs::rename(&tmp, &target).map_err(|e| err("rename into", &target, e))
}

fn observe(path: &str, with_mode: bool) -> Result<Option<Observed>, ProviderError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ProviderError::new(format!("cannot read {path}: {e}"))),
    };
    let mut inputs = json!({"path": path, "content": String::from_utf8_lossy(&bytes)});
    #[cfg(unix)]
    if with_mode {
        let meta = fs::metadata(path).map_err(|e| ProviderError::new(format!("cannot stat {path}: {e}")))?;
        inputs["mode"] = json!(meta.permissions().mode() & 0o7777);
    }
    Ok(Some(Observed { id: path.to_string(), inputs, outputs: outputs(path, &bytes) }))
}

/// The provider for [`File`].
#[derive(Debug, Clone, Default)]
pub struct FileProvider;

#[async_trait::async_trait]
impl Provider for FileProvider {
    fn type_token(&self) -> &'static str {
        File::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        json!({"path": inputs.get("path").cloned().unwrap_or(Value::Null)})
    }

    async fn create(&self, _ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let f = parse(inputs)?;
        write_file(&f)?;
        Ok(Created { id: f.path.clone(), outputs: outputs(&f.path, f.content.as_bytes()) })
    }

    async fn read(&self, _ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        observe(id, inputs.get("mode").is_some_and(|m| !m.is_null()))
    }

    async fn update(&self, _ctx: Context<'_>, id: &str, _old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let f = parse(new)?;
        if f.path != id {
            return Err(ProviderError::new(format!("local:File cannot move {id} to {} in place", f.path)));
        }
        write_file(&f)?;
        Ok(outputs(&f.path, f.content.as_bytes()))
    }

    async fn delete(&self, _ctx: Context<'_>, id: &str, _inputs: &Value) -> Result<(), ProviderError> {
        match fs::remove_file(id) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ProviderError::new(format!("cannot delete {id}: {e}"))),
        }
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        match identity.get("path").and_then(Value::as_str) {
            Some(path) if !ctx.is_known(path) => observe(path, false),
            _ => Ok(None),
        }
    }
}

/// The providers of the `local` package: [`File`] and [`super::command::Command`].
pub fn registry() -> crate::provider::Registry {
    crate::provider::Registry::new().with(FileProvider).with(super::command::CommandProvider)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::urn::Urn;

    #[tokio::test]
    async fn file_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/a.txt").to_string_lossy().into_owned();
        let urn = Urn::from("s/local:File/a");
        let ctx = Context::new(&urn, "s");
        let p = FileProvider;
        let created = p.create(ctx, &json!({"path": path, "content": "one", "mode": 0o600})).await.unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "one");
        assert_eq!(created.outputs["size"], json!(3));
        let seen = p.read(ctx, &created.id, &json!({"mode": 0o600})).await.unwrap().unwrap();
        assert_eq!(seen.inputs, json!({"path": path, "content": "one", "mode": 0o600}));
        p.update(ctx, &created.id, &json!({}), &json!({"path": path, "content": "two"})).await.unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        assert!(p.find(ctx, &p.identity(&json!({"path": path}))).await.unwrap().is_some());
        p.delete(ctx, &created.id, &json!({})).await.unwrap();
        assert!(p.read(ctx, &created.id, &json!({})).await.unwrap().is_none());
        p.delete(ctx, &created.id, &json!({})).await.unwrap();
    }
}
