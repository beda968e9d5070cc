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
use cairn::{Input, Resource};
use serde::Serialize;
use serde_json::{json, Value};

/// A test resource: `key` forces replacement, `value` updates in place.
#[derive(Debug, Clone, Serialize)]
pub struct Thing {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Input<String>>,
    pub value: Input<String>,
}

cairn::outputs! {
    /// The outputs of a [`Thing`].
    pub struct ThingOutputs {
        /// Derived from the id: changes when the thing is replaced, kept through updates.
        pub token: String,
        /// The length of `value`: an update may change it.
        pub length: u64,
    }
}

impl Resource for Thing {
    const TYPE: &'static str = "test:Thing";
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["key"];
    const UPDATABLE_OUTPUTS: &'static [&'static str] = &["length"];
    type Outputs = ThingOutputs;
}

/// A test resource keyed by its inputs, like a subscription or a metric filter: its id is
/// `<parent>~<name>`, and creating one whose id exists overwrites it. `mode` forces
/// replacement, which its provider makes under the same id.
#[derive(Debug, Clone, Serialize)]
pub struct Keyed {
    pub name: String,
    pub parent: Input<String>,
    pub mode: Input<String>,
}

cairn::outputs! {
    /// The outputs of a [`Keyed`].
    pub struct KeyedOutputs {
        pub id: String,
    }
}

impl Resource for Keyed {
    const TYPE: &'static str = "test:Keyed";
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["name", "parent", "mode"];
    type Outputs = KeyedOutputs;
}

/// The provider of [`Thing`]s.
#[derive(Debug)]
pub struct ThingProvider {
    world: PathBuf,
    latency: Duration,
    fail: BTreeSet<String>,
    calls: AtomicU64,
    /// Breaks the type's promise: an update issues a new `token`.
    new_token_on_update: bool,
}

impl ThingProvider {
    pub fn new(world: impl Into<PathBuf>, latency: Duration, fail: BTreeSet<String>) -> ThingProvider {
        ThingProvider { world: world.into(), latency, fail, calls: AtomicU64::new(0), new_token_on_update: false }
    }

    /// A provider that breaks `Thing`'s promise to keep `token` through updates (to test
    /// that the engine notices).
    pub fn with_new_token_on_update(mut self) -> ThingProvider {
        self.new_token_on_update = true;
        self
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

    async fn enter(&self, ctx: Context<'_>, what: &str, inputs: &Value) -> Result<(), ProviderError> {
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
            // Like many APIs, the message quotes the request.
            return Err(ProviderError::new(format!(
                "injected failure in {what} of {} (request: {inputs})",
                ctx.urn.name()
            )));
        }
        Ok(())
    }

    fn path(&self, id: &str) -> PathBuf {
        self.world.join(format!("{id}.json"))
    }

    fn write(&self, id: &str, urn: &str, inputs: &Value, token: &str) -> Result<(), ProviderError> {
        fs::create_dir_all(&self.world).map_err(|e| ProviderError::new(format!("world: {e}")))?;
        let tmp = self.world.join(format!(".{id}.tmp"));
        let body = json!({"urn": urn, "key": inputs.get("key"), "value": inputs.get("value"), "token": token});
        fs::write(&tmp, serde_json::to_vec(&body).expect("json"))
            .map_err(|e| ProviderError::new(format!("world: {e}")))?;
        fs::rename(&tmp, self.path(id)).map_err(|e| ProviderError::new(format!("world: {e}")))
    }

    fn observe(&self, id: &str) -> Result<Option<Observed>, ProviderError> {
        let Some(v) = read_world_file(&self.path(id), id)? else { return Ok(None) };
        let mut inputs = json!({"value": v["value"]});
        if !v["key"].is_null() {
            inputs["key"] = v["key"].clone();
        }
        let token = v["token"].as_str().map(str::to_string).unwrap_or_else(|| token(id));
        Ok(Some(Observed { id: id.to_string(), outputs: outputs(&token, &inputs), inputs }))
    }
}

/// The JSON of a resource in the world, `None` when there is no such resource.
fn read_world_file(path: &Path, id: &str) -> Result<Option<Value>, ProviderError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ProviderError::new(format!("world: {e}"))),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| ProviderError::new(format!("world file {id}: {e}")))
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

fn token(id: &str) -> String {
    format!("tok-{}", &id[..8.min(id.len())])
}

fn outputs(token: &str, inputs: &Value) -> Value {
    let length = inputs.get("value").and_then(Value::as_str).map_or(0, str::len);
    json!({"token": token, "length": length})
}

fn random_id() -> String {
    cairn::state::lock::random_id()
}

#[async_trait::async_trait]
impl Provider for ThingProvider {
    fn type_token(&self) -> &'static str {
        Thing::TYPE
    }

    /// Things are found by their URN; the identity records what was asked for.
    fn identity(&self, inputs: &Value) -> Value {
        json!({"value": inputs.get("value")})
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        self.enter(ctx, "create", inputs).await?;
        let id = random_id();
        let token = token(&id);
        self.write(&id, ctx.urn.as_str(), inputs, &token)?;
        Ok(Created { outputs: outputs(&token, inputs), id })
    }

    async fn read(&self, ctx: Context<'_>, id: &str, _inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        self.enter(ctx, "read", &Value::Null).await?;
        self.observe(id)
    }

    async fn update(&self, ctx: Context<'_>, id: &str, _old: &Value, new: &Value) -> Result<Value, ProviderError> {
        self.enter(ctx, "update", new).await?;
        let Some(seen) = self.observe(id)? else {
            return Err(ProviderError::new(format!("thing {id} does not exist")));
        };
        let token = if self.new_token_on_update {
            format!("tok-{}", &random_id()[..8])
        } else {
            seen.outputs["token"].as_str().unwrap_or_default().to_string()
        };
        self.write(id, ctx.urn.as_str(), new, &token)?;
        Ok(outputs(&token, new))
    }

    async fn delete(&self, ctx: Context<'_>, id: &str, _inputs: &Value) -> Result<(), ProviderError> {
        self.enter(ctx, "delete", &Value::Null).await?;
        match fs::remove_file(self.path(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ProviderError::new(format!("world: {e}"))),
        }
    }

    /// Like a search by the `cairn:urn` tag.
    async fn find(&self, ctx: Context<'_>, _identity: &Value) -> Result<Option<Observed>, ProviderError> {
        self.enter(ctx, "find", &Value::Null).await?;
        for (id, urn) in world_things(&self.world) {
            if urn == ctx.urn.as_str() && !ctx.is_known(&id) {
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

/// The provider of [`Keyed`] resources: files under `<world>/keyed/`, named by id.
#[derive(Debug)]
pub struct KeyedProvider {
    dir: PathBuf,
}

impl KeyedProvider {
    pub fn new(world: impl Into<PathBuf>) -> KeyedProvider {
        KeyedProvider { dir: world.into().join("keyed") }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{}.json", id.replace(['/', '~'], "_")))
    }

    fn observe(&self, id: &str) -> Result<Option<Observed>, ProviderError> {
        let Some(v) = read_world_file(&self.path(id), id)? else { return Ok(None) };
        let inputs = json!({"name": v["name"], "parent": v["parent"], "mode": v["mode"]});
        Ok(Some(Observed { id: id.to_string(), inputs, outputs: json!({"id": id}) }))
    }
}

fn keyed_id(inputs: &Value) -> Result<String, ProviderError> {
    match (inputs.get("parent").and_then(Value::as_str), inputs.get("name").and_then(Value::as_str)) {
        (Some(p), Some(n)) => Ok(format!("{p}~{n}")),
        _ => Err(ProviderError::new(format!("test:Keyed needs `parent` and `name`, got {inputs}"))),
    }
}

#[async_trait::async_trait]
impl Provider for KeyedProvider {
    fn type_token(&self) -> &'static str {
        Keyed::TYPE
    }

    fn identity(&self, inputs: &Value) -> Value {
        keyed_id(inputs).map(Value::String).unwrap_or(Value::Null)
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let id = keyed_id(inputs)?;
        fs::create_dir_all(&self.dir).map_err(|e| ProviderError::new(format!("world: {e}")))?;
        let body = json!({"urn": ctx.urn.as_str(), "name": inputs["name"], "parent": inputs["parent"], "mode": inputs["mode"]});
        fs::write(self.path(&id), body.to_string()).map_err(|e| ProviderError::new(format!("world: {e}")))?;
        Ok(Created { outputs: json!({"id": id}), id })
    }

    async fn read(&self, _ctx: Context<'_>, id: &str, _inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        self.observe(id)
    }

    async fn update(&self, _ctx: Context<'_>, id: &str, _old: &Value, _new: &Value) -> Result<Value, ProviderError> {
        Err(ProviderError::new(format!("test:Keyed {id} has nothing to change in place")))
    }

    async fn delete(&self, _ctx: Context<'_>, id: &str, _inputs: &Value) -> Result<(), ProviderError> {
        match fs::remove_file(self.path(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ProviderError::new(format!("world: {e}"))),
        }
    }

    async fn find(&self, ctx: Context<'_>, identity: &Value) -> Result<Option<Observed>, ProviderError> {
        match identity.as_str() {
            Some(id) if !ctx.is_known(id) => self.observe(id),
            _ => Ok(None),
        }
    }
}

/// Every keyed resource in a world directory: (id file name, urn), sorted.
pub fn world_keyed(world: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(world.join("keyed")).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Ok(Ok(v)) = fs::read_to_string(entry.path()).map(|t| serde_json::from_str::<Value>(&t)) {
            out.push((name, v["urn"].as_str().unwrap_or_default().to_string()));
        }
    }
    out.sort();
    out
}
