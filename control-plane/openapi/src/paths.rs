//! The path items of one served kind, with upstream's operations: collection
//! (list, create, delete collection), object (read, replace, patch, delete), the
//! all-namespaces list of namespaced kinds, and the subresources.
//!
//! Every PATCH operation carries `x-kubernetes-group-version-kind` and the
//! `fieldValidation` query parameter: kubectl takes the first PATCH operation it
//! finds for a GVK and, if it has the parameter, leaves field validation to the
//! server. PATCH request bodies offer JSON patch, merge patch and apply patch, not
//! strategic merge patch (see the crate documentation for why).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::ServedKind;
use crate::builtin::{API_RESOURCE_LIST, DELETE_OPTIONS, PATCH, STATUS, builtin_name};
use crate::convert::ref_to;

/// The media types every object operation answers in.
const MEDIA: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];
/// The extra media types of list/watch answers.
const WATCH_MEDIA: &[&str] = &[
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
];
/// The patch media types advertised (strategic merge deliberately absent).
const PATCH_MEDIA: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
];

/// `Apps`, `RbacAuthorization`, `Core`, `StableExampleCom`: the group as upstream
/// spells it in operation ids.
fn group_camel(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    let g = group.strip_suffix(".k8s.io").unwrap_or(group);
    g.split(['.', '-']).map(capitalize).collect()
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub(crate) fn prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description,
        "schema": {"type": ty, "uniqueItems": true}})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "description": description, "required": true,
        "schema": {"type": "string", "uniqueItems": true}})
}

fn pretty() -> Value {
    query(
        "pretty",
        "string",
        "If 'true', then the output is pretty printed.",
    )
}

fn dry_run() -> Value {
    query(
        "dryRun",
        "string",
        "When present, indicates that modifications should not be persisted. Valid values: All (all dry run stages are processed).",
    )
}

fn field_manager() -> Value {
    query(
        "fieldManager",
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes. Required for apply requests (application/apply-patch), optional otherwise.",
    )
}

fn field_validation() -> Value {
    query(
        "fieldValidation",
        "string",
        "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore (drop them silently), Warn (drop them and answer a warning for each; the default), Strict (fail the request with an error naming every such field).",
    )
}

fn force() -> Value {
    query(
        "force",
        "boolean",
        "Force is going to \"force\" Apply requests: the request re-acquires fields owned by other field managers. Must be unset for non-apply patch requests.",
    )
}

fn list_params() -> Vec<Value> {
    vec![
        query(
            "allowWatchBookmarks",
            "boolean",
            "allowWatchBookmarks requests watch events of type BOOKMARK.",
        ),
        query(
            "continue",
            "string",
            "The continue token of the previous page of a chunked list.",
        ),
        query(
            "fieldSelector",
            "string",
            "A selector to restrict the list of returned objects by their fields.",
        ),
        query(
            "labelSelector",
            "string",
            "A selector to restrict the list of returned objects by their labels.",
        ),
        query(
            "limit",
            "integer",
            "The maximum number of responses to return for a list call; more are announced by a continue token.",
        ),
        query(
            "resourceVersion",
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
        ),
        query(
            "resourceVersionMatch",
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls.",
        ),
        query(
            "sendInitialEvents",
            "boolean",
            "With watch=true, start the watch stream with synthetic events for the current state of the objects.",
        ),
        query(
            "timeoutSeconds",
            "integer",
            "Timeout for the list/watch call, regardless of activity.",
        ),
        query(
            "watch",
            "boolean",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
        ),
    ]
}

fn delete_params() -> Vec<Value> {
    vec![
        dry_run(),
        query(
            "gracePeriodSeconds",
            "integer",
            "The duration in seconds before the object should be deleted. Zero means delete immediately.",
        ),
        query(
            "ignoreStoreReadErrorWithClusterBreakingPotential",
            "boolean",
            "If set to true, delete an object whose stored form cannot be read (corrupt). Unsafe.",
        ),
        query(
            "orphanDependents",
            "boolean",
            "Deprecated: use propagationPolicy. Whether the dependent objects should be orphaned.",
        ),
        query(
            "propagationPolicy",
            "string",
            "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'.",
        ),
    ]
}

fn content(schema: &Value, media: &[&str]) -> Value {
    let m: serde_json::Map<String, Value> = media
        .iter()
        .map(|t| ((*t).to_string(), json!({"schema": schema})))
        .collect();
    Value::Object(m)
}

fn responses(codes: &[&str], schema: &Value, media: &[&str]) -> Value {
    let mut r = serde_json::Map::new();
    for code in codes {
        let description = match *code {
            "201" => "Created",
            "202" => "Accepted",
            _ => "OK",
        };
        r.insert(
            (*code).to_string(),
            json!({"description": description, "content": content(schema, media)}),
        );
    }
    r.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(r)
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": ref_to(name)})
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

/// The operations of one kind, with the names of the schemas they refer to.
struct Ops<'a> {
    k: &'a ServedKind<'a>,
    gv: String,
    tags: Value,
    gvk: Value,
    object: Value,
    list: Value,
    status: Value,
}

impl Ops<'_> {
    fn op(
        &self,
        action: &str,
        id: String,
        description: String,
        gvk: &Value,
        params: Vec<Value>,
    ) -> serde_json::Map<String, Value> {
        let mut o = serde_json::Map::new();
        o.insert("tags".into(), self.tags.clone());
        o.insert("description".into(), Value::String(description));
        o.insert("operationId".into(), Value::String(id));
        if !params.is_empty() {
            o.insert("parameters".into(), Value::Array(params));
        }
        o.insert("x-kubernetes-action".into(), Value::String(action.into()));
        o.insert("x-kubernetes-group-version-kind".into(), gvk.clone());
        o
    }

    fn scope(&self) -> &'static str {
        if self.k.namespaced { "Namespaced" } else { "" }
    }

    /// `read`/`replace`/`patch` of the object or of a subresource that holds `schema`.
    fn get_put_patch(&self, sub: &str, what: &str, schema: &Value, gvk: &Value) -> Value {
        let (kind, scope, gv) = (self.k.kind, self.scope(), &self.gv);
        let of = if what.is_empty() {
            String::new()
        } else {
            format!("{what} of ")
        };
        let mut get = self.op(
            "get",
            format!("read{gv}{scope}{kind}{sub}"),
            format!("read {of}the specified {kind}"),
            gvk,
            vec![],
        );
        get.insert("responses".into(), responses(&["200"], schema, MEDIA));
        let mut put = self.op(
            "put",
            format!("replace{gv}{scope}{kind}{sub}"),
            format!("replace {of}the specified {kind}"),
            gvk,
            vec![dry_run(), field_manager(), field_validation()],
        );
        put.insert(
            "requestBody".into(),
            json!({"content": content(schema, &["*/*"]), "required": true}),
        );
        put.insert(
            "responses".into(),
            responses(&["200", "201"], schema, MEDIA),
        );
        let mut patch = self.op(
            "patch",
            format!("patch{gv}{scope}{kind}{sub}"),
            format!("partially update {of}the specified {kind}"),
            gvk,
            vec![dry_run(), field_manager(), field_validation(), force()],
        );
        patch.insert(
            "requestBody".into(),
            json!({"content": content(&schema_ref(PATCH), PATCH_MEDIA), "required": true}),
        );
        patch.insert(
            "responses".into(),
            responses(&["200", "201"], schema, MEDIA),
        );
        json!({"get": get, "put": put, "patch": patch})
    }

    /// A POST-only subresource (`binding`, `eviction`, `token`).
    fn create_sub(&self, sub: &str, body_kind: (&str, &str, &str)) -> Option<Value> {
        let (g, v, k) = body_kind;
        let name = builtin_name(g, v, k)?;
        let schema = schema_ref(name);
        let (kind, scope, gv) = (self.k.kind, self.scope(), &self.gv);
        let mut post = self.op(
            "post",
            format!("create{gv}{scope}{kind}{sub}"),
            format!("create {} of a {kind}", lower_first(sub)),
            &gvk(g, v, k),
            vec![dry_run(), field_manager(), field_validation()],
        );
        post.insert(
            "requestBody".into(),
            json!({"content": content(&schema, &["*/*"]), "required": true}),
        );
        post.insert(
            "responses".into(),
            responses(&["200", "201", "202"], &schema, MEDIA),
        );
        Some(json!({"post": post}))
    }

    /// A streaming (`connect`) subresource: exec, attach, portforward, proxy.
    fn connect(&self, sub: &str) -> Value {
        let (kind, scope, gv) = (self.k.kind, self.scope(), &self.gv);
        let options = gvk("", "v1", &format!("{kind}{sub}Options"));
        let text = json!({"type": "string"});
        let mut item = serde_json::Map::new();
        for (method, verb) in [("get", "GET"), ("post", "POST")] {
            let mut o = self.op(
                "connect",
                format!("connect{gv}{}{scope}{kind}{sub}", capitalize(method)),
                format!("connect {verb} requests to {} of {kind}", lower_first(sub)),
                &options,
                vec![],
            );
            o.insert("responses".into(), responses(&["200"], &text, &["*/*"]));
            item.insert(method.into(), Value::Object(o));
        }
        Value::Object(item)
    }

    fn log(&self) -> Value {
        let (kind, scope, gv) = (self.k.kind, self.scope(), &self.gv);
        let mut get = self.op(
            "get",
            format!("read{gv}{scope}{kind}Log"),
            format!("read log of the specified {kind}"),
            &self.gvk,
            vec![
                query(
                    "container",
                    "string",
                    "The container for which to stream logs. Defaults to only container if there is one container in the pod.",
                ),
                query("follow", "boolean", "Follow the log stream of the pod."),
                query(
                    "limitBytes",
                    "integer",
                    "If set, the number of bytes to read from the server before terminating the log output.",
                ),
                query(
                    "previous",
                    "boolean",
                    "Return previous terminated container logs.",
                ),
                query(
                    "sinceSeconds",
                    "integer",
                    "A relative time in seconds before the current time from which to show logs.",
                ),
                query(
                    "sinceTime",
                    "string",
                    "An RFC3339 timestamp from which to show logs.",
                ),
                query(
                    "tailLines",
                    "integer",
                    "If set, the number of lines from the end of the logs to show.",
                ),
                query(
                    "timestamps",
                    "boolean",
                    "If true, add an RFC3339 timestamp at the beginning of every line of log output.",
                ),
            ],
        );
        get.insert(
            "responses".into(),
            responses(&["200"], &json!({"type": "string"}), &["text/plain"]),
        );
        json!({"get": get})
    }

    fn finalize(&self) -> Value {
        let (kind, scope, gv) = (self.k.kind, self.scope(), &self.gv);
        let mut put = self.op(
            "put",
            format!("replace{gv}{scope}{kind}Finalize"),
            format!("replace finalize of the specified {kind}"),
            &self.gvk,
            vec![dry_run(), field_manager(), field_validation()],
        );
        put.insert(
            "requestBody".into(),
            json!({"content": content(&self.object, &["*/*"]), "required": true}),
        );
        put.insert(
            "responses".into(),
            responses(&["200", "201"], &self.object, MEDIA),
        );
        json!({"put": put})
    }

    fn collection(&self) -> Value {
        let (kind, scope, gv) = (self.k.kind, self.scope(), &self.gv);
        let mut list_media = MEDIA.to_vec();
        list_media.extend_from_slice(WATCH_MEDIA);
        let mut list = self.op(
            "list",
            format!("list{gv}{scope}{kind}"),
            format!("list or watch objects of kind {kind}"),
            &self.gvk,
            list_params(),
        );
        list.insert(
            "responses".into(),
            responses(&["200"], &self.list, &list_media),
        );
        let mut post = self.op(
            "post",
            format!("create{gv}{scope}{kind}"),
            format!("create a {kind}"),
            &self.gvk,
            vec![dry_run(), field_manager(), field_validation()],
        );
        post.insert(
            "requestBody".into(),
            json!({"content": content(&self.object, &["*/*"]), "required": true}),
        );
        post.insert(
            "responses".into(),
            responses(&["200", "201", "202"], &self.object, MEDIA),
        );
        let mut params = list_params();
        params.extend(delete_params());
        let mut delete = self.op(
            "deletecollection",
            format!("delete{gv}Collection{scope}{kind}"),
            format!("delete collection of {kind}"),
            &self.gvk,
            params,
        );
        delete.insert(
            "requestBody".into(),
            json!({"content": content(&schema_ref(DELETE_OPTIONS), &["*/*"])}),
        );
        delete.insert("responses".into(), responses(&["200"], &self.status, MEDIA));
        json!({"get": list, "post": post, "delete": delete})
    }

    fn object_item(&self) -> Value {
        let (kind, scope, gv) = (self.k.kind, self.scope(), &self.gv);
        let mut item = self.get_put_patch("", "", &self.object, &self.gvk);
        let mut delete = self.op(
            "delete",
            format!("delete{gv}{scope}{kind}"),
            format!("delete a {kind}"),
            &self.gvk,
            delete_params(),
        );
        delete.insert(
            "requestBody".into(),
            json!({"content": content(&schema_ref(DELETE_OPTIONS), &["*/*"])}),
        );
        delete.insert(
            "responses".into(),
            responses(&["200", "202"], &self.status, MEDIA),
        );
        item["delete"] = Value::Object(delete);
        item
    }

    fn all_namespaces(&self) -> Value {
        let (kind, gv) = (self.k.kind, &self.gv);
        let mut list_media = MEDIA.to_vec();
        list_media.extend_from_slice(WATCH_MEDIA);
        let mut list = self.op(
            "list",
            format!("list{gv}{kind}ForAllNamespaces"),
            format!("list or watch objects of kind {kind}"),
            &self.gvk,
            list_params(),
        );
        list.insert(
            "responses".into(),
            responses(&["200"], &self.list, &list_media),
        );
        json!({"get": list})
    }

    fn subresource(&self, sub: &str) -> Option<Value> {
        Some(match sub {
            "status" => self.get_put_patch("Status", "status", &self.object, &self.gvk),
            "scale" => {
                let scale = builtin_name("autoscaling", "v1", "Scale")?;
                self.get_put_patch(
                    "Scale",
                    "scale",
                    &schema_ref(scale),
                    &gvk("autoscaling", "v1", "Scale"),
                )
            }
            "binding" => self.create_sub("Binding", ("", "v1", "Binding"))?,
            "eviction" => self.create_sub("Eviction", ("policy", "v1", "Eviction"))?,
            "token" => self.create_sub("Token", ("authentication.k8s.io", "v1", "TokenRequest"))?,
            "finalize" => self.finalize(),
            "log" => self.log(),
            "exec" => self.connect("Exec"),
            "attach" => self.connect("Attach"),
            "portforward" => self.connect("PortForward"),
            "proxy" => self.connect("Proxy"),
            other => self.get_put_patch(
                &other.split('/').map(capitalize).collect::<String>(),
                other,
                &self.object,
                &self.gvk,
            ),
        })
    }
}

/// Adds the path items of `k` (its object schema `object`, its list schema `list`).
pub(crate) fn kind_paths(
    k: &ServedKind<'_>,
    object: &str,
    list: &str,
    out: &mut BTreeMap<String, Value>,
) {
    let gv = format!("{}{}", group_camel(k.group), capitalize(k.version));
    let ops = Ops {
        k,
        tags: json!([format!(
            "{}_{}",
            lower_first(&group_camel(k.group)),
            k.version
        )]),
        gv,
        gvk: gvk(k.group, k.version, k.kind),
        object: schema_ref(object),
        list: schema_ref(list),
        status: schema_ref(STATUS),
    };
    let base = prefix(k.group, k.version);
    let name = path_param("name", &format!("name of the {}", k.kind));
    let namespace = path_param(
        "namespace",
        "object name and auth scope, such as for teams and projects",
    );
    let collection = if k.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", k.plural)
    } else {
        format!("{base}/{}", k.plural)
    };
    let scope_params = |with_name: bool| {
        let mut p = Vec::new();
        if with_name {
            p.push(name.clone());
        }
        if k.namespaced {
            p.push(namespace.clone());
        }
        p.push(pretty());
        Value::Array(p)
    };
    let mut insert = |path: String, mut item: Value, params: Value| {
        item["parameters"] = params;
        out.insert(path, item);
    };
    insert(collection.clone(), ops.collection(), scope_params(false));
    let object_path = format!("{collection}/{{name}}");
    insert(object_path.clone(), ops.object_item(), scope_params(true));
    if k.namespaced {
        insert(
            format!("{base}/{}", k.plural),
            ops.all_namespaces(),
            json!([pretty()]),
        );
    }
    for sub in k.subresources {
        if let Some(item) = ops.subresource(sub) {
            insert(format!("{object_path}/{sub}"), item, scope_params(true));
        }
    }
}

/// The group-version's own path (`GET /apis/apps/v1/`: its `APIResourceList`).
pub(crate) fn resources_path(group: &str, version: &str, out: &mut BTreeMap<String, Value>) {
    let gv = format!("{}{}", group_camel(group), capitalize(version));
    let get = json!({
        "tags": [format!("{}_{}", lower_first(&group_camel(group)), version)],
        "description": "get available resources",
        "operationId": format!("get{gv}APIResources"),
        "responses": responses(&["200"], &schema_ref(API_RESOURCE_LIST), MEDIA),
    });
    out.insert(format!("{}/", prefix(group, version)), json!({"get": get}));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_id_spelling_follows_upstream() {
        assert_eq!(group_camel(""), "Core");
        assert_eq!(group_camel("apps"), "Apps");
        assert_eq!(
            group_camel("rbac.authorization.k8s.io"),
            "RbacAuthorization"
        );
        assert_eq!(group_camel("stable.example.com"), "StableExampleCom");
        assert_eq!(lower_first("RbacAuthorization"), "rbacAuthorization");
    }
}
