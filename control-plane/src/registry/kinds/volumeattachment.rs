//! `storage.k8s.io/v1 VolumeAttachment`: its strategy and resource entry.

use k8s_openapi::api::storage;
use serde_json::{Value, json};

use super::super::printers::{age, s};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{
    DNS1123_SUBDOMAIN_MSG, is_dns1123_subdomain, required_because, too_long,
};
use super::super::{Resource, Subresource};
use crate::apiserver::status::Cause;

/// The `volumeattachments` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "storage.k8s.io",
        "v1",
        "volumeattachments",
        "volumeattachment",
        "VolumeAttachment",
        false,
        VolumeAttachmentStrategy,
    )
    .subresources(&[Subresource::Status])
}

/// Upstream's `maxAttachedVolumeMetadataSize` and `maxVolumeErrorMessageSize`.
const MAX_METADATA_SIZE: usize = 256 * 1024;
const MAX_ERROR_MESSAGE: usize = 1024;

/// Upstream's `VolumeAttachment` strategy and printer.
pub struct VolumeAttachmentStrategy;

impl Strategy for VolumeAttachmentStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<storage::v1::VolumeAttachment>(input)
    }

    fn has_status(&self) -> bool {
        true
    }

    /// The attacher reports status; a create starts with none.
    fn prepare_create(&self, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            m.insert("status".into(), json!({"attached": false}));
        }
    }

    /// `ValidateVolumeAttachment` and `ValidateVolumeAttachmentV1`.
    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let spec = &obj["spec"];
        let mut causes = Vec::new();
        let attacher = s(&spec["attacher"]);
        if attacher.is_empty() {
            causes.push(Cause::required("spec.attacher"));
        }
        let source = &spec["source"];
        let (inline, pv) = (
            !source["inlineVolumeSpec"].is_null(),
            source["persistentVolumeName"].as_str(),
        );
        match (inline, pv) {
            (false, None) => causes.push(required_because(
                "spec.source",
                "must specify exactly one of inlineVolumeSpec and persistentVolumeName",
            )),
            (true, Some(_)) => causes.push(Cause::forbidden(
                "spec.source",
                "must specify exactly one of inlineVolumeSpec and persistentVolumeName",
            )),
            (false, Some("")) => causes.push(required_because(
                "spec.source.persistentVolumeName",
                "must specify non empty persistentVolumeName",
            )),
            _ => {}
        }
        let node = s(&spec["nodeName"]);
        if !is_dns1123_subdomain(&node) {
            causes.push(Cause::invalid(
                "spec.nodeName",
                &json!(node),
                DNS1123_SUBDOMAIN_MSG,
            ));
        }
        let status = &obj["status"];
        if let Some(meta) = status["attachmentMetadata"].as_object() {
            let size: usize = meta
                .iter()
                .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
                .sum();
            if size > MAX_METADATA_SIZE {
                causes.push(too_long("status.attachmentMetadata", MAX_METADATA_SIZE));
            }
        }
        for e in ["attachError", "detachError"] {
            if status[e]["message"]
                .as_str()
                .is_some_and(|m| m.len() > MAX_ERROR_MESSAGE)
            {
                // Upstream reports the metadata limit here, not the message one.
                causes.push(too_long(format!("status.{e}.message"), MAX_METADATA_SIZE));
            }
            if let Some(code) = status[e]["errorCode"].as_i64()
                && code < 0
            {
                causes.push(Cause::invalid(
                    format!("status.{e}.errorCode"),
                    &json!(code),
                    "must be between 0 and 2147483647, inclusive",
                ));
            }
        }
        // The v1-only checks: the attacher is a CSI driver name, the PV name a subdomain.
        if !attacher.is_empty() && !is_dns1123_subdomain(&attacher) {
            causes.push(Cause::invalid(
                "spec.attacher",
                &json!(attacher),
                DNS1123_SUBDOMAIN_MSG,
            ));
        }
        if let Some(pv) = pv
            && !pv.is_empty()
            && !is_dns1123_subdomain(pv)
        {
            causes.push(Cause::invalid(
                "spec.source.persistentVolumeName",
                &json!(pv),
                DNS1123_SUBDOMAIN_MSG,
            ));
        }
        causes
    }

    /// `ValidateVolumeAttachmentUpdate`: the spec is read-only.
    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        if old["spec"] == new["spec"] {
            Vec::new()
        } else {
            vec![Cause::invalid("spec", &new["spec"], "field is immutable")]
        }
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("VolumeAttachment", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Attacher", "string", 0),
            col("PV", "string", 0),
            col("Node", "string", 0),
            col("Attached", "boolean", 0),
            col("Age", "string", 0),
        ]
    }

    /// `printVolumeAttachment`.
    fn cells(&self, o: &Value) -> Vec<Value> {
        let spec = &o["spec"];
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(s(&spec["attacher"])),
            json!(s(&spec["source"]["persistentVolumeName"])),
            json!(s(&spec["nodeName"])),
            json!(o["status"]["attached"].as_bool().unwrap_or(false)),
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

    fn attachment() -> Value {
        json!({"metadata": {"name": "csi-0123abcd"}, "spec": {"attacher": "hostpath.csi.k8s.io",
            "nodeName": "node-1", "source": {"persistentVolumeName": "pv-1"}},
            "status": {"attached": true}})
    }

    #[test]
    fn create_starts_detached() {
        let mut va = attachment();
        VolumeAttachmentStrategy.prepare_create(&mut va);
        VolumeAttachmentStrategy.default(&mut va);
        assert_eq!(va["status"], json!({"attached": false}));
        assert!(VolumeAttachmentStrategy.validate(&va, &CX).is_empty());
    }

    #[test]
    fn source_needs_exactly_one_volume() {
        let va = json!({"metadata": {"name": "v"}, "spec": {"attacher": "a.b", "nodeName": "n", "source": {}}});
        let causes = VolumeAttachmentStrategy.validate(&va, &CX);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.source");
        assert_eq!(
            causes[0].message,
            "Required value: must specify exactly one of inlineVolumeSpec and persistentVolumeName"
        );
        let bad = json!({"metadata": {"name": "v"}, "spec": {"attacher": "", "nodeName": "Node_1",
            "source": {"persistentVolumeName": "pv"}}});
        let fields: Vec<String> = VolumeAttachmentStrategy
            .validate(&bad, &CX)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["spec.attacher", "spec.nodeName"]);
    }

    #[test]
    fn spec_is_immutable_status_is_not() {
        let old = attachment();
        let mut status = old.clone();
        status["status"]["attached"] = json!(false);
        assert!(
            VolumeAttachmentStrategy
                .validate_update(&old, &status)
                .is_empty()
        );
        let mut moved = old.clone();
        moved["spec"]["nodeName"] = json!("node-2");
        let causes = VolumeAttachmentStrategy.validate_update(&old, &moved);
        assert_eq!(causes[0].field, "spec");
        assert!(causes[0].message.ends_with("field is immutable"));
    }

    #[test]
    fn cells_like_kubectl() {
        let c = VolumeAttachmentStrategy.cells(&attachment());
        assert_eq!(c.len(), VolumeAttachmentStrategy.columns().len());
        assert_eq!(
            &c[..5],
            &[
                json!("csi-0123abcd"),
                json!("hostpath.csi.k8s.io"),
                json!("pv-1"),
                json!("node-1"),
                json!(true)
            ]
        );
    }
}
