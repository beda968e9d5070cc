//! Ctrl-C in every phase: a lock wait, recovery, refresh, the prompt, a `state` command and
//! the apply itself stop cleanly, save what was done and release the lock; a second Ctrl-C
//! stops at once and still releases it.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{signal, wait_until, Project};

/// Waits for a child, at most `limit`; its exit code, how long it took, stdout and stderr.
fn finish(mut child: Child, limit: Duration) -> (i32, Duration, String, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            let mut err = String::new();
            child.stdout.take().map(|mut s| s.read_to_string(&mut out));
            child.stderr.take().map(|mut s| s.read_to_string(&mut err));
            return (status.code().unwrap_or(-1), start.elapsed(), out, err);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the process did not stop within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn journal(p: &Project) -> String {
    std::fs::read_to_string(p.state_dir().join("journal.jsonl")).unwrap_or_default()
}

#[test]
fn ctrl_c_while_waiting_for_the_lock_gives_up_at_once() {
    let mut p = Project::new("count = 8\nvalue = \"v\"\n");
    p.set_env("CAIRN_TEST_LATENCY_MS", "400");
    let holder = p.spawn(&["deploy", "--env", "dev", "--yes", "--parallel", "1"]);
    wait_until(Duration::from_secs(30), "the holder's first step", || journal(&p).contains("pending"));
    for args in [
        &["deploy", "--env", "dev", "--yes", "--lock-timeout", "60s"][..],
        &["state", "rm", "--env", "dev", "--yes", "--lock-timeout", "60s", "test-dev/fleet/test:Thing/t0"],
    ] {
        let waiter = p.spawn(args);
        std::thread::sleep(Duration::from_millis(500));
        signal(&waiter, libc::SIGINT);
        let (code, took, _, err) = finish(waiter, Duration::from_secs(10));
        assert_eq!(code, 130, "{err}");
        assert!(err.contains("interrupted while waiting for the lock; nothing was changed"), "{err}");
        assert!(took < Duration::from_secs(3), "gave up in {took:?}");
    }
    let (code, _, out, err) = finish(holder, Duration::from_secs(60));
    assert_eq!(code, 0, "{out}\n{err}");
    p.set_env("CAIRN_TEST_LATENCY_MS", "0");
    p.assert_world_matches_state();
}

#[test]
fn ctrl_c_during_recovery_saves_what_was_reconciled_and_releases_the_lock() {
    let mut p = Project::new("count = 6\nvalue = \"v\"\n");
    p.set_env("CAIRN_TEST_LATENCY_MS", "1500");
    let mut first = p.spawn(&["deploy", "--env", "dev", "--yes", "--parallel", "6"]);
    wait_until(Duration::from_secs(30), "six pending creates", || journal(&p).matches("\"put_pending\"").count() >= 6);
    first.kill().unwrap();
    first.wait().unwrap();
    // Each reconciliation reads slowly: interrupt the second one.
    let second = p.spawn(&["deploy", "--env", "dev", "--yes"]);
    std::thread::sleep(Duration::from_millis(2000));
    signal(&second, libc::SIGINT);
    let (code, _, out, err) = finish(second, Duration::from_secs(20));
    assert_eq!(code, 130, "{out}\n{err}");
    assert!(out.contains("reconciling 6 operations"), "{out}");
    assert!(err.contains("interrupted after reconciling"), "{err}");
    let pending = p.state()["pending"].as_object().map_or(0, |m| m.len());
    assert!(pending > 0 && pending < 6, "some were reconciled and saved, some are left: {pending}");
    p.set_env("CAIRN_TEST_LATENCY_MS", "0");
    p.deploy().ok();
    p.assert_world_matches_state();
    assert_eq!(p.things().len(), 6);
}

#[test]
fn ctrl_c_during_refresh_records_nothing_and_releases_the_lock() {
    let mut p = Project::new("count = 3\nvalue = \"v\"\n");
    p.deploy().ok();
    let before = p.state();
    p.set_env("CAIRN_TEST_LATENCY_MS", "5000");
    let refresh = p.spawn(&["refresh", "--env", "dev", "--yes"]);
    std::thread::sleep(Duration::from_millis(700));
    signal(&refresh, libc::SIGINT);
    let (code, took, out, err) = finish(refresh, Duration::from_secs(10));
    assert_eq!(code, 130, "{out}\n{err}");
    assert!(err.contains("interrupted while reading resources back; nothing was recorded"), "{err}");
    assert!(took < Duration::from_secs(3), "stopped in {took:?}");
    p.set_env("CAIRN_TEST_LATENCY_MS", "0");
    assert_eq!(p.state(), before);
    p.run(&["refresh", "--env", "dev", "--yes"]).ok();
}

#[test]
fn a_second_ctrl_c_stops_at_once_and_still_releases_the_lock() {
    let mut p = Project::new("count = 4\nvalue = \"v\"\n");
    p.set_env("CAIRN_TEST_LATENCY_MS", "30000");
    let deploy = p.spawn(&["deploy", "--env", "dev", "--yes", "--parallel", "2"]);
    wait_until(Duration::from_secs(30), "two pending creates", || journal(&p).matches("\"put_pending\"").count() >= 2);
    signal(&deploy, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    signal(&deploy, libc::SIGINT);
    let (code, took, out, err) = finish(deploy, Duration::from_secs(15));
    assert_eq!(code, 130, "{out}\n{err}");
    assert!(err.contains("press Ctrl-C again to stop at once") && err.contains("stopping at once"), "{err}");
    assert!(took < Duration::from_secs(10), "stopped in {took:?}, not after the 30 s calls");
    // The lock is free at once, and the next run reconciles what was in flight.
    p.set_env("CAIRN_TEST_LATENCY_MS", "0");
    let r = p.deploy().ok();
    assert!(r.stdout.contains("reconciling 2 operations"), "{}", r.stdout);
    p.assert_world_matches_state();
    assert_eq!(p.things().len(), 4);
}

/// Runs the program on a terminal (a pty, through Python's `pty` module), presses Ctrl-C
/// once it asks `prompt`, and returns (exit code, everything it printed).
fn ctrl_c_at_the_prompt(p: &Project, args: &[&str], prompt: &str) -> (i32, String) {
    const DRIVER: &str = r#"
import os, pty, signal, sys, time
prompt = sys.argv[1].encode()
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
out = b""
deadline = time.time() + 60
while prompt not in out and time.time() < deadline:
    try:
        out += os.read(fd, 4096)
    except OSError:
        break
time.sleep(0.2)
os.kill(pid, signal.SIGINT)
_, status = os.waitpid(pid, 0)
try:
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        out += chunk
except OSError:
    pass
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let inner = p.command(args);
    let mut c = Command::new("python3");
    c.arg("-c").arg(DRIVER).arg(prompt).arg(inner.get_program()).args(inner.get_args());
    c.current_dir(inner.get_current_dir().expect("the project's directory"));
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let out = c.stdin(Stdio::null()).output().expect("python3 runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn ctrl_c_at_the_prompt_changes_nothing_and_destroy_always_asks() {
    let p = Project::new("count = 2\nvalue = \"v\"\n");
    p.deploy().ok();
    // destroy asks even for dev; Ctrl-C at its question destroys nothing.
    let (code, out) = ctrl_c_at_the_prompt(&p, &["destroy", "--env", "dev"], "Do you want to destroy");
    assert_eq!(code, 130, "{out}");
    assert!(out.contains("destroy every resource of test-dev") && out.contains("cancelled at the prompt"), "{out}");
    assert_eq!(p.things().len(), 2);
    // Not on a terminal, destroy needs --yes.
    let r = p.run(&["destroy", "--env", "dev"]).code(1);
    assert!(r.stderr.contains("not on a terminal: pass --yes to destroy every resource"), "{}", r.stderr);
    p.config("count = 3\nvalue = \"v\"\n");
    let (code, out) = ctrl_c_at_the_prompt(&p, &["deploy", "--env", "dev"], "Do you want to deploy");
    assert_eq!(code, 130, "{out}");
    assert_eq!(p.things().len(), 2, "nothing was created");
    // The lock was released.
    p.deploy().ok();
    assert_eq!(p.things().len(), 3);
}

#[test]
fn ctrl_c_stops_a_command_that_changes_nothing_at_once() {
    // A state backend that accepts connections and never answers: the command waits.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("consul://{}/cairn", silent.local_addr().unwrap());
    let p = Project::new("count = 1\nvalue = \"v\"\n");
    for args in [&["preview", "--env", "dev", "--state", &url][..], &["state", "list", "--env", "dev", "--state", &url]]
    {
        let child = p.spawn(args);
        std::thread::sleep(Duration::from_millis(700));
        signal(&child, libc::SIGINT);
        let (code, took, out, err) = finish(child, Duration::from_secs(10));
        assert_eq!(code, 130, "{out}\n{err}");
        assert!(took < Duration::from_secs(3), "stopped in {took:?}");
    }
}
