//! Bodies captured from real kubectl 1.32 (`tests/fixtures/capture.py`):
//! each decodes to the JSON kubectl itself prints for the same command with
//! `--dry-run=client -o json`, survives a trip through k8s-openapi's typed
//! structs, and re-encodes to a body that decodes the same.

use std::path::PathBuf;

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Drops what Go's JSON writes for unset struct fields and k8s-openapi drops:
/// `null`, `{}` (recursively).
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

/// Deserializes into the k8s-openapi type of this kind and serializes back.
fn through_k8s_openapi(object: &Value) -> Value {
    use k8s_openapi::api::{
        apps, authentication, authorization, batch, core, networking, policy, rbac, scheduling,
    };
    fn trip<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> Value {
        let typed: T = serde_json::from_value(v.clone())
            .unwrap_or_else(|e| panic!("k8s-openapi rejects {v}: {e}"));
        serde_json::to_value(typed).expect("serializes")
    }
    let kind = object["kind"].as_str().expect("kind");
    match kind {
        "Namespace" => trip::<core::v1::Namespace>(object),
        "ConfigMap" => trip::<core::v1::ConfigMap>(object),
        "Secret" => trip::<core::v1::Secret>(object),
        "ServiceAccount" => trip::<core::v1::ServiceAccount>(object),
        "Service" => trip::<core::v1::Service>(object),
        "ResourceQuota" => trip::<core::v1::ResourceQuota>(object),
        "Deployment" => trip::<apps::v1::Deployment>(object),
        "Job" => trip::<batch::v1::Job>(object),
        "CronJob" => trip::<batch::v1::CronJob>(object),
        "Role" => trip::<rbac::v1::Role>(object),
        "RoleBinding" => trip::<rbac::v1::RoleBinding>(object),
        "ClusterRole" => trip::<rbac::v1::ClusterRole>(object),
        "ClusterRoleBinding" => trip::<rbac::v1::ClusterRoleBinding>(object),
        "PriorityClass" => trip::<scheduling::v1::PriorityClass>(object),
        "PodDisruptionBudget" => trip::<policy::v1::PodDisruptionBudget>(object),
        "Ingress" => trip::<networking::v1::Ingress>(object),
        "TokenRequest" => {
            // A client leaves the status empty; Go writes it as
            // `{"token": "", "expirationTimestamp": null}`, which k8s-openapi
            // (both fields required) cannot read. The spec is what matters.
            let mut spec_only = object.clone();
            spec_only.as_object_mut().expect("object").remove("status");
            let mut typed = trip::<authentication::v1::TokenRequest>(&spec_only);
            typed["status"] = object["status"].clone();
            typed
        }
        "SelfSubjectAccessReview" => trip::<authorization::v1::SelfSubjectAccessReview>(object),
        other => panic!("no k8s-openapi type mapped for {other}"),
    }
}

const WITH_DRY_RUN: &[&str] = &[
    "namespace",
    "deployment",
    "deployment-zero-replicas",
    "configmap-literal",
    "configmap-file",
    "secret-generic",
    "secret-tls",
    "secret-docker-registry",
    "serviceaccount",
    "service-clusterip",
    "service-clusterip-headless",
    "service-nodeport",
    "service-loadbalancer",
    "service-externalname",
    "job",
    "cronjob",
    "role",
    "rolebinding",
    "clusterrole",
    "clusterrole-nonresource",
    "clusterrolebinding",
    "quota",
    "priorityclass",
    "priorityclass-zero",
    "poddisruptionbudget",
    "poddisruptionbudget-max",
    "ingress",
];

#[test]
fn decode_equals_kubectl_json() {
    let mut failures = Vec::new();
    for name in WITH_DRY_RUN {
        let decoded = sluice_k8s_protobuf::decode(&read(&format!("{name}.pb")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let kubectl: Value =
            serde_json::from_slice(&read(&format!("{name}.json"))).expect("kubectl JSON");
        assert_eq!(decoded.api_version, kubectl["apiVersion"], "{name}");
        assert_eq!(decoded.kind, kubectl["kind"], "{name}");
        if decoded.object != kubectl {
            failures.push(format!(
                "{name}:\n decoded {}\n kubectl {}",
                serde_json::to_string(&decoded.object).expect("json"),
                serde_json::to_string(&kubectl).expect("json")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn decode_survives_k8s_openapi() {
    for name in WITH_DRY_RUN.iter().chain(&["token", "can-i"]) {
        let decoded = sluice_k8s_protobuf::decode(&read(&format!("{name}.pb")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let typed = through_k8s_openapi(&decoded.object);
        assert_eq!(
            prune(&typed),
            prune(&decoded.object),
            "{name}: k8s-openapi lost or changed something"
        );
    }
}

#[test]
fn reencode_decodes_the_same() {
    for name in WITH_DRY_RUN.iter().chain(&["token", "can-i"]) {
        let decoded = sluice_k8s_protobuf::decode(&read(&format!("{name}.pb")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let body = sluice_k8s_protobuf::encode(&decoded.object)
            .unwrap_or_else(|e| panic!("{name}: encode: {e}"));
        let again =
            sluice_k8s_protobuf::decode(&body).unwrap_or_else(|e| panic!("{name}: re-decode: {e}"));
        assert_eq!(prune(&again.object), prune(&decoded.object), "{name}");
    }
}

#[test]
fn explicit_zeros_of_pointer_fields_survive() {
    let d = sluice_k8s_protobuf::decode(&read("deployment-zero-replicas.pb")).expect("decodes");
    assert_eq!(d.object["spec"]["replicas"], 0);
    let p = sluice_k8s_protobuf::decode(&read("priorityclass-zero.pb")).expect("decodes");
    assert_eq!(p.object["value"], 0);
    assert_eq!(p.object["globalDefault"], true);
}

#[test]
fn token_and_can_i_bodies() {
    let t = sluice_k8s_protobuf::decode(&read("token.pb")).expect("decodes");
    assert_eq!(
        (t.api_version.as_str(), t.kind.as_str()),
        ("authentication.k8s.io/v1", "TokenRequest")
    );
    assert_eq!(t.object["spec"]["expirationSeconds"], 3600);
    assert_eq!(t.object["spec"]["audiences"], serde_json::json!(["api"]));
    let c = sluice_k8s_protobuf::decode(&read("can-i.pb")).expect("decodes");
    assert_eq!(c.kind, "SelfSubjectAccessReview");
    let attrs = &c.object["spec"]["resourceAttributes"];
    assert_eq!(
        (attrs["verb"].as_str(), attrs["resource"].as_str()),
        (Some("get"), Some("pods"))
    );
    assert_eq!(attrs["namespace"], "default");
}
