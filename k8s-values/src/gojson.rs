//! JSON as Go's `encoding/json` writes it (`json.Marshal` of a decoded value), for the
//! places where the bytes must match what the Go API server or `kubectl` produce: the
//! `last-applied-configuration` annotation, keys in managed fields, values quoted in
//! error messages.
//!
//! What differs from `serde_json::to_string`:
//! - object keys are sorted (byte order), as Go sorts a `map[string]any`;
//! - strings escape `<`, `>` and `&` (`\u003c`, `\u003e`, `\u0026`) and U+2028/U+2029,
//!   and spell the C0 controls `\b \f \n \r \t` or `\u00XX` (lower-case hex);
//! - a number is an `int64` when it fits and a `float64` otherwise, as the API server
//!   holds decoded JSON, and a float prints as Go's `floatEncoder` does: shortest
//!   digits, no exponent from 1e-6 up to 1e21 (`100`, not `100.0`), otherwise `1e+21`
//!   and `1e-7` (exponent signed, not padded).

use std::fmt::Write as _;

use serde_json::{Number, Value};

use crate::gofmt;

/// The compact `encoding/json` text of `v`.
pub fn to_string(v: &Value) -> String {
    let mut out = String::new();
    write(&mut out, v);
    out
}

/// Appends the compact `encoding/json` text of `v` to `out`.
pub fn write(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write(out, v);
            }
            out.push('}');
        }
    }
}

/// Appends `s` as an `encoding/json` string literal (HTML-safe escapes) to `out`.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_number(out: &mut String, n: &Number) {
    match n.as_i64() {
        Some(i) => {
            let _ = write!(out, "{i}");
        }
        None => out.push_str(&float(n.as_f64().unwrap_or(0.0))),
    }
}

/// Go's `floatEncoder` for a `float64`. A `serde_json::Number` is always finite.
fn float(f: f64) -> String {
    gofmt::signed(f, |digits, exp| {
        if (-6..21).contains(&exp) {
            gofmt::fixed(digits, exp)
        } else {
            gofmt::exponent(digits, exp, 1)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn num(text: &str) -> String {
        to_string(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn scalars() {
        assert_eq!(to_string(&Value::Null), "null");
        assert_eq!(to_string(&json!(true)), "true");
        assert_eq!(to_string(&json!(false)), "false");
        assert_eq!(to_string(&json!("")), r#""""#);
    }

    #[test]
    fn escapes_like_go() {
        assert_eq!(
            to_string(&json!("<a href=\"x\">&</a>")),
            r#""\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e""#
        );
        assert_eq!(to_string(&json!("a\\b/c")), r#""a\\b/c""#);
        assert_eq!(to_string(&json!("\n\r\t\u{8}\u{c}")), r#""\n\r\t\b\f""#);
        assert_eq!(
            to_string(&json!("\u{0}\u{1f}\u{7f}")),
            "\"\\u0000\\u001f\u{7f}\""
        );
        assert_eq!(to_string(&json!("\u{2028}\u{2029}")), r#""\u2028\u2029""#);
        assert_eq!(to_string(&json!("héllo 日本 😀")), "\"héllo 日本 😀\"");
    }

    #[test]
    fn sorts_object_keys_by_bytes() {
        let v = json!({"b": 1, "a": "<x>", "c": [1.5, null], "B": {}, "é": 0, "a0": []});
        assert_eq!(
            to_string(&v),
            r#"{"B":{},"a":"\u003cx\u003e","a0":[],"b":1,"c":[1.5,null],"é":0}"#
        );
        assert_eq!(to_string(&json!({"<": 1})), r#"{"\u003c":1}"#);
    }

    #[test]
    fn nested() {
        let v = json!({"spec": {"z": [{"y": 2, "x": [1, {"w": null}]}], "a": {}}, "list": []});
        assert_eq!(
            to_string(&v),
            r#"{"list":[],"spec":{"a":{},"z":[{"x":[1,{"w":null}],"y":2}]}}"#
        );
        let mut out = String::from("k:");
        write(&mut out, &json!({"port": 80, "protocol": "TCP"}));
        assert_eq!(out, r#"k:{"port":80,"protocol":"TCP"}"#);
    }

    #[test]
    fn numbers_like_go() {
        assert_eq!(num("1"), "1");
        assert_eq!(num("-1"), "-1");
        assert_eq!(num("0"), "0");
        assert_eq!(num("1.5"), "1.5");
        assert_eq!(num("-2.25"), "-2.25");
        // A float64 with an integral value has no fraction.
        assert_eq!(num("100.0"), "100");
        assert_eq!(num("1e3"), "1000");
        assert_eq!(num("-0.0"), "-0");
        assert_eq!(num("0.0"), "0");
        // Exponent form from 1e21 up and below 1e-6, not padded.
        assert_eq!(num("1e21"), "1e+21");
        assert_eq!(
            to_string(&json!(1.234_567_890_123_456_8e20)),
            "123456789012345680000"
        );
        assert_eq!(num("1.5e300"), "1.5e+300");
        assert_eq!(num("0.000001"), "0.000001");
        assert_eq!(num("1e-7"), "1e-7");
        assert_eq!(num("1.25e-10"), "1.25e-10");
        assert_eq!(num("0.1"), "0.1");
        assert_eq!(num("0.30000000000000004"), "0.30000000000000004");
    }

    #[test]
    fn large_integers() {
        assert_eq!(num("9223372036854775807"), "9223372036854775807");
        assert_eq!(num("-9223372036854775808"), "-9223372036854775808");
        assert_eq!(num("9007199254740993"), "9007199254740993");
        // Beyond int64 the API server holds a float64.
        assert_eq!(num("18446744073709551615"), "18446744073709552000");
        assert_eq!(num("9223372036854775808"), "9223372036854776000");
    }
}
