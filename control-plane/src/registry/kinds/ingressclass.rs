//! `networking.k8s.io/v1 IngressClass`: its strategy and resource entry.

use k8s_openapi::api::networking;
use serde_json::{Value, json};

use super::super::Resource;
use super::super::printers::{age, s};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{
    DNS1123_LABEL_MSG, DNS1123_SUBDOMAIN_MSG, is_dns1123_label, is_dns1123_subdomain,
    required_because, set_default, too_long,
};
use super::ingress::validate_local_ref;
use crate::apiserver::status::Cause;

/// The `ingressclasses` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "networking.k8s.io",
        "v1",
        "ingressclasses",
        "ingressclass",
        "IngressClass",
        false,
        IngressClassStrategy,
    )
}

/// Upstream's `maxLenIngressClassController`.
const MAX_CONTROLLER: usize = 250;
const SCOPES: [&str; 2] = ["Cluster", "Namespace"];

/// Upstream's `IngressClass` strategy and printer.
pub struct IngressClassStrategy;

impl Strategy for IngressClassStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<networking::v1::IngressClass>(input)
    }

    fn uses_generation(&self) -> bool {
        true
    }

    /// `SetDefaults_IngressClass`: parameters are cluster-scoped unless said otherwise.
    fn default(&self, obj: &mut Value) {
        if let Some(p) = obj
            .get_mut("spec")
            .and_then(|s| s.get_mut("parameters"))
            .and_then(Value::as_object_mut)
        {
            set_default(p, "scope", json!("Cluster"));
        }
    }

    /// `validateIngressClassSpec`.
    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let spec = &obj["spec"];
        let mut causes = Vec::new();
        let controller = s(&spec["controller"]);
        if controller.len() > MAX_CONTROLLER {
            causes.push(too_long("spec.controller", MAX_CONTROLLER));
        }
        validate_domain_prefixed_path("spec.controller", &controller, &mut causes);
        let params = &spec["parameters"];
        if !params.is_null() {
            validate_local_ref(params, "spec.parameters", &mut causes);
            match params["scope"].as_str() {
                None => causes.push(Cause::required("spec.parameters.scope")),
                Some(scope) if !SCOPES.contains(&scope) => causes.push(Cause::not_supported(
                    "spec.parameters.scope",
                    &json!(scope),
                    &SCOPES,
                )),
                Some("Namespace") => match params["namespace"].as_str() {
                    None => causes.push(required_because(
                        "spec.parameters.namespace",
                        "`parameters.scope` is set to 'Namespace'",
                    )),
                    Some(ns) if !is_dns1123_label(ns) => causes.push(Cause::invalid(
                        "spec.parameters.namespace",
                        &json!(ns),
                        DNS1123_LABEL_MSG,
                    )),
                    Some(_) => {}
                },
                Some(_) => {
                    if !params["namespace"].is_null() {
                        causes.push(Cause::forbidden(
                            "spec.parameters.namespace",
                            "`parameters.scope` is set to 'Cluster'",
                        ));
                    }
                }
            }
        }
        causes
    }

    /// `validateIngressClassSpecUpdate`: the controller is fixed.
    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        if old["spec"]["controller"] == new["spec"]["controller"] {
            Vec::new()
        } else {
            vec![Cause::invalid(
                "spec.controller",
                &new["spec"]["controller"],
                "field is immutable",
            )]
        }
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("IngressClass", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Controller", "string", 0),
            col("Parameters", "string", 0),
            col("Age", "string", 0),
        ]
    }

    /// `printIngressClass`: parameters as `Kind[.apiGroup]/name`.
    fn cells(&self, o: &Value) -> Vec<Value> {
        let p = &o["spec"]["parameters"];
        let params = if p.is_null() {
            "<none>".to_string()
        } else {
            let mut kind = s(&p["kind"]);
            if let Some(g) = p["apiGroup"].as_str() {
                kind = format!("{kind}.{g}");
            }
            format!("{kind}/{}", s(&p["name"]))
        };
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(s(&o["spec"]["controller"])),
            json!(params),
            json!(age(&o["metadata"]["creationTimestamp"])),
        ]
    }
}

/// Upstream's `IsDomainPrefixedPath`: `example.com/path`.
fn validate_domain_prefixed_path(field: &str, v: &str, causes: &mut Vec<Cause>) {
    if v.is_empty() {
        causes.push(Cause::required(field));
        return;
    }
    let Some((host, path)) = v
        .split_once('/')
        .filter(|(h, p)| !h.is_empty() && !p.is_empty())
    else {
        causes.push(Cause::invalid(
            field,
            &json!(v),
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        ));
        return;
    };
    if !is_dns1123_subdomain(host) {
        causes.push(Cause::invalid(field, &json!(host), DNS1123_SUBDOMAIN_MSG));
    }
    if !path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(c))
    {
        causes.push(Cause::invalid(
            field,
            &json!(path),
            "must be a valid path (e.g. '/foo'), regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+'",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    fn class() -> Value {
        json!({"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}})
    }

    #[test]
    fn parameters_default_to_cluster_scope() {
        let mut c = class();
        IngressClassStrategy.default(&mut c);
        assert_eq!(c["spec"]["parameters"]["scope"], "Cluster");
        assert!(IngressClassStrategy.validate(&c, &CX).is_empty());
        let mut bare = json!({"metadata": {"name": "x"}, "spec": {"controller": "a.io/b"}});
        IngressClassStrategy.default(&mut bare);
        assert!(bare["spec"].get("parameters").is_none());
    }

    #[test]
    fn controller_must_be_domain_prefixed_and_scope_checked() {
        let mut c = json!({"metadata": {"name": "x"}, "spec": {"controller": "nginx",
            "parameters": {"kind": "P", "name": "p", "scope": "Namespace"}}});
        IngressClassStrategy.default(&mut c);
        let causes = IngressClassStrategy.validate(&c, &CX);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["spec.controller", "spec.parameters.namespace"]);
        assert_eq!(
            causes[0].message,
            "Invalid value: \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")"
        );
    }

    #[test]
    fn controller_is_immutable() {
        let old = class();
        let mut new = old.clone();
        new["spec"]["controller"] = json!("example.com/other");
        let causes = IngressClassStrategy.validate_update(&old, &new);
        assert_eq!(causes[0].field, "spec.controller");
        assert!(IngressClassStrategy.validate_update(&old, &old).is_empty());
    }

    #[test]
    fn cells_like_kubectl() {
        let c = IngressClassStrategy.cells(&class());
        assert_eq!(c.len(), IngressClassStrategy.columns().len());
        assert_eq!(c[1], "k8s.io/ingress-nginx");
        assert_eq!(c[2], "IngressParameters.k8s.example.com/external-lb");
        assert_eq!(IngressClassStrategy.cells(&json!({}))[2], "<none>");
    }
}
