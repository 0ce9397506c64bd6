//! End to end for cluster DNS on a cluster started as `cargo xtask up` starts it, its upstream
//! a dnsmasq in a network namespace of this test (`SLUICE_DNS_UPSTREAM`), never the host's
//! resolvers. From inside a pod: a Service by short name, by `<svc>.<ns>` and by FQDN, a
//! headless Service's pod addresses and `<hostname>.<svc>` names, SRV for a named port, an
//! `ExternalName` (CNAME, its target resolved upstream), NXDOMAIN once a Service is deleted,
//! PTR for a `ClusterIP`, `<a-b-c-d>.<ns>.pod` records, and names outside the cluster forwarded
//! (answers and NXDOMAIN passed through). Malformed queries to the kube-dns VIP get FORMERR and
//! the server keeps answering.
//!
//! Two resolvers run in the pod's network: busybox `nslookup` inside the pod (through
//! containerd), which applies the search path only to names without a dot, and glibc's
//! `gethostbyname` (`getent hosts` on the host, entered into the pod's network namespace with
//! the pod's own resolv.conf mounted over /etc/resolv.conf), which applies it as pods' libcs do
//! (`ndots:5`). busybox `wget` cannot resolve: the static busybox crashes in glibc's resolver.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sluice_tests::cluster::{self, Cluster};
use sluice_tests::wait_for;

const TEST: &str = "cluster_dns_from_a_pod";
/// The test upstream's side of the veth, and the host's.
const UPSTREAM_IP: Ipv4Addr = Ipv4Addr::new(10, 203, 53, 2);
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 203, 53, 1);
/// What the test upstream answers for [`OUTSIDE`].
const OUTSIDE: &str = "outside.example.test";
const OUTSIDE_IP: &str = "203.0.113.7";
/// Generous: a lookup from a debug-build agent on a busy machine.
const SETTLE: Duration = Duration::from_secs(30);

const APP: &str = r"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: localhost/sluice/test:1
        ports: [{containerPort: 8080, name: http}]
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: outside.example.test
";

/// A pod of the headless Service `db`, with `hostname` and `subdomain` set.
fn db_pod(name: &str) -> String {
    format!(
        r"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: db}}}}
spec:
  hostname: {name}
  subdomain: db
  terminationGracePeriodSeconds: 1
  containers:
  - name: db
    image: localhost/sluice/test:1
    ports: [{{containerPort: 8080, name: http}}]
    readinessProbe:
      httpGet: {{path: /healthz, port: http}}
      periodSeconds: 1
"
    )
}

// ---- the test upstream ---------------------------------------------------------------------

/// A network namespace with a veth pair to the host and a dnsmasq in it serving [`OUTSIDE`]
/// (and NXDOMAIN for the rest of `example.test`). Dropping it kills dnsmasq and deletes the
/// namespace, which deletes the veth pair.
struct Upstream {
    netns: String,
    veth: String,
    dnsmasq: Option<Child>,
    dir: tempfile::TempDir,
}

impl Upstream {
    fn start() -> Self {
        let id = std::process::id();
        let dir = tempfile::Builder::new()
            .prefix("sluice-dns-e2e-")
            .tempdir()
            .expect("temp dir");
        // The host side's name starts with `veth`: never taken for the node IP.
        let mut upstream = Self {
            netns: format!("sluice-dnst-{id}"),
            veth: format!("vethdnst{id}"),
            dnsmasq: None,
            dir,
        };
        let peer = format!("dnstp{id}");
        let (ns, veth) = (upstream.netns.clone(), upstream.veth.clone());
        ip(&["netns", "add", &ns]);
        ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", &peer, "netns", &ns,
        ]);
        ip(&["addr", "add", &format!("{HOST_IP}/30"), "dev", &veth]);
        ip(&["link", "set", &veth, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{UPSTREAM_IP}/30"),
            "dev",
            &peer,
        ]);
        ip(&["-n", &ns, "link", "set", &peer, "up"]);

        let hosts = upstream.dir.path().join("hosts");
        std::fs::write(&hosts, format!("{OUTSIDE_IP} {OUTSIDE}\n")).expect("write hosts");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, "dnsmasq", "--keep-in-foreground"])
            .args([
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--user=root",
            ])
            .arg(format!("--addn-hosts={}", hosts.display()))
            .args(["--local=/example.test/", "--bogus-priv"])
            .arg(format!("--listen-address={UPSTREAM_IP}"))
            .arg("--bind-interfaces")
            .arg(format!(
                "--pid-file={}",
                upstream.dir.path().join("pid").display()
            ))
            .arg("--log-queries")
            .arg(format!("--log-facility={}", upstream.log().display()))
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn dnsmasq");
        upstream.dnsmasq = Some(child);
        upstream
    }

    fn addr() -> SocketAddr {
        SocketAddr::from((UPSTREAM_IP, 53))
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("dnsmasq.log")
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.log()).unwrap_or_default();
            eprintln!("--- test upstream dnsmasq log ---\n{log}");
        }
        if let Some(mut child) = self.dnsmasq.take() {
            // `ip netns exec` execs dnsmasq: the child is dnsmasq itself.
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        if Path::new("/sys/class/net").join(&self.veth).exists() {
            let _ = Command::new("ip")
                .args(["link", "del", &self.veth])
                .status();
        }
    }
}

fn ip(args: &[&str]) {
    sluice_test_util::run(Command::new("ip").args(args));
}

// ---- raw DNS over UDP ----------------------------------------------------------------------

/// A DNS header with `id`, RD set, and the section counts.
fn header(id: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut bytes = id.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0x01, 0x00]);
    for count in counts {
        bytes.extend_from_slice(&count.to_be_bytes());
    }
    bytes
}

/// A query for the A records of `name`.
fn query_a(id: u16, name: &str) -> Vec<u8> {
    let mut bytes = header(id, [1, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        bytes.push(u8::try_from(label.len()).expect("label length"));
        bytes.extend_from_slice(label.as_bytes());
    }
    bytes.extend_from_slice(&[0, 0, 1, 0, 1]);
    bytes
}

/// A reply's id, whether it is a response, its response code and its answer count.
#[derive(Debug, PartialEq, Eq)]
struct Reply {
    id: u16,
    response: bool,
    rcode: u8,
    answers: u16,
}

/// Sends `bytes` to `addr` over UDP; the reply, or `None` if none comes within 2 s.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Option<Reply> {
    let socket = UdpSocket::bind("0.0.0.0:0").expect("bind UDP");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    socket.connect(addr).expect("connect UDP");
    socket.send(bytes).expect("send");
    let mut buf = [0u8; 1500];
    let n = socket.recv(&mut buf).ok()?;
    let reply = buf.get(..n).filter(|b| b.len() >= 12)?;
    Some(Reply {
        id: u16::from_be_bytes([reply[0], reply[1]]),
        response: reply[2] & 0x80 != 0,
        rcode: reply[3] & 0x0f,
        answers: u16::from_be_bytes([reply[6], reply[7]]),
    })
}

// ---- lookups from the pod ------------------------------------------------------------------

/// `nslookup args...` in `pod`: its output (ctr's exit status is busybox's, which is 1 when
/// any of the names it tried failed, as with search domains).
fn nslookup(cluster: &Cluster, pod: &str, args: &[&str]) -> String {
    let mut cmd = vec!["nslookup"];
    cmd.extend_from_slice(args);
    cluster.exec_in_pod(pod, &cmd).1
}

/// Waits until `nslookup args...` in `pod` prints every one of `want`; returns the output.
/// On a timeout the last output is shown.
async fn nslookup_until(cluster: &Cluster, pod: &str, args: &[&str], want: &[&str]) -> String {
    /// Prints the last output when the wait panics.
    struct Last(String);
    impl Drop for Last {
        fn drop(&mut self) {
            if std::thread::panicking() {
                eprintln!("last output:\n{}", self.0);
            }
        }
    }
    let mut last = Last(String::new());
    let what = format!("`nslookup {}` in {pod} to show {want:?}", args.join(" "));
    wait_for(&what, SETTLE, || {
        let out = nslookup(cluster, pod, args);
        let done = want.iter().all(|w| out.contains(w));
        last.0.clone_from(&out);
        async move { done.then_some(out) }
    })
    .await
}

/// The host pid of `pod`'s first container (its network namespace is the pod's).
fn pod_pid(cluster: &Cluster, pod: &str) -> u32 {
    let id = cluster.kubectl_ok(&[
        "get",
        "pod",
        pod,
        "-o",
        "jsonpath={.status.containerStatuses[0].containerID}",
    ]);
    let id = id.trim().trim_start_matches("containerd://");
    assert!(!id.is_empty(), "pod {pod} has no container id");
    let tasks = sluice_test_util::stdout(
        Command::new("ctr")
            .arg("--address")
            .arg(cluster.containerd_socket())
            .args(["-n", "k8s.io", "tasks", "ls"]),
    );
    tasks
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(id)).then(|| words.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no task {id} in `ctr tasks ls`:\n{tasks}"))
}

/// glibc's resolver in `pod`'s network namespace, with the pod's resolv.conf (search path,
/// `ndots:5`) and DNS as the only hosts source: the canonical name and the addresses
/// `getent hosts name` prints (`None` when the lookup fails).
fn gethostbyname(pid: u32, dir: &Path, name: &str) -> Option<(String, Vec<String>)> {
    let nsswitch = dir.join("nsswitch.conf");
    std::fs::write(&nsswitch, "hosts: dns\n").expect("write nsswitch.conf");
    // A copy: the pod's file is a mount of its own mount namespace, which a bind from
    // /proc/<pid>/root would not carry over.
    let resolv = dir.join("resolv.conf");
    std::fs::copy(format!("/proc/{pid}/root/etc/resolv.conf"), &resolv)
        .expect("copy the pod's resolv.conf");
    let script = r#"mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/nsswitch.conf && exec getent hosts "$3""#;
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["unshare", "--mount", "--propagation", "private", "sh", "-c"])
        .arg(script)
        .arg("sh")
        .arg(&resolv)
        .arg(&nsswitch)
        .arg(name)
        .stdin(Stdio::null())
        .output()
        .expect("run nsenter");
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        eprintln!(
            "getent hosts {name} in pid {pid}'s network: {}; {}{text}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    // `<ip> <canonical name> [aliases]`, a line per address.
    let canonical = text
        .lines()
        .find_map(|l| l.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_owned();
    let mut ips: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    ips.sort();
    ips.dedup();
    Some((canonical, ips))
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).expect("json")
}

/// `pod`'s IP once it has one.
async fn pod_ip(cluster: &Cluster, pod: &str) -> String {
    wait_for(&format!("{pod}'s IP"), Duration::from_mins(2), || async {
        let ip = cluster.kubectl_ok(&["get", "pod", pod, "-o", "jsonpath={.status.podIP}"]);
        let ip = ip.trim().to_owned();
        (!ip.is_empty()).then_some(ip)
    })
    .await
}

/// The ready endpoint addresses of Service `svc`, sorted.
fn ready_addresses(cluster: &Cluster, svc: &str) -> Vec<String> {
    let label = format!("kubernetes.io/service-name={svc}");
    let slices = json(&cluster.kubectl_ok(&["get", "endpointslices", "-l", &label, "-o", "json"]));
    let mut ips: Vec<String> = slices["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["conditions"]["ready"] == true)
        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    ips.sort();
    ips
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_dns_from_a_pod() {
    if !cluster::require_cluster(TEST, &["dnsmasq", "nsenter", "unshare", "getent", "mount"]) {
        return;
    }
    let upstream = Upstream::start();
    wait_for("the test upstream to answer", SETTLE, || async {
        exchange(Upstream::addr(), &query_a(1, OUTSIDE)).filter(|r| r.rcode == 0 && r.answers == 1)
    })
    .await;
    let upstream_env = Upstream::addr().to_string();
    let cluster =
        Cluster::start_with_env(true, &[("SLUICE_DNS_UPSTREAM", Path::new(&upstream_env))]);

    cluster.apply(APP);
    cluster.apply(&db_pod("db-0"));
    cluster.apply(&db_pod("db-1"));
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=180s"]);
    let client = wait_for("a ready web pod", Duration::from_mins(1), || async {
        let names = cluster.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ]);
        let ready = ready_addresses(&cluster, "web").len() == 1;
        names
            .split_whitespace()
            .next()
            .filter(|_| ready)
            .map(str::to_owned)
    })
    .await;
    let client_ip = pod_ip(&cluster, &client).await;
    let (db0_ip, db1_ip) = (
        pod_ip(&cluster, "db-0").await,
        pod_ip(&cluster, "db-1").await,
    );
    let mut db_ips = vec![db0_ip.clone(), db1_ip.clone()];
    db_ips.sort();
    wait_for("both db pods ready", Duration::from_mins(2), || async {
        (ready_addresses(&cluster, "db") == db_ips).then_some(())
    })
    .await;
    let vip = cluster.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let dns_vip = cluster.kubectl_ok(&[
        "get",
        "svc",
        "kube-dns",
        "-n",
        "kube-system",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let web_fqdn = "web.default.svc.cluster.local";

    // A Service by FQDN, and by short name through the search path (busybox nslookup in the pod).
    nslookup_until(
        &cluster,
        &client,
        &[web_fqdn],
        &[&format!("Address: {vip}")],
    )
    .await;
    nslookup_until(
        &cluster,
        &client,
        &["web"],
        &[&format!("Name:\t{web_fqdn}"), &format!("Address: {vip}")],
    )
    .await;
    // glibc in the pod's network with its resolv.conf: short name, `<svc>.<ns>`, FQDN.
    let pid = pod_pid(&cluster, &client);
    for name in ["web", "web.default", web_fqdn, "web.default.svc"] {
        let found = gethostbyname(pid, upstream.dir.path(), name);
        assert_eq!(
            found,
            Some((web_fqdn.to_owned(), vec![vip.clone()])),
            "gethostbyname({name}) in {client}'s network namespace"
        );
    }
    assert_eq!(
        gethostbyname(pid, upstream.dir.path(), "nope.default"),
        None,
        "a name that is no Service resolved"
    );

    // Headless: the ready pods' addresses, one name per endpoint, SRV per endpoint.
    let db_fqdn = "db.default.svc.cluster.local";
    let want: Vec<String> = db_ips.iter().map(|ip| format!("Address: {ip}")).collect();
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    nslookup_until(&cluster, &client, &[db_fqdn], &want).await;
    // Each endpoint by the name its pod asked for: `hostname` with `subdomain: db`, which the
    // EndpointSlice controller publishes as the endpoint's `hostname` (upstream's
    // `ShouldSetHostname`); SRV per endpoint points at those names.
    for (host, ip) in [("db-0", &db0_ip), ("db-1", &db1_ip)] {
        let named = nslookup_until(
            &cluster,
            &client,
            &[&format!("{host}.{db_fqdn}")],
            &[&format!("Address: {ip}")],
        )
        .await;
        // The server's own line is `Address:\t<ip>:53`; answers are `Address: <ip>`.
        assert_eq!(
            named.matches("Address: ").count(),
            1,
            "{host} has one address: {named}"
        );
    }
    nslookup_until(
        &cluster,
        &client,
        &["-type=SRV", &format!("_http._tcp.{db_fqdn}")],
        &[
            &format!("8080 db-0.{db_fqdn}"),
            &format!("8080 db-1.{db_fqdn}"),
        ],
    )
    .await;

    // SRV for a named port of a ClusterIP Service.
    nslookup_until(
        &cluster,
        &client,
        &["-type=SRV", &format!("_http._tcp.{web_fqdn}")],
        &[&format!("80 {web_fqdn}")],
    )
    .await;

    // ExternalName: the CNAME, and its target's address from the test upstream.
    nslookup_until(
        &cluster,
        &client,
        &["ext.default.svc.cluster.local"],
        &[
            &format!("canonical name = {OUTSIDE}"),
            &format!("Address: {OUTSIDE_IP}"),
        ],
    )
    .await;

    // PTR for the ClusterIP; the pod's own `a-b-c-d.<ns>.pod` record.
    nslookup_until(&cluster, &client, &[&vip], &[&format!("name = {web_fqdn}")]).await;
    let pod_name = format!("{}.default.pod.cluster.local", client_ip.replace('.', "-"));
    nslookup_until(
        &cluster,
        &client,
        &[&pod_name],
        &[&format!("Address: {client_ip}")],
    )
    .await;

    // Outside the cluster: forwarded to the test upstream, its answer and its NXDOMAIN.
    nslookup_until(
        &cluster,
        &client,
        &[OUTSIDE],
        &[&format!("Address: {OUTSIDE_IP}")],
    )
    .await;
    let (_, outside) = gethostbyname(pid, upstream.dir.path(), OUTSIDE)
        .unwrap_or_else(|| panic!("gethostbyname({OUTSIDE}) failed"));
    assert_eq!(outside, [OUTSIDE_IP]);
    nslookup_until(
        &cluster,
        &client,
        &["missing.example.test"],
        &["can't find missing.example.test: NXDOMAIN"],
    )
    .await;

    // A deleted Service: resolved first, NXDOMAIN after the delete.
    cluster.apply(
        r"
apiVersion: v1
kind: Service
metadata: {name: gone}
spec:
  ports: [{port: 80}]
",
    );
    let gone_vip = cluster.kubectl_ok(&["get", "svc", "gone", "-o", "jsonpath={.spec.clusterIP}"]);
    let gone_fqdn = "gone.default.svc.cluster.local";
    nslookup_until(
        &cluster,
        &client,
        &[gone_fqdn],
        &[&format!("Address: {gone_vip}")],
    )
    .await;
    cluster.kubectl_ok(&["delete", "service", "gone"]);
    nslookup_until(
        &cluster,
        &client,
        &[gone_fqdn],
        &[&format!("can't find {gone_fqdn}: NXDOMAIN")],
    )
    .await;
    nslookup_until(
        &cluster,
        &client,
        &[&gone_vip],
        &[&format!("can't find {}", reverse_name(&gone_vip))],
    )
    .await;

    // Malformed queries to the kube-dns VIP (from the host; the proxy sends the VIP to the
    // agent as it does for pods): FORMERR with the query's id, then normal answers again.
    let dns: SocketAddr = format!("{dns_vip}:53").parse().expect("kube-dns address");
    let kube = query_a(0x0100, "kubernetes.default.svc.cluster.local");
    let mut bad_label = header(0xbad1, [1, 0, 0, 0]);
    bad_label.extend_from_slice(&[0x41, b'x', 0, 0, 1, 0, 1]);
    let mut pointer_loop = header(0xbad2, [1, 0, 0, 0]);
    pointer_loop.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    let mut cut = kube.clone();
    cut.truncate(kube.len() - 3);
    cut[..2].copy_from_slice(&0xbad4_u16.to_be_bytes());
    let mut two = header(0xbad5, [2, 0, 0, 0]);
    two.extend_from_slice(&kube[12..]);
    two.extend_from_slice(&kube[12..]);
    for (what, bytes) in [
        ("an extended label type", bad_label),
        ("a compression pointer loop", pointer_loop),
        ("no question", header(0xbad3, [0, 0, 0, 0])),
        ("a question cut short", cut),
        ("two questions", two),
    ] {
        let id = u16::from_be_bytes([bytes[0], bytes[1]]);
        let reply = exchange(dns, &bytes).unwrap_or_else(|| panic!("{what}: no reply"));
        assert_eq!(
            reply,
            Reply {
                id,
                response: true,
                rcode: 1,
                answers: 0
            },
            "{what}: FORMERR expected"
        );
    }
    assert_eq!(
        exchange(dns, b"\x12\x34\x01"),
        None,
        "shorter than a header"
    );
    let reply = exchange(dns, &kube).expect("an answer after the malformed queries");
    assert_eq!((reply.id, reply.rcode, reply.answers), (0x0100, 0, 1));
    nslookup_until(
        &cluster,
        &client,
        &[web_fqdn],
        &[&format!("Address: {vip}")],
    )
    .await;

    // The agent's upstream was the test's dnsmasq: it logged the forwarded names.
    let log = std::fs::read_to_string(upstream.log()).expect("dnsmasq log");
    assert!(log.contains("query[A] missing.example.test"), "{log}");

    drop(cluster);
    drop(upstream);
}

/// `a.b.c.d` -> `d.c.b.a.in-addr.arpa`.
fn reverse_name(ip: &str) -> String {
    let mut octets: Vec<&str> = ip.split('.').collect();
    octets.reverse();
    format!("{}.in-addr.arpa", octets.join("."))
}
