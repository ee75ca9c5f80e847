//! Go's duration syntax (`time.ParseDuration`, `Duration.String()`), which Kargo and the
//! provider's own settings use: parsing, formatting and equality by length of time.

use std::time::Duration;

use crate::plugin::Value;
use crate::plugin::plan::values_equal;

const NANOS_PER_UNIT: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),  // micro sign
    ("\u{3bc}s", 1_000), // Greek small letter mu
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a duration as Go's `time.ParseDuration` does ("1h30m", "1.5s", "300ms").
/// Negative durations, and durations beyond Go's range (about 292 years), are `None`.
///
/// ```
/// use std::time::Duration;
/// use terraform_provider_kargo::duration::parse_go_duration;
/// assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
/// assert_eq!(parse_go_duration("5 minutes"), None);
/// ```
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut rest = s;
    let negative = rest.starts_with('-');
    if let Some(r) = rest.strip_prefix(['-', '+']) {
        rest = r;
    }
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after_int) = rest.split_at(int_len);
        let (frac_part, after_num) = match after_int.strip_prefix('.') {
            Some(r) => {
                let n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
                r.split_at(n)
            }
            None => ("", after_int),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = after_num
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after_num.len());
        let (unit, after_unit) = after_num.split_at(unit_len);
        let scale = NANOS_PER_UNIT
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, n)| *n)?;
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        let mut nanos = whole.checked_mul(scale)?;
        // Fractional digits beyond nanosecond precision cannot change the result.
        let mut frac_scale = scale;
        for d in frac_part.chars().take(30) {
            frac_scale /= 10;
            if frac_scale == 0 {
                break;
            }
            nanos += u128::from(d.to_digit(10)?) * frac_scale;
        }
        total = total.checked_add(nanos)?;
        if total > i64::MAX as u128 {
            return None;
        }
        rest = after_unit;
    }
    if negative && total != 0 {
        return None;
    }
    let secs = u64::try_from(total / 1_000_000_000).ok()?;
    Some(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// Formats a duration as Go's `Duration.String()`: "1h0m0s", "5m0s", "1.5s", "300ms", "0s".
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}\u{b5}s", with_fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", with_fraction(nanos, 1_000_000));
    }
    let secs = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let seconds = with_fraction((secs % 60) * 1_000_000_000 + sub, 1_000_000_000);
    let minutes = (secs / 60) % 60;
    let hours = secs / 3600;
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `value / unit` in decimal, without trailing zeros in the fraction.
fn with_fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Semantic equality for duration attributes: durations compare by length of time
/// ("5m" == "5m0s" == "300s"); strings that do not parse compare as strings.
pub fn duration_eq(a: &Value, b: &Value) -> bool {
    match (a.as_str(), b.as_str()) {
        (Some(x), Some(y)) => match (parse_go_duration(x), parse_go_duration(y)) {
            (Some(dx), Some(dy)) => dx == dy,
            _ => x == y,
        },
        _ => values_equal(a, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_like_time_parse_duration() {
        let d = |secs: u64, nanos: u32| Some(Duration::new(secs, nanos));
        assert_eq!(parse_go_duration("5m"), d(300, 0));
        assert_eq!(parse_go_duration("5m0s"), d(300, 0));
        assert_eq!(parse_go_duration("300s"), d(300, 0));
        assert_eq!(parse_go_duration("1h30m"), d(5400, 0));
        assert_eq!(parse_go_duration("90m"), d(5400, 0));
        assert_eq!(parse_go_duration("1.5h"), d(5400, 0));
        assert_eq!(parse_go_duration("1.5s"), d(1, 500_000_000));
        assert_eq!(parse_go_duration(".5s"), d(0, 500_000_000));
        assert_eq!(parse_go_duration("1.s"), d(1, 0));
        assert_eq!(parse_go_duration("2h45m10.25s"), d(9910, 250_000_000));
        assert_eq!(parse_go_duration("300ms"), d(0, 300_000_000));
        assert_eq!(parse_go_duration("10us"), d(0, 10_000));
        assert_eq!(parse_go_duration("10µs"), d(0, 10_000));
        assert_eq!(parse_go_duration("10μs"), d(0, 10_000));
        assert_eq!(parse_go_duration("7ns"), d(0, 7));
        assert_eq!(parse_go_duration("+1m"), d(60, 0));
        assert_eq!(parse_go_duration("0"), d(0, 0));
        assert_eq!(parse_go_duration("-0s"), d(0, 0));
        for bad in [
            "",
            "5",
            "1d",
            "m",
            ".s",
            "5 m",
            "5 minutes",
            "5x",
            "-5m",
            "-1s",
            "1h-5m",
            "9999999999h",
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn go_durations_format_like_duration_string() {
        let f = |secs: u64, nanos: u32| format_go_duration(Duration::new(secs, nanos));
        assert_eq!(f(0, 0), "0s");
        assert_eq!(f(300, 0), "5m0s");
        assert_eq!(f(3600, 0), "1h0m0s");
        assert_eq!(f(5400, 0), "1h30m0s");
        assert_eq!(f(1, 500_000_000), "1.5s");
        assert_eq!(f(61, 250_000_000), "1m1.25s");
        assert_eq!(f(0, 300_000_000), "300ms");
        assert_eq!(f(0, 1_500_000), "1.5ms");
        assert_eq!(f(0, 10_000), "10µs");
        assert_eq!(f(0, 7), "7ns");
        assert_eq!(f(90_061, 1), "25h1m1.000000001s");
        for text in ["5m0s", "1h0m0s", "1.5s", "2h45m10.25s", "300ms"] {
            let parsed = parse_go_duration(text).unwrap();
            assert_eq!(parse_go_duration(&format_go_duration(parsed)), Some(parsed));
        }
    }

    #[test]
    fn durations_compare_by_length_of_time() {
        let s = Value::string;
        assert!(duration_eq(&s("5m"), &s("5m0s")));
        assert!(duration_eq(&s("1h30m"), &s("90m")));
        assert!(!duration_eq(&s("5m"), &s("5m1s")));
        assert!(duration_eq(&s("soon"), &s("soon")));
        assert!(!duration_eq(&s("soon"), &s("5m")));
        assert!(duration_eq(&Value::Null, &Value::Null));
        assert!(!duration_eq(&Value::Null, &s("5m")));
    }
}
