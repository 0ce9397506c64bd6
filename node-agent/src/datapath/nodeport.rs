//! The north-south datapath (tc and XDP on a node's external interface):
//! loading `sluice-nodeport` / `sluice-nodeport-xdp` with their maps pinned
//! next to the socket-LB maps, typed operations on those maps, and
//! `BPF_PROG_RUN` of the loaded programs (tests, benchmarks).
//!
//! Layouts, names and the frontend/conntrack/SNAT schemes are documented in
//! `sluice_ebpf_common::nodeport`.

use std::{
    fs, io,
    os::fd::AsFd,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{
        Array, HashMap, MapData, PerCpuArray,
        lpm_trie::{Key, LpmTrie},
    },
    programs::{
        Program, SchedClassifier, TcAttachType, TestRun, TestRunOptions, Xdp, XdpMode,
        links::FdLink,
    },
};
use sluice_ebpf_common::nodeport::{
    AFFINITY_MAP, AffinityKey, AffinityValue, CT_MAP, CtKey, CtValue, EXT_SERVICES_MAP,
    ExtServiceValue, MAGLEV_MAP, MaglevKey, MaglevValue, NODE_IPS_MAP, NODEPORT_CONFIG_MAP,
    NODEPORT_STATS_MAP, NP_STATS_LEN, NP_TC_EGRESS_PROGRAM, NP_TC_INGRESS_PROGRAM, NP_XDP_PROGRAM,
    NodeIpKey, NodeIpValue, NodePortConfig, SNAT_MAP, SOURCE_RANGE_SVC_BITS, SOURCE_RANGES_MAP,
    ServiceKey, SnatKey, SnatValue, SourceRangeKey,
};

use super::{
    BPFFS, DatapathError, ObjectSource, ensure_bpffs,
    kernel::{is_not_found, map_error, program_error},
    links,
};

/// `ENOLINK`: a pinned link whose device is gone (defunct).
const ENOLINK: i32 = 67;

/// How a program ended up on its interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// A new TCX link (kernel >= 6.6).
    Tcx,
    /// A new XDP link in native (driver) mode.
    XdpNative,
    /// A new XDP link in generic (SKB) mode: the driver refused native.
    XdpGeneric,
    /// The link pinned by an earlier run, its program swapped atomically
    /// (`BPF_LINK_UPDATE`).
    Reused,
}

/// One north-south program attached to an interface with a pinned link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePortHook {
    /// The program name.
    pub program: &'static str,
    /// The link's pin: `<links dir>/<program>-<interface>`.
    pub pin: PathBuf,
    /// How it was attached.
    pub mode: AttachMode,
}

/// The pin of `program`'s link on `iface` under `links_dir`.
#[must_use]
pub fn hook_pin(links_dir: &Path, program: &str, iface: &str) -> PathBuf {
    links_dir.join(format!("{program}-{iface}"))
}

/// Detaches the north-south programs from `iface` and removes their pins
/// under `links_dir`; pins that are not there are fine.
///
/// # Errors
/// [`DatapathError::Link`] when a pin exists but cannot be opened, detached
/// or removed.
pub fn detach_nodeport(links_dir: &Path, iface: &str) -> Result<(), DatapathError> {
    for program in [NP_TC_INGRESS_PROGRAM, NP_TC_EGRESS_PROGRAM, NP_XDP_PROGRAM] {
        detach_nodeport_program(links_dir, iface, program)?;
    }
    Ok(())
}

/// Detaches one north-south program from `iface` and removes its pin (none
/// is fine).
///
/// # Errors
/// As [`detach_nodeport`].
pub fn detach_nodeport_program(
    links_dir: &Path,
    iface: &str,
    program: &str,
) -> Result<(), DatapathError> {
    let pin = hook_pin(links_dir, program, iface);
    let link = match links::obj_get(&pin) {
        Ok(link) => link,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(link_err(&pin, "open", source)),
    };
    match links::link_detach(link.as_fd()) {
        Err(error) if error.raw_os_error() != Some(ENOLINK) => {
            return Err(link_err(&pin, "detach", error));
        }
        _ => {}
    }
    fs::remove_file(&pin).map_err(|source| link_err(&pin, "unpin", source))?;
    Ok(())
}

fn link_err(path: &Path, op: &'static str, source: io::Error) -> DatapathError {
    DatapathError::Link {
        path: path.to_owned(),
        op,
        source,
    }
}

/// Every map of the north-south objects (for [`unpin_nodeport`]).
pub const NODEPORT_MAPS: [&str; 9] = [
    EXT_SERVICES_MAP,
    NODE_IPS_MAP,
    NODEPORT_CONFIG_MAP,
    CT_MAP,
    SNAT_MAP,
    NODEPORT_STATS_MAP,
    MAGLEV_MAP,
    SOURCE_RANGES_MAP,
    AFFINITY_MAP,
];

/// Which north-south object to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodePortKind {
    /// `sluice-nodeport`: tc ingress and egress.
    Tc,
    /// `sluice-nodeport-xdp`: the XDP ingress fast path.
    Xdp,
}

/// The result of one `BPF_PROG_RUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// The program's return code (`TC_ACT_*`, `XDP_*`).
    pub retval: u32,
    /// The packet as the program left it.
    pub packet: Vec<u8>,
    /// Mean run time per repetition, in nanoseconds (the kernel's figure).
    pub duration_ns: u64,
}

/// A loaded north-south object: programs verified and loaded, maps created
/// (or reused) and pinned under the pin directory.
pub struct NodePortObject {
    ebpf: Ebpf,
    kind: NodePortKind,
}

impl std::fmt::Debug for NodePortObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodePortObject")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl NodePortObject {
    /// Loads `object` (of `kind`), creating or reusing its maps pinned in
    /// `pin_dir`, and loads its programs into the kernel (the verifier runs
    /// here). Nothing is attached.
    ///
    /// # Errors
    /// [`DatapathError::Bpffs`], [`DatapathError::PinDir`],
    /// [`DatapathError::Load`], [`DatapathError::MissingProgram`],
    /// [`DatapathError::Program`] (verifier).
    pub fn load(
        object: ObjectSource<'_>,
        kind: NodePortKind,
        pin_dir: &Path,
    ) -> Result<Self, DatapathError> {
        if pin_dir.starts_with(BPFFS) {
            ensure_bpffs(Path::new(BPFFS))?;
        }
        fs::create_dir_all(pin_dir).map_err(|source| DatapathError::PinDir {
            path: pin_dir.to_owned(),
            source,
        })?;
        let mut loader = EbpfLoader::new();
        loader.default_map_pin_directory(pin_dir);
        let mut ebpf = match object {
            ObjectSource::Path(path) => loader.load_file(path),
            ObjectSource::Bytes(bytes) => loader.load(bytes),
        }
        .map_err(|source| DatapathError::Load {
            object: match object {
                ObjectSource::Path(path) => path.display().to_string(),
                ObjectSource::Bytes(bytes) => format!("<{} bytes in memory>", bytes.len()),
            },
            source: Box::new(source),
        })?;
        for name in programs(kind) {
            let program = ebpf
                .program_mut(name)
                .ok_or(DatapathError::MissingProgram { name })?;
            match program {
                Program::SchedClassifier(tc) => tc.load(),
                Program::Xdp(xdp) => xdp.load(),
                _ => return Err(DatapathError::MissingProgram { name }),
            }
            .map_err(program_error(name, "load"))?;
        }
        Ok(Self { ebpf, kind })
    }

    /// Runs program `name` of this object once per `repeat` on `packet`
    /// (`BPF_PROG_RUN`) and returns its verdict and output packet.
    ///
    /// # Errors
    /// [`DatapathError::MissingProgram`], [`DatapathError::Program`] when the
    /// kernel refuses the run.
    pub fn run(
        &self,
        name: &'static str,
        packet: &[u8],
        repeat: u32,
    ) -> Result<RunOutput, DatapathError> {
        self.run_with_ctx(name, packet, None, repeat)
    }

    /// As [`NodePortObject::run`], with a context for the kernel to start
    /// from (`struct xdp_md` for XDP: `ingress_ifindex` picks the device,
    /// hence the netns, FIB lookups see; `struct __sk_buff` for tc).
    ///
    /// # Errors
    /// As [`NodePortObject::run`].
    pub fn run_with_ctx(
        &self,
        name: &'static str,
        packet: &[u8],
        ctx: Option<&[u8]>,
        repeat: u32,
    ) -> Result<RunOutput, DatapathError> {
        let mut out = vec![0u8; packet.len() + 256];
        let opts = TestRunOptions {
            data_in: Some(packet),
            data_out: Some(&mut out),
            ctx_in: ctx,
            repeat: repeat.max(1),
            ..TestRunOptions::default()
        };
        let program = self
            .ebpf
            .program(name)
            .ok_or(DatapathError::MissingProgram { name })?;
        let result = match program {
            Program::SchedClassifier(tc) => SchedClassifier::test_run(tc, opts),
            Program::Xdp(xdp) => Xdp::test_run(xdp, opts),
            _ => return Err(DatapathError::MissingProgram { name }),
        }
        .map_err(program_error(name, "test run"))?;
        out.truncate(usize::try_from(result.data_size_out).unwrap_or(usize::MAX));
        Ok(RunOutput {
            retval: result.return_value,
            packet: out,
            duration_ns: u64::try_from(result.duration.as_nanos()).unwrap_or(u64::MAX),
        })
    }

    /// Attaches this object's programs to `iface` (tc: ingress and egress
    /// through TCX; XDP: native mode, falling back to generic when the
    /// driver refuses), each with a link pinned at
    /// [`hook_pin`]`(links_dir, program, iface)`, so the hooks outlive this
    /// value. A pin left by an earlier run keeps its link and gets this
    /// object's program atomically (`BPF_LINK_UPDATE`: no packet sees no
    /// program); a defunct one (its device gone) is replaced.
    ///
    /// The pin is named by interface name: one pin directory serves one
    /// network namespace.
    ///
    /// # Errors
    /// [`DatapathError::PinDir`], [`DatapathError::Program`] (attach),
    /// [`DatapathError::Link`] (pin, update).
    pub fn attach(
        &mut self,
        iface: &str,
        links_dir: &Path,
    ) -> Result<Vec<NodePortHook>, DatapathError> {
        fs::create_dir_all(links_dir).map_err(|source| DatapathError::PinDir {
            path: links_dir.to_owned(),
            source,
        })?;
        let mut hooks = Vec::new();
        for &program in programs(self.kind) {
            let pin = hook_pin(links_dir, program, iface);
            let mode = if self.update_pinned(program, &pin)? {
                AttachMode::Reused
            } else {
                self.attach_new(program, iface, &pin)?
            };
            hooks.push(NodePortHook { program, pin, mode });
        }
        Ok(hooks)
    }

    /// Swaps `program` into the link pinned at `pin`; `Ok(false)` when
    /// there is no live link there (none, or defunct: then its pin is gone).
    fn update_pinned(&self, program: &'static str, pin: &Path) -> Result<bool, DatapathError> {
        let link = match links::obj_get(pin) {
            Ok(link) => link,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(link_err(pin, "open", source)),
        };
        let fd = match self.ebpf.program(program) {
            Some(Program::SchedClassifier(tc)) => tc.fd(),
            Some(Program::Xdp(xdp)) => xdp.fd(),
            _ => return Err(DatapathError::MissingProgram { name: program }),
        }
        .map_err(program_error(program, "update"))?;
        match links::link_update(link.as_fd(), fd.as_fd()) {
            Ok(()) => Ok(true),
            Err(error) if error.raw_os_error() == Some(ENOLINK) => {
                fs::remove_file(pin).map_err(|source| link_err(pin, "unpin defunct", source))?;
                Ok(false)
            }
            Err(source) => Err(link_err(pin, "update", source)),
        }
    }

    /// Attaches `program` to `iface` with a new link pinned at `pin`.
    fn attach_new(
        &mut self,
        program: &'static str,
        iface: &str,
        pin: &Path,
    ) -> Result<AttachMode, DatapathError> {
        let (link, mode) = match self.ebpf.program_mut(program) {
            Some(Program::SchedClassifier(tc)) => {
                let attach_type = if program == NP_TC_EGRESS_PROGRAM {
                    TcAttachType::Egress
                } else {
                    TcAttachType::Ingress
                };
                let id = tc
                    .attach(iface, attach_type)
                    .map_err(program_error(program, "attach"))?;
                let link = tc
                    .take_link(id)
                    .map_err(program_error(program, "take link"))?;
                let link = FdLink::try_from(link)
                    .map_err(|e| link_err(pin, "convert (not a TCX link)", io::Error::other(e)))?;
                (link, AttachMode::Tcx)
            }
            Some(Program::Xdp(xdp)) => {
                let (id, mode) = match xdp.attach(iface, XdpMode::Driver) {
                    Ok(id) => (id, AttachMode::XdpNative),
                    Err(native) => {
                        tracing::info!(program, iface, error = %native,
                            "native XDP refused; attaching in generic (SKB) mode");
                        let id = xdp
                            .attach(iface, XdpMode::Skb)
                            .map_err(program_error(program, "attach"))?;
                        (id, AttachMode::XdpGeneric)
                    }
                };
                let link = xdp
                    .take_link(id)
                    .map_err(program_error(program, "take link"))?;
                let link = FdLink::try_from(link)
                    .map_err(|e| link_err(pin, "convert (not an XDP link)", io::Error::other(e)))?;
                (link, mode)
            }
            _ => return Err(DatapathError::MissingProgram { name: program }),
        };
        // Dropping the PinnedLink closes our fd; the pin keeps the link.
        drop(
            link.pin(pin)
                .map_err(|e| link_err(pin, "pin", io::Error::other(e)))?,
        );
        Ok(mode)
    }

    /// Which object this is.
    #[must_use]
    pub fn kind(&self) -> NodePortKind {
        self.kind
    }
}

/// The programs of an object of `kind`.
#[must_use]
pub fn programs(kind: NodePortKind) -> &'static [&'static str] {
    match kind {
        NodePortKind::Tc => &[NP_TC_INGRESS_PROGRAM, NP_TC_EGRESS_PROGRAM],
        NodePortKind::Xdp => &[NP_XDP_PROGRAM],
    }
}

/// Typed handles on the pinned north-south maps of one pin directory
/// (opened from their pins, so they work whichever object created them).
pub struct NodePortMaps {
    services: HashMap<MapData, ServiceKey, ExtServiceValue>,
    node_ips: HashMap<MapData, NodeIpKey, NodeIpValue>,
    config: Array<MapData, NodePortConfig>,
    ct: HashMap<MapData, CtKey, CtValue>,
    snat: HashMap<MapData, SnatKey, SnatValue>,
    stats: PerCpuArray<MapData, u64>,
    maglev: HashMap<MapData, MaglevKey, MaglevValue>,
    source_ranges: LpmTrie<MapData, SourceRangeKey, u32>,
    affinity: HashMap<MapData, AffinityKey, AffinityValue>,
}

impl std::fmt::Debug for NodePortMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodePortMaps").finish_non_exhaustive()
    }
}

fn open_pinned(pin_dir: &Path, name: &'static str) -> Result<aya::maps::Map, DatapathError> {
    let data = MapData::from_pin(pin_dir.join(name)).map_err(map_error(name, "open pin"))?;
    // The map type decides the variant; the typed wrappers check it again.
    aya::maps::Map::from_map_data(data).map_err(map_error(name, "open"))
}

macro_rules! typed {
    ($pin_dir:expr, $name:expr, $ty:ty) => {
        <$ty>::try_from(open_pinned($pin_dir, $name)?).map_err(map_error($name, "open"))?
    };
}

impl NodePortMaps {
    /// Opens the maps pinned in `pin_dir` (a loaded object created them).
    ///
    /// # Errors
    /// [`DatapathError::Map`] when a pin is missing or of the wrong type.
    pub fn open(pin_dir: &Path) -> Result<Self, DatapathError> {
        Ok(Self {
            services: typed!(pin_dir, EXT_SERVICES_MAP, HashMap<MapData, ServiceKey, ExtServiceValue>),
            node_ips: typed!(pin_dir, NODE_IPS_MAP, HashMap<MapData, NodeIpKey, NodeIpValue>),
            config: typed!(pin_dir, NODEPORT_CONFIG_MAP, Array<MapData, NodePortConfig>),
            ct: typed!(pin_dir, CT_MAP, HashMap<MapData, CtKey, CtValue>),
            snat: typed!(pin_dir, SNAT_MAP, HashMap<MapData, SnatKey, SnatValue>),
            stats: typed!(pin_dir, NODEPORT_STATS_MAP, PerCpuArray<MapData, u64>),
            maglev: typed!(pin_dir, MAGLEV_MAP, HashMap<MapData, MaglevKey, MaglevValue>),
            source_ranges: typed!(pin_dir, SOURCE_RANGES_MAP, LpmTrie<MapData, SourceRangeKey, u32>),
            affinity: typed!(pin_dir, AFFINITY_MAP, HashMap<MapData, AffinityKey, AffinityValue>),
        })
    }

    /// Inserts or replaces one frontend or backend slot.
    ///
    /// # Errors
    /// [`DatapathError::MapFull`], [`DatapathError::Map`].
    pub fn upsert_service(
        &mut self,
        key: ServiceKey,
        value: ExtServiceValue,
    ) -> Result<(), DatapathError> {
        self.services
            .insert(key, value, 0)
            .map_err(map_error(EXT_SERVICES_MAP, "insert"))
    }

    /// Removes one frontend or slot (absent is fine).
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    pub fn remove_service(&mut self, key: &ServiceKey) -> Result<(), DatapathError> {
        remove_hash(&mut self.services, key, EXT_SERVICES_MAP)
    }

    /// Every frontend and slot, sorted by key.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    pub fn services(&self) -> Result<Vec<(ServiceKey, ExtServiceValue)>, DatapathError> {
        let mut entries = self
            .services
            .iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_error(EXT_SERVICES_MAP, "dump"))?;
        entries.sort_unstable_by_key(|(key, _)| *key);
        Ok(entries)
    }

    /// Adds one of this node's addresses (where wildcard `NodePort`s answer).
    ///
    /// # Errors
    /// [`DatapathError::MapFull`], [`DatapathError::Map`].
    pub fn add_node_ip(&mut self, key: NodeIpKey) -> Result<(), DatapathError> {
        self.node_ips
            .insert(key, NodeIpValue::default(), 0)
            .map_err(map_error(NODE_IPS_MAP, "insert"))
    }

    /// Removes one node address (absent is fine).
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    pub fn remove_node_ip(&mut self, key: &NodeIpKey) -> Result<(), DatapathError> {
        remove_hash(&mut self.node_ips, key, NODE_IPS_MAP)
    }

    /// Sets the SNAT address, port range and flags.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    pub fn set_config(&mut self, config: NodePortConfig) -> Result<(), DatapathError> {
        self.config
            .set(0, config, 0)
            .map_err(map_error(NODEPORT_CONFIG_MAP, "set"))
    }

    /// Inserts or replaces the Maglev table of service `key`.
    ///
    /// # Errors
    /// [`DatapathError::MapFull`], [`DatapathError::Map`].
    pub fn upsert_maglev(
        &mut self,
        key: MaglevKey,
        table: &MaglevValue,
    ) -> Result<(), DatapathError> {
        self.maglev
            .insert(key, table, 0)
            .map_err(map_error(MAGLEV_MAP, "insert"))
    }

    /// Removes the Maglev table of service `key` (absent is fine).
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    pub fn remove_maglev(&mut self, key: &MaglevKey) -> Result<(), DatapathError> {
        remove_hash(&mut self.maglev, key, MAGLEV_MAP)
    }

    /// Allows clients in `addr/prefix_len` for service `svc_id` (a
    /// `loadBalancerSourceRanges` entry; the frontend needs
    /// `EXT_FLAG_SOURCE_RANGES`). `addr` must be the network address.
    ///
    /// # Errors
    /// [`DatapathError::MapFull`], [`DatapathError::Map`].
    pub fn add_source_range(
        &mut self,
        svc_id: u16,
        addr: sluice_ebpf_common::Be32,
        prefix_len: u8,
    ) -> Result<(), DatapathError> {
        let key = Key::new(
            SOURCE_RANGE_SVC_BITS + u32::from(prefix_len.min(32)),
            SourceRangeKey {
                svc_id,
                pad: 0,
                addr,
            },
        );
        self.source_ranges
            .insert(&key, 1, 0)
            .map_err(map_error(SOURCE_RANGES_MAP, "insert"))
    }

    /// Removes one source range (absent is fine).
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    pub fn remove_source_range(
        &mut self,
        svc_id: u16,
        addr: sluice_ebpf_common::Be32,
        prefix_len: u8,
    ) -> Result<(), DatapathError> {
        let key = Key::new(
            SOURCE_RANGE_SVC_BITS + u32::from(prefix_len.min(32)),
            SourceRangeKey {
                svc_id,
                pad: 0,
                addr,
            },
        );
        match self.source_ranges.remove(&key) {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(map_error(SOURCE_RANGES_MAP, "remove")(error)),
        }
    }

    /// Every source range as `(svc_id, network address, prefix length)`, sorted.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    pub fn source_ranges(&self) -> Result<Vec<(u16, sluice_ebpf_common::Be32, u8)>, DatapathError> {
        let mut ranges = Vec::new();
        for key in self.source_ranges.keys() {
            let key = key.map_err(map_error(SOURCE_RANGES_MAP, "dump"))?;
            let data = key.data();
            let prefix = key.prefix_len().saturating_sub(SOURCE_RANGE_SVC_BITS);
            ranges.push((
                data.svc_id,
                data.addr,
                u8::try_from(prefix.min(32)).unwrap_or(32),
            ));
        }
        ranges.sort_unstable();
        Ok(ranges)
    }

    /// The service ids that have a Maglev table, sorted.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    pub fn maglev_keys(&self) -> Result<Vec<MaglevKey>, DatapathError> {
        let mut keys = self
            .maglev
            .keys()
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_error(MAGLEV_MAP, "dump"))?;
        keys.sort_unstable();
        Ok(keys)
    }

    /// The node addresses, sorted.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    pub fn node_ips(&self) -> Result<Vec<NodeIpKey>, DatapathError> {
        let mut keys = self
            .node_ips
            .keys()
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_error(NODE_IPS_MAP, "dump"))?;
        keys.sort_unstable();
        Ok(keys)
    }

    /// Removes every conntrack entry of the flows to the backends
    /// `(addr, port, proto)` (both directions, and the SNAT port such a flow
    /// holds), so their next packet is a new flow that picks a live backend.
    /// One walk of the conntrack map, however many backends. Returns the
    /// flows removed.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    pub fn flush_backends(
        &mut self,
        backends: &[(sluice_ebpf_common::Be32, sluice_ebpf_common::Be16, u8)],
    ) -> Result<usize, DatapathError> {
        use sluice_ebpf_common::nodeport::{CT_FLAG_REPLY, CT_FLAG_SNAT};
        if backends.is_empty() {
            return Ok(0);
        }
        let wanted: std::collections::HashSet<_> = backends.iter().copied().collect();
        let mut doomed = Vec::new();
        let mut snat = Vec::new();
        let mut flows = 0;
        for entry in &self.ct {
            let (key, value) = entry.map_err(map_error(CT_MAP, "dump"))?;
            let original = value.flags & CT_FLAG_REPLY == 0;
            if original && wanted.contains(&(value.addr, value.port, key.proto)) {
                flows += 1;
                doomed.push(key);
                if value.flags & CT_FLAG_SNAT != 0 {
                    snat.push(SnatKey {
                        addr: value.nat_addr,
                        port: value.nat_port,
                        proto: key.proto,
                        pad: 0,
                    });
                }
            } else if !original && wanted.contains(&(key.src, key.sport, key.proto)) {
                doomed.push(key);
            }
        }
        for key in &doomed {
            remove_hash(&mut self.ct, key, CT_MAP)?;
        }
        for key in &snat {
            remove_hash(&mut self.snat, key, SNAT_MAP)?;
        }
        Ok(flows)
    }

    /// The affinity entry of a client of a service, if any.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    pub fn affinity(&self, key: &AffinityKey) -> Result<Option<AffinityValue>, DatapathError> {
        match self.affinity.get(key, 0) {
            Ok(value) => Ok(Some(value)),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(map_error(AFFINITY_MAP, "lookup")(error)),
        }
    }

    /// Writes an affinity entry (tests; a restore after a restart).
    ///
    /// # Errors
    /// [`DatapathError::MapFull`], [`DatapathError::Map`].
    pub fn set_affinity(
        &mut self,
        key: AffinityKey,
        value: AffinityValue,
    ) -> Result<(), DatapathError> {
        self.affinity
            .insert(key, value, 0)
            .map_err(map_error(AFFINITY_MAP, "insert"))
    }

    /// Every session-affinity entry, sorted by key.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    pub fn affinity_entries(&self) -> Result<Vec<(AffinityKey, AffinityValue)>, DatapathError> {
        let mut entries = self
            .affinity
            .iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_error(AFFINITY_MAP, "dump"))?;
        entries.sort_unstable_by_key(|(key, _)| *key);
        Ok(entries)
    }

    /// The conntrack entry of `key`, if any.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    pub fn ct(&self, key: &CtKey) -> Result<Option<CtValue>, DatapathError> {
        match self.ct.get(key, 0) {
            Ok(value) => Ok(Some(value)),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(map_error(CT_MAP, "lookup")(error)),
        }
    }

    /// Writes one conntrack entry (benchmarks, tests; the programs write
    /// the real ones).
    ///
    /// # Errors
    /// [`DatapathError::MapFull`], [`DatapathError::Map`].
    pub fn ct_insert(&mut self, key: CtKey, value: CtValue) -> Result<(), DatapathError> {
        self.ct
            .insert(key, value, 0)
            .map_err(map_error(CT_MAP, "insert"))
    }

    /// Every conntrack entry, sorted by key.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    pub fn ct_entries(&self) -> Result<Vec<(CtKey, CtValue)>, DatapathError> {
        let mut entries = self
            .ct
            .iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_error(CT_MAP, "dump"))?;
        entries.sort_unstable_by_key(|(key, _)| *key);
        Ok(entries)
    }

    /// Every SNAT port in use, sorted by key.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    pub fn snat_entries(&self) -> Result<Vec<(SnatKey, SnatValue)>, DatapathError> {
        let mut entries = self
            .snat
            .iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_error(SNAT_MAP, "dump"))?;
        entries.sort_unstable_by_key(|(key, _)| *key);
        Ok(entries)
    }

    /// The counters (`NP_STAT_*`), summed over CPUs.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    pub fn stats(&self) -> Result<[u64; NP_STATS_LEN as usize], DatapathError> {
        let mut totals = [0u64; NP_STATS_LEN as usize];
        for (index, total) in (0..NP_STATS_LEN).zip(totals.iter_mut()) {
            let per_cpu = self
                .stats
                .get(&index, 0)
                .map_err(map_error(NODEPORT_STATS_MAP, "lookup"))?;
            *total = per_cpu.iter().sum();
        }
        Ok(totals)
    }
}

fn remove_hash<K: aya::Pod, V: aya::Pod>(
    map: &mut HashMap<MapData, K, V>,
    key: &K,
    name: &'static str,
) -> Result<(), DatapathError> {
    match map.remove(key) {
        Ok(()) => Ok(()),
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(map_error(name, "remove")(error)),
    }
}

/// Removes the north-south map pins of `pin_dir` (absent ones are fine);
/// the directory itself is left (see [`unpin`](super::unpin)).
///
/// # Errors
/// [`DatapathError::Unpin`] when a pin exists but cannot be removed.
pub fn unpin_nodeport(pin_dir: &Path) -> Result<(), DatapathError> {
    for name in NODEPORT_MAPS {
        let path = pin_dir.join(name);
        match fs::remove_file(&path) {
            Err(source) if source.kind() != io::ErrorKind::NotFound => {
                return Err(DatapathError::Unpin { path, source });
            }
            _ => {}
        }
    }
    Ok(())
}
