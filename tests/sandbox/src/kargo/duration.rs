//! Go `time.Duration` parsing and formatting, because Kargo's webhooks re-marshal duration
//! fields through `metav1.Duration` ("10m" is stored as "10m0s").

/// Parses a Go duration string (`1h30m`, `1.5s`, `300ms`, `-2m`) into nanoseconds.
pub fn parse(s: &str) -> Option<i128> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after_dot[..frac_len];
            rest = &after_dot[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1i128,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        let whole: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        let mut value = whole.checked_mul(unit)?;
        if !frac_part.is_empty() {
            // Scale the fraction exactly: digits / 10^len of one unit.
            let digits = &frac_part[..frac_part.len().min(30)];
            let numerator: i128 = digits.parse().ok()?;
            let denominator = 10i128.checked_pow(u32::try_from(digits.len()).ok()?)?;
            value = value.checked_add(numerator.checked_mul(unit)? / denominator)?;
        }
        total = total.checked_add(value)?;
    }
    if total > i128::from(i64::MAX) {
        return None;
    }
    Some(if neg { -total } else { total })
}

/// Formats nanoseconds like Go's `Duration.String()`: `1h0m0s`, `10m0s`, `1.5s`, `250ms`, `0s`.
pub fn format(nanos: i128) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (unit, scale) = if u < 1_000 {
            ("ns", 1u128)
        } else if u < 1_000_000 {
            ("\u{b5}s", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fraction(u, scale));
        out.push_str(unit);
    } else {
        let secs_total = u / 1_000_000_000;
        let sub = u % 1_000_000_000;
        let hours = secs_total / 3600;
        let minutes = (secs_total % 3600) / 60;
        let seconds = secs_total % 60;
        if hours > 0 {
            out.push_str(&format!("{hours}h"));
        }
        if hours > 0 || minutes > 0 {
            out.push_str(&format!("{minutes}m"));
        }
        out.push_str(&fraction(seconds * 1_000_000_000 + sub, 1_000_000_000));
        out.push('s');
    }
    if neg { format!("-{out}") } else { out }
}

/// `value / scale` with the fractional digits Go keeps (trailing zeros trimmed).
fn fraction(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let rem = value % scale;
    if rem == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{rem:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Re-marshals a duration string the way a `metav1.Duration` round trip does; strings Go
/// cannot parse are left alone (schema validation reports them).
pub fn normalize(s: &str) -> Option<String> {
    parse(s).map(format)
}

/// The error Go's `time.ParseDuration` returns for `s`, which `metav1.Duration` passes on
/// when a webhook decodes an object: `None` when `s` parses.
pub fn parse_error(s: &str) -> Option<String> {
    if parse(s).is_some() {
        return None;
    }
    let quoted = format!("{s:?}");
    let invalid = format!("time: invalid duration {quoted}");
    let mut rest = s.strip_prefix(['-', '+']).unwrap_or(s);
    if rest.is_empty() {
        return Some(invalid);
    }
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Some(invalid);
        }
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut digits = int_len;
        rest = &rest[int_len..];
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            digits += frac_len;
            rest = &after_dot[frac_len..];
        }
        if digits == 0 {
            return Some(invalid);
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        if unit.is_empty() {
            return Some(format!("time: missing unit in duration {quoted}"));
        }
        if !matches!(
            unit,
            "ns" | "us" | "\u{b5}s" | "\u{3bc}s" | "ms" | "s" | "m" | "h"
        ) {
            return Some(format!("time: unknown unit {unit:?} in duration {quoted}"));
        }
        rest = &rest[unit_len..];
    }
    // Everything was well formed: the value overflowed.
    Some(invalid)
}

#[cfg(test)]
mod tests {
    /// Go's `time.ParseDuration` messages (src/time/format.go).
    #[test]
    fn parse_errors_read_like_go() {
        use super::parse_error;
        assert_eq!(parse_error("10m"), None);
        assert_eq!(
            parse_error("soon").unwrap(),
            "time: invalid duration \"soon\""
        );
        assert_eq!(parse_error("").unwrap(), "time: invalid duration \"\"");
        assert_eq!(
            parse_error("10").unwrap(),
            "time: missing unit in duration \"10\""
        );
        assert_eq!(
            parse_error("3days").unwrap(),
            "time: unknown unit \"days\" in duration \"3days\""
        );
        assert_eq!(
            parse_error("99999999999999h").unwrap(),
            "time: invalid duration \"99999999999999h\""
        );
    }

    use super::*;

    #[test]
    fn formats_like_go() {
        let s = 1_000_000_000i128;
        assert_eq!(format(0), "0s");
        assert_eq!(format(10 * 60 * s), "10m0s");
        assert_eq!(format(3600 * s), "1h0m0s");
        assert_eq!(format(90 * 60 * s), "1h30m0s");
        assert_eq!(format(61 * s), "1m1s");
        assert_eq!(format(s + s / 2), "1.5s");
        assert_eq!(format(250_000_000), "250ms");
        assert_eq!(format(1_500), "1.5\u{b5}s");
        assert_eq!(format(42), "42ns");
        assert_eq!(format(-5 * s), "-5s");
        assert_eq!(format(26 * 3600 * s), "26h0m0s");
    }

    #[test]
    fn parses_like_go() {
        let s = 1_000_000_000i128;
        assert_eq!(parse("10m"), Some(600 * s));
        assert_eq!(parse("1h30m"), Some(5400 * s));
        assert_eq!(parse("1.5h"), Some(5400 * s));
        assert_eq!(parse("0"), Some(0));
        assert_eq!(parse("300ms"), Some(300_000_000));
        assert_eq!(parse("-2m"), Some(-120 * s));
        assert_eq!(parse(".5s"), Some(s / 2));
        assert_eq!(parse(""), None);
        assert_eq!(parse("10"), None);
        assert_eq!(parse("5d"), None);
        assert_eq!(parse("1.s"), Some(s));
    }

    #[test]
    fn normalizes_round_trip() {
        assert_eq!(normalize("10m").as_deref(), Some("10m0s"));
        assert_eq!(normalize("5m0s").as_deref(), Some("5m0s"));
        assert_eq!(normalize("90s").as_deref(), Some("1m30s"));
        assert_eq!(normalize("2h").as_deref(), Some("2h0m0s"));
        assert_eq!(normalize("bogus"), None);
    }
}
