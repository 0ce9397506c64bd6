//! Validation and defaulting rules shared by several kinds (names, metadata, pod specs,
//! workload specs), in upstream's wording. Each kind's file under `kinds/` calls these.

use serde_json::{Map, Value, json};

use super::strategy::NameRule;
use crate::apiserver::selectors::LabelSelector;
use crate::apiserver::status::Cause;

pub(crate) const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
pub(crate) const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
pub(crate) const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 chars.
#[must_use]
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 chars.
#[must_use]
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// Upstream's `IsValidPathSegmentName`: the problems of a name used as one URL path segment.
#[must_use]
pub fn path_segment_problems(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    if name == "." || name == ".." {
        out.push(format!("may not be '{name}'"));
    }
    for bad in ["/", "%"] {
        if name.contains(bad) {
            out.push(format!("may not contain '{bad}'"));
        }
    }
    out
}

/// Validate a name under a rule; `None` if valid.
#[must_use]
pub fn name_error(rule: NameRule, name: &str) -> Option<Cause> {
    let (ok, msg): (fn(&str) -> bool, &str) = match rule {
        NameRule::Label => (is_dns1123_label, DNS1123_LABEL_MSG),
        NameRule::Dns1035Label => (is_dns1035_label, DNS1035_LABEL_MSG),
        NameRule::Subdomain => (is_dns1123_subdomain, DNS1123_SUBDOMAIN_MSG),
        NameRule::PathSegment => {
            let problems = path_segment_problems(name);
            return (!problems.is_empty())
                .then(|| Cause::invalid("metadata.name", &json!(name), &problems.join(", ")));
        }
    };
    if ok(name) {
        None
    } else {
        Some(Cause::invalid("metadata.name", &json!(name), msg))
    }
}

fn label_value_ok(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && v.chars().last().is_some_and(|c| c.is_ascii_alphanumeric()))
}

fn qualified_name_ok(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix
        && !is_dns1123_subdomain(p)
    {
        return false;
    }
    !name.is_empty() && label_value_ok(name)
}

pub(crate) fn validate_meta(obj: &Value, causes: &mut Vec<Cause>) {
    let meta = &obj["metadata"];
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if !qualified_name_ok(k) {
                causes.push(Cause::invalid(
                    "metadata.labels",
                    &json!(k),
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
            if !label_value_ok(v.as_str().unwrap_or_default()) {
                causes.push(Cause::invalid(
                    "metadata.labels",
                    v,
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
        }
    }
    if let Some(ann) = meta.get("annotations").and_then(Value::as_object) {
        for k in ann.keys() {
            if !qualified_name_ok(k) {
                causes.push(Cause::invalid(
                    "metadata.annotations",
                    &json!(k),
                    "name part must consist of alphanumeric characters, '-', '_' or '.'",
                ));
            }
        }
    }
}

pub(crate) fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object) {
        v[key] = json!({});
    }
    v[key].as_object_mut().expect("just made an object")
}

pub(crate) fn set_default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
    }
}

fn default_container(c: &mut Value) {
    let image = c["image"].as_str().unwrap_or_default().to_string();
    let Some(m) = c.as_object_mut() else { return };
    let tag_latest = {
        let last = image.rsplit('/').next().unwrap_or_default();
        !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"))
    };
    set_default(
        m,
        "imagePullPolicy",
        json!(if tag_latest { "Always" } else { "IfNotPresent" }),
    );
    set_default(m, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(m, "terminationMessagePolicy", json!("File"));
    set_default(m, "resources", json!({}));
    if let Some(ports) = m.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            if let Some(pm) = p.as_object_mut() {
                set_default(pm, "protocol", json!("TCP"));
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(pm) = m.get_mut(probe).and_then(Value::as_object_mut) {
            set_default(pm, "timeoutSeconds", json!(1));
            set_default(pm, "periodSeconds", json!(10));
            set_default(pm, "successThreshold", json!(1));
            set_default(pm, "failureThreshold", json!(3));
            if let Some(h) = pm.get_mut("httpGet").and_then(Value::as_object_mut) {
                set_default(h, "path", json!("/"));
                set_default(h, "scheme", json!("HTTP"));
            }
        }
    }
}

/// Pod spec defaults (also applied to templates).
pub fn default_pod_spec(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    set_default(m, "restartPolicy", json!("Always"));
    set_default(m, "terminationGracePeriodSeconds", json!(30));
    set_default(m, "dnsPolicy", json!("ClusterFirst"));
    set_default(m, "securityContext", json!({}));
    set_default(m, "schedulerName", json!("default-scheduler"));
    set_default(m, "enableServiceLinks", json!(true));
    if m.get("serviceAccountName").is_none_or(Value::is_null) {
        let sa = m
            .get("serviceAccount")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string();
        m.insert("serviceAccountName".into(), json!(sa));
    }
    let sa = m["serviceAccountName"].clone();
    set_default(m, "serviceAccount", sa);
    for list in ["containers", "initContainers"] {
        if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                default_container(c);
            }
        }
    }
}

/// Defaults of `Deployment` (`deployment`) and `ReplicaSet` specs.
pub(crate) fn default_workload(obj: &mut Value, deployment: bool) {
    let spec = obj_mut(obj, "spec");
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "minReadySeconds", json!(0));
    if deployment {
        set_default(spec, "progressDeadlineSeconds", json!(600));
        let strategy = spec
            .entry("strategy")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        if let Some(st) = strategy {
            set_default(st, "type", json!("RollingUpdate"));
            if st.get("type") == Some(&json!("RollingUpdate")) {
                let ru = st
                    .entry("rollingUpdate")
                    .or_insert_with(|| json!({}))
                    .as_object_mut();
                if let Some(ru) = ru {
                    set_default(ru, "maxSurge", json!("25%"));
                    set_default(ru, "maxUnavailable", json!("25%"));
                }
            }
        }
    } else {
        spec.remove("revisionHistoryLimit");
    }
    if let Some(ps) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        default_pod_spec(ps);
    }
}

pub(crate) fn validate_containers(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    let containers = spec.get("containers").and_then(Value::as_array);
    match containers {
        None => causes.push(Cause::required(format!("{path}.containers"))),
        Some(cs) if cs.is_empty() => causes.push(Cause::required(format!("{path}.containers"))),
        Some(_) => {}
    }
    let mut seen = std::collections::HashSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let p = format!("{path}.{list}[{i}]");
            match c.get("name").and_then(Value::as_str) {
                None | Some("") => causes.push(Cause::required(format!("{p}.name"))),
                Some(n) if !is_dns1123_label(n) => {
                    causes.push(Cause::invalid(
                        format!("{p}.name"),
                        &json!(n),
                        DNS1123_LABEL_MSG,
                    ));
                }
                Some(n) => {
                    if !seen.insert(n.to_string()) {
                        causes.push(Cause::duplicate(format!("{p}.name"), &json!(n)));
                    }
                }
            }
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(|s| s.trim().is_empty())
            {
                causes.push(Cause::required(format!("{p}.image")));
            }
            for (j, port) in c
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let cp = port["containerPort"].as_i64().unwrap_or(0);
                if !(1..=65535).contains(&cp) {
                    causes.push(Cause::invalid(
                        format!("{p}.ports[{j}].containerPort"),
                        &port["containerPort"],
                        "must be between 1 and 65535, inclusive",
                    ));
                }
                if let Some(proto) = port.get("protocol").and_then(Value::as_str)
                    && !["TCP", "UDP", "SCTP"].contains(&proto)
                {
                    causes.push(Cause::not_supported(
                        format!("{p}.ports[{j}].protocol"),
                        &json!(proto),
                        &["SCTP", "TCP", "UDP"],
                    ));
                }
            }
            if let Some(policy) = c.get("imagePullPolicy").and_then(Value::as_str)
                && !["Always", "IfNotPresent", "Never"].contains(&policy)
            {
                causes.push(Cause::not_supported(
                    format!("{p}.imagePullPolicy"),
                    &json!(policy),
                    &["Always", "IfNotPresent", "Never"],
                ));
            }
        }
    }
    if let Some(rp) = spec.get("restartPolicy").and_then(Value::as_str)
        && !["Always", "OnFailure", "Never"].contains(&rp)
    {
        causes.push(Cause::not_supported(
            format!("{path}.restartPolicy"),
            &json!(rp),
            &["Always", "OnFailure", "Never"],
        ));
    }
    if let Some(g) = spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        && g < 0
    {
        causes.push(Cause::invalid(
            format!("{path}.terminationGracePeriodSeconds"),
            &json!(g),
            "must be greater than or equal to 0",
        ));
    }
}

/// Validation of `Deployment` (`deployment`) and `ReplicaSet` specs.
pub(crate) fn validate_workload(obj: &Value, deployment: bool, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    if let Some(r) = spec.get("replicas").and_then(Value::as_i64)
        && r < 0
    {
        causes.push(Cause::invalid(
            "spec.replicas",
            &json!(r),
            "must be greater than or equal to 0",
        ));
    }
    let sel = spec.get("selector");
    let tmpl_labels = spec["template"]["metadata"].get("labels");
    match sel {
        None => causes.push(Cause::required("spec.selector")),
        Some(s) => match LabelSelector::from_json(s) {
            Err(e) => causes.push(Cause::invalid("spec.selector", s, &e)),
            Ok(ls) if ls.is_empty() => causes.push(Cause::invalid(
                "spec.selector",
                s,
                "empty selector is invalid for deployment",
            )),
            Ok(ls) => {
                if !ls.matches(tmpl_labels) {
                    causes.push(Cause::invalid(
                        "spec.template.metadata.labels",
                        tmpl_labels.unwrap_or(&Value::Null),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        },
    }
    let tspec = &spec["template"]["spec"];
    validate_containers(tspec, "spec.template.spec", causes);
    if let Some(rp) = tspec.get("restartPolicy").and_then(Value::as_str)
        && rp != "Always"
    {
        causes.push(Cause::not_supported(
            "spec.template.spec.restartPolicy",
            &json!(rp),
            &["Always"],
        ));
    }
    if deployment
        && let Some(st) = spec["strategy"]["type"].as_str()
        && !["RollingUpdate", "Recreate"].contains(&st)
    {
        causes.push(Cause::not_supported(
            "spec.strategy.type",
            &json!(st),
            &["Recreate", "RollingUpdate"],
        ));
    }
}

pub(crate) fn without(v: &Value, key: &str) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove(key);
    }
    v
}

/// `spec.selector` may not change (`Deployment`, `ReplicaSet`, `DaemonSet`, `StatefulSet`...).
#[must_use]
pub(crate) fn selector_immutable(old: &Value, new: &Value) -> Vec<Cause> {
    if old["spec"]["selector"] == new["spec"]["selector"] {
        Vec::new()
    } else {
        vec![Cause::invalid(
            "spec.selector",
            &new["spec"]["selector"],
            "field is immutable",
        )]
    }
}

/// A `FieldValueRequired` cause with upstream's detail (`field.Required(path, detail)`).
#[must_use]
pub(crate) fn required_because(field: impl Into<String>, detail: &str) -> Cause {
    let mut c = Cause::required(field);
    if !detail.is_empty() {
        c.message = format!("Required value: {detail}");
    }
    c
}

/// A `FieldValueTooLong` cause (`field.TooLong(path, value, max)`).
#[must_use]
pub(crate) fn too_long(field: impl Into<String>, max: usize) -> Cause {
    let unit = if max == 1 { "byte" } else { "bytes" };
    Cause {
        reason: "FieldValueTooLong",
        field: field.into(),
        message: format!("Too long: may not be more than {max} {unit}"),
    }
}

/// Upstream's `ValidateQualifiedName`: one `Invalid` cause per problem of `value` as a
/// qualified name (`[prefix/]name`, the prefix an RFC 1123 subdomain).
#[must_use]
pub(crate) fn qualified_name_causes(field: &str, value: &str) -> Vec<Cause> {
    const NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    let v = json!(value);
    let parts: Vec<&str> = value.split('/').collect();
    let mut out = Vec::new();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                out.push(Cause::invalid(field, &v, "prefix part must be non-empty"));
            } else if !is_dns1123_subdomain(prefix) {
                let msg = if prefix.len() > 253 {
                    "prefix part must be no more than 253 characters".to_string()
                } else {
                    format!("prefix part {DNS1123_SUBDOMAIN_MSG}")
                };
                out.push(Cause::invalid(field, &v, &msg));
            }
            name
        }
        _ => {
            out.push(Cause::invalid(
                field,
                &v,
                &format!("a qualified name {NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"),
            ));
            return out;
        }
    };
    if name.is_empty() {
        out.push(Cause::invalid(field, &v, "name part must be non-empty"));
    } else if name.len() > 63 {
        out.push(Cause::invalid(
            field,
            &v,
            "name part must be no more than 63 characters",
        ));
    }
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c));
    if !ok {
        out.push(Cause::invalid(field, &v, &format!("name part {NAME_MSG}")));
    }
    out
}

/// A quantity (`500m`, `1Gi`, a JSON number) as a number of units, through the one exact
/// parser (`sluice-k8s-values`); `None` if it does not parse. For comparisons in validation
/// only: values are exact to the milli-unit below 9.2e15 units and to the unit above.
#[allow(
    clippy::cast_precision_loss,
    reason = "validation compares quantities; exactness beyond 2^53 milli-units is not needed"
)]
pub(crate) fn quantity(v: &Value) -> Option<f64> {
    let s = match v {
        Value::String(s) => s.trim(),
        Value::Number(n) => return n.as_f64(),
        _ => return None,
    };
    sluice_k8s_values::quantity::milli_value(s)
        .map(|m| m as f64 / 1000.0)
        .or_else(|_| sluice_k8s_values::quantity::value(s).map(|u| u as f64))
        .ok()
}

/// `path` must be absent or a non-negative integer (upstream's `ValidateNonnegativeField`).
pub(crate) fn non_negative(v: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(x) = v.as_i64()
        && x < 0
    {
        causes.push(Cause::invalid(
            path,
            v,
            "must be greater than or equal to 0",
        ));
    }
}

/// `path` may not change between `old` and `new` (upstream's `ValidateImmutableField`).
pub(crate) fn immutable(old: &Value, new: &Value, path: &str, causes: &mut Vec<Cause>) {
    if old != new {
        causes.push(Cause::invalid(path, new, "field is immutable"));
    }
}

/// Selector and pod template rules of the controllers that run pods forever (`DaemonSet`,
/// `StatefulSet`; `kind` as written in messages): the selector is required and not empty,
/// matches the template's labels, the template's pods restart `Always` and set no
/// `activeDeadlineSeconds`.
pub(crate) fn validate_selector_and_template(spec: &Value, kind: &str, causes: &mut Vec<Cause>) {
    let tmpl_labels = spec["template"]["metadata"].get("labels");
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => causes.push(Cause::required("spec.selector")),
        Some(s) => match LabelSelector::from_json(s) {
            Err(e) => causes.push(Cause::invalid("spec.selector", s, &e)),
            Ok(ls) if ls.is_empty() => causes.push(Cause::invalid(
                "spec.selector",
                s,
                &format!("empty selector is invalid for {}", kind.to_lowercase()),
            )),
            Ok(ls) => {
                if !ls.matches(tmpl_labels) {
                    causes.push(Cause::invalid(
                        "spec.template.metadata.labels",
                        tmpl_labels.unwrap_or(&Value::Null),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        },
    }
    validate_forever_pod_template(
        &spec["template"]["spec"],
        "spec.template.spec",
        kind,
        causes,
    );
}

/// Pods of a template whose controller keeps them running: containers valid, `restartPolicy`
/// `Always`, no `activeDeadlineSeconds`.
pub(crate) fn validate_forever_pod_template(
    tspec: &Value,
    path: &str,
    kind: &str,
    causes: &mut Vec<Cause>,
) {
    validate_containers(tspec, path, causes);
    if let Some(rp) = tspec.get("restartPolicy").and_then(Value::as_str)
        && rp != "Always"
    {
        causes.push(Cause::not_supported(
            format!("{path}.restartPolicy"),
            &json!(rp),
            &["Always"],
        ));
    }
    if tspec
        .get("activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null())
    {
        causes.push(Cause::forbidden(
            format!("{path}.activeDeadlineSeconds"),
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

/// An int-or-string that must be a non-negative integer or a percentage of at most 100%
/// (upstream's `ValidatePositiveIntOrPercent` + `IsNotMoreThan100Percent`).
pub(crate) fn int_or_percent(v: &Value, path: &str, causes: &mut Vec<Cause>) {
    match v {
        Value::Number(n) if n.as_i64().is_some_and(|x| x < 0) => {
            causes.push(Cause::invalid(
                path,
                v,
                "must be greater than or equal to 0",
            ));
        }
        Value::String(s) => {
            let pct = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            match pct.map(str::parse::<u64>) {
                Some(Ok(p)) if p > 100 => {
                    causes.push(Cause::invalid(path, v, "must not be greater than 100%"));
                }
                Some(Ok(_)) => {}
                _ => causes.push(Cause::invalid(
                    path,
                    v,
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                )),
            }
        }
        _ => {}
    }
}

/// Drop `.status` (upstream's `PrepareForCreate` of kinds whose status only controllers write).
pub(crate) fn clear_status(obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
}

/// Copy the pod template's labels to the object's when it has none (upstream's defaulting of
/// `ReplicationController` and Job).
pub(crate) fn labels_from_template(obj: &mut Value, template: &Value) {
    let Some(tl) = template["metadata"]["labels"]
        .as_object()
        .filter(|l| !l.is_empty())
        .cloned()
    else {
        return;
    };
    let meta = obj_mut(obj, "metadata");
    if meta
        .get("labels")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty)
    {
        meta.insert("labels".into(), Value::Object(tl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_dns1123_subdomain("web-1.example"));
        assert!(!is_dns1123_subdomain("Web_1"));
        assert!(!is_dns1123_label("a.b"));
        assert!(name_error(NameRule::Dns1035Label, "1abc").is_some());
        assert!(name_error(NameRule::Subdomain, "1abc").is_none());
        assert!(name_error(NameRule::Subdomain, &"a".repeat(254)).is_some());
        assert!(name_error(NameRule::PathSegment, "system:admin").is_none());
        assert!(name_error(NameRule::PathSegment, "a/b").is_some());
        assert_eq!(
            path_segment_problems(".."),
            vec!["may not be '..'".to_string()]
        );
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let mut d = json!({"metadata": {"name": "d"}, "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        default_workload(&mut d, true);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        let mut causes = Vec::new();
        validate_workload(&d, true, &mut causes);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.template.metadata.labels");
    }
}
