//! `just bench aws`: the AWS providers' figures against moto, through the test proxy adding
//! 20 ms to every call (the latency of a real AWS region, roughly), one `BENCH <name> <value>`
//! line each.
//!
//! The stack: 300 resources over two regions, 150 each: 2 VPCs with 12 subnets and 20
//! security groups each, 10 launch templates and 10 (empty) Auto Scaling groups, 24 SNS topics
//! and 40 log groups. (CloudWatch alarms are left out: moto does not speak the protocol the
//! SDK uses for CloudWatch; see the providers' moto tests.)
//!
//! - `refresh_api_calls_per_resource`: AWS calls of one `cairn refresh` of that stack, per
//!   resource (types whose API reads many per call are read in batches).
//! - `refresh_speedup`: the `--parallel 1` refresh's time divided by the default-parallel
//!   refresh's (fastest of 3): the same reads, the same batches.
//! - `fault_converge_duplicates`: resources made twice (two carrying one `cairn:urn` tag) after
//!   seeded runs of a 16-resource stack of the same kinds: 10 deploys with the answer of one
//!   create lost (its request took effect), and 20 deploys killed with SIGKILL at a seeded
//!   moment, each followed by a deploy that must succeed. `fault_converge_orphans` (shown
//!   beside it) counts what `cairn state orphans` lists after those runs.
//!
//! Runs the `aws-stack` program built beside this binary, as a user would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cairn_tests::moto::{Fault, Faults, FaultyProxy, Moto};

const LATENCY: Duration = Duration::from_millis(20);

const STACK: &str = r#"regions = ["us-east-1", "eu-west-1"]
vpcs = 2
subnets_per_vpc = 12
security_groups_per_vpc = 20
launch_templates = 10
auto_scaling_groups = 10
topics = 24
log_groups = 40
"#;
const RESOURCES: usize = 300;

/// The stack of the fault runs: every kind above, 8 per region.
const FAULTS: &str = r#"regions = ["us-east-1", "eu-west-1"]
vpcs = 1
subnets_per_vpc = 2
security_groups_per_vpc = 1
launch_templates = 1
auto_scaling_groups = 1
topics = 1
log_groups = 1

[state]
backend = "file://.cairn-faults"
"#;

/// The creates whose answer a seeded run loses.
const CREATES: &[&str] = &[
    "Action=CreateVpc",
    "Action=CreateSubnet",
    "Action=CreateSecurityGroup",
    "Action=CreateLaunchTemplate",
    "Action=CreateAutoScalingGroup",
    "Action=CreateTopic",
    "Logs_20140328.CreateLogGroup",
];

struct Project {
    dir: PathBuf,
    program: PathBuf,
}

impl Project {
    fn command(&self, endpoint: &str, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        c.args(args)
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
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn output(&self, endpoint: &str, args: &[&str]) -> Output {
        self.command(endpoint, args).output().expect("run aws-stack")
    }

    /// Runs the program with `args`, which must succeed; the time it took.
    fn run(&self, endpoint: &str, args: &[&str]) -> Duration {
        let start = Instant::now();
        let out = self.output(endpoint, args);
        let took = start.elapsed();
        assert!(
            out.status.success(),
            "aws-stack {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        took
    }

    fn spawn(&self, endpoint: &str, args: &[&str]) -> Child {
        self.command(endpoint, args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn aws-stack")
    }
}

fn program() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    let program = exe.parent().unwrap_or(Path::new(".")).join("aws-stack");
    assert!(program.exists(), "{} is missing: build cairn-tests' binaries", program.display());
    program
}

/// A seeded pseudo-random sequence (an LCG: the same seed, the same runs).
struct Seeded(u64);

impl Seeded {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below.max(1)
    }
}

/// Resources made twice: per region, those of the Tagging API's list that share a
/// `cairn:urn` tag with another (Auto Scaling groups, which it does not list, have unique
/// names).
async fn duplicates(moto: &Moto) -> usize {
    let mut dups = 0;
    for region in ["us-east-1", "eu-west-1"] {
        let mut by_urn: BTreeMap<String, usize> = BTreeMap::new();
        let mut token = None;
        loop {
            let page = moto.tagging(region).get_resources().set_pagination_token(token).send().await.expect("tags");
            for m in page.resource_tag_mapping_list() {
                // A group's instances carry its tags (there are none here: min 0).
                if let Some(urn) = m.tags().iter().find(|t| t.key() == "cairn:urn") {
                    *by_urn.entry(urn.value().to_string()).or_default() += 1;
                }
            }
            match page.pagination_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        dups += by_urn.values().map(|n| n - 1).sum::<usize>();
    }
    dups
}

/// How many resources `state orphans` lists (exit 2 with a list, 0 without).
fn orphans(p: &Project, moto: &Moto) -> usize {
    let out = p.output(&moto.endpoint(), &["state", "orphans", "--env", "faults", "--json"]);
    match out.status.code() {
        Some(0) => 0,
        Some(2) => serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).map_or(1, |v| v.len()),
        _ => panic!("state orphans failed: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

fn main() {
    let moto = Moto::start();
    let proxy = FaultyProxy::with_latency(moto.port, LATENCY);
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into())).expect("tempdir");
    std::fs::create_dir_all(dir.path().join("config")).expect("mkdir");
    std::fs::write(dir.path().join("config/dev.toml"), STACK).expect("config");
    std::fs::write(dir.path().join("config/faults.toml"), FAULTS).expect("config");
    let p = Project { dir: dir.path().to_path_buf(), program: program() };

    // Deploy straight to moto (setup, not measured).
    p.run(&moto.endpoint(), &["deploy", "--env", "dev", "--yes"]);

    let before = proxy.requests();
    let serial = p.run(&proxy.endpoint(), &["refresh", "--env", "dev", "--dry-run", "--parallel", "1"]);
    let per_refresh = proxy.requests() - before;
    let parallel =
        (0..3).map(|_| p.run(&proxy.endpoint(), &["refresh", "--env", "dev", "--dry-run"])).min().expect("three runs");
    println!("BENCH refresh_api_calls_per_resource {:.2}", per_refresh as f64 / RESOURCES as f64);
    println!("BENCH refresh_serial_s {:.2}", serial.as_secs_f64());
    println!("BENCH refresh_parallel_s {:.2}", parallel.as_secs_f64());
    println!("BENCH refresh_speedup {:.1}", serial.as_secs_f64() / parallel.as_secs_f64());

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut seeds = Seeded(std::env::var("BENCH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(16));
    let (mut dups, mut left) = (0, 0);
    let fresh = || {
        moto.reset();
        let _ = std::fs::remove_dir_all(dir.path().join(".cairn-faults"));
    };
    // A clean deploy's length through the latency proxy: the window the kills fall in.
    fresh();
    let window = p.run(&proxy.endpoint(), &["deploy", "--env", "faults", "--yes"]);
    for _ in 0..10 {
        fresh();
        let op = CREATES[seeds.next(CREATES.len() as u64) as usize];
        let lossy = FaultyProxy::start_with(moto.port, Faults::on(op, 1, Fault::LoseAnswer));
        let _ = p.output(&lossy.endpoint(), &["deploy", "--env", "faults", "--yes"]);
        p.run(&moto.endpoint(), &["deploy", "--env", "faults", "--yes"]);
        dups += runtime.block_on(duplicates(&moto));
        left += orphans(&p, &moto);
    }
    for _ in 0..20 {
        fresh();
        let at = Duration::from_millis(seeds.next(window.as_millis() as u64));
        let mut child = p.spawn(&proxy.endpoint(), &["deploy", "--env", "faults", "--yes"]);
        std::thread::sleep(at);
        let _ = child.kill();
        let _ = child.wait();
        p.run(&moto.endpoint(), &["deploy", "--env", "faults", "--yes"]);
        dups += runtime.block_on(duplicates(&moto));
        left += orphans(&p, &moto);
    }
    println!("BENCH fault_converge_duplicates {dups}");
    println!("BENCH fault_converge_orphans {left}");
}
