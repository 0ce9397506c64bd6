//! The generator of `generated.rs`: run it by hand after changing `kinds.rs`
//! or bumping the Kubernetes version.
//!
//! ```text
//! SLUICE_K8S_GO_SRC=/path/to/go-sources \
//!   cargo test -p sluice-k8s-protobuf generate_tables -- --ignored --nocapture
//! ```
//!
//! Two inputs, both read, never copied:
//! - the k8s-pb crate's prost sources (a dev-dependency, found through
//!   `cargo metadata`): message names, field numbers, wire types, and the
//!   resolved type of every message field;
//! - the Go API types of the same Kubernetes release (a directory holding
//!   `api/`, `apimachinery/`, `apiextensions-apiserver/` and
//!   `kube-aggregator/` checkouts): per struct and field number, the `json`
//!   tag (the exact JSON key, `omitempty`, `json:""` inlining)
//!   and whether the Go field is a pointer (a pointer keeps an explicit zero).
//!
//! `omitzero` is ignored: newer apimachinery puts it on `creationTimestamp`,
//! but the clients and k8s-openapi versions sluice serves (1.32, 1.33) write
//! `"creationTimestamp": null`, and so does this crate.
//!
//! Only messages reachable from `kinds::KINDS` are emitted. Fields the Go
//! types lack fall back to the lowerCamel form of the proto name and are
//! listed on stderr.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A field as k8s-pb declares it.
#[derive(Debug)]
struct PbField {
    rust_name: String,
    tag: u32,
    /// `string`, `bytes`, `int32`, `int64`, `bool`, `double`, `message`.
    kind: String,
    card: &'static str,
    /// For `message` fields and map values: the resolved message name.
    msg: Option<String>,
}

/// A field as the Go API types declare it.
#[derive(Debug, Clone)]
struct GoField {
    json: String,
    omitempty: bool,
    pointer: bool,
    inline: bool,
    /// Line in the Go file: Go's encoding/json writes keys in this order.
    pos: usize,
}

fn cargo_metadata_src(package: &str) -> PathBuf {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--manifest-path",
            manifest,
        ])
        .output()
        .expect("cargo metadata runs");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let pkg = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == package)
        .unwrap_or_else(|| panic!("{package} is a dev-dependency"));
    let manifest_path = PathBuf::from(pkg["manifest_path"].as_str().expect("manifest_path"));
    manifest_path.parent().expect("package dir").join("src")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Resolves a Rust type path written inside module `module` (dotted) to a
/// dotted message name.
fn resolve(module: &str, path: &str) -> String {
    let mut parts: Vec<&str> = module.split('.').collect();
    let mut rest = path.trim();
    while let Some(r) = rest.strip_prefix("super::") {
        parts.pop();
        rest = r;
    }
    let mut name: Vec<&str> = parts;
    name.extend(rest.split("::"));
    name.join(".")
}

/// Strips `Option<..>`, `Box<..>`, `Vec<..>` wrappers and returns the
/// innermost type; for a `BTreeMap<K, V>` returns `V`.
fn inner_type(ty: &str) -> String {
    let mut t: String = ty.chars().filter(|c| !c.is_whitespace()).collect();
    t = t.trim_end_matches(',').replace(",>", ">");
    for w in [
        "::core::option::Option<",
        "::prost::alloc::boxed::Box<",
        "::prost::alloc::vec::Vec<",
    ] {
        while let Some(r) = t.strip_prefix(w) {
            t = r.strip_suffix('>').expect("balanced").to_string();
        }
    }
    if let Some(r) = t.strip_prefix("::prost::alloc::collections::BTreeMap<") {
        let r = r.strip_suffix('>').expect("balanced");
        let (_, v) = r.split_once(',').expect("map key, value");
        t = v.trim_end_matches(',').to_string();
    }
    t
}

fn parse_pb(src: &Path) -> BTreeMap<String, Vec<PbField>> {
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut messages = BTreeMap::new();
    for file in files {
        if file.file_name().is_none_or(|n| n != "mod.rs") {
            continue;
        }
        let rel = file
            .parent()
            .expect("dir")
            .strip_prefix(src)
            .expect("under src");
        let module = rel.to_string_lossy().replace('/', ".");
        let text = std::fs::read_to_string(&file).expect("read k8s-pb source");
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        let mut current: Option<(String, Vec<PbField>)> = None;
        while i < lines.len() {
            let line = lines[i].trim();
            if let Some(rest) = line.strip_prefix("pub struct ") {
                if let Some((name, fields)) = current.take() {
                    messages.insert(format!("{module}.{name}"), fields);
                }
                let name = rest
                    .trim_end_matches(" {}")
                    .trim_end_matches(" {")
                    .to_string();
                current = Some((name, Vec::new()));
            } else if let Some(attr) = line.strip_prefix("#[prost(") {
                assert!(
                    !attr.starts_with("oneof") && !attr.starts_with("enumeration"),
                    "unexpected prost attribute {line}"
                );
                // The field declaration follows, maybe over several lines.
                let mut decl = String::new();
                let mut j = i + 1;
                loop {
                    decl.push_str(lines[j].trim());
                    let opens = decl.matches('<').count();
                    let closes = decl.matches('>').count();
                    if opens == closes && decl.ends_with(',') {
                        break;
                    }
                    j += 1;
                }
                i = j;
                let decl = decl.strip_prefix("pub ").expect("pub field");
                let (rust_name, ty) = decl.split_once(':').expect("name: type");
                let rust_name = rust_name.trim_start_matches("r#").to_string();
                let tag: u32 = attr
                    .split("tag = \"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .and_then(|t| t.parse().ok())
                    .expect("tag");
                let (kind, card) = if let Some(m) = attr.strip_prefix("btree_map = \"string, ") {
                    (m.split('"').next().expect("map value").to_string(), "Map")
                } else {
                    let kind = attr.split([',', ' ']).next().expect("kind").to_string();
                    let card = if attr.contains("repeated") {
                        "Rep"
                    } else {
                        "One"
                    };
                    (kind, card)
                };
                let msg = (kind == "message").then(|| resolve(&module, &inner_type(ty)));
                let field = PbField {
                    rust_name,
                    tag,
                    kind,
                    card,
                    msg,
                };
                current
                    .as_mut()
                    .expect("field inside a struct")
                    .1
                    .push(field);
            }
            i += 1;
        }
        if let Some((name, fields)) = current.take() {
            messages.insert(format!("{module}.{name}"), fields);
        }
    }
    messages
}

/// Go directory of a k8s-pb module path.
fn go_dir(go_src: &Path, module: &str) -> PathBuf {
    let rel = module.replace('.', "/");
    let rel = if let Some(r) = rel.strip_prefix("apiextensions_apiserver/") {
        format!("apiextensions-apiserver/{r}")
    } else if let Some(r) = rel.strip_prefix("kube_aggregator/") {
        format!("kube-aggregator/{r}")
    } else {
        rel
    };
    go_src.join(rel)
}

fn tag_value<'a>(tags: &'a str, key: &str) -> Option<&'a str> {
    let start = tags.find(&format!("{key}:\""))? + key.len() + 2;
    let len = tags[start..].find('"')?;
    Some(&tags[start..start + len])
}

/// Go structs of one package, by lower-cased name: field number -> field.
fn parse_go(dir: &Path) -> HashMap<String, HashMap<u32, GoField>> {
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let is_go = p.extension().is_some_and(|e| e == "go");
        if !is_go || name.ends_with("_test.go") || name.starts_with("zz_generated") {
            continue;
        }
        let text = std::fs::read_to_string(&p).expect("read Go source");
        let mut current: Option<(String, HashMap<u32, GoField>)> = None;
        for (line_no, line) in text.lines().enumerate() {
            if let Some(rest) = line.strip_prefix("type ") {
                if let Some(name) = rest.strip_suffix(" struct {") {
                    current = Some((name.trim().to_lowercase(), HashMap::new()));
                }
                continue;
            }
            if line == "}" {
                if let Some((name, fields)) = current.take() {
                    out.insert(name, fields);
                }
                continue;
            }
            let Some((_, fields)) = current.as_mut() else {
                continue;
            };
            let t = line.trim();
            if t.starts_with("//") {
                continue;
            }
            let Some((decl, tags)) = t.split_once('`') else {
                continue;
            };
            let Some(pb) = tag_value(tags, "protobuf") else {
                continue;
            };
            let Some(tag) = pb.split(',').nth(1).and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let words: Vec<&str> = decl.split_whitespace().collect();
            let embedded = words.len() == 1;
            let ty = if embedded { words[0] } else { words[1] };
            let json = tag_value(tags, "json").unwrap_or("");
            let mut parts = json.split(',');
            let json_name = parts.next().unwrap_or("").to_string();
            let opts: Vec<&str> = parts.collect();
            if json_name == "-" {
                continue;
            }
            fields.insert(
                tag,
                GoField {
                    inline: embedded && json_name.is_empty(),
                    json: json_name,
                    omitempty: opts.contains(&"omitempty"),
                    pointer: ty.starts_with('*'),
                    pos: line_no,
                },
            );
        }
    }
    out
}

fn shape_of(name: &str) -> &'static str {
    // k8s-pb spells some Go names its own way (`Json`, `JsonSchemaProps`).
    let lower = name.to_lowercase();
    match lower.as_str() {
        "apimachinery.pkg.apis.meta.v1.time" => "Time",
        "apimachinery.pkg.apis.meta.v1.microtime" => "MicroTime",
        "apimachinery.pkg.apis.meta.v1.duration" => "Duration",
        "apimachinery.pkg.apis.meta.v1.fieldsv1" | "apimachinery.pkg.runtime.rawextension" => {
            "RawJson"
        }
        "apimachinery.pkg.api.resource.quantity" => "Quantity",
        "apimachinery.pkg.util.intstr.intorstring" => "IntOrString",
        "apimachinery.pkg.apis.meta.v1.verbs" => "StringList",
        n if n.starts_with("apiextensions_apiserver.") && n.rsplit('.').next() == Some("json") => {
            "RawJson"
        }
        n if n.ends_with(".jsonschemapropsorarray") => "SchemaOrArray",
        n if n.ends_with(".jsonschemapropsorbool") => "SchemaOrBool",
        n if n.ends_with(".jsonschemapropsorstringarray") => "SchemaOrStringArray",
        n if n.ends_with(".extravalue") => "StringList",
        _ => "Object",
    }
}

fn lower_camel(snake: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for c in snake.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn generate(go_src: &Path) -> String {
    let pb = parse_pb(&cargo_metadata_src("k8s-pb"));
    // The closure of messages reachable from the kinds, in discovery order.
    let mut order: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut queue: VecDeque<String> = VecDeque::new();
    for (_, _, m) in crate::kinds::KINDS {
        assert!(pb.contains_key(*m), "kind message {m} is not in k8s-pb");
        queue.push_back((*m).to_string());
    }
    while let Some(m) = queue.pop_front() {
        if index.contains_key(&m) {
            continue;
        }
        index.insert(m.clone(), order.len());
        order.push(m.clone());
        for f in pb
            .get(&m)
            .unwrap_or_else(|| panic!("message {m} not in k8s-pb"))
        {
            if let Some(t) = &f.msg {
                queue.push_back(t.clone());
            }
        }
    }
    let mut go_cache: HashMap<String, HashMap<String, HashMap<u32, GoField>>> = HashMap::new();
    let mut out = String::new();
    out.push_str(
        "// @generated by src/generate.rs from k8s-pb 0.9 (field numbers, wire types) and the\n\
         // Go API types (JSON names, omitempty, pointers). Do not edit; regenerate.\n\n\
         use crate::schema::{Card::*, Message, Scalar::*, Shape::*, Ty::*, f, INLINE, KEEP_ZERO};\n\n\
         pub(crate) static MESSAGES: &[Message] = &[\n",
    );
    let mut fallbacks = 0;
    for name in &order {
        let (module, short) = name.rsplit_once('.').expect("module.name");
        let go = go_cache
            .entry(module.to_string())
            .or_insert_with(|| parse_go(&go_dir(go_src, module)));
        let go_struct = go.get(&short.to_lowercase());
        let shape = shape_of(name);
        let mut fields: Vec<(usize, String)> = Vec::new();
        let mut fallback_pos = 1_000_000;
        for f in &pb[name] {
            let go_field = go_struct.and_then(|s| s.get(&f.tag));
            let (json, flags, pos) = if let Some(g) = go_field {
                let mut flags = Vec::new();
                if g.pointer || !g.omitempty {
                    flags.push("KEEP_ZERO");
                }
                if g.inline {
                    flags.push("INLINE");
                }
                (g.json.clone(), flags, g.pos)
            } else {
                if shape == "Object" {
                    fallbacks += 1;
                    eprintln!(
                        "no Go field for {name} tag {} ({}): using lowerCamel",
                        f.tag, f.rust_name
                    );
                }
                fallback_pos += 1;
                (lower_camel(&f.rust_name), Vec::new(), fallback_pos)
            };
            let ty = match (f.kind.as_str(), &f.msg) {
                ("message", Some(m)) => format!("M({})", index[m]),
                ("string", _) => "S(String)".into(),
                ("bytes", _) => "S(Bytes)".into(),
                ("int32", _) => "S(Int32)".into(),
                ("int64", _) => "S(Int64)".into(),
                ("bool", _) => "S(Bool)".into(),
                ("double", _) => "S(Double)".into(),
                (k, _) => panic!("unhandled kind {k} in {name}"),
            };
            let flags = if flags.is_empty() {
                "0".to_string()
            } else {
                flags.join(" | ")
            };
            fields.push((
                pos,
                format!("f({}, {:?}, {ty}, {}, {flags})", f.tag, json, f.card),
            ));
        }
        // Go's encoding/json writes struct fields in declaration order.
        fields.sort_by_key(|(pos, _)| *pos);
        let _ = writeln!(
            out,
            "    // {}\n    Message {{ name: {name:?}, shape: {shape}, fields: &[{}] }},",
            index[name],
            fields
                .iter()
                .map(|(_, s)| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    out.push_str("];\n");
    eprintln!(
        "{} messages, {fallbacks} fields without Go names",
        order.len()
    );
    out
}

#[test]
#[ignore = "regenerates src/generated.rs; needs SLUICE_K8S_GO_SRC (see the module doc)"]
fn generate_tables() {
    let go_src =
        std::env::var_os("SLUICE_K8S_GO_SRC").expect("SLUICE_K8S_GO_SRC names the Go sources");
    let text = generate(Path::new(&go_src));
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/generated.rs");
    std::fs::write(path, text).expect("write generated.rs");
}
