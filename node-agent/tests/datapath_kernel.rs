//! Kernel tests of the datapath (root, real kernel): the socket-LB object
//! (connect4, sendmsg4, recvmsg4, getpeername4) passes the verifier, its
//! maps pin and survive a reload, `connect4` rewrites a real connect to a
//! service VIP, and a service without backends is refused with ECONNREFUSED.
//! The netns tests send TCP and UDP through a `ClusterIP` to a server in
//! another network namespace across a veth pair, and check restart safety:
//! pinned hooks outlive the `Datapath`, a reload swaps programs with no
//! window, and teardown leaves nothing.
//!
//! The programs' aya-log records reach the `log` facade (target
//! `sluice_ebpf`) through the task `Datapath::load` spawns in a tokio
//! runtime.
//!
//! Services are programmed the way the agent programs them: a [`Desired`]
//! state applied by the proxy's [`Reconciler`]. Only the log test writes raw
//! map entries, to fake the half-written states the reconciler never leaves.
//!
//! The object comes from `SLUICE_BPF_OBJ` (set by `cargo xtask test`), else
//! from `target/bpf/sluice-sock` (written by `cargo xtask build-ebpf`). A test
//! that lacks root, a tool or the object is skipped, or fails under CI (see
//! `sluice_test_util`); every shell-out a check depends on is checked.
//!
//! Socket tests run their client in a child process (this test binary again,
//! running the ignored `connect_helper` test) that moves itself into a fresh
//! cgroup2 directory and either a fresh network namespace with only loopback
//! up, or the "client" namespace of a [`Topology`] (veth 10.200.0.1 <->
//! 10.200.0.2 in the "server" namespace, no default route). The VIPs are
//! unroutable there: nothing ever leaves the machine, even if the rewrite
//! were broken.

use std::{
    fs::File,
    io::{BufRead, BufReader, Read, Write},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    sync::{
        Arc, Condvar, Mutex, Once, PoisonError,
        atomic::{AtomicBool, AtomicU32, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use sluice_node_agent::datapath::{
    BACKENDS_MAP, BPF_LOG_TARGET, BackendKey, BackendValue, Be16, Be32, Datapath, DatapathOps,
    ObjectSource, PROTO_TCP, PinnedMaps, REV_NAT_MAP, RevNatKey, RevNatValue, SERVICES_MAP,
    SOCK_REV_NAT_MAP, ServiceKey, ServiceValue, cgroup2_mount, hooks, unpin,
};
use sluice_node_agent::proxy::{
    Backend, Desired, Frontend, FrontendSpec, Protocol, Reconciler, ServicePortName, Stats,
};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const UNKNOWN_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 11);
const VIP_PORT: u16 = 80;
/// The log test's VIP (no other test uses it, so its records are its own):
/// port 80 has no backends, 81 a frontend whose slot is missing, 82 a slot
/// whose backend is missing.
const LOG_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 12);
/// Listener port inside the child's private network namespace.
const BACKEND_PORT: u16 = 18_080;
const HELPER_ENV: &str = "SLUICE_CONNECT_HELPER";
/// The affinity test's VIPs: the same four loopback backends behind one with
/// `sessionAffinity: ClientIP` and one without.
const AFFINITY_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 13);
const SPREAD_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 14);
/// Connects the affinity helper makes to each VIP.
const AFFINITY_CONNECTS: usize = 24;

/// The netns tests' `ClusterIP` (TCP port 80, UDP port 53).
const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 7, 7);
/// A `ClusterIP` whose service has no backends (TCP 80, UDP 53).
const EMPTY_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 7, 8);
/// An address that is no service.
const NOT_A_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 7, 9);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
const TCP_PORT: u16 = 80;
const UDP_PORT: u16 = 53;
const SERVER_TCP_PORT: u16 = 8080;
const SERVER_UDP_PORT: u16 = 5353;

/// The helper's line once its loop connects (see `netns_hooks_survive_agent_restart`).
const LOOP_READY: &str = "tcp-loop: connecting through the hooks";
/// Connects the loop makes before it says [`LOOP_READY`].
const LOOP_CONNECTS_BEFORE: u32 = 5;
/// Connects the loop makes after it learnt that the program swap is done.
const LOOP_CONNECTS_AFTER: u32 = 20;
/// What the test writes to the loop's stdin once the swap is done.
const LOOP_SWAPPED: &str = "swapped";

/// The eBPF object, when `test` can run here: it needs root (it loads eBPF
/// programs and makes cgroups), every tool in `tools`, and the object. When
/// not, the test is skipped (and must return), or fails under CI.
fn preconditions(test: &str, tools: &[&str]) -> Option<PathBuf> {
    if !sluice_test_util::require_root_and_tools(test, tools) {
        return None;
    }
    let object = object_path();
    if !sluice_test_util::require(
        test,
        object.is_file(),
        "the eBPF object (SLUICE_BPF_OBJ, or target/bpf/sluice-sock from `cargo xtask build-ebpf`)",
    ) {
        return None;
    }
    Some(object)
}

fn object_path() -> PathBuf {
    if let Some(path) = std::env::var_os("SLUICE_BPF_OBJ") {
        let path = PathBuf::from(path);
        // Named explicitly, so a wrong path is a mistake, not a missing tool.
        assert!(
            path.is_file(),
            "SLUICE_BPF_OBJ={} does not exist: run `cargo xtask build-ebpf`",
            path.display()
        );
        return path;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bpf/sluice-sock")
}

/// One service port: `(vip, port, protocol, backends as (address, port))`.
type ServicePort<'a> = (Ipv4Addr, u16, Protocol, &'a [(Ipv4Addr, u16)]);

/// A desired state of one service port per entry, as the agent's
/// `desired()` would compute it from the equivalent API objects.
fn state(services: &[ServicePort<'_>]) -> Desired {
    let mut desired = Desired::default();
    for (vip, port, protocol, backends) in services {
        desired.insert(
            Frontend {
                vip: *vip,
                port: *port,
                protocol: *protocol,
            },
            FrontendSpec::new(
                ServicePortName::new("default", &format!("svc-{vip}-{port}"), ""),
                backends.iter().map(|(addr, port)| Backend {
                    addr: *addr,
                    port: *port,
                }),
            ),
        );
    }
    desired
}

/// Programs `desired` the way a (re)started agent does: a fresh reconciler.
fn program(dp: &mut Datapath, desired: &Desired) -> Stats {
    Reconciler::new()
        .apply(desired, dp)
        .unwrap_or_else(|e| panic!("apply: {e:?}"))
}

/// The VIP:80/TCP service to the loopback backend.
fn loopback_service() -> Desired {
    state(&[(
        VIP,
        VIP_PORT,
        Protocol::Tcp,
        &[(Ipv4Addr::LOCALHOST, BACKEND_PORT)],
    )])
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

/// A child cgroup2 directory, removed on drop.
struct Cgroup(PathBuf);

impl Cgroup {
    fn new(name: &str) -> Self {
        let path = cgroup2_mount().expect("cgroup2 mount").join(unique(name));
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

/// Runs `connect_helper` in a child process inside `cgroup`, in a fresh
/// network namespace with loopback only.
fn run_helper(mode: &str, cgroup: &Path) {
    run_helper_in(mode, cgroup, None);
}

fn helper_command(mode: &str, cgroup: &Path, netns: Option<&str>) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "connect_helper",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            HELPER_ENV,
            format!("{mode}:{}:{}", cgroup.display(), netns.unwrap_or("")),
        );
    command
}

/// Runs `connect_helper` in a child process inside `cgroup` and, if given,
/// the named network namespace (else a fresh one).
fn run_helper_in(mode: &str, cgroup: &Path, netns: Option<&str>) {
    let output = helper_command(mode, cgroup, netns).output().unwrap();
    check_helper(
        mode,
        output.status,
        &String::from_utf8_lossy(&output.stdout),
        &String::from_utf8_lossy(&output.stderr),
    );
}

fn check_helper(mode: &str, status: ExitStatus, stdout: &str, stderr: &str) {
    println!("--- helper {mode} stdout\n{stdout}--- helper stderr\n{stderr}---");
    assert!(status.success(), "helper {mode} failed: {status}");
    assert!(stdout.contains("1 passed"), "helper {mode} did not run");
}

#[test]
fn object_loads_verifies_and_pins_maps() {
    let Some(object) = preconditions("object_loads_verifies_and_pins_maps", &[]) else {
        return;
    };
    let pins = PinDir::new("load");
    let key = vip_key(VIP);
    let desired = loopback_service();
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
        assert!(pins.0.join(REV_NAT_MAP).exists(), "rev-nat map not pinned");
        assert!(
            pins.0.join(SOCK_REV_NAT_MAP).exists(),
            "socket rev-nat map not pinned"
        );
        // Loaded, not attached: no hooks pinned.
        assert!(hooks(&pins.0).unwrap().is_empty());

        let rev_nat = RevNatValue::new(Be32::from_ipv4(VIP), Be16::from_host(VIP_PORT));
        dp.upsert_rev_nat(RevNatKey::new(1), rev_nat).unwrap();
        dp.upsert_rev_nat(RevNatKey::new(2), rev_nat).unwrap();
        dp.remove_rev_nat(&RevNatKey::new(2)).unwrap();
        dp.remove_rev_nat(&RevNatKey::new(2)).unwrap();
        assert_eq!(dp.rev_nats().unwrap(), vec![(RevNatKey::new(1), rev_nat)]);

        dp.upsert_backend(BackendKey { id: 1 }, loopback_backend())
            .unwrap();
        // The agent's reconciler adopts backend 1 and rev-NAT 1 (same
        // values) and writes only the slot and the frontend.
        let stats = program(&mut dp, &desired);
        assert_eq!(
            stats,
            Stats {
                frontends_added: 1,
                slots_written: 1,
                frontends_changed: 1,
                ..Stats::default()
            }
        );
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
    let mut dp = Datapath::load(ObjectSource::Bytes(aligned.as_bytes()), &pins.0).unwrap();
    let services = dp.services().unwrap();
    assert_eq!(
        services.len(),
        2,
        "pinned entries lost on reload: {services:?}"
    );
    assert_eq!(services[0].0, key);
    assert_eq!(services[0].1.count, 1);
    assert_eq!(dp.backends().unwrap().len(), 1);
    assert_eq!(dp.rev_nats().unwrap().len(), 1);
    // Its first pass adopts them all: nothing to write.
    let stats = program(&mut dp, &desired);
    assert!(stats.is_empty(), "a restarted agent rewrote {stats}");
    // And prunes through the kernel maps what is no longer wanted.
    let stats = program(&mut dp, &Desired::default());
    assert_eq!(stats.writes(), 4, "{stats}");
    assert!(dp.services().unwrap().is_empty());
    assert!(dp.backends().unwrap().is_empty());
    assert!(dp.rev_nats().unwrap().is_empty());
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
    let Some(object) = preconditions("connect4_rewrites_vip_to_backend", &["ip"]) else {
        return;
    };
    let pins = PinDir::new("rewrite");
    let cgroup = Cgroup::new("sluice-test-rewrite");
    let mut dp = Datapath::load(ObjectSource::Path(&object), &pins.0).unwrap();
    program(&mut dp, &loopback_service());
    dp.attach_cgroup(&cgroup.0).unwrap();
    assert_eq!(dp.hooks().unwrap().len(), 4);

    run_helper("rewrite", &cgroup.0);

    dp.detach_cgroup(&cgroup.0).unwrap();
    assert!(dp.hooks().unwrap().is_empty());
}

#[test]
fn connect4_session_affinity_keeps_one_client_on_one_backend() {
    let Some(object) = preconditions(
        "connect4_session_affinity_keeps_one_client_on_one_backend",
        &["ip"],
    ) else {
        return;
    };
    let pins = PinDir::new("affinity");
    let cgroup = Cgroup::new("sluice-test-affinity");
    let mut dp = Datapath::load(ObjectSource::Path(&object), &pins.0).unwrap();
    let backends: Vec<Backend> = (0..4)
        .map(|i| Backend {
            addr: Ipv4Addr::LOCALHOST,
            port: BACKEND_PORT + i,
        })
        .collect();
    let mut desired = Desired::default();
    for (vip, timeout_s) in [(AFFINITY_VIP, 600), (SPREAD_VIP, 0)] {
        desired.insert(
            Frontend {
                vip,
                port: VIP_PORT,
                protocol: Protocol::Tcp,
            },
            FrontendSpec::new(
                ServicePortName::new("default", &format!("svc-{vip}"), ""),
                backends.iter().copied(),
            )
            .with_affinity(timeout_s),
        );
    }
    program(&mut dp, &desired);
    let pinned = PinnedMaps::open(&pins.0).unwrap();
    let sticky = pinned.service(&vip_key(AFFINITY_VIP)).unwrap().unwrap();
    assert_eq!(sticky.affinity_timeout_s(), Some(600));
    dp.attach_cgroup(&cgroup.0).unwrap();

    run_helper("affinity", &cgroup.0);

    // One client (the helper's network namespace), one entry, for the sticky
    // service only, naming a slot that holds the backend it names.
    let entries = pinned.sock_affinities().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let (key, value) = entries[0];
    assert_eq!(key.rev_nat_id, sticky.rev_nat_id);
    assert_ne!(key.netns_cookie, 0);
    let slot = pinned
        .service(&vip_key(AFFINITY_VIP).with_slot(value.slot))
        .unwrap()
        .unwrap_or_else(|| panic!("slot {} of {AFFINITY_VIP} missing", value.slot));
    assert_eq!(slot.backend_id, value.backend_id);
    dp.detach_cgroup(&cgroup.0).unwrap();
}

#[test]
fn connect4_rejects_service_without_backends() {
    let Some(object) = preconditions("connect4_rejects_service_without_backends", &["ip"]) else {
        return;
    };
    let pins = PinDir::new("reject");
    let cgroup = Cgroup::new("sluice-test-reject");
    let mut dp = Datapath::load(ObjectSource::Path(&object), &pins.0).unwrap();
    program(&mut dp, &state(&[(VIP, VIP_PORT, Protocol::Tcp, &[])]));
    dp.attach_cgroup(&cgroup.0).unwrap();

    run_helper("reject", &cgroup.0);
    dp.detach_all().unwrap();
}

/// A `log` logger keeping every record: (level, target, message), and
/// waking waiters on each.
struct Capture {
    records: Mutex<Vec<(log::Level, String, String)>>,
    arrived: Condvar,
}

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((
                record.level(),
                record.target().to_owned(),
                record.args().to_string(),
            ));
        self.arrived.notify_all();
    }

    fn flush(&self) {}
}

static CAPTURE: Capture = Capture {
    records: Mutex::new(Vec::new()),
    arrived: Condvar::new(),
};

/// Installs [`CAPTURE`] as this process's logger at level trace (once).
fn capture_logs() -> &'static Capture {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&CAPTURE).expect("another logger is installed");
        log::set_max_level(log::LevelFilter::Trace);
    });
    &CAPTURE
}

/// Waits for a record with `level`, the programs' target and exactly
/// `message`: woken by each record that arrives, failing after 5 s without it.
fn wait_for_record(capture: &Capture, level: log::Level, message: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut records = capture
        .records
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    loop {
        if records
            .iter()
            .any(|(l, target, m)| *l == level && target == BPF_LOG_TARGET && m == message)
        {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no {level} record {message:?} from {BPF_LOG_TARGET}; got {records:#?}"
        );
        records = capture
            .arrived
            .wait_timeout(records, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

#[test]
fn program_log_records_reach_userspace() {
    let Some(object) = preconditions("program_log_records_reach_userspace", &["ip"]) else {
        return;
    };
    let capture = capture_logs();
    // As in the agent: loaded inside a tokio runtime, which then runs the
    // task reading the programs' log buffer.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let pins = PinDir::new("log");
    let cgroup = Cgroup::new("sluice-test-log");
    let mut dp = Datapath::load(ObjectSource::Path(&object), &pins.0).unwrap();
    let key = |port: u16| {
        ServiceKey::frontend(Be32::from_ipv4(LOG_VIP), Be16::from_host(port), PROTO_TCP)
    };
    // :80 has no backends (programmed as the agent does).
    program(&mut dp, &state(&[(LOG_VIP, 80, Protocol::Tcp, &[])]));
    // The reconciler never leaves the next two states (its write order
    // forbids them), so they are faked with raw map writes.
    // :81 claims one backend but its slot is missing (as if mid-update).
    dp.upsert_service(key(81), ServiceValue::frontend(1, 0, 2))
        .unwrap();
    // :82's slot names backend 7, which is not in the backends map.
    dp.upsert_service(key(82).with_slot(1), ServiceValue::backend_slot(7, 3))
        .unwrap();
    dp.upsert_service(key(82), ServiceValue::frontend(1, 0, 3))
        .unwrap();
    dp.attach_cgroup(&cgroup.0).unwrap();
    // With every level compiled in, all four programs passed the verifier;
    // show their size for the record.
    for hook in dp.hooks().unwrap() {
        let info = aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .find(|info| info.id() == hook.prog_id)
            .unwrap_or_else(|| panic!("program of {hook:?} not loaded"));
        println!(
            "{}: {:?} instructions verified, {:?} bytes translated",
            hook.program,
            info.verified_instruction_count(),
            info.size_translated()
        );
    }

    run_helper("log", &cgroup.0);

    wait_for_record(
        capture,
        log::Level::Debug,
        "service 10.96.0.12:80 proto 6 has no backends: refused",
    );
    wait_for_record(
        capture,
        log::Level::Warn,
        "service 10.96.0.12:81 proto 6: slot 1 of 1 missing (mid-update?): refused",
    );
    wait_for_record(
        capture,
        log::Level::Warn,
        "service 10.96.0.12:82 proto 6: backend 7 (slot 1) missing (mid-update?): refused",
    );
    dp.detach_all().unwrap();
}

/// Not a test on its own: the client side of the socket tests, run by them in
/// a child process. Moves this process into the given cgroup and this thread
/// into the given (or a fresh) network namespace, then connects.
#[test]
#[ignore = "run by the socket tests in a child process"]
fn connect_helper() {
    // Only a parent test runs this (with --ignored --exact): without its instructions there
    // is nothing to test, and that must not read as a pass.
    let spec = std::env::var(HELPER_ENV).unwrap_or_else(|_| {
        panic!("connect_helper runs only as a socket test's child ({HELPER_ENV} unset)")
    });
    let mut parts = spec.splitn(3, ':');
    let (mode, cgroup, netns) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap_or(""),
    );
    std::fs::write(
        Path::new(cgroup).join("cgroup.procs"),
        std::process::id().to_string(),
    )
    .unwrap();
    if netns.is_empty() {
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
        sluice_test_util::run(Command::new("ip").args(["link", "set", "lo", "up"]));
    } else {
        enter_netns(netns);
        netns_client(mode);
        return;
    }

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
            // getpeername4: the app sees the VIP, not the backend.
            assert_eq!(client.peer_addr().unwrap(), vip);
            server.write_all(b"hello").unwrap();
            let mut buf = [0u8; 5];
            client.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"hello");
            println!("connect to {vip} reached {backend}");
        }
        "reject" => {
            let started = std::time::Instant::now();
            let rejected = TcpStream::connect_timeout(&vip, timeout).unwrap_err();
            assert_eq!(
                rejected.raw_os_error(),
                Some(libc::ECONNREFUSED),
                "{rejected}"
            );
            assert!(started.elapsed() < Duration::from_secs(1));
            // An address that is no service is left alone: the kernel itself
            // answers (no route in this namespace).
            let unrouted = TcpStream::connect_timeout(&unknown, timeout).unwrap_err();
            assert_ne!(
                unrouted.raw_os_error(),
                Some(libc::ECONNREFUSED),
                "{unrouted}"
            );
            println!("connect to {vip}: {rejected} (rejected); {unknown}: {unrouted} (untouched)");
        }
        "log" => {
            for port in [80, 81, 82] {
                let addr = SocketAddr::V4(SocketAddrV4::new(LOG_VIP, port));
                let error = TcpStream::connect_timeout(&addr, timeout).unwrap_err();
                assert_eq!(
                    error.raw_os_error(),
                    Some(libc::ECONNREFUSED),
                    "{addr}: {error}"
                );
            }
            println!("{LOG_VIP}:80-82 refused");
        }
        "affinity" => {
            let listeners: Vec<TcpListener> = (0..4)
                .map(|i| {
                    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, BACKEND_PORT + i))
                        .unwrap_or_else(|e| panic!("bind {}: {e}", BACKEND_PORT + i));
                    listener.set_nonblocking(true).unwrap();
                    listener
                })
                .collect();
            let seen = |vip: Ipv4Addr| -> Vec<u16> {
                let addr = SocketAddr::V4(SocketAddrV4::new(vip, VIP_PORT));
                (0..AFFINITY_CONNECTS)
                    .map(|_| {
                        let client = TcpStream::connect_timeout(&addr, timeout)
                            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
                        assert_eq!(client.peer_addr().unwrap(), addr);
                        accepted_by(&listeners, timeout)
                    })
                    .collect()
            };
            let sticky = seen(AFFINITY_VIP);
            let spread = seen(SPREAD_VIP);
            let distinct = |ports: &[u16]| {
                ports
                    .iter()
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
            };
            assert_eq!(
                distinct(&sticky),
                1,
                "with affinity, one backend: {sticky:?}"
            );
            // Without affinity the same backends share the connects (all 24 on one
            // of four backends by chance: 4^-23), so the check above can fail.
            assert!(
                distinct(&spread) > 1,
                "without affinity, spread: {spread:?}"
            );
            println!("affinity: {sticky:?}; no affinity: {spread:?}");
        }
        other => panic!("unknown helper mode {other}"),
    }
}

/// The port of the listener that accepts the next connection (listeners
/// are non-blocking; polled until `timeout`).
fn accepted_by(listeners: &[TcpListener], timeout: Duration) -> u16 {
    let deadline = Instant::now() + timeout;
    loop {
        for listener in listeners {
            match listener.accept() {
                Ok(_) => return listener.local_addr().unwrap().port(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("accept: {e}"),
            }
        }
        assert!(
            Instant::now() < deadline,
            "no listener accepted in {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------
// Two network namespaces joined by a veth pair.

/// Runs `ip args...`, panicking on failure.
fn ip(args: &[&str]) {
    sluice_test_util::run(Command::new("ip").args(args));
}

/// Moves this thread into the named network namespace (`/run/netns/<name>`).
fn enter_netns(name: &str) {
    let file = File::open(Path::new("/run/netns").join(name))
        .unwrap_or_else(|e| panic!("open netns {name}: {e}"));
    // SAFETY: `file` is an open namespace file for the whole call; setns
    // changes only this thread's network namespace and touches no memory.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {name}: {}", std::io::Error::last_os_error());
}

/// "client" (10.200.0.1) and "server" (10.200.0.2) namespaces joined by a
/// veth pair; no default routes. Deleted on drop.
struct Topology {
    client: String,
    server: String,
}

impl Topology {
    fn new(name: &str) -> Self {
        let topology = Self {
            client: unique(&format!("slc-{name}-c")),
            server: unique(&format!("slc-{name}-s")),
        };
        ip(&["netns", "add", &topology.client]);
        ip(&["netns", "add", &topology.server]);
        let (c, s) = (topology.client.as_str(), topology.server.as_str());
        ip(&[
            "-n", c, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", s,
        ]);
        for (ns, dev, addr) in [(c, "veth0", CLIENT_IP), (s, "veth1", SERVER_IP)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        topology
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.client, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A TCP and UDP server in the server namespace: TCP answers "hello" to
/// each connection, UDP echoes "pong:<datagram>" to the sender.
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(netns: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let netns = netns.to_owned();
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            enter_netns(&netns);
            let tcp = TcpListener::bind((SERVER_IP, SERVER_TCP_PORT)).unwrap();
            tcp.set_nonblocking(true).unwrap();
            let udp = UdpSocket::bind((SERVER_IP, SERVER_UDP_PORT)).unwrap();
            udp.set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 512];
            while !stop_flag.load(Ordering::Relaxed) {
                while let Ok((mut stream, _)) = tcp.accept() {
                    let _ = stream.write_all(b"hello");
                }
                if let Ok((len, from)) = udp.recv_from(&mut buf) {
                    let mut reply = b"pong:".to_vec();
                    reply.extend_from_slice(&buf[..len]);
                    let _ = udp.send_to(&reply, from);
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("server did not start");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Programs the netns tests' services with a fresh reconciler (an agent's
/// first pass) and returns them: `CLUSTER_IP:80/TCP` and `:53/UDP` to the
/// server, `EMPTY_IP:80/TCP` and `:53/UDP` with no backends.
fn program_netns_services(dp: &mut Datapath) -> Desired {
    let desired = state(&[
        (
            CLUSTER_IP,
            TCP_PORT,
            Protocol::Tcp,
            &[(SERVER_IP, SERVER_TCP_PORT)],
        ),
        (
            CLUSTER_IP,
            UDP_PORT,
            Protocol::Udp,
            &[(SERVER_IP, SERVER_UDP_PORT)],
        ),
        (EMPTY_IP, TCP_PORT, Protocol::Tcp, &[]),
        (EMPTY_IP, UDP_PORT, Protocol::Udp, &[]),
    ]);
    let stats = program(dp, &desired);
    assert_eq!(
        stats,
        Stats {
            frontends_added: 4,
            slots_written: 2,
            backends_written: 2,
            rev_nats_written: 4,
            frontends_changed: 4,
            ..Stats::default()
        }
    );
    desired
}

#[test]
fn netns_tcp_and_udp_through_cluster_ip() {
    let Some(object) = preconditions("netns_tcp_and_udp_through_cluster_ip", &["ip"]) else {
        return;
    };
    let topology = Topology::new("lb");
    let _server = Server::start(&topology.server);
    let pins = PinDir::new("netns");
    let cgroup = Cgroup::new("sluice-test-netns");
    let mut dp = Datapath::load(ObjectSource::Path(&object), &pins.0).unwrap();
    program_netns_services(&mut dp);
    dp.attach_cgroup(&cgroup.0).unwrap();

    run_helper_in("tcp", &cgroup.0, Some(&topology.client));
    run_helper_in("udp", &cgroup.0, Some(&topology.client));
    run_helper_in("reject", &cgroup.0, Some(&topology.client));

    dp.detach_all().unwrap();
}

#[test]
fn netns_hooks_survive_agent_restart() {
    let Some(object) = preconditions("netns_hooks_survive_agent_restart", &["ip"]) else {
        return;
    };
    let topology = Topology::new("rs");
    let _server = Server::start(&topology.server);
    let pins = PinDir::new("restart");
    let cgroup = Cgroup::new("sluice-test-restart");

    // First agent: load, program, attach, exit.
    let (desired, before) = {
        let mut dp = Datapath::load(ObjectSource::Path(&object), &pins.0).unwrap();
        let desired = program_netns_services(&mut dp);
        dp.attach_cgroup(&cgroup.0).unwrap();
        (desired, dp.hooks().unwrap())
    };
    assert_eq!(before.len(), 4, "{before:?}");
    assert_eq!(hooks(&pins.0).unwrap(), before, "hooks changed on drop");
    // The hooks outlived the agent.
    run_helper_in("tcp", &cgroup.0, Some(&topology.client));

    // Second agent, while a client connects in a loop: reuse the pinned
    // links; the loop must never miss the hook. The swap starts only once
    // the loop says it connects (through the first agent's programs), and
    // the loop ends only after LOOP_CONNECTS_AFTER more connects that began
    // after it was told the swap was done: no clock decides whether the
    // swap happened mid-loop.
    let mut looping = helper_command("tcp-loop", &cgroup.0, Some(&topology.client))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child_stderr = looping.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = child_stderr.read_to_string(&mut text);
        text
    });
    let mut lines = BufReader::new(looping.stdout.take().unwrap()).lines();
    let mut stdout = String::new();
    loop {
        let Some(Ok(line)) = lines.next() else {
            let status = looping.wait().unwrap();
            panic!(
                "tcp-loop ended ({status}) before it connected:\n{stdout}\n{}",
                stderr.join().unwrap()
            );
        };
        stdout.push_str(&line);
        stdout.push('\n');
        if line.contains(LOOP_READY) {
            break;
        }
    }
    let mut dp = Datapath::load(ObjectSource::Path(&object), &pins.0).unwrap();
    dp.attach_cgroup(&cgroup.0).unwrap();
    let after = dp.hooks().unwrap();
    let mut stdin = looping.stdin.take().unwrap();
    writeln!(stdin, "{LOOP_SWAPPED}").unwrap();
    drop(stdin);
    for line in lines {
        stdout.push_str(&line.unwrap());
        stdout.push('\n');
    }
    let status = looping.wait().unwrap();
    check_helper("tcp-loop", status, &stdout, &stderr.join().unwrap());
    assert_eq!(after.len(), 4, "{after:?}");
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(old.program, new.program);
        assert_eq!(old.link_id, new.link_id, "link not reused: {old:?} {new:?}");
        assert_ne!(old.prog_id, new.prog_id, "program not replaced: {new:?}");
        assert_eq!(old.cgroup_id, new.cgroup_id);
    }
    // Pinned maps kept their entries: no reprogramming needed.
    assert_eq!(dp.rev_nats().unwrap().len(), 4);
    let rewrites = program(&mut dp, &desired);
    assert!(
        rewrites.is_empty(),
        "the restarted agent rewrote {rewrites}"
    );
    run_helper_in("tcp", &cgroup.0, Some(&topology.client));
    run_helper_in("udp", &cgroup.0, Some(&topology.client));

    // Full teardown leaves no pins and no hooks.
    dp.detach_all().unwrap();
    drop(dp);
    unpin(&pins.0).unwrap();
    assert!(!pins.0.exists(), "pin dir left behind");
    assert!(hooks(&pins.0).unwrap().is_empty());
    run_helper_in("untouched", &cgroup.0, Some(&topology.client));
}

/// The client side of the netns tests, in the client namespace and the
/// test cgroup.
fn netns_client(mode: &str) {
    let vip_tcp = SocketAddr::V4(SocketAddrV4::new(CLUSTER_IP, TCP_PORT));
    let vip_udp = SocketAddr::V4(SocketAddrV4::new(CLUSTER_IP, UDP_PORT));
    let empty_tcp = SocketAddr::V4(SocketAddrV4::new(EMPTY_IP, TCP_PORT));
    let empty_udp = SocketAddr::V4(SocketAddrV4::new(EMPTY_IP, UDP_PORT));
    let timeout = Duration::from_secs(3);
    match mode {
        "tcp" => {
            tcp_via_vip(vip_tcp, timeout);
            println!("tcp to {vip_tcp} ok");
        }
        "tcp-loop" => {
            // Says LOOP_READY once connects go through, then connects until
            // the test writes LOOP_SWAPPED on stdin, then LOOP_CONNECTS_AFTER
            // more. Every connect must succeed: the hooks were there before,
            // during and after the swap.
            let (swapped_tx, swapped_rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut line = String::new();
                if std::io::stdin().read_line(&mut line).is_ok() && line.trim() == LOOP_SWAPPED {
                    let _ = swapped_tx.send(());
                }
            });
            let deadline = Instant::now() + Duration::from_mins(1);
            let mut count = 0u32;
            let mut swapped_at = None;
            loop {
                tcp_via_vip(vip_tcp, timeout);
                count += 1;
                if count == LOOP_CONNECTS_BEFORE {
                    println!("{LOOP_READY}");
                }
                if swapped_at.is_none() && swapped_rx.try_recv().is_ok() {
                    swapped_at = Some(count);
                }
                if swapped_at.is_some_and(|at| count >= at + LOOP_CONNECTS_AFTER) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "not told of the swap after {count} connects"
                );
            }
            assert!(count > 10, "only {count} connects");
            let during = swapped_at.map_or(0, |at| at - LOOP_CONNECTS_BEFORE);
            println!(
                "{count} connects to {vip_tcp} ok: {LOOP_CONNECTS_BEFORE} before the second \
                 agent started, {during} while it loaded and swapped, \
                 {LOOP_CONNECTS_AFTER} after"
            );
        }
        "udp" => {
            let mut buf = [0u8; 64];
            // Unconnected: sendmsg4 per datagram, recvmsg4 on the reply.
            let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
            socket.set_read_timeout(Some(timeout)).unwrap();
            socket.send_to(b"ping", vip_udp).unwrap();
            let (len, from) = socket.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..len], b"pong:ping");
            assert_eq!(from, vip_udp, "reply source not translated back");

            // Connected: connect4, getpeername4, recvmsg4.
            let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
            socket.set_read_timeout(Some(timeout)).unwrap();
            socket.connect(vip_udp).unwrap();
            assert_eq!(socket.peer_addr().unwrap(), vip_udp);
            socket.send(b"ping2").unwrap();
            let (len, from) = socket.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..len], b"pong:ping2");
            assert_eq!(from, vip_udp);
            println!("udp to {vip_udp} ok (unconnected and connected)");
        }
        "reject" => {
            let started = Instant::now();
            let error = TcpStream::connect_timeout(&empty_tcp, timeout).unwrap_err();
            let elapsed = started.elapsed();
            assert_eq!(error.raw_os_error(), Some(libc::ECONNREFUSED), "{error}");
            assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");

            let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
            let error = socket.send_to(b"ping", empty_udp).unwrap_err();
            assert_eq!(error.raw_os_error(), Some(libc::ECONNREFUSED), "{error}");
            let error = socket.connect(empty_udp).unwrap_err();
            assert_eq!(error.raw_os_error(), Some(libc::ECONNREFUSED), "{error}");

            // Not a service: untouched (no route here).
            let other = SocketAddr::V4(SocketAddrV4::new(NOT_A_SERVICE_IP, TCP_PORT));
            let error = TcpStream::connect_timeout(&other, timeout).unwrap_err();
            assert_eq!(error.raw_os_error(), Some(libc::ENETUNREACH), "{error}");
            println!("{empty_tcp} and {empty_udp} refused at once; {other} untouched");
        }
        "untouched" => {
            let error = TcpStream::connect_timeout(&vip_tcp, timeout).unwrap_err();
            assert_eq!(error.raw_os_error(), Some(libc::ENETUNREACH), "{error}");
            println!("{vip_tcp} no longer translated");
        }
        other => panic!("unknown netns helper mode {other}"),
    }
}

/// One TCP connection through the VIP: reaches the server, and getpeername
/// shows the VIP.
fn tcp_via_vip(vip: SocketAddr, timeout: Duration) {
    let mut client = TcpStream::connect_timeout(&vip, timeout)
        .unwrap_or_else(|e| panic!("connect to {vip}: {e}"));
    assert_eq!(client.peer_addr().unwrap(), vip, "getpeername not the VIP");
    assert_eq!(
        client.local_addr().unwrap().ip(),
        std::net::IpAddr::V4(CLIENT_IP)
    );
    client.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 5];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
}

#[test]
fn attaching_a_pin_dir_to_another_cgroup_moves_the_hooks() {
    let Some(object) = preconditions(
        "attaching_a_pin_dir_to_another_cgroup_moves_the_hooks",
        &["ip"],
    ) else {
        return;
    };
    let pins = PinDir::new("move");
    let first = Cgroup::new("sluice-test-move-a");
    let second = Cgroup::new("sluice-test-move-b");
    let mut dp = Datapath::load(ObjectSource::Path(&object), &pins.0).unwrap();
    program(&mut dp, &loopback_service());
    dp.attach_cgroup(&first.0).unwrap();
    let old = dp.hooks().unwrap();

    dp.attach_cgroup(&second.0).unwrap();
    let new = dp.hooks().unwrap();
    assert_eq!(new.len(), 4);
    let second_id = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&second.0).unwrap());
    assert!(
        new.iter().all(|hook| hook.cgroup_id == second_id),
        "{new:?}"
    );
    // The old links are gone from the kernel, not merely unpinned.
    let live: Vec<u32> = aya::programs::loaded_links()
        .filter_map(Result::ok)
        .map(|link| link.id())
        .collect();
    for hook in &old {
        assert!(
            !live.contains(&hook.link_id),
            "old link {hook:?} still live"
        );
    }
    assert!(
        std::fs::read_dir(pins.0.join("links")).unwrap().count() == 4,
        "stray pins"
    );
    run_helper("rewrite", &second.0);
    dp.detach_all().unwrap();
}

#[test]
fn lb_list_prints_two_programmed_services_from_the_pinned_maps() {
    let Some(object) = preconditions(
        "lb_list_prints_two_programmed_services_from_the_pinned_maps",
        &["ip"],
    ) else {
        return;
    };
    let pins = PinDir::new("lblist");
    let cgroup = Cgroup::new("sluice-test-lblist");
    let mut dp = Datapath::load(ObjectSource::Path(&object), &pins.0)
        .unwrap_or_else(|e| panic!("load {}: {e:?}", object.display()));
    // Pins are per test, so the maps hold exactly these two Services: the
    // loopback one the helper connects to, and a UDP one.
    let dns = Ipv4Addr::new(10, 96, 42, 2);
    program(
        &mut dp,
        &state(&[
            (
                VIP,
                VIP_PORT,
                Protocol::Tcp,
                &[(Ipv4Addr::LOCALHOST, BACKEND_PORT)],
            ),
            (
                dns,
                53,
                Protocol::Udp,
                &[(Ipv4Addr::new(10, 244, 42, 5), 5353)],
            ),
        ]),
    );
    // One connect through the hooks: connect4 records the socket in the LRU.
    dp.attach_cgroup(&cgroup.0).unwrap();
    run_helper("rewrite", &cgroup.0);
    dp.detach_cgroup(&cgroup.0).unwrap();

    // Read back through the pins alone (another process would do the same).
    let maps = sluice_node_agent::lbctl::read(&pins.0).unwrap_or_else(|e| panic!("lb list: {e:?}"));
    let listing = sluice_node_agent::lbctl::render(&maps);
    let (tables, sockets) = listing
        .split_once("SOCKET REVERSE NAT (sluice_sock_revnat_v1, LRU)\n")
        .unwrap_or_else(|| panic!("no socket section:\n{listing}"));
    assert_eq!(
        tables,
        "\
SERVICES (sluice_svc_v1, backends from sluice_be_v1)
FRONTEND            REV-NAT   SLOT   BACKEND                   STATE
10.96.0.10:80/TCP   1         0      (1 backend)
                              1      127.0.0.1:18080 (id 1)    active
10.96.42.2:53/UDP   2         0      (1 backend)
                              1      10.244.42.5:5353 (id 2)   active

BACKENDS (sluice_be_v1)
ID   ADDRESS                STATE    SLOTS
1    127.0.0.1:18080/TCP    active   1
2    10.244.42.5:5353/UDP   active   1

REVERSE NAT (sluice_revnat_v1)
REV-NAT   FRONTEND
1         10.96.0.10:80
2         10.96.42.2:53

",
        "\ngot:\n{listing}"
    );
    // No Service here has affinity: that section lists nothing.
    let (sockets, affinity) = sockets
        .split_once("\nSOCKET SESSION AFFINITY (sluice_sock_aff_v1, LRU)\n")
        .unwrap_or_else(|| panic!("no affinity section:\n{listing}"));
    assert_eq!(affinity, "(none)\n", "{listing}");
    // The helper's one connect to the VIP: its cookie, the backend it went
    // to, the frontend it asked for.
    let rows: Vec<Vec<&str>> = sockets
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 1, "{listing}");
    assert!(rows[0][0].parse::<u64>().is_ok_and(|c| c != 0), "{listing}");
    assert_eq!(
        rows[0][1..],
        ["127.0.0.1:18080", "10.96.0.10:80", "1"],
        "{listing}"
    );

    // The binary prints the same.
    let bin = Path::new(env!("CARGO_BIN_EXE_sluice-node-agent"));
    let output = Command::new(bin)
        .args(["lb", "list", "--bpf-pin-dir"])
        .arg(&pins.0)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    assert!(
        output.status.success(),
        "lb list failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), listing);
    drop(dp);
}
