use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::*;

fn r(kind: &str, name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

#[test]
fn owner_state_by_uid() {
    let rf = r("ReplicaSet", "web", "u1");
    assert_eq!(owner_state(&rf, true, Some("u1")), OwnerState::Present);
    assert_eq!(
        owner_state(&rf, true, Some("u2")),
        OwnerState::Absent,
        "same name, new object"
    );
    assert_eq!(owner_state(&rf, true, None), OwnerState::Absent);
    assert_eq!(owner_state(&rf, false, None), OwnerState::Unknown);
}

#[test]
fn decisions() {
    let a = r("ReplicaSet", "a", "ua");
    let b = r("Deployment", "b", "ub");
    let state = |present: &'static [&'static str], unknown: &'static [&'static str]| {
        move |x: &OwnerReference| {
            if unknown.contains(&x.uid.as_str()) {
                OwnerState::Unknown
            } else if present.contains(&x.uid.as_str()) {
                OwnerState::Present
            } else {
                OwnerState::Absent
            }
        }
    };
    assert_eq!(
        decide(&[], state(&[], &[])),
        Decision::Keep,
        "no owners: never collected"
    );
    assert_eq!(
        decide(std::slice::from_ref(&a), state(&["ua"], &[])),
        Decision::Keep
    );
    assert_eq!(
        decide(std::slice::from_ref(&a), state(&[], &[])),
        Decision::Delete
    );
    assert_eq!(
        decide(&[a.clone(), b.clone()], state(&[], &[])),
        Decision::Delete
    );
    assert_eq!(
        decide(&[a.clone(), b.clone()], state(&["ub"], &[])),
        Decision::RemoveRefs(vec!["ua".into()])
    );
    assert_eq!(
        decide(std::slice::from_ref(&a), state(&[], &["ua"])),
        Decision::Keep,
        "untracked owner kinds count as present"
    );
    assert_eq!(
        decide(&[a, b], state(&[], &["ub"])),
        Decision::RemoveRefs(vec!["ua".into()])
    );
}

#[test]
fn foreground_and_orphan() {
    let fg = vec![FOREGROUND.to_string()];
    let orphan = vec![ORPHAN.to_string()];
    assert_eq!(
        owner_action(false, &fg, &[false]),
        OwnerAction::None,
        "not being deleted"
    );
    assert_eq!(
        owner_action(true, &[], &[false]),
        OwnerAction::None,
        "background: nothing for the owner"
    );
    assert_eq!(
        owner_action(true, &fg, &[false, true, false]),
        OwnerAction::DeleteDependents(vec![0, 2])
    );
    assert_eq!(owner_action(true, &fg, &[true]), OwnerAction::Wait);
    assert_eq!(
        owner_action(true, &fg, &[]),
        OwnerAction::RemoveFinalizer(FOREGROUND)
    );
    assert_eq!(
        owner_action(true, &orphan, &[false, true]),
        OwnerAction::Orphan(vec![0, 1])
    );
    assert_eq!(
        owner_action(true, &orphan, &[]),
        OwnerAction::RemoveFinalizer(ORPHAN)
    );
}

#[test]
fn groups() {
    assert_eq!(group_of("v1"), "");
    assert_eq!(group_of("apps/v1"), "apps");
    assert_eq!(group_of("discovery.k8s.io/v1"), "discovery.k8s.io");
}

mod glue {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::Pod;
    use kube::core::{ApiResource, DynamicObject};
    use serde_json::{Value, json};

    use super::super::{FOREGROUND, Gc, Kind};
    use crate::common::test_store;
    use sluice_test_util::fake_api::FakeApi;

    const PODS: &str = "api/v1/namespaces/default/pods";
    const RS: &str = "apis/apps/v1/namespaces/default/replicasets";

    fn rs(name: &str, uid: &str, extra: Value) -> Value {
        let mut v = json!({ "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": { "name": name, "namespace": "default", "uid": uid } });
        if let Value::Object(m) = extra {
            for (k, x) in m {
                v["metadata"][k] = x;
            }
        }
        v
    }

    fn pod(name: &str, owner: &str, owner_uid: &str) -> Value {
        json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": name, "namespace": "default", "uid": format!("{name}-uid"),
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": owner_uid, "controller": true }] } })
    }

    fn gc(fake: &FakeApi, cached: &[Value]) -> Gc {
        let ars = [
            ApiResource::erase::<Pod>(&()),
            ApiResource::erase::<ReplicaSet>(&()),
        ];
        let kinds = ars
            .into_iter()
            .map(|ar| {
                let objs: Vec<DynamicObject> = cached
                    .iter()
                    .filter(|o| o["kind"] == ar.kind.as_str())
                    .map(|o| serde_json::from_value(o.clone()).unwrap())
                    .collect();
                Kind {
                    store: test_store(ar.clone(), objs),
                    ar,
                }
            })
            .collect();
        Gc {
            client: fake.client(),
            kinds,
        }
    }

    #[tokio::test]
    async fn collects_orphans_but_not_on_a_stale_cache() {
        let fake = FakeApi::default();
        let live_rs = rs("web", "u-web", json!({}));
        let reused_rs = rs("web2", "u-new", json!({}));
        let objects = [
            pod("orphan", "gone", "u-gone"),
            pod("kept", "web", "u-web"),
            pod("stale-uid", "web2", "u-old"),
            live_rs.clone(),
            reused_rs.clone(),
        ];
        for o in &objects {
            fake.insert(if o["kind"] == "Pod" { PODS } else { RS }, o.clone());
        }
        // The cache has not seen ReplicaSet "web" yet; only a fresh GET can tell it exists.
        let cached: Vec<Value> = objects
            .iter()
            .filter(|o| o["metadata"]["name"] != "web")
            .cloned()
            .collect();
        let errors = gc(&fake, &cached).scan().await;
        assert!(errors.is_empty(), "{errors:?}");
        let mut writes = fake.take_writes();
        writes.sort();
        assert_eq!(
            writes,
            vec![
                "DELETE /api/v1/namespaces/default/pods/orphan".to_string(),
                "DELETE /api/v1/namespaces/default/pods/stale-uid".to_string()
            ]
        );
        assert!(fake.get(&format!("{PODS}/kept")).is_some());
    }

    #[tokio::test]
    async fn foreground_then_finalizer() {
        let fake = FakeApi::default();
        let owner = rs(
            "fg",
            "u-fg",
            json!({ "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": [FOREGROUND] }),
        );
        let dep = pod("child", "fg", "u-fg");
        fake.insert(RS, owner.clone());
        fake.insert(PODS, dep.clone());
        assert!(gc(&fake, &[owner.clone(), dep]).scan().await.is_empty());
        assert_eq!(
            fake.take_writes(),
            vec!["DELETE /api/v1/namespaces/default/pods/child".to_string()]
        );
        assert!(gc(&fake, &[owner]).scan().await.is_empty());
        assert_eq!(
            fake.take_writes(),
            vec!["PATCH /apis/apps/v1/namespaces/default/replicasets/fg".to_string()]
        );
        assert_eq!(
            fake.get(&format!("{RS}/fg")).unwrap()["metadata"]["finalizers"],
            json!([])
        );
    }

    #[tokio::test]
    async fn orphan_finalizer_detaches() {
        let fake = FakeApi::default();
        let owner = rs(
            "o",
            "u-o",
            json!({ "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["orphan"] }),
        );
        let dep = pod("child", "o", "u-o");
        fake.insert(RS, owner.clone());
        fake.insert(PODS, dep.clone());
        assert!(gc(&fake, &[owner, dep]).scan().await.is_empty());
        assert_eq!(
            fake.get(&format!("{PODS}/child")).unwrap()["metadata"]["ownerReferences"],
            json!([])
        );
        assert_eq!(
            fake.get(&format!("{RS}/o")).unwrap()["metadata"]["finalizers"],
            json!([])
        );
    }
}
