//! Protobuf message bytes -> Kubernetes JSON, driven by the tables.

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use crate::generated::MESSAGES;
use crate::schema::{Card, Field, Message, Scalar, Shape, Ty};
use crate::time::{GO_ZERO_SECONDS, format_duration, format_rfc3339};
use crate::wire::{Reader, WireType};
use crate::{MAX_DEPTH, ProtobufError};

/// What a field collected while its message was read.
enum Slot {
    Empty,
    One(Value),
    Many(Vec<Value>),
    Map(Map<String, Value>),
}

fn wire_of(ty: Ty) -> WireType {
    match ty {
        Ty::S(Scalar::Int32 | Scalar::Int64 | Scalar::Bool) => WireType::Varint,
        Ty::S(Scalar::Double) => WireType::Fixed64,
        Ty::S(Scalar::String | Scalar::Bytes) | Ty::M(_) => WireType::Len,
    }
}

fn wrong_wire(tag: u32, expected: WireType, found: WireType) -> ProtobufError {
    ProtobufError::WrongWireType {
        path: String::new(),
        tag,
        expected: expected.name(),
        found: found.name(),
    }
}

#[allow(
    clippy::cast_possible_wrap,
    reason = "protobuf int32/int64 are two's complement in a varint"
)]
fn scalar_from_varint(s: Scalar, v: u64) -> Value {
    match s {
        Scalar::Int32 => Value::from(i64::from(v as u32 as i32)),
        Scalar::Bool => Value::Bool(v != 0),
        _ => Value::from(v as i64),
    }
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "checked: integral and below 2^53"
)]
fn double(bits: u64) -> Result<Value, ProtobufError> {
    let d = f64::from_bits(bits);
    if !d.is_finite() {
        return Err(ProtobufError::invalid(
            "a double that is NaN or infinite has no JSON form",
        ));
    }
    // Go's encoding/json writes 2.0 as `2`.
    if d.fract() == 0.0 && d.abs() < 9_007_199_254_740_992.0 {
        return Ok(Value::from(d as i64));
    }
    Number::from_f64(d)
        .map(Value::Number)
        .ok_or_else(|| ProtobufError::invalid("double has no JSON form"))
}

/// Reads one value of `ty` whose key said `wire`.
fn value(
    r: &mut Reader<'_>,
    tag: u32,
    ty: Ty,
    wire: WireType,
    depth: usize,
) -> Result<Value, ProtobufError> {
    let expected = wire_of(ty);
    if wire != expected {
        return Err(wrong_wire(tag, expected, wire));
    }
    match ty {
        Ty::S(s @ (Scalar::Int32 | Scalar::Int64 | Scalar::Bool)) => {
            Ok(scalar_from_varint(s, r.varint()?))
        }
        Ty::S(Scalar::Double) => double(r.fixed64()?),
        Ty::S(Scalar::String) => {
            let b = r.bytes()?;
            std::str::from_utf8(b)
                .map(|s| Value::String(s.to_owned()))
                .map_err(|_| ProtobufError::InvalidUtf8 {
                    path: String::new(),
                })
        }
        Ty::S(Scalar::Bytes) => Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(r.bytes()?),
        )),
        Ty::M(index) => message(index, r.bytes()?, depth + 1),
    }
}

/// Reads a packed run of varints or doubles.
fn packed(bytes: &[u8], s: Scalar, out: &mut Vec<Value>) -> Result<(), ProtobufError> {
    let mut r = Reader::new(bytes);
    let mut i = out.len();
    while !r.is_at_end() {
        let v = match s {
            Scalar::Double => double(r.fixed64()?),
            _ => Ok(scalar_from_varint(s, r.varint()?)),
        };
        out.push(v.map_err(|e| e.at_index(i))?);
        i += 1;
    }
    Ok(())
}

/// A `map<string, V>` entry: `{1: key, 2: value}`.
fn map_entry(
    bytes: &[u8],
    ty: Ty,
    depth: usize,
    out: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    let mut r = Reader::new(bytes);
    let mut key = String::new();
    let mut val = None;
    while let Some((tag, wire)) = r.key()? {
        match tag {
            1 => {
                let Value::String(k) = value(&mut r, tag, Ty::S(Scalar::String), wire, depth)?
                else {
                    return Err(ProtobufError::malformed("map key is not a string"));
                };
                key = k;
            }
            2 => val = Some(value(&mut r, tag, ty, wire, depth).map_err(|e| e.at("<value>"))?),
            _ => r.skip(wire)?,
        }
    }
    let val = match val {
        Some(v) => v,
        None => match ty {
            Ty::S(Scalar::String | Scalar::Bytes) => Value::String(String::new()),
            Ty::S(Scalar::Bool) => Value::Bool(false),
            Ty::S(_) => Value::from(0),
            Ty::M(index) => message(index, &[], depth + 1)?,
        },
    };
    out.insert(key, val);
    Ok(())
}

fn read_field(
    r: &mut Reader<'_>,
    f: &Field,
    wire: WireType,
    slot: &mut Slot,
    depth: usize,
) -> Result<(), ProtobufError> {
    match f.card {
        Card::One => *slot = Slot::One(value(r, f.tag, f.ty, wire, depth)?),
        Card::Rep => {
            if !matches!(slot, Slot::Many(_)) {
                *slot = Slot::Many(Vec::new());
            }
            let Slot::Many(list) = slot else {
                unreachable!("set above")
            };
            if let (
                Ty::S(s @ (Scalar::Int32 | Scalar::Int64 | Scalar::Bool | Scalar::Double)),
                WireType::Len,
            ) = (f.ty, wire)
            {
                packed(r.bytes()?, s, list)?;
            } else {
                let i = list.len();
                list.push(value(r, f.tag, f.ty, wire, depth).map_err(|e| e.at_index(i))?);
            }
        }
        Card::Map => {
            if wire != WireType::Len {
                return Err(wrong_wire(f.tag, WireType::Len, wire));
            }
            if !matches!(slot, Slot::Map(_)) {
                *slot = Slot::Map(Map::new());
            }
            let Slot::Map(map) = slot else {
                unreachable!("set above")
            };
            map_entry(r.bytes()?, f.ty, depth, map)?;
        }
    }
    Ok(())
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// Decodes message `index` from `bytes` into its JSON form.
pub(crate) fn message(index: u16, bytes: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep {
            path: String::new(),
        });
    }
    let msg: &Message = MESSAGES
        .get(usize::from(index))
        .ok_or_else(|| ProtobufError::malformed("schema index out of range"))?;
    if msg.shape == Shape::RawJson {
        return raw_json(bytes, depth);
    }
    let mut slots: Vec<Slot> = msg.fields.iter().map(|_| Slot::Empty).collect();
    let mut r = Reader::new(bytes);
    while let Some((tag, wire)) = r.key()? {
        let Some(pos) = msg.fields.iter().position(|f| f.tag == tag) else {
            // Unknown fields (a newer client) are skipped, as protobuf does.
            r.skip(wire)?;
            continue;
        };
        let f = &msg.fields[pos];
        read_field(&mut r, f, wire, &mut slots[pos], depth)
            .map_err(|e| if f.inline() { e } else { e.at(f.json) })?;
    }
    shape(msg, slots, bytes.is_empty())
}

fn take(msg: &Message, slots: &mut [Slot], tag: u32) -> Slot {
    msg.fields
        .iter()
        .position(|f| f.tag == tag)
        .map_or(Slot::Empty, |i| {
            std::mem::replace(&mut slots[i], Slot::Empty)
        })
}

fn one(slot: Slot) -> Option<Value> {
    match slot {
        Slot::One(v) => Some(v),
        _ => None,
    }
}

fn many(slot: Slot) -> Vec<Value> {
    match slot {
        Slot::Many(v) => v,
        _ => Vec::new(),
    }
}

fn shape(msg: &Message, mut slots: Vec<Slot>, empty: bool) -> Result<Value, ProtobufError> {
    Ok(match msg.shape {
        Shape::Object => {
            let mut out = Map::new();
            for (f, slot) in msg.fields.iter().zip(slots) {
                match slot {
                    Slot::Empty => {}
                    Slot::One(v) => {
                        if f.inline() {
                            if let Value::Object(inner) = v {
                                out.extend(inner);
                            }
                        } else if matches!(f.ty, Ty::S(_)) && !f.keep_zero() && is_zero(&v) {
                            // `omitempty` on a non-pointer Go field.
                        } else {
                            out.insert(f.json.to_owned(), v);
                        }
                    }
                    Slot::Many(list) => {
                        out.insert(f.json.to_owned(), Value::Array(list));
                    }
                    Slot::Map(map) => {
                        out.insert(f.json.to_owned(), Value::Object(map));
                    }
                }
            }
            Value::Object(out)
        }
        Shape::Time | Shape::MicroTime => {
            // Go: empty bytes are the zero time, whose JSON is null.
            if empty {
                return Ok(Value::Null);
            }
            let seconds = one(take(msg, &mut slots, 1))
                .and_then(|v| v.as_i64())
                .unwrap_or(0);
            let nanos = one(take(msg, &mut slots, 2))
                .and_then(|v| v.as_i64())
                .unwrap_or(0);
            if msg.shape == Shape::Time {
                // Go keeps whole seconds only (time_proto.go).
                if seconds == GO_ZERO_SECONDS {
                    return Ok(Value::Null);
                }
                format_rfc3339(seconds, None)
            } else {
                let micros = u32::try_from(nanos / 1000).ok().filter(|m| *m < 1_000_000);
                let Some(micros) = micros else {
                    return Err(ProtobufError::invalid(format!(
                        "nanos {nanos} out of range"
                    )));
                };
                if seconds == GO_ZERO_SECONDS && micros == 0 {
                    return Ok(Value::Null);
                }
                format_rfc3339(seconds, Some(micros))
            }
            .map(Value::String)
            .ok_or_else(|| {
                ProtobufError::invalid(format!("time {seconds}s is outside years 1 to 9999"))
            })?
        }
        Shape::Duration => {
            let nanos = one(take(msg, &mut slots, 1))
                .and_then(|v| v.as_i64())
                .unwrap_or(0);
            Value::String(format_duration(nanos))
        }
        Shape::Quantity => match one(take(msg, &mut slots, 1)) {
            Some(Value::String(s)) if !s.is_empty() => Value::String(s),
            _ => Value::String("0".into()),
        },
        Shape::IntOrString => {
            let kind = one(take(msg, &mut slots, 1))
                .and_then(|v| v.as_i64())
                .unwrap_or(0);
            match kind {
                0 => one(take(msg, &mut slots, 2)).unwrap_or_else(|| Value::from(0)),
                1 => one(take(msg, &mut slots, 3)).unwrap_or_else(|| Value::String(String::new())),
                other => {
                    return Err(ProtobufError::invalid(format!(
                        "IntOrString type {other} is neither 0 nor 1"
                    )));
                }
            }
        }
        Shape::RawJson => raw_json(&[], 0)?,
        // Both: the list if non-empty, else the schema, else null.
        Shape::SchemaOrArray | Shape::SchemaOrStringArray => {
            let list = many(take(msg, &mut slots, 2));
            if list.is_empty() {
                one(take(msg, &mut slots, 1)).unwrap_or(Value::Null)
            } else {
                Value::Array(list)
            }
        }
        Shape::SchemaOrBool => match one(take(msg, &mut slots, 2)) {
            Some(schema) => schema,
            None => Value::Bool(
                one(take(msg, &mut slots, 1))
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false),
            ),
        },
        Shape::StringList => Value::Array(many(take(msg, &mut slots, 1))),
    })
}

/// `{1: raw}` with `raw` embedded as JSON (or, with the magic prefix, a
/// nested protobuf object); absent or empty `raw` is Go's nil, JSON null.
fn raw_json(bytes: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    let mut r = Reader::new(bytes);
    let mut raw: &[u8] = &[];
    while let Some((tag, wire)) = r.key()? {
        if tag == 1 {
            if wire != WireType::Len {
                return Err(wrong_wire(tag, WireType::Len, wire).at("raw"));
            }
            raw = r.bytes().map_err(|e| e.at("raw"))?;
        } else {
            r.skip(wire)?;
        }
    }
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    if raw.starts_with(crate::MAGIC) {
        // A nested object in protobuf form (a RawExtension holding a typed object).
        return crate::decode_body(raw, depth + 1).map(|d| d.object);
    }
    serde_json::from_slice(raw).map_err(|source| ProtobufError::InvalidJson {
        path: String::new(),
        source,
    })
}
