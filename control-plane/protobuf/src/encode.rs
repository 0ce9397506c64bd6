//! Kubernetes JSON -> protobuf message bytes, the inverse of `decode`.

use base64::Engine as _;
use serde_json::Value;

use crate::generated::MESSAGES;
use crate::schema::{Card, Field, Message, Scalar, Shape, Ty};
use crate::time::{parse_duration, parse_rfc3339};
use crate::wire::Writer;
use crate::{MAX_DEPTH, ProtobufError};

fn msg(index: u16) -> Result<&'static Message, ProtobufError> {
    MESSAGES
        .get(usize::from(index))
        .ok_or_else(|| ProtobufError::malformed("schema index out of range"))
}

#[allow(
    clippy::cast_sign_loss,
    reason = "protobuf varints carry two's complement"
)]
fn int(v: &Value, min: i64, max: i64) -> Result<u64, ProtobufError> {
    let n = v
        .as_i64()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            ProtobufError::mismatch(
                if max == i64::MAX {
                    "an int64"
                } else {
                    "an int32"
                },
                v,
            )
        })?;
    Ok(n as u64)
}

fn scalar(w: &mut Writer, tag: u32, s: Scalar, v: &Value) -> Result<(), ProtobufError> {
    match s {
        Scalar::String => {
            let s = v
                .as_str()
                .ok_or_else(|| ProtobufError::mismatch("a string", v))?;
            w.bytes_field(tag, s.as_bytes());
        }
        Scalar::Bytes => {
            let s = v
                .as_str()
                .ok_or_else(|| ProtobufError::mismatch("a base64 string", v))?;
            let b = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| ProtobufError::mismatch("a base64 string", v))?;
            w.bytes_field(tag, &b);
        }
        Scalar::Int32 => w.varint_field(tag, int(v, i64::from(i32::MIN), i64::from(i32::MAX))?),
        Scalar::Int64 => w.varint_field(tag, int(v, i64::MIN, i64::MAX)?),
        Scalar::Bool => {
            let b = v
                .as_bool()
                .ok_or_else(|| ProtobufError::mismatch("a boolean", v))?;
            w.varint_field(tag, u64::from(b));
        }
        Scalar::Double => {
            let d = v
                .as_f64()
                .ok_or_else(|| ProtobufError::mismatch("a number", v))?;
            w.fixed64_field(tag, d.to_bits());
        }
    }
    Ok(())
}

fn value(w: &mut Writer, tag: u32, ty: Ty, v: &Value, depth: usize) -> Result<(), ProtobufError> {
    match ty {
        Ty::S(s) => scalar(w, tag, s, v),
        Ty::M(index) => {
            let bytes = message(index, v, depth + 1, false)?;
            w.bytes_field(tag, &bytes);
            Ok(())
        }
    }
}

fn field(w: &mut Writer, f: &Field, v: &Value, depth: usize) -> Result<(), ProtobufError> {
    match f.card {
        Card::One => value(w, f.tag, f.ty, v, depth),
        Card::Rep => {
            let list = v
                .as_array()
                .ok_or_else(|| ProtobufError::mismatch("an array", v))?;
            for (i, item) in list.iter().enumerate() {
                value(w, f.tag, f.ty, item, depth).map_err(|e| e.at_index(i))?;
            }
            Ok(())
        }
        Card::Map => {
            let map = v
                .as_object()
                .ok_or_else(|| ProtobufError::mismatch("an object", v))?;
            for (k, item) in map {
                let mut entry = Writer::default();
                entry.bytes_field(1, k.as_bytes());
                value(&mut entry, 2, f.ty, item, depth).map_err(|e| e.at(k))?;
                w.bytes_field(f.tag, &entry.buf);
            }
            Ok(())
        }
    }
}

/// Whether `key` is one of `m`'s JSON keys, its inlined structs' included.
fn knows(m: &Message, key: &str) -> bool {
    m.fields.iter().any(|f| {
        if f.inline() {
            matches!(f.ty, Ty::M(i) if MESSAGES.get(usize::from(i)).is_some_and(|inner| knows(inner, key)))
        } else {
            f.json == key
        }
    })
}

/// Which JSON keys an object may carry besides its schema's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keys {
    /// The kind itself: also `apiVersion` and `kind`.
    Top,
    /// A nested message: its schema's keys only.
    Nested,
    /// An inlined struct reads its parent's object, already checked.
    Inline,
}

fn object(
    w: &mut Writer,
    m: &'static Message,
    v: &Value,
    depth: usize,
    keys: Keys,
) -> Result<(), ProtobufError> {
    let obj = v
        .as_object()
        .ok_or_else(|| ProtobufError::mismatch("an object", v))?;
    for key in obj.keys() {
        if keys == Keys::Inline {
            break;
        }
        if !(keys == Keys::Top && (key == "apiVersion" || key == "kind")) && !knows(m, key) {
            return Err(ProtobufError::UnknownField {
                path: String::new(),
                key: key.clone(),
                message: m.name,
            });
        }
    }
    let mut fields: Vec<&Field> = m.fields.iter().collect();
    fields.sort_by_key(|f| f.tag);
    for f in fields {
        if f.inline() {
            let Ty::M(index) = f.ty else { continue };
            let inner = msg(index)?;
            let mut sub = Writer::default();
            object(&mut sub, inner, v, depth + 1, Keys::Inline)?;
            if !sub.buf.is_empty() {
                w.bytes_field(f.tag, &sub.buf);
            }
            continue;
        }
        match obj.get(f.json) {
            None | Some(Value::Null) => {}
            Some(item) => field(w, f, item, depth).map_err(|e| e.at(f.json))?,
        }
    }
    Ok(())
}

/// Encodes `v` as message `index`; `top` (the kind itself) lets the object
/// carry `apiVersion` and `kind`.
#[allow(
    clippy::many_single_char_names,
    reason = "m, v, w: the message, its JSON, the writer, as everywhere in this module"
)]
pub(crate) fn message(
    index: u16,
    v: &Value,
    depth: usize,
    top: bool,
) -> Result<Vec<u8>, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep {
            path: String::new(),
        });
    }
    let m = msg(index)?;
    let mut w = Writer::default();
    let sub = |f: u32| {
        m.field(f)
            .ok_or_else(|| ProtobufError::malformed("table lacks a well-known field"))
    };
    match m.shape {
        Shape::Object => object(
            &mut w,
            m,
            v,
            depth,
            if top { Keys::Top } else { Keys::Nested },
        )?,
        Shape::Time | Shape::MicroTime => {
            let s = v
                .as_str()
                .ok_or_else(|| ProtobufError::mismatch("an RFC 3339 time", v))?;
            let (secs, nanos) =
                parse_rfc3339(s).ok_or_else(|| ProtobufError::mismatch("an RFC 3339 time", v))?;
            w.varint_field(1, u64::from_ne_bytes(secs.to_ne_bytes()));
            let nanos = if m.shape == Shape::Time {
                0
            } else {
                nanos / 1000 * 1000
            };
            w.varint_field(2, u64::from(nanos));
        }
        Shape::Duration => {
            let s = v
                .as_str()
                .ok_or_else(|| ProtobufError::mismatch("a Go duration", v))?;
            let n = parse_duration(s).ok_or_else(|| ProtobufError::mismatch("a Go duration", v))?;
            w.varint_field(1, u64::from_ne_bytes(n.to_ne_bytes()));
        }
        Shape::Quantity => match v {
            Value::String(s) => w.bytes_field(1, s.as_bytes()),
            Value::Number(n) => w.bytes_field(1, n.to_string().as_bytes()),
            other => return Err(ProtobufError::mismatch("a quantity", other)),
        },
        Shape::IntOrString => match v {
            Value::String(s) => {
                w.varint_field(1, 1);
                w.bytes_field(3, s.as_bytes());
            }
            Value::Number(_) => {
                w.varint_field(1, 0);
                w.varint_field(2, int(v, i64::from(i32::MIN), i64::from(i32::MAX))?);
            }
            other => return Err(ProtobufError::mismatch("an int or a string", other)),
        },
        Shape::RawJson => {
            let raw = serde_json::to_vec(v).map_err(|source| ProtobufError::InvalidJson {
                path: String::new(),
                source,
            })?;
            w.bytes_field(1, &raw);
        }
        Shape::SchemaOrArray | Shape::SchemaOrStringArray => match v {
            Value::Array(_) => field(&mut w, sub(2)?, v, depth)?,
            Value::Object(_) => field(&mut w, sub(1)?, v, depth)?,
            other => return Err(ProtobufError::mismatch("a schema or an array", other)),
        },
        Shape::SchemaOrBool => match v {
            Value::Bool(b) => w.varint_field(1, u64::from(*b)),
            Value::Object(_) => {
                w.varint_field(1, 1);
                field(&mut w, sub(2)?, v, depth)?;
            }
            other => return Err(ProtobufError::mismatch("a schema or a boolean", other)),
        },
        Shape::StringList => field(&mut w, sub(1)?, v, depth)?,
    }
    Ok(w.buf)
}
