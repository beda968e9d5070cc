//! `local:Command`: a command run on the deploying machine as a resource, so that a program
//! can run Packer, a build step or a script in dependency order, with its standard output as
//! an output.
//!
//! `create` runs when the resource is created (and when it is replaced: a change of
//! `create`, `triggers`, `dir` or `interpreter`); `update` runs when another input changes
//! (`create` again when `update` is unset); `delete` runs when it is deleted (nothing when
//! unset). Each run gets the machine's environment plus `environment`, in `dir`. A command
//! that exits with a failure fails the step, with the end of its standard error in the
//! message. Secrets in the command or its environment are given to it in clear and are
//! scrubbed from messages; an output that holds one stays secret.
//!
//! A command leaves nothing cairn can read back: after a crash between a run and its record,
//! the next deploy runs it again, so commands should be safe to repeat.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::provider::{Context, Created, Observed, Provider, ProviderError};
use crate::resource::{Input, Resource};

/// The most standard output a command may produce: it is kept in state.
pub const MAX_STDOUT: usize = 1024 * 1024;

/// How much of a failed command's standard error its message shows (the end).
const STDERR_SHOWN: usize = 4096;

/// A command run as a resource.
#[derive(Debug, Clone, Serialize)]
pub struct Command {
    /// Runs when the resource is created or replaced; its standard output (without one
    /// trailing newline) is the `stdout` output.
    pub create: Input<String>,
    /// Runs when an input other than those that replace changes; unset: `create` runs again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<Input<String>>,
    /// Runs when the resource is deleted (and when its replacement has been made), with the
    /// inputs it was created with; unset: nothing runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete: Option<Input<String>>,
    /// Variables added to the command's environment.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, Input<String>>,
    /// The directory it runs in (default: where cairn runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// Values whose change replaces the resource, running `create` again (a file's hash, an
    /// image digest).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Input<String>>,
    /// What runs the command strings (default `["/bin/sh", "-c"]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<Vec<String>>,
    /// Time limit of one run, in seconds; the command and everything it started are killed
    /// when it passes (default: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

impl Command {
    /// A command that runs `create` and nothing else.
    pub fn new(create: impl Into<Input<String>>) -> Command {
        Command {
            create: create.into(),
            update: None,
            delete: None,
            environment: BTreeMap::new(),
            dir: None,
            triggers: Vec::new(),
            interpreter: None,
            timeout_secs: None,
        }
    }
}

crate::outputs! {
    /// The outputs of a [`Command`].
    pub struct CommandOutputs {
        /// What the last run (`create` or `update`) printed, without one trailing newline.
        pub stdout: String,
    }
}

impl Resource for Command {
    const TYPE: &'static str = "local:Command";
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["create", "triggers", "dir", "interpreter"];
    // An update runs a command again: its output is new.
    const UPDATABLE_OUTPUTS: &'static [&'static str] = &["stdout"];
    type Outputs = CommandOutputs;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    create: String,
    #[serde(default)]
    update: Option<String>,
    #[serde(default)]
    delete: Option<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    dir: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    triggers: Vec<String>,
    #[serde(default)]
    interpreter: Option<Vec<String>>,
    #[serde(default)]
    timeout_secs: Option<u64>,
}

fn parse(ctx: Context<'_>, inputs: &Value) -> Result<Args, ProviderError> {
    let args: Args = serde_json::from_value(inputs.clone())
        .map_err(|e| ProviderError::new(format!("`{}`: invalid local:Command inputs: {e}", ctx.urn)))?;
    if args.interpreter.as_ref().is_some_and(|i| i.is_empty()) {
        return Err(ProviderError::new(format!("`{}`: `interpreter` must name a program", ctx.urn)));
    }
    if args.timeout_secs == Some(0) {
        return Err(ProviderError::new(format!("`{}`: `timeout_secs` must be at least 1", ctx.urn)));
    }
    Ok(args)
}

/// Kills a command's whole process group when dropped (a timeout, or the run stopped at
/// once): a shell's children would otherwise live on.
struct Group(Option<u32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // `kill` on a negative pid signals the group; the group leader is the shell.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs `script` as `args` say; its standard output.
async fn run(ctx: Context<'_>, what: &str, script: &str, args: &Args) -> Result<String, ProviderError> {
    let fail = |m: String| ProviderError::new(format!("`{}`: {what} command {m}", ctx.urn));
    let interpreter = args.interpreter.clone().unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
    let mut command = tokio::process::Command::new(&interpreter[0]);
    command
        .args(&interpreter[1..])
        .arg(script)
        .envs(&args.environment)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    command.process_group(0);
    if let Some(dir) = &args.dir {
        command.current_dir(Path::new(dir));
    }
    let child = command.spawn().map_err(|e| fail(format!("could not start `{}`: {e}", interpreter[0])))?;
    let mut group = Group(if cfg!(unix) { child.id() } else { None });
    let output = match args.timeout_secs {
        Some(s) => tokio::time::timeout(Duration::from_secs(s), child.wait_with_output())
            .await
            .map_err(|_| fail(format!("did not finish within {s} s and was killed")))?,
        None => child.wait_with_output().await,
    }
    .map_err(|e| fail(format!("could not be waited for: {e}")))?;
    // It ended by itself: nothing of its group to kill.
    group.0 = None;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let start = stderr.len().saturating_sub(STDERR_SHOWN);
        let start = (start..stderr.len()).find(|&i| stderr.is_char_boundary(i)).unwrap_or(stderr.len());
        let code = output.status.code().map_or_else(|| "a signal".to_string(), |c| format!("status {c}"));
        return Err(fail(format!("exited with {code}: {}", stderr[start..].trim_end())));
    }
    if output.stdout.len() > MAX_STDOUT {
        return Err(fail(format!(
            "printed {} bytes, more than the {} KiB kept in state; write large output to a file",
            output.stdout.len(),
            MAX_STDOUT / 1024
        )));
    }
    let stdout = String::from_utf8(output.stdout).map_err(|_| fail("printed something that is not UTF-8".into()))?;
    Ok(crate::config::without_line_end(&stdout).to_string())
}

/// The provider of [`Command`]s.
#[derive(Debug, Clone, Default)]
pub struct CommandProvider;

#[async_trait::async_trait]
impl Provider for CommandProvider {
    fn type_token(&self) -> &'static str {
        Command::TYPE
    }

    async fn create(&self, ctx: Context<'_>, inputs: &Value) -> Result<Created, ProviderError> {
        let args = parse(ctx, inputs)?;
        let stdout = run(ctx, "create", &args.create, &args).await?;
        Ok(Created { id: crate::state::lock::random_id(), outputs: json!({"stdout": stdout}) })
    }

    /// A command's effect cannot be read back: it is as state says (outputs unknown, so the
    /// engine keeps those in state).
    async fn read(&self, _ctx: Context<'_>, id: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        Ok(Some(Observed { id: id.to_string(), inputs: inputs.clone(), outputs: Value::Null }))
    }

    async fn update(&self, ctx: Context<'_>, _id: &str, _old: &Value, new: &Value) -> Result<Value, ProviderError> {
        let args = parse(ctx, new)?;
        let stdout = match &args.update {
            Some(update) => run(ctx, "update", update, &args).await?,
            None => run(ctx, "create", &args.create, &args).await?,
        };
        Ok(json!({"stdout": stdout}))
    }

    async fn delete(&self, ctx: Context<'_>, _id: &str, inputs: &Value) -> Result<(), ProviderError> {
        let args = parse(ctx, inputs)?;
        if let Some(delete) = &args.delete {
            run(ctx, "delete", delete, &args).await?;
        }
        Ok(())
    }

    /// A run leaves nothing to find: after a crash, `create` runs again.
    async fn find(&self, _ctx: Context<'_>, _identity: &Value) -> Result<Option<Observed>, ProviderError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::urn::Urn;

    fn inputs(c: &Command) -> Value {
        crate::value::reveal(&serde_json::to_value(c).unwrap())
    }

    #[tokio::test]
    async fn create_update_and_delete_run_their_commands() {
        let dir = tempfile::tempdir().unwrap();
        let urn = Urn::from("s/local:Command/build");
        let ctx = Context::new(&urn, "s");
        let p = CommandProvider;
        let mut c = Command::new("echo made $NAME; echo made >> log");
        c.environment.insert("NAME".into(), "one".into());
        c.dir = Some(dir.path().display().to_string());
        c.delete = Some("echo deleted >> log".into());
        let created = p.create(ctx, &inputs(&c)).await.unwrap();
        assert_eq!(created.outputs, json!({"stdout": "made one"}));
        // Without `update`, an update runs `create` again.
        c.environment.insert("NAME".into(), "two".into());
        assert_eq!(p.update(ctx, &created.id, &Value::Null, &inputs(&c)).await.unwrap(), json!({"stdout": "made two"}));
        c.update = Some("printf 'updated %s' $NAME".into());
        assert_eq!(
            p.update(ctx, &created.id, &Value::Null, &inputs(&c)).await.unwrap(),
            json!({"stdout": "updated two"})
        );
        p.delete(ctx, &created.id, &inputs(&c)).await.unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("log")).unwrap(), "made\nmade\ndeleted\n");
        let seen = p.read(ctx, &created.id, &inputs(&c)).await.unwrap().unwrap();
        assert_eq!(seen.inputs, inputs(&c));
        assert!(p.find(ctx, &Value::Null).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_failing_command_says_why_and_a_slow_one_is_killed() {
        let urn = Urn::from("s/local:Command/build");
        let ctx = Context::new(&urn, "s");
        let e =
            CommandProvider.create(ctx, &inputs(&Command::new("echo no such image >&2; exit 3"))).await.unwrap_err();
        assert_eq!(e.to_string(), "`s/local:Command/build`: create command exited with status 3: no such image");
        let dir = tempfile::tempdir().unwrap();
        let mut slow = Command::new("(sleep 30; touch late) & sleep 30");
        slow.timeout_secs = Some(1);
        slow.dir = Some(dir.path().display().to_string());
        let started = std::time::Instant::now();
        let e = CommandProvider.create(ctx, &inputs(&slow)).await.unwrap_err();
        assert!(e.to_string().contains("did not finish within 1 s and was killed"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
        // Its children went with it.
        let pgrep = std::process::Command::new("pgrep").args(["-f", "sleep 30; touch late"]).output().unwrap();
        assert!(pgrep.stdout.is_empty(), "left running: {}", String::from_utf8_lossy(&pgrep.stdout));
        let mut bad = Command::new("true");
        bad.interpreter = Some(vec![]);
        assert!(CommandProvider
            .create(ctx, &inputs(&bad))
            .await
            .unwrap_err()
            .to_string()
            .contains("must name a program"));
    }
}
