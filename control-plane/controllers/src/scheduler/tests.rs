use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

use super::*;

fn node(name: &str, cpu: &str, memory: &str, pods: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "kubernetes.io/hostname": name } },
        "status": {
            "allocatable": { "cpu": cpu, "memory": memory, "pods": pods },
            "conditions": [{ "type": "Ready", "status": "True" }]
        }
    }))
    .unwrap()
}

fn pod(cpu: &str, memory: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": "p", "namespace": "default", "uid": "u1" },
        "spec": { "containers": [{ "name": "c", "image": "i",
            "resources": { "requests": { "cpu": cpu, "memory": memory } } }] }
    }))
    .unwrap()
}

fn toleration(
    key: Option<&str>,
    op: &str,
    value: Option<&str>,
    effect: Option<&str>,
) -> Toleration {
    Toleration {
        key: key.map(Into::into),
        operator: Some(op.into()),
        value: value.map(Into::into),
        effect: effect.map(Into::into),
        toleration_seconds: None,
    }
}

fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        value: value.map(Into::into),
        effect: effect.into(),
        time_added: None,
    }
}

fn message(pod: &Pod, nodes: Vec<Node>) -> String {
    let nodes: Vec<Arc<Node>> = nodes.into_iter().map(Arc::new).collect();
    select_node(pod, &nodes, &HashMap::new(), &mut StdRng::seed_from_u64(1)).unwrap_err()
}

#[test]
fn requests_sum_containers_and_max_init() {
    let p: Pod = serde_json::from_value(json!({
        "metadata": { "name": "p" },
        "spec": {
            "containers": [
                { "name": "a", "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } } },
                { "name": "b", "resources": { "requests": { "cpu": "0.2" }, "limits": { "memory": "64Mi" } } }
            ],
            "initContainers": [ { "name": "i", "resources": { "requests": { "cpu": "1", "memory": "1Mi" } } } ]
        }
    }))
    .unwrap();
    assert_eq!(
        pod_requests(&p),
        Resources {
            cpu: 1000,
            memory: 128 * 1024 * 1024
        }
    );
}

#[test]
fn toleration_matching() {
    let t = taint("k", Some("v"), "NoSchedule");
    assert!(tolerates(
        &toleration(Some("k"), "Equal", Some("v"), Some("NoSchedule")),
        &t
    ));
    assert!(
        tolerates(&toleration(Some("k"), "Equal", Some("v"), None), &t),
        "empty effect matches all"
    );
    assert!(tolerates(&toleration(Some("k"), "Exists", None, None), &t));
    assert!(
        tolerates(&toleration(None, "Exists", None, None), &t),
        "empty key + Exists tolerates all"
    );
    assert!(!tolerates(&toleration(None, "Equal", None, None), &t));
    assert!(!tolerates(
        &toleration(Some("k"), "Equal", Some("w"), None),
        &t
    ));
    assert!(!tolerates(
        &toleration(Some("k"), "Exists", None, Some("NoExecute")),
        &t
    ));
    assert!(!tolerates(
        &toleration(Some("other"), "Exists", None, None),
        &t
    ));
}

#[test]
fn insufficient_cpu_message() {
    assert_eq!(
        message(&pod("2", "1Mi"), vec![node("n1", "1", "1Gi", "110")]),
        "0/1 nodes are available: 1 Insufficient cpu."
    );
}

#[test]
fn insufficient_memory_and_cpu() {
    let m = message(&pod("2", "2Gi"), vec![node("n1", "1", "1Gi", "110")]);
    assert_eq!(
        m,
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."
    );
}

#[test]
fn too_many_pods() {
    let n = node("n1", "4", "4Gi", "1");
    let mut usage = NodeUsage::default();
    usage.add_pod(&pod("1m", "1Mi"));
    assert_eq!(
        filter(&pod("1m", "1Mi"), &n, &usage),
        Err(vec!["Too many pods".to_string()])
    );
}

#[test]
fn existing_usage_counts() {
    let n = node("n1", "1", "1Gi", "110");
    let mut usage = NodeUsage::default();
    usage.add_pod(&pod("600m", "1Mi"));
    assert!(filter(&pod("400m", "1Mi"), &n, &usage).is_ok());
    assert_eq!(
        filter(&pod("500m", "1Mi"), &n, &usage),
        Err(vec!["Insufficient cpu".to_string()])
    );
}

#[test]
fn selector_mismatch_message() {
    let mut p = pod("1m", "1Mi");
    p.spec.as_mut().unwrap().node_selector =
        Some(BTreeMap::from([("disk".to_string(), "ssd".to_string())]));
    assert_eq!(
        message(&p, vec![node("n1", "1", "1Gi", "110")]),
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
    );
    let mut n = node("n1", "1", "1Gi", "110");
    n.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("disk".into(), "ssd".into());
    assert!(filter(&p, &n, &NodeUsage::default()).is_ok());
}

#[test]
fn taint_message_and_toleration() {
    let mut n = node("n1", "1", "1Gi", "110");
    n.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
        taints: Some(vec![
            taint("dedicated", Some("gpu"), "NoSchedule"),
            taint("soft", None, "PreferNoSchedule"),
        ]),
        ..Default::default()
    });
    let mut p = pod("1m", "1Mi");
    assert_eq!(
        message(&p, vec![n.clone()]),
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}."
    );
    p.spec.as_mut().unwrap().tolerations = Some(vec![toleration(
        Some("dedicated"),
        "Equal",
        Some("gpu"),
        None,
    )]);
    assert!(
        filter(&p, &n, &NodeUsage::default()).is_ok(),
        "PreferNoSchedule does not filter"
    );
}

#[test]
fn unschedulable_and_not_ready() {
    let mut n = node("n1", "1", "1Gi", "110");
    n.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
        unschedulable: Some(true),
        ..Default::default()
    });
    let mut not_ready = node("n2", "1", "1Gi", "110");
    not_ready
        .status
        .as_mut()
        .unwrap()
        .conditions
        .as_mut()
        .unwrap()[0]
        .status = "False".into();
    let p = pod("1m", "1Mi");
    assert_eq!(
        message(&p, vec![n.clone(), not_ready, n.clone()]),
        "0/3 nodes are available: 1 node(s) were not ready, 2 node(s) were unschedulable."
    );
    let mut missing = node("n3", "1", "1Gi", "110");
    missing.status.as_mut().unwrap().conditions = None;
    assert!(
        filter(&p, &missing, &NodeUsage::default()).is_ok(),
        "missing Ready counts as schedulable"
    );
}

#[test]
fn no_nodes() {
    assert_eq!(
        message(&pod("1m", "1Mi"), vec![]),
        "no nodes available to schedule pods"
    );
}

#[test]
fn least_allocated_wins() {
    let nodes: Vec<Arc<Node>> = vec![
        Arc::new(node("busy", "4", "4Gi", "110")),
        Arc::new(node("idle", "4", "4Gi", "110")),
    ];
    let mut busy = NodeUsage::default();
    busy.add_pod(&pod("2", "2Gi"));
    let usage = HashMap::from([("busy".to_string(), busy)]);
    for seed in 0..10 {
        let got = select_node(
            &pod("100m", "100Mi"),
            &nodes,
            &usage,
            &mut StdRng::seed_from_u64(seed),
        );
        assert_eq!(got.as_deref(), Ok("idle"));
    }
    let p = pod("1", "1Gi");
    assert!(score(&p, &nodes[1], &NodeUsage::default()) > score(&p, &nodes[0], &usage["busy"]));
    let mut no_requests = pod("0", "0");
    no_requests.spec.as_mut().unwrap().containers[0].resources = None;
    // Unset requests score as upstream's non-zero defaults: 100m of 1 cpu, 200Mi of 1Gi.
    assert_eq!(
        score(
            &no_requests,
            &node("x", "1", "1Gi", "1"),
            &NodeUsage::default()
        ),
        i64::midpoint(90, 80)
    );
    assert_eq!(
        score(
            &pod("0", "0"),
            &node("x", "1", "1Gi", "1"),
            &NodeUsage::default()
        ),
        100
    );
}

#[test]
fn ties_break_randomly() {
    let nodes: Vec<Arc<Node>> = (0..4)
        .map(|i| Arc::new(node(&format!("n{i}"), "4", "4Gi", "110")))
        .collect();
    let picked: std::collections::HashSet<String> = (0..64)
        .map(|seed| {
            select_node(
                &pod("1", "1Gi"),
                &nodes,
                &HashMap::new(),
                &mut StdRng::seed_from_u64(seed),
            )
            .unwrap()
        })
        .collect();
    assert!(picked.len() > 1, "{picked:?}");
}

#[test]
fn condition_written_once() {
    let p = pod("1", "1Gi");
    let conds = unschedulable_conditions(&p, "m").unwrap();
    assert_eq!(conds.len(), 1);
    let mut p2 = p.clone();
    p2.status = Some(k8s_openapi::api::core::v1::PodStatus {
        conditions: Some(conds),
        ..Default::default()
    });
    assert!(unschedulable_conditions(&p2, "m").is_none());
    assert!(unschedulable_conditions(&p2, "other").is_some());
}

#[test]
fn scheduler_name_respected() {
    let mut p = pod("1", "1Gi");
    assert!(needs_scheduling(&p, "default-scheduler"));
    p.spec.as_mut().unwrap().scheduler_name = Some("other".into());
    assert!(!needs_scheduling(&p, "default-scheduler"));
    p.spec.as_mut().unwrap().scheduler_name = None;
    p.spec.as_mut().unwrap().node_name = Some("n1".into());
    assert!(!needs_scheduling(&p, "default-scheduler"));
}

mod glue {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use super::super::{Ctx, reconcile};
    use super::{node, pod};
    use crate::common::{Backoffs, test_store};
    use sluice_test_util::fake_api::FakeApi;

    const PODS: &str = "api/v1/namespaces/default/pods";
    const EVENTS: &str = "apis/events.k8s.io/v1/namespaces/default/events";

    fn ctx(
        fake: &FakeApi,
        nodes: Vec<k8s_openapi::api::core::v1::Node>,
        pods: Vec<k8s_openapi::api::core::v1::Pod>,
    ) -> Arc<Ctx> {
        Arc::new(Ctx {
            client: fake.client(),
            nodes: test_store((), nodes),
            pods: test_store((), pods),
            scheduler_name: "default-scheduler".into(),
            assumed: Mutex::new(HashMap::new()),
            events: Mutex::new(HashMap::new()),
            backoffs: Backoffs::default(),
        })
    }

    #[tokio::test]
    async fn binds_then_remembers() {
        let fake = FakeApi::default();
        let p = pod("600m", "1Mi");
        fake.insert(PODS, serde_json::to_value(&p).unwrap());
        let ctx = ctx(&fake, vec![node("n1", "1", "1Gi", "110")], vec![p.clone()]);
        reconcile(Arc::new(p.clone()), ctx.clone()).await.unwrap();
        assert_eq!(
            fake.get(&format!("{PODS}/p")).unwrap()["spec"]["nodeName"],
            "n1"
        );
        assert_eq!(
            fake.take_writes(),
            vec!["POST /api/v1/namespaces/default/pods/p/binding".to_string()]
        );

        // A second pod that would only fit if the first (bound, but the cache says unbound)
        // were forgotten: the assumed pod keeps the node full.
        let mut q = pod("600m", "1Mi");
        q.metadata.name = Some("q".into());
        q.metadata.uid = Some("u2".into());
        fake.insert(PODS, serde_json::to_value(&q).unwrap());
        reconcile(Arc::new(q), ctx.clone()).await.unwrap();
        assert!(fake.get(&format!("{PODS}/q")).unwrap()["spec"]["nodeName"].is_null());
        let q = fake.get(&format!("{PODS}/q")).unwrap();
        assert_eq!(q["status"]["conditions"][0]["reason"], "Unschedulable");
        assert_eq!(
            q["status"]["conditions"][0]["message"],
            "0/1 nodes are available: 1 Insufficient cpu."
        );
        let events = fake.list(EVENTS);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["reason"], "FailedScheduling");
        assert_eq!(events[0]["type"], "Warning");
        assert_eq!(events[0]["regarding"]["name"], "q");
        assert_eq!(
            events[0]["note"],
            "0/1 nodes are available: 1 Insufficient cpu."
        );
        assert_eq!(events[0]["reportingController"], "default-scheduler");
    }

    #[tokio::test]
    async fn repeated_failure_bumps_the_event() {
        let fake = FakeApi::default();
        let p = pod("2", "1Mi");
        fake.insert(PODS, serde_json::to_value(&p).unwrap());
        let ctx = ctx(&fake, vec![node("n1", "1", "1Gi", "110")], vec![p.clone()]);
        reconcile(Arc::new(p.clone()), ctx.clone()).await.unwrap();
        let updated: k8s_openapi::api::core::v1::Pod =
            serde_json::from_value(fake.get(&format!("{PODS}/p")).unwrap()).unwrap();
        fake.take_writes();
        reconcile(Arc::new(updated), ctx).await.unwrap();
        let writes = fake.take_writes();
        assert_eq!(
            writes.len(),
            1,
            "condition unchanged, event patched: {writes:?}"
        );
        let events = fake.list(EVENTS);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["series"]["count"], 2);
    }

    #[tokio::test]
    async fn a_new_message_starts_a_new_event() {
        let fake = FakeApi::default();
        let p = pod("2", "1Mi");
        fake.insert(PODS, serde_json::to_value(&p).unwrap());
        let ctx = ctx(&fake, vec![node("n1", "1", "1Gi", "110")], vec![p.clone()]);
        reconcile(Arc::new(p.clone()), ctx.clone()).await.unwrap();
        // The same pod now fits the node's cpu but not its labels.
        let mut picky = pod("1m", "1Mi");
        picky.spec.as_mut().unwrap().node_selector = Some(std::collections::BTreeMap::from([(
            "disk".to_string(),
            "ssd".to_string(),
        )]));
        reconcile(Arc::new(picky), ctx).await.unwrap();
        let mut notes: Vec<String> = fake
            .list(EVENTS)
            .iter()
            .map(|e| e["note"].as_str().unwrap().to_owned())
            .collect();
        notes.sort();
        assert_eq!(
            notes,
            [
                "0/1 nodes are available: 1 Insufficient cpu.",
                "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
            ]
        );
    }
}
