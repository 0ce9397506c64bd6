//! Structural `OpenAPI` schemas of `CustomResourceDefinitions`: validation, defaulting, pruning.
//!
//! This crate does, over plain [`serde_json::Value`]s and without any I/O, what
//! `apiextensions-apiserver` does with the `schema.openAPIV3Schema` of a
//! `CustomResourceDefinition` version:
//!
//! - [`Schema::parse`] reads a `JSONSchemaProps` document and checks it the way
//!   CRD validation does (`ValidateCustomResourceDefinitionOpenAPISchema`, the
//!   structural-schema rules of `ValidateStructural`, and `ValidateDefaults`),
//!   returning upstream-shaped [`FieldError`]s under a caller-given path prefix;
//! - [`Schema::prune`] drops unknown fields (and non-nullable `null`s without a
//!   default), as the custom resource codec does on decode and on read;
//! - [`Schema::apply_defaults`] applies `default`s (`structuraldefaulting.Default`);
//! - [`Schema::validate`] validates an object as the kube-openapi schema
//!   validator does, then embedded resources (`apiVersion`/`kind`) and
//!   `x-kubernetes-list-type` `set`/`map` uniqueness, with upstream error text;
//! - [`Schema::at`] and [`json_path`] serve the scale subresource and
//!   `additionalPrinterColumns`.
//!
//! Error text follows `k8s.io/kube-openapi/pkg/validation/errors` (`"spec.replicas
//! in body must be of type integer: \"string\""`) converted the way
//! `apiextensions-apiserver/pkg/apiserver/validation.kubeOpenAPIResultToFieldErrors`
//! does, with bodies rendered as `field.Error.ErrorBody` renders them.
//!
//! Known differences from upstream:
//! - `pattern` uses the `regex` crate (RE2-like, as Go's `regexp`); Go and
//!   ECMA-262 patterns that Rust's syntax rejects or reads differently
//!   (e.g. `\Z`, possessive or Perl-only escapes) are refused by [`Schema::parse`]
//!   with a Rust error message after `must be a valid regular expression, but
//!   isn't: `. Neither Go nor this crate supports look-around or back-references.
//! - Metadata of embedded resources is not run through `ValidateObjectMeta`
//!   and is not coerced; only `apiVersion`/`kind` are checked.
//! - `x-kubernetes-validations` (CEL) rules are syntax-checked for emptiness
//!   and line breaks only; they are never compiled or evaluated.
//! - Go map iteration order is random upstream; this crate reports errors in
//!   schema and object order.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod defaults;
mod formats;
mod jsonpath;
mod path;
mod prune;
mod schema;
mod validate;

#[cfg(test)]
mod tests;

use serde_json::Value;
use sluice_k8s_values::{gofmt, gojson};
use std::fmt;

pub use jsonpath::json_path;
pub use schema::Schema;

/// The `reason`s ([`FieldError::reason`]) this crate produces, equal to the
/// upstream `metav1.CauseType` strings.
pub mod reason {
    /// A required value is missing (`field.ErrorTypeRequired`).
    pub const REQUIRED: &str = "FieldValueRequired";
    /// A malformed value (`field.ErrorTypeInvalid`).
    pub const INVALID: &str = "FieldValueInvalid";
    /// A value of the wrong JSON type (`field.ErrorTypeTypeInvalid`).
    pub const TYPE_INVALID: &str = "FieldValueTypeInvalid";
    /// A value outside an enumeration (`field.ErrorTypeNotSupported`).
    pub const NOT_SUPPORTED: &str = "FieldValueNotSupported";
    /// A string longer than `maxLength` (`field.ErrorTypeTooLong`).
    pub const TOO_LONG: &str = "FieldValueTooLong";
    /// An array or object with too many entries (`field.ErrorTypeTooMany`).
    pub const TOO_MANY: &str = "FieldValueTooMany";
    /// A value that is not allowed here (`field.ErrorTypeForbidden`).
    pub const FORBIDDEN: &str = "FieldValueForbidden";
    /// A duplicate in a list-type set or map (`field.ErrorTypeDuplicate`).
    pub const DUPLICATE: &str = "FieldValueDuplicate";
}

/// One field-level error, shaped like an upstream `field.Error` as it appears
/// in a `Status` cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The upstream cause type, one of the [`reason`] constants.
    pub reason: &'static str,
    /// The field path, e.g. `spec.replicas` or `spec.items[2].name`; `<nil>`
    /// for errors about the whole object (upstream prints a nil path so).
    pub field: String,
    /// The error body as upstream's `ErrorBody()` renders it, e.g.
    /// `Invalid value: "string": spec.replicas in body must be of type integer: "string"`.
    /// The full upstream error string is `format!("{field}: {message}")`
    /// (this type's `Display`).
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// How `field.Error.ErrorBody` prints a bad value: `%q` for strings, `%v` for numbers
/// and booleans, JSON for everything else.
fn bad_value(v: &Value) -> String {
    match v {
        Value::String(s) => gofmt::quote(s),
        Value::Number(n) => gofmt::number(n),
        Value::Bool(b) => b.to_string(),
        other => gojson::to_string(other),
    }
}

fn with_detail(mut s: String, detail: &str) -> String {
    if !detail.is_empty() {
        s.push_str(": ");
        s.push_str(detail);
    }
    s
}

impl FieldError {
    pub(crate) fn required(field: impl Into<String>, detail: &str) -> Self {
        Self {
            reason: reason::REQUIRED,
            field: field.into(),
            message: with_detail("Required value".into(), detail),
        }
    }

    pub(crate) fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self {
            reason: reason::FORBIDDEN,
            field: field.into(),
            message: with_detail("Forbidden".into(), detail),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Self {
            reason: reason::INVALID,
            field: field.into(),
            message: with_detail(format!("Invalid value: {}", bad_value(value)), detail),
        }
    }

    pub(crate) fn type_invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Self {
            reason: reason::TYPE_INVALID,
            field: field.into(),
            message: with_detail(format!("Invalid value: {}", bad_value(value)), detail),
        }
    }

    pub(crate) fn not_supported(field: impl Into<String>, value: &Value, valid: &[String]) -> Self {
        let detail = if valid.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = valid.iter().map(|v| gofmt::quote(v)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self {
            reason: reason::NOT_SUPPORTED,
            field: field.into(),
            message: with_detail(format!("Unsupported value: {}", bad_value(value)), &detail),
        }
    }

    pub(crate) fn too_long(field: impl Into<String>, max: i64) -> Self {
        let detail = if max >= 0 {
            format!(
                "may not be more than {max} {}",
                if max == 1 { "byte" } else { "bytes" }
            )
        } else {
            "value is too long".into()
        };
        Self {
            reason: reason::TOO_LONG,
            field: field.into(),
            message: with_detail("Too long".into(), &detail),
        }
    }

    pub(crate) fn too_many(field: impl Into<String>, actual: i64, max: i64) -> Self {
        let detail = if max >= 0 {
            format!(
                "must have at most {max} {}",
                if max == 1 { "item" } else { "items" }
            )
        } else {
            "has too many items".into()
        };
        let body = if actual >= 0 {
            format!("Too many: {actual}")
        } else {
            "Too many".into()
        };
        Self {
            reason: reason::TOO_MANY,
            field: field.into(),
            message: with_detail(body, &detail),
        }
    }

    pub(crate) fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Self {
            reason: reason::DUPLICATE,
            field: field.into(),
            message: format!("Duplicate value: {}", bad_value(value)),
        }
    }
}
