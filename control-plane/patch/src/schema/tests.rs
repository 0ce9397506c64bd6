use crate::{ListStrategy, list_strategy, retain_keys_allowed};

use ListStrategy::{Atomic, MergeByKey, MergePrimitive};

#[test]
fn pod_paths() {
    let cases: &[(&[&str], ListStrategy)] = &[
        (&["spec", "containers"], MergeByKey("name")),
        (&["spec", "initContainers"], MergeByKey("name")),
        (&["spec", "ephemeralContainers"], MergeByKey("name")),
        (
            &["spec", "containers", "ports"],
            MergeByKey("containerPort"),
        ),
        (&["spec", "containers", "env"], MergeByKey("name")),
        (
            &["spec", "initContainers", "volumeMounts"],
            MergeByKey("mountPath"),
        ),
        (
            &["spec", "containers", "volumeDevices"],
            MergeByKey("devicePath"),
        ),
        (&["spec", "containers", "args"], Atomic),
        (&["spec", "containers", "command"], Atomic),
        (&["spec", "containers", "envFrom"], Atomic),
        (&["spec", "volumes"], MergeByKey("name")),
        (&["spec", "imagePullSecrets"], MergeByKey("name")),
        (&["spec", "hostAliases"], MergeByKey("ip")),
        (
            &["spec", "topologySpreadConstraints"],
            MergeByKey("topologyKey"),
        ),
        (&["spec", "tolerations"], Atomic),
        (&["spec", "readinessGates"], Atomic),
        (&["status", "conditions"], MergeByKey("type")),
        (&["status", "podIPs"], MergeByKey("ip")),
        (&["status", "containerStatuses"], Atomic),
        (&["metadata", "finalizers"], MergePrimitive),
        (&["metadata", "ownerReferences"], MergeByKey("uid")),
        (&["metadata", "managedFields"], Atomic),
        (&[], Atomic),
    ];
    for (path, want) in cases {
        assert_eq!(list_strategy("Pod", path), *want, "Pod {path:?}");
    }
}

#[test]
fn pod_template_inside_workloads() {
    for kind in [
        "Deployment",
        "ReplicaSet",
        "DaemonSet",
        "StatefulSet",
        "Job",
        "ReplicationController",
    ] {
        let containers = ["spec", "template", "spec", "containers"];
        assert_eq!(
            list_strategy(kind, &containers),
            MergeByKey("name"),
            "{kind}"
        );
        assert_eq!(
            list_strategy(kind, &["spec", "template", "spec", "containers", "env"]),
            MergeByKey("name"),
            "{kind}"
        );
        assert_eq!(
            list_strategy(kind, &["spec", "template", "metadata", "finalizers"]),
            MergePrimitive
        );
        assert_eq!(
            list_strategy(kind, &["status", "conditions"]),
            MergeByKey("type"),
            "{kind}"
        );
        // No pod spec directly under a workload's spec.
        assert_eq!(
            list_strategy(kind, &["spec", "containers"]),
            Atomic,
            "{kind}"
        );
    }
    let cron = [
        "spec",
        "jobTemplate",
        "spec",
        "template",
        "spec",
        "initContainers",
    ];
    assert_eq!(list_strategy("CronJob", &cron), MergeByKey("name"));
    assert_eq!(
        list_strategy("PodTemplate", &["template", "spec", "volumes"]),
        MergeByKey("name")
    );
}

#[test]
fn container_ports_differ_from_service_ports() {
    assert_eq!(
        list_strategy("Service", &["spec", "ports"]),
        MergeByKey("port")
    );
    assert_eq!(
        list_strategy("Pod", &["spec", "containers", "ports"]),
        MergeByKey("containerPort")
    );
    assert_eq!(list_strategy("Pod", &["spec", "ports"]), Atomic);
    assert_eq!(list_strategy("Service", &["spec", "containers"]), Atomic);
    assert_eq!(
        list_strategy("Service", &["status", "conditions"]),
        MergeByKey("type")
    );
    assert_eq!(
        list_strategy("Service", &["status", "loadBalancer", "ingress"]),
        Atomic
    );
}

#[test]
fn node_namespace_service_account() {
    assert_eq!(
        list_strategy("Node", &["status", "conditions"]),
        MergeByKey("type")
    );
    assert_eq!(
        list_strategy("Node", &["status", "addresses"]),
        MergeByKey("type")
    );
    assert_eq!(list_strategy("Node", &["spec", "podCIDRs"]), MergePrimitive);
    // `+listType=atomic` in core/v1 NodeSpec.
    assert_eq!(list_strategy("Node", &["spec", "taints"]), Atomic);
    assert_eq!(list_strategy("Node", &["status", "images"]), Atomic);
    assert_eq!(
        list_strategy("Namespace", &["status", "conditions"]),
        MergeByKey("type")
    );
    assert_eq!(list_strategy("Namespace", &["spec", "finalizers"]), Atomic);
    assert_eq!(
        list_strategy("Namespace", &["metadata", "finalizers"]),
        MergePrimitive
    );
    assert_eq!(
        list_strategy("ServiceAccount", &["secrets"]),
        MergeByKey("name")
    );
    assert_eq!(
        list_strategy("ServiceAccount", &["imagePullSecrets"]),
        Atomic
    );
}

#[test]
fn meta_only_kinds_and_case() {
    for kind in [
        "ConfigMap",
        "Secret",
        "Endpoints",
        "EndpointSlice",
        "Event",
        "Lease",
        "Widget",
    ] {
        assert_eq!(
            list_strategy(kind, &["metadata", "ownerReferences"]),
            MergeByKey("uid"),
            "{kind}"
        );
        assert_eq!(list_strategy(kind, &["subsets"]), Atomic);
        assert_eq!(list_strategy(kind, &["endpoints"]), Atomic);
    }
    assert_eq!(
        list_strategy("pod", &["spec", "containers"]),
        MergeByKey("name")
    );
    // A data key that happens to be called like a field changes nothing.
    assert_eq!(list_strategy("ConfigMap", &["data", "containers"]), Atomic);
}

#[test]
fn retain_keys_fields() {
    assert!(retain_keys_allowed("Deployment", &["spec", "strategy"]));
    assert!(retain_keys_allowed("Pod", &["spec", "volumes"]));
    assert!(retain_keys_allowed(
        "Deployment",
        &["spec", "template", "spec", "volumes"]
    ));
    assert!(!retain_keys_allowed("Pod", &["spec", "containers"]));
    assert!(!retain_keys_allowed(
        "DaemonSet",
        &["spec", "updateStrategy"]
    ));
}
