//! The kubelet: registers this Node, keeps its Lease and Ready condition current, writes
//! the CNI config for the node's podCIDR, and runs one [`pods::Worker`] per pod bound to
//! this node, driving containerd over CRI.

pub mod logs;
pub mod node;
pub mod pods;
pub mod probe;
pub mod rotation;
pub mod server;
pub mod spec;
pub mod status;
pub mod streaming;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Resource;
use kube::api::Api;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use sluice_k8s_values::Ipv4Net;
use sluice_proto::runtime::v1 as cri;
use tokio::sync::watch;

/// Kubelet settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's name.
    pub node_name: String,
    /// This node's `InternalIP`.
    pub node_ip: String,
    /// The CRI socket (containerd).
    pub cri_socket: PathBuf,
    /// Where the CNI conflist is written (containerd's CNI `conf_dir`).
    pub cni_conf_dir: PathBuf,
    /// The CNI plugin's state (IPAM) directory.
    pub cni_data_dir: PathBuf,
    /// Pod logs and other kubelet state live under here.
    pub state_dir: PathBuf,
    /// DNS settings given to pod sandboxes.
    pub dns: cri::DnsConfig,
    /// The cluster DNS pods point at by `dnsPolicy` (None: every pod gets `dns`).
    pub cluster_dns: Option<spec::ClusterDns>,
    /// The cluster's Service range: made unreachable on the node so a `ClusterIP` the eBPF
    /// hooks do not translate fails fast instead of leaving through the default route.
    pub service_cidr: Option<String>,
    /// The kubelet HTTP server's port on `node_ip` (`daemonEndpoints.kubeletEndpoint`).
    pub kubelet_port: u16,
    /// When container logs are rotated.
    pub log_rotation: rotation::Policy,
    /// The API server's addresses: with loopback and `node_ip`, the only peers the kubelet
    /// server answers (until TLS and authorization come).
    pub api_server_ips: Vec<std::net::IpAddr>,
    /// The cgroup under which this node's pods live (`""`: the hierarchy's root, as
    /// upstream's `--cgroup-root=/`); pods go to `<cgroup_root>/kubepods/...`. Several
    /// nodes on one machine each get their own, so each node's eBPF hooks see only
    /// its own pods.
    pub cgroup_root: String,
    /// The MTU of pods' interfaces (`None`: the CNI plugin's default); less than the
    /// uplink's under an overlay.
    pub pod_mtu: Option<u32>,
}

impl Config {
    /// The sandbox config of `pod` on this node (logs, DNS, cgroup).
    #[must_use]
    pub fn sandbox_config(&self, pod: &k8s_openapi::api::core::v1::Pod) -> cri::PodSandboxConfig {
        let mut config = spec::sandbox_config(
            pod,
            &self.log_root(),
            &spec::pod_dns(pod, self.cluster_dns.as_ref(), &self.dns),
            0,
        );
        if let Some(linux) = config.linux.as_mut() {
            linux.cgroup_parent = spec::nest_cgroup(&self.cgroup_root, &linux.cgroup_parent);
        }
        config
    }

    /// Root of pod log directories.
    #[must_use]
    pub fn log_root(&self) -> String {
        self.state_dir.join("pods").display().to_string()
    }
}

/// Kubelet errors.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// The API server refused or failed.
    #[error("API: {0}")]
    Api(#[from] kube::Error),
    /// The runtime refused or failed.
    #[error("CRI: {0}")]
    Cri(#[from] tonic::Status),
    /// Could not reach the runtime.
    #[error("connecting to the runtime: {0}")]
    Connect(#[from] sluice_proto::ConnectError),
    /// Local I/O.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A bug or impossible state.
    #[error("{0}")]
    Internal(String),
}

/// RFC 3339 now, second precision.
#[must_use]
pub fn now() -> String {
    rfc3339_from_nanos(
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        )
        .unwrap_or(0),
    )
}

/// RFC 3339 (second precision) from Unix nanoseconds as CRI reports times.
#[must_use]
pub fn rfc3339_from_nanos(ns: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(ns / 1_000_000_000)
        .map_or_else(|_| "1970-01-01T00:00:00Z".into(), |t| t.to_string())
}

/// The kubelet's event recorder: one per agent, shared by the pod workers, so repeats
/// become a series of one Event (kube's [`Recorder`], `events.k8s.io/v1`).
#[must_use]
pub fn recorder(client: &kube::Client, cfg: &Config) -> Recorder {
    Recorder::new(
        client.clone(),
        Reporter {
            controller: "kubelet".into(),
            instance: Some(cfg.node_name.clone()),
        },
    )
}

/// Records an event about `pod`, or about one of its containers, through `recorder`
/// (best effort: a failure is logged, not returned).
///
/// The `Recorder` folds a repeat into a series of the first Event, keyed by type, `action`,
/// reason and the regarding object but not the note. So the regarding object names the
/// container (`spec.containers{name}`, as upstream's kubelet does) and `action` the
/// operation (`PullImage`, `ProbeLiveness`, ...): only the same outcome of the same
/// operation on the same container folds into one series.
pub(crate) async fn event(
    recorder: &Recorder,
    pod: &Pod,
    container: Option<&str>,
    type_: EventType,
    action: &str,
    reason: &str,
    note: &str,
) {
    let mut regarding = pod.object_ref(&());
    // The pod's resourceVersion moves with every status write; it must not split a series.
    regarding.resource_version = None;
    regarding.field_path = container.map(|c| format!("spec.containers{{{c}}}"));
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.into()),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &regarding).await {
        tracing::debug!(pod = %pods::name_of(pod), reason, error = %e, "recording an event");
    }
}

/// DNS for pods: the host's resolv.conf (there is no cluster DNS add-on yet).
#[must_use]
pub fn host_dns() -> cri::DnsConfig {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut dns = cri::DnsConfig::default();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("nameserver") => dns.servers.extend(w.next().map(String::from)),
            Some("search") => dns.searches.extend(w.map(String::from)),
            Some("options") => dns.options.extend(w.map(String::from)),
            _ => {}
        }
    }
    dns
}

async fn connect_runtime(socket: &std::path::Path) -> sluice_proto::Clients {
    let mut delay = Duration::from_millis(200);
    loop {
        match sluice_proto::connect(socket).await {
            Ok(c) => return c,
            Err(e) => {
                tracing::warn!(error = %e, "container runtime not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Node status, CNI config and Lease, every 10 s.
async fn heartbeat(cfg: Arc<Config>, client: kube::Client, mut cri: sluice_proto::Clients) {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let version = cri
        .runtime
        .version(cri::VersionRequest {
            version: sluice_proto::CRI_VERSION.into(),
        })
        .await
        .map(|v| {
            let v = v.into_inner();
            format!("{}://{}", v.runtime_name, v.runtime_version)
        })
        .unwrap_or_default();
    let mut fast = true;
    loop {
        let pod_cidr = nodes
            .get_opt(&cfg.node_name)
            .await
            .ok()
            .flatten()
            .and_then(|n| n.spec?.pod_cidr);
        let mut cni_ok = false;
        if let Some(cidr) = &pod_cidr {
            // Pod IPs that have no pod (yet, or any more) must not leave the node either.
            for range in std::iter::once(cidr).chain(cfg.service_cidr.as_ref()) {
                if let Err(e) = node::ensure_unreachable_route(range) {
                    tracing::warn!(error = %e, %range, "installing the unreachable route");
                }
            }
            // Parsed as the plugin will: a conflist it refuses must not make the node Ready.
            match crate::cni::parse_pod_cidr(cidr) {
                Ok(net) => cni_ok = write_cni_config(&cfg, net),
                Err(e) => tracing::warn!(error = %e, %cidr, "the Node's podCIDR cannot be used"),
            }
        }
        let (rt, net, msg) = node::runtime_ready(&mut cri).await;
        let ready = rt && net && cni_ok;
        let msg = if pod_cidr.is_none() {
            "waiting for a podCIDR from the control plane".to_string()
        } else {
            msg
        };
        if let Err(e) = node::post_status(&nodes, &cfg, &version, ready, &msg).await {
            tracing::warn!(error = %e, "posting node status");
        }
        if let Err(e) = node::renew_lease(&leases, &cfg).await {
            tracing::warn!(error = %e, "renewing lease");
        }
        // Poll quickly until Ready, then at the upstream cadence.
        fast = fast && !ready;
        tokio::time::sleep(if fast {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(10)
        })
        .await;
    }
}

/// Writes the conflist for `pod_cidr`; whether it is in place.
fn write_cni_config(cfg: &Config, pod_cidr: Ipv4Net) -> bool {
    match node::write_cni_config(&cfg.cni_conf_dir, pod_cidr, &cfg.cni_data_dir, cfg.pod_mtu) {
        Ok(changed) => {
            if changed {
                tracing::info!(%pod_cidr, dir = %cfg.cni_conf_dir.display(), "wrote CNI config");
            }
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "writing CNI config");
            false
        }
    }
}

/// Remove sandboxes we created whose pods no longer exist (e.g. force-deleted while we were down).
async fn collect_orphans(
    mut cri: sluice_proto::Clients,
    live: &HashMap<String, watch::Sender<Option<Pod>>>,
) {
    let filter = cri::PodSandboxFilter {
        label_selector: HashMap::from([(spec::LABEL_MANAGED.to_string(), "true".to_string())]),
        ..Default::default()
    };
    let Ok(list) = cri
        .runtime
        .list_pod_sandbox(cri::ListPodSandboxRequest {
            filter: Some(filter),
        })
        .await
    else {
        return;
    };
    for sb in list.into_inner().items {
        let uid = sb
            .labels
            .get(spec::LABEL_POD_UID)
            .cloned()
            .unwrap_or_default();
        if live.contains_key(&uid) {
            continue;
        }
        tracing::info!(%uid, sandbox = %sb.id, "removing the sandbox of a pod that no longer exists");
        let _ = cri
            .runtime
            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: sb.id.clone(),
            })
            .await;
        let _ = cri
            .runtime
            .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: sb.id,
            })
            .await;
    }
}

/// How often running containers' log sizes are checked (upstream's default monitor period).
const LOG_ROTATION_PERIOD: Duration = Duration::from_secs(10);

/// Rotates the logs of this node's running containers as they outgrow `policy`.
async fn rotate_logs(mut cri: sluice_proto::Clients, policy: rotation::Policy) {
    let mut tick = tokio::time::interval(LOG_ROTATION_PERIOD);
    loop {
        tick.tick().await;
        let filter = cri::ContainerFilter {
            state: Some(cri::ContainerStateValue {
                state: cri::ContainerState::ContainerRunning.into(),
            }),
            label_selector: [(spec::LABEL_MANAGED.to_string(), "true".to_string())].into(),
            ..Default::default()
        };
        let Ok(list) = cri
            .runtime
            .list_containers(cri::ListContainersRequest {
                filter: Some(filter),
            })
            .await
        else {
            continue;
        };
        for c in list.into_inner().containers {
            let Ok(status) = cri
                .runtime
                .container_status(cri::ContainerStatusRequest {
                    container_id: c.id.clone(),
                    verbose: false,
                })
                .await
            else {
                continue;
            };
            let Some(path) = status.into_inner().status.map(|s| s.log_path) else {
                continue;
            };
            if path.is_empty() {
                continue;
            }
            let mut reopen_cri = cri.clone();
            let id = c.id.clone();
            let reopen = || async move {
                reopen_cri
                    .runtime
                    .reopen_container_log(cri::ReopenContainerLogRequest { container_id: id })
                    .await
                    .map(|_| ())
                    .map_err(|e| e.message().to_string())
            };
            let now = k8s_openapi::jiff::Timestamp::now();
            match rotation::rotate_if_needed(std::path::Path::new(&path), policy, now, reopen).await
            {
                Ok(true) => {
                    tracing::info!(container = %c.id, log = %path, "rotated the container log");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(container = %c.id, error = %e, "rotating the container log");
                }
            }
        }
    }
}

/// Run the kubelet until the future is dropped.
pub async fn run(cfg: Config, client: kube::Client) -> Result<(), KubeletError> {
    let cfg = Arc::new(cfg);
    std::fs::create_dir_all(&cfg.state_dir).map_err(|source| KubeletError::Io {
        context: format!("creating {}", cfg.state_dir.display()),
        source,
    })?;
    // Pod-to-pod traffic is routed through the host (one /32 route per pod veth).
    if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
        tracing::warn!(error = %e, "could not enable IPv4 forwarding: pods will not reach each other");
    }
    // The kubelet's HTTP server (logs, pods): only on the node's address, unauthenticated
    // until TLS and authorization arrive.
    let addr = format!("{}:{}", cfg.node_ip, cfg.kubelet_port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| KubeletError::Io {
            context: format!("binding the kubelet server to {addr}"),
            source,
        })?;
    let cri = connect_runtime(&cfg.cri_socket).await;
    let nodes: Api<Node> = Api::all(client.clone());
    loop {
        match node::register(&nodes, &cfg).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, "registering node");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    tracing::info!(node = %cfg.node_name, ip = %cfg.node_ip, "node registered");
    tokio::spawn(heartbeat(cfg.clone(), client.clone(), cri.clone()));

    let recorder = recorder(&client, &cfg);
    let pods: Api<Pod> = Api::all(client.clone());
    let wc = watcher::Config::default().fields(&format!("spec.nodeName={}", cfg.node_name));
    // The pod cache the HTTP server reads: exactly the pods this loop is told about.
    let (store, writer) = reflector::store();
    let mut events = watcher(pods, wc).reflect(writer).boxed();
    let source = Arc::new(server::KubeletPods {
        store,
        cri: cri.clone(),
    });
    let app = server::router(source, PathBuf::from(cfg.log_root()));
    let mut peers = cfg.api_server_ips.clone();
    if let Ok(ip) = cfg.node_ip.parse() {
        peers.push(ip);
    }
    tracing::info!(%addr, "kubelet server listening");
    tokio::spawn(async move {
        if let Err(e) = server::serve(listener, app, peers).await {
            tracing::error!(error = %e, "kubelet server stopped");
        }
    });
    tokio::spawn(rotate_logs(cri.clone(), cfg.log_rotation));
    let mut workers: HashMap<String, watch::Sender<Option<Pod>>> = HashMap::new();
    let mut relist: Option<Vec<String>> = None;
    let mut gc = tokio::time::interval(Duration::from_secs(30));
    // Orphans are judged only against a complete view of this node's pods: never before the
    // first full list (a restarted agent must not remove the sandboxes of running pods).
    let mut listed = false;
    loop {
        tokio::select! {
            _ = gc.tick(), if listed => {
                workers.retain(|_, tx| !tx.is_closed());
                collect_orphans(cri.clone(), &workers).await;
            }
            ev = events.next() => {
                let Some(ev) = ev else { return Ok(()) };
                match ev {
                    Ok(watcher::Event::Init) => relist = Some(Vec::new()),
                    Ok(watcher::Event::InitApply(pod)) => {
                        if let Some(seen) = relist.as_mut() {
                            seen.push(pod.metadata.uid.clone().unwrap_or_default());
                        }
                        deliver(&cfg, &client, &recorder, &cri, &mut workers, pod);
                    }
                    Ok(watcher::Event::InitDone) => {
                        listed = true;
                        if let Some(seen) = relist.take() {
                            for (uid, tx) in &workers {
                                if !seen.contains(uid) {
                                    let _ = tx.send(None);
                                }
                            }
                        }
                    }
                    Ok(watcher::Event::Apply(pod)) => {
                        deliver(&cfg, &client, &recorder, &cri, &mut workers, pod);
                    }
                    Ok(watcher::Event::Delete(pod)) => {
                        if let Some(tx) = workers.get(pod.metadata.uid.as_deref().unwrap_or_default()) {
                            let _ = tx.send(None);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "pod watch failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    }
}

fn deliver(
    cfg: &Arc<Config>,
    client: &kube::Client,
    recorder: &Recorder,
    cri: &sluice_proto::Clients,
    workers: &mut HashMap<String, watch::Sender<Option<Pod>>>,
    pod: Pod,
) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if let Some(tx) = workers.get(&uid)
        && !tx.is_closed()
    {
        let _ = tx.send(Some(pod));
        return;
    }
    if workers.contains_key(&uid) {
        // The worker finished (pod deleted); nothing more to do for this uid.
        return;
    }
    let (tx, rx) = watch::channel(Some(pod));
    let worker = pods::Worker::new(
        uid.clone(),
        cfg.clone(),
        client.clone(),
        recorder.clone(),
        cri.clone(),
    );
    tokio::spawn(worker.run(rx));
    workers.insert(uid, tx);
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_from_cri_nanos() {
        assert_eq!(
            super::rfc3339_from_nanos(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(super::rfc3339_from_nanos(0), "1970-01-01T00:00:00Z");
    }
}
