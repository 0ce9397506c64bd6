//! The eBPF datapath: loading the programs, pinning their maps, attaching
//! them to a cgroup with pinned links (so hooks outlive the agent), and typed
//! operations on the service, backend and reverse-NAT maps; and the
//! north-south (tc/XDP) objects and their maps ([`NodePortObject`],
//! [`NodePortMaps`]).
//!
//! This is the only module that uses aya. [`DatapathOps`] is one map entry
//! at a time, implemented by the kernel-backed [`Datapath`] and by
//! [`FakeDatapath`] (in memory, no root needed). Whole services are written
//! by one path only, the service proxy's
//! [`Reconciler`](crate::proxy::Reconciler), which owns the write order;
//! the agent, the kernel tests and the service benchmark all go through it.
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
pub mod maglev;
mod nodeport;
mod nodeport_ops;
#[cfg(test)]
mod tests;

use std::{io, path::PathBuf};

pub use ebpf_log::BPF_LOG_TARGET;
pub use fake::FakeDatapath;
pub use kernel::{
    BPFFS, DEFAULT_CGROUP_ROOT, DEFAULT_PIN_ROOT, Datapath, Hook, LINKS_DIR, ObjectSource,
    PinnedMaps, cgroup2_mount, default_pin_dir, ensure_bpffs, hooks, links_dir, unpin,
};
pub use nodeport::{
    AttachMode, NODEPORT_MAPS, NodePortHook, NodePortKind, NodePortMaps, NodePortObject, RunOutput,
    detach_nodeport, detach_nodeport_program, hook_pin, programs as nodeport_programs,
    unpin_nodeport,
};
pub use nodeport_ops::{FakeNodePortMaps, NodePortOps};
pub use sluice_ebpf_common::{
    BACKENDS_MAP, BackendKey, BackendValue, Be16, Be32, CONNECT4_PROGRAM, GETPEERNAME4_PROGRAM,
    PROTO_TCP, PROTO_UDP, RECVMSG4_PROGRAM, REV_NAT_MAP, RevNatKey, RevNatValue, SENDMSG4_PROGRAM,
    SERVICES_MAP, SOCK_AFFINITY_MAP, SOCK_PROGRAMS, SOCK_REV_NAT_MAP, ServiceKey, ServiceValue,
    SockAffinityKey, SockAffinityValue, SockRevNatKey, SockRevNatValue,
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
