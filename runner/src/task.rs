//! The container lifecycle of one task:
//!
//! create (labelled, limited, no network by default) → attach (stdin if given, stdout and
//! stderr) → start → wait, at most the task's timeout → on timeout, kill → collect stdout and
//! stderr separately, each capped at the output limit → hand back the outcome → remove.
//!
//! Removal is owned by a [`ContainerGuard`], registered as soon as Docker returns the id: when
//! the guard is dropped — after the response is built, on any error, or when the request's
//! future is dropped because the client went away or the server is shutting down — it spawns
//! a forced removal (which also kills). The reaper ([`crate::reaper`]) removes anything that
//! still escapes, such as containers of a runner that crashed.

use std::collections::{HashMap, HashSet};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{AttachContainerOptions, KillContainerOptions, RemoveContainerOptions};
use bollard::Docker;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use crate::error::{docker, ApiError};
use crate::AppState;

/// Label on every container the runner creates.
pub const LABEL: &str = "cairn.runner";
/// Label naming the runner instance (config `server.instance`) that owns the container.
pub const INSTANCE_LABEL: &str = "cairn.runner.instance";
/// Label carrying the request id, to find a container's request in the logs.
pub const REQUEST_LABEL: &str = "cairn.runner.request";

/// How long output may keep arriving after the container has exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a killed container to stop.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Everything needed to run one task, already validated and with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    /// Full image reference, `repository:tag` or `repository@digest`.
    pub image: String,
    pub cmd: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    pub stdin: Option<Vec<u8>>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub timeout: Duration,
    pub memory_bytes: i64,
    pub nano_cpus: i64,
    pub pids_limit: i64,
    /// Per stream.
    pub output_limit_bytes: usize,
    pub network: String,
    pub read_only_rootfs: bool,
    pub request_id: Option<String>,
}

/// What happened to a task. Holds the container's guard: dropping the outcome removes it.
#[derive(Debug)]
pub struct TaskOutcome {
    pub container_id: String,
    pub exit_code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub timed_out: bool,
    pub oom_killed: bool,
    pub duration: Duration,
    pub guard: ContainerGuard,
}

/// Containers this process owns, and removals still under way.
#[derive(Debug, Default)]
pub struct Containers {
    live: Mutex<HashSet<String>>,
    pending_removals: AtomicUsize,
    idle: Notify,
}

impl Containers {
    pub fn is_live(&self, id: &str) -> bool {
        self.live.lock().expect("containers lock").contains(id)
    }

    pub fn live_count(&self) -> usize {
        self.live.lock().expect("containers lock").len()
    }

    pub fn pending_removals(&self) -> usize {
        self.pending_removals.load(Ordering::Acquire)
    }

    /// Waits until no removal is pending, at most `timeout`; true when none is.
    pub async fn wait_for_removals(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.idle.notified();
            if self.pending_removals() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.pending_removals() == 0;
            }
        }
    }
}

/// Owns one container: dropping it schedules the container's forced removal.
#[derive(Debug)]
pub struct ContainerGuard {
    state: AppState,
    id: String,
}

impl ContainerGuard {
    fn register(state: AppState, id: String) -> ContainerGuard {
        state.containers().live.lock().expect("containers lock").insert(id.clone());
        state.metrics().containers_live(1);
        ContainerGuard { state, id }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let state = self.state.clone();
        let id = std::mem::take(&mut self.id);
        let containers = state.containers();
        containers.pending_removals.fetch_add(1, Ordering::AcqRel);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime left (process exit): the reaper removes it at the next start.
            tracing::warn!(container_id = %id, "cannot schedule container removal: no runtime");
            finish_removal(&state, &id);
            return;
        };
        runtime.spawn(async move {
            remove_container(&state, &id).await;
            finish_removal(&state, &id);
        });
    }
}

fn finish_removal(state: &AppState, id: &str) {
    let containers = state.containers();
    if containers.live.lock().expect("containers lock").remove(id) {
        state.metrics().containers_live(-1);
    }
    if containers.pending_removals.fetch_sub(1, Ordering::AcqRel) == 1 {
        containers.idle.notify_waiters();
    }
}

/// Force-removes a container (killing it if running) and its anonymous volumes, retrying
/// briefly. Returns whether it is gone.
pub async fn remove_container(state: &AppState, id: &str) -> bool {
    let started = Instant::now();
    let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
    let mut attempt = 0;
    let gone = loop {
        attempt += 1;
        match state.docker().remove_container(id, Some(options.clone())).await {
            Ok(()) => break true,
            Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => break true,
            // "removal of container ... is already in progress": someone else finishes it.
            Err(DockerError::DockerResponseServerError { status_code: 409, message })
                if message.contains("already in progress") =>
            {
                break true
            }
            Err(err) if attempt < 3 => {
                tracing::debug!(container_id = %id, error = %err, attempt, "retrying container removal");
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            Err(err) => {
                tracing::error!(container_id = %id, error = %err, "container removal failed; the reaper will retry");
                state.metrics().inc("runner_container_remove_failures_total", &[]);
                break false;
            }
        }
    };
    state.metrics().observe(
        "runner_container_operation_duration_seconds",
        &[("operation", "remove")],
        started.elapsed(),
    );
    if gone {
        tracing::debug!(container_id = %id, "container removed");
    }
    gone
}

/// Output of both streams, each capped.
#[derive(Debug, Default)]
struct Collected {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    stdout_truncated: bool,
    stderr_truncated: bool,
    error: Option<String>,
}

fn keep(buffer: &mut Vec<u8>, truncated: &mut bool, limit: usize, bytes: &[u8]) {
    let room = limit.saturating_sub(buffer.len());
    if bytes.len() > room {
        buffer.extend_from_slice(&bytes[..room]);
        *truncated = true;
    } else {
        buffer.extend_from_slice(bytes);
    }
}

/// Reads the attach stream to its end, demultiplexed; past the limit it keeps draining (so the
/// container never blocks on a full pipe) but stores nothing.
async fn collect<S>(out: &mut Collected, mut stream: S, limit: usize)
where
    S: Stream<Item = Result<LogOutput, DockerError>> + Unpin,
{
    while let Some(item) = stream.next().await {
        match item {
            Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                keep(&mut out.stdout, &mut out.stdout_truncated, limit, &message)
            }
            Ok(LogOutput::StdErr { message }) => keep(&mut out.stderr, &mut out.stderr_truncated, limit, &message),
            Ok(LogOutput::StdIn { .. }) => {}
            Err(err) => {
                out.error = Some(err.to_string());
                break;
            }
        }
    }
}

/// Waits for the container to stop and returns its exit code.
async fn wait_exit(docker: &Docker, id: &str) -> Result<i64, DockerError> {
    let mut stream = pin!(docker.wait_container(id, None));
    match stream.next().await {
        Some(Ok(response)) => Ok(response.status_code),
        // bollard reports a non-zero exit code as an error.
        Some(Err(DockerError::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(err)) => Err(err),
        None => Err(DockerError::DockerStreamError { error: "wait stream ended without a status".into() }),
    }
}

fn create_body(state: &AppState, spec: &TaskSpec) -> ContainerCreateBody {
    let mut labels = HashMap::from([
        (LABEL.to_string(), "1".to_string()),
        (INSTANCE_LABEL.to_string(), state.config().server.instance.clone()),
    ]);
    if let Some(request_id) = &spec.request_id {
        labels.insert(REQUEST_LABEL.to_string(), request_id.clone());
    }
    let with_stdin = spec.stdin.is_some();
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: Some(spec.cmd.clone()),
        env: Some(spec.env.clone()),
        working_dir: spec.workdir.clone(),
        user: spec.user.clone(),
        labels: Some(labels),
        attach_stdin: Some(with_stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(with_stdin),
        stdin_once: Some(with_stdin),
        tty: Some(false),
        host_config: Some(HostConfig {
            memory: Some(spec.memory_bytes),
            // Equal to memory: no swap on top of the limit.
            memory_swap: Some(spec.memory_bytes),
            nano_cpus: Some(spec.nano_cpus),
            pids_limit: Some(spec.pids_limit),
            network_mode: Some(spec.network.clone()),
            readonly_rootfs: Some(spec.read_only_rootfs),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            auto_remove: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Runs one task to completion. The image must already be present.
pub async fn run(state: &AppState, spec: &TaskSpec) -> Result<TaskOutcome, ApiError> {
    let docker = state.docker();
    let metrics = state.metrics();
    let started = Instant::now();

    let t = Instant::now();
    let created = docker.create_container(None, create_body(state, spec)).await.map_err(|err| match err {
        DockerError::DockerResponseServerError { status_code: 404, message } => {
            ApiError::ImageNotFound { image: spec.image.clone(), detail: Some(message) }
        }
        // Docker refused the settings: a reference it cannot parse (it is stricter than the
        // runner's parser in corners), more CPUs than the host has, and the like.
        DockerError::DockerResponseServerError { status_code: 400, message } => ApiError::InvalidRequest {
            field: message.contains("reference format").then(|| "docker_image".to_string()),
            message: format!("Docker refused the container's settings: {message}"),
        },
        err => docker_error("create", None, &err),
    })?;
    metrics.observe("runner_container_operation_duration_seconds", &[("operation", "create")], t.elapsed());
    let guard = ContainerGuard::register(state.clone(), created.id);
    let id = guard.id().to_string();
    tracing::Span::current().record("container_id", id.as_str());
    tracing::debug!(container_id = %id, image = %spec.image, "container created");

    let attached = docker
        .attach_container(
            &id,
            Some(AttachContainerOptions {
                stream: true,
                stdin: spec.stdin.is_some(),
                stdout: true,
                stderr: true,
                logs: false,
                ..Default::default()
            }),
        )
        .await
        .map_err(|err| docker_error("attach", Some(&id), &err))?;
    let mut input = attached.input;

    let t = Instant::now();
    docker.start_container(&id, None).await.map_err(|err| match err {
        // The runtime refused the command: a program the image does not have, a working
        // directory it cannot make, a user or group it does not have (which Docker answers
        // with 500). The request is at fault, as when create refuses it.
        DockerError::DockerResponseServerError { status_code, message }
            if status_code == 400 || (status_code == 500 && names_unknown_user(&message)) =>
        {
            ApiError::InvalidRequest {
                field: refused_field(&message).map(str::to_string),
                message: format!("Docker could not start the command: {message}"),
            }
        }
        err => docker_error("start", Some(&id), &err),
    })?;
    metrics.observe("runner_container_operation_duration_seconds", &[("operation", "start")], t.elapsed());
    let running_since = Instant::now();

    let mut collected = Collected::default();
    let limit = spec.output_limit_bytes;
    let stdin = spec.stdin.clone();
    let (exit, timed_out) = {
        let mut output = pin!(collect(&mut collected, attached.output, limit));
        let mut output_done = false;
        let mut feed = pin!(async move {
            if let Some(data) = stdin {
                // A container that exits without reading its input closes the stream under us.
                let _ = input.write_all(&data).await;
                let _ = input.shutdown().await;
            }
            // Keep the write half open until the end when there is no stdin to close.
            std::future::pending::<()>().await
        });
        let mut waited = pin!(async {
            match tokio::time::timeout(spec.timeout, wait_exit(docker, &id)).await {
                Ok(exit) => (exit, false),
                Err(_elapsed) => {
                    tracing::info!(container_id = %id, timeout_ms = spec.timeout.as_millis() as u64, "task timed out; killing its container");
                    let kill = KillContainerOptions { signal: "KILL".to_string() };
                    if let Err(err) = docker.kill_container(&id, Some(kill)).await {
                        // Usually "is not running": it exited just now.
                        tracing::debug!(container_id = %id, error = %err, "kill failed");
                    }
                    let exit = tokio::time::timeout(KILL_WAIT, wait_exit(docker, &id))
                        .await
                        .unwrap_or(Err(DockerError::RequestTimeoutError));
                    (exit, true)
                }
            }
        });
        let result = loop {
            tokio::select! {
                result = &mut waited => break result,
                () = &mut output, if !output_done => output_done = true,
                () = &mut feed => {}
            }
        };
        if !output_done && tokio::time::timeout(DRAIN_TIMEOUT, &mut output).await.is_err() {
            tracing::warn!(container_id = %id, "output still open after the container exited; cut it off");
        }
        result
    };
    metrics.observe("runner_container_operation_duration_seconds", &[("operation", "wait")], running_since.elapsed());
    let exit_code = exit.map_err(|err| docker_error("wait", Some(&id), &err))?;
    if let Some(error) = &collected.error {
        tracing::warn!(container_id = %id, error = %error, "reading container output failed");
    }
    let oom_killed = if exit_code != 0 {
        match docker.inspect_container(&id, None).await {
            Ok(info) => info.state.and_then(|s| s.oom_killed).unwrap_or(false),
            Err(err) => {
                tracing::warn!(container_id = %id, error = %err, "inspect after exit failed");
                false
            }
        }
    } else {
        false
    };
    tracing::info!(
        container_id = %id,
        exit_code,
        timed_out,
        oom_killed,
        stdout_bytes = collected.stdout.len(),
        stderr_bytes = collected.stderr.len(),
        "task finished"
    );
    Ok(TaskOutcome {
        container_id: id,
        exit_code,
        stdout: collected.stdout,
        stderr: collected.stderr,
        stdout_truncated: collected.stdout_truncated,
        stderr_truncated: collected.stderr_truncated,
        timed_out,
        oom_killed,
        duration: started.elapsed(),
        guard,
    })
}

/// The request field a runtime's refusal to start names, when it names one.
fn refused_field(message: &str) -> Option<&'static str> {
    // runc's words: `exec: "prog": executable file not found in $PATH`, `exec: "/etc":
    // permission denied`, `mkdir /proc/x: no such file or directory`, `unable to find user x`.
    if message.contains("exec: \"") {
        Some("cmd")
    } else if message.contains("mkdir ") {
        Some("workdir")
    } else if names_unknown_user(message) {
        Some("user")
    } else {
        None
    }
}

/// Whether a runtime's refusal to start says the image has no such user or group (runc:
/// `unable to find user x: no matching entries in passwd file`, `unable to find group y: ...`).
fn names_unknown_user(message: &str) -> bool {
    message.contains("unable to find user ") || message.contains("unable to find group ")
}

fn docker_error(operation: &'static str, id: Option<&str>, err: &DockerError) -> ApiError {
    docker(operation, id, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_capped_and_flagged() {
        let mut buffer = Vec::new();
        let mut truncated = false;
        keep(&mut buffer, &mut truncated, 5, b"abc");
        assert!(!truncated);
        keep(&mut buffer, &mut truncated, 5, b"defg");
        assert_eq!(buffer, b"abcde");
        assert!(truncated);
        keep(&mut buffer, &mut truncated, 5, b"more");
        assert_eq!(buffer, b"abcde");
    }

    #[tokio::test]
    async fn collect_keeps_streams_apart() {
        let items = vec![
            Ok(LogOutput::StdOut { message: "out1 ".into() }),
            Ok(LogOutput::StdErr { message: "err".into() }),
            Ok(LogOutput::StdOut { message: "out2".into() }),
        ];
        let mut out = Collected::default();
        collect(&mut out, futures_util::stream::iter(items), 100).await;
        assert_eq!(out.stdout, b"out1 out2");
        assert_eq!(out.stderr, b"err");
    }
}
