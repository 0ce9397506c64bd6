//! The API over raw HTTP and kube-rs: bad input gets the right `Status` and writes nothing;
//! optimistic concurrency; watch from a resourceVersion, 410 after compaction, and a kube-rs
//! watcher that survives compaction by relisting; durability across a kill -9.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use sluice_tests::controlplane::ControlPlane;
use sluice_tests::wait_for;

const CM: &str = "/api/v1/namespaces/default/configmaps";

fn cm(name: &str) -> Vec<u8> {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
        .to_string()
        .into_bytes()
}

fn status_of(reply: &sluice_tests::http::Reply) -> (u16, String, String) {
    let v = reply.json();
    assert_eq!(v["kind"], "Status", "{v}");
    (
        reply.code,
        v["reason"].as_str().unwrap_or_default().to_string(),
        v["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// The number of `ConfigMaps` in `default`; a failed list fails the test (it is no "none").
async fn count_configmaps(cp: &ControlPlane) -> usize {
    let r = cp.http("GET", CM, "application/json", b"").await;
    assert_eq!(r.code, 200, "list configmaps: {}", r.body);
    r.json()["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a list without items: {}", r.body))
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_status_errors_and_writes_nothing() {
    let cp = ControlPlane::start(&["--no-controllers"]).await;
    let before = count_configmaps(&cp).await;

    // Malformed JSON: 400.
    let r = cp
        .http(
            "POST",
            CM,
            "application/json",
            b"{\"apiVersion\": \"v1\", \"kind\": ",
        )
        .await;
    assert_eq!(status_of(&r).0, 400);
    assert_eq!(status_of(&r).1, "BadRequest");

    // Wrong kind for the URL: 400.
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}}).to_string();
    let (code, reason, msg) = status_of(
        &cp.http("POST", CM, "application/json", svc.as_bytes())
            .await,
    );
    assert_eq!((code, reason.as_str()), (400, "BadRequest"), "{msg}");

    // Wrong type for a field: 400.
    let bad_type = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": 5}}).to_string();
    assert_eq!(
        status_of(
            &cp.http("POST", CM, "application/json", bad_type.as_bytes())
                .await
        )
        .0,
        400
    );

    // Invalid name: 422 with a field cause.
    let r = cp
        .http("POST", CM, "application/json", &cm("Not_Valid"))
        .await;
    let v = r.json();
    assert_eq!(r.code, 422, "{v}");
    assert_eq!(v["reason"], "Invalid");
    assert_eq!(v["details"]["causes"][0]["field"], "metadata.name");

    // Unknown field under strict validation: 400 naming the field; under Warn: a warning header.
    let unknown =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "u"}, "dataa": {}})
            .to_string();
    let (code, _, msg) = status_of(
        &cp.http(
            "POST",
            &format!("{CM}?fieldValidation=Strict"),
            "application/json",
            unknown.as_bytes(),
        )
        .await,
    );
    assert_eq!(code, 400);
    assert!(msg.contains("unknown field \"dataa\""), "{msg}");

    // Missing namespace: 404.
    let r = cp
        .http(
            "POST",
            "/api/v1/namespaces/nope/configmaps",
            "application/json",
            &cm("a"),
        )
        .await;
    assert_eq!(status_of(&r).0, 404);

    // Nothing was written by any of the above.
    assert_eq!(count_configmaps(&cp).await, before);

    // A good create, then AlreadyExists.
    assert_eq!(
        cp.http("POST", CM, "application/json", &cm("good"))
            .await
            .code,
        201
    );
    let (code, reason, _) = status_of(&cp.http("POST", CM, "application/json", &cm("good")).await);
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    // Stale resourceVersion: 409 Conflict, object unchanged.
    let current = cp
        .http("GET", &format!("{CM}/good"), "application/json", b"")
        .await
        .json();
    let mut stale = current.clone();
    stale["data"]["k"] = json!("first");
    assert_eq!(
        cp.http(
            "PUT",
            &format!("{CM}/good"),
            "application/json",
            stale.to_string().as_bytes()
        )
        .await
        .code,
        200
    );
    let mut second = current.clone();
    second["data"]["k"] = json!("second");
    let (code, reason, _) = status_of(
        &cp.http(
            "PUT",
            &format!("{CM}/good"),
            "application/json",
            second.to_string().as_bytes(),
        )
        .await,
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    let now = cp
        .http("GET", &format!("{CM}/good"), "application/json", b"")
        .await
        .json();
    assert_eq!(now["data"]["k"], "first");

    // Unsupported patch type: 415. Bad JSON patch: 422, nothing changed.
    let r = cp
        .http(
            "PATCH",
            &format!("{CM}/good"),
            "application/apply-patch+cbor",
            b"{}",
        )
        .await;
    assert_eq!(status_of(&r).0, 415, "{}", r.body);
    let r = cp
        .http(
            "PATCH",
            &format!("{CM}/good"),
            "application/json-patch+json",
            br#"[{"op":"replace","path":"/nope/x","value":1}]"#,
        )
        .await;
    assert_eq!(status_of(&r).0, 422);
    assert_eq!(
        cp.http("GET", &format!("{CM}/good"), "application/json", b"")
            .await
            .json()["data"]["k"],
        "first"
    );

    // Not found, with the resource named.
    let (code, reason, msg) = status_of(
        &cp.http("GET", &format!("{CM}/missing"), "application/json", b"")
            .await,
    );
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    assert_eq!(msg, "configmaps \"missing\" not found");
    // An unknown resource path.
    assert_eq!(
        cp.http("GET", "/api/v1/widgets", "application/json", b"")
            .await
            .code,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_replays_from_a_version_and_expires_after_compaction() {
    let cp = ControlPlane::start(&["--no-controllers"]).await;
    let created = cp
        .http("POST", CM, "application/json", &cm("w1"))
        .await
        .json();
    let rv1: i64 = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    cp.http("POST", CM, "application/json", &cm("w2")).await;
    cp.http("DELETE", &format!("{CM}/w1"), "application/json", b"")
        .await;

    // From rv1: w2 ADDED, w1 DELETED; the stream closes at timeoutSeconds.
    let r = cp
        .http(
            "GET",
            &format!("{CM}?watch=true&resourceVersion={rv1}&timeoutSeconds=1"),
            "application/json",
            b"",
        )
        .await;
    let events: Vec<Value> = r
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("ADDED".to_string(), "w2".to_string()),
            ("DELETED".to_string(), "w1".to_string())
        ]
    );

    // Paging with limit/continue sees a consistent snapshot.
    for i in 0..5 {
        cp.http("POST", CM, "application/json", &cm(&format!("p{i}")))
            .await;
    }
    let page1 = cp
        .http("GET", &format!("{CM}?limit=2"), "application/json", b"")
        .await
        .json();
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    let token = page1["metadata"]["continue"].as_str().unwrap().to_string();
    let mut names: Vec<String> = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().into())
        .collect();
    let mut tok = Some(token);
    while let Some(t) = tok {
        let page = cp
            .http(
                "GET",
                &format!("{CM}?limit=2&continue={t}"),
                "application/json",
                b"",
            )
            .await
            .json();
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        tok = page["metadata"]["continue"].as_str().map(String::from);
    }
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4", "w2"]);

    // Compact: a watch from rv1 is now too old: an in-stream ERROR with a 410 Expired Status.
    assert_eq!(
        cp.http("POST", "/sluice/compact", "application/json", b"")
            .await
            .code,
        200
    );
    let r = cp
        .http(
            "GET",
            &format!("{CM}?watch=true&resourceVersion={rv1}&timeoutSeconds=1"),
            "application/json",
            b"",
        )
        .await;
    assert_eq!(r.code, 200);
    let ev: Value = serde_json::from_str(r.body.lines().next().expect("an event")).unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_watcher_lists_watches_and_relists_after_compaction() {
    // Short watches so the watcher reconnects (with its old version) after we compact.
    let cp = ControlPlane::start(&["--no-controllers", "--min-request-timeout-seconds", "1"]).await;
    let client = cp.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mk = |name: &str| -> ConfigMap { serde_json::from_slice(&cm(name)).unwrap() };
    api.create(&PostParams::default(), &mk("before"))
        .await
        .unwrap();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let w = tokio::spawn({
        let api = api.clone();
        async move {
            // No bookmarks: the watcher's version only moves with events on configmaps.
            let cfg = watcher::Config {
                bookmarks: false,
                timeout: Some(1),
                ..watcher::Config::default()
            };
            let mut s = watcher(api, cfg).boxed();
            while let Some(ev) = s.next().await {
                let _ = tx.send(ev.map_err(|e| e.to_string()));
            }
        }
    });
    let mut seen = Vec::new();
    let mut next = async || -> String {
        let ev = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("watcher event in time")
            .expect("stream open");
        match ev {
            Ok(watcher::Event::Init) => "init".into(),
            Ok(watcher::Event::InitApply(o)) => format!("initapply:{}", o.metadata.name.unwrap()),
            Ok(watcher::Event::InitDone) => "initdone".into(),
            Ok(watcher::Event::Apply(o)) => format!("apply:{}", o.metadata.name.unwrap()),
            Ok(watcher::Event::Delete(o)) => format!("delete:{}", o.metadata.name.unwrap()),
            Err(e) => format!("error:{e}"),
        }
    };
    // Initial list.
    while !seen.contains(&"initdone".to_string()) {
        seen.push(next().await);
    }
    assert!(seen.contains(&"initapply:before".to_string()), "{seen:?}");
    // A live event.
    api.create(&PostParams::default(), &mk("live"))
        .await
        .unwrap();
    loop {
        let e = next().await;
        if e == "apply:live" {
            break;
        }
    }
    // Writes elsewhere move the store's revision; compaction leaves the watcher's version behind.
    let ns_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for i in 0..3 {
        let ns: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(json!({"metadata": {"name": format!("churn-{i}")}})).unwrap();
        ns_api.create(&PostParams::default(), &ns).await.unwrap();
    }
    assert_eq!(
        cp.http("POST", "/sluice/compact", "application/json", b"")
            .await
            .code,
        200
    );
    // The watcher reconnects, gets 410, relists (Init ... InitDone) and keeps following.
    let mut relisted = false;
    for _ in 0..50 {
        let e = next().await;
        if e == "initdone" {
            relisted = true;
            break;
        }
    }
    assert!(relisted, "watcher did not relist after compaction");
    api.create(&PostParams::default(), &mk("after"))
        .await
        .unwrap();
    loop {
        if next().await == "apply:after" {
            break;
        }
    }
    w.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_survive_kill_9_and_versions_keep_rising() {
    let mut cp = ControlPlane::start(&["--no-controllers"]).await;
    let mut last = 0i64;
    for i in 0..20 {
        let r = cp
            .http("POST", CM, "application/json", &cm(&format!("d{i}")))
            .await;
        assert_eq!(r.code, 201);
        last = r.json()["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    }
    cp.restart().await;
    let listed = cp.http("GET", CM, "application/json", b"").await.json();
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    for i in 0..20 {
        assert!(
            names.contains(&format!("d{i}").as_str()),
            "d{i} lost after kill -9: {names:?}"
        );
    }
    let r = cp
        .http("POST", CM, "application/json", &cm("post-restart"))
        .await;
    let rv: i64 = r.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv > last, "resourceVersion went backwards: {rv} <= {last}");
    // The kubernetes Service keeps its ClusterIP; new Services never reuse an allocated IP.
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}).to_string();
    let r = cp
        .http(
            "POST",
            "/api/v1/namespaces/default/services",
            "application/json",
            svc.as_bytes(),
        )
        .await
        .json();
    assert_ne!(r["spec"]["clusterIP"], "10.96.0.1");
    wait_for("server still healthy", Duration::from_secs(5), || async {
        (cp.http("GET", "/readyz", "text/plain", b"").await.code == 200).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sends_bookmarks_and_initial_events_end() {
    let cp = ControlPlane::start(&["--no-controllers", "--bookmark-interval-seconds", "1"]).await;
    cp.http("POST", CM, "application/json", &cm("b1")).await;
    let list = cp.http("GET", CM, "application/json", b"").await.json();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // Periodic bookmarks carry the last version the stream delivered.
    let r = cp
        .http(
            "GET",
            &format!(
                "{CM}?watch=true&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=3"
            ),
            "application/json",
            b"",
        )
        .await;
    let events: Vec<Value> = r
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        events.iter().any(|e| e["type"] == "BOOKMARK"
            && e["object"]["metadata"]["resourceVersion"] == rv.as_str()),
        "{events:?}"
    );
    // Streaming list: ADDED for what exists, then a bookmark marking the end of initial events.
    let r = cp
        .http("GET", &format!("{CM}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"), "application/json", b"")
        .await;
    let events: Vec<Value> = r
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "b1");
    let end = events
        .iter()
        .find(|e| e["type"] == "BOOKMARK")
        .expect("initial-events-end bookmark");
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}

/// Upstream's `GuaranteedUpdate`: a patch (or scale) that sets no `metadata.resourceVersion`
/// is re-applied to the fresh object until it lands, however many writers race it; one that
/// sets it is a precondition. The string "resourceVersion" elsewhere in a body pins nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_unversioned_patches_all_apply_and_versioned_ones_are_preconditions() {
    const WRITERS: usize = 24;
    let cp = ControlPlane::start(&["--no-controllers"]).await;
    let path = format!("{CM}/hot");
    assert_eq!(
        cp.http("POST", CM, "application/json", &cm("hot"))
            .await
            .code,
        201
    );

    let merge = "application/merge-patch+json";
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let addr = cp.addr.clone();
            let path = path.clone();
            tokio::spawn(async move {
                // The word "resourceVersion" in a value must not make this a precondition.
                let body = json!({
                    "metadata": {"annotations": {format!("note-{i}"): "resourceVersion"}},
                    "data": {format!("k{i}"): "v"},
                })
                .to_string();
                sluice_tests::http::request(&addr, "PATCH", &path, merge, body.as_bytes()).await
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let reply = task.await.expect("patch task");
        assert_eq!(reply.code, 200, "writer {i}: {}", reply.body);
    }
    let hot = cp.http("GET", &path, "application/json", b"").await.json();
    for i in 0..WRITERS {
        assert_eq!(
            hot["data"][format!("k{i}")],
            "v",
            "writer {i}'s key is lost: {hot}"
        );
    }

    // A patch that sets a stale resourceVersion is a precondition: 409, nothing written.
    let stale = json!({"metadata": {"resourceVersion": "1"}, "data": {"late": "x"}}).to_string();
    let r = cp.http("PATCH", &path, merge, stale.as_bytes()).await;
    assert_eq!(status_of(&r).0, 409, "{}", r.body);
    assert_eq!(status_of(&r).1, "Conflict");
    let json_patch = json!([
        {"op": "replace", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "add", "path": "/data/late", "value": "x"},
    ])
    .to_string();
    let r = cp
        .http(
            "PATCH",
            &path,
            "application/json-patch+json",
            json_patch.as_bytes(),
        )
        .await;
    assert_eq!(status_of(&r).0, 409, "{}", r.body);
    let hot = cp.http("GET", &path, "application/json", b"").await.json();
    assert!(
        hot["data"]["late"].is_null(),
        "a failed precondition wrote: {hot}"
    );
    // ... and with the current version it applies.
    let rv = hot["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_owned();
    let current = json!({"metadata": {"resourceVersion": rv}, "data": {"late": "x"}}).to_string();
    let r = cp.http("PATCH", &path, merge, current.as_bytes()).await;
    assert_eq!(r.code, 200, "{}", r.body);

    // Scale writes race too: every one applies (the last one wins).
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d1"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d1"}},
            "template": {"metadata": {"labels": {"app": "d1"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    })
    .to_string();
    let deployments = "/apis/apps/v1/namespaces/default/deployments";
    let r = cp
        .http("POST", deployments, "application/json", deploy.as_bytes())
        .await;
    assert_eq!(r.code, 201, "{}", r.body);
    let scale_path = format!("{deployments}/d1/scale");
    let tasks: Vec<_> = (1..=WRITERS)
        .map(|n| {
            let addr = cp.addr.clone();
            let path = scale_path.clone();
            tokio::spawn(async move {
                let body = json!({"spec": {"replicas": n}}).to_string();
                sluice_tests::http::request(&addr, "PATCH", &path, merge, body.as_bytes()).await
            })
        })
        .collect();
    for task in tasks {
        let reply = task.await.expect("scale task");
        assert_eq!(reply.code, 200, "{}", reply.body);
    }
    let d = cp
        .http("GET", &format!("{deployments}/d1"), "application/json", b"")
        .await
        .json();
    let replicas = d["spec"]["replicas"].as_u64().expect("replicas");
    assert!((1..=WRITERS as u64).contains(&replicas), "{d}");
}
