//! What the `EndpointSlices` say about one service port, read once for both
//! directions of traffic: the socket load balancer ([`desired`]) and the
//! north-south programs ([`external`]) choose their backends from the same
//! [`PortEndpoint`]s by the same rule ([`usable`]), and read a Service's
//! `sessionAffinity` through the same [`client_ip_affinity`].
//!
//! The rule, after kube-proxy's `CategorizeEndpoints`: the ready endpoints;
//! when none is ready, the ones that are serving and terminating (a rolling
//! update's last pods keep answering until their replacements are ready).
//!
//! [`desired`]: super::desired
//! [`external`]: super::external

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::ServiceSpec;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};

use super::desired::{Backend, Protocol};

/// Upstream's default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT_S: u32 = 10_800;

/// One endpoint address of one service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortEndpoint {
    /// The address and the slice port's number (the resolved target port).
    pub backend: Backend,
    /// The node the endpoint runs on (`nodeName`), when the slice says.
    pub node: Option<String>,
    /// `conditions.ready` (unset means ready).
    pub ready: bool,
    /// Serving (`conditions.serving`, defaulting to `ready`) and terminating.
    pub serving_terminating: bool,
}

impl PortEndpoint {
    /// Whether the endpoint runs on `node`.
    #[must_use]
    pub fn on(&self, node: &str) -> bool {
        self.node.as_deref() == Some(node)
    }
}

/// Every endpoint address of the service port named `port_name` (`""` when
/// unnamed) with `protocol`, across `slices` (already narrowed to the
/// Service's `IPv4` slices), sorted and deduplicated. A slice without a port
/// of that name and protocol, or whose port number is unset or 0, adds
/// nothing.
#[must_use]
pub fn port_endpoints(
    slices: &[&EndpointSlice],
    port_name: &str,
    protocol: Protocol,
) -> Vec<PortEndpoint> {
    let mut out = Vec::new();
    for slice in slices {
        let Some(target) = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or_default() == port_name
                && Protocol::from_k8s(p.protocol.as_deref()) == Some(protocol)
        }) else {
            continue;
        };
        let Some(port) = target
            .port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
        else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let (ready, serving_terminating) = endpoint_state(endpoint);
            for addr in endpoint
                .addresses
                .iter()
                .filter_map(|a| a.parse::<Ipv4Addr>().ok())
            {
                out.push(PortEndpoint {
                    backend: Backend { addr, port },
                    node: endpoint.node_name.clone(),
                    ready,
                    serving_terminating,
                });
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The endpoints that take traffic among `endpoints`: the ready ones or,
/// when none is ready, the serving terminating ones.
pub fn usable<'a>(
    endpoints: impl Iterator<Item = &'a PortEndpoint> + Clone,
) -> Vec<&'a PortEndpoint> {
    let ready: Vec<_> = endpoints.clone().filter(|e| e.ready).collect();
    if ready.is_empty() {
        endpoints.filter(|e| e.serving_terminating).collect()
    } else {
        ready
    }
}

/// `sessionAffinity: ClientIP`'s timeout in seconds (its
/// `sessionAffinityConfig.clientIP.timeoutSeconds`, or upstream's default
/// when unset or not positive); `None` without affinity.
#[must_use]
pub fn client_ip_affinity(spec: &ServiceSpec) -> Option<u32> {
    (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT_S)
    })
}

/// Whether an endpoint is ready, and whether it is serving while terminating.
fn endpoint_state(endpoint: &Endpoint) -> (bool, bool) {
    let conditions = endpoint.conditions.as_ref();
    let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
    let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
    let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
    (ready, serving && terminating)
}
