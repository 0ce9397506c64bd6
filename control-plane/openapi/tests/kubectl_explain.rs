//! The real kubectl (1.32) reads these documents: a tiny API server serving
//! discovery, the `/openapi/v3` index and the documents on a loopback port, and
//! `kubectl explain` printing the schemas' real descriptions.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use sluice_openapi::{
    Document, ServedKind, custom_resource_schema, custom_resource_schema_name,
    group_version_document_cached, gv_path, openapi_v3_index,
};

const PODS: ServedKind<'static> = ServedKind {
    group: "",
    version: "v1",
    kind: "Pod",
    plural: "pods",
    namespaced: true,
    subresources: &["status", "log"],
};
const DEPLOYMENTS: ServedKind<'static> = ServedKind {
    group: "apps",
    version: "v1",
    kind: "Deployment",
    plural: "deployments",
    namespaced: true,
    subresources: &["status", "scale"],
};
const CRONTABS: ServedKind<'static> = ServedKind {
    group: "stable.example.com",
    version: "v1",
    kind: "CronTab",
    plural: "crontabs",
    namespaced: true,
    subresources: &["status"],
};

struct Served {
    docs: Vec<(String, Arc<Document>)>,
    index: Value,
    /// `POST <path>?<query>` of every create received.
    creates: Mutex<Vec<String>>,
}

fn served() -> Served {
    let crontab = custom_resource_schema(
        CRONTABS.group,
        CRONTABS.version,
        CRONTABS.kind,
        &json!({"type": "object", "description": "A schedule of commands.", "properties": {
            "spec": {"type": "object", "properties": {
                "cronSpec": {"type": "string", "description": "The cron expression the job runs on."},
            }},
        }}),
    );
    let extra = vec![(
        custom_resource_schema_name(CRONTABS.group, CRONTABS.version, CRONTABS.kind),
        crontab,
    )];
    let docs = vec![
        group_version_document_cached("", "v1", &[PODS], &[]),
        group_version_document_cached("apps", "v1", &[DEPLOYMENTS], &[]),
        group_version_document_cached("stable.example.com", "v1", &[CRONTABS], &extra),
    ];
    let gvs = [("", "v1"), ("apps", "v1"), ("stable.example.com", "v1")];
    let entries: Vec<(&str, &str, &str)> = gvs
        .iter()
        .zip(&docs)
        .map(|((g, v), d)| (*g, *v, d.hash.as_str()))
        .collect();
    let index = openapi_v3_index(&entries);
    Served {
        docs: gvs
            .iter()
            .map(|(g, v)| gv_path(g, v))
            .zip(docs.iter().cloned())
            .collect(),
        index,
        creates: Mutex::new(Vec::new()),
    }
}

fn resource_list(gv: &str, kinds: &[ServedKind<'_>]) -> Value {
    let mut resources = Vec::new();
    for k in kinds {
        resources.push(
            json!({"name": k.plural, "singularName": k.kind.to_lowercase(),
            "namespaced": k.namespaced, "kind": k.kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}),
        );
        for sub in k.subresources {
            resources.push(
                json!({"name": format!("{}/{sub}", k.plural), "singularName": "",
                "namespaced": k.namespaced, "kind": k.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

fn group(name: &str) -> Value {
    let gv = json!({"groupVersion": format!("{name}/v1"), "version": "v1"});
    json!({"name": name, "versions": [gv], "preferredVersion": gv})
}

fn discovery(path: &str) -> Option<Value> {
    Some(match path {
        "version" => json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0"}),
        "api" => json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        "apis" => json!({"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [group("apps"), group("stable.example.com")]}),
        "api/v1" => resource_list("v1", &[PODS]),
        "apis/apps/v1" => resource_list("apps/v1", &[DEPLOYMENTS]),
        "apis/stable.example.com/v1" => resource_list("stable.example.com/v1", &[CRONTABS]),
        _ => return None,
    })
}

fn json_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn handle(State(s): State<Arc<Served>>, UrlPath(path): UrlPath<String>) -> Response {
    if path == "openapi/v3" {
        return json_response(s.index.to_string().into_bytes());
    }
    if let Some(p) = path.strip_prefix("openapi/v3/")
        && let Some((_, doc)) = s.docs.iter().find(|(gv, _)| gv == p)
    {
        return json_response(doc.json.clone());
    }
    match discovery(&path) {
        Some(v) => json_response(v.to_string().into_bytes()),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404})
            .to_string(),
        )
            .into_response(),
    }
}

/// Answers a create with the object sent, recording the request line.
async fn create(
    State(s): State<Arc<Served>>,
    UrlPath(path): UrlPath<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    s.creates
        .lock()
        .unwrap()
        .push(format!("POST /{path}?{}", query.unwrap_or_default()));
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// Serves on a loopback port from a runtime of its own; returns the URL.
fn start_server() -> (tokio::runtime::Runtime, String, Arc<Served>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = Arc::new(served());
    let app = Router::new()
        .route("/{*path}", get(handle).post(create))
        .with_state(Arc::clone(&served));
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (rt, url, served)
}

fn kubectl(url: &str, home: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("kubectl");
    cmd.env("HOME", home)
        .env_remove("KUBECONFIG")
        .arg(format!("--server={url}"))
        .arg(format!("--cache-dir={}", home.join("cache").display()))
        .arg("--request-timeout=30s")
        .args(args);
    sluice_test_util::stdout(&mut cmd)
}

#[test]
fn kubectl_explain_reads_the_real_schemas() {
    if !sluice_test_util::require(
        "kubectl_explain_reads_the_real_schemas",
        sluice_test_util::has_tool("kubectl"),
        "the tool `kubectl` on PATH",
    ) {
        return;
    }
    let (_rt, url, _) = start_server();
    let home = tempfile::tempdir().unwrap();

    let out = kubectl(&url, home.path(), &["explain", "deployment.spec.replicas"]);
    assert!(out.contains("GROUP:      apps"), "{out}");
    assert!(out.contains("KIND:       Deployment"), "{out}");
    assert!(out.contains("FIELD: replicas <integer>"), "{out}");
    assert!(out.contains("Number of desired pods."), "{out}");

    let out = kubectl(&url, home.path(), &["explain", "pods.spec.containers"]);
    assert!(out.contains("KIND:       Pod"), "{out}");
    assert!(out.contains("FIELD: containers <[]Container>"), "{out}");
    assert!(
        out.contains("List of containers belonging to the pod."),
        "{out}"
    );
    // The fields of the referenced Container schema, with its required one.
    assert!(out.contains("name\t<string> -required-"), "{out}");
    assert!(out.contains("resources\t<ResourceRequirements>"), "{out}");

    let out = kubectl(
        &url,
        home.path(),
        &["explain", "deployment.spec.strategy.rollingUpdate.maxSurge"],
    );
    assert!(out.contains("FIELD: maxSurge <IntOrString>"), "{out}");

    let out = kubectl(&url, home.path(), &["explain", "crontabs.spec"]);
    assert!(out.contains("KIND:       CronTab"), "{out}");
    assert!(
        out.contains("The cron expression the job runs on."),
        "{out}"
    );

    // Recursion through every reachable schema terminates and covers nested kinds.
    let out = kubectl(&url, home.path(), &["explain", "pods", "--recursive"]);
    assert!(out.contains("ephemeralContainers"), "{out}");
}

/// `--validate=strict` (the default) finds the PATCH operation of the kind's GVK in
/// the v3 document with a `fieldValidation` parameter, so kubectl leaves validation
/// to the server and sends `fieldValidation=Strict`, instead of fetching
/// `/openapi/v2` (which this server does not serve) to validate on the client.
#[test]
fn kubectl_strict_validation_is_left_to_the_server() {
    if !sluice_test_util::require(
        "kubectl_strict_validation_is_left_to_the_server",
        sluice_test_util::has_tool("kubectl"),
        "the tool `kubectl` on PATH",
    ) {
        return;
    }
    let (_rt, url, served) = start_server();
    let home = tempfile::tempdir().unwrap();
    let manifest = home.path().join("deploy.json");
    std::fs::write(
        &manifest,
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
        .to_string(),
    )
    .unwrap();
    let manifest = manifest.display().to_string();
    let out = kubectl(
        &url,
        home.path(),
        &["create", "--validate=strict", "-f", &manifest],
    );
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let creates = served.creates.lock().unwrap().clone();
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert!(
        creates[0].starts_with("POST /apis/apps/v1/namespaces/default/deployments?")
            && creates[0].contains("fieldValidation=Strict"),
        "{creates:?}"
    );
}
