//! Conversion between [`Duration`] and the Go duration strings Consul uses
//! (`"15s"`, `"250ms"`, `"1m30s"`).

use std::time::Duration;

/// Formats a duration as a Go duration string that Consul accepts.
///
/// Uses the largest unit that represents the value exactly, so
/// `Duration::ZERO` is `"0s"`, 15 s is `"15s"` and 1.5 s is `"1500ms"`.
pub(crate) fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        "0s".to_owned()
    } else if nanos.is_multiple_of(1_000_000_000) {
        format!("{}s", d.as_secs())
    } else if nanos.is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else if nanos.is_multiple_of(1_000) {
        format!("{}us", d.as_micros())
    } else {
        format!("{nanos}ns")
    }
}

/// Parses a Go duration string such as `"15s"`, `"1m30s"` or `"1.5h"`.
///
/// Returns `None` for malformed or negative input. An empty string is not a
/// duration; callers decide what it means.
pub(crate) fn parse(s: &str) -> Option<Duration> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1e0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * nanos_per_unit;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return None;
    }
    Some(Duration::from_nanos(total.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_exact_unit() {
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_secs(15)), "15s");
        assert_eq!(format(Duration::from_secs(600)), "600s");
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format(Duration::from_micros(7)), "7us");
        assert_eq!(format(Duration::from_nanos(3)), "3ns");
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("0"), Some(Duration::ZERO));
        assert_eq!(parse("0s"), Some(Duration::ZERO));
        assert_eq!(parse("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse("10µs"), Some(Duration::from_micros(10)));
        assert_eq!(parse(""), None);
        assert_eq!(parse("-1s"), None);
        assert_eq!(parse("15"), None);
        assert_eq!(parse("s"), None);
        assert_eq!(parse("3x"), None);
    }

    #[test]
    fn round_trips() {
        for d in [Duration::ZERO, Duration::from_secs(86400), Duration::from_millis(1), Duration::from_millis(10_250)] {
            assert_eq!(parse(&format(d)), Some(d));
        }
    }
}
