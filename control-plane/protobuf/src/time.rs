//! `metav1.Time`/`MicroTime` as RFC 3339 and `metav1.Duration` as a Go
//! duration string, both ways.

use std::fmt::Write as _;

/// Seconds of 0001-01-01T00:00:00Z: Go's zero `time.Time`.
pub(crate) const GO_ZERO_SECONDS: i64 = -62_135_596_800;
/// Seconds of 9999-12-31T23:59:59Z.
const MAX_SECONDS: i64 = 253_402_300_799;

#[allow(
    clippy::cast_sign_loss,
    clippy::many_single_char_names,
    reason = "the civil-from-days algorithm: day and month are 1..=31 and 1..=12 by construction"
)]
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[allow(
    clippy::many_single_char_names,
    reason = "calendar arithmetic in its usual letters"
)]
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2024-01-02T03:04:05Z`, or with `micros` `2024-01-02T03:04:05.000006Z`.
/// `None` when the instant is outside years 1..=9999.
#[allow(
    clippy::many_single_char_names,
    reason = "date fields in their usual letters"
)]
pub(crate) fn format_rfc3339(seconds: i64, micros: Option<u32>) -> Option<String> {
    if !(GO_ZERO_SECONDS..=MAX_SECONDS).contains(&seconds) {
        return None;
    }
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    Some(match micros {
        None => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
        Some(us) => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}Z"),
    })
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses RFC 3339 (`Z` or `±hh:mm` offset, optional fraction) into
/// seconds since the epoch and nanoseconds.
#[allow(
    clippy::many_single_char_names,
    reason = "date fields in their usual letters"
)]
pub(crate) fn parse_rfc3339(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let y = digits(s.get(0..4)?)?;
    let mo = u32::try_from(digits(s.get(5..7)?)?).ok()?;
    let d = u32::try_from(digits(s.get(8..10)?)?).ok()?;
    let h = digits(s.get(11..13)?)?;
    let mi = digits(s.get(14..16)?)?;
    let sec = digits(s.get(17..19)?)?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let mut scaled = 0u32;
        for (i, c) in frac.bytes().take(n).enumerate() {
            if i < 9 {
                scaled = scaled * 10 + u32::from(c - b'0');
            }
        }
        for _ in n..9 {
            scaled *= 10;
        }
        nanos = scaled;
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || rb[3] != b':' {
                return None;
            }
            let sign = match rb[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh = digits(rest.get(1..3)?)?;
            let om = digits(rest.get(4..6)?)?;
            sign * (oh * 3600 + om * 60)
        }
    };
    let seconds = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some((seconds, nanos))
}

/// Go's `time.Duration.String()`: `0s`, `1.5s`, `1h0m0s`, `300ms`, `2µs`.
pub(crate) fn format_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if u < 1_000_000_000 {
        let (unit, scale) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("\u{b5}s", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        push_fraction(&mut out, u, scale);
        out.push_str(unit);
        return out;
    }
    let secs = u / 1_000_000_000;
    let frac = u % 1_000_000_000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    push_fraction(&mut out, s * 1_000_000_000 + frac, 1_000_000_000);
    out.push('s');
    out
}

/// `value / scale` with the fraction's trailing zeros dropped.
fn push_fraction(out: &mut String, value: u64, scale: u64) {
    out.push_str(&(value / scale).to_string());
    let frac = value % scale;
    if frac != 0 {
        let width = scale.ilog10() as usize;
        let s = format!("{frac:0width$}");
        out.push('.');
        out.push_str(s.trim_end_matches('0'));
    }
}

/// Parses a Go duration string (`1h2m3.5s`, `-300ms`, `0`) into nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
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
        if let Some(r) = rest.strip_prefix('.') {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &r[..n];
            rest = &r[n..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit: i128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        let int: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        let mut value = int.checked_mul(unit)?;
        let mut scale = unit;
        for c in frac_part.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            value += i128::from(c - b'0') * scale;
        }
        total = total.checked_add(value)?;
        if total > i128::from(i64::MAX) + 1 {
            return None;
        }
    }
    let total = if neg { -total } else { total };
    i64::try_from(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (1_704_164_645, "2024-01-02T03:04:05Z"),
            (GO_ZERO_SECONDS, "0001-01-01T00:00:00Z"),
            (MAX_SECONDS, "9999-12-31T23:59:59Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
        ] {
            assert_eq!(format_rfc3339(secs, None).as_deref(), Some(text));
            assert_eq!(parse_rfc3339(text), Some((secs, 0)));
        }
        assert_eq!(
            format_rfc3339(1, Some(7)).as_deref(),
            Some("1970-01-01T00:00:01.000007Z")
        );
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:01.000007Z"),
            Some((1, 7000))
        );
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some((0, 0)));
        assert_eq!(format_rfc3339(MAX_SECONDS + 1, None), None);
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("garbage"), None);
    }

    #[test]
    fn durations_match_go() {
        for (nanos, text) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5\u{b5}s"),
            (300_000_000, "300ms"),
            (1_500_000_000, "1.5s"),
            (60_000_000_000, "1m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (5_430_500_000_000, "1h30m30.5s"),
            (-90_000_000_000, "-1m30s"),
        ] {
            assert_eq!(format_duration(nanos), text);
            assert_eq!(parse_duration(text), Some(nanos), "{text}");
        }
        assert_eq!(format_duration(i64::MIN), "-2562047h47m16.854775808s");
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("99999999999h"), None);
    }
}
