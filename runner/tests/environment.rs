//! The built `runner` binary configured from environment variables: a variable beats the file,
//! a flag beats the variable, secrets stay out of the output, and a bad or unknown variable
//! stops startup with a message naming it. The runs that start need a Docker engine (the
//! runner connects to it at startup); the ones that fail stop before that.

mod util;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::{free_port, http, TempDir};

/// A spawned runner, killed if the test ends without stopping it.
struct Runner {
    child: std::process::Child,
    dir: TempDir,
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Runner {
    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path("stdout.log")).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path("stderr.log")).unwrap_or_default()
    }

    /// Waits until `/healthz` on `port` answers 200.
    async fn wait_ready(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the runner exited ({status}) before serving:\n{}\n{}", self.stderr(), self.stdout());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                let reply = http(format!("127.0.0.1:{port}").parse().unwrap(), "GET", "/healthz", &[], None).await;
                assert_eq!(reply.status, 200, "{}", reply.body);
                return;
            }
            assert!(Instant::now() < deadline, "the runner did not listen on {port}:\n{}", self.stderr());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then the exit status must be success.
    fn stop(&mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit status {status}:\n{}", self.stderr());
                return;
            }
            assert!(Instant::now() < deadline, "the runner did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The runner binary with none of this process's `RUNNER_*` variables, and `vars` set.
fn command(vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_runner"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("RUNNER_") {
            command.env_remove(name);
        }
    }
    command.env("RUNNER_LOG", "info").envs(vars.iter().copied());
    command
}

fn spawn(vars: &[(&str, &str)], args: &[&str]) -> Runner {
    let dir = TempDir::new("environment");
    let child = command(vars)
        .args(args)
        .stdout(std::fs::File::create(dir.path("stdout.log")).unwrap())
        .stderr(std::fs::File::create(dir.path("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    Runner { child, dir }
}

/// Runs the binary to its end: (success, stdout and stderr together).
fn run_to_end(vars: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let output = command(vars).args(args).stdin(Stdio::null()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn variables_beat_the_file_and_flags_beat_variables() {
    const SECRET: &str = "env-token-9f3b1c";
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let config_dir = TempDir::new("environment-config");
    let config = config_dir.path("runner.toml");
    write(
        &config,
        &format!(
            "[server]\nlisten = \"127.0.0.1:{file_port}\"\ninstance = \"from-file\"\n\
             [auth]\nbearer_tokens = [\"file-token\"]\n"
        ),
    );
    let instance = format!("env-test-{}", std::process::id());
    let env_listen = format!("127.0.0.1:{env_port}");
    let vars = [
        ("RUNNER_CONFIG", config.to_str().unwrap()),
        ("RUNNER_SERVER__LISTEN", env_listen.as_str()),
        ("RUNNER_SERVER__INSTANCE", instance.as_str()),
        ("RUNNER_AUTH__BEARER_TOKENS", SECRET),
        ("RUNNER_REAPER__INTERVAL_MS", "0"),
    ];

    // The variables beat the file: the port, and the tokens (the list is replaced).
    let mut runner = spawn(&vars, &[]);
    runner.wait_ready(env_port).await;
    let addr = env_listen.parse().unwrap();
    let bearer = format!("Bearer {SECRET}");
    let reply = http(addr, "GET", "/v1.1/_noop", &[("Authorization", &bearer)], None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = http(addr, "GET", "/v1.1/_noop", &[("Authorization", "Bearer file-token")], None).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    runner.stop();
    let stdout = runner.stdout();
    let listening = stdout.lines().find(|l| l.contains("runner listening")).unwrap_or_else(|| panic!("{stdout}"));
    let line: serde_json::Value = serde_json::from_str(listening).unwrap();
    assert_eq!(line["fields"]["listen"], env_listen.as_str());
    assert_eq!(
        line["fields"]["environment"],
        "RUNNER_AUTH__BEARER_TOKENS,RUNNER_CONFIG,RUNNER_REAPER__INTERVAL_MS,RUNNER_SERVER__INSTANCE,RUNNER_SERVER__LISTEN"
    );
    assert!(!stdout.contains(SECRET) && !runner.stderr().contains(SECRET), "the token was logged");

    // A flag beats the variable.
    let flag_listen = format!("127.0.0.1:{flag_port}");
    let mut runner = spawn(&vars, &["--listen", &flag_listen]);
    runner.wait_ready(flag_port).await;
    runner.stop();
    assert!(runner.stdout().contains(&format!("\"listen\":\"{flag_listen}\"")), "{}", runner.stdout());
}

/// Variables to set, and what the output must contain.
type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);

#[test]
fn a_bad_variable_stops_startup_naming_it() {
    let cases: &[Case] = &[
        (
            &[("RUNNER_LIMITS__MAX_CONCURRENT_TASKS", "lots")],
            &[
                "runner: environment variable RUNNER_LIMITS__MAX_CONCURRENT_TASKS (config key \
                 `limits.max_concurrent_tasks`): invalid type: string \"lots\", expected usize; expected a whole number",
            ],
        ),
        (
            &[("RUNNER_SERVER__LISTN", "127.0.0.1:1")],
            &["unknown environment variable(s) RUNNER_SERVER__LISTN (did you mean RUNNER_SERVER__LISTEN?)"],
        ),
        (&[("RUNNER_LISTEN", "nowhere")], &["environment variable RUNNER_LISTEN (flag --listen", "0.0.0.0:8448"]),
        (
            &[("RUNNER_INSECURE_NO_AUTH", "true"), ("RUNNER_SERVER__LISTEN", "0.0.0.0:8448")],
            &["only allowed on a loopback address"],
        ),
    ];
    for (vars, wanted) in cases {
        let (ok, output) = run_to_end(vars, &[]);
        assert!(!ok, "{vars:?} started:\n{output}");
        for want in *wanted {
            assert!(output.contains(want), "{vars:?}: {output:?} lacks {want:?}");
        }
    }
    // A secret's value is not echoed, even when it is what is wrong.
    let (ok, output) = run_to_end(&[("RUNNER_AUTH__BEARER_TOKENS", "[\"good-token\", 5551234]")], &[]);
    assert!(!ok);
    assert!(output.contains("RUNNER_AUTH__BEARER_TOKENS") && output.contains("not shown"), "{output}");
    assert!(!output.contains("5551234") && !output.contains("good-token"), "{output}");
}

#[test]
fn help_lists_the_variables() {
    let (ok, output) = run_to_end(&[], &["--help"]);
    assert!(ok, "{output}");
    for want in
        ["RUNNER_CONFIG", "RUNNER_LISTEN", "RUNNER_SERVER__LISTEN", "RUNNER_IMAGES__ECR__TIMEOUT_MS", "RUNNER_LOG"]
    {
        assert!(output.contains(want), "{want} missing from --help:\n{output}");
    }
}
