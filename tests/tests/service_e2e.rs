//! End to end for the eBPF service proxy on a cluster started as `cargo xtask up` starts it:
//! `ClusterIP` traffic from the host and from inside a pod reaches every ready backend,
//! scaling keeps every request succeeding, a deleted Service leaves no map entry, and a node
//! agent restart under load drops no request. No iptables or nftables rule is involved.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use sluice_tests::cluster::{self, Cluster};
use sluice_tests::wait_for;

const APP: &str = r"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
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
";

fn json(s: &str) -> Value {
    serde_json::from_str(s).expect("json")
}

async fn get(addr: &str) -> Result<String, String> {
    match tokio::time::timeout(
        Duration::from_secs(3),
        sluice_tests::http::try_request(addr, "GET", "/", "text/plain", b""),
    )
    .await
    {
        Ok(Ok(r)) if r.code == 200 => Ok(r.body.trim().to_string()),
        Ok(Ok(r)) => Err(format!("HTTP {}", r.code)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

fn ready_endpoints(cluster: &Cluster) -> usize {
    let s = json(&cluster.kubectl_ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
        "-o",
        "json",
    ]));
    s["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|sl| sl["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["conditions"]["ready"] == true)
        .count()
}

/// The VIPs (first 4 key bytes) in the pinned service map; panics when bpftool fails or
/// prints anything but a list of entries with byte keys.
fn pinned_service_keys(node: &str) -> Vec<[u8; 4]> {
    let out = sluice_test_util::stdout(std::process::Command::new("bpftool").args([
        "-j",
        "map",
        "dump",
        "pinned",
        &format!("/sys/fs/bpf/sluice/{node}/sluice_svc_v1"),
    ]));
    let v: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("bpftool printed no JSON ({e}): {out}"));
    v.as_array()
        .unwrap_or_else(|| panic!("bpftool printed no list of entries: {out}"))
        .iter()
        .map(|e| {
            std::array::from_fn(|i| {
                e["key"][i]
                    .as_str()
                    .and_then(|t| u8::from_str_radix(t.trim_start_matches("0x"), 16).ok())
                    .unwrap_or_else(|| panic!("unexpected map entry: {e}"))
            })
        })
        .collect()
}

/// The iptables rules (`iptables-save`), without comments (they carry a timestamp) and
/// without the chains' packet counters: what differs only when a rule or chain does.
fn iptables_rules() -> Vec<String> {
    sluice_test_util::stdout(&mut std::process::Command::new("iptables-save"))
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.strip_prefix(':') {
            Some(chain) => format!(":{}", chain.rsplit_once(" [").map_or(chain, |(c, _)| c)),
            None => l.to_owned(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ip_services_through_ebpf() {
    if !cluster::require_cluster(
        "cluster_ip_services_through_ebpf",
        &["bpftool", "iptables-save"],
    ) {
        return;
    }
    let cluster = Cluster::start();
    let node = cluster.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let rules_before = iptables_rules();

    cluster.apply(APP);
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=180s"]);
    wait_for("2 ready endpoints", Duration::from_mins(1), || async {
        (ready_endpoints(&cluster) == 2).then_some(())
    })
    .await;
    let vip = cluster.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let target = format!("{vip}:80");
    let pods: BTreeSet<String> = cluster
        .kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .split_whitespace()
        .map(String::from)
        .collect();

    // 50 requests from the host: all succeed and both pods answer.
    wait_for("the VIP to answer", Duration::from_secs(30), || async {
        get(&target).await.ok()
    })
    .await;
    let mut seen = BTreeSet::new();
    for i in 0..50 {
        let who = get(&target)
            .await
            .unwrap_or_else(|e| panic!("request {i} to {target} failed: {e}\n{}", cluster.logs()));
        seen.insert(who);
    }
    assert_eq!(
        seen, pods,
        "responses came from {seen:?}, pods are {pods:?}"
    );

    // The same from inside a pod.
    let client = pods.iter().next().expect("a pod").clone();
    // busybox's static wget crashes in glibc's resolver; nc speaks HTTP/1.0 just as well.
    let script = format!(
        "for i in $(seq 50); do r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {vip} 80 | tail -n 1); [ -n \"$r\" ] && echo \"$r\" || echo FAIL; done"
    );
    let (ok, out) = cluster.exec_in_pod(&client, &["sh", "-c", &script]);
    assert!(ok, "exec failed: {out}");
    let answers: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(answers.len(), 50, "{out}");
    assert!(!answers.contains(&"FAIL"), "{out}");
    assert_eq!(
        answers
            .iter()
            .map(|s| (*s).to_string())
            .collect::<BTreeSet<_>>(),
        pods,
        "{out}"
    );

    // Cluster DNS from inside a pod: resolv.conf by dnsPolicy ClusterFirst, the kube-dns VIP
    // answered by this node's agent (node-local), names per the Kubernetes DNS spec.
    let dns_vip = cluster.kubectl_ok(&[
        "get",
        "svc",
        "kube-dns",
        "-n",
        "kube-system",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let (ok, resolv) = cluster.exec_in_pod(&client, &["cat", "/etc/resolv.conf"]);
    assert!(ok, "{resolv}");
    assert!(
        resolv.contains(&format!("nameserver {dns_vip}")),
        "{resolv}"
    );
    assert!(
        resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{resolv}"
    );
    assert!(resolv.contains("ndots:5"), "{resolv}");
    for (name, want) in [
        ("web.default.svc.cluster.local", vip.as_str()),
        ("kubernetes.default.svc.cluster.local", "10.96.0.1"),
    ] {
        let (ok, out) = cluster.exec_in_pod(&client, &["nslookup", name, &dns_vip]);
        assert!(ok && out.contains(want), "{name}: {out}");
    }
    let (ok, out) = cluster.exec_in_pod(
        &client,
        &["nslookup", "nope.default.svc.cluster.local", &dns_vip],
    );
    assert!(
        !ok || out.contains("NXDOMAIN"),
        "a missing Service resolved: {out}"
    );
    let (ok, out) = cluster.exec_in_pod(
        &client,
        &[
            "nslookup",
            "-type=SRV",
            "_http._tcp.web.default.svc.cluster.local",
            &dns_vip,
        ],
    );
    assert!(
        ok && out.contains("web.default.svc.cluster.local"),
        "SRV: {out}"
    );

    // Scale to 1: once the endpoints follow, every request succeeds (and reaches the survivor).
    cluster.kubectl_ok(&["scale", "deployment/web", "--replicas=1"]);
    wait_for("1 ready endpoint", Duration::from_mins(1), || async {
        (ready_endpoints(&cluster) == 1).then_some(())
    })
    .await;
    let survivor = wait_for("one pod left", Duration::from_mins(1), || async {
        let names = cluster.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ]);
        let names: Vec<&str> = names.split_whitespace().collect();
        (names.len() == 1).then(|| names[0].to_string())
    })
    .await;
    wait_for(
        "map follows the scale-down",
        Duration::from_secs(30),
        || async {
            let mut all = true;
            for _ in 0..10 {
                all &= get(&target).await.is_ok_and(|w| w == survivor);
            }
            all.then_some(())
        },
    )
    .await;
    for i in 0..50 {
        assert_eq!(
            get(&target)
                .await
                .unwrap_or_else(|e| panic!("request {i} after scale-down failed: {e}")),
            survivor
        );
    }

    // Restart the node agent while a client loops requests: none fails.
    let looping = {
        let target = target.clone();
        tokio::spawn(async move {
            let mut failures = Vec::new();
            for i in 0..150 {
                if let Err(e) = get(&target).await {
                    failures.push(format!("{i}: {e}"));
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            failures
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let agents = cluster.pids_of("sluice-node-agent");
    assert!(!agents.is_empty(), "no node agent running");
    for pid in &agents {
        sluice_test_util::run(std::process::Command::new("kill").args(["-TERM", &pid.to_string()]));
    }
    wait_for("a new node agent", Duration::from_secs(30), || async {
        let now = cluster.pids_of("sluice-node-agent");
        (!now.is_empty() && now.iter().all(|p| !agents.contains(p))).then_some(())
    })
    .await;
    let failures = looping.await.expect("client loop");
    assert!(
        failures.is_empty(),
        "requests failed across the agent restart: {failures:?}"
    );

    // Delete the Service: its map entries go.
    let octets: [u8; 4] = vip.parse::<std::net::Ipv4Addr>().expect("vip").octets();
    assert!(
        pinned_service_keys(&node).contains(&octets),
        "the VIP is not in the map before delete"
    );
    cluster.kubectl_ok(&["delete", "service", "web"]);
    wait_for("map entries removed", Duration::from_secs(30), || async {
        (!pinned_service_keys(&node).contains(&octets)).then_some(())
    })
    .await;

    // No iptables rule was created for Services.
    let rules_after = iptables_rules();
    assert!(
        !rules_after.iter().any(|r| r.contains(&vip)),
        "an iptables rule mentions the ClusterIP:\n{}",
        rules_after.join("\n")
    );
    assert_eq!(
        rules_before, rules_after,
        "iptables rules changed during the test"
    );
}
