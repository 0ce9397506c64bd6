//! The cluster zone in memory, and the pure [`answer`] that serves it.
//!
//! [`Records`] holds, per Service, only what its records are made of
//! ([`ServiceRecords`]: cluster IPs and named ports, ready endpoint addresses
//! with their hostnames, or an `ExternalName`), plus a reverse index from IP to
//! PTR target. Resource records are built when a query asks for them, so an
//! update replaces one Service's entry and touches nothing else.
//!
//! Names, after the Kubernetes DNS specification (schema 1.1.0), with
//! `<zone>` the cluster domain:
//!
//! | name | records |
//! | --- | --- |
//! | `<zone>` | SOA, NS `ns.dns.<zone>` |
//! | `dns-version.<zone>` | TXT `"1.1.0"` |
//! | `svc.<zone>`, `pod.<zone>` | none (they exist: NODATA) |
//! | `<ns>.svc.<zone>`, `<ns>.pod.<zone>` | none; exist while the namespace does |
//! | `<svc>.<ns>.svc.<zone>` | `ClusterIP`: A/AAAA of the cluster IPs; headless: A/AAAA of every ready endpoint address (no ready endpoint: NXDOMAIN); `ExternalName`: CNAME |
//! | `<host>.<svc>.<ns>.svc.<zone>` | headless only: A/AAAA of the ready endpoints with that hostname (`hostname`, else the address with `.`/`:` as `-`) |
//! | `_<port>._<proto>.<svc>.<ns>.svc.<zone>` | SRV per named port: `ClusterIP` -> `<svc>.<ns>.svc.<zone>` at the service port; headless -> one per ready endpoint, `<host>.<svc>.<ns>.svc.<zone>` at the endpoint's port; targets' A/AAAA in the additional section |
//! | `_<proto>.<svc>.<ns>.svc.<zone>` | none (empty non-terminal: NODATA) |
//! | `<a>-<b>-<c>-<d>.<ns>.pod.<zone>` | A `<a>.<b>.<c>.<d>` (any address, in an existing namespace; IPv6 with `-` for `:` gives AAAA) |
//! | `<d>.<c>.<b>.<a>.in-addr.arpa`, `… .ip6.arpa` | PTR for cluster IPs and headless ready endpoint addresses; other addresses are not ours (forwarded) |
//!
//! A name that exists with no record of the asked type is NODATA (NOERROR, no
//! answer); a name under the zone that does not exist is NXDOMAIN; both carry
//! the zone's SOA in the authority section, whose minimum is the TTL. Before
//! the caches have listed everything ([`Records::set_synced`]), NXDOMAIN is
//! answered as SERVFAIL, so clients do not cache a negative answer for a
//! Service that merely has not been seen yet (as `CoreDNS` does).
//!
//! The headless SRV port is the `EndpointSlice`'s (the port the pod listens
//! on, which nothing translates for a headless Service), as `CoreDNS` serves it;
//! it equals the service port whenever `targetPort` does.

#[cfg(test)]
pub(super) mod tests;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_server::proto::ProtoError;
use hickory_server::proto::op::{Query, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_server::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::proxy::desired::SERVICE_NAME_LABEL;

/// The schema version served as `dns-version.<zone>` TXT.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// The annotation that publishes not-ready endpoints (older form of
/// `spec.publishNotReadyAddresses`).
pub const TOLERATE_UNREADY_ANNOTATION: &str =
    "service.alpha.kubernetes.io/tolerate-unready-endpoints";

/// How many in-zone CNAMEs [`answer`] follows before giving up.
const MAX_CNAME_CHAIN: usize = 8;

/// A Service's identity: namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceName {
    /// The namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
}

impl ServiceName {
    /// `namespace/name`.
    #[must_use]
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The identity of `service`, if it has a namespace and a name.
    #[must_use]
    pub fn of(service: &Service) -> Option<Self> {
        Some(Self::new(
            service.metadata.namespace.as_deref()?,
            service.metadata.name.as_deref()?,
        ))
    }
}

/// A named service port, as an SRV record needs it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NamedPort {
    /// The port's name, lowercased (the `_<port>` label without `_`).
    pub name: String,
    /// The protocol, lowercased (`tcp`, `udp`, `sctp`).
    pub protocol: String,
    /// The port number the SRV record names.
    pub port: u16,
}

/// What one Service's records are made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceRecords {
    /// A Service with cluster IPs.
    ClusterIp {
        /// The cluster IPs (IPv4 and IPv6), sorted.
        ips: Vec<IpAddr>,
        /// Its named ports.
        ports: BTreeSet<NamedPort>,
    },
    /// A headless Service.
    Headless {
        /// `(hostname, address)` of every ready endpoint address.
        addrs: BTreeSet<(String, IpAddr)>,
        /// `(port, hostname)` of every ready endpoint and named slice port.
        srv: BTreeSet<(NamedPort, String)>,
    },
    /// An `ExternalName` Service: a CNAME to this name.
    ExternalName(Name),
}

impl ServiceRecords {
    /// What `service` publishes, given the `EndpointSlices` of its namespace
    /// that name it (others are ignored). `None` when it publishes nothing
    /// (no spec, or an `ExternalName` that is no domain name).
    #[must_use]
    pub fn compile<'a>(
        service: &Service,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> Option<Self> {
        let spec = service.spec.as_ref()?;
        if spec.type_.as_deref() == Some("ExternalName") {
            let target = spec.external_name.as_deref()?.trim_end_matches('.');
            let mut target = Name::from_ascii(target).ok()?.to_lowercase();
            if target.is_root() {
                return None;
            }
            target.set_fqdn(true);
            return Some(Self::ExternalName(target));
        }
        let mut ips: Vec<IpAddr> = match spec.cluster_ips.as_deref() {
            Some(ips) if !ips.is_empty() => ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
            _ => spec
                .cluster_ip
                .as_deref()
                .and_then(|ip| ip.parse().ok())
                .into_iter()
                .collect(),
        };
        ips.retain(|ip| !ip.is_unspecified());
        ips.sort_unstable();
        ips.dedup();
        if !ips.is_empty() {
            let ports = spec
                .ports
                .iter()
                .flatten()
                .filter_map(|p| named_port(p.name.as_deref(), p.protocol.as_deref(), p.port))
                .collect();
            return Some(Self::ClusterIp { ips, ports });
        }

        let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
        let name = service.metadata.name.as_deref().unwrap_or_default();
        let publish_unready = spec.publish_not_ready_addresses == Some(true)
            || service
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(TOLERATE_UNREADY_ANNOTATION))
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let mut addrs = BTreeSet::new();
        let mut srv = BTreeSet::new();
        for slice in slices {
            let owner = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL));
            if owner.map(String::as_str) != Some(name)
                || slice.metadata.namespace.as_deref().unwrap_or_default() != namespace
                || !matches!(slice.address_type.as_str(), "IPv4" | "IPv6")
            {
                continue;
            }
            let ports: Vec<NamedPort> = slice
                .ports
                .iter()
                .flatten()
                .filter_map(|p| named_port(p.name.as_deref(), p.protocol.as_deref(), p.port?))
                .collect();
            for endpoint in &slice.endpoints {
                let ready = endpoint
                    .conditions
                    .as_ref()
                    .and_then(|c| c.ready)
                    .unwrap_or(true);
                if !ready && !publish_unready {
                    continue;
                }
                let hostname = endpoint
                    .hostname
                    .as_deref()
                    .map(str::to_ascii_lowercase)
                    .filter(|h| is_label(h));
                for ip in endpoint
                    .addresses
                    .iter()
                    .filter_map(|a| a.parse::<IpAddr>().ok())
                {
                    let host = hostname.clone().unwrap_or_else(|| dashed(ip));
                    for port in &ports {
                        srv.insert((port.clone(), host.clone()));
                    }
                    addrs.insert((host, ip));
                }
            }
        }
        Some(Self::Headless { addrs, srv })
    }

    /// `(address, PTR target)` pairs of this Service named `fqdn`.
    fn ptrs(&self, fqdn: &Name) -> Vec<(IpAddr, Name)> {
        match self {
            Self::ClusterIp { ips, .. } => ips.iter().map(|ip| (*ip, fqdn.clone())).collect(),
            Self::Headless { addrs, .. } => addrs
                .iter()
                .filter_map(|(host, ip)| Some((*ip, fqdn.prepend_label(host.as_str()).ok()?)))
                .collect(),
            Self::ExternalName(_) => Vec::new(),
        }
    }

    /// The records at the name `rest` (labels below the Service's name, the
    /// closest first) under the Service named `fqdn`; `None` when no such name
    /// exists.
    fn node(&self, rest: &[&str], fqdn: &Name) -> Option<Vec<RData>> {
        match (self, rest) {
            (Self::ExternalName(target), []) => Some(vec![RData::CNAME(CNAME(target.clone()))]),
            (Self::ClusterIp { ips, .. }, []) => {
                Some(ips.iter().map(|ip| addr_rdata(*ip)).collect())
            }
            (Self::Headless { addrs, .. }, []) if !addrs.is_empty() => {
                let ips: BTreeSet<IpAddr> = addrs.iter().map(|(_, ip)| *ip).collect();
                Some(ips.into_iter().map(addr_rdata).collect())
            }
            (Self::ClusterIp { ports, .. }, [proto]) if proto.starts_with('_') => ports
                .iter()
                .any(|p| p.protocol == proto[1..])
                .then(Vec::new),
            (Self::Headless { srv, .. }, [proto]) if proto.starts_with('_') => srv
                .iter()
                .any(|(p, _)| p.protocol == proto[1..])
                .then(Vec::new),
            (Self::Headless { addrs, .. }, [host]) => {
                let ips: Vec<RData> = addrs
                    .iter()
                    .filter(|(h, _)| h == host)
                    .map(|(_, ip)| addr_rdata(*ip))
                    .collect();
                (!ips.is_empty()).then_some(ips)
            }
            (Self::ClusterIp { ports, .. }, [proto, port]) => {
                let (Some(proto), Some(port)) = (proto.strip_prefix('_'), port.strip_prefix('_'))
                else {
                    return None;
                };
                let matching: Vec<&NamedPort> = ports
                    .iter()
                    .filter(|p| p.protocol == proto && p.name == port)
                    .collect();
                let weight = srv_weight(matching.len());
                let records: Vec<RData> = matching
                    .into_iter()
                    .map(|p| RData::SRV(SRV::new(0, weight, p.port, fqdn.clone())))
                    .collect();
                (!records.is_empty()).then_some(records)
            }
            (Self::Headless { srv, .. }, [proto, port]) => {
                let (Some(proto), Some(port)) = (proto.strip_prefix('_'), port.strip_prefix('_'))
                else {
                    return None;
                };
                let matching: Vec<&(NamedPort, String)> = srv
                    .iter()
                    .filter(|(p, _)| p.protocol == proto && p.name == port)
                    .collect();
                let weight = srv_weight(matching.len());
                let records: Vec<RData> = matching
                    .into_iter()
                    .filter_map(|(p, host)| {
                        let target = fqdn.prepend_label(host.as_str()).ok()?;
                        Some(RData::SRV(SRV::new(0, weight, p.port, target)))
                    })
                    .collect();
                (!records.is_empty()).then_some(records)
            }
            _ => None,
        }
    }
}

/// An equal share of 100 for each of `n` SRV records (at least 1).
fn srv_weight(n: usize) -> u16 {
    u16::try_from(100 / n.max(1)).unwrap_or(1).max(1)
}

/// A named port, or `None` for an unnamed or invalid one.
fn named_port(name: Option<&str>, protocol: Option<&str>, port: i32) -> Option<NamedPort> {
    let name = name.filter(|n| !n.is_empty())?.to_ascii_lowercase();
    let port = u16::try_from(port).ok().filter(|p| *p != 0)?;
    Some(NamedPort {
        name,
        protocol: protocol.unwrap_or("TCP").to_ascii_lowercase(),
        port,
    })
}

/// Whether `s` can be one DNS label of a Kubernetes name (RFC 1123, lowercase).
fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The generated hostname of an endpoint without one: its address with the
/// separators as `-` (`10-244-0-5`), as `CoreDNS` names them.
fn dashed(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

/// An A or AAAA record's data.
fn addr_rdata(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(ip) => RData::A(A(ip)),
        IpAddr::V6(ip) => RData::AAAA(AAAA(ip)),
    }
}

/// Every record of the cluster zone, and the reverse names of its addresses.
#[derive(Clone, Debug)]
pub struct Records {
    zone: Name,
    ttl: u32,
    serial: u32,
    synced: bool,
    /// Namespaces known to exist (from Namespace objects).
    namespaces: HashSet<String>,
    /// How many Services each namespace holds (a namespace with a Service exists).
    per_namespace: HashMap<String, usize>,
    services: HashMap<ServiceName, ServiceRecords>,
    reverse: HashMap<IpAddr, BTreeSet<Name>>,
}

impl Records {
    /// An empty zone `cluster_domain` (e.g. `cluster.local`) whose records
    /// live `ttl` seconds. It answers NXDOMAIN as SERVFAIL until
    /// [`set_synced`](Self::set_synced).
    pub fn new(cluster_domain: &str, ttl: u32) -> Result<Self, ProtoError> {
        let mut zone = Name::from_ascii(cluster_domain.trim_end_matches('.'))?.to_lowercase();
        zone.set_fqdn(true);
        Ok(Self {
            zone,
            ttl,
            serial: 1,
            synced: false,
            namespaces: HashSet::new(),
            per_namespace: HashMap::new(),
            services: HashMap::new(),
            reverse: HashMap::new(),
        })
    }

    /// The same zone, TTL and sync state with no namespace and no Service
    /// (to fill before replacing a whole snapshot).
    #[must_use]
    pub fn empty_like(&self) -> Self {
        Self {
            zone: self.zone.clone(),
            ttl: self.ttl,
            serial: self.serial.wrapping_add(1),
            synced: self.synced,
            namespaces: HashSet::new(),
            per_namespace: HashMap::new(),
            services: HashMap::new(),
            reverse: HashMap::new(),
        }
    }

    /// The cluster zone (lowercase, fully qualified).
    #[must_use]
    pub fn zone(&self) -> &Name {
        &self.zone
    }

    /// The TTL of every record.
    #[must_use]
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The SOA serial; it grows with every change.
    #[must_use]
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Whether the caches behind these records have completed their lists.
    #[must_use]
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Marks the records complete (or not): until then NXDOMAIN is SERVFAIL.
    pub fn set_synced(&mut self, synced: bool) {
        self.synced = synced;
    }

    /// How many Services publish records.
    #[must_use]
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// The records of one Service, if it publishes any.
    #[must_use]
    pub fn service(&self, name: &ServiceName) -> Option<&ServiceRecords> {
        self.services.get(name)
    }

    /// Notes that namespace `name` exists (or no longer does).
    pub fn set_namespace(&mut self, name: &str, exists: bool) {
        let changed = if exists {
            self.namespaces.insert(name.to_ascii_lowercase())
        } else {
            self.namespaces.remove(&name.to_ascii_lowercase())
        };
        if changed {
            self.bump();
        }
    }

    /// Sets what Service `name` publishes (`None`: nothing, it is gone).
    /// Returns whether anything changed.
    pub fn set_service(&mut self, name: ServiceName, records: Option<ServiceRecords>) -> bool {
        let mut name = name;
        name.namespace.make_ascii_lowercase();
        name.name.make_ascii_lowercase();
        if self.services.get(&name) == records.as_ref() {
            return false;
        }
        let Ok(fqdn) = self.service_fqdn(&name) else {
            return false;
        };
        if let Some(old) = self.services.remove(&name) {
            for (ip, target) in old.ptrs(&fqdn) {
                if let Some(targets) = self.reverse.get_mut(&ip) {
                    targets.remove(&target);
                    if targets.is_empty() {
                        self.reverse.remove(&ip);
                    }
                }
            }
            if let Some(n) = self.per_namespace.get_mut(&name.namespace) {
                *n -= 1;
                if *n == 0 {
                    self.per_namespace.remove(&name.namespace);
                }
            }
        }
        if let Some(new) = records {
            for (ip, target) in new.ptrs(&fqdn) {
                self.reverse.entry(ip).or_default().insert(target);
            }
            *self
                .per_namespace
                .entry(name.namespace.clone())
                .or_default() += 1;
            self.services.insert(name, new);
        }
        self.bump();
        true
    }

    /// Compiles `service` with `slices` (see [`ServiceRecords::compile`]) and
    /// sets its records. Returns whether anything changed.
    pub fn upsert_service<'a>(
        &mut self,
        service: &Service,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> bool {
        let Some(name) = ServiceName::of(service) else {
            return false;
        };
        let records = ServiceRecords::compile(service, slices);
        self.set_service(name, records)
    }

    fn bump(&mut self) {
        self.serial = self.serial.wrapping_add(1);
    }

    /// `<svc>.<ns>.svc.<zone>`.
    fn service_fqdn(&self, name: &ServiceName) -> Result<Name, ProtoError> {
        Name::from_labels([name.name.as_bytes(), name.namespace.as_bytes(), b"svc"])?
            .append_domain(&self.zone)
    }

    fn namespace_exists(&self, namespace: &str) -> bool {
        self.namespaces.contains(namespace) || self.per_namespace.contains_key(namespace)
    }

    /// The SOA record of `zone`.
    fn soa(&self, zone: &Name) -> Record {
        let mname = Name::from_labels([&b"ns"[..], b"dns"])
            .and_then(|n| n.append_domain(&self.zone))
            .unwrap_or_else(|_| self.zone.clone());
        let rname = self
            .zone
            .prepend_label("hostmaster")
            .unwrap_or_else(|_| self.zone.clone());
        let soa = SOA::new(mname, rname, self.serial, 7200, 1800, 86400, self.ttl);
        Record::from_rdata(zone.clone(), self.ttl, RData::SOA(soa))
    }

    /// What exists at `name`.
    fn lookup(&self, name: &Name) -> Lookup {
        let lower = name.to_lowercase();
        if self.zone.zone_of(&lower) {
            // Every label counts, a leading `*` too (`num_labels` skips it): a
            // wildcard is no name of ours, only a literal label that matches nothing.
            let depth = lower.iter().count() - self.zone.iter().count();
            let mut labels: Vec<&str> = Vec::with_capacity(depth);
            for label in lower.iter().take(depth) {
                let Ok(label) = std::str::from_utf8(label) else {
                    return Lookup::Missing(self.zone.clone());
                };
                labels.push(label);
            }
            labels.reverse();
            return match self.zone_node(&labels) {
                Some(rdata) => Lookup::Exists(rdata, self.zone.clone()),
                None => Lookup::Missing(self.zone.clone()),
            };
        }
        if let Some((ip, zone)) = reverse_ip(&lower)
            && let Some(targets) = self.reverse.get(&ip)
        {
            let rdata = targets.iter().map(|t| RData::PTR(PTR(t.clone()))).collect();
            return Lookup::Exists(rdata, zone);
        }
        Lookup::NotOurs
    }

    /// The records at the in-zone name whose labels are `labels` (closest to
    /// the zone first); `None` when the name does not exist.
    fn zone_node(&self, labels: &[&str]) -> Option<Vec<RData>> {
        match labels {
            [] => {
                let ns = Name::from_labels([&b"ns"[..], b"dns"])
                    .and_then(|n| n.append_domain(&self.zone))
                    .ok()?;
                Some(vec![self.soa(&self.zone).data, RData::NS(NS(ns))])
            }
            ["dns-version"] => Some(vec![RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_owned()]))]),
            ["svc" | "pod"] => Some(Vec::new()),
            ["svc" | "pod", ns] => self.namespace_exists(ns).then(Vec::new),
            ["svc", ns, svc, rest @ ..] => {
                let name = ServiceName::new(ns, svc);
                let records = self.services.get(&name)?;
                let fqdn = self.service_fqdn(&name).ok()?;
                records.node(rest, &fqdn)
            }
            ["pod", ns, pod] if self.namespace_exists(ns) => {
                if pod.bytes().filter(|b| *b == b'-').count() == 3 {
                    let ip: Ipv4Addr = pod.replace('-', ".").parse().ok()?;
                    Some(vec![RData::A(A(ip))])
                } else {
                    let ip: Ipv6Addr = pod.replace('-', ":").parse().ok()?;
                    Some(vec![RData::AAAA(AAAA(ip))])
                }
            }
            _ => None,
        }
    }
}

/// What exists at a name.
enum Lookup {
    /// The name exists with these records (none: NODATA) in this zone.
    Exists(Vec<RData>, Name),
    /// The name is in this zone and does not exist.
    Missing(Name),
    /// The name is not ours to answer.
    NotOurs,
}

/// The address named by a full-length `in-addr.arpa` / `ip6.arpa` name, and
/// that reverse zone.
fn reverse_ip(name: &Name) -> Option<(IpAddr, Name)> {
    let net = name.parse_arpa_name().ok()?;
    let (ip, full, zone) = match net.addr() {
        ip @ IpAddr::V4(_) => (ip, 32, "in-addr.arpa."),
        ip @ IpAddr::V6(_) => (ip, 128, "ip6.arpa."),
    };
    if net.prefix_len() != full {
        return None;
    }
    Some((ip, Name::from_ascii(zone).ok()?))
}

/// A response computed from [`Records`] by [`answer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The response code.
    pub code: ResponseCode,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section (the SOA of a negative answer).
    pub authority: Vec<Record>,
    /// The additional section (addresses of SRV targets).
    pub additionals: Vec<Record>,
    /// A CNAME target outside the cluster zone (an `ExternalName`) that the
    /// server resolves upstream and appends; `None` when the answer is complete.
    pub chase: Option<Name>,
}

impl Response {
    fn new(code: ResponseCode) -> Self {
        Self {
            code,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
            chase: None,
        }
    }

    /// Whether this is a NODATA answer (NOERROR with no answer).
    #[must_use]
    pub fn is_nodata(&self) -> bool {
        self.code == ResponseCode::NoError && self.answers.is_empty()
    }
}

/// Answers `query` from `records`, or `None` when the name is not in the
/// cluster zone nor a reverse name of a cluster address (forward it).
///
/// Pure: owner names of answers keep the query's letter case; see the module
/// docs for the names and the NXDOMAIN/NODATA rules.
#[must_use]
pub fn answer(records: &Records, query: &Query) -> Option<Response> {
    let qtype = query.query_type();
    let mut name = query.name().clone();
    name.set_fqdn(true);
    let mut response = Response::new(ResponseCode::NoError);
    if matches!(records.lookup(&name), Lookup::NotOurs) {
        return None;
    }
    if query.query_class() != DNSClass::IN {
        response.code = ResponseCode::Refused;
        return Some(response);
    }
    for _ in 0..MAX_CNAME_CHAIN {
        let (rdata, zone) = match records.lookup(&name) {
            Lookup::NotOurs => {
                // A CNAME out of our zones: the server resolves the rest.
                response.chase = Some(name);
                return Some(response);
            }
            Lookup::Missing(z) => {
                response.code = if records.synced {
                    ResponseCode::NXDomain
                } else {
                    ResponseCode::ServFail
                };
                response.authority.push(records.soa(&z));
                return Some(response);
            }
            Lookup::Exists(rdata, zone) => (rdata, zone),
        };
        let cname = rdata.iter().find_map(|r| match r {
            RData::CNAME(CNAME(target)) => Some(target.clone()),
            _ => None,
        });
        if let Some(target) =
            cname.filter(|_| !matches!(qtype, RecordType::CNAME | RecordType::ANY))
        {
            response.answers.push(Record::from_rdata(
                name,
                records.ttl,
                RData::CNAME(CNAME(target.clone())),
            ));
            name = target;
            continue;
        }
        let matching: Vec<RData> = rdata
            .into_iter()
            .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
            .collect();
        if matching.is_empty() {
            if response.answers.is_empty() {
                response.authority.push(records.soa(&zone));
            }
            return Some(response);
        }
        let mut targets = BTreeSet::new();
        for rdata in matching {
            if let RData::SRV(srv) = &rdata {
                targets.insert(srv.target.clone());
            }
            response
                .answers
                .push(Record::from_rdata(name.clone(), records.ttl, rdata));
        }
        for target in targets {
            if let Lookup::Exists(rdata, _) = records.lookup(&target) {
                response.additionals.extend(
                    rdata
                        .into_iter()
                        .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
                        .map(|r| Record::from_rdata(target.clone(), records.ttl, r)),
                );
            }
        }
        return Some(response);
    }
    // A CNAME loop inside the zone.
    response.code = ResponseCode::ServFail;
    Some(response)
}
