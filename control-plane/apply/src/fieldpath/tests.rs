use serde_json::json;

use super::*;

fn f(name: &str) -> PathElement {
    PathElement::Field(name.to_owned())
}

#[test]
fn fields_v1_round_trip_with_dot() {
    let v = json!({
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}},
    });
    let set = Set::from_fields_v1(&v).unwrap();
    assert!(set.has(&[f("metadata"), f("labels")]));
    assert!(set.has(&[f("metadata"), f("labels"), f("app")]));
    assert!(!set.has(&[f("metadata")]));
    assert_eq!(set.to_fields_v1(), v);
}

#[test]
fn serialization_orders_fields_keys_values() {
    let mut set = Set::new();
    set.insert(&[f("b")]);
    set.insert(&[f("a"), PathElement::Value(json!("x"))]);
    set.insert(&[f("a"), PathElement::Value(json!(2))]);
    set.insert(&[f("a"), PathElement::Value(json!(1.5))]);
    set.insert(&[f("a"), f("z")]);
    let out = serde_json::to_string(&set.to_fields_v1()).unwrap();
    assert_eq!(
        out,
        r#"{"f:a":{"f:z":{},"v:1.5":{},"v:2":{},"v:\"x\"":{}},"f:b":{}}"#
    );
}

#[test]
fn key_elements_sort_and_escape_as_go() {
    let pe = PathElement::Key(vec![
        ("containerPort".into(), json!(80)),
        ("protocol".into(), json!("TCP")),
    ]);
    assert_eq!(pe.serialize(), r#"k:{"containerPort":80,"protocol":"TCP"}"#);
    assert_eq!(pe.to_string(), r#"[containerPort=80,protocol="TCP"]"#);
    let pe = PathElement::deserialize(r#"k:{"protocol":"TCP","containerPort":80}"#)
        .unwrap()
        .unwrap();
    assert_eq!(pe.serialize(), r#"k:{"containerPort":80,"protocol":"TCP"}"#);
    let pe = PathElement::Value(json!("<a&b>"));
    assert_eq!(pe.serialize(), r#"v:"\u003ca\u0026b\u003e""#);
}

#[test]
fn unknown_elements_are_dropped_and_bad_ones_fail() {
    let set = Set::from_fields_v1(&json!({"x:foo": {}, "f:a": {}})).unwrap();
    assert_eq!(set.to_fields_v1(), json!({"f:a": {}}));
    assert!(Set::from_fields_v1(&json!({"k:[1]": {}})).is_err());
    assert!(Set::from_fields_v1(&json!({"f": {}})).is_err());
    assert!(Set::from_fields_v1(&json!({"i:x": {}})).is_err());
    assert!(Set::from_fields_v1(&json!({"f:a": 3})).is_err());
    assert!(Set::from_fields_v1(&json!([])).is_err());
}

#[test]
fn difference_is_leafwise_and_recursive_difference_prunes() {
    let mut a = Set::new();
    a.insert(&[f("spec"), f("x")]);
    a.insert(&[f("spec")]);
    let mut b = Set::new();
    b.insert(&[f("spec")]);
    let d = a.difference(&b);
    assert!(d.has(&[f("spec"), f("x")]));
    assert!(!d.has(&[f("spec")]));
    assert!(a.recursive_difference(&b).is_empty());
}

#[test]
fn paths_iterate_members_then_children() {
    let mut s = Set::new();
    s.insert(&[f("spec"), f("template"), f("x")]);
    s.insert(&[f("spec"), f("replicas")]);
    let strs: Vec<String> = s.paths().iter().map(|p| path_to_string(p)).collect();
    assert_eq!(strs, vec![".spec.replicas", ".spec.template.x"]);
}

#[test]
fn value_to_string_like_upstream() {
    assert_eq!(value_to_string(&json!({"b": 1, "a": "x"})), r#"a="x"b=1"#);
    assert_eq!(
        value_to_string(&json!([1.5, 1e6, null, true])),
        "[1.5,1e+06,null,true]"
    );
}

#[test]
fn value_order_matches_upstream() {
    use std::cmp::Ordering::*;
    assert_eq!(compare_values(&json!(1.5), &json!(1)), Greater);
    assert_eq!(compare_values(&json!(1), &json!(1.0)), Equal);
    assert_eq!(compare_values(&json!(9), &json!("a")), Less);
    assert_eq!(compare_values(&json!("a"), &json!(true)), Less);
    assert_eq!(compare_values(&json!(null), &json!({})), Greater);
    assert!(values_equal(
        &json!({"a": 1, "b": 2}),
        &json!({"b": 2, "a": 1})
    ));
}
