//! The verbs against the in-memory store, without HTTP.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};
use sluice_store::{Embedded, Store};

use super::super::options::{
    DeleteOptions, FieldValidation, ListOptions, PatchOptions, PatchType, Query, WriteOptions,
};
use super::super::{ApiServer, Config};
use super::ScaleWrite;
use crate::registry::{Resource, Subresource};

async fn server_on(store: Arc<dyn Store>) -> Arc<ApiServer> {
    ApiServer::new(store, Config::default())
        .await
        .expect("server starts")
}

async fn server() -> Arc<ApiServer> {
    server_on(Arc::new(Embedded::open_in_memory())).await
}

fn w() -> WriteOptions {
    WriteOptions::default()
}

fn res(srv: &ApiServer, g: &str, p: &str) -> Arc<Resource> {
    srv.resource(g, "v1", p)
}

fn cm(name: &str, labels: &Value) -> Value {
    json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

fn patch_opts(t: PatchType) -> PatchOptions {
    PatchOptions {
        patch_type: t,
        write: w(),
        force: false,
    }
}

#[tokio::test]
async fn create_sets_lifecycle_fields_and_refuses_duplicates_and_bad_names() {
    let srv = server().await;
    let r = res(&srv, "", "configmaps");
    let (v, _) = srv
        .create(&r, Some("default"), &cm("a", &json!({})), &w())
        .await
        .unwrap();
    assert_eq!(v["metadata"]["namespace"], "default");
    assert!(v["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(v["metadata"]["resourceVersion"].is_string());
    assert_eq!(v["kind"], "ConfigMap");
    let dup = srv
        .create(&r, Some("default"), &cm("a", &json!({})), &w())
        .await
        .unwrap_err();
    assert_eq!((dup.code, dup.reason), (409, "AlreadyExists"));
    let bad = srv
        .create(&r, Some("default"), &cm("Bad_Name", &json!({})), &w())
        .await
        .unwrap_err();
    assert_eq!((bad.code, bad.reason), (422, "Invalid"));
    let missing_ns = srv
        .create(&r, Some("nope"), &cm("b", &json!({})), &w())
        .await
        .unwrap_err();
    assert_eq!(missing_ns.code, 404);
}

#[tokio::test]
async fn strict_field_validation_refuses_unknown_fields_and_warn_reports_them() {
    let srv = server().await;
    let r = res(&srv, "", "configmaps");
    let body = json!({"metadata": {"name": "x"}, "dataa": {}});
    let strict = WriteOptions {
        field_validation: FieldValidation::Strict,
        ..w()
    };
    assert_eq!(
        srv.create(&r, Some("default"), &body, &strict)
            .await
            .unwrap_err()
            .code,
        400
    );
    let (_, warnings) = srv.create(&r, Some("default"), &body, &w()).await.unwrap();
    assert_eq!(warnings, vec!["unknown field \"dataa\"".to_string()]);
}

#[tokio::test]
async fn list_pages_and_selects() {
    let srv = server().await;
    let r = res(&srv, "", "configmaps");
    for i in 0..5 {
        let app = if i % 2 == 0 { "even" } else { "odd" };
        srv.create(
            &r,
            Some("default"),
            &cm(&format!("c{i}"), &json!({"app": app})),
            &w(),
        )
        .await
        .unwrap();
    }
    let mut opts = ListOptions::parse(&Query::parse(Some("limit=2")), &r).unwrap();
    let mut names = Vec::new();
    loop {
        let page = srv.list(&r, Some("default"), &opts).await.unwrap();
        names.extend(page.items.iter().map(|o| o["metadata"]["name"].clone()));
        match page.continue_token {
            Some(t) => opts.continue_token = Some(t),
            None => break,
        }
    }
    assert_eq!(names, vec!["c0", "c1", "c2", "c3", "c4"]);
    let even = ListOptions::parse(&Query::parse(Some("labelSelector=app%3Deven")), &r).unwrap();
    assert_eq!(
        srv.list(&r, Some("default"), &even)
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    let bad = ListOptions {
        continue_token: Some("garbage".into()),
        ..ListOptions::default()
    };
    assert_eq!(
        srv.list(&r, Some("default"), &bad).await.unwrap_err().code,
        400
    );
}

#[tokio::test]
async fn update_with_a_stale_version_conflicts_and_without_one_applies() {
    let srv = server().await;
    let r = res(&srv, "", "configmaps");
    let (v, _) = srv
        .create(&r, Some("default"), &cm("u", &json!({})), &w())
        .await
        .unwrap();
    let rv = v["metadata"]["resourceVersion"].clone();
    let mut next = v.clone();
    next["data"]["k"] = json!("2");
    srv.update(&r, Some("default"), "u", None, &next, &w())
        .await
        .unwrap();
    // The same resourceVersion again is now stale.
    next["metadata"]["resourceVersion"] = rv;
    next["data"]["k"] = json!("3");
    let e = srv
        .update(&r, Some("default"), "u", None, &next, &w())
        .await
        .unwrap_err();
    assert_eq!((e.code, e.reason), (409, "Conflict"));
    // Without a precondition it is an unconditional update.
    next["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let (v, _) = srv
        .update(&r, Some("default"), "u", None, &next, &w())
        .await
        .unwrap();
    assert_eq!(v["data"]["k"], "3");
}

#[tokio::test]
async fn concurrent_unversioned_patches_all_apply() {
    let srv = server().await;
    let r = res(&srv, "", "configmaps");
    srv.create(
        &r,
        Some("default"),
        &json!({"metadata": {"name": "p"}}),
        &w(),
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (srv, r) = (srv.clone(), r.clone());
        tasks.push(tokio::spawn(async move {
            let patch = json!({"data": {format!("k{i}"): "v"}});
            srv.patch(
                &r,
                Some("default"),
                "p",
                None,
                &patch,
                &patch_opts(PatchType::Merge),
            )
            .await
            .map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let (v, _) = srv.get(&r, Some("default"), "p").await.unwrap();
    assert_eq!(v["data"].as_object().unwrap().len(), 16);
}

#[tokio::test]
async fn status_writes_touch_only_status_and_spec_writes_keep_it() {
    let srv = server().await;
    let r = res(&srv, "apps", "deployments");
    let d = json!({"metadata": {"name": "d"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    let (v, _) = srv.create(&r, Some("default"), &d, &w()).await.unwrap();
    assert_eq!(v["metadata"]["generation"], 1);
    let mut st = v.clone();
    st["status"] = json!({"replicas": 1});
    st["spec"]["replicas"] = json!(5);
    let (v, _) = srv
        .update(
            &r,
            Some("default"),
            "d",
            Some(Subresource::Status),
            &st,
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(v["status"]["replicas"], 1);
    assert_eq!(v["spec"]["replicas"], 1, "status write changed the spec");
    assert_eq!(v["metadata"]["generation"], 1);
    let s = srv
        .write_scale(
            &r,
            Some("default"),
            "d",
            &ScaleWrite::Patch(PatchType::Merge, json!({"spec": {"replicas": 3}})),
            &w(),
        )
        .await
        .unwrap();
    assert_eq!(s["spec"]["replicas"], 3);
    assert_eq!(s["status"]["selector"], "a=b");
    let (v, _) = srv.get(&r, Some("default"), "d").await.unwrap();
    assert_eq!(v["metadata"]["generation"], 2);
    assert_eq!(v["status"]["replicas"], 1, "spec write dropped the status");
}

#[tokio::test]
async fn bound_pods_delete_gracefully_and_unbound_at_once() {
    let srv = server().await;
    let r = res(&srv, "", "pods");
    let pod = |n: &str| json!({"metadata": {"name": n}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    srv.create(&r, Some("default"), &pod("a"), &w())
        .await
        .unwrap();
    let (code, _) = srv
        .delete(&r, Some("default"), "a", &DeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(code, 200);
    srv.create(&r, Some("default"), &pod("b"), &w())
        .await
        .unwrap();
    srv.bind(
        &r,
        Some("default"),
        "b",
        &json!({"target": {"name": "n1"}}),
        false,
    )
    .await
    .unwrap();
    let again = srv
        .bind(
            &r,
            Some("default"),
            "b",
            &json!({"target": {"name": "n2"}}),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(again.code, 409);
    let (code, v) = srv
        .delete(&r, Some("default"), "b", &DeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(code, 202);
    assert_eq!(v["metadata"]["deletionGracePeriodSeconds"], 30);
    let now = DeleteOptions {
        grace: Some(0),
        ..DeleteOptions::default()
    };
    let (code, _) = srv.delete(&r, Some("default"), "b", &now).await.unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        srv.get(&r, Some("default"), "b").await.unwrap_err().code,
        404
    );
}

#[tokio::test]
async fn namespaces_wait_for_their_finalizers() {
    let srv = server().await;
    let r = res(&srv, "", "namespaces");
    srv.create(&r, None, &json!({"metadata": {"name": "t"}}), &w())
        .await
        .unwrap();
    let (code, v) = srv
        .delete(&r, None, "t", &DeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(code, 202);
    assert_eq!(v["status"]["phase"], "Terminating");
    let cms = res(&srv, "", "configmaps");
    let refused = srv
        .create(&cms, Some("t"), &cm("x", &json!({})), &w())
        .await
        .unwrap_err();
    assert_eq!(refused.code, 403);
    let mut fin = v.clone();
    fin["spec"]["finalizers"] = json!([]);
    srv.update(&r, None, "t", Some(Subresource::Finalize), &fin, &w())
        .await
        .unwrap();
    assert_eq!(srv.get(&r, None, "t").await.unwrap_err().code, 404);
}

#[tokio::test]
async fn delete_collection_honours_selectors() {
    let srv = server().await;
    let r = res(&srv, "", "configmaps");
    for (n, app) in [("a", "x"), ("b", "y"), ("c", "x")] {
        srv.create(&r, Some("default"), &cm(n, &json!({"app": app})), &w())
            .await
            .unwrap();
    }
    let sel = ListOptions::parse(&Query::parse(Some("labelSelector=app%3Dx")), &r).unwrap();
    let gone = srv
        .delete_collection(&r, Some("default"), &sel, &DeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(gone.items.len(), 2);
    let left = srv
        .list(&r, Some("default"), &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(left.items.len(), 1);
}

fn svc(name: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}})
}

#[tokio::test]
async fn two_api_servers_on_one_store_never_share_an_address_or_port() {
    let store: Arc<dyn Store> = Arc::new(Embedded::open_in_memory());
    let (first, second) = (
        server_on(store.clone()).await,
        server_on(store.clone()).await,
    );
    let mut tasks = Vec::new();
    for i in 0..40 {
        let srv = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            let r = srv.resource("", "v1", "services");
            srv.create(&r, Some("default"), &svc(&format!("s{i}")), &w())
                .await
                .map(|(v, _)| v)
        }));
    }
    let mut ips = std::collections::HashMap::new();
    let mut ports = HashSet::new();
    for t in tasks {
        let v = t.await.unwrap().unwrap();
        let ip = v["spec"]["clusterIP"].as_str().unwrap().to_string();
        assert!(!ips.values().any(|x| *x == ip), "{ip} handed out twice");
        ips.insert(v["metadata"]["name"].as_str().unwrap().to_string(), ip);
        assert!(ports.insert(v["spec"]["ports"][0]["nodePort"].as_u64().unwrap()));
    }
    assert_eq!((ips.len(), ports.len()), (40, 40));
    // A specific address held through one server is refused through the other.
    let r = first.resource("", "v1", "services");
    let mut want = svc("fixed");
    want["spec"]["clusterIP"] = json!(ips["s1"]);
    let e = second
        .create(&r, Some("default"), &want, &w())
        .await
        .unwrap_err();
    assert_eq!(e.code, 422, "{}", e.message);
    // Deleting a Service gives its values back, and a new server sees the held keys at start.
    first
        .delete(&r, Some("default"), "s0", &DeleteOptions::default())
        .await
        .unwrap();
    ips.remove("s0");
    let held = store
        .range("/registry/ipaddresses/", None, None, None)
        .await
        .unwrap();
    assert_eq!(
        held.kvs.len(),
        41,
        "39 Services + the kubernetes and kube-dns Services"
    );
    let c = server_on(store).await;
    for i in 0..5 {
        let (v, _) = c
            .create(&r, Some("default"), &svc(&format!("late{i}")), &w())
            .await
            .unwrap();
        let ip = v["spec"]["clusterIP"].as_str().unwrap();
        assert!(!ips.values().any(|x| x == ip), "{ip} is still held");
    }
}

#[tokio::test]
async fn dry_run_writes_nothing_and_holds_nothing() {
    let srv = server().await;
    let r = res(&srv, "", "services");
    let dry = WriteOptions {
        dry_run: true,
        ..w()
    };
    let (v, _) = srv
        .create(&r, Some("default"), &svc("d"), &dry)
        .await
        .unwrap();
    assert!(v["spec"]["clusterIP"].is_string());
    assert_eq!(
        srv.get(&r, Some("default"), "d").await.unwrap_err().code,
        404
    );
    let held = srv
        .store
        .range("/registry/ipaddresses/", None, None, None)
        .await
        .unwrap();
    assert_eq!(
        held.kvs.len(),
        2,
        "only the kubernetes and kube-dns Services hold an address"
    );
}

#[tokio::test]
async fn local_load_balancers_get_a_health_check_port_that_goes_with_the_policy() {
    let srv = server().await;
    let r = srv.resource("", "v1", "services");
    let lb = json!({"metadata": {"name": "lb"}, "spec": {
        "type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}});
    let (v, _) = srv.create(&r, Some("default"), &lb, &w()).await.unwrap();
    let hc = v["spec"]["healthCheckNodePort"]
        .as_u64()
        .expect("a health-check port");
    let np = v["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&hc) && hc != np, "{v}");
    // An update that leaves it out keeps it.
    let mut next = v.clone();
    next["spec"]
        .as_object_mut()
        .unwrap()
        .remove("healthCheckNodePort");
    let (v, _) = srv
        .update(&r, Some("default"), "lb", None, &next, &w())
        .await
        .unwrap();
    assert_eq!(v["spec"]["healthCheckNodePort"].as_u64(), Some(hc));
    // Its port cannot go to a Service's nodePort while held.
    let clash = json!({"metadata": {"name": "np"}, "spec": {
        "type": "NodePort", "ports": [{"port": 80, "nodePort": hc}]}});
    let e = srv
        .create(&r, Some("default"), &clash, &w())
        .await
        .unwrap_err();
    assert_eq!(e.code, 422, "{}", e.message);
    // Cluster policy: the port goes, and is free again.
    let mut cluster = v.clone();
    cluster["spec"]["externalTrafficPolicy"] = json!("Cluster");
    let (v, _) = srv
        .update(&r, Some("default"), "lb", None, &cluster, &w())
        .await
        .unwrap();
    assert!(v["spec"].get("healthCheckNodePort").is_none(), "{v}");
    srv.create(&r, Some("default"), &clash, &w()).await.unwrap();
    // Asked for where it cannot apply: invalid, as upstream.
    let bad = json!({"metadata": {"name": "bad"}, "spec": {
        "type": "NodePort", "healthCheckNodePort": 31000, "ports": [{"port": 80}]}});
    let e = srv
        .create(&r, Some("default"), &bad, &w())
        .await
        .unwrap_err();
    assert_eq!(e.code, 422, "{}", e.message);
    assert!(e.message.contains("healthCheckNodePort"), "{}", e.message);
}
