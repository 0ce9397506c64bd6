use serde_json::{Value, json};
use sluice_k8s_values::gojson;

use super::*;

const T0: &str = "2025-01-01T00:00:00Z";
const T1: &str = "2025-01-01T00:01:00Z";
const T2: &str = "2025-01-01T00:02:00Z";

/// Deployments and pods, keyed as upstream's SSA schema keys them.
struct Apps;

impl Schema for Apps {
    fn list_type(&self, path: &[&str]) -> ListType {
        match path {
            [.., "containers" | "initContainers" | "env" | "conditions"] => {
                ListType::Map(vec!["name".into()])
            }
            [.., "containers" | "initContainers", "ports"] => {
                ListType::Map(vec!["containerPort".into(), "protocol".into()])
            }
            ["metadata", "finalizers"] => ListType::Set,
            _ => ListType::Atomic,
        }
    }

    fn is_atomic_map(&self, path: &[&str]) -> bool {
        path == ["spec", "selector"]
    }

    fn key_default(&self, path: &[&str], key: &str) -> Option<Value> {
        (path.ends_with(&["ports"]) && key == "protocol").then(|| json!("TCP"))
    }
}

fn deploy(spec: &Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

fn ap(live: Option<&Value>, config: &Value, manager: &str) -> Result<Value, ApplyError> {
    apply(live, config, manager, "apps/v1", None, false, &Apps, T0)
}

fn ap_force(live: &Value, config: &Value, manager: &str) -> Value {
    apply(
        Some(live),
        config,
        manager,
        "apps/v1",
        None,
        true,
        &Apps,
        T1,
    )
    .unwrap()
}

fn entries(obj: &Value) -> Vec<Value> {
    obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entry<'a>(obj: &'a Value, manager: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager)
}

fn fields(obj: &Value, manager: &str) -> Value {
    entry(obj, manager).map_or(Value::Null, |e| e["fieldsV1"].clone())
}

fn conflicts(r: Result<Value, ApplyError>) -> Vec<Conflict> {
    match r {
        Err(ApplyError::Conflicts(c)) => c,
        other => panic!("expected conflicts, got {other:?}"),
    }
}

fn with_uid(mut obj: Value) -> Value {
    obj["metadata"]["uid"] = json!("u-1");
    obj["metadata"]["resourceVersion"] = json!("7");
    obj
}

// ---------------------------------------------------------------- apply: basics

#[test]
fn create_via_apply_records_exactly_the_applied_fields() {
    let config = deploy(&json!({"replicas": 3, "template": {"spec": {"containers": [
        {"name": "web", "image": "nginx:1"}]}}}));
    let out = ap(None, &config, "kubectl").unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    let mf = entries(&out);
    assert_eq!(mf.len(), 1);
    assert_eq!(
        mf[0],
        json!({
            "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}},
        })
    );
    // apiVersion, kind, metadata.name/namespace are never tracked.
    assert!(mf[0]["fieldsV1"].get("f:apiVersion").is_none());
    assert!(mf[0]["fieldsV1"].get("f:metadata").is_none());
}

#[test]
fn entry_wire_field_order() {
    let out = apply(
        None,
        &deploy(&json!({"replicas": 1})),
        "m",
        "apps/v1",
        Some("scale"),
        false,
        &Apps,
        T0,
    )
    .unwrap();
    let list = entries(&out);
    let keys: Vec<&String> = list[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "manager",
            "operation",
            "apiVersion",
            "time",
            "fieldsType",
            "fieldsV1",
            "subresource"
        ]
    );
    assert_eq!(entries(&out)[0]["subresource"], "scale");
}

#[test]
fn reapplying_the_same_config_changes_nothing() {
    let config = deploy(&json!({"replicas": 3}));
    let once = ap(None, &config, "a").unwrap();
    let twice = apply(Some(&once), &config, "a", "apps/v1", None, false, &Apps, T2).unwrap();
    assert_eq!(once, twice);
    assert_eq!(entry(&twice, "a").unwrap()["time"], T0);
}

#[test]
fn live_metadata_is_kept_and_time_moves_on_change() {
    let live = with_uid(ap(None, &deploy(&json!({"replicas": 3})), "a").unwrap());
    let out = apply(
        Some(&live),
        &deploy(&json!({"replicas": 4})),
        "a",
        "apps/v1",
        None,
        false,
        &Apps,
        T2,
    )
    .unwrap();
    assert_eq!(out["metadata"]["uid"], "u-1");
    assert_eq!(out["metadata"]["resourceVersion"], "7");
    assert_eq!(out["spec"]["replicas"], 4);
    assert_eq!(entry(&out, "a").unwrap()["time"], T2);
}

// ---------------------------------------------------------------- conflicts

#[test]
fn different_value_from_another_applier_conflicts() {
    let live = ap(None, &deploy(&json!({"replicas": 3})), "a").unwrap();
    let c = conflicts(ap(Some(&live), &deploy(&json!({"replicas": 5})), "b"));
    assert_eq!(
        c,
        vec![Conflict {
            manager: "a".into(),
            field: ".spec.replicas".into(),
            message: "conflict with \"a\"".into(),
        }]
    );
    let err = ap(Some(&live), &deploy(&json!({"replicas": 5})), "b").unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "a": .spec.replicas"#
    );
}

#[test]
fn force_takes_ownership_away() {
    let live = ap(None, &deploy(&json!({"replicas": 3, "paused": false})), "a").unwrap();
    let out = ap_force(&live, &deploy(&json!({"replicas": 5})), "b");
    assert_eq!(out["spec"]["replicas"], 5);
    assert_eq!(fields(&out, "a"), json!({"f:spec": {"f:paused": {}}}));
    assert_eq!(fields(&out, "b"), json!({"f:spec": {"f:replicas": {}}}));
    // "a" reapplying its old value now conflicts with "b".
    let c = conflicts(ap(
        Some(&out),
        &deploy(&json!({"replicas": 3, "paused": false})),
        "a",
    ));
    assert_eq!(c[0].manager, "b");
}

#[test]
fn same_value_is_shared_ownership() {
    let live = ap(None, &deploy(&json!({"replicas": 3})), "a").unwrap();
    let out = ap(Some(&live), &deploy(&json!({"replicas": 3})), "b").unwrap();
    assert_eq!(fields(&out, "a"), json!({"f:spec": {"f:replicas": {}}}));
    assert_eq!(fields(&out, "b"), json!({"f:spec": {"f:replicas": {}}}));
    // Now neither may change it alone.
    let c = conflicts(ap(Some(&out), &deploy(&json!({"replicas": 4})), "a"));
    assert_eq!(c[0].manager, "b");
    // Dropping it from one config leaves it to the other: no prune.
    let bare = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
    let out = ap(Some(&out), &bare, "a").unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    assert!(entry(&out, "a").is_none());
}

#[test]
fn conflict_paths_print_like_upstream() {
    let image = |img: &str| {
        deploy(&json!({"template": {"spec": {"containers": [{"name": "web", "image": img}]}}}))
    };
    let live = ap(None, &image("nginx:1"), "a").unwrap();
    let c = conflicts(ap(Some(&live), &image("nginx:2"), "b"));
    assert_eq!(c.len(), 1);
    assert_eq!(
        c[0].field,
        r#".spec.template.spec.containers[name="web"].image"#
    );
}

#[test]
fn many_conflicts_group_by_manager() {
    let live = ap(None, &deploy(&json!({"replicas": 1, "paused": true})), "a").unwrap();
    let live = ap(Some(&live), &deploy(&json!({"minReadySeconds": 1})), "c").unwrap();
    let live = update(
        Some(&live),
        &{
            let mut v = live.clone();
            v["spec"]["revisionHistoryLimit"] = json!(2);
            v
        },
        "kube-controller-manager",
        "apps/v1",
        None,
        &Apps,
        T1,
    );
    let err = ap(
        Some(&live),
        &deploy(
            &json!({"replicas": 2, "paused": false, "minReadySeconds": 2,
                        "revisionHistoryLimit": 3}),
        ),
        "b",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 4 conflicts: conflicts with \"a\":\n- .spec.paused\n- .spec.replicas\n\
         conflicts with \"c\":\n- .spec.minReadySeconds\n\
         conflicts with \"kube-controller-manager\" using apps/v1:\n- .spec.revisionHistoryLimit"
    );
    let ApplyError::Conflicts(c) = err else {
        unreachable!()
    };
    assert_eq!(
        c[3].message,
        "conflict with \"kube-controller-manager\" using apps/v1"
    );
}

#[test]
fn subresource_manager_prints_with_subresource() {
    let live = ap(None, &deploy(&json!({"replicas": 1})), "a").unwrap();
    let scaled = update(
        Some(&live),
        &{
            let mut v = live.clone();
            v["spec"]["replicas"] = json!(4);
            v
        },
        "hpa",
        "autoscaling/v1",
        Some("scale"),
        &Apps,
        T1,
    );
    let c = conflicts(ap(Some(&scaled), &deploy(&json!({"replicas": 1})), "a"));
    assert_eq!(
        c[0].message,
        "conflict with \"hpa\" with subresource \"scale\" using autoscaling/v1"
    );
}

// ---------------------------------------------------------------- pruning

#[test]
fn fields_no_longer_applied_are_pruned() {
    let labels = |l: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": l}});
    let live = apply(
        None,
        &labels(json!({"a": "1", "b": "2"})),
        "a",
        "v1",
        None,
        false,
        &Apps,
        T0,
    )
    .unwrap();
    let out = apply(
        Some(&live),
        &labels(json!({"a": "1"})),
        "a",
        "v1",
        None,
        false,
        &Apps,
        T1,
    )
    .unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"a": "1"}));
    assert_eq!(
        fields(&out, "a"),
        json!({"f:metadata": {"f:labels": {"f:a": {}}}})
    );
}

#[test]
fn pruning_keeps_fields_another_manager_owns() {
    let cm = |l: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": l}});
    let apply_v1 = |live: Option<&Value>, c: &Value, m: &str| {
        apply(live, c, m, "v1", None, false, &Apps, T0).unwrap()
    };
    let live = apply_v1(None, &cm(json!({"a": "1", "b": "2"})), "a");
    let live = apply_v1(Some(&live), &cm(json!({"b": "2"})), "b");
    let out = apply_v1(Some(&live), &cm(json!({"a": "1"})), "a");
    assert_eq!(out["metadata"]["labels"], json!({"a": "1", "b": "2"}));
    // Once "b" lets go too, b goes.
    let out = apply_v1(Some(&out), &cm(json!({})), "b");
    assert_eq!(out["metadata"]["labels"], json!({"a": "1"}));
}

#[test]
fn pruning_keeps_fields_an_updater_owns() {
    let live = ap(None, &deploy(&json!({"replicas": 1, "paused": true})), "a").unwrap();
    let mut edited = live.clone();
    edited["spec"]["paused"] = json!(false);
    let live = update(
        Some(&live),
        &edited,
        "kubectl-edit",
        "apps/v1",
        None,
        &Apps,
        T1,
    );
    assert_eq!(fields(&live, "a"), json!({"f:spec": {"f:replicas": {}}}));
    let out = ap(Some(&live), &deploy(&json!({"replicas": 1})), "a").unwrap();
    assert_eq!(out["spec"]["paused"], false);
}

#[test]
fn dropping_a_whole_struct_prunes_its_unowned_defaults() {
    let live = ap(
        None,
        &deploy(&json!({"replicas": 1, "strategy": {"type": "Recreate"}})),
        "a",
    )
    .unwrap();
    // A default nobody owns appears under strategy.
    let mut live = live;
    live["spec"]["strategy"]["extra"] = json!("defaulted");
    let out = ap(Some(&live), &deploy(&json!({"replicas": 1})), "a").unwrap();
    assert!(out["spec"].get("strategy").is_none(), "{out}");
    // Unowned fields outside what "a" ever applied stay.
    let mut live2 = ap(None, &deploy(&json!({"replicas": 1, "paused": true})), "a").unwrap();
    live2["spec"]["progressDeadlineSeconds"] = json!(600);
    let out = ap(Some(&live2), &deploy(&json!({"replicas": 1})), "a").unwrap();
    assert_eq!(out["spec"]["progressDeadlineSeconds"], 600);
    assert!(out["spec"].get("paused").is_none());
}

#[test]
fn null_in_config_removes_the_field_but_owns_it() {
    let live = ap(None, &deploy(&json!({"replicas": 1, "paused": true})), "a").unwrap();
    let out = ap(
        Some(&live),
        &deploy(&json!({"replicas": 1, "paused": null})),
        "a",
    )
    .unwrap();
    assert!(out["spec"].get("paused").is_none());
    assert_eq!(
        fields(&out, "a"),
        json!({"f:spec": {"f:paused": {}, "f:replicas": {}}})
    );
}

// ---------------------------------------------------------------- lists

fn containers(items: &Value) -> Value {
    deploy(&json!({"template": {"spec": {"containers": items}}}))
}

#[test]
fn map_lists_merge_by_key_across_managers() {
    let live = ap(
        None,
        &containers(&json!([{"name": "web", "image": "nginx"}])),
        "a",
    )
    .unwrap();
    let out = ap(
        Some(&live),
        &containers(&json!([{"name": "log", "image": "fluentbit"}])),
        "b",
    )
    .unwrap();
    let cs = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        *cs,
        json!([{"name": "web", "image": "nginx"}, {"name": "log", "image": "fluentbit"}])
    );
    let key = |n: &str| format!("k:{{\"name\":\"{n}\"}}");
    let a = fields(&out, "a");
    let b = fields(&out, "b");
    let a_items = &a["f:spec"]["f:template"]["f:spec"]["f:containers"];
    let b_items = &b["f:spec"]["f:template"]["f:spec"]["f:containers"];
    assert!(a_items.get(key("web")).is_some() && a_items.get(key("log")).is_none());
    assert!(b_items.get(key("log")).is_some() && b_items.get(key("web")).is_none());
    // "a" dropping its container removes only that one.
    let out = ap(Some(&out), &containers(&json!([])), "a").unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "log", "image": "fluentbit"}])
    );
}

#[test]
fn map_list_item_fields_merge_and_conflict_per_field() {
    let live = ap(
        None,
        &containers(&json!([{"name": "web", "image": "nginx"}])),
        "a",
    )
    .unwrap();
    let out = ap(
        Some(&live),
        &containers(&json!([{"name": "web", "args": ["-v"]}])),
        "b",
    )
    .unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "web", "image": "nginx", "args": ["-v"]}])
    );
    // Both own the item and its key; "a" changing args conflicts with "b".
    let c = conflicts(ap(
        Some(&out),
        &containers(&json!([{"name": "web", "image": "nginx", "args": ["-q"]}])),
        "a",
    ));
    assert_eq!(
        c[0].field,
        r#".spec.template.spec.containers[name="web"].args"#
    );
}

#[test]
fn merged_list_order_follows_upstream() {
    let items = |names: &[&str]| Value::Array(names.iter().map(|n| json!({"name": n})).collect());
    let live = ap(None, &containers(&items(&["a", "b", "c"])), "x").unwrap();
    // A new item lands after the shared item preceding it in the config.
    let out = ap(Some(&live), &containers(&items(&["b", "n", "c"])), "y").unwrap();
    let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "n", "c"]);
}

#[test]
fn multi_key_lists_use_defaults_and_print_all_keys() {
    let ports = |p: Value| containers(&json!([{"name": "web", "ports": p}]));
    let live = ap(
        None,
        &ports(json!([{"containerPort": 80, "name": "http"}])),
        "a",
    )
    .unwrap();
    let f = fields(&live, "a");
    let items =
        &f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]["f:ports"];
    assert!(
        items
            .get(r#"k:{"containerPort":80,"protocol":"TCP"}"#)
            .is_some(),
        "{f}"
    );
    let c = conflicts(ap(
        Some(&live),
        &ports(json!([{"containerPort": 80, "protocol": "TCP", "name": "web"}])),
        "b",
    ));
    assert_eq!(
        c[0].field,
        r#".spec.template.spec.containers[name="web"].ports[containerPort=80,protocol="TCP"].name"#
    );
}

#[test]
fn set_lists_are_owned_per_value() {
    let fin = |f: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": f}});
    let ap1 =
        |live: Option<&Value>, c: &Value, m: &str| apply(live, c, m, "v1", None, false, &Apps, T0);
    let live = ap1(None, &fin(json!(["a.io/x"])), "a").unwrap();
    assert_eq!(
        fields(&live, "a"),
        json!({"f:metadata": {"f:finalizers": {"v:\"a.io/x\"": {}}}})
    );
    let live = ap1(Some(&live), &fin(json!(["b.io/y"])), "b").unwrap();
    assert_eq!(live["metadata"]["finalizers"], json!(["a.io/x", "b.io/y"]));
    let out = ap1(Some(&live), &fin(json!([])), "a").unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["b.io/y"]));
    // Set items print as [="value"].
    let mut live2 = live.clone();
    live2["metadata"]["finalizers"] = json!(["b.io/y"]);
    let live2 = update(Some(&live), &live2, "ctl", "v1", None, &Apps, T1);
    assert!(entry(&live2, "a").is_none());
}

#[test]
fn atomic_lists_and_maps_are_owned_whole() {
    let live = ap(
        None,
        &deploy(&json!({"selector": {"matchLabels": {"app": "web"}},
                        "template": {"spec": {"containers": [{"name": "w", "args": ["a", "b"]}]}}})),
        "a",
    )
    .unwrap();
    let f = fields(&live, "a");
    assert_eq!(f["f:spec"]["f:selector"], json!({}));
    assert_eq!(
        f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"w\"}"]["f:args"],
        json!({})
    );
    let c = conflicts(ap(
        Some(&live),
        &deploy(&json!({"selector": {"matchLabels": {"app": "db"}}})),
        "b",
    ));
    assert_eq!(c[0].field, ".spec.selector");
}

// ---------------------------------------------------------------- update tracking

#[test]
fn create_by_update_records_added_fields_like_upstream() {
    let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "strategy": {"type": "RollingUpdate",
                 "rollingUpdate": {"maxSurge": 1}},
                 "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
    let out = update(None, &obj, "kubectl-create", "apps/v1", None, &Apps, T0);
    assert_eq!(
        entries(&out),
        vec![json!({
            "manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1",
            "time": T0, "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}}, "f:type": {}},
                    "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                        ".": {}, "f:image": {}, "f:name": {}}}}},
                },
            },
        })]
    );
}

#[test]
fn update_takes_fields_from_the_applier() {
    let live = with_uid(ap(None, &deploy(&json!({"replicas": 3})), "a").unwrap());
    let mut edited = live.clone();
    edited["spec"]["replicas"] = json!(7);
    let out = update(
        Some(&live),
        &edited,
        "kubectl-edit",
        "apps/v1",
        None,
        &Apps,
        T1,
    );
    assert!(entry(&out, "a").is_none(), "{out}");
    assert_eq!(
        fields(&out, "kubectl-edit"),
        json!({"f:spec": {"f:replicas": {}}})
    );
    // The applier's next apply of another value conflicts with the updater.
    let c = conflicts(ap(Some(&out), &deploy(&json!({"replicas": 3})), "a"));
    assert_eq!(c[0].message, "conflict with \"kubectl-edit\" using apps/v1");
    assert_eq!(
        ap(Some(&out), &deploy(&json!({"replicas": 3})), "a")
            .unwrap_err()
            .to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas"#
    );
}

#[test]
fn update_that_changes_nothing_adds_no_entry() {
    let live = with_uid(ap(None, &deploy(&json!({"replicas": 3})), "a").unwrap());
    let out = update(Some(&live), &live, "noop", "apps/v1", None, &Apps, T1);
    assert_eq!(out, live);
}

#[test]
fn removed_fields_leave_every_manager() {
    let live = with_uid(ap(None, &deploy(&json!({"replicas": 3, "paused": true})), "a").unwrap());
    let mut edited = live.clone();
    edited["spec"].as_object_mut().unwrap().remove("paused");
    let out = update(Some(&live), &edited, "editor", "apps/v1", None, &Apps, T1);
    assert_eq!(fields(&out, "a"), json!({"f:spec": {"f:replicas": {}}}));
    assert!(entry(&out, "editor").is_none());
}

#[test]
fn update_entries_are_per_manager_version_and_subresource() {
    let live = with_uid(ap(None, &deploy(&json!({"replicas": 3})), "a").unwrap());
    let mut v = live.clone();
    v["spec"]["paused"] = json!(true);
    let v1 = update(Some(&live), &v, "ctl", "apps/v1", None, &Apps, T1);
    let mut w = v1.clone();
    w["spec"]["minReadySeconds"] = json!(5);
    let v2 = update(Some(&v1), &w, "ctl", "apps/v1", None, &Apps, T2);
    let ctl: Vec<Value> = entries(&v2)
        .into_iter()
        .filter(|e| e["manager"] == "ctl")
        .collect();
    assert_eq!(ctl.len(), 1);
    assert_eq!(
        ctl[0]["fieldsV1"],
        json!({"f:spec": {"f:minReadySeconds": {}, "f:paused": {}}})
    );
    assert_eq!(ctl[0]["time"], T2);
    let mut s = v2.clone();
    s["status"] = json!({"replicas": 3});
    let v3 = update(Some(&v2), &s, "ctl", "apps/v1", Some("status"), &Apps, T2);
    let ctl: Vec<Value> = entries(&v3)
        .into_iter()
        .filter(|e| e["manager"] == "ctl")
        .collect();
    assert_eq!(ctl.len(), 2);
    assert_eq!(ctl[1]["subresource"], "status");
    assert_eq!(ctl[1]["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
}

#[test]
fn status_is_not_tracked_on_the_main_resource() {
    let mut config = deploy(&json!({"replicas": 1}));
    config["status"] = json!({"replicas": 1});
    let out = ap(None, &config, "a").unwrap();
    assert_eq!(fields(&out, "a"), json!({"f:spec": {"f:replicas": {}}}));
    let out = update(None, &config, "c", "apps/v1", None, &Apps, T0);
    assert_eq!(fields(&out, "c"), json!({"f:spec": {"f:replicas": {}}}));
}

#[test]
fn existing_untracked_object_stays_untracked_on_update() {
    let live = with_uid(deploy(&json!({"replicas": 1})));
    let mut edited = live.clone();
    edited["spec"]["replicas"] = json!(2);
    let out = update(Some(&live), &edited, "ctl", "apps/v1", None, &Apps, T1);
    assert!(out["metadata"].get("managedFields").is_none());
}

#[test]
fn first_apply_to_untracked_object_conflicts_with_before_first_apply() {
    let live = with_uid(deploy(&json!({"replicas": 1, "paused": true})));
    let c = conflicts(ap(Some(&live), &deploy(&json!({"replicas": 2})), "a"));
    assert_eq!(
        c[0].message,
        "conflict with \"before-first-apply\" using apps/v1"
    );
    let out = ap(Some(&live), &deploy(&json!({"replicas": 1})), "a").unwrap();
    assert_eq!(
        fields(&out, "before-first-apply"),
        json!({"f:spec": {"f:paused": {}, "f:replicas": {}}})
    );
}

#[test]
fn update_managers_are_capped_at_ten() {
    let mut live = with_uid(ap(None, &deploy(&json!({"replicas": 1})), "a").unwrap());
    for i in 0..12 {
        let mut next = live.clone();
        next["metadata"]["labels"] = {
            let mut l = live["metadata"]["labels"].clone();
            if l.is_null() {
                l = json!({});
            }
            l[format!("l{i}")] = json!("x");
            l
        };
        let now = format!("2025-01-01T00:00:{i:02}Z");
        live = update(
            Some(&live),
            &next,
            &format!("m{i:02}"),
            "apps/v1",
            None,
            &Apps,
            &now,
        );
    }
    let updates: Vec<Value> = entries(&live)
        .into_iter()
        .filter(|e| e["operation"] == "Update")
        .collect();
    assert_eq!(updates.len(), 10);
    let ancient = entry(&live, "ancient-changes").unwrap();
    let labels = ancient["fieldsV1"]["f:metadata"]["f:labels"]
        .as_object()
        .unwrap();
    assert!(
        ["f:l0", "f:l1", "f:l2"]
            .iter()
            .all(|k| labels.contains_key(*k)),
        "{live:#}"
    );
    assert!(!labels.contains_key("f:l3"));
    assert!(entry(&live, "m00").is_none() && entry(&live, "m03").is_some());
}

#[test]
fn entries_sort_apply_first_then_by_time() {
    let live = with_uid(ap(None, &deploy(&json!({"replicas": 1})), "z").unwrap());
    let mut v = live.clone();
    v["spec"]["paused"] = json!(true);
    let v = update(Some(&live), &v, "b", "apps/v1", None, &Apps, T2);
    let mut w = v.clone();
    w["spec"]["minReadySeconds"] = json!(1);
    let w = update(Some(&v), &w, "c", "apps/v1", None, &Apps, T1);
    let order: Vec<String> = entries(&w)
        .iter()
        .map(|e| e["manager"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(order, ["z", "c", "b"]);
}

// ---------------------------------------------------------------- managedFields from the request

#[test]
fn client_managed_fields_replace_the_live_ones() {
    let live = with_uid(update(
        None,
        &deploy(&json!({"replicas": 3})),
        "kubectl-client-side-apply",
        "apps/v1",
        None,
        &Apps,
        T0,
    ));
    // kubectl's csaupgrade: rename the Update entry into a kubectl Apply entry.
    let mut patched = live.clone();
    patched["metadata"]["managedFields"] = json!([{
        "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T0,
        "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]);
    let out = update(Some(&live), &patched, "kubectl", "apps/v1", None, &Apps, T1);
    assert_eq!(
        out["metadata"]["managedFields"],
        patched["metadata"]["managedFields"]
    );
    // And the next server-side apply by kubectl owns it without conflict.
    let next = ap(Some(&out), &deploy(&json!({"replicas": 4})), "kubectl").unwrap();
    assert_eq!(next["spec"]["replicas"], 4);
    assert_eq!(entries(&next).len(), 1);
}

#[test]
fn empty_managed_fields_clear_them() {
    let live = with_uid(ap(None, &deploy(&json!({"replicas": 3})), "a").unwrap());
    let mut cleared = live.clone();
    cleared["metadata"]["managedFields"] = json!([]);
    let out = update(Some(&live), &cleared, "ctl", "apps/v1", None, &Apps, T1);
    assert!(out["metadata"].get("managedFields").is_none());
    let mut cleared = live.clone();
    cleared["metadata"]["managedFields"] = json!([{}]);
    let out = update(Some(&live), &cleared, "ctl", "apps/v1", None, &Apps, T1);
    assert!(out["metadata"].get("managedFields").is_none());
}

#[test]
fn omitted_or_malformed_request_managed_fields_keep_the_live_ones() {
    let live = with_uid(ap(None, &deploy(&json!({"replicas": 3})), "a").unwrap());
    let mut omitted = live.clone();
    omitted["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    let out = update(Some(&live), &omitted, "ctl", "apps/v1", None, &Apps, T1);
    assert_eq!(
        out["metadata"]["managedFields"],
        live["metadata"]["managedFields"]
    );
    let mut bad = live.clone();
    bad["metadata"]["managedFields"] = json!([{"manager": "x", "operation": "Nope"}]);
    let out = update(Some(&live), &bad, "ctl", "apps/v1", None, &Apps, T1);
    assert_eq!(
        out["metadata"]["managedFields"],
        live["metadata"]["managedFields"]
    );
}

#[test]
fn subresource_writes_ignore_request_managed_fields() {
    let live = with_uid(ap(None, &deploy(&json!({"replicas": 3})), "a").unwrap());
    let mut s = live.clone();
    s["metadata"]["managedFields"] = json!([]);
    let out = update(Some(&live), &s, "ctl", "apps/v1", Some("status"), &Apps, T1);
    assert_eq!(
        out["metadata"]["managedFields"],
        live["metadata"]["managedFields"]
    );
}

// ---------------------------------------------------------------- kubectl last-applied

#[test]
fn kubectl_conflicts_on_unchanged_last_applied_fields_are_forced() {
    let config = deploy(&json!({"replicas": 3}));
    let mut live = update(
        None,
        &config,
        "kubectl-client-side-apply",
        "apps/v1",
        None,
        &Apps,
        T0,
    );
    let last = gojson::to_string(&config);
    live["metadata"]["annotations"] = json!({LAST_APPLIED: format!("{last}\n")});
    let live = with_uid(live);
    let new_config = deploy(&json!({"replicas": 5}));
    let out = ap(Some(&live), &new_config, "kubectl").unwrap();
    assert_eq!(out["spec"]["replicas"], 5);
    assert!(entry(&out, "kubectl-client-side-apply").is_none());
    // The annotation is rewritten from the applied config.
    let ann = out["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .unwrap();
    let parsed: Value = serde_json::from_str(ann).unwrap();
    assert_eq!(parsed["spec"]["replicas"], 5);
    assert!(ann.ends_with('\n'));
    // Other managers still conflict.
    assert!(matches!(
        ap(Some(&live), &new_config, "other"),
        Err(ApplyError::Conflicts(_))
    ));
}

// ---------------------------------------------------------------- malformed input

#[test]
fn malformed_input_is_invalid_never_a_panic() {
    let invalid = |r: Result<Value, ApplyError>| {
        assert!(matches!(r, Err(ApplyError::Invalid(_))), "{r:?}");
    };
    invalid(ap(None, &json!([1, 2]), "a"));
    invalid(ap(None, &json!("x"), "a"));
    invalid(ap(None, &deploy(&json!({})), ""));
    invalid(ap(None, &containers(&json!([{"image": "nginx"}])), "a"));
    invalid(ap(None, &containers(&json!(["web"])), "a"));
    invalid(ap(None, &containers(&json!([null])), "a"));
    invalid(ap(
        None,
        &containers(&json!([{"name": "w"}, {"name": "w"}])),
        "a",
    ));
    let mut with_mf = deploy(&json!({}));
    with_mf["metadata"]["managedFields"] = json!([]);
    invalid(ap(None, &with_mf, "a"));
    let mut other_version = deploy(&json!({}));
    other_version["apiVersion"] = json!("apps/v1beta1");
    let err = ap(None, &other_version, "a").unwrap_err();
    assert_eq!(
        err.to_string(),
        "Incorrect version specified in apply patch. Specified patch version: apps/v1beta1, expected: apps/v1"
    );
    let fin = json!({"apiVersion": "apps/v1", "metadata": {"finalizers": [{"a": 1}]}});
    invalid(ap(None, &fin, "a"));
    let fin = json!({"apiVersion": "apps/v1", "metadata": {"finalizers": ["a", "a"]}});
    invalid(ap(None, &fin, "a"));
    let msg = ap(None, &containers(&json!([{"image": "nginx"}])), "a")
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        ".spec.template.spec.containers: element 0: associative list with keys has an element that omits all key fields [\"name\"] (and doesn't have default values for any key fields)"
    );
    // Undecodable live managedFields.
    let mut live = deploy(&json!({}));
    live["metadata"]["managedFields"] = json!([{"manager": "x", "operation": "Apply",
        "apiVersion": "v1", "fieldsType": "FieldsV2"}]);
    invalid(ap(Some(&live), &deploy(&json!({})), "a"));
}

#[test]
fn update_never_panics_on_odd_input() {
    let odd = [
        json!(null),
        json!([1]),
        json!({"metadata": 3}),
        json!({"metadata": {"managedFields": 5}}),
    ];
    for old in &odd {
        for new in &odd {
            let _ = update(Some(old), new, "m", "v1", None, &Apps, T0);
            let _ = update(None, new, "m", "v1", Some("status"), &Apps, T0);
        }
    }
    // Live list items that cannot be keyed: tracking fails, previous managedFields kept.
    let live = with_uid(ap(None, &deploy(&json!({"replicas": 1})), "a").unwrap());
    let mut bad = live.clone();
    bad["spec"]["template"] = json!({"spec": {"containers": [{"image": "x"}]}});
    let out = update(Some(&live), &bad, "m", "apps/v1", None, &Apps, T1);
    assert_eq!(
        out["metadata"]["managedFields"],
        live["metadata"]["managedFields"]
    );
    assert_eq!(out["spec"]["template"], bad["spec"]["template"]);
}

#[test]
fn type_changes_are_compared_without_panicking() {
    let live = ap(None, &deploy(&json!({"template": {"a": 1}})), "a").unwrap();
    let out = ap_force(&live, &deploy(&json!({"template": "scalar"})), "b");
    assert_eq!(out["spec"]["template"], "scalar");
    assert!(entry(&out, "a").is_none());
}

// ---------------------------------------------------------------- user agent

#[test]
fn manager_from_user_agent_takes_the_first_token() {
    assert_eq!(
        manager_from_user_agent("kubectl/v1.32.4 (linux/amd64) kubernetes/59526cd"),
        "kubectl"
    );
    assert_eq!(
        manager_from_user_agent("kubectl-client-side-apply/v1.32.4 (linux/amd64)"),
        "kubectl-client-side-apply"
    );
    assert_eq!(
        manager_from_user_agent(
            "kube-controller-manager/v1.32.0 (linux/amd64) kubernetes/abc/system:serviceaccount:kube-system:deployment-controller"
        ),
        "kube-controller-manager"
    );
    assert_eq!(
        manager_from_user_agent("Go-http-client/1.1"),
        "Go-http-client"
    );
    assert_eq!(manager_from_user_agent("a\u{7}b\tc"), "abc");
    assert_eq!(manager_from_user_agent(&"x".repeat(300)).len(), 128);
    assert_eq!(manager_from_user_agent(""), "");
}

#[test]
fn csa_to_ssa_migration_end_to_end() {
    // kubectl apply (client-side) creates with the annotation, as kubectl-client-side-apply.
    let config = deploy(&json!({"replicas": 3, "paused": true}));
    let mut created = config.clone();
    let last = gojson::to_string(&config);
    created["metadata"]["annotations"] = json!({LAST_APPLIED: format!("{last}\n")});
    let live = with_uid(update(
        None,
        &created,
        &manager_from_user_agent("kubectl-client-side-apply/v1.32.4 (linux/amd64)"),
        "apps/v1",
        None,
        &Apps,
        T0,
    ));
    assert!(
        fields(&live, "kubectl-client-side-apply")["f:metadata"]["f:annotations"]
            .get(format!("f:{LAST_APPLIED}"))
            .is_some()
    );
    // kubectl apply --server-side: csaupgrade renames the entry (JSON patch)...
    let mut patched = live.clone();
    let mut entry0 = entries(&live)[0].clone();
    entry0["manager"] = json!("kubectl");
    entry0["operation"] = json!("Apply");
    patched["metadata"]["managedFields"] = json!([entry0]);
    let upgraded = update(Some(&live), &patched, "kubectl", "apps/v1", None, &Apps, T1);
    assert_eq!(entries(&upgraded).len(), 1);
    // ...then applies: dropped fields are pruned, the annotation with them, no conflicts.
    let out = ap(Some(&upgraded), &deploy(&json!({"replicas": 4})), "kubectl").unwrap();
    assert_eq!(out["spec"]["replicas"], 4);
    assert!(out["spec"].get("paused").is_none());
    assert!(out["metadata"].get("annotations").is_none(), "{out:#}");
    assert_eq!(
        fields(&out, "kubectl"),
        json!({"f:spec": {"f:replicas": {}}})
    );
}
