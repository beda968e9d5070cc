//! What the runner is doing, for people: the tasks running now and the recent failures
//! ([`Activity`]), and the HTML status page (`GET /status`) that shows them with the version,
//! uptime and the Docker engine's version.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Failures kept for the status page.
pub const RECENT_FAILURES: usize = 50;

/// A task in flight.
#[derive(Debug, Clone)]
pub struct RunningTask {
    pub request_id: Option<String>,
    pub image: String,
    pub cmd: String,
    pub started: Instant,
}

/// A task that failed (an error answer after it was admitted, or a timeout).
#[derive(Debug, Clone)]
pub struct Failure {
    pub at: SystemTime,
    pub request_id: Option<String>,
    pub image: String,
    /// The error `code`, or `timed_out`.
    pub code: String,
    pub message: String,
}

/// Tasks in flight and recent failures.
#[derive(Debug, Default)]
pub struct Activity {
    next: AtomicU64,
    running: Mutex<BTreeMap<u64, RunningTask>>,
    failures: Mutex<VecDeque<Failure>>,
}

/// Keeps a task in [`Activity::running`] while it lives.
#[derive(Debug)]
pub struct Running<'a> {
    activity: &'a Activity,
    key: u64,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.activity.running.lock().expect("activity lock").remove(&self.key);
    }
}

impl Activity {
    pub fn start(&self, task: RunningTask) -> Running<'_> {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.running.lock().expect("activity lock").insert(key, task);
        Running { activity: self, key }
    }

    pub fn running(&self) -> Vec<RunningTask> {
        self.running.lock().expect("activity lock").values().cloned().collect()
    }

    pub fn record_failure(&self, failure: Failure) {
        let mut failures = self.failures.lock().expect("activity lock");
        if failures.len() == RECENT_FAILURES {
            failures.pop_front();
        }
        failures.push_back(failure);
    }

    /// Newest first.
    pub fn failures(&self) -> Vec<Failure> {
        self.failures.lock().expect("activity lock").iter().rev().cloned().collect()
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `1d 02h 03m 04s`, leaving out leading zero units.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d {hours:02}h {minutes:02}m {seconds:02}s")
    } else if hours > 0 {
        format!("{hours}h {minutes:02}m {seconds:02}s")
    } else if minutes > 0 {
        format!("{minutes}m {seconds:02}s")
    } else {
        format!("{}.{:01}s", seconds, d.subsec_millis() / 100)
    }
}

/// `2024-05-01 12:34:56 UTC`.
pub fn utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let ((year, month, day), (hour, minute, second)) = civil(secs);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
}

/// Unix seconds to ((year, month, day), (hour, minute, second)), UTC.
pub fn civil(secs: i64) -> ((i64, i64, i64), (i64, i64, i64)) {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    ((year, month, day), (rem / 3600, rem / 60 % 60, rem % 60))
}

/// The Docker engine's version, or why it is unknown.
async fn docker_engine(state: &AppState) -> String {
    match tokio::time::timeout(Duration::from_secs(2), state.docker().version()).await {
        Ok(Ok(v)) => format!(
            "{} (API {}, {}/{})",
            v.version.as_deref().unwrap_or("?"),
            v.api_version.as_deref().unwrap_or("?"),
            v.os.as_deref().unwrap_or("?"),
            v.arch.as_deref().unwrap_or("?"),
        ),
        Ok(Err(err)) => format!("unreachable: {err}"),
        Err(_) => "unreachable: no answer within 2 s".to_string(),
    }
}

/// `GET /status`: the HTML status page.
pub async fn page(State(state): State<AppState>) -> Response {
    let html = render(&state, &docker_engine(&state).await);
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], html).into_response()
}

fn row(out: &mut String, name: &str, value: &str) {
    let _ = writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", escape(name), escape(value));
}

/// The page's HTML, given the Docker engine line.
pub fn render(state: &AppState, docker_engine: &str) -> String {
    let config = state.config();
    let metrics = state.metrics();
    let mut out = String::new();
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <meta http-equiv=\"refresh\" content=\"10\">\
         <title>cairn runner status</title><style>\
         body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
         table{border-collapse:collapse;margin-bottom:1.5em}\
         th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}\
         th{background:#f4f4f4}td.msg{font-family:monospace;white-space:pre-wrap;max-width:60em}\
         .red{color:#b00}.green{color:#070}</style></head><body>\n",
    );
    let green = !state.is_shutting_down() && !docker_engine.starts_with("unreachable");
    let _ = writeln!(
        out,
        "<h1>cairn runner <span class=\"{}\" id=\"overall\">{}</span></h1>",
        if green { "green" } else { "red" },
        if state.is_shutting_down() {
            "shutting down"
        } else if green {
            "ok"
        } else {
            "degraded"
        }
    );
    out.push_str("<h2>Service</h2>\n<table id=\"service\">\n");
    row(&mut out, "Version", env!("CARGO_PKG_VERSION"));
    row(&mut out, "API version", crate::api::API_VERSION);
    row(&mut out, "Uptime", &human_duration(state.uptime()));
    row(&mut out, "Instance", &config.server.instance);
    row(&mut out, "Docker engine", docker_engine);
    row(&mut out, "Docker API (negotiated)", &state.docker().client_version().to_string());
    row(&mut out, "TLS", if state.tls().is_some() { "on" } else { "off" });
    row(&mut out, "Authentication", if state.auth().enabled() { "on" } else { "off" });
    out.push_str("</table>\n<h2>Tasks</h2>\n<table id=\"tasks\">\n");
    row(&mut out, "Running", &metrics.running().to_string());
    row(&mut out, "Queued", &state.gate().queued().to_string());
    row(
        &mut out,
        "Slots",
        &format!(
            "{} free of {} (queue up to {})",
            state.gate().available(),
            config.limits.max_concurrent_tasks,
            config.limits.max_queued_tasks
        ),
    );
    for outcome in ["exited", "timed_out", "error"] {
        let count = metrics.counter("runner_tasks_total", &[("outcome", outcome)]);
        row(&mut out, &format!("Finished: {outcome}"), &count.to_string());
    }
    row(&mut out, "Live containers", &state.containers().live_count().to_string());
    row(&mut out, "Pending removals", &state.containers().pending_removals().to_string());
    row(&mut out, "Leftovers removed by the reaper", &metrics.leaked_total().to_string());
    out.push_str("</table>\n");

    let running = state.activity().running();
    let _ = writeln!(out, "<h2>Running tasks ({})</h2>", running.len());
    if running.is_empty() {
        out.push_str("<p id=\"running\">None.</p>\n");
    } else {
        out.push_str(
            "<table id=\"running\"><tr><th>Request</th><th>Image</th><th>Command</th><th>Running for</th></tr>\n",
        );
        for task in &running {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"msg\">{}</td><td>{}</td></tr>",
                escape(task.request_id.as_deref().unwrap_or("-")),
                escape(&task.image),
                escape(&task.cmd),
                human_duration(task.started.elapsed())
            );
        }
        out.push_str("</table>\n");
    }

    let failures = state.activity().failures();
    let _ = writeln!(out, "<h2>Recent failures ({}, newest first, at most {RECENT_FAILURES})</h2>", failures.len());
    if failures.is_empty() {
        out.push_str("<p id=\"failures\">None.</p>\n");
    } else {
        out.push_str(
            "<table id=\"failures\"><tr><th>When</th><th>Request</th><th>Image</th><th>Code</th><th>Message</th></tr>\n",
        );
        for failure in &failures {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"msg\">{}</td></tr>",
                utc(failure.at),
                escape(failure.request_id.as_deref().unwrap_or("-")),
                escape(&failure.image),
                escape(&failure.code),
                escape(&failure.message)
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("<p>Machine-readable: <a href=\"/v1.1/_health\">/v1.1/_health</a>, <a href=\"/metrics\">/metrics</a>.</p>\n</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(escape("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn formats_durations_and_times() {
        assert_eq!(human_duration(Duration::from_millis(4_250)), "4.2s");
        assert_eq!(human_duration(Duration::from_secs(125)), "2m 05s");
        assert_eq!(human_duration(Duration::from_secs(3 * 3600 + 7)), "3h 00m 07s");
        assert_eq!(human_duration(Duration::from_secs(2 * 86_400 + 3661)), "2d 01h 01m 01s");
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(UNIX_EPOCH + Duration::from_secs(1_709_210_096)), "2024-02-29 12:34:56 UTC");
    }

    #[test]
    fn keeps_the_newest_failures() {
        let activity = Activity::default();
        for i in 0..(RECENT_FAILURES + 5) {
            activity.record_failure(Failure {
                at: SystemTime::now(),
                request_id: None,
                image: format!("img{i}"),
                code: "docker_error".into(),
                message: String::new(),
            });
        }
        let failures = activity.failures();
        assert_eq!(failures.len(), RECENT_FAILURES);
        assert_eq!(failures[0].image, format!("img{}", RECENT_FAILURES + 4));
        let running = activity.start(RunningTask {
            request_id: Some("r1".into()),
            image: "i".into(),
            cmd: "c".into(),
            started: Instant::now(),
        });
        assert_eq!(activity.running().len(), 1);
        drop(running);
        assert!(activity.running().is_empty());
    }
}
