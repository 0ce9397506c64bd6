//! The desired datapath state, computed from Services and `EndpointSlices`.
//!
//! [`desired`] is a pure function: no I/O, no clock, no randomness. The same
//! API objects always give the same [`Desired`] value, which the reconciler
//! then diffs against the live maps.
//!
//! Rules, after kube-proxy's service/endpoint-slice caches:
//!
//! - a Service yields frontends only when it has an IPv4 cluster IP (not
//!   headless `None`, not `ExternalName`); `NodePort` and `LoadBalancer`
//!   Services get their cluster-IP frontends like any other, and its
//!   `externalIPs` and `LoadBalancer` ingress IPs are frontends too (so pods
//!   reach them at `connect()`; outside clients go through
//!   [`external`](super::external));
//! - one frontend per service port with protocol TCP or UDP (SCTP is skipped);
//! - its backends come from the `EndpointSlices` labelled
//!   `kubernetes.io/service-name=<service>` in the Service's namespace
//!   (address type `IPv4`), from the slice port whose name and protocol match
//!   the service port's (unnamed = `""`), using that slice port's number (the
//!   resolved target port) and every address of every usable endpoint
//!   ([`usable`]: ready, or when none is ready the serving terminating ones);
//! - backends are deduplicated and sorted; a frontend with no usable endpoint
//!   keeps 0 backends, so the datapath refuses connections instead of
//!   letting them hang;
//! - `sessionAffinity: ClientIP` gives every frontend of the Service its
//!   timeout ([`client_ip_affinity`]); the socket programs then keep sending
//!   one client (a network namespace: a pod, or the host) to one backend.

#[cfg(test)]
mod tests;

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use sluice_ebpf_common::{PROTO_TCP, PROTO_UDP};

use super::endpoints::{PortEndpoint, client_ip_affinity, port_endpoints, usable};

/// The label that ties an `EndpointSlice` to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A transport protocol the socket load balancer handles.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// From a Kubernetes protocol name (`None` means TCP, the API default);
    /// `None` for protocols sluice does not balance (SCTP, unknown).
    #[must_use]
    pub fn from_k8s(name: Option<&str>) -> Option<Self> {
        match name.unwrap_or("TCP") {
            "TCP" => Some(Self::Tcp),
            "UDP" => Some(Self::Udp),
            _ => None,
        }
    }

    /// The IP protocol number used in the datapath maps.
    #[must_use]
    pub const fn number(self) -> u8 {
        match self {
            Self::Tcp => PROTO_TCP,
            Self::Udp => PROTO_UDP,
        }
    }

    /// From an IP protocol number as found in the datapath maps.
    #[must_use]
    pub const fn from_number(number: u8) -> Option<Self> {
        match number {
            PROTO_TCP => Some(Self::Tcp),
            PROTO_UDP => Some(Self::Udp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
        })
    }
}

/// A service frontend: what clients connect to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frontend {
    /// The cluster IP.
    pub vip: Ipv4Addr,
    /// The service port.
    pub port: u16,
    /// The protocol.
    pub protocol: Protocol,
}

impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.vip, self.port, self.protocol)
    }
}

/// One backend of a frontend (its protocol is the frontend's).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Backend {
    /// The endpoint address.
    pub addr: Ipv4Addr,
    /// The endpoint port (the service's resolved target port).
    pub port: u16,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.addr, self.port)
    }
}

/// The stable identity of one service port: `namespace/name:port-name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServicePortName {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The service port's name (`""` when unnamed).
    pub port: String,
}

impl fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if !self.port.is_empty() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

impl ServicePortName {
    /// `namespace/name:port` (`port` empty when the service port is unnamed).
    #[must_use]
    pub fn new(namespace: &str, name: &str, port: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            port: port.to_owned(),
        }
    }
}

/// What one frontend should balance to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontendSpec {
    /// The service port this frontend belongs to.
    pub service: ServicePortName,
    /// Usable backends, sorted and deduplicated; empty means "refuse".
    pub backends: Vec<Backend>,
    /// `sessionAffinity: ClientIP` timeout in seconds; 0 without affinity.
    pub affinity_timeout_s: u32,
}

impl FrontendSpec {
    /// A frontend of `service` balancing to `backends`, sorted and
    /// deduplicated. [`desired`] builds every spec with it; callers that have
    /// plain `(vip, port, protocol, backends)` rather than API objects (kernel
    /// tests, benchmarks) use it with [`Desired::insert`] to feed the same
    /// [`Reconciler`](super::Reconciler) the agent runs.
    #[must_use]
    pub fn new(service: ServicePortName, backends: impl IntoIterator<Item = Backend>) -> Self {
        let mut backends: Vec<Backend> = backends.into_iter().collect();
        backends.sort_unstable();
        backends.dedup();
        Self {
            service,
            backends,
            affinity_timeout_s: 0,
        }
    }

    /// The same spec with `sessionAffinity: ClientIP` for `timeout_s` seconds
    /// (0: none).
    #[must_use]
    pub fn with_affinity(self, timeout_s: u32) -> Self {
        Self {
            affinity_timeout_s: timeout_s,
            ..self
        }
    }
}

impl FrontendSpec {
    /// When this spec belongs to the Service `namespace/name`, sends `frontend` to `addr`
    /// on this node (at the frontend's own port) instead of its endpoints. See
    /// [`Desired::serve_locally`].
    pub fn serve_locally(
        &mut self,
        frontend: &Frontend,
        namespace: &str,
        name: &str,
        addr: Ipv4Addr,
    ) {
        if self.service.namespace == namespace && self.service.name == name {
            self.backends = vec![Backend {
                addr,
                port: frontend.port,
            }];
        }
    }
}

/// The whole desired datapath state: every frontend and its backends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// Frontends, sorted.
    pub frontends: BTreeMap<Frontend, FrontendSpec>,
}

impl Desired {
    /// Sets the spec of `frontend` (replacing any earlier one), returning the
    /// old one.
    pub fn insert(&mut self, frontend: Frontend, spec: FrontendSpec) -> Option<FrontendSpec> {
        self.frontends.insert(frontend, spec)
    }

    /// Sends every frontend of the Service `namespace/name` to `addr` on this node (at the
    /// frontend's own port), whatever its endpoints: how the agent answers the cluster DNS
    /// Service itself (node-local DNS, no query leaves the node).
    pub fn serve_locally(&mut self, namespace: &str, name: &str, addr: Ipv4Addr) {
        for (frontend, spec) in &mut self.frontends {
            spec.serve_locally(frontend, namespace, name, addr);
        }
    }

    /// The number of distinct backends (address, port, protocol).
    #[must_use]
    pub fn backend_count(&self) -> usize {
        self.frontends
            .iter()
            .flat_map(|(fe, spec)| spec.backends.iter().map(|b| (*b, fe.protocol)))
            .collect::<BTreeSet<_>>()
            .len()
    }
}

/// Computes the desired datapath state from Services and `EndpointSlices` (all
/// namespaces). Pure; see the module docs for the rules.
///
/// Accepts slices of the objects or of `Arc`s of them (reflector stores).
/// When two service ports claim the same frontend (which the apiserver's IP
/// allocator prevents), the one with the smallest `namespace/name:port` wins
/// (see [`Claims`]). Each Service becomes frontends through
/// [`service_frontends`], which the proxy's incremental index also calls.
#[must_use]
pub fn desired<S, E>(services: &[S], slices: &[E]) -> Desired
where
    S: Borrow<Service>,
    E: Borrow<EndpointSlice>,
{
    let mut by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
    for slice in slices {
        let slice: &EndpointSlice = slice.borrow();
        if let Some((namespace, service)) = slice_service(slice) {
            by_service
                .entry((namespace, service))
                .or_default()
                .push(slice);
        }
    }

    let mut claims = Claims::default();
    for service in services {
        let service: &Service = service.borrow();
        let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
        let name = service.metadata.name.as_deref().unwrap_or_default();
        let slices = by_service
            .get(&(namespace, name))
            .map_or(&[][..], Vec::as_slice);
        for (frontend, spec) in service_frontends(service, slices) {
            claims.claim(frontend, spec);
        }
    }
    claims.into_desired()
}

/// The Service an `EndpointSlice` belongs to: its namespace and its
/// `kubernetes.io/service-name` label (`None` without the label).
#[must_use]
pub fn slice_service(slice: &EndpointSlice) -> Option<(&str, &str)> {
    let service = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(SERVICE_NAME_LABEL))?;
    let namespace = slice.metadata.namespace.as_deref().unwrap_or_default();
    Some((namespace, service.as_str()))
}

/// The frontends one Service yields, from the `EndpointSlices` of that
/// Service (`slices` may hold others; only `IPv4` slices labelled with this
/// Service's name in its namespace count). Pure; the one implementation of
/// the module's rules, which [`desired`] maps over every Service.
///
/// Within the Service, when two of its ports claim the same frontend, the
/// one with the smaller port name wins (the first on a tie), as across
/// Services.
#[must_use]
pub fn service_frontends(
    service: &Service,
    slices: &[&EndpointSlice],
) -> BTreeMap<Frontend, FrontendSpec> {
    service_frontends_on(service, slices, None)
}

/// [`service_frontends`] as node `node` sees them: with
/// `internalTrafficPolicy: Local`, a cluster IP balances only to the usable
/// endpoints on that node (none: connections are refused, as upstream drops
/// them), while its `externalIPs` and `LoadBalancer` IPs keep every endpoint.
/// `None` (no node) ignores the policy.
#[must_use]
pub fn service_frontends_on(
    service: &Service,
    slices: &[&EndpointSlice],
    node: Option<&str>,
) -> BTreeMap<Frontend, FrontendSpec> {
    let mut frontends = BTreeMap::new();
    let Some(spec) = &service.spec else {
        return frontends;
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return frontends;
    }
    let mut vips = cluster_ipv4s(spec.cluster_ip.as_deref(), spec.cluster_ips.as_deref());
    if vips.is_empty() {
        return frontends;
    }
    let cluster_vips = vips.clone();
    let internal_local = node.filter(|_| spec.internal_traffic_policy.as_deref() == Some("Local"));
    // In-cluster clients of an external address are balanced at connect() too (as
    // kube-proxy short-circuits them), to every ready endpoint.
    vips.extend(
        spec.external_ips
            .iter()
            .flatten()
            .filter_map(|ip| ip.parse::<Ipv4Addr>().ok()),
    );
    if spec.type_.as_deref() == Some("LoadBalancer") {
        vips.extend(
            service
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|ingress| ingress.ip.as_deref()?.parse::<Ipv4Addr>().ok()),
        );
    }
    vips.retain(|vip| !vip.is_unspecified());
    vips.sort_unstable();
    vips.dedup();
    let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let affinity = client_ip_affinity(spec).unwrap_or(0);
    let slices: Vec<&EndpointSlice> = slices
        .iter()
        .copied()
        .filter(|slice| {
            slice.address_type == "IPv4" && slice_service(slice) == Some((namespace, name))
        })
        .collect();
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
        let service_port = ServicePortName::new(namespace, name, port_name);
        let endpoints = port_endpoints(&slices, port_name, protocol);
        let backend_of = |e: &&PortEndpoint| e.backend;
        let backends: Vec<Backend> = usable(endpoints.iter()).iter().map(backend_of).collect();
        let local_backends: Option<Vec<Backend>> = internal_local.map(|node| {
            usable(endpoints.iter().filter(|e| e.on(node)))
                .iter()
                .map(backend_of)
                .collect()
        });
        for vip in &vips {
            let backends = match &local_backends {
                Some(local) if cluster_vips.contains(vip) => local,
                _ => &backends,
            };
            let frontend = Frontend {
                vip: *vip,
                port: number,
                protocol,
            };
            let candidate = FrontendSpec::new(service_port.clone(), backends.iter().copied())
                .with_affinity(affinity);
            frontends
                .entry(frontend)
                .and_modify(|existing: &mut FrontendSpec| {
                    if candidate.service < existing.service {
                        *existing = candidate.clone();
                    }
                })
                .or_insert(candidate);
        }
    }
    frontends
}

/// Every service port's claim on each frontend, and the rule that picks the
/// winner: the smallest `namespace/name:port`. [`desired`] and the proxy's
/// incremental index both decide through it, so a Service added or removed
/// one at a time ends in the same state as a full recomputation.
#[derive(Clone, Debug, Default)]
pub struct Claims {
    claims: HashMap<Frontend, BTreeMap<ServicePortName, FrontendSpec>>,
}

impl Claims {
    /// Adds (or replaces) `spec.service`'s claim on `frontend`.
    pub fn claim(&mut self, frontend: Frontend, spec: FrontendSpec) {
        self.claims
            .entry(frontend)
            .or_default()
            .insert(spec.service.clone(), spec);
    }

    /// Drops `service`'s claim on `frontend`.
    pub fn release(&mut self, frontend: &Frontend, service: &ServicePortName) {
        if let Some(claims) = self.claims.get_mut(frontend) {
            claims.remove(service);
            if claims.is_empty() {
                self.claims.remove(frontend);
            }
        }
    }

    /// The winning claim on `frontend`, if any.
    #[must_use]
    pub fn winner(&self, frontend: &Frontend) -> Option<&FrontendSpec> {
        self.claims
            .get(frontend)
            .and_then(|claims| claims.values().next())
    }

    /// The winners of every frontend.
    #[must_use]
    pub fn into_desired(self) -> Desired {
        Desired {
            frontends: self
                .claims
                .into_iter()
                .filter_map(|(frontend, claims)| {
                    claims.into_values().next().map(|spec| (frontend, spec))
                })
                .collect(),
        }
    }
}

/// The IPv4 cluster IPs of a Service (`clusterIPs` when set, else `clusterIP`).
fn cluster_ipv4s(cluster_ip: Option<&str>, cluster_ips: Option<&[String]>) -> Vec<Ipv4Addr> {
    let mut vips: Vec<Ipv4Addr> = match cluster_ips {
        Some(ips) if !ips.is_empty() => ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
        _ => cluster_ip
            .and_then(|ip| ip.parse().ok())
            .into_iter()
            .collect(),
    };
    vips.retain(|vip| !vip.is_unspecified());
    vips.sort_unstable();
    vips.dedup();
    vips
}
