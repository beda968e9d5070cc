//! Helpers that make each test read like a sentence.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// A temporary project: config, state directory and the test provider's world.
pub struct Project {
    dir: TempDir,
    /// Variables to set; `None`: to remove from the inherited environment.
    env: BTreeMap<String, Option<String>>,
    program: &'static str,
    stack: &'static str,
}

/// What a command did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    pub fn code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "expected exit {code}\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Project {
    /// A project whose `dev` environment has this config.
    pub fn new(config: &str) -> Project {
        Project::of(env!("CARGO_BIN_EXE_test-stack"), "test-dev", config)
    }

    /// A project of another stack program (its path), whose `dev` stack is `stack`.
    pub fn of(program: &'static str, stack: &'static str, config: &str) -> Project {
        let p = Project { dir: tempfile::tempdir().expect("tempdir"), env: BTreeMap::new(), program, stack };
        p.config(config);
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn world(&self) -> PathBuf {
        self.dir.path().join("world")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join(".cairn").join(self.stack)
    }

    /// Replaces the `dev` config.
    pub fn config(&self, toml: &str) {
        let dir = self.dir.path().join("config");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("dev.toml"), toml).expect("write config");
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.insert(key.into(), Some(value.into()));
    }

    /// Runs the program without `key`, even if the tests' environment has it.
    pub fn remove_env(&mut self, key: &str) {
        self.env.insert(key.into(), None);
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.program);
        c.args(args)
            .current_dir(self.dir.path())
            .env("CAIRN_TEST_WORLD", self.world())
            .env("CAIRN_CONFIG_DIR", self.dir.path().join("config"))
            .env("NO_COLOR", "1")
            .env_remove("CAIRN_PASSPHRASE")
            .env_remove("CAIRN_PASSPHRASE_FILE")
            .env_remove("CAIRN_STATE")
            .env_remove("CAIRN_ENV")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    }

    /// Runs the program with `args` and waits.
    pub fn run(&self, args: &[&str]) -> Run {
        self.command(args).output().expect("run the stack program").into()
    }

    /// Starts the program with `args` in the background.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn the stack program")
    }

    pub fn deploy(&self) -> Run {
        self.run(&["deploy", "--env", "dev", "--yes"])
    }

    /// The plan as JSON, and the `--detailed-exitcode` code.
    pub fn preview_json(&self) -> (Value, i32) {
        let r = self.run(&["preview", "--env", "dev", "--format", "json", "--detailed-exitcode"]);
        assert!(r.code == 0 || r.code == 2, "preview failed:\n{}\n{}", r.stdout, r.stderr);
        (serde_json::from_str(&r.stdout).expect("plan JSON"), r.code)
    }

    /// The state, through `state export`.
    pub fn state(&self) -> Value {
        let r = self.run(&["state", "export", "--env", "dev"]).ok();
        serde_json::from_str(&r.stdout).expect("state JSON")
    }

    /// (id, urn) of every real thing.
    pub fn things(&self) -> Vec<(String, String)> {
        cairn_tests::world_things(&self.world())
    }

    /// Checks that the world and state agree: one real thing per resource, same ids.
    pub fn assert_world_matches_state(&self) {
        let state = self.state();
        let mut in_state: Vec<(String, String)> = state["resources"]
            .as_object()
            .expect("resources")
            .values()
            .filter(|r| r["type"] == "test:Thing")
            .map(|r| (r["id"].as_str().unwrap().to_string(), r["urn"].as_str().unwrap().to_string()))
            .collect();
        in_state.sort();
        let world = self.things();
        let mut urns: Vec<&String> = world.iter().map(|(_, u)| u).collect();
        urns.sort();
        let before = urns.len();
        urns.dedup();
        assert_eq!(before, urns.len(), "duplicate real resources: {world:?}");
        assert_eq!(world, in_state, "world and state disagree");
        assert!(state["pending"].as_object().is_none_or(|p| p.is_empty()), "pending left: {}", state["pending"]);
    }
}

/// Polls `cond` every 10 ms for up to `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends a signal to a child process.
pub fn signal(child: &Child, sig: i32) {
    // SAFETY-free: libc::kill is a plain syscall on a pid we own.
    let rc = unsafe_kill(child.id() as i32, sig);
    assert_eq!(rc, 0, "kill failed");
}

#[allow(unsafe_code)]
fn unsafe_kill(pid: i32, sig: i32) -> i32 {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) }
}
