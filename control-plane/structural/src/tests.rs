//! Unit tests over a CronTab-like CRD schema.

use crate::{FieldError, Schema, json_path, reason};
use serde_json::{Value, json};

const PREFIX: &str = "spec.versions[0].schema.openAPIV3Schema";
const CRON_PATTERN: &str = r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$";

fn crontab() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["cronSpec"],
                "properties": {
                    "cronSpec": {"type": "string", "pattern": CRON_PATTERN},
                    "image": {"type": "string"},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
                    "mode": {"type": "string", "enum": ["a", "b"]},
                    "port": {"x-kubernetes-int-or-string": true},
                    "note": {"type": "string", "nullable": true},
                    "when": {"type": "string", "format": "date-time"},
                    "ratio": {"type": "number", "multipleOf": 0.5, "exclusiveMaximum": true, "maximum": 2},
                    "items": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": {"type": "string", "maxLength": 5, "minLength": 1}}
                        }
                    },
                    "tags": {
                        "type": "array",
                        "maxItems": 3,
                        "minItems": 1,
                        "x-kubernetes-list-type": "set",
                        "items": {"type": "string"}
                    },
                    "ports": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}
                        }
                    },
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": true,
                        "x-kubernetes-preserve-unknown-fields": true
                    },
                    "labels": {"type": "object", "maxProperties": 2, "additionalProperties": {"type": "string"}}
                },
                "x-kubernetes-validations": [{"rule": "self.replicas <= 10", "message": "too many"}]
            },
            "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}
        }
    })
}

fn schema() -> Schema {
    Schema::parse(&crontab(), PREFIX).unwrap_or_else(|e| panic!("crontab schema refused: {e:?}"))
}

fn valid_object() -> Value {
    json!({
        "apiVersion": "stable.example.com/v1",
        "kind": "CronTab",
        "metadata": {"name": "my-new-cron-object"},
        "spec": {
            "cronSpec": "* * * * */5",
            "image": "my-awesome-cron-image",
            "replicas": 3,
            "mode": "a",
            "port": "http",
            "note": null,
            "when": "2024-01-02T03:04:05Z",
            "ratio": 1.5,
            "items": [{"name": "a"}, {"name": "bb"}],
            "tags": ["x", "y"],
            "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}],
            "extra": {"anything": {"goes": [1, 2]}},
            "template": {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": []}},
            "labels": {"a": "b"}
        },
        "status": {"replicas": 3}
    })
}

fn with_spec(field: &str, v: Value) -> Value {
    let mut o = valid_object();
    o["spec"][field] = v;
    o
}

fn one_error(obj: &Value) -> FieldError {
    let errs = schema().validate(obj);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    errs.into_iter().next().unwrap_or_else(|| unreachable!())
}

fn assert_error(e: &FieldError, reason: &str, field: &str, message: &str) {
    assert_eq!(
        (e.reason, e.field.as_str(), e.message.as_str()),
        (reason, field, message),
        "full error: {e}"
    );
}

#[test]
fn valid_object_passes() {
    assert_eq!(schema().validate(&valid_object()), vec![]);
}

#[test]
fn wrong_type() {
    let e = one_error(&with_spec("replicas", json!("string")));
    assert_error(
        &e,
        reason::TYPE_INVALID,
        "spec.replicas",
        r#"Invalid value: "string": spec.replicas in body must be of type integer: "string""#,
    );
    assert_eq!(
        e.to_string(),
        r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
    );
    // upstream also reports the failed int64 range check, at the root
    let errs = schema().validate(&with_spec("replicas", json!(1.5)));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_error(
        &errs[0],
        reason::TYPE_INVALID,
        "spec.replicas",
        r#"Invalid value: "number": spec.replicas in body must be of type integer: "number""#,
    );
    assert_error(
        &errs[1],
        reason::INVALID,
        "<nil>",
        r#"Invalid value: "": Checked value must be of type integer (default format) in spec.replicas"#,
    );
    // a whole float is an integer
    assert_eq!(
        schema().validate(&with_spec("replicas", json!(3.0))),
        vec![]
    );
}

#[test]
fn bounds() {
    assert_error(
        &one_error(&with_spec("replicas", json!(11))),
        reason::INVALID,
        "spec.replicas",
        "Invalid value: 11: spec.replicas in body should be less than or equal to 10",
    );
    assert_error(
        &one_error(&with_spec("replicas", json!(0))),
        reason::INVALID,
        "spec.replicas",
        "Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
    );
    assert_error(
        &one_error(&with_spec("ratio", json!(2.0))),
        reason::INVALID,
        "spec.ratio",
        "Invalid value: 2: spec.ratio in body should be less than 2",
    );
    assert_error(
        &one_error(&with_spec("ratio", json!(0.3))),
        reason::INVALID,
        "spec.ratio",
        "Invalid value: 0.3: spec.ratio in body should be a multiple of 0.5",
    );
}

#[test]
fn pattern_and_required() {
    assert_error(
        &one_error(&with_spec("cronSpec", json!("bad"))),
        reason::INVALID,
        "spec.cronSpec",
        &format!(r#"Invalid value: "bad": spec.cronSpec in body should match '{CRON_PATTERN}'"#),
    );
    let mut o = valid_object();
    o["spec"].as_object_mut().map(|m| m.remove("cronSpec"));
    assert_error(
        &one_error(&o),
        reason::REQUIRED,
        "spec.cronSpec",
        "Required value",
    );
}

#[test]
fn enum_and_format() {
    assert_error(
        &one_error(&with_spec("mode", json!("c"))),
        reason::NOT_SUPPORTED,
        "spec.mode",
        r#"Unsupported value: "c": supported values: "a", "b""#,
    );
    assert_error(
        &one_error(&with_spec("when", json!("yesterday"))),
        reason::TYPE_INVALID,
        "spec.when",
        r#"Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday""#,
    );
}

#[test]
fn arrays() {
    let e = one_error(&with_spec(
        "items",
        json!([{"name": "a"}, {"name": "toolong"}]),
    ));
    assert_error(
        &e,
        reason::TOO_LONG,
        "spec.items[1].name",
        "Too long: may not be more than 5 bytes",
    );
    let e = one_error(&with_spec("items", json!([{}])));
    assert_error(&e, reason::REQUIRED, "spec.items[0].name", "Required value");
    let e = one_error(&with_spec("items", json!([{"name": ""}])));
    assert_error(
        &e,
        reason::INVALID,
        "spec.items[0].name",
        r#"Invalid value: "": spec.items[0].name in body should be at least 1 chars long"#,
    );
    let e = one_error(&with_spec("tags", json!(["a", "b", "c", "d"])));
    assert_error(
        &e,
        reason::TOO_MANY,
        "spec.tags",
        "Too many: 4: must have at most 3 items",
    );
    let e = one_error(&with_spec("tags", json!([])));
    assert_error(
        &e,
        reason::INVALID,
        "spec.tags",
        "Invalid value: 0: spec.tags in body should have at least 1 items",
    );
}

#[test]
fn list_type_set_and_map() {
    let e = one_error(&with_spec("tags", json!(["a", "a", "b"])));
    assert_error(
        &e,
        reason::DUPLICATE,
        "spec.tags[1]",
        r#"Duplicate value: "a""#,
    );
    let e = one_error(&with_spec(
        "ports",
        json!([{"name": "http", "port": 1}, {"name": "http", "port": 2}]),
    ));
    assert_error(
        &e,
        reason::DUPLICATE,
        "spec.ports[1]",
        r#"Duplicate value: {"name":"http"}"#,
    );
    // both the item type and the list-map shape are wrong
    let errs = schema().validate(&with_spec("ports", json!([{"name": "x"}, 5])));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_error(
        &errs[0],
        reason::TYPE_INVALID,
        "spec.ports[1]",
        r#"Invalid value: "integer": spec.ports[1] in body must be of type object: "integer""#,
    );
    assert_error(
        &errs[1],
        reason::INVALID,
        "spec.ports[1]",
        "Invalid value: 5: must be an object for an array of list-type map",
    );
}

#[test]
fn int_or_string() {
    assert_eq!(schema().validate(&with_spec("port", json!(8080))), vec![]);
    assert_eq!(schema().validate(&with_spec("port", json!("http"))), vec![]);
    assert_error(
        &one_error(&with_spec("port", json!(true))),
        reason::TYPE_INVALID,
        "spec.port",
        r#"Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#,
    );
}

#[test]
fn nullable() {
    assert_eq!(schema().validate(&with_spec("note", Value::Null)), vec![]);
    assert_error(
        &one_error(&with_spec("image", Value::Null)),
        reason::TYPE_INVALID,
        "spec.image",
        r#"Invalid value: "null": spec.image in body must be of type string: "null""#,
    );
    // pruning drops a non-nullable null without default, keeps a nullable one
    let mut o = with_spec("image", Value::Null);
    schema().prune(&mut o);
    assert!(o["spec"].get("image").is_none());
    assert!(o["spec"].get("note").is_some_and(Value::is_null));
    assert_eq!(schema().validate(&o), vec![]);
}

#[test]
fn embedded_resource() {
    let errs = schema().validate(&with_spec("template", json!({"spec": {}})));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_error(
        &errs[0],
        reason::REQUIRED,
        "spec.template.apiVersion",
        "Required value",
    );
    assert_error(
        &errs[1],
        reason::REQUIRED,
        "spec.template.kind",
        "Required value",
    );
    let e = one_error(&with_spec(
        "template",
        json!({"apiVersion": "a/b/c", "kind": "Pod"}),
    ));
    assert_error(
        &e,
        reason::INVALID,
        "spec.template.apiVersion",
        r#"Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c"#,
    );
}

#[test]
fn additional_properties_and_max_properties() {
    let e = one_error(&with_spec("labels", json!({"a": "b", "c": 1})));
    assert_error(
        &e,
        reason::TYPE_INVALID,
        "spec.labels.c",
        r#"Invalid value: "integer": spec.labels.c in body must be of type string: "integer""#,
    );
    let e = one_error(&with_spec("labels", json!({"a": "1", "b": "2", "c": "3"})));
    assert_error(
        &e,
        reason::TOO_MANY,
        "spec.labels",
        "Too many: 3: must have at most 2 items",
    );
}

#[test]
fn prune_unknown_fields() {
    let mut o = valid_object();
    o["bogus"] = json!(1);
    o["metadata"]["unknownMeta"] = json!("kept: metadata is the API server's");
    o["spec"]["nope"] = json!({"deep": true});
    o["spec"]["items"][1]["extra"] = json!("x");
    o["spec"]["extra"]["free"] = json!("kept");
    o["spec"]["template"]["metadata"] = json!({"name": "t", "whatever": 1});
    o["spec"]["labels"]["z"] = json!("kept");
    o["status"]["ghost"] = json!([1]);
    let pruned = schema().prune(&mut o);
    assert_eq!(
        pruned,
        vec!["bogus", "spec.items[1].extra", "spec.nope", "status.ghost"]
    );
    assert_eq!(
        o["metadata"]["unknownMeta"],
        json!("kept: metadata is the API server's")
    );
    assert_eq!(o["spec"]["extra"]["free"], json!("kept"));
    assert_eq!(o["spec"]["template"]["metadata"]["whatever"], json!(1));
    assert_eq!(o["spec"]["labels"]["z"], json!("kept"));
    assert_eq!(o["apiVersion"], json!("stable.example.com/v1"));
    let mut clean = valid_object();
    assert_eq!(schema().prune(&mut clean), Vec::<String>::new());
    assert_eq!(clean, valid_object());
}

#[test]
fn prune_inside_preserved_subtree_with_properties() {
    let s = Schema::parse(
        &json!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}
        }),
        "",
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let mut o = json!({"free": 1, "spec": {"a": "x", "b": "pruned"}});
    assert_eq!(s.prune(&mut o), vec!["spec.b"]);
    assert_eq!(o, json!({"free": 1, "spec": {"a": "x"}}));
}

#[test]
fn defaults() {
    let s = Schema::parse(
        &json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "default": {},
                    "properties": {
                        "replicas": {"type": "integer", "default": 1},
                        "strategy": {
                            "type": "object",
                            "properties": {"kind": {"type": "string", "default": "Rolling"}}
                        },
                        "containers": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "pull": {"type": "string", "default": "IfNotPresent"}
                                }
                            }
                        }
                    }
                }
            }
        }),
        PREFIX,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));

    let mut o = json!({});
    s.apply_defaults(&mut o);
    // spec defaulted to {}, then its own defaults applied; strategy absent so not created
    assert_eq!(o, json!({"spec": {"replicas": 1}}));

    let mut o = json!({"spec": {"replicas": 5, "strategy": {}, "containers": [{"name": "a"}, {"name": "b", "pull": "Always"}]}});
    s.apply_defaults(&mut o);
    assert_eq!(
        o,
        json!({"spec": {"replicas": 5, "strategy": {"kind": "Rolling"}, "containers": [
            {"name": "a", "pull": "IfNotPresent"}, {"name": "b", "pull": "Always"}]}})
    );

    // a non-nullable null takes the default
    let mut o = json!({"spec": {"replicas": null}});
    s.apply_defaults(&mut o);
    assert_eq!(o, json!({"spec": {"replicas": 1}}));
}

fn parse_errors(schema: &Value) -> Vec<FieldError> {
    match Schema::parse(schema, PREFIX) {
        Ok(_) => panic!("schema accepted: {schema}"),
        Err(e) => e,
    }
}

fn has_error(errs: &[FieldError], reason: &str, field: &str, message: &str) {
    assert!(
        errs.iter()
            .any(|e| e.reason == reason && e.field == field && e.message == message),
        "missing {reason} {field}: {message}\n in {errs:#?}"
    );
}

#[test]
fn non_structural_schemas_refused() {
    let errs = parse_errors(
        &json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}),
    );
    has_error(
        &errs,
        reason::REQUIRED,
        &format!("{PREFIX}.properties[spec].type"),
        "Required value: must not be empty for specified object fields",
    );

    let errs = parse_errors(&json!({"type": "object", "properties": {"spec": {
        "type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}}}}));
    has_error(
        &errs,
        reason::FORBIDDEN,
        &format!("{PREFIX}.properties[spec].additionalProperties"),
        "Forbidden: additionalProperties and properties are mutual exclusive",
    );

    let errs = parse_errors(&json!({"type": "string"}));
    has_error(
        &errs,
        reason::INVALID,
        &format!("{PREFIX}.type"),
        r#"Invalid value: "string": must be object at the root"#,
    );

    let errs = parse_errors(&json!({}));
    has_error(
        &errs,
        reason::REQUIRED,
        &format!("{PREFIX}.type"),
        "Required value: must not be empty at the root",
    );

    let errs = parse_errors(&json!({"type": "object", "properties": {"l": {"type": "array"}}}));
    has_error(
        &errs,
        reason::REQUIRED,
        &format!("{PREFIX}.properties[l].items"),
        "Required value: must be specified",
    );

    let errs = parse_errors(
        &json!({"type": "object", "properties": {"a": {"type": "string"}},
        "anyOf": [{"type": "string"}]}),
    );
    has_error(
        &errs,
        reason::FORBIDDEN,
        &format!("{PREFIX}.anyOf[0].type"),
        "Forbidden: must be empty to be structural",
    );

    let errs = parse_errors(&json!({"type": "object", "anyOf": [{"properties": {"ghost": {}}}]}));
    has_error(
        &errs,
        reason::REQUIRED,
        &format!("{PREFIX}.properties[ghost]"),
        &format!("Required value: because it is defined in {PREFIX}.anyOf[0].properties[ghost]"),
    );

    let errs = parse_errors(
        &json!({"type": "object", "properties": {"metadata": {"type": "object",
        "properties": {"labels": {"type": "object"}}}}}),
    );
    has_error(
        &errs,
        reason::FORBIDDEN,
        &format!("{PREFIX}.properties[metadata]"),
        "Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified",
    );

    let errs = parse_errors(
        &json!({"type": "object", "properties": {"l": {"type": "array", "uniqueItems": true, "items": {"type": "string"}}}}),
    );
    has_error(
        &errs,
        reason::FORBIDDEN,
        &format!("{PREFIX}.properties[l].uniqueItems"),
        "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
    );

    let errs = parse_errors(&json!({"type": "object", "properties": {"a": {"type": "foo"}}}));
    has_error(
        &errs,
        reason::NOT_SUPPORTED,
        &format!("{PREFIX}.properties[a].type"),
        r#"Unsupported value: "foo": supported values: "array", "boolean", "integer", "number", "object", "string""#,
    );

    let errs = parse_errors(
        &json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "(unclosed"}}}),
    );
    assert!(
        errs.iter()
            .any(|e| e.field == format!("{PREFIX}.properties[a].pattern")
                && e.message.starts_with(
                    r#"Invalid value: "(unclosed": must be a valid regular expression, but isn't: "#
                )),
        "{errs:#?}"
    );

    let errs = parse_errors(
        &json!({"type": "object", "properties": {"r": {"type": "object",
        "x-kubernetes-embedded-resource": true}}}),
    );
    has_error(
        &errs,
        reason::REQUIRED,
        &format!("{PREFIX}.properties[r].properties"),
        "Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
    );

    let errs = parse_errors(
        &json!({"type": "object", "properties": {"l": {"type": "string", "x-kubernetes-list-type": "set"}}}),
    );
    has_error(
        &errs,
        reason::INVALID,
        &format!("{PREFIX}.properties[l].type"),
        r#"Invalid value: "string": must be array if x-kubernetes-list-type is specified"#,
    );

    let errs = parse_errors(&json!({"type": "object", "nullable": true}));
    has_error(
        &errs,
        reason::FORBIDDEN,
        &format!("{PREFIX}.nullable"),
        "Forbidden: nullable cannot be true at the root",
    );

    let errs = parse_errors(&json!({"type": "object", "properties": {"a": {"$ref": "#/x"}}}));
    has_error(
        &errs,
        reason::FORBIDDEN,
        &format!("{PREFIX}.properties[a].$ref"),
        "Forbidden: $ref is not supported",
    );
}

#[test]
fn defaults_are_checked() {
    let errs = parse_errors(
        &json!({"type": "object", "properties": {"r": {"type": "integer", "default": "x"}}}),
    );
    has_error(
        &errs,
        reason::TYPE_INVALID,
        &format!("{PREFIX}.properties[r].default"),
        r#"Invalid value: "string":  in body must be of type integer: "string""#,
    );
    let errs = parse_errors(
        &json!({"type": "object", "properties": {"o": {"type": "object",
        "properties": {"a": {"type": "string"}}, "default": {"a": "x", "b": 1}}}}),
    );
    has_error(
        &errs,
        reason::INVALID,
        &format!("{PREFIX}.properties[o].default"),
        r#"Invalid value: {"a":"x","b":1}: must not have unknown fields"#,
    );
    let errs = parse_errors(
        &json!({"type": "object", "properties": {"metadata": {"type": "object", "default": {}}}}),
    );
    has_error(
        &errs,
        reason::FORBIDDEN,
        &format!("{PREFIX}.properties[metadata].default"),
        "Forbidden: must not be set in top-level metadata",
    );
}

#[test]
fn structural_exceptions_accepted() {
    let s = Schema::parse(
        &json!({
            "type": "object",
            "properties": {
                "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}},
                "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "free": {"x-kubernetes-preserve-unknown-fields": true},
                "choice": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                    "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}
            }
        }),
        PREFIX,
    );
    let s = s.unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(
        s.validate(&json!({"port": 1, "free": [1, "x"], "choice": {"a": "x"}})),
        vec![]
    );
    let errs = s.validate(&json!({"choice": {"a": "x", "b": "y"}}));
    assert_error(
        &errs[0],
        reason::INVALID,
        "<nil>",
        r#"Invalid value: "": "choice" must validate one and only one schema (oneOf). Found 2 valid alternatives"#,
    );
    let errs = s.validate(&json!({"choice": {}}));
    assert_eq!(
        errs[0].message,
        r#"Invalid value: "": "choice" must validate one and only one schema (oneOf). Found none valid"#
    );
    assert_error(&errs[1], reason::REQUIRED, "choice.a", "Required value");
}

#[test]
fn sub_schema_at() {
    let s = schema();
    assert_eq!(
        s.at(&["spec", "replicas"]).map(Schema::type_name),
        Some("integer")
    );
    assert_eq!(
        s.at(&["spec", "items", "[]", "name"])
            .map(Schema::type_name),
        Some("string")
    );
    assert_eq!(
        s.at(&["spec", "labels", "anykey"]).map(Schema::type_name),
        Some("string")
    );
    assert!(s.at(&["spec", "nope"]).is_none());
    assert_eq!(s.at(&[]).map(Schema::type_name), Some("object"));
}

#[test]
fn json_paths() {
    let o = json!({
        "spec": {"replicas": 3, "items": [{"name": "a"}, {"name": "b"}]},
        "status": {"conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "Synced", "status": "False"}
        ]},
        "metadata": {"labels": {"app.kubernetes.io/name": "x"}}
    });
    let jp = |p: &str| json_path(&o, p).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(jp(".spec.replicas"), vec![json!(3)]);
    assert_eq!(jp("{.spec.replicas}"), vec![json!(3)]);
    assert_eq!(jp("$.spec.replicas"), vec![json!(3)]);
    assert_eq!(jp(".spec.items[1].name"), vec![json!("b")]);
    assert_eq!(jp(".spec.items[-1].name"), vec![json!("b")]);
    assert_eq!(jp(".spec.items[*].name"), vec![json!("a"), json!("b")]);
    assert_eq!(jp(".spec.items[0:1].name"), vec![json!("a")]);
    assert_eq!(
        jp(r#".status.conditions[?(@.type=="Ready")].status"#),
        vec![json!("True")]
    );
    assert_eq!(
        jp(".status.conditions[?(@.type!='Ready')].type"),
        vec![json!("Synced")]
    );
    assert_eq!(
        jp(".metadata.labels['app.kubernetes.io/name']"),
        vec![json!("x")]
    );
    assert_eq!(jp("..name"), vec![json!("a"), json!("b")]);
    assert_eq!(jp(".spec.missing"), Vec::<Value>::new());
    assert_eq!(jp(".spec.items[9]"), Vec::<Value>::new());
    assert!(json_path(&o, ".spec[").is_err());
    assert!(json_path(&o, "{.spec").is_err());
    assert!(json_path(&o, ".spec.items[x]").is_err());
}

#[test]
fn never_panics_on_odd_input() {
    let odd_values = vec![
        json!(null),
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(1e300),
        json!(u64::MAX),
        json!(""),
        json!("x"),
        json!([]),
        json!([null, [], {}]),
        json!({}),
        json!({"spec": null}),
        json!({"spec": []}),
        json!({"spec": {"items": [null, 1, "x", {"name": 5}]}}),
        json!({"spec": {"tags": [[1], [1], {"a": 1}, {"a": 1.0}], "ports": [null, null, {}, {}]}}),
        json!({"spec": {"labels": null, "template": [], "replicas": 1e20, "ratio": -0.0}}),
    ];
    let odd_schemas = vec![
        json!(null),
        json!(1),
        json!("object"),
        json!([]),
        json!({}),
        json!({"type": 5}),
        json!({"type": "object", "properties": []}),
        json!({"type": "object", "properties": {"a": null}}),
        json!({"type": "object", "properties": {"a": {"type": "array", "items": [{"type": "string"}]}}}),
        json!({"type": "object", "properties": {"a": {"type": "integer", "multipleOf": 0, "maximum": 1.5, "minimum": -1e300}}}),
        json!({"type": "object", "properties": {"a": {"type": "integer", "multipleOf": 0.5}}}),
        json!({"type": "object", "properties": {"a": {"type": "string", "maxLength": -1, "minLength": 1.5}}}),
        json!({"type": "object", "properties": {"a": {"type": "object", "additionalProperties": false}}}),
        json!({"type": "object", "properties": {"a": {"type": "array", "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["k", "k"], "items": {"type": "object", "properties": {"k": {"type": "object"}}}}}}),
        json!({"type": "object", "not": {"not": {"not": {}}}, "allOf": [{"anyOf": [{}, {"oneOf": []}]}]}),
        json!({"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-int-or-string": true}),
        json!({"type": "object", "properties": {"a": {"type": "string", "format": "date-time", "enum": [1, "x", null]}}}),
        crontab(),
    ];
    let paths = [
        "",
        ".",
        "$",
        "..",
        "[",
        "]",
        "[?(",
        "[?(@)]",
        "[?(@.a<)]",
        "[::-1]",
        "[1:2:0]",
        ".a..b",
        "{}",
        "{",
        "[\"unterminated]",
        ".spec.tags[*][*]",
        "[-99999999999]",
        ".é.ü",
    ];
    for sch in &odd_schemas {
        let parsed = Schema::parse(sch, "p");
        let lenient = {
            let mut errs = Vec::new();
            crate::schema::decode(sch, &crate::path::FieldPath::default(), &mut errs)
        };
        for s in parsed.iter().chain(std::iter::once(&lenient)) {
            for v in &odd_values {
                let mut x = v.clone();
                let _ = s.validate(&x);
                s.apply_defaults(&mut x);
                let _ = s.prune(&mut x);
                let _ = s.validate(&x);
                let _ = s.at(&["spec", "[]", "x"]);
            }
        }
    }
    for v in &odd_values {
        for p in paths {
            let _ = json_path(v, p);
        }
    }
}
