//! `v1 Pod`: its strategy and resource entry.

use k8s_openapi::api::core::v1;
use serde_json::{Value, json};

use super::super::printers::{age, n, none_if_empty, s};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{
    DNS1123_LABEL_MSG, default_pod_spec, is_dns1123_label, obj_mut, set_default,
    validate_containers, without,
};
use super::super::{Resource, Subresource};
use crate::apiserver::status::Cause;

/// The `pods` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new("", "v1", "pods", "pod", "Pod", true, PodStrategy)
        .short_names(&["po"])
        .categories(&["all"])
        .subresources(&[
            Subresource::Status,
            Subresource::Binding,
            Subresource::Eviction,
            Subresource::Log,
            Subresource::Exec,
            Subresource::Attach,
            Subresource::PortForward,
            Subresource::Proxy,
            Subresource::EphemeralContainers,
        ])
}

/// Upstream's `Pod` strategy and printer.
pub struct PodStrategy;

impl Strategy for PodStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<v1::Pod>(input)
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn has_status(&self) -> bool {
        true
    }

    fn default(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            default_pod_spec(spec);
        }
        let status = obj_mut(obj, "status");
        set_default(status, "phase", json!("Pending"));
        set_default(status, "qosClass", json!("BestEffort"));
        let qos = pod_qos(obj);
        obj["status"]["qosClass"] = json!(qos);
    }

    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate_containers(&obj["spec"], "spec", &mut causes);
        validate_ephemeral_containers(&obj["spec"], &mut causes);
        causes
    }

    /// A write to the pod itself keeps the stored ephemeral containers: only
    /// `pods/ephemeralcontainers` changes them (upstream drops them on update).
    fn prepare_update(&self, old: &Value, new: &mut Value) {
        let kept = old["spec"].get("ephemeralContainers").cloned();
        if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
            match kept {
                Some(ecs) if !ecs.is_null() => {
                    spec.insert("ephemeralContainers".into(), ecs);
                }
                _ => {
                    spec.remove("ephemeralContainers");
                }
            }
        }
    }

    fn validate_subresource_update(
        &self,
        sub: Subresource,
        old: &Value,
        new: &Value,
    ) -> Vec<Cause> {
        if sub == Subresource::EphemeralContainers {
            ephemeral_containers_update(old, new)
        } else {
            Vec::new()
        }
    }

    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        let (o, n) = (&old["spec"], &new["spec"]);
        if o["nodeName"].as_str().is_some_and(|x| !x.is_empty()) && o["nodeName"] != n["nodeName"] {
            causes.push(Cause::forbidden("spec.nodeName", "field is immutable"));
        } else if pod_spec_mutable_view(&without(o, "nodeName"))
            != pod_spec_mutable_view(&without(n, "nodeName"))
        {
            causes.push(Cause::forbidden(
                "spec",
                "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
            ));
        }
        causes
    }

    fn field_selectors(&self) -> &'static [&'static str] {
        &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ]
    }

    /// Bound, running pods get time to stop (the kubelet finishes the delete); unbound or
    /// finished pods go at once. A second DELETE may only shorten the period.
    fn deletion_grace(&self, obj: &Value, requested: Option<i64>) -> i64 {
        let bound = obj["spec"]["nodeName"]
            .as_str()
            .is_some_and(|s| !s.is_empty());
        let terminal = matches!(
            obj["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        );
        if !bound || terminal {
            return 0;
        }
        let grace = requested
            .unwrap_or_else(|| {
                obj["spec"]["terminationGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(30)
            })
            .max(0);
        match obj["metadata"]["deletionGracePeriodSeconds"].as_i64() {
            Some(existing) if !obj["metadata"]["deletionTimestamp"].is_null() => {
                grace.min(existing)
            }
            _ => grace,
        }
    }

    fn deletion_pending(&self, obj: &Value) -> bool {
        obj["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(0)
            > 0
    }

    fn shortens_grace(&self) -> bool {
        true
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("Pod", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Ready", "string", 0),
            col("Status", "string", 0),
            col("Restarts", "string", 0),
            col("Age", "string", 0),
            col("IP", "string", 1),
            col("Node", "string", 1),
            col("Nominated Node", "string", 1),
            col("Readiness Gates", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let name = json!(s(&o["metadata"]["name"]));
        let a = json!(age(&o["metadata"]["creationTimestamp"]));
        let statuses = o["status"]["containerStatuses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
        let ready = statuses
            .iter()
            .filter(|c| c["ready"].as_bool() == Some(true))
            .count();
        let restarts: i64 = statuses.iter().map(|c| n(&c["restartCount"])).sum();
        let ip = none_if_empty(s(&o["status"]["podIP"]));
        let node = none_if_empty(s(&o["spec"]["nodeName"]));
        vec![
            name,
            json!(format!("{ready}/{total}")),
            json!(pod_status(o)),
            json!(restarts.to_string()),
            a,
            json!(ip),
            json!(node),
            json!(none_if_empty(s(&o["status"]["nominatedNodeName"]))),
            json!("<none>"),
        ]
    }
}

/// Quality-of-service class from container resources, as upstream computes it.
fn pod_qos(pod: &Value) -> &'static str {
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = &c["resources"]["requests"];
        let lim = &c["resources"]["limits"];
        for r in ["cpu", "memory"] {
            let (q, l) = (req.get(r), lim.get(r));
            if q.is_some() || l.is_some() {
                any = true;
            }
            match (q, l) {
                (_, None) => guaranteed = false,
                (Some(q), Some(l)) if q != l => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Container fields an ephemeral container may not set (upstream's
/// `allowedEphemeralContainerFields` entries that are `false`).
const EPHEMERAL_FORBIDDEN: &[&str] = &[
    "ports",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
];

/// Whether a field is set in Go's sense (not the zero value: absent, null, empty).
fn is_set(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Object(m)) => m.values().any(|x| is_set(Some(x))),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// Upstream's `validateEphemeralContainers`: names unique across every container, an
/// image, a target that is a regular or init container, and none of the fields that
/// only workload containers may have.
fn validate_ephemeral_containers(spec: &Value, causes: &mut Vec<Cause>) {
    let Some(ecs) = spec["ephemeralContainers"].as_array() else {
        return;
    };
    let others: std::collections::HashSet<&str> = ["containers", "initContainers"]
        .iter()
        .flat_map(|l| spec[*l].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect();
    let mut all = others.clone();
    for (i, ec) in ecs.iter().enumerate() {
        let p = format!("spec.ephemeralContainers[{i}]");
        match ec["name"].as_str() {
            None | Some("") => causes.push(Cause::required(format!("{p}.name"))),
            Some(n) if !is_dns1123_label(n) => {
                causes.push(Cause::invalid(
                    format!("{p}.name"),
                    &json!(n),
                    DNS1123_LABEL_MSG,
                ));
            }
            Some(n) => {
                if !all.insert(n) {
                    causes.push(Cause::duplicate(format!("{p}.name"), &json!(n)));
                }
            }
        }
        if ec["image"].as_str().is_none_or(|s| s.trim().is_empty()) {
            causes.push(Cause::required(format!("{p}.image")));
        }
        if let Some(t) = ec["targetContainerName"].as_str()
            && !t.is_empty()
            && !others.contains(t)
        {
            causes.push(Cause {
                reason: "FieldValueNotFound",
                field: format!("{p}.targetContainerName"),
                message: format!("Not found: {}", json!(t)),
            });
        }
        for f in EPHEMERAL_FORBIDDEN {
            if is_set(ec.get(*f)) {
                causes.push(Cause::forbidden(
                    format!("{p}.{f}"),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        for (j, vm) in ec["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            for f in ["subPath", "subPathExpr"] {
                if is_set(vm.get(f)) {
                    causes.push(Cause::forbidden(
                        format!("{p}.volumeMounts[{j}].{f}"),
                        "cannot be set for an Ephemeral Container",
                    ));
                }
            }
        }
    }
}

/// Upstream's `ValidatePodEphemeralContainersUpdate`: existing ephemeral containers may be
/// neither removed nor changed; static (mirror) pods take none.
fn ephemeral_containers_update(old: &Value, new: &Value) -> Vec<Cause> {
    if !old["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_null() {
        return vec![Cause::forbidden(
            "",
            "static pods do not support ephemeral containers",
        )];
    }
    let new_ecs = new["spec"]["ephemeralContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut causes = Vec::new();
    for o in old["spec"]["ephemeralContainers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = o["name"].as_str().unwrap_or_default();
        match new_ecs.iter().find(|n| n["name"].as_str() == Some(name)) {
            None => causes.push(Cause::forbidden(
                "spec.ephemeralContainers",
                &format!("existing ephemeral containers {name:?} may not be removed\n"),
            )),
            Some(n) if n != o => causes.push(Cause::forbidden(
                "spec.ephemeralContainers",
                &format!("existing ephemeral containers {name:?} may not be changed\n"),
            )),
            Some(_) => {}
        }
    }
    causes
}

/// Fields of a pod spec that an update may change (ephemeral containers are judged by
/// their own subresource's rules).
fn pod_spec_mutable_view(spec: &Value) -> Value {
    let mut s = spec.clone();
    if let Some(m) = s.as_object_mut() {
        m.remove("ephemeralContainers");
        m.remove("activeDeadlineSeconds");
        m.remove("tolerations");
        m.remove("terminationGracePeriodSeconds");
        for list in ["containers", "initContainers"] {
            if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs {
                    if let Some(cm) = c.as_object_mut() {
                        cm.remove("image");
                    }
                }
            }
        }
    }
    s
}

/// The Status column, as upstream's pod printer derives it.
fn pod_status(p: &Value) -> String {
    let mut reason = p["status"]["reason"]
        .as_str()
        .or_else(|| p["status"]["phase"].as_str())
        .unwrap_or("Unknown")
        .to_string();
    let init = p["status"]["initContainerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut initializing = false;
    for (i, cs) in init.iter().enumerate() {
        let st = &cs["state"];
        if st["terminated"]["exitCode"].as_i64() == Some(0) {
            continue;
        }
        initializing = true;
        reason = if let Some(r) = st["terminated"]["reason"].as_str() {
            format!("Init:{r}")
        } else if let Some(r) = st["waiting"]["reason"]
            .as_str()
            .filter(|r| *r != "PodInitializing")
        {
            format!("Init:{r}")
        } else {
            format!("Init:{i}/{}", init.len())
        };
        break;
    }
    if !initializing {
        let mut has_running = false;
        for cs in p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .rev()
        {
            let st = &cs["state"];
            if let Some(r) = st["waiting"]["reason"].as_str() {
                reason = r.to_string();
            } else if let Some(r) = st["terminated"]["reason"].as_str() {
                reason = r.to_string();
            } else if st["terminated"].is_object() {
                reason = format!("ExitCode:{}", n(&st["terminated"]["exitCode"]));
            } else if st["running"].is_object() && cs["ready"].as_bool() == Some(true) {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            reason = "Running".into();
        }
    }
    if p["metadata"]
        .get("deletionTimestamp")
        .is_some_and(|d| !d.is_null())
    {
        reason = "Terminating".into();
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_defaults_and_qos() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "image": "busybox", "ports": [{"containerPort": 80}],
             "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}},
            {"name": "d", "image": "busybox:1.36"}]}});
        PodStrategy.default(&mut pod);
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(
            pod["spec"]["containers"][1]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(pod["status"]["qosClass"], "Burstable");
    }

    #[test]
    fn pod_update_only_image() {
        let old = json!({"spec": {"nodeName": "n", "containers": [{"name": "c", "image": "a"}]}});
        let ok = json!({"spec": {"nodeName": "n", "containers": [{"name": "c", "image": "b"}]}});
        let bad = json!({"spec": {"nodeName": "n", "containers": [{"name": "c2", "image": "b"}]}});
        assert!(PodStrategy.validate_update(&old, &ok).is_empty());
        assert_eq!(PodStrategy.validate_update(&old, &bad).len(), 1);
        let unbound = json!({"spec": {"containers": [{"name": "c", "image": "a"}]}});
        let bound = json!({"spec": {"nodeName": "n", "containers": [{"name": "c", "image": "a"}]}});
        assert!(PodStrategy.validate_update(&unbound, &bound).is_empty());
    }

    #[test]
    fn grace_only_for_bound_running_pods_and_only_shortens() {
        let running = json!({"spec": {"nodeName": "n", "terminationGracePeriodSeconds": 20}, "status": {"phase": "Running"}});
        assert_eq!(PodStrategy.deletion_grace(&running, None), 20);
        assert_eq!(PodStrategy.deletion_grace(&running, Some(5)), 5);
        let unbound = json!({"spec": {}, "status": {"phase": "Pending"}});
        assert_eq!(PodStrategy.deletion_grace(&unbound, Some(30)), 0);
        let deleting = json!({"metadata": {"deletionTimestamp": "2020-01-01T00:00:00Z", "deletionGracePeriodSeconds": 3},
            "spec": {"nodeName": "n"}, "status": {"phase": "Running"}});
        assert_eq!(PodStrategy.deletion_grace(&deleting, Some(30)), 3);
    }

    #[test]
    fn pod_cells() {
        let p = json!({"metadata": {"name": "p", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIP": "10.244.0.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let c = PodStrategy.cells(&p);
        assert_eq!(c[1], "1/2");
        assert_eq!(c[2], "CrashLoopBackOff");
        assert_eq!(c[3], "3");
        assert_eq!(c[5], "10.244.0.5");
        assert_eq!(c[6], "n1");
        assert_eq!(c.len(), PodStrategy.columns().len());
    }

    #[test]
    fn every_row_fills_every_column() {
        assert_eq!(
            PodStrategy.cells(&json!({})).len(),
            PodStrategy.columns().len()
        );
    }
}
