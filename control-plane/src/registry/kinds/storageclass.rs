//! `storage.k8s.io/v1 StorageClass`: its strategy and resource entry.

use k8s_openapi::api::storage;
use serde_json::{Value, json};

use super::super::Resource;
use super::super::printers::{age, s};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{qualified_name_causes, required_because, set_default, too_long};
use crate::apiserver::status::Cause;

/// The `storageclasses` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "storageclass",
        "StorageClass",
        false,
        StorageClassStrategy,
    )
    .short_names(&["sc"])
}

/// The annotation marking the cluster's default class, and its beta spelling (upstream's
/// `IsDefaultAnnotation` honours both).
const DEFAULT_CLASS_ANNOTATIONS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

/// Upstream's `maxProvisionerParameterLen` and `maxProvisionerParameterSize`.
const MAX_PARAMETERS: usize = 512;
const MAX_PARAMETERS_SIZE: usize = 256 * 1024;

/// Upstream's `StorageClass` strategy and printer.
pub struct StorageClassStrategy;

impl Strategy for StorageClassStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<storage::v1::StorageClass>(input)
    }

    /// `SetDefaults_StorageClass`.
    fn default(&self, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            set_default(m, "reclaimPolicy", json!("Delete"));
            set_default(m, "volumeBindingMode", json!("Immediate"));
        }
    }

    /// `ValidateStorageClass` (metadata aside).
    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        match obj["provisioner"].as_str().unwrap_or_default() {
            "" => causes.push(Cause::required("provisioner")),
            p => causes.extend(qualified_name_causes("provisioner", &p.to_lowercase())),
        }
        if let Some(params) = obj["parameters"].as_object() {
            if params.len() > MAX_PARAMETERS {
                causes.push(too_long("parameters", MAX_PARAMETERS));
            } else {
                let mut size = 0;
                for (k, v) in params {
                    if k.is_empty() {
                        causes.push(Cause::invalid(
                            "parameters",
                            &json!(k),
                            "field can not be empty.",
                        ));
                    }
                    size += k.len() + v.as_str().map_or(0, str::len);
                }
                if size > MAX_PARAMETERS_SIZE {
                    causes.push(too_long("parameters", MAX_PARAMETERS_SIZE));
                }
            }
        }
        if let Some(rp) = obj["reclaimPolicy"].as_str()
            && !rp.is_empty()
            && !["Delete", "Retain"].contains(&rp)
        {
            causes.push(Cause::not_supported(
                "reclaimPolicy",
                &json!(rp),
                &["Delete", "Retain"],
            ));
        }
        match obj["volumeBindingMode"].as_str() {
            None => causes.push(required_because("volumeBindingMode", "")),
            Some(m) if !["Immediate", "WaitForFirstConsumer"].contains(&m) => {
                causes.push(Cause::not_supported(
                    "volumeBindingMode",
                    &json!(m),
                    &["Immediate", "WaitForFirstConsumer"],
                ));
            }
            Some(_) => {}
        }
        validate_allowed_topologies(&obj["allowedTopologies"], &mut causes);
        causes
    }

    /// `ValidateStorageClassUpdate`: what provisions volumes may not change.
    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        let empty = json!({});
        let params = |o: &Value| {
            if o["parameters"].is_null() {
                empty.clone()
            } else {
                o["parameters"].clone()
            }
        };
        if params(old) != params(new) {
            causes.push(Cause::forbidden(
                "parameters",
                "updates to parameters are forbidden.",
            ));
        }
        if old["provisioner"] != new["provisioner"] {
            causes.push(Cause::forbidden(
                "provisioner",
                "updates to provisioner are forbidden.",
            ));
        }
        if old["reclaimPolicy"] != new["reclaimPolicy"] {
            causes.push(Cause::forbidden(
                "reclaimPolicy",
                "updates to reclaimPolicy are forbidden.",
            ));
        }
        if old["volumeBindingMode"] != new["volumeBindingMode"] {
            causes.push(Cause::invalid(
                "volumeBindingMode",
                &new["volumeBindingMode"],
                "field is immutable",
            ));
        }
        causes
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("StorageClass", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Provisioner", "string", 0),
            col("ReclaimPolicy", "string", 0),
            col("VolumeBindingMode", "string", 0),
            col("AllowVolumeExpansion", "string", 0),
            col("Age", "string", 0),
        ]
    }

    /// `printStorageClass`: the default class gets ` (default)` after its name.
    fn cells(&self, o: &Value) -> Vec<Value> {
        let mut name = s(&o["metadata"]["name"]);
        if is_default_class(o) {
            name.push_str(" (default)");
        }
        vec![
            json!(name),
            json!(s(&o["provisioner"])),
            json!(o["reclaimPolicy"].as_str().unwrap_or("Delete")),
            json!(o["volumeBindingMode"].as_str().unwrap_or("Immediate")),
            json!(o["allowVolumeExpansion"].as_bool().unwrap_or(false)),
            json!(age(&o["metadata"]["creationTimestamp"])),
        ]
    }
}

/// Upstream's `IsDefaultAnnotation`.
#[must_use]
pub fn is_default_class(o: &Value) -> bool {
    DEFAULT_CLASS_ANNOTATIONS
        .iter()
        .any(|a| o["metadata"]["annotations"][a].as_str() == Some("true"))
}

/// `validateAllowedTopologies`: each requirement needs a label-name key and values, keys and
/// values are sets, and no two terms may be the same.
fn validate_allowed_topologies(terms: &Value, causes: &mut Vec<Cause>) {
    let mut seen: Vec<Vec<(String, Vec<String>)>> = Vec::new();
    for (i, term) in terms.as_array().into_iter().flatten().enumerate() {
        let path = format!("allowedTopologies[{i}].matchLabelExpressions");
        let mut term_set: Vec<(String, Vec<String>)> = Vec::new();
        for (j, e) in term["matchLabelExpressions"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let ep = format!("{path}[{j}]");
            let key = s(&e["key"]);
            let mut values: Vec<String> = Vec::new();
            let raw = e["values"].as_array().cloned().unwrap_or_default();
            if raw.is_empty() {
                causes.push(Cause::required(format!("{ep}.values")));
            }
            for (k, v) in raw.iter().enumerate() {
                let v = s(v);
                if values.contains(&v) {
                    causes.push(Cause::duplicate(format!("{ep}.values[{k}]"), &json!(v)));
                } else {
                    values.push(v);
                }
            }
            causes.extend(qualified_name_causes(&format!("{ep}.key"), &key));
            values.sort();
            if term_set.iter().any(|(k, _)| *k == key) {
                causes.push(Cause::duplicate(format!("{ep}.key"), &json!(key)));
            } else {
                term_set.push((key, values));
            }
        }
        term_set.sort();
        if seen.contains(&term_set) {
            causes.push(Cause::duplicate(path, &json!("")));
        }
        seen.push(term_set);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    fn class() -> Value {
        json!({"metadata": {"name": "standard", "creationTimestamp": "2020-01-01T00:00:00Z",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path"})
    }

    #[test]
    fn defaults_reclaim_delete_and_binding_immediate() {
        let mut sc = class();
        StorageClassStrategy.default(&mut sc);
        assert_eq!(sc["reclaimPolicy"], "Delete");
        assert_eq!(sc["volumeBindingMode"], "Immediate");
        assert!(StorageClassStrategy.validate(&sc, &CX).is_empty());
    }

    #[test]
    fn provisioner_is_required_and_enums_checked() {
        let mut sc = json!({"metadata": {"name": "x"}, "reclaimPolicy": "Recycle"});
        StorageClassStrategy.default(&mut sc);
        let causes = StorageClassStrategy.validate(&sc, &CX);
        assert_eq!(causes[0].field, "provisioner");
        assert_eq!(causes[0].reason, "FieldValueRequired");
        assert_eq!(causes[1].field, "reclaimPolicy");
        assert_eq!(
            causes[1].message,
            "Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\""
        );
        let bad = json!({"metadata": {"name": "x"}, "provisioner": "a/b/c", "volumeBindingMode": "Later"});
        let fields: Vec<String> = StorageClassStrategy
            .validate(&bad, &CX)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["provisioner", "volumeBindingMode"]);
    }

    #[test]
    fn provisioning_fields_are_immutable() {
        let mut old = class();
        StorageClassStrategy.default(&mut old);
        let mut new = old.clone();
        new["parameters"] = json!({"type": "ssd"});
        new["reclaimPolicy"] = json!("Retain");
        new["volumeBindingMode"] = json!("WaitForFirstConsumer");
        new["allowVolumeExpansion"] = json!(true);
        let causes = StorageClassStrategy.validate_update(&old, &new);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["parameters", "reclaimPolicy", "volumeBindingMode"]);
        assert_eq!(
            causes[0].message,
            "Forbidden: updates to parameters are forbidden."
        );
        let mut expand = old.clone();
        expand["allowVolumeExpansion"] = json!(true);
        assert!(
            StorageClassStrategy
                .validate_update(&old, &expand)
                .is_empty()
        );
    }

    #[test]
    fn cells_mark_the_default_class() {
        let mut sc = class();
        StorageClassStrategy.default(&mut sc);
        let c = StorageClassStrategy.cells(&sc);
        assert_eq!(c.len(), StorageClassStrategy.columns().len());
        assert_eq!(c[0], "standard (default)");
        assert_eq!(c[1], "rancher.io/local-path");
        assert_eq!(c[2], "Delete");
        assert_eq!(c[3], "Immediate");
        assert_eq!(c[4], false);
        assert_eq!(StorageClassStrategy.cells(&json!({})).len(), 6);
    }
}
