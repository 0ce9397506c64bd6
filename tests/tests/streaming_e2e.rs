//! End to end for reaching pods through the API, on a cluster started as `cargo xtask up`
//! starts it: `kubectl exec` (stdout, stderr, stdin to its end, exit codes, a terminal and
//! its size), `kubectl cp` both ways, `kubectl attach`, `kubectl port-forward` to a pod and to
//! a Service (and to a closed port), the pods and services proxy, each streaming verb over
//! WebSocket (kubectl's default) and over SPDY; and the same exec and port-forward through
//! kube-rs. The kubelet logs which transport each session used, and the test checks it, so a
//! silent fallback from WebSocket to SPDY cannot pass for WebSocket.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use sluice_tests::cluster::{self, Cluster};
use sluice_tests::wait_for;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: box}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: box
    image: localhost/sluice/test:1
    args: [sleep, "3600"]
---
apiVersion: v1
kind: Pod
metadata: {name: echoer}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: echoer
    image: localhost/sluice/test:1
    stdin: true
    args: [sh, -c, "while read l; do echo got:$l; done; sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
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
"#;

/// The two transports kubectl 1.32 can use, by its environment switches.
const TRANSPORTS: [(&str, &str); 2] = [("websocket", "true"), ("spdy", "false")];

fn with_transport(mut cmd: Command, ws: &str) -> Command {
    cmd.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", ws)
        .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", ws);
    cmd
}

fn run(mut cmd: Command, stdin: Option<&[u8]>) -> std::process::Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn kubectl");
    if let Some(input) = stdin {
        let mut w = child.stdin.take().expect("stdin");
        w.write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("kubectl output")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A spawned kubectl and the lines of its stdout and stderr as they arrive.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn spawn(mut cmd: Command, stdin: bool) -> Self {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawn kubectl");
        let (tx, lines) = mpsc::channel();
        for pipe in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { return };
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line matching `pred`, returning it.
    fn line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_mins(1);
        if let Some(l) = self.seen.iter().find(|l| pred(l)) {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if pred(&l) {
                        return l;
                    }
                }
                Err(e) => panic!("no line {what} ({e}); kubectl printed: {:#?}", self.seen),
            }
        }
    }

    fn write(&mut self, data: &[u8]) {
        let w = self.child.stdin.as_mut().expect("stdin");
        w.write_all(data).expect("write");
        w.flush().expect("flush");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.0 GET on `127.0.0.1:port`; the whole response.
fn http_get(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The local port of a `Forwarding from 127.0.0.1:N -> remote` line.
fn forwarded(pf: &mut Running, remote: u16) -> u16 {
    let line = pf.line(&format!("forwarding to {remote}"), |l| {
        l.starts_with("Forwarding from 127.0.0.1:") && l.ends_with(&format!("-> {remote}"))
    });
    line["Forwarding from 127.0.0.1:".len()..]
        .split(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

/// How many kubelet stream sessions of `verb` over `transport` the agent's log records.
fn sessions(cluster: &Cluster, verb: &str, transport: &str) -> usize {
    let log = std::fs::read_to_string(cluster.state().join("node-agent.log")).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains("stream session"))
        .filter(|l| l.contains(&format!("verb={verb} ")))
        .filter(|l| l.contains(&format!("transport={transport} ")))
        .count()
}

fn exec_checks(cluster: &Cluster, name: &str, ws: &str) {
    let kubectl = |args: &[&str]| with_transport(cluster.kubectl_cmd(args), ws);
    // stdout and stderr apart, and the exit code reaches kubectl's exit status.
    let out = run(
        kubectl(&[
            "exec",
            "box",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ]),
        None,
    );
    assert_eq!(out.status.code(), Some(3), "{name}: {out:?}");
    assert_eq!(text(&out.stdout), "out\n", "{name}");
    assert!(text(&out.stderr).contains("err"), "{name}: {out:?}");
    // stdin to its end: cat ends only when the client's end of stdin reaches it.
    let out = run(
        kubectl(&["exec", "-i", "box", "--", "sh", "-c", "cat; echo done"]),
        Some(b"hello\nworld\n"),
    );
    assert!(out.status.success(), "{name}: {out:?}");
    assert_eq!(text(&out.stdout), "hello\nworld\ndone\n", "{name}");
    // A terminal under a pseudo-terminal, with the size kubectl's terminal has.
    let line = format!(
        "stty rows 31 cols 101; echo host=$(stty size); KUBECONFIG={} KUBECACHEDIR={} KUBECTL_REMOTE_COMMAND_WEBSOCKETS={ws} {} exec -it box -- sh -c 'tty; for i in $(seq 50); do s=$(stty size 2>/dev/null); [ -n \"$s\" ] && [ \"$s\" != \"0 0\" ] && break; sleep 0.1; done; echo size=$s; stty -a; exit 4'",
        cluster.kubeconfig.display(),
        cluster.state().join("kube-cache").display(),
        sluice_tests::kubectl_program(),
    );
    let out = run(
        {
            let mut c = Command::new("script");
            c.args(["-qec", &line, "/dev/null"]);
            c
        },
        None,
    );
    let printed = text(&out.stdout);
    assert!(printed.contains("/dev/pts/"), "{name}: {printed:?}");
    // The size arrives on the resize channel right after the process starts: wait for it.
    assert!(printed.contains("size=31 101"), "{name}: {printed:?}");
    assert_eq!(out.status.code(), Some(4), "{name}: {printed:?}");
    // A container the pod does not have: the API server's 400, kubectl exits 1.
    let out = run(kubectl(&["exec", "box", "-c", "nope", "--", "true"]), None);
    assert!(!out.status.success(), "{name}");
    assert!(
        text(&out.stderr).contains("container nope is not valid for pod box"),
        "{name}: {}",
        text(&out.stderr)
    );
}

fn cp_checks(cluster: &Cluster, name: &str, ws: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src.bin");
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&src, &data).expect("write");
    let kubectl = |args: &[&str]| with_transport(cluster.kubectl_cmd(args), ws);
    let remote = format!("box:/tmp/{name}.bin");
    let out = run(
        kubectl(&["cp", src.to_str().expect("utf-8"), &remote]),
        None,
    );
    assert!(out.status.success(), "{name}: cp to: {out:?}");
    let back = dir.path().join("back.bin");
    let out = run(
        kubectl(&["cp", &remote, back.to_str().expect("utf-8")]),
        None,
    );
    assert!(out.status.success(), "{name}: cp from: {out:?}");
    let got = std::fs::read(&back).expect("read back");
    assert!(
        got == data,
        "{name}: {} bytes back of {}",
        got.len(),
        data.len()
    );
}

fn attach_checks(cluster: &Cluster, name: &str, ws: &str) {
    let mut attach = Running::spawn(
        with_transport(cluster.kubectl_cmd(&["attach", "-i", "echoer"]), ws),
        true,
    );
    // kubectl attaches, then what it reads from stdin reaches the container's process.
    echo_until(&mut attach, name, "got:");
}

/// Writes numbered lines to a spawned kubectl's stdin until the container's answer (a line
/// starting `answer` then the word) comes back: the session is up and carries both ways.
fn echo_until(session: &mut Running, name: &str, answer: &str) {
    let deadline = Instant::now() + Duration::from_mins(1);
    let word = format!("hi-{name}");
    let mut n = 0;
    loop {
        session.write(format!("{word}-{n}\n").as_bytes());
        if let Ok(l) = session.lines.recv_timeout(Duration::from_secs(2)) {
            session.seen.push(l.clone());
            if l.starts_with(&format!("{answer}{word}")) {
                return;
            }
        }
        n += 1;
        assert!(
            Instant::now() < deadline,
            "{name}: no echo: {:#?}",
            session.seen
        );
    }
}

fn port_forward_checks(cluster: &Cluster, name: &str, ws: &str) {
    let mut pf = Running::spawn(
        with_transport(
            cluster.kubectl_cmd(&["port-forward", "pod/web", ":8080", ":9999"]),
            ws,
        ),
        false,
    );
    let open = forwarded(&mut pf, 8080);
    let closed = forwarded(&mut pf, 9999);
    let reply = http_get(open).expect("GET through port-forward");
    assert!(reply.starts_with("HTTP/1."), "{name}: {reply:?}");
    assert!(reply.contains("web"), "{name}: {reply:?}");
    // A closed port: the runtime's error reaches kubectl. client-go's port-forwarder then
    // closes the whole connection on purpose (`pf.streamConn.Close()` after an error
    // stream reports one), so kubectl exits; the node keeps serving new forwards.
    let refused = http_get(closed).unwrap_or_default();
    assert!(!refused.contains("200"), "{name}: {refused:?}");
    pf.line("the closed port's error", |l| {
        l.contains("an error occurred forwarding") && l.contains("-> 9999") && l.contains("refused")
    });
    let exited = pf.child.wait().expect("kubectl port-forward exits");
    assert!(!exited.success(), "{name}: {:#?}", pf.seen);
    drop(pf);
    let mut again = Running::spawn(
        with_transport(
            cluster.kubectl_cmd(&["port-forward", "pod/web", ":8080"]),
            ws,
        ),
        false,
    );
    let port = forwarded(&mut again, 8080);
    let reply = http_get(port).expect("GET through a new port-forward after the error");
    assert!(reply.contains("web"), "{name}: {reply:?}");
    drop(again);

    let mut svc = Running::spawn(
        with_transport(cluster.kubectl_cmd(&["port-forward", "svc/web", ":80"]), ws),
        false,
    );
    let port = forwarded(&mut svc, 8080);
    let reply = http_get(port).expect("GET through a Service port-forward");
    assert!(reply.contains("web"), "{name}: {reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reach_pods_through_the_api() {
    if !cluster::require_cluster("reach_pods_through_the_api", &["script"]) {
        return;
    }
    let cluster = Cluster::start();
    cluster.apply(PODS);
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/box",
        "pod/echoer",
        "pod/web",
        "--timeout=120s",
    ]);

    for (name, ws) in TRANSPORTS {
        exec_checks(&cluster, name, ws);
        cp_checks(&cluster, name, ws);
        attach_checks(&cluster, name, ws);
        port_forward_checks(&cluster, name, ws);
    }
    // Each verb went over each transport: v5 and the tunnelled port-forward are translated
    // by the kubelet, SPDY passes through to containerd.
    for verb in ["exec", "attach", "portforward"] {
        for transport in ["websocket", "spdy"] {
            assert!(
                sessions(&cluster, verb, transport) > 0,
                "no {verb} session over {transport} in the agent's log"
            );
        }
    }

    // kubectl debug: an ephemeral container in the pod, in the target's process namespace,
    // its status reported and its output in its log; then one attached with stdin.
    cluster.kubectl_ok(&[
        "debug",
        "box",
        "--image=localhost/sluice/test:1",
        "--container=dbg",
        "--target=box",
        "--",
        "sh",
        "-c",
        "echo debug-ok; ps -o comm | grep -c sleep",
    ]);
    wait_for(
        "the debug container's output",
        Duration::from_mins(1),
        || async {
            let out = cluster.kubectl(&["logs", "box", "-c", "dbg"]);
            let text = text(&out.stdout);
            (text.contains("debug-ok")).then_some(text)
        },
    )
    .await;
    let status = cluster.kubectl_ok(&[
        "get",
        "pod",
        "box",
        "-o",
        "jsonpath={.status.ephemeralContainerStatuses[0].name}",
    ]);
    assert_eq!(status, "dbg");
    let logs = cluster.kubectl_ok(&["logs", "box", "-c", "dbg"]);
    // It shares the target's process namespace: it sees the target's `sleep`.
    assert!(logs.contains("debug-ok\n1\n"), "{logs:?}");
    // `kubectl debug -i`: attached to the new container's stdin and stdout (kept open: for a
    // container with stdinOnce and no terminal, containerd ends the attach at stdin's end).
    let mut debug = Running::spawn(
        cluster.kubectl_cmd(&[
            "debug",
            "-i",
            "box",
            "--image=localhost/sluice/test:1",
            "--container=dbg2",
            "--",
            "sh",
            "-c",
            "while read l; do echo echo:$l; done",
        ]),
        true,
    );
    echo_until(&mut debug, "debug", "echo:");
    drop(debug);

    // The pods and services proxy reach the pod's HTTP server.
    let by_pod = cluster.kubectl_ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods/web:8080/proxy/",
    ]);
    assert!(by_pod.starts_with("web"), "{by_pod:?}");
    let by_svc = cluster.kubectl_ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/services/web:http/proxy/anything",
    ]);
    assert!(by_svc.starts_with("web"), "{by_svc:?}");

    // kube-rs (its `ws` feature): exec with stdout, and a port-forward carrying HTTP.
    let client = cluster.client().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let mut attached = pods
        .exec(
            "box",
            ["sh", "-c", "echo from-kube-rs"],
            &AttachParams::default().stdout(true).stderr(false),
        )
        .await
        .expect("kube-rs exec");
    let mut stdout = attached.stdout().expect("stdout");
    let mut out = String::new();
    stdout.read_to_string(&mut out).await.expect("read stdout");
    assert_eq!(out, "from-kube-rs\n");
    attached.join().await.expect("exec ended");
    let mut pf = pods
        .portforward("web", &[8080])
        .await
        .expect("kube-rs portforward");
    let mut stream = pf.take_stream(8080).expect("stream");
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    reply.extend_from_slice(&buf[..n]);
                    if reply.windows(3).any(|w| w == b"web") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "kube-rs port-forward timed out: {reply:?}");
    let reply = text(&reply);
    assert!(reply.starts_with("HTTP/1."), "{reply:?}");
    assert!(reply.contains("web"), "{reply:?}");
    drop(stream);
    pf.abort();

    cluster.kubectl_ok(&[
        "delete",
        "pod",
        "box",
        "echoer",
        "web",
        "--grace-period=0",
        "--timeout=120s",
    ]);
    wait_for("pods gone", Duration::from_mins(2), || async {
        cluster
            .kubectl_ok(&["get", "pods", "-o", "name"])
            .trim()
            .is_empty()
            .then_some(())
    })
    .await;
}
