//! Validation of objects: the kube-openapi schema validator
//! (`k8s.io/kube-openapi/pkg/validation/validate`) with its error texts
//! (`.../validation/errors`), converted as `kubeOpenAPIResultToFieldErrors`
//! converts them; then embedded resources (`schema/objectmeta.Validate`) and
//! list-type sets and maps (`schema/listtype`).

use crate::path::FieldPath;
use crate::prune::{META_FIELDS, prune};
use crate::schema::{Additional, Schema};
use crate::{FieldError, formats};
use serde_json::{Map, Value};
use sluice_k8s_values::gofmt::{self, format_float_f, format_float_g, quote};
use sluice_k8s_values::gojson;

impl Schema {
    /// Validates `obj` (already pruned and defaulted) against the schema.
    ///
    /// Runs, in upstream's order: the `OpenAPI` schema validator (types,
    /// formats, enums, bounds, lengths, patterns, required, allOf/anyOf/
    /// oneOf/not, ...), the `apiVersion`/`kind` checks of
    /// `x-kubernetes-embedded-resource` objects, and the uniqueness of
    /// `x-kubernetes-list-type: set` items and `map` keys. The root
    /// `metadata` is left to the caller.
    pub fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let res = validate_node(self, obj, "");
        let mut errs = to_field_errors(res, None);
        embedded(&FieldPath::default(), obj, Some(self), false, &mut errs);
        if let Value::Object(m) = obj {
            list_sets_and_maps(&FieldPath::default(), self, m, &mut errs);
        }
        errs
    }
}

// ---------------------------------------------------------------------------
// kube-openapi results
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    InvalidType,
    Required,
    TooLong,
    Enum,
    MaxItems,
    TooManyProperties,
    /// Every other code; converted to `field.Invalid`.
    Other,
}

#[derive(Debug, Clone)]
enum OErr {
    /// An `*errors.Validation`.
    Validation {
        code: Code,
        name: String,
        value: Option<Value>,
        valid: i64,
        values: Vec<Value>,
        message: String,
    },
    /// Any other error (`apiError`, `fmt.Errorf`): reported at the root.
    Plain(String),
}

impl OErr {
    fn text(&self) -> &str {
        match self {
            OErr::Validation { message, .. } | OErr::Plain(message) => message,
        }
    }

    fn new(code: Code, name: &str, value: Option<Value>, message: String) -> Self {
        OErr::Validation {
            code,
            name: name.to_string(),
            value,
            valid: -1,
            values: Vec::new(),
            message,
        }
    }
}

/// `validate.Result`: errors (deduplicated by text) and a match count that
/// picks the best failing alternative of `anyOf`/`oneOf`.
#[derive(Debug, Default)]
struct Res {
    errors: Vec<OErr>,
    matches: usize,
}

impl Res {
    fn add(&mut self, e: OErr) {
        if !self.errors.iter().any(|x| x.text() == e.text()) {
            self.errors.push(e);
        }
    }

    fn merge(&mut self, other: Res) {
        for e in other.errors {
            self.add(e);
        }
        self.matches += other.matches;
    }

    fn valid(&self) -> bool {
        self.errors.is_empty()
    }

    fn err(e: OErr) -> Self {
        Self {
            errors: vec![e],
            matches: 0,
        }
    }

    fn inc(&mut self) {
        self.matches += 1;
    }
}

#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn of(n: &serde_json::Number) -> Self {
        match n.as_i64() {
            Some(i) => Num::Int(i),
            None => Num::Float(n.as_f64().unwrap_or(0.0)),
        }
    }

    #[allow(
        clippy::cast_precision_loss,
        reason = "Go converts int64 to float64 the same way"
    )]
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn value(self) -> Value {
        match self {
            Num::Int(i) => Value::from(i),
            Num::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        }
    }
}

/// `swag.IsFloat64AJSONInteger`.
#[allow(
    clippy::float_cmp,
    reason = "an exact integral value is the best case, as upstream"
)]
fn is_json_integer(f: f64) -> bool {
    const MAX: f64 = 9_007_199_254_740_992.0; // 1 << 53
    if !f.is_finite() || !(-MAX..=MAX).contains(&f) {
        return false;
    }
    let g = f.trunc();
    if f == g {
        return true;
    }
    let diff = (f - g).abs();
    if g == 0.0 {
        return false;
    }
    diff / (f.abs() + g.abs()) < 1e-9
}

/// The JSON "kind" the Go validator sees, and the type name it reports.
fn type_info(v: &Value) -> (&'static str, &'static str) {
    match v {
        Value::Bool(_) => ("boolean", ""),
        Value::String(_) => ("string", ""),
        Value::Number(n) if n.as_i64().is_some() => ("integer", "int64"),
        Value::Number(_) => ("number", "float64"),
        Value::Array(_) => ("array", ""),
        Value::Object(_) => ("object", ""),
        Value::Null => ("null", ""),
    }
}

fn in_body(name: &str, rest: &str) -> String {
    format!("{name} in body {rest}")
}

fn invalid_type(name: &str, type_name: &str, found: &str) -> OErr {
    OErr::new(
        Code::InvalidType,
        name,
        Some(Value::String(found.to_string())),
        in_body(
            name,
            &format!("must be of type {type_name}: {}", quote(found)),
        ),
    )
}

fn validate_node(s: &Schema, data: &Value, path: &str) -> Res {
    let mut result = Res::default();
    if data.is_null() {
        result.merge(type_validator(s, data, path));
        result.merge(common_validator(s, data, path));
        return result;
    }
    if !s.types().is_empty() || !s.vformat.is_empty() {
        result.merge(type_validator(s, data, path));
        result.inc();
    }
    result.merge(schema_props_validator(s, data, path));
    result.inc();
    if let Value::String(st) = data {
        result.merge(string_validator(s, st, path));
        result.inc();
        if !s.vformat.is_empty() {
            if !formats::check(&s.vformat, st) {
                result.add(invalid_type(path, &s.vformat, st));
            }
            result.inc();
        }
    }
    if let Value::Number(n) = data {
        result.merge(number_validator(s, Num::of(n), path));
        result.inc();
    }
    if let Value::Array(a) = data {
        result.merge(slice_validator(s, a, path));
        result.inc();
    }
    result.merge(common_validator(s, data, path));
    result.inc();
    if let Value::Object(m) = data {
        result.merge(object_validator(s, m, path));
        result.inc();
    }
    result.inc();
    result
}

fn type_validator(s: &Schema, data: &Value, path: &str) -> Res {
    let types = s.types();
    let ok = Res {
        errors: Vec::new(),
        matches: 1,
    };
    if data.is_null() {
        if !types.is_empty() && !types.contains(&"null") && !s.nullable {
            return Res::err(invalid_type(path, &types.join(","), "null"));
        }
        return ok;
    }
    let (sch_type, format) = type_info(data);
    let is_float_int = match data {
        Value::Number(n) if sch_type == "number" => {
            is_json_integer(n.as_f64().unwrap_or(0.5)) && types.contains(&"integer")
        }
        _ => false,
    };
    let is_int_float = sch_type == "integer" && types.contains(&"number");
    let string_or_slice = matches!(data, Value::String(_) | Value::Array(_));
    let fmt = s.vformat.as_str();
    let type_ok = types.contains(&sch_type) || is_float_int || is_int_float;
    if !string_or_slice && !fmt.is_empty() && !type_ok && format != fmt {
        return Res::err(invalid_type(path, fmt, format));
    }
    let numeric = types.contains(&"number") || types.contains(&"integer");
    if !numeric && !fmt.is_empty() && string_or_slice {
        return ok;
    }
    if !(types.contains(&sch_type) || is_float_int || is_int_float) {
        return Res::err(invalid_type(path, &types.join(","), sch_type));
    }
    ok
}

fn enum_matches(data: &Value, e: &Value) -> bool {
    match (data, e) {
        (Value::Number(d), Value::Number(ev)) => match (Num::of(d), Num::of(ev)) {
            (Num::Int(a), Num::Int(b)) => a == b,
            #[allow(
                clippy::float_cmp,
                reason = "reflect.DeepEqual compares floats exactly"
            )]
            (Num::Int(_), Num::Float(b)) => Num::of(d).as_f64() == b,
            #[allow(
                clippy::cast_possible_truncation,
                reason = "Go's reflect Convert truncates"
            )]
            (Num::Float(a), Num::Int(b)) => a.trunc() as i64 == b,
            #[allow(
                clippy::float_cmp,
                reason = "reflect.DeepEqual compares floats exactly"
            )]
            (Num::Float(a), Num::Float(b)) => a == b,
        },
        (Value::Null, _) => false,
        _ => data == e,
    }
}

fn common_validator(s: &Schema, data: &Value, path: &str) -> Res {
    let Some(values) = &s.enum_ else {
        return Res::default();
    };
    if values.is_empty() || values.iter().any(|e| enum_matches(data, e)) {
        return Res::default();
    }
    let list: Vec<String> = values.iter().map(go_sprint).collect();
    Res::err(OErr::Validation {
        code: Code::Enum,
        name: path.to_string(),
        value: Some(data.clone()),
        valid: -1,
        values: values.clone(),
        message: in_body(path, &format!("should be one of [{}]", list.join(" "))),
    })
}

/// `fmt.Sprint` of a decoded JSON value (as `%v` inside a slice prints it).
fn go_sprint(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => gofmt::number(n),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_sprint).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_sprint(&m[k.as_str()])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

fn string_validator(s: &Schema, data: &str, path: &str) -> Res {
    let len = i64::try_from(data.chars().count()).unwrap_or(i64::MAX);
    let value = || Some(Value::String(data.to_string()));
    if let Some(max) = s.max_length
        && len > max
    {
        return Res::err(OErr::Validation {
            code: Code::TooLong,
            name: path.to_string(),
            value: value(),
            valid: max,
            values: Vec::new(),
            message: in_body(path, &format!("should be at most {max} chars long")),
        });
    }
    if let Some(min) = s.min_length
        && len < min
    {
        return Res::err(OErr::new(
            Code::Other,
            path,
            value(),
            in_body(path, &format!("should be at least {min} chars long")),
        ));
    }
    if !s.pattern.is_empty() {
        match &s.pattern_re {
            Some(re) if re.is_match(data) => {}
            Some(_) => {
                return Res::err(OErr::new(
                    Code::Other,
                    path,
                    value(),
                    in_body(path, &format!("should match '{}'", s.pattern)),
                ));
            }
            None => {
                let detail = crate::schema::compile_pattern(&s.pattern)
                    .err()
                    .unwrap_or_default();
                return Res::err(OErr::new(
                    Code::Other,
                    path,
                    value(),
                    in_body(
                        path,
                        &format!(
                            "should match '{}, but pattern is invalid: {detail}'",
                            s.pattern
                        ),
                    ),
                ));
            }
        }
    }
    Res::default()
}

/// `IsValueValidAgainstRange` for the only case left after format stripping:
/// a single `integer` type, where the value must print as an `int64`.
fn range_error(v: Num, type_name: &str, prefix: &str, path: &str) -> Option<OErr> {
    if type_name != "integer" {
        return None;
    }
    let rep = match v {
        Num::Int(_) => return None,
        Num::Float(f) => format_float_f(f),
    };
    if rep.parse::<i64>().is_ok() {
        return None;
    }
    Some(OErr::Plain(format!(
        "{prefix} value must be of type integer (default format) in {path}"
    )))
}

fn num_text(n: Num) -> String {
    match n {
        Num::Int(i) => i.to_string(),
        Num::Float(f) => format_float_g(f),
    }
}

#[allow(
    clippy::cast_possible_truncation,
    reason = "Go's int64(float64) conversion"
)]
fn number_validator(s: &Schema, val: Num, path: &str) -> Res {
    let types = s.types();
    let type_name = if types.len() == 1 && (types[0] == "integer" || types[0] == "number") {
        types[0]
    } else {
        ""
    };
    let mut res = Res::default();
    if let Some(e) = range_error(val, type_name, "Checked", path) {
        res.add(e);
    }
    let data = val.as_f64();
    let mut multiple = Res::default();
    if let Some(factor) = s.multiple_of {
        let native = match range_error(Num::Float(factor), type_name, "MultipleOf", path) {
            Some(e) => {
                multiple.add(e);
                false
            }
            None => true,
        };
        let target = if native { val } else { Num::Float(data) };
        let (factor_n, not_multiple) = match target {
            Num::Int(d) => {
                let f = factor as i64;
                (Num::Int(f), f > 0 && d % f != 0)
            }
            Num::Float(d) => {
                let mult = if factor < 1.0 {
                    1.0 / factor * d
                } else {
                    d / factor
                };
                (Num::Float(factor), factor > 0.0 && !is_json_integer(mult))
            }
        };
        let positive = match factor_n {
            Num::Int(f) => f > 0,
            Num::Float(f) => f > 0.0,
        };
        if !positive {
            multiple.add(OErr::new(
                Code::Other,
                path,
                Some(factor_n.value()),
                format!(
                    "factor MultipleOf declared for {path} must be positive: {}",
                    num_text(factor_n)
                ),
            ));
        } else if not_multiple {
            multiple.add(OErr::new(
                Code::Other,
                path,
                Some(target.value()),
                in_body(
                    path,
                    &format!("should be a multiple of {}", num_text(factor_n)),
                ),
            ));
        }
    }
    let mut minimum = Res::default();
    if let Some(min) = s.minimum {
        let native = match range_error(Num::Float(min), type_name, "Minimum boundary", path) {
            Some(e) => {
                minimum.add(e);
                false
            }
            None => true,
        };
        let excl = s.exclusive_minimum;
        let (bound, fails) = match (native, val) {
            (true, Num::Int(d)) => {
                let m = min as i64;
                (Num::Int(m), if excl { d <= m } else { d < m })
            }
            _ => (Num::Float(min), if excl { data <= min } else { data < min }),
        };
        if fails {
            let rel = if excl {
                "should be greater than"
            } else {
                "should be greater than or equal to"
            };
            minimum.add(OErr::new(
                Code::Other,
                path,
                Some(val.value()),
                in_body(path, &format!("{rel} {}", num_text(bound))),
            ));
        }
    }
    let mut maximum = Res::default();
    if let Some(max) = s.maximum {
        let native = match range_error(Num::Float(max), type_name, "Maximum boundary", path) {
            Some(e) => {
                maximum.add(e);
                false
            }
            None => true,
        };
        let excl = s.exclusive_maximum;
        let (bound, fails) = match (native, val) {
            (true, Num::Int(d)) => {
                let m = max as i64;
                (Num::Int(m), if excl { d >= m } else { d > m })
            }
            _ => (Num::Float(max), if excl { data >= max } else { data > max }),
        };
        if fails {
            let rel = if excl {
                "should be less than"
            } else {
                "should be less than or equal to"
            };
            maximum.add(OErr::new(
                Code::Other,
                path,
                Some(val.value()),
                in_body(path, &format!("{rel} {}", num_text(bound))),
            ));
        }
    }
    res.merge(multiple);
    res.merge(minimum);
    res.merge(maximum);
    res.inc();
    res
}

fn slice_validator(s: &Schema, a: &[Value], path: &str) -> Res {
    let mut result = Res::default();
    if let Some(items) = &s.items {
        for (i, v) in a.iter().enumerate() {
            result.merge(validate_node(items, v, &format!("{path}[{i}]")));
        }
    }
    let size = i64::try_from(a.len()).unwrap_or(i64::MAX);
    if let Some(min) = s.min_items
        && size < min
    {
        result.add(OErr::new(
            Code::Other,
            path,
            Some(Value::from(size)),
            in_body(path, &format!("should have at least {min} items")),
        ));
    }
    if let Some(max) = s.max_items
        && size > max
    {
        result.add(OErr::Validation {
            code: Code::MaxItems,
            name: path.to_string(),
            value: Some(Value::from(size)),
            valid: max,
            values: Vec::new(),
            message: in_body(path, &format!("should have at most {max} items")),
        });
    }
    if s.unique_items {
        let dup = a.iter().enumerate().any(|(i, x)| a[..i].contains(x));
        if dup {
            result.add(OErr::new(
                Code::Other,
                path,
                None,
                in_body(path, "shouldn't contain duplicates"),
            ));
        }
    }
    result.inc();
    result
}

fn object_validator(s: &Schema, m: &Map<String, Value>, path: &str) -> Res {
    let mut res = Res::default();
    let num_keys = i64::try_from(m.len()).unwrap_or(i64::MAX);
    if let Some(min) = s.min_properties
        && num_keys < min
    {
        res.add(OErr::new(
            Code::Other,
            path,
            Some(Value::from(num_keys)),
            in_body(path, &format!("should have at least {min} properties")),
        ));
    }
    if let Some(max) = s.max_properties
        && num_keys > max
    {
        res.add(OErr::Validation {
            code: Code::TooManyProperties,
            name: path.to_string(),
            value: Some(Value::from(num_keys)),
            valid: max,
            values: Vec::new(),
            message: in_body(path, &format!("should have at most {max} properties")),
        });
    }
    match &s.additional {
        Some(Additional::Bool(false)) => {
            for k in m.keys() {
                if s.property(k).is_none() {
                    res.add(OErr::new(
                        Code::Other,
                        path,
                        Some(Value::String(k.clone())),
                        format!("{path}.{k} in body is a forbidden property"),
                    ));
                }
            }
        }
        Some(Additional::Schema(aps)) => {
            for (k, v) in m {
                if s.property(k).is_none() {
                    res.merge(validate_node(aps, v, &format!("{path}.{k}")));
                }
            }
        }
        _ => {}
    }
    for (name, ps) in &s.properties {
        if let Some(v) = m.get(name) {
            let r_name = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            res.merge(validate_node(ps, v, &r_name));
        }
    }
    for k in &s.required {
        if !m.contains_key(k) {
            let name = format!("{path}.{k}");
            res.add(OErr::new(
                Code::Required,
                &name,
                None,
                in_body(&name, "is required"),
            ));
        }
    }
    res
}

fn schema_props_validator(s: &Schema, data: &Value, path: &str) -> Res {
    let mut main = Res::default();
    if !s.any_of.is_empty() {
        let mut best: Option<Res> = None;
        let mut first_success: Option<Res> = None;
        let mut succeeded = false;
        for alt in &s.any_of {
            let r = validate_node(alt, data, path);
            if r.valid() {
                best = None;
                succeeded = true;
                first_success.get_or_insert(r);
                break;
            }
            if best.as_ref().is_none_or(|b| r.matches > b.matches) {
                best = Some(r);
            }
        }
        if !succeeded {
            main.add(OErr::Plain(format!(
                "{} must validate at least one schema (anyOf)",
                quote(path)
            )));
        }
        if let Some(b) = best {
            main.merge(b);
        } else if let Some(f) = first_success {
            main.merge(f);
        }
    }
    if !s.one_of.is_empty() {
        let mut best: Option<Res> = None;
        let mut first_success: Option<Res> = None;
        let mut validated = 0usize;
        for alt in &s.one_of {
            let r = validate_node(alt, data, path);
            if r.valid() {
                validated += 1;
                best = None;
                first_success.get_or_insert(r);
                continue;
            }
            if validated == 0 && best.as_ref().is_none_or(|b| r.matches > b.matches) {
                best = Some(r);
            }
        }
        if validated == 1 {
            if let Some(f) = first_success {
                main.merge(f);
            }
        } else {
            let additional = if validated == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {validated} valid alternatives")
            };
            main.add(OErr::Plain(format!(
                "{} must validate one and only one schema (oneOf). {additional}",
                quote(path)
            )));
            if let Some(b) = best {
                main.merge(b);
            }
        }
    }
    if !s.all_of.is_empty() {
        let mut validated = 0usize;
        for alt in &s.all_of {
            let r = validate_node(alt, data, path);
            if r.valid() {
                validated += 1;
            }
            main.merge(r);
        }
        if validated != s.all_of.len() {
            let additional = if validated == 0 {
                ". None validated"
            } else {
                ""
            };
            main.add(OErr::Plain(format!(
                "{} must validate all the schemas (allOf){additional}",
                quote(path)
            )));
        }
    }
    if let Some(not) = &s.not
        && validate_node(not, data, path).valid()
    {
        main.add(OErr::Plain(format!(
            "{} must not validate the schema (not)",
            quote(path)
        )));
    }
    main.inc();
    main
}

/// `kubeOpenAPIResultToFieldErrors`; `fld` is the path the validated value
/// sits at (`None`: the object root, printed `<nil>` upstream).
fn to_field_errors(res: Res, fld: Option<&FieldPath>) -> Vec<FieldError> {
    let root = fld.map_or_else(|| "<nil>".to_string(), FieldPath::or_nil);
    res.errors
        .into_iter()
        .map(|e| match e {
            OErr::Plain(msg) => {
                FieldError::invalid(root.clone(), &Value::String(String::new()), &msg)
            }
            OErr::Validation {
                code,
                name,
                value,
                valid,
                values,
                message,
            } => {
                let field = if name.is_empty() || name == "." {
                    root.clone()
                } else {
                    let trimmed = name.strip_prefix('.').unwrap_or(&name);
                    match fld {
                        Some(p) => p.child(trimmed).as_str().to_string(),
                        None => trimmed.to_string(),
                    }
                };
                let value = value.unwrap_or_else(|| Value::String(String::new()));
                match code {
                    Code::Required => FieldError::required(field, ""),
                    Code::Enum => {
                        let allowed: Vec<String> = values
                            .iter()
                            .map(|v| match v {
                                Value::String(s) => s.clone(),
                                other => gojson::to_string(other),
                            })
                            .collect();
                        FieldError::not_supported(field, &value, &allowed)
                    }
                    Code::TooLong => FieldError::too_long(field, valid),
                    Code::MaxItems | Code::TooManyProperties => {
                        FieldError::too_many(field, value.as_i64().unwrap_or(-1), valid)
                    }
                    Code::InvalidType => FieldError::type_invalid(field, &value, &message),
                    Code::Other => FieldError::invalid(field, &value, &message),
                }
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Embedded resources (schema/objectmeta.Validate)
// ---------------------------------------------------------------------------

/// `objectmeta.Validate`; `resource_root` treats `s` as an embedded resource.
fn embedded(
    path: &FieldPath,
    x: &Value,
    s: Option<&Schema>,
    resource_root: bool,
    errs: &mut Vec<FieldError>,
) {
    let Some(s) = s else { return };
    match x {
        Value::Object(m) => {
            if s.embedded || resource_root {
                embedded_resource(path, m, errs);
            }
            for (k, v) in m {
                if let Some(p) = s.property(k) {
                    embedded(&path.child(k), v, Some(p), false, errs);
                } else if let Some(ap) = &s.additional {
                    let aps = match ap {
                        Additional::Schema(a) => Some(&**a),
                        Additional::Bool(_) => None,
                    };
                    embedded(&path.key(k), v, aps, false, errs);
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                embedded(&path.index(i), v, s.items.as_deref(), false, errs);
            }
        }
        _ => {}
    }
}

/// `utilvalidation.IsDNS1035Label`.
fn dns1035_label_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let b = value.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-';
    if !ok {
        errs.push(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an \
             alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', \
             regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                .to_string(),
        );
    }
    errs
}

fn embedded_resource(path: &FieldPath, x: &Map<String, Value>, errs: &mut Vec<FieldError>) {
    if !x.contains_key("apiVersion") {
        errs.push(FieldError::required(path.child("apiVersion").as_str(), ""));
    }
    if !x.contains_key("kind") {
        errs.push(FieldError::required(path.child("kind").as_str(), ""));
    }
    for (k, v) in x {
        match k.as_str() {
            "apiVersion" => {
                let p = path.child("apiVersion");
                match v {
                    Value::String(av) if av.is_empty() => {
                        errs.push(FieldError::required(p.as_str(), ""));
                    }
                    Value::String(av) => {
                        if av != "/" && av.matches('/').count() > 1 {
                            errs.push(FieldError::invalid(
                                p.as_str(),
                                v,
                                &format!("unexpected GroupVersion string: {av}"),
                            ));
                        }
                    }
                    other => errs.push(FieldError::invalid(p.as_str(), other, "must be a string")),
                }
            }
            "kind" => {
                let p = path.child("kind");
                match v {
                    Value::String(kind) if kind.is_empty() => {
                        errs.push(FieldError::required(p.as_str(), ""));
                    }
                    Value::String(kind) => {
                        let e = dns1035_label_errors(&kind.to_lowercase());
                        if !e.is_empty() {
                            errs.push(FieldError::invalid(
                                p.as_str(),
                                v,
                                &format!(
                                    "may have mixed case, but should otherwise match: {}",
                                    e.join(",")
                                ),
                            ));
                        }
                    }
                    other => errs.push(FieldError::invalid(p.as_str(), other, "must be a string")),
                }
            }
            "metadata" if !v.is_object() && !v.is_null() => {
                errs.push(FieldError::invalid(
                    path.child("metadata").as_str(),
                    v,
                    "must be an object",
                ));
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------
// x-kubernetes-list-type set and map (schema/listtype)
// ---------------------------------------------------------------------------

fn list_sets_and_maps(
    path: &FieldPath,
    s: &Schema,
    obj: &Map<String, Value>,
    errs: &mut Vec<FieldError>,
) {
    if let Some(Additional::Schema(aps)) = &s.additional {
        for (k, v) in obj {
            list_value(&path.key(k), aps, v, errs);
        }
    }
    for (k, v) in obj {
        if let Some(sub) = s.property(k) {
            list_value(&path.child(k), sub, v, errs);
        }
    }
}

fn list_value(path: &FieldPath, s: &Schema, v: &Value, errs: &mut Vec<FieldError>) {
    match v {
        Value::Array(a) => list_array(path, s, a, errs),
        Value::Object(m) => list_sets_and_maps(path, s, m, errs),
        _ => {}
    }
}

fn list_array(path: &FieldPath, s: &Schema, a: &[Value], errs: &mut Vec<FieldError>) {
    match s.list_type.as_deref() {
        Some("set") => {
            let keys: Vec<SetKey> = a.iter().map(SetKey::of).collect();
            for i in non_unique(&keys) {
                errs.push(FieldError::duplicate(path.index(i).as_str(), &a[i]));
            }
        }
        Some("map") => list_map(path, s, a, errs),
        _ => {}
    }
    if let Some(items) = &s.items {
        for (i, v) in a.iter().enumerate() {
            list_value(&path.index(i), items, v, errs);
        }
    }
}

/// How `validateListSet` tells items apart: scalars by Go value (so `1` and
/// `1.0` differ), compounds by their JSON encoding.
#[derive(PartialEq, Eq, Hash, Clone)]
enum SetKey {
    Unspecified,
    Scalar(String),
    Compound(String),
}

impl SetKey {
    fn of(v: &Value) -> Self {
        match v {
            Value::Object(_) | Value::Array(_) => SetKey::Compound(gojson::to_string(v)),
            Value::Null => SetKey::Scalar("n".into()),
            Value::Bool(b) => SetKey::Scalar(format!("b{b}")),
            Value::String(s) => SetKey::Scalar(format!("s{s}")),
            Value::Number(n) => match Num::of(n) {
                Num::Int(i) => SetKey::Scalar(format!("i{i}")),
                Num::Float(f) => SetKey::Scalar(format!("f{}", f.to_bits())),
            },
        }
    }
}

/// The index of each key's second appearance.
fn non_unique(keys: &[SetKey]) -> Vec<usize> {
    let mut seen: std::collections::HashMap<&SetKey, usize> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let n = seen.entry(k).or_insert(0);
        *n += 1;
        if *n == 2 {
            out.push(i);
        }
    }
    out
}

fn list_map(path: &FieldPath, s: &Schema, a: &[Value], errs: &mut Vec<FieldError>) {
    for (i, x) in a.iter().enumerate() {
        if !x.is_null() && !x.is_object() {
            errs.push(FieldError::invalid(
                path.index(i).as_str(),
                x,
                "must be an object for an array of list-type map",
            ));
            return;
        }
    }
    if a.len() <= 1 {
        return;
    }
    if let [key_field] = s.list_map_keys.as_slice() {
        let keys: Vec<(SetKey, Option<&Value>)> = a
            .iter()
            .map(|x| match x.get(key_field) {
                Some(k) => (SetKey::of(k), Some(k)),
                None => (SetKey::Unspecified, None),
            })
            .collect();
        let only: Vec<SetKey> = keys.iter().map(|(k, _)| k.clone()).collect();
        for i in non_unique(&only) {
            let mut dup = Map::new();
            if let Some(k) = keys[i].1 {
                dup.insert(key_field.clone(), k.clone());
            }
            errs.push(FieldError::duplicate(
                path.index(i).as_str(),
                &Value::Object(dup),
            ));
        }
        return;
    }
    let key_maps: Vec<Value> = a
        .iter()
        .map(|x| {
            let mut key = Map::new();
            for f in &s.list_map_keys {
                if let Some(k) = x.get(f) {
                    key.insert(f.clone(), k.clone());
                }
            }
            Value::Object(key)
        })
        .collect();
    let keys: Vec<SetKey> = key_maps.iter().map(SetKey::of).collect();
    for i in non_unique(&keys) {
        errs.push(FieldError::duplicate(path.index(i).as_str(), &key_maps[i]));
    }
}

// ---------------------------------------------------------------------------
// Defaults in the schema (schema/defaulting.ValidateDefaults)
// ---------------------------------------------------------------------------

/// Checks every `default` (outside resource metadata): it must be pruned,
/// have valid embedded `apiVersion`/`kind`, and validate against its schema.
pub(crate) fn validate_defaults(root: &Schema, path: &FieldPath, errs: &mut Vec<FieldError>) {
    defaults_at(root, path, true, false, errs);
}

fn defaults_at(
    s: &Schema,
    path: &FieldPath,
    resource_root: bool,
    inside_meta: bool,
    errs: &mut Vec<FieldError>,
) {
    let embedded_here = s.embedded || resource_root;
    let inside_meta = inside_meta && !embedded_here;
    if let (Some(d), false) = (&s.default, inside_meta) {
        let dp = path.child("default");
        let mut pruned = d.clone();
        prune(
            &mut pruned,
            Some(s),
            &mut String::new(),
            &mut Vec::new(),
            embedded_here,
        );
        if pruned != *d {
            errs.push(FieldError::invalid(
                dp.as_str(),
                d,
                "must not have unknown fields",
            ));
        }
        let mut meta_errs = Vec::new();
        embedded(&dp, d, Some(s), embedded_here, &mut meta_errs);
        if meta_errs.is_empty() {
            errs.extend(to_field_errors(validate_node(s, d, ""), Some(&dp)));
        } else {
            errs.extend(meta_errs);
        }
    }
    if let Some(items) = &s.items {
        defaults_at(items, &path.child("items"), false, inside_meta, errs);
    }
    for (k, sub) in &s.properties {
        let sub_meta = inside_meta || (embedded_here && META_FIELDS.contains(&k.as_str()));
        defaults_at(sub, &path.child("properties").key(k), false, sub_meta, errs);
    }
}
