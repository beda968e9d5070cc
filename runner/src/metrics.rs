//! A small Prometheus registry: counters, gauges and histograms with labels, rendered in the
//! text exposition format. Hand-rolled because the runner needs a dozen series, not a framework.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Seconds; covers a fast HTTP request through a long task.
const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Debug)]
enum Kind {
    Counter,
    Histogram,
}

#[derive(Debug)]
struct Family {
    help: &'static str,
    kind: Kind,
    counters: BTreeMap<Labels, f64>,
    histograms: BTreeMap<Labels, Histogram>,
}

/// HTTP metrics of one route, updated without locks: they change on every request.
#[derive(Debug)]
struct RouteStats {
    /// Requests by status code (index = status, 100..=599).
    statuses: Vec<AtomicU64>,
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl RouteStats {
    fn record(&self, status: u16, elapsed: Duration) {
        if let Some(counter) = self.statuses.get(usize::from(status)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            // Cumulative at render time: only the first matching bucket counts here.
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(elapsed.as_nanos().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
    }

    fn new() -> RouteStats {
        RouteStats {
            statuses: (0..600).map(|_| AtomicU64::new(0)).collect(),
            buckets: LATENCY_BUCKETS.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

/// All metrics of one runner. Cheap to update from any task.
#[derive(Debug)]
pub struct Metrics {
    families: Mutex<BTreeMap<&'static str, Family>>,
    /// `runner_http_requests_total` and `runner_http_request_duration_seconds`, by route.
    http: RwLock<HashMap<Arc<str>, Arc<RouteStats>>>,
    /// Gauges kept as atomics: they change on every task.
    tasks_running: AtomicI64,
    tasks_queued: AtomicI64,
    containers_live: AtomicI64,
    leaked_total: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            families: Mutex::new(BTreeMap::new()),
            http: RwLock::new(HashMap::new()),
            tasks_running: AtomicI64::new(0),
            tasks_queued: AtomicI64::new(0),
            containers_live: AtomicI64::new(0),
            leaked_total: AtomicU64::new(0),
        };
        let declare = |name, kind, help| {
            m.families
                .lock()
                .expect("metrics lock")
                .insert(name, Family { help, kind, counters: BTreeMap::new(), histograms: BTreeMap::new() });
        };
        declare("runner_tasks_total", Kind::Counter, "Finished tasks by outcome (exited, timed_out, error).");
        declare(
            "runner_image_pulls_total",
            Kind::Counter,
            "Image pulls started, by result (ok, not_found, unauthorized, error).",
        );
        declare("runner_image_cache_hits_total", Kind::Counter, "Tasks whose image was already present.");
        declare(
            "runner_image_pull_joins_total",
            Kind::Counter,
            "Tasks that waited on a pull another task had already started.",
        );
        declare(
            "runner_container_operation_duration_seconds",
            Kind::Histogram,
            "Docker container operation latency (create, start, wait, remove).",
        );
        declare(
            "runner_container_remove_failures_total",
            Kind::Counter,
            "Container removals that failed (the reaper retries them).",
        );
        declare(
            "runner_ecr_token_requests_total",
            Kind::Counter,
            "ECR authorization tokens by result (cached, fetched, error).",
        );
        declare("runner_rate_limited_total", Kind::Counter, "Requests refused by the per-client rate limit.");
        declare(
            "runner_overloaded_total",
            Kind::Counter,
            "Tasks refused because the queue was full or the wait too long.",
        );
        m
    }

    fn with_family(&self, name: &'static str, f: impl FnOnce(&mut Family)) {
        let mut families = self.families.lock().expect("metrics lock");
        if let Some(family) = families.get_mut(name) {
            f(family);
        } else {
            debug_assert!(false, "undeclared metric {name}");
        }
    }

    /// One HTTP request on `route` (a route template) answered with `status` (499: the client
    /// went away) after `elapsed`.
    pub fn http_request(&self, route: &str, status: u16, elapsed: Duration) {
        {
            let http = self.http.read().expect("http metrics lock");
            if let Some(stats) = http.get(route) {
                stats.record(status, elapsed);
                return;
            }
        }
        let stats = self
            .http
            .write()
            .expect("http metrics lock")
            .entry(Arc::from(route))
            .or_insert_with(|| Arc::new(RouteStats::new()))
            .clone();
        stats.record(status, elapsed);
    }

    fn http_requests(&self, route: &str, status: &str) -> f64 {
        let http = self.http.read().expect("http metrics lock");
        let (Some(stats), Ok(status)) = (http.get(route), status.parse::<usize>()) else {
            return 0.0;
        };
        stats.statuses.get(status).map_or(0.0, |c| c.load(Ordering::Relaxed) as f64)
    }

    fn render_http(&self, out: &mut String) {
        let http = self.http.read().expect("http metrics lock");
        let mut routes: Vec<(&Arc<str>, &Arc<RouteStats>)> = http.iter().collect();
        routes.sort_by(|a, b| a.0.cmp(b.0));
        let name = "runner_http_requests_total";
        let _ = writeln!(out, "# HELP {name} HTTP requests by route and status.\n# TYPE {name} counter");
        for (route, stats) in &routes {
            for (status, count) in stats.statuses.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(out, "{name}{{route=\"{}\",status=\"{status}\"}} {count}", escape(route));
                }
            }
        }
        let name = "runner_http_request_duration_seconds";
        let _ = writeln!(out, "# HELP {name} HTTP request latency by route.\n# TYPE {name} histogram");
        for (route, stats) in &routes {
            let route = escape(route);
            let mut cumulative = 0;
            for (bound, count) in LATENCY_BUCKETS.iter().zip(&stats.buckets) {
                cumulative += count.load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}");
            }
            let count = stats.count.load(Ordering::Relaxed);
            let sum = stats.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "{name}_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "{name}_sum{{route=\"{route}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{route=\"{route}\"}} {count}");
        }
    }

    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1.0)
    }

    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let labels = own(labels);
        self.with_family(name, |family| {
            *family.counters.entry(labels).or_default() += value;
        });
    }

    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], value: Duration) {
        let labels = own(labels);
        let seconds = value.as_secs_f64();
        self.with_family(name, |family| {
            let h = family.histograms.entry(labels).or_default();
            if h.buckets.is_empty() {
                h.buckets = vec![0; LATENCY_BUCKETS.len()];
            }
            for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.buckets[i] += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        });
    }

    pub fn tasks_running(&self, delta: i64) {
        self.tasks_running.fetch_add(delta, Ordering::Relaxed);
    }

    pub fn tasks_queued(&self, delta: i64) {
        self.tasks_queued.fetch_add(delta, Ordering::Relaxed);
    }

    pub fn containers_live(&self, delta: i64) {
        self.containers_live.fetch_add(delta, Ordering::Relaxed);
    }

    pub fn leaked(&self, count: u64) {
        self.leaked_total.fetch_add(count, Ordering::Relaxed);
    }

    pub fn running(&self) -> i64 {
        self.tasks_running.load(Ordering::Relaxed)
    }

    pub fn queued(&self) -> i64 {
        self.tasks_queued.load(Ordering::Relaxed)
    }

    pub fn leaked_total(&self) -> u64 {
        self.leaked_total.load(Ordering::Relaxed)
    }

    /// A counter's current value, for tests and the health endpoint.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> f64 {
        if name == "runner_http_requests_total" {
            let get = |key| labels.iter().find(|(k, _)| *k == key).map_or("", |(_, v)| *v);
            return self.http_requests(get("route"), get("status"));
        }
        let labels = own(labels);
        let families = self.families.lock().expect("metrics lock");
        families.get(name).and_then(|f| f.counters.get(&labels).copied()).unwrap_or(0.0)
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let gauges = [
            (
                "runner_tasks_running",
                "Tasks whose container is running or being prepared.",
                self.tasks_running.load(Ordering::Relaxed),
                "gauge",
            ),
            (
                "runner_tasks_queued",
                "Tasks waiting for a free slot (queue depth).",
                self.tasks_queued.load(Ordering::Relaxed),
                "gauge",
            ),
            (
                "runner_containers_live",
                "Containers created and not yet removed.",
                self.containers_live.load(Ordering::Relaxed),
                "gauge",
            ),
            (
                "runner_containers_leaked_total",
                "Leftover labelled containers removed by the reaper.",
                self.leaked_total.load(Ordering::Relaxed) as i64,
                "counter",
            ),
        ];
        for (name, help, value, kind) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        self.render_http(&mut out);
        let families = self.families.lock().expect("metrics lock");
        for (name, family) in families.iter() {
            let kind = match family.kind {
                Kind::Counter => "counter",
                Kind::Histogram => "histogram",
            };
            let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} {kind}", family.help);
            for (labels, value) in &family.counters {
                let _ = writeln!(out, "{name}{} {value}", format_labels(labels, None));
            }
            for (labels, h) in &family.histograms {
                for (bound, count) in LATENCY_BUCKETS.iter().zip(&h.buckets) {
                    let le = bound.to_string();
                    let _ = writeln!(out, "{name}_bucket{} {count}", format_labels(labels, Some(&le)));
                }
                let _ = writeln!(out, "{name}_bucket{} {}", format_labels(labels, Some("+Inf")), h.count);
                let _ = writeln!(out, "{name}_sum{} {}", format_labels(labels, None), h.sum);
                let _ = writeln!(out, "{name}_count{} {}", format_labels(labels, None), h.count);
            }
        }
        out
    }
}

fn own(labels: &[(&'static str, &str)]) -> Labels {
    labels.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

fn format_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::new();
        m.http_request("/v1.1/tasks", 201, Duration::from_millis(20));
        m.inc("runner_tasks_total", &[("outcome", "exited")]);
        m.observe("runner_container_operation_duration_seconds", &[("operation", "create")], Duration::from_millis(20));
        m.tasks_running(2);
        let text = m.render();
        assert!(text.contains("runner_http_requests_total{route=\"/v1.1/tasks\",status=\"201\"} 1"));
        assert!(text.contains("runner_http_request_duration_seconds_bucket{route=\"/v1.1/tasks\",le=\"0.025\"} 1"));
        assert!(text.contains("runner_http_request_duration_seconds_bucket{route=\"/v1.1/tasks\",le=\"0.01\"} 0"));
        assert!(text.contains("runner_http_request_duration_seconds_bucket{route=\"/v1.1/tasks\",le=\"+Inf\"} 1"));
        assert!(text.contains("runner_http_request_duration_seconds_count{route=\"/v1.1/tasks\"} 1"));
        assert!(text.contains("runner_tasks_total{outcome=\"exited\"} 1"));
        assert!(
            text.contains("runner_container_operation_duration_seconds_bucket{operation=\"create\",le=\"0.025\"} 1")
        );
        assert!(text.contains("runner_tasks_running 2"));
        assert_eq!(m.counter("runner_http_requests_total", &[("route", "/v1.1/tasks"), ("status", "201")]), 1.0);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }
}
