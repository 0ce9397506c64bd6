//! `v1 Service`: its strategy and resource entry.

use k8s_openapi::api::core::v1;
use serde_json::{Value, json};

use super::super::printers::{age, n, none_if_empty, s};
use super::super::strategy::{
    Canonical, Column, NameRule, Strategy, ValidationContext, col, typed,
};
use super::super::validation::{is_dns1123_label, obj_mut, set_default};
use super::super::{Resource, Subresource};
use crate::apiserver::status::Cause;

/// The `services` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "",
        "v1",
        "services",
        "service",
        "Service",
        true,
        ServiceStrategy,
    )
    .short_names(&["svc"])
    .categories(&["all"])
    .subresources(&[Subresource::Status, Subresource::Proxy])
}

/// Upstream's `Service` strategy and printer.
pub struct ServiceStrategy;

impl Strategy for ServiceStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<v1::Service>(input)
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Dns1035Label
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn has_status(&self) -> bool {
        true
    }

    fn default(&self, obj: &mut Value) {
        default_service(obj);
    }

    fn validate(&self, obj: &Value, cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate_service(obj, cx.node_port_range, &mut causes);
        causes
    }

    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        let (oip, nip) = (&old["spec"]["clusterIP"], &new["spec"]["clusterIP"]);
        if !nip.is_null() && nip != oip {
            vec![Cause::invalid("spec.clusterIP", nip, "field is immutable")]
        } else {
            Vec::new()
        }
    }

    fn field_selectors(&self) -> &'static [&'static str] {
        &["spec.clusterIP", "spec.type"]
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("Service", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Type", "string", 0),
            col("Cluster-IP", "string", 0),
            col("External-IP", "string", 0),
            col("Port(s)", "string", 0),
            col("Age", "string", 0),
            col("Selector", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let name = json!(s(&o["metadata"]["name"]));
        let a = json!(age(&o["metadata"]["creationTimestamp"]));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_validation() {
        let cx = ValidationContext {
            node_port_range: (30000, 32767),
        };
        let mut s =
            json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}, {"port": 81}]}});
        ServiceStrategy.default(&mut s);
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        let causes = ServiceStrategy.validate(&s, &cx);
        assert!(causes.iter().any(|c| c.field == "spec.ports[0].name"));
        let bad = json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 70000, "protocol": "XTP"}]}});
        let causes = ServiceStrategy.validate(&bad, &cx);
        assert!(causes.iter().any(|c| c.field == "spec.ports[0].port"));
        assert!(causes.iter().any(|c| c.field == "spec.ports[0].protocol"));
    }

    #[test]
    fn service_cells() {
        let s = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.10",
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}], "selector": {"app": "web"}}});
        let c = ServiceStrategy.cells(&s);
        assert_eq!(c[4], "80:30080/TCP");
        assert_eq!(c[3], "<none>");
        assert_eq!(c[6], "app=web");
    }

    #[test]
    fn every_row_fills_every_column() {
        assert_eq!(
            ServiceStrategy.cells(&json!({})).len(),
            ServiceStrategy.columns().len()
        );
    }
}
