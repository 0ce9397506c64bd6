//! Label and field selectors as clients send them in `labelSelector=` / `fieldSelector=`.

use std::collections::BTreeSet;

use serde_json::Value;

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelReq>);

/// Split on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn valid_label_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn parse_set(s: &str) -> Result<BTreeSet<String>, String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set, found {s:?}"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    /// Parse the string syntax (`a=b,c!=d,e in (f,g),!h,i`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self(reqs));
        }
        for part in split_top(s) {
            let part = part.trim();
            if part.is_empty() {
                return Err(format!("invalid label selector {s:?}: empty requirement"));
            }
            let req = if let Some(k) = part.strip_prefix('!') {
                LabelReq::NotExists(k.trim().to_string())
            } else if let Some((k, v)) = part.split_once("!=") {
                LabelReq::NotEq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                LabelReq::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                LabelReq::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once(" notin ") {
                LabelReq::NotIn(k.trim().into(), parse_set(v)?)
            } else if let Some((k, v)) = part.split_once(" in ") {
                LabelReq::In(k.trim().into(), parse_set(v)?)
            } else {
                LabelReq::Exists(part.to_string())
            };
            let key = match &req {
                LabelReq::Eq(k, _)
                | LabelReq::NotEq(k, _)
                | LabelReq::In(k, _)
                | LabelReq::NotIn(k, _)
                | LabelReq::Exists(k)
                | LabelReq::NotExists(k) => k,
            };
            if !valid_label_key(key) {
                return Err(format!("invalid label selector {s:?}: bad key {key:?}"));
            }
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Build from a `metav1.LabelSelector` JSON object (matchLabels + matchExpressions).
    pub fn from_json(sel: &Value) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in ml {
                reqs.push(LabelReq::Eq(
                    k.clone(),
                    v.as_str().unwrap_or_default().into(),
                ));
            }
        }
        if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e["key"].as_str().unwrap_or_default().to_string();
                let values: BTreeSet<String> = e["values"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                reqs.push(match e["operator"].as_str() {
                    Some("In") => LabelReq::In(key, values),
                    Some("NotIn") => LabelReq::NotIn(key, values),
                    Some("Exists") => LabelReq::Exists(key),
                    Some("DoesNotExist") => LabelReq::NotExists(key),
                    other => return Err(format!("unknown operator {other:?}")),
                });
            }
        }
        Ok(Self(reqs))
    }

    /// Whether an object's labels (a JSON map, or absent) satisfy the selector.
    #[must_use]
    pub fn matches(&self, labels: Option<&Value>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, set) => get(k).is_some_and(|x| set.contains(x)),
            LabelReq::NotIn(k, set) => get(k).is_none_or(|x| !set.contains(x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }

    /// The selector in string form (as `Scale.status.selector` carries it).
    #[must_use]
    pub fn render(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| match r {
                LabelReq::Eq(k, v) => format!("{k}={v}"),
                LabelReq::NotEq(k, v) => format!("{k}!={v}"),
                LabelReq::In(k, s) => format!("{k} in ({})", join(s)),
                LabelReq::NotIn(k, s) => format!("{k} notin ({})", join(s)),
                LabelReq::Exists(k) => k.clone(),
                LabelReq::NotExists(k) => format!("!{k}"),
            })
            .collect();
        parts.join(",")
    }

    /// True when the selector has no requirement.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn join(s: &BTreeSet<String>) -> String {
    s.iter().cloned().collect::<Vec<_>>().join(",")
}

/// A parsed field selector: `path=value` / `path!=value` terms, all of which must hold.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parse `metadata.name=x,spec.nodeName!=y`. Fields not listed in `allowed` are rejected,
    /// as upstream rejects fields a kind does not index.
    pub fn parse(s: &str, kind: &str, allowed: &[&str]) -> Result<Self, String> {
        let mut terms = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self(terms));
        }
        for part in s.split(',') {
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            if field != "metadata.name"
                && field != "metadata.namespace"
                && !allowed.contains(&field)
            {
                return Err(format!("field label not supported: {field} (kind {kind})"));
            }
            terms.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(Self(terms))
    }

    /// Whether the object satisfies every term. A missing field reads as "".
    #[must_use]
    pub fn matches(&self, obj: &Value) -> bool {
        self.matches_with(|path| field_value(obj, path))
    }

    /// Whether every term holds for the field values `value` gives (a kind whose field
    /// labels are computed, not read at their path).
    pub fn matches_with(&self, value: impl Fn(&str) -> String) -> bool {
        self.0
            .iter()
            .all(|(path, eq, want)| (value(path) == *want) == *eq)
    }

    /// True when there is no term.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The value of a field label read at its dotted path ("" when missing).
#[must_use]
pub fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for seg in path.split('.') {
        cur = cur.get(seg).unwrap_or(&Value::Null);
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const POD_FIELDS: &[&str] = &["spec.nodeName", "status.phase"];

    #[test]
    fn label_selector_syntax() {
        let s = LabelSelector::parse("app=web, tier in (fe,be),!canary,env!=prod,track").unwrap();
        let l = json!({"app": "web", "tier": "fe", "track": "x"});
        assert!(s.matches(Some(&l)));
        let l2 = json!({"app": "web", "tier": "db", "track": "x"});
        assert!(!s.matches(Some(&l2)));
        assert!(LabelSelector::parse("").unwrap().matches(None));
        assert!(!LabelSelector::parse("a").unwrap().matches(None));
        assert!(LabelSelector::parse("a notin (x)").unwrap().matches(None));
        assert!(LabelSelector::parse("a=b,,c").is_err());
        assert!(LabelSelector::parse("a in x").is_err());
    }

    #[test]
    fn label_selector_from_json_and_render() {
        let s = LabelSelector::from_json(&json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}))
        .unwrap();
        assert_eq!(s.render(), "app=web,tier in (a,b)");
        assert_eq!(LabelSelector::parse(&s.render()).unwrap(), s);
    }

    #[test]
    fn field_selector_terms() {
        let f = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed", "Pod", POD_FIELDS)
            .unwrap();
        assert!(f.matches(&json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})));
        assert!(!f.matches(&json!({"spec": {"nodeName": "n2"}})));
        let empty = FieldSelector::parse("spec.nodeName=", "Pod", POD_FIELDS).unwrap();
        assert!(empty.matches(&json!({"spec": {}})));
        assert!(FieldSelector::parse("spec.foo=x", "Pod", POD_FIELDS).is_err());
        assert!(FieldSelector::parse("bogus", "Pod", &[]).is_err());
    }
}
