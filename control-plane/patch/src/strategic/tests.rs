#![allow(
    clippy::needless_pass_by_value,
    reason = "helpers take `json!` literals by value so each case reads as input -> output"
)]

use serde_json::{Value, json};

use crate::{
    ListStrategy, PatchError, PatchSchema, strategic_merge_patch, strategic_merge_patch_with,
};

fn smp(kind: &str, doc: Value, patch: Value) -> Value {
    match strategic_merge_patch(&doc, &patch, kind) {
        Ok(v) => v,
        Err(e) => panic!("patch {patch} on {doc} failed: {e}"),
    }
}

fn smp_err(kind: &str, doc: Value, patch: Value) -> PatchError {
    match strategic_merge_patch(&doc, &patch, kind) {
        Ok(v) => panic!("patch {patch} on {doc} should fail, got {v}"),
        Err(e) => e,
    }
}

fn deployment(replicas: u32, containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers, "restartPolicy": "Always"}
            }
        }
    })
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["name"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

// --- what kubectl sends -------------------------------------------------------------------

#[test]
fn kubectl_set_image() {
    let doc = deployment(
        2,
        json!([{"name": "web", "image": "nginx:1"}, {"name": "sidecar", "image": "envoy:1"}]),
    );
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}});
    let out = smp("Deployment", doc.clone(), patch);
    let mut want = doc;
    want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    assert_eq!(out, want);

    // The same from CreateTwoWayMergePatch, with its `$setElementOrder`.
    let doc = deployment(
        2,
        json!([{"name": "web", "image": "nginx:1"}, {"name": "sidecar", "image": "envoy:1"}]),
    );
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
        "containers": [{"image": "nginx:2", "name": "web"}]
    }}}});
    let out = smp("Deployment", doc, patch);
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        containers,
        &json!([{"name": "web", "image": "nginx:2"}, {"name": "sidecar", "image": "envoy:1"}])
    );
}

#[test]
fn kubectl_apply_second_apply_replicas_and_image() {
    let last_old = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{},"name":"web","namespace":"default"},"spec":{"replicas":2}}"#;
    let last_new = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{},"name":"web","namespace":"default"},"spec":{"replicas":3}}"#;
    let mut doc = deployment(
        2,
        json!([{"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]),
    );
    doc["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/last-applied-configuration": last_old, "deployment.kubernetes.io/revision": "1"});
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_new}},
        "spec": {
            "replicas": 3,
            "template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{"image": "nginx:2", "name": "web"}]
            }}
        }
    });
    let out = smp("Deployment", doc, patch);
    assert_eq!(out["spec"]["replicas"], 3);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "web", "image": "nginx:2", "ports": [{"containerPort": 80, "protocol": "TCP"}]}])
    );
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        last_new
    );
    assert_eq!(
        out["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(out["spec"]["strategy"]["type"], "RollingUpdate");
}

#[test]
fn kubectl_apply_adds_container_and_env_in_order() {
    let doc = deployment(
        1,
        json!([{"name": "web", "image": "nginx:1", "env": [{"name": "A", "value": "1"}]}]),
    );
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "init-like"}, {"name": "web"}],
        "containers": [
            {"name": "init-like", "image": "busybox"},
            {"name": "web", "$setElementOrder/env": [{"name": "A"}, {"name": "B"}], "env": [{"name": "B", "value": "2"}]}
        ]
    }}}});
    let out = smp("Deployment", doc, patch);
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(containers), ["init-like", "web"]);
    assert_eq!(
        containers[1]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    );
    assert_eq!(containers[1]["image"], "nginx:1");
}

#[test]
fn kubectl_apply_removes_container_and_changes_strategy() {
    let doc = deployment(
        1,
        json!([{"name": "web", "image": "nginx:1"}, {"name": "old", "image": "x"}]),
    );
    let patch = json!({"spec": {
        "strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"},
        "template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{"$patch": "delete", "name": "old"}]
        }}
    }});
    let out = smp("Deployment", doc, patch);
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "web", "image": "nginx:1"}])
    );
}

#[test]
fn kubectl_label_and_annotate() {
    let doc = json!({"metadata": {"name": "p", "labels": {"app": "web", "tier": "fe"}, "annotations": {"a": "1"}}});
    let out = smp(
        "Pod",
        doc,
        json!({"metadata": {"labels": {"tier": null, "env": "prod"}, "annotations": {"a": "2", "b": "x"}}}),
    );
    assert_eq!(
        out,
        json!({"metadata": {"name": "p", "labels": {"app": "web", "env": "prod"}, "annotations": {"a": "2", "b": "x"}}})
    );
    // Deleting a label that is not there, or from an object without labels, is fine.
    let out = smp(
        "Pod",
        json!({"metadata": {"name": "p"}}),
        json!({"metadata": {"labels": {"x": null}}}),
    );
    assert_eq!(out, json!({"metadata": {"name": "p", "labels": {}}}));
}

#[test]
fn kubectl_patch_scale_shape_on_deployment() {
    let out = smp(
        "Deployment",
        deployment(1, json!([])),
        json!({"spec": {"replicas": 5}}),
    );
    assert_eq!(out["spec"]["replicas"], 5);
}

#[test]
fn kubelet_node_status_conditions() {
    let node = json!({"status": {
        "conditions": [
            {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": "t0"},
            {"type": "Ready", "status": "False", "lastHeartbeatTime": "t0"}
        ],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n1"}]
    }});
    let patch = json!({"status": {
        "$setElementOrder/conditions": [{"type": "MemoryPressure"}, {"type": "Ready"}],
        "conditions": [
            {"type": "MemoryPressure", "lastHeartbeatTime": "t1"},
            {"type": "Ready", "status": "True", "lastHeartbeatTime": "t1"}
        ]
    }});
    let out = smp("Node", node, patch);
    assert_eq!(
        out["status"]["conditions"],
        json!([
            {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": "t1"},
            {"type": "Ready", "status": "True", "lastHeartbeatTime": "t1"}
        ])
    );
    assert_eq!(out["status"]["addresses"][1]["address"], "n1");
}

// --- list strategies -----------------------------------------------------------------------

#[test]
fn container_image_change_by_name() {
    let pod = json!({"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}});
    let out = smp(
        "Pod",
        pod,
        json!({"spec": {"containers": [{"name": "b", "image": "b:2"}]}}),
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}])
    );
}

#[test]
fn new_elements_go_first_without_set_element_order() {
    // Go's normalizeElementOrder puts an element the server does not know before the
    // server-only ones.
    let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
    let out = smp(
        "Pod",
        pod,
        json!({"spec": {"containers": [{"name": "c", "image": "c"}]}}),
    );
    assert_eq!(names(&out["spec"]["containers"]), ["c", "a", "b"]);
}

#[test]
fn delete_container_with_patch_delete() {
    let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
    let out = smp(
        "Pod",
        pod,
        json!({"spec": {"containers": [{"name": "b", "$patch": "delete"}]}}),
    );
    assert_eq!(names(&out["spec"]["containers"]), ["a", "c"]);
}

#[test]
fn env_and_ports_merge() {
    let pod = json!({"spec": {"containers": [{
        "name": "web",
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "1"}],
        "ports": [{"containerPort": 80, "name": "http"}]
    }]}});
    let patch = json!({"spec": {"containers": [{
        "name": "web",
        "env": [{"name": "B", "value": "2"}, {"name": "A", "$patch": "delete"}],
        "ports": [{"containerPort": 80, "protocol": "TCP"}]
    }]}});
    let out = smp("Pod", pod, patch);
    let c = &out["spec"]["containers"][0];
    assert_eq!(c["env"], json!([{"name": "B", "value": "2"}]));
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 80, "name": "http", "protocol": "TCP"}])
    );
}

#[test]
fn service_ports_merge_by_port() {
    let svc = json!({"spec": {"type": "ClusterIP", "ports": [
        {"name": "http", "port": 80, "targetPort": 8080},
        {"name": "https", "port": 443, "targetPort": 8443}
    ]}});
    let patch = json!({"spec": {
        "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
        "ports": [{"port": 443, "targetPort": 9443}]
    }});
    let out = smp("Service", svc, patch);
    assert_eq!(
        out["spec"]["ports"],
        json!([{"name": "http", "port": 80, "targetPort": 8080}, {"name": "https", "port": 443, "targetPort": 9443}])
    );
}

#[test]
fn atomic_lists_are_replaced() {
    let pod = json!({"spec": {
        "tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}],
        "containers": [{"name": "web", "args": ["--a", "--b"], "command": ["run"]}]
    }});
    let patch = json!({"spec": {
        "tolerations": [{"key": "c", "operator": "Exists"}],
        "containers": [{"name": "web", "args": ["--c"]}]
    }});
    let out = smp("Pod", pod, patch);
    assert_eq!(
        out["spec"]["tolerations"],
        json!([{"key": "c", "operator": "Exists"}])
    );
    assert_eq!(out["spec"]["containers"][0]["args"], json!(["--c"]));
    assert_eq!(out["spec"]["containers"][0]["command"], json!(["run"]));
    // Node taints are atomic too.
    let node = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}});
    let out = smp(
        "Node",
        node,
        json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}}),
    );
    assert_eq!(
        out["spec"]["taints"],
        json!([{"key": "b", "effect": "NoExecute"}])
    );
}

#[test]
fn finalizers_union_and_delete_from_primitive_list() {
    let doc = json!({"metadata": {"finalizers": ["a", "b"]}});
    let out = smp(
        "ConfigMap",
        doc.clone(),
        json!({"metadata": {"finalizers": ["b", "c"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
    let out = smp(
        "ConfigMap",
        doc.clone(),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "zzz"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    // kubectl apply: remove `a`, add `c`, with the order directive.
    let patch = json!({"metadata": {
        "$setElementOrder/finalizers": ["b", "c"],
        "$deleteFromPrimitiveList/finalizers": ["a"],
        "finalizers": ["c"]
    }});
    let out = smp("ConfigMap", doc, patch);
    assert_eq!(out["metadata"]["finalizers"], json!(["b", "c"]));
    // Deleting from a list that is not there adds nothing.
    let out = smp(
        "Pod",
        json!({"metadata": {}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
    );
    assert_eq!(out, json!({"metadata": {}}));
}

#[test]
fn owner_references_by_uid() {
    let doc = json!({"metadata": {"ownerReferences": [{"uid": "1", "kind": "ReplicaSet", "name": "rs"}]}});
    let patch = json!({"metadata": {"ownerReferences": [{"uid": "1", "controller": true}, {"uid": "2", "kind": "X", "name": "x"}]}});
    let out = smp("Pod", doc, patch);
    assert_eq!(
        out["metadata"]["ownerReferences"],
        json!([{"uid": "1", "kind": "ReplicaSet", "name": "rs", "controller": true}, {"uid": "2", "kind": "X", "name": "x"}])
    );
}

// --- directives ----------------------------------------------------------------------------

#[test]
fn patch_replace_on_map_and_list() {
    let doc = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
    let patch = json!({
        "metadata": {"labels": {"$patch": "replace", "c": "3"}},
        "spec": {"containers": [{"name": "z", "image": "z"}, {"$patch": "replace"}]}
    });
    let out = smp("Pod", doc, patch);
    assert_eq!(out["metadata"]["labels"], json!({"c": "3"}));
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "z", "image": "z"}])
    );
}

#[test]
fn patch_delete_on_map_and_replace_at_root() {
    let doc = json!({"metadata": {"labels": {"a": "1"}}, "data": {"k": "v"}});
    let out = smp(
        "ConfigMap",
        doc.clone(),
        json!({"data": {"$patch": "delete"}}),
    );
    assert_eq!(out, json!({"metadata": {"labels": {"a": "1"}}, "data": {}}));
    let out = smp(
        "ConfigMap",
        doc,
        json!({"$patch": "replace", "data": {"x": "y"}}),
    );
    assert_eq!(out, json!({"data": {"x": "y"}}));
}

#[test]
fn patch_merge_is_accepted() {
    let doc = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "a"}]}});
    let patch = json!({
        "metadata": {"labels": {"$patch": "merge", "b": "2"}},
        "spec": {"containers": [{"name": "a", "image": "i", "$patch": "merge"}, {"$patch": "merge"}]}
    });
    let out = smp("Pod", doc, patch);
    assert_eq!(out["metadata"]["labels"], json!({"a": "1", "b": "2"}));
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "a", "image": "i"}])
    );
}

#[test]
fn retain_keys_on_volumes() {
    let pod = json!({"spec": {"volumes": [
        {"name": "v", "emptyDir": {}},
        {"name": "w", "secret": {"secretName": "s"}}
    ]}});
    let patch = json!({"spec": {
        "$setElementOrder/volumes": [{"name": "v"}, {"name": "w"}],
        "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}, "emptyDir": null, "name": "v"}]
    }});
    let out = smp("Pod", pod, patch);
    assert_eq!(
        out["spec"]["volumes"],
        json!([{"name": "v", "configMap": {"name": "cm"}}, {"name": "w", "secret": {"secretName": "s"}}])
    );
}

#[test]
fn retain_keys_errors() {
    let doc = json!({"spec": {"strategy": {"type": "RollingUpdate"}}});
    let e = smp_err(
        "Deployment",
        doc.clone(),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
    );
    assert!(
        matches!(e, PatchError::BadDirective { ref field, .. } if field == "spec.strategy"),
        "{e}"
    );
    let e = smp_err(
        "Deployment",
        doc,
        json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
    );
    assert!(matches!(e, PatchError::BadDirective { .. }), "{e}");
}

#[test]
fn unknown_and_malformed_directives() {
    let doc = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "a"}]}});
    let bad = [
        json!({"metadata": {"labels": {"$patch": "frobnicate"}}}),
        json!({"metadata": {"labels": {"$patch": 1}}}),
        json!({"spec": {"containers": [{"name": "a", "$patch": "nope"}]}}),
        json!({"spec": {"$frob": 1}}),
    ];
    for patch in bad {
        let e = smp_err("Pod", doc.clone(), patch.clone());
        assert!(
            matches!(e, PatchError::UnknownDirective { .. }),
            "{patch}: {e}"
        );
    }
    let malformed = [
        json!({"spec": {"$setElementOrder": []}}),
        json!({"spec": {"$setElementOrder/containers": {"name": "a"}}}),
        json!({"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
    ];
    for patch in malformed {
        let e = smp_err("Pod", doc.clone(), patch.clone());
        assert!(matches!(e, PatchError::BadDirective { .. }), "{patch}: {e}");
    }
}

#[test]
fn missing_merge_key() {
    let doc = json!({"spec": {"containers": [{"name": "a"}]}});
    let e = smp_err(
        "Pod",
        doc.clone(),
        json!({"spec": {"containers": [{"image": "x"}]}}),
    );
    assert_eq!(
        e,
        PatchError::MissingMergeKey {
            field: "spec.containers".into(),
            key: "name".into(),
            element: r#"{"image":"x"}"#.into()
        }
    );
    assert!(
        e.to_string()
            .contains("does not contain declared merge key: name")
    );
    let e = smp_err(
        "Pod",
        doc,
        json!({"spec": {"containers": [{"$patch": "delete"}]}}),
    );
    assert!(matches!(e, PatchError::MissingMergeKey { .. }), "{e}");
}

#[test]
fn set_element_order_never_fails() {
    let doc = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
    // Order list disagreeing with the patch list, naming unknown elements, or missing keys.
    let patch = json!({"spec": {
        "$setElementOrder/containers": [{"name": "c"}, {"name": "zz"}, {"bogus": 1}, {"name": "a"}],
        "containers": [{"name": "a", "image": "1"}, {"name": "c", "image": "3"}, {"name": "d"}]
    }});
    let out = smp("Pod", doc.clone(), patch);
    // c and a as ordered; b (server-only) stays before c as it was live; d (new, unnamed) last.
    assert_eq!(names(&out["spec"]["containers"]), ["b", "c", "a", "d"]);
    // Order only, no patch list; and an order for a list that does not exist.
    let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}], "$setElementOrder/volumes": []}});
    let out = smp("Pod", doc, patch);
    assert_eq!(names(&out["spec"]["containers"]), ["c", "b", "a"]);
    assert!(out["spec"].get("volumes").is_none());
}

// --- Go test vectors (k8s.io/apimachinery strategicpatch patch_test.go, "Current" + "ThreeWay"
// -> "Result"), with Go's test type: mergingList by name, mergingIntList merged primitives.

struct MergeItem;

impl PatchSchema for MergeItem {
    fn list_strategy(&self, path: &[&str]) -> ListStrategy {
        match path.last().copied() {
            Some("mergingList" | "retainKeysMergingList") => ListStrategy::MergeByKey("name"),
            Some("mergingIntList") => ListStrategy::MergePrimitive,
            _ => ListStrategy::Atomic,
        }
    }
}

fn go(current: Value, patch: Value, want: Value) {
    match strategic_merge_patch_with(&current, &patch, &MergeItem) {
        Ok(got) => assert_eq!(got, want, "current {current} patch {patch}"),
        Err(e) => panic!("current {current} patch {patch}: {e}"),
    }
}

fn l(names: &[u32]) -> Value {
    Value::Array(names.iter().map(|n| json!({"name": n})).collect())
}

#[test]
fn go_unique_scalars_and_duplicates() {
    go(
        json!({"mergingIntList": [1, 2]}),
        json!({"mergingIntList": [2, 3]}),
        json!({"mergingIntList": [1, 2, 3]}),
    );
    go(
        json!({"mergingList": [{"name": 1}, {"name": 1}, {"name": 2, "value": "a"}, {"name": 3}, {"name": 3}]}),
        json!({"mergingList": [{"name": 1, "$patch": "delete"}, {"name": 3, "$patch": "delete"}]}),
        json!({"mergingList": [{"name": 2, "value": "a"}]}),
    );
    go(
        json!({"mergingList": l(&[1, 2])}),
        json!({"mergingList": [{"$patch": "replace"}]}),
        json!({"mergingList": []}),
    );
    go(
        json!({"mergingList": []}),
        json!({"mergingList": []}),
        json!({"mergingList": []}),
    );
    go(
        json!({"simpleMap": {"key1": 1}}),
        json!({"simpleMap": {"$patch": "delete"}}),
        json!({"simpleMap": {}}),
    );
    go(
        json!({"name": 1, "value": 1}),
        json!({"$patch": "replace"}),
        json!({}),
    );
    go(
        json!({"name": 1, "value": 1}),
        json!({"other": "a", "$patch": "replace"}),
        json!({"other": "a"}),
    );
}

#[test]
fn go_preserve_patch_order() {
    go(
        json!({"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]}),
        json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}, {"name": 2, "other": "x"}]}),
        json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}, {"name": 2, "value": "b", "other": "x"}]}),
    );
    go(
        json!({"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]}),
        json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}]}),
        json!({"mergingList": [{"name": 2, "value": "b"}, {"name": 3, "value": "c"}, {"name": 1, "value": "a"}]}),
    );
    go(
        json!({"mergingIntList": [1, 2, 3]}),
        json!({"mergingIntList": [3, 1, 2]}),
        json!({"mergingIntList": [3, 1, 2]}),
    );
    go(
        json!({"mergingIntList": [1, 2, 3]}),
        json!({"mergingIntList": [3, 1]}),
        json!({"mergingIntList": [2, 3, 1]}),
    );
}

#[test]
fn go_delete_from_primitive_list() {
    go(
        json!({"mergingIntList": [1, 2]}),
        json!({"$deleteFromPrimitiveList/mergingIntList": [3]}),
        json!({"mergingIntList": [1, 2]}),
    );
    go(
        json!({"mergingIntList": null}),
        json!({"$deleteFromPrimitiveList/mergingIntList": [3]}),
        json!({"mergingIntList": null}),
    );
    go(
        json!({"foo": ["bar"]}),
        json!({"$deleteFromPrimitiveList/mergingIntList": [3]}),
        json!({"foo": ["bar"]}),
    );
    go(
        json!({"mergingIntList": [1, 2, 3]}),
        json!({"$deleteFromPrimitiveList/mergingIntList": [2]}),
        json!({"mergingIntList": [1, 3]}),
    );
    go(
        json!({"nonMergingIntList": [1, 2, 3]}),
        json!({"$deleteFromPrimitiveList/nonMergingIntList": [2]}),
        json!({"nonMergingIntList": [1, 3]}),
    );
}

#[test]
fn go_set_element_order_primitives() {
    // add an item in a list of primitives and preserve order
    go(
        json!({"mergingIntList": [1, 4, 2]}),
        json!({"$setElementOrder/mergingIntList": [3, 1, 2], "mergingIntList": [3]}),
        json!({"mergingIntList": [3, 1, 4, 2]}),
    );
    // delete an item in a list of primitives and preserve order
    go(
        json!({"mergingIntList": [1, 2, 3]}),
        json!({"$setElementOrder/mergingIntList": [2, 1], "$deleteFromPrimitiveList/mergingIntList": [3]}),
        json!({"mergingIntList": [2, 1]}),
    );
    // $setElementOrder naming an item the list does not have
    go(
        json!({"mergingIntList": [1, 3]}),
        json!({"$setElementOrder/mergingIntList": [3, 2, 1]}),
        json!({"mergingIntList": [3, 1]}),
    );
}

#[test]
fn go_set_element_order_maps() {
    // add an item in a list and preserve order
    go(
        json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}),
        json!({"$setElementOrder/mergingList": l(&[3, 1, 2]), "mergingList": [{"name": 3, "value": 3}]}),
        json!({"mergingList": [{"name": 3, "value": 3}, {"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}),
    );
    // set elements order in a list with server-only items
    go(
        json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 3, "value": 3}, {"name": 4, "value": 4}, {"name": 2, "value": 2}, {"name": 9}]}),
        json!({"$setElementOrder/mergingList": l(&[4, 2, 3, 1])}),
        json!({"mergingList": [{"name": 4, "value": 4}, {"name": 2, "value": 2}, {"name": 3, "value": 3}, {"name": 1, "other": "a"}, {"name": 9}]}),
    );
    // ... 2
    go(
        json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2}, {"name": 9}, {"name": 3, "value": 3}, {"name": 4, "value": 4}]}),
        json!({"$setElementOrder/mergingList": l(&[2, 1, 4, 3])}),
        json!({"mergingList": [{"name": 2, "value": 2}, {"name": 1, "other": "a"}, {"name": 9}, {"name": 4, "value": 4}, {"name": 3, "value": 3}]}),
    );
    // ... 3
    go(
        json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2}, {"name": 7}, {"name": 9}, {"name": 8}, {"name": 3, "value": 3}, {"name": 4, "value": 4}]}),
        json!({"$setElementOrder/mergingList": l(&[2, 1, 4, 3])}),
        json!({"mergingList": [{"name": 2, "value": 2}, {"name": 1, "other": "a"}, {"name": 7}, {"name": 9}, {"name": 8}, {"name": 4, "value": 4}, {"name": 3, "value": 3}]}),
    );
    // add map and delete map from merging list (the added element takes the deleted one's slot)
    go(
        json!({"mergingList": [{"name": 1}, {"name": 2, "other": "b"}, {"name": 4, "other": "c"}]}),
        json!({"$setElementOrder/mergingList": l(&[2, 3]), "mergingList": [{"name": 3}, {"name": 1, "$patch": "delete"}]}),
        json!({"mergingList": [{"name": 2, "other": "b"}, {"name": 4, "other": "c"}, {"name": 3}]}),
    );
    // $setElementOrder naming an item that is not in the list
    go(
        json!({"mergingList": [{"name": 1}, {"name": 3}]}),
        json!({"$setElementOrder/mergingList": l(&[3, 2, 1]), "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
        json!({"mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
    );
}

#[test]
fn go_retain_keys_lists() {
    go(
        json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a"}]}),
        json!({"retainKeysMergingList": [{"name": "foo", "value": null}]}),
        json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}]}),
    );
    go(
        json!({"retainKeysMap": {"name": "foo", "value": "a"}}),
        json!({"retainKeysMap": {"$retainKeys": ["name", "other"], "other": "b"}}),
        json!({"retainKeysMap": {"name": "foo", "other": "b"}}),
    );
}

// --- odd shapes ----------------------------------------------------------------------------

#[test]
fn shape_mismatches_replace() {
    // Patch list where the document has a map, and the reverse; scalars over objects.
    let out = smp(
        "Pod",
        json!({"spec": {"containers": {"x": 1}}}),
        json!({"spec": {"containers": [{"name": "a"}]}}),
    );
    assert_eq!(out["spec"]["containers"], json!([{"name": "a"}]));
    let out = smp(
        "Pod",
        json!({"spec": {"containers": [{"name": "a"}]}}),
        json!({"spec": {"containers": {"x": 1}}}),
    );
    assert_eq!(out["spec"]["containers"], json!({"x": 1}));
    let out = smp(
        "Pod",
        json!({"spec": {"nodeName": null}}),
        json!({"spec": {"nodeName": "n1"}}),
    );
    assert_eq!(out, json!({"spec": {"nodeName": "n1"}}));
    let out = smp(
        "Pod",
        json!({"metadata": "x"}),
        json!({"metadata": {"labels": {"a": "b", "c": null}}}),
    );
    assert_eq!(out, json!({"metadata": {"labels": {"a": "b"}}}));
}

#[test]
fn null_and_non_object_top_level() {
    assert_eq!(smp("Pod", json!(null), json!({"a": 1})), json!({"a": 1}));
    assert_eq!(smp("Pod", json!({"a": 1}), json!(null)), json!({"a": 1}));
    assert_eq!(
        smp_err("Pod", json!([1]), json!({})),
        PatchError::NotAnObject { what: "document" }
    );
    assert_eq!(
        smp_err("Pod", json!({}), json!([1])),
        PatchError::NotAnObject { what: "patch" }
    );
    assert_eq!(
        smp_err("Pod", json!({}), json!("x")),
        PatchError::NotAnObject { what: "patch" }
    );
}

#[test]
fn new_values_are_cleaned() {
    let out = smp(
        "Pod",
        json!({}),
        json!({"spec": {"containers": [{"name": "a", "image": null, "env": [{"name": "X", "$patch": "delete"}], "$setElementOrder/env": []}]}}),
    );
    assert_eq!(
        out,
        json!({"spec": {"containers": [{"name": "a", "env": []}]}})
    );
    let out = smp(
        "Pod",
        json!({}),
        json!({"metadata": {"labels": {"$patch": "replace", "a": "b"}}}),
    );
    assert_eq!(out, json!({"metadata": {}}));
}

#[test]
fn unmergeable_lists() {
    let e = smp_err(
        "Pod",
        json!({"spec": {"containers": [{"name": "a"}]}}),
        json!({"spec": {"containers": ["b"]}}),
    );
    assert!(matches!(e, PatchError::InvalidList { .. }), "{e}");
    let e = smp_err(
        "Pod",
        json!({"metadata": {"finalizers": [["a"]]}}),
        json!({"metadata": {"finalizers": ["b"]}}),
    );
    assert!(matches!(e, PatchError::InvalidList { .. }), "{e}");
    let e = smp_err(
        "Pod",
        json!({"metadata": {"finalizers": [{"a": 1}]}}),
        json!({"metadata": {"finalizers": [{"b": 1}]}}),
    );
    assert!(matches!(e, PatchError::InvalidList { .. }), "{e}");
    let e = smp_err(
        "Pod",
        json!({"spec": {"containers": [{"image": "x"}]}}),
        json!({"spec": {"containers": [{"name": "a"}]}}),
    );
    assert!(matches!(e, PatchError::MissingMergeKey { .. }), "{e}");
    // Scalars in a list merged by key merge as a set (as in Go).
    let out = smp(
        "Pod",
        json!({"spec": {"containers": ["a"]}}),
        json!({"spec": {"containers": ["b", "a"]}}),
    );
    assert_eq!(out["spec"]["containers"], json!(["b", "a"]));
}

#[test]
fn inputs_untouched_on_error_and_success() {
    let doc = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "a"}]}});
    let before = doc.clone();
    let patch =
        json!({"metadata": {"labels": {"a": "2"}}, "spec": {"containers": [{"image": "x"}]}});
    assert!(strategic_merge_patch(&doc, &patch, "Pod").is_err());
    assert_eq!(doc, before);
    let _ = smp(
        "Pod",
        doc.clone(),
        json!({"metadata": {"labels": {"a": null}}}),
    );
    assert_eq!(doc, before);
}

#[test]
fn odd_shapes_never_panic() {
    let values = [
        json!(null),
        json!(1),
        json!("s"),
        json!([]),
        json!({}),
        json!([1, "a"]),
        json!([null, {"name": "a"}]),
        json!([{"name": "a"}, null]),
        json!([[1]]),
        json!([{"name": "a", "$patch": "delete"}]),
        json!([{"$patch": "replace"}, {"name": 1}]),
        json!({"$patch": "delete"}),
        json!({"$retainKeys": ["x"], "x": 1}),
        json!({"$setElementOrder/containers": [1, {"name": "a"}], "containers": [{"name": "a"}]}),
        json!({"$deleteFromPrimitiveList/finalizers": [{"x": 1}]}),
    ];
    let fields = ["containers", "finalizers", "labels", "tolerations", "env"];
    for dv in &values {
        for pv in &values {
            for field in fields {
                let doc = json!({"metadata": {field: dv}, "spec": {field: dv, "containers": [{"name": "a", field: dv}]}});
                let patch = json!({"metadata": {field: pv}, "spec": {field: pv, "containers": [{"name": "a", field: pv}]}});
                for kind in ["Pod", "Deployment", "ConfigMap"] {
                    let _ = strategic_merge_patch(&doc, &patch, kind);
                }
                let _ = strategic_merge_patch(dv, pv, "Pod");
                let _ = strategic_merge_patch_with(&doc, &patch, &MergeItem);
            }
        }
    }
}
