//! `v1 PersistentVolumeClaim`: its strategy and resource entry.

use k8s_openapi::api::core;
use serde_json::{Value, json};

use super::super::printers::{access_modes, age, s};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{
    DNS1123_SUBDOMAIN_MSG, clear_status, is_dns1123_subdomain, obj_mut, quantity, set_default,
};
use super::super::{Resource, Subresource};
use crate::apiserver::status::Cause;

/// The `persistentvolumeclaims` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "",
        "v1",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        true,
        PersistentVolumeClaimStrategy,
    )
    .short_names(&["pvc"])
    .subresources(&[Subresource::Status])
}

/// Upstream's `PersistentVolumeClaim` strategy and printer.
pub struct PersistentVolumeClaimStrategy;

/// The access modes a volume or claim may ask for, sorted as upstream lists them.
pub(crate) const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

/// The annotation that named a storage class before `storageClassName`.
pub(crate) const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// Upstream's `SetDefaults_PersistentVolumeClaim` (also applied to a `StatefulSet`'s
/// `volumeClaimTemplates`).
pub(crate) fn default_claim(claim: &mut Value) {
    set_default(obj_mut(claim, "spec"), "volumeMode", json!("Filesystem"));
    set_default(obj_mut(claim, "status"), "phase", json!("Pending"));
}

/// Access mode rules shared with `PersistentVolume`: at least one, each known, and
/// `ReadWriteOncePod` alone.
pub(crate) fn validate_access_modes(modes: &Value, path: &str, causes: &mut Vec<Cause>) {
    let list = modes.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        causes.push(Cause {
            reason: "FieldValueRequired",
            field: path.to_string(),
            message: "Required value: at least 1 access mode is required".into(),
        });
    }
    for m in &list {
        if !m.as_str().is_some_and(|m| ACCESS_MODES.contains(&m)) {
            causes.push(Cause::not_supported(path, m, ACCESS_MODES));
        }
    }
    if list.len() > 1 && list.iter().any(|m| m == "ReadWriteOncePod") {
        causes.push(Cause::forbidden(
            path,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
}

/// `storageClassName` and `volumeMode` rules shared with `PersistentVolume`.
pub(crate) fn validate_class_and_mode(spec: &Value, causes: &mut Vec<Cause>) {
    if let Some(class) = spec["storageClassName"].as_str()
        && !class.is_empty()
        && !is_dns1123_subdomain(class)
    {
        causes.push(Cause::invalid(
            "spec.storageClassName",
            &json!(class),
            DNS1123_SUBDOMAIN_MSG,
        ));
    }
    if let Some(mode) = spec["volumeMode"].as_str()
        && !["Block", "Filesystem"].contains(&mode)
    {
        causes.push(Cause::not_supported(
            "spec.volumeMode",
            &json!(mode),
            &["Block", "Filesystem"],
        ));
    }
}

/// The storage class of a claim or volume: the beta annotation, else `storageClassName`.
pub(crate) fn storage_class(o: &Value) -> String {
    match o["metadata"]["annotations"][BETA_STORAGE_CLASS].as_str() {
        Some(c) => c.to_string(),
        None => s(&o["spec"]["storageClassName"]),
    }
}

impl Strategy for PersistentVolumeClaimStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<core::v1::PersistentVolumeClaim>(input)
    }

    fn has_status(&self) -> bool {
        true
    }

    fn prepare_create(&self, obj: &mut Value) {
        clear_status(obj);
    }

    fn default(&self, obj: &mut Value) {
        default_claim(obj);
    }

    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        let spec = &obj["spec"];
        validate_access_modes(&spec["accessModes"], "spec.accessModes", &mut causes);
        let storage = &spec["resources"]["requests"]["storage"];
        if storage.is_null() {
            causes.push(Cause::required("spec.resources[storage]"));
        } else if !quantity(storage).is_some_and(|q| q > 0.0) {
            causes.push(Cause::invalid(
                "spec.resources[storage]",
                storage,
                "must be greater than zero",
            ));
        }
        validate_class_and_mode(spec, &mut causes);
        causes
    }

    /// Upstream's `ValidatePersistentVolumeClaimUpdate`: the spec is fixed at creation but for
    /// `volumeName` (set once, by the binder), the storage request of a bound claim (which may
    /// only grow) and `volumeAttributesClassName`.
    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        let (mut o, mut n) = (old["spec"].clone(), new["spec"].clone());
        if old["spec"]["volumeName"].as_str().is_none_or(str::is_empty) {
            o["volumeName"] = n["volumeName"].clone();
        }
        for spec in [&mut o, &mut n] {
            if let Some(m) = spec.as_object_mut() {
                m.remove("volumeAttributesClassName");
            }
        }
        if new["status"]["phase"] == "Bound" {
            n["resources"]["requests"]["storage"] = o["resources"]["requests"]["storage"].clone();
        }
        if o != n {
            causes.push(Cause::forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ));
        }
        let size = |v: &Value| quantity(&v["spec"]["resources"]["requests"]["storage"]);
        if let (Some(before), Some(after)) = (size(old), size(new))
            && after < before
        {
            causes.push(Cause::forbidden(
                "spec.resources.requests.storage",
                "field can not be less than previous value",
            ));
        }
        causes
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("PersistentVolumeClaim", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Status", "string", 0),
            col("Volume", "string", 0),
            col("Capacity", "string", 0),
            col("Access Modes", "string", 0),
            col("StorageClass", "string", 0),
            col("VolumeAttributesClass", "string", 0),
            col("Age", "string", 0),
            col("VolumeMode", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let (spec, status) = (&o["spec"], &o["status"]);
        let phase = if o["metadata"]["deletionTimestamp"].is_null() {
            s(&status["phase"])
        } else {
            "Terminating".into()
        };
        let volume = s(&spec["volumeName"]);
        let (capacity, modes) = if volume.is_empty() {
            (String::new(), String::new())
        } else {
            (
                super::super::printers::quantity_cell(&status["capacity"]["storage"]),
                access_modes(&status["accessModes"]),
            )
        };
        let unset = |v: &Value| {
            v.as_str()
                .map_or_else(|| "<unset>".to_string(), String::from)
        };
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(phase),
            json!(volume),
            json!(capacity),
            json!(modes),
            json!(storage_class(o)),
            json!(unset(&spec["volumeAttributesClassName"])),
            json!(age(&o["metadata"]["creationTimestamp"])),
            json!(unset(&spec["volumeMode"])),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    fn claim() -> Value {
        let mut c = json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
            "storageClassName": "standard", "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Bound"}});
        PersistentVolumeClaimStrategy.prepare_create(&mut c);
        PersistentVolumeClaimStrategy.default(&mut c);
        c
    }

    #[test]
    fn defaults() {
        let c = claim();
        assert_eq!(c["spec"]["volumeMode"], "Filesystem");
        assert_eq!(
            c["status"],
            json!({"phase": "Pending"}),
            "create may not set status"
        );
        assert!(PersistentVolumeClaimStrategy.validate(&c, &CX).is_empty());
    }

    #[test]
    fn validation_paths() {
        let mut c = claim();
        c["spec"]["accessModes"] = json!(["ReadWriteSometimes"]);
        c["spec"]["resources"] = json!({});
        let causes = PersistentVolumeClaimStrategy.validate(&c, &CX);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["spec.accessModes", "spec.resources[storage]"]);
        assert_eq!(causes[0].reason, "FieldValueNotSupported");
    }

    #[test]
    fn spec_is_immutable_but_bound_claims_grow() {
        let old = claim();
        let mut bound_old = old.clone();
        bound_old["spec"]["volumeName"] = json!("pv-1");
        assert!(
            PersistentVolumeClaimStrategy
                .validate_update(&old, &bound_old)
                .is_empty()
        );
        let mut grown = bound_old.clone();
        grown["status"]["phase"] = json!("Bound");
        grown["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        assert!(
            PersistentVolumeClaimStrategy
                .validate_update(&bound_old, &grown)
                .is_empty()
        );
        let mut shrunk = grown.clone();
        shrunk["spec"]["resources"]["requests"]["storage"] = json!("512Mi");
        let causes = PersistentVolumeClaimStrategy.validate_update(&grown, &shrunk);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.resources.requests.storage");
        let mut pending_grow = old.clone();
        pending_grow["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        assert_eq!(
            PersistentVolumeClaimStrategy.validate_update(&old, &pending_grow)[0].field,
            "spec"
        );
        let mut class = bound_old.clone();
        class["spec"]["storageClassName"] = json!("fast");
        assert_eq!(
            PersistentVolumeClaimStrategy.validate_update(&bound_old, &class)[0].field,
            "spec"
        );
    }

    #[test]
    fn cells_like_kubectl() {
        let mut c = claim();
        assert_eq!(
            PersistentVolumeClaimStrategy.cells(&c)[1..7],
            [
                json!("Pending"),
                json!(""),
                json!(""),
                json!(""),
                json!("standard"),
                json!("<unset>")
            ]
        );
        c["spec"]["volumeName"] = json!("pvc-123");
        c["status"] = json!({"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]});
        let row = PersistentVolumeClaimStrategy.cells(&c);
        assert_eq!(row.len(), PersistentVolumeClaimStrategy.columns().len());
        assert_eq!(
            row[1..5],
            [json!("Bound"), json!("pvc-123"), json!("1Gi"), json!("RWO")]
        );
        assert_eq!(row[8], "Filesystem");
    }
}
