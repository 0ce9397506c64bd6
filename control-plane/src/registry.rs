//! The table of resources the API server serves: names, scope, verbs, subresources,
//! and the typed codec that validates each kind's JSON.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use k8s_openapi::api::{apps, coordination, core, discovery, events};

/// How a kind's JSON is decoded into its typed form and re-encoded.
pub type CanonicalFn = fn(&Value) -> Result<Canonical, String>;

/// A body decoded through the typed Kubernetes struct.
#[derive(Debug)]
pub struct Canonical {
    /// The object as the typed struct re-encodes it: unknown fields are gone.
    pub value: Value,
    /// JSON paths of fields in the input that the type does not know.
    pub unknown_fields: Vec<String>,
}

/// Subresources a resource offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// `/status`: writes touch only `.status`.
    Status,
    /// `/scale`: an `autoscaling/v1` Scale view of `spec.replicas`.
    Scale,
    /// `pods/binding`: assigns a pod to a node.
    Binding,
    /// `namespaces/finalize`: writes `spec.finalizers`.
    Finalize,
}

impl Subresource {
    /// The URL segment.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Scale => "scale",
            Self::Binding => "binding",
            Self::Finalize => "finalize",
        }
    }
}

/// One served resource.
#[derive(Debug)]
pub struct Resource {
    /// API group ("" for core).
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Plural, the URL segment.
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names for kubectl.
    pub short_names: &'static [&'static str],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// Subresources.
    pub subresources: &'static [Subresource],
    /// Typed codec.
    pub canonical: CanonicalFn,
    /// Store key segment when objects share storage with another resource (events.k8s.io
    /// events live with core/v1 events, as upstream stores them once).
    pub storage: Option<&'static str>,
    /// Converts the stored form into this resource's form.
    pub from_storage: Option<fn(Value) -> Value>,
    /// Converts this resource's form into the stored form.
    pub to_storage: Option<fn(Value) -> Value>,
}

impl Resource {
    /// `apiVersion` as written in objects.
    #[must_use]
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The `group/version` path prefix of this resource's URLs.
    #[must_use]
    pub fn path_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// Store key prefix of every object of this resource.
    #[must_use]
    pub fn key_prefix(&self) -> String {
        if let Some(seg) = self.storage {
            format!("/registry/{seg}/")
        } else if self.group.is_empty() {
            format!("/registry/{}/", self.plural)
        } else {
            format!("/registry/{}.{}/", self.plural, self.group)
        }
    }

    /// Store key prefix for one namespace (or all objects if `ns` is None / cluster scoped).
    #[must_use]
    pub fn list_prefix(&self, ns: Option<&str>) -> String {
        match ns {
            Some(ns) if self.namespaced => format!("{}{ns}/", self.key_prefix()),
            _ => self.key_prefix(),
        }
    }

    /// Store key of one object.
    #[must_use]
    pub fn key(&self, ns: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.list_prefix(ns))
    }

    /// Whether the resource has the given subresource.
    #[must_use]
    pub fn has(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }

    /// Kind of the list.
    #[must_use]
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// Decode through the typed struct `T`, re-encode, and report the input fields `T` dropped.
fn canonical<T: DeserializeOwned + Serialize>(input: &Value) -> Result<Canonical, String> {
    let typed: T = serde_json::from_value(input.clone()).map_err(|e| e.to_string())?;
    let value = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut unknown_fields = Vec::new();
    dropped_fields(input, &value, "", &mut unknown_fields);
    Ok(Canonical {
        value,
        unknown_fields,
    })
}

/// Paths present (non-null) in `input` but missing from `kept`.
fn dropped_fields(input: &Value, kept: &Value, path: &str, out: &mut Vec<String>) {
    match (input, kept) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if v.is_null() {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(kv) => dropped_fields(v, kv, &p, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                dropped_fields(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

use Subresource::{Binding, Finalize, Scale, Status};

/// Every resource the server offers.
pub static RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        subresources: &[Status, Finalize],
        canonical: canonical::<core::v1::Namespace>,
        storage: None,
        from_storage: None,
        to_storage: None,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        subresources: &[Status],
        canonical: canonical::<core::v1::Node>,
        storage: None,
        from_storage: None,
        to_storage: None,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        subresources: &[Status, Binding],
        canonical: canonical::<core::v1::Pod>,
        storage: None,
        from_storage: None,
        to_storage: None,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        subresources: &[Status],
        canonical: canonical::<core::v1::Service>,
        storage: None,
        from_storage: None,
        to_storage: None,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "endpoints",
        singular: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        subresources: &[],
        canonical: canonical::<core::v1::Endpoints>,
        storage: None,
        from_storage: None,
        to_storage: None,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        subresources: &[],
        canonical: canonical::<core::v1::ServiceAccount>,
        storage: None,
        from_storage: None,
        to_storage: None,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        subresources: &[],
        canonical: canonical::<core::v1::ConfigMap>,
        storage: None,
        from_storage: None,
        to_storage: None,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        canonical: canonical::<core::v1::Secret>,
        storage: None,
        from_storage: None,
        to_storage: None,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        canonical: canonical::<core::v1::Event>,
        storage: None,
        from_storage: None,
        to_storage: None,
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        subresources: &[Status, Scale],
        canonical: canonical::<apps::v1::Deployment>,
        storage: None,
        from_storage: None,
        to_storage: None,
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        subresources: &[Status, Scale],
        canonical: canonical::<apps::v1::ReplicaSet>,
        storage: None,
        from_storage: None,
        to_storage: None,
    },
    Resource {
        group: "discovery.k8s.io",
        version: "v1",
        plural: "endpointslices",
        singular: "endpointslice",
        kind: "EndpointSlice",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        canonical: canonical::<discovery::v1::EndpointSlice>,
        storage: None,
        from_storage: None,
        to_storage: None,
    },
    Resource {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        canonical: canonical::<events::v1::Event>,
        storage: Some("events"),
        from_storage: Some(event_from_core),
        to_storage: Some(event_to_core),
    },
    Resource {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        singular: "lease",
        kind: "Lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        canonical: canonical::<coordination::v1::Lease>,
        storage: None,
        from_storage: None,
        to_storage: None,
    },
];

/// `events.k8s.io/v1` field name <-> `core/v1` field name (upstream's conversion).
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename_fields(
    mut v: Value,
    pairs: impl Iterator<Item = (&'static str, &'static str)>,
    api_version: &str,
) -> Value {
    if let Some(m) = v.as_object_mut() {
        for (from, to) in pairs {
            if let Some(x) = m.remove(from) {
                m.insert(to.to_string(), x);
            }
        }
        m.insert("apiVersion".into(), Value::String(api_version.into()));
    }
    v
}

fn event_from_core(v: Value) -> Value {
    rename_fields(
        v,
        EVENT_FIELDS.iter().map(|(a, b)| (*b, *a)),
        "events.k8s.io/v1",
    )
}

fn event_to_core(v: Value) -> Value {
    rename_fields(v, EVENT_FIELDS.iter().copied(), "v1")
}

/// The group/versions served, in discovery order (core first).
#[must_use]
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// Look a resource up by group, version and plural.
#[must_use]
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Look a resource up by its kind within a group.
#[must_use]
pub fn find_kind(group: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_reports_unknown_fields_with_paths() {
        let r = find("apps", "v1", "deployments").unwrap();
        let body = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"a": "b"}},
            "spec": {"replicaz": 3, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicyy": "x"}]}}}
        });
        let c = (r.canonical)(&body).unwrap();
        assert_eq!(
            c.unknown_fields,
            vec![
                "spec.replicaz".to_string(),
                "spec.template.spec.containers[0].imagePullPolicyy".to_string()
            ]
        );
        assert!(c.value["spec"].get("replicaz").is_none());
        assert_eq!(c.value["metadata"]["labels"]["a"], "b");
    }

    #[test]
    fn canonical_rejects_wrong_kind_and_types() {
        let r = find("", "v1", "pods").unwrap();
        let wrong_kind = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}});
        assert!((r.canonical)(&wrong_kind).is_err());
        let bad_type = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": 5}});
        assert!((r.canonical)(&bad_type).is_err());
    }

    #[test]
    fn events_share_storage_across_groups() {
        let core = find("", "v1", "events").unwrap();
        let new = find("events.k8s.io", "v1", "events").unwrap();
        assert_eq!(core.key_prefix(), new.key_prefix());
        let e = serde_json::json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "note": "hi",
            "regarding": {"kind": "Pod", "name": "p"}, "deprecatedCount": 2});
        let stored = (new.to_storage.unwrap())(e.clone());
        assert_eq!(stored["message"], "hi");
        assert_eq!(stored["involvedObject"]["name"], "p");
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!((new.from_storage.unwrap())(stored), e);
    }

    #[test]
    fn keys_do_not_collide_across_namespaces() {
        let r = find("", "v1", "pods").unwrap();
        assert_eq!(r.key(Some("default"), "a"), "/registry/pods/default/a");
        assert_eq!(r.list_prefix(Some("default")), "/registry/pods/default/");
        let d = find("apps", "v1", "deployments").unwrap();
        assert_eq!(d.key_prefix(), "/registry/deployments.apps/");
        let n = find("", "v1", "nodes").unwrap();
        assert_eq!(n.key(None, "n1"), "/registry/nodes/n1");
    }
}
