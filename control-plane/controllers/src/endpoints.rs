//! The endpoints controller: `EndpointSlices` (discovery.k8s.io/v1) and the legacy v1 Endpoints
//! for every Service with a selector.
//!
//! `desired_slices` / `desired_endpoints` are pure functions of (service, pods); `plan_slices`
//! diffs the desired slices against the existing ones. A reconcile that finds nothing to change
//! writes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort as CorePort, EndpointSubset, Endpoints, ObjectReference, Pod,
    Service,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::common::{self, Backoffs};

/// Label naming the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Our value for [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// Why an endpoints reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    /// An API call failed.
    #[error("{action} for service {service}: {source}")]
    Api {
        /// What we were doing.
        action: &'static str,
        /// `namespace/name`.
        service: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

/// The content of one `EndpointSlice`: a port set and the endpoints that serve it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DesiredSlice {
    /// Ports, in the Service's order.
    pub ports: Vec<EndpointPort>,
    /// Endpoints, sorted by address.
    pub endpoints: Vec<Endpoint>,
}

fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())
}

/// Whether the controller manages this Service at all (it has a non-empty selector and is not
/// an `ExternalName` service).
#[must_use]
pub fn manages(svc: &Service) -> bool {
    selector(svc).is_some()
        && svc.spec.as_ref().and_then(|s| s.type_.as_deref()) != Some("ExternalName")
}

fn selects(svc: &Service, pod: &Pod) -> bool {
    if pod.namespace() != svc.namespace() {
        return false;
    }
    let empty = BTreeMap::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    selector(svc).is_some_and(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

fn pod_ip(pod: &Pod) -> Option<&str> {
    pod.status
        .as_ref()?
        .pod_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
}

/// The pod's ports for the service: one `(name, port, protocol, appProtocol)` per service port
/// the pod can serve. A named targetPort the pod lacks is left out.
fn resolve_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let mut out = Vec::new();
    for sp in svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
    {
        let protocol = sp.protocol.clone().unwrap_or_else(|| "TCP".into());
        let port = match &sp.target_port {
            None => Some(sp.port),
            Some(IntOrString::Int(p)) => Some(*p),
            Some(IntOrString::String(name)) => pod
                .spec
                .as_ref()
                .into_iter()
                .flat_map(|s| s.containers.iter())
                .flat_map(|c| c.ports.iter().flatten())
                .find(|cp| {
                    cp.name.as_deref() == Some(name)
                        && cp.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|cp| cp.container_port)
                .or_else(|| name.parse().ok()),
        };
        if let Some(port) = port {
            out.push(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(protocol),
                app_protocol: sp.app_protocol.clone(),
            });
        }
    }
    out
}

fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        == Some(true)
}

fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.namespace(),
        name: Some(pod.name_any()),
        uid: pod.uid(),
        ..ObjectReference::default()
    }
}

fn node_name(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
}

/// A port set, comparable: `(name, port, protocol)` per port.
type PortKey = Vec<(String, i32, String)>;
/// Ports, ready addresses, not-ready addresses of one v1 subset.
type SubsetParts = (
    Vec<EndpointPort>,
    Vec<EndpointAddress>,
    Vec<EndpointAddress>,
);

fn port_key(ports: &[EndpointPort]) -> PortKey {
    ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or(0),
                p.protocol.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// The endpoint hostname upstream publishes (`ShouldSetHostname`): the pod's
/// `spec.hostname` when its `spec.subdomain` names this Service in the same namespace, so
/// DNS answers `<hostname>.<service>.<ns>.svc`.
fn published_hostname(svc: &Service, pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        && pod.metadata.namespace == svc.metadata.namespace)
        .then(|| hostname.to_string())
}

/// The slices the Service should have: one per distinct port set, endpoints sorted by address.
/// Terminating pods are included (ready=false, terminating=true); terminal and IP-less pods are
/// not. With no endpoints at all, one empty placeholder slice remains.
#[must_use]
pub fn desired_slices(svc: &Service, pods: &[Pod]) -> Vec<DesiredSlice> {
    let mut groups: BTreeMap<PortKey, DesiredSlice> = BTreeMap::new();
    for pod in pods
        .iter()
        .filter(|p| selects(svc, p) && !common::pod_is_terminal(p))
    {
        let Some(ip) = pod_ip(pod) else { continue };
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let serving = common::pod_is_ready(pod) || publish_not_ready(svc);
        let ports = resolve_ports(svc, pod);
        let slice = groups
            .entry(port_key(&ports))
            .or_insert_with(|| DesiredSlice {
                ports,
                endpoints: Vec::new(),
            });
        slice.endpoints.push(Endpoint {
            addresses: vec![ip.to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(serving && (!terminating || publish_not_ready(svc))),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            node_name: node_name(pod),
            target_ref: Some(target_ref(pod)),
            hostname: published_hostname(svc, pod),
            ..Endpoint::default()
        });
    }
    let mut out: Vec<DesiredSlice> = groups.into_values().collect();
    for s in &mut out {
        s.endpoints.sort_by(|a, b| a.addresses.cmp(&b.addresses));
    }
    if out.is_empty() {
        out.push(DesiredSlice::default());
    }
    out
}

/// The v1 Endpoints subsets: one per distinct port set, ready addresses in `addresses`, the
/// rest in `notReadyAddresses`. Terminating pods are left out.
#[must_use]
pub fn desired_subsets(svc: &Service, pods: &[Pod]) -> Option<Vec<EndpointSubset>> {
    let mut groups: BTreeMap<PortKey, SubsetParts> = BTreeMap::new();
    for pod in pods
        .iter()
        .filter(|p| selects(svc, p) && !common::pod_is_terminal(p))
    {
        let Some(ip) = pod_ip(pod) else { continue };
        if pod.metadata.deletion_timestamp.is_some() && !publish_not_ready(svc) {
            continue;
        }
        let ports = resolve_ports(svc, pod);
        let entry = groups
            .entry(port_key(&ports))
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        let addr = EndpointAddress {
            ip: ip.to_string(),
            node_name: node_name(pod),
            target_ref: Some(target_ref(pod)),
            hostname: None,
        };
        if common::pod_is_ready(pod) || publish_not_ready(svc) {
            entry.1.push(addr);
        } else {
            entry.2.push(addr);
        }
    }
    let subsets: Vec<EndpointSubset> = groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            let ports: Vec<CorePort> = ports
                .into_iter()
                .map(|p| CorePort {
                    name: p.name.filter(|n| !n.is_empty()),
                    port: p.port.unwrap_or(0),
                    protocol: p.protocol,
                    app_protocol: p.app_protocol,
                })
                .collect();
            EndpointSubset {
                addresses: Some(ready).filter(|v| !v.is_empty()),
                not_ready_addresses: Some(not_ready).filter(|v| !v.is_empty()),
                ports: Some(ports).filter(|v| !v.is_empty()),
            }
        })
        .collect();
    Some(subsets).filter(|s| !s.is_empty())
}

fn norm_subsets(subsets: Option<&Vec<EndpointSubset>>) -> Vec<EndpointSubset> {
    subsets
        .into_iter()
        .flatten()
        .map(|s| EndpointSubset {
            addresses: s.addresses.clone().filter(|v| !v.is_empty()),
            not_ready_addresses: s.not_ready_addresses.clone().filter(|v| !v.is_empty()),
            ports: s.ports.clone().filter(|v| !v.is_empty()),
        })
        .collect()
}

/// What to do to the existing slices.
#[derive(Debug, Default, PartialEq)]
pub struct SlicePlan {
    /// Slices to create.
    pub create: Vec<DesiredSlice>,
    /// Existing slices (by name) to overwrite with new content.
    pub update: Vec<(String, DesiredSlice)>,
    /// Existing slices to delete.
    pub delete: Vec<String>,
}

impl SlicePlan {
    /// Nothing to do.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

fn slice_content(s: &EndpointSlice) -> DesiredSlice {
    let mut endpoints = s.endpoints.clone();
    endpoints.sort_by(|a, b| a.addresses.cmp(&b.addresses));
    DesiredSlice {
        ports: s.ports.clone().unwrap_or_default(),
        endpoints,
    }
}

fn labels_ok(s: &EndpointSlice, svc_name: &str) -> bool {
    let l = s.labels();
    l.get(SERVICE_NAME_LABEL).map(String::as_str) == Some(svc_name)
        && l.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
        && s.address_type == "IPv4"
}

/// Diffs desired slices against existing ones: same port set and content is left alone, an
/// existing slice is reused (updated) before a new one is created, leftovers are deleted.
#[must_use]
pub fn plan_slices(
    svc_name: &str,
    desired: Vec<DesiredSlice>,
    existing: &[EndpointSlice],
) -> SlicePlan {
    let mut plan = SlicePlan::default();
    let mut unused: Vec<&EndpointSlice> = existing
        .iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .collect();
    let mut pending = Vec::new();
    for want in desired {
        if let Some(i) = unused
            .iter()
            .position(|s| slice_content(s) == want && labels_ok(s, svc_name))
        {
            unused.remove(i);
        } else {
            pending.push(want);
        }
    }
    for want in pending {
        let same_ports = unused
            .iter()
            .position(|s| port_key(&slice_content(s).ports) == port_key(&want.ports));
        match same_ports.or(if unused.is_empty() { None } else { Some(0) }) {
            Some(i) => {
                let s = unused.remove(i);
                plan.update.push((s.name_any(), want));
            }
            None => plan.create.push(want),
        }
    }
    plan.delete = unused.iter().map(|s| s.name_any()).collect();
    plan
}

fn slice_object(svc: &Service, content: DesiredSlice) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", svc.name_any())),
            namespace: svc.namespace(),
            labels: Some(BTreeMap::from([
                (SERVICE_NAME_LABEL.to_string(), svc.name_any()),
                (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
            ])),
            owner_references: Some(vec![common::controller_ref(svc)]),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: content.endpoints,
        ports: Some(content.ports),
    }
}

/// The v1 Endpoints object for the service.
#[must_use]
pub fn desired_endpoints(svc: &Service, pods: &[Pod]) -> Endpoints {
    Endpoints {
        metadata: ObjectMeta {
            name: Some(svc.name_any()),
            namespace: svc.namespace(),
            labels: svc.metadata.labels.clone(),
            owner_references: Some(vec![common::controller_ref(svc)]),
            ..ObjectMeta::default()
        },
        subsets: desired_subsets(svc, pods),
    }
}

struct Ctx {
    client: Client,
    backoffs: Backoffs,
    resync: Duration,
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, EndpointsError> {
    if !manages(&svc) || svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let key = format!("{ns}/{name}");
    let err = |action: &'static str| {
        let service = key.clone();
        move |source| EndpointsError::Api {
            action,
            service,
            source,
        }
    };
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let sel = selector(&svc).cloned().unwrap_or_default();
    let pods = pods_api
        .list(&ListParams::default().labels(&common::labels_to_selector(&sel)))
        .await
        .map_err(err("list pods"))?
        .items;

    let slices_api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let lp = ListParams::default().labels(&format!(
        "{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={MANAGED_BY}"
    ));
    let existing = slices_api
        .list(&lp)
        .await
        .map_err(err("list endpointslices"))?
        .items;
    let plan = plan_slices(&name, desired_slices(&svc, &pods), &existing);
    for content in plan.create {
        slices_api
            .create(&PostParams::default(), &slice_object(&svc, content))
            .await
            .map_err(err("create endpointslice"))?;
    }
    for (slice_name, content) in plan.update {
        let Some(old) = existing.iter().find(|s| s.name_any() == slice_name) else {
            continue;
        };
        let mut obj = slice_object(&svc, content);
        obj.metadata = ObjectMeta {
            generate_name: None,
            ..old.metadata.clone()
        };
        let labels = obj.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
        labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
        slices_api
            .replace(&slice_name, &PostParams::default(), &obj)
            .await
            .map_err(err("update endpointslice"))?;
    }
    for slice_name in plan.delete {
        match slices_api
            .delete(&slice_name, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(e) if common::is_not_found(&e) => {}
            Err(e) => return Err(err("delete endpointslice")(e)),
        }
    }

    let ep_api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    let want = desired_endpoints(&svc, &pods);
    match ep_api.get_opt(&name).await.map_err(err("get endpoints"))? {
        None => {
            ep_api
                .create(&PostParams::default(), &want)
                .await
                .map_err(err("create endpoints"))?;
        }
        Some(old) => {
            let same = norm_subsets(old.subsets.as_ref()) == norm_subsets(want.subsets.as_ref())
                && old.metadata.labels.clone().unwrap_or_default()
                    == want.metadata.labels.clone().unwrap_or_default();
            if !same {
                let mut obj = want;
                let owners = obj.metadata.owner_references.take();
                obj.metadata = ObjectMeta {
                    labels: obj.metadata.labels,
                    ..old.metadata.clone()
                };
                if obj.metadata.owner_references.is_none() {
                    obj.metadata.owner_references = owners;
                }
                ep_api
                    .replace(&name, &PostParams::default(), &obj)
                    .await
                    .map_err(err("update endpoints"))?;
            }
        }
    }
    ctx.backoffs.reset(&key);
    Ok(Action::requeue(ctx.resync))
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "kube's Controller::run passes the object and the context by value"
)]
fn error_policy(svc: Arc<Service>, err: &EndpointsError, ctx: Arc<Ctx>) -> Action {
    common::error_policy(svc.as_ref(), err, &ctx.backoffs, "endpoints")
}

/// Runs the endpoints controller until dropped.
pub async fn run(client: Client, config: crate::Config) {
    let controller = Controller::new(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let services = controller.store();
    let controller = controller
        .owns(
            Api::<EndpointSlice>::all(client.clone()),
            watcher::Config::default(),
        )
        .owns(
            Api::<Endpoints>::all(client.clone()),
            watcher::Config::default(),
        )
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            move |pod: Pod| {
                services
                    .state()
                    .into_iter()
                    .filter(|svc| manages(svc) && selects(svc, &pod))
                    .map(|svc| ObjectRef::from_obj(svc.as_ref()))
                    .collect::<Vec<_>>()
            },
        );
    let ctx = Arc::new(Ctx {
        client,
        backoffs: Backoffs::default(),
        resync: config.resync,
    });
    common::drain("endpoints", controller.run(reconcile, error_policy, ctx)).await;
}

#[cfg(test)]
mod tests;
