//! Kernel tests of the datapath (root, real kernel): the socket-LB object
//! passes the verifier, its maps pin and survive a reload, and `connect4`
//! rewrites a real connect to a service VIP.
//!
//! The object comes from `SLUICE_BPF_OBJ` (set by `cargo xtask test`), else
//! from `target/bpf/sluice-sock` (written by `cargo xtask build-ebpf`).
//!
//! Socket tests run their client in a child process (this test binary again,
//! running the ignored `connect_helper` test) that moves itself into a fresh
//! cgroup2 directory and a fresh network namespace with only loopback up, so
//! the VIP 10.96.0.10 is unroutable there: nothing ever leaves the machine,
//! even if the rewrite were broken.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use sluice_node_agent::datapath::{
    BACKENDS_MAP, BackendKey, BackendValue, Be16, Be32, Datapath, DatapathOps, ObjectSource,
    PROTO_TCP, SERVICES_MAP, ServiceKey, program_service, unpin,
};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const UNKNOWN_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 11);
const VIP_PORT: u16 = 80;
/// Listener port inside the child's private network namespace.
const BACKEND_PORT: u16 = 18_080;
const HELPER_ENV: &str = "SLUICE_CONNECT_HELPER";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Returns false (after saying why) when the test cannot run here.
fn can_run(test: &str) -> bool {
    if is_root() {
        true
    } else {
        println!("skipping {test}: needs root (loads eBPF programs, makes cgroups)");
        false
    }
}

fn object_path() -> PathBuf {
    if let Some(path) = std::env::var_os("SLUICE_BPF_OBJ") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "SLUICE_BPF_OBJ={} does not exist: run `cargo xtask build-ebpf`",
            path.display()
        );
        return path;
    }
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bpf/sluice-sock");
    assert!(
        default.is_file(),
        "no eBPF object: set SLUICE_BPF_OBJ or run `cargo xtask build-ebpf` (writes {})",
        default.display()
    );
    default
}

fn unique(name: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A pin directory under bpffs, unpinned on drop.
struct PinDir(PathBuf);

impl PinDir {
    fn new(name: &str) -> Self {
        Self(Path::new("/sys/fs/bpf/sluice-test").join(unique(name)))
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        if let Err(error) = unpin(&self.0) {
            eprintln!("cleanup: {error}");
        }
        let _ = std::fs::remove_dir(self.0.parent().unwrap());
    }
}

/// The cgroup2 mount point, from /proc/self/mounts.
fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.get(2) == Some(&"cgroup2"))
        .map(|fields| PathBuf::from(fields[1]))
        .expect("no cgroup2 mount in /proc/self/mounts")
}

/// A child cgroup2 directory, removed on drop.
struct Cgroup(PathBuf);

impl Cgroup {
    fn new(name: &str) -> Self {
        let path = cgroup2_root().join(unique(name));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Self(path)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir(&self.0) {
            eprintln!("cleanup: rmdir {}: {error}", self.0.display());
        }
    }
}

fn vip_key(vip: Ipv4Addr) -> ServiceKey {
    ServiceKey::frontend(Be32::from_ipv4(vip), Be16::from_host(VIP_PORT), PROTO_TCP)
}

fn loopback_backend() -> BackendValue {
    BackendValue::new(
        Be32::from_ipv4(Ipv4Addr::LOCALHOST),
        Be16::from_host(BACKEND_PORT),
        PROTO_TCP,
    )
}

/// Runs `connect_helper` in a child process inside `cgroup`.
fn run_helper(mode: &str, cgroup: &Path) {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "connect_helper",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, format!("{mode}:{}", cgroup.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("--- helper {mode} stdout\n{stdout}--- helper stderr\n{stderr}---");
    assert!(
        output.status.success(),
        "helper {mode} failed: {}",
        output.status
    );
    assert!(stdout.contains("1 passed"), "helper {mode} did not run");
}

#[test]
fn object_loads_verifies_and_pins_maps() {
    if !can_run("object_loads_verifies_and_pins_maps") {
        return;
    }
    let object = object_path();
    let pins = PinDir::new("load");
    let key = vip_key(VIP);
    {
        let mut dp = Datapath::load(ObjectSource::Path(&object), &pins.0)
            .unwrap_or_else(|e| panic!("load {}: {e:?}", object.display()));
        assert!(
            pins.0.join(SERVICES_MAP).exists(),
            "services map not pinned"
        );
        assert!(
            pins.0.join(BACKENDS_MAP).exists(),
            "backends map not pinned"
        );

        dp.upsert_backend(BackendKey { id: 1 }, loopback_backend())
            .unwrap();
        program_service(&mut dp, key, 0, 1, &[1]).unwrap();
        assert_eq!(dp.services().unwrap().len(), 2);
        assert_eq!(
            dp.backends().unwrap(),
            vec![(BackendKey { id: 1 }, loopback_backend())]
        );
        dp.remove_backend(&BackendKey { id: 42 }).unwrap();
    }
    // A restarted agent reuses the pinned maps, entries included.
    let bytes = std::fs::read(&object).unwrap();
    let aligned = aligned_copy(&bytes);
    let dp = Datapath::load(ObjectSource::Bytes(aligned.as_bytes()), &pins.0).unwrap();
    let services = dp.services().unwrap();
    assert_eq!(
        services.len(),
        2,
        "pinned entries lost on reload: {services:?}"
    );
    assert_eq!(services[0].0, key);
    assert_eq!(services[0].1.count, 1);
    assert_eq!(dp.backends().unwrap().len(), 1);
}

/// ELF bytes copied into 8-byte aligned storage.
struct Aligned(Vec<u64>, usize);

impl Aligned {
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: the Vec<u64> owns at least `self.1` initialised bytes (it
        // was sized to hold them), u8 has no alignment or validity
        // requirements, and the slice borrows `self`.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u8>(), self.1) }
    }
}

fn aligned_copy(bytes: &[u8]) -> Aligned {
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
        let mut buf = [0u8; 8];
        buf[..chunk.len()].copy_from_slice(chunk);
        *word = u64::from_ne_bytes(buf);
    }
    Aligned(words, bytes.len())
}

#[test]
fn connect4_rewrites_vip_to_backend() {
    if !can_run("connect4_rewrites_vip_to_backend") {
        return;
    }
    let object = object_path();
    let pins = PinDir::new("rewrite");
    let cgroup = Cgroup::new("sluice-test-rewrite");
    let mut dp = Datapath::load(ObjectSource::Path(&object), &pins.0).unwrap();
    dp.upsert_backend(BackendKey { id: 1 }, loopback_backend())
        .unwrap();
    program_service(&mut dp, vip_key(VIP), 0, 1, &[1]).unwrap();
    dp.attach_cgroup(&cgroup.0).unwrap();

    run_helper("rewrite", &cgroup.0);

    dp.detach_cgroup(&cgroup.0).unwrap();
}

#[test]
fn connect4_rejects_service_without_backends() {
    if !can_run("connect4_rejects_service_without_backends") {
        return;
    }
    let object = object_path();
    let pins = PinDir::new("reject");
    let cgroup = Cgroup::new("sluice-test-reject");
    let mut dp = Datapath::load(ObjectSource::Path(&object), &pins.0).unwrap();
    program_service(&mut dp, vip_key(VIP), 0, 1, &[]).unwrap();
    dp.attach_cgroup(&cgroup.0).unwrap();

    run_helper("reject", &cgroup.0);
}

/// Not a test on its own: the client side of the socket tests, run by them in
/// a child process. Moves this process into the given cgroup and this thread
/// into a fresh network namespace, then connects.
#[test]
#[ignore = "run by the connect4 tests in a child process"]
fn connect_helper() {
    let Ok(spec) = std::env::var(HELPER_ENV) else {
        return;
    };
    let (mode, cgroup) = spec.split_once(':').unwrap();
    std::fs::write(
        Path::new(cgroup).join("cgroup.procs"),
        std::process::id().to_string(),
    )
    .unwrap();
    // SAFETY: unshare only changes this thread's namespaces; it touches no
    // memory of ours. Sockets made afterwards on this thread (and children it
    // spawns) live in the new namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
    let status = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(status.success(), "ip link set lo up: {status}");

    let vip = SocketAddr::V4(SocketAddrV4::new(VIP, VIP_PORT));
    let unknown = SocketAddr::V4(SocketAddrV4::new(UNKNOWN_VIP, VIP_PORT));
    let backend = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, BACKEND_PORT));
    let timeout = Duration::from_secs(3);
    match mode {
        "rewrite" => {
            let listener = TcpListener::bind(backend).unwrap();
            // Not a service: passes untouched.
            let direct = TcpStream::connect_timeout(&backend, timeout).unwrap();
            drop(listener.accept().unwrap());
            drop(direct);

            let mut client = TcpStream::connect_timeout(&vip, timeout)
                .unwrap_or_else(|e| panic!("connect to VIP {vip}: {e}"));
            let (mut server, peer) = listener.accept().unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
            // No getpeername4 hook yet: the app sees the backend address.
            assert_eq!(client.peer_addr().unwrap(), backend);
            server.write_all(b"hello").unwrap();
            let mut buf = [0u8; 5];
            client.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"hello");
            println!("connect to {vip} reached {backend}");
        }
        "reject" => {
            let rejected = TcpStream::connect_timeout(&vip, timeout).unwrap_err();
            assert_eq!(
                rejected.kind(),
                std::io::ErrorKind::PermissionDenied,
                "{rejected}"
            );
            // An address that is no service is left alone: the kernel itself
            // answers (no route in this namespace).
            let unrouted = TcpStream::connect_timeout(&unknown, timeout).unwrap_err();
            assert_ne!(
                unrouted.kind(),
                std::io::ErrorKind::PermissionDenied,
                "{unrouted}"
            );
            println!("connect to {vip}: {rejected} (rejected); {unknown}: {unrouted} (untouched)");
        }
        other => panic!("unknown helper mode {other}"),
    }
}
