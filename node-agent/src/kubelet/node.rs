//! The Node object: registration (capacity, addresses, nodeInfo, daemonEndpoints), the
//! CNI config that follows the podCIDR the control plane assigned, the Ready condition,
//! and the Lease in `kube-node-lease` renewed every 10 s.

use std::path::Path;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sluice_proto::runtime::v1 as cri;

use sluice_k8s_values::Ipv4Net;

use super::{Config, KubeletError, now};
use crate::cni;

/// Machine capacity as the Node reports it.
#[must_use]
pub fn capacity() -> Value {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .map(|v| v.trim().trim_end_matches("kB").trim().to_string())
            })
        })
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    json!({"cpu": cpus.to_string(), "memory": format!("{mem_kib}Ki"), "pods": "110"})
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The first global IPv4 address of this host, else loopback.
#[must_use]
pub fn default_node_ip() -> String {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output();
    out.ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| !l.contains(" lxc") && !l.contains(" veth") && !l.contains(" cni"))
                .find_map(|l| {
                    l.split_whitespace()
                        .skip_while(|w| *w != "inet")
                        .nth(1)
                        .map(|a| a.split('/').next().unwrap_or("").to_string())
                })
        })
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// Create the Node if it does not exist.
pub async fn register(nodes: &Api<Node>, cfg: &Config) -> Result<(), KubeletError> {
    if nodes.get_opt(&cfg.node_name).await?.is_some() {
        return Ok(());
    }
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": cfg.node_name, "labels": {
            "kubernetes.io/hostname": cfg.node_name, "kubernetes.io/os": "linux", "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            "beta.kubernetes.io/os": "linux"}},
    }))
    .map_err(|e| KubeletError::Internal(e.to_string()))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The runtime's view of readiness: (runtime ready, network ready, message).
pub async fn runtime_ready(cri: &mut sluice_proto::Clients) -> (bool, bool, String) {
    match cri
        .runtime
        .status(cri::StatusRequest { verbose: false })
        .await
    {
        Ok(r) => {
            let conds = r
                .into_inner()
                .status
                .map(|s| s.conditions)
                .unwrap_or_default();
            let get = |t: &str| conds.iter().find(|c| c.r#type == t);
            let rt = get("RuntimeReady").is_some_and(|c| c.status);
            let net = get("NetworkReady").is_some_and(|c| c.status);
            let msg = conds
                .iter()
                .filter(|c| !c.status)
                .map(|c| format!("{}: {} {}", c.r#type, c.reason, c.message))
                .collect::<Vec<_>>()
                .join("; ");
            (rt, net, msg)
        }
        Err(e) => (
            false,
            false,
            format!("container runtime is down: {}", e.message()),
        ),
    }
}

/// `ip route replace unreachable <cidr>`: more specific routes (one /32 per pod) still win,
/// anything else in the range fails with EHOSTUNREACH on this node.
pub fn ensure_unreachable_route(cidr: &str) -> std::io::Result<()> {
    let out = std::process::Command::new("ip")
        .args(["route", "replace", "unreachable", cidr])
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Write the CNI conflist for this node's podCIDR (atomically; only when it changes).
pub fn write_cni_config(
    conf_dir: &Path,
    pod_cidr: Ipv4Net,
    data_dir: &Path,
    mtu: Option<u32>,
) -> std::io::Result<bool> {
    std::fs::create_dir_all(conf_dir)?;
    let path = conf_dir.join(cni::CONFLIST_FILE);
    let mut network = cni::Network::new(pod_cidr, data_dir);
    network.mtu = mtu;
    let body = serde_json::to_string_pretty(&network.conflist()).map_err(std::io::Error::other)?;
    if std::fs::read_to_string(&path).is_ok_and(|old| old == body) {
        return Ok(false);
    }
    let tmp = conf_dir.join(format!(".{}.tmp", cni::CONFLIST_FILE));
    std::fs::write(&tmp, &body)?;
    std::fs::rename(&tmp, &path)?;
    Ok(true)
}

/// Post the node's status: capacity, addresses, nodeInfo, and the Ready condition.
pub async fn post_status(
    nodes: &Api<Node>,
    cfg: &Config,
    runtime_version: &str,
    ready: bool,
    message: &str,
) -> Result<(), KubeletError> {
    let t = now();
    let cap = capacity();
    let (reason, msg) = if ready {
        (
            "KubeletReady",
            "kubelet is posting ready status".to_string(),
        )
    } else {
        ("KubeletNotReady", message.to_string())
    };
    let current = nodes.get_status(&cfg.node_name).await?;
    let prev_ready = current
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| (c.status.clone(), c.last_transition_time.clone()));
    let status_str = if ready { "True" } else { "False" };
    let transition = match prev_ready {
        Some((s, Some(lt))) if s == status_str => serde_json::to_value(lt).unwrap_or(json!(t)),
        _ => json!(t),
    };
    let cond = |ty: &str, status: &str, reason: &str, message: &str, transition: &Value| json!({"type": ty, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": t, "lastTransitionTime": transition});
    let status = json!({"status": {
        "capacity": cap, "allocatable": cap,
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available", &json!(t)),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", &json!(t)),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available", &json!(t)),
            cond("Ready", status_str, reason, &msg, &transition),
        ],
        "addresses": [{"type": "InternalIP", "address": cfg.node_ip}, {"type": "Hostname", "address": cfg.node_name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": cfg.kubelet_port}},
        "nodeInfo": {
            "machineID": std::fs::read_to_string("/etc/machine-id").unwrap_or_default().trim(),
            "systemUUID": "", "bootID": std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim(),
            "kernelVersion": kernel_version(), "osImage": os_image(), "containerRuntimeVersion": runtime_version,
            "kubeletVersion": format!("v1.32.0-sluice.{}", env!("CARGO_PKG_VERSION")), "kubeProxyVersion": "",
            "operatingSystem": "linux", "architecture": std::env::consts::ARCH.replace("x86_64", "amd64"),
        },
    }});
    nodes
        .patch_status(
            &cfg.node_name,
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await?;
    Ok(())
}

/// Create or renew this node's Lease.
pub async fn renew_lease(leases: &Api<Lease>, cfg: &Config) -> Result<(), KubeletError> {
    let t = k8s_openapi::jiff::Timestamp::now().to_string();
    if leases.get_opt(&cfg.node_name).await?.is_some() {
        leases
            .patch(
                &cfg.node_name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"renewTime": t, "holderIdentity": cfg.node_name}})),
            )
            .await?;
        return Ok(());
    }
    let lease: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": cfg.node_name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": cfg.node_name, "leaseDurationSeconds": 40, "renewTime": t},
    }))
    .map_err(|e| KubeletError::Internal(e.to_string()))?;
    match leases.create(&PostParams::default(), &lease).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_reads_the_machine() {
        let c = capacity();
        assert!(c["cpu"].as_str().unwrap().parse::<u32>().unwrap() >= 1);
        assert!(c["memory"].as_str().unwrap().ends_with("Ki"));
    }

    #[test]
    fn cni_config_is_written_once_per_change() {
        let d = std::env::temp_dir().join(format!("sluice-cni-conf-{}", std::process::id()));
        let data = Path::new("/var/lib/sluice/cni");
        let net = |s: &str| cni::parse_pod_cidr(s).unwrap();
        assert!(write_cni_config(&d, net("10.244.0.0/24"), data, None).unwrap());
        assert!(!write_cni_config(&d, net("10.244.0.0/24"), data, None).unwrap());
        assert!(write_cni_config(&d, net("10.244.1.0/24"), data, None).unwrap());
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("10-sluice.conflist")).unwrap())
                .unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["name"], "sluice");
        assert_eq!(v["plugins"][0]["type"], "sluice-cni");
        assert_eq!(v["plugins"][0]["podCIDR"], "10.244.1.0/24");
        assert_eq!(v["plugins"][0]["dataDir"], "/var/lib/sluice/cni");
        assert_eq!(v["plugins"][1]["type"], "loopback");
        assert!(v["plugins"][0].get("mtu").is_none());
        // Under an overlay the pods' MTU changes, and so the file.
        assert!(write_cni_config(&d, net("10.244.1.0/24"), data, Some(1450)).unwrap());
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("10-sluice.conflist")).unwrap())
                .unwrap();
        assert_eq!(v["plugins"][0]["mtu"], 1450);
        let _ = std::fs::remove_dir_all(d);
    }
}
