//! End to end on a cluster started as `cargo xtask up` starts it: real containerd + runc,
//! sluice's CNI plugin, the kubelet, real kubectl. One test function: the cluster owns the
//! host's containerd state for its duration.

use std::time::Duration;

use serde_json::Value;
use sluice_tests::cluster::{self, Cluster};
use sluice_tests::wait_for;

const WEB: &str = r"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: localhost/sluice/test:1
        ports: [{containerPort: 8080, name: http}]
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
";

const PROBES: &str = r"
apiVersion: v1
kind: Pod
metadata: {name: liveness}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: localhost/sluice/test:1
    livenessProbe:
      exec: {command: [cat, /does-not-exist]}
      periodSeconds: 1
      failureThreshold: 2
---
apiVersion: v1
kind: Pod
metadata: {name: unready}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: localhost/sluice/test:1
    readinessProbe:
      exec: {command: ['false']}
      periodSeconds: 1
";

const LOGGERS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: talker}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: localhost/sluice/test:1
    args: [sh, -c, "echo hello; echo oops >&2; i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done"]
---
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: localhost/sluice/test:1
    args: [sh, -c, "echo started; sleep 2; exit 3"]
"#;

fn json(out: &str) -> Value {
    serde_json::from_str(out).expect("kubectl json")
}

fn host_veths() -> Vec<String> {
    sluice_test_util::stdout(std::process::Command::new("ip").args(["-o", "link", "show"]))
        .lines()
        .filter_map(|l| {
            l.split(": ")
                .nth(1)
                .map(|n| n.split('@').next().unwrap_or(n).to_string())
        })
        .filter(|n| n.starts_with("lxc"))
        .collect()
}

fn in_cidr(ip: &str, cidr: &str) -> bool {
    let net = sluice_k8s_values::cidr::parse_network(cidr).expect("podCIDR");
    net.contains(&ip.parse::<std::net::Ipv4Addr>().expect("pod IP"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_run_on_containerd_with_sluice_cni() {
    if !cluster::require_cluster("pods_run_on_containerd_with_sluice_cni", &[]) {
        return;
    }
    let veths_before = host_veths();
    let mut cluster = Cluster::start();
    let nodes = json(&cluster.kubectl_ok(&["get", "nodes", "-o", "json"]));
    let node = &nodes["items"][0];
    let node_name = node["metadata"]["name"]
        .as_str()
        .expect("node name")
        .to_string();
    let pod_cidr = node["spec"]["podCIDR"]
        .as_str()
        .expect("podCIDR assigned")
        .to_string();
    let ready = node["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    assert!(ready, "node is not Ready: {node}");
    let lease = cluster.kubectl_ok(&[
        "get",
        "lease",
        "-n",
        "kube-node-lease",
        &node_name,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(lease, node_name);

    // A Deployment of 2 replicas of the test image.
    cluster.apply(WEB);
    let rollout = cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=180s"]);
    assert!(rollout.contains("successfully rolled out"), "{rollout}");
    let wide = cluster.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "wide"]);
    eprintln!("{wide}");
    let pods = json(&cluster.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "json"]));
    let pods = pods["items"].as_array().expect("items").clone();
    assert_eq!(pods.len(), 2);
    for p in &pods {
        let name = p["metadata"]["name"].as_str().expect("name");
        let ip = p["status"]["podIP"].as_str().expect("podIP");
        assert_eq!(p["status"]["phase"], "Running");
        assert!(in_cidr(ip, &pod_cidr), "{ip} not in {pod_cidr}");
        assert!(
            wide.lines()
                .any(|l| l.starts_with(name) && l.contains("Running") && l.contains(ip)),
            "{wide}"
        );
        // HTTP from the host to the pod IP answers with the pod's name.
        let reply =
            sluice_tests::http::request(&format!("{ip}:8080"), "GET", "/", "text/plain", b"").await;
        assert_eq!(reply.code, 200);
        assert_eq!(
            reply.body.trim(),
            name,
            "pod {name} at {ip} answered {:?}",
            reply.body
        );
    }

    // Liveness failures restart the container; readiness failures keep the pod unready.
    cluster.apply(PROBES);
    wait_for("liveness restarts", Duration::from_mins(2), || async {
        let p = json(&cluster.kubectl_ok(&["get", "pod", "liveness", "-o", "json"]));
        (p["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(0)
            >= 1)
            .then_some(())
    })
    .await;
    let events = cluster.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=liveness",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(
        events.contains("Unhealthy") && events.contains("Killing"),
        "{events}"
    );
    wait_for(
        "unready pod running but not ready",
        Duration::from_mins(1),
        || async {
            let p = json(&cluster.kubectl_ok(&["get", "pod", "unready", "-o", "json"]));
            let running = p["status"]["phase"] == "Running";
            let ready = p["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .map(|c| c["status"].clone());
            (running && ready == Some(Value::from("False"))).then_some(())
        },
    )
    .await;

    // kubectl logs through the API server and this node's kubelet: stdout and stderr, --tail,
    // -f streaming lines as the container writes them, and --previous after a restart.
    cluster.apply(LOGGERS);
    wait_for(
        "talker and crasher running",
        Duration::from_mins(1),
        || async {
            let pods =
                json(&cluster.kubectl_ok(&["get", "pods", "talker", "crasher", "-o", "json"]));
            let restarted = pods["items"].as_array().is_some_and(|items| {
                items.iter().all(|p| p["status"]["phase"] == "Running")
                    && items.iter().any(|p| {
                        p["metadata"]["name"] == "crasher"
                            && p["status"]["containerStatuses"][0]["restartCount"].as_i64()
                                >= Some(1)
                    })
            });
            restarted.then_some(())
        },
    )
    .await;
    // stdout and stderr come from two pipes, so only each stream's own order is fixed.
    let all = cluster.kubectl_ok(&["logs", "talker"]);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(
        lines.iter().find(|l| **l != "oops"),
        Some(&"hello"),
        "{all}"
    );
    assert!(lines.contains(&"oops"), "stderr missing: {all}");
    let last = cluster.kubectl_ok(&["logs", "talker", "--tail=1"]);
    assert_eq!(last.lines().count(), 1, "{last}");
    assert!(last.starts_with("tick "), "{last}");
    let stamped = cluster.kubectl_ok(&["logs", "talker", "--tail=1", "--timestamps"]);
    assert!(
        stamped.contains("Z tick ") || stamped.contains("+00:00 tick "),
        "{stamped}"
    );
    let previous = cluster.kubectl_ok(&["logs", "crasher", "--previous"]);
    assert_eq!(previous, "started\n");
    let mut follow = cluster
        .kubectl_cmd(&["logs", "-f", "talker", "--tail=1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl logs -f");
    let stdout = follow.stdout.take().expect("stdout");
    let ticks = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .take(3)
            .map(|l| l.expect("line"))
            .collect::<Vec<String>>()
    });
    let ticks = tokio::time::timeout(Duration::from_secs(30), ticks)
        .await
        .expect("-f streamed three lines while the container writes them")
        .expect("reader");
    let _ = follow.kill();
    let _ = follow.wait();
    let n: Vec<u64> = ticks
        .iter()
        .map(|t| t.trim_start_matches("tick ").parse().expect("tick N"))
        .collect();
    assert!(n.windows(2).all(|w| w[1] == w[0] + 1), "{ticks:?}");
    cluster.kubectl_ok(&[
        "delete",
        "pod",
        "talker",
        "crasher",
        "--grace-period=0",
        "--timeout=120s",
    ]);

    // Delete: containers stopped, sandboxes and veths removed, IPs freed, objects gone.
    cluster.kubectl_ok(&["delete", "deployment", "web", "--timeout=120s"]);
    cluster.kubectl_ok(&["delete", "pod", "liveness", "unready", "--timeout=120s"]);
    wait_for("all pods gone", Duration::from_mins(2), || async {
        cluster
            .kubectl_ok(&["get", "pods", "-o", "name"])
            .trim()
            .is_empty()
            .then_some(())
    })
    .await;
    // Their logs went with them (the kubelet removes `<ns>_<pod>_<uid>` log directories).
    wait_for(
        "pod log directories removed",
        Duration::from_mins(1),
        || async {
            let left: Vec<String> = walk(cluster.state())
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .filter_map(|p| {
                    p.parent()
                        .and_then(|c| c.parent())
                        .map(|d| d.display().to_string())
                })
                .filter(|d| d.contains("/pods/default_"))
                .collect();
            left.is_empty().then_some(())
        },
    )
    .await;
    wait_for("veths removed", Duration::from_mins(1), || async {
        let now: Vec<String> = host_veths()
            .into_iter()
            .filter(|v| !veths_before.contains(v))
            .collect();
        now.is_empty().then_some(())
    })
    .await;
    let alloc = walk(cluster.state())
        .into_iter()
        .filter(|p| p.ends_with("allocations.json"))
        .collect::<Vec<_>>();
    assert!(
        !alloc.is_empty(),
        "no IPAM state under {}",
        cluster.state().display()
    );
    for a in alloc {
        let text =
            std::fs::read_to_string(&a).unwrap_or_else(|e| panic!("read {}: {e}", a.display()));
        for p in &pods {
            let ip = p["status"]["podIP"].as_str().expect("ip");
            assert!(
                !text.contains(&format!("\"{ip}\"")),
                "{ip} still allocated in {}: {text}",
                a.display()
            );
        }
    }

    // Ctrl-C stops everything and leaves nothing behind.
    assert!(
        cluster.stop(),
        "xtask up did not exit cleanly:\n{}",
        cluster.logs()
    );
    let leftover: Vec<String> = host_veths()
        .into_iter()
        .filter(|v| !veths_before.contains(v))
        .collect();
    assert!(leftover.is_empty(), "veths left behind: {leftover:?}");
    let left = cluster::pgrep(&cluster.state().display().to_string());
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

/// Every file under `dir`; a directory that vanishes meanwhile (containerd is still running)
/// is skipped, any other error fails the test.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return out,
        Err(e) => panic!("read dir {}: {e}", dir.display()),
    };
    for e in entries {
        let p = e
            .unwrap_or_else(|e| panic!("read dir {}: {e}", dir.display()))
            .path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
