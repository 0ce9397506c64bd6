//! The north-south desired state: what the tc/XDP programs on this node's
//! external interface should answer, computed from Services and
//! `EndpointSlices` for one node.
//!
//! [`service_external`] is pure, like [`service_frontends`]: the same
//! objects and node name always give the same [`ServiceExternal`]. Rules,
//! after kube-proxy (`pkg/proxy/topology.go`, the iptables proxier) and
//! Cilium's kube-proxy replacement:
//!
//! - frontends: a wildcard `0.0.0.0:nodePort` per port of a `NodePort` or
//!   `LoadBalancer` Service that has a node port (it answers on every node
//!   address); `externalIP:port` for every `spec.externalIPs` address (any
//!   Service type); `ingressIP:port` for every `status.loadBalancer.ingress`
//!   IP of a `LoadBalancer` Service;
//! - backends: the usable endpoints ([`usable`]: ready, or when none is
//!   ready the serving terminating ones); with
//!   `externalTrafficPolicy: Local`, the same choice among this node's
//!   endpoints only (`nodeName`), and no SNAT (the client address is kept);
//! - `sessionAffinity: ClientIP` with its `timeoutSeconds` (default 10800);
//! - `loadBalancerSourceRanges` (or, when empty, the
//!   `service.beta.kubernetes.io/load-balancer-source-ranges` annotation)
//!   restrict the `LoadBalancer` ingress frontends;
//! - `healthCheckNodePort` (policy `Local`): served by this node with the
//!   number of its local endpoints (503 when there is none);
//! - a `LoadBalancer` ingress IP is announced (ARP) by one node: among the
//!   nodes that have a usable endpoint of the Service (for policy `Local`,
//!   so traffic only reaches nodes that can serve it), the one with the
//!   highest rendezvous hash of `(ip, node)`; every agent computes the same
//!   winner from the same objects, with no coordination.
//!
//! A pod's `hostPort`s ([`pod_host_ports`]) are frontends of the same kind,
//! with the pod as their one local backend.
//!
//! [`service_frontends`]: super::desired::service_frontends

pub mod reconcile;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use sluice_ebpf_common::nodeport::{
    EXT_FLAG_AFFINITY, EXT_FLAG_EXTERNAL_IP, EXT_FLAG_LOADBALANCER, EXT_FLAG_LOCAL,
    EXT_FLAG_NODEPORT, EXT_FLAG_SOURCE_RANGES,
};

use super::desired::{Backend, Frontend, Protocol, ServicePortName, slice_service};
use super::endpoints::{client_ip_affinity, port_endpoints, usable};
use super::index::ServiceRef;

/// The annotation older clients set instead of `loadBalancerSourceRanges`.
pub const SOURCE_RANGES_ANNOTATION: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";

/// One north-south backend.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtBackend {
    /// The endpoint address and port.
    pub backend: Backend,
    /// The endpoint runs on this node.
    pub local: bool,
}

/// What one north-south frontend (`vip` 0.0.0.0 for a wildcard `NodePort`)
/// should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtSpec {
    /// The service port it belongs to.
    pub service: ServicePortName,
    /// `EXT_FLAG_*` bits: the kind (`NODEPORT`, `EXTERNAL_IP`,
    /// `LOADBALANCER`), `LOCAL`, `AFFINITY`, `SOURCE_RANGES`. The reconciler
    /// adds `MAGLEV`.
    pub flags: u16,
    /// `sessionAffinity` timeout, seconds (0 without affinity).
    pub affinity_timeout_s: u32,
    /// Allowed client prefixes (network address, length), sorted; with
    /// `EXT_FLAG_SOURCE_RANGES` only.
    pub source_ranges: Vec<(Ipv4Addr, u8)>,
    /// The backends, sorted; empty means "drop".
    pub backends: Vec<ExtBackend>,
    /// Endpoints in the slices that carry no traffic (not ready, or
    /// terminating while a ready one exists): flows already tracked to them
    /// are left to drain rather than flushed.
    pub draining: Vec<Backend>,
}

/// A `healthCheckNodePort` this node serves.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HealthCheck {
    /// The port (on every node address).
    pub port: u16,
    /// The Service's `namespace` and `name`.
    pub service: ServiceRef,
    /// The Service's endpoints (addresses) on this node that take traffic, as
    /// kube-proxy counts them (per endpoint, not per port).
    pub local_endpoints: usize,
}

/// Everything north-south one Service asks of this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceExternal {
    /// Frontends (`vip` 0.0.0.0: a wildcard `NodePort`).
    pub frontends: BTreeMap<Frontend, ExtSpec>,
    /// Its `healthCheckNodePort`, when it has one.
    pub health: Option<HealthCheck>,
    /// Its `LoadBalancer` ingress IPs this node announces.
    pub announce: BTreeSet<Ipv4Addr>,
}

/// Parses `a.b.c.d/len` (or a bare address, /32) into its network address.
fn parse_range(text: &str) -> Option<(Ipv4Addr, u8)> {
    let text = text.trim();
    let (addr, len) = match text.split_once('/') {
        Some((addr, len)) => (addr.parse::<Ipv4Addr>().ok()?, len.parse::<u8>().ok()?),
        None => (text.parse::<Ipv4Addr>().ok()?, 32),
    };
    if len > 32 {
        return None;
    }
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    Some((Ipv4Addr::from(u32::from(addr) & mask), len))
}

/// The rendezvous weight of `(ip, node)`: 64-bit FNV-1a, stable everywhere.
fn rendezvous(ip: Ipv4Addr, node: &str) -> u64 {
    ip.octets()
        .iter()
        .chain([0u8].iter())
        .chain(node.as_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

/// The node that announces `ip` among `candidates` (highest rendezvous
/// weight, the smaller name on a tie); `None` without candidates.
#[must_use]
pub fn announcer<'a>(
    ip: Ipv4Addr,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|node| (rendezvous(ip, node), std::cmp::Reverse(node)))
        .max()
        .map(|(_, std::cmp::Reverse(node))| node)
}

/// The north-south state one Service asks of node `node`, from the
/// `EndpointSlices` of that Service (others in `slices` are ignored). Pure;
/// see the module docs for the rules.
#[must_use]
#[allow(
    clippy::too_many_lines,
    reason = "one pass over the Service's ports; the rules read in order"
)]
pub fn service_external(
    service: &Service,
    slices: &[&EndpointSlice],
    node: &str,
) -> ServiceExternal {
    let mut out = ServiceExternal::default();
    let Some(spec) = &service.spec else {
        return out;
    };
    let type_ = spec.type_.as_deref().unwrap_or("ClusterIP");
    if type_ == "ExternalName" {
        return out;
    }
    let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let slices: Vec<&EndpointSlice> = slices
        .iter()
        .copied()
        .filter(|slice| {
            slice.address_type == "IPv4" && slice_service(slice) == Some((namespace, name))
        })
        .collect();
    let node_ports = matches!(type_, "NodePort" | "LoadBalancer");
    let local = spec.external_traffic_policy.as_deref() == Some("Local");
    let affinity = client_ip_affinity(spec);
    let external_ips: Vec<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    let ingress_ips: Vec<Ipv4Addr> = if type_ == "LoadBalancer" {
        service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|ingress| ingress.ip.as_deref()?.parse().ok())
            .collect()
    } else {
        Vec::new()
    };
    let mut source_ranges: Vec<(Ipv4Addr, u8)> = match &spec.load_balancer_source_ranges {
        Some(ranges) if !ranges.is_empty() => {
            ranges.iter().filter_map(|r| parse_range(r)).collect()
        }
        _ => service
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SOURCE_RANGES_ANNOTATION))
            .map(|text| text.split(',').filter_map(parse_range).collect())
            .unwrap_or_default(),
    };
    source_ranges.sort_unstable();
    source_ranges.dedup();

    let mut base_flags = 0;
    if local {
        base_flags |= EXT_FLAG_LOCAL;
    }
    if affinity.is_some() {
        base_flags |= EXT_FLAG_AFFINITY;
    }
    let mut local_endpoints = BTreeSet::new();
    let mut serving_nodes: BTreeSet<String> = BTreeSet::new();
    for port in spec.ports.iter().flatten() {
        let Some(protocol) = Protocol::from_k8s(port.protocol.as_deref()) else {
            continue;
        };
        let Ok(number) = u16::try_from(port.port) else {
            continue;
        };
        if number == 0 {
            continue;
        }
        let port_name = port.name.as_deref().unwrap_or_default();
        let endpoints = port_endpoints(&slices, port_name, protocol);
        let local_usable = usable(endpoints.iter().filter(|e| e.on(node)));
        let chosen = if local {
            local_usable.clone()
        } else {
            usable(endpoints.iter())
        };
        for e in &local_usable {
            local_endpoints.insert(e.backend.addr);
        }
        // Nodes that can serve this port's external traffic.
        if local {
            let by_node = endpoints.iter().filter_map(|e| e.node.as_deref());
            for candidate in by_node.collect::<BTreeSet<_>>() {
                if !usable(endpoints.iter().filter(|e| e.on(candidate))).is_empty() {
                    serving_nodes.insert(candidate.to_owned());
                }
            }
        } else {
            serving_nodes.extend(chosen.iter().filter_map(|e| e.node.clone()));
        }
        let mut backends: Vec<ExtBackend> = chosen
            .iter()
            .map(|e| ExtBackend {
                backend: e.backend,
                local: e.on(node),
            })
            .collect();
        backends.sort_unstable();
        backends.dedup();
        let mut draining: Vec<Backend> = endpoints
            .iter()
            .map(|e| e.backend)
            .filter(|b| !backends.iter().any(|x| x.backend == *b))
            .collect();
        draining.sort_unstable();
        draining.dedup();
        let service_port = ServicePortName::new(namespace, name, port_name);
        let spec_for = |kind: u16, ranges: &[(Ipv4Addr, u8)]| {
            let mut flags = base_flags | kind;
            if !ranges.is_empty() {
                flags |= EXT_FLAG_SOURCE_RANGES;
            }
            ExtSpec {
                service: service_port.clone(),
                flags,
                affinity_timeout_s: affinity.unwrap_or(0),
                source_ranges: ranges.to_vec(),
                backends: backends.clone(),
                draining: draining.clone(),
            }
        };
        let mut add = |vip: Ipv4Addr, port: u16, spec: ExtSpec| {
            let frontend = Frontend {
                vip,
                port,
                protocol,
            };
            out.frontends
                .entry(frontend)
                .and_modify(|existing: &mut ExtSpec| {
                    if spec.service < existing.service {
                        *existing = spec.clone();
                    }
                })
                .or_insert(spec);
        };
        if node_ports
            && let Some(node_port) = port
                .node_port
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
        {
            add(
                Ipv4Addr::UNSPECIFIED,
                node_port,
                spec_for(EXT_FLAG_NODEPORT, &[]),
            );
        }
        for ip in &external_ips {
            add(*ip, number, spec_for(EXT_FLAG_EXTERNAL_IP, &[]));
        }
        for ip in &ingress_ips {
            add(*ip, number, spec_for(EXT_FLAG_LOADBALANCER, &source_ranges));
        }
    }
    if local
        && node_ports
        && let Some(port) = spec
            .health_check_node_port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
    {
        out.health = Some(HealthCheck {
            port,
            service: (namespace.to_owned(), name.to_owned()),
            local_endpoints: local_endpoints.len(),
        });
    }
    for ip in ingress_ips {
        if announcer(ip, serving_nodes.iter().map(String::as_str)) == Some(node) {
            out.announce.insert(ip);
        }
    }
    out
}

/// The `hostPort`s of a pod on this node, as north-south frontends: each
/// `containerPort` with a `hostPort` answers on `hostIP:hostPort` (every node
/// address when `hostIP` is unset or `0.0.0.0`, like a `NodePort`) and goes to
/// the pod's own IP at the container port (a local backend, never source-NATed),
/// as the CNI `portmap` plugin does with iptables. Only a pod with an IP that has
/// not finished (`Succeeded`/`Failed`) and is not being deleted gets them.
#[must_use]
pub fn pod_host_ports(pod: &k8s_openapi::api::core::v1::Pod) -> ServiceExternal {
    let mut out = ServiceExternal::default();
    let (Some(spec), Some(status)) = (&pod.spec, &pod.status) else {
        return out;
    };
    if pod.metadata.deletion_timestamp.is_some()
        || matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"))
    {
        return out;
    }
    let Some(pod_ip) = status
        .pod_ip
        .as_deref()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
    else {
        return out;
    };
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    for container in &spec.containers {
        for port in container.ports.iter().flatten() {
            let (Some(host_port), Ok(container_port)) =
                (port.host_port, u16::try_from(port.container_port))
            else {
                continue;
            };
            let (Ok(host_port), Some(protocol)) = (
                u16::try_from(host_port),
                Protocol::from_k8s(port.protocol.as_deref()),
            ) else {
                continue;
            };
            if host_port == 0 || container_port == 0 {
                continue;
            }
            let vip = port
                .host_ip
                .as_deref()
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                .unwrap_or(Ipv4Addr::UNSPECIFIED);
            let frontend = Frontend {
                vip,
                port: host_port,
                protocol,
            };
            let spec = ExtSpec {
                service: ServicePortName::new(
                    namespace,
                    &format!("pod/{name}"),
                    &format!("{protocol}/{host_port}"),
                ),
                flags: EXT_FLAG_NODEPORT | EXT_FLAG_LOCAL,
                affinity_timeout_s: 0,
                source_ranges: Vec::new(),
                backends: vec![ExtBackend {
                    backend: Backend {
                        addr: pod_ip,
                        port: container_port,
                    },
                    local: true,
                }],
                draining: Vec::new(),
            };
            out.frontends.entry(frontend).or_insert(spec);
        }
    }
    out
}

/// The key [`ExternalIndex`] files a pod's host ports under (a pod name has
/// no `:`, so it never collides with a Service).
#[must_use]
pub fn pod_ref(namespace: &str, name: &str) -> ServiceRef {
    (namespace.to_owned(), format!("pod:{name}"))
}

/// The north-south state of every Service, kept up to date one Service at a
/// time (the proxy calls it with the same Services and slices as
/// [`DesiredIndex`](super::DesiredIndex)). Two service ports claiming one
/// frontend: the smaller `namespace/name:port` wins, as for cluster IPs.
#[derive(Debug, Default)]
pub struct ExternalIndex {
    node: String,
    per_service: HashMap<ServiceRef, ServiceExternal>,
    claims: HashMap<Frontend, BTreeMap<ServicePortName, ExtSpec>>,
    frontends: BTreeMap<Frontend, ExtSpec>,
}

impl ExternalIndex {
    /// An empty index for node `node`.
    #[must_use]
    pub fn new(node: &str) -> Self {
        Self {
            node: node.to_owned(),
            ..Self::default()
        }
    }

    /// The winning spec of every frontend.
    #[must_use]
    pub fn frontends(&self) -> &BTreeMap<Frontend, ExtSpec> {
        &self.frontends
    }

    /// Every `healthCheckNodePort` this node serves, by port (the smaller
    /// Service wins a port two claim, which the API server prevents).
    #[must_use]
    pub fn health_checks(&self) -> BTreeMap<u16, HealthCheck> {
        let mut checks: BTreeMap<u16, HealthCheck> = BTreeMap::new();
        for check in self.per_service.values().filter_map(|s| s.health.as_ref()) {
            match checks.get(&check.port) {
                Some(existing) if existing.service <= check.service => {}
                _ => {
                    checks.insert(check.port, check.clone());
                }
            }
        }
        checks
    }

    /// Every `LoadBalancer` IP this node announces.
    #[must_use]
    pub fn announced(&self) -> BTreeSet<Ipv4Addr> {
        self.per_service
            .values()
            .flat_map(|s| s.announce.iter().copied())
            .collect()
    }

    /// Recomputes Service `id` (`None`: deleted) from its slices; adds to
    /// `changed` every frontend whose winning spec changed.
    pub fn update_service(
        &mut self,
        id: &ServiceRef,
        service: Option<&Service>,
        slices: &[&EndpointSlice],
        changed: &mut BTreeSet<Frontend>,
    ) {
        let new = service
            .map(|s| service_external(s, slices, &self.node))
            .unwrap_or_default();
        self.update(id, new, changed);
    }

    /// Recomputes the host ports of pod `namespace/name` (`None`: gone); adds to
    /// `changed` every frontend whose winning spec changed.
    pub fn update_pod(
        &mut self,
        namespace: &str,
        name: &str,
        pod: Option<&k8s_openapi::api::core::v1::Pod>,
        changed: &mut BTreeSet<Frontend>,
    ) {
        let new = pod.map(pod_host_ports).unwrap_or_default();
        self.update(&pod_ref(namespace, name), new, changed);
    }

    /// Replaces what source `id` (a Service or a pod) asks for.
    fn update(&mut self, id: &ServiceRef, new: ServiceExternal, changed: &mut BTreeSet<Frontend>) {
        let old = self.per_service.remove(id).unwrap_or_default();
        let mut touched: BTreeSet<Frontend> = BTreeSet::new();
        for (frontend, spec) in &old.frontends {
            if let Some(claims) = self.claims.get_mut(frontend) {
                claims.remove(&spec.service);
                if claims.is_empty() {
                    self.claims.remove(frontend);
                }
            }
            touched.insert(*frontend);
        }
        for (frontend, spec) in &new.frontends {
            self.claims
                .entry(*frontend)
                .or_default()
                .insert(spec.service.clone(), spec.clone());
            touched.insert(*frontend);
        }
        if new != ServiceExternal::default() {
            self.per_service.insert(id.clone(), new);
        }
        for frontend in touched {
            let winner = self
                .claims
                .get(&frontend)
                .and_then(|claims| claims.values().next());
            if self.frontends.get(&frontend) == winner {
                continue;
            }
            match winner {
                Some(spec) => {
                    self.frontends.insert(frontend, spec.clone());
                }
                None => {
                    self.frontends.remove(&frontend);
                }
            }
            changed.insert(frontend);
        }
    }

    /// The pods (`namespace`, `name`) that have host ports in the index.
    #[must_use]
    pub fn pods(&self) -> Vec<(String, String)> {
        self.per_service
            .keys()
            .filter_map(|(ns, name)| {
                name.strip_prefix("pod:")
                    .map(|pod| (ns.clone(), pod.to_owned()))
            })
            .collect()
    }

    /// Forgets everything (before a rebuild from complete lists); returns
    /// the frontends there were, so the caller can diff.
    pub fn clear(&mut self) -> BTreeMap<Frontend, ExtSpec> {
        self.per_service
            .retain(|(_, name), _| name.starts_with("pod:"));
        self.claims.clear();
        let old = std::mem::take(&mut self.frontends);
        // Pods' host ports stay (their own watch re-lists them): claim them again.
        let kept: Vec<(ServiceRef, ServiceExternal)> = self.per_service.drain().collect();
        for (id, state) in kept {
            self.update(&id, state, &mut BTreeSet::new());
        }
        old
    }
}
