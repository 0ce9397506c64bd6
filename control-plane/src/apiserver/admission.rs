//! Defaulting and validation of objects, per kind, as upstream's strategies do it.

use serde_json::{Map, Value, json};

use super::selectors::LabelSelector;
use super::status::Cause;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

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

fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// How a kind's names are validated.
fn name_rule(kind: &str) -> (fn(&str) -> bool, &'static str) {
    match kind {
        "Namespace" => (is_dns1123_label, DNS1123_LABEL_MSG),
        "Service" => (is_dns1035_label, DNS1035_LABEL_MSG),
        _ => (is_dns1123_subdomain, DNS1123_SUBDOMAIN_MSG),
    }
}

/// Validate a name for a kind; `None` if valid.
#[must_use]
pub fn name_error(kind: &str, name: &str) -> Option<Cause> {
    let (ok, msg) = name_rule(kind);
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

fn validate_meta(obj: &Value, causes: &mut Vec<Cause>) {
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

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object) {
        v[key] = json!({});
    }
    v[key].as_object_mut().expect("just made an object")
}

fn set_default(map: &mut Map<String, Value>, key: &str, value: Value) {
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

fn default_workload(obj: &mut Value, kind: &str) {
    let spec = obj_mut(obj, "spec");
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "minReadySeconds", json!(0));
    if kind == "Deployment" {
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

fn default_service(obj: &mut Value) {
    let spec = obj_mut(obj, "spec");
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    let ty = spec["type"].as_str().unwrap_or_default().to_string();
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty != "ExternalName" {
        set_default(spec, "ipFamilies", json!(["IPv4"]));
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            let port = p["port"].clone();
            if let Some(pm) = p.as_object_mut() {
                set_default(pm, "protocol", json!("TCP"));
                set_default(pm, "targetPort", port);
            }
        }
    }
    set_default(obj_mut(obj, "status"), "loadBalancer", json!({}));
}

/// Apply upstream's defaults for a kind in place.
pub fn default_object(kind: &str, obj: &mut Value) {
    match kind {
        "Pod" => {
            if let Some(spec) = obj.get_mut("spec") {
                default_pod_spec(spec);
            }
            let status = obj_mut(obj, "status");
            set_default(status, "phase", json!("Pending"));
            set_default(status, "qosClass", json!("BestEffort"));
            let qos = pod_qos(obj);
            obj["status"]["qosClass"] = json!(qos);
        }
        "Deployment" | "ReplicaSet" => default_workload(obj, kind),
        "Service" => default_service(obj),
        "Namespace" => {
            set_default(obj_mut(obj, "spec"), "finalizers", json!(["kubernetes"]));
            set_default(obj_mut(obj, "status"), "phase", json!("Active"));
            let name = obj["metadata"]["name"].clone();
            let meta = obj_mut(obj, "metadata");
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), name);
            }
        }
        "Secret" => set_default(
            obj.as_object_mut().expect("object"),
            "type",
            json!("Opaque"),
        ),
        "Node" => {
            let status = obj_mut(obj, "status");
            if let Some(alloc) = status.get("capacity").cloned() {
                set_default(status, "allocatable", alloc);
            }
        }
        _ => {}
    }
}

/// Quality-of-service class from container resources, as upstream computes it.
fn pod_qos(pod: &Value) -> &'static str {
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = &c["resources"]["requests"];
        let lim = &c["resources"]["limits"];
        for r in ["cpu", "memory"] {
            let (q, l) = (req.get(r), lim.get(r));
            if q.is_some() || l.is_some() {
                any = true;
            }
            match (q, l) {
                (_, None) => guaranteed = false,
                (Some(q), Some(l)) if q != l => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn validate_containers(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
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

fn validate_workload(obj: &Value, kind: &str, causes: &mut Vec<Cause>) {
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
    if kind == "Deployment"
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

fn validate_service(obj: &Value, node_ports: (u16, u16), causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&ty) {
        causes.push(Cause::not_supported(
            "spec.type",
            &json!(ty),
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ));
        return;
    }
    let ports = spec["ports"].as_array().cloned().unwrap_or_default();
    let headless = spec["clusterIP"].as_str() == Some("None");
    if ports.is_empty() && ty != "ExternalName" && !headless {
        causes.push(Cause::required("spec.ports"));
    }
    let mut names = std::collections::HashSet::new();
    let mut keys = std::collections::HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        let port = p["port"].as_i64().unwrap_or(0);
        if !(1..=65535).contains(&port) {
            causes.push(Cause::invalid(
                format!("{path}.port"),
                &p["port"],
                "must be between 1 and 65535, inclusive",
            ));
        }
        let name = p["name"].as_str().unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            causes.push(Cause::required(format!("{path}.name")));
        }
        if !name.is_empty() && !names.insert(name.to_string()) {
            causes.push(Cause::duplicate(format!("{path}.name"), &json!(name)));
        }
        let proto = p["protocol"].as_str().unwrap_or("TCP");
        if !["TCP", "UDP", "SCTP"].contains(&proto) {
            causes.push(Cause::not_supported(
                format!("{path}.protocol"),
                &json!(proto),
                &["SCTP", "TCP", "UDP"],
            ));
        }
        if !keys.insert((port, proto.to_string())) {
            causes.push(Cause::duplicate(
                path.clone(),
                &json!({"port": port, "protocol": proto}),
            ));
        }
        if let Some(np) = p.get("nodePort").and_then(Value::as_i64) {
            if ty == "ClusterIP" && np != 0 {
                causes.push(Cause::forbidden(
                    format!("{path}.nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            } else if np != 0 && !(i64::from(node_ports.0)..=i64::from(node_ports.1)).contains(&np)
            {
                causes.push(Cause::invalid(
                    format!("{path}.nodePort"),
                    &json!(np),
                    &format!("provided port is not in the valid range. The range of valid ports is {}-{}", node_ports.0, node_ports.1),
                ));
            }
        }
        match &p["targetPort"] {
            Value::Number(n) if !(1..=65535).contains(&n.as_i64().unwrap_or(0)) => {
                causes.push(Cause::invalid(
                    format!("{path}.targetPort"),
                    &p["targetPort"],
                    "must be between 1 and 65535, inclusive",
                ));
            }
            Value::String(s) if !is_dns1123_label(s) || s.len() > 15 => {
                causes.push(Cause::invalid(
                    format!("{path}.targetPort"),
                    &p["targetPort"],
                    "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                ));
            }
            _ => {}
        }
    }
    if let Some(aff) = spec["sessionAffinity"].as_str()
        && !["None", "ClientIP"].contains(&aff)
    {
        causes.push(Cause::not_supported(
            "spec.sessionAffinity",
            &json!(aff),
            &["ClientIP", "None"],
        ));
    }
}

/// Validate an object that has been defaulted; `node_ports` is the `NodePort` range.
#[must_use]
pub fn validate(kind: &str, obj: &Value, node_ports: (u16, u16)) -> Vec<Cause> {
    let mut causes = Vec::new();
    validate_meta(obj, &mut causes);
    match kind {
        "Pod" => validate_containers(&obj["spec"], "spec", &mut causes),
        "Deployment" | "ReplicaSet" => validate_workload(obj, kind, &mut causes),
        "Service" => validate_service(obj, node_ports, &mut causes),
        _ => {}
    }
    causes
}

/// Fields of a pod spec that an update may change.
fn pod_spec_mutable_view(spec: &Value) -> Value {
    let mut s = spec.clone();
    if let Some(m) = s.as_object_mut() {
        m.remove("activeDeadlineSeconds");
        m.remove("tolerations");
        m.remove("terminationGracePeriodSeconds");
        for list in ["containers", "initContainers"] {
            if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs {
                    if let Some(cm) = c.as_object_mut() {
                        cm.remove("image");
                    }
                }
            }
        }
    }
    s
}

/// Update rules beyond the generic ones: immutable fields.
#[must_use]
pub fn validate_update(kind: &str, old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    match kind {
        "Pod" => {
            let (o, n) = (&old["spec"], &new["spec"]);
            if o["nodeName"].as_str().is_some_and(|x| !x.is_empty())
                && o["nodeName"] != n["nodeName"]
            {
                causes.push(Cause::forbidden("spec.nodeName", "field is immutable"));
            } else if pod_spec_mutable_view(&without(o, "nodeName"))
                != pod_spec_mutable_view(&without(n, "nodeName"))
            {
                causes.push(Cause::forbidden(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                ));
            }
        }
        "Deployment" | "ReplicaSet" if old["spec"]["selector"] != new["spec"]["selector"] => {
            causes.push(Cause::invalid(
                "spec.selector",
                &new["spec"]["selector"],
                "field is immutable",
            ));
        }
        "Service" => {
            let oip = &old["spec"]["clusterIP"];
            let nip = &new["spec"]["clusterIP"];
            if !nip.is_null() && nip != oip {
                causes.push(Cause::invalid("spec.clusterIP", nip, "field is immutable"));
            }
        }
        _ => {}
    }
    causes
}

fn without(v: &Value, key: &str) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove(key);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_dns1123_subdomain("web-1.example"));
        assert!(!is_dns1123_subdomain("Web_1"));
        assert!(!is_dns1123_label("a.b"));
        assert!(name_error("Service", "1abc").is_some());
        assert!(name_error("Pod", "1abc").is_none());
        assert!(name_error("Pod", &"a".repeat(254)).is_some());
    }

    #[test]
    fn pod_defaults_and_qos() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "image": "busybox", "ports": [{"containerPort": 80}],
             "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}},
            {"name": "d", "image": "busybox:1.36"}]}});
        default_object("Pod", &mut pod);
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(
            pod["spec"]["containers"][1]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(pod["status"]["qosClass"], "Burstable");
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let mut d = json!({"metadata": {"name": "d"}, "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        default_object("Deployment", &mut d);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        let causes = validate("Deployment", &d, (30000, 32767));
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn service_validation() {
        let mut s =
            json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}, {"port": 81}]}});
        default_object("Service", &mut s);
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        let causes = validate("Service", &s, (30000, 32767));
        assert!(causes.iter().any(|c| c.field == "spec.ports[0].name"));
        let bad = json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 70000, "protocol": "XTP"}]}});
        let causes = validate("Service", &bad, (30000, 32767));
        assert!(causes.iter().any(|c| c.field == "spec.ports[0].port"));
        assert!(causes.iter().any(|c| c.field == "spec.ports[0].protocol"));
    }

    #[test]
    fn pod_update_only_image() {
        let old = json!({"spec": {"nodeName": "n", "containers": [{"name": "c", "image": "a"}]}});
        let ok = json!({"spec": {"nodeName": "n", "containers": [{"name": "c", "image": "b"}]}});
        let bad = json!({"spec": {"nodeName": "n", "containers": [{"name": "c2", "image": "b"}]}});
        assert!(validate_update("Pod", &old, &ok).is_empty());
        assert_eq!(validate_update("Pod", &old, &bad).len(), 1);
        let unbound = json!({"spec": {"containers": [{"name": "c", "image": "a"}]}});
        let bound = json!({"spec": {"nodeName": "n", "containers": [{"name": "c", "image": "a"}]}});
        assert!(validate_update("Pod", &unbound, &bound).is_empty());
    }
}
