//! The sandbox clock: real time plus an offset tests move forward, so soak times and
//! intervals elapse without sleeping. Every timestamp the sandbox writes comes from here.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn new(offset_ms: i64) -> Clock {
        Clock {
            offset_ms: AtomicI64::new(offset_ms),
        }
    }

    pub fn now(&self) -> jiff::Timestamp {
        let offset = jiff::SignedDuration::from_millis(self.offset_ms.load(Ordering::Relaxed));
        jiff::Timestamp::now()
            .checked_add(offset)
            .unwrap_or_else(|_| jiff::Timestamp::now())
    }

    /// `now()` at second precision, as `metav1.Time` serialises (`2025-01-02T03:04:05Z`).
    pub fn stamp(&self) -> String {
        jiff::Timestamp::from_second(self.now().as_second())
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    /// `now()` as an HTTP `Date` header value (`Sun, 06 Nov 1994 08:49:37 GMT`). Every
    /// response carries it, so clients that read the cluster's time see the moved clock.
    pub fn http_date(&self) -> String {
        jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&self.now())
            .unwrap_or_default()
    }

    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }
}

/// Parses a Go-style duration (`90s`, `1h30m`, `250ms`, `2d`); a bare number means seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|e| format!("invalid duration {s:?}: {e}"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let unit_len = rest[num_len..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len() - num_len);
        let (num, unit) = (&rest[..num_len], &rest[num_len..num_len + unit_len]);
        let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
        let scale = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(format!("invalid duration {s:?}: unknown unit {unit:?}")),
        };
        total += n * scale;
        rest = &rest[num_len + unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        assert!(parse_duration("5 minutes").is_err());
    }

    #[test]
    fn http_dates_follow_the_moved_clock() {
        let c = Clock::default();
        c.advance(Duration::from_secs(86400 * 365));
        let date = c.http_date();
        assert!(date.ends_with(" GMT"), "{date}");
        let parsed = jiff::fmt::rfc2822::DateTimeParser::new()
            .parse_timestamp(&date)
            .unwrap();
        let ahead = parsed.duration_since(jiff::Timestamp::now());
        assert!(
            ahead >= jiff::SignedDuration::from_secs(86400 * 364),
            "{date}"
        );
    }

    #[test]
    fn advancing_moves_now_forward() {
        let c = Clock::default();
        let before = c.now();
        c.advance(Duration::from_secs(3600));
        let delta = c.now().duration_since(before);
        assert!(delta >= jiff::SignedDuration::from_secs(3600), "{delta:?}");
        assert_eq!(c.offset_ms(), 3_600_000);
    }
}
