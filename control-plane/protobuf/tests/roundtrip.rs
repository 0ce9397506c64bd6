//! Every supported kind from representative JSON (`tests/fixtures/objects.json`,
//! written in Go's JSON form): `encode` then `decode` gives the same JSON; the
//! bytes `encode` writes are read by k8s-pb's prost types (an independent
//! implementation of the same schema) and what prost writes back decodes to
//! the same JSON; and k8s-openapi's typed structs read the JSON losslessly.

use prost::Message as _;
use serde_json::Value;

macro_rules! kinds {
    ($( $v:literal, $k:literal => $pb:ty, $oa:ty; )*) => {
        /// Decodes `raw` with k8s-pb's type for the kind and encodes it again.
        fn prost_trip(v: &str, k: &str, raw: &[u8]) -> Vec<u8> {
            match (v, k) {
                $( ($v, $k) => <$pb>::decode(raw).unwrap_or_else(|e| panic!("{v} {k}: prost rejects our bytes: {e}")).encode_to_vec(), )*
                _ => panic!("{v} {k}: no k8s-pb type mapped"),
            }
        }
        /// Deserializes with k8s-openapi's type for the kind and serializes back.
        fn openapi_trip(v: &str, k: &str, object: &Value) -> Value {
            match (v, k) {
                $( ($v, $k) => {
                    let typed: $oa = serde_json::from_value(object.clone()).unwrap_or_else(|e| panic!("{v} {k}: k8s-openapi rejects: {e}"));
                    serde_json::to_value(typed).expect("serializes")
                } )*
                _ => panic!("{v} {k}: no k8s-openapi type mapped"),
            }
        }
        const MAPPED: &[(&str, &str)] = &[$( ($v, $k), )*];
    };
}

kinds! {
    "v1", "Namespace" => k8s_pb::api::core::v1::Namespace, k8s_openapi::api::core::v1::Namespace;
    "v1", "Node" => k8s_pb::api::core::v1::Node, k8s_openapi::api::core::v1::Node;
    "v1", "Pod" => k8s_pb::api::core::v1::Pod, k8s_openapi::api::core::v1::Pod;
    "v1", "Service" => k8s_pb::api::core::v1::Service, k8s_openapi::api::core::v1::Service;
    "v1", "Endpoints" => k8s_pb::api::core::v1::Endpoints, k8s_openapi::api::core::v1::Endpoints;
    "v1", "ServiceAccount" => k8s_pb::api::core::v1::ServiceAccount, k8s_openapi::api::core::v1::ServiceAccount;
    "v1", "ConfigMap" => k8s_pb::api::core::v1::ConfigMap, k8s_openapi::api::core::v1::ConfigMap;
    "v1", "Secret" => k8s_pb::api::core::v1::Secret, k8s_openapi::api::core::v1::Secret;
    "v1", "Event" => k8s_pb::api::core::v1::Event, k8s_openapi::api::core::v1::Event;
    "v1", "ReplicationController" => k8s_pb::api::core::v1::ReplicationController, k8s_openapi::api::core::v1::ReplicationController;
    "v1", "PersistentVolume" => k8s_pb::api::core::v1::PersistentVolume, k8s_openapi::api::core::v1::PersistentVolume;
    "v1", "PersistentVolumeClaim" => k8s_pb::api::core::v1::PersistentVolumeClaim, k8s_openapi::api::core::v1::PersistentVolumeClaim;
    "v1", "PodTemplate" => k8s_pb::api::core::v1::PodTemplate, k8s_openapi::api::core::v1::PodTemplate;
    "v1", "ResourceQuota" => k8s_pb::api::core::v1::ResourceQuota, k8s_openapi::api::core::v1::ResourceQuota;
    "v1", "LimitRange" => k8s_pb::api::core::v1::LimitRange, k8s_openapi::api::core::v1::LimitRange;
    "v1", "Binding" => k8s_pb::api::core::v1::Binding, k8s_openapi::api::core::v1::Binding;
    "apps/v1", "Deployment" => k8s_pb::api::apps::v1::Deployment, k8s_openapi::api::apps::v1::Deployment;
    "apps/v1", "ReplicaSet" => k8s_pb::api::apps::v1::ReplicaSet, k8s_openapi::api::apps::v1::ReplicaSet;
    "apps/v1", "DaemonSet" => k8s_pb::api::apps::v1::DaemonSet, k8s_openapi::api::apps::v1::DaemonSet;
    "apps/v1", "StatefulSet" => k8s_pb::api::apps::v1::StatefulSet, k8s_openapi::api::apps::v1::StatefulSet;
    "apps/v1", "ControllerRevision" => k8s_pb::api::apps::v1::ControllerRevision, k8s_openapi::api::apps::v1::ControllerRevision;
    "batch/v1", "Job" => k8s_pb::api::batch::v1::Job, k8s_openapi::api::batch::v1::Job;
    "batch/v1", "CronJob" => k8s_pb::api::batch::v1::CronJob, k8s_openapi::api::batch::v1::CronJob;
    "autoscaling/v1", "Scale" => k8s_pb::api::autoscaling::v1::Scale, k8s_openapi::api::autoscaling::v1::Scale;
    "autoscaling/v1", "HorizontalPodAutoscaler" => k8s_pb::api::autoscaling::v1::HorizontalPodAutoscaler, k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
    "autoscaling/v2", "HorizontalPodAutoscaler" => k8s_pb::api::autoscaling::v2::HorizontalPodAutoscaler, k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    "discovery.k8s.io/v1", "EndpointSlice" => k8s_pb::api::discovery::v1::EndpointSlice, k8s_openapi::api::discovery::v1::EndpointSlice;
    "events.k8s.io/v1", "Event" => k8s_pb::api::events::v1::Event, k8s_openapi::api::events::v1::Event;
    "coordination.k8s.io/v1", "Lease" => k8s_pb::api::coordination::v1::Lease, k8s_openapi::api::coordination::v1::Lease;
    "storage.k8s.io/v1", "StorageClass" => k8s_pb::api::storage::v1::StorageClass, k8s_openapi::api::storage::v1::StorageClass;
    "storage.k8s.io/v1", "CSIDriver" => k8s_pb::api::storage::v1::CSIDriver, k8s_openapi::api::storage::v1::CSIDriver;
    "storage.k8s.io/v1", "CSINode" => k8s_pb::api::storage::v1::CSINode, k8s_openapi::api::storage::v1::CSINode;
    "storage.k8s.io/v1", "VolumeAttachment" => k8s_pb::api::storage::v1::VolumeAttachment, k8s_openapi::api::storage::v1::VolumeAttachment;
    "policy/v1", "PodDisruptionBudget" => k8s_pb::api::policy::v1::PodDisruptionBudget, k8s_openapi::api::policy::v1::PodDisruptionBudget;
    "policy/v1", "Eviction" => k8s_pb::api::policy::v1::Eviction, k8s_openapi::api::policy::v1::Eviction;
    "networking.k8s.io/v1", "Ingress" => k8s_pb::api::networking::v1::Ingress, k8s_openapi::api::networking::v1::Ingress;
    "networking.k8s.io/v1", "IngressClass" => k8s_pb::api::networking::v1::IngressClass, k8s_openapi::api::networking::v1::IngressClass;
    "networking.k8s.io/v1", "NetworkPolicy" => k8s_pb::api::networking::v1::NetworkPolicy, k8s_openapi::api::networking::v1::NetworkPolicy;
    "rbac.authorization.k8s.io/v1", "Role" => k8s_pb::api::rbac::v1::Role, k8s_openapi::api::rbac::v1::Role;
    "rbac.authorization.k8s.io/v1", "ClusterRole" => k8s_pb::api::rbac::v1::ClusterRole, k8s_openapi::api::rbac::v1::ClusterRole;
    "rbac.authorization.k8s.io/v1", "RoleBinding" => k8s_pb::api::rbac::v1::RoleBinding, k8s_openapi::api::rbac::v1::RoleBinding;
    "rbac.authorization.k8s.io/v1", "ClusterRoleBinding" => k8s_pb::api::rbac::v1::ClusterRoleBinding, k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    "scheduling.k8s.io/v1", "PriorityClass" => k8s_pb::api::scheduling::v1::PriorityClass, k8s_openapi::api::scheduling::v1::PriorityClass;
    "node.k8s.io/v1", "RuntimeClass" => k8s_pb::api::node::v1::RuntimeClass, k8s_openapi::api::node::v1::RuntimeClass;
    "authentication.k8s.io/v1", "TokenReview" => k8s_pb::api::authentication::v1::TokenReview, k8s_openapi::api::authentication::v1::TokenReview;
    "authorization.k8s.io/v1", "SubjectAccessReview" => k8s_pb::api::authorization::v1::SubjectAccessReview, k8s_openapi::api::authorization::v1::SubjectAccessReview;
    "apiregistration.k8s.io/v1", "APIService" => k8s_pb::kube_aggregator::pkg::apis::apiregistration::v1::APIService, k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
    "apiextensions.k8s.io/v1", "CustomResourceDefinition" => k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition, k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    "v1", "DeleteOptions" => k8s_pb::apimachinery::pkg::apis::meta::v1::DeleteOptions, k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
}

/// The paths where `a` and `b` differ, for readable failures.
fn diff(got: &Value, want: &Value, path: &str, out: &mut Vec<String>) {
    match (got, want) {
        (Value::Object(left), Value::Object(right)) => {
            for (key, l) in left {
                match right.get(key) {
                    Some(r) => diff(l, r, &format!("{path}.{key}"), out),
                    None => out.push(format!("{path}.{key}: {l} vs absent")),
                }
            }
            for (key, r) in right {
                if !left.contains_key(key) {
                    out.push(format!("{path}.{key}: absent vs {r}"));
                }
            }
        }
        (Value::Array(left), Value::Array(right)) if left.len() == right.len() => {
            for (i, (l, r)) in left.iter().zip(right).enumerate() {
                diff(l, r, &format!("{path}[{i}]"), out);
            }
        }
        // k8s-openapi writes a float64 1 as 1.0; Go writes 1.
        (Value::Number(left), Value::Number(right)) if left.as_f64() == right.as_f64() => {}
        _ if got != want => out.push(format!("{path}: {got} vs {want}")),
        _ => {}
    }
}

fn assert_same(got: &Value, want: &Value, what: &str) {
    let mut out = Vec::new();
    diff(got, want, "", &mut out);
    assert!(
        out.is_empty(),
        "{what}: got vs wanted:\n  {}",
        out.join("\n  ")
    );
}

fn objects() -> Vec<Value> {
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/objects.json"
    ))
    .expect("fixture");
    let Value::Array(list) = serde_json::from_slice(&text).expect("fixture JSON") else {
        panic!("objects.json is an array")
    };
    list
}

fn type_of(v: &Value) -> (&str, &str) {
    (
        v["apiVersion"].as_str().expect("apiVersion"),
        v["kind"].as_str().expect("kind"),
    )
}

/// Drops `null`s and empty objects, which k8s-openapi does not keep.
fn prune(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) => {
            let out: serde_json::Map<String, Value> = m
                .iter()
                .filter_map(|(k, v)| prune(v).map(|v| (k.clone(), v)))
                .collect();
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(a) => Some(Value::Array(
            a.iter().map(|v| prune(v).unwrap_or(Value::Null)).collect(),
        )),
        other => Some(other.clone()),
    }
}

#[test]
fn encode_then_decode_is_identity() {
    for object in objects() {
        let (v, k) = type_of(&object);
        let body =
            sluice_k8s_protobuf::encode(&object).unwrap_or_else(|e| panic!("{v} {k}: encode: {e}"));
        let decoded =
            sluice_k8s_protobuf::decode(&body).unwrap_or_else(|e| panic!("{v} {k}: decode: {e}"));
        assert_eq!(
            (decoded.api_version.as_str(), decoded.kind.as_str()),
            (v, k)
        );
        assert_same(&decoded.object, &object, &format!("{v} {k}"));
    }
}

#[test]
fn prost_reads_what_we_write_and_we_read_what_prost_writes() {
    use k8s_pb::apimachinery::pkg::runtime::Unknown;
    for object in objects() {
        let (v, k) = type_of(&object);
        let body =
            sluice_k8s_protobuf::encode(&object).unwrap_or_else(|e| panic!("{v} {k}: encode: {e}"));
        let mut unknown =
            Unknown::decode(&body[4..]).unwrap_or_else(|e| panic!("{v} {k}: envelope: {e}"));
        let raw = unknown.raw.take().expect("raw");
        unknown.raw = Some(prost_trip(v, k, &raw));
        let mut theirs = b"k8s\0".to_vec();
        theirs.extend(unknown.encode_to_vec());
        let decoded = sluice_k8s_protobuf::decode(&theirs)
            .unwrap_or_else(|e| panic!("{v} {k}: decode prost's bytes: {e}"));
        assert_same(
            &decoded.object,
            &object,
            &format!("{v} {k}: prost's re-encoding"),
        );
    }
}

#[test]
fn k8s_openapi_reads_the_json_losslessly() {
    for object in objects() {
        let (v, k) = type_of(&object);
        let mut typed = openapi_trip(v, k, &object);
        if k == "StatefulSet" {
            // k8s-openapi writes apiVersion/kind into each PVC template; Go does not.
            for t in typed["spec"]["volumeClaimTemplates"]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                let t = t.as_object_mut().expect("object");
                t.remove("apiVersion");
                t.remove("kind");
            }
        }
        assert_same(
            &prune(&typed).unwrap_or_default(),
            &prune(&object).unwrap_or_default(),
            &format!("{v} {k}: through k8s-openapi"),
        );
    }
}

#[test]
fn every_supported_kind_is_exercised() {
    let objects = objects();
    let covered: Vec<(&str, &str)> = objects.iter().map(type_of).collect();
    for (v, k) in sluice_k8s_protobuf::supported_kinds() {
        let skip = [
            // Covered by the kubectl fixtures (tests/kubectl.rs).
            ("apps/v1", "Deployment"),
            ("v1", "ConfigMap"),
            ("v1", "Namespace"),
            ("authentication.k8s.io/v1", "TokenRequest"),
            ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
            // Same messages as kinds above, under another name.
            ("meta.k8s.io/v1", "DeleteOptions"),
        ];
        if skip.contains(&(v, k)) || !MAPPED.contains(&(v, k)) {
            continue;
        }
        assert!(
            covered.contains(&(v, k)),
            "{v} {k} has no object in objects.json"
        );
    }
}
