use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::*;

fn pod(name: &str, ready: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": "ns", "labels": { "app": "web" } },
        "spec": { "containers": [] },
        "status": {
            "phase": "Running",
            "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }]
        }
    }))
    .unwrap()
}

fn pdb(spec: &Value) -> PodDisruptionBudget {
    serde_json::from_value(json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": { "name": "web", "namespace": "ns", "uid": "pdb-uid", "generation": 2 },
        "spec": spec
    }))
    .unwrap()
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// Expected, desired and allowed for these pods, counting selected pods as the scale.
fn counts(spec: &Value, pods: &[Pod], scale: Option<i32>) -> (i32, i32, i32, i32) {
    let pdb = pdb(spec);
    let selected: Vec<&Pod> = pods.iter().filter(|p| selects(&pdb, p)).collect();
    let s = pdb.spec.clone().unwrap();
    let expected = if needs_controller_scale(&s) {
        scale.expect("this spec needs the controllers' scale")
    } else {
        i32::try_from(selected.len()).unwrap()
    };
    let desired = desired_healthy(&s, expected).unwrap();
    let healthy = current_healthy(&selected, &BTreeMap::new());
    let now = at("2024-01-01T00:00:00Z");
    let st = compute_status(&pdb, expected, desired, healthy, BTreeMap::new(), now);
    assert_eq!(
        (st.expected_pods, st.desired_healthy, st.current_healthy),
        (expected, desired, healthy)
    );
    (expected, desired, healthy, st.disruptions_allowed)
}

#[test]
fn min_available_int_counts_selected_pods() {
    let pods = [pod("a", true), pod("b", true), pod("c", true)];
    let spec = json!({ "minAvailable": 2, "selector": { "matchLabels": { "app": "web" } } });
    assert!(!needs_controller_scale(&pdb(&spec).spec.unwrap()));
    assert_eq!(counts(&spec, &pods, None), (3, 2, 3, 1));
    let spec = json!({ "minAvailable": 3, "selector": { "matchLabels": { "app": "web" } } });
    assert_eq!(counts(&spec, &pods, None), (3, 3, 3, 0));
    let spec = json!({ "minAvailable": 5, "selector": { "matchLabels": { "app": "web" } } });
    assert_eq!(counts(&spec, &pods, None), (3, 5, 3, 0), "never negative");
}

#[test]
fn min_available_percentage_rounds_up_over_the_scale() {
    let pods = [pod("a", true), pod("b", true), pod("c", true)];
    let spec = json!({ "minAvailable": "30%", "selector": { "matchLabels": { "app": "web" } } });
    assert!(needs_controller_scale(&pdb(&spec).spec.unwrap()));
    // 30% of 4 is 1.2: 2 must stay.
    assert_eq!(counts(&spec, &pods, Some(4)), (4, 2, 3, 1));
    let spec = json!({ "minAvailable": "100%", "selector": { "matchLabels": { "app": "web" } } });
    assert_eq!(counts(&spec, &pods, Some(3)), (3, 3, 3, 0));
}

#[test]
fn max_unavailable_int_and_percentage() {
    let pods = [
        pod("a", true),
        pod("b", true),
        pod("c", true),
        pod("d", true),
    ];
    let spec = json!({ "maxUnavailable": 1, "selector": { "matchLabels": { "app": "web" } } });
    assert!(needs_controller_scale(&pdb(&spec).spec.unwrap()));
    assert_eq!(counts(&spec, &pods, Some(4)), (4, 3, 4, 1));
    // Scale 5 with one pod missing: 25% of 5 rounds up to 2, so 3 must stay.
    let spec = json!({ "maxUnavailable": "25%", "selector": { "matchLabels": { "app": "web" } } });
    assert_eq!(counts(&spec, &pods, Some(5)), (5, 3, 4, 1));
    // More unavailable than expected floors desiredHealthy at zero.
    let spec = json!({ "maxUnavailable": 10, "selector": { "matchLabels": { "app": "web" } } });
    assert_eq!(counts(&spec, &pods, Some(4)), (4, 0, 4, 4));
}

#[test]
fn selectors_empty_selects_all_null_none() {
    let mut other = pod("other", true);
    other.metadata.labels = Some(BTreeMap::from([("app".into(), "db".into())]));
    let pods = [pod("a", true), other];
    let all = json!({ "minAvailable": 1, "selector": {} });
    assert_eq!(counts(&all, &pods, None), (2, 1, 2, 1));
    let none = json!({ "minAvailable": 1 });
    assert_eq!(
        counts(&none, &pods, None),
        (0, 1, 0, 0),
        "a null selector selects nothing"
    );
    let exprs = json!({ "minAvailable": 0, "selector": { "matchExpressions": [
        { "key": "app", "operator": "In", "values": ["db"] }
    ] } });
    assert_eq!(counts(&exprs, &pods, None), (1, 0, 1, 1));
}

#[test]
fn no_expected_pods_allows_nothing() {
    let spec = json!({ "maxUnavailable": 1, "selector": {} });
    assert_eq!(counts(&spec, &[], Some(0)), (0, 0, 0, 0));
    let spec = json!({ "minAvailable": 0, "selector": {} });
    assert_eq!(counts(&spec, &[], None), (0, 0, 0, 0));
}

#[test]
fn unready_and_terminating_pods_are_not_healthy() {
    let mut going = pod("going", true);
    going.metadata.deletion_timestamp = Some(Time(at("2024-01-01T00:00:00Z")));
    let mut no_status = pod("no-status", true);
    no_status.status = None;
    let pods = [pod("a", true), pod("b", false), going, no_status];
    let spec = json!({ "minAvailable": 1, "selector": {} });
    assert_eq!(counts(&spec, &pods, None), (4, 1, 1, 0));
}

#[test]
fn malformed_percentage_is_an_error() {
    let s = pdb(&json!({ "minAvailable": "50", "selector": {} }))
        .spec
        .unwrap();
    assert!(matches!(
        desired_healthy(&s, 4),
        Err(DisruptionError::InvalidValue {
            field: "minAvailable",
            ..
        })
    ));
    assert_eq!(
        scaled_up(&IntOrString::String("0%".into()), 7, "x").unwrap(),
        0
    );
    assert_eq!(
        scaled_up(&IntOrString::String("1%".into()), 7, "x").unwrap(),
        1
    );
}

#[test]
fn disrupted_pods_expire_and_are_not_healthy_meanwhile() {
    let now = at("2024-01-01T00:10:00Z");
    let mut deleting = pod("deleting", true);
    deleting.metadata.deletion_timestamp = Some(Time(now));
    let pods = [
        pod("fresh", true),
        pod("stale", true),
        deleting,
        pod("c", true),
    ];
    let selected: Vec<&Pod> = pods.iter().collect();
    let disrupted = BTreeMap::from([
        ("fresh".to_string(), Time(at("2024-01-01T00:09:30Z"))),
        ("stale".to_string(), Time(at("2024-01-01T00:07:00Z"))),
        ("deleting".to_string(), Time(at("2024-01-01T00:09:50Z"))),
        ("gone".to_string(), Time(at("2024-01-01T00:09:50Z"))),
    ]);
    let (live, recheck) = live_disruptions(Some(&disrupted), &selected, now);
    assert_eq!(live.keys().collect::<Vec<_>>(), ["fresh"]);
    assert_eq!(recheck, Some(at("2024-01-01T00:11:30Z")));
    // fresh waits for its deletion; deleting is being deleted; stale and c count.
    assert_eq!(current_healthy(&selected, &live), 2);
    assert_eq!(until(now, recheck.unwrap()), Duration::from_millis(90_100));
    let (live, recheck) = live_disruptions(None, &selected, now);
    assert!(live.is_empty() && recheck.is_none());
}

#[test]
fn condition_keeps_transition_time_while_status_holds() {
    let t0 = at("2024-01-01T00:00:00Z");
    let t1 = at("2024-01-01T01:00:00Z");
    let t2 = at("2024-01-01T02:00:00Z");
    let mut budget = pdb(&json!({ "minAvailable": 1, "selector": {} }));
    let st = compute_status(&budget, 3, 1, 3, BTreeMap::new(), t0);
    let c = &st.conditions.as_ref().unwrap()[0];
    assert_eq!(
        (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
        (DISRUPTION_ALLOWED, "True", SUFFICIENT_PODS)
    );
    assert_eq!(c.observed_generation, Some(2));
    assert_eq!(st.observed_generation, Some(2));
    assert!(!c.message.is_empty());
    budget.status = Some(st);
    // Still allowed (fewer): same transition time, new message.
    let st = compute_status(&budget, 3, 1, 2, BTreeMap::new(), t1);
    let c = &st.conditions.as_ref().unwrap()[0];
    assert_eq!((c.status.as_str(), c.last_transition_time.0), ("True", t0));
    assert!(c.message.contains("1 disruptions allowed"), "{}", c.message);
    budget.status = Some(st);
    // Flips to not allowed: transition now.
    let st = compute_status(&budget, 3, 1, 1, BTreeMap::new(), t2);
    let c = &st.conditions.as_ref().unwrap()[0];
    assert_eq!(
        (
            c.status.as_str(),
            c.reason.as_str(),
            c.last_transition_time.0
        ),
        ("False", INSUFFICIENT_PODS, t2)
    );
    assert_eq!(st.conditions.as_ref().unwrap().len(), 1);
}

#[test]
fn unchanged_status_is_detected() {
    let t0 = at("2024-01-01T00:00:00Z");
    let mut budget = pdb(&json!({ "minAvailable": 1, "selector": {} }));
    let st = compute_status(&budget, 3, 1, 3, BTreeMap::new(), t0);
    assert!(!status_unchanged(None, &st));
    budget.status = Some(st);
    let again = compute_status(
        &budget,
        3,
        1,
        3,
        BTreeMap::new(),
        at("2024-01-01T05:00:00Z"),
    );
    assert!(status_unchanged(budget.status.as_ref(), &again));
    let mut empty_map = again.clone();
    empty_map.disrupted_pods = Some(BTreeMap::new());
    assert!(status_unchanged(budget.status.as_ref(), &empty_map));
    let fewer = compute_status(&budget, 3, 1, 2, BTreeMap::new(), t0);
    assert!(!status_unchanged(budget.status.as_ref(), &fewer));
    // A new generation alone is a change.
    budget.metadata.generation = Some(3);
    let newer = compute_status(&budget, 3, 1, 3, BTreeMap::new(), t0);
    assert!(!status_unchanged(budget.status.as_ref(), &newer));
}

#[test]
fn fail_safe_allows_nothing() {
    let t0 = at("2024-01-01T00:00:00Z");
    let mut budget = pdb(&json!({ "maxUnavailable": 1, "selector": {} }));
    let mut st = compute_status(&budget, 3, 2, 3, BTreeMap::new(), t0);
    st.observed_generation = Some(1);
    budget.status = Some(st);
    let failed = fail_safe_status(&budget, "boom", at("2024-01-01T00:01:00Z"));
    assert_eq!(failed.disruptions_allowed, 0);
    assert_eq!(failed.current_healthy, 3, "counts stay as they were");
    assert_eq!(
        failed.observed_generation,
        Some(1),
        "observedGeneration is not advanced"
    );
    let c = &failed.conditions.as_ref().unwrap()[0];
    assert_eq!(
        (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
        ("False", SYNC_FAILED, "boom")
    );
}

mod glue {
    use std::sync::Arc;
    use std::time::Duration;

    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::{SignedDuration, Timestamp};
    use serde_json::{Value, json};
    use sluice_test_util::fake_api::FakeApi;

    use super::super::{Ctx, SYNC_FAILED, reconcile};
    use crate::common::Backoffs;

    const PDBS: &str = "apis/policy/v1/namespaces/ns/poddisruptionbudgets";
    const PODS: &str = "api/v1/namespaces/ns/pods";
    const STATUS_WRITE: &str = "PUT /apis/policy/v1/namespaces/ns/poddisruptionbudgets/web/status";

    fn setup(spec: &Value) -> (FakeApi, Arc<Ctx>) {
        let fake = FakeApi::default();
        fake.insert(
            PDBS,
            json!({
                "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": { "name": "web", "namespace": "ns", "uid": "pdb-uid", "generation": 2 },
                "spec": spec
            }),
        );
        let ctx = Arc::new(Ctx {
            client: fake.client(),
            backoffs: Backoffs::default(),
            resync: Duration::from_mins(5),
        });
        (fake, ctx)
    }

    fn pod(fake: &FakeApi, name: &str, ready: bool, owner: Option<(&str, &str, &str)>) {
        let owners = owner.map(|(kind, name, uid)| {
            let api_version = if kind == "ReplicationController" {
                "v1"
            } else {
                "apps/v1"
            };
            json!([{ "apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "controller": true }])
        });
        fake.insert(
            PODS,
            json!({
                "metadata": { "name": name, "namespace": "ns", "labels": { "app": "web" },
                    "ownerReferences": owners },
                "spec": { "containers": [] },
                "status": { "phase": "Running",
                    "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }] }
            }),
        );
    }

    fn owner(
        fake: &FakeApi,
        collection: &str,
        kind: &str,
        name: &str,
        uid: &str,
        replicas: i32,
        controller: Option<(&str, &str)>,
    ) {
        let owners = controller.map(|(name, uid)| {
            json!([{ "apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": uid, "controller": true }])
        });
        fake.insert(
            collection,
            json!({
                "apiVersion": "apps/v1", "kind": kind,
                "metadata": { "name": name, "namespace": "ns", "uid": uid, "ownerReferences": owners },
                "spec": { "replicas": replicas, "selector": { "matchLabels": { "app": "web" } } }
            }),
        );
    }

    fn stored(fake: &FakeApi) -> Value {
        fake.get(&format!("{PDBS}/web")).unwrap()
    }

    fn current(fake: &FakeApi) -> Arc<PodDisruptionBudget> {
        Arc::new(serde_json::from_value(stored(fake)).unwrap())
    }

    fn summary(fake: &FakeApi) -> (i64, i64, i64, i64, i64) {
        let s = &stored(fake)["status"];
        let n = |k: &str| s[k].as_i64().unwrap();
        (
            n("expectedPods"),
            n("desiredHealthy"),
            n("currentHealthy"),
            n("disruptionsAllowed"),
            n("observedGeneration"),
        )
    }

    #[tokio::test]
    async fn min_available_int_writes_once_then_idles_then_follows_pods() {
        let (fake, ctx) =
            setup(&json!({ "minAvailable": 2, "selector": { "matchLabels": { "app": "web" } } }));
        for name in ["a", "b", "c"] {
            pod(&fake, name, true, None);
        }
        reconcile(current(&fake), ctx.clone()).await.unwrap();
        assert_eq!(summary(&fake), (3, 2, 3, 1, 2));
        let cond = &stored(&fake)["status"]["conditions"][0];
        assert_eq!(
            (&cond["type"], &cond["status"], &cond["reason"]),
            (
                &json!("DisruptionAllowed"),
                &json!("True"),
                &json!("SufficientPods")
            )
        );
        assert_eq!(fake.take_writes(), [STATUS_WRITE]);

        // Nothing changed: no write, resourceVersion untouched.
        let rv = stored(&fake)["metadata"]["resourceVersion"].clone();
        reconcile(current(&fake), ctx.clone()).await.unwrap();
        assert_eq!(fake.take_writes(), Vec::<String>::new());
        assert_eq!(stored(&fake)["metadata"]["resourceVersion"], rv);

        // A pod goes unready: recomputed, condition flips.
        pod(&fake, "c", false, None);
        reconcile(current(&fake), ctx.clone()).await.unwrap();
        assert_eq!(summary(&fake), (3, 2, 2, 0, 2));
        assert_eq!(
            stored(&fake)["status"]["conditions"][0]["reason"],
            "InsufficientPods"
        );
        assert_eq!(fake.take_writes(), [STATUS_WRITE]);
    }

    #[tokio::test]
    async fn percentage_uses_the_deployment_scale() {
        let (fake, ctx) = setup(
            &json!({ "minAvailable": "50%", "selector": { "matchLabels": { "app": "web" } } }),
        );
        owner(
            &fake,
            "apis/apps/v1/namespaces/ns/deployments",
            "Deployment",
            "web",
            "d-uid",
            6,
            None,
        );
        owner(
            &fake,
            "apis/apps/v1/namespaces/ns/replicasets",
            "ReplicaSet",
            "web-1",
            "rs1-uid",
            2,
            Some(("web", "d-uid")),
        );
        owner(
            &fake,
            "apis/apps/v1/namespaces/ns/replicasets",
            "ReplicaSet",
            "web-2",
            "rs2-uid",
            2,
            Some(("web", "d-uid")),
        );
        pod(&fake, "a", true, Some(("ReplicaSet", "web-1", "rs1-uid")));
        pod(&fake, "b", true, Some(("ReplicaSet", "web-1", "rs1-uid")));
        pod(&fake, "c", true, Some(("ReplicaSet", "web-2", "rs2-uid")));
        pod(&fake, "d", true, Some(("ReplicaSet", "web-2", "rs2-uid")));
        reconcile(current(&fake), ctx.clone()).await.unwrap();
        // The Deployment's 6 count once, not the ReplicaSets' 2 + 2.
        assert_eq!(summary(&fake), (6, 3, 4, 1, 2));
    }

    #[tokio::test]
    async fn max_unavailable_sums_replicaset_and_statefulset_scales() {
        let (fake, ctx) = setup(&json!({ "maxUnavailable": "25%", "selector": {} }));
        owner(
            &fake,
            "apis/apps/v1/namespaces/ns/replicasets",
            "ReplicaSet",
            "rs",
            "rs-uid",
            3,
            None,
        );
        owner(
            &fake,
            "apis/apps/v1/namespaces/ns/statefulsets",
            "StatefulSet",
            "db",
            "ss-uid",
            2,
            None,
        );
        pod(&fake, "a", true, Some(("ReplicaSet", "rs", "rs-uid")));
        pod(&fake, "b", true, Some(("ReplicaSet", "rs", "rs-uid")));
        pod(&fake, "c", true, Some(("ReplicaSet", "rs", "rs-uid")));
        pod(&fake, "db-0", true, Some(("StatefulSet", "db", "ss-uid")));
        pod(&fake, "db-1", false, Some(("StatefulSet", "db", "ss-uid")));
        // Unmanaged: selected, counted healthy, but no scale.
        pod(&fake, "loose", true, None);
        reconcile(current(&fake), ctx.clone()).await.unwrap();
        // Scale 5; 25% rounds up to 2 unavailable; 5 healthy (incl. loose) - 3 = 2.
        assert_eq!(summary(&fake), (5, 3, 5, 2, 2));
    }

    #[tokio::test]
    async fn missing_controller_fails_safe_and_writes_once() {
        let (fake, ctx) = setup(&json!({ "maxUnavailable": 1, "selector": {} }));
        pod(&fake, "a", true, Some(("ReplicaSet", "gone", "gone-uid")));
        let err = reconcile(current(&fake), ctx.clone()).await.unwrap_err();
        assert!(err.to_string().contains("found no controllers"), "{err}");
        let st = &stored(&fake)["status"];
        assert_eq!(st["disruptionsAllowed"], 0);
        assert_eq!(st["conditions"][0]["reason"], SYNC_FAILED);
        assert_eq!(st["conditions"][0]["status"], "False");
        assert_eq!(fake.take_writes(), [STATUS_WRITE]);
        reconcile(current(&fake), ctx.clone()).await.unwrap_err();
        assert_eq!(
            fake.take_writes(),
            Vec::<String>::new(),
            "the same failure writes nothing"
        );
        // The controller appears: recovers.
        owner(
            &fake,
            "apis/apps/v1/namespaces/ns/replicasets",
            "ReplicaSet",
            "gone",
            "gone-uid",
            1,
            None,
        );
        reconcile(current(&fake), ctx).await.unwrap();
        assert_eq!(summary(&fake), (1, 0, 1, 1, 2));
        assert_eq!(
            stored(&fake)["status"]["conditions"][0]["reason"],
            "SufficientPods"
        );
    }

    fn ago(secs: i64) -> Value {
        let t = Timestamp::now()
            .checked_sub(SignedDuration::from_secs(secs))
            .unwrap();
        serde_json::to_value(Time(t)).unwrap()
    }

    #[tokio::test]
    async fn disrupted_pods_expire_after_the_deletion_timeout() {
        let (fake, ctx) = setup(&json!({ "minAvailable": 1, "selector": {} }));
        for name in ["a", "b", "c"] {
            pod(&fake, name, true, None);
        }
        let mut budget = stored(&fake);
        budget["status"] = json!({
            "expectedPods": 3, "desiredHealthy": 1, "currentHealthy": 3, "disruptionsAllowed": 1,
            "observedGeneration": 2,
            "disruptedPods": { "a": ago(30), "b": ago(180), "gone": ago(10) }
        });
        fake.insert(PDBS, budget);
        let action = reconcile(current(&fake), ctx.clone()).await.unwrap();
        let st = &stored(&fake)["status"];
        assert_eq!(
            st["disruptedPods"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["a"],
            "b expired, gone is gone"
        );
        // a waits for its deletion; b and c are healthy.
        assert_eq!(summary(&fake), (3, 1, 2, 1, 2));
        // Requeued for when a's entry expires (about 90 s), not the 5 min resync.
        let expect = format!("{action:?}");
        assert!(!expect.contains("300s"), "{expect}");

        // a's deletion is seen: its entry goes.
        fake.remove(&format!("{PODS}/a"));
        reconcile(current(&fake), ctx.clone()).await.unwrap();
        assert!(stored(&fake)["status"]["disruptedPods"].is_null());
        assert_eq!(summary(&fake), (2, 1, 2, 1, 2));
        fake.take_writes();
        reconcile(current(&fake), ctx).await.unwrap();
        assert_eq!(fake.take_writes(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn deleted_budget_is_left_alone() {
        let (fake, ctx) = setup(&json!({ "minAvailable": 1, "selector": {} }));
        let budget = current(&fake);
        fake.remove(&format!("{PDBS}/web"));
        reconcile(budget, ctx).await.unwrap();
        assert_eq!(fake.take_writes(), Vec::<String>::new());
    }
}
