//! `just bench engine`: the engine's performance figures, one `BENCH <name> <value>` line each.
//!
//! - `plan_10k_ms`: time to plan 10,000 resources (1% changed) against their state: the
//!   fastest of several runs, since noise on a shared machine only ever adds time.
//! - `plan_scaling_cold_100k_over_10k`: the fastest plan of 100,000 resources divided by the
//!   fastest of 10,000, each started with nothing of its data in the CPU caches (a 1 GiB
//!   buffer is written first), so that the figure measures how the planner scales rather
//!   than how much of the smaller stack the host's caches hold.
//! - `plan_scaling_100k_over_10k` (information, no target): the same with warm caches, the
//!   two sizes taking turns so that noise hits both alike. It mostly measures the host's
//!   cache against the two working sets (see ARCHITECTURE.md).
//! - `plan_100k_peak_rss_mib`: peak resident memory of a process that builds and plans
//!   100,000 resources (measured in a child process, from `VmHWM`).
//! - `apply_speedup`: 1,000 independent resources with 20 ms provider latency, serial time
//!   divided by `--parallel 32` time, through the file state backend.
//! - `file_state_write_amplification`: bytes written to the state directory while applying
//!   2,000 resources one step at a time, divided by the final state size.
//! - `parent_update_replacements`: a tree of 1,000 resources (each parent has 10 dependents,
//!   and every dependent uses its parent's `token`, an output kept through updates, in `key`,
//!   a property that forces replacement); a tag changes on every parent. The figure is the
//!   number of replacements the plan shows plus the number the apply performs.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn::apply::Engine;
use cairn::plan::Op;
use cairn::provider::Registry;
use cairn::stack::{Desired, DesiredResource};
use cairn::state::file::FileBackend;
use cairn::state::{LockInfo, ResourceState, StackState, StateBackend};
use cairn::value::OutputRef;
use cairn::{Input, Stack, Urn};
use cairn_tests::{Thing, ThingProvider};
use serde_json::json;

fn urn(i: usize) -> Urn {
    Urn::from(format!("bench/group-{}/test:Thing/r{i}", i % 50))
}

/// `n` resources, each but the first depending on resource `i / 10` through an output, and
/// their state as of the last deploy with 1% of the values changed since.
fn graph(n: usize) -> (Desired, StackState) {
    let mut desired = Desired { stack: "bench".into(), ..Desired::default() };
    let mut state = StackState::empty("bench");
    for i in 0..n {
        let parent = (i > 0).then_some(i / 10);
        let mut inputs = json!({"key": "k", "value": format!("value-{i}")});
        let mut deployed = inputs.clone();
        let mut dependencies = BTreeSet::new();
        if let Some(p) = parent {
            inputs["parent"] = OutputRef { urn: urn(p), path: "token".into() }.to_value();
            deployed["parent"] = json!(format!("tok-{p}"));
            dependencies.insert(urn(p));
        }
        if i % 100 == 7 {
            inputs["value"] = json!(format!("changed-{i}"));
        }
        desired.resources.insert(
            urn(i),
            DesiredResource {
                urn: urn(i),
                type_token: "test:Thing".into(),
                inputs,
                dependencies: dependencies.clone(),
                protect: false,
                retain_on_delete: false,
                ignore_changes: vec![],
                aliases: vec![],
                delete_before_replace: false,
                provider: None,
                replace_on_change: vec!["key".into()],
                secret_outputs: vec![],
                updatable_outputs: vec![],
                import: None,
            },
        );
        state.resources.insert(
            urn(i),
            ResourceState {
                urn: urn(i),
                type_token: "test:Thing".into(),
                id: format!("id-{i}"),
                inputs: deployed,
                outputs: json!({"token": format!("tok-{i}")}),
                dependencies,
                protect: false,
                retain_on_delete: false,
                delete_before_replace: false,
                provider: None,
            },
        );
    }
    (desired, state)
}

fn fastest(v: Vec<f64>) -> f64 {
    v.into_iter().fold(f64::INFINITY, f64::min)
}

/// One timed plan of `graph`, in milliseconds.
fn plan_once((desired, state): &(Desired, StackState)) -> f64 {
    let start = Instant::now();
    let plan = cairn::plan::plan(desired, state).expect("plan");
    let elapsed = start.elapsed().as_secs_f64() * 1000.0;
    assert!(plan.has_changes());
    elapsed
}

/// The fastest plan of 10,000 and of 100,000 resources. The two sizes take turns, so that a
/// noisy stretch of a shared machine (which slows the memory-bound large plan most) hits both
/// alike instead of skewing their ratio.
fn plan_ms(small: &(Desired, StackState), large: &(Desired, StackState), runs: usize) -> (f64, f64) {
    // One warm-up run each.
    plan_once(small);
    plan_once(large);
    let (mut t_small, mut t_large) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        for _ in 0..3 {
            t_small.push(plan_once(small));
        }
        t_large.push(plan_once(large));
    }
    (fastest(t_small), fastest(t_large))
}

/// The fastest plan of 10,000 and of 100,000 resources, each started with nothing of its
/// data in the CPU caches (a 1 GiB buffer is written first). Shown beside the figures: it
/// separates how the plan scales from how much of a 10,000-resource stack this machine's
/// caches hold.
fn plan_ms_cold(small: &(Desired, StackState), large: &(Desired, StackState), runs: usize) -> (f64, f64) {
    let mut sweep = vec![0u8; 1 << 30];
    let mut cold = |g: &(Desired, StackState)| {
        for byte in sweep.iter_mut().step_by(64) {
            *byte = byte.wrapping_add(1);
        }
        std::hint::black_box(&sweep);
        plan_once(g)
    };
    let (mut t_small, mut t_large) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        t_small.push(cold(small));
        t_large.push(cold(large));
    }
    (fastest(t_small), fastest(t_large))
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib / 1024.0
}

fn things(n: usize) -> Desired {
    let mut stack = Stack::new("bench", "apply");
    for i in 0..n {
        stack.add(&format!("t{i}"), Thing { key: None, value: format!("value-{i}").into() });
    }
    stack.finish().expect("bench stack")
}

/// Applies `desired` from scratch; returns (seconds, bytes written, final state size).
async fn apply(desired: &Desired, parallel: usize, latency: Duration) -> (f64, u64, u64) {
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into())).expect("tempdir");
    let backend = FileBackend::new(dir.path().join("state"), &desired.stack);
    let provider = ThingProvider::new(dir.path().join("world"), latency, BTreeSet::new());
    let engine = Engine {
        registry: Registry::new().with(provider),
        stack: desired.stack.clone(),
        secrets: None,
        parallel,
        events: Arc::new(|_| {}),
    };
    let mut session = backend.lock(LockInfo::new("bench"), None).await.expect("lock");
    let prior = session.load().await.expect("load");
    let plan = cairn::plan::plan(desired, &prior).expect("plan");
    let (_tx, cancel) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let outcome = engine.apply(session.as_ref(), &plan, desired, &prior, cancel).await;
    let elapsed = start.elapsed().as_secs_f64();
    assert!(outcome.succeeded(), "{outcome:?}");
    session.release().await.expect("release");
    let size = std::fs::metadata(backend.dir().join("state.json")).expect("state.json").len();
    (elapsed, backend.bytes_written(), size)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--plan-rss") {
        let n: usize = args[2].parse().expect("n");
        let (desired, state) = graph(n);
        // `--plan-rss N K`: plan K times (for profiling); the default is once.
        let times: usize = args.get(3).and_then(|k| k.parse().ok()).unwrap_or(1);
        for _ in 0..times {
            let plan = cairn::plan::plan(&desired, &state).expect("plan");
            assert!(plan.has_changes());
        }
        println!("{:.1}", peak_rss_mib());
        return;
    }

    // `BENCH_ONLY=plan` or `BENCH_ONLY=apply` runs one half.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "plan" {
        bench_plan();
    }
    if only.is_empty() || only == "apply" {
        bench_apply();
    }
    if only.is_empty() || only == "exact" {
        bench_exact();
    }
}

/// The tree of `parent_update_replacements`: resource `i`'s parent is `(i - 1) / 10`, so
/// each parent has 10 dependents; `tag` is every parent's value.
fn tree(n: usize, tag: &str) -> Desired {
    let mut stack = Stack::new("bench", "tree");
    let mut tokens: Vec<cairn::Output<String>> = Vec::with_capacity(n);
    for i in 0..n {
        let is_parent = 10 * i + 1 < n;
        let key = match i {
            0 => Input::Value("root".to_string()),
            _ => Input::Output(tokens[(i - 1) / 10].clone()),
        };
        let value = if is_parent { format!("tag={tag}") } else { format!("leaf-{i}") };
        let thing = stack.add(&format!("r{i}"), Thing { key: Some(key), value: value.into() });
        tokens.push(thing.token.clone());
    }
    stack.finish().expect("bench stack")
}

fn bench_exact() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let dir =
            tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into())).expect("tempdir");
        let backend = FileBackend::new(dir.path().join("state"), "bench-tree");
        let engine = Engine {
            registry: Registry::new().with(ThingProvider::new(dir.path().join("world"), Duration::ZERO, BTreeSet::new())),
            stack: "bench-tree".into(),
            secrets: None,
            parallel: 16,
            events: Arc::new(|_| {}),
        };
        let replaced = |op: &Op| matches!(op, Op::Replace | Op::ReplaceDeleteFirst);
        let mut counts = Vec::new();
        for tag in ["a", "b"] {
            let desired = tree(1000, tag);
            let mut session = backend.lock(LockInfo::new("bench"), None).await.expect("lock");
            let prior = session.load().await.expect("load");
            let plan = cairn::plan::plan(&desired, &prior).expect("plan");
            let (_tx, cancel) = tokio::sync::watch::channel(false);
            let outcome = engine.apply(session.as_ref(), &plan, &desired, &prior, cancel).await;
            assert!(outcome.succeeded(), "{outcome:?}");
            session.release().await.expect("release");
            let shown = plan.steps.iter().filter(|s| replaced(&s.op)).count();
            let performed = outcome.done.iter().filter(|(_, op)| replaced(op)).count();
            counts.push((plan.count(Op::Update), shown, performed));
        }
        let (updates, shown, performed) = counts[1];
        eprintln!("a tag changed on the tree's parents: {updates} updates, {shown} replacements planned, {performed} performed");
        assert_eq!(updates, 100, "every parent is updated");
        println!("BENCH parent_update_replacements {}", shown + performed);
    });
}

fn bench_plan() {
    let (small, large) = (graph(10_000), graph(100_000));
    let (t10k, t100k) = plan_ms(&small, &large, 15);
    println!("BENCH plan_10k_ms {t10k:.1}");
    eprintln!("with warm caches: 10k {t10k:.1} ms, 100k {t100k:.1} ms");
    println!("BENCH plan_scaling_100k_over_10k {:.2}", t100k / t10k);
    let (c10k, c100k) = plan_ms_cold(&small, &large, 8);
    drop((small, large));
    eprintln!("with cold caches: 10k {c10k:.1} ms, 100k {c100k:.1} ms");
    println!("BENCH plan_scaling_cold_100k_over_10k {:.2}", c100k / c10k);
    let out = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["--plan-rss", "100000"])
        .output()
        .expect("run child");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    println!("BENCH plan_100k_peak_rss_mib {}", String::from_utf8_lossy(&out.stdout).trim());
}

fn bench_apply() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let desired = things(1000);
        let (serial, _, _) = apply(&desired, 1, Duration::from_millis(20)).await;
        let (parallel, _, _) = apply(&desired, 32, Duration::from_millis(20)).await;
        eprintln!("apply of 1000 x 20 ms: serial {serial:.2} s, --parallel 32 {parallel:.2} s");
        println!("BENCH apply_speedup {:.1}", serial / parallel);

        let desired = things(2000);
        let (_, written, size) = apply(&desired, 1, Duration::ZERO).await;
        eprintln!("2000 resources step by step: {written} bytes written, final state {size} bytes");
        println!("BENCH file_state_write_amplification {:.2}", written as f64 / size as f64);
    });
}
