//! `sluice-node-agent lb list`: a node's load-balancer maps, printed like
//! `cilium bpf lb list`.
//!
//! [`read`] snapshots the maps pinned under a pin directory ([`Maps`], through
//! the datapath's read-only [`PinnedMaps`]); [`render`] is a pure function of
//! that snapshot. The listing has one section per map kind: Services (the
//! services map with its slots resolved through the backends map), backends,
//! reverse NAT, and the socket reverse-NAT LRU the programs write (the
//! conntrack-like state of the socket LB), then, where the north-south maps
//! are pinned, their frontends and slots (`NodePort`, `externalIPs`,
//! `LoadBalancer`), node addresses, conntrack, SNAT ports and session
//! affinity. A new map kind adds its entries to [`Maps`] and one section
//! function to [`SECTIONS`].
//!
//! Inconsistent states (which the reconciler never leaves, but a crash or a
//! hand edit can) are shown, not hidden: a slot or backend that is missing,
//! slots past a frontend's count, slots whose frontend entry is gone, a
//! frontend whose reverse-NAT entry is missing.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use sluice_ebpf_common::nodeport::{
    AFFINITY_MAP, AffinityKey, AffinityValue, CT_FLAG_CLOSING, CT_FLAG_LOCAL, CT_FLAG_REPLY,
    CT_FLAG_SNAT, CT_MAP, CtKey, CtValue, EXT_BACKEND_LOCAL, EXT_FLAG_AFFINITY,
    EXT_FLAG_EXTERNAL_IP, EXT_FLAG_LOADBALANCER, EXT_FLAG_LOCAL, EXT_FLAG_MAGLEV,
    EXT_FLAG_NODEPORT, EXT_FLAG_SOURCE_RANGES, EXT_SERVICES_MAP, ExtServiceValue, NODE_IPS_MAP,
    NodeIpKey, SNAT_MAP, SnatKey, SnatValue,
};
use sluice_ebpf_common::{
    BACKEND_FLAG_ACTIVE, BACKENDS_MAP, REV_NAT_MAP, SERVICE_FLAG_AFFINITY, SERVICE_FLAG_NONE,
    SERVICES_MAP, SOCK_AFFINITY_MAP, SOCK_REV_NAT_MAP, SockAffinityKey, SockAffinityValue,
    SockRevNatKey, SockRevNatValue,
};

use crate::datapath::{
    BackendKey, BackendValue, DatapathError, NodePortMaps, PinnedMaps, RevNatKey, RevNatValue,
    ServiceKey, ServiceValue,
};
use crate::proxy::Protocol;

/// Errors of `lb` commands.
#[derive(Debug, thiserror::Error)]
pub enum LbctlError {
    /// The pinned maps could not be opened or read.
    #[error("reading the maps pinned under {pin_dir}")]
    Read {
        /// The pin directory.
        pin_dir: PathBuf,
        /// The cause.
        #[source]
        source: DatapathError,
    },
}

/// A snapshot of the load-balancer maps, each sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Maps {
    /// The services map: frontends (slot 0) and their backend slots.
    pub services: Vec<(ServiceKey, ServiceValue)>,
    /// The backends map.
    pub backends: Vec<(BackendKey, BackendValue)>,
    /// The reverse-NAT map.
    pub rev_nats: Vec<(RevNatKey, RevNatValue)>,
    /// The socket reverse-NAT LRU.
    pub sock_rev_nats: Vec<(SockRevNatKey, SockRevNatValue)>,
    /// The socket LB's session-affinity LRU.
    pub sock_affinities: Vec<(SockAffinityKey, SockAffinityValue)>,
    /// The north-south maps, when they are pinned there.
    pub north_south: Option<NorthSouth>,
}

/// A snapshot of the north-south maps, each sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NorthSouth {
    /// Frontends (slot 0) and their backend slots.
    pub services: Vec<(ServiceKey, ExtServiceValue)>,
    /// The node's addresses (where wildcard `NodePort`s answer).
    pub node_ips: Vec<NodeIpKey>,
    /// Conntrack entries (two per flow).
    pub ct: Vec<(CtKey, CtValue)>,
    /// SNAT ports in use.
    pub snat: Vec<(SnatKey, SnatValue)>,
    /// Session-affinity entries.
    pub affinity: Vec<(AffinityKey, AffinityValue)>,
}

/// Reads every map pinned under `pin_dir`.
///
/// # Errors
/// [`LbctlError::Read`] when a map is not pinned there or cannot be read.
pub fn read(pin_dir: &Path) -> Result<Maps, LbctlError> {
    let error = |source| LbctlError::Read {
        pin_dir: pin_dir.to_owned(),
        source,
    };
    let maps = PinnedMaps::open(pin_dir).map_err(error)?;
    Ok(Maps {
        services: maps.services().map_err(error)?,
        backends: maps.backends().map_err(error)?,
        rev_nats: maps.rev_nats().map_err(error)?,
        sock_rev_nats: maps.sock_rev_nats().map_err(error)?,
        sock_affinities: maps.sock_affinities().map_err(error)?,
        north_south: if pin_dir.join(EXT_SERVICES_MAP).exists() {
            let maps = NodePortMaps::open(pin_dir).map_err(error)?;
            Some(NorthSouth {
                services: maps.services().map_err(error)?,
                node_ips: maps.node_ips().map_err(error)?,
                ct: maps.ct_entries().map_err(error)?,
                snat: maps.snat_entries().map_err(error)?,
                affinity: maps.affinity_entries().map_err(error)?,
            })
        } else {
            None
        },
    })
}

/// One section of the listing: a title naming its maps, column headings and
/// rows of cells.
struct Section {
    title: String,
    columns: &'static [&'static str],
    rows: Vec<Vec<String>>,
}

/// The sections of `lb list`, in order; one function per map kind.
const SECTIONS: &[fn(&Maps) -> Section] = &[
    services_section,
    backends_section,
    rev_nat_section,
    sock_rev_nat_section,
    sock_affinity_section,
];

/// The north-south sections, shown when those maps are pinned.
const NORTH_SOUTH_SECTIONS: &[fn(&NorthSouth) -> Section] = &[
    ext_services_section,
    node_ips_section,
    ct_section,
    snat_section,
    affinity_section,
];

/// The whole listing of `maps`, sections separated by a blank line.
#[must_use]
pub fn render(maps: &Maps) -> String {
    let mut out = String::new();
    for (i, section) in SECTIONS.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        render_section(&mut out, &section(maps));
    }
    if let Some(ns) = &maps.north_south {
        for section in NORTH_SOUTH_SECTIONS {
            out.push('\n');
            render_section(&mut out, &section(ns));
        }
    }
    out
}

fn render_section(out: &mut String, section: &Section) {
    let _ = writeln!(out, "{}", section.title);
    if section.rows.is_empty() {
        out.push_str("(none)\n");
        return;
    }
    let mut widths: Vec<usize> = section.columns.iter().map(|c| c.len()).collect();
    for row in &section.rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, width) in cells.zip(&widths) {
            let _ = write!(text, "{cell:<width$}   ");
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&mut section.columns.iter().copied());
    for row in &section.rows {
        line(&mut row.iter().map(String::as_str));
    }
}

fn proto(number: u8) -> String {
    Protocol::from_number(number).map_or_else(|| format!("proto-{number}"), |p| p.to_string())
}

fn frontend(key: &ServiceKey) -> String {
    format!(
        "{}:{}/{}",
        key.vip.to_ipv4(),
        key.port.to_host(),
        proto(key.proto)
    )
}

/// How people sort frontends: by address, port, protocol.
fn frontend_order(key: &ServiceKey) -> (Ipv4Addr, u16, u8) {
    (key.vip.to_ipv4(), key.port.to_host(), key.proto)
}

fn backend_address(value: BackendValue) -> String {
    format!("{}:{}", value.addr.to_ipv4(), value.port.to_host())
}

fn backend_state(value: BackendValue) -> String {
    if value.flags == BACKEND_FLAG_ACTIVE {
        "active".to_owned()
    } else {
        format!("flags={:#04x}", value.flags)
    }
}

/// Frontends with their slots resolved: `FRONTEND  REV-NAT  SLOT  BACKEND  STATE`.
fn services_section(maps: &Maps) -> Section {
    let backends: BTreeMap<u32, BackendValue> =
        maps.backends.iter().map(|(k, v)| (k.id, *v)).collect();
    let rev_nats: BTreeSet<u16> = maps.rev_nats.iter().map(|(k, _)| k.id).collect();
    let mut frontends: BTreeMap<(Ipv4Addr, u16, u8), (ServiceKey, Option<ServiceValue>)> =
        BTreeMap::new();
    let mut slots: BTreeMap<ServiceKey, BTreeMap<u16, ServiceValue>> = BTreeMap::new();
    for (key, value) in &maps.services {
        let fe = key.with_slot(0);
        let entry = frontends.entry(frontend_order(&fe)).or_insert((fe, None));
        if key.slot == 0 {
            entry.1 = Some(*value);
        } else {
            slots.entry(fe).or_default().insert(key.slot, *value);
        }
    }
    let mut rows = Vec::new();
    for (key, value) in frontends.values() {
        let own = slots.remove(key).unwrap_or_default();
        let count = value.map_or(0, |v| v.count);
        let (rev_nat, summary, state) = match value {
            Some(v) => {
                let mut state = Vec::new();
                if let Some(timeout) = v.affinity_timeout_s() {
                    state.push(format!("ClientIP-affinity ({timeout}s)"));
                }
                let other = v.flags & !SERVICE_FLAG_AFFINITY;
                if other != SERVICE_FLAG_NONE {
                    state.push(format!("flags={other:#06x}"));
                }
                if !rev_nats.contains(&v.rev_nat_id) {
                    state.push("rev-NAT entry missing".to_owned());
                }
                let summary = match v.count {
                    0 => "(no backends: refused)".to_owned(),
                    1 => "(1 backend)".to_owned(),
                    n => format!("({n} backends)"),
                };
                (v.rev_nat_id.to_string(), summary, state.join(", "))
            }
            None => (
                "-".to_owned(),
                "(no frontend entry: slots unused)".to_owned(),
                "stale".to_owned(),
            ),
        };
        rows.push(vec![frontend(key), rev_nat, "0".to_owned(), summary, state]);
        let last = own.keys().next_back().copied().unwrap_or(0).max(count);
        for slot in 1..=last {
            let (backend, state) = match own.get(&slot) {
                None if slot <= count => ("<missing slot>".to_owned(), "broken".to_owned()),
                None => continue,
                Some(v) => {
                    let (backend, state) = match backends.get(&v.backend_id) {
                        Some(b) => (
                            format!("{} (id {})", backend_address(*b), v.backend_id),
                            backend_state(*b),
                        ),
                        None => (
                            format!("<missing backend {}>", v.backend_id),
                            "broken".to_owned(),
                        ),
                    };
                    if slot > count {
                        (backend, "unused (past count)".to_owned())
                    } else {
                        (backend, state)
                    }
                }
            };
            rows.push(vec![
                String::new(),
                String::new(),
                slot.to_string(),
                backend,
                state,
            ]);
        }
    }
    Section {
        title: format!("SERVICES ({SERVICES_MAP}, backends from {BACKENDS_MAP})"),
        columns: &["FRONTEND", "REV-NAT", "SLOT", "BACKEND", "STATE"],
        rows,
    }
}

/// Every backend, with how many slots name it.
fn backends_section(maps: &Maps) -> Section {
    let mut refs: BTreeMap<u32, usize> = BTreeMap::new();
    for (key, value) in &maps.services {
        if key.slot != 0 {
            *refs.entry(value.backend_id).or_default() += 1;
        }
    }
    let rows = maps
        .backends
        .iter()
        .map(|(key, value)| {
            vec![
                key.id.to_string(),
                format!("{}/{}", backend_address(*value), proto(value.proto)),
                backend_state(*value),
                refs.get(&key.id).copied().unwrap_or(0).to_string(),
            ]
        })
        .collect();
    Section {
        title: format!("BACKENDS ({BACKENDS_MAP})"),
        columns: &["ID", "ADDRESS", "STATE", "SLOTS"],
        rows,
    }
}

/// Service id -> the frontend replies and `getpeername` show.
fn rev_nat_section(maps: &Maps) -> Section {
    let rows = maps
        .rev_nats
        .iter()
        .map(|(key, value)| {
            vec![
                key.id.to_string(),
                format!("{}:{}", value.vip.to_ipv4(), value.port.to_host()),
            ]
        })
        .collect();
    Section {
        title: format!("REVERSE NAT ({REV_NAT_MAP})"),
        columns: &["REV-NAT", "FRONTEND"],
        rows,
    }
}

/// The sockets the programs translated: cookie and backend -> frontend.
fn sock_rev_nat_section(maps: &Maps) -> Section {
    let rows = maps
        .sock_rev_nats
        .iter()
        .map(|(key, value)| {
            vec![
                key.cookie.to_string(),
                format!("{}:{}", key.addr.to_ipv4(), key.port.to_host()),
                format!("{}:{}", value.vip.to_ipv4(), value.port.to_host()),
                value.rev_nat_id.to_string(),
            ]
        })
        .collect();
    Section {
        title: format!("SOCKET REVERSE NAT ({SOCK_REV_NAT_MAP}, LRU)"),
        columns: &["SOCKET COOKIE", "BACKEND", "FRONTEND", "REV-NAT"],
        rows,
    }
}

/// The socket LB's session affinity: which backend each client (network
/// namespace) of each service was last sent to, and when (kernel monotonic
/// clock).
fn sock_affinity_section(maps: &Maps) -> Section {
    let rows = maps
        .sock_affinities
        .iter()
        .map(|(key, value)| {
            vec![
                key.netns_cookie.to_string(),
                key.rev_nat_id.to_string(),
                value.slot.to_string(),
                value.backend_id.to_string(),
                value.last_used_ns.to_string(),
            ]
        })
        .collect();
    Section {
        title: format!("SOCKET SESSION AFFINITY ({SOCK_AFFINITY_MAP}, LRU)"),
        columns: &[
            "NETNS COOKIE",
            "REV-NAT",
            "SLOT",
            "BACKEND ID",
            "LAST USED (ktime ns)",
        ],
        rows,
    }
}

fn endpoint(addr: sluice_ebpf_common::Be32, port: sluice_ebpf_common::Be16) -> String {
    format!("{}:{}", addr.to_ipv4(), port.to_host())
}

/// The kind and options of a north-south frontend, from its flags.
fn ext_flags(flags: u16) -> String {
    let names = [
        (EXT_FLAG_NODEPORT, "NodePort"),
        (EXT_FLAG_EXTERNAL_IP, "ExternalIP"),
        (EXT_FLAG_LOADBALANCER, "LoadBalancer"),
        (EXT_FLAG_LOCAL, "Local"),
        (EXT_FLAG_MAGLEV, "Maglev"),
        (EXT_FLAG_SOURCE_RANGES, "SourceRanges"),
        (EXT_FLAG_AFFINITY, "ClientIP-affinity"),
    ];
    let known = names.iter().fold(0, |all, (bit, _)| all | bit);
    let mut parts: Vec<String> = names
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| (*name).to_owned())
        .collect();
    if flags & !known != 0 {
        parts.push(format!("flags={:#06x}", flags & !known));
    }
    parts.join(",")
}

/// North-south frontends with their slots: `FRONTEND  KIND  SVC-ID  SLOT  BACKEND  WHERE`.
/// A wildcard `NodePort` (address 0.0.0.0) shows as `*:port`.
fn ext_services_section(ns: &NorthSouth) -> Section {
    let slots: BTreeMap<ServiceKey, ExtServiceValue> = ns.services.iter().copied().collect();
    let mut rows = Vec::new();
    let mut frontends: Vec<&(ServiceKey, ExtServiceValue)> =
        ns.services.iter().filter(|(k, _)| k.slot == 0).collect();
    frontends.sort_by_key(|(k, _)| frontend_order(k));
    let name = |key: &ServiceKey| {
        if key.vip.raw() == 0 {
            format!("*:{}/{}", key.port.to_host(), proto(key.proto))
        } else {
            frontend(key)
        }
    };
    for (key, value) in &frontends {
        let mut kind = ext_flags(value.flags);
        if value.flags & EXT_FLAG_AFFINITY != 0 {
            let _ = write!(kind, " ({}s)", value.affinity_timeout_s);
        }
        let head = vec![name(key), kind, value.svc_id.to_string()];
        if value.count == 0 {
            let mut row = head.clone();
            row.extend([
                "-".to_owned(),
                "(no backend: drop)".to_owned(),
                String::new(),
            ]);
            rows.push(row);
        }
        for slot in 1..=value.count {
            let mut row = if slot == 1 {
                head.clone()
            } else {
                vec![String::new(), String::new(), String::new()]
            };
            row.push(slot.to_string());
            if let Some(b) = slots.get(&key.with_slot(slot)) {
                row.push(endpoint(b.backend_addr, b.backend_port));
                let place = if b.backend_flags & EXT_BACKEND_LOCAL != 0 {
                    "local"
                } else {
                    "remote"
                };
                row.push(place.to_owned());
            } else {
                row.push("(missing slot)".to_owned());
                row.push(String::new());
            }
            rows.push(row);
        }
    }
    Section {
        title: format!("NORTH-SOUTH FRONTENDS ({EXT_SERVICES_MAP})"),
        columns: &["FRONTEND", "KIND", "SVC-ID", "SLOT", "BACKEND", "WHERE"],
        rows,
    }
}

fn node_ips_section(ns: &NorthSouth) -> Section {
    Section {
        title: format!("NODE ADDRESSES ({NODE_IPS_MAP})"),
        columns: &["ADDRESS"],
        rows: ns
            .node_ips
            .iter()
            .map(|k| vec![k.addr.to_ipv4().to_string()])
            .collect(),
    }
}

/// Conntrack, one row per entry: the tuple seen on the wire and what it becomes.
fn ct_section(ns: &NorthSouth) -> Section {
    let rows = ns
        .ct
        .iter()
        .map(|(key, value)| {
            let reply = value.flags & CT_FLAG_REPLY != 0;
            let snat = value.flags & CT_FLAG_SNAT != 0;
            let translated = match (reply, snat) {
                (false, false) => format!("dst -> {}", endpoint(value.addr, value.port)),
                (false, true) => format!(
                    "dst -> {}, src -> {}",
                    endpoint(value.addr, value.port),
                    endpoint(value.nat_addr, value.nat_port)
                ),
                (true, false) => format!("src -> {}", endpoint(value.addr, value.port)),
                (true, true) => format!(
                    "src -> {}, dst -> {}",
                    endpoint(value.addr, value.port),
                    endpoint(value.nat_addr, value.nat_port)
                ),
            };
            vec![
                format!(
                    "{} -> {}/{}",
                    endpoint(key.src, key.sport),
                    endpoint(key.dst, key.dport),
                    proto(key.proto)
                ),
                match (reply, value.flags & CT_FLAG_CLOSING != 0) {
                    (false, false) => "original",
                    (false, true) => "original, closing",
                    (true, false) => "reply",
                    (true, true) => "reply, closing",
                }
                .to_owned(),
                translated,
                if value.flags & CT_FLAG_LOCAL != 0 {
                    "local"
                } else {
                    "remote"
                }
                .to_owned(),
                value.svc_id.to_string(),
            ]
        })
        .collect();
    Section {
        title: format!("CONNTRACK ({CT_MAP}, LRU)"),
        columns: &["TUPLE", "DIRECTION", "TRANSLATION", "BACKEND", "SVC-ID"],
        rows,
    }
}

fn snat_section(ns: &NorthSouth) -> Section {
    let rows = ns
        .snat
        .iter()
        .map(|(key, value)| {
            vec![
                format!("{}/{}", endpoint(key.addr, key.port), proto(key.proto)),
                endpoint(value.client_addr, value.client_port),
                endpoint(value.backend_addr, value.backend_port),
            ]
        })
        .collect();
    Section {
        title: format!("SNAT PORTS ({SNAT_MAP}, LRU)"),
        columns: &["NODE PORT", "CLIENT", "BACKEND"],
        rows,
    }
}

fn affinity_section(ns: &NorthSouth) -> Section {
    let rows = ns
        .affinity
        .iter()
        .map(|(key, value)| {
            vec![
                key.client.to_ipv4().to_string(),
                key.svc_id.to_string(),
                endpoint(value.backend_addr, value.backend_port),
                value.slot.to_string(),
            ]
        })
        .collect();
    Section {
        title: format!("SESSION AFFINITY ({AFFINITY_MAP}, LRU)"),
        columns: &["CLIENT", "SVC-ID", "BACKEND", "SLOT"],
        rows,
    }
}
