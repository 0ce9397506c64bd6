//! End to end on three nodes (`cargo xtask up --nodes 3`): each node a network namespace on
//! the `sluice0` bridge with its own containerd, node agent, podCIDR, cgroup subtree and
//! eBPF pins. Pods on different nodes reach each other by pod IP over the routes the agents
//! program from the Node objects, with the client's pod IP preserved; a `ClusterIP` Service
//! whose only endpoint is on one node answers from pods on every node, as does
//! `kubernetes.default` (the API server on the host); no node gets an iptables rule. Once with native routing, once over the VXLAN overlay (`--tunnel vxlan`).
//!
//! With native routing the same cluster then serves north-south traffic from the host (an
//! outside client on `sluice0`, no node): `NodePort` on every node address, a
//! `LoadBalancer` IP from the pool, `externalTrafficPolicy: Local` with the client address
//! kept and its health check, `sessionAffinity` (from outside and, through the socket LB,
//! from a pod), `loadBalancerSourceRanges`, a UDP flow
//! surviving the deletion of its backend, and an agent restart under load.

use std::time::Duration;

use sluice_tests::cluster::{self, Cluster};
use sluice_tests::wait_for;

/// A pod pinned to `node`: the test image's HTTP server on 8080, and on 9000 a one-shot
/// listener that answers with `netstat -tn` (so the client sees the peer address the
/// server saw).
fn pod(name: &str, node: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: localhost/sluice/test:1
    ports: [{{containerPort: 8080, name: http}}]
    readinessProbe:
      httpGet: {{path: /healthz, port: http}}
      periodSeconds: 1
  - name: peer
    image: localhost/sluice/test:1
    command: ["sh", "-c", "while true; do nc -l -p 9000 -e netstat -tn; done"]
"#
    )
}

const SERVICE: &str = r"
apiVersion: v1
kind: Service
metadata: {name: far}
spec:
  selector: {app: srv}
  ports: [{name: http, port: 80, targetPort: http}]
";

fn pod_ip(cluster: &Cluster, pod: &str) -> String {
    cluster
        .kubectl_ok(&["get", "pod", pod, "-o", "jsonpath={.status.podIP}"])
        .trim()
        .to_owned()
}

/// `sh -c script` in the pod's `web` container through the API server and its kubelet.
fn exec(cluster: &Cluster, pod: &str, script: &str) -> String {
    cluster.kubectl_ok(&["exec", pod, "-c", "web", "--", "sh", "-c", script])
}

/// `n` HTTP GETs from `client`'s `web` container to `vip:80`, each on a new connection:
/// their answers (a pod's hostname; `FAIL` for a failed request), once every one of a run
/// is in `expected` (retried for a minute while the Service's maps settle).
async fn cluster_ip_answers(
    cluster: &Cluster,
    client: &str,
    vip: &str,
    n: usize,
    expected: &[&str],
) -> Vec<String> {
    let script = format!(
        "for i in $(seq {n}); do r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {vip} 80 | tail -n 1); echo \"${{r:-FAIL}}\"; done"
    );
    wait_for(
        &format!("{client} to reach {vip}:80"),
        Duration::from_mins(1),
        || async {
            let out = exec(cluster, client, &script);
            let lines: Vec<String> = out.lines().map(|l| l.trim().to_owned()).collect();
            (lines.len() == n && lines.iter().all(|l| expected.contains(&l.as_str())))
                .then_some(lines)
        },
    )
    .await
}

/// Iptables rules (not comments or chain counters) in a node's network namespace.
fn iptables_rules(netns: &str) -> Vec<String> {
    sluice_test_util::stdout(std::process::Command::new("ip").args([
        "netns",
        "exec",
        netns,
        "iptables-save",
    ]))
    .lines()
    .filter(|l| l.starts_with("-A"))
    .map(str::to_owned)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_and_cluster_ips_across_three_nodes() {
    if !cluster::require_cluster(
        "pods_and_cluster_ips_across_three_nodes",
        &["iptables-save"],
    ) {
        return;
    }
    across_three_nodes("none").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_and_cluster_ips_across_three_nodes_over_vxlan() {
    if !cluster::require_cluster(
        "pods_and_cluster_ips_across_three_nodes_over_vxlan",
        &["iptables-save"],
    ) {
        return;
    }
    across_three_nodes("vxlan").await;
}

async fn across_three_nodes(tunnel: &str) {
    // The overlay run also takes the XDP fast path for north-south traffic.
    let extra: &[&str] = if tunnel == "vxlan" { &["--xdp"] } else { &[] };
    let cluster = Cluster::start_nodes_args(true, 3, tunnel, extra);

    // Three Ready nodes, each with its own podCIDR and address on the bridge.
    let nodes = cluster.kubectl_ok(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type==\"InternalIP\")].address}{\"\\n\"}{end}",
    ]);
    let rows: Vec<Vec<&str>> = nodes
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{nodes}");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), 3, "node without a podCIDR or address: {nodes}");
        assert_eq!(row[0], format!("node-{}", i + 1), "{nodes}");
        assert_eq!(row[2], format!("172.30.0.{}", 11 + i), "{nodes}");
    }
    let cidrs: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[1]).collect();
    assert_eq!(cidrs.len(), 3, "podCIDRs must differ: {nodes}");

    cluster.apply(&format!(
        "{}---{}---{}",
        pod("srv", "node-3"),
        pod("cli1", "node-1"),
        pod("cli2", "node-2")
    ));
    for p in ["srv", "cli1", "cli2"] {
        cluster.kubectl_ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{p}"),
            "--timeout=180s",
        ]);
    }
    let srv = pod_ip(&cluster, "srv");
    let cli1 = pod_ip(&cluster, "cli1");

    // The route to node-3's pods: via node-3 natively, through the overlay device with
    // vxlan; pods' MTU leaves room for the VXLAN headers.
    let node3_range = rows[2][1];
    let route = sluice_test_util::stdout(std::process::Command::new("ip").args([
        "-n",
        "sluice-node-1",
        "route",
        "show",
        node3_range,
    ]));
    let mtu = exec(&cluster, "cli1", "cat /sys/class/net/eth0/mtu");
    if tunnel == "vxlan" {
        assert!(
            route.contains("dev sluice_vxlan") && route.contains("onlink"),
            "{route}"
        );
        assert_eq!(mtu.trim(), "1450", "pod MTU under vxlan");
    } else {
        assert!(route.contains("via 172.30.0.13 dev eth0"), "{route}");
        assert_eq!(mtu.trim(), "1500", "pod MTU natively");
    }
    assert!(route.contains("proto 213"), "{route}");

    // Pod to pod across nodes by pod IP, both ways.
    let answer = exec(
        &cluster,
        "cli1",
        &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {srv} 8080 | tail -n 1"),
    );
    assert_eq!(
        answer.trim(),
        "srv",
        "cli1 (node-1) -> srv (node-3) by pod IP\n{}",
        cluster.logs()
    );
    let answer = exec(
        &cluster,
        "srv",
        &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {cli1} 8080 | tail -n 1"),
    );
    assert_eq!(
        answer.trim(),
        "cli1",
        "srv (node-3) -> cli1 (node-1)\n{}",
        cluster.logs()
    );

    // The server sees the client's own pod IP: no SNAT on the way between nodes.
    let seen = exec(&cluster, "cli1", &format!("nc -w 5 {srv} 9000 </dev/null"));
    // busybox shows IPv4-mapped addresses (`::ffff:10.244.2.2:9000`); the client may have
    // half-closed already (CLOSE_WAIT).
    let peer = seen
        .lines()
        .map(|l| l.replace("::ffff:", ""))
        .find(|l| l.split_whitespace().nth(3) == Some(format!("{srv}:9000").as_str()))
        .unwrap_or_else(|| panic!("no connection to {srv}:9000 in the server's netstat:\n{seen}"));
    assert!(
        peer.split_whitespace()
            .nth(4)
            .is_some_and(|p| p.starts_with(&format!("{cli1}:"))),
        "the server saw {peer:?}, the client is {cli1}"
    );

    // A ClusterIP whose only endpoint is on node-3 answers from every node's pods.
    cluster.apply(SERVICE);
    let vip = cluster.kubectl_ok(&["get", "svc", "far", "-o", "jsonpath={.spec.clusterIP}"]);
    for client in ["cli1", "cli2", "srv"] {
        let answers = cluster_ip_answers(&cluster, client, &vip, 10, &["srv"]).await;
        assert_eq!(answers.len(), 10);
    }

    // In-cluster API access: `kubernetes.default`'s cluster IP reaches the API server on
    // the host through its EndpointSlice, from a pod on any node.
    let api_vip = cluster.kubectl_ok(&[
        "get",
        "svc",
        "kubernetes",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let request =
        format!("printf 'GET /version HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {api_vip} 443; true");
    let version = wait_for(
        &format!("cli2 to reach kubernetes.default at {api_vip}:443"),
        Duration::from_secs(30),
        || async {
            let out = exec(&cluster, "cli2", &request);
            (out.starts_with("HTTP/1.") && out.contains("gitVersion")).then_some(out)
        },
    )
    .await;
    assert!(version.contains("200 OK"), "{version}");

    north_south(&cluster).await;

    // Nothing of this went through iptables on any node.
    for node in ["node-1", "node-2", "node-3"] {
        let rules = iptables_rules(&format!("sluice-{node}"));
        assert!(rules.is_empty(), "iptables rules on {node}: {rules:?}");
    }

    let mut cluster = cluster;
    assert!(
        cluster.stop(),
        "up did not stop cleanly:\n{}",
        cluster.logs()
    );
    let left = sluice_test_util::stdout(std::process::Command::new("ip").args(["netns", "list"]));
    assert!(
        !left.contains("sluice-node-"),
        "node namespaces left behind: {left}"
    );
}

/// A backend pod for the north-south checks: HTTP (hostname) on 8080, the peer listener
/// (`netstat -tn`) on 9000, and on UDP 9001 a responder that answers each datagram with
/// the hostname.
fn web_pod(name: &str, node: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}, tier: web}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: localhost/sluice/test:1
    ports: [{{containerPort: 8080, name: http}}]
    readinessProbe:
      httpGet: {{path: /healthz, port: http}}
      periodSeconds: 1
  - name: peer
    image: localhost/sluice/test:1
    command: ["sh", "-c", "while true; do nc -l -p 9000 -e netstat -tn; done"]
  - name: udp
    image: localhost/sluice/test:1
    command: ["udp-hostname", "9001"]
"#
    )
}

const NORTH_SOUTH: &str = r"
apiVersion: v1
kind: Service
metadata: {name: np}
spec:
  type: NodePort
  selector: {tier: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: peer, port: 9000, targetPort: 9000}
  - {name: udp, port: 9001, targetPort: 9001, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  type: NodePort
  selector: {tier: web}
  sessionAffinity: ClientIP
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: local}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: web-a}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: peer, port: 9000, targetPort: 9000}
---
apiVersion: v1
kind: Service
metadata: {name: ranged}
spec:
  type: LoadBalancer
  selector: {tier: web}
  loadBalancerSourceRanges: [10.0.0.0/8]
  ports: [{name: http, port: 80, targetPort: 8080}]
";

const NODES: [&str; 3] = ["172.30.0.11", "172.30.0.12", "172.30.0.13"];

/// One HTTP GET from the host to `addr` on a new connection: the body's last line, or the
/// error.
fn get(addr: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut out = String::new();
    stream
        .read_to_string(&mut out)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    out.lines()
        .last()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .ok_or_else(|| format!("{addr}: empty reply {out:?}"))
}

/// What the peer listener behind `addr` saw as its client: `ip:port` of the connection to
/// port 9000 in its `netstat -tn`.
fn peer_seen(addr: &str) -> Result<String, String> {
    use std::io::Read;
    let sock: std::net::SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    stream
        .read_to_string(&mut out)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    out.lines()
        .map(|l| l.replace("::ffff:", ""))
        .find_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields.len() > 4 && fields[3].ends_with(":9000")).then(|| fields[4].to_owned())
        })
        .ok_or_else(|| format!("no connection to :9000 in {out:?}"))
}

fn node_port(cluster: &Cluster, service: &str, port: &str) -> u16 {
    cluster
        .kubectl_ok(&[
            "get",
            "svc",
            service,
            "-o",
            &format!("jsonpath={{.spec.ports[?(@.name==\"{port}\")].nodePort}}"),
        ])
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{service}/{port} has no nodePort: {e}"))
}

async fn north_south(cluster: &Cluster) {
    cluster.apply(&format!(
        "{}---{}---{NORTH_SOUTH}",
        web_pod("web-a", "node-1"),
        web_pod("web-b", "node-2")
    ));
    for p in ["web-a", "web-b"] {
        cluster.kubectl_ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{p}"),
            "--timeout=180s",
        ]);
    }
    let np = node_port(cluster, "np", "http");

    // A NodePort answers on every node's address, node-3 (no endpoint of its own) included:
    // its flows are source-NATed to the node and sent on to node-1 or node-2.
    let mut seen = std::collections::BTreeSet::new();
    for node in NODES {
        let addr = format!("{node}:{np}");
        let answers: Vec<String> = wait_for(
            &format!("NodePort {addr} to answer"),
            Duration::from_mins(1),
            || async {
                let answers: Result<Vec<String>, String> = (0..20).map(|_| get(&addr)).collect();
                answers.ok()
            },
        )
        .await;
        assert!(
            answers.iter().all(|a| a == "web-a" || a == "web-b"),
            "{addr}: {answers:?}"
        );
        seen.extend(answers);
    }
    assert_eq!(seen.len(), 2, "60 connections reached only {seen:?}");

    // sessionAffinity: ClientIP sends every connection from this client to one backend.
    let sticky = node_port(cluster, "sticky", "http");
    let addr = format!("{}:{sticky}", NODES[2]);
    let answers: Vec<String> = wait_for(
        &format!("sticky NodePort {addr}"),
        Duration::from_mins(1),
        || async {
            let answers: Result<Vec<String>, String> = (0..50).map(|_| get(&addr)).collect();
            answers.ok()
        },
    )
    .await;
    let distinct: std::collections::BTreeSet<&String> = answers.iter().collect();
    assert_eq!(distinct.len(), 1, "affinity broke: {answers:?}");

    // Pods get the same affinity from the socket LB at connect(): every connection from
    // cli1 to the sticky Service's cluster IP reaches one backend, while the same
    // backends behind `np`'s cluster IP share cli1's connections.
    for (service, sticky) in [("sticky", true), ("np", false)] {
        let vip = cluster.kubectl_ok(&["get", "svc", service, "-o", "jsonpath={.spec.clusterIP}"]);
        let answers = cluster_ip_answers(cluster, "cli1", &vip, 20, &["web-a", "web-b"]).await;
        let distinct: std::collections::BTreeSet<&String> = answers.iter().collect();
        if sticky {
            assert_eq!(distinct.len(), 1, "cluster-IP affinity broke: {answers:?}");
        } else {
            // 20 connections all on one of two backends by chance: 2^-19.
            assert_eq!(distinct.len(), 2, "no spread without affinity: {answers:?}");
        }
    }

    // `lb list` on node-3 shows the NodePorts, this client's tracked flows and its
    // affinity entry, from the live maps.
    let listing = sluice_test_util::stdout(
        std::process::Command::new(sluice_tests::bin("sluice-node-agent")).args([
            "lb",
            "list",
            "--bpf-pin-dir",
            "/sys/fs/bpf/sluice/node-3",
        ]),
    );
    for want in [
        format!("*:{np}/TCP"),
        format!("*:{sticky}/TCP"),
        "ClientIP-affinity (10800s)".to_owned(),
        format!("{}:", cluster::BRIDGE_HOST),
        "SESSION AFFINITY".to_owned(),
    ] {
        assert!(
            listing.contains(&want),
            "{want:?} missing from lb list:\n{listing}"
        );
    }
    let affinity = listing
        .split("\nSESSION AFFINITY")
        .nth(1)
        .unwrap_or_default();
    assert!(
        affinity.contains(cluster::BRIDGE_HOST),
        "no affinity entry for this client:\n{listing}"
    );

    // A LoadBalancer with policy Local: an IP from the pool, announced by node-1 (the only
    // node with an endpoint), the client's own address reaches the backend, and the health
    // check passes on node-1 only.
    let lb_ip = wait_for(
        "an ingress IP for Service local",
        Duration::from_mins(1),
        || async {
            let ip = cluster.kubectl_ok(&[
                "get",
                "svc",
                "local",
                "-o",
                "jsonpath={.status.loadBalancer.ingress[0].ip}",
            ]);
            let ip = ip.trim().to_owned();
            (!ip.is_empty()).then_some(ip)
        },
    )
    .await;
    assert!(
        lb_ip.starts_with("172.30.0.24"),
        "{lb_ip} is not from the pool"
    );
    let answer = wait_for(
        &format!("LoadBalancer {lb_ip}:80"),
        Duration::from_mins(1),
        || async { get(&format!("{lb_ip}:80")).ok() },
    )
    .await;
    assert_eq!(answer, "web-a");
    let client = peer_seen(&format!("{lb_ip}:9000")).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        client.starts_with(&format!("{}:", cluster::BRIDGE_HOST)),
        "policy Local: the backend saw {client}, not the client"
    );
    let local_np = node_port(cluster, "local", "peer");
    let client = peer_seen(&format!("{}:{local_np}", NODES[0])).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        client.starts_with(&format!("{}:", cluster::BRIDGE_HOST)),
        "policy Local NodePort: the backend saw {client}"
    );
    let hc: u16 = cluster
        .kubectl_ok(&[
            "get",
            "svc",
            "local",
            "-o",
            "jsonpath={.spec.healthCheckNodePort}",
        ])
        .trim()
        .parse()
        .expect("healthCheckNodePort");
    let health = |node: &str| {
        let addr = format!("{node}:{hc}");
        let out = sluice_test_util::stdout(std::process::Command::new("curl").args([
            "-s",
            "-m",
            "3",
            "-w",
            " %{http_code}",
            &format!("http://{addr}/healthz"),
        ]));
        out.trim().to_owned()
    };
    let ok = wait_for("node-1's health check", Duration::from_secs(30), || async {
        let out = health(NODES[0]);
        out.ends_with(" 200").then_some(out)
    })
    .await;
    assert!(ok.contains(r#""localEndpoints":1"#), "{ok}");
    let failing = health(NODES[1]);
    assert!(
        failing.ends_with(" 503") && failing.contains(r#""localEndpoints":0"#),
        "node-2 has no endpoint of Service local: {failing}"
    );

    // loadBalancerSourceRanges: this client (172.30.0.1) is outside 10.0.0.0/8 and dropped;
    // once the range takes it in, it is served.
    let ranged = wait_for(
        "an ingress IP for ranged",
        Duration::from_mins(1),
        || async {
            let ip = cluster.kubectl_ok(&[
                "get",
                "svc",
                "ranged",
                "-o",
                "jsonpath={.status.loadBalancer.ingress[0].ip}",
            ]);
            let ip = ip.trim().to_owned();
            (!ip.is_empty()).then_some(ip)
        },
    )
    .await;
    let addr = format!("{ranged}:80");
    let refused = get(&addr);
    assert!(
        refused.is_err(),
        "{addr} outside the source ranges answered {refused:?}"
    );
    cluster.kubectl_ok(&[
        "patch",
        "svc",
        "ranged",
        "--type=merge",
        "-p",
        r#"{"spec":{"loadBalancerSourceRanges":["10.0.0.0/8","172.30.0.0/24"]}}"#,
    ]);
    let answer = wait_for(
        &format!("{addr} inside the ranges"),
        Duration::from_mins(1),
        || async { get(&addr).ok() },
    )
    .await;
    assert!(answer == "web-a" || answer == "web-b", "{answer}");

    // internalTrafficPolicy: Local: a pod on node-1 reaches only node-1's endpoint; a pod
    // on node-3 (no endpoint there) is refused.
    cluster.apply(
        r"
apiVersion: v1
kind: Service
metadata: {name: itp}
spec:
  selector: {tier: web}
  internalTrafficPolicy: Local
  ports: [{name: http, port: 80, targetPort: 8080}]
",
    );
    let itp = cluster.kubectl_ok(&["get", "svc", "itp", "-o", "jsonpath={.spec.clusterIP}"]);
    let script = format!(
        "for i in $(seq 10); do r=$(printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 {itp} 80 | tail -n 1); echo \"${{r:-FAIL}}\"; done"
    );
    wait_for(
        "internalTrafficPolicy Local from node-1",
        Duration::from_mins(1),
        || async {
            let out = exec(cluster, "cli1", &script);
            let lines: Vec<&str> = out.lines().map(str::trim).collect();
            (lines.len() == 10 && lines.iter().all(|l| *l == "web-a")).then_some(())
        },
    )
    .await;
    let refused = exec(cluster, "srv", &script);
    assert!(
        refused.lines().all(|l| l.trim() == "FAIL"),
        "node-3 has no local endpoint of itp, yet: {refused}"
    );

    // hostPort: node-2's address answers for its pod; node-1's does not.
    cluster.apply(
        r"
apiVersion: v1
kind: Pod
metadata: {name: hp}
spec:
  nodeName: node-2
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: localhost/sluice/test:1
    ports: [{containerPort: 8080, hostPort: 8081}]
",
    );
    cluster.kubectl_ok(&["wait", "--for=condition=Ready", "pod/hp", "--timeout=180s"]);
    let answer = wait_for(
        "hostPort 8081 on node-2",
        Duration::from_mins(1),
        || async { get(&format!("{}:8081", NODES[1])).ok() },
    )
    .await;
    assert_eq!(answer, "hp");
    let elsewhere = get(&format!("{}:8081", NODES[0]));
    assert!(
        elsewhere.is_err(),
        "node-1 has no pod with hostPort 8081: {elsewhere:?}"
    );

    // Restarting node-3's agent under load: every request through node-3's NodePort succeeds.
    let target = format!("{}:{np}", NODES[2]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        let target = target.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match get(&target) {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(e),
                }
            }
            (ok, failed)
        })
    };
    let before = cluster.pids_of("sluice-node-agent --node-name node-3");
    assert_eq!(before.len(), 1, "node-3's agent: {before:?}");
    sluice_test_util::run(std::process::Command::new("kill").arg(before[0].to_string()));
    wait_for(
        "node-3's agent to be restarted",
        Duration::from_mins(1),
        || async {
            let now = cluster.pids_of("sluice-node-agent --node-name node-3");
            (now.len() == 1 && now != before).then_some(())
        },
    )
    .await;
    // Until the new agent has reconciled (its Node heartbeat comes after its proxy started).
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = load.join().expect("load thread");
    assert!(ok > 20, "only {ok} requests went through {target}");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the restart: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)]
    );

    // UDP: a connected client keeps one flow (one backend); when that backend's pod is
    // deleted, its tracked flow is flushed and the next datagram reaches the other one.
    let udp_np = node_port(cluster, "np", "udp");
    let socket = std::net::UdpSocket::bind("172.30.0.1:0").expect("bind a UDP client");
    socket
        .connect(format!("{}:{udp_np}", NODES[2]))
        .expect("connect the UDP client");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let ask = |socket: &std::net::UdpSocket| -> Option<String> {
        socket.send(b"who\n").ok()?;
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).trim().to_owned())
    };
    let first = wait_for(
        "a UDP answer through the NodePort",
        Duration::from_mins(1),
        || async { ask(&socket) },
    )
    .await;
    assert!(first == "web-a" || first == "web-b", "{first}");
    cluster.kubectl_ok(&["delete", "pod", &first, "--wait=false"]);
    let other = wait_for(
        &format!("the UDP client to reach a backend other than {first}"),
        Duration::from_mins(1),
        || async { ask(&socket).filter(|a| *a != first) },
    )
    .await;
    assert!(other == "web-a" || other == "web-b", "{other}");
}
