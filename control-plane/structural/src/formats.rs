//! String formats of the kube-openapi default registry
//! (`k8s.io/kube-openapi/pkg/validation/strfmt`) that CRD schemas keep.
//! Where Go leans on its standard library (`net/mail`, `net/url`, `net`),
//! the checks here follow the same grammar closely but not byte for byte.

use regex::Regex;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

fn re(cell: &'static OnceLock<Option<Regex>>, pattern: &str) -> Option<&'static Regex> {
    cell.get_or_init(|| Regex::new(pattern).ok()).as_ref()
}

fn matches(cell: &'static OnceLock<Option<Regex>>, pattern: &str, s: &str) -> bool {
    re(cell, pattern).is_some_and(|r| r.is_match(s))
}

/// Whether `s` is valid for `format` (a supported format name, `-`s allowed).
pub(crate) fn check(format: &str, s: &str) -> bool {
    static HOSTNAME: OnceLock<Option<Regex>> = OnceLock::new();
    static UUID: OnceLock<Option<Regex>> = OnceLock::new();
    static UUID3: OnceLock<Option<Regex>> = OnceLock::new();
    static UUID4: OnceLock<Option<Regex>> = OnceLock::new();
    static UUID5: OnceLock<Option<Regex>> = OnceLock::new();
    static ISBN10: OnceLock<Option<Regex>> = OnceLock::new();
    static ISBN13: OnceLock<Option<Regex>> = OnceLock::new();
    static CREDIT_CARD: OnceLock<Option<Regex>> = OnceLock::new();
    static SSN: OnceLock<Option<Regex>> = OnceLock::new();
    static HEXCOLOR: OnceLock<Option<Regex>> = OnceLock::new();
    static RGBCOLOR: OnceLock<Option<Regex>> = OnceLock::new();
    static BASE64: OnceLock<Option<Regex>> = OnceLock::new();

    match format.replace('-', "").as_str() {
        "bsonobjectid" => s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        "uri" => is_request_uri(s),
        "email" => is_email(s),
        "hostname" => {
            matches(
                &HOSTNAME,
                r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9\-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
                s,
            ) && s.len() <= 255
                && s.split('.').all(|p| p.len() <= 63)
        }
        "ipv4" => parse_ip_sloppy(s).is_some() && s.contains('.'),
        "ipv6" => parse_ip_sloppy(s).is_some() && s.contains(':'),
        "cidr" => is_cidr(s),
        "mac" => is_mac(s),
        "uuid" => matches(
            &UUID,
            r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
            s,
        ),
        "uuid3" => matches(
            &UUID3,
            r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
            s,
        ),
        "uuid4" => matches(
            &UUID4,
            r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
            s,
        ),
        "uuid5" => matches(
            &UUID5,
            r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
            s,
        ),
        "isbn" => is_isbn(s, 10, &ISBN10, &ISBN13) || is_isbn(s, 13, &ISBN10, &ISBN13),
        "isbn10" => is_isbn(s, 10, &ISBN10, &ISBN13),
        "isbn13" => is_isbn(s, 13, &ISBN10, &ISBN13),
        "creditcard" => is_credit_card(s, &CREDIT_CARD),
        "ssn" => s.len() == 11 && matches(&SSN, r"^\d{3}[- ]?\d{2}[- ]?\d{4}$", s),
        "hexcolor" => matches(&HEXCOLOR, r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$", s),
        "rgbcolor" => matches(
            &RGBCOLOR,
            r"^rgb\(\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*\)$",
            s,
        ),
        "byte" => matches(
            &BASE64,
            r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$",
            s,
        ),
        "date" => is_date(s),
        "datetime" => is_date_time(s),
        "duration" => is_duration(s),
        // "password" and anything unknown
        _ => true,
    }
}

/// `netutils.ParseIPSloppy`: like `net.ParseIP`, but IPv4 octets may have
/// leading zeros (read as decimal).
fn parse_ip_sloppy(s: &str) -> Option<()> {
    if s.contains(':') {
        if s.contains('%') {
            return None;
        }
        return s.parse::<Ipv6Addr>().ok().map(|_| ());
    }
    parse_ipv4_sloppy(s).map(|_| ())
}

fn parse_ipv4_sloppy(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        octets[i] = p.parse::<u16>().ok().filter(|v| *v <= 255)? as u8;
    }
    Some(Ipv4Addr::from(octets))
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    if bits.is_empty() || bits.len() > 3 || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(n) = bits.parse::<u32>() else {
        return false;
    };
    if ip.contains(':') {
        ip.parse::<Ipv6Addr>().is_ok() && n <= 128
    } else {
        parse_ipv4_sloppy(ip).is_some() && n <= 32
    }
}

/// `net.ParseMAC`: 6, 8 or 20 octets as `xx:xx..`, `xx-xx..` or `xxxx.xxxx..`.
fn is_mac(s: &str) -> bool {
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    let ok_len = |octets: usize| matches!(octets, 6 | 8 | 20);
    if s.len() < 14 {
        return false;
    }
    let b = s.as_bytes();
    if b[2] == b':' || b[2] == b'-' {
        let sep = b[2] as char;
        let parts: Vec<&str> = s.split(sep).collect();
        return ok_len(parts.len()) && parts.iter().all(|p| hex(p, 2));
    }
    if b[4] == b'.' {
        let parts: Vec<&str> = s.split('.').collect();
        return ok_len(parts.len() * 2) && parts.iter().all(|p| hex(p, 4));
    }
    false
}

fn is_isbn(
    s: &str,
    version: u32,
    rx10: &'static OnceLock<Option<Regex>>,
    rx13: &'static OnceLock<Option<Regex>>,
) -> bool {
    let sanitized: String = s
        .chars()
        .filter(|c| !(c.is_whitespace() || *c == '-'))
        .collect();
    let d = sanitized.as_bytes();
    if version == 10 {
        if !matches(rx10, r"^(?:[0-9]{9}X|[0-9]{10})$", &sanitized) {
            return false;
        }
        let mut sum: u32 = (0..9)
            .map(|i| (i as u32 + 1) * u32::from(d[i] - b'0'))
            .sum();
        sum += if d[9] == b'X' {
            100
        } else {
            10 * u32::from(d[9] - b'0')
        };
        sum.is_multiple_of(11)
    } else {
        if !matches(rx13, r"^(?:[0-9]{13})$", &sanitized) {
            return false;
        }
        let sum: u32 = (0..12)
            .map(|i| [1, 3][i % 2] * u32::from(d[i] - b'0'))
            .sum();
        u32::from(d[12] - b'0') == (10 - sum % 10) % 10
    }
}

fn is_credit_card(s: &str, rx: &'static OnceLock<Option<Regex>>) -> bool {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if !matches(
        rx,
        r"^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35\d{3})\d{11})$",
        &digits,
    ) {
        return false;
    }
    let mut sum = 0u32;
    for (i, c) in digits.bytes().rev().enumerate() {
        let mut n = u32::from(c - b'0');
        if i % 2 == 1 {
            n *= 2;
            if n >= 10 {
                n = n % 10 + 1;
            }
        }
        sum += n;
    }
    sum.is_multiple_of(10)
}

/// `url.ParseRequestURI`: an absolute URI (`scheme:...`) or an absolute
/// path, without control characters or spaces, and a well-formed authority.
fn is_request_uri(s: &str) -> bool {
    if s.is_empty() || s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return false;
    }
    if s.starts_with('/') {
        return true;
    }
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
        return false;
    }
    if let Some(auth) = rest.strip_prefix("//") {
        let host = auth.split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        if host.contains(' ') || (host.contains('%') && !host.starts_with('[')) {
            return false;
        }
    }
    true
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|p| !p.is_empty() && p.chars().all(is_atext))
}

/// `mail.ParseAddress`: `addr-spec`, `<addr-spec>` or `name <addr-spec>`.
fn is_email(s: &str) -> bool {
    let s = s.trim();
    let addr = if let Some(open) = s.rfind('<') {
        let Some(inner) = s[open + 1..].strip_suffix('>') else {
            return false;
        };
        inner
    } else {
        s
    };
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    let local_ok = if local.len() >= 2 && local.starts_with('"') && local.ends_with('"') {
        !local[1..local.len() - 1].contains('"') || local.contains("\\\"")
    } else {
        is_dot_atom(local)
    };
    let domain_ok = if domain.starts_with('[') && domain.ends_with(']') {
        domain.len() > 2
    } else {
        is_dot_atom(domain)
    };
    local_ok && domain_ok
}

fn two_digits(b: &[u8]) -> Option<u32> {
    if b.len() == 2 && b.iter().all(u8::is_ascii_digit) {
        Some(u32::from(b[0] - b'0') * 10 + u32::from(b[1] - b'0'))
    } else {
        None
    }
}

/// `time.Parse("2006-01-02", s)`.
pub(crate) fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !b[..4].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let year: u32 = s[..4].parse().unwrap_or(0);
    let (Some(month), Some(day)) = (two_digits(&b[5..7]), two_digits(&b[8..10])) else {
        return false;
    };
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// `strfmt.IsDateTime`.
fn is_date_time(s: &str) -> bool {
    static RX: OnceLock<Option<Regex>> = OnceLock::new();
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    if parts.len() < 2 || !is_date(parts[0]) {
        return false;
    }
    let Some(rx) = re(
        &RX,
        r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$",
    ) else {
        return false;
    };
    let Some(c) = rx.captures(parts[1]) else {
        return false;
    };
    let g = |i: usize| c.get(i).map_or("", |m| m.as_str());
    g(1) <= "23" && g(2) <= "59" && g(3) <= "59"
}

/// `time.ParseDuration`.
fn is_go_duration(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    if s.is_empty() {
        return false;
    }
    let mut rest = s;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut after = &rest[int_len..];
        let mut frac_len = 0;
        if let Some(f) = after.strip_prefix('.') {
            frac_len = f.bytes().take_while(u8::is_ascii_digit).count();
            after = &f[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return false;
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let unit = &after[..unit_len];
        if !matches!(unit, "ns" | "us" | "µs" | "μs" | "ms" | "s" | "m" | "h") {
            return false;
        }
        rest = &after[unit_len..];
    }
    true
}

/// `strfmt.ParseDuration`: Go durations, or `<n> <unit>` pairs with long unit
/// names (`3 days`, `1 hr`).
fn is_duration(s: &str) -> bool {
    static RX: OnceLock<Option<Regex>> = OnceLock::new();
    const UNITS: &[&[&str]] = &[
        &["ns", "nano"],
        &["us", "µs", "micro"],
        &["ms", "milli"],
        &["s", "sec"],
        &["m", "min"],
        &["h", "hr", "hour"],
        &["d", "day"],
        &["w", "wk", "week"],
    ];
    if is_go_duration(s) {
        return true;
    }
    let Some(rx) = re(&RX, r"((\d+)\s*([A-Za-zµ]+))") else {
        return false;
    };
    let mut ok = false;
    for c in rx.captures_iter(s) {
        if c.get(2).is_none_or(|m| m.as_str().parse::<i64>().is_err()) {
            return false;
        }
        let unit = c.get(3).map_or("", |m| m.as_str()).trim().to_lowercase();
        for variants in UNITS {
            let last = variants.len() - 1;
            for (i, v) in variants.iter().enumerate() {
                if (i == last && unit.starts_with(v)) || v.eq_ignore_ascii_case(&unit) {
                    ok = true;
                }
            }
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn formats() {
        assert!(check("date-time", "2024-02-29T10:00:00Z"));
        assert!(check("date-time", "2024-02-29T10:00:00.123+01:00"));
        assert!(!check("date-time", "2023-02-29T10:00:00Z"));
        assert!(!check("date-time", "yesterday"));
        assert!(check("date", "2000-02-29"));
        assert!(!check("date", "1900-02-29"));
        assert!(check("duration", "1h30m"));
        assert!(check("duration", "3 days"));
        assert!(!check("duration", "soon"));
        assert!(check("ipv4", "010.0.0.1"));
        assert!(!check("ipv4", "256.0.0.1"));
        assert!(check("ipv6", "fe80::1"));
        assert!(!check("ipv6", "1.2.3.4"));
        assert!(check("cidr", "10.0.0.0/8"));
        assert!(!check("cidr", "10.0.0.0/33"));
        assert!(check("mac", "00:1a:2b:3c:4d:5e"));
        assert!(!check("mac", "00:1a:2b"));
        assert!(check("uuid", "123e4567-e89b-12d3-a456-426614174000"));
        assert!(check("email", "a@example.com"));
        assert!(check("email", "Alice <a@example.com>"));
        assert!(!check("email", "nope"));
        assert!(check("hostname", "example.com"));
        assert!(!check("hostname", "-bad-.com"));
        assert!(check("byte", "aGVsbG8="));
        assert!(!check("byte", "not base64!"));
        assert!(check("uri", "https://example.com/x"));
        assert!(check("uri", "/just/a/path"));
        assert!(!check("uri", "relative/path"));
        assert!(check("isbn", "0321751043"));
        assert!(check("isbn13", "978-0321751041"));
        assert!(check("creditcard", "4111 1111 1111 1111"));
        assert!(check("ssn", "123-45-6789"));
        assert!(check("hexcolor", "#fff"));
        assert!(check("rgbcolor", "rgb(1, 2, 255)"));
        assert!(check("bsonobjectid", "507f1f77bcf86cd799439011"));
        assert!(check("password", "anything"));
    }
}
