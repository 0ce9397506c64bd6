//! Cell helpers the kinds' Table printers share, as upstream's printers compute them.

use serde_json::Value;

use crate::apiserver::selectors::LabelSelector;

/// Upstream's `HumanDuration`.
#[must_use]
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else if h < 24 * 365 * 8 {
        format!("{}y{}d", d / 365, d % 365)
    } else {
        format!("{}y", d / 365)
    }
}

/// Age of a timestamp as `kubectl get` prints it.
#[must_use]
pub fn age(ts: &Value) -> String {
    let Some(t) = ts
        .as_str()
        .and_then(|s| s.parse::<k8s_openapi::jiff::Timestamp>().ok())
    else {
        return "<unknown>".into();
    };
    human_duration(k8s_openapi::jiff::Timestamp::now().as_second() - t.as_second())
}

/// A value as cell text.
#[must_use]
pub fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A value as an integer (0 if absent).
#[must_use]
pub fn n(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// `<none>` for an empty cell.
#[must_use]
pub fn none_if_empty(x: String) -> String {
    if x.is_empty() { "<none>".into() } else { x }
}

/// Comma-joined container names and images of a pod template spec.
#[must_use]
pub fn containers_images(tmpl_spec: &Value) -> (String, String) {
    let cs = tmpl_spec["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<String> = cs.iter().map(|c| s(&c["name"])).collect();
    let images: Vec<String> = cs.iter().map(|c| s(&c["image"])).collect();
    (names.join(","), images.join(","))
}

/// A label selector as text, `<none>` if empty.
#[must_use]
pub fn selector_string(sel: &Value) -> String {
    none_if_empty(
        LabelSelector::from_json(sel)
            .map(|l| l.render())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_upstream() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400), "3d");
    }
}
