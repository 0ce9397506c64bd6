//! `/version`, discovery (`/api`, `/apis`, per group-version resource lists) and the
//! `OpenAPI` v3 documents kubectl reads to decide on server-side field validation.

use std::net::SocketAddr;

use serde_json::{Value, json};

use super::status::{ApiError, ApiResult};
use crate::registry::{self, RESOURCES, Resource, Subresource};

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

fn group_json(group: &str) -> Value {
    let versions: Vec<Value> = registry::group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": versions, "preferredVersion": versions.first().cloned().unwrap_or(Value::Null)})
}

pub(super) fn api_group_list() -> Value {
    let mut groups: Vec<&str> = Vec::new();
    for (g, _) in registry::group_versions() {
        if !g.is_empty() && !groups.contains(&g) {
            groups.push(g);
        }
    }
    let groups: Vec<Value> = groups.into_iter().map(group_json).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub(super) fn api_group(group: &str) -> ApiResult<Value> {
    if !registry::group_versions().iter().any(|(g, _)| *g == group) || group.is_empty() {
        return Err(ApiError::no_route(&format!("/apis/{group}")));
    }
    let mut v = group_json(group);
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

fn subresource_entry(r: &Resource, sub: Subresource) -> Value {
    let (group, version, kind, verbs): (Option<&str>, Option<&str>, &str, &[&str]) = match sub {
        Subresource::Status => (None, None, r.kind, &["get", "patch", "update"]),
        Subresource::Scale => (
            Some("autoscaling"),
            Some("v1"),
            "Scale",
            &["get", "patch", "update"],
        ),
        Subresource::Binding => (None, None, "Binding", &["create"]),
        Subresource::Finalize => (None, None, r.kind, &["update"]),
    };
    let mut e = json!({"name": format!("{}/{}", r.plural, sub.name()), "singularName": "", "namespaced": r.namespaced,
        "kind": kind, "verbs": verbs});
    if let (Some(g), Some(v)) = (group, version) {
        e["group"] = json!(g);
        e["version"] = json!(v);
    }
    e
}

pub(super) fn resource_list(group: &str, version: &str) -> ApiResult<Value> {
    let rs: Vec<&Resource> = RESOURCES
        .iter()
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
    for r in rs {
        entries.push(resource_entry(r));
        for sub in r.subresources {
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

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// Changes whenever the served set changes, so kubectl's cache is invalidated.
fn doc_hash() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for r in RESOURCES {
        for b in r
            .plural
            .bytes()
            .chain(r.group.bytes())
            .chain(env!("CARGO_PKG_VERSION").bytes())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016X}")
}

pub(super) fn openapi_index() -> Value {
    let mut paths = serde_json::Map::new();
    for (g, v) in registry::group_versions() {
        let p = gv_path(g, v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", doc_hash())}),
        );
    }
    json!({"paths": paths})
}

/// A per-group-version `OpenAPI` v3 document. It lists every object path with its PATCH
/// operation, tagged with `x-kubernetes-group-version-kind` and the `fieldValidation`
/// parameter, which is how kubectl learns that this server validates fields itself.
/// Strategic merge patch is accepted but not advertised here: advertising it would make
/// kubectl compute patches from schemas in this document, so kubectl uses its compiled-in
/// patch metadata for built-in kinds instead.
pub(super) fn openapi_doc(path: &str) -> ApiResult<Value> {
    let (g, v) = registry::group_versions()
        .into_iter()
        .find(|(g, v)| gv_path(g, v) == path)
        .ok_or_else(|| ApiError::no_route(&format!("/openapi/v3/{path}")))?;
    let mut paths = serde_json::Map::new();
    let query_param = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    for r in RESOURCES.iter().filter(|r| r.group == g && r.version == v) {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let base = if r.namespaced {
            format!(
                "{}/namespaces/{{namespace}}/{}/{{name}}",
                r.path_prefix(),
                r.plural
            )
        } else {
            format!("{}/{}/{{name}}", r.path_prefix(), r.plural)
        };
        let schema_ref = json!({"$ref": format!("#/components/schemas/{}", schema_name(r))});
        let patch_op = json!({
            "operationId": format!("patch{}", r.kind),
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [query_param("dryRun"), query_param("fieldManager"), query_param("fieldValidation"), query_param("force")],
            "requestBody": {"content": {
                "application/json-patch+json": {"schema": {"type": "object"}},
                "application/merge-patch+json": {"schema": {"type": "object"}},
            }, "required": true},
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref}}}},
        });
        let get_op = json!({
            "operationId": format!("read{}", r.kind),
            "x-kubernetes-action": "get",
            "x-kubernetes-group-version-kind": gvk,
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref}}}},
        });
        let put_op = json!({
            "operationId": format!("replace{}", r.kind),
            "x-kubernetes-action": "put",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [query_param("dryRun"), query_param("fieldManager"), query_param("fieldValidation")],
            "requestBody": {"content": {"application/json": {"schema": schema_ref}}, "required": true},
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref}}}},
        });
        paths.insert(format!("/{base}").replace("//", "/"), json!({"get": get_op, "put": put_op, "patch": patch_op,
            "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}]}));
    }
    let mut schemas = serde_json::Map::new();
    for r in RESOURCES.iter().filter(|r| r.group == g && r.version == v) {
        schemas.insert(schema_name(r), json!({
            "type": "object",
            "description": format!("{} ({}). sluice validates this kind on the server.", r.kind, r.api_version()),
            "x-kubernetes-group-version-kind": [{"group": r.group, "version": r.version, "kind": r.kind}],
        }));
    }
    Ok(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{KUBE_MINOR}.0")},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn schema_name(r: &Resource) -> String {
    let group = match r.group {
        "" => "core".to_string(),
        g => g.split('.').next().unwrap_or(g).to_string(),
    };
    format!("io.k8s.api.{group}.{}.{}", r.version, r.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_lists_subresources_and_scale_kind() {
        let l = resource_list("apps", "v1").unwrap();
        let res = l["resources"].as_array().unwrap();
        let scale = res
            .iter()
            .find(|e| e["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["kind"], "Scale");
        assert!(res.iter().any(|e| e["name"] == "replicasets/status"));
        let core = resource_list("", "v1").unwrap();
        assert!(
            core["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == "pods/binding")
        );
        assert_eq!(resource_list("nope", "v1").unwrap_err().code, 404);
    }

    #[test]
    fn openapi_patch_ops_carry_gvk_and_field_validation() {
        let idx = openapi_index();
        assert!(
            idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/apis/apps/v1?hash=")
        );
        let doc = openapi_doc("apis/apps/v1").unwrap();
        let p = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(
            p["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["name"] == "fieldValidation" && x["in"] == "query")
        );
        let core = openapi_doc("api/v1").unwrap();
        assert!(core["paths"]["/api/v1/nodes/{name}"]["patch"].is_object());
    }
}
