//! The shape of the generated message tables (`generated.rs`).
//!
//! One [`Message`] per protobuf message reachable from a supported kind; a
//! field names its JSON key exactly as the Go `json` tag does, and carries the
//! two facts the Go encoder leaves implicit: whether a zero value is kept in
//! JSON (pointer fields, fields without `omitempty`) and whether the field is
//! an embedded struct whose JSON is inlined into the parent.

/// A protobuf scalar as Kubernetes uses them (all `optional`, proto2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    String,
    Bytes,
    Int32,
    Int64,
    Bool,
    Double,
}

/// A field's value type: a scalar or a message (an index into `MESSAGES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    S(Scalar),
    M(u16),
}

/// Singular, repeated, or a `map<string, ty>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Card {
    One,
    Rep,
    Map,
}

/// How a message turns into JSON: a plain object, or one of the
/// apimachinery and apiextensions types with a custom JSON form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A JSON object, one key per set field.
    Object,
    /// `metav1.Time`: `{1: seconds, 2: nanos}` as RFC 3339 with whole seconds.
    Time,
    /// `metav1.MicroTime`: RFC 3339 with six fractional digits.
    MicroTime,
    /// `metav1.Duration`: `{1: nanoseconds}` as a Go duration string.
    #[allow(
        dead_code,
        reason = "no supported kind has a metav1.Duration field yet; the next one that does needs no code"
    )]
    Duration,
    /// `resource.Quantity`: `{1: string}` as that string.
    Quantity,
    /// `intstr.IntOrString`: `{1: type, 2: intVal, 3: strVal}` as a number or a string.
    IntOrString,
    /// `runtime.RawExtension`, `metav1.FieldsV1`, apiextensions `JSON`:
    /// `{1: raw JSON bytes}` embedded as JSON.
    RawJson,
    /// apiextensions `JSONSchemaPropsOrArray`: `{1: schema, 2: repeated schema}`.
    SchemaOrArray,
    /// apiextensions `JSONSchemaPropsOrBool`: `{1: allows, 2: schema}`.
    SchemaOrBool,
    /// apiextensions `JSONSchemaPropsOrStringArray`: `{1: schema, 2: repeated string}`.
    SchemaOrStringArray,
    /// A named `[]string` (`ExtraValue`, `Verbs`): `{1: repeated string}` as an array.
    StringList,
}

/// The zero value of this field is kept in JSON (a Go pointer, or no `omitempty`).
pub(crate) const KEEP_ZERO: u8 = 1;
/// The field is an embedded Go struct (`json:""`): its keys go into the parent.
pub(crate) const INLINE: u8 = 2;

/// One protobuf field.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub(crate) tag: u32,
    pub(crate) json: &'static str,
    pub(crate) ty: Ty,
    pub(crate) card: Card,
    pub(crate) flags: u8,
}

impl Field {
    pub(crate) fn keep_zero(&self) -> bool {
        self.flags & KEEP_ZERO != 0
    }
    pub(crate) fn inline(&self) -> bool {
        self.flags & INLINE != 0
    }
}

/// One protobuf message; `fields` are in Go struct order (the JSON key order).
#[derive(Debug)]
pub(crate) struct Message {
    /// k8s-pb's module path and name, e.g. `api.core.v1.PodSpec`.
    pub(crate) name: &'static str,
    pub(crate) shape: Shape,
    pub(crate) fields: &'static [Field],
}

impl Message {
    pub(crate) fn field(&self, tag: u32) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.tag == tag)
    }
}

/// Table constructor, to keep the generated file short.
pub(crate) const fn f(tag: u32, json: &'static str, ty: Ty, card: Card, flags: u8) -> Field {
    Field {
        tag,
        json,
        ty,
        card,
        flags,
    }
}
