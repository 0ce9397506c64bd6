//! The kernel-backed datapath (aya).

use std::{
    ffi::CString,
    fs::{self, File},
    io,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, MapError},
    programs::{
        CgroupAttachMode, CgroupSockAddr, ProgramError, cgroup_sock_addr::CgroupSockAddrLinkId,
    },
    sys::SyscallError,
};

use super::{
    BACKENDS_MAP, BackendKey, BackendValue, CONNECT4_PROGRAM, DatapathError, DatapathOps,
    SERVICES_MAP, ServiceKey, ServiceValue,
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

/// The loaded socket-LB object: programs verified and loaded, maps pinned,
/// typed handles on the maps.
///
/// Dropping it detaches the programs (links are owned here) but keeps the
/// pinned maps, so the next load reuses their contents.
pub struct Datapath {
    ebpf: Ebpf,
    pin_dir: PathBuf,
    services: HashMap<MapData, ServiceKey, ServiceValue>,
    backends: HashMap<MapData, BackendKey, BackendValue>,
    attached: Vec<(PathBuf, CgroupSockAddrLinkId)>,
}

impl std::fmt::Debug for Datapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datapath")
            .field("pin_dir", &self.pin_dir)
            .field(
                "attached",
                &self.attached.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn program_error(op: &'static str) -> impl FnOnce(ProgramError) -> DatapathError {
    move |source| DatapathError::Program {
        name: CONNECT4_PROGRAM,
        op,
        source: Box::new(source),
    }
}

fn map_error(map: &'static str, op: &'static str) -> impl FnOnce(MapError) -> DatapathError {
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

fn is_not_found(error: &MapError) -> bool {
    matches!(error, MapError::KeyNotFound | MapError::ElementNotFound)
        || matches!(error, MapError::SyscallError(SyscallError { io_error, .. })
            if io_error.kind() == io::ErrorKind::NotFound)
}

impl Datapath {
    /// Loads the object, creating or reusing its maps pinned under `pin_dir`,
    /// and loads the `connect4` program into the kernel (the verifier runs
    /// here). When `pin_dir` is under [`BPFFS`] and bpffs is not mounted
    /// there, mounts it (as Cilium does). Nothing is attached yet; see [`Datapath::attach_cgroup`].
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
        let mut loader = EbpfLoader::new();
        loader
            .default_map_pin_directory(pin_dir)
            // No userspace log reader yet: switch aya-log statements off.
            .override_global("AYA_LOG_LEVEL", &0u8, false);
        let mut ebpf = match object {
            ObjectSource::Path(path) => loader.load_file(path),
            ObjectSource::Bytes(bytes) => loader.load(bytes),
        }
        .map_err(|source| DatapathError::Load {
            object: object.describe(),
            source: Box::new(source),
        })?;

        let program: &mut CgroupSockAddr = ebpf
            .program_mut(CONNECT4_PROGRAM)
            .ok_or(DatapathError::MissingProgram {
                name: CONNECT4_PROGRAM,
            })?
            .try_into()
            .map_err(program_error("load"))?;
        program.load().map_err(program_error("load"))?;

        let services = ebpf
            .take_map(SERVICES_MAP)
            .ok_or(DatapathError::MissingMap { name: SERVICES_MAP })?;
        let services = HashMap::try_from(services).map_err(map_error(SERVICES_MAP, "open"))?;
        let backends = ebpf
            .take_map(BACKENDS_MAP)
            .ok_or(DatapathError::MissingMap { name: BACKENDS_MAP })?;
        let backends = HashMap::try_from(backends).map_err(map_error(BACKENDS_MAP, "open"))?;

        Ok(Self {
            ebpf,
            pin_dir: pin_dir.to_owned(),
            services,
            backends,
            attached: Vec::new(),
        })
    }

    /// The directory the maps are pinned in.
    #[must_use]
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Attaches `connect4` to a cgroup2 directory (a node's cgroup root).
    /// Every socket in that cgroup's subtree is then load-balanced.
    ///
    /// The link lives as long as this `Datapath` (it is not pinned yet).
    ///
    /// # Errors
    /// [`DatapathError::Cgroup`] when the directory cannot be opened,
    /// [`DatapathError::Program`] when the kernel refuses the attachment.
    pub fn attach_cgroup(&mut self, cgroup: &Path) -> Result<(), DatapathError> {
        let file = File::open(cgroup).map_err(|source| DatapathError::Cgroup {
            path: cgroup.to_owned(),
            source,
        })?;
        let program = self.connect4()?;
        let link = program
            .attach(file, CgroupAttachMode::Single)
            .map_err(program_error("attach"))?;
        self.attached.push((cgroup.to_owned(), link));
        Ok(())
    }

    /// Detaches `connect4` from a cgroup it was attached to by this value.
    /// Detaching from a cgroup it is not attached to does nothing.
    ///
    /// # Errors
    /// [`DatapathError::Program`] when the kernel refuses.
    pub fn detach_cgroup(&mut self, cgroup: &Path) -> Result<(), DatapathError> {
        let Some(index) = self.attached.iter().position(|(path, _)| path == cgroup) else {
            return Ok(());
        };
        let (_, link) = self.attached.swap_remove(index);
        self.connect4()?
            .detach(link)
            .map_err(program_error("detach"))
    }

    fn connect4(&mut self) -> Result<&mut CgroupSockAddr, DatapathError> {
        self.ebpf
            .program_mut(CONNECT4_PROGRAM)
            .ok_or(DatapathError::MissingProgram {
                name: CONNECT4_PROGRAM,
            })?
            .try_into()
            .map_err(program_error("find"))
    }
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

    fn services(&self) -> Result<Vec<(ServiceKey, ServiceValue)>, DatapathError> {
        let mut entries = self
            .services
            .iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_error(SERVICES_MAP, "dump"))?;
        entries.sort_unstable_by_key(|(key, _)| *key);
        Ok(entries)
    }

    fn backends(&self) -> Result<Vec<(BackendKey, BackendValue)>, DatapathError> {
        let mut entries = self
            .backends
            .iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_error(BACKENDS_MAP, "dump"))?;
        entries.sort_unstable_by_key(|(key, _)| *key);
        Ok(entries)
    }
}

/// Removes sluice's pinned maps under `pin_dir`, then the directory if it is
/// empty. Missing pins are fine. Loaded programs keep their maps alive until
/// they are dropped; this only removes the names.
///
/// # Errors
/// [`DatapathError::Unpin`] when a pin exists but cannot be removed.
pub fn unpin(pin_dir: &Path) -> Result<(), DatapathError> {
    for name in [SERVICES_MAP, BACKENDS_MAP] {
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
