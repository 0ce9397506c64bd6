//! The eBPF datapath: loading the programs, pinning their maps, attaching
//! them to a cgroup with pinned links (so hooks outlive the agent), and typed
//! operations on the service, backend and reverse-NAT maps.
//!
//! This is the only module that uses aya. Callers program services through
//! [`DatapathOps`], implemented by the kernel-backed [`Datapath`] and by
//! [`FakeDatapath`] (in memory, no root needed).
//!
//! Map layouts, names and byte order come from `sluice_ebpf_common`; see its
//! docs for the slot scheme (slot 0 = frontend with the backend count, slots
//! `1..=count` = backend ids) and the reverse-NAT scheme.
//!
//! The programs log rare events (a service without backends refused at
//! `debug`, a slot or backend missing mid-update at `warn`) with aya-log;
//! the records reach the `log` facade with target [`BPF_LOG_TARGET`]
//! (`sluice_ebpf`), hence the agent's log.

mod ebpf_log;
mod fake;
mod kernel;
mod links;
#[cfg(test)]
mod tests;

use std::{io, path::PathBuf};

pub use ebpf_log::BPF_LOG_TARGET;
pub use fake::FakeDatapath;
pub use kernel::{
    BPFFS, DEFAULT_CGROUP_ROOT, DEFAULT_PIN_ROOT, Datapath, Hook, LINKS_DIR, ObjectSource,
    default_pin_dir, ensure_bpffs, hooks, links_dir, unpin,
};
pub use sluice_ebpf_common::{
    BACKENDS_MAP, BackendKey, BackendValue, Be16, Be32, CONNECT4_PROGRAM, GETPEERNAME4_PROGRAM,
    PROTO_TCP, PROTO_UDP, RECVMSG4_PROGRAM, REV_NAT_MAP, RevNatKey, RevNatValue, SENDMSG4_PROGRAM,
    SERVICES_MAP, SOCK_PROGRAMS, SOCK_REV_NAT_MAP, ServiceKey, ServiceValue,
};

/// Errors from the datapath.
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    /// bpffs could not be found or mounted.
    #[error("mounting bpffs at {path}")]
    Bpffs {
        /// The mount point.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The pin directory could not be created.
    #[error("creating pin directory {path}")]
    PinDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The object could not be read or parsed, or its maps created or pinned.
    #[error("loading eBPF object {object}")]
    Load {
        /// Where the object came from.
        object: String,
        /// The cause.
        #[source]
        source: Box<aya::EbpfError>,
    },
    /// The object lacks a program sluice needs.
    #[error("program {name} not found in the eBPF object")]
    MissingProgram {
        /// The program name.
        name: &'static str,
    },
    /// The object lacks a map sluice needs.
    #[error("map {name} not found in the eBPF object")]
    MissingMap {
        /// The map name.
        name: &'static str,
    },
    /// Loading (verifier), attaching or detaching a program failed.
    #[error("{op} program {name}")]
    Program {
        /// The program name.
        name: &'static str,
        /// What was being done (`load`, `attach`, ...).
        op: &'static str,
        /// The cause; for `load`, its message carries the verifier log.
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// The cgroup to attach to could not be opened.
    #[error("opening cgroup {path}")]
    Cgroup {
        /// The cgroup2 directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A pinned link could not be created, opened, updated, detached or
    /// unpinned.
    #[error("{op} link {path}")]
    Link {
        /// The link's pin (or the links directory).
        path: PathBuf,
        /// What was being done (`pin`, `update`, `detach`, ...).
        op: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A map operation failed.
    #[error("{op} on map {map}")]
    Map {
        /// The map name.
        map: &'static str,
        /// What was being done (`insert`, `remove`, `dump`, ...).
        op: &'static str,
        /// The cause.
        #[source]
        source: Box<aya::maps::MapError>,
    },
    /// A map has no room for another entry.
    #[error("map {map} is full")]
    MapFull {
        /// The map name.
        map: &'static str,
    },
    /// Removing pinned maps failed.
    #[error("removing pin {path}")]
    Unpin {
        /// The pin path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A service has more backends than a slot number can name.
    #[error("service has {count} backends; at most {max} fit", max = u16::MAX)]
    TooManyBackends {
        /// How many were asked for.
        count: usize,
    },
}

/// Typed operations on the datapath maps, one map entry at a time.
///
/// Removing an entry that is not there succeeds, so reconcilers can prune
/// without checking first.
pub trait DatapathOps {
    /// Inserts or replaces one services-map entry (frontend or slot).
    ///
    /// # Errors
    /// [`DatapathError::MapFull`] when the map is full, [`DatapathError::Map`] otherwise.
    fn upsert_service(&mut self, key: ServiceKey, value: ServiceValue)
    -> Result<(), DatapathError>;

    /// Removes one services-map entry.
    ///
    /// # Errors
    /// [`DatapathError::Map`] when the kernel refuses.
    fn remove_service(&mut self, key: &ServiceKey) -> Result<(), DatapathError>;

    /// Inserts or replaces one backend.
    ///
    /// # Errors
    /// [`DatapathError::MapFull`] when the map is full, [`DatapathError::Map`] otherwise.
    fn upsert_backend(&mut self, key: BackendKey, value: BackendValue)
    -> Result<(), DatapathError>;

    /// Removes one backend.
    ///
    /// # Errors
    /// [`DatapathError::Map`] when the kernel refuses.
    fn remove_backend(&mut self, key: &BackendKey) -> Result<(), DatapathError>;

    /// Inserts or replaces one reverse-NAT entry: service id -> the frontend
    /// `{vip, port}` replies and `getpeername` show the application. Write it
    /// before the service's frontend, so the first socket can be translated back.
    ///
    /// # Errors
    /// [`DatapathError::MapFull`] when the map is full, [`DatapathError::Map`] otherwise.
    fn upsert_rev_nat(&mut self, key: RevNatKey, value: RevNatValue) -> Result<(), DatapathError>;

    /// Removes one reverse-NAT entry; sockets of that service then see the
    /// backend address (their stale socket entries are dropped lazily).
    ///
    /// # Errors
    /// [`DatapathError::Map`] when the kernel refuses.
    fn remove_rev_nat(&mut self, key: &RevNatKey) -> Result<(), DatapathError>;

    /// All reverse-NAT entries, sorted by key.
    ///
    /// # Errors
    /// [`DatapathError::Map`] when the map cannot be read.
    fn rev_nats(&self) -> Result<Vec<(RevNatKey, RevNatValue)>, DatapathError>;

    /// All services-map entries, sorted by key (for diffing and inspection).
    ///
    /// # Errors
    /// [`DatapathError::Map`] when the map cannot be read.
    fn services(&self) -> Result<Vec<(ServiceKey, ServiceValue)>, DatapathError>;

    /// All backends, sorted by key.
    ///
    /// # Errors
    /// [`DatapathError::Map`] when the map cannot be read.
    fn backends(&self) -> Result<Vec<(BackendKey, BackendValue)>, DatapathError>;
}

/// Programs a whole service: its backend slots, then its frontend, then
/// removes slots past the new count.
///
/// The order is make-before-break: a concurrent connect sees either the old
/// count with valid old slots, or the new count with valid new slots. The
/// backends named by `backend_ids` must already be in the backends map.
///
/// # Errors
/// [`DatapathError::TooManyBackends`] past `u16::MAX` backends; map errors
/// from `ops`.
pub fn program_service<D: DatapathOps + ?Sized>(
    ops: &mut D,
    frontend: ServiceKey,
    flags: u16,
    rev_nat_id: u16,
    backend_ids: &[u32],
) -> Result<(), DatapathError> {
    let frontend = frontend.with_slot(0);
    let count = u16::try_from(backend_ids.len()).map_err(|_| DatapathError::TooManyBackends {
        count: backend_ids.len(),
    })?;
    let old_count = ops
        .services()?
        .into_iter()
        .find(|(key, _)| *key == frontend)
        .map_or(0, |(_, value)| value.count);
    for (slot, id) in (1..=count).zip(backend_ids) {
        ops.upsert_service(
            frontend.with_slot(slot),
            ServiceValue::backend_slot(*id, rev_nat_id),
        )?;
    }
    ops.upsert_service(frontend, ServiceValue::frontend(count, flags, rev_nat_id))?;
    for slot in count.saturating_add(1)..=old_count {
        ops.remove_service(&frontend.with_slot(slot))?;
    }
    Ok(())
}

/// Removes a whole service: the frontend first (so no connect picks a slot
/// any more), then every slot of it.
///
/// # Errors
/// Map errors from `ops`.
pub fn remove_service_entries<D: DatapathOps + ?Sized>(
    ops: &mut D,
    frontend: ServiceKey,
) -> Result<(), DatapathError> {
    let frontend = frontend.with_slot(0);
    ops.remove_service(&frontend)?;
    let stale: Vec<ServiceKey> = ops
        .services()?
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| key.with_slot(0) == frontend)
        .collect();
    for key in stale {
        ops.remove_service(&key)?;
    }
    Ok(())
}
