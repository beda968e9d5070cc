//! Request observation as one tower layer: a request id (taken from a sane `X-Request-Id` or
//! made up), a tracing span carrying it (and the container id, once known), a log line per
//! request, and the HTTP metrics by route and status.
//!
//! Also [`BufferedStdout`], the log writer: one `write` to stdout per line would cost more than
//! the rest of a cheap request put together, so lines are gathered in memory and written in
//! batches.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::AppState;

/// The request's id, in the request's extensions for handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn new_request_id() -> String {
    // Unique enough per process and across restarts: start time plus a counter.
    static EPOCH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let epoch =
        *EPOCH.get_or_init(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0));
    format!("{:x}-{:06x}", epoch & 0xffff_ffff_ffff, COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn accepted_request_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)))
        .then(|| s.to_string())
}

/// Tower layer (via `axum::middleware::from_fn_with_state`).
pub async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request.headers().get("x-request-id").and_then(accepted_request_id).unwrap_or_else(new_request_id);
    // Matched route templates only: raw paths would make unbounded label values.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        route = route_name(&route),
        container_id = tracing::field::Empty,
    );
    let id_header = HeaderValue::from_str(&id).ok();
    request.extensions_mut().insert(RequestId(id));
    // Everything below runs inside the span, including the drop of a request whose client
    // went away (`Instrumented` enters its span when it drops the future it wraps).
    async move {
        // Counts and logs requests whose client went away (the future is dropped mid-way) as 499.
        let mut unfinished = Unfinished { state: Some(&state), route: &route, started };
        let mut response = next.run(request).await;
        unfinished.state = None;
        let status = response.status();
        let elapsed = started.elapsed();
        tracing::info!(status = status.as_u16(), latency_ms = elapsed.as_secs_f64() * 1000.0, "request finished");
        state.metrics().http_request(route_name(&route), status.as_u16(), elapsed);
        if let Some(value) = id_header {
            response.headers_mut().insert("x-request-id", value);
        }
        if let Some(hsts) = state.hsts() {
            response.headers_mut().insert(axum::http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        response
    }
    .instrument(span)
    .await
}

fn route_name(route: &Option<MatchedPath>) -> &str {
    route.as_ref().map_or("unmatched", MatchedPath::as_str)
}

struct Unfinished<'a> {
    state: Option<&'a AppState>,
    route: &'a Option<MatchedPath>,
    started: Instant,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        let Some(state) = self.state.take() else {
            return;
        };
        let elapsed = self.started.elapsed();
        tracing::warn!(
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request dropped before it finished (client went away)"
        );
        state.metrics().http_request(route_name(self.route), 499, elapsed);
    }
}

/// A log writer for `tracing_subscriber::fmt`: each line is appended to a buffer in memory,
/// and a background thread writes the buffer to stdout every `interval` (and a writer does it
/// itself once the buffer holds 1 MiB, so a slow stdout slows logging down rather than letting
/// memory grow). Lines stay whole and in order. Call [`BufferedStdout::flush_now`] before the
/// process exits; at most `interval` of lines is lost if it is killed.
#[derive(Debug, Clone)]
pub struct BufferedStdout {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    buffer: Mutex<Vec<u8>>,
    /// Held while writing to stdout, so batches go out in the order they were taken.
    output: Mutex<()>,
}

/// Flush in place beyond this many buffered bytes.
const LOG_BUFFER_LIMIT: usize = 1 << 20;

impl Shared {
    fn flush(&self) {
        let _output = self.output.lock().unwrap_or_else(|e| e.into_inner());
        let batch = std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|e| e.into_inner()));
        if !batch.is_empty() {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(&batch);
            let _ = stdout.flush();
        }
    }
}

impl BufferedStdout {
    /// Starts the flushing thread.
    pub fn new(interval: Duration) -> BufferedStdout {
        let shared = Arc::new(Shared::default());
        let flusher = Arc::downgrade(&shared);
        let _ = std::thread::Builder::new().name("log-flush".into()).spawn(move || loop {
            std::thread::sleep(interval);
            match flusher.upgrade() {
                Some(shared) => shared.flush(),
                None => break,
            }
        });
        BufferedStdout { shared }
    }

    /// Writes out everything buffered so far.
    pub fn flush_now(&self) {
        self.shared.flush();
    }
}

/// One event's writer.
#[derive(Debug)]
pub struct LineWriter<'a> {
    shared: &'a Shared,
}

impl std::io::Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut buffer = self.shared.buffer.lock().unwrap_or_else(|e| e.into_inner());
            buffer.extend_from_slice(bytes);
            buffer.len() >= LOG_BUFFER_LIMIT
        };
        if full {
            self.shared.flush();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BufferedStdout {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { shared: &self.shared }
    }
}

/// A `tracing_subscriber` event format writing the same JSON lines as its `.json()` format
/// with `with_current_span(true)` and `with_span_list(false)`:
///
/// ```json
/// {"timestamp":"2024-05-01T12:00:00.123456Z","level":"INFO","fields":{"message":"task finished","exit_code":0},"target":"runner::task","span":{"request_id":"...","name":"request"}}
/// ```
///
/// but several times cheaper: the current span's fields, kept by `JsonFields` as JSON text,
/// are spliced in as they are instead of being parsed and serialized again for every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        write_rfc3339(&mut writer, SystemTime::now())?;
        write!(writer, "\",\"level\":\"{}\",\"fields\":{{", meta.level())?;
        let mut visitor = JsonVisitor { out: &mut writer, first: true, result: Ok(()) };
        event.record(&mut visitor);
        visitor.result?;
        writer.write_str("},\"target\":")?;
        write_json_str(&mut writer, meta.target())?;
        let span = event.parent().and_then(|id| ctx.span(id)).or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            writer.write_str(",\"span\":{")?;
            let extensions = span.extensions();
            let fields = extensions
                .get::<tracing_subscriber::fmt::FormattedFields<N>>()
                .map(|f| f.fields.trim())
                .and_then(|f| f.strip_prefix('{'))
                .and_then(|f| f.strip_suffix('}'))
                .unwrap_or("");
            if !fields.is_empty() {
                writer.write_str(fields)?;
                writer.write_char(',')?;
            }
            writer.write_str("\"name\":")?;
            write_json_str(&mut writer, span.name())?;
            writer.write_char('}')?;
        }
        writer.write_str("}\n")
    }
}

struct JsonVisitor<'a, W: std::fmt::Write> {
    out: &'a mut W,
    first: bool,
    result: std::fmt::Result,
}

impl<W: std::fmt::Write> JsonVisitor<'_, W> {
    fn key(&mut self, field: &tracing::field::Field) -> std::fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.out.write_char(',')?;
        }
        // tracing's raw identifiers (`r#type`) are named without the prefix.
        write_json_str(self.out, field.name().trim_start_matches("r#"))?;
        self.out.write_char(':')
    }

    fn value(&mut self, field: &tracing::field::Field, write: impl FnOnce(&mut W) -> std::fmt::Result) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| write(self.out));
        }
    }
}

impl<W: std::fmt::Write> tracing::field::Visit for JsonVisitor<'_, W> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.value(field, |out| write_json_str(out, value));
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.value(field, |out| write!(out, "{value}"));
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.value(field, |out| write!(out, "{value}"));
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.value(field, |out| write!(out, "{value}"));
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        if value.is_finite() {
            self.value(field, |out| write!(out, "{value}"));
        } else {
            self.value(field, |out| write!(out, "\"{value}\""));
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        self.value(field, |out| write_json_str(out, &text));
    }
}

/// A JSON string literal.
fn write_json_str(out: &mut impl std::fmt::Write, text: &str) -> std::fmt::Result {
    out.write_char('"')?;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        let escaped = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if (c as u32) < 0x20 => "",
            _ => continue,
        };
        out.write_str(&text[start..i])?;
        if escaped.is_empty() {
            write!(out, "\\u{:04x}", c as u32)?;
        } else {
            out.write_str(escaped)?;
        }
        start = i + c.len_utf8();
    }
    out.write_str(&text[start..])?;
    out.write_char('"')
}

/// `2024-05-01T12:00:00.123456Z`.
fn write_rfc3339(out: &mut impl std::fmt::Write, t: SystemTime) -> std::fmt::Result {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (date, time) = crate::status::civil(since.as_secs() as i64);
    write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        date.0,
        date.1,
        date.2,
        time.0,
        time.1,
        time.2,
        since.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        write_json_str(&mut out, "a\"b\\c\nd\u{1}é").unwrap();
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}é");
        let mut out = String::new();
        write_rfc3339(&mut out, UNIX_EPOCH + Duration::from_micros(1_709_210_096_000_042)).unwrap();
        assert_eq!(out, "2024-02-29T12:34:56.000042Z");
    }

    #[test]
    fn log_lines_have_the_json_layout() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let log = BufferedStdout::new(Duration::from_secs(3600));
        let captured = log.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                .event_format(JsonLines)
                .with_writer(log),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", request_id = "r-1", container_id = tracing::field::Empty);
            let _entered = span.enter();
            span.record("container_id", "c0ffee");
            tracing::info!(exit_code = 3, ok = true, ratio = 0.5, text = "say \"hi\"", "task finished");
            drop(_entered);
            tracing::warn!("outside");
        });
        let text = String::from_utf8(std::mem::take(&mut *captured.shared.buffer.lock().unwrap())).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["fields"]["message"], "task finished");
        assert_eq!(lines[0]["fields"]["exit_code"], 3);
        assert_eq!(lines[0]["fields"]["ok"], true);
        assert_eq!(lines[0]["fields"]["ratio"], 0.5);
        assert_eq!(lines[0]["fields"]["text"], "say \"hi\"");
        assert_eq!(lines[0]["target"], module_path!());
        assert_eq!(lines[0]["span"]["request_id"], "r-1");
        assert_eq!(lines[0]["span"]["container_id"], "c0ffee");
        assert_eq!(lines[0]["span"]["name"], "request");
        assert!(lines[0]["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[1]["fields"]["message"], "outside");
        assert!(lines[1].get("span").is_none());
    }

    #[test]
    fn request_ids_are_unique_and_client_ids_are_checked() {
        assert_ne!(new_request_id(), new_request_id());
        assert_eq!(accepted_request_id(&HeaderValue::from_static("abc-123")), Some("abc-123".into()));
        assert_eq!(accepted_request_id(&HeaderValue::from_static("a b")), None);
    }
}
