//! An in-memory fake API server for glue tests: enough REST (get, list with equality label
//! selectors, create with generateName, replace, JSON merge patch, delete, `status`,
//! `binding` and `finalize` subresources) to drive one reconcile through a real `kube::Client`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

#[derive(Default)]
pub struct State {
    /// "collection path/name" -> object.
    pub objects: BTreeMap<String, Value>,
    /// "METHOD path" of every write.
    pub writes: Vec<String>,
    counter: u64,
}

#[derive(Clone, Default)]
pub struct Fake(pub Arc<Mutex<State>>);

fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("object");
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

fn status(code: u16, reason: &str) -> (u16, Value) {
    (
        code,
        json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": reason, "code": code }),
    )
}

/// Splits a path into (collection, name, subresource).
fn split(path: &str) -> (String, Option<String>, Option<String>) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // api/v1[/namespaces/ns]/plural[/name[/sub]] or apis/g/v[/namespaces/ns]/plural[/name[/sub]]
    let mut i = if parts[0] == "api" { 2 } else { 3 };
    if parts.get(i) == Some(&"namespaces")
        && parts.len() > i + 2
        && !matches!(parts[i + 2], "finalize" | "status")
    {
        i += 2;
    }
    let collection = parts[..=i].join("/");
    (
        collection,
        parts.get(i + 1).map(|s| (*s).to_string()),
        parts.get(i + 2).map(|s| (*s).to_string()),
    )
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| {
            v.replace("%3D", "=")
                .replace("%2C", ",")
                .replace("%2F", "/")
        })
    })
}

fn labels_match(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        obj["metadata"]["labels"][k].as_str() == Some(v)
    })
}

impl Fake {
    pub fn client(&self) -> kube::Client {
        let fake = self.clone();
        let svc = tower::service_fn(move |req: Request<kube::client::Body>| {
            let fake = fake.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let (code, out) = fake.handle(
                    parts.method.as_str(),
                    parts.uri.path(),
                    parts.uri.query().unwrap_or(""),
                    body,
                );
                let resp = Response::builder()
                    .status(StatusCode::from_u16(code).expect("code"))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(
                        serde_json::to_vec(&out).expect("json"),
                    )))
                    .expect("response");
                Ok::<_, Infallible>(resp)
            }
        });
        kube::Client::new(svc, "default")
    }

    pub fn insert(&self, collection: &str, obj: Value) {
        let name = obj["metadata"]["name"].as_str().expect("name").to_string();
        self.0
            .lock()
            .unwrap()
            .objects
            .insert(format!("{collection}/{name}"), obj);
    }

    pub fn get(&self, key: &str) -> Option<Value> {
        self.0.lock().unwrap().objects.get(key).cloned()
    }

    pub fn list(&self, collection: &str) -> Vec<Value> {
        let st = self.0.lock().unwrap();
        st.objects
            .iter()
            .filter(|(k, _)| k.rsplit_once('/').is_some_and(|(c, _)| c == collection))
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn take_writes(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap().writes)
    }

    fn handle(&self, method: &str, path: &str, query: &str, body: Value) -> (u16, Value) {
        let mut st = self.0.lock().unwrap();
        if method != "GET" {
            st.writes.push(format!("{method} {path}"));
        }
        let (collection, name, sub) = split(path);
        st.counter += 1;
        let rv = st.counter.to_string();
        match (method, name, sub.as_deref()) {
            ("GET", None, _) => {
                let selector = query_param(query, "labelSelector").unwrap_or_default();
                let items: Vec<Value> = st
                    .objects
                    .iter()
                    .filter(|(k, v)| {
                        k.rsplit_once('/').is_some_and(|(c, _)| c == collection)
                            && labels_match(v, &selector)
                    })
                    .map(|(_, v)| v.clone())
                    .collect();
                (
                    200,
                    json!({ "apiVersion": "v1", "kind": "List", "metadata": { "resourceVersion": rv }, "items": items }),
                )
            }
            ("GET", Some(n), _) => match st.objects.get(&format!("{collection}/{n}")) {
                Some(o) => (200, o.clone()),
                None => status(404, "NotFound"),
            },
            ("POST", None, _) => {
                let mut obj = body;
                let name = match obj["metadata"]["name"].as_str() {
                    Some(n) => n.to_string(),
                    None => format!(
                        "{}{}",
                        obj["metadata"]["generateName"].as_str().unwrap_or("x-"),
                        st.counter
                    ),
                };
                let key = format!("{collection}/{name}");
                if st.objects.contains_key(&key) {
                    return status(409, "AlreadyExists");
                }
                merge(
                    &mut obj,
                    &json!({ "metadata": {
                        "name": name, "uid": format!("uid-{}", st.counter), "resourceVersion": rv,
                        "creationTimestamp": "2024-01-01T00:00:00Z", "generation": 1,
                    }}),
                );
                if let Some(ns) = collection
                    .split('/')
                    .skip_while(|p| *p != "namespaces")
                    .nth(1)
                {
                    merge(&mut obj, &json!({ "metadata": { "namespace": ns } }));
                }
                st.objects.insert(key, obj.clone());
                (201, obj)
            }
            ("POST", Some(n), Some("binding")) => {
                match st.objects.get_mut(&format!("{collection}/{n}")) {
                    Some(pod) => {
                        merge(
                            pod,
                            &json!({ "spec": { "nodeName": body["target"]["name"] } }),
                        );
                        (
                            201,
                            json!({ "kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201 }),
                        )
                    }
                    None => status(404, "NotFound"),
                }
            }
            ("PUT", Some(n), _) => match st.objects.get_mut(&format!("{collection}/{n}")) {
                Some(o) => {
                    let uid = o["metadata"]["uid"].clone();
                    *o = body;
                    merge(
                        o,
                        &json!({ "metadata": { "uid": uid, "resourceVersion": rv } }),
                    );
                    (200, o.clone())
                }
                None => status(404, "NotFound"),
            },
            ("PATCH", Some(n), _) => match st.objects.get_mut(&format!("{collection}/{n}")) {
                Some(o) => {
                    merge(o, &body);
                    merge(o, &json!({ "metadata": { "resourceVersion": rv } }));
                    (200, o.clone())
                }
                None => status(404, "NotFound"),
            },
            ("DELETE", Some(n), _) => match st.objects.remove(&format!("{collection}/{n}")) {
                Some(o) => (200, o),
                None => status(404, "NotFound"),
            },
            _ => status(405, "MethodNotAllowed"),
        }
    }
}
