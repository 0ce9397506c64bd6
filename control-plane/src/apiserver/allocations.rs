//! `ClusterIP` and `NodePort` allocation kept in the store. Each allocated address or port is
//! one key (`/registry/ipaddresses/<ip>`, as upstream's `IPAddress` objects, and
//! `/registry/sluice/nodeports/<port>`), taken by a create that fails if the key exists, so
//! two API servers sharing a store can never hand out the same value: the store's
//! compare-and-swap decides. The in-memory bitmaps of `alloc.rs` are only a hint for which
//! value to try next; they are rebuilt from the keys at start and whenever they say "full".

use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_store::{Store, StoreError};

use super::alloc::{AllocError, IpAllocator, Ipv4Net, PortAllocator};
use super::status::{ApiError, ApiResult, Cause};
use super::{ApiServer, now};
use crate::registry::Resource;

const IP_PREFIX: &str = "/registry/ipaddresses/";
const PORT_PREFIX: &str = "/registry/sluice/nodeports/";

/// An orphaned allocation (its Service is gone) is released at start only once it is this
/// old, so a create still in flight on another API server keeps its value.
const ORPHAN_AGE: Duration = Duration::from_mins(1);

/// One allocated value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Alloc {
    /// A `ClusterIP`.
    Ip(Ipv4Addr),
    /// A `NodePort`.
    Port(u16),
}

impl Alloc {
    fn key(self) -> String {
        match self {
            Self::Ip(ip) => format!("{IP_PREFIX}{ip}"),
            Self::Port(p) => format!("{PORT_PREFIX}{p}"),
        }
    }
}

/// Who holds an allocation.
struct Owner<'a> {
    ns: &'a str,
    name: &'a str,
    uid: &'a str,
}

fn record(a: Alloc, owner: &Owner<'_>) -> Value {
    let parent =
        json!({"group": "", "resource": "services", "namespace": owner.ns, "name": owner.name});
    let meta = json!({"name": match a { Alloc::Ip(ip) => ip.to_string(), Alloc::Port(p) => p.to_string() },
        "creationTimestamp": now(), "annotations": {"sluice.dev/owner-uid": owner.uid}});
    match a {
        Alloc::Ip(_) => json!({"apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
            "metadata": {"labels": {"ipaddress.kubernetes.io/ip-family": "IPv4",
                "ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io"}, "name": meta["name"],
                "creationTimestamp": meta["creationTimestamp"], "annotations": meta["annotations"]},
            "spec": {"parentRef": parent}}),
        Alloc::Port(_) => json!({"apiVersion": "sluice.dev/v1", "kind": "NodePortAllocation",
            "metadata": meta, "spec": {"parentRef": parent}}),
    }
}

/// The hint bitmaps.
pub(super) struct Allocations {
    ips: Mutex<IpAllocator>,
    ports: Mutex<PortAllocator>,
    cidr: Ipv4Net,
    range: (u16, u16),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The bitmaps are hints: a panic while one was held leaves it usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Allocations {
    pub(super) fn new(cidr: Ipv4Net, range: (u16, u16)) -> Self {
        Self {
            ips: Mutex::new(IpAllocator::new(cidr)),
            ports: Mutex::new(PortAllocator::new(range)),
            cidr,
            range,
        }
    }

    /// Rebuild the hints from the allocation keys.
    async fn refresh(&self, store: &dyn Store) -> ApiResult<()> {
        let ips = store.range(IP_PREFIX, None, None, None).await?;
        let ports = store.range(PORT_PREFIX, None, None, None).await?;
        let mut ip_hint = IpAllocator::new(self.cidr);
        for kv in &ips.kvs {
            if let Ok(ip) = kv.key[IP_PREFIX.len()..].parse::<Ipv4Addr>() {
                let _ = ip_hint.allocate(ip);
            }
        }
        let mut port_hint = PortAllocator::new(self.range);
        for kv in &ports.kvs {
            if let Ok(p) = kv.key[PORT_PREFIX.len()..].parse::<u16>() {
                let _ = port_hint.allocate(p);
            }
        }
        *lock(&self.ips) = ip_hint;
        *lock(&self.ports) = port_hint;
        Ok(())
    }
}

fn service_values(svc: &Value) -> Vec<Alloc> {
    let mut out = Vec::new();
    if let Some(ip) = svc["spec"]["clusterIP"]
        .as_str()
        .and_then(|s| s.parse().ok())
    {
        out.push(Alloc::Ip(ip));
    }
    for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
        if let Some(np) = p["nodePort"].as_u64().and_then(|n| u16::try_from(n).ok()) {
            out.push(Alloc::Port(np));
        }
    }
    if let Some(hc) = health_check_port(svc) {
        out.push(Alloc::Port(hc));
    }
    out
}

/// `spec.healthCheckNodePort` (0 and absent alike: none).
fn health_check_port(svc: &Value) -> Option<u16> {
    svc["spec"]["healthCheckNodePort"]
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n != 0)
}

/// Upstream's `needsHealthCheck`: a `LoadBalancer` that keeps traffic on the node it arrives
/// at (`externalTrafficPolicy: Local`) gets a health-check port for the load balancer to
/// probe.
fn needs_health_check(svc: &Value) -> bool {
    svc["spec"]["type"] == "LoadBalancer" && svc["spec"]["externalTrafficPolicy"] == "Local"
}

fn is_services(r: &Resource) -> bool {
    r.group.is_empty() && r.plural == "services"
}

impl ApiServer {
    /// Take one specific value: `Ok(false)` if someone holds it.
    async fn take(&self, a: Alloc, owner: &Owner<'_>) -> ApiResult<bool> {
        let body = serde_json::to_vec(&record(a, owner)).expect("JSON values serialize");
        match self.store.create(&a.key(), body.into()).await {
            Ok(_) => Ok(true),
            Err(StoreError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The next free value the hints suggest that the store grants.
    async fn take_next(&self, ip: bool, owner: &Owner<'_>) -> ApiResult<Alloc> {
        let mut refreshed = false;
        loop {
            let candidate = if ip {
                lock(&self.allocations.ips).allocate_next().map(Alloc::Ip)
            } else {
                lock(&self.allocations.ports)
                    .allocate_next()
                    .map(Alloc::Port)
            };
            match candidate {
                Ok(a) => {
                    if self.take(a, owner).await? {
                        return Ok(a);
                    }
                    // Taken by another server: the hint now marks it; try the next one.
                }
                Err(e) if refreshed => {
                    let what = if ip { "a serviceIP" } else { "a nodePort" };
                    return Err(ApiError::internal(format!(
                        "failed to allocate {what}: {e}"
                    )));
                }
                Err(_) => {
                    // Values may have been released elsewhere: reread the keys once.
                    self.allocations.refresh(self.store.as_ref()).await?;
                    refreshed = true;
                }
            }
        }
    }

    /// Allocate the `ClusterIP` and `NodePorts` a Service needs (nothing for other
    /// resources); returns what was newly taken, to release if the write fails.
    pub(super) async fn allocate(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> ApiResult<Vec<Alloc>> {
        if !is_services(r) {
            return Ok(Vec::new());
        }
        let uid = obj["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let owner = Owner {
            ns: ns.unwrap_or_default(),
            name,
            uid: &uid,
        };
        let mut taken = Vec::new();
        let result = self.allocate_into(obj, old, &owner, &mut taken).await;
        if result.is_err() {
            self.release(&taken).await;
        }
        result.map(|()| taken)
    }

    async fn allocate_into(
        &self,
        obj: &mut Value,
        old: Option<&Value>,
        owner: &Owner<'_>,
        taken: &mut Vec<Alloc>,
    ) -> ApiResult<()> {
        let invalid = |field: &str, v: &Value, e: &dyn std::fmt::Display| {
            ApiError::invalid(
                "",
                "Service",
                owner.name,
                vec![Cause::invalid(field, v, &e.to_string())],
            )
        };
        if let Some(old) = old
            && obj["spec"]["clusterIP"].is_null()
        {
            obj["spec"]["clusterIP"] = old["spec"]["clusterIP"].clone();
            obj["spec"]["clusterIPs"] = old["spec"]["clusterIPs"].clone();
        }
        let ty = obj["spec"]["type"]
            .as_str()
            .unwrap_or("ClusterIP")
            .to_string();
        if ty != "ExternalName" && old.is_none() {
            let ip_field = obj["spec"]["clusterIP"].clone();
            match ip_field.as_str() {
                Some("None") => obj["spec"]["clusterIPs"] = json!(["None"]),
                Some(s) if !s.is_empty() => {
                    let ip: Ipv4Addr = s.parse().map_err(|_| {
                        invalid("spec.clusterIP", &ip_field, &"must be a valid IP address")
                    })?;
                    // Range check through the hint, then the store decides.
                    let mut probe = IpAllocator::new(self.allocations.cidr);
                    probe
                        .allocate(ip)
                        .map_err(|e| invalid("spec.clusterIPs[0]", &ip_field, &e))?;
                    if !self.take(Alloc::Ip(ip), owner).await? {
                        return Err(invalid(
                            "spec.clusterIPs[0]",
                            &ip_field,
                            &AllocError::InUse { what: "IP" },
                        ));
                    }
                    let _ = lock(&self.allocations.ips).allocate(ip);
                    taken.push(Alloc::Ip(ip));
                    obj["spec"]["clusterIPs"] = json!([s]);
                }
                _ => {
                    let a = self.take_next(true, owner).await?;
                    taken.push(a);
                    if let Alloc::Ip(ip) = a {
                        obj["spec"]["clusterIP"] = json!(ip.to_string());
                        obj["spec"]["clusterIPs"] = json!([ip.to_string()]);
                    }
                }
            }
        }
        let needs_node_ports = ty == "NodePort" || ty == "LoadBalancer";
        let old_ports: Vec<u16> = old
            .map(service_values)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|a| match a {
                Alloc::Port(p) => Some(p),
                Alloc::Ip(_) => None,
            })
            .collect();
        let count = obj["spec"]["ports"].as_array().map_or(0, Vec::len);
        for i in 0..count {
            let p = &mut obj["spec"]["ports"][i];
            if !needs_node_ports {
                if let Some(m) = p.as_object_mut() {
                    m.remove("nodePort");
                }
                continue;
            }
            match p["nodePort"]
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0)
            {
                Some(np) if old_ports.contains(&np) => {}
                Some(np) => {
                    self.take_port(np, &format!("spec.ports[{i}].nodePort"), owner, taken)
                        .await?;
                }
                None => {
                    let a = self.take_next(false, owner).await?;
                    taken.push(a);
                    if let Alloc::Port(np) = a {
                        obj["spec"]["ports"][i]["nodePort"] = json!(np);
                    }
                }
            }
        }
        self.allocate_health_check(obj, old, owner, taken).await
    }

    /// Takes the port a Service asked for at `field`: 422 when it is outside the range or
    /// held by someone else.
    async fn take_port(
        &self,
        port: u16,
        field: &str,
        owner: &Owner<'_>,
        taken: &mut Vec<Alloc>,
    ) -> ApiResult<()> {
        let invalid = |e: &dyn std::fmt::Display| {
            ApiError::invalid(
                "",
                "Service",
                owner.name,
                vec![Cause::invalid(field, &json!(port), &e.to_string())],
            )
        };
        let mut probe = PortAllocator::new(self.allocations.range);
        probe.allocate(port).map_err(|e| invalid(&e))?;
        if !self.take(Alloc::Port(port), owner).await? {
            return Err(invalid(&AllocError::InUse { what: "port" }));
        }
        let _ = lock(&self.allocations.ports).allocate(port);
        taken.push(Alloc::Port(port));
        Ok(())
    }

    /// `spec.healthCheckNodePort`, as upstream: allocated from the `NodePort` range when the
    /// Service needs one (and it names none), the one asked for taken when free, the old one
    /// kept across updates, and dropped (so released) when no longer needed.
    async fn allocate_health_check(
        &self,
        obj: &mut Value,
        old: Option<&Value>,
        owner: &Owner<'_>,
        taken: &mut Vec<Alloc>,
    ) -> ApiResult<()> {
        let field = "spec.healthCheckNodePort";
        if !needs_health_check(obj) {
            // Left over from before the change that made it unneeded: dropped with it
            // (upstream's `dropTypeDependentFields`); asked for anew: invalid.
            if let Some(port) = health_check_port(obj)
                && old.and_then(health_check_port) != Some(port)
            {
                return Err(ApiError::invalid(
                    "",
                    "Service",
                    owner.name,
                    vec![Cause::invalid(
                        field,
                        &json!(port),
                        "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
                    )],
                ));
            }
            if let Some(spec) = obj["spec"].as_object_mut() {
                spec.remove("healthCheckNodePort");
            }
            return Ok(());
        }
        let previous = old
            .filter(|o| needs_health_check(o))
            .and_then(health_check_port);
        match (health_check_port(obj), previous) {
            (Some(port), Some(before)) if port == before => Ok(()),
            (Some(port), _) => self.take_port(port, field, owner, taken).await,
            (None, Some(before)) => {
                obj["spec"]["healthCheckNodePort"] = json!(before);
                Ok(())
            }
            (None, None) => {
                let a = self.take_next(false, owner).await?;
                taken.push(a);
                if let Alloc::Port(port) = a {
                    obj["spec"]["healthCheckNodePort"] = json!(port);
                }
                Ok(())
            }
        }
    }

    /// Give values back (a failed write, a deleted Service).
    pub(super) async fn release(&self, allocs: &[Alloc]) {
        for a in allocs {
            if let Err(e) = self.store.delete(&a.key(), None).await
                && !matches!(e, StoreError::NotFound { .. })
            {
                tracing::warn!(error = %e, key = %a.key(), "releasing an allocation failed; start-up repair frees it");
            }
            match a {
                Alloc::Ip(ip) => lock(&self.allocations.ips).release(*ip),
                Alloc::Port(p) => lock(&self.allocations.ports).release(*p),
            }
        }
    }

    /// After an update: values the old object held and the new one does not go back.
    pub(super) async fn release_dropped(&self, r: &Resource, old: &Value, new: &Value) {
        if !is_services(r) {
            return;
        }
        let keep = service_values(new);
        let gone: Vec<Alloc> = service_values(old)
            .into_iter()
            .filter(|a| !keep.contains(a))
            .collect();
        self.release(&gone).await;
    }

    /// Bookkeeping once an object has left the store.
    pub(super) async fn on_removed(&self, r: &Resource, obj: &Value) {
        if is_services(r) {
            self.release(&service_values(obj)).await;
        }
    }

    /// At start: every stored Service's values have their keys (stores written before the
    /// keys existed, or a crash between the two writes), keys whose Service is gone for longer
    /// than [`ORPHAN_AGE`] are released, and the hints are rebuilt.
    pub(super) async fn repair_allocations(&self) -> ApiResult<()> {
        let svc_r = self.resource("", "v1", "services");
        let services = self
            .store
            .range(&svc_r.key_prefix(), None, None, None)
            .await?;
        let mut held = std::collections::HashMap::new();
        for kv in &services.kvs {
            let svc = super::decorate(&svc_r, kv)?;
            let m = &svc["metadata"];
            let (ns, name, uid) = (
                m["namespace"].as_str().unwrap_or_default(),
                m["name"].as_str().unwrap_or_default(),
                m["uid"].as_str().unwrap_or_default(),
            );
            for a in service_values(&svc) {
                let _ = self.take(a, &Owner { ns, name, uid }).await?;
                held.insert(a.key(), uid.to_string());
            }
        }
        let cutoff = k8s_openapi::jiff::Timestamp::now().as_second()
            - i64::try_from(ORPHAN_AGE.as_secs()).unwrap_or(60);
        for prefix in [IP_PREFIX, PORT_PREFIX] {
            for kv in &self.store.range(prefix, None, None, None).await?.kvs {
                if held.contains_key(&kv.key) {
                    continue;
                }
                let rec: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
                let created = rec["metadata"]["creationTimestamp"]
                    .as_str()
                    .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
                    .map_or(i64::MIN, k8s_openapi::jiff::Timestamp::as_second);
                if created < cutoff {
                    let _ = self.store.delete(&kv.key, Some(kv.mod_revision)).await;
                }
            }
        }
        self.allocations.refresh(self.store.as_ref()).await
    }
}
