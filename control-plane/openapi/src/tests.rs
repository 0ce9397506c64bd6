use serde_json::{Value, json};

use super::*;
use crate::convert::REF_PREFIX;

fn apps_kinds() -> Vec<ServedKind<'static>> {
    vec![
        ServedKind {
            group: "apps",
            version: "v1",
            kind: "Deployment",
            plural: "deployments",
            namespaced: true,
            subresources: &["status", "scale"],
        },
        ServedKind {
            group: "apps",
            version: "v1",
            kind: "ReplicaSet",
            plural: "replicasets",
            namespaced: true,
            subresources: &["status", "scale"],
        },
    ]
}

fn core_kinds() -> Vec<ServedKind<'static>> {
    let k = |kind, plural, namespaced, subresources| ServedKind {
        group: "",
        version: "v1",
        kind,
        plural,
        namespaced,
        subresources,
    };
    vec![
        k(
            "Pod",
            "pods",
            true,
            &[
                "status",
                "binding",
                "eviction",
                "log",
                "exec",
                "attach",
                "portforward",
                "ephemeralcontainers",
            ][..],
        ),
        k(
            "Namespace",
            "namespaces",
            false,
            &["status", "finalize"][..],
        ),
        k("Node", "nodes", false, &["status", "proxy"][..]),
        k("ServiceAccount", "serviceaccounts", true, &["token"][..]),
        k("ConfigMap", "configmaps", true, &[][..]),
        k("Event", "events", true, &[][..]),
    ]
}

fn schemas(doc: &Value) -> &serde_json::Map<String, Value> {
    doc["components"]["schemas"].as_object().unwrap()
}

/// Follows `{allOf: [{$ref}]}` or `{$ref}` to the component it names.
fn target<'a>(doc: &'a Value, s: &Value) -> &'a Value {
    let r = s["$ref"]
        .as_str()
        .or_else(|| s["allOf"][0]["$ref"].as_str())
        .unwrap_or_else(|| panic!("no ref in {s}"));
    &doc["components"]["schemas"][r.strip_prefix(REF_PREFIX).unwrap()]
}

fn assert_refs_resolve(doc: &Value) {
    let mut refs = Vec::new();
    convert::collect_refs(doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        assert!(schemas(doc).contains_key(r), "dangling $ref {r}");
    }
    // And nothing is left in the shape schemars writes.
    let text = doc.to_string();
    assert!(!text.contains("#/$defs/") && !text.contains("#/definitions/"));
}

#[test]
fn apps_v1_deployment_has_real_schema() {
    let doc = group_version_document("apps", "v1", &apps_kinds(), &[]);
    let dep = &schemas(&doc)["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        dep["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    assert!(
        dep.get("required").is_none(),
        "metadata is not required upstream"
    );
    let spec = &dep["properties"]["spec"];
    assert_eq!(
        spec["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
    );
    assert_eq!(
        spec["description"],
        "Specification of the desired behavior of the Deployment."
    );
    let replicas = &target(&doc, spec)["properties"]["replicas"];
    assert_eq!(replicas["type"], "integer");
    assert_eq!(replicas["format"], "int32");
    assert!(
        replicas["description"]
            .as_str()
            .unwrap()
            .starts_with("Number of desired pods.")
    );
    // Transitively reachable schemas are there, named as upstream.
    for name in [
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
        "io.k8s.apimachinery.pkg.api.resource.Quantity",
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        "io.k8s.api.core.v1.PodSpec",
        "io.k8s.api.autoscaling.v1.Scale",
        "io.k8s.api.apps.v1.DeploymentList",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    ] {
        assert!(schemas(&doc).contains_key(name), "{name} missing");
    }
    // Only what is reachable: nothing of the core group's own kinds.
    assert!(!schemas(&doc).contains_key("io.k8s.api.core.v1.Pod"));
    assert_eq!(
        schemas(&doc)["io.k8s.api.apps.v1.DeploymentList"]["x-kubernetes-group-version-kind"][0]["kind"],
        "DeploymentList"
    );
    assert_eq!(
        schemas(&doc)["io.k8s.api.autoscaling.v1.Scale"]["x-kubernetes-group-version-kind"][0]["group"],
        "autoscaling"
    );
    assert_refs_resolve(&doc);
}

#[test]
fn patch_operations_carry_gvk_and_field_validation_but_not_strategic_merge() {
    let doc = group_version_document("apps", "v1", &apps_kinds(), &[]);
    let mut patches = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(patch) = item.get("patch") else {
            continue;
        };
        patches += 1;
        assert!(
            patch["x-kubernetes-group-version-kind"]["kind"].is_string(),
            "{path}"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"),
            "{path}"
        );
        let media = patch["requestBody"]["content"].as_object().unwrap();
        assert!(media.contains_key("application/merge-patch+json"));
        assert!(!media.contains_key("application/strategic-merge-patch+json"));
    }
    // Deployment and ReplicaSet: object, status, scale.
    assert_eq!(patches, 6);
    let p = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
    assert_eq!(p["patch"]["operationId"], "patchAppsV1NamespacedDeployment");
    assert_eq!(
        p["get"]["x-kubernetes-group-version-kind"],
        json!({"group": "apps", "kind": "Deployment", "version": "v1"})
    );
    let scale = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    assert_eq!(
        scale["put"]["x-kubernetes-group-version-kind"]["kind"],
        "Scale"
    );
    assert_eq!(
        doc["paths"]["/apis/apps/v1/deployments"]["get"]["operationId"],
        "listAppsV1DeploymentForAllNamespaces"
    );
}

#[test]
fn core_v1_document_resolves_and_keeps_upstream_requirements() {
    let doc = group_version_document("", "v1", &core_kinds(), &[]);
    assert_refs_resolve(&doc);
    let s = schemas(&doc);
    let containers = &target(&doc, &s["io.k8s.api.core.v1.Pod"]["properties"]["spec"])["properties"]
        ["containers"];
    assert_eq!(containers["type"], "array");
    assert_eq!(
        containers["items"]["$ref"],
        "#/components/schemas/io.k8s.api.core.v1.Container"
    );
    assert_eq!(
        s["io.k8s.api.core.v1.Container"]["required"],
        json!(["name"])
    );
    assert_eq!(
        s["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["x-kubernetes-int-or-string"],
        true
    );
    // Upstream requires metadata on core/v1 Event only.
    assert!(
        s["io.k8s.api.core.v1.Event"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("metadata"))
    );
    assert!(s["io.k8s.api.core.v1.Pod"].get("required").is_none());
    let p = doc["paths"].as_object().unwrap();
    assert!(p["/api/v1/nodes/{name}"]["patch"].is_object());
    assert!(p["/api/v1/namespaces/{namespace}/pods/{name}/binding"]["post"].is_object());
    assert!(p["/api/v1/namespaces/{name}/finalize"]["put"].is_object());
    assert_eq!(
        p["/api/v1/namespaces/{namespace}/pods/{name}/exec"]["get"]["operationId"],
        "connectCoreV1GetNamespacedPodExec"
    );
    assert_eq!(
        p["/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"]["post"]["x-kubernetes-group-version-kind"]
            ["kind"],
        "TokenRequest"
    );
}

/// Every built-in kind served in its own group-version: every `$ref` resolves.
#[test]
fn every_builtin_group_version_document_resolves() {
    let mut by_gv: std::collections::BTreeMap<(String, String), Vec<(String, String)>> =
        std::collections::BTreeMap::new();
    for (g, v, k) in builtin::UNIVERSE.by_gvk.keys() {
        if k.ends_with("List") {
            continue;
        }
        by_gv
            .entry((g.clone(), v.clone()))
            .or_default()
            .push((k.clone(), format!("{}s", k.to_lowercase())));
    }
    assert!(by_gv.len() > 30);
    for ((g, v), ks) in &by_gv {
        let kinds: Vec<ServedKind<'_>> = ks
            .iter()
            .map(|(k, p)| ServedKind {
                group: g,
                version: v,
                kind: k,
                plural: p,
                namespaced: true,
                subresources: &["status"],
            })
            .collect();
        let doc = group_version_document(g, v, &kinds, &[]);
        assert_refs_resolve(&doc);
        for (k, _) in ks {
            assert!(
                schemas(&doc).values().any(|s| convert::has_gvk(s, g, v, k)),
                "{g}/{v} {k} has no schema with its GVK"
            );
        }
    }
}

fn crontab_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "description": "The desired crontab.",
                "properties": {
                    "cronSpec": {"type": "string", "description": "When to run."},
                    "ports": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["port", "protocol"],
                        "items": {"type": "object", "properties": {
                            "port": {"type": "integer"}, "protocol": {"type": "string"},
                            "tags": {"type": "array", "x-kubernetes-list-type": "set",
                                "items": {"type": "string"}},
                        }},
                    },
                    "legacy": {
                        "type": "array",
                        "x-kubernetes-patch-strategy": "merge",
                        "x-kubernetes-patch-merge-key": "name",
                        "items": {"type": "object"},
                    },
                },
            },
        },
    })
}

#[test]
fn custom_resource_schema_carries_gvk_and_serves() {
    let s = custom_resource_schema("stable.example.com", "v1", "CronTab", &crontab_schema());
    assert_eq!(
        s["x-kubernetes-group-version-kind"],
        json!([{"group": "stable.example.com", "kind": "CronTab", "version": "v1"}])
    );
    assert_eq!(
        s["properties"]["metadata"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert_eq!(s["properties"]["apiVersion"]["type"], "string");
    let name = custom_resource_schema_name("stable.example.com", "v1", "CronTab");
    assert_eq!(name, "com.example.stable.v1.CronTab");
    let kinds = [ServedKind {
        group: "stable.example.com",
        version: "v1",
        kind: "CronTab",
        plural: "crontabs",
        namespaced: true,
        subresources: &["status"],
    }];
    let doc = group_version_document("stable.example.com", "v1", &kinds, &[(name.clone(), s)]);
    assert_refs_resolve(&doc);
    assert!(schemas(&doc).contains_key("com.example.stable.v1.CronTabList"));
    assert_eq!(
        doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]["patch"]
            ["operationId"],
        "patchStableExampleComV1NamespacedCronTab"
    );
    // A kind with no schema at all still gets resolvable paths.
    let kinds = [ServedKind {
        kind: "Mystery",
        plural: "mysteries",
        ..kinds[0]
    }];
    let doc = group_version_document("stable.example.com", "v1", &kinds, &[]);
    assert_refs_resolve(&doc);
}

#[test]
fn list_types_come_from_the_schema_only() {
    // k8s-openapi's built-in schemas carry no list extensions: nothing is made up.
    assert_eq!(
        list_type(
            "apps",
            "v1",
            "Deployment",
            &["spec", "template", "spec", "containers", "ports"]
        ),
        None
    );
    assert!(builtin_schema("apps", "v1", "Deployment").is_some());
    assert!(builtin_schema("apps", "v1", "Nope").is_none());
    let s = custom_resource_schema("stable.example.com", "v1", "CronTab", &crontab_schema());
    assert_eq!(
        schema_list_type(&s, &["spec", "ports"]),
        Some(ListType::Map(vec!["port".into(), "protocol".into()]))
    );
    assert_eq!(
        schema_list_type(&s, &["spec", "ports", "tags"]),
        Some(ListType::Set)
    );
    assert_eq!(
        schema_list_type(&s, &["spec", "legacy"]),
        Some(ListType::Map(vec!["name".into()]))
    );
    assert_eq!(schema_list_type(&s, &["spec", "cronSpec"]), None);
    assert_eq!(schema_list_type(&s, &["metadata", "finalizers"]), None);
    assert_eq!(schema_list_type(&s, &["spec", "nope"]), None);
}

#[test]
fn hash_and_cache_are_stable() {
    let a = group_version_document_cached("apps", "v1", &apps_kinds(), &[]);
    let b = group_version_document_cached("apps", "v1", &apps_kinds(), &[]);
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert_eq!(a.hash, document_hash(&a.value));
    assert_eq!(a.hash.len(), 32);
    let fresh = group_version_document("apps", "v1", &apps_kinds(), &[]);
    assert_eq!(document_hash(&fresh), a.hash);
    let c = group_version_document_cached("apps", "v1", &apps_kinds()[..1], &[]);
    assert_ne!(c.hash, a.hash);
    let idx = openapi_v3_index(&[("apps", "v1", &a.hash), ("", "v1", "X")]);
    assert_eq!(
        idx["paths"]["apis/apps/v1"]["serverRelativeURL"],
        format!("/openapi/v3/apis/apps/v1?hash={}", a.hash)
    );
    assert_eq!(
        idx["paths"]["api/v1"]["serverRelativeURL"],
        "/openapi/v3/api/v1?hash=X"
    );
}
