//! The `JSONPath` subset CRDs use in `additionalPrinterColumns[].jsonPath` and
//! the scale subresource paths, evaluated like client-go's `jsonpath` with
//! missing keys allowed (a missing field yields no value, not an error).

use serde_json::Value;

#[derive(Debug, Clone)]
enum Seg {
    Field(String),
    Wildcard,
    Index(i64),
    Slice(Option<i64>, Option<i64>, Option<i64>),
    Filter(Box<Filter>),
    Recursive(Box<Seg>),
}

#[derive(Debug, Clone)]
struct Filter {
    path: Vec<Seg>,
    cmp: Option<(Op, Value)>,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Evaluates `path` against `obj` and returns the matched values, in order.
///
/// Supported: an optional `{...}` wrapper and leading `$`, dotted fields
/// (`.spec.replicas`), `['key']`/`["key"]`, `[n]` and `[-n]`, `[*]` and `.*`,
/// slices `[a:b]`/`[a:b:c]`, recursive descent `..name`, and filters
/// `[?(@.type=="Ready")]` with `==`, `!=`, `<`, `<=`, `>`, `>=` against
/// string, number, boolean or null literals (or `[?(@.field)]` for presence).
/// Missing fields and out-of-range indices match nothing.
pub fn json_path(obj: &Value, path: &str) -> Result<Vec<Value>, String> {
    let mut p = path.trim();
    if let Some(inner) = p.strip_prefix('{') {
        p = inner
            .strip_suffix('}')
            .ok_or_else(|| format!("unclosed action in {path:?}"))?
            .trim();
    }
    let segs = parse(p)?;
    let mut cur: Vec<&Value> = vec![obj];
    for seg in &segs {
        cur = apply(seg, &cur);
    }
    Ok(cur.into_iter().cloned().collect())
}

fn parse(p: &str) -> Result<Vec<Seg>, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    if chars.first() == Some(&'$') {
        i = 1;
    }
    let mut segs = Vec::new();
    while i < chars.len() {
        match chars[i] {
            '.' => {
                if chars.get(i + 1) == Some(&'.') {
                    i += 2;
                    let (seg, next) = parse_step(&chars, i)?;
                    segs.push(Seg::Recursive(Box::new(seg)));
                    i = next;
                } else {
                    i += 1;
                    if i >= chars.len() {
                        break;
                    }
                    let (seg, next) = parse_step(&chars, i)?;
                    segs.push(seg);
                    i = next;
                }
            }
            '[' => {
                let (seg, next) = parse_bracket(&chars, i)?;
                segs.push(seg);
                i = next;
            }
            _ if i == 0 => {
                let (seg, next) = parse_step(&chars, i)?;
                segs.push(seg);
                i = next;
            }
            c => return Err(format!("unexpected {c:?} at position {i} in {p:?}")),
        }
    }
    Ok(segs)
}

/// A step after `.` (or `..`): a name, `*`, or a bracket expression.
fn parse_step(chars: &[char], i: usize) -> Result<(Seg, usize), String> {
    match chars.get(i) {
        None => Err("path ends after '.'".into()),
        Some('*') => Ok((Seg::Wildcard, i + 1)),
        Some('[') => parse_bracket(chars, i),
        Some(_) => {
            let mut j = i;
            while j < chars.len() && chars[j] != '.' && chars[j] != '[' {
                if chars[j] == ']' || chars[j].is_whitespace() {
                    return Err(format!("unexpected {:?} in field name", chars[j]));
                }
                j += 1;
            }
            if j == i {
                return Err("empty field name".into());
            }
            Ok((Seg::Field(chars[i..j].iter().collect()), j))
        }
    }
}

/// Parses `[ ... ]` starting at `chars[i] == '['`, honouring quotes and
/// parentheses inside.
fn parse_bracket(chars: &[char], i: usize) -> Result<(Seg, usize), String> {
    let mut j = i + 1;
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    while j < chars.len() {
        let c = chars[j];
        match quote {
            Some(q) => {
                if c == '\\' {
                    j += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => quote = Some(c),
                '(' => depth += 1,
                ')' => depth -= 1,
                ']' if depth <= 0 => break,
                _ => {}
            },
        }
        j += 1;
    }
    if j >= chars.len() {
        return Err("unterminated '['".into());
    }
    let inner: String = chars[i + 1..j].iter().collect();
    Ok((bracket_seg(inner.trim())?, j + 1))
}

fn unquote(s: &str) -> Option<String> {
    let q = s.chars().next()?;
    if (q == '\'' || q == '"') && s.len() >= 2 && s.ends_with(q) {
        let body = &s[1..s.len() - 1];
        let mut out = String::new();
        let mut esc = false;
        for c in body.chars() {
            if esc {
                out.push(c);
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else {
                out.push(c);
            }
        }
        Some(out)
    } else {
        None
    }
}

fn bracket_seg(inner: &str) -> Result<Seg, String> {
    if inner == "*" {
        return Ok(Seg::Wildcard);
    }
    if let Some(name) = unquote(inner) {
        return Ok(Seg::Field(name));
    }
    if let Some(f) = inner.strip_prefix('?') {
        let f = f.trim();
        let body = f
            .strip_prefix('(')
            .and_then(|x| x.strip_suffix(')'))
            .ok_or_else(|| format!("invalid filter {inner:?}"))?;
        return Ok(Seg::Filter(Box::new(parse_filter(body.trim())?)));
    }
    if inner.contains(':') {
        let parts: Vec<&str> = inner.split(':').collect();
        if parts.len() > 3 {
            return Err(format!("invalid slice {inner:?}"));
        }
        let num = |s: &str| -> Result<Option<i64>, String> {
            let s = s.trim();
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse()
                    .map(Some)
                    .map_err(|_| format!("invalid slice index {s:?}"))
            }
        };
        let start = num(parts[0])?;
        let end = num(parts.get(1).copied().unwrap_or(""))?;
        let step = num(parts.get(2).copied().unwrap_or(""))?;
        if step == Some(0) {
            return Err("slice step cannot be zero".into());
        }
        return Ok(Seg::Slice(start, end, step));
    }
    inner
        .parse::<i64>()
        .map(Seg::Index)
        .map_err(|_| format!("invalid array index {inner:?}"))
}

fn find_op(s: &str) -> Option<(usize, usize, Op)> {
    let b = s.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        let next = b.get(i + 1).copied();
        let op = match (c, next) {
            (b'\'' | b'"', _) => {
                quote = Some(c);
                i += 1;
                continue;
            }
            (b'=', Some(b'=')) => Some((2, Op::Eq)),
            (b'!', Some(b'=')) => Some((2, Op::Ne)),
            (b'<', Some(b'=')) => Some((2, Op::Le)),
            (b'>', Some(b'=')) => Some((2, Op::Ge)),
            (b'<', _) => Some((1, Op::Lt)),
            (b'>', _) => Some((1, Op::Gt)),
            _ => None,
        };
        if let Some((len, op)) = op {
            return Some((i, len, op));
        }
        i += 1;
    }
    None
}

fn parse_filter(body: &str) -> Result<Filter, String> {
    let (left, cmp) = match find_op(body) {
        Some((at, len, op)) => {
            let lit = body[at + len..].trim();
            (body[..at].trim(), Some((op, parse_literal(lit)?)))
        }
        None => (body, None),
    };
    let rel = left
        .strip_prefix('@')
        .ok_or_else(|| format!("filter must start with '@': {body:?}"))?;
    let path = if rel.is_empty() {
        Vec::new()
    } else {
        parse(rel)?
    };
    Ok(Filter { path, cmp })
}

fn parse_literal(lit: &str) -> Result<Value, String> {
    if let Some(s) = unquote(lit) {
        return Ok(Value::String(s));
    }
    match lit {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        "null" | "nil" => return Ok(Value::Null),
        _ => {}
    }
    if let Ok(i) = lit.parse::<i64>() {
        return Ok(Value::from(i));
    }
    lit.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .ok_or_else(|| format!("unrecognized filter literal {lit:?}"))
}

fn descendants<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(v);
    match v {
        Value::Object(m) => m.values().for_each(|x| descendants(x, out)),
        Value::Array(a) => a.iter().for_each(|x| descendants(x, out)),
        _ => {}
    }
}

fn resolve_index(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let idx = if i < 0 { len + i } else { i };
    if (0..len).contains(&idx) {
        usize::try_from(idx).ok()
    } else {
        None
    }
}

fn slice(a: &[Value], start: Option<i64>, end: Option<i64>, step: Option<i64>) -> Vec<&Value> {
    let len = i64::try_from(a.len()).unwrap_or(i64::MAX);
    let clamp = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
    let step = step.unwrap_or(1);
    let mut out = Vec::new();
    if step > 0 {
        let mut i = clamp(start.unwrap_or(0));
        let e = clamp(end.unwrap_or(len));
        while i < e {
            if let Ok(u) = usize::try_from(i) {
                out.push(&a[u]);
            }
            i += step;
        }
    } else {
        let mut i = start.map_or(len - 1, |s| clamp(s).min(len - 1));
        let e = end.map_or(-1, clamp);
        while i > e && i >= 0 {
            if let Ok(u) = usize::try_from(i) {
                out.push(&a[u]);
            }
            i += step;
        }
    }
    out
}

fn compare(v: &Value, op: Op, lit: &Value) -> bool {
    let ord = match (v, lit) {
        (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    };
    match op {
        Op::Eq => ord.map_or(v == lit, std::cmp::Ordering::is_eq),
        Op::Ne => ord.map_or(v != lit, std::cmp::Ordering::is_ne),
        Op::Lt => ord.is_some_and(std::cmp::Ordering::is_lt),
        Op::Le => ord.is_some_and(std::cmp::Ordering::is_le),
        Op::Gt => ord.is_some_and(std::cmp::Ordering::is_gt),
        Op::Ge => ord.is_some_and(std::cmp::Ordering::is_ge),
    }
}

fn filter_matches(f: &Filter, item: &Value) -> bool {
    let mut cur = vec![item];
    for seg in &f.path {
        cur = apply(seg, &cur);
    }
    match &f.cmp {
        None => !cur.is_empty(),
        Some((op, lit)) => cur.iter().any(|v| compare(v, *op, lit)),
    }
}

fn apply<'a>(seg: &Seg, cur: &[&'a Value]) -> Vec<&'a Value> {
    let mut out = Vec::new();
    for v in cur {
        match seg {
            Seg::Field(name) => {
                if let Some(x) = v.get(name.as_str()).filter(|_| v.is_object()) {
                    out.push(x);
                }
            }
            Seg::Wildcard => match v {
                Value::Object(m) => out.extend(m.values()),
                Value::Array(a) => out.extend(a.iter()),
                _ => {}
            },
            Seg::Index(i) => {
                if let Value::Array(a) = v
                    && let Some(idx) = resolve_index(*i, a.len())
                {
                    out.push(&a[idx]);
                }
            }
            Seg::Slice(s, e, st) => {
                if let Value::Array(a) = v {
                    out.extend(slice(a, *s, *e, *st));
                }
            }
            Seg::Filter(f) => {
                if let Value::Array(a) = v {
                    out.extend(a.iter().filter(|x| filter_matches(f, x)));
                }
            }
            Seg::Recursive(inner) => {
                let mut all = Vec::new();
                descendants(v, &mut all);
                out.extend(apply(inner, &all));
            }
        }
    }
    out
}
