//! An in-memory fake Kubernetes API server behind a real [`kube::Client`] (no socket, no
//! cluster), for tests of API clients: controllers, the scheduler, reflectors.
//!
//! It serves, for any resource path (`/api/v1/...`, `/apis/<group>/<version>/...`,
//! namespaced or not):
//! - `GET` of one object; `GET` of a collection (all namespaces when the path has none) with
//!   `labelSelector` (`k=v`, `k==v`, `k!=v`, `k`, `!k`; no set-based terms) and
//!   `fieldSelector` (`a.b=v`, `a.b!=v` on any field path);
//! - `POST` (create; `generateName`, uid, `creationTimestamp`, `generation` 1, the
//!   namespace from the path), `PUT` (replace; also `status` and `finalize`), `PATCH`
//!   (JSON merge patch, whatever the content type), `DELETE` (immediate; no finalizers or
//!   grace), and `POST pods/<name>/binding` (sets `spec.nodeName`);
//! - `?watch=true`: a streamed watch (one JSON event per line, as the chunked watch of a
//!   real server) that first replays what happened after `resourceVersion` (or sends
//!   `ADDED` for everything when it is missing or `0`), then follows every write.
//!
//! Every write, by a client or by the test ([`FakeApi::insert`], [`FakeApi::remove`]), gets
//! the next resourceVersion and is sent to the watches it matches. Writes by clients are
//! also logged (`"METHOD /path"`, see [`FakeApi::take_writes`]), so a test can assert that
//! a reconcile wrote exactly what it should. [`FakeApi::hold_lists`] holds back the list of
//! a collection and [`FakeApi::watches`] counts the watches started, so a test can wait for
//! an exact state instead of sleeping.
//!
//! Test-side keys are the request paths without the leading `/`:
//! `api/v1/namespaces/default/pods/web` for an object, `api/v1/namespaces/default/pods`
//! (or `api/v1/pods` for all namespaces) for a collection.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use futures::StreamExt;
use futures::channel::mpsc;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The fake server; clones share one state.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    watches: Arc<watch::Sender<usize>>,
}

#[derive(Default)]
struct State {
    /// "collection/name" -> object.
    objects: BTreeMap<String, Stored>,
    /// "METHOD /path" of every client write.
    writes: Vec<String>,
    /// "METHOD /path?query" of every request.
    requests: Vec<String>,
    /// The last resourceVersion handed out.
    revision: u64,
    /// Every watch event so far, for watches that start from an older version.
    history: Vec<(u64, Collection, Value)>,
    watchers: Vec<Watcher>,
    holds: Vec<(Collection, watch::Receiver<bool>)>,
}

struct Stored {
    collection: Collection,
    object: Value,
}

struct Watcher {
    collection: Collection,
    filter: Filter,
    tx: mpsc::UnboundedSender<Bytes>,
}

/// `group/version` (`api/v1`, `apis/apps/v1`), namespace, plural.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Collection {
    group_version: String,
    namespace: Option<String>,
    plural: String,
}

impl Collection {
    /// Whether objects of `other` belong to this collection (a collection without a
    /// namespace spans all of them).
    fn contains(&self, other: &Collection) -> bool {
        self.group_version == other.group_version
            && self.plural == other.plural
            && (self.namespace.is_none() || self.namespace == other.namespace)
    }
}

impl fmt::Display for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/namespaces/{ns}/{}", self.group_version, self.plural),
            None => write!(f, "{}/{}", self.group_version, self.plural),
        }
    }
}

/// A request path: collection, object name, subresource.
struct Target {
    collection: Collection,
    name: Option<String>,
    subresource: Option<String>,
}

/// Parses `api/v1[/namespaces/<ns>]/<plural>[/<name>[/<sub>]]` and the `apis/<g>/<v>/...`
/// form; `namespaces/<name>/{status,finalize}` is the Namespace's subresource.
fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let gv_len = match parts.first() {
        Some(&"api") => 2,
        Some(&"apis") => 3,
        _ => return None,
    };
    if parts.len() <= gv_len || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let group_version = parts[..gv_len].join("/");
    let rest = &parts[gv_len..];
    let namespaced = rest[0] == "namespaces"
        && rest.len() >= 3
        && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"));
    let (namespace, rest) = if namespaced {
        (Some(rest[1].to_owned()), &rest[2..])
    } else {
        (None, rest)
    };
    if rest.len() > 3 {
        return None;
    }
    Some(Target {
        collection: Collection {
            group_version,
            namespace,
            plural: rest[0].to_owned(),
        },
        name: rest.get(1).map(|s| (*s).to_owned()),
        subresource: rest.get(2).map(|s| (*s).to_owned()),
    })
}

/// Label and field selectors of a list or watch.
#[derive(Default)]
struct Filter {
    labels: String,
    fields: String,
}

impl Filter {
    fn from_query(query: &str) -> Self {
        Self {
            labels: query_param(query, "labelSelector").unwrap_or_default(),
            fields: query_param(query, "fieldSelector").unwrap_or_default(),
        }
    }

    fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let labels_ok = terms(&self.labels).all(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                labels[k.trim()].as_str() != Some(v.trim())
            } else if let Some((k, v)) = term.split_once('=') {
                let v = v.strip_prefix('=').unwrap_or(v);
                labels[k.trim()].as_str() == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                labels.get(k.trim()).is_none()
            } else {
                labels.get(term).is_some()
            }
        });
        let fields_ok = terms(&self.fields).all(|term| {
            let field = |path: &str| {
                let v = path
                    .trim()
                    .split('.')
                    .fold(obj, |v, key| v.get(key).unwrap_or(&Value::Null));
                match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                }
            };
            if let Some((path, v)) = term.split_once("!=") {
                field(path) != v.trim()
            } else if let Some((path, v)) = term.split_once('=') {
                field(path) == v.strip_prefix('=').unwrap_or(v).trim()
            } else {
                false
            }
        });
        labels_ok && fields_ok
    }
}

fn terms(selector: &str) -> impl Iterator<Item = &str> {
    selector.split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// `key`'s value in a query string, percent-decoded.
fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if let Some(b) = hex {
            out.push(b);
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("just made an object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn failure(code: u16, reason: &str) -> (u16, Value) {
    (
        code,
        json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
            "message": reason, "code": code }),
    )
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn json_response(code: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed_unsync())
        .expect("a valid response")
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    Bytes::from(format!("{}\n", json!({ "type": kind, "object": object })))
}

impl State {
    /// Hands out the next resourceVersion and stamps it on `obj`.
    fn stamp(&mut self, obj: &mut Value) -> String {
        self.revision += 1;
        let rv = self.revision.to_string();
        merge(obj, &json!({ "metadata": { "resourceVersion": rv } }));
        rv
    }

    /// Records a watch event and sends it to the watches it matches.
    fn emit(&mut self, kind: &str, collection: &Collection, object: &Value) {
        let event = json!({ "type": kind, "object": object });
        self.history
            .push((self.revision, collection.clone(), event.clone()));
        let line = Bytes::from(format!("{event}\n"));
        self.watchers.retain(|w| {
            if w.collection.contains(collection) && w.filter.matches(object) {
                w.tx.unbounded_send(line.clone()).is_ok()
            } else {
                !w.tx.is_closed()
            }
        });
    }

    fn put(&mut self, collection: Collection, key: String, mut object: Value) -> Value {
        self.stamp(&mut object);
        let kind = if self.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.emit(kind, &collection, &object);
        self.objects.insert(
            key,
            Stored {
                collection,
                object: object.clone(),
            },
        );
        object
    }

    fn delete(&mut self, key: &str) -> Option<Value> {
        let Stored {
            collection,
            mut object,
        } = self.objects.remove(key)?;
        self.stamp(&mut object);
        self.emit("DELETED", &collection, &object);
        Some(object)
    }

    fn list(&self, collection: &Collection, filter: &Filter) -> Vec<Value> {
        self.objects
            .values()
            .filter(|s| collection.contains(&s.collection) && filter.matches(&s.object))
            .map(|s| s.object.clone())
            .collect()
    }

    /// Everything but lists and watches.
    fn rest(&mut self, method: &str, path: &str, target: Target, body: Value) -> (u16, Value) {
        if method != "GET" {
            self.writes.push(format!("{method} {path}"));
        }
        let Target {
            collection,
            name,
            subresource,
        } = target;
        let key = |n: &str| format!("{collection}/{n}");
        match (method, name.as_deref(), subresource.as_deref()) {
            ("GET", Some(n), _) => match self.objects.get(&key(n)) {
                Some(s) => (200, s.object.clone()),
                None => failure(404, "NotFound"),
            },
            ("POST", None, _) => {
                let mut obj = body;
                let serial = self.revision + 1;
                let name = match obj["metadata"]["name"].as_str() {
                    Some(n) => n.to_owned(),
                    None => format!(
                        "{}{serial}",
                        obj["metadata"]["generateName"].as_str().unwrap_or("x-")
                    ),
                };
                let k = key(&name);
                if self.objects.contains_key(&k) {
                    return failure(409, "AlreadyExists");
                }
                merge(
                    &mut obj,
                    &json!({ "metadata": {
                        "name": name, "uid": format!("uid-{serial}"),
                        "creationTimestamp": "2024-01-01T00:00:00Z", "generation": 1,
                    }}),
                );
                if let Some(ns) = &collection.namespace {
                    merge(&mut obj, &json!({ "metadata": { "namespace": ns } }));
                }
                (201, self.put(collection, k, obj))
            }
            ("POST", Some(n), Some("binding")) => {
                let k = key(n);
                let Some(mut pod) = self.objects.get(&k).map(|s| s.object.clone()) else {
                    return failure(404, "NotFound");
                };
                merge(
                    &mut pod,
                    &json!({ "spec": { "nodeName": body["target"]["name"] } }),
                );
                self.put(collection, k, pod);
                (
                    201,
                    json!({ "kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201 }),
                )
            }
            ("PUT", Some(n), _) => {
                let k = key(n);
                let Some(uid) = self
                    .objects
                    .get(&k)
                    .map(|s| s.object["metadata"]["uid"].clone())
                else {
                    return failure(404, "NotFound");
                };
                let mut obj = body;
                merge(&mut obj, &json!({ "metadata": { "uid": uid } }));
                (200, self.put(collection, k, obj))
            }
            ("PATCH", Some(n), _) => {
                let k = key(n);
                let Some(mut obj) = self.objects.get(&k).map(|s| s.object.clone()) else {
                    return failure(404, "NotFound");
                };
                merge(&mut obj, &body);
                (200, self.put(collection, k, obj))
            }
            ("DELETE", Some(n), None) => match self.delete(&key(n)) {
                Some(obj) => (200, obj),
                None => failure(404, "NotFound"),
            },
            _ => failure(405, "MethodNotAllowed"),
        }
    }
}

/// Holds back the lists of one collection until [`ListHold::release`] (or drop).
pub struct ListHold(watch::Sender<bool>);

impl ListHold {
    /// Lets held and later lists through.
    pub fn release(&self) {
        self.0.send_replace(true);
    }
}

impl FakeApi {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A client of this server (default namespace `default`).
    pub fn client(&self) -> kube::Client {
        let fake = self.clone();
        let svc = tower::service_fn(move |req: Request<kube::client::Body>| {
            let fake = fake.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map(http_body_util::Collected::to_bytes)
                    .unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let query = parts.uri.query().unwrap_or("");
                Ok::<_, Infallible>(
                    fake.respond(parts.method.as_str(), parts.uri.path(), query, body)
                        .await,
                )
            }
        });
        kube::Client::new(svc, "default")
    }

    async fn respond(&self, method: &str, path: &str, query: &str, body: Value) -> Response<Body> {
        self.lock().requests.push(if query.is_empty() {
            format!("{method} {path}")
        } else {
            format!("{method} {path}?{query}")
        });
        let Some(target) = parse_path(path) else {
            let (code, body) = failure(404, "NotFound");
            return json_response(code, &body);
        };
        if method == "GET" && target.name.is_none() {
            let watch = query_param(query, "watch").is_some_and(|w| w == "true" || w == "1");
            return if watch {
                self.watch(&target.collection, query)
            } else {
                self.list_response(&target.collection, query).await
            };
        }
        let (code, body) = self.lock().rest(method, path, target, body);
        json_response(code, &body)
    }

    async fn list_response(&self, collection: &Collection, query: &str) -> Response<Body> {
        let holds: Vec<watch::Receiver<bool>> = self
            .lock()
            .holds
            .iter()
            .filter(|(c, _)| c == collection)
            .map(|(_, rx)| rx.clone())
            .collect();
        for mut hold in holds {
            // A dropped hold releases too.
            let _ = hold.wait_for(|released| *released).await;
        }
        let st = self.lock();
        let items = st.list(collection, &Filter::from_query(query));
        json_response(
            200,
            &json!({ "apiVersion": "v1", "kind": "List",
                "metadata": { "resourceVersion": st.revision.to_string() }, "items": items }),
        )
    }

    fn watch(&self, collection: &Collection, query: &str) -> Response<Body> {
        let filter = Filter::from_query(query);
        let since = query_param(query, "resourceVersion")
            .and_then(|rv| rv.parse::<u64>().ok())
            .filter(|rv| *rv > 0);
        let (tx, rx) = mpsc::unbounded();
        {
            let mut st = self.lock();
            let replay: Vec<Bytes> = match since {
                Some(since) => st
                    .history
                    .iter()
                    .filter(|(rv, c, event)| {
                        *rv > since && collection.contains(c) && filter.matches(&event["object"])
                    })
                    .map(|(_, _, event)| Bytes::from(format!("{event}\n")))
                    .collect(),
                None => st
                    .list(collection, &filter)
                    .iter()
                    .map(|obj| event_line("ADDED", obj))
                    .collect(),
            };
            for line in replay {
                let _ = tx.unbounded_send(line);
            }
            st.watchers.push(Watcher {
                collection: collection.clone(),
                filter,
                tx,
            });
        }
        self.watches.send_modify(|n| *n += 1);
        let body = StreamBody::new(rx.map(|line| Ok::<_, Infallible>(Frame::data(line))));
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(body.boxed_unsync())
            .expect("a valid response")
    }

    /// Creates or replaces `obj` (named by its `metadata.name`) in `collection`, as the
    /// test: not logged as a write, but watches see it.
    pub fn insert(&self, collection: &str, obj: Value) {
        let name = obj["metadata"]["name"]
            .as_str()
            .expect("the object has metadata.name")
            .to_owned();
        let target = parse_path(collection).expect("a collection path");
        assert!(target.name.is_none(), "{collection} is not a collection");
        let key = format!("{}/{name}", target.collection);
        self.lock().put(target.collection, key, obj);
    }

    /// Deletes the object at `key`, as the test: not logged as a write, but watches see it.
    pub fn remove(&self, key: &str) -> Option<Value> {
        self.lock().delete(key)
    }

    /// The object at `key` (`api/v1/namespaces/default/pods/web`).
    pub fn get(&self, key: &str) -> Option<Value> {
        self.lock().objects.get(key).map(|s| s.object.clone())
    }

    /// The objects of `collection` (all namespaces when it names none).
    pub fn list(&self, collection: &str) -> Vec<Value> {
        let target = parse_path(collection).expect("a collection path");
        self.lock().list(&target.collection, &Filter::default())
    }

    /// The client writes since the last call, as `"METHOD /path"`.
    pub fn take_writes(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().writes)
    }

    /// Every request so far, as `"METHOD /path?query"`.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// Holds back lists of exactly `collection` (e.g.
    /// `apis/discovery.k8s.io/v1/endpointslices`) until the hold is released or dropped.
    pub fn hold_lists(&self, collection: &str) -> ListHold {
        let target = parse_path(collection).expect("a collection path");
        let (tx, rx) = watch::channel(false);
        self.lock().holds.push((target.collection, rx));
        ListHold(tx)
    }

    /// How many watches have started (each is subscribed to later writes when counted).
    pub fn watches(&self) -> watch::Receiver<usize> {
        self.watches.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let t = parse_path("/api/v1/namespaces/default/pods/web/binding").unwrap();
        assert_eq!(t.collection.to_string(), "api/v1/namespaces/default/pods");
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.subresource.as_deref(), Some("binding"));
        let t = parse_path("/api/v1/namespaces/x/finalize").unwrap();
        assert_eq!(t.collection.to_string(), "api/v1/namespaces");
        assert_eq!(t.name.as_deref(), Some("x"));
        assert_eq!(t.subresource.as_deref(), Some("finalize"));
        let t = parse_path("apis/discovery.k8s.io/v1/endpointslices").unwrap();
        assert_eq!(t.collection.namespace, None);
        assert!(t.name.is_none());
        assert!(parse_path("/version").is_none());
        assert!(parse_path("/api/v1").is_none());
    }

    #[tokio::test]
    async fn rest_and_watch_through_a_kube_client() {
        use futures::TryStreamExt;
        use k8s_openapi::api::core::v1::ConfigMap;
        use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};

        let fake = FakeApi::default();
        let api: Api<ConfigMap> = Api::namespaced(fake.client(), "default");
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"generateName": "cm-", "labels": {"app": "web"}}}),
        )
        .unwrap();
        let created = api.create(&PostParams::default(), &cm).await.unwrap();
        let name = created.metadata.name.clone().unwrap();
        assert!(name.starts_with("cm-"), "{name}");
        assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
        let list = api
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap();
        assert_eq!(list.items.len(), 1);
        assert!(
            api.list(&ListParams::default().labels("app=db"))
                .await
                .unwrap()
                .items
                .is_empty()
        );
        let rv = list.metadata.resource_version.unwrap();
        let mut events = api
            .watch(&WatchParams::default(), &rv)
            .await
            .unwrap()
            .boxed();
        assert_eq!(*fake.watches().borrow(), 1);
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "v"}})),
        )
        .await
        .unwrap();
        match events.try_next().await.unwrap() {
            Some(WatchEvent::Modified(cm)) => assert_eq!(cm.data.unwrap()["k"], "v"),
            other => panic!("expected MODIFIED, got {other:?}"),
        }
        fake.remove(&format!("api/v1/namespaces/default/configmaps/{name}"));
        assert!(matches!(
            events.try_next().await.unwrap(),
            Some(WatchEvent::Deleted(_))
        ));
        assert_eq!(
            fake.take_writes(),
            vec![
                "POST /api/v1/namespaces/default/configmaps".to_owned(),
                format!("PATCH /api/v1/namespaces/default/configmaps/{name}"),
            ]
        );
        // A watch from before the patch replays it.
        let mut replay = api
            .watch(&WatchParams::default(), &rv)
            .await
            .unwrap()
            .boxed();
        assert!(matches!(
            replay.try_next().await.unwrap(),
            Some(WatchEvent::Modified(_))
        ));
    }

    #[test]
    fn selectors() {
        let obj = json!({"metadata": {"name": "a", "labels": {"app": "web", "tier": "fe"}},
            "spec": {"nodeName": "n1"}});
        let f = |labels: &str, fields: &str| Filter {
            labels: labels.into(),
            fields: fields.into(),
        };
        assert!(f("app=web,tier==fe", "").matches(&obj));
        assert!(f("app, !missing, tier!=be", "spec.nodeName=n1").matches(&obj));
        assert!(!f("app=db", "").matches(&obj));
        assert!(!f("", "metadata.name!=a").matches(&obj));
        assert_eq!(
            query_param(
                "labelSelector=app%3Dweb%2Ctier%3Dfe&watch=true",
                "labelSelector"
            ),
            Some("app=web,tier=fe".into())
        );
    }
}
