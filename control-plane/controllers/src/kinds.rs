//! The namespaced kinds the garbage collector and the namespace controller act on.

use kube::Client;
use kube::core::discovery::{ApiResource, Scope, verbs};
use kube::discovery::Discovery;

/// `(group, version, kind, plural)` of every namespaced kind we know how to clean up.
const KNOWN: &[(&str, &str, &str, &str)] = &[
    ("", "v1", "Pod", "pods"),
    ("", "v1", "Service", "services"),
    ("", "v1", "Endpoints", "endpoints"),
    ("", "v1", "ConfigMap", "configmaps"),
    ("", "v1", "Secret", "secrets"),
    ("", "v1", "ServiceAccount", "serviceaccounts"),
    ("", "v1", "Event", "events"),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("", "v1", "ReplicationController", "replicationcontrollers"),
    ("", "v1", "ResourceQuota", "resourcequotas"),
    ("", "v1", "LimitRange", "limitranges"),
    ("", "v1", "PodTemplate", "podtemplates"),
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "ReplicaSet", "replicasets"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("apps", "v1", "DaemonSet", "daemonsets"),
    ("apps", "v1", "ControllerRevision", "controllerrevisions"),
    ("batch", "v1", "Job", "jobs"),
    ("batch", "v1", "CronJob", "cronjobs"),
    ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
    ("coordination.k8s.io", "v1", "Lease", "leases"),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
    ),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    ),
    ("networking.k8s.io", "v1", "Ingress", "ingresses"),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
    ),
];

/// Kinds used when discovery fails: the ones every sluice server serves.
const FALLBACK: &[&str] = &[
    "pods",
    "services",
    "endpoints",
    "configmaps",
    "secrets",
    "serviceaccounts",
    "events",
    "deployments",
    "replicasets",
    "endpointslices",
    "leases",
];

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.to_string(),
        plural: plural.to_string(),
    }
}

/// The fallback list, without asking the server.
#[must_use]
pub fn fallback_kinds() -> Vec<ApiResource> {
    KNOWN
        .iter()
        .filter(|(_, _, _, plural)| FALLBACK.contains(plural))
        .map(|(g, v, k, p)| resource(g, v, k, p))
        .collect()
}

/// Known kinds that discovery confirms are served, namespaced, and support list, watch and
/// delete; the fallback list if discovery fails.
pub async fn namespaced_kinds(client: &Client) -> Vec<ApiResource> {
    let discovery = match Discovery::new(client.clone()).run().await {
        Ok(d) => d,
        Err(err) => {
            tracing::warn!(error = %err, "discovery failed; using the built-in kinds list");
            return fallback_kinds();
        }
    };
    let mut out = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            let known = KNOWN.iter().any(|(g, v, k, p)| {
                *g == ar.group && *v == ar.version && *k == ar.kind && *p == ar.plural
            });
            let usable = caps.scope == Scope::Namespaced
                && caps.supports_operation(verbs::LIST)
                && caps.supports_operation(verbs::WATCH)
                && caps.supports_operation(verbs::DELETE);
            if known && usable {
                out.push(ar);
            }
        }
    }
    if out.is_empty() {
        fallback_kinds()
    } else {
        out
    }
}

/// Finds a kind by apiVersion and kind.
#[must_use]
pub fn find<'a>(
    kinds: &'a [ApiResource],
    api_version: &str,
    kind: &str,
) -> Option<&'a ApiResource> {
    kinds
        .iter()
        .find(|k| k.api_version == api_version && k.kind == kind)
}
