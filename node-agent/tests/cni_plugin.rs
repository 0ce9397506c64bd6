//! The `sluice-cni` binary invoked as a runtime does (env + stdin JSON), as
//! root, against real network namespaces.
//!
//! Each test makes its own "node" namespace and runs the plugin inside it
//! (setns between fork and exec), so host-side veths, the gateway address
//! and routes land there and never on the machine's real network; "pods"
//! are further namespaces. All traffic stays between those namespaces.
//!
//! The last tests check the test harness itself: run without root, a test
//! that needs root fails under CI and is reported as skipped elsewhere.

use std::{
    collections::HashSet,
    fs::File,
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    os::{
        fd::AsRawFd,
        unix::{fs::PermissionsExt, process::CommandExt},
    },
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use serde_json::{Value, json};
use sluice_node_agent::cni::Network;

const BIN: &str = env!("CARGO_BIN_EXE_sluice-cni");
const CIDR: &str = "10.213.0.0/24";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 1);

/// The tools these tests shell out to (the plugin itself runs `ip -batch`).
const TOOLS: &[&str] = &["ip"];

/// Whether `test` can run here: it needs root (network namespaces) and
/// [`TOOLS`]. Under CI a test that cannot run fails; elsewhere it is
/// reported as skipped (see `sluice_test_util`), and must return.
fn can_run(test: &str) -> bool {
    sluice_test_util::require_root_and_tools(test, TOOLS)
}

/// `ip args...`; panics (with its stderr) when it fails.
fn ip_ok(args: &[&str]) {
    sluice_test_util::run(Command::new("ip").args(args));
}

/// `ip -j args...` parsed; panics when `ip` fails or prints no JSON array.
fn ip_json(args: &[&str]) -> Vec<Value> {
    let out = sluice_test_util::stdout(Command::new("ip").arg("-j").args(args));
    match serde_json::from_str::<Value>(&out) {
        Ok(Value::Array(items)) => items,
        other => panic!("ip -j {args:?} printed no JSON array ({other:?}): {out}"),
    }
}

/// A named network namespace, deleted on drop (with every link inside it).
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "scni{}-{tag}{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        ip_ok(&["netns", "add", &name]);
        ip_ok(&["-n", &name, "link", "set", "lo", "up"]);
        Self { name }
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }

    fn path_str(&self) -> String {
        self.path().display().to_string()
    }

    fn links(&self) -> Vec<String> {
        ip_json(&["-n", &self.name, "link", "show"])
            .iter()
            .map(|l| {
                l["ifname"]
                    .as_str()
                    .unwrap_or_else(|| panic!("link without ifname: {l}"))
                    .to_owned()
            })
            .collect()
    }

    fn routes(&self) -> Vec<Value> {
        ip_json(&["-n", &self.name, "route", "show"])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Best effort: a panic here would abort a test that is already failing.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Runs `f` on a thread moved into `ns`; sockets made there stay there.
fn in_netns<T: Send + 'static>(ns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = File::open(ns).unwrap_or_else(|e| panic!("open {}: {e}", ns.display()));
    std::thread::spawn(move || {
        // SAFETY: `file` is an open netns fd for the duration of the call;
        // setns only changes this short-lived thread's namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("netns thread panicked")
}

struct Reply {
    code: i32,
    out: Value,
    raw: String,
}

/// A node: its namespace, a data dir and a network config.
struct Node {
    ns: Netns,
    data: tempfile::TempDir,
    version: &'static str,
    cidr: &'static str,
}

impl Node {
    fn new() -> Self {
        Self {
            ns: Netns::new("node"),
            data: tempfile::tempdir().expect("tempdir"),
            version: "1.0.0",
            cidr: CIDR,
        }
    }

    /// The plugin's config as the runtime passes it from the agent's conflist.
    fn conf(&self) -> Value {
        Network {
            cni_version: self.version.into(),
            mtu: Some(1500),
            ..Network::new(self.cidr.parse().expect("a CIDR"), self.data.path())
        }
        .plugin_config()
    }

    fn run(&self, env: &[(&str, &str)], stdin: &[u8]) -> Reply {
        let ns = File::open(self.ns.path()).expect("open node netns");
        let fd = ns.as_raw_fd();
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: runs in the forked child before exec and only calls
        // setns(2) (async-signal-safe) on `fd`, which `ns` keeps open.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let mut child = cmd.spawn().expect("spawn sluice-cni");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("write stdin");
        let out = child.wait_with_output().expect("wait sluice-cni");
        drop(ns);
        let raw = String::from_utf8_lossy(&out.stdout).into_owned();
        Reply {
            code: out.status.code().unwrap_or(-1),
            out: serde_json::from_str(&raw).unwrap_or(Value::Null),
            raw: format!("{raw} (stderr: {})", String::from_utf8_lossy(&out.stderr)),
        }
    }

    fn verb(&self, verb: &str, cid: &str, netns: &str, conf: &Value) -> Reply {
        self.run(
            &[
                ("CNI_COMMAND", verb),
                ("CNI_CONTAINERID", cid),
                ("CNI_NETNS", netns),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", "/usr/lib/cni"),
            ],
            conf.to_string().as_bytes(),
        )
    }

    fn add(&self, cid: &str, pod: &Netns) -> Value {
        let r = self.verb("ADD", cid, &pod.path_str(), &self.conf());
        assert_eq!(r.code, 0, "ADD {cid}: {}", r.raw);
        r.out
    }

    fn allocations(&self) -> Vec<(Ipv4Addr, String)> {
        let path = self.data.path().join("sluice/allocations.json");
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            // Nothing was ever allocated on this node.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("read {}: {e}", path.display()),
        };
        let v: Value = serde_json::from_slice(&bytes).expect("state is JSON");
        v["allocations"]
            .as_object()
            .unwrap_or_else(|| panic!("no allocations object in {}: {v}", path.display()))
            .iter()
            .map(|(ip, o)| {
                (
                    ip.parse().expect("ip key"),
                    o["containerID"]
                        .as_str()
                        .unwrap_or_else(|| panic!("allocation {ip} without containerID: {o}"))
                        .to_owned(),
                )
            })
            .collect()
    }

    fn host_links(&self) -> Vec<String> {
        self.ns
            .links()
            .into_iter()
            .filter(|l| l.starts_with("lxc"))
            .collect()
    }
}

fn pod_ip(result: &Value) -> Ipv4Addr {
    let addr = result["ips"][0]["address"]
        .as_str()
        .expect("ips[0].address");
    let (ip, len) = addr.split_once('/').expect("CIDR form");
    assert_eq!(len, "32");
    ip.parse().expect("IPv4")
}

fn assert_error(r: &Reply, code: u64) {
    assert_ne!(r.code, 0, "expected failure: {}", r.raw);
    assert_eq!(r.out["code"], code, "{}", r.raw);
    assert!(
        r.out["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        r.raw
    );
    assert!(r.out["cniVersion"].is_string(), "{}", r.raw);
}

#[test]
fn add_connect_check_del() {
    if !can_run("add_connect_check_del") {
        return;
    }
    let node = Node::new();
    let pod = Netns::new("pod");
    let res = node.add("c-roundtrip", &pod);

    // A valid 1.0.0 result naming eth0 in the sandbox, with an IP from podCIDR.
    assert_eq!(res["cniVersion"], "1.0.0");
    let ifaces = res["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifaces.len(), 2);
    let host = ifaces[0]["name"].as_str().expect("host name").to_owned();
    assert!(host.starts_with("lxc") && host.len() <= 15, "{host}");
    assert!(ifaces[0].get("sandbox").is_none());
    assert_eq!(ifaces[1]["name"], "eth0");
    assert_eq!(ifaces[1]["sandbox"], pod.path_str());
    assert_eq!(res["ips"][0]["interface"], 1);
    assert_eq!(res["ips"][0]["gateway"], GATEWAY.to_string());
    assert!(res["ips"][0].get("version").is_none());
    assert_eq!(res["routes"][0]["dst"], "0.0.0.0/0");
    let ip = pod_ip(&res);
    assert_eq!(ip.octets()[..3], [10, 213, 0]);
    assert!(![0, 1, 255].contains(&ip.octets()[3]));
    assert_eq!(node.allocations(), vec![(ip, "c-roundtrip".to_owned())]);
    assert_eq!(pod.links(), vec!["lo".to_owned(), "eth0".to_owned()]);
    assert_eq!(node.host_links(), vec![host.clone()]);

    // Host -> pod over TCP.
    let listener = in_netns(&pod.path(), || {
        TcpListener::bind("0.0.0.0:7070").expect("bind in pod")
    });
    let target = SocketAddr::from((ip, 7070));
    let mut c = in_netns(&node.ns.path(), move || {
        TcpStream::connect_timeout(&target, Duration::from_secs(3)).expect("host -> pod connect")
    });
    let (mut s, peer) = listener.accept().expect("accept in pod");
    assert_eq!(
        peer.ip(),
        GATEWAY,
        "host traffic is sourced from the gateway /32"
    );
    c.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");

    // Pod -> host (the gateway is the host's own address).
    let hl = in_netns(&node.ns.path(), || {
        TcpListener::bind("0.0.0.0:0").expect("bind on node")
    });
    let port = hl.local_addr().unwrap().port();
    let mut pc = in_netns(&pod.path(), move || {
        TcpStream::connect_timeout(&SocketAddr::from((GATEWAY, port)), Duration::from_secs(3))
            .expect("pod -> host connect")
    });
    let (mut hs, from) = hl.accept().expect("accept on node");
    assert_eq!(from.ip(), ip);
    pc.write_all(b"pong").unwrap();
    hs.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
    drop((c, s, pc, hs, listener, hl));

    // CHECK passes with the ADD result as prevResult...
    let mut conf = node.conf();
    conf["prevResult"] = res.clone();
    let r = node.verb("CHECK", "c-roundtrip", &pod.path_str(), &conf);
    assert_eq!(r.code, 0, "CHECK: {}", r.raw);
    // ...and fails once the container's default route is gone...
    ip_ok(&["-n", &pod.name, "route", "del", "default"]);
    let r = node.verb("CHECK", "c-roundtrip", &pod.path_str(), &conf);
    assert_error(&r, 103);
    assert!(r.raw.contains("route 0.0.0.0/0"), "{}", r.raw);
    ip_ok(&[
        "-n",
        &pod.name,
        "route",
        "add",
        "default",
        "via",
        &GATEWAY.to_string(),
        "dev",
        "eth0",
    ]);
    assert_eq!(
        node.verb("CHECK", "c-roundtrip", &pod.path_str(), &conf)
            .code,
        0
    );
    // ...or the host's route to the pod is.
    ip_ok(&["-n", &node.ns.name, "route", "del", &format!("{ip}/32")]);
    let r = node.verb("CHECK", "c-roundtrip", &pod.path_str(), &conf);
    assert_error(&r, 103);
    assert!(r.raw.contains("host route"), "{}", r.raw);
    ip_ok(&[
        "-n",
        &node.ns.name,
        "route",
        "add",
        &format!("{ip}/32"),
        "dev",
        &host,
    ]);

    // DEL removes the veth (both ends), the route and the allocation.
    let r = node.verb("DEL", "c-roundtrip", &pod.path_str(), &conf);
    assert_eq!(r.code, 0, "DEL: {}", r.raw);
    assert!(r.out.is_null(), "DEL prints nothing on success: {}", r.raw);
    assert!(node.host_links().is_empty());
    assert_eq!(pod.links(), vec!["lo".to_owned()]);
    assert!(
        !node.ns.routes().iter().any(|r| r["dst"] == ip.to_string()),
        "{:?}",
        node.ns.routes()
    );
    assert!(node.allocations().is_empty());

    // DEL again, with an empty CNI_NETNS, and after the netns is gone.
    assert_eq!(
        node.verb("DEL", "c-roundtrip", &pod.path_str(), &conf).code,
        0
    );
    assert_eq!(node.verb("DEL", "c-roundtrip", "", &conf).code, 0);
    let gone = pod.path_str();
    drop(pod);
    let r = node.verb("DEL", "c-roundtrip", &gone, &conf);
    assert_eq!(r.code, 0, "DEL after netns removal: {}", r.raw);
    // CHECK on a vanished netns: container unknown.
    let r = node.verb("CHECK", "c-roundtrip", &gone, &conf);
    assert_error(&r, 3);
}

#[test]
fn del_of_live_pod_without_netns_cleans_up() {
    if !can_run("del_of_live_pod_without_netns_cleans_up") {
        return;
    }
    let node = Node::new();
    let pod = Netns::new("pod");
    node.add("c-nonetns", &pod);
    let r = node.verb("DEL", "c-nonetns", "", &node.conf());
    assert_eq!(r.code, 0, "{}", r.raw);
    assert!(node.host_links().is_empty());
    assert_eq!(pod.links(), vec!["lo".to_owned()]);
    assert!(node.allocations().is_empty());
}

#[test]
fn second_add_on_same_interface_errors_and_leaks_nothing() {
    if !can_run("second_add_on_same_interface_errors_and_leaks_nothing") {
        return;
    }
    let node = Node::new();
    let pod = Netns::new("pod");
    let first = node.add("c-dup", &pod);
    let before = (node.host_links(), node.allocations(), pod.links());

    // Same container again, and another container on the same netns+ifname.
    for cid in ["c-dup", "c-other"] {
        let r = node.verb("ADD", cid, &pod.path_str(), &node.conf());
        assert_error(&r, 100);
        assert!(r.raw.contains("already exists"), "{}", r.raw);
        assert_eq!(
            (node.host_links(), node.allocations(), pod.links()),
            before,
            "after {cid}"
        );
    }
    // The first attachment is untouched.
    let mut conf = node.conf();
    conf["prevResult"] = first;
    assert_eq!(node.verb("CHECK", "c-dup", &pod.path_str(), &conf).code, 0);
}

#[test]
fn failed_add_rolls_back_veth_and_address() {
    if !can_run("failed_add_rolls_back_veth_and_address") {
        return;
    }
    let node = Node::new();
    let pod = Netns::new("pod");
    // A default route already in the pod makes the container-side step fail
    // after the veth pair exists.
    ip_ok(&["-n", &pod.name, "route", "add", "default", "dev", "lo"]);
    let r = node.verb("ADD", "c-rollback", &pod.path_str(), &node.conf());
    assert_error(&r, 102);
    assert!(node.host_links().is_empty(), "{:?}", node.host_links());
    assert_eq!(pod.links(), vec!["lo".to_owned()]);
    assert!(node.allocations().is_empty());
    // The address is usable again.
    ip_ok(&["-n", &pod.name, "route", "del", "default"]);
    node.add("c-rollback", &pod);
}

#[test]
fn fifty_concurrent_adds_get_distinct_addresses() {
    if !can_run("fifty_concurrent_adds_get_distinct_addresses") {
        return;
    }
    let node = std::sync::Arc::new(Node::new());
    let pods: Vec<Netns> = (0..50).map(|_| Netns::new("p")).collect();
    let handles: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, pod)| {
            let node = node.clone();
            let path = pod.path_str();
            std::thread::spawn(move || {
                let r = node.verb("ADD", &format!("c-conc-{i}"), &path, &node.conf());
                assert_eq!(r.code, 0, "ADD {i}: {}", r.raw);
                pod_ip(&r.out)
            })
        })
        .collect();
    let ips: Vec<Ipv4Addr> = handles
        .into_iter()
        .map(|h| h.join().expect("ADD thread"))
        .collect();
    let distinct: HashSet<Ipv4Addr> = ips.iter().copied().collect();
    assert_eq!(distinct.len(), 50, "{ips:?}");
    assert_eq!(node.allocations().len(), 50);
    assert_eq!(node.host_links().len(), 50);
    for (i, pod) in pods.iter().enumerate() {
        let r = node.verb("DEL", &format!("c-conc-{i}"), &pod.path_str(), &node.conf());
        assert_eq!(r.code, 0, "DEL {i}: {}", r.raw);
    }
    assert!(node.allocations().is_empty());
    assert!(node.host_links().is_empty());
}

#[test]
fn allocations_survive_a_restart() {
    if !can_run("allocations_survive_a_restart") {
        return;
    }
    let node = Node::new();
    let (p1, p2) = (Netns::new("pod"), Netns::new("pod"));
    let ip1 = pod_ip(&node.add("c-persist-1", &p1));
    // Forget the round-robin cursor, as if the state were older or rebuilt:
    // the next process must still skip the held address.
    let path = node.data.path().join("sluice/allocations.json");
    let mut state: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    state.as_object_mut().unwrap().remove("last");
    std::fs::write(&path, state.to_string()).unwrap();
    let ip2 = pod_ip(&node.add("c-persist-2", &p2));
    assert_ne!(ip1, ip2);
    assert_eq!(node.allocations().len(), 2);
}

/// What is wrong, the environment, stdin, the expected CNI error code.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, String, u64);

#[test]
fn bad_input_gets_spec_errors_and_creates_nothing() {
    if !can_run("bad_input_gets_spec_errors_and_creates_nothing") {
        return;
    }
    let node = Node::new();
    let pod = Netns::new("pod");
    let ns = pod.path_str();
    let good = node.conf().to_string();
    let mut bad_cidr = node.conf();
    bad_cidr["podCIDR"] = json!("10.213.0.0/33");
    let mut no_cidr = node.conf();
    no_cidr.as_object_mut().unwrap().remove("podCIDR");
    let mut bad_version = node.conf();
    bad_version["cniVersion"] = json!("0.2.0");
    let full =
        |extra: &[(&'static str, &'static str)], skip: &str| -> Vec<(&'static str, String)> {
            let mut v: Vec<(&'static str, String)> = vec![
                ("CNI_COMMAND", "ADD".into()),
                ("CNI_CONTAINERID", "c-bad".into()),
                ("CNI_NETNS", ns.clone()),
                ("CNI_IFNAME", "eth0".into()),
            ];
            v.retain(|(k, _)| *k != skip);
            v.extend(extra.iter().map(|(k, val)| (*k, (*val).to_owned())));
            v
        };
    let cases: Vec<Case> = vec![
        ("no CNI_COMMAND", full(&[], "CNI_COMMAND"), good.clone(), 4),
        (
            "no CNI_CONTAINERID",
            full(&[], "CNI_CONTAINERID"),
            good.clone(),
            4,
        ),
        ("no CNI_NETNS", full(&[], "CNI_NETNS"), good.clone(), 4),
        ("no CNI_IFNAME", full(&[], "CNI_IFNAME"), good.clone(), 4),
        (
            "long ifname",
            full(&[("CNI_IFNAME", "eth0123456789abc")], "CNI_IFNAME"),
            good.clone(),
            4,
        ),
        ("garbage stdin", full(&[], ""), "\u{1}garbage{".into(), 6),
        ("empty stdin", full(&[], ""), String::new(), 6),
        ("bad podCIDR", full(&[], ""), bad_cidr.to_string(), 7),
        ("no podCIDR", full(&[], ""), no_cidr.to_string(), 7),
        (
            "unsupported cniVersion",
            full(&[], ""),
            bad_version.to_string(),
            1,
        ),
        (
            "missing netns",
            full(
                &[("CNI_NETNS", "/var/run/netns/sluice-no-such-ns")],
                "CNI_NETNS",
            ),
            good.clone(),
            3,
        ),
    ];
    for (what, env, stdin, code) in cases {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = node.run(&env, stdin.as_bytes());
        assert_eq!(r.code, 1, "{what}: {}", r.raw);
        assert_eq!(r.out["code"], code, "{what}: {}", r.raw);
        assert!(r.out["msg"].is_string(), "{what}: {}", r.raw);
        assert!(
            node.host_links().is_empty(),
            "{what}: {:?}",
            node.host_links()
        );
        assert_eq!(pod.links(), vec!["lo".to_owned()], "{what}");
        assert!(node.allocations().is_empty(), "{what}");
    }
}

#[test]
fn version_lists_supported_versions() {
    if !can_run("version_lists_supported_versions") {
        return;
    }
    let node = Node::new();
    let r = node.run(&[("CNI_COMMAND", "VERSION")], br#"{"cniVersion":"1.0.0"}"#);
    assert_eq!(r.code, 0, "{}", r.raw);
    let got: HashSet<&str> = r.out["supportedVersions"]
        .as_array()
        .expect("supportedVersions")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for v in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        assert!(got.contains(v), "{v} missing: {}", r.raw);
    }
    assert!(r.out["cniVersion"].is_string());
}

#[test]
fn legacy_versions_shape_results_and_gate_check() {
    if !can_run("legacy_versions_shape_results_and_gate_check") {
        return;
    }
    let mut node = Node::new();
    node.version = "0.3.1";
    let pod = Netns::new("pod");
    let res = node.add("c-legacy", &pod);
    assert_eq!(res["cniVersion"], "0.3.1");
    assert_eq!(res["ips"][0]["version"], "4");
    let mut conf = node.conf();
    conf["prevResult"] = res;
    assert_error(&node.verb("CHECK", "c-legacy", &pod.path_str(), &conf), 1);
    assert_eq!(node.verb("DEL", "c-legacy", &pod.path_str(), &conf).code, 0);
}

#[test]
fn gc_frees_what_is_not_valid_and_status_reports_readiness() {
    if !can_run("gc_frees_what_is_not_valid_and_status_reports_readiness") {
        return;
    }
    let mut node = Node::new();
    node.version = "1.1.0";
    let (keep, stale) = (Netns::new("pod"), Netns::new("pod"));
    let kept_ip = pod_ip(&node.add("c-keep", &keep));
    node.add("c-stale", &stale);
    assert_eq!(node.host_links().len(), 2);

    let mut conf = node.conf();
    conf["cni.dev/valid-attachments"] = json!([{"containerID": "c-keep", "ifname": "eth0"}]);
    let r = node.run(&[("CNI_COMMAND", "GC")], conf.to_string().as_bytes());
    assert_eq!(r.code, 0, "GC: {}", r.raw);
    assert_eq!(node.allocations(), vec![(kept_ip, "c-keep".to_owned())]);
    assert_eq!(node.host_links().len(), 1);
    assert_eq!(stale.links(), vec!["lo".to_owned()]);
    assert_eq!(keep.links(), vec!["lo".to_owned(), "eth0".to_owned()]);
    // GC without the list is refused rather than freeing everything.
    let r = node.run(&[("CNI_COMMAND", "GC")], node.conf().to_string().as_bytes());
    assert_error(&r, 7);
    assert_eq!(node.allocations().len(), 1);

    // STATUS: ready...
    let status = |conf: &Value| node.run(&[("CNI_COMMAND", "STATUS")], conf.to_string().as_bytes());
    let r = status(&node.conf());
    assert_eq!(r.code, 0, "STATUS: {}", r.raw);
    assert!(r.out.is_null());
    // ...not without a valid podCIDR (the agent has not written it yet)...
    let mut c = node.conf();
    c.as_object_mut().unwrap().remove("podCIDR");
    assert_error(&status(&c), 50);
    c["podCIDR"] = json!("garbage");
    assert_error(&status(&c), 50);
    // ...nor with a dataDir that cannot be written...
    let file = node.data.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let mut c = node.conf();
    c["dataDir"] = json!(file.join("sub"));
    assert_error(&status(&c), 50);
    // ...nor with no address left (a /30 has one pod address).
    let mut small = Node::new();
    small.version = "1.1.0";
    small.cidr = "10.213.9.0/30";
    assert_eq!(status(&small.conf()).code, 0);
    let p = Netns::new("pod");
    small.add("c-only", &p);
    let r = small.run(
        &[("CNI_COMMAND", "STATUS")],
        small.conf().to_string().as_bytes(),
    );
    assert_error(&r, 50);
    let p2 = Netns::new("pod");
    let r = small.verb("ADD", "c-none", &p2.path_str(), &small.conf());
    assert_error(&r, 101);
    assert_eq!(p2.links(), vec!["lo".to_owned()]);
}

// ---------------------------------------------------------------------------
// The harness: what a run without root reports.

/// A test of this binary that needs root and nothing else to decide so.
const ROOT_ONLY_TEST: &str = "version_lists_supported_versions";

/// This test binary, at a path user `nobody` can execute: the binary itself
/// when every directory above it is searchable by others, else a copy in
/// `scratch` (mode 0755).
fn exe_for_nobody(scratch: &Path) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
            .permissions()
            .mode()
    };
    let reachable =
        exe.ancestors().skip(1).all(|dir| mode(dir) & 0o001 != 0) && mode(&exe) & 0o005 == 0o005;
    if reachable {
        return exe;
    }
    let copy = scratch.join("cni_plugin-test");
    // Copied by another process: a file this process held open for writing
    // could leak into a child another test forks meanwhile, and exec of the
    // copy would then fail with ETXTBSY.
    sluice_test_util::run(
        Command::new("install")
            .args(["-m", "0755"])
            .arg(&exe)
            .arg(&copy),
    );
    copy
}

/// Runs `ROOT_ONLY_TEST` of this binary as user `nobody`, with `CI=true`
/// or without `CI`, and `SLUICE_SKIP_LOG` set to `skip_log`.
fn run_as_nobody(scratch: &Path, ci: bool, skip_log: &Path) -> Output {
    let exe = exe_for_nobody(scratch);
    let args = ["--exact", ROOT_ONLY_TEST, "--test-threads=1"];
    let mut cmd = if sluice_test_util::has_tool("setpriv") {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(&exe)
            .args(args);
        cmd
    } else {
        // su keeps the environment (no `-`); the command goes through sh.
        let line = std::iter::once(exe.display().to_string())
            .chain(args.iter().map(|a| (*a).to_owned()))
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new("su");
        cmd.args(["nobody", "-s", "/bin/sh", "-c", &line]);
        cmd
    };
    if ci {
        cmd.env("CI", "true");
    } else {
        cmd.env_remove("CI");
    }
    let out = cmd
        .env(sluice_test_util::SKIP_LOG_VAR, skip_log)
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .expect("run the test binary as nobody");
    println!(
        "--- as nobody (CI {}): {}\n--- stdout\n{}--- stderr\n{}---",
        if ci { "set" } else { "unset" },
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A scratch dir user `nobody` can write in (for the skip log).
fn scratch_for_nobody() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
        .expect("chmod scratch dir");
    dir
}

fn harness_tools() -> &'static [&'static str] {
    if sluice_test_util::has_tool("setpriv") {
        &["setpriv"]
    } else {
        &["su"]
    }
}

#[test]
fn without_root_under_ci_the_suite_fails_and_names_the_test() {
    let test = "without_root_under_ci_the_suite_fails_and_names_the_test";
    // Root, to run the suite as another user.
    if !sluice_test_util::require_root_and_tools(test, harness_tools()) {
        return;
    }
    let scratch = scratch_for_nobody();
    let skip_log = scratch.path().join("skips.log");
    let out = run_as_nobody(scratch.path(), true, &skip_log);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "the run passed under CI: {all}");
    assert!(
        stdout.contains(&format!("test {ROOT_ONLY_TEST} ... FAILED")),
        "the failing test is not named: {all}"
    );
    assert!(
        all.contains(&format!("{ROOT_ONLY_TEST} cannot run: it needs root")),
        "the failure does not say it needs root: {all}"
    );
    assert!(
        stdout.contains("1 failed") && !stdout.contains("1 passed"),
        "{all}"
    );
    // A failure is not a skip.
    assert!(!skip_log.exists(), "a skip was logged under CI");
}

#[test]
fn without_root_outside_ci_the_test_is_skipped_and_logged() {
    let test = "without_root_outside_ci_the_test_is_skipped_and_logged";
    if !sluice_test_util::require_root_and_tools(test, harness_tools()) {
        return;
    }
    let scratch = scratch_for_nobody();
    let skip_log = scratch.path().join("skips.log");
    let out = run_as_nobody(scratch.path(), false, &skip_log);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "a skip must not fail the run outside CI: {}{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    let line = format!("SKIPPED {ROOT_ONLY_TEST}: needs root");
    assert!(
        stderr.contains(&line),
        "stderr does not say {line:?}: {stderr}"
    );
    let logged = std::fs::read_to_string(&skip_log)
        .unwrap_or_else(|e| panic!("the skip log {} was not written: {e}", skip_log.display()));
    assert_eq!(logged, format!("{line}\n"));
}
