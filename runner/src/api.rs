//! HTTP handlers and the task request's validation. Handlers are thin: check and convert the
//! input, call [`crate::images`] and [`crate::task`], shape the output.
//!
//! The task request is parsed field by field from a JSON object (not with a derived
//! `Deserialize`) so each error names its field and says what is wrong in words a client can
//! act on. [`TASK_FIELDS`] is the single list of accepted fields: the parser rejects anything
//! else, and the OpenAPI document ([`crate::openapi`]) is generated from it.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::config::{PullPolicy, TaskConfig, MIN_MEMORY_BYTES};
use crate::error::ApiError;
use crate::images::{Credentials, ImageRef};
use crate::observe::RequestId;
use crate::status::{Failure, RunningTask};
use crate::task::{self, TaskSpec};
use crate::AppState;

/// The API version this service speaks, in its paths.
pub const API_VERSION: &str = "1.1";

/// The JSON type of a request field, for validation messages and the OpenAPI schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    Integer,
    Number,
    Boolean,
    StringArray,
    /// `env`: an object of strings, or an array of `KEY=value` strings.
    Env,
    /// `creds`: `{email, username, password}`.
    Creds,
}

/// One accepted field of `POST /v1.1/tasks`.
#[derive(Debug, Clone, Copy)]
pub struct FieldDoc {
    pub name: &'static str,
    pub ty: FieldType,
    pub required: bool,
    pub description: &'static str,
}

/// Every field `POST /v1.1/tasks` accepts.
pub const TASK_FIELDS: &[FieldDoc] = &[
    FieldDoc {
        name: "docker_image",
        ty: FieldType::String,
        required: true,
        description: "Image to run: `[registry[:port]/][namespace/]name[:tag][@digest]`; the tag defaults to `latest`.",
    },
    FieldDoc {
        name: "tag",
        ty: FieldType::String,
        required: false,
        description: "Older form: the tag, when `docker_image` has none.",
    },
    FieldDoc {
        name: "cmd",
        ty: FieldType::StringArray,
        required: true,
        description: "Command and arguments (at least one string); run directly, not through a shell.",
    },
    FieldDoc {
        name: "creds",
        ty: FieldType::Creds,
        required: false,
        description: "Credentials for pulling from a private registry.",
    },
    FieldDoc {
        name: "env",
        ty: FieldType::Env,
        required: false,
        description: "Environment: an object of strings, or an array of `KEY=value` strings.",
    },
    FieldDoc {
        name: "stdin",
        ty: FieldType::String,
        required: false,
        description: "Standard input, base64-encoded; closed after it is written.",
    },
    FieldDoc {
        name: "workdir",
        ty: FieldType::String,
        required: false,
        description: "Working directory (absolute path).",
    },
    FieldDoc {
        name: "user",
        ty: FieldType::String,
        required: false,
        description: "User to run as: `name`, `uid` or `uid:gid`.",
    },
    FieldDoc {
        name: "timeoutMs",
        ty: FieldType::Integer,
        required: false,
        description: "Kill the command after this many milliseconds (at most the configured maximum).",
    },
    FieldDoc {
        name: "memoryBytes",
        ty: FieldType::Integer,
        required: false,
        description: "Memory limit in bytes, swap included (at least 6 MiB, at most the configured maximum).",
    },
    FieldDoc {
        name: "cpus",
        ty: FieldType::Number,
        required: false,
        description: "CPU limit in cores, e.g. 0.5 (at most the configured maximum).",
    },
    FieldDoc {
        name: "pidsLimit",
        ty: FieldType::Integer,
        required: false,
        description: "Maximum number of processes (at most the configured maximum).",
    },
    FieldDoc {
        name: "outputLimitBytes",
        ty: FieldType::Integer,
        required: false,
        description: "Bytes kept of stdout and of stderr, each; the rest is dropped and flagged.",
    },
    FieldDoc {
        name: "network",
        ty: FieldType::String,
        required: false,
        description: "Docker network mode; `none` unless the configuration allows others.",
    },
    FieldDoc {
        name: "readOnlyRootfs",
        ty: FieldType::Boolean,
        required: false,
        description: "Mount the container's root filesystem read-only.",
    },
];

/// Fields of the 201 response, with their descriptions, for the OpenAPI document.
pub const RESPONSE_FIELDS: &[(&str, &str, &str)] = &[
    ("exitCode", "integer", "The command's exit code (137 when killed)."),
    ("stdout", "string", "Standard output, base64-encoded, at most `outputLimitBytes`."),
    ("stderr", "string", "Standard error, base64-encoded, at most `outputLimitBytes`."),
    ("containerId", "string", "The container's id (already being removed)."),
    ("durationMs", "integer", "Milliseconds from container creation to exit."),
    ("stdoutTruncated", "boolean", "Whether stdout was cut at the output limit."),
    ("stderrTruncated", "boolean", "Whether stderr was cut at the output limit."),
    ("timedOut", "boolean", "Whether the command was killed at its timeout."),
    ("oomKilled", "boolean", "Whether the kernel killed the command for exceeding its memory limit."),
];

/// A validated task request.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRequest {
    pub image: ImageRef,
    pub creds: Option<Credentials>,
    pub spec: TaskSpec,
}

/// The 201 body.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskResponse {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
    pub container_id: String,
    pub duration_ms: u64,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub timed_out: bool,
    pub oom_killed: bool,
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

struct Fields<'a> {
    object: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// The field's value; `null` counts as absent.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.object.get(name).filter(|v| !v.is_null())
    }

    fn string(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ApiError::invalid(name, format!("`{name}` must be a string, got {}", type_name(other)))),
        }
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => {
                Err(ApiError::invalid(name, format!("`{name}` must be a boolean, got {}", type_name(other))))
            }
        }
    }

    fn integer(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let n = value
            .as_i64()
            .ok_or_else(|| ApiError::invalid(name, format!("`{name}` must be an integer, got {}", describe(value))))?;
        within(name, n as f64, min as f64, max as f64)?;
        Ok(Some(n))
    }

    fn number(&self, name: &str, min_exclusive: f64, max: f64) -> Result<Option<f64>, ApiError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let n = value
            .as_f64()
            .ok_or_else(|| ApiError::invalid(name, format!("`{name}` must be a number, got {}", type_name(value))))?;
        if n <= min_exclusive {
            return Err(ApiError::invalid(name, format!("`{name}` must be greater than {min_exclusive}, got {n}")));
        }
        within(name, n, f64::MIN, max)?;
        Ok(Some(n))
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Number(n) => format!("{n}"),
        other => type_name(other).to_string(),
    }
}

/// Checks a value against its bounds; above the configured maximum is its own message.
fn within(name: &str, n: f64, min: f64, max: f64) -> Result<(), ApiError> {
    if n < min {
        return Err(ApiError::invalid(name, format!("`{name}` must be at least {min}, got {n}")));
    }
    if n > max {
        return Err(ApiError::invalid(name, format!("`{name}` is {n}, above this runner's maximum of {max}")));
    }
    Ok(())
}

/// Validates a task request body against the configured defaults and maxima.
pub fn parse_task_request(body: &[u8], limits: &TaskConfig) -> Result<TaskRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ApiError::InvalidRequest {
        field: None,
        message: format!("request body is not valid JSON: {e}"),
    })?;
    let Value::Object(object) = &value else {
        return Err(ApiError::InvalidRequest {
            field: None,
            message: format!("request body must be a JSON object, got {}", type_name(&value)),
        });
    };
    if let Some(unknown) = object.keys().find(|k| !TASK_FIELDS.iter().any(|f| f.name == k.as_str())) {
        return Err(ApiError::invalid(
            unknown.as_str(),
            format!(
                "unknown field `{unknown}`; accepted fields: {}",
                TASK_FIELDS.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let fields = Fields { object };

    let image_name = fields
        .string("docker_image")?
        .ok_or_else(|| ApiError::invalid("docker_image", "missing field `docker_image`"))?;
    let tag = fields.string("tag")?;
    let image = ImageRef::parse(image_name, tag)
        .map_err(|problem| ApiError::invalid("docker_image", format!("`docker_image` {problem}")))?;

    let cmd = match fields.get("cmd") {
        None => return Err(ApiError::invalid("cmd", "missing field `cmd`")),
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(ApiError::invalid("cmd", "`cmd` must contain at least one string"));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) if s.contains('\0') => {
                        Err(ApiError::invalid("cmd", format!("`cmd[{i}]` must not contain NUL characters")))
                    }
                    Value::String(s) => Ok(s.clone()),
                    other => {
                        Err(ApiError::invalid("cmd", format!("`cmd[{i}]` must be a string, got {}", type_name(other))))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(other) => {
            return Err(ApiError::invalid(
                "cmd",
                format!("`cmd` must be an array of strings, got {}", type_name(other)),
            ))
        }
    };

    let creds = match fields.get("creds") {
        None => None,
        Some(Value::Object(c)) => {
            let get = |key: &str| -> Result<Option<String>, ApiError> {
                match c.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(other) => Err(ApiError::invalid(
                        "creds",
                        format!("`creds.{key}` must be a string, got {}", type_name(other)),
                    )),
                }
            };
            if let Some(unknown) = c.keys().find(|k| !["email", "username", "password"].contains(&k.as_str())) {
                return Err(ApiError::invalid(
                    "creds",
                    format!("unknown field `creds.{unknown}`; accepted: email, username, password"),
                ));
            }
            Some(Credentials { email: get("email")?, username: get("username")?, password: get("password")? })
        }
        Some(other) => {
            return Err(ApiError::invalid("creds", format!("`creds` must be an object, got {}", type_name(other))))
        }
    };

    let env = parse_env(fields.get("env"))?;

    let stdin = match fields.string("stdin")? {
        None => None,
        Some(encoded) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| ApiError::invalid("stdin", format!("`stdin` is not valid base64: {e}")))?,
        ),
    };

    let workdir = fields.string("workdir")?.map(str::to_string);
    if let Some(dir) = &workdir {
        if !dir.starts_with('/') || dir.contains('\0') {
            return Err(ApiError::invalid("workdir", "`workdir` must be an absolute path"));
        }
    }
    let user = fields.string("user")?.map(str::to_string);
    if let Some(user) = &user {
        let ok = !user.is_empty() && user.chars().all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c));
        if !ok {
            return Err(ApiError::invalid("user", "`user` must be a name, uid, or uid:gid"));
        }
    }

    let timeout_ms =
        fields.integer("timeoutMs", 1, limits.max_timeout_ms as i64)?.map_or(limits.default_timeout_ms, |v| v as u64);
    let memory_bytes = fields
        .integer("memoryBytes", MIN_MEMORY_BYTES, limits.max_memory_bytes)?
        .unwrap_or(limits.default_memory_bytes);
    let cpus = fields.number("cpus", 0.0, limits.max_cpus)?.unwrap_or(limits.default_cpus);
    let pids_limit = fields.integer("pidsLimit", 1, limits.max_pids_limit)?.unwrap_or(limits.default_pids_limit);
    let output_limit_bytes = fields
        .integer("outputLimitBytes", 0, limits.max_output_limit_bytes as i64)?
        .map_or(limits.default_output_limit_bytes, |v| v as usize);
    let network = fields.string("network")?.map_or_else(|| limits.default_network.clone(), str::to_string);
    if !limits.allowed_networks.contains(&network) {
        return Err(ApiError::invalid(
            "network",
            format!("`network` {network:?} is not allowed here; allowed: {}", limits.allowed_networks.join(", ")),
        ));
    }
    let read_only_rootfs = fields.bool("readOnlyRootfs")?.unwrap_or(limits.default_read_only_rootfs);

    Ok(TaskRequest {
        spec: TaskSpec {
            image: image.to_string(),
            cmd,
            env,
            stdin,
            workdir,
            user,
            timeout: Duration::from_millis(timeout_ms),
            memory_bytes,
            nano_cpus: (cpus * 1e9).round() as i64,
            pids_limit,
            output_limit_bytes,
            network,
            read_only_rootfs,
            request_id: None,
        },
        image,
        creds,
    })
}

fn valid_env_key(key: &str) -> bool {
    !key.is_empty() && !key.contains('=') && !key.contains('\0')
}

fn parse_env(value: Option<&Value>) -> Result<Vec<String>, ApiError> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(key, value)| {
                if !valid_env_key(key) {
                    return Err(ApiError::invalid(
                        "env",
                        format!("`env` key {key:?} must be non-empty without '=' or NUL"),
                    ));
                }
                match value {
                    Value::String(v) if !v.contains('\0') => Ok(format!("{key}={v}")),
                    other => {
                        Err(ApiError::invalid("env", format!("`env.{key}` must be a string, got {}", type_name(other))))
                    }
                }
            })
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) if s.split_once('=').is_some_and(|(k, _)| valid_env_key(k)) && !s.contains('\0') => {
                    Ok(s.clone())
                }
                Value::String(s) => {
                    Err(ApiError::invalid("env", format!("`env[{i}]` {s:?} must have the form KEY=value")))
                }
                other => {
                    Err(ApiError::invalid("env", format!("`env[{i}]` must be a string, got {}", type_name(other))))
                }
            })
            .collect(),
        Some(other) => Err(ApiError::invalid(
            "env",
            format!("`env` must be an object or an array of KEY=value strings, got {}", type_name(other)),
        )),
    }
}

fn is_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedContentType {
            got: if content_type.is_empty() { "no Content-Type".to_string() } else { content_type.to_string() },
        })
    }
}

/// `POST /v1.1/tasks`
pub async fn create_task(
    State(state): State<AppState>,
    request_id: Option<axum::Extension<RequestId>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    is_json(&headers)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge { limit: state.config().limits.max_body_bytes }
        } else {
            ApiError::InvalidRequest {
                field: None,
                message: format!("cannot read request body: {}", rejection.body_text()),
            }
        }
    })?;
    let mut request = parse_task_request(&body, &state.config().tasks)?;
    request.spec.request_id = request_id.map(|axum::Extension(id)| id.0);

    state.metrics().tasks_running(1);
    let _running = scopeguard(|| state.metrics().tasks_running(-1));
    let _activity = state.activity().start(RunningTask {
        request_id: request.spec.request_id.clone(),
        image: request.spec.image.clone(),
        cmd: request.spec.cmd.join(" ").chars().take(200).collect(),
        started: std::time::Instant::now(),
    });

    let result = run_task(&state, &request).await;
    let outcome_label = match &result {
        Ok(o) if o.timed_out => "timed_out",
        Ok(_) => "exited",
        Err(_) => "error",
    };
    state.metrics().inc("runner_tasks_total", &[("outcome", outcome_label)]);
    let failure = match &result {
        Ok(o) if o.timed_out => Some((
            "timed_out".to_string(),
            format!("killed after {} ms (container {})", request.spec.timeout.as_millis(), o.container_id),
        )),
        Ok(_) => None,
        Err(err) => Some((err.code().to_string(), err.to_string())),
    };
    if let Some((code, message)) = failure {
        state.activity().record_failure(Failure {
            at: std::time::SystemTime::now(),
            request_id: request.spec.request_id.clone(),
            image: request.spec.image.clone(),
            code,
            message,
        });
    }
    let outcome = result?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let response = TaskResponse {
        exit_code: outcome.exit_code,
        stdout: b64.encode(&outcome.stdout),
        stderr: b64.encode(&outcome.stderr),
        container_id: outcome.container_id.clone(),
        duration_ms: outcome.duration.as_millis() as u64,
        stdout_truncated: outcome.stdout_truncated,
        stderr_truncated: outcome.stderr_truncated,
        timed_out: outcome.timed_out,
        oom_killed: outcome.oom_killed,
    };
    // Dropping the outcome (its guard) schedules the container's removal, off this path.
    drop(outcome);
    Ok((StatusCode::CREATED, Json(response)).into_response())
}

/// Runs the task, pulling its image as the policy says. With `if-not-present` (the default),
/// the container is created straight away: an image that is present (the usual case) costs
/// no extra Docker call, and only a "no such image" answer leads to a pull and a second try.
async fn run_task(state: &AppState, request: &TaskRequest) -> Result<task::TaskOutcome, ApiError> {
    let images = state.images();
    let metrics = state.metrics();
    if images.policy() == PullPolicy::Always {
        images.pull(&request.image, request.creds.as_ref(), metrics).await?;
        return task::run(state, &request.spec).await;
    }
    match task::run(state, &request.spec).await {
        Err(ApiError::ImageNotFound { image, .. }) if images.policy() == PullPolicy::Never => {
            Err(ApiError::ImageNotFound {
                image,
                detail: Some("not present locally and the pull policy is never".into()),
            })
        }
        Err(ApiError::ImageNotFound { .. }) => {
            images.pull(&request.image, request.creds.as_ref(), metrics).await?;
            task::run(state, &request.spec).await
        }
        other => {
            metrics.inc("runner_image_cache_hits_total", &[]);
            other
        }
    }
}

/// Runs `f` when dropped, however the scope ends.
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

/// `GET /v1.1/_noop`
pub async fn noop() -> Json<Value> {
    Json(json!({}))
}

/// `GET /v1.1/_version`
pub async fn version(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "name": env!("CARGO_PKG_NAME"),
        "version": env!("CARGO_PKG_VERSION"),
        "apiVersion": API_VERSION,
        "gitCommit": option_env!("CAIRN_GIT_COMMIT"),
        "buildProfile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "target": format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
        "dockerApiVersion": state.docker().client_version().to_string(),
    }))
}

/// `GET /healthz`: cheap check for load balancers; no Docker call.
pub async fn healthz(State(state): State<AppState>) -> Response {
    if state.is_shutting_down() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

/// Decodes `%XX` escapes and `+` (a space) in a query string component; invalid escapes are
/// kept as they are, and invalid UTF-8 is replaced.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /v1.1/_health?quick=true|false`: per-component status; `quick` skips the Docker ping.
pub async fn health(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let mut quick = false;
    for pair in uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (percent_decode(key), percent_decode(value));
        match key.as_str() {
            "quick" => {
                quick = match value.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    other => {
                        return Err(ApiError::invalid("quick", format!("`quick` must be true or false, got {other:?}")))
                    }
                }
            }
            other => {
                return Err(ApiError::invalid(other, format!("unknown query parameter `{other}`; accepted: quick")))
            }
        }
    }
    let mut components = BTreeMap::new();
    let mut green = true;

    let shutting_down = state.is_shutting_down();
    green &= !shutting_down;
    components.insert(
        "server",
        json!({
            "status": if shutting_down { "red" } else { "green" },
            "detail": if shutting_down { "shutting down" } else { "accepting tasks" },
            "uptimeSeconds": state.uptime().as_secs(),
        }),
    );
    let limits = &state.config().limits;
    components.insert(
        "tasks",
        json!({
            "status": "green",
            "running": state.metrics().running(),
            "queued": state.gate().queued(),
            "maxConcurrent": limits.max_concurrent_tasks,
            "maxQueued": limits.max_queued_tasks,
            "freeSlots": state.gate().available(),
        }),
    );
    let reaper = state.reaper_status();
    components.insert(
        "containers",
        json!({
            "status": "green",
            "live": state.containers().live_count(),
            "pendingRemovals": state.containers().pending_removals(),
            "leakedRemovedTotal": state.metrics().leaked_total(),
            "reaperLastRunSecondsAgo": reaper.last_run.map(|t| t.elapsed().as_secs()),
            "reaperLastError": reaper.last_error,
        }),
    );
    if !quick {
        let started = std::time::Instant::now();
        let ping = tokio::time::timeout(Duration::from_secs(3), state.docker().ping()).await;
        let latency_ms = started.elapsed().as_millis() as u64;
        let docker = match ping {
            Ok(Ok(_)) => json!({"status": "green", "detail": "ping ok", "latencyMs": latency_ms}),
            Ok(Err(err)) => {
                green = false;
                json!({"status": "red", "detail": format!("ping failed: {err}"), "latencyMs": latency_ms})
            }
            Err(_) => {
                green = false;
                json!({"status": "red", "detail": "ping timed out after 3 s", "latencyMs": latency_ms})
            }
        };
        components.insert("docker", docker);
    }
    let status = if green { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((
        status,
        Json(json!({
            "status": if green { "green" } else { "red" },
            "quick": quick,
            "components": components,
        })),
    )
        .into_response())
}

/// `GET /metrics`
pub async fn metrics(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics().render()).into_response()
}

/// `GET /v1.1/openapi.json`
pub async fn openapi(State(state): State<AppState>) -> Json<Value> {
    Json(crate::openapi::document(&state.config().tasks))
}

/// Any unknown path.
pub async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound { path: request.uri().path().to_string() }
}

/// A known path with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<TaskRequest, ApiError> {
        parse_task_request(body.to_string().as_bytes(), &TaskConfig::default())
    }

    fn field_error(body: Value) -> (String, String) {
        match parse(body) {
            Err(ApiError::InvalidRequest { field: Some(field), message }) => (field, message),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn minimal_request_gets_the_defaults() {
        let request = parse(json!({"docker_image": "busybox", "cmd": ["echo", "hi"]})).unwrap();
        let defaults = TaskConfig::default();
        assert_eq!(request.spec.image, "busybox:latest");
        assert_eq!(request.spec.network, "none");
        assert_eq!(request.spec.timeout, defaults.default_timeout());
        assert_eq!(request.spec.memory_bytes, defaults.default_memory_bytes);
        assert_eq!(request.spec.nano_cpus, 1_000_000_000);
        assert!(request.spec.env.is_empty());
        assert!(request.creds.is_none());
    }

    #[test]
    fn every_option_is_read() {
        let request = parse(json!({
            "docker_image": "registry.example.com/team/app",
            "tag": "v2",
            "cmd": ["run"],
            "creds": {"email": "a@b.c", "username": "u", "password": "p"},
            "env": {"A": "1"},
            "stdin": "aGVsbG8=",
            "workdir": "/tmp",
            "user": "65534:65534",
            "timeoutMs": 1500,
            "memoryBytes": 8388608,
            "cpus": 0.5,
            "pidsLimit": 10,
            "outputLimitBytes": 100,
            "network": "none",
            "readOnlyRootfs": true,
        }))
        .unwrap();
        assert_eq!(request.spec.image, "registry.example.com/team/app:v2");
        assert_eq!(request.spec.env, vec!["A=1"]);
        assert_eq!(request.spec.stdin.as_deref(), Some(&b"hello"[..]));
        assert_eq!(request.spec.timeout, Duration::from_millis(1500));
        assert_eq!(request.spec.nano_cpus, 500_000_000);
        assert_eq!(request.spec.output_limit_bytes, 100);
        assert!(request.spec.read_only_rootfs);
        assert_eq!(request.creds.unwrap().username.as_deref(), Some("u"));
        // Every documented field was used above: the table and the parser agree.
        assert_eq!(TASK_FIELDS.len(), 15);
    }

    #[test]
    fn env_as_list() {
        let request = parse(json!({"docker_image": "a", "cmd": ["x"], "env": ["A=1", "B=x=y"]})).unwrap();
        assert_eq!(request.spec.env, vec!["A=1", "B=x=y"]);
    }

    #[test]
    fn errors_name_the_field() {
        let max = TaskConfig::default().max_timeout_ms + 1;
        let cases = [
            (json!({"cmd": ["x"]}), "docker_image", "missing"),
            (json!({"docker_image": "a"}), "cmd", "missing"),
            (json!({"docker_image": "a", "cmd": []}), "cmd", "at least one"),
            (json!({"docker_image": "a", "cmd": "echo"}), "cmd", "array"),
            (json!({"docker_image": "a", "cmd": ["x", 1]}), "cmd", "cmd[1]"),
            (json!({"docker_image": 5, "cmd": ["x"]}), "docker_image", "string"),
            (json!({"docker_image": "Bad Name", "cmd": ["x"]}), "docker_image", "invalid"),
            (json!({"docker_image": "a", "cmd": ["x"], "timeoutMs": max}), "timeoutMs", "maximum"),
            (json!({"docker_image": "a", "cmd": ["x"], "timeoutMs": 0}), "timeoutMs", "at least"),
            (json!({"docker_image": "a", "cmd": ["x"], "timeoutMs": "5"}), "timeoutMs", "integer"),
            (json!({"docker_image": "a", "cmd": ["x"], "memoryBytes": 1}), "memoryBytes", "at least"),
            (json!({"docker_image": "a", "cmd": ["x"], "cpus": 99}), "cpus", "maximum"),
            (json!({"docker_image": "a", "cmd": ["x"], "cpus": 0}), "cpus", "greater"),
            (json!({"docker_image": "a", "cmd": ["x"], "network": "host"}), "network", "not allowed"),
            (json!({"docker_image": "a", "cmd": ["x"], "stdin": "%%%"}), "stdin", "base64"),
            (json!({"docker_image": "a", "cmd": ["x"], "env": ["NOEQUALS"]}), "env", "KEY=value"),
            (json!({"docker_image": "a", "cmd": ["x"], "env": {"A": 1}}), "env", "env.A"),
            (json!({"docker_image": "a", "cmd": ["x"], "workdir": "rel"}), "workdir", "absolute"),
            (json!({"docker_image": "a", "cmd": ["x"], "readOnlyRootfs": "yes"}), "readOnlyRootfs", "boolean"),
            (json!({"docker_image": "a", "cmd": ["x"], "creds": {"token": "x"}}), "creds", "creds.token"),
            (json!({"docker_image": "a", "cmd": ["x"], "timeout": 5}), "timeout", "unknown field"),
            (json!({"docker_image": "a:1", "tag": "2", "cmd": ["x"]}), "docker_image", "tag"),
        ];
        for (body, field, needle) in cases {
            let (got_field, message) = field_error(body.clone());
            assert_eq!(got_field, field, "{body}: {message}");
            assert!(message.contains(needle), "{body}: {message}");
        }
    }

    #[test]
    fn body_must_be_a_json_object() {
        for body in [&b"{"[..], b"[1]", b"null"] {
            let err = parse_task_request(body, &TaskConfig::default()).unwrap_err();
            assert!(matches!(err, ApiError::InvalidRequest { field: None, .. }), "{err:?}");
        }
    }

    #[test]
    fn query_components_are_percent_decoded() {
        assert_eq!(percent_decode("%74rue"), "true");
        assert_eq!(percent_decode("a+b%2Fc"), "a b/c");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%8C"), "Ì");
        assert_eq!(percent_decode("%FF"), "\u{fffd}");
    }

    #[test]
    fn content_type_must_be_json() {
        let mut headers = HeaderMap::new();
        assert!(is_json(&headers).is_err());
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(is_json(&headers).is_err());
        headers.insert(header::CONTENT_TYPE, "application/json; charset=utf-8".parse().unwrap());
        assert!(is_json(&headers).is_ok());
    }
}
