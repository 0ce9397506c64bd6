//! Real `kubectl` against the real control plane binary, with a fake kubelet node:
//! apply with default (strict) validation, get with table columns, rollout status, scale,
//! set image, every patch type, get -w, and cascading delete.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use sluice_tests::controlplane::ControlPlane;
use sluice_tests::{fake_kubelet, wait_for};

const APP: &str = r"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: sluice/test:1
        ports:
        - {containerPort: 8080, name: http}
        resources:
          requests: {cpu: 100m, memory: 64Mi}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {port: 80, targetPort: http}
";

fn header(out: &str) -> Vec<String> {
    out.lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn pods_of(cp: &ControlPlane, selector: &str) -> Vec<String> {
    let out = cp.kubectl_ok(&["get", "pods", "-l", selector, "-o", "jsonpath={range .items[*]}{.metadata.name} {.spec.containers[0].image} {.status.phase}{\"\\n\"}{end}"]);
    out.lines()
        .map(String::from)
        .filter(|l| !l.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drives_deployments_services_and_cascading_delete() {
    if !sluice_tests::require_kubectl("kubectl_drives_deployments_services_and_cascading_delete") {
        return;
    }
    let cp = ControlPlane::start(&[]).await;
    let _kubelet = fake_kubelet::start(cp.client().await, "node-1").await;

    // apply with kubectl's default validation (strict, server-side via OpenAPI v3).
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], APP);
    assert!(
        out.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("deployment.apps/web created"), "{stdout}");
    assert!(stdout.contains("service/web created"), "{stdout}");

    let rollout = cp.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    assert!(rollout.contains("successfully rolled out"), "{rollout}");

    // Table columns, as kubectl prints them.
    let deploy = cp.kubectl_ok(&["get", "deploy"]);
    assert_eq!(
        header(&deploy),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    assert!(
        deploy
            .lines()
            .any(|l| l.starts_with("web ") && l.contains("3/3")),
        "{deploy}"
    );
    let rs = cp.kubectl_ok(&["get", "rs"]);
    assert_eq!(header(&rs), ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]);
    let pods = cp.kubectl_ok(&["get", "pods", "-o", "wide"]);
    assert_eq!(
        &header(&pods)[..7],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    );
    assert_eq!(
        pods.lines()
            .filter(|l| l.contains("Running") && l.contains("node-1") && l.contains("1/1"))
            .count(),
        3,
        "{pods}"
    );
    let svc = cp.kubectl_ok(&["get", "svc", "web"]);
    assert_eq!(
        header(&svc),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    assert!(
        svc.contains("ClusterIP") && svc.contains("10.96.") && svc.contains("80/TCP"),
        "{svc}"
    );
    let slices = wait_for(
        "endpointslice with 3 endpoints",
        Duration::from_secs(30),
        || async {
            let out = cp.kubectl_ok(&[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
            ]);
            (out.lines().nth(1).is_some_and(|l| {
                l.contains("8080")
                    && l.split_whitespace()
                        .nth(3)
                        .is_some_and(|e| e.split(',').count() == 3)
            }))
            .then_some(out)
        },
    )
    .await;
    assert_eq!(
        header(&slices),
        ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    );
    let all = cp.kubectl_ok(&["get", "deploy,rs,pods,svc,endpointslices"]);
    assert!(
        all.contains("deployment.apps/web")
            && all.contains("replicaset.apps/web-")
            && all.contains("service/web"),
        "{all}"
    );
    // The API server's own Service has an EndpointSlice naming the API server, as
    // upstream's does: what service proxies read to send `kubernetes.default` to it.
    let own = cp.kubectl_ok(&[
        "get",
        "endpointslice",
        "kubernetes",
        "-o",
        "jsonpath={.metadata.labels.kubernetes\\.io/service-name} {.endpoints[0].addresses[0]}:{.ports[0].port}",
    ]);
    assert_eq!(own.trim(), format!("kubernetes {}", cp.addr), "{own}");
    let ns = cp.kubectl_ok(&["get", "namespaces"]);
    assert_eq!(header(&ns), ["NAME", "STATUS", "AGE"]);
    let nodes = cp.kubectl_ok(&["get", "nodes"]);
    assert_eq!(
        header(&nodes),
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    );
    assert!(
        nodes.contains("node-1") && nodes.contains("Ready"),
        "{nodes}"
    );

    // get -w sees changes as they happen.
    let mut watch = cp
        .kubectl_cmd(&["get", "pods", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let stdout = watch.stdout.take().expect("watch stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // scale through the scale subresource.
    cp.kubectl_ok(&["scale", "deployment/web", "--replicas=1"]);
    wait_for("1 pod after scale", Duration::from_mins(1), || async {
        (pods_of(&cp, "app=web").len() == 1).then_some(())
    })
    .await;
    let seen: Vec<String> = rx.try_iter().collect();
    wait_for("watch to show deletions", Duration::from_secs(20), || {
        let more: Vec<String> = rx.try_iter().collect();
        let mut all = seen.clone();
        all.extend(more);
        async move {
            all.iter()
                .any(|l| l.starts_with("DELETED") || l.contains("Terminating"))
                .then_some(())
        }
    })
    .await;
    let _ = watch.kill();
    let _ = watch.wait();

    // set image: a rolling update to a new ReplicaSet that finishes.
    cp.kubectl_ok(&["set", "image", "deployment/web", "web=sluice/test:2"]);
    let rollout = cp.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    assert!(rollout.contains("successfully rolled out"), "{rollout}");
    wait_for("only new-image pods", Duration::from_mins(1), || async {
        let p = pods_of(&cp, "app=web");
        (p.len() == 1 && p.iter().all(|l| l.contains("sluice/test:2"))).then_some(())
    })
    .await;
    let rs = cp.kubectl_ok(&["get", "rs", "-o", "jsonpath={range .items[*]}{.spec.replicas} {.spec.template.spec.containers[0].image}{\"\\n\"}{end}"]);
    assert!(
        rs.lines().any(|l| l == "1 sluice/test:2") && rs.lines().any(|l| l == "0 sluice/test:1"),
        "{rs}"
    );

    // Every patch type.
    cp.kubectl_ok(&["patch", "deployment", "web", "--type=strategic", "-p", r#"{"metadata":{"labels":{"patched":"strategic"}},"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"A","value":"1"}]}]}}}}"#]);
    cp.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"annotations":{"merge":"yes"}}}"#,
    ]);
    cp.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/metadata/labels/json","value":"yes"}]"#,
    ]);
    let d: serde_json::Value =
        serde_json::from_str(&cp.kubectl_ok(&["get", "deployment", "web", "-o", "json"]))
            .expect("json");
    assert_eq!(d["metadata"]["labels"]["patched"], "strategic");
    assert_eq!(d["metadata"]["labels"]["json"], "yes");
    assert_eq!(d["metadata"]["annotations"]["merge"], "yes");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["image"], "sluice/test:2",
        "strategic merge kept the container: {c}"
    );
    assert_eq!(c["env"][0]["name"], "A");
    let bad = cp.kubectl(&[
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/nope"}]"#,
    ]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("path \"/spec/nope\" does not exist"),
        "a JSON patch removing a missing path is refused for that reason: {err}"
    );

    // A second apply goes through kubectl's three-way strategic merge.
    let out = cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &APP.replace("replicas: 3", "replicas: 2"),
    );
    assert!(
        out.status.success(),
        "re-apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    cp.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    wait_for("2 pods after re-apply", Duration::from_mins(1), || async {
        (pods_of(&cp, "app=web").len() == 2).then_some(())
    })
    .await;

    // delete cascades through the garbage collector.
    cp.kubectl_ok(&["delete", "deployment", "web", "--timeout=60s"]);
    wait_for(
        "replicasets and pods to be collected",
        Duration::from_mins(1),
        || async {
            let rs = cp.kubectl_ok(&["get", "rs", "-o", "name"]);
            let pods = cp.kubectl_ok(&["get", "pods", "-o", "name"]);
            (rs.trim().is_empty() && pods.trim().is_empty()).then_some(())
        },
    )
    .await;
    cp.kubectl_ok(&["delete", "service", "web"]);
    wait_for(
        "endpointslices to be collected",
        Duration::from_secs(30),
        || async {
            cp.kubectl_ok(&[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
                "-o",
                "name",
            ])
            .trim()
            .is_empty()
            .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_strict_validation_rejects_unknown_fields_and_writes_nothing() {
    if !sluice_tests::require_kubectl(
        "kubectl_strict_validation_rejects_unknown_fields_and_writes_nothing",
    ) {
        return;
    }
    let cp = ControlPlane::start(&["--no-controllers"]).await;
    let bad = APP.replace("replicas: 3", "replicas: 3\n  replicaz: 4");
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], &bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field \"spec.replicaz\""), "{err}");
    let got = cp.kubectl(&["get", "deployment", "web"]);
    let err = String::from_utf8_lossy(&got.stderr);
    assert!(
        !got.status.success() && err.contains("(NotFound)"),
        "nothing must be written: {err}"
    );
    // Invalid names are 422 with the field named.
    let out = cp.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("is invalid") && err.contains("metadata.name"),
        "{err}"
    );
}
