//! `kubectl logs` through the API server's `pods/log`, against a stand-in kubelet on
//! loopback (the node's `InternalIP` and `daemonEndpoints.kubeletEndpoint.Port` point at it):
//! the request reaches `/containerLogs/{ns}/{pod}/{container}` with kubectl's options, the
//! body streams back line by line (`-f`), and bad requests get upstream's errors.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use sluice_tests::controlplane::ControlPlane;
use sluice_tests::{fake_kubelet, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// A kubelet stand-in: records each request line, answers `/containerLogs/...` with two
/// lines, the second only after `release` is notified (so `-f` must stream).
struct Kubelet {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    release: Arc<Notify>,
}

async fn kubelet() -> Kubelet {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let release = Arc::new(Notify::new());
    let (seen, gate) = (requests.clone(), release.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let (seen, gate) = (seen.clone(), gate.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                seen.lock().unwrap().push(line.clone());
                if !line.contains("/containerLogs/default/solo/app") {
                    let _ = conn.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 14\r\nconnection: close\r\n\r\nno such thing\n").await;
                    return;
                }
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n").await;
                let chunk = |s: &str| format!("{:x}\r\n{s}\r\n", s.len());
                let _ = conn.write_all(chunk("first line\n").as_bytes()).await;
                let _ = conn.flush().await;
                if line.contains("follow=true") {
                    gate.notified().await;
                }
                let _ = conn.write_all(chunk("second line\n").as_bytes()).await;
                let _ = conn.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    Kubelet {
        port,
        requests,
        release,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_reach_the_pods_kubelet_and_stream() {
    if !sluice_tests::require_kubectl("kubectl_logs_reach_the_pods_kubelet_and_stream") {
        return;
    }
    let cp = ControlPlane::start(&[]).await;
    let client = cp.client().await;
    let _node = fake_kubelet::start(client.clone(), "n1").await;
    let stand_in = kubelet().await;
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch_status(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": stand_in.port}}}})),
        )
        .await
        .expect("point the node at the stand-in kubelet");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (name, containers) in [
        ("solo", json!([{"name": "app", "image": "i"}])),
        (
            "duo",
            json!([{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]),
        ),
    ] {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"nodeName": "n1", "containers": containers}}))
        .unwrap();
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("create pod");
    }
    let unbound: Pod = serde_json::from_value(json!({"metadata": {"name": "nowhere"},
        "spec": {"schedulerName": "none", "containers": [{"name": "c", "image": "i"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &unbound)
        .await
        .expect("create pod");

    // Plain logs with options: the body is the kubelet's, the options reach it.
    let out = cp.kubectl_ok(&["logs", "solo", "--tail=5", "--timestamps", "--since=1h"]);
    assert_eq!(out, "first line\nsecond line\n");
    let req = stand_in
        .requests
        .lock()
        .unwrap()
        .last()
        .cloned()
        .unwrap_or_default();
    assert!(
        req.starts_with("GET /containerLogs/default/solo/app?"),
        "{req}"
    );
    for want in ["tailLines=5", "timestamps=true", "sinceSeconds=3600"] {
        assert!(req.contains(want), "{want} missing from {req}");
    }

    // -f streams: the first line arrives before the kubelet sends the second.
    let mut follow = cp
        .kubectl_cmd(&["logs", "-f", "solo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl logs -f");
    let mut lines = BufReader::new(follow.stdout.take().expect("stdout")).lines();
    let first = tokio::task::spawn_blocking(move || {
        let l = lines.next();
        (l, lines)
    });
    let (first, mut lines) = tokio::time::timeout(Duration::from_secs(20), first)
        .await
        .expect("the first line streamed before the log ended")
        .unwrap();
    assert_eq!(first.unwrap().unwrap(), "first line");
    stand_in.release.notify_one();
    let second = tokio::task::spawn_blocking(move || lines.next())
        .await
        .unwrap();
    assert_eq!(second.unwrap().unwrap(), "second line");
    let status = wait_for(
        "kubectl logs -f to end with the log",
        Duration::from_secs(20),
        || {
            let done = follow.try_wait().ok().flatten();
            async move { done }
        },
    )
    .await;
    assert!(status.success());

    // Errors as upstream words them (kubectl itself picks the first of several containers,
    // so the server's own message is seen over raw HTTP).
    let many = cp
        .http("GET", "/api/v1/namespaces/default/pods/duo/log", "", b"")
        .await;
    assert_eq!(many.code, 400, "{}", many.body);
    assert!(
        many.body
            .contains("a container name must be specified for pod duo, choose one of: [a b]"),
        "{}",
        many.body
    );
    let bad = cp.kubectl(&["logs", "solo", "-c", "nope"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("container nope is not valid for pod solo")
    );
    let nowhere = cp.kubectl(&["logs", "nowhere"]);
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("does not have a host assigned"));
    // The kubelet's 404 comes back as a Status, not a hang or a 500.
    let gone = cp
        .http(
            "GET",
            "/api/v1/namespaces/default/pods/duo/log?container=a",
            "",
            b"",
        )
        .await;
    assert_eq!(gone.code, 404, "{}", gone.body);
    assert_eq!(gone.json()["kind"], "Status");
}
