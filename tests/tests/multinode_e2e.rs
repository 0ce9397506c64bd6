//! End to end on three nodes (`cargo xtask up --nodes 3`): each node a network namespace on
//! the `sluice0` bridge with its own containerd, node agent, podCIDR, cgroup subtree and
//! eBPF pins. Pods on different nodes reach each other by pod IP over the routes the agents
//! program from the Node objects, with the client's pod IP preserved; a `ClusterIP` Service
//! whose only endpoint is on one node answers from pods on every node; no node gets an
//! iptables rule. Once with native routing, once over the VXLAN overlay (`--tunnel vxlan`).

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
    let cluster = Cluster::start_nodes(3, tunnel);

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
        let script = format!(
            "for i in $(seq 10); do r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {vip} 80 | tail -n 1); echo \"${{r:-FAIL}}\"; done"
        );
        let answers = wait_for(
            &format!("{client} to reach {vip}:80"),
            Duration::from_mins(1),
            || async {
                let out = exec(&cluster, client, &script);
                let lines: Vec<String> = out.lines().map(|l| l.trim().to_owned()).collect();
                (lines.len() == 10 && lines.iter().all(|l| l == "srv")).then_some(lines)
            },
        )
        .await;
        assert_eq!(answers.len(), 10);
    }

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
