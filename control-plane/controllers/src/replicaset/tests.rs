use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::*;

fn pod(name: &str, node: Option<&str>, phase: &str, ready: Option<&str>, created: &str) -> Pod {
    let conditions = match ready {
        Some(since) => json!([{ "type": "Ready", "status": "True", "lastTransitionTime": since }]),
        None => json!([{ "type": "Ready", "status": "False" }]),
    };
    serde_json::from_value(json!({
        "metadata": { "name": name, "creationTimestamp": created, "labels": { "app": "web" } },
        "spec": { "containers": [], "nodeName": node },
        "status": { "phase": phase, "conditions": conditions }
    }))
    .unwrap()
}

fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": { "name": "web-abc", "namespace": "ns", "uid": "rs-uid", "generation": 3 },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web", "tier": "fe" }, "annotations": { "a": "b" } },
                "spec": { "containers": [{ "name": "c", "image": "nginx" }] }
            }
        }
    }))
    .unwrap()
}

#[test]
fn surplus_order() {
    let unscheduled = pod("unscheduled", None, "Pending", None, "2024-01-01T00:00:00Z");
    let pending = pod(
        "pending",
        Some("n1"),
        "Pending",
        None,
        "2024-01-01T00:00:00Z",
    );
    let not_ready = pod(
        "not-ready",
        Some("n1"),
        "Running",
        None,
        "2024-01-01T00:00:00Z",
    );
    let ready_old = pod(
        "ready-old",
        Some("n1"),
        "Running",
        Some("2024-01-01T00:00:00Z"),
        "2024-01-01T00:00:00Z",
    );
    let ready_new = pod(
        "ready-new",
        Some("n1"),
        "Running",
        Some("2024-01-01T00:00:00Z"),
        "2024-01-02T00:00:00Z",
    );
    let all = [&ready_old, &pending, &ready_new, &unscheduled, &not_ready];
    let order: Vec<String> = pods_to_delete(&all, 5)
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert_eq!(
        order,
        [
            "unscheduled",
            "pending",
            "not-ready",
            "ready-new",
            "ready-old"
        ]
    );
    let two: Vec<String> = pods_to_delete(&all, 2)
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert_eq!(two, ["unscheduled", "pending"]);
}

#[test]
fn newest_first_among_equals() {
    let a = pod("a", Some("n1"), "Running", None, "2024-01-01T00:00:00Z");
    let b = pod("b", Some("n1"), "Running", None, "2024-01-03T00:00:00Z");
    let c = pod("c", Some("n1"), "Running", None, "2024-01-02T00:00:00Z");
    let order: Vec<String> = pods_to_delete(&[&a, &b, &c], 3)
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert_eq!(order, ["b", "c", "a"]);
}

#[test]
fn template_pod() {
    let p = pod_from_template(&rs(2, 0));
    assert_eq!(p.metadata.generate_name.as_deref(), Some("web-abc-"));
    assert_eq!(p.metadata.namespace.as_deref(), Some("ns"));
    assert_eq!(p.metadata.labels.as_ref().unwrap()["tier"], "fe");
    assert_eq!(p.metadata.annotations.as_ref().unwrap()["a"], "b");
    let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str()
        ),
        ("apps/v1", "ReplicaSet", "web-abc", "rs-uid")
    );
    assert_eq!(
        (owner.controller, owner.block_owner_deletion),
        (Some(true), Some(true))
    );
    assert_eq!(
        p.spec.unwrap().containers[0].image.as_deref(),
        Some("nginx")
    );
}

#[test]
fn status_counts_and_min_ready() {
    let now: Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
    let long_ready = pod(
        "a",
        Some("n1"),
        "Running",
        Some("2024-01-01T00:00:00Z"),
        "2024-01-01T00:00:00Z",
    );
    let just_ready = pod(
        "b",
        Some("n1"),
        "Running",
        Some("2024-01-01T00:00:55Z"),
        "2024-01-01T00:00:00Z",
    );
    let not_ready = pod("c", Some("n1"), "Running", None, "2024-01-01T00:00:00Z");
    let pods = [&long_ready, &just_ready, &not_ready];
    let (status, recheck) = compute_status(&rs(3, 30), &pods, now);
    assert_eq!(status.replicas, 3);
    assert_eq!(status.ready_replicas, Some(2));
    assert_eq!(status.available_replicas, Some(1));
    assert_eq!(
        status.fully_labeled_replicas,
        Some(0),
        "pods lack the tier label"
    );
    assert_eq!(status.observed_generation, Some(3));
    assert!(recheck.is_some());
    let (status, recheck) = compute_status(&rs(3, 0), &pods, now);
    assert_eq!(status.available_replicas, Some(2));
    assert!(recheck.is_none());
}

#[test]
fn terminating_and_terminal_pods_are_inactive() {
    let mut gone = pod("a", Some("n1"), "Running", None, "2024-01-01T00:00:00Z");
    gone.metadata.deletion_timestamp = Some(crate::common::now());
    let done = pod("b", Some("n1"), "Succeeded", None, "2024-01-01T00:00:00Z");
    let live = pod("c", Some("n1"), "Running", None, "2024-01-01T00:00:00Z");
    assert!(!is_active(&gone));
    assert!(!is_active(&done));
    assert!(is_active(&live));
}

mod glue {
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::{Ctx, reconcile};
    use super::rs;
    use crate::common::Backoffs;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use sluice_test_util::fake_api::FakeApi;

    const RS: &str = "apis/apps/v1/namespaces/ns/replicasets";
    const PODS: &str = "api/v1/namespaces/ns/pods";

    fn current(fake: &FakeApi) -> Arc<ReplicaSet> {
        Arc::new(serde_json::from_value(fake.get(&format!("{RS}/web-abc")).unwrap()).unwrap())
    }

    #[tokio::test]
    async fn creates_idles_and_scales_down() {
        let fake = FakeApi::default();
        fake.insert(RS, serde_json::to_value(rs(3, 0)).unwrap());
        let ctx = Arc::new(Ctx {
            client: fake.client(),
            backoffs: Backoffs::default(),
            resync: Duration::from_mins(5),
        });
        reconcile(current(&fake), ctx.clone()).await.unwrap();
        let pods = fake.list(PODS);
        assert_eq!(pods.len(), 3);
        assert!(pods.iter().all(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("web-abc-")
        }));
        assert_eq!(pods[0]["metadata"]["ownerReferences"][0]["uid"], "rs-uid");
        let writes = fake.take_writes();
        assert_eq!(writes.iter().filter(|w| w.starts_with("POST")).count(), 3);
        assert!(
            writes
                .iter()
                .any(|w| w == "PATCH /apis/apps/v1/namespaces/ns/replicasets/web-abc/status"),
            "{writes:?}"
        );
        // Status counts the pods seen before this pass (as upstream); the next pass catches up.
        assert_eq!(
            fake.get(&format!("{RS}/web-abc")).unwrap()["status"]["observedGeneration"],
            3
        );
        reconcile(current(&fake), ctx.clone()).await.unwrap();
        assert_eq!(
            fake.get(&format!("{RS}/web-abc")).unwrap()["status"]["replicas"],
            3
        );
        assert_eq!(fake.take_writes().len(), 1, "only the status");

        reconcile(current(&fake), ctx.clone()).await.unwrap();
        assert_eq!(
            fake.take_writes(),
            Vec::<String>::new(),
            "no-op reconcile writes nothing"
        );

        let mut smaller = (*current(&fake)).clone();
        smaller.spec.as_mut().unwrap().replicas = Some(1);
        reconcile(Arc::new(smaller), ctx).await.unwrap();
        assert_eq!(fake.list(PODS).len(), 1);
    }
}
