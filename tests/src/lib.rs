//! Test support for cairn: a provider with injectable latency and failures, and helpers that
//! make integration tests read like sentences.
//!
//! `test:Thing` resources live as JSON files in a "world" directory (`CAIRN_TEST_WORLD`), one
//! file per real resource named by its random id, so a test can count duplicates and compare
//! the world with state. `CAIRN_TEST_LATENCY_MS` adds latency to every call; `CAIRN_TEST_FAIL`
//! (comma-separated resource names) makes their creates and updates fail. This code is for
//! tests and benchmarks only; it is not part of the product.

pub mod consul;
pub mod moto;

use std::collections::BTreeSet;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cairn::provider::{Context, Created, Observed, Provider, ProviderError};
use cairn::{Handle, Input, Output, Resource};
use serde::Serialize;
use serde_json::{json, Value};

/// A test resource: `key` forces replacement, `value` updates in place.
#[derive(Debug, Clone, Serialize)]
pub struct Thing {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub value: Input<String>,
}

/// The outputs of a [`Thing`].
#[derive(Debug, Clone)]
pub struct ThingOutputs {
    /// Derived from the id: changes when the thing is replaced.
    pub token: Output<String>,
}

impl Resource for Thing {
    const TYPE: &'static str = "test:Thing";
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["key"];
    type Outputs = ThingOutputs;
    fn outputs(h: &Handle) -> ThingOutputs {
        ThingOutputs { token: h.output("token") }
    }
}

/// The provider of [`Thing`]s.
#[derive(Debug)]
pub struct ThingProvider {
    world: PathBuf,
    latency: Duration,
    fail: BTreeSet<String>,
    calls: AtomicU64,
}

impl ThingProvider {
    pub fn new(world: impl Into<PathBuf>, latency: Duration, fail: BTreeSet<String>) -> ThingProvider {
        ThingProvider { world: world.into(), latency, fail, calls: AtomicU64::new(0) }
    }

    /// Configured from `CAIRN_TEST_WORLD`, `CAIRN_TEST_LATENCY_MS` and `CAIRN_TEST_FAIL`.
    pub fn from_env() -> ThingProvider {
        let world = std::env::var("CAIRN_TEST_WORLD").unwrap_or_else(|_| "world".into());
        let latency = std::env::var("CAIRN_TEST_LATENCY_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        let fail = std::env::var("CAIRN_TEST_FAIL").unwrap_or_default();
        ThingProvider::new(
            world,
            Duration::from_millis(latency),
            fail.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
        )
    }

    /// Provider calls so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    async fn enter(&self, ctx: Context<'_>, what: &str) -> Result<(), ProviderError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let start = now_micros();
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if let Ok(log) = std::env::var("CAIRN_TEST_CALL_LOG") {
            // One small O_APPEND write per call: lines from several processes never interleave.
            let line = format!("{} {start} {} {what}\n", std::process::id(), now_micros());
            let mut f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(|e| ProviderError::new(format!("call log: {e}")))?;
            std::io::Write::write_all(&mut f, line.as_bytes())
                .map_err(|e| ProviderError::new(format!("call log: {e}")))?;
        }
        if (what == "create" || what == "update") && self.fail.contains(ctx.urn.name()) {
            return Err(ProviderError::new(format!("injected failure in {what} of {}", ctx.urn.name())));
        }
        Ok(())
    }

    fn path(&self, id: &str) -> PathBuf {
        self.world.join(format!("{id}.json"))
    }

    fn write(&self, id: &str, urn: &str, inputs: &Value) -> Result<(), ProviderError> {
        fs::create_dir_all(&self.world).map_err(|e| ProviderError::new(format!("world: {e}")))?;
        let tmp = self.world.join(format!(".{id}.tmp"));
        let body = json!({"urn": urn, "key": inputs.get("key"), "value": inputs.get("value")});
        fs::write(&tmp, serde_json::to_vec(&body).expect("json"))
            .map_err(|e| ProviderError::new(format!("world: {e}")))?;
        fs::rename(&tmp, self.path(id)).map_err(|e| ProviderError::new(format!("world: {e}")))
    }

    fn observe(&self, id: &str) -> Result<Option<Observed>, ProviderError> {
        let text = match fs::read_to_string(self.path(id)) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ProviderError::new(format!("world: {e}"))),
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| ProviderError::new(format!("world file {id}: {e}")))?;
        let mut inputs = json!({"value": v["value"]});
        if !v["key"].is_null() {
            inputs["key"] = v["key"].clone();
        }
        Ok(Some(Observed { id: id.to_string(), inputs, outputs: outputs(id) }))
    }
}

fn now_micros() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or_default()
}

/// Provider calls recorded in a `CAIRN_TEST_CALL_LOG` file: (pid, start µs, end µs).
pub fn call_log(path: &Path) -> Vec<(u32, u128, u128)> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect()
}

fn outputs(id: &str) -> Value {
    json!({"token": format!("tok-{}", &id[..8.min(id.len())])})
}

fn random_id() -> String {
    cairn::state::lock::random_id()
}

#[async_trait::async_trait]
impl Provider for ThingProvider {
    fn type_token(&self) -> &'static str {
        Thing::TYPE
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        self.enter(ctx, "create").await?;
        let id = random_id();
        self.write(&id, ctx.urn.as_str(), inputs)?;
        Ok(Created { outputs: outputs(&id), id })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, _inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        self.enter(ctx, "read").await?;
        self.observe(id)
    }

    async fn update(&self, ctx: Context<'_>, id: &str, _old: &Value, new: &Value) -> Result<Value, ProviderError> {
        self.enter(ctx, "update").await?;
        if !self.path(id).exists() {
            return Err(ProviderError::new(format!("thing {id} does not exist")));
        }
        self.write(id, ctx.urn.as_str(), new)?;
        Ok(outputs(id))
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, _inputs: &Value) -> Result<(), ProviderError> {
        self.enter(ctx, "delete").await?;
        match fs::remove_file(self.path(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ProviderError::new(format!("world: {e}"))),
        }
    }

    /// Like a search by the `cairn:urn` tag.
    async fn find(&self, ctx: Context<'_>, _identity: &Value) -> Result<Option<Observed>, ProviderError> {
        self.enter(ctx, "find").await?;
        for (id, urn) in world_things(&self.world) {
            if urn == ctx.urn.as_str() {
                return self.observe(&id);
            }
        }
        Ok(None)
    }
}

/// Every thing in a world directory: (id, urn), sorted by id.
pub fn world_things(world: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(world).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".json") else { continue };
        if name.starts_with('.') {
            continue;
        }
        if let Ok(text) = fs::read_to_string(entry.path()) {
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                out.push((id.to_string(), v["urn"].as_str().unwrap_or_default().to_string()));
            }
        }
    }
    out.sort();
    out
}
