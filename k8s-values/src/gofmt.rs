//! Go's `fmt` and `strconv` renderings of strings and numbers, so that messages read
//! as the Go API server prints them: `%q` ([`quote`]), `%v` of a `float64`
//! ([`format_float_g`]), `strconv.FormatFloat(f, 'f', -1, 64)` ([`format_float_f`]) and
//! `%v` of a JSON number as the server holds it ([`number`]).
//!
//! Digits come from Rust's shortest round-trip formatting, which yields the same
//! digits as Go's shortest formatting (both print the shortest decimal that reads back
//! as the same `f64`); only the layout around them is Go's.

use std::fmt::Write as _;

use serde_json::Number;

/// Go's `strconv.Quote` (what `%q` prints for a string): double quotes, Go's escapes
/// (`\a \b \f \n \r \t \v`, `\xNN` for other ASCII controls, `\uNNNN`/`\UNNNNNNNN` for
/// non-printable runes), printable Unicode kept as it is.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `strconv.IsPrint` for non-ASCII characters: control,
/// format, separator (other than U+0020) and private-use code points are escaped.
fn is_go_printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    !(c.is_control()
        || (0x80..=0xa0).contains(&u)
        || u == 0xad
        || (0x2000..=0x200f).contains(&u)
        || (0x2028..=0x202e).contains(&u)
        || (0x205f..=0x206f).contains(&u)
        || u == 0x3000
        || u == 0xfeff
        || (0xe000..=0xf8ff).contains(&u)
        || (0xfff9..=0xfffb).contains(&u)
        || u >= 0xf0000)
}

/// Go's `fmt.Sprintf("%v", f)` for a `float64`, which is
/// `strconv.FormatFloat(f, 'g', -1, 64)`: shortest digits, exponent form when the
/// decimal exponent is below -4 or at least 6 (`1e-05` and `1e+06`, but `0.0001` and
/// `100000`), the exponent signed and at least two digits wide.
pub fn format_float_g(f: f64) -> String {
    format_finite_or(f, |digits, exp| {
        if (-4..6).contains(&exp) {
            fixed(digits, exp)
        } else {
            exponent(digits, exp, 2)
        }
    })
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: shortest digits, never an exponent.
pub fn format_float_f(f: f64) -> String {
    format_finite_or(f, fixed)
}

/// `%v` of a JSON number as the Go API server holds it after decoding: an `int64`
/// when it fits, a `float64` otherwise.
pub fn number(n: &Number) -> String {
    match n.as_i64() {
        Some(i) => i.to_string(),
        None => format_float_g(n.as_f64().unwrap_or(0.0)),
    }
}

/// Go's names for the non-finite floats, signed zero, and otherwise `layout` of the
/// shortest digits of `|f|` and the decimal exponent of its first digit, signed.
fn format_finite_or(f: f64, layout: impl FnOnce(&str, i32) -> String) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    signed(f, layout)
}

/// `-0` or `0` for a zero, otherwise `layout` of the shortest digits of `|f|`, with a
/// leading `-` for a negative `f`. `f` is finite.
pub(crate) fn signed(f: f64, layout: impl FnOnce(&str, i32) -> String) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    let (digits, exp) = shortest_digits(f);
    let body = layout(&digits, exp);
    if f < 0.0 { format!("-{body}") } else { body }
}

/// The shortest round-trip decimal digits of a finite, non-zero `|f|` and the decimal
/// exponent of the first digit (`d.ddd × 10^exp`).
fn shortest_digits(f: f64) -> (String, i32) {
    let s = format!("{:e}", f.abs());
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exp.parse().unwrap_or(0))
}

/// `digits` × 10^(`exp` - len + 1) written without an exponent (`%f` layout).
#[allow(
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    reason = "an f64 has at most 17 significant digits and a decimal exponent within ±324, and the signs are checked"
)]
pub(crate) fn fixed(digits: &str, exp: i32) -> String {
    let n = digits.len() as i32;
    if exp < 0 {
        let zeros = (-exp - 1) as usize;
        format!("0.{}{}", "0".repeat(zeros), digits)
    } else if exp + 1 >= n {
        format!("{}{}", digits, "0".repeat((exp + 1 - n) as usize))
    } else {
        let (int, frac) = digits.split_at((exp + 1) as usize);
        format!("{int}.{frac}")
    }
}

/// `d.ddde±XX` (`%e` layout), the exponent zero-padded to `min_exp_digits`.
pub(crate) fn exponent(digits: &str, exp: i32, min_exp_digits: usize) -> String {
    let (first, rest) = digits.split_at(1);
    let mut out = first.to_owned();
    if !rest.is_empty() {
        out.push('.');
        out.push_str(rest);
    }
    let sign = if exp < 0 { '-' } else { '+' };
    let _ = write!(out, "e{sign}{:0min_exp_digits$}", exp.unsigned_abs());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_as_percent_v() {
        assert_eq!(format_float_g(10.0), "10");
        assert_eq!(format_float_g(1.0), "1");
        assert_eq!(format_float_g(1.5), "1.5");
        assert_eq!(format_float_g(-2.25), "-2.25");
        assert_eq!(format_float_g(100_000.0), "100000");
        assert_eq!(format_float_g(123_456.0), "123456");
        assert_eq!(format_float_g(1_000_000.0), "1e+06");
        assert_eq!(format_float_g(123_456_789.0), "1.23456789e+08");
        assert_eq!(format_float_g(-2.25e10), "-2.25e+10");
        assert_eq!(format_float_g(1e21), "1e+21");
        assert_eq!(format_float_g(1e100), "1e+100");
        assert_eq!(format_float_g(0.0001), "0.0001");
        assert_eq!(format_float_g(0.00001), "1e-05");
        assert_eq!(format_float_g(0.000_012), "1.2e-05");
        assert_eq!(format_float_g(5e-324), "5e-324");
        assert_eq!(format_float_g(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_float_g(0.0), "0");
        assert_eq!(format_float_g(-0.0), "-0");
        assert_eq!(format_float_g(f64::NAN), "NaN");
        assert_eq!(format_float_g(f64::INFINITY), "+Inf");
        assert_eq!(format_float_g(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn floats_without_exponent() {
        assert_eq!(format_float_f(1e21), "1000000000000000000000");
        assert_eq!(format_float_f(1.5), "1.5");
        assert_eq!(format_float_f(0.00001), "0.00001");
        assert_eq!(format_float_f(-0.0), "-0");
        assert_eq!(format_float_f(f64::INFINITY), "+Inf");
    }

    #[test]
    fn numbers_as_the_server_holds_them() {
        let n = |s: &str| serde_json::from_str::<Number>(s).unwrap();
        assert_eq!(number(&n("1")), "1");
        assert_eq!(number(&n("-7")), "-7");
        assert_eq!(number(&n("9223372036854775807")), "9223372036854775807");
        // Beyond int64 the server has a float64.
        assert_eq!(number(&n("18446744073709551615")), "1.8446744073709552e+19");
        assert_eq!(number(&n("1.5")), "1.5");
        assert_eq!(number(&n("2.0")), "2");
        assert_eq!(number(&n("1e21")), "1e+21");
    }

    #[test]
    fn quoting_as_percent_q() {
        assert_eq!(quote("a\"b\n"), r#""a\"b\n""#);
        assert_eq!(quote("back\\slash"), r#""back\\slash""#);
        assert_eq!(quote("\u{1}\u{7f}"), r#""\x01\x7f""#);
        assert_eq!(quote("\u{7}\u{8}\u{c}\u{b}\t\r"), r#""\a\b\f\v\t\r""#);
        assert_eq!(quote("héllo <&> 日本"), "\"héllo <&> 日本\"");
        assert_eq!(quote("\u{a0}\u{200b}\u{2028}"), r#""\u00a0\u200b\u2028""#);
        assert_eq!(quote("\u{feff}"), r#""\ufeff""#);
        assert_eq!(quote("\u{f0000}"), r#""\U000f0000""#);
        assert_eq!(quote("😀"), "\"😀\"");
    }
}
