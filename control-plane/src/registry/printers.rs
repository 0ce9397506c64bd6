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

/// A label map as upstream's `labels.FormatLabels` writes it: sorted `k=v` joined by `,`,
/// `<none>` if empty.
#[must_use]
pub fn format_labels(m: &Value) -> String {
    let mut pairs: Vec<String> = m
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", s(v)))
        .collect();
    pairs.sort();
    none_if_empty(pairs.join(","))
}

/// An optional boolean as upstream's `printBoolPtr`: `<unset>`, `True` or `False`.
#[must_use]
pub fn bool_ptr(v: &Value) -> String {
    match v.as_bool() {
        None => "<unset>".into(),
        Some(true) => "True".into(),
        Some(false) => "False".into(),
    }
}

/// Access modes as upstream's `GetAccessModesAsString`: `RWO,ROX,RWX,RWOP` in that order.
#[must_use]
pub fn access_modes(v: &Value) -> String {
    let modes: Vec<&str> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(long, _)| modes.contains(long))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// A quantity cell: the stored text, `0` if absent (a zero `resource.Quantity`).
#[must_use]
pub fn quantity_cell(v: &Value) -> String {
    match v {
        Value::Null => "0".into(),
        other => s(other),
    }
}

/// Whether `status.conditions` holds a condition of type `ty` whose status is `True`.
#[must_use]
pub fn has_condition(obj: &Value, ty: &str) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == ty)
        .is_some_and(|c| c["status"] == "True")
}

/// Seconds of an RFC 3339 timestamp since the epoch.
#[must_use]
pub fn epoch_seconds(ts: &Value) -> Option<i64> {
    ts.as_str()
        .and_then(|s| s.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map(k8s_openapi::jiff::Timestamp::as_second)
}

/// The object's controller as upstream's printers name it: `kind.group/name`, lower case, or
/// `<none>`.
#[must_use]
pub fn controller_name(obj: &Value) -> String {
    let Some(r) = obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["controller"].as_bool() == Some(true))
    else {
        return "<none>".into();
    };
    let api_version = s(&r["apiVersion"]);
    let group = api_version
        .rsplit_once('/')
        .map_or("", |(g, _)| g)
        .to_string();
    let kind = s(&r["kind"]);
    let gk = if group.is_empty() {
        kind
    } else {
        format!("{kind}.{group}")
    };
    if gk.is_empty() {
        return s(&r["name"]);
    }
    format!("{}/{}", gk.to_lowercase(), s(&r["name"]))
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
