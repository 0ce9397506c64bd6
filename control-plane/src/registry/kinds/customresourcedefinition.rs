//! `apiextensions.k8s.io/v1 CustomResourceDefinition`: its strategy and resource entry.
//! Serving the resources a CRD defines is the API server's (`apiserver/crd.rs`); this file
//! is what upstream's CRD strategy checks: names, versions, scope and structural schemas.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1;
use serde_json::{Value, json};

use super::super::printers::s;
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{is_dns1035_label, is_dns1123_label, is_dns1123_subdomain};
use super::super::{Resource, Subresource};
use crate::apiserver::status::Cause;

/// The finalizer that keeps a deleted CRD until its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// The `customresourcedefinitions` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        false,
        CustomResourceDefinitionStrategy,
    )
    .short_names(&["crd", "crds"])
    .categories(&["api-extensions"])
    .subresources(&[Subresource::Status])
}

/// Upstream's `CustomResourceDefinition` strategy and printer.
pub struct CustomResourceDefinitionStrategy;

fn names_causes(names: &Value, path: &str, causes: &mut Vec<Cause>) {
    match names["plural"].as_str() {
        None | Some("") => causes.push(Cause::required(format!("{path}.plural"))),
        Some(p) if !is_dns1123_label(p) => causes.push(Cause::invalid(
            format!("{path}.plural"),
            &json!(p),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        )),
        Some(_) => {}
    }
    if let Some(sg) = names["singular"].as_str().filter(|x| !x.is_empty())
        && !is_dns1123_label(sg)
    {
        causes.push(Cause::invalid(
            format!("{path}.singular"),
            &json!(sg),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        ));
    }
    match names["kind"].as_str() {
        None | Some("") => causes.push(Cause::required(format!("{path}.kind"))),
        Some(k) if !is_dns1035_label(&k.to_lowercase()) => causes.push(Cause::invalid(
            format!("{path}.kind"),
            &json!(k),
            "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?",
        )),
        Some(_) => {}
    }
}

impl Strategy for CustomResourceDefinitionStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<v1::CustomResourceDefinition>(input)
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn has_status(&self) -> bool {
        true
    }

    fn prepare_create(&self, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
        let fins = obj["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !fins.iter().any(|f| f == CLEANUP_FINALIZER) {
            let mut fins = fins;
            fins.push(json!(CLEANUP_FINALIZER));
            obj["metadata"]["finalizers"] = Value::Array(fins);
        }
    }

    fn default(&self, obj: &mut Value) {
        let spec = &mut obj["spec"];
        if spec["conversion"].is_null() {
            spec["conversion"] = json!({"strategy": "None"});
        }
        let kind = spec["names"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if spec["names"]["singular"].as_str().is_none_or(str::is_empty) && !kind.is_empty() {
            spec["names"]["singular"] = json!(kind.to_lowercase());
        }
        if spec["names"]["listKind"].as_str().is_none_or(str::is_empty) && !kind.is_empty() {
            spec["names"]["listKind"] = json!(format!("{kind}List"));
        }
    }

    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        let spec = &obj["spec"];
        let group = spec["group"].as_str().unwrap_or_default();
        let plural = spec["names"]["plural"].as_str().unwrap_or_default();
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        if group.is_empty() {
            causes.push(Cause::required("spec.group"));
        } else if !is_dns1123_subdomain(group) {
            causes.push(Cause::invalid("spec.group", &json!(group), "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"));
        } else if !group.contains('.') {
            causes.push(Cause::invalid(
                "spec.group",
                &json!(group),
                "should be a domain with at least one dot",
            ));
        }
        if name != format!("{plural}.{group}") {
            causes.push(Cause::invalid(
                "metadata.name",
                &json!(name),
                "must be spec.names.plural+\".\"+spec.group",
            ));
        }
        match spec["scope"].as_str() {
            Some("Namespaced" | "Cluster") => {}
            None => causes.push(Cause::required("spec.scope")),
            Some(other) => causes.push(Cause::not_supported(
                "spec.scope",
                &json!(other),
                &["Cluster", "Namespaced"],
            )),
        }
        names_causes(&spec["names"], "spec.names", &mut causes);
        let versions = spec["versions"].as_array().cloned().unwrap_or_default();
        if versions.is_empty() {
            causes.push(Cause::invalid(
                "spec.versions",
                &json!(null),
                "must have exactly one version marked as storage version",
            ));
        }
        let storage = versions
            .iter()
            .filter(|v| v["storage"].as_bool() == Some(true))
            .count();
        if !versions.is_empty() && storage != 1 {
            causes.push(Cause::invalid(
                "spec.versions",
                &spec["versions"],
                "must have exactly one version marked as storage version",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, v) in versions.iter().enumerate() {
            let path = format!("spec.versions[{i}]");
            let vname = v["name"].as_str().unwrap_or_default();
            if !is_dns1035_label(vname) {
                causes.push(Cause::invalid(
                    format!("{path}.name"),
                    &json!(vname),
                    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
                ));
            } else if !seen.insert(vname.to_string()) {
                causes.push(Cause::duplicate(format!("{path}.name"), &json!(vname)));
            }
            let schema = &v["schema"]["openAPIV3Schema"];
            if schema.is_null() {
                causes.push(Cause::required(format!("{path}.schema.openAPIV3Schema")));
                continue;
            }
            if let Err(errs) =
                sluice_structural::Schema::parse(schema, &format!("{path}.schema.openAPIV3Schema"))
            {
                causes.extend(errs.into_iter().map(|e| Cause {
                    reason: e.reason,
                    field: e.field,
                    message: e.message,
                }));
            }
        }
        causes
    }

    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        for field in ["group", "scope"] {
            if old["spec"][field] != new["spec"][field] {
                causes.push(Cause::invalid(
                    format!("spec.{field}"),
                    &new["spec"][field],
                    "field is immutable",
                ));
            }
        }
        if old["spec"]["names"]["plural"] != new["spec"]["names"]["plural"] {
            causes.push(Cause::invalid(
                "spec.names.plural",
                &new["spec"]["names"]["plural"],
                "field is immutable",
            ));
        }
        causes
    }

    fn columns(&self) -> Vec<Column> {
        vec![col("Name", "string", 0), col("Created At", "date", 0)]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        vec![
            json!(s(&obj["metadata"]["name"])),
            json!(s(&obj["metadata"]["creationTimestamp"])),
        ]
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy(
            "CustomResourceDefinition",
            path,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({"metadata": {"name": "crontabs.stable.example.com"}, "spec": {
            "group": "stable.example.com", "scope": "Namespaced",
            "names": {"plural": "crontabs", "kind": "CronTab"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object"}}}}}]}})
    }

    fn cx() -> ValidationContext {
        ValidationContext {
            node_port_range: (1, 2),
        }
    }

    #[test]
    fn defaults_names_and_adds_the_cleanup_finalizer() {
        let mut c = crd();
        CustomResourceDefinitionStrategy.prepare_create(&mut c);
        CustomResourceDefinitionStrategy.default(&mut c);
        assert_eq!(c["metadata"]["finalizers"], json!([CLEANUP_FINALIZER]));
        assert_eq!(c["spec"]["names"]["singular"], "crontab");
        assert_eq!(c["spec"]["names"]["listKind"], "CronTabList");
        assert!(
            CustomResourceDefinitionStrategy
                .validate(&c, &cx())
                .is_empty()
        );
    }

    #[test]
    fn refuses_bad_names_storage_and_non_structural_schemas() {
        let mut c = crd();
        c["metadata"]["name"] = json!("wrong");
        c["spec"]["versions"][0]["storage"] = json!(false);
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] =
            json!({"properties": {"a": {"type": "string"}}});
        let causes = CustomResourceDefinitionStrategy.validate(&c, &cx());
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert!(fields.contains(&"metadata.name"), "{causes:?}");
        assert!(fields.contains(&"spec.versions"), "{causes:?}");
        assert!(
            fields
                .iter()
                .any(|f| f.starts_with("spec.versions[0].schema.openAPIV3Schema")),
            "{causes:?}"
        );
    }

    #[test]
    fn group_and_scope_are_immutable() {
        let old = crd();
        let mut new = crd();
        new["spec"]["scope"] = json!("Cluster");
        assert_eq!(
            CustomResourceDefinitionStrategy
                .validate_update(&old, &new)
                .len(),
            1
        );
    }
}
