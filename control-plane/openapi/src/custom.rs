//! Component schemas for custom resources, from a CRD version's `openAPIV3Schema`.

use serde_json::{Map, Value, json};

use crate::builtin::{
    API_VERSION_DESCRIPTION, KIND_DESCRIPTION, OBJECT_META, OBJECT_META_DESCRIPTION,
};
use crate::convert;

/// Upstream's component name for a custom resource: the group's labels reversed,
/// then version and kind (`stable.example.com`, `v1`, `CronTab` ->
/// `com.example.stable.v1.CronTab`).
pub fn custom_resource_schema_name(group: &str, version: &str, kind: &str) -> String {
    let mut labels: Vec<&str> = group.split('.').filter(|l| !l.is_empty()).collect();
    labels.reverse();
    labels.push(version);
    labels.push(kind);
    labels.join(".")
}

/// The component name a served kind's schema has when no extra schema names it
/// otherwise: the built-in one (`io.k8s.api.apps.v1.Deployment`), else
/// [`custom_resource_schema_name`].
pub fn schema_name(group: &str, version: &str, kind: &str) -> String {
    crate::builtin::builtin_name(group, version, kind).map_or_else(
        || custom_resource_schema_name(group, version, kind),
        str::to_string,
    )
}

/// Turns a CRD version's `openAPIV3Schema` into a component schema, as upstream's CRD
/// `OpenAPI` builder does: `type: object`, `apiVersion` and `kind` string fields (the
/// CRD's own, when it declares them), `metadata` a reference to `ObjectMeta` (a CRD may
/// only constrain `metadata.name`/`generateName`, which the server checks itself), and
/// `x-kubernetes-group-version-kind`. Pass it under [`custom_resource_schema_name`] in
/// `extra_schemas`.
pub fn custom_resource_schema(
    group: &str,
    version: &str,
    kind: &str,
    open_api_v3_schema: &serde_json::Value,
) -> serde_json::Value {
    let mut schema = match open_api_v3_schema {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    schema
        .entry("type")
        .or_insert_with(|| Value::String("object".into()));
    let props = schema
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if !props.is_object() {
        *props = Value::Object(Map::new());
    }
    if let Value::Object(props) = props {
        props
            .entry("apiVersion")
            .or_insert_with(|| json!({"description": API_VERSION_DESCRIPTION, "type": "string"}));
        props
            .entry("kind")
            .or_insert_with(|| json!({"description": KIND_DESCRIPTION, "type": "string"}));
        props.insert(
            "metadata".into(),
            json!({
                "allOf": [{"$ref": convert::ref_to(OBJECT_META)}],
                "description": OBJECT_META_DESCRIPTION,
            }),
        );
    }
    let mut schema = Value::Object(schema);
    convert::set_gvk(&mut schema, group, version, kind);
    schema
}
