#![allow(
    clippy::needless_pass_by_value,
    reason = "helpers take `json!` literals by value so each case reads as input -> output"
)]

use serde_json::{Value, json};

use crate::{PatchError, json_patch};

fn ok(doc: Value, patch: Value) -> Value {
    match json_patch(&doc, &patch) {
        Ok(v) => v,
        Err(e) => panic!("patch {patch} on {doc} failed: {e}"),
    }
}

fn err(doc: Value, patch: Value) -> PatchError {
    match json_patch(&doc, &patch) {
        Ok(v) => panic!("patch {patch} on {doc} should fail, got {v}"),
        Err(e) => e,
    }
}

// RFC 6902 appendix A.

#[test]
fn a1_add_object_member() {
    let out = ok(
        json!({"foo": "bar"}),
        json!([{"op": "add", "path": "/baz", "value": "qux"}]),
    );
    assert_eq!(out, json!({"baz": "qux", "foo": "bar"}));
}

#[test]
fn a2_add_array_element() {
    let out = ok(
        json!({"foo": ["bar", "baz"]}),
        json!([{"op": "add", "path": "/foo/1", "value": "qux"}]),
    );
    assert_eq!(out, json!({"foo": ["bar", "qux", "baz"]}));
}

#[test]
fn a3_remove_object_member() {
    let out = ok(
        json!({"baz": "qux", "foo": "bar"}),
        json!([{"op": "remove", "path": "/baz"}]),
    );
    assert_eq!(out, json!({"foo": "bar"}));
}

#[test]
fn a4_remove_array_element() {
    let out = ok(
        json!({"foo": ["bar", "qux", "baz"]}),
        json!([{"op": "remove", "path": "/foo/1"}]),
    );
    assert_eq!(out, json!({"foo": ["bar", "baz"]}));
}

#[test]
fn a5_replace() {
    let out = ok(
        json!({"baz": "qux", "foo": "bar"}),
        json!([{"op": "replace", "path": "/baz", "value": "boo"}]),
    );
    assert_eq!(out, json!({"baz": "boo", "foo": "bar"}));
}

#[test]
fn a6_move_value() {
    let doc = json!({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}});
    let out = ok(
        doc,
        json!([{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]),
    );
    assert_eq!(
        out,
        json!({"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}})
    );
}

#[test]
fn a7_move_array_element() {
    let doc = json!({"foo": ["all", "grass", "cows", "eat"]});
    let out = ok(
        doc,
        json!([{"op": "move", "from": "/foo/1", "path": "/foo/3"}]),
    );
    assert_eq!(out, json!({"foo": ["all", "cows", "eat", "grass"]}));
}

#[test]
fn a8_a9_test_success_and_failure() {
    let doc = json!({"baz": "qux", "foo": ["a", 2, "c"]});
    let patch = json!([
        {"op": "test", "path": "/baz", "value": "qux"},
        {"op": "test", "path": "/foo/1", "value": 2}
    ]);
    assert_eq!(ok(doc.clone(), patch), doc);
    let e = err(
        json!({"baz": "qux"}),
        json!([{"op": "test", "path": "/baz", "value": "bar"}]),
    );
    assert_eq!(
        e,
        PatchError::TestFailed {
            index: 0,
            path: "/baz".into()
        }
    );
}

#[test]
fn a10_add_nested_member() {
    let out = ok(
        json!({"foo": "bar"}),
        json!([{"op": "add", "path": "/child", "value": {"grandchild": {}}}]),
    );
    assert_eq!(out, json!({"foo": "bar", "child": {"grandchild": {}}}));
}

#[test]
fn a11_ignores_unrecognized_members() {
    let out = ok(
        json!({"foo": "bar"}),
        json!([{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}]),
    );
    assert_eq!(out, json!({"foo": "bar", "baz": "qux"}));
}

#[test]
fn a12_add_to_nonexistent_target() {
    let e = err(
        json!({"foo": "bar"}),
        json!([{"op": "add", "path": "/baz/bat", "value": "qux"}]),
    );
    assert!(
        matches!(e, PatchError::PathNotFound { index: 0, .. }),
        "{e}"
    );
}

#[test]
fn a14_escape_ordering() {
    let doc = json!({"/": 9, "~1": 10});
    let out = ok(
        doc,
        json!([{"op": "test", "path": "/~01", "value": 10}, {"op": "add", "path": "/~1x", "value": 1}]),
    );
    assert_eq!(out, json!({"/": 9, "~1": 10, "/x": 1}));
}

#[test]
fn a15_string_not_equal_number() {
    let e = err(
        json!({"/": 9, "~1": 10}),
        json!([{"op": "test", "path": "/~01", "value": "10"}]),
    );
    assert!(matches!(e, PatchError::TestFailed { .. }));
}

#[test]
fn a16_add_array_value_and_append() {
    let out = ok(
        json!({"foo": ["bar"]}),
        json!([{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]),
    );
    assert_eq!(out, json!({"foo": ["bar", ["abc", "def"]]}));
}

// Further behaviour and errors.

#[test]
fn add_replaces_existing_member_and_whole_document() {
    assert_eq!(
        ok(
            json!({"a": 1}),
            json!([{"op": "add", "path": "/a", "value": 2}])
        ),
        json!({"a": 2})
    );
    assert_eq!(
        ok(
            json!({"a": 1}),
            json!([{"op": "add", "path": "", "value": [1]}])
        ),
        json!([1])
    );
    assert_eq!(
        ok(
            json!({"a": 1}),
            json!([{"op": "replace", "path": "", "value": 3}])
        ),
        json!(3)
    );
}

#[test]
fn add_null_value_is_a_value() {
    assert_eq!(
        ok(
            json!({}),
            json!([{"op": "add", "path": "/a", "value": null}])
        ),
        json!({"a": null})
    );
}

#[test]
fn add_at_end_index_allowed_past_end_not() {
    assert_eq!(
        ok(json!([1]), json!([{"op": "add", "path": "/1", "value": 2}])),
        json!([1, 2])
    );
    let e = err(json!([1]), json!([{"op": "add", "path": "/2", "value": 2}]));
    assert!(matches!(e, PatchError::PathNotFound { .. }));
}

#[test]
fn bad_array_indexes() {
    for path in ["/01", "/-1", "/x", "/", "/1.0"] {
        let e = err(
            json!([1, 2]),
            json!([{"op": "replace", "path": path, "value": 0}]),
        );
        assert!(matches!(e, PatchError::PathNotFound { .. }), "{path}: {e}");
    }
    let e = err(json!([1, 2]), json!([{"op": "remove", "path": "/-"}]));
    assert!(matches!(e, PatchError::PathNotFound { .. }));
}

#[test]
fn remove_and_replace_missing_fail() {
    let e = err(json!({"a": 1}), json!([{"op": "remove", "path": "/b"}]));
    assert_eq!(
        e,
        PatchError::PathNotFound {
            index: 0,
            op: "remove".into(),
            path: "/b".into()
        }
    );
    let e = err(
        json!({"a": 1}),
        json!([{"op": "replace", "path": "/b", "value": 1}]),
    );
    assert!(matches!(e, PatchError::PathNotFound { .. }));
    let e = err(json!({"a": 1}), json!([{"op": "remove", "path": ""}]));
    assert!(matches!(e, PatchError::InvalidOperation { .. }));
}

#[test]
fn copy_and_move() {
    let out = ok(
        json!({"a": {"x": 1}}),
        json!([{"op": "copy", "from": "/a", "path": "/b"}]),
    );
    assert_eq!(out, json!({"a": {"x": 1}, "b": {"x": 1}}));
    let out = ok(
        json!({"a": [1, 2]}),
        json!([{"op": "copy", "from": "/a/0", "path": "/a/-"}]),
    );
    assert_eq!(out, json!({"a": [1, 2, 1]}));
    let e = err(
        json!({"a": {"x": 1}}),
        json!([{"op": "move", "from": "/a", "path": "/a/x/y"}]),
    );
    assert!(matches!(e, PatchError::InvalidOperation { .. }));
    let e = err(
        json!({}),
        json!([{"op": "copy", "from": "/nope", "path": "/b"}]),
    );
    assert!(matches!(e, PatchError::PathNotFound { .. }));
    assert_eq!(
        ok(
            json!({"a": 1}),
            json!([{"op": "move", "from": "/a", "path": "/a"}])
        ),
        json!({"a": 1})
    );
}

#[test]
fn test_compares_numbers_by_value_and_objects_unordered() {
    let doc = json!({"n": 1, "o": {"a": 1, "b": 2}});
    let patch = json!([
        {"op": "test", "path": "/n", "value": 1.0},
        {"op": "test", "path": "/o", "value": {"b": 2, "a": 1}}
    ]);
    assert_eq!(ok(doc.clone(), patch), doc);
}

#[test]
fn malformed_operations() {
    let cases = [
        json!([{"path": "/a"}]),
        json!([{"op": "frob", "path": "/a"}]),
        json!([{"op": 1, "path": "/a"}]),
        json!([{"op": "add", "value": 1}]),
        json!([{"op": "add", "path": "/a"}]),
        json!([{"op": "add", "path": "a", "value": 1}]),
        json!([{"op": "add", "path": "/a~2", "value": 1}]),
        json!([{"op": "move", "path": "/a"}]),
        json!([{"op": "test", "path": "/a"}]),
        json!(["add"]),
    ];
    for patch in cases {
        let e = err(json!({"a": 1}), patch.clone());
        assert!(
            matches!(e, PatchError::InvalidOperation { index: 0, .. }),
            "{patch}: {e}"
        );
    }
    assert_eq!(
        err(json!({}), json!({"op": "add"})),
        PatchError::JsonPatchNotArray
    );
}

#[test]
fn atomic_on_failure() {
    let doc = json!({"a": 1});
    let patch = json!([{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/zzz"}]);
    let e = err(doc.clone(), patch);
    assert!(matches!(e, PatchError::PathNotFound { index: 1, .. }));
    assert_eq!(doc, json!({"a": 1}));
}

#[test]
fn kubectl_patch_type_json_shapes() {
    let pod = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}});
    let out = ok(
        pod,
        json!([
            {"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:2"},
            {"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "web"},
            {"op": "remove", "path": "/metadata/labels/app"}
        ]),
    );
    assert_eq!(
        out,
        json!({"metadata": {"labels": {"app.kubernetes.io/name": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:2"}]}})
    );
}

#[test]
fn odd_shapes_never_panic() {
    let docs = [
        json!(null),
        json!(1),
        json!("s"),
        json!([]),
        json!({}),
        json!({"a": [1, {"b": null}]}),
    ];
    let paths = [
        "", "/", "/a", "/a/0", "/a/1/b", "/a/-", "/0", "/-", "/~", "x",
    ];
    let ops = ["add", "remove", "replace", "move", "copy", "test"];
    for doc in &docs {
        for path in paths {
            for op in ops {
                let patch = json!([{"op": op, "path": path, "from": "/a", "value": {"z": 1}}]);
                let _ = json_patch(doc, &patch);
            }
        }
    }
}
