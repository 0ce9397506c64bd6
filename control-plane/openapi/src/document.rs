//! Per-group-version documents, their hashes, the `/openapi/v3` index, and the cache
//! that builds each document once per set of inputs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use serde_json::{Map, Value, json};

use crate::builtin::{UNIVERSE, builtin_name, list_schema};
use crate::custom::custom_resource_schema_name;
use crate::{SCHEMA_KUBERNETES_VERSION, ServedKind, convert, paths};

/// A built document, serialized once, with its hash.
#[derive(Debug)]
pub struct Document {
    /// The document.
    pub value: Value,
    /// Its JSON bytes (what `GET /openapi/v3/<path>` answers).
    pub json: Vec<u8>,
    /// [`document_hash`] of it (what the index's `?hash=` carries).
    pub hash: String,
}

/// The document path of a group-version in the index: `api/v1`, `apis/apps/v1`.
pub fn gv_path(group: &str, version: &str) -> String {
    paths::prefix(group, version)
        .trim_start_matches('/')
        .to_string()
}

/// The `GET /openapi/v3` index: for every `(group, version, hash)`, its document's
/// `serverRelativeURL` carrying the hash (kubectl caches documents by that URL).
pub fn openapi_v3_index(entries: &[(&str, &str, &str)]) -> Value {
    let mut paths = Map::new();
    for (group, version, hash) in entries {
        let p = gv_path(group, version);
        let url = format!("/openapi/v3/{p}?hash={hash}");
        paths.insert(p, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// A stable hash of a document: 128-bit FNV-1a of its JSON, upper-case hex (upstream
/// uses SHA-512; any stable digest serves, clients only compare it).
pub fn document_hash(doc: &Value) -> String {
    let bytes = serde_json::to_vec(doc).unwrap_or_default();
    hash_bytes(&bytes)
}

fn hash_bytes(bytes: &[u8]) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut h = OFFSET;
    for b in bytes {
        h ^= u128::from(*b);
        h = h.wrapping_mul(PRIME);
    }
    format!("{h:032X}")
}

/// Finds the schema of a served kind: an extra schema carrying its GVK, or named as
/// upstream names custom resources, then the built-in one.
fn kind_schema_name(k: &ServedKind<'_>, extra: &Map<String, Value>) -> Option<String> {
    if let Some((name, _)) = extra
        .iter()
        .find(|(_, s)| convert::has_gvk(s, k.group, k.version, k.kind))
    {
        return Some(name.clone());
    }
    let custom = custom_resource_schema_name(k.group, k.version, k.kind);
    if extra.contains_key(&custom) {
        return Some(custom);
    }
    builtin_name(k.group, k.version, k.kind).map(str::to_string)
}

/// The document for one group-version: paths for every kind (collection, object,
/// all-namespaces list, subresources, with upstream's operations) and
/// `components.schemas` holding every schema reachable from them, named as upstream,
/// with `x-kubernetes-group-version-kind` on each top-level kind.
///
/// `extra_schemas` (name, schema) come first: custom resources
/// ([`crate::custom_resource_schema`]) or overrides. A kind with no schema at all is
/// served as an object that keeps unknown fields, so its paths still resolve.
///
/// Each call builds the document afresh; [`group_version_document_cached`] builds it
/// once per set of inputs.
pub fn group_version_document(
    group: &str,
    version: &str,
    kinds: &[ServedKind<'_>],
    extra_schemas: &[(String, Value)],
) -> Value {
    let extra: Map<String, Value> = extra_schemas.iter().cloned().collect();
    let mut generated: Map<String, Value> = Map::new();
    let mut paths_out = BTreeMap::new();
    paths::resources_path(group, version, &mut paths_out);
    for k in kinds {
        let object = kind_schema_name(k, &extra).unwrap_or_else(|| {
            let name = custom_resource_schema_name(k.group, k.version, k.kind);
            let mut stub = json!({
                "description": format!("{} ({}): no schema is known for this kind.", k.kind, gv_path(k.group, k.version)),
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
            });
            convert::set_gvk(&mut stub, k.group, k.version, k.kind);
            generated.insert(name.clone(), stub);
            name
        });
        let list_kind = format!("{}List", k.kind);
        let list = kind_schema_name(
            &ServedKind {
                kind: &list_kind,
                ..*k
            },
            &extra,
        )
        .unwrap_or_else(|| {
            let name = format!("{object}List");
            generated.insert(
                name.clone(),
                list_schema(k.group, k.version, k.kind, &object),
            );
            name
        });
        paths::kind_paths(k, &object, &list, &mut paths_out);
    }
    let paths: Map<String, Value> = paths_out.into_iter().collect();

    // Every schema reachable from the operations, transitively.
    let lookup = |name: &str| -> Option<&Value> {
        extra
            .get(name)
            .or_else(|| generated.get(name))
            .or_else(|| UNIVERSE.schemas.get(name))
    };
    let mut wanted: Vec<&str> = Vec::new();
    let paths_value = Value::Object(paths);
    convert::collect_refs(&paths_value, &mut wanted);
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut schemas: BTreeMap<String, Value> = BTreeMap::new();
    let mut queue: Vec<String> = wanted.into_iter().map(str::to_string).collect();
    while let Some(name) = queue.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let schema = lookup(&name).cloned().unwrap_or_else(|| {
            json!({
                "description": "sluice: this schema is referred to but unknown.",
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
            })
        });
        let mut refs = Vec::new();
        convert::collect_refs(&schema, &mut refs);
        queue.extend(
            refs.into_iter()
                .filter(|r| !seen.contains(*r))
                .map(str::to_string),
        );
        schemas.insert(name, schema);
    }

    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": SCHEMA_KUBERNETES_VERSION},
        "paths": paths_value,
        "components": {
            "schemas": schemas.into_iter().collect::<Map<String, Value>>(),
            "securitySchemes": {"BearerToken": {
                "type": "apiKey", "name": "authorization", "in": "header",
                "description": "Bearer Token authentication",
            }},
        },
        "security": [{"BearerToken": []}],
    })
}

/// What a document was built from, to tell whether a cached one still holds.
fn fingerprint(
    group: &str,
    version: &str,
    kinds: &[ServedKind<'_>],
    extra_schemas: &[(String, Value)],
) -> String {
    let mut s = format!("{group}\0{version}\0{kinds:?}\0");
    for (name, schema) in extra_schemas {
        s.push_str(name);
        s.push('\0');
        s.push_str(&schema.to_string());
        s.push('\0');
    }
    hash_bytes(s.as_bytes())
}

type Cache = Mutex<HashMap<(String, String), (String, Arc<Document>)>>;

/// One document per group-version: the latest inputs' (a changed CRD replaces it).
static CACHE: LazyLock<Cache> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// [`group_version_document`], built once per group-version and set of inputs, with
/// its JSON and hash (serve `json` as is; put `hash` in the index).
pub fn group_version_document_cached(
    group: &str,
    version: &str,
    kinds: &[ServedKind<'_>],
    extra_schemas: &[(String, Value)],
) -> Arc<Document> {
    let fp = fingerprint(group, version, kinds, extra_schemas);
    let key = (group.to_string(), version.to_string());
    if let Some((f, doc)) = CACHE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
        && *f == fp
    {
        return Arc::clone(doc);
    }
    let value = group_version_document(group, version, kinds, extra_schemas);
    let json = serde_json::to_vec(&value).unwrap_or_default();
    let hash = hash_bytes(&json);
    let doc = Arc::new(Document { value, json, hash });
    CACHE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, (fp, Arc::clone(&doc)));
    doc
}
