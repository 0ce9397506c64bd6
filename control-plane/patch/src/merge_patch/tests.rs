use serde_json::json;

use crate::merge_patch;

/// RFC 7386 appendix A, every row.
#[test]
fn rfc7386_appendix_a() {
    let cases = [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (
            json!({"a": "b", "b": "c"}),
            json!({"a": null}),
            json!({"b": "c"}),
        ),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
        (
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        ),
        (
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        ),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a": "b"}), json!(["c"]), json!(["c"])),
        (json!({"a": "foo"}), json!(null), json!(null)),
        (json!({"a": "foo"}), json!("bar"), json!("bar")),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (
            json!([1, 2]),
            json!({"a": "b", "c": null}),
            json!({"a": "b"}),
        ),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
    ];
    for (doc, patch, want) in cases {
        assert_eq!(merge_patch(&doc, &patch), want, "doc {doc} patch {patch}");
    }
}

#[test]
fn rfc7386_section3_example() {
    let doc = json!({
        "title": "Goodbye!",
        "author": {"givenName": "John", "familyName": "Doe"},
        "tags": ["example", "sample"],
        "content": "This will be unchanged"
    });
    let patch = json!({
        "title": "Hello!",
        "phoneNumber": "+01-123-456-7890",
        "author": {"familyName": null},
        "tags": ["example"]
    });
    let want = json!({
        "title": "Hello!",
        "author": {"givenName": "John"},
        "tags": ["example"],
        "content": "This will be unchanged",
        "phoneNumber": "+01-123-456-7890"
    });
    assert_eq!(merge_patch(&doc, &patch), want);
}

#[test]
fn kubectl_label_annotate_and_scale_shapes() {
    let doc = json!({"metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"}}, "spec": {"replicas": 1}});
    let out = merge_patch(
        &doc,
        &json!({"metadata": {"labels": {"tier": null, "env": "prod"}, "annotations": {"note": "x"}}}),
    );
    assert_eq!(
        out,
        json!({"metadata": {"name": "web", "labels": {"app": "web", "env": "prod"}, "annotations": {"note": "x"}}, "spec": {"replicas": 1}})
    );
    let out = merge_patch(&out, &json!({"spec": {"replicas": 3}}));
    assert_eq!(out["spec"]["replicas"], 3);
}

#[test]
fn input_untouched_and_key_order_kept() {
    let doc = json!({"a": 1, "b": 2, "c": 3});
    let out = merge_patch(&doc, &json!({"a": null}));
    assert_eq!(doc, json!({"a": 1, "b": 2, "c": 3}));
    let keys: Vec<&String> = out
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["b", "c"]);
}
