//! A minimal fake kubelet for control-plane tests: registers a Node and marks the pods
//! bound to it Running and Ready (with an IP from the node's podCIDR), and finishes
//! graceful deletions. It only talks to the API, like the real kubelet does.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// Handle to the background loop; stops it on drop.
pub struct FakeKubelet {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Register `node` (4 CPU, 8Gi, 110 pods, Ready) and start marking its pods Running.
pub async fn start(client: kube::Client, node: &str) -> FakeKubelet {
    let nodes: Api<Node> = Api::all(client.clone());
    let n: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node, "kubernetes.io/os": "linux"}},
    }))
    .expect("node json");
    nodes
        .create(&PostParams::default(), &n)
        .await
        .expect("register node");
    let status = json!({"status": {
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "fake kubelet is posting ready status",
            "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": node}],
        "nodeInfo": {"kubeletVersion": "v1.32.0-fake", "osImage": "test", "kernelVersion": "test", "containerRuntimeVersion": "fake://1",
            "architecture": "amd64", "operatingSystem": "linux", "bootID": "", "machineID": "", "systemUUID": "", "kubeProxyVersion": ""},
    }});
    nodes
        .patch_status(node, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("node status");
    let node = node.to_string();
    let task = tokio::spawn(async move {
        let pods: Api<Pod> = Api::all(client.clone());
        let mut ips: BTreeMap<String, String> = BTreeMap::new();
        loop {
            if let Ok(list) = pods
                .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
                .await
            {
                for p in list.items {
                    let ns = p.metadata.namespace.clone().unwrap_or_default();
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                    if p.metadata.deletion_timestamp.is_some() {
                        let _ = api
                            .delete(&name, &DeleteParams::default().grace_period(0))
                            .await;
                        continue;
                    }
                    let running =
                        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                    if running {
                        continue;
                    }
                    let next = ips.len() + 2;
                    let ip = ips
                        .entry(format!("{ns}/{name}"))
                        .or_insert_with(|| format!("10.244.0.{}", next % 250 + 2))
                        .clone();
                    let statuses: Vec<_> = p.spec.as_ref().map(|s| s.containers.iter().map(|c| json!({
                        "name": c.name, "image": c.image, "imageID": "", "ready": true, "started": true, "restartCount": 0,
                        "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}})).collect()).unwrap_or_default();
                    let st = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1",
                        "startTime": "2026-01-01T00:00:00Z",
                        "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"},
                            {"type": "Initialized", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
                        "containerStatuses": statuses}});
                    let _ = api
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&st))
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    FakeKubelet { task }
}
