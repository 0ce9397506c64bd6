//! `meta.k8s.io/v1` Table output: the columns `kubectl get` prints for each kind.

use serde_json::{Value, json};

use super::Req;
use super::selectors::LabelSelector;
use crate::registry::Resource;

struct Col {
    name: &'static str,
    ty: &'static str,
    priority: u8,
}

const fn c(name: &'static str, ty: &'static str, priority: u8) -> Col {
    Col { name, ty, priority }
}

fn columns(kind: &str) -> Vec<Col> {
    match kind {
        "Pod" => vec![
            c("Name", "string", 0),
            c("Ready", "string", 0),
            c("Status", "string", 0),
            c("Restarts", "string", 0),
            c("Age", "string", 0),
            c("IP", "string", 1),
            c("Node", "string", 1),
            c("Nominated Node", "string", 1),
            c("Readiness Gates", "string", 1),
        ],
        "Node" => vec![
            c("Name", "string", 0),
            c("Status", "string", 0),
            c("Roles", "string", 0),
            c("Age", "string", 0),
            c("Version", "string", 0),
            c("Internal-IP", "string", 1),
            c("External-IP", "string", 1),
            c("OS-Image", "string", 1),
            c("Kernel-Version", "string", 1),
            c("Container-Runtime", "string", 1),
        ],
        "Service" => vec![
            c("Name", "string", 0),
            c("Type", "string", 0),
            c("Cluster-IP", "string", 0),
            c("External-IP", "string", 0),
            c("Port(s)", "string", 0),
            c("Age", "string", 0),
            c("Selector", "string", 1),
        ],
        "Deployment" => vec![
            c("Name", "string", 0),
            c("Ready", "string", 0),
            c("Up-to-date", "integer", 0),
            c("Available", "integer", 0),
            c("Age", "string", 0),
            c("Containers", "string", 1),
            c("Images", "string", 1),
            c("Selector", "string", 1),
        ],
        "ReplicaSet" => vec![
            c("Name", "string", 0),
            c("Desired", "integer", 0),
            c("Current", "integer", 0),
            c("Ready", "integer", 0),
            c("Age", "string", 0),
            c("Containers", "string", 1),
            c("Images", "string", 1),
            c("Selector", "string", 1),
        ],
        "EndpointSlice" => vec![
            c("Name", "string", 0),
            c("AddressType", "string", 0),
            c("Ports", "string", 0),
            c("Endpoints", "string", 0),
            c("Age", "string", 0),
        ],
        "Endpoints" => vec![
            c("Name", "string", 0),
            c("Endpoints", "string", 0),
            c("Age", "string", 0),
        ],
        "Namespace" => vec![
            c("Name", "string", 0),
            c("Status", "string", 0),
            c("Age", "string", 0),
        ],
        "ConfigMap" => vec![
            c("Name", "string", 0),
            c("Data", "integer", 0),
            c("Age", "string", 0),
        ],
        "Secret" => vec![
            c("Name", "string", 0),
            c("Type", "string", 0),
            c("Data", "integer", 0),
            c("Age", "string", 0),
        ],
        "ServiceAccount" => vec![
            c("Name", "string", 0),
            c("Secrets", "integer", 0),
            c("Age", "string", 0),
        ],
        "Lease" => vec![
            c("Name", "string", 0),
            c("Holder", "string", 0),
            c("Age", "string", 0),
        ],
        "Event" => vec![
            c("Last Seen", "string", 0),
            c("Type", "string", 0),
            c("Reason", "string", 0),
            c("Object", "string", 0),
            c("Message", "string", 0),
        ],
        _ => vec![c("Name", "string", 0), c("Age", "string", 0)],
    }
}

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

fn age(ts: &Value) -> String {
    let Some(t) = ts
        .as_str()
        .and_then(|s| s.parse::<k8s_openapi::jiff::Timestamp>().ok())
    else {
        return "<unknown>".into();
    };
    human_duration(k8s_openapi::jiff::Timestamp::now().as_second() - t.as_second())
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn n(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn none_if_empty(x: String) -> String {
    if x.is_empty() { "<none>".into() } else { x }
}

fn containers_images(tmpl_spec: &Value) -> (String, String) {
    let cs = tmpl_spec["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<String> = cs.iter().map(|c| s(&c["name"])).collect();
    let images: Vec<String> = cs.iter().map(|c| s(&c["image"])).collect();
    (names.join(","), images.join(","))
}

fn selector_string(sel: &Value) -> String {
    none_if_empty(
        LabelSelector::from_json(sel)
            .map(|l| l.render())
            .unwrap_or_default(),
    )
}

fn pod_status(p: &Value) -> String {
    let mut reason = p["status"]["reason"]
        .as_str()
        .or_else(|| p["status"]["phase"].as_str())
        .unwrap_or("Unknown")
        .to_string();
    let init = p["status"]["initContainerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut initializing = false;
    for (i, cs) in init.iter().enumerate() {
        let st = &cs["state"];
        if st["terminated"]["exitCode"].as_i64() == Some(0) {
            continue;
        }
        initializing = true;
        reason = if let Some(r) = st["terminated"]["reason"].as_str() {
            format!("Init:{r}")
        } else if let Some(r) = st["waiting"]["reason"]
            .as_str()
            .filter(|r| *r != "PodInitializing")
        {
            format!("Init:{r}")
        } else {
            format!("Init:{i}/{}", init.len())
        };
        break;
    }
    if !initializing {
        let mut has_running = false;
        for cs in p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .rev()
        {
            let st = &cs["state"];
            if let Some(r) = st["waiting"]["reason"].as_str() {
                reason = r.to_string();
            } else if let Some(r) = st["terminated"]["reason"].as_str() {
                reason = r.to_string();
            } else if st["terminated"].is_object() {
                reason = format!("ExitCode:{}", n(&st["terminated"]["exitCode"]));
            } else if st["running"].is_object() && cs["ready"].as_bool() == Some(true) {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            reason = "Running".into();
        }
    }
    if p["metadata"]
        .get("deletionTimestamp")
        .is_some_and(|d| !d.is_null())
    {
        reason = "Terminating".into();
    }
    reason
}

fn cells(kind: &str, o: &Value) -> Vec<Value> {
    let name = json!(s(&o["metadata"]["name"]));
    let a = json!(age(&o["metadata"]["creationTimestamp"]));
    match kind {
        "Pod" => {
            let statuses = o["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses
                .iter()
                .filter(|c| c["ready"].as_bool() == Some(true))
                .count();
            let restarts: i64 = statuses.iter().map(|c| n(&c["restartCount"])).sum();
            let ip = none_if_empty(s(&o["status"]["podIP"]));
            let node = none_if_empty(s(&o["spec"]["nodeName"]));
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status(o)),
                json!(restarts.to_string()),
                a,
                json!(ip),
                json!(node),
                json!(none_if_empty(s(&o["status"]["nominatedNodeName"]))),
                json!("<none>"),
            ]
        }
        "Node" => {
            let conds = o["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut status = match conds
                .iter()
                .find(|c| c["type"] == "Ready")
                .map(|c| s(&c["status"]))
            {
                Some(x) if x == "True" => "Ready".to_string(),
                Some(x) if x == "False" => "NotReady".to_string(),
                _ => "Unknown".to_string(),
            };
            if o["spec"]["unschedulable"].as_bool() == Some(true) {
                status.push_str(",SchedulingDisabled");
            }
            let roles: Vec<String> = o["metadata"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/").map(String::from))
                .collect();
            let addr = |t: &str| {
                none_if_empty(
                    o["status"]["addresses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|a| a["type"] == t)
                        .map(|a| s(&a["address"]))
                        .unwrap_or_default(),
                )
            };
            let info = &o["status"]["nodeInfo"];
            vec![
                name,
                json!(status),
                json!(none_if_empty(roles.join(","))),
                a,
                json!(s(&info["kubeletVersion"])),
                json!(addr("InternalIP")),
                json!(addr("ExternalIP")),
                json!(none_if_empty(s(&info["osImage"]))),
                json!(none_if_empty(s(&info["kernelVersion"]))),
                json!(none_if_empty(s(&info["containerRuntimeVersion"]))),
            ]
        }
        "Service" => {
            let ty = s(&o["spec"]["type"]);
            let ports: Vec<String> = o["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let proto = p["protocol"].as_str().unwrap_or("TCP");
                    match p["nodePort"].as_i64() {
                        Some(np) => format!("{}:{np}/{proto}", n(&p["port"])),
                        None => format!("{}/{proto}", n(&p["port"])),
                    }
                })
                .collect();
            let mut ext: Vec<String> = o["spec"]["externalIPs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(s)
                .collect();
            ext.extend(
                o["status"]["loadBalancer"]["ingress"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|i| s(&i["ip"])),
            );
            let external = if ext.is_empty() {
                if ty == "LoadBalancer" {
                    "<pending>".to_string()
                } else {
                    "<none>".to_string()
                }
            } else {
                ext.join(",")
            };
            let selector: Vec<String> = o["spec"]["selector"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", s(v)))
                .collect();
            vec![
                name,
                json!(ty),
                json!(none_if_empty(s(&o["spec"]["clusterIP"]))),
                json!(external),
                json!(none_if_empty(ports.join(","))),
                a,
                json!(none_if_empty(selector.join(","))),
            ]
        }
        "Deployment" => {
            let (cs, imgs) = containers_images(&o["spec"]["template"]["spec"]);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    n(&o["status"]["readyReplicas"]),
                    n(&o["spec"]["replicas"])
                )),
                json!(n(&o["status"]["updatedReplicas"])),
                json!(n(&o["status"]["availableReplicas"])),
                a,
                json!(cs),
                json!(imgs),
                json!(selector_string(&o["spec"]["selector"])),
            ]
        }
        "ReplicaSet" => {
            let (cs, imgs) = containers_images(&o["spec"]["template"]["spec"]);
            vec![
                name,
                json!(n(&o["spec"]["replicas"])),
                json!(n(&o["status"]["replicas"])),
                json!(n(&o["status"]["readyReplicas"])),
                a,
                json!(cs),
                json!(imgs),
                json!(selector_string(&o["spec"]["selector"])),
            ]
        }
        "EndpointSlice" => {
            let ports: Vec<String> = o["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| n(&p["port"]).to_string())
                .collect();
            let addrs: Vec<String> = o["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
                .map(|a| s(&a))
                .collect();
            let shown = if addrs.len() > 3 {
                format!("{} + {} more...", addrs[..3].join(","), addrs.len() - 3)
            } else if addrs.is_empty() {
                "<unset>".into()
            } else {
                addrs.join(",")
            };
            vec![
                name,
                json!(s(&o["addressType"])),
                json!(if ports.is_empty() {
                    "<unset>".into()
                } else {
                    ports.join(",")
                }),
                json!(shown),
                a,
            ]
        }
        "Endpoints" => {
            let mut eps = Vec::new();
            for ss in o["subsets"].as_array().into_iter().flatten() {
                for ad in ss["addresses"].as_array().into_iter().flatten() {
                    for p in ss["ports"].as_array().into_iter().flatten() {
                        eps.push(format!("{}:{}", s(&ad["ip"]), n(&p["port"])));
                    }
                }
            }
            let shown = if eps.len() > 3 {
                format!("{} + {} more...", eps[..3].join(","), eps.len() - 3)
            } else {
                none_if_empty(eps.join(","))
            };
            vec![name, json!(shown), a]
        }
        "Namespace" => vec![name, json!(s(&o["status"]["phase"])), a],
        "ConfigMap" => {
            let count = o["data"].as_object().map_or(0, serde_json::Map::len)
                + o["binaryData"].as_object().map_or(0, serde_json::Map::len);
            vec![name, json!(count), a]
        }
        "Secret" => vec![
            name,
            json!(s(&o["type"])),
            json!(o["data"].as_object().map_or(0, serde_json::Map::len)),
            a,
        ],
        "ServiceAccount" => vec![name, json!(o["secrets"].as_array().map_or(0, Vec::len)), a],
        "Lease" => vec![
            name,
            json!(none_if_empty(s(&o["spec"]["holderIdentity"]))),
            a,
        ],
        "Event" => {
            let last = if o["lastTimestamp"].is_string() {
                &o["lastTimestamp"]
            } else if o["eventTime"].is_string() {
                &o["eventTime"]
            } else {
                &o["metadata"]["creationTimestamp"]
            };
            let obj = if o["involvedObject"].is_object() {
                &o["involvedObject"]
            } else {
                &o["regarding"]
            };
            let message = if o["message"].is_string() {
                &o["message"]
            } else {
                &o["note"]
            };
            vec![
                json!(age(last)),
                json!(s(&o["type"])),
                json!(s(&o["reason"])),
                json!(format!(
                    "{}/{}",
                    s(&obj["kind"]).to_lowercase(),
                    s(&obj["name"])
                )),
                json!(s(message)),
            ]
        }
        _ => vec![name, a],
    }
}

fn row_object(o: &Value, include: Option<&str>) -> Value {
    match include {
        Some("None") => Value::Null,
        Some("Object") => o.clone(),
        _ => {
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]})
        }
    }
}

fn column_defs(kind: &str) -> Vec<Value> {
    columns(kind)
        .iter()
        .map(|c| {
            let format = if c.name == "Name" { "name" } else { "" };
            json!({"name": c.name, "type": c.ty, "format": format, "description": c.name, "priority": c.priority})
        })
        .collect()
}

/// A Table of `items`.
pub(super) fn table(
    r: &Resource,
    items: &[Value],
    with_defs: bool,
    req: &Req,
    rev: Option<i64>,
    cont: Option<String>,
) -> Value {
    let include = req.q("includeObject");
    let rows: Vec<Value> = items
        .iter()
        .map(|o| json!({"cells": cells(r.kind, o), "object": row_object(o, include)}))
        .collect();
    let mut meta = json!({});
    if let Some(rev) = rev {
        meta["resourceVersion"] = json!(rev.to_string());
    }
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
        "columnDefinitions": if with_defs { column_defs(r.kind) } else { Vec::new() },
        "rows": rows,
    })
}

/// The Table a watch event carries: one row; column definitions only in the first event.
pub(super) fn table_for_watch(
    r: &Resource,
    obj: &Value,
    first: bool,
    include: Option<&str>,
    _wide: bool,
) -> Value {
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
        "columnDefinitions": if first { column_defs(r.kind) } else { Vec::new() },
        "rows": [{"cells": cells(r.kind, obj), "object": row_object(obj, include)}],
    })
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

    #[test]
    fn pod_cells() {
        let p = json!({"metadata": {"name": "p", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIP": "10.244.0.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let c = cells("Pod", &p);
        assert_eq!(c[1], "1/2");
        assert_eq!(c[2], "CrashLoopBackOff");
        assert_eq!(c[3], "3");
        assert_eq!(c[5], "10.244.0.5");
        assert_eq!(c[6], "n1");
        assert_eq!(c.len(), columns("Pod").len());
    }

    #[test]
    fn service_and_deployment_cells() {
        let s = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.10",
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}], "selector": {"app": "web"}}});
        let c = cells("Service", &s);
        assert_eq!(c[4], "80:30080/TCP");
        assert_eq!(c[3], "<none>");
        assert_eq!(c[6], "app=web");
        let d = json!({"metadata": {"name": "d"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "web", "image": "img:1"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let c = cells("Deployment", &d);
        assert_eq!(c[1], "2/3");
        assert_eq!(c[5], "web");
        assert_eq!(c[6], "img:1");
        for kind in [
            "Node",
            "ReplicaSet",
            "EndpointSlice",
            "Endpoints",
            "Namespace",
            "Event",
            "ConfigMap",
        ] {
            assert_eq!(cells(kind, &json!({})).len(), columns(kind).len(), "{kind}");
        }
    }
}
