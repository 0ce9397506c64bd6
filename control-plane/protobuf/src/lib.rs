//! Kubernetes protobuf request bodies (the k8s magic envelope) decoded to the JSON the API server stores.
//!
//! kubectl's typed clients send `application/vnd.kubernetes.protobuf`: the
//! four bytes `k8s\0`, then a `runtime.Unknown` message
//! `{1: typeMeta{1: apiVersion, 2: kind}, 2: raw, 3: contentEncoding, 4: contentType}`
//! whose `raw` is the object's own protobuf message. [`decode`] turns such a
//! body into the JSON that `encoding/json` gives for the same Go object
//! (keys as in the Go `json` tags, `omitempty` honoured, explicit zeros of
//! pointer fields kept); [`encode`] is its inverse.
//!
//! The decoder is schema-driven: one table per message (`generated.rs`, made
//! by `generate.rs` from the k8s-pb crate's field numbers and the Go API
//! types' JSON tags) walked by one generic reader, with the few apimachinery
//! types that have a JSON form of their own (`Time`, `MicroTime`,
//! `Duration`, `Quantity`, `IntOrString`, `RawExtension`, apiextensions'
//! `JSON` and `JSONSchemaProps*`) handled by shape. Supported kinds are the
//! table in `kinds.rs`.
//!
//! Nothing here panics on input: every read is bounds-checked, nesting is
//! limited, and each failure is a [`ProtobufError`] naming where it happened.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod decode;
mod encode;
#[cfg(test)]
mod generate;
#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, reason = "generated tables")]
mod generated;
mod kinds;
mod schema;
mod time;
mod wire;

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

/// The four bytes that open every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// The content type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Deepest message nesting accepted (recursive schemas, hostile input).
pub const MAX_DEPTH: usize = 64;

/// A decoded body: the envelope's type and the object as JSON, with
/// `apiVersion` and `kind` set.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// `apiVersion` from the envelope, e.g. `apps/v1`.
    pub api_version: String,
    /// `kind` from the envelope, e.g. `Deployment`.
    pub kind: String,
    /// The object, as Kubernetes' JSON form.
    pub object: Value,
}

/// Why a body could not be decoded or an object encoded.
///
/// `path` fields name the place in the object (`spec.template.spec.containers[0].ports[1].containerPort`),
/// `<root>` for the object itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtobufError {
    /// The body does not start with `k8s\0`.
    #[error("not a Kubernetes protobuf body: it does not start with the magic bytes k8s\\0")]
    NoMagic,
    /// The body ends inside a field.
    #[error("{path}: truncated protobuf message: it ends inside a {what}")]
    Truncated {
        /// Where.
        path: String,
        /// What was being read.
        what: &'static str,
    },
    /// Bytes that are not a protobuf message.
    #[error("{path}: malformed protobuf message: {reason}")]
    Malformed {
        /// Where.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A known field arrived with a wire type its schema does not allow.
    #[error("{path}: field {tag} has wire type {found}, but the schema says {expected}")]
    WrongWireType {
        /// Where.
        path: String,
        /// The field number.
        tag: u32,
        /// The schema's wire type.
        expected: &'static str,
        /// The body's wire type.
        found: &'static str,
    },
    /// A string field holds bytes that are not UTF-8.
    #[error("{path}: string field is not valid UTF-8")]
    InvalidUtf8 {
        /// Where.
        path: String,
    },
    /// A value that has no JSON form (a time past year 9999, a NaN, a bad quantity...).
    #[error("{path}: invalid value: {reason}")]
    InvalidValue {
        /// Where.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Embedded JSON (`RawExtension`, `FieldsV1`, apiextensions `JSON`) does not parse.
    #[error("{path}: embedded JSON does not parse: {source}")]
    InvalidJson {
        /// Where.
        path: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The envelope's `contentEncoding` is set (Kubernetes never sets it).
    #[error("unsupported content encoding {0:?}: only the identity encoding is supported")]
    UnsupportedEncoding(String),
    /// The envelope's `contentType` names neither protobuf nor JSON.
    #[error("unsupported inner content type {0:?}")]
    UnsupportedContentType(String),
    /// The envelope lacks `apiVersion` or `kind`.
    #[error("the envelope has no apiVersion or no kind")]
    MissingTypeMeta,
    /// No schema for this apiVersion and kind.
    #[error("no protobuf schema for apiVersion {api_version:?} kind {kind:?}")]
    UnknownKind {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
    },
    /// Messages nested deeper than [`MAX_DEPTH`].
    #[error("{path}: messages nested deeper than {MAX_DEPTH} levels")]
    TooDeep {
        /// Where.
        path: String,
    },
    /// (encode) A JSON key the schema does not know.
    #[error("{path}: field {key:?} is not in the schema of {message}")]
    UnknownField {
        /// Where.
        path: String,
        /// The key.
        key: String,
        /// The message, as k8s-pb names it.
        message: &'static str,
    },
    /// (encode) A JSON value of the wrong type.
    #[error("{path}: expected {expected}, found {found}")]
    TypeMismatch {
        /// Where.
        path: String,
        /// What the schema wants.
        expected: &'static str,
        /// What the JSON has.
        found: String,
    },
}

impl ProtobufError {
    pub(crate) fn truncated(what: &'static str) -> Self {
        ProtobufError::Truncated {
            path: String::new(),
            what,
        }
    }

    pub(crate) fn malformed(reason: &'static str) -> Self {
        ProtobufError::Malformed {
            path: String::new(),
            reason,
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        ProtobufError::InvalidValue {
            path: String::new(),
            reason: reason.into(),
        }
    }

    pub(crate) fn mismatch(expected: &'static str, found: &Value) -> Self {
        let found = match found {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        };
        ProtobufError::TypeMismatch {
            path: String::new(),
            expected,
            found: found.into(),
        }
    }

    fn path_mut(&mut self) -> Option<&mut String> {
        match self {
            ProtobufError::Truncated { path, .. }
            | ProtobufError::Malformed { path, .. }
            | ProtobufError::WrongWireType { path, .. }
            | ProtobufError::InvalidUtf8 { path }
            | ProtobufError::InvalidValue { path, .. }
            | ProtobufError::InvalidJson { path, .. }
            | ProtobufError::TooDeep { path }
            | ProtobufError::UnknownField { path, .. }
            | ProtobufError::TypeMismatch { path, .. } => Some(path),
            _ => None,
        }
    }

    /// Prefixes the error's path with an object key.
    pub(crate) fn at(mut self, key: &str) -> Self {
        if let Some(path) = self.path_mut() {
            if path.is_empty() || path.starts_with('[') {
                path.insert_str(0, key);
            } else {
                path.insert(0, '.');
                path.insert_str(0, key);
            }
        }
        self
    }

    /// Prefixes the error's path with an array index.
    pub(crate) fn at_index(mut self, i: usize) -> Self {
        if let Some(path) = self.path_mut() {
            let seg = format!("[{i}]");
            if path.is_empty() || path.starts_with('[') {
                path.insert_str(0, &seg);
            } else {
                path.insert(0, '.');
                path.insert_str(0, &seg);
            }
        }
        self
    }

    /// Names the root for errors raised on the object itself.
    fn rooted(mut self) -> Self {
        if let Some(path) = self.path_mut()
            && path.is_empty()
        {
            path.push_str("<root>");
        }
        self
    }
}

/// `(apiVersion, kind)` -> message index.
fn kind_index() -> &'static HashMap<(&'static str, &'static str), u16> {
    static INDEX: OnceLock<HashMap<(&'static str, &'static str), u16>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let by_name: HashMap<&str, u16> = generated::MESSAGES
            .iter()
            .enumerate()
            .filter_map(|(i, m)| u16::try_from(i).ok().map(|i| (m.name, i)))
            .collect();
        kinds::KINDS
            .iter()
            .filter_map(|(v, k, m)| by_name.get(m).map(|i| ((*v, *k), *i)))
            .collect()
    })
}

fn message_for(api_version: &str, kind: &str) -> Option<u16> {
    kind_index().get(&(api_version, kind)).copied()
}

/// Whether [`decode`] and [`encode`] know this apiVersion and kind.
pub fn supports(api_version: &str, kind: &str) -> bool {
    message_for(api_version, kind).is_some()
}

/// Every supported `(apiVersion, kind)`.
pub fn supported_kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    kinds::KINDS
        .iter()
        .filter(|(v, k, _)| supports(v, k))
        .map(|(v, k, _)| (*v, *k))
}

fn string_field(bytes: &[u8]) -> Result<String, ProtobufError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtobufError::InvalidUtf8 {
        path: String::new(),
    })
}

fn expect_len(tag: u32, wire: wire::WireType) -> Result<(), ProtobufError> {
    if wire == wire::WireType::Len {
        Ok(())
    } else {
        Err(ProtobufError::WrongWireType {
            path: String::new(),
            tag,
            expected: wire::WireType::Len.name(),
            found: wire.name(),
        })
    }
}

/// The envelope's four fields.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

fn read_envelope(body: &[u8]) -> Result<Envelope<'_>, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::NoMagic)?;
    let mut env = Envelope {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
        content_encoding: String::new(),
        content_type: String::new(),
    };
    let mut r = wire::Reader::new(rest);
    while let Some((tag, wt)) = r.key().map_err(|e| e.at("<envelope>"))? {
        let seg = match tag {
            1 => "typeMeta",
            2 => "raw",
            3 => "contentEncoding",
            4 => "contentType",
            _ => {
                r.skip(wt).map_err(|e| e.at("<envelope>"))?;
                continue;
            }
        };
        expect_len(tag, wt).map_err(|e| e.at("<envelope>"))?;
        let bytes = r.bytes().map_err(|e| e.at(seg).at("<envelope>"))?;
        match tag {
            1 => {
                let mut tm = wire::Reader::new(bytes);
                while let Some((t, w)) = tm.key().map_err(|e| e.at(seg).at("<envelope>"))? {
                    if t != 1 && t != 2 {
                        tm.skip(w).map_err(|e| e.at(seg).at("<envelope>"))?;
                        continue;
                    }
                    let name = if t == 1 { "apiVersion" } else { "kind" };
                    let fail = |e: ProtobufError| e.at(name).at(seg).at("<envelope>");
                    expect_len(t, w).map_err(fail)?;
                    let s = string_field(tm.bytes().map_err(fail)?).map_err(fail)?;
                    if t == 1 {
                        env.api_version = s;
                    } else {
                        env.kind = s;
                    }
                }
            }
            2 => env.raw = bytes,
            _ => {
                let s = string_field(bytes).map_err(|e| e.at(seg).at("<envelope>"))?;
                if tag == 3 {
                    env.content_encoding = s;
                } else {
                    env.content_type = s;
                }
            }
        }
    }
    Ok(env)
}

/// Decodes a `k8s\0`-prefixed protobuf body into the object's JSON.
pub fn decode(body: &[u8]) -> Result<Decoded, ProtobufError> {
    decode_body(body, 0)
}

pub(crate) fn decode_body(body: &[u8], depth: usize) -> Result<Decoded, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep {
            path: String::new(),
        });
    }
    let env = read_envelope(body)?;
    if !env.content_encoding.is_empty() {
        return Err(ProtobufError::UnsupportedEncoding(env.content_encoding));
    }
    if env.api_version.is_empty() || env.kind.is_empty() {
        return Err(ProtobufError::MissingTypeMeta);
    }
    let mut object = match env.content_type.as_str() {
        "" | CONTENT_TYPE => {
            let index = message_for(&env.api_version, &env.kind).ok_or_else(|| {
                ProtobufError::UnknownKind {
                    api_version: env.api_version.clone(),
                    kind: env.kind.clone(),
                }
            })?;
            decode::message(index, env.raw, depth).map_err(ProtobufError::rooted)?
        }
        "application/json" => {
            serde_json::from_slice(env.raw).map_err(|source| ProtobufError::InvalidJson {
                path: "<root>".into(),
                source,
            })?
        }
        other => return Err(ProtobufError::UnsupportedContentType(other.into())),
    };
    let Value::Object(fields) = &mut object else {
        return Err(ProtobufError::InvalidValue {
            path: "<root>".into(),
            reason: "the object is not a JSON object".into(),
        });
    };
    // Go's TypeMeta comes first: kind, then apiVersion.
    let mut out = serde_json::Map::with_capacity(fields.len() + 2);
    out.insert("kind".into(), Value::String(env.kind.clone()));
    out.insert("apiVersion".into(), Value::String(env.api_version.clone()));
    for (k, v) in std::mem::take(fields) {
        if k != "kind" && k != "apiVersion" {
            out.insert(k, v);
        }
    }
    Ok(Decoded {
        api_version: env.api_version,
        kind: env.kind,
        object: Value::Object(out),
    })
}

/// Encodes a JSON object (with `apiVersion` and `kind`) as a `k8s\0`
/// protobuf body, as a Go client would send it.
pub fn encode(object: &Value) -> Result<Vec<u8>, ProtobufError> {
    let Value::Object(fields) = object else {
        return Err(ProtobufError::mismatch("an object", object).rooted());
    };
    let (Some(Value::String(api_version)), Some(Value::String(kind))) =
        (fields.get("apiVersion"), fields.get("kind"))
    else {
        return Err(ProtobufError::MissingTypeMeta);
    };
    let index = message_for(api_version, kind).ok_or_else(|| ProtobufError::UnknownKind {
        api_version: api_version.clone(),
        kind: kind.clone(),
    })?;
    let raw = encode::message(index, object, 0, true).map_err(ProtobufError::rooted)?;
    let mut type_meta = wire::Writer::default();
    type_meta.bytes_field(1, api_version.as_bytes());
    type_meta.bytes_field(2, kind.as_bytes());
    let mut w = wire::Writer::default();
    w.buf.extend_from_slice(MAGIC);
    w.bytes_field(1, &type_meta.buf);
    w.bytes_field(2, &raw);
    w.bytes_field(3, b"");
    w.bytes_field(4, b"");
    Ok(w.buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_table() {
        for (v, k, m) in kinds::KINDS {
            assert!(
                supports(v, k),
                "{v} {k}: message {m} is not in generated.rs: regenerate (src/generate.rs)"
            );
        }
    }

    #[test]
    fn table_indices_are_in_range() {
        for m in generated::MESSAGES {
            for f in m.fields {
                if let schema::Ty::M(i) = f.ty {
                    assert!(
                        usize::from(i) < generated::MESSAGES.len(),
                        "{}: field {}",
                        m.name,
                        f.tag
                    );
                }
            }
        }
    }

    #[test]
    fn error_paths_read_naturally() {
        let e = ProtobufError::truncated("varint")
            .at("name")
            .at_index(0)
            .at("containers")
            .at("spec");
        assert_eq!(
            e.to_string(),
            "spec.containers[0].name: truncated protobuf message: it ends inside a varint"
        );
    }
}
