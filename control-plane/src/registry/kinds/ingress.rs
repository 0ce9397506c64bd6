//! `networking.k8s.io/v1 Ingress`: its strategy and resource entry.

use k8s_openapi::api::networking;
use serde_json::{Value, json};

use super::super::printers::{age, s};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{
    DNS1035_LABEL_MSG, DNS1123_SUBDOMAIN_MSG, is_dns1035_label, is_dns1123_subdomain,
    path_segment_problems, required_because,
};
use super::super::{Resource, Subresource};
use crate::apiserver::status::Cause;

/// The `ingresses` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "ingress",
        "Ingress",
        true,
        IngressStrategy,
    )
    .short_names(&["ing"])
    .subresources(&[Subresource::Status])
}

/// The legacy class annotation, which may not disagree with `spec.ingressClassName`.
const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
const PATH_TYPES: [&str; 3] = ["Exact", "ImplementationSpecific", "Prefix"];
const INVALID_PATH_SEQUENCES: [&str; 5] = ["//", "/./", "/../", "%2f", "%2F"];
const INVALID_PATH_SUFFIXES: [&str; 2] = ["/..", "/."];
const WILDCARD_MSG: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// Upstream's `Ingress` strategy and printer.
pub struct IngressStrategy;

impl Strategy for IngressStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<networking::v1::Ingress>(input)
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn has_status(&self) -> bool {
        true
    }

    /// The load balancer status is the controller's to write.
    fn prepare_create(&self, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            m.insert("status".into(), json!({"loadBalancer": {}}));
        }
    }

    /// `ValidateIngressCreate`. Upstream checks the class annotation only on create; the
    /// strategy has no create/update split here, so an update adding the annotation to an
    /// ingress with `ingressClassName` is refused too (stricter, never looser).
    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let spec = &obj["spec"];
        let mut causes = Vec::new();
        let rules = spec["rules"].as_array().cloned().unwrap_or_default();
        if rules.is_empty() && spec["defaultBackend"].is_null() {
            causes.push(Cause::invalid(
                "spec",
                &spec["rules"],
                "either `defaultBackend` or `rules` must be specified",
            ));
        }
        if !spec["defaultBackend"].is_null() {
            validate_backend(&spec["defaultBackend"], "spec.defaultBackend", &mut causes);
        }
        for (i, rule) in rules.iter().enumerate() {
            let path = format!("spec.rules[{i}]");
            let host = s(&rule["host"]);
            if !host.is_empty() {
                if host.parse::<std::net::IpAddr>().is_ok() {
                    causes.push(Cause::invalid(
                        format!("{path}.host"),
                        &json!(host),
                        "must be a DNS name, not an IP address",
                    ));
                }
                validate_host(&host, &format!("{path}.host"), &mut causes);
            }
            if let Some(http) = rule.get("http").filter(|h| !h.is_null()) {
                let paths = http["paths"].as_array().cloned().unwrap_or_default();
                if paths.is_empty() {
                    causes.push(Cause::required(format!("{path}.http.paths")));
                }
                for (j, p) in paths.iter().enumerate() {
                    validate_path(p, &format!("{path}.http.paths[{j}]"), &mut causes);
                }
            }
        }
        for (i, tls) in spec["tls"].as_array().into_iter().flatten().enumerate() {
            for (j, host) in tls["hosts"].as_array().into_iter().flatten().enumerate() {
                validate_host(&s(host), &format!("spec.tls[{i}].hosts[{j}]"), &mut causes);
            }
            let secret = s(&tls["secretName"]);
            if !secret.is_empty() && !is_dns1123_subdomain(&secret) {
                causes.push(Cause::invalid(
                    format!("spec.tls[{i}].secretName"),
                    &json!(secret),
                    DNS1123_SUBDOMAIN_MSG,
                ));
            }
        }
        if let Some(class) = spec["ingressClassName"].as_str() {
            if !is_dns1123_subdomain(class) {
                causes.push(Cause::invalid(
                    "spec.ingressClassName",
                    &json!(class),
                    DNS1123_SUBDOMAIN_MSG,
                ));
            }
            if let Some(a) = obj["metadata"]["annotations"][CLASS_ANNOTATION].as_str() {
                causes.push(Cause::invalid(
                    format!("annotations.{CLASS_ANNOTATION}"),
                    &json!(a),
                    "can not be set when the class field is also set",
                ));
            }
        }
        causes
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("Ingress", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Class", "string", 0),
            col("Hosts", "string", 0),
            col("Address", "string", 0),
            col("Ports", "string", 0),
            col("Age", "string", 0),
        ]
    }

    /// `printIngress` as the server runs it (wide, so the address is not clipped).
    fn cells(&self, o: &Value) -> Vec<Value> {
        let spec = &o["spec"];
        let class = spec["ingressClassName"]
            .as_str()
            .unwrap_or("<none>")
            .to_string();
        let tls = spec["tls"].as_array().is_some_and(|t| !t.is_empty());
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(class),
            json!(format_hosts(&spec["rules"])),
            json!(load_balancer_address(&o["status"]["loadBalancer"])),
            json!(if tls { "80, 443" } else { "80" }),
            json!(age(&o["metadata"]["creationTimestamp"])),
        ]
    }
}

/// A rule or TLS host: a subdomain, or a wildcard one when it has a `*`.
fn validate_host(host: &str, path: &str, causes: &mut Vec<Cause>) {
    if host.contains('*') {
        let ok = host
            .strip_prefix("*.")
            .is_some_and(|rest| !rest.contains('*') && is_dns1123_subdomain(rest));
        if !ok {
            causes.push(Cause::invalid(path, &json!(host), WILDCARD_MSG));
        }
    } else if !is_dns1123_subdomain(host) {
        causes.push(Cause::invalid(path, &json!(host), DNS1123_SUBDOMAIN_MSG));
    }
}

/// `validateHTTPIngressPath`.
fn validate_path(p: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(ty) = p["pathType"].as_str() else {
        causes.push(required_because(
            format!("{path}.pathType"),
            "pathType must be specified",
        ));
        return;
    };
    let value = s(&p["path"]);
    let invalid = |causes: &mut Vec<Cause>, msg: &str| {
        causes.push(Cause::invalid(format!("{path}.path"), &json!(value), msg));
    };
    match ty {
        "Exact" | "Prefix" => {
            if !value.starts_with('/') {
                invalid(causes, "must be an absolute path");
            }
            for seq in INVALID_PATH_SEQUENCES {
                if value.contains(seq) {
                    invalid(causes, &format!("must not contain '{seq}'"));
                }
            }
            for suffix in INVALID_PATH_SUFFIXES {
                if value.ends_with(suffix) {
                    invalid(causes, &format!("cannot end with '{suffix}'"));
                }
            }
        }
        "ImplementationSpecific" => {
            if !value.is_empty() && !value.starts_with('/') {
                invalid(causes, "must be an absolute path");
            }
        }
        other => causes.push(Cause::not_supported(
            format!("{path}.pathType"),
            &json!(other),
            &PATH_TYPES,
        )),
    }
    validate_backend(&p["backend"], &format!("{path}.backend"), causes);
}

/// `validateIngressBackend`: a service (name and one of port name/number) or a resource.
fn validate_backend(b: &Value, path: &str, causes: &mut Vec<Cause>) {
    let (resource, service) = (&b["resource"], &b["service"]);
    match (resource.is_null(), service.is_null()) {
        (false, false) => causes.push(Cause::invalid(
            path,
            &json!(""),
            "cannot set both resource and service backends",
        )),
        (false, true) => validate_local_ref(resource, &format!("{path}.resource"), causes),
        (true, false) => {
            let name = s(&service["name"]);
            if name.is_empty() {
                causes.push(Cause::required(format!("{path}.service.name")));
            } else if !is_dns1035_label(&name) {
                causes.push(Cause::invalid(
                    format!("{path}.service.name"),
                    &json!(name),
                    DNS1035_LABEL_MSG,
                ));
            }
            let port_name = s(&service["port"]["name"]);
            let number = service["port"]["number"].as_i64().unwrap_or(0);
            match (port_name.is_empty(), number == 0) {
                (false, false) => causes.push(Cause::invalid(
                    path,
                    &json!(""),
                    "cannot set both port name & port number",
                )),
                (false, true) => {
                    for msg in port_name_problems(&port_name) {
                        causes.push(Cause::invalid(
                            format!("{path}.service.port.name"),
                            &json!(port_name),
                            msg,
                        ));
                    }
                }
                (true, false) => {
                    if !(1..=65535).contains(&number) {
                        causes.push(Cause::invalid(
                            format!("{path}.service.port.number"),
                            &json!(number),
                            "must be between 1 and 65535, inclusive",
                        ));
                    }
                }
                (true, true) => {
                    causes.push(required_because(path, "port name or number is required"));
                }
            }
        }
        (true, true) => causes.push(Cause::invalid(
            path,
            &json!(""),
            "resource or service backend is required",
        )),
    }
}

/// `validateIngressTypedLocalObjectReference` (also used by `IngressClass` parameters).
pub(crate) fn validate_local_ref(r: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(g) = r["apiGroup"].as_str()
        && !is_dns1123_subdomain(g)
    {
        causes.push(Cause::invalid(
            format!("{path}.apiGroup"),
            &json!(g),
            DNS1123_SUBDOMAIN_MSG,
        ));
    }
    for field in ["kind", "name"] {
        let v = s(&r[field]);
        if v.is_empty() {
            causes.push(required_because(
                format!("{path}.{field}"),
                &format!("{field} is required"),
            ));
        }
        for msg in path_segment_problems(&v) {
            causes.push(Cause::invalid(format!("{path}.{field}"), &json!(v), &msg));
        }
    }
}

/// Upstream's `IsValidPortName` (an IANA service name).
fn port_name_problems(name: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if name.len() > 15 {
        out.push("must be no more than 15 characters");
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        out.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if !name.bytes().any(|c| c.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)");
    }
    if name.contains("--") {
        out.push("must not contain consecutive hyphens (-)");
    }
    if name.starts_with('-') || name.ends_with('-') {
        out.push("must not begin or end with a hyphen (-)");
    }
    out
}

/// `formatHosts`: at most three hosts, `*` if none.
fn format_hosts(rules: &Value) -> String {
    const MAX: usize = 3;
    let rules = rules.as_array().map_or(&[][..], Vec::as_slice);
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    for r in rules {
        if list.len() == MAX {
            more = true;
        }
        let host = s(&r["host"]);
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".into();
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", rules.len() - MAX)
    } else {
        joined
    }
}

/// `ingressLoadBalancerStatusStringer`: the sorted, distinct IPs (or hostnames).
fn load_balancer_address(lb: &Value) -> String {
    let mut out: Vec<String> = lb["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            [&i["ip"], &i["hostname"]]
                .into_iter()
                .find_map(|v| v.as_str().filter(|v| !v.is_empty()))
                .map(str::to_string)
        })
        .collect();
    out.sort();
    out.dedup();
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    fn ingress() -> Value {
        json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["a.example.com"], "secretName": "tls"}],
            "rules": [{"host": "a.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}},
                {"host": "b.example.com"}, {"host": "c.example.com"}, {"host": "d.example.com"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.2"}, {"hostname": "lb.example"}, {"ip": "10.0.0.2"}]}}})
    }

    #[test]
    fn create_clears_status_and_a_good_ingress_validates() {
        let mut i = ingress();
        IngressStrategy.prepare_create(&mut i);
        IngressStrategy.default(&mut i);
        assert_eq!(i["status"], json!({"loadBalancer": {}}));
        assert!(IngressStrategy.validate(&i, &CX).is_empty());
    }

    #[test]
    fn paths_need_a_type_and_backends_a_port() {
        let i = json!({"metadata": {"name": "i"}, "spec": {"rules": [{"http": {"paths": [
            {"path": "/a"},
            {"path": "rel", "pathType": "Exact", "backend": {"service": {"name": "svc", "port": {}}}},
            {"path": "/x", "pathType": "Regex", "backend": {}}]}}]}});
        let causes = IngressStrategy.validate(&i, &CX);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.rules[0].http.paths[0].pathType",
                "spec.rules[0].http.paths[1].path",
                "spec.rules[0].http.paths[1].backend",
                "spec.rules[0].http.paths[2].pathType",
                "spec.rules[0].http.paths[2].backend",
            ]
        );
        assert_eq!(
            causes[0].message,
            "Required value: pathType must be specified"
        );
        assert_eq!(
            causes[2].message,
            "Required value: port name or number is required"
        );
        let empty = json!({"metadata": {"name": "i"}, "spec": {}});
        assert_eq!(IngressStrategy.validate(&empty, &CX)[0].field, "spec");
    }

    #[test]
    fn class_annotation_conflicts_with_the_field() {
        let mut i = ingress();
        i["metadata"]["annotations"] = json!({CLASS_ANNOTATION: "nginx"});
        let causes = IngressStrategy.validate(&i, &CX);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "annotations.kubernetes.io/ingress.class");
    }

    #[test]
    fn cells_like_kubectl() {
        let c = IngressStrategy.cells(&ingress());
        assert_eq!(c.len(), IngressStrategy.columns().len());
        assert_eq!(c[1], "nginx");
        assert_eq!(
            c[2],
            "a.example.com,b.example.com,c.example.com + 1 more..."
        );
        assert_eq!(c[3], "10.0.0.2,lb.example");
        assert_eq!(c[4], "80, 443");
        let bare = IngressStrategy.cells(&json!({}));
        assert_eq!(bare.len(), 6);
        assert_eq!(
            (&bare[1], &bare[2], &bare[4]),
            (&json!("<none>"), &json!("*"), &json!("80"))
        );
    }
}
