//! The kinds this crate decodes: `(apiVersion, kind, message)`.
//!
//! Adding a kind is one line here, then a regeneration of `generated.rs`
//! (see `generate.rs`); the test `every_kind_has_a_table` fails until then.

pub(crate) const KINDS: &[(&str, &str, &str)] = &[
    ("v1", "Namespace", "api.core.v1.Namespace"),
    ("v1", "Node", "api.core.v1.Node"),
    ("v1", "Pod", "api.core.v1.Pod"),
    ("v1", "Service", "api.core.v1.Service"),
    ("v1", "Endpoints", "api.core.v1.Endpoints"),
    ("v1", "ServiceAccount", "api.core.v1.ServiceAccount"),
    ("v1", "ConfigMap", "api.core.v1.ConfigMap"),
    ("v1", "Secret", "api.core.v1.Secret"),
    ("v1", "Event", "api.core.v1.Event"),
    (
        "v1",
        "ReplicationController",
        "api.core.v1.ReplicationController",
    ),
    ("v1", "PersistentVolume", "api.core.v1.PersistentVolume"),
    (
        "v1",
        "PersistentVolumeClaim",
        "api.core.v1.PersistentVolumeClaim",
    ),
    ("v1", "PodTemplate", "api.core.v1.PodTemplate"),
    ("v1", "ResourceQuota", "api.core.v1.ResourceQuota"),
    ("v1", "LimitRange", "api.core.v1.LimitRange"),
    ("v1", "Binding", "api.core.v1.Binding"),
    ("v1", "ComponentStatus", "api.core.v1.ComponentStatus"),
    ("apps/v1", "Deployment", "api.apps.v1.Deployment"),
    ("apps/v1", "ReplicaSet", "api.apps.v1.ReplicaSet"),
    ("apps/v1", "DaemonSet", "api.apps.v1.DaemonSet"),
    ("apps/v1", "StatefulSet", "api.apps.v1.StatefulSet"),
    (
        "apps/v1",
        "ControllerRevision",
        "api.apps.v1.ControllerRevision",
    ),
    ("batch/v1", "Job", "api.batch.v1.Job"),
    ("batch/v1", "CronJob", "api.batch.v1.CronJob"),
    ("autoscaling/v1", "Scale", "api.autoscaling.v1.Scale"),
    (
        "autoscaling/v1",
        "HorizontalPodAutoscaler",
        "api.autoscaling.v1.HorizontalPodAutoscaler",
    ),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "api.autoscaling.v2.HorizontalPodAutoscaler",
    ),
    (
        "discovery.k8s.io/v1",
        "EndpointSlice",
        "api.discovery.v1.EndpointSlice",
    ),
    ("events.k8s.io/v1", "Event", "api.events.v1.Event"),
    (
        "coordination.k8s.io/v1",
        "Lease",
        "api.coordination.v1.Lease",
    ),
    (
        "storage.k8s.io/v1",
        "StorageClass",
        "api.storage.v1.StorageClass",
    ),
    ("storage.k8s.io/v1", "CSIDriver", "api.storage.v1.CSIDriver"),
    ("storage.k8s.io/v1", "CSINode", "api.storage.v1.CSINode"),
    (
        "storage.k8s.io/v1",
        "VolumeAttachment",
        "api.storage.v1.VolumeAttachment",
    ),
    (
        "storage.k8s.io/v1",
        "CSIStorageCapacity",
        "api.storage.v1.CSIStorageCapacity",
    ),
    (
        "policy/v1",
        "PodDisruptionBudget",
        "api.policy.v1.PodDisruptionBudget",
    ),
    ("policy/v1", "Eviction", "api.policy.v1.Eviction"),
    (
        "networking.k8s.io/v1",
        "Ingress",
        "api.networking.v1.Ingress",
    ),
    (
        "networking.k8s.io/v1",
        "IngressClass",
        "api.networking.v1.IngressClass",
    ),
    (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "api.networking.v1.NetworkPolicy",
    ),
    ("rbac.authorization.k8s.io/v1", "Role", "api.rbac.v1.Role"),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "api.rbac.v1.ClusterRole",
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "api.rbac.v1.RoleBinding",
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "api.rbac.v1.ClusterRoleBinding",
    ),
    (
        "scheduling.k8s.io/v1",
        "PriorityClass",
        "api.scheduling.v1.PriorityClass",
    ),
    ("node.k8s.io/v1", "RuntimeClass", "api.node.v1.RuntimeClass"),
    (
        "certificates.k8s.io/v1",
        "CertificateSigningRequest",
        "api.certificates.v1.CertificateSigningRequest",
    ),
    (
        "authentication.k8s.io/v1",
        "TokenRequest",
        "api.authentication.v1.TokenRequest",
    ),
    (
        "authentication.k8s.io/v1",
        "TokenReview",
        "api.authentication.v1.TokenReview",
    ),
    (
        "authentication.k8s.io/v1",
        "SelfSubjectReview",
        "api.authentication.v1.SelfSubjectReview",
    ),
    (
        "authorization.k8s.io/v1",
        "SubjectAccessReview",
        "api.authorization.v1.SubjectAccessReview",
    ),
    (
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        "api.authorization.v1.SelfSubjectAccessReview",
    ),
    (
        "authorization.k8s.io/v1",
        "LocalSubjectAccessReview",
        "api.authorization.v1.LocalSubjectAccessReview",
    ),
    (
        "authorization.k8s.io/v1",
        "SelfSubjectRulesReview",
        "api.authorization.v1.SelfSubjectRulesReview",
    ),
    (
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
        "api.admissionregistration.v1.MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
        "api.admissionregistration.v1.ValidatingWebhookConfiguration",
    ),
    (
        "flowcontrol.apiserver.k8s.io/v1",
        "FlowSchema",
        "api.flowcontrol.v1.FlowSchema",
    ),
    (
        "flowcontrol.apiserver.k8s.io/v1",
        "PriorityLevelConfiguration",
        "api.flowcontrol.v1.PriorityLevelConfiguration",
    ),
    (
        "apiregistration.k8s.io/v1",
        "APIService",
        "kube_aggregator.pkg.apis.apiregistration.v1.APIService",
    ),
    (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
    ),
    (
        "v1",
        "DeleteOptions",
        "apimachinery.pkg.apis.meta.v1.DeleteOptions",
    ),
    (
        "meta.k8s.io/v1",
        "DeleteOptions",
        "apimachinery.pkg.apis.meta.v1.DeleteOptions",
    ),
];
