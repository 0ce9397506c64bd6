//! Hostile and broken bodies: each gives its own error, none panics.

use sluice_k8s_protobuf::{ProtobufError, decode, encode};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn len_field(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(tag) << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A body whose envelope says `api_version`/`kind` and carries `raw`.
fn body(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut tm = Vec::new();
    len_field(1, api_version.as_bytes(), &mut tm);
    len_field(2, kind.as_bytes(), &mut tm);
    let mut out = b"k8s\0".to_vec();
    len_field(1, &tm, &mut out);
    len_field(2, raw, &mut out);
    out
}

#[test]
fn no_magic() {
    assert!(matches!(
        decode(b"{\"kind\":\"Pod\"}"),
        Err(ProtobufError::NoMagic)
    ));
    assert!(matches!(decode(b""), Err(ProtobufError::NoMagic)));
    assert!(matches!(decode(b"k8s"), Err(ProtobufError::NoMagic)));
}

#[test]
fn every_truncation_of_a_real_body_is_an_error() {
    let full = fixture("deployment.pb");
    let whole = decode(&full).expect("decodes").object;
    for n in 0..full.len() {
        let err = match decode(&full[..n]) {
            // A cut at a field boundary of the envelope is a valid body:
            // right after typeMeta (no raw: an object with no fields set), or
            // before the trailing empty contentEncoding/contentType.
            Ok(d) if d.object.as_object().is_some_and(|o| o.len() == 2) || d.object == whole => {
                continue;
            }
            Ok(d) => panic!("cut at {n} decodes: {}", d.object),
            Err(e) => e,
        };
        assert!(
            matches!(
                err,
                ProtobufError::NoMagic
                    | ProtobufError::Truncated { .. }
                    | ProtobufError::MissingTypeMeta
            ),
            "cut at {n}: {err}"
        );
    }
}

#[test]
fn truncated_names_the_place() {
    let mut raw = Vec::new();
    // metadata { name: "abc" } cut inside the name.
    let mut meta = Vec::new();
    len_field(1, b"abc", &mut meta);
    meta.truncate(meta.len() - 1);
    len_field(1, &meta, &mut raw);
    let err = decode(&body("v1", "ConfigMap", &raw)).expect_err("truncated");
    assert!(matches!(err, ProtobufError::Truncated { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "metadata.name: truncated protobuf message: it ends inside a length-delimited field"
    );
}

#[test]
fn wrong_wire_type() {
    // ConfigMap field 1 (metadata) as a varint.
    let err = decode(&body("v1", "ConfigMap", &[0x08, 0x01])).expect_err("wrong wire type");
    assert!(
        matches!(
            err,
            ProtobufError::WrongWireType {
                tag: 1,
                expected: "length-delimited",
                found: "varint",
                ..
            }
        ),
        "{err}"
    );
    // Deployment spec.replicas (field 1, int32) as a string.
    let mut spec = Vec::new();
    len_field(1, b"3", &mut spec);
    let mut raw = Vec::new();
    len_field(2, &spec, &mut raw);
    let err = decode(&body("apps/v1", "Deployment", &raw)).expect_err("wrong wire type");
    assert_eq!(
        err.to_string(),
        "spec.replicas: field 1 has wire type length-delimited, but the schema says varint"
    );
}

#[test]
fn unknown_kind() {
    let err = decode(&body("example.test/v1", "Widget", &[])).expect_err("unknown kind");
    assert!(
        matches!(&err, ProtobufError::UnknownKind { api_version, kind } if api_version == "example.test/v1" && kind == "Widget"),
        "{err}"
    );
    assert!(!sluice_k8s_protobuf::supports("example.test/v1", "Widget"));
    assert!(sluice_k8s_protobuf::supports("apps/v1", "Deployment"));
}

#[test]
fn missing_type_meta() {
    let mut out = b"k8s\0".to_vec();
    len_field(2, b"", &mut out);
    assert!(matches!(decode(&out), Err(ProtobufError::MissingTypeMeta)));
}

#[test]
fn configmap_with_garbage_raw() {
    let garbage = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
    let err = decode(&body("v1", "ConfigMap", &garbage)).expect_err("garbage");
    assert!(matches!(err, ProtobufError::Malformed { .. }), "{err}");
    let err = decode(&body("v1", "ConfigMap", b"\x0f")).expect_err("wire type 7");
    assert!(matches!(err, ProtobufError::Malformed { .. }), "{err}");
    let err = decode(&body("v1", "ConfigMap", b"hello world")).expect_err("text");
    assert!(!err.to_string().is_empty());
}

#[test]
fn invalid_utf8_in_a_string() {
    let mut meta = Vec::new();
    len_field(1, &[0xc3, 0x28], &mut meta);
    let mut raw = Vec::new();
    len_field(1, &meta, &mut raw);
    let err = decode(&body("v1", "ConfigMap", &raw)).expect_err("utf-8");
    assert!(
        matches!(&err, ProtobufError::InvalidUtf8 { path } if path == "metadata.name"),
        "{err}"
    );
}

#[test]
fn content_encoding_is_refused() {
    let mut out = body("v1", "ConfigMap", &[]);
    len_field(3, b"gzip", &mut out);
    assert!(matches!(decode(&out), Err(ProtobufError::UnsupportedEncoding(e)) if e == "gzip"));
}

#[test]
fn deep_nesting_is_refused() {
    // JSONSchemaProps.not (field 28) nested far beyond the limit.
    let mut schema: Vec<u8> = Vec::new();
    for _ in 0..200 {
        let mut outer = Vec::new();
        len_field(28, &schema, &mut outer);
        schema = outer;
    }
    let mut validation = Vec::new();
    len_field(1, &schema, &mut validation);
    let mut version = Vec::new();
    len_field(4, &validation, &mut version);
    let mut spec = Vec::new();
    len_field(7, &version, &mut spec);
    let mut raw = Vec::new();
    len_field(2, &spec, &mut raw);
    let err = decode(&body(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &raw,
    ))
    .expect_err("too deep");
    assert!(matches!(err, ProtobufError::TooDeep { .. }), "{err}");
}

#[test]
fn encode_errors() {
    let err = encode(
        &serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"nmae": "x"}}),
    )
    .expect_err("typo");
    assert!(
        matches!(&err, ProtobufError::UnknownField { key, .. } if key == "nmae"),
        "{err}"
    );
    let err = encode(&serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": "3"}})).expect_err("type");
    assert_eq!(
        err.to_string(),
        "spec.replicas: expected an int32, found a string"
    );
    assert!(matches!(
        encode(&serde_json::json!({"kind": "Pod"})),
        Err(ProtobufError::MissingTypeMeta)
    ));
    assert!(matches!(
        encode(&serde_json::json!([])),
        Err(ProtobufError::TypeMismatch { .. })
    ));
    let err = encode(&serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"creationTimestamp": "yesterday"}})).expect_err("time");
    assert!(
        err.to_string()
            .starts_with("metadata.creationTimestamp: expected an RFC 3339 time"),
        "{err}"
    );
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_bodies_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let seeds: Vec<Vec<u8>> = [
        "deployment.pb",
        "secret-tls.pb",
        "cronjob.pb",
        "ingress.pb",
        "service-clusterip.pb",
        "role.pb",
    ]
    .iter()
    .map(|n| fixture(n))
    .collect();
    let kinds: Vec<(&str, &str)> = sluice_k8s_protobuf::supported_kinds().collect();
    for i in 0..20_000 {
        let input = match i % 3 {
            // A real body with a few bytes flipped, inserted or removed.
            0 | 1 => {
                let mut b = seeds[rng.below(seeds.len())].clone();
                for _ in 0..=rng.below(4) {
                    let at = 4 + rng.below(b.len() - 4);
                    match rng.below(3) {
                        0 => b[at] = rng.next() as u8,
                        1 => b.insert(at, rng.next() as u8),
                        _ => {
                            b.remove(at);
                        }
                    }
                }
                b
            }
            // Random raw bytes under every kind.
            _ => {
                let (v, k) = kinds[rng.below(kinds.len())];
                let raw: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
                body(v, k, &raw)
            }
        };
        if let Ok(d) = decode(&input) {
            // Whatever decodes re-encodes.
            encode(&d.object)
                .unwrap_or_else(|e| panic!("iteration {i}: decoded but does not re-encode: {e}"));
        }
    }
}
