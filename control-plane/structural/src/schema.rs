//! Reading a `JSONSchemaProps` document into a [`Schema`] and the checks CRD
//! validation runs on it: `ValidateCustomResourceDefinitionOpenAPISchema`
//! (`apis/apiextensions/validation`), `ValidateStructural` (`apiserver/schema`)
//! and `ValidateDefaults` (`apiserver/schema/defaulting`).

use crate::FieldError;
use crate::path::FieldPath;
use regex::Regex;
use serde_json::{Map, Value};

/// Formats the CRD schema validator keeps (`supportedVersionedFormats` at
/// compatibility version 1.0, names normalised by dropping `-`); any other
/// format is stripped before validation, as `StripUnsupportedFormatsPostProcess`
/// does (so `int32`, `int64`, `float`, `double` are never checked).
const SUPPORTED_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
];

/// `openapiV3Types.List()`: the valid `type`s, sorted.
const OPENAPI_V3_TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];

/// `additionalProperties`: a boolean or a schema.
#[derive(Debug, Clone)]
pub(crate) enum Additional {
    Bool(bool),
    Schema(Box<Schema>),
}

/// A parsed, checked `JSONSchemaProps`: one node of a structural schema (or of
/// a value validation under `allOf`/`anyOf`/`oneOf`/`not`).
#[derive(Debug, Clone, Default)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "mirrors the boolean keywords of JSONSchemaProps one to one"
)]
pub struct Schema {
    pub(crate) keys: Vec<String>,
    pub(crate) type_: String,
    pub(crate) format: String,
    /// The format validation uses: `format` if supported, else empty.
    pub(crate) vformat: String,
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) nullable: bool,
    pub(crate) default: Option<Value>,
    pub(crate) properties: Vec<(String, Schema)>,
    pub(crate) additional: Option<Additional>,
    pub(crate) items: Option<Box<Schema>>,
    pub(crate) items_array: bool,
    pub(crate) preserve_unknown: Option<bool>,
    pub(crate) embedded: bool,
    pub(crate) int_or_string: bool,
    pub(crate) list_type: Option<String>,
    pub(crate) list_map_keys: Vec<String>,
    pub(crate) map_type: Option<String>,
    pub(crate) x_validations: Vec<Value>,
    pub(crate) external_docs: bool,
    pub(crate) id: String,
    pub(crate) has_ref: bool,
    pub(crate) has_additional_items: bool,
    pub(crate) has_pattern_properties: bool,
    pub(crate) has_definitions: bool,
    pub(crate) has_dependencies: bool,
    pub(crate) maximum: Option<f64>,
    pub(crate) exclusive_maximum: bool,
    pub(crate) minimum: Option<f64>,
    pub(crate) exclusive_minimum: bool,
    pub(crate) max_length: Option<i64>,
    pub(crate) min_length: Option<i64>,
    pub(crate) pattern: String,
    pub(crate) pattern_re: Option<Regex>,
    pub(crate) max_items: Option<i64>,
    pub(crate) min_items: Option<i64>,
    pub(crate) unique_items: bool,
    pub(crate) multiple_of: Option<f64>,
    pub(crate) enum_: Option<Vec<Value>>,
    pub(crate) max_properties: Option<i64>,
    pub(crate) min_properties: Option<i64>,
    pub(crate) required: Vec<String>,
    pub(crate) all_of: Vec<Schema>,
    pub(crate) any_of: Vec<Schema>,
    pub(crate) one_of: Vec<Schema>,
    pub(crate) not: Option<Box<Schema>>,
}

impl Schema {
    /// Parses `open_api_v3_schema` and checks it as CRD validation does.
    ///
    /// `field_prefix` is the path of the schema in the CRD, e.g.
    /// `spec.versions[0].schema.openAPIV3Schema`; errors are reported under
    /// it (`...openAPIV3Schema.properties[spec].type`). Errors come in
    /// upstream's order of passes: generic schema checks, then the
    /// structural-schema rules (sorted, as upstream sorts them), then
    /// `default` checks (only run when the schema is structural).
    pub fn parse(
        open_api_v3_schema: &Value,
        field_prefix: &str,
    ) -> Result<Schema, Vec<FieldError>> {
        let root = FieldPath::new(field_prefix);
        let mut errs = Vec::new();
        let mut schema = decode(open_api_v3_schema, &root, &mut errs);
        if !errs.is_empty() {
            return Err(errs);
        }
        compile_all(&mut schema);

        if schema.nullable {
            errs.push(FieldError::forbidden(
                root.child("nullable").as_str(),
                "nullable cannot be true at the root",
            ));
        }
        let ssv = Ssv {
            allow_defaults: true,
            defaults_reason: String::new(),
            inside_meta: false,
        };
        static_check(&schema, &root, &ssv, true, &mut errs);

        let mut structural = Vec::new();
        structural_invariants(&schema, Level::Root, &root, &mut structural);
        structural_completeness(&schema, &root, &mut structural);
        structural.sort_by_key(ToString::to_string);
        let structural_ok = structural.is_empty();
        errs.extend(structural);

        if structural_ok {
            crate::validate::validate_defaults(&schema, &root, &mut errs);
        }

        if errs.is_empty() {
            Ok(schema)
        } else {
            Err(errs)
        }
    }

    /// The sub-schema at `path`: property names, with `[]`, `[*]`, `*` or a
    /// number stepping into array `items`, and unknown names under an object
    /// with an `additionalProperties` schema resolving to that schema.
    pub fn at(&self, path: &[&str]) -> Option<&Schema> {
        let mut cur = self;
        for seg in path {
            if cur.type_ == "array" || (cur.items.is_some() && cur.properties.is_empty()) {
                let is_index = matches!(*seg, "[]" | "[*]" | "*")
                    || seg
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<usize>()
                        .is_ok();
                if is_index {
                    cur = cur.items.as_deref()?;
                    continue;
                }
            }
            cur = match cur.property(seg) {
                Some(s) => s,
                None => match &cur.additional {
                    Some(Additional::Schema(s)) => s,
                    _ => return None,
                },
            };
        }
        Some(cur)
    }

    /// The `type` (`""` when unset).
    pub fn type_name(&self) -> &str {
        &self.type_
    }

    /// The `format` as written (`""` when unset).
    pub fn format(&self) -> &str {
        &self.format
    }

    /// The `description` (`""` when unset).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// `nullable`.
    pub fn nullable(&self) -> bool {
        self.nullable
    }

    /// `default`, if any.
    pub fn default_value(&self) -> Option<&Value> {
        self.default.as_ref()
    }

    /// `x-kubernetes-int-or-string`.
    pub fn int_or_string(&self) -> bool {
        self.int_or_string
    }

    /// `x-kubernetes-preserve-unknown-fields: true`.
    pub fn preserves_unknown_fields(&self) -> bool {
        self.preserve_unknown == Some(true)
    }

    /// `x-kubernetes-embedded-resource`.
    pub fn embedded_resource(&self) -> bool {
        self.embedded
    }

    /// The names of `properties`, in schema order.
    pub fn property_names(&self) -> impl Iterator<Item = &str> {
        self.properties.iter().map(|(k, _)| k.as_str())
    }

    pub(crate) fn property(&self, name: &str) -> Option<&Schema> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, s)| s)
    }

    /// The schema for an object key: its property, else the
    /// `additionalProperties` schema; `Err(())` when the key is unknown.
    pub(crate) fn field_schema(&self, name: &str) -> Result<Option<&Schema>, ()> {
        if let Some(s) = self.property(name) {
            return Ok(Some(s));
        }
        match &self.additional {
            Some(Additional::Schema(s)) => Ok(Some(s)),
            Some(Additional::Bool(_)) => Ok(None),
            None => Err(()),
        }
    }

    pub(crate) fn preserve(&self) -> bool {
        self.preserve_unknown == Some(true)
    }

    /// The type list the kube-openapi validator sees.
    pub(crate) fn types(&self) -> Vec<&str> {
        if self.int_or_string {
            vec!["integer", "string"]
        } else if self.type_.is_empty() {
            Vec::new()
        } else {
            vec![self.type_.as_str()]
        }
    }
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

fn type_error(errs: &mut Vec<FieldError>, path: &FieldPath, v: &Value, want: &str) {
    errs.push(FieldError::type_invalid(
        path.as_str(),
        v,
        &format!("must be of type {want}"),
    ));
}

fn get_string(v: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => {
            type_error(errs, path, other, "string");
            String::new()
        }
    }
}

fn get_bool(v: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Null => false,
        other => {
            type_error(errs, path, other, "boolean");
            false
        }
    }
}

fn get_f64(v: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Null => None,
        other => {
            type_error(errs, path, other, "number");
            None
        }
    }
}

fn get_i64(v: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) -> Option<i64> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i)
            } else {
                type_error(errs, path, v, "integer");
                None
            }
        }
        Value::Null => None,
        other => {
            type_error(errs, path, other, "integer");
            None
        }
    }
}

fn get_strings(v: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| get_string(x, &path.index(i), errs))
            .collect(),
        Value::Null => Vec::new(),
        other => {
            type_error(errs, path, other, "array");
            Vec::new()
        }
    }
}

fn get_schema_list(v: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) -> Vec<Schema> {
    match v {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| decode(x, &path.index(i), errs))
            .collect(),
        Value::Null => Vec::new(),
        other => {
            type_error(errs, path, other, "array");
            Vec::new()
        }
    }
}

fn get_schema_map(
    v: &Value,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) -> Vec<(String, Schema)> {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, x)| (k.clone(), decode(x, &path.key(k), errs)))
            .collect(),
        Value::Null => Vec::new(),
        other => {
            type_error(errs, path, other, "object");
            Vec::new()
        }
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Decodes one `JSONSchemaProps` node; JSON type mismatches are reported as
/// `FieldValueTypeInvalid` (upstream refuses such a CRD while decoding it).
pub(crate) fn decode(node: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) -> Schema {
    let Value::Object(m) = node else {
        type_error(errs, path, node, "object");
        return Schema::default();
    };
    let mut s = Schema {
        keys: nonzero_keys(m),
        ..Schema::default()
    };
    for (k, x) in m {
        let p = path.child(k);
        match k.as_str() {
            "type" => s.type_ = get_string(x, &p, errs),
            "format" => s.format = get_string(x, &p, errs),
            "title" => s.title = get_string(x, &p, errs),
            "description" => s.description = get_string(x, &p, errs),
            "id" => s.id = get_string(x, &p, errs),
            "$schema" => {
                get_string(x, &p, errs);
            }
            "$ref" => {
                get_string(x, &p, errs);
                s.has_ref = !x.is_null();
            }
            "pattern" => s.pattern = get_string(x, &p, errs),
            "nullable" => s.nullable = get_bool(x, &p, errs),
            "uniqueItems" => s.unique_items = get_bool(x, &p, errs),
            "exclusiveMaximum" => s.exclusive_maximum = get_bool(x, &p, errs),
            "exclusiveMinimum" => s.exclusive_minimum = get_bool(x, &p, errs),
            "x-kubernetes-embedded-resource" => s.embedded = get_bool(x, &p, errs),
            "x-kubernetes-int-or-string" => s.int_or_string = get_bool(x, &p, errs),
            "x-kubernetes-preserve-unknown-fields" if !x.is_null() => {
                s.preserve_unknown = Some(get_bool(x, &p, errs));
            }
            "maximum" => s.maximum = get_f64(x, &p, errs),
            "minimum" => s.minimum = get_f64(x, &p, errs),
            "multipleOf" => s.multiple_of = get_f64(x, &p, errs),
            "maxLength" => s.max_length = get_i64(x, &p, errs),
            "minLength" => s.min_length = get_i64(x, &p, errs),
            "maxItems" => s.max_items = get_i64(x, &p, errs),
            "minItems" => s.min_items = get_i64(x, &p, errs),
            "maxProperties" => s.max_properties = get_i64(x, &p, errs),
            "minProperties" => s.min_properties = get_i64(x, &p, errs),
            "required" => s.required = get_strings(x, &p, errs),
            "x-kubernetes-list-map-keys" => s.list_map_keys = get_strings(x, &p, errs),
            "x-kubernetes-list-type" if !x.is_null() => {
                s.list_type = Some(get_string(x, &p, errs));
            }
            "x-kubernetes-map-type" if !x.is_null() => {
                s.map_type = Some(get_string(x, &p, errs));
            }
            "x-kubernetes-validations" => match x {
                Value::Array(a) => s.x_validations.clone_from(a),
                Value::Null => {}
                other => type_error(errs, &p, other, "array"),
            },
            "default" if !x.is_null() => {
                s.default = Some(x.clone());
            }
            "enum" => match x {
                Value::Array(a) => s.enum_ = Some(a.clone()),
                Value::Null => {}
                other => type_error(errs, &p, other, "array"),
            },
            "externalDocs" => match x {
                Value::Object(_) => s.external_docs = true,
                Value::Null => {}
                other => type_error(errs, &p, other, "object"),
            },
            "items" => match x {
                Value::Array(a) => {
                    s.items_array = true;
                    for (i, it) in a.iter().enumerate() {
                        decode(it, &p.index(i), errs);
                    }
                }
                Value::Null => {}
                other => s.items = Some(Box::new(decode(other, &p, errs))),
            },
            "additionalProperties" => match x {
                Value::Bool(b) => s.additional = Some(Additional::Bool(*b)),
                Value::Null => {}
                other => s.additional = Some(Additional::Schema(Box::new(decode(other, &p, errs)))),
            },
            "additionalItems" => s.has_additional_items = !x.is_null(),
            "properties" => s.properties = get_schema_map(x, &p, errs),
            "patternProperties" => {
                s.has_pattern_properties = !get_schema_map(x, &p, errs).is_empty();
            }
            "definitions" => s.has_definitions = !get_schema_map(x, &p, errs).is_empty(),
            "dependencies" => s.has_dependencies = !x.is_null(),
            "allOf" => s.all_of = get_schema_list(x, &p, errs),
            "anyOf" => s.any_of = get_schema_list(x, &p, errs),
            "oneOf" => s.one_of = get_schema_list(x, &p, errs),
            "not" if !x.is_null() => {
                s.not = Some(Box::new(decode(x, &p, errs)));
            }
            _ => {}
        }
    }
    let normalized = s.format.replace('-', "");
    if SUPPORTED_FORMATS.contains(&normalized.as_str()) {
        s.vformat.clone_from(&s.format);
    }
    s
}

fn nonzero_keys(m: &Map<String, Value>) -> Vec<String> {
    m.iter()
        .filter(|(k, v)| {
            let map_valued = matches!(
                k.as_str(),
                "properties" | "patternProperties" | "definitions" | "dependencies"
            );
            !(is_zero(v) || (map_valued && v.as_object().is_some_and(Map::is_empty)))
        })
        .map(|(k, _)| k.clone())
        .collect()
}

// ---------------------------------------------------------------------------
// Generic checks (ValidateCustomResourceDefinitionOpenAPISchema)
// ---------------------------------------------------------------------------

/// `specStandardValidatorV3`.
#[derive(Clone)]
struct Ssv {
    allow_defaults: bool,
    defaults_reason: String,
    inside_meta: bool,
}

impl Ssv {
    fn forbid_defaults(&self, reason: &str) -> Self {
        Self {
            allow_defaults: false,
            defaults_reason: reason.to_string(),
            inside_meta: self.inside_meta,
        }
    }
}

const META_FIELDS: &[&str] = &["metadata", "kind", "apiVersion"];

fn standard_check(s: &Schema, path: &FieldPath, ssv: &Ssv, errs: &mut Vec<FieldError>) {
    if !s.type_.is_empty() && !OPENAPI_V3_TYPES.contains(&s.type_.as_str()) {
        let valid: Vec<String> = OPENAPI_V3_TYPES.iter().map(|t| (*t).to_string()).collect();
        errs.push(FieldError::not_supported(
            path.child("type").as_str(),
            &Value::String(s.type_.clone()),
            &valid,
        ));
    }
    if s.default.is_some() && !ssv.allow_defaults {
        let mut detail = "must not be set".to_string();
        if !ssv.defaults_reason.is_empty() {
            detail.push(' ');
            detail.push_str(&ssv.defaults_reason);
        }
        errs.push(FieldError::forbidden(
            path.child("default").as_str(),
            &detail,
        ));
    }
    if !s.id.is_empty() {
        errs.push(FieldError::forbidden(
            path.child("id").as_str(),
            "id is not supported",
        ));
    }
    if s.has_additional_items {
        errs.push(FieldError::forbidden(
            path.child("additionalItems").as_str(),
            "additionalItems is not supported",
        ));
    }
    if s.has_pattern_properties {
        errs.push(FieldError::forbidden(
            path.child("patternProperties").as_str(),
            "patternProperties is not supported",
        ));
    }
    if s.has_definitions {
        errs.push(FieldError::forbidden(
            path.child("definitions").as_str(),
            "definitions is not supported",
        ));
    }
    if s.has_dependencies {
        errs.push(FieldError::forbidden(
            path.child("dependencies").as_str(),
            "dependencies is not supported",
        ));
    }
    if s.has_ref {
        errs.push(FieldError::forbidden(
            path.child("$ref").as_str(),
            "$ref is not supported",
        ));
    }
    if s.type_ == "null" {
        errs.push(FieldError::forbidden(
            path.child("type").as_str(),
            "type cannot be set to null, use nullable as an alternative",
        ));
    }
    if s.items_array {
        errs.push(FieldError::forbidden(
            path.child("items").as_str(),
            "items must be a schema object and not an array",
        ));
    }
    if ssv.inside_meta && s.embedded {
        errs.push(FieldError::forbidden(
            path.child("x-kubernetes-embedded-resource").as_str(),
            "must not be used inside of resource meta",
        ));
    }
}

fn string_list_value(v: &[String]) -> Value {
    Value::Array(v.iter().cloned().map(Value::String).collect())
}

#[allow(
    clippy::too_many_lines,
    reason = "one flat pass over the keywords, in upstream's order"
)]
fn static_check(
    s: &Schema,
    path: &FieldPath,
    ssv: &Ssv,
    is_root: bool,
    errs: &mut Vec<FieldError>,
) {
    standard_check(s, path, ssv, errs);

    if s.unique_items {
        errs.push(FieldError::forbidden(
            path.child("uniqueItems").as_str(),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }

    if let Some(ap) = &s.additional {
        if !s.properties.is_empty() && matches!(ap, Additional::Bool(false) | Additional::Schema(_))
        {
            errs.push(FieldError::forbidden(
                path.child("additionalProperties").as_str(),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        let sub = if ssv.inside_meta {
            ssv.forbid_defaults("inside additionalProperties applying to object metadata")
        } else {
            ssv.clone()
        };
        if let Additional::Schema(aps) = ap {
            static_check(aps, &path.child("additionalProperties"), &sub, false, errs);
        }
    }

    for (k, sub) in &s.properties {
        let mut sub_ssv = ssv.clone();
        if (is_root || s.embedded) && META_FIELDS.contains(&k.as_str()) {
            sub_ssv.inside_meta = true;
            if is_root {
                sub_ssv = sub_ssv.forbid_defaults(&format!("in top-level {k}"));
            }
        }
        static_check(sub, &path.child("properties").key(k), &sub_ssv, false, errs);
    }

    if let Some(not) = &s.not {
        static_check(not, &path.child("not"), ssv, false, errs);
    }
    for (i, x) in s.all_of.iter().enumerate() {
        static_check(x, &path.child("allOf").index(i), ssv, false, errs);
    }
    for (i, x) in s.one_of.iter().enumerate() {
        static_check(x, &path.child("oneOf").index(i), ssv, false, errs);
    }
    for (i, x) in s.any_of.iter().enumerate() {
        static_check(x, &path.child("anyOf").index(i), ssv, false, errs);
    }
    if let Some(items) = &s.items {
        static_check(items, &path.child("items"), ssv, false, errs);
    }

    if s.preserve_unknown == Some(false) {
        errs.push(FieldError::invalid(
            path.child("x-kubernetes-preserve-unknown-fields").as_str(),
            &Value::Bool(false),
            "must be true or undefined",
        ));
    }

    if let Some(mt) = &s.map_type {
        if s.type_ != "object" {
            let p = path.child("type");
            let detail = "must be object if x-kubernetes-map-type is specified";
            if s.type_.is_empty() {
                errs.push(FieldError::required(p.as_str(), detail));
            } else {
                errs.push(FieldError::invalid(
                    p.as_str(),
                    &Value::String(s.type_.clone()),
                    detail,
                ));
            }
        }
        if mt != "atomic" && mt != "granular" {
            errs.push(FieldError::not_supported(
                path.child("x-kubernetes-map-type").as_str(),
                &Value::String(mt.clone()),
                &["atomic".into(), "granular".into()],
            ));
        }
    }

    if let Some(lt) = &s.list_type {
        if s.type_ != "array" {
            let p = path.child("type");
            let detail = "must be array if x-kubernetes-list-type is specified";
            if s.type_.is_empty() {
                errs.push(FieldError::required(p.as_str(), detail));
            } else {
                errs.push(FieldError::invalid(
                    p.as_str(),
                    &Value::String(s.type_.clone()),
                    detail,
                ));
            }
        } else if lt == "set"
            && let Some(is) = &s.items
        {
            let detail = "must be atomic as item of a list with x-kubernetes-list-type=set";
            let lt_value = is.list_type.clone().map_or(Value::Null, Value::String);
            match is.type_.as_str() {
                "array" if is.list_type.as_deref().is_some_and(|t| t != "atomic") => {
                    errs.push(FieldError::invalid(
                        path.child("items").child("x-kubernetes-list-type").as_str(),
                        &lt_value,
                        detail,
                    ));
                }
                "object" if is.map_type.as_deref() != Some("atomic") => {
                    errs.push(FieldError::invalid(
                        path.child("items").child("x-kubernetes-map-type").as_str(),
                        &lt_value,
                        detail,
                    ));
                }
                _ => {}
            }
        }
        if lt != "atomic" && lt != "set" && lt != "map" {
            errs.push(FieldError::not_supported(
                path.child("x-kubernetes-list-type").as_str(),
                &Value::String(lt.clone()),
                &["atomic".into(), "set".into(), "map".into()],
            ));
        }
    }

    if !s.list_map_keys.is_empty() {
        let detail = "must be map if x-kubernetes-list-map-keys is non-empty";
        match &s.list_type {
            None => errs.push(FieldError::required(
                path.child("x-kubernetes-list-type").as_str(),
                detail,
            )),
            Some(lt) if lt != "map" => errs.push(FieldError::invalid(
                path.child("x-kubernetes-list-type").as_str(),
                &Value::String(lt.clone()),
                detail,
            )),
            Some(_) => {}
        }
    }

    if s.list_type.as_deref() == Some("map") {
        if s.list_map_keys.is_empty() {
            errs.push(FieldError::required(
                path.child("x-kubernetes-list-map-keys").as_str(),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        if s.items.is_none() && !s.items_array {
            errs.push(FieldError::required(
                path.child("items").as_str(),
                "must have a schema if x-kubernetes-list-type is map",
            ));
        }
        if s.items_array {
            errs.push(FieldError::invalid(
                path.child("items").as_str(),
                &Value::Null,
                "must only have a single schema if x-kubernetes-list-type is map",
            ));
        }
        if let Some(is) = &s.items {
            if is.type_ == "object" {
                let mut seen: Vec<&str> = Vec::new();
                for k in &s.list_map_keys {
                    if let Some(ks) = is.property(k) {
                        if ks.type_ == "array" || ks.type_ == "object" {
                            errs.push(FieldError::invalid(
                                path.child("items").child("properties").key(k).child("type").as_str(),
                                &Value::String(is.type_.clone()),
                                "must be a scalar type if parent array's x-kubernetes-list-type is map",
                            ));
                        }
                    } else {
                        errs.push(FieldError::invalid(
                            path.child("x-kubernetes-list-map-keys").as_str(),
                            &string_list_value(&s.list_map_keys),
                            "entries must all be names of item properties",
                        ));
                    }
                    if seen.contains(&k.as_str()) {
                        errs.push(FieldError::invalid(
                            path.child("x-kubernetes-list-map-keys").as_str(),
                            &string_list_value(&s.list_map_keys),
                            "must not contain duplicate entries",
                        ));
                    }
                    seen.push(k);
                }
            } else {
                errs.push(FieldError::invalid(
                    path.child("items").child("type").as_str(),
                    &Value::String(is.type_.clone()),
                    "must be object if parent array's x-kubernetes-list-type is map",
                ));
            }
        }
    }

    for (i, rule) in s.x_validations.iter().enumerate() {
        let p = path.child("x-kubernetes-validations").index(i);
        let rule_text = rule.get("rule").and_then(Value::as_str).unwrap_or("");
        let msg = rule.get("message").and_then(Value::as_str).unwrap_or("");
        let trimmed_rule = rule_text.trim();
        let trimmed_msg = msg.trim();
        let has_newlines = |t: &str| t.contains('\n') || t.contains('\r');
        if trimmed_rule.is_empty() {
            errs.push(FieldError::required(
                p.child("rule").as_str(),
                "rule is not specified",
            ));
        } else if !msg.is_empty() && trimmed_msg.is_empty() {
            errs.push(FieldError::invalid(
                p.child("message").as_str(),
                &Value::String(msg.to_string()),
                "message must be non-empty if specified",
            ));
        } else if has_newlines(trimmed_msg) {
            errs.push(FieldError::invalid(
                p.child("message").as_str(),
                &Value::String(msg.to_string()),
                "message must not contain line breaks",
            ));
        } else if has_newlines(trimmed_rule) && trimmed_msg.is_empty() {
            errs.push(FieldError::required(
                p.child("message").as_str(),
                "message must be specified if rule contains line breaks",
            ));
        }
    }

    map_list_keys_map_set(s, path, errs);
}

/// `validateMapListKeysMapSet`.
fn map_list_keys_map_set(s: &Schema, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let (Some(is), Some(lt)) = (&s.items, &s.list_type) else {
        return;
    };
    if lt != "set" && lt != "map" {
        return;
    }
    if is.nullable {
        errs.push(FieldError::forbidden(
            path.child("items").child("nullable").as_str(),
            &format!("cannot be nullable when x-kubernetes-list-type is {lt}"),
        ));
    }
    if lt == "map" {
        for k in &s.list_map_keys {
            let Some(ks) = is.property(k) else { continue };
            if !is.required.contains(k) && ks.default.is_none() {
                errs.push(FieldError::required(
                    path.child("items").child("properties").key(k).child("default").as_str(),
                    "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                ));
            }
            if ks.nullable {
                errs.push(FieldError::forbidden(
                    path.child("items")
                        .child("properties")
                        .key(k)
                        .child("nullable")
                        .as_str(),
                    "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Structural-schema rules (ValidateStructural)
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

fn only_type(s: &Schema, t: &str) -> bool {
    s.type_ == t && s.keys.iter().all(|k| k == "type")
}

fn is_int_or_string_any_of(any_of: &[Schema]) -> bool {
    any_of.len() == 2 && only_type(&any_of[0], "integer") && only_type(&any_of[1], "string")
}

#[allow(
    clippy::too_many_lines,
    reason = "mirrors validateStructuralInvariants rule by rule"
)]
fn structural_invariants(s: &Schema, lvl: Level, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if s.type_ == "array" && s.items.is_none() {
        errs.push(FieldError::required(
            path.child("items").as_str(),
            "must be specified",
        ));
    }
    if let Some(items) = &s.items {
        structural_invariants(items, Level::Item, &path.child("items"), errs);
    }
    for (k, v) in &s.properties {
        structural_invariants(v, Level::Field, &path.child("properties").key(k), errs);
    }
    if let Some(ap) = &s.additional {
        if lvl == Level::Root {
            errs.push(FieldError::forbidden(
                path.child("additionalProperties").as_str(),
                "must not be used at the root",
            ));
        }
        if let Additional::Schema(aps) = ap {
            structural_invariants(aps, Level::Field, &path.child("additionalProperties"), errs);
        }
    }

    if s.int_or_string && s.preserve() {
        errs.push(FieldError::invalid(
            path.child("x-kubernetes-preserve-unknown-fields").as_str(),
            &Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if s.int_or_string && s.embedded {
        errs.push(FieldError::invalid(
            path.child("x-kubernetes-embedded-resource").as_str(),
            &Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }

    let skip_any_of = is_int_or_string_any_of(&s.any_of);
    let skip_first_all_of_any_of = s
        .all_of
        .first()
        .is_some_and(|a| is_int_or_string_any_of(&a.any_of));
    value_validation(s, skip_any_of, skip_first_all_of_any_of, path, errs);

    let check_metadata = lvl == Level::Root || s.embedded;

    if s.embedded && s.type_ != "object" {
        let detail = "must be object if x-kubernetes-embedded-resource is true";
        if s.type_.is_empty() {
            errs.push(FieldError::required(path.child("type").as_str(), detail));
        } else {
            errs.push(FieldError::invalid(
                path.child("type").as_str(),
                &Value::String(s.type_.clone()),
                detail,
            ));
        }
    } else if s.type_.is_empty() && !s.int_or_string && !s.preserve() {
        let detail = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(path.child("type").as_str(), detail));
    }
    if s.embedded && s.additional.is_some() {
        errs.push(FieldError::forbidden(
            path.child("additionalProperties").as_str(),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !s.type_.is_empty() && s.type_ != "object" {
        errs.push(FieldError::invalid(
            path.child("type").as_str(),
            &Value::String(s.type_.clone()),
            "must be object at the root",
        ));
    }
    if check_metadata {
        for k in ["kind", "apiVersion"] {
            if let Some(ks) = s.property(k)
                && ks.type_ != "string"
            {
                errs.push(FieldError::invalid(
                    path.child("properties").key(k).child("type").as_str(),
                    &Value::String(ks.type_.clone()),
                    "must be string",
                ));
            }
        }
    }
    if let Some(meta) = s.property("metadata") {
        let mp = path.child("properties").key("metadata");
        if check_metadata && meta.type_ != "object" {
            errs.push(FieldError::invalid(
                mp.child("type").as_str(),
                &Value::String(meta.type_.clone()),
                "must be object",
            ));
        }
        if lvl == Level::Root && !metadata_is_name_only(meta) {
            errs.push(FieldError::forbidden(
                mp.as_str(),
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    if s.embedded && !s.preserve() && s.properties.is_empty() {
        errs.push(FieldError::required(
            path.child("properties").as_str(),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// Whether a root `metadata` schema restricts nothing but `name` and
/// `generateName` (its `type` and `default` are ignored).
fn metadata_is_name_only(meta: &Schema) -> bool {
    const IGNORED: &[&str] = &[
        "type",
        "default",
        "example",
        "$schema",
        "id",
        "$ref",
        "definitions",
        "dependencies",
        "patternProperties",
        "additionalItems",
    ];
    let name = meta.property("name").is_some();
    let generate_name = meta.property("generateName").is_some();
    let n = meta.properties.len();
    let props_cleared = (name && generate_name && n == 2) || ((name || generate_name) && n == 1);
    meta.keys
        .iter()
        .all(|k| IGNORED.contains(&k.as_str()) || (k == "properties" && props_cleared))
}

fn value_validation(
    s: &Schema,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    if !skip_any_of {
        for (i, x) in s.any_of.iter().enumerate() {
            nested_value_validation(x, false, &path.child("anyOf").index(i), errs);
        }
    }
    for (i, x) in s.all_of.iter().enumerate() {
        nested_value_validation(
            x,
            skip_first_all_of_any_of && i == 0,
            &path.child("allOf").index(i),
            errs,
        );
    }
    for (i, x) in s.one_of.iter().enumerate() {
        nested_value_validation(x, false, &path.child("oneOf").index(i), errs);
    }
    if let Some(not) = &s.not {
        nested_value_validation(not, false, &path.child("not"), errs);
    }
    check_pattern(s, path, errs);
}

fn check_pattern(s: &Schema, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if !s.pattern.is_empty()
        && s.pattern_re.is_none()
        && let Err(e) = compile_pattern(&s.pattern)
    {
        errs.push(FieldError::invalid(
            path.child("pattern").as_str(),
            &Value::String(s.pattern.clone()),
            &format!("must be a valid regular expression, but isn't: {e}"),
        ));
    }
}

/// Compiles a `pattern` with the `regex` crate; the error text is made one
/// line, starting like Go's (`error parsing regexp: ...`).
pub(crate) fn compile_pattern(p: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(p)
        .size_limit(1 << 22)
        .build()
        .map_err(|e| {
            let text = e.to_string();
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid pattern")
                .trim()
                .trim_start_matches("error: ")
                .to_string();
            format!("error parsing regexp: {last}: `{p}`")
        })
}

fn nested_value_validation(
    v: &Schema,
    skip_any_of: bool,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    value_validation(v, skip_any_of, false, path, errs);
    if let Some(items) = &v.items {
        nested_value_validation(items, false, &path.child("items"), errs);
    }
    for (k, x) in &v.properties {
        nested_value_validation(x, false, &path.child("properties").key(k), errs);
    }
    let forbid = |errs: &mut Vec<FieldError>, key: &str, detail: &str| {
        errs.push(FieldError::forbidden(path.child(key).as_str(), detail));
    };
    if !v.type_.is_empty() {
        forbid(errs, "type", "must be empty to be structural");
    }
    if v.additional.is_some() {
        forbid(
            errs,
            "additionalProperties",
            "must be undefined to be structural",
        );
    }
    if v.default.is_some() {
        forbid(errs, "default", "must be undefined to be structural");
    }
    if !v.title.is_empty() {
        forbid(errs, "title", "must be empty to be structural");
    }
    if !v.description.is_empty() {
        forbid(errs, "description", "must be empty to be structural");
    }
    if v.nullable {
        forbid(errs, "nullable", "must be false to be structural");
    }
    if v.external_docs {
        forbid(errs, "externalDocs", "must be undefined to be structural");
    }
    if v.preserve() {
        forbid(
            errs,
            "x-kubernetes-preserve-unknown-fields",
            "must be false to be structural",
        );
    }
    if v.embedded {
        forbid(
            errs,
            "x-kubernetes-embedded-resource",
            "must be false to be structural",
        );
    }
    if v.int_or_string {
        forbid(
            errs,
            "x-kubernetes-int-or-string",
            "must be false to be structural",
        );
    }
    if !v.list_map_keys.is_empty() {
        forbid(
            errs,
            "x-kubernetes-list-map-keys",
            "must be empty to be structural",
        );
    }
    if v.list_type.is_some() {
        forbid(
            errs,
            "x-kubernetes-list-type",
            "must be undefined to be structural",
        );
    }
    if v.map_type.is_some() {
        forbid(
            errs,
            "x-kubernetes-map-type",
            "must be undefined to be structural",
        );
    }
    if !v.x_validations.is_empty() {
        forbid(
            errs,
            "x-kubernetes-validations",
            "must be empty to be structural",
        );
    }
    if v.property("metadata").is_some() {
        errs.push(FieldError::forbidden(
            path.child("properties").key("metadata").as_str(),
            "must not be specified in a nested context",
        ));
    }
}

/// `validateStructuralCompleteness`: fields and items named in the root's
/// value validations must be specified structurally too.
fn structural_completeness(s: &Schema, path: &FieldPath, errs: &mut Vec<FieldError>) {
    value_validation_completeness(s, Some(s), path, path, errs);
}

fn value_validation_completeness(
    v: &Schema,
    s: Option<&Schema>,
    s_path: &FieldPath,
    v_path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    if let Some(not) = &v.not {
        nested_completeness(not, s, s_path, &v_path.child("not"), errs);
    }
    for (i, x) in v.all_of.iter().enumerate() {
        nested_completeness(x, s, s_path, &v_path.child("allOf").index(i), errs);
    }
    for (i, x) in v.any_of.iter().enumerate() {
        nested_completeness(x, s, s_path, &v_path.child("anyOf").index(i), errs);
    }
    for (i, x) in v.one_of.iter().enumerate() {
        nested_completeness(x, s, s_path, &v_path.child("oneOf").index(i), errs);
    }
}

fn nested_completeness(
    v: &Schema,
    s: Option<&Schema>,
    s_path: &FieldPath,
    v_path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let Some(s) = s else {
        errs.push(FieldError::required(
            s_path.as_str(),
            &format!("because it is defined in {}", v_path.as_str()),
        ));
        return;
    };
    value_validation_completeness(v, Some(s), s_path, v_path, errs);
    if let Some(items) = &v.items {
        nested_completeness(
            items,
            s.items.as_deref(),
            &s_path.child("items"),
            &v_path.child("items"),
            errs,
        );
    }
    for (k, vf) in &v.properties {
        let sp = s_path.child("properties").key(k);
        let vp = v_path.child("properties").key(k);
        match s.property(k) {
            Some(sf) => nested_completeness(vf, Some(sf), &sp, &vp, errs),
            None => errs.push(FieldError::required(
                sp.as_str(),
                &format!("because it is defined in {}", vp.as_str()),
            )),
        }
    }
}

/// Compiles every `pattern` in the tree; done once after the checks pass.
pub(crate) fn compile_all(s: &mut Schema) {
    if !s.pattern.is_empty() {
        s.pattern_re = compile_pattern(&s.pattern).ok();
    }
    for (_, p) in &mut s.properties {
        compile_all(p);
    }
    if let Some(Additional::Schema(a)) = &mut s.additional {
        compile_all(a);
    }
    if let Some(i) = &mut s.items {
        compile_all(i);
    }
    for x in s
        .all_of
        .iter_mut()
        .chain(s.any_of.iter_mut())
        .chain(s.one_of.iter_mut())
    {
        compile_all(x);
    }
    if let Some(n) = &mut s.not {
        compile_all(n);
    }
}
