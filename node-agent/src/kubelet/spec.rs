//! Pure translation of a Pod into CRI configs: sandbox config, container config,
//! environment, and resources mapped to `LinuxContainerResources`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::{Container, Pod};
use sluice_k8s_values::quantity;
use sluice_proto::runtime::v1 as cri;

/// Label keys the kubelet puts on sandboxes and containers (upstream's names).
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
/// Pod namespace label.
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// Pod uid label.
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
/// Container name label.
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// Marks objects created by sluice's kubelet.
pub const LABEL_MANAGED: &str = "io.sluice.managed";

/// Default CFS period (µs).
const CPU_PERIOD: i64 = 100_000;

/// A CPU quantity in millicores (upstream's `MilliValue`); `None` when malformed or
/// negative, which the runtime then treats as unset.
fn cpu_millis(q: &str) -> Option<i64> {
    quantity::milli_value(q).ok().filter(|m| *m >= 0)
}

/// A quantity in its base unit, e.g. bytes (upstream's `Value`); `None` as [`cpu_millis`].
fn base_units(q: &str) -> Option<i64> {
    quantity::value(q).ok().filter(|v| *v >= 0)
}

/// CPU requests/limits and memory limits as the runtime wants them.
#[must_use]
pub fn linux_resources(c: &Container) -> cri::LinuxContainerResources {
    let get = |which: &str, res: &str| -> Option<String> {
        let r = c.resources.as_ref()?;
        let m = if which == "requests" {
            r.requests.as_ref()?
        } else {
            r.limits.as_ref()?
        };
        m.get(res).map(|q| q.0.clone())
    };
    let cpu_request = get("requests", "cpu")
        .or_else(|| get("limits", "cpu"))
        .and_then(|q| cpu_millis(&q));
    let cpu_limit = get("limits", "cpu").and_then(|q| cpu_millis(&q));
    let mem_limit = get("limits", "memory").and_then(|q| base_units(&q));
    // cpu.shares = millicores * 1024 / 1000, at least 2 (upstream MilliCPUToShares).
    let shares = cpu_request.map_or(2, |m| (m * 1024 / 1000).max(2));
    let quota = cpu_limit.map_or(0, |m| (m * CPU_PERIOD / 1000).max(1000));
    cri::LinuxContainerResources {
        cpu_period: if quota > 0 { CPU_PERIOD } else { 0 },
        cpu_quota: quota,
        cpu_shares: shares,
        memory_limit_in_bytes: mem_limit.unwrap_or(0),
        oom_score_adj: if mem_limit.is_some() { -997 } else { 1000 },
        ..Default::default()
    }
}

/// `parent` (an absolute cgroup path) moved under `root` (`""` or `/`: unchanged).
#[must_use]
pub fn nest_cgroup(root: &str, parent: &str) -> String {
    let root = root.trim_end_matches('/');
    if root.is_empty() {
        parent.to_owned()
    } else {
        format!("{root}/{}", parent.trim_start_matches('/'))
    }
}

/// The `QoS` class directory under `/kubepods` (`cgroupfs` driver layout).
#[must_use]
pub fn cgroup_parent(pod: &Pod) -> String {
    let qos = pod
        .status
        .as_ref()
        .and_then(|s| s.qos_class.clone())
        .unwrap_or_else(|| "BestEffort".into());
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    match qos.as_str() {
        "Guaranteed" => format!("/kubepods/pod{uid}"),
        "Burstable" => format!("/kubepods/burstable/pod{uid}"),
        _ => format!("/kubepods/besteffort/pod{uid}"),
    }
}

fn pod_labels(pod: &Pod) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.insert(
        LABEL_POD_NAME.into(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(
        LABEL_POD_NAMESPACE.into(),
        pod.metadata.namespace.clone().unwrap_or_default(),
    );
    labels.insert(
        LABEL_POD_UID.into(),
        pod.metadata.uid.clone().unwrap_or_default(),
    );
    labels.insert(LABEL_MANAGED.into(), "true".into());
    labels
}

/// Where a pod's container logs go: `<root>/<ns>_<name>_<uid>`.
#[must_use]
pub fn log_directory(log_root: &str, pod: &Pod) -> String {
    format!(
        "{log_root}/{}_{}_{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// The sandbox config for a pod.
#[must_use]
pub fn sandbox_config(
    pod: &Pod,
    log_root: &str,
    dns: &cri::DnsConfig,
    attempt: u32,
) -> cri::PodSandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    let hostname = spec
        .hostname
        .clone()
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    let port_mappings = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.clone().unwrap_or_default())
        .filter(|p| p.host_port.unwrap_or(0) > 0)
        .map(|p| cri::PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => cri::Protocol::Udp as i32,
                Some("SCTP") => cri::Protocol::Sctp as i32,
                _ => cri::Protocol::Tcp as i32,
            },
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or(0),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect();
    let network_mode = if host_network {
        cri::NamespaceMode::Node
    } else {
        cri::NamespaceMode::Pod
    };
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            attempt,
        }),
        hostname: if host_network {
            String::new()
        } else {
            hostname
        },
        log_directory: log_directory(log_root, pod),
        dns_config: Some(dns.clone()),
        port_mappings,
        labels: pod_labels(pod),
        annotations: pod
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent(pod),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: network_mode as i32,
                    pid: cri::NamespaceMode::Container as i32,
                    ipc: cri::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// Values an env `valueFrom` can name, resolved by the caller from the API.
#[derive(Debug, Default, Clone)]
pub struct EnvSources {
    /// `ConfigMaps` of the pod's namespace, by name.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Secrets of the pod's namespace (decoded), by name.
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// The pod's IP, once known.
    pub pod_ip: String,
    /// The node's IP.
    pub host_ip: String,
}

/// An env var that could not be resolved (the container must not start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EnvError(pub String);

fn field_ref(pod: &Pod, path: &str, src: &EnvSources) -> Result<String, EnvError> {
    let m = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    if let Some(key) = path
        .strip_prefix("metadata.labels['")
        .and_then(|r| r.strip_suffix("']"))
    {
        return Ok(m
            .labels
            .as_ref()
            .and_then(|l| l.get(key))
            .cloned()
            .unwrap_or_default());
    }
    if let Some(key) = path
        .strip_prefix("metadata.annotations['")
        .and_then(|r| r.strip_suffix("']"))
    {
        return Ok(m
            .annotations
            .as_ref()
            .and_then(|l| l.get(key))
            .cloned()
            .unwrap_or_default());
    }
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.node_name.unwrap_or_default(),
        "spec.serviceAccountName" => spec.service_account_name.unwrap_or_default(),
        "status.podIP" | "status.podIPs" => src.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => src.host_ip.clone(),
        other => return Err(EnvError(format!("unsupported fieldRef {other:?}"))),
    })
}

/// Resolve a container's environment: `envFrom` first, then `env` (later wins), with
/// `$(VAR)` references expanded against what came before, as upstream does.
pub fn environment(
    pod: &Pod,
    c: &Container,
    src: &EnvSources,
) -> Result<Vec<cri::KeyValue>, EnvError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let set = |k: String, v: String, out: &mut Vec<(String, String)>| {
        if let Some(e) = out.iter_mut().find(|(n, _)| *n == k) {
            e.1 = v;
        } else {
            out.push((k, v));
        }
    };
    for from in c.env_from.clone().unwrap_or_default() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match src.config_maps.get(&r.name) {
                Some(data) => data
                    .iter()
                    .for_each(|(k, v)| set(format!("{prefix}{k}"), v.clone(), &mut out)),
                None if r.optional == Some(true) => {}
                None => return Err(EnvError(format!("configmap \"{}\" not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            match src.secrets.get(&r.name) {
                Some(data) => data
                    .iter()
                    .for_each(|(k, v)| set(format!("{prefix}{k}"), v.clone(), &mut out)),
                None if r.optional == Some(true) => {}
                None => return Err(EnvError(format!("secret \"{}\" not found", r.name))),
            }
        }
    }
    for e in c.env.clone().unwrap_or_default() {
        let value = if let Some(v) = &e.value {
            expand(v, &out)
        } else if let Some(vf) = &e.value_from {
            if let Some(f) = &vf.field_ref {
                field_ref(pod, &f.field_path, src)?
            } else if let Some(k) = &vf.config_map_key_ref {
                match src.config_maps.get(&k.name).and_then(|d| d.get(&k.key)) {
                    Some(v) => v.clone(),
                    None if k.optional == Some(true) => continue,
                    None => {
                        return Err(EnvError(format!(
                            "couldn't find key {} in ConfigMap {}",
                            k.key, k.name
                        )));
                    }
                }
            } else if let Some(k) = &vf.secret_key_ref {
                match src.secrets.get(&k.name).and_then(|d| d.get(&k.key)) {
                    Some(v) => v.clone(),
                    None if k.optional == Some(true) => continue,
                    None => {
                        return Err(EnvError(format!(
                            "couldn't find key {} in Secret {}",
                            k.key, k.name
                        )));
                    }
                }
            } else if let Some(r) = &vf.resource_field_ref {
                resource_field(c, &r.resource)
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(e.name.clone(), value, &mut out);
    }
    Ok(out
        .into_iter()
        .map(|(key, value)| cri::KeyValue { key, value })
        .collect())
}

fn resource_field(c: &Container, resource: &str) -> String {
    let (which, name) = resource.split_once('.').unwrap_or(("", ""));
    let r = c.resources.clone().unwrap_or_default();
    let m = if which == "requests" {
        r.requests
    } else {
        r.limits
    };
    let q = m
        .and_then(|m| m.get(name).map(|q| q.0.clone()))
        .unwrap_or_default();
    // Divisor 1: whole cores (rounded up) for cpu, bytes for memory.
    base_units(&q).map_or_else(String::new, |v| v.to_string())
}

/// Expand `$(NAME)` against earlier variables; `$$` escapes.
fn expand(v: &str, vars: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.iter().find(|(n, _)| n == name) {
                Some((_, val)) => out.push_str(val),
                None => {
                    let _ = write!(out, "$({name})");
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container config for one container of a pod.
#[must_use]
pub fn container_config(
    pod: &Pod,
    c: &Container,
    attempt: u32,
    envs: Vec<cri::KeyValue>,
) -> cri::ContainerConfig {
    let mut labels = HashMap::new();
    labels.insert(
        LABEL_POD_NAME.to_string(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(
        LABEL_POD_NAMESPACE.to_string(),
        pod.metadata.namespace.clone().unwrap_or_default(),
    );
    labels.insert(
        LABEL_POD_UID.to_string(),
        pod.metadata.uid.clone().unwrap_or_default(),
    );
    labels.insert(LABEL_CONTAINER_NAME.to_string(), c.name.clone());
    labels.insert(LABEL_MANAGED.to_string(), "true".into());
    let expand_all = |v: &Option<Vec<String>>| -> Vec<String> {
        let vars: Vec<(String, String)> = envs
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect();
        v.clone()
            .unwrap_or_default()
            .iter()
            .map(|s| expand(s, &vars))
            .collect()
    };
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: c.name.clone(),
            attempt,
        }),
        image: Some(cri::ImageSpec {
            image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: expand_all(&c.command),
        args: expand_all(&c.args),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs,
        labels,
        annotations: HashMap::from([(
            "io.kubernetes.container.restartCount".to_string(),
            attempt.to_string(),
        )]),
        log_path: format!("{}/{attempt}.log", c.name),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(linux_resources(c)),
            security_context: Some(cri::LinuxContainerSecurityContext {
                privileged: c
                    .security_context
                    .as_ref()
                    .and_then(|s| s.privileged)
                    .unwrap_or(false),
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Pod as i32,
                    pid: cri::NamespaceMode::Container as i32,
                    ipc: cri::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// A pod's ephemeral containers as containers to run, each with the container whose process
/// namespace it targets (`targetContainerName`, `kubectl debug --target`).
#[must_use]
pub fn ephemeral_containers(pod: &Pod) -> Vec<(Container, Option<String>)> {
    pod.spec
        .iter()
        .flat_map(|s| s.ephemeral_containers.iter().flatten())
        .filter_map(|e| {
            let mut v = serde_json::to_value(e).ok()?;
            let target = v
                .as_object_mut()?
                .remove("targetContainerName")
                .and_then(|t| t.as_str().map(String::from));
            Some((serde_json::from_value(v).ok()?, target))
        })
        .collect()
}

/// The cluster DNS the kubelet points pods at (upstream's `--cluster-dns` and
/// `--cluster-domain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    /// The kube-dns Service address.
    pub server: String,
    /// The cluster domain, `cluster.local`.
    pub domain: String,
}

/// resolv.conf limits upstream's kubelet enforces.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;

fn push_unique(list: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for item in items {
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

/// A pod's DNS settings by its `dnsPolicy`, as upstream's kubelet builds them:
/// `ClusterFirst` (the default) points at the cluster DNS with the namespace's search path and
/// `ndots:5` (a host-network pod gets the host's, unless `ClusterFirstWithHostNet`); `Default`
/// is the host's resolv.conf; `None` starts empty. `dnsConfig` then adds nameservers and
/// searches and overrides options by name.
#[must_use]
pub fn pod_dns(pod: &Pod, cluster: Option<&ClusterDns>, host: &cri::DnsConfig) -> cri::DnsConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let cluster_first = |c: &ClusterDns| {
        let mut searches = vec![
            format!("{ns}.svc.{}", c.domain),
            format!("svc.{}", c.domain),
            c.domain.clone(),
        ];
        push_unique(&mut searches, host.searches.iter().cloned());
        cri::DnsConfig {
            servers: vec![c.server.clone()],
            searches,
            options: vec!["ndots:5".into()],
        }
    };
    let mut dns = match (
        spec.dns_policy.as_deref().unwrap_or("ClusterFirst"),
        cluster,
    ) {
        ("None", _) => cri::DnsConfig::default(),
        ("ClusterFirstWithHostNet", Some(c)) => cluster_first(c),
        ("ClusterFirst", Some(c)) if !host_network => cluster_first(c),
        _ => host.clone(),
    };
    if let Some(extra) = &spec.dns_config {
        push_unique(
            &mut dns.servers,
            extra.nameservers.clone().unwrap_or_default(),
        );
        push_unique(
            &mut dns.searches,
            extra.searches.clone().unwrap_or_default(),
        );
        for o in extra.options.clone().unwrap_or_default() {
            let name = o.name.clone().unwrap_or_default();
            dns.options
                .retain(|x| x.split(':').next() != Some(name.as_str()));
            dns.options.push(match o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    dns.servers.truncate(MAX_NAMESERVERS);
    dns.searches.truncate(MAX_SEARCHES);
    dns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns_pod(policy: Option<&str>, host_network: bool, extra: &serde_json::Value) -> Pod {
        serde_json::from_value(
            serde_json::json!({"metadata": {"name": "p", "namespace": "shop"},
            "spec": {"dnsPolicy": policy, "hostNetwork": host_network, "dnsConfig": extra,
                "containers": [{"name": "c"}]}}),
        )
        .unwrap()
    }

    #[test]
    fn pod_dns_follows_the_policy() {
        let cluster = ClusterDns {
            server: "10.96.0.10".into(),
            domain: "cluster.local".into(),
        };
        let host = cri::DnsConfig {
            servers: vec!["192.0.2.53".into()],
            searches: vec!["corp.example".into()],
            options: vec!["edns0".into()],
        };
        let first = pod_dns(
            &dns_pod(None, false, &serde_json::Value::Null),
            Some(&cluster),
            &host,
        );
        assert_eq!(first.servers, vec!["10.96.0.10"]);
        assert_eq!(
            first.searches,
            vec![
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example"
            ]
        );
        assert_eq!(first.options, vec!["ndots:5"]);
        // Host network: the host's, unless ClusterFirstWithHostNet.
        assert_eq!(
            pod_dns(
                &dns_pod(Some("ClusterFirst"), true, &serde_json::Value::Null),
                Some(&cluster),
                &host
            ),
            host
        );
        assert_eq!(
            pod_dns(
                &dns_pod(
                    Some("ClusterFirstWithHostNet"),
                    true,
                    &serde_json::Value::Null
                ),
                Some(&cluster),
                &host
            )
            .servers,
            vec!["10.96.0.10"]
        );
        assert_eq!(
            pod_dns(
                &dns_pod(Some("Default"), false, &serde_json::Value::Null),
                Some(&cluster),
                &host
            ),
            host
        );
        // No cluster DNS configured: ClusterFirst falls back to the host's.
        assert_eq!(
            pod_dns(&dns_pod(None, false, &serde_json::Value::Null), None, &host),
            host
        );
        // None + dnsConfig; options override by name; limits.
        let none = pod_dns(
            &dns_pod(
                Some("None"),
                false,
                &serde_json::json!({"nameservers": ["1.1.1.1", "1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"],
                "searches": ["a.example"], "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}),
            ),
            Some(&cluster),
            &host,
        );
        assert_eq!(none.servers, vec!["1.1.1.1", "2.2.2.2", "3.3.3.3"]);
        assert_eq!(none.searches, vec!["a.example"]);
        assert_eq!(none.options, vec!["ndots:2", "edns0"]);
        let tuned = pod_dns(
            &dns_pod(
                None,
                false,
                &serde_json::json!({"options": [{"name": "ndots", "value": "1"}]}),
            ),
            Some(&cluster),
            &host,
        );
        assert_eq!(tuned.options, vec!["ndots:1"]);
    }
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "default", "uid": "u-1", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "serviceAccountName": "default", "containers": [{
                "name": "c", "image": "img:1", "command": ["/bin/sh", "-c", "echo $(GREETING)"],
                "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
                "env": [
                    {"name": "GREETING", "value": "hi $(CM_A)"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "s", "key": "p"}}},
                    {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "p", "optional": true}}},
                ],
                "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
                "ports": [{"containerPort": 8080, "hostPort": 18080}],
            }]},
            "status": {"qosClass": "Burstable"},
        }))
        .unwrap()
    }

    #[test]
    fn quantities() {
        assert_eq!(cpu_millis("250m"), Some(250));
        assert_eq!(cpu_millis("1"), Some(1000));
        assert_eq!(cpu_millis("0.5"), Some(500));
        assert_eq!(
            cpu_millis("500000u"),
            Some(500),
            "the old f64 parser refused u"
        );
        assert_eq!(cpu_millis("1n"), Some(1), "and n");
        assert_eq!(base_units("128Mi"), Some(134_217_728));
        assert_eq!(base_units("1G"), Some(1_000_000_000));
        assert_eq!(base_units("1e3"), Some(1000));
        assert_eq!(base_units("1Pi"), Some(1 << 50), "and Pi");
        assert_eq!(base_units("12x"), None);
        assert_eq!(base_units("-1"), None, "a negative limit is no limit");
        assert_eq!(cpu_millis("-1"), None);
    }

    #[test]
    fn resources_map_to_cgroup_values() {
        let p = pod();
        let r = linux_resources(&p.spec.unwrap().containers[0]);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(r.cpu_quota, 50_000);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.memory_limit_in_bytes, 134_217_728);
    }

    #[test]
    fn environment_resolves_sources_and_references() {
        let p = pod();
        let c = p.spec.clone().unwrap().containers[0].clone();
        let mut src = EnvSources {
            pod_ip: "10.244.0.5".into(),
            ..Default::default()
        };
        src.config_maps.insert(
            "cm".into(),
            BTreeMap::from([("A".to_string(), "x".to_string())]),
        );
        src.secrets.insert(
            "s".into(),
            BTreeMap::from([("p".to_string(), "secret".to_string())]),
        );
        let env = environment(&p, &c, &src).unwrap();
        let get = |k: &str| env.iter().find(|kv| kv.key == k).map(|kv| kv.value.clone());
        assert_eq!(get("CM_A").as_deref(), Some("x"));
        assert_eq!(get("GREETING").as_deref(), Some("hi x"));
        assert_eq!(get("POD").as_deref(), Some("web-1"));
        assert_eq!(get("IP").as_deref(), Some("10.244.0.5"));
        assert_eq!(get("APP").as_deref(), Some("web"));
        assert_eq!(get("PASS").as_deref(), Some("secret"));
        assert_eq!(get("OPT"), None);
        let cfg = container_config(&p, &c, 2, env);
        assert_eq!(cfg.args, Vec::<String>::new());
        assert_eq!(cfg.command[2], "echo hi x");
        assert_eq!(cfg.log_path, "c/2.log");
        assert_eq!(cfg.labels[LABEL_CONTAINER_NAME], "c");
        // A missing required secret stops the container from being created.
        src.secrets.clear();
        assert!(environment(&p, &c, &src).is_err());
    }

    #[test]
    fn sandbox_config_carries_identity_logs_and_ports() {
        let p = pod();
        let dns = cri::DnsConfig {
            servers: vec!["10.96.0.10".into()],
            ..Default::default()
        };
        let s = sandbox_config(&p, "/var/log/pods", &dns, 0);
        assert_eq!(s.hostname, "web-1");
        assert_eq!(s.log_directory, "/var/log/pods/default_web-1_u-1");
        assert_eq!(s.labels[LABEL_POD_UID], "u-1");
        assert_eq!(s.labels["app"], "web");
        assert_eq!(s.port_mappings.len(), 1);
        assert_eq!(s.linux.unwrap().cgroup_parent, "/kubepods/burstable/podu-1");
        assert_eq!(
            nest_cgroup("/sluice/b", "/kubepods/burstable/podu-1"),
            "/sluice/b/kubepods/burstable/podu-1"
        );
        assert_eq!(nest_cgroup("/", "/kubepods/podu-1"), "/kubepods/podu-1");
        assert_eq!(nest_cgroup("", "/kubepods/podu-1"), "/kubepods/podu-1");
    }

    #[test]
    fn expansion_escapes() {
        let vars = vec![("A".to_string(), "1".to_string())];
        assert_eq!(expand("$(A)-$$(A)-$(B)-$", &vars), "1-$(A)-$(B)-$");
    }
}
