//! The resources the API server serves. A [`Resource`] is a kind's names, scope and
//! subresources plus its [`Strategy`]: everything that differs between kinds. The
//! [`Registry`] holds the built-ins (`kinds/`, one file each) and the resources installed at
//! run time (custom resources), and is the only lookup the verbs and discovery use.

pub mod custom;
pub mod kinds;
pub mod printers;
pub mod strategy;
pub mod validation;

use std::sync::{Arc, RwLock};

pub use strategy::{Canonical, Column, NameRule, Strategy, ValidationContext};

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
    /// `pods/eviction`: a delete that honours `PodDisruptionBudgets`.
    Eviction,
    /// `pods/log`: the container's log, from the kubelet of the pod's node.
    Log,
    /// `pods/exec`: a command in a container, streamed through the kubelet (upgrade).
    Exec,
    /// `pods/attach`: the streams of a running container, through the kubelet (upgrade).
    Attach,
    /// `pods/portforward`: connections to pod ports, through the kubelet (upgrade).
    PortForward,
    /// `pods/proxy`, `services/proxy`, `nodes/proxy`: HTTP to the pod, a Service endpoint
    /// or the node's kubelet.
    Proxy,
    /// `pods/ephemeralcontainers`: writes touch only `spec.ephemeralContainers`.
    EphemeralContainers,
}

impl Subresource {
    /// Every subresource, for URL parsing.
    pub const ALL: [Self; 11] = [
        Self::Status,
        Self::Scale,
        Self::Binding,
        Self::Finalize,
        Self::Eviction,
        Self::Log,
        Self::Exec,
        Self::Attach,
        Self::PortForward,
        Self::Proxy,
        Self::EphemeralContainers,
    ];

    /// The URL segment.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Scale => "scale",
            Self::Binding => "binding",
            Self::Finalize => "finalize",
            Self::Eviction => "eviction",
            Self::Log => "log",
            Self::Exec => "exec",
            Self::Attach => "attach",
            Self::PortForward => "portforward",
            Self::Proxy => "proxy",
            Self::EphemeralContainers => "ephemeralcontainers",
        }
    }

    /// Whether requests to it are passed on whole (body stream and upgrade) to a backend
    /// rather than read here: upstream's `connect` subresources.
    #[must_use]
    pub fn is_connect(self) -> bool {
        matches!(
            self,
            Self::Exec | Self::Attach | Self::PortForward | Self::Proxy
        )
    }

    /// The subresource named by a URL segment.
    #[must_use]
    pub fn parse(segment: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == segment)
    }
}

/// One served resource.
pub struct Resource {
    /// API group ("" for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural, the URL segment.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Subresources.
    pub subresources: Vec<Subresource>,
    /// Store key segment when objects share storage with another resource (events.k8s.io
    /// events live with core/v1 events, as upstream stores them once).
    pub storage: Option<String>,
    /// Whether this version is the one objects are stored in (several versions of one custom
    /// resource share storage; only the storage version is written).
    pub storage_version: bool,
    /// Everything kind-specific.
    pub strategy: Box<dyn Strategy>,
}

impl std::fmt::Debug for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Resource({}/{} {})",
            self.group, self.version, self.plural
        )
    }
}

impl Resource {
    /// A resource with no short names, categories or subresources.
    pub fn new(
        group: &str,
        version: &str,
        plural: &str,
        singular: &str,
        kind: &str,
        namespaced: bool,
        strategy: impl Strategy,
    ) -> Self {
        Self {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            singular: singular.to_string(),
            kind: kind.to_string(),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            subresources: Vec::new(),
            storage: None,
            storage_version: true,
            strategy: Box::new(strategy),
        }
    }

    /// With kubectl short names.
    #[must_use]
    pub fn short_names(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(ToString::to_string).collect();
        self
    }

    /// With categories.
    #[must_use]
    pub fn categories(mut self, cats: &[&str]) -> Self {
        self.categories = cats.iter().map(ToString::to_string).collect();
        self
    }

    /// With subresources.
    #[must_use]
    pub fn subresources(mut self, subs: &[Subresource]) -> Self {
        self.subresources = subs.to_vec();
        self
    }

    /// Stored under another resource's key segment.
    #[must_use]
    pub fn stored_as(mut self, segment: &str) -> Self {
        self.storage = Some(segment.to_string());
        self
    }

    /// `apiVersion` as written in objects.
    #[must_use]
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
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
        if let Some(seg) = &self.storage {
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

    /// `plural.group` (`deployments.apps`, `pods`), as upstream names a group-resource.
    #[must_use]
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// Every served resource: the built-ins and those installed at run time.
pub struct Registry {
    resources: RwLock<Vec<Arc<Resource>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Registry {
    /// The built-in kinds.
    #[must_use]
    pub fn builtin() -> Self {
        Self {
            resources: RwLock::new(kinds::builtins().into_iter().map(Arc::new).collect()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Resource>>> {
        // A poisoned lock only means a panic elsewhere while holding it; the list itself is
        // always whole (writers replace entries, never leave half-made ones).
        self.resources
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every resource, in discovery order.
    #[must_use]
    pub fn all(&self) -> Vec<Arc<Resource>> {
        self.read().clone()
    }

    /// Look a resource up by group, version and plural.
    #[must_use]
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Resource>> {
        self.read()
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// Look a resource up by kind within a group (any version, the first served).
    #[must_use]
    pub fn find_kind(&self, group: &str, kind: &str) -> Option<Arc<Resource>> {
        self.read()
            .iter()
            .find(|r| r.group == group && r.kind == kind)
            .cloned()
    }

    /// Whether a group serves anything (core counts).
    #[must_use]
    pub fn has_group(&self, group: &str) -> bool {
        self.read().iter().any(|r| r.group == group)
    }

    /// The group/versions served, in discovery order (core first).
    #[must_use]
    pub fn group_versions(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for r in self.read().iter() {
            if !out.iter().any(|(g, v)| *g == r.group && *v == r.version) {
                out.push((r.group.clone(), r.version.clone()));
            }
        }
        out
    }

    /// Replace the resources of one group-resource (every version of a custom resource) with
    /// `resources`; an empty list removes it.
    pub fn install(&self, group: &str, plural: &str, resources: Vec<Resource>) {
        let mut all = self
            .resources
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.retain(|r| !(r.group == group && r.plural == plural));
        all.extend(resources.into_iter().map(Arc::new));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reg() -> Registry {
        Registry::builtin()
    }

    #[test]
    fn canonical_reports_unknown_fields_with_paths() {
        let r = reg().find("apps", "v1", "deployments").unwrap();
        let body = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"a": "b"}},
            "spec": {"replicaz": 3, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicyy": "x"}]}}}
        });
        let c = r.strategy.canonical(&body).unwrap();
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
        let r = reg().find("", "v1", "pods").unwrap();
        let wrong_kind = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}});
        assert!(r.strategy.canonical(&wrong_kind).is_err());
        let bad_type = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": 5}});
        assert!(r.strategy.canonical(&bad_type).is_err());
    }

    #[test]
    fn events_share_storage_across_groups() {
        let reg = reg();
        let core = reg.find("", "v1", "events").unwrap();
        let new = reg.find("events.k8s.io", "v1", "events").unwrap();
        assert_eq!(core.key_prefix(), new.key_prefix());
    }

    #[test]
    fn keys_do_not_collide_across_namespaces() {
        let reg = reg();
        let r = reg.find("", "v1", "pods").unwrap();
        assert_eq!(r.key(Some("default"), "a"), "/registry/pods/default/a");
        assert_eq!(r.list_prefix(Some("default")), "/registry/pods/default/");
        let d = reg.find("apps", "v1", "deployments").unwrap();
        assert_eq!(d.key_prefix(), "/registry/deployments.apps/");
        let n = reg.find("", "v1", "nodes").unwrap();
        assert_eq!(n.key(None, "n1"), "/registry/nodes/n1");
    }

    #[test]
    fn every_builtin_is_served_once_and_fills_its_columns() {
        let all = reg().all();
        for (i, r) in all.iter().enumerate() {
            assert!(
                !all[..i]
                    .iter()
                    .any(|o| o.group == r.group && o.version == r.version && o.plural == r.plural),
                "{r:?} twice"
            );
            assert_eq!(
                r.strategy.cells(&json!({})).len(),
                r.strategy.columns().len(),
                "{r:?}"
            );
        }
    }

    #[test]
    fn installed_resources_are_found_and_removed() {
        let reg = reg();
        reg.install(
            "stable.example.com",
            "crontabs",
            vec![Resource::new(
                "stable.example.com",
                "v1",
                "crontabs",
                "crontab",
                "CronTab",
                true,
                kinds::configmap::ConfigMapStrategy,
            )],
        );
        assert!(reg.find("stable.example.com", "v1", "crontabs").is_some());
        assert!(reg.has_group("stable.example.com"));
        reg.install("stable.example.com", "crontabs", Vec::new());
        assert!(reg.find("stable.example.com", "v1", "crontabs").is_none());
    }
}
