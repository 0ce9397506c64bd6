//! `storage.k8s.io/v1 CSIDriver`: its strategy and resource entry.

use k8s_openapi::api::storage;
use serde_json::{Value, json};

use super::super::Resource;
use super::super::printers::{age, s};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{obj_mut, set_default};
use crate::apiserver::status::Cause;

/// The `csidrivers` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "storage.k8s.io",
        "v1",
        "csidrivers",
        "csidriver",
        "CSIDriver",
        false,
        CsiDriverStrategy,
    )
}

const FS_GROUP_POLICIES: [&str; 3] = ["File", "None", "ReadWriteOnceWithFSType"];
const LIFECYCLE_MODES: [&str; 2] = ["Persistent", "Ephemeral"];

/// Upstream's `CSIDriver` strategy and printer.
pub struct CsiDriverStrategy;

impl Strategy for CsiDriverStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<storage::v1::CSIDriver>(input)
    }

    /// `SetDefaults_CSIDriver` (with `SELinuxMountReadWriteOncePod` on, as it is by default).
    fn default(&self, obj: &mut Value) {
        let spec = obj_mut(obj, "spec");
        set_default(spec, "attachRequired", json!(true));
        set_default(spec, "podInfoOnMount", json!(false));
        set_default(spec, "storageCapacity", json!(false));
        set_default(spec, "fsGroupPolicy", json!("ReadWriteOnceWithFSType"));
        if spec
            .get("volumeLifecycleModes")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            spec.insert("volumeLifecycleModes".into(), json!(["Persistent"]));
        }
        set_default(spec, "requiresRepublish", json!(false));
        set_default(spec, "seLinuxMount", json!(false));
    }

    /// `validateCSIDriverSpec`; upstream's paths include its `attachedRequired` spelling.
    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let spec = &obj["spec"];
        let mut causes = Vec::new();
        for (field, path) in [
            ("attachRequired", "spec.attachedRequired"),
            ("podInfoOnMount", "spec.podInfoOnMount"),
            ("storageCapacity", "spec.storageCapacity"),
        ] {
            if !spec[field].is_boolean() {
                causes.push(Cause::required(path));
            }
        }
        if let Some(p) = spec["fsGroupPolicy"].as_str()
            && !FS_GROUP_POLICIES.contains(&p)
        {
            causes.push(Cause::not_supported(
                "spec.fsGroupPolicy",
                &json!(p),
                &FS_GROUP_POLICIES,
            ));
        }
        let mut audiences: Vec<String> = Vec::new();
        for (i, t) in spec["tokenRequests"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let path = format!("spec.tokenRequests[{i}]");
            let audience = s(&t["audience"]);
            if audiences.contains(&audience) {
                causes.push(Cause::duplicate(
                    format!("{path}.audience"),
                    &json!(audience),
                ));
                continue;
            }
            audiences.push(audience);
            let Some(exp) = t["expirationSeconds"].as_i64() else {
                continue;
            };
            if exp < 600 {
                causes.push(Cause::invalid(
                    format!("{path}.expirationSeconds"),
                    &json!(exp),
                    "may not specify a duration less than 10 minutes",
                ));
            }
            if exp > 1 << 32 {
                causes.push(Cause::invalid(
                    format!("{path}.expirationSeconds"),
                    &json!(exp),
                    "may not specify a duration larger than 2^32 seconds",
                ));
            }
        }
        for m in spec["volumeLifecycleModes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if !m.as_str().is_some_and(|m| LIFECYCLE_MODES.contains(&m)) {
                causes.push(Cause::not_supported(
                    "spec.volumeLifecycleModes",
                    m,
                    &LIFECYCLE_MODES,
                ));
            }
        }
        if !spec["seLinuxMount"].is_boolean() {
            causes.push(Cause::required("spec.seLinuxMount"));
        }
        if let Some(p) = spec["nodeAllocatableUpdatePeriodSeconds"].as_i64()
            && p < 10
        {
            causes.push(Cause::invalid(
                "spec.nodeAllocatableUpdatePeriodSeconds",
                &json!(p),
                "must be greater than or equal to 10 seconds",
            ));
        }
        causes
    }

    /// `ValidateCSIDriverUpdate`: `attachRequired` and `volumeLifecycleModes` are fixed.
    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        for (field, path) in [
            ("attachRequired", "spec.attachedRequired"),
            ("volumeLifecycleModes", "spec.volumeLifecycleModes"),
        ] {
            if old["spec"][field] != new["spec"][field] {
                causes.push(Cause::invalid(
                    path,
                    &new["spec"][field],
                    "field is immutable",
                ));
            }
        }
        causes
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("CSIDriver", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("AttachRequired", "boolean", 0),
            col("PodInfoOnMount", "boolean", 0),
            col("StorageCapacity", "boolean", 0),
            col("TokenRequests", "string", 0),
            col("RequiresRepublish", "boolean", 0),
            col("Modes", "string", 0),
            col("Age", "string", 0),
        ]
    }

    /// `printCSIDriver`.
    fn cells(&self, o: &Value) -> Vec<Value> {
        let spec = &o["spec"];
        let modes: Vec<String> = spec["volumeLifecycleModes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        let tokens = spec["tokenRequests"].as_array().map_or_else(
            || "<unset>".to_string(),
            |ts| {
                ts.iter()
                    .map(|t| s(&t["audience"]))
                    .collect::<Vec<_>>()
                    .join(",")
            },
        );
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(spec["attachRequired"].as_bool().unwrap_or(true)),
            json!(spec["podInfoOnMount"].as_bool().unwrap_or(false)),
            json!(spec["storageCapacity"].as_bool().unwrap_or(false)),
            json!(tokens),
            json!(spec["requiresRepublish"].as_bool().unwrap_or(false)),
            json!(if modes.is_empty() {
                "<none>".to_string()
            } else {
                modes.join(",")
            }),
            json!(age(&o["metadata"]["creationTimestamp"])),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    #[test]
    fn defaults_like_upstream() {
        let mut d = json!({"metadata": {"name": "hostpath.csi.k8s.io"}});
        CsiDriverStrategy.default(&mut d);
        assert_eq!(
            d["spec"],
            json!({"attachRequired": true, "podInfoOnMount": false, "storageCapacity": false,
                "fsGroupPolicy": "ReadWriteOnceWithFSType", "volumeLifecycleModes": ["Persistent"],
                "requiresRepublish": false, "seLinuxMount": false})
        );
        assert!(CsiDriverStrategy.validate(&d, &CX).is_empty());
    }

    #[test]
    fn validation_uses_upstream_paths() {
        let mut d = json!({"metadata": {"name": "d"}, "spec": {"fsGroupPolicy": "Sometimes",
            "volumeLifecycleModes": ["Forever"],
            "tokenRequests": [{"audience": "a", "expirationSeconds": 60}, {"audience": "a"}]}});
        CsiDriverStrategy.default(&mut d);
        let fields: Vec<String> = CsiDriverStrategy
            .validate(&d, &CX)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.fsGroupPolicy",
                "spec.tokenRequests[0].expirationSeconds",
                "spec.tokenRequests[1].audience",
                "spec.volumeLifecycleModes"
            ]
        );
        let bare = json!({"metadata": {"name": "d"}, "spec": {"podInfoOnMount": true}});
        let causes = CsiDriverStrategy.validate(&bare, &CX);
        assert_eq!(causes[0].field, "spec.attachedRequired");
        assert_eq!(causes[0].message, "Required value");
    }

    #[test]
    fn attach_required_and_modes_are_immutable() {
        let mut old = json!({"metadata": {"name": "d"}});
        CsiDriverStrategy.default(&mut old);
        let mut new = old.clone();
        new["spec"]["attachRequired"] = json!(false);
        new["spec"]["podInfoOnMount"] = json!(true);
        let causes = CsiDriverStrategy.validate_update(&old, &new);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.attachedRequired");
        assert_eq!(
            causes[0].message,
            "Invalid value: false: field is immutable"
        );
    }

    #[test]
    fn cells_like_kubectl() {
        let mut d = json!({"metadata": {"name": "hostpath.csi.k8s.io"},
            "spec": {"volumeLifecycleModes": ["Persistent", "Ephemeral"], "tokenRequests": [{"audience": "vault"}]}});
        CsiDriverStrategy.default(&mut d);
        let c = CsiDriverStrategy.cells(&d);
        assert_eq!(c.len(), CsiDriverStrategy.columns().len());
        assert_eq!(
            &c[..7],
            &[
                json!("hostpath.csi.k8s.io"),
                json!(true),
                json!(false),
                json!(false),
                json!("vault"),
                json!(false),
                json!("Persistent,Ephemeral")
            ]
        );
        let bare = CsiDriverStrategy.cells(&json!({}));
        assert_eq!(bare.len(), 8);
        assert_eq!(bare[4], "<unset>");
        assert_eq!(bare[6], "<none>");
    }
}
