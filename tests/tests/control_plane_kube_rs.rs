//! The Deployment flows through kube-rs typed clients (create, rollout, scale subresource,
//! image change, foreground/background delete), the scheduler's fit rules and its
//! `FailedScheduling` events, and node IPAM, against the real control plane binary.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use sluice_tests::controlplane::ControlPlane;
use sluice_tests::{fake_kubelet, wait_for};

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}}},
    }))
    .expect("deployment json")
}

async fn rolled_out(api: &Api<Deployment>, name: &str, replicas: i32) -> bool {
    let Ok(d) = api.get(name).await else {
        return false;
    };
    let s = d.status.unwrap_or_default();
    d.metadata.generation <= s.observed_generation
        && s.updated_replicas == Some(replicas)
        && s.replicas == Some(replicas)
        && s.available_replicas == Some(replicas)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_lifecycle_through_kube_rs() {
    let cp = ControlPlane::start(&[]).await;
    let client = cp.client().await;
    let _kubelet = fake_kubelet::start(client.clone(), "node-a").await;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");

    let created = deps
        .create(&PostParams::default(), &deployment("api", 2, "img:1"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    wait_for("rollout of 2", Duration::from_mins(1), || async {
        rolled_out(&deps, "api", 2).await.then_some(())
    })
    .await;

    // Scale through the scale subresource bumps generation; status follows.
    let scale = deps.get_scale("api").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=api"));
    deps.patch_scale(
        "api",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 4}})),
    )
    .await
    .unwrap();
    assert_eq!(deps.get("api").await.unwrap().metadata.generation, Some(2));
    wait_for("rollout of 4", Duration::from_mins(1), || async {
        rolled_out(&deps, "api", 4).await.then_some(())
    })
    .await;

    // A metadata-only patch does not bump generation.
    deps.patch(
        "api",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
    )
    .await
    .unwrap();
    assert_eq!(deps.get("api").await.unwrap().metadata.generation, Some(2));

    // New image: a second ReplicaSet takes over, surge 1, unavailable 0.
    deps.patch("api", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "img:2"}]}}}})))
        .await
        .unwrap();
    wait_for("rollout of img:2", Duration::from_secs(90), || async {
        let done = rolled_out(&deps, "api", 4).await;
        let p = pods
            .list(&ListParams::default().labels("app=api"))
            .await
            .ok()?;
        let all_new = p.items.iter().all(|p| {
            p.spec
                .as_ref()
                .is_some_and(|s| s.containers[0].image.as_deref() == Some("img:2"))
        });
        (done && all_new && p.items.len() == 4).then_some(())
    })
    .await;
    let sets = rss
        .list(&ListParams::default().labels("app=api"))
        .await
        .unwrap();
    assert_eq!(sets.items.len(), 2);
    let revisions: Vec<_> = sets
        .items
        .iter()
        .filter_map(|r| {
            r.metadata
                .annotations
                .as_ref()?
                .get("deployment.kubernetes.io/revision")
                .cloned()
        })
        .collect();
    assert!(
        revisions.contains(&"1".to_string()) && revisions.contains(&"2".to_string()),
        "{revisions:?}"
    );

    // Foreground delete: the deployment stays (with a deletionTimestamp) until its dependents are gone.
    deps.delete("api", &DeleteParams::foreground())
        .await
        .unwrap();
    wait_for(
        "foreground delete to finish",
        Duration::from_mins(1),
        || async {
            let gone = deps.get_opt("api").await.ok()?.is_none();
            let rs_left = rss
                .list(&ListParams::default().labels("app=api"))
                .await
                .ok()?
                .items
                .len();
            let pods_left = pods
                .list(&ListParams::default().labels("app=api"))
                .await
                .ok()?
                .items
                .len();
            (gone && rs_left == 0 && pods_left == 0).then_some(())
        },
    )
    .await;

    // Orphan delete leaves the ReplicaSet without an owner.
    deps.create(&PostParams::default(), &deployment("orphaned", 1, "img:1"))
        .await
        .unwrap();
    wait_for("rollout of orphaned", Duration::from_mins(1), || async {
        rolled_out(&deps, "orphaned", 1).await.then_some(())
    })
    .await;
    deps.delete("orphaned", &DeleteParams::orphan())
        .await
        .unwrap();
    wait_for("orphaned rs", Duration::from_secs(30), || async {
        let gone = deps.get_opt("orphaned").await.ok()?.is_none();
        let rs = rss
            .list(&ListParams::default().labels("app=orphaned"))
            .await
            .ok()?;
        (gone
            && rs.items.len() == 1
            && rs.items[0]
                .metadata
                .owner_references
                .as_ref()
                .is_none_or(Vec::is_empty))
        .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_fits_resources_selectors_taints_and_reports_failures() {
    if !sluice_tests::require_kubectl(
        "scheduler_fits_resources_selectors_taints_and_reports_failures",
    ) {
        return;
    }
    let cp = ControlPlane::start(&[]).await;
    let client = cp.client().await;
    let _kubelet = fake_kubelet::start(client.clone(), "node-a").await;
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let events: Api<Event> = Api::namespaced(client.clone(), "default");

    // Node IPAM gives the node a podCIDR from the cluster CIDR.
    let cidr = wait_for("podCIDR", Duration::from_secs(20), || async {
        nodes.get("node-a").await.ok()?.spec?.pod_cidr
    })
    .await;
    assert!(
        cidr.starts_with("10.244.") && cidr.ends_with("/24"),
        "{cidr}"
    );

    let pod = |name: &str, extra: serde_json::Value| -> Pod {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "img", "resources": {"requests": {"cpu": "1"}}}]}});
        if let (Some(spec), Some(extra)) = (p["spec"].as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                spec.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(p).unwrap()
    };
    // Where the pod is bound; an API error fails the test (it is no "not bound").
    let bound = |name: &'static str| {
        let pods = pods.clone();
        async move {
            pods.get(name)
                .await
                .unwrap_or_else(|e| panic!("get pod {name}: {e}"))
                .spec?
                .node_name
        }
    };

    // Too big for a 4-CPU node.
    pods.create(&PostParams::default(), &pod("huge", json!({"containers": [{"name": "c", "image": "img", "resources": {"requests": {"cpu": "64"}}}]}))).await.unwrap();
    // A selector no node matches.
    pods.create(
        &PostParams::default(),
        &pod("picky", json!({"nodeSelector": {"disk": "ssd"}})),
    )
    .await
    .unwrap();
    // A pod that fits.
    pods.create(&PostParams::default(), &pod("fits", json!({})))
        .await
        .unwrap();
    assert_eq!(
        wait_for("fits bound", Duration::from_secs(20), || bound("fits")).await,
        "node-a"
    );

    let failed = wait_for(
        "FailedScheduling events",
        Duration::from_secs(30),
        || async {
            let evs = events
                .list(&ListParams::default().fields("reason=FailedScheduling"))
                .await
                .ok()?;
            let msgs: Vec<String> = evs
                .items
                .iter()
                .filter_map(|e| {
                    Some(format!(
                        "{}: {}",
                        e.involved_object.name.clone()?,
                        e.message.clone()?
                    ))
                })
                .collect();
            (msgs
                .iter()
                .any(|m| m.starts_with("huge:") && m.contains("Insufficient cpu"))
                && msgs
                    .iter()
                    .any(|m| m.starts_with("picky:") && m.contains("node affinity/selector")))
            .then_some(msgs)
        },
    )
    .await;
    assert!(
        failed.iter().all(|m| m.contains("0/1 nodes are available")),
        "{failed:?}"
    );
    // kubectl sees the same events through events.k8s.io/v1.
    let out = cp.kubectl_ok(&[
        "get",
        "events.v1.events.k8s.io",
        "--field-selector",
        "reason=FailedScheduling",
        "-o",
        "jsonpath={.items[*].note}",
    ]);
    assert!(out.contains("Insufficient cpu"), "{out}");

    // Labelling the node makes the picky pod schedulable.
    nodes
        .patch(
            "node-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"disk": "ssd"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        wait_for("picky bound", Duration::from_secs(30), || bound("picky")).await,
        "node-a"
    );

    // A tainted, cordoned node takes nothing new; a toleration alone is not enough while cordoned.
    nodes
        .patch("node-a", &PatchParams::default(), &Patch::Merge(json!({"spec": {"unschedulable": true, "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}})))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("late", json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}))).await.unwrap();
    // Wait for the scheduler's verdict on the pod (bound, or PodScheduled=False with its
    // reason), then check it is the cordon that kept the pod off.
    let verdict = wait_for(
        "the scheduler to decide on late",
        Duration::from_secs(30),
        || async {
            let p = pods.get("late").await.ok()?;
            if let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
                return Some(Err(node));
            }
            p.status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
                .map(|c| Ok((c.reason, c.message)))
        },
    )
    .await;
    let (reason, message) = verdict
        .unwrap_or_else(|node| panic!("late was bound to {node} while the node was cordoned"));
    assert_eq!(reason.as_deref(), Some("Unschedulable"));
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("0/1 nodes are available") && m.contains("unschedulable")),
        "{message:?}"
    );
    assert_eq!(bound("late").await, None);
    nodes
        .patch(
            "node-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": null}})),
        )
        .await
        .unwrap();
    assert_eq!(
        wait_for("late bound after uncordon", Duration::from_secs(30), || {
            bound("late")
        })
        .await,
        "node-a"
    );
    // Without the toleration, the taint keeps a pod off.
    pods.create(&PostParams::default(), &pod("untolerated", json!({})))
        .await
        .unwrap();
    wait_for("taint failure event", Duration::from_secs(30), || async {
        let evs = events
            .list(&ListParams::default().fields("involvedObject.name=untolerated"))
            .await
            .ok()?;
        evs.items
            .iter()
            .any(|e| {
                e.message
                    .as_deref()
                    .is_some_and(|m| m.contains("untolerated taint"))
            })
            .then_some(())
    })
    .await;
    assert_eq!(bound("untolerated").await, None);

    // Binding twice is a conflict.
    let r = cp
        .http("POST", "/api/v1/namespaces/default/pods/fits/binding", "application/json",
            json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "fits"}, "target": {"kind": "Node", "name": "other"}}).to_string().as_bytes())
        .await;
    assert_eq!(r.code, 409, "{}", r.body);
}
