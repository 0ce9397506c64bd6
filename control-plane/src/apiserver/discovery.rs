//! `/version`, discovery (`/api`, `/apis`, per group-version resource lists) and the
//! `OpenAPI` v3 documents kubectl reads to decide on server-side field validation.

use std::net::SocketAddr;

use serde_json::{Value, json};

use super::status::{ApiError, ApiResult};
use crate::registry::{Registry, Resource, Subresource};

/// The Kubernetes version whose API types we serve.
pub const KUBE_MINOR: &str = "32";

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub(super) fn version() -> Value {
    json!({
        "major": "1", "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0-sluice.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "n/a (sluice is written in Rust)", "compiler": "rustc", "platform": "linux/amd64",
    })
}

pub(super) fn api_versions(addr: SocketAddr) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr.to_string()}]})
}

fn group_json(reg: &Registry, group: &str) -> Value {
    let versions: Vec<Value> = reg
        .group_versions()
        .into_iter()
        .filter(|(g, _)| g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": versions, "preferredVersion": versions.first().cloned().unwrap_or(Value::Null)})
}

pub(super) fn api_group_list(reg: &Registry) -> Value {
    let mut groups: Vec<String> = Vec::new();
    for (g, _) in reg.group_versions() {
        if !g.is_empty() && !groups.contains(&g) {
            groups.push(g);
        }
    }
    let groups: Vec<Value> = groups.iter().map(|g| group_json(reg, g)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub(super) fn api_group(reg: &Registry, group: &str) -> ApiResult<Value> {
    if group.is_empty() || !reg.has_group(group) {
        return Err(ApiError::no_route(&format!("/apis/{group}")));
    }
    let mut v = group_json(reg, group);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Ok(v)
}

fn resource_entry(r: &Resource) -> Value {
    let mut e = json!({
        "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
        "verbs": VERBS,
    });
    if !r.short_names.is_empty() {
        e["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        e["categories"] = json!(r.categories);
    }
    e
}

/// The options kind upstream lists for a `proxy` subresource (`PodProxyOptions`...).
fn proxy_options_kind(kind: &str) -> &'static str {
    match kind {
        "Service" => "ServiceProxyOptions",
        "Node" => "NodeProxyOptions",
        _ => "PodProxyOptions",
    }
}

fn subresource_entry(r: &Resource, sub: Subresource) -> Value {
    let (group, version, kind, verbs): (Option<&str>, Option<&str>, &str, &[&str]) = match sub {
        Subresource::Status => (None, None, &r.kind, &["get", "patch", "update"]),
        Subresource::Scale => (
            Some("autoscaling"),
            Some("v1"),
            "Scale",
            &["get", "patch", "update"],
        ),
        Subresource::Binding => (None, None, "Binding", &["create"]),
        Subresource::Finalize => (None, None, &r.kind, &["update"]),
        Subresource::Eviction => (Some("policy"), Some("v1"), "Eviction", &["create"]),
        Subresource::Log => (None, None, "Pod", &["get"]),
        Subresource::Exec => (None, None, "PodExecOptions", &["create", "get"]),
        Subresource::Attach => (None, None, "PodAttachOptions", &["create", "get"]),
        Subresource::PortForward => (None, None, "PodPortForwardOptions", &["create", "get"]),
        Subresource::Proxy => (
            None,
            None,
            proxy_options_kind(&r.kind),
            &["create", "delete", "get", "patch", "update"],
        ),
        Subresource::EphemeralContainers => (None, None, "Pod", &["get", "patch", "update"]),
    };
    let mut e = json!({"name": format!("{}/{}", r.plural, sub.name()), "singularName": "", "namespaced": r.namespaced,
        "kind": kind, "verbs": verbs});
    if let (Some(g), Some(v)) = (group, version) {
        e["group"] = json!(g);
        e["version"] = json!(v);
    }
    e
}

pub(super) fn resource_list(reg: &Registry, group: &str, version: &str) -> ApiResult<Value> {
    let rs: Vec<_> = reg
        .all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if rs.is_empty() {
        let path = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        return Err(ApiError::no_route(&path));
    }
    let mut entries = Vec::new();
    for r in &rs {
        entries.push(resource_entry(r));
        for sub in &r.subresources {
            entries.push(subresource_entry(r, *sub));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": entries}),
    )
}

/// The `OpenAPI` v3 document of one group-version: sluice-openapi builds it from the
/// real schemas of the served kinds (k8s-openapi's) and caches it per served set, so
/// its hash changes exactly when the document does and kubectl's cache follows.
fn openapi_document(
    reg: &Registry,
    group: &str,
    version: &str,
) -> std::sync::Arc<sluice_openapi::Document> {
    let rs: Vec<_> = reg
        .all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    let subs: Vec<Vec<&str>> = rs
        .iter()
        .map(|r| r.subresources.iter().map(|s| s.name()).collect())
        .collect();
    let kinds: Vec<sluice_openapi::ServedKind<'_>> = rs
        .iter()
        .zip(&subs)
        .map(|(r, subresources)| sluice_openapi::ServedKind {
            group: &r.group,
            version: &r.version,
            kind: &r.kind,
            plural: &r.plural,
            namespaced: r.namespaced,
            subresources,
        })
        .collect();
    let extra: Vec<(String, Value)> = rs
        .iter()
        .filter_map(|r| r.strategy.openapi_schema())
        .collect();
    sluice_openapi::group_version_document_cached(group, version, &kinds, &extra)
}

pub(super) fn openapi_index(reg: &Registry) -> Value {
    let docs: Vec<_> = reg
        .group_versions()
        .into_iter()
        .map(|(g, v)| {
            let doc = openapi_document(reg, &g, &v);
            (g, v, doc)
        })
        .collect();
    let entries: Vec<(&str, &str, &str)> = docs
        .iter()
        .map(|(g, v, d)| (g.as_str(), v.as_str(), d.hash.as_str()))
        .collect();
    sluice_openapi::openapi_v3_index(&entries)
}

/// A per-group-version `OpenAPI` v3 document with the real schemas of the served kinds
/// (`kubectl explain`). Every PATCH operation is tagged with
/// `x-kubernetes-group-version-kind` and carries the `fieldValidation` parameter, which
/// is how kubectl learns that this server validates fields itself. Strategic merge patch
/// is accepted but not advertised here: advertising it would make kubectl compute
/// patches from the schemas in this document, which carry no patch merge keys, so
/// kubectl uses its compiled-in patch metadata for built-in kinds instead.
pub(super) fn openapi_doc(reg: &Registry, path: &str) -> ApiResult<Value> {
    let (g, v) = reg
        .group_versions()
        .into_iter()
        .find(|(g, v)| sluice_openapi::gv_path(g, v) == path)
        .ok_or_else(|| ApiError::no_route(&format!("/openapi/v3/{path}")))?;
    Ok(openapi_document(reg, &g, &v).value.clone())
}

/// The component-schema name of a resource's kind, as upstream names it (the tests find
/// each served kind's schema by it).
#[cfg(test)]
fn schema_name(r: &Resource) -> String {
    sluice_openapi::schema_name(&r.group, &r.version, &r.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_lists_subresources_and_scale_kind() {
        let reg = Registry::builtin();
        let l = resource_list(&reg, "apps", "v1").unwrap();
        let res = l["resources"].as_array().unwrap();
        let scale = res
            .iter()
            .find(|e| e["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["kind"], "Scale");
        assert!(res.iter().any(|e| e["name"] == "replicasets/status"));
        let core = resource_list(&reg, "", "v1").unwrap();
        assert!(
            core["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == "pods/binding")
        );
        assert_eq!(resource_list(&reg, "nope", "v1").unwrap_err().code, 404);
    }

    #[test]
    fn discovery_lists_streaming_and_proxy_subresources_with_upstream_verbs() {
        let reg = Registry::builtin();
        let core = resource_list(&reg, "", "v1").unwrap();
        let res = core["resources"].as_array().unwrap();
        let entry = |name: &str| {
            res.iter()
                .find(|e| e["name"] == name)
                .unwrap_or_else(|| panic!("{name} is listed"))
                .clone()
        };
        let connect = ["create", "get"];
        let proxy = ["create", "delete", "get", "patch", "update"];
        for (name, kind, verbs, namespaced) in [
            ("pods/exec", "PodExecOptions", &connect[..], true),
            ("pods/attach", "PodAttachOptions", &connect[..], true),
            (
                "pods/portforward",
                "PodPortForwardOptions",
                &connect[..],
                true,
            ),
            ("pods/proxy", "PodProxyOptions", &proxy[..], true),
            ("services/proxy", "ServiceProxyOptions", &proxy[..], true),
            ("nodes/proxy", "NodeProxyOptions", &proxy[..], false),
            (
                "pods/ephemeralcontainers",
                "Pod",
                &["get", "patch", "update"][..],
                true,
            ),
        ] {
            let e = entry(name);
            assert_eq!(e["kind"], kind, "{name}");
            assert_eq!(e["verbs"], json!(verbs), "{name}");
            assert_eq!(e["namespaced"], namespaced, "{name}");
            assert!(e.get("group").is_none(), "{name}");
        }
    }

    #[test]
    fn openapi_patch_ops_carry_gvk_and_field_validation() {
        let reg = Registry::builtin();
        let idx = openapi_index(&reg);
        assert!(
            idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/apis/apps/v1?hash=")
        );
        let doc = openapi_doc(&reg, "apis/apps/v1").unwrap();
        let p = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(
            p["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["name"] == "fieldValidation" && x["in"] == "query")
        );
        let core = openapi_doc(&reg, "api/v1").unwrap();
        assert!(core["paths"]["/api/v1/nodes/{name}"]["patch"].is_object());
        // Real schemas, named as upstream, found by GVK as kubectl explain does.
        for r in reg.all() {
            let doc = openapi_doc(&reg, &sluice_openapi::gv_path(&r.group, &r.version)).unwrap();
            let schema = &doc["components"]["schemas"][schema_name(&r)];
            assert_eq!(
                schema["x-kubernetes-group-version-kind"][0]["kind"], r.kind,
                "{r:?}"
            );
        }
        let spec = &doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"];
        assert_eq!(spec["properties"]["replicas"]["format"], "int32");
        assert!(
            idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .ends_with(&sluice_openapi::document_hash(&doc))
        );
    }
}
