//! `sluice-node-agent lb list`: a node's load-balancer maps, printed like
//! `cilium bpf lb list`.
//!
//! [`read`] snapshots the maps pinned under a pin directory ([`Maps`], through
//! the datapath's read-only [`PinnedMaps`]); [`render`] is a pure function of
//! that snapshot. The listing has one section per map kind: Services (the
//! services map with its slots resolved through the backends map), backends,
//! reverse NAT, and the socket reverse-NAT LRU the programs write (the
//! conntrack-like state that exists today). A new map kind (`NodePort`,
//! conntrack, session affinity) adds its entries to [`Maps`] and one section
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

use sluice_ebpf_common::{
    BACKEND_FLAG_ACTIVE, BACKENDS_MAP, REV_NAT_MAP, SERVICE_FLAG_NONE, SERVICES_MAP,
    SOCK_REV_NAT_MAP, SockRevNatKey, SockRevNatValue,
};

use crate::datapath::{
    BackendKey, BackendValue, DatapathError, PinnedMaps, RevNatKey, RevNatValue, ServiceKey,
    ServiceValue,
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
                if v.flags != SERVICE_FLAG_NONE {
                    state.push(format!("flags={:#06x}", v.flags));
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
