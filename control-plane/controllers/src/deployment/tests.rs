use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::*;

fn template(image: &str) -> PodTemplateSpec {
    serde_json::from_value(json!({
        "metadata": { "labels": { "app": "web" } },
        "spec": { "containers": [{ "name": "web", "image": image }] }
    }))
    .unwrap()
}

fn deployment(replicas: i32, strategy: &serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": { "name": "web", "namespace": "default", "uid": "d-uid", "generation": 2 },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": "web" } },
            "strategy": strategy,
            "template": template("nginx:1"),
        }
    }))
    .unwrap()
}

fn c(spec: i32, available: i32) -> RsCounts {
    RsCounts { spec, available }
}

#[test]
fn hash_is_stable_and_template_sensitive() {
    let a = compute_hash(&template("nginx:1"), None);
    assert_eq!(a, compute_hash(&template("nginx:1"), None));
    assert_ne!(a, compute_hash(&template("nginx:2"), None));
    assert_ne!(a, compute_hash(&template("nginx:1"), Some(1)));
    assert!(!a.is_empty() && a.len() <= 10);
    assert!(a.bytes().all(|b| SAFE_ALPHABET.contains(&b)), "{a}");
}

#[test]
fn templates_equal_ignores_hash_label() {
    let mut t = template("nginx:1");
    t.metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .insert(HASH_LABEL.into(), "abc".into());
    assert!(templates_equal(&t, &template("nginx:1")));
    assert!(!templates_equal(&t, &template("nginx:2")));
}

#[test]
fn fencepost_rounding() {
    let pct = |s: &str| IntOrString::String(s.into());
    assert_eq!(
        resolve_fenceposts(None, None, 10),
        (3, 2),
        "25% surge rounds up, 25% unavailable down"
    );
    assert_eq!(resolve_fenceposts(None, None, 1), (1, 0));
    assert_eq!(
        resolve_fenceposts(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 5),
        (0, 1)
    );
    assert_eq!(
        resolve_fenceposts(Some(&pct("50%")), Some(&pct("50%")), 3),
        (2, 1)
    );
    assert_eq!(
        resolve_fenceposts(Some(&IntOrString::Int(2)), Some(&pct("0%")), 3),
        (2, 0)
    );
    let d = deployment(4, &json!({ "type": "Recreate" }));
    assert_eq!(fenceposts(&d), (0, 0));
}

#[test]
fn rolling_table() {
    // (replicas, surge, unavailable, new, olds) -> (new size, old sizes)
    type Row = (i32, i32, i32, RsCounts, Vec<RsCounts>, i32, Vec<i32>);
    let table: Vec<Row> = vec![
        // Start of a rollout, maxUnavailable 0: surge one new pod, keep the olds.
        (3, 1, 0, c(0, 0), vec![c(3, 3)], 1, vec![3]),
        // New pod not yet available: nothing may shrink.
        (3, 1, 0, c(1, 0), vec![c(3, 3)], 1, vec![3]),
        // New pod available: one old pod goes.
        (3, 1, 0, c(1, 1), vec![c(3, 3)], 1, vec![2]),
        // Then the new RS grows again.
        (3, 1, 0, c(1, 1), vec![c(2, 2)], 2, vec![2]),
        // Defaults for 10 replicas (surge 3, unavailable 2): new grows to 3 at once...
        (10, 3, 2, c(0, 0), vec![c(10, 10)], 3, vec![10]),
        // ...then olds shrink by the unavailability budget.
        (10, 3, 2, c(3, 0), vec![c(10, 10)], 3, vec![8]),
        // Unhealthy old pods are removed first, within the budget (5 - 3 floor - 1 new unready = 1).
        (4, 1, 1, c(1, 0), vec![c(4, 2)], 1, vec![3]),
        (4, 1, 1, c(1, 1), vec![c(4, 2)], 1, vec![2]),
        // Several olds: oldest first.
        (4, 0, 1, c(0, 0), vec![c(2, 2), c(2, 2)], 0, vec![1, 2]),
        // Done: new at full size, olds gone.
        (3, 1, 0, c(3, 3), vec![c(0, 0)], 3, vec![0]),
        // Scale down of the new RS beyond replicas happens at once.
        (2, 1, 0, c(5, 5), vec![], 2, vec![]),
        // Scale up with no olds: straight to replicas (surge bounds the total, not the step).
        (5, 2, 1, c(1, 1), vec![], 5, vec![]),
        // Scale up mid-rollout: the total stays within replicas + surge.
        (5, 1, 1, c(2, 2), vec![c(3, 3)], 3, vec![3]),
        (5, 1, 1, c(3, 3), vec![c(3, 3)], 3, vec![1]),
    ];
    for (replicas, surge, unavailable, new, olds, want_new, want_olds) in table {
        let got = rolling_step(replicas, surge, unavailable, new, &olds);
        assert_eq!(
            got,
            (want_new, want_olds.clone()),
            "replicas={replicas} surge={surge} unavail={unavailable} new={new:?} olds={olds:?}"
        );
    }
}

#[test]
fn rollout_converges() {
    // Simulate: each step applies the sizes and makes every pod available.
    for (replicas, surge, unavailable) in [(3, 1, 0), (10, 3, 2), (1, 1, 0), (5, 0, 1), (4, 2, 2)] {
        let mut new = c(0, 0);
        let mut old = vec![c(replicas, replicas)];
        for _ in 0..100 {
            let (n, o) = rolling_step(replicas, surge, unavailable, new, &old);
            new = c(n, n);
            old = o.into_iter().map(|s| c(s, s)).collect();
            let total: i32 = new.spec + old.iter().map(|o| o.spec).sum::<i32>();
            assert!(total <= replicas + surge, "surge exceeded");
            assert!(total >= replicas - unavailable, "availability floor broken");
        }
        assert_eq!(
            (new.spec, old[0].spec),
            (replicas, 0),
            "replicas={replicas} surge={surge} unavail={unavailable}"
        );
    }
}

#[test]
fn new_replica_set_shape() {
    let d = deployment(3, &json!({ "type": "RollingUpdate" }));
    let rs = new_replica_set(&d, "abc", 1, 4);
    assert_eq!(rs.metadata.name.as_deref(), Some("web-abc"));
    let ann = rs.metadata.annotations.as_ref().unwrap();
    assert_eq!(ann[REVISION], "4");
    assert_eq!(ann[DESIRED_REPLICAS], "3");
    assert_eq!(ann[MAX_REPLICAS], "4");
    let spec = rs.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(
        spec.selector.match_labels.as_ref().unwrap()[HASH_LABEL],
        "abc"
    );
    assert_eq!(
        spec.template
            .as_ref()
            .unwrap()
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap()[HASH_LABEL],
        "abc"
    );
    assert_eq!(
        rs.metadata.owner_references.as_ref().unwrap()[0].kind,
        "Deployment"
    );
}

fn rs_with(name: &str, spec: i32, replicas: i32, available: i32, rev: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": { "name": name, "annotations": { REVISION: rev.to_string() } },
        "spec": { "replicas": spec, "selector": {} },
        "status": { "replicas": replicas, "readyReplicas": available, "availableReplicas": available }
    }))
    .unwrap()
}

#[test]
fn status_for_rollout_status() {
    let d = deployment(3, &json!({}));
    let new = rs_with("web-new", 3, 3, 3, 2);
    let old = rs_with("web-old", 0, 0, 0, 1);
    let s = compute_status(&d, Some(&new), &[&old, &new], false);
    assert_eq!(
        (
            s.observed_generation,
            s.replicas,
            s.updated_replicas,
            s.available_replicas
        ),
        (Some(2), Some(3), Some(3), Some(3))
    );
    assert_eq!(s.unavailable_replicas, Some(0));
    let conds = s.conditions.as_ref().unwrap();
    let get = |t: &str| conds.iter().find(|c| c.type_ == t).unwrap();
    assert_eq!(
        (
            get("Available").status.as_str(),
            get("Available").reason.as_deref()
        ),
        ("True", Some("MinimumReplicasAvailable"))
    );
    assert_eq!(
        get("Progressing").reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );

    let new = rs_with("web-new", 1, 1, 0, 2);
    let old = rs_with("web-old", 3, 3, 3, 1);
    let s = compute_status(&d, Some(&new), &[&old, &new], true);
    assert_eq!(
        (s.replicas, s.updated_replicas, s.unavailable_replicas),
        (Some(4), Some(1), Some(1))
    );
    let conds = s.conditions.as_ref().unwrap();
    assert!(
        conds.iter().any(
            |c| c.type_ == "Progressing" && c.reason.as_deref() == Some("NewReplicaSetCreated")
        )
    );
    let s2 = compute_status(&d, Some(&new), &[&old, &new], false);
    assert!(
        s2.conditions
            .unwrap()
            .iter()
            .any(|c| c.reason.as_deref() == Some("ReplicaSetUpdated"))
    );

    let none = compute_status(&d, None, &[], false);
    assert_eq!(
        none.conditions
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Available")
            .unwrap()
            .status,
        "False"
    );
}

#[test]
fn unchanged_status_is_not_rewritten() {
    let mut d = deployment(3, &json!({}));
    let new = rs_with("web-new", 3, 3, 3, 2);
    let s = compute_status(&d, Some(&new), &[&new], false);
    d.status = Some(s.clone());
    let again = compute_status(&d, Some(&new), &[&new], false);
    assert!(!status_changed(d.status.as_ref(), &again));
    assert_eq!(again.conditions, s.conditions, "timestamps kept");
}

#[test]
fn history_limit() {
    let olds: Vec<ReplicaSet> = (1..=5)
        .map(|i| rs_with(&format!("r{i}"), 0, 0, 0, i))
        .collect();
    let busy = rs_with("busy", 1, 1, 1, 0);
    let mut refs: Vec<&ReplicaSet> = olds.iter().collect();
    refs.push(&busy);
    let names: Vec<String> = history_to_delete(&refs, 2)
        .iter()
        .map(|rs| rs.name_any())
        .collect();
    assert_eq!(names, ["r1", "r2", "r3"]);
    assert!(history_to_delete(&refs, 10).is_empty());
}

mod glue {
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::{Ctx, HASH_LABEL, REVISION, compute_hash, reconcile};
    use super::{deployment, template};
    use crate::common::Backoffs;
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    use serde_json::json;
    use sluice_test_util::fake_api::FakeApi;

    const DEPLOY: &str = "apis/apps/v1/namespaces/default/deployments";
    const RS: &str = "apis/apps/v1/namespaces/default/replicasets";

    fn current(fake: &FakeApi) -> Arc<Deployment> {
        Arc::new(serde_json::from_value(fake.get(&format!("{DEPLOY}/web")).unwrap()).unwrap())
    }

    fn make_available(fake: &FakeApi) {
        for rs in fake.list(RS) {
            let rs: ReplicaSet = serde_json::from_value(rs).unwrap();
            let n = rs.spec.unwrap().replicas.unwrap();
            let name = rs.metadata.name.unwrap();
            let mut obj = fake.get(&format!("{RS}/{name}")).unwrap();
            obj["status"] = json!({ "replicas": n, "readyReplicas": n, "availableReplicas": n });
            fake.insert(RS, obj);
        }
    }

    #[tokio::test]
    async fn rollout_end_to_end() {
        let fake = FakeApi::default();
        fake.insert(
            DEPLOY,
            serde_json::to_value(deployment(3, &json!({}))).unwrap(),
        );
        let ctx = Arc::new(Ctx {
            client: fake.client(),
            backoffs: Backoffs::default(),
            resync: Duration::from_mins(5),
        });
        reconcile(current(&fake), ctx.clone()).await.unwrap();
        let hash = compute_hash(&template("nginx:1"), None);
        let rs = fake
            .get(&format!("{RS}/web-{hash}"))
            .expect("new replicaset");
        assert_eq!(rs["spec"]["replicas"], 3);
        assert_eq!(rs["metadata"]["annotations"][REVISION], "1");
        assert_eq!(
            rs["spec"]["selector"]["matchLabels"][HASH_LABEL],
            hash.as_str()
        );
        assert_eq!(
            current(&fake).metadata.annotations.as_ref().unwrap()[REVISION],
            "1"
        );

        make_available(&fake);
        reconcile(current(&fake), ctx.clone()).await.unwrap();
        let st = current(&fake).status.clone().unwrap();
        assert_eq!(
            (
                st.replicas,
                st.updated_replicas,
                st.available_replicas,
                st.observed_generation
            ),
            (Some(3), Some(3), Some(3), Some(2))
        );
        let progressing = st
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Progressing")
            .unwrap();
        assert_eq!(
            progressing.reason.as_deref(),
            Some("NewReplicaSetAvailable")
        );
        fake.take_writes();
        reconcile(current(&fake), ctx.clone()).await.unwrap();
        assert_eq!(
            fake.take_writes(),
            Vec::<String>::new(),
            "steady state writes nothing"
        );

        // kubectl set image: a second ReplicaSet, surge 1 (25% of 3 rounded up).
        let mut obj = fake.get(&format!("{DEPLOY}/web")).unwrap();
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        obj["metadata"]["generation"] = json!(3);
        fake.insert(DEPLOY, obj);
        reconcile(current(&fake), ctx.clone()).await.unwrap();
        let hash2 = compute_hash(&template("nginx:2"), None);
        let rs2 = fake
            .get(&format!("{RS}/web-{hash2}"))
            .expect("second replicaset");
        assert_eq!(rs2["spec"]["replicas"], 1);
        assert_eq!(rs2["metadata"]["annotations"][REVISION], "2");

        // Drive to completion: each pass, pods become available.
        for _ in 0..20 {
            make_available(&fake);
            reconcile(current(&fake), ctx.clone()).await.unwrap();
        }
        assert_eq!(
            fake.get(&format!("{RS}/web-{hash}")).unwrap()["spec"]["replicas"],
            0
        );
        assert_eq!(
            fake.get(&format!("{RS}/web-{hash2}")).unwrap()["spec"]["replicas"],
            3
        );
        let st = current(&fake).status.clone().unwrap();
        assert_eq!(
            (st.replicas, st.updated_replicas, st.available_replicas),
            (Some(3), Some(3), Some(3))
        );
        assert_eq!(
            current(&fake).metadata.annotations.as_ref().unwrap()[REVISION],
            "2"
        );
    }
}
