//! Kernel tests of the datapath (root, real kernel): the socket-LB object
//! (connect4, sendmsg4, recvmsg4, getpeername4) passes the verifier, its
//! maps pin and survive a reload, `connect4` rewrites a real connect to a
//! service VIP, and a service without backends is refused with ECONNREFUSED.
//! The netns tests send TCP and UDP through a ClusterIP to a server in
//! another network namespace across a veth pair, and check restart safety:
//! pinned hooks outlive the `Datapath`, a reload swaps programs with no
//! window, and teardown leaves nothing.
//!
//! The programs' aya-log records reach the `log` facade (target
//! `sluice_ebpf`) through the task `Datapath::load` spawns in a tokio
//! runtime.
//!
//! The object comes from `SLUICE_BPF_OBJ` (set by `cargo xtask test`), else
//! from `target/bpf/sluice-sock` (written by `cargo xtask build-ebpf`).
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
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex, Once, PoisonError,
        atomic::{AtomicBool, AtomicU32, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use sluice_node_agent::datapath::{
    BACKENDS_MAP, BPF_LOG_TARGET, BackendKey, BackendValue, Be16, Be32, Datapath, DatapathOps,
    ObjectSource, PROTO_TCP, PROTO_UDP, REV_NAT_MAP, RevNatKey, RevNatValue, SERVICES_MAP,
    SOCK_REV_NAT_MAP, ServiceKey, ServiceValue, hooks, program_service, unpin,
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

/// The netns tests' ClusterIP (TCP port 80, UDP port 53).
const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 7, 7);
/// A ClusterIP whose service has no backends (TCP 80, UDP 53).
const EMPTY_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 7, 8);
/// An address that is no service.
const NOT_A_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 7, 9);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
const TCP_PORT: u16 = 80;
const UDP_PORT: u16 = 53;
const SERVER_TCP_PORT: u16 = 8080;
const SERVER_UDP_PORT: u16 = 5353;

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
    check_helper(mode, &output);
}

fn check_helper(mode: &str, output: &std::process::Output) {
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
    assert_eq!(dp.rev_nats().unwrap().len(), 1);
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
    dp.upsert_rev_nat(
        RevNatKey::new(1),
        RevNatValue::new(Be32::from_ipv4(VIP), Be16::from_host(VIP_PORT)),
    )
    .unwrap();
    program_service(&mut dp, vip_key(VIP), 0, 1, &[1]).unwrap();
    dp.attach_cgroup(&cgroup.0).unwrap();
    assert_eq!(dp.hooks().unwrap().len(), 4);

    run_helper("rewrite", &cgroup.0);

    dp.detach_cgroup(&cgroup.0).unwrap();
    assert!(dp.hooks().unwrap().is_empty());
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
    dp.detach_all().unwrap();
}

/// A `log` logger keeping every record: (level, target, message).
struct Capture(Mutex<Vec<(log::Level, String, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push((
            record.level(),
            record.target().to_owned(),
            record.args().to_string(),
        ));
    }

    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

/// Installs [`CAPTURE`] as this process's logger at level trace (once).
fn capture_logs() -> &'static Capture {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&CAPTURE).expect("another logger is installed");
        log::set_max_level(log::LevelFilter::Trace);
    });
    &CAPTURE
}

/// Waits (up to 5 s) for a record with `level`, the programs' target and
/// exactly `message`.
fn wait_for_record(capture: &Capture, level: log::Level, message: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        {
            let records = capture.0.lock().unwrap_or_else(PoisonError::into_inner);
            if records
                .iter()
                .any(|(l, target, m)| *l == level && target == BPF_LOG_TARGET && m == message)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {level} record {message:?} from {BPF_LOG_TARGET}; got {records:#?}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn program_log_records_reach_userspace() {
    if !can_run("program_log_records_reach_userspace") {
        return;
    }
    let capture = capture_logs();
    // As in the agent: loaded inside a tokio runtime, which then runs the
    // task reading the programs' log buffer.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let object = object_path();
    let pins = PinDir::new("log");
    let cgroup = Cgroup::new("sluice-test-log");
    let mut dp = Datapath::load(ObjectSource::Path(&object), &pins.0).unwrap();
    let key = |port: u16| {
        ServiceKey::frontend(Be32::from_ipv4(LOG_VIP), Be16::from_host(port), PROTO_TCP)
    };
    // :80 has no backends.
    program_service(&mut dp, key(80), 0, 1, &[]).unwrap();
    // :81 claims one backend but its slot is missing (as if mid-update).
    dp.upsert_service(key(81), ServiceValue::frontend(1, 0, 2))
        .unwrap();
    // :82's slot names backend 7, which is not in the backends map.
    program_service(&mut dp, key(82), 0, 3, &[7]).unwrap();
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
    let Ok(spec) = std::env::var(HELPER_ENV) else {
        return;
    };
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
        let status = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(status.success(), "ip link set lo up: {status}");
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
        other => panic!("unknown helper mode {other}"),
    }
}

// ---------------------------------------------------------------------------
// Two network namespaces joined by a veth pair.

/// Runs `ip args...`, panicking on failure.
fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
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

/// Programs the netns tests' services: CLUSTER_IP:80/TCP and :53/UDP to the
/// server (rev-nat ids 1 and 2), EMPTY_IP:80/TCP and :53/UDP with no
/// backends (ids 3 and 4).
fn program_netns_services(dp: &mut Datapath) {
    let vip = Be32::from_ipv4(CLUSTER_IP);
    let empty = Be32::from_ipv4(EMPTY_IP);
    let server = Be32::from_ipv4(SERVER_IP);
    dp.upsert_backend(
        BackendKey { id: 1 },
        BackendValue::new(server, Be16::from_host(SERVER_TCP_PORT), PROTO_TCP),
    )
    .unwrap();
    dp.upsert_backend(
        BackendKey { id: 2 },
        BackendValue::new(server, Be16::from_host(SERVER_UDP_PORT), PROTO_UDP),
    )
    .unwrap();
    let services = [
        (vip, TCP_PORT, PROTO_TCP, 1, vec![1]),
        (vip, UDP_PORT, PROTO_UDP, 2, vec![2]),
        (empty, TCP_PORT, PROTO_TCP, 3, vec![]),
        (empty, UDP_PORT, PROTO_UDP, 4, vec![]),
    ];
    for (addr, port, proto, id, backends) in services {
        let port = Be16::from_host(port);
        // Rev-NAT first, so the first translated socket can be translated back.
        dp.upsert_rev_nat(RevNatKey::new(id), RevNatValue::new(addr, port))
            .unwrap();
        program_service(
            dp,
            ServiceKey::frontend(addr, port, proto),
            0,
            id,
            &backends,
        )
        .unwrap();
    }
}

#[test]
fn netns_tcp_and_udp_through_cluster_ip() {
    if !can_run("netns_tcp_and_udp_through_cluster_ip") {
        return;
    }
    let object = object_path();
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
    if !can_run("netns_hooks_survive_agent_restart") {
        return;
    }
    let object = object_path();
    let topology = Topology::new("rs");
    let _server = Server::start(&topology.server);
    let pins = PinDir::new("restart");
    let cgroup = Cgroup::new("sluice-test-restart");

    // First agent: load, program, attach, exit.
    let before = {
        let mut dp = Datapath::load(ObjectSource::Path(&object), &pins.0).unwrap();
        program_netns_services(&mut dp);
        dp.attach_cgroup(&cgroup.0).unwrap();
        dp.hooks().unwrap()
    };
    assert_eq!(before.len(), 4, "{before:?}");
    assert_eq!(hooks(&pins.0).unwrap(), before, "hooks changed on drop");
    // The hooks outlived the agent.
    run_helper_in("tcp", &cgroup.0, Some(&topology.client));

    // Second agent, while a client connects in a loop: reuse the pinned
    // links; the loop must never miss the hook.
    let looping = helper_command("tcp-loop", &cgroup.0, Some(&topology.client))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut dp = Datapath::load(ObjectSource::Path(&object), &pins.0).unwrap();
    dp.attach_cgroup(&cgroup.0).unwrap();
    let after = dp.hooks().unwrap();
    wait_helper("tcp-loop", looping);
    assert_eq!(after.len(), 4, "{after:?}");
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(old.program, new.program);
        assert_eq!(old.link_id, new.link_id, "link not reused: {old:?} {new:?}");
        assert_ne!(old.prog_id, new.prog_id, "program not replaced: {new:?}");
        assert_eq!(old.cgroup_id, new.cgroup_id);
    }
    // Pinned maps kept their entries: no reprogramming needed.
    assert_eq!(dp.rev_nats().unwrap().len(), 4);
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

fn wait_helper(mode: &str, child: Child) {
    let output = child.wait_with_output().unwrap();
    check_helper(mode, &output);
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
            let started = Instant::now();
            let mut count = 0u32;
            while started.elapsed() < Duration::from_secs(2) {
                tcp_via_vip(vip_tcp, timeout);
                count += 1;
            }
            assert!(count > 10, "only {count} connects");
            println!("{count} connects to {vip_tcp} ok");
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
    if !can_run("attaching_a_pin_dir_to_another_cgroup_moves_the_hooks") {
        return;
    }
    let object = object_path();
    let pins = PinDir::new("move");
    let first = Cgroup::new("sluice-test-move-a");
    let second = Cgroup::new("sluice-test-move-b");
    let mut dp = Datapath::load(ObjectSource::Path(&object), &pins.0).unwrap();
    dp.upsert_backend(BackendKey { id: 1 }, loopback_backend())
        .unwrap();
    dp.upsert_rev_nat(
        RevNatKey::new(1),
        RevNatValue::new(Be32::from_ipv4(VIP), Be16::from_host(VIP_PORT)),
    )
    .unwrap();
    program_service(&mut dp, vip_key(VIP), 0, 1, &[1]).unwrap();
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
