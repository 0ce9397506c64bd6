//! The kernel-backed datapath (aya).

use std::{
    ffi::CString,
    fs::{self, File},
    io,
    os::{
        fd::{AsFd, OwnedFd},
        unix::{ffi::OsStrExt, fs::MetadataExt},
    },
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, MapError},
    programs::{CgroupAttachMode, CgroupSockAddr, ProgramError, links::FdLink},
    sys::SyscallError,
};

use super::{
    BACKENDS_MAP, BackendKey, BackendValue, CONNECT4_PROGRAM, DatapathError, DatapathOps,
    GETPEERNAME4_PROGRAM, RECVMSG4_PROGRAM, REV_NAT_MAP, RevNatKey, RevNatValue, SENDMSG4_PROGRAM,
    SERVICES_MAP, SOCK_AFFINITY_MAP, SOCK_PROGRAMS, SOCK_REV_NAT_MAP, ServiceKey, ServiceValue,
    SockAffinityKey, SockAffinityValue, SockRevNatKey, SockRevNatValue,
    ebpf_log::{self, EbpfLogs},
    links,
};

/// Root of sluice's pins in bpffs; each node pins under `<root>/<node>`.
pub const DEFAULT_PIN_ROOT: &str = "/sys/fs/bpf/sluice";

/// Where bpffs is mounted.
pub const BPFFS: &str = "/sys/fs/bpf";

/// `E2BIG`, what the kernel answers when a hash map is full.
const E2BIG: i32 = 7;

/// The default pin directory of a node: `/sys/fs/bpf/sluice/<node>`.
#[must_use]
pub fn default_pin_dir(node: &str) -> PathBuf {
    Path::new(DEFAULT_PIN_ROOT).join(node)
}

/// Where the eBPF object comes from.
#[derive(Debug, Clone, Copy)]
pub enum ObjectSource<'a> {
    /// An ELF file on disk (`cargo xtask build-ebpf` writes `target/bpf/sluice-sock`).
    Path(&'a Path),
    /// ELF bytes in memory, 8-byte aligned (e.g. from `include_bytes_aligned!`).
    Bytes(&'a [u8]),
}

impl ObjectSource<'_> {
    fn describe(&self) -> String {
        match self {
            Self::Path(path) => path.display().to_string(),
            Self::Bytes(bytes) => format!("<{} bytes in memory>", bytes.len()),
        }
    }
}

/// The cgroup2 directory the hooks attach to by default: the cgroup2 root.
pub const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup/unified";

/// Where cgroup2 is mounted on this machine, from `/proc/self/mounts` (tests and benchmarks
/// make their client cgroups below it).
pub fn cgroup2_mount() -> io::Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    mounts
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.get(2) == Some(&"cgroup2"))
        .and_then(|fields| fields.get(1).map(PathBuf::from))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no cgroup2 mount in /proc/self/mounts",
            )
        })
}

/// Sub-directory of the pin directory holding the pinned links.
pub const LINKS_DIR: &str = "links";

/// The programs, in the order they are attached: the reverse hooks first, so
/// no socket is translated before its replies can be translated back.
const ATTACH_ORDER: [&str; 4] = [
    RECVMSG4_PROGRAM,
    GETPEERNAME4_PROGRAM,
    CONNECT4_PROGRAM,
    SENDMSG4_PROGRAM,
];

/// `ENOLINK`: the link's cgroup is gone (the link is defunct).
const ENOLINK: i32 = 67;

/// Where the links of a pin directory are pinned: `<pin_dir>/links`, one
/// pin per program (`<pin_dir>/links/sluice_connect4`, ...).
#[must_use]
pub fn links_dir(pin_dir: &Path) -> PathBuf {
    pin_dir.join(LINKS_DIR)
}

/// One pinned hook, as the kernel sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// The program name (`sluice_connect4`, ...).
    pub program: String,
    /// The link's pin.
    pub pin: PathBuf,
    /// Link id (stays the same when a restart swaps the program).
    pub link_id: u32,
    /// Id of the program the link runs now.
    pub prog_id: u32,
    /// The cgroup's id (inode of its cgroup2 directory); 0 if it is gone.
    pub cgroup_id: u64,
}

/// The loaded socket-LB object: programs verified and loaded, maps pinned,
/// typed handles on the maps.
///
/// Attaching pins the links under `<pin_dir>/links`, so dropping this value
/// (the agent exiting) leaves the hooks attached, running the programs last
/// attached, on the pinned maps. The next [`Datapath::attach_cgroup`] swaps
/// the programs in the pinned links atomically. Full teardown is
/// [`Datapath::detach_all`] or [`unpin`].
///
/// The programs' aya-log records reach the `log` facade with target
/// [`BPF_LOG_TARGET`](super::BPF_LOG_TARGET) while this value lives; see
/// [`Datapath::load`].
pub struct Datapath {
    ebpf: Ebpf,
    logs: EbpfLogs,
    pin_dir: PathBuf,
    services: HashMap<MapData, ServiceKey, ServiceValue>,
    backends: HashMap<MapData, BackendKey, BackendValue>,
    rev_nat: HashMap<MapData, RevNatKey, RevNatValue>,
    attached: Vec<PathBuf>,
}

impl std::fmt::Debug for Datapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datapath")
            .field("pin_dir", &self.pin_dir)
            .field("attached", &self.attached)
            .field("logs", &self.logs)
            .finish_non_exhaustive()
    }
}

pub(super) fn program_error(
    name: &'static str,
    op: &'static str,
) -> impl FnOnce(ProgramError) -> DatapathError {
    move |source| DatapathError::Program {
        name,
        op,
        source: Box::new(source),
    }
}

fn link_error(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> DatapathError {
    let path = path.to_owned();
    move |source| DatapathError::Link { path, op, source }
}

/// Every entry of a map, sorted by key.
fn dump<K: aya::Pod + Ord, V: aya::Pod>(
    map: &HashMap<MapData, K, V>,
    name: &'static str,
) -> Result<Vec<(K, V)>, DatapathError> {
    let mut entries = map
        .iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(map_error(name, "dump"))?;
    entries.sort_unstable_by_key(|(key, _)| *key);
    Ok(entries)
}

pub(super) fn map_error(
    map: &'static str,
    op: &'static str,
) -> impl FnOnce(MapError) -> DatapathError {
    move |source| match &source {
        MapError::SyscallError(SyscallError { io_error, .. })
            if io_error.raw_os_error() == Some(E2BIG) =>
        {
            DatapathError::MapFull { map }
        }
        _ => DatapathError::Map {
            map,
            op,
            source: Box::new(source),
        },
    }
}

pub(super) fn is_not_found(error: &MapError) -> bool {
    matches!(error, MapError::KeyNotFound | MapError::ElementNotFound)
        || matches!(error, MapError::SyscallError(SyscallError { io_error, .. })
            if io_error.kind() == io::ErrorKind::NotFound)
}

fn take_hash_map<K: aya::Pod, V: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<HashMap<MapData, K, V>, DatapathError> {
    let map = ebpf
        .take_map(name)
        .ok_or(DatapathError::MissingMap { name })?;
    HashMap::try_from(map).map_err(map_error(name, "open"))
}

/// The id of a cgroup2 directory (its inode number), as link info reports it.
fn cgroup_id(cgroup: &Path) -> Result<u64, DatapathError> {
    fs::metadata(cgroup)
        .map(|meta| meta.ino())
        .map_err(|source| DatapathError::Cgroup {
            path: cgroup.to_owned(),
            source,
        })
}

impl Datapath {
    /// Loads the object, creating or reusing its maps pinned under `pin_dir`,
    /// and loads the four socket programs into the kernel (the verifier runs
    /// here). When `pin_dir` is under [`BPFFS`] and bpffs is not mounted
    /// there, mounts it (as Cilium does). Nothing is attached yet, and hooks
    /// pinned by an earlier run keep running their programs; see
    /// [`Datapath::attach_cgroup`].
    ///
    /// The programs' log records (aya-log, target
    /// [`BPF_LOG_TARGET`](super::BPF_LOG_TARGET)) go to the `log` facade
    /// ([`log::logger`]); the agent's tracing subscriber bridges them into
    /// its log. Called inside a tokio runtime (with I/O enabled), this
    /// spawns the task that reads them, stopped when the `Datapath` is
    /// dropped; otherwise call [`Datapath::flush_logs`]. Levels above
    /// [`log::max_level`] at this call are compiled out of the programs. An
    /// object without a log buffer loads with a warning.
    ///
    /// # Errors
    /// [`DatapathError::Bpffs`], [`DatapathError::PinDir`], [`DatapathError::Load`] (bad object, map
    /// creation or pinning), [`DatapathError::MissingProgram`],
    /// [`DatapathError::MissingMap`], [`DatapathError::Program`] (verifier).
    pub fn load(object: ObjectSource<'_>, pin_dir: &Path) -> Result<Self, DatapathError> {
        if pin_dir.starts_with(BPFFS) {
            ensure_bpffs(Path::new(BPFFS))?;
        }
        fs::create_dir_all(pin_dir).map_err(|source| DatapathError::PinDir {
            path: pin_dir.to_owned(),
            source,
        })?;
        let log_level = ebpf_log::bpf_log_level();
        let mut loader = EbpfLoader::new();
        loader.default_map_pin_directory(pin_dir);
        // Not `must_exist`: an object built without aya-log still loads.
        loader.override_global(ebpf_log::LEVEL_GLOBAL, &log_level, false);
        let mut ebpf = match object {
            ObjectSource::Path(path) => loader.load_file(path),
            ObjectSource::Bytes(bytes) => loader.load(bytes),
        }
        .map_err(|source| DatapathError::Load {
            object: object.describe(),
            source: Box::new(source),
        })?;

        for name in SOCK_PROGRAMS {
            program_mut(&mut ebpf, name)?
                .load()
                .map_err(program_error(name, "load"))?;
        }

        let services = take_hash_map(&mut ebpf, SERVICES_MAP)?;
        let backends = take_hash_map(&mut ebpf, BACKENDS_MAP)?;
        let rev_nat = take_hash_map(&mut ebpf, REV_NAT_MAP)?;
        // The programs alone use the socket maps; they must be in the object.
        for name in [SOCK_REV_NAT_MAP, SOCK_AFFINITY_MAP] {
            if ebpf.map(name).is_none() {
                return Err(DatapathError::MissingMap { name });
            }
        }

        let logs = EbpfLogs::start(&mut ebpf);

        Ok(Self {
            ebpf,
            logs,
            pin_dir: pin_dir.to_owned(),
            services,
            backends,
            rev_nat,
            attached: Vec::new(),
        })
    }

    /// Logs the programs' pending records now. Needed only when
    /// [`Datapath::load`] ran outside a tokio runtime (no task reads them);
    /// otherwise a no-op.
    pub fn flush_logs(&mut self) {
        self.logs.flush();
    }

    /// The directory the maps are pinned in.
    #[must_use]
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Attaches the four socket programs to a cgroup2 directory (a node's
    /// cgroup root, by default [`DEFAULT_CGROUP_ROOT`]); every socket in
    /// that cgroup's subtree is then load-balanced.
    ///
    /// Each hook is a link pinned at `<pin_dir>/links/<program>`, so it
    /// outlives this value. When such a pin already holds a link on the same
    /// cgroup (an agent restart), the link is kept and its program replaced
    /// atomically (`BPF_LINK_UPDATE`): there is no moment without a hook.
    /// Otherwise a new link is attached and pinned, replacing any old pin
    /// only after the new link is in place (a pin directory holds one
    /// attachment; attaching to another cgroup moves it).
    ///
    /// Reverse hooks are attached before forward ones. If attaching fails
    /// half-way, the hooks already pinned stay; [`Datapath::detach_all`]
    /// removes them.
    ///
    /// # Errors
    /// [`DatapathError::Cgroup`] when the directory cannot be opened,
    /// [`DatapathError::Program`] when the kernel refuses the attachment,
    /// [`DatapathError::Link`] when a link cannot be pinned.
    pub fn attach_cgroup(&mut self, cgroup: &Path) -> Result<(), DatapathError> {
        let cgroup_id = cgroup_id(cgroup)?;
        let dir = links_dir(&self.pin_dir);
        fs::create_dir_all(&dir).map_err(|source| DatapathError::PinDir {
            path: dir.clone(),
            source,
        })?;
        for name in ATTACH_ORDER {
            let pin = dir.join(name);
            if self.reuse_link(name, &pin, cgroup_id)? {
                tracing::info!(program = name, pin = %pin.display(), cgroup = %cgroup.display(),
                    "reused pinned hook; program replaced atomically");
                continue;
            }
            self.attach_new_link(name, &pin, cgroup)?;
            tracing::info!(program = name, pin = %pin.display(), cgroup = %cgroup.display(),
                "attached and pinned hook");
        }
        if !self.attached.iter().any(|path| path == cgroup) {
            self.attached.push(cgroup.to_owned());
        }
        Ok(())
    }

    /// Swaps this object's program into the link pinned at `pin` if that
    /// link is live and on cgroup `cgroup_id`. `Ok(false)`: attach anew.
    fn reuse_link(
        &self,
        name: &'static str,
        pin: &Path,
        cgroup_id: u64,
    ) -> Result<bool, DatapathError> {
        let link = match links::obj_get(pin) {
            Ok(link) => link,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(link_error(pin, "open")(error)),
        };
        let info = links::link_info(link.as_fd()).map_err(link_error(pin, "info"))?;
        if info.cgroup_id != cgroup_id {
            tracing::info!(program = name, pin = %pin.display(), old_cgroup_id = info.cgroup_id,
                "pinned hook is on another (or a removed) cgroup; attaching anew");
            return Ok(false);
        }
        let program = program(&self.ebpf, name)?;
        let prog_fd = program.fd().map_err(program_error(name, "update"))?;
        match links::link_update(link.as_fd(), prog_fd.as_fd()) {
            Ok(()) => Ok(true),
            Err(error) if error.raw_os_error() == Some(ENOLINK) => Ok(false),
            Err(error) => Err(link_error(pin, "update")(error)),
        }
    }

    /// Attaches `name` to `cgroup` with a new link and pins it at `pin`,
    /// replacing an existing pin only once the new link is attached.
    fn attach_new_link(
        &mut self,
        name: &'static str,
        pin: &Path,
        cgroup: &Path,
    ) -> Result<(), DatapathError> {
        let file = File::open(cgroup).map_err(|source| DatapathError::Cgroup {
            path: cgroup.to_owned(),
            source,
        })?;
        let program = program_mut(&mut self.ebpf, name)?;
        let link_id = program
            .attach(file, CgroupAttachMode::Single)
            .map_err(program_error(name, "attach"))?;
        let link = program
            .take_link(link_id)
            .map_err(program_error(name, "take link"))?;
        let link = FdLink::try_from(link)
            .map_err(|source| link_error(pin, "convert")(io::Error::other(source)))?;
        // bpffs refuses names with a dot.
        let tmp = pin.with_file_name(format!("new-{name}"));
        match fs::remove_file(&tmp) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                return Err(link_error(&tmp, "remove stale")(error));
            }
            _ => {}
        }
        // Dropping the PinnedLink closes our fd; the pin keeps the link.
        drop(
            link.pin(&tmp)
                .map_err(|source| link_error(&tmp, "pin")(io::Error::other(source)))?,
        );
        // rename(2) on bpffs swaps the name atomically; an old link whose
        // only reference was the old pin detaches now, after the new one
        // is already attached.
        fs::rename(&tmp, pin).map_err(link_error(pin, "rename pin"))
    }

    /// Detaches the pinned hooks that are on `cgroup` and removes their
    /// pins. Hooks on another cgroup, or none at all, are left alone.
    ///
    /// # Errors
    /// [`DatapathError::Cgroup`] when the directory cannot be read,
    /// [`DatapathError::Link`] when the kernel refuses.
    pub fn detach_cgroup(&mut self, cgroup: &Path) -> Result<(), DatapathError> {
        let cgroup_id = cgroup_id(cgroup)?;
        let dir = links_dir(&self.pin_dir);
        for name in SOCK_PROGRAMS {
            let pin = dir.join(name);
            let link = match links::obj_get(&pin) {
                Ok(link) => link,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(link_error(&pin, "open")(error)),
            };
            let info = links::link_info(link.as_fd()).map_err(link_error(&pin, "info"))?;
            if info.cgroup_id == cgroup_id {
                detach_pinned(&pin, &link)?;
            }
        }
        self.attached.retain(|path| path != cgroup);
        Ok(())
    }

    /// Detaches every hook pinned under this pin directory and removes the
    /// link pins (the maps stay pinned; [`unpin`] removes those too).
    ///
    /// # Errors
    /// [`DatapathError::Link`] when a link cannot be detached or unpinned.
    pub fn detach_all(&mut self) -> Result<(), DatapathError> {
        detach_links(&self.pin_dir)?;
        self.attached.clear();
        Ok(())
    }

    /// The hooks pinned under this pin directory, as the kernel sees them,
    /// sorted by program name.
    ///
    /// # Errors
    /// [`DatapathError::Link`] when a pin cannot be read.
    pub fn hooks(&self) -> Result<Vec<Hook>, DatapathError> {
        hooks(&self.pin_dir)
    }
}

/// The hooks pinned under `pin_dir` (see [`Datapath::hooks`]); usable
/// without loading anything (inspection, tests).
///
/// # Errors
/// [`DatapathError::Link`] when a pin cannot be read.
pub fn hooks(pin_dir: &Path) -> Result<Vec<Hook>, DatapathError> {
    let dir = links_dir(pin_dir);
    let mut hooks = Vec::new();
    for name in SOCK_PROGRAMS {
        let pin = dir.join(name);
        let link = match links::obj_get(&pin) {
            Ok(link) => link,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(link_error(&pin, "open")(error)),
        };
        let info = links::link_info(link.as_fd()).map_err(link_error(&pin, "info"))?;
        hooks.push(Hook {
            program: name.to_owned(),
            pin,
            link_id: info.id,
            prog_id: info.prog_id,
            cgroup_id: info.cgroup_id,
        });
    }
    hooks.sort_by(|a, b| a.program.cmp(&b.program));
    Ok(hooks)
}

/// Forces a pinned link off its cgroup, then removes the pin.
fn detach_pinned(pin: &Path, link: &OwnedFd) -> Result<(), DatapathError> {
    match links::link_detach(link.as_fd()) {
        // Already defunct (its cgroup was removed): nothing to detach.
        Err(error) if error.raw_os_error() != Some(ENOLINK) => {
            return Err(link_error(pin, "detach")(error));
        }
        _ => {}
    }
    match fs::remove_file(pin) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(link_error(pin, "unpin")(error))
        }
        _ => Ok(()),
    }
}

/// Detaches and unpins every link under `<pin_dir>/links` (sluice's and any
/// half-made `new-<name>` pin), then removes that directory.
fn detach_links(pin_dir: &Path) -> Result<(), DatapathError> {
    let dir = links_dir(pin_dir);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(link_error(&dir, "list")(error)),
    };
    for entry in entries {
        let pin = entry.map_err(link_error(&dir, "list"))?.path();
        match links::obj_get(&pin) {
            Ok(link) => detach_pinned(&pin, &link)?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(link_error(&pin, "open")(error)),
        }
    }
    match fs::remove_dir(&dir) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(link_error(&dir, "remove dir")(error))
        }
        _ => Ok(()),
    }
}

fn program<'a>(ebpf: &'a Ebpf, name: &'static str) -> Result<&'a CgroupSockAddr, DatapathError> {
    ebpf.program(name)
        .ok_or(DatapathError::MissingProgram { name })?
        .try_into()
        .map_err(program_error(name, "find"))
}

fn program_mut<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut CgroupSockAddr, DatapathError> {
    ebpf.program_mut(name)
        .ok_or(DatapathError::MissingProgram { name })?
        .try_into()
        .map_err(program_error(name, "find"))
}

impl DatapathOps for Datapath {
    fn upsert_service(
        &mut self,
        key: ServiceKey,
        value: ServiceValue,
    ) -> Result<(), DatapathError> {
        self.services
            .insert(key, value, 0)
            .map_err(map_error(SERVICES_MAP, "insert"))
    }

    fn remove_service(&mut self, key: &ServiceKey) -> Result<(), DatapathError> {
        match self.services.remove(key) {
            Err(error) if !is_not_found(&error) => Err(map_error(SERVICES_MAP, "remove")(error)),
            _ => Ok(()),
        }
    }

    fn upsert_backend(
        &mut self,
        key: BackendKey,
        value: BackendValue,
    ) -> Result<(), DatapathError> {
        self.backends
            .insert(key, value, 0)
            .map_err(map_error(BACKENDS_MAP, "insert"))
    }

    fn remove_backend(&mut self, key: &BackendKey) -> Result<(), DatapathError> {
        match self.backends.remove(key) {
            Err(error) if !is_not_found(&error) => Err(map_error(BACKENDS_MAP, "remove")(error)),
            _ => Ok(()),
        }
    }

    fn upsert_rev_nat(&mut self, key: RevNatKey, value: RevNatValue) -> Result<(), DatapathError> {
        self.rev_nat
            .insert(key, value, 0)
            .map_err(map_error(REV_NAT_MAP, "insert"))
    }

    fn remove_rev_nat(&mut self, key: &RevNatKey) -> Result<(), DatapathError> {
        match self.rev_nat.remove(key) {
            Err(error) if !is_not_found(&error) => Err(map_error(REV_NAT_MAP, "remove")(error)),
            _ => Ok(()),
        }
    }

    fn rev_nats(&self) -> Result<Vec<(RevNatKey, RevNatValue)>, DatapathError> {
        dump(&self.rev_nat, REV_NAT_MAP)
    }

    fn services(&self) -> Result<Vec<(ServiceKey, ServiceValue)>, DatapathError> {
        dump(&self.services, SERVICES_MAP)
    }

    fn backends(&self) -> Result<Vec<(BackendKey, BackendValue)>, DatapathError> {
        dump(&self.backends, BACKENDS_MAP)
    }
}

/// Read-only handles on the maps pinned under a pin directory, opened
/// without loading the object or touching the hooks: what inspection
/// (`sluice-node-agent lb list`) and benchmarks use to look at a running
/// agent's maps.
pub struct PinnedMaps {
    services: HashMap<MapData, ServiceKey, ServiceValue>,
    backends: HashMap<MapData, BackendKey, BackendValue>,
    rev_nat: HashMap<MapData, RevNatKey, RevNatValue>,
    sock_rev_nat: HashMap<MapData, SockRevNatKey, SockRevNatValue>,
    sock_affinity: HashMap<MapData, SockAffinityKey, SockAffinityValue>,
}

impl std::fmt::Debug for PinnedMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedMaps").finish_non_exhaustive()
    }
}

fn open_pinned<K: aya::Pod, V: aya::Pod>(
    pin_dir: &Path,
    name: &'static str,
) -> Result<HashMap<MapData, K, V>, DatapathError> {
    let data = MapData::from_pin(pin_dir.join(name)).map_err(map_error(name, "open pin"))?;
    let map = aya::maps::Map::from_map_data(data).map_err(map_error(name, "open pin"))?;
    HashMap::try_from(map).map_err(map_error(name, "open pin"))
}

impl PinnedMaps {
    /// Opens sluice's socket-LB maps pinned under `pin_dir`.
    ///
    /// # Errors
    /// [`DatapathError::Map`] when a pin is missing or is not the expected
    /// kind of map.
    pub fn open(pin_dir: &Path) -> Result<Self, DatapathError> {
        Ok(Self {
            services: open_pinned(pin_dir, SERVICES_MAP)?,
            backends: open_pinned(pin_dir, BACKENDS_MAP)?,
            rev_nat: open_pinned(pin_dir, REV_NAT_MAP)?,
            sock_rev_nat: open_pinned(pin_dir, SOCK_REV_NAT_MAP)?,
            sock_affinity: open_pinned(pin_dir, SOCK_AFFINITY_MAP)?,
        })
    }

    /// One services-map entry, if present (one lookup, whatever the map's size).
    ///
    /// # Errors
    /// [`DatapathError::Map`] when the lookup fails for another reason.
    pub fn service(&self, key: &ServiceKey) -> Result<Option<ServiceValue>, DatapathError> {
        match self.services.get(key, 0) {
            Ok(value) => Ok(Some(value)),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(map_error(SERVICES_MAP, "lookup")(error)),
        }
    }

    /// All services-map entries, sorted by key.
    ///
    /// # Errors
    /// [`DatapathError::Map`] when the map cannot be read.
    pub fn services(&self) -> Result<Vec<(ServiceKey, ServiceValue)>, DatapathError> {
        dump(&self.services, SERVICES_MAP)
    }

    /// All backends, sorted by key.
    ///
    /// # Errors
    /// [`DatapathError::Map`] when the map cannot be read.
    pub fn backends(&self) -> Result<Vec<(BackendKey, BackendValue)>, DatapathError> {
        dump(&self.backends, BACKENDS_MAP)
    }

    /// All reverse-NAT entries, sorted by key.
    ///
    /// # Errors
    /// [`DatapathError::Map`] when the map cannot be read.
    pub fn rev_nats(&self) -> Result<Vec<(RevNatKey, RevNatValue)>, DatapathError> {
        dump(&self.rev_nat, REV_NAT_MAP)
    }

    /// All socket reverse-NAT entries (the LRU the programs write), sorted by
    /// key. Entries the kernel evicts while this reads are simply missing.
    ///
    /// # Errors
    /// [`DatapathError::Map`] when the map cannot be read.
    pub fn sock_rev_nats(&self) -> Result<Vec<(SockRevNatKey, SockRevNatValue)>, DatapathError> {
        dump(&self.sock_rev_nat, SOCK_REV_NAT_MAP)
    }

    /// All session-affinity entries (the LRU the programs write), sorted by
    /// key. Entries the kernel evicts while this reads are simply missing.
    ///
    /// # Errors
    /// [`DatapathError::Map`] when the map cannot be read.
    pub fn sock_affinities(
        &self,
    ) -> Result<Vec<(SockAffinityKey, SockAffinityValue)>, DatapathError> {
        dump(&self.sock_affinity, SOCK_AFFINITY_MAP)
    }
}

/// Full teardown of a pin directory: detaches and unpins every hook pinned
/// under `<pin_dir>/links`, removes sluice's pinned maps, then the directory
/// if it is empty. Missing pins are fine. Loaded programs keep their maps
/// alive until they are dropped; this only removes the names.
///
/// # Errors
/// [`DatapathError::Link`] when a hook cannot be detached,
/// [`DatapathError::Unpin`] when a map pin exists but cannot be removed.
pub fn unpin(pin_dir: &Path) -> Result<(), DatapathError> {
    detach_links(pin_dir)?;
    for name in [
        SERVICES_MAP,
        BACKENDS_MAP,
        REV_NAT_MAP,
        SOCK_REV_NAT_MAP,
        SOCK_AFFINITY_MAP,
    ] {
        let path = pin_dir.join(name);
        match fs::remove_file(&path) {
            Err(source) if source.kind() != io::ErrorKind::NotFound => {
                return Err(DatapathError::Unpin { path, source });
            }
            _ => {}
        }
    }
    match fs::remove_dir(pin_dir) {
        // Not empty (someone else's pins) or already gone: leave it.
        Err(source)
            if !matches!(
                source.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty
            ) =>
        {
            Err(DatapathError::Unpin {
                path: pin_dir.to_owned(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// Mounts bpffs at `mountpoint` unless a bpffs is already mounted there.
///
/// # Errors
/// [`DatapathError::Bpffs`] when `/proc/self/mounts` cannot be read or the
/// mount fails.
pub fn ensure_bpffs(mountpoint: &Path) -> Result<(), DatapathError> {
    // Check-then-mount under a lock, so concurrent loads mount only once.
    static MOUNTING: Mutex<()> = Mutex::new(());
    let bpffs_error = |source| DatapathError::Bpffs {
        path: mountpoint.to_owned(),
        source,
    };
    let _guard = MOUNTING.lock().unwrap_or_else(PoisonError::into_inner);
    let mounts = fs::read_to_string("/proc/self/mounts").map_err(bpffs_error)?;
    let mounted = mounts.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let (_, target, fstype) = (fields.next(), fields.next(), fields.next());
        fstype == Some("bpf") && target.map(Path::new) == Some(mountpoint)
    });
    if mounted {
        return Ok(());
    }
    let target = CString::new(mountpoint.as_os_str().as_bytes())
        .map_err(|e| bpffs_error(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    // SAFETY: every pointer is a valid NUL-terminated string that outlives
    // the call (two literals and `target`); bpffs takes no mount data (null).
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(bpffs_error(io::Error::last_os_error()))
    }
}
