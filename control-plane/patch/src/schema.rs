//! Patch strategies of the built-in Kubernetes kinds the API server serves.
//!
//! Go carries these as struct tags (`patchStrategy:"merge" patchMergeKey:"name"`) on the
//! k8s.io/api types and finds them by reflection. Here they are a small type graph: a [`Ty`] per
//! Go struct that has a tagged field somewhere below it, and [`field`] giving each field's type
//! and strategy. A path (field names from the object root, list indexes left out) walks the
//! graph, so `spec.ports` of a Service (merge by `port`) and `spec.containers.ports` of a Pod
//! (merge by `containerPort`) differ. Fields not in the table are plain: maps merge, lists are
//! atomic.
//!
//! Source: k8s.io/api core/v1, apps/v1, batch/v1 `types.go` and k8s.io/apimachinery
//! meta/v1 `types.go`. Lists tagged `+listType=atomic` or untagged (tolerations, args, command,
//! node taints, readinessGates, `EndpointSlice` endpoints, Endpoints subsets, ...) are atomic.

/// How a list field is merged by a strategic merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch's list replaces the document's (the default).
    Atomic,
    /// Elements are objects matched by this key and merged; unmatched patch elements are added.
    MergeByKey(&'static str),
    /// Elements are scalars; the result is the set union (e.g. `metadata.finalizers`).
    MergePrimitive,
}

/// Looks up the patch metadata of a field path, the way the server needs it.
///
/// Implemented by [`KindSchema`] for the built-in kinds; tests and callers with other types can
/// provide their own.
pub trait PatchSchema {
    /// Strategy of the list at `path` (field names from the root, array indexes elided).
    fn list_strategy(&self, path: &[&str]) -> ListStrategy;
}

/// The built-in patch schema of one Kubernetes kind (`"Pod"`, `"Deployment"`, ...).
#[derive(Debug, Clone, Copy)]
pub struct KindSchema<'a> {
    /// The object's `kind`, matched case-insensitively. Unknown kinds only know `metadata`.
    pub kind: &'a str,
}

impl PatchSchema for KindSchema<'_> {
    fn list_strategy(&self, path: &[&str]) -> ListStrategy {
        list_strategy(self.kind, path)
    }
}

/// Strategy of the list at `path` in an object of `kind`.
///
/// `path` is the field names from the object root with list indexes elided, e.g.
/// `["spec", "template", "spec", "containers", "env"]` for a Deployment.
#[must_use]
pub fn list_strategy(kind: &str, path: &[&str]) -> ListStrategy {
    lookup(kind, path).map_or(ListStrategy::Atomic, |f| f.list)
}

/// Whether the field at `path` carries the `retainKeys` patch strategy (a client computing a
/// patch sends `$retainKeys` for it; the server honours `$retainKeys` wherever it appears).
#[must_use]
pub fn retain_keys_allowed(kind: &str, path: &[&str]) -> bool {
    lookup(kind, path).is_some_and(|f| f.retain_keys)
}

fn lookup(kind: &str, path: &[&str]) -> Option<Field> {
    let (last, parents) = path.split_last()?;
    let ty = parents
        .iter()
        .fold(root(kind), |ty, name| field(ty, name).ty);
    Some(field(ty, last))
}

/// Go struct types that have a patch-tagged field at or below them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    /// Anything else: no tagged field below.
    Opaque,
    // Roots.
    Pod,
    PodTemplate,
    Deployment,
    /// `ReplicaSet`, `DaemonSet`, `StatefulSet`, Job, `ReplicationController`.
    Workload,
    CronJob,
    Service,
    Node,
    Namespace,
    ServiceAccount,
    PersistentVolumeClaim,
    /// `ConfigMap`, Secret, Endpoints, `EndpointSlice`, Event, Lease and unknown kinds.
    MetaOnly,
    // Nested types.
    ObjectMeta,
    PodTemplateSpec,
    PodSpec,
    Container,
    PodStatus,
    DeploymentSpec,
    WorkloadSpec,
    CronJobSpec,
    JobTemplateSpec,
    /// Status types whose only tagged field is `conditions` merged by `type`.
    ConditionsStatus,
    ServiceSpec,
    NodeSpec,
    NodeStatus,
}

#[derive(Debug, Clone, Copy)]
struct Field {
    ty: Ty,
    list: ListStrategy,
    retain_keys: bool,
}

fn root(kind: &str) -> Ty {
    const ROOTS: &[(&str, Ty)] = &[
        ("Pod", Ty::Pod),
        ("PodTemplate", Ty::PodTemplate),
        ("Deployment", Ty::Deployment),
        ("ReplicaSet", Ty::Workload),
        ("DaemonSet", Ty::Workload),
        ("StatefulSet", Ty::Workload),
        ("Job", Ty::Workload),
        ("ReplicationController", Ty::Workload),
        ("CronJob", Ty::CronJob),
        ("Service", Ty::Service),
        ("Node", Ty::Node),
        ("Namespace", Ty::Namespace),
        ("ServiceAccount", Ty::ServiceAccount),
        ("PersistentVolumeClaim", Ty::PersistentVolumeClaim),
    ];
    ROOTS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(kind))
        .map_or(Ty::MetaOnly, |&(_, ty)| ty)
}

#[allow(
    clippy::match_same_arms,
    reason = "one arm per (type, field), grouped by kind as upstream's patch tags are: merging arms across kinds would hide which kind a strategy belongs to"
)]
fn field(ty: Ty, name: &str) -> Field {
    use ListStrategy::{Atomic, MergeByKey, MergePrimitive};
    let plain = |ty| Field {
        ty,
        list: Atomic,
        retain_keys: false,
    };
    let by = |ty, key| Field {
        ty,
        list: MergeByKey(key),
        retain_keys: false,
    };
    let by_retain = |ty, key| Field {
        ty,
        list: MergeByKey(key),
        retain_keys: true,
    };
    match (ty, name) {
        // Every root kind has ObjectMeta.
        (
            Ty::Pod
            | Ty::PodTemplate
            | Ty::Deployment
            | Ty::Workload
            | Ty::CronJob
            | Ty::Service
            | Ty::Node
            | Ty::Namespace
            | Ty::ServiceAccount
            | Ty::PersistentVolumeClaim
            | Ty::MetaOnly
            | Ty::PodTemplateSpec
            | Ty::JobTemplateSpec,
            "metadata",
        ) => plain(Ty::ObjectMeta),
        (Ty::ObjectMeta, "finalizers") => Field {
            ty: Ty::Opaque,
            list: MergePrimitive,
            retain_keys: false,
        },
        (Ty::ObjectMeta, "ownerReferences") => by(Ty::Opaque, "uid"),

        (Ty::Pod | Ty::PodTemplateSpec, "spec") => plain(Ty::PodSpec),
        (Ty::Pod, "status") => plain(Ty::PodStatus),
        (Ty::PodTemplate | Ty::DeploymentSpec | Ty::WorkloadSpec, "template") => {
            plain(Ty::PodTemplateSpec)
        }
        (Ty::Deployment, "spec") => plain(Ty::DeploymentSpec),
        (Ty::DeploymentSpec, "strategy") => Field {
            ty: Ty::Opaque,
            list: Atomic,
            retain_keys: true,
        },
        (Ty::Workload | Ty::JobTemplateSpec, "spec") => plain(Ty::WorkloadSpec),
        (Ty::CronJob, "spec") => plain(Ty::CronJobSpec),
        (Ty::CronJobSpec, "jobTemplate") => plain(Ty::JobTemplateSpec),
        (Ty::Deployment | Ty::Workload | Ty::Namespace | Ty::PersistentVolumeClaim, "status") => {
            plain(Ty::ConditionsStatus)
        }
        (Ty::ConditionsStatus, "conditions") => by(Ty::Opaque, "type"),

        (Ty::PodSpec, "containers" | "initContainers" | "ephemeralContainers") => {
            by(Ty::Container, "name")
        }
        (Ty::PodSpec, "volumes") => by_retain(Ty::Opaque, "name"),
        (Ty::PodSpec, "imagePullSecrets" | "schedulingGates") => by(Ty::Opaque, "name"),
        (Ty::PodSpec, "hostAliases") => by(Ty::Opaque, "ip"),
        (Ty::PodSpec, "topologySpreadConstraints") => by(Ty::Opaque, "topologyKey"),
        (Ty::PodSpec, "resourceClaims") => by_retain(Ty::Opaque, "name"),
        (Ty::Container, "ports") => by(Ty::Opaque, "containerPort"),
        (Ty::Container, "env") => by(Ty::Opaque, "name"),
        (Ty::Container, "volumeMounts") => by(Ty::Opaque, "mountPath"),
        (Ty::Container, "volumeDevices") => by(Ty::Opaque, "devicePath"),
        (Ty::PodStatus, "conditions") => by(Ty::Opaque, "type"),
        (Ty::PodStatus, "podIPs" | "hostIPs") => by(Ty::Opaque, "ip"),
        (Ty::PodStatus, "resourceClaimStatuses") => by_retain(Ty::Opaque, "name"),

        (Ty::Service, "spec") => plain(Ty::ServiceSpec),
        (Ty::Service, "status") => plain(Ty::ConditionsStatus),
        (Ty::ServiceSpec, "ports") => by(Ty::Opaque, "port"),

        (Ty::Node, "spec") => plain(Ty::NodeSpec),
        (Ty::Node, "status") => plain(Ty::NodeStatus),
        (Ty::NodeSpec, "podCIDRs") => Field {
            ty: Ty::Opaque,
            list: MergePrimitive,
            retain_keys: false,
        },
        (Ty::NodeStatus, "conditions" | "addresses") => by(Ty::Opaque, "type"),

        (Ty::ServiceAccount, "secrets") => by(Ty::Opaque, "name"),

        _ => plain(Ty::Opaque),
    }
}

#[cfg(test)]
mod tests;
