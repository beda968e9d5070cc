//! `just bench aws`: the AWS providers' figures against moto, through the test proxy adding
//! 20 ms to every call (the latency of a real AWS region, roughly), one `BENCH <name> <value>`
//! line each.
//!
//! - `refresh_speedup`: `cairn refresh` of 300 resources (150 SNS topics, 150 log groups),
//!   `--parallel 1` time divided by the default-parallel time (fastest of 3).
//! - `noop_api_calls_per_resource`: AWS calls that a no-op `cairn deploy` of that stack makes,
//!   per resource. A deploy plans against state, so with nothing to change it calls nothing.
//! - `refresh_api_calls_per_resource`: AWS calls per resource of one refresh (reading a
//!   resource back takes its description and its tags).
//!
//! Runs the `aws-stack` program built beside this binary, as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_tests::moto::{FaultyProxy, Moto};

const TOPICS: usize = 150;
const LOG_GROUPS: usize = 150;
const LATENCY: Duration = Duration::from_millis(20);

struct Project {
    dir: PathBuf,
    program: PathBuf,
}

impl Project {
    /// Runs the program with `args`, sending AWS calls to `endpoint`; the time it took.
    fn run(&self, endpoint: &str, args: &[&str]) -> Duration {
        let start = Instant::now();
        let out = Command::new(&self.program)
            .args(args)
            .current_dir(&self.dir)
            .env("CAIRN_CONFIG_DIR", self.dir.join("config"))
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_COLOR", "1")
            .env_remove("CAIRN_STATE")
            .env_remove("CAIRN_PASSPHRASE")
            .stdin(Stdio::null())
            .output()
            .expect("run aws-stack");
        let took = start.elapsed();
        assert!(
            out.status.success(),
            "aws-stack {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        took
    }
}

fn program() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    let program = exe.parent().unwrap_or(Path::new(".")).join("aws-stack");
    assert!(program.exists(), "{} is missing: build cairn-tests' binaries", program.display());
    program
}

fn main() {
    let moto = Moto::start();
    let proxy = FaultyProxy::with_latency(moto.port, LATENCY);
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into())).expect("tempdir");
    std::fs::create_dir_all(dir.path().join("config")).expect("mkdir");
    std::fs::write(
        dir.path().join("config/dev.toml"),
        format!("regions = [\"us-east-1\"]\ntopics = {TOPICS}\nlog_groups = {LOG_GROUPS}\n"),
    )
    .expect("config");
    let p = Project { dir: dir.path().to_path_buf(), program: program() };
    let resources = (TOPICS + LOG_GROUPS) as f64;

    // Deploy straight to moto (setup, not measured).
    p.run(&moto.endpoint(), &["deploy", "--env", "dev", "--yes"]);

    let before = proxy.requests();
    p.run(&proxy.endpoint(), &["deploy", "--env", "dev", "--yes"]);
    let noop = proxy.requests() - before;
    println!("BENCH noop_api_calls_per_resource {:.2}", noop as f64 / resources);

    let before = proxy.requests();
    let serial = p.run(&proxy.endpoint(), &["refresh", "--env", "dev", "--dry-run", "--parallel", "1"]);
    let per_refresh = proxy.requests() - before;
    let parallel =
        (0..3).map(|_| p.run(&proxy.endpoint(), &["refresh", "--env", "dev", "--dry-run"])).min().expect("three runs");
    println!("BENCH refresh_api_calls_per_resource {:.2}", per_refresh as f64 / resources);
    println!("BENCH refresh_serial_s {:.2}", serial.as_secs_f64());
    println!("BENCH refresh_parallel_s {:.2}", parallel.as_secs_f64());
    println!("BENCH refresh_speedup {:.1}", serial.as_secs_f64() / parallel.as_secs_f64());
}
