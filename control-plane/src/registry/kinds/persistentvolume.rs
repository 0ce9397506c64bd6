//! `v1 PersistentVolume`: its strategy and resource entry.

use k8s_openapi::api::core;
use serde_json::{Value, json};

use super::super::printers::{access_modes, age, quantity_cell, s};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{clear_status, immutable, obj_mut, quantity, set_default};
use super::super::{Resource, Subresource};
use super::persistentvolumeclaim::{storage_class, validate_access_modes, validate_class_and_mode};
use crate::apiserver::status::Cause;

/// The `persistentvolumes` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "",
        "v1",
        "persistentvolumes",
        "persistentvolume",
        "PersistentVolume",
        false,
        PersistentVolumeStrategy,
    )
    .short_names(&["pv"])
    .subresources(&[Subresource::Status])
}

/// Upstream's `PersistentVolume` strategy and printer.
pub struct PersistentVolumeStrategy;

/// The fields of `PersistentVolumeSource`: exactly one is set, and it never changes.
const SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

fn source_view(spec: &Value) -> Value {
    let m: serde_json::Map<String, Value> = SOURCES
        .iter()
        .filter_map(|k| spec.get(*k).map(|v| ((*k).to_string(), v.clone())))
        .collect();
    Value::Object(m)
}

impl Strategy for PersistentVolumeStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<core::v1::PersistentVolume>(input)
    }

    fn has_status(&self) -> bool {
        true
    }

    /// Status is the binder's; the phase starts now (`lastPhaseTransitionTime`).
    fn prepare_create(&self, obj: &mut Value) {
        clear_status(obj);
        obj_mut(obj, "status").insert(
            "lastPhaseTransitionTime".into(),
            json!(crate::apiserver::now()),
        );
    }

    fn default(&self, obj: &mut Value) {
        let spec = obj_mut(obj, "spec");
        set_default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
        set_default(spec, "volumeMode", json!("Filesystem"));
        if let Some(hp) = spec.get_mut("hostPath").and_then(Value::as_object_mut) {
            set_default(hp, "type", json!(""));
        }
        set_default(obj_mut(obj, "status"), "phase", json!("Pending"));
    }

    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        let spec = &obj["spec"];
        if spec["accessModes"].as_array().is_none_or(Vec::is_empty) {
            causes.push(Cause::required("spec.accessModes"));
        } else {
            validate_access_modes(&spec["accessModes"], "spec.accessModes", &mut causes);
        }
        let capacity = &spec["capacity"];
        match capacity.as_object() {
            None => causes.push(Cause::required("spec.capacity")),
            Some(c) if c.is_empty() => causes.push(Cause::required("spec.capacity")),
            Some(c) => {
                if c.len() > 1 || !c.contains_key("storage") {
                    causes.push(Cause::not_supported(
                        "spec.capacity",
                        capacity,
                        &["storage"],
                    ));
                }
                if let Some(q) = c.get("storage")
                    && !quantity(q).is_some_and(|x| x > 0.0)
                {
                    causes.push(Cause::invalid(
                        "spec.capacity[storage]",
                        q,
                        "must be greater than zero",
                    ));
                }
            }
        }
        if let Some(p) = spec["persistentVolumeReclaimPolicy"].as_str()
            && !["Delete", "Recycle", "Retain"].contains(&p)
        {
            causes.push(Cause::not_supported(
                "spec.persistentVolumeReclaimPolicy",
                &json!(p),
                &["Delete", "Recycle", "Retain"],
            ));
        }
        let sources = SOURCES
            .iter()
            .filter(|k| spec.get(**k).is_some_and(|v| !v.is_null()))
            .count();
        if sources == 0 {
            causes.push(Cause {
                reason: "FieldValueRequired",
                field: "spec".into(),
                message: "Required value: must specify a volume type".into(),
            });
        } else if sources > 1 {
            causes.push(Cause::forbidden(
                "spec",
                "may not specify more than 1 volume type",
            ));
        }
        if let Some(path) = spec["hostPath"]["path"].as_str()
            && path.is_empty()
        {
            causes.push(Cause::required("spec.hostPath.path"));
        }
        validate_class_and_mode(spec, &mut causes);
        causes
    }

    /// Upstream's `ValidatePersistentVolumeUpdate`: the volume source and mode are fixed, node
    /// affinity may only be set once.
    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        let (o, n) = (&old["spec"], &new["spec"]);
        if source_view(o) != source_view(n) {
            causes.push(Cause::forbidden(
                "spec.persistentvolumesource",
                "spec.persistentvolumesource is immutable after creation",
            ));
        }
        immutable(
            &o["volumeMode"],
            &n["volumeMode"],
            "volumeMode",
            &mut causes,
        );
        if !o["nodeAffinity"].is_null() {
            immutable(
                &o["nodeAffinity"],
                &n["nodeAffinity"],
                "nodeAffinity",
                &mut causes,
            );
        }
        causes
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("PersistentVolume", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Capacity", "string", 0),
            col("Access Modes", "string", 0),
            col("Reclaim Policy", "string", 0),
            col("Status", "string", 0),
            col("Claim", "string", 0),
            col("StorageClass", "string", 0),
            col("VolumeAttributesClass", "string", 0),
            col("Reason", "string", 0),
            col("Age", "string", 0),
            col("VolumeMode", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let spec = &o["spec"];
        let claim = if spec["claimRef"].is_object() {
            format!(
                "{}/{}",
                s(&spec["claimRef"]["namespace"]),
                s(&spec["claimRef"]["name"])
            )
        } else {
            String::new()
        };
        let phase = if o["metadata"]["deletionTimestamp"].is_null() {
            s(&o["status"]["phase"])
        } else {
            "Terminating".into()
        };
        let unset = |v: &Value| {
            v.as_str()
                .map_or_else(|| "<unset>".to_string(), String::from)
        };
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(quantity_cell(&spec["capacity"]["storage"])),
            json!(access_modes(&spec["accessModes"])),
            json!(s(&spec["persistentVolumeReclaimPolicy"])),
            json!(phase),
            json!(claim),
            json!(storage_class(o)),
            json!(unset(&spec["volumeAttributesClassName"])),
            json!(s(&o["status"]["reason"])),
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

    fn volume() -> Value {
        let mut v = json!({"metadata": {"name": "pv-1"}, "spec": {"capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce", "ReadOnlyMany"], "hostPath": {"path": "/mnt/data"},
            "storageClassName": "manual"}});
        PersistentVolumeStrategy.prepare_create(&mut v);
        PersistentVolumeStrategy.default(&mut v);
        v
    }

    #[test]
    fn defaults() {
        let v = volume();
        assert_eq!(v["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(v["spec"]["volumeMode"], "Filesystem");
        assert_eq!(v["spec"]["hostPath"]["type"], "");
        assert_eq!(v["status"]["phase"], "Pending");
        assert!(v["status"]["lastPhaseTransitionTime"].is_string());
        assert!(PersistentVolumeStrategy.validate(&v, &CX).is_empty());
    }

    #[test]
    fn validation_paths() {
        let mut v = volume();
        v["spec"]["capacity"] = json!({"storage": "10Gi", "cpu": "1"});
        v["spec"]["nfs"] = json!({"server": "s", "path": "/"});
        let causes = PersistentVolumeStrategy.validate(&v, &CX);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["spec.capacity", "spec"]);
        let mut none = volume();
        none["spec"].as_object_mut().unwrap().remove("hostPath");
        let causes = PersistentVolumeStrategy.validate(&none, &CX);
        assert_eq!(
            causes[0].message,
            "Required value: must specify a volume type"
        );
    }

    #[test]
    fn source_is_immutable() {
        let old = volume();
        let mut new = old.clone();
        new["spec"]["hostPath"]["path"] = json!("/mnt/other");
        let causes = PersistentVolumeStrategy.validate_update(&old, &new);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.persistentvolumesource");
        let mut claimed = old.clone();
        claimed["spec"]["claimRef"] = json!({"namespace": "default", "name": "data"});
        claimed["spec"]["persistentVolumeReclaimPolicy"] = json!("Delete");
        assert!(
            PersistentVolumeStrategy
                .validate_update(&old, &claimed)
                .is_empty()
        );
    }

    #[test]
    fn cells_like_kubectl() {
        let mut v = volume();
        v["spec"]["claimRef"] = json!({"namespace": "default", "name": "data"});
        v["status"]["phase"] = json!("Bound");
        let c = PersistentVolumeStrategy.cells(&v);
        assert_eq!(c.len(), PersistentVolumeStrategy.columns().len());
        assert_eq!(
            c[1..9],
            [
                json!("10Gi"),
                json!("RWO,ROX"),
                json!("Retain"),
                json!("Bound"),
                json!("default/data"),
                json!("manual"),
                json!("<unset>"),
                json!("")
            ]
        );
        assert_eq!(c[10], "Filesystem");
        assert_eq!(PersistentVolumeStrategy.cells(&json!({}))[1], "0");
    }
}
