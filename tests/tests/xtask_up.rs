//! `cargo xtask up` itself, as a user on a fresh clone meets it: it builds what is missing
//! (the eBPF object included) before starting anything, and it says the cluster is up only on
//! evidence from the processes it just started.
//!
//! The two tests share the host's node name (and so its pin directory and cgroup hooks), so
//! they run one at a time.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

/// One `up` at a time: both tests would register the same Node and pins.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const TOOLS: &[&str] = &["containerd", "runc", "kubectl", "ip", "umoci"];

/// A running (or finished) `xtask up`, with everything it printed.
struct Up {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

/// How `up` ended its start-up: it printed the `export KUBECONFIG=` line, or it exited.
enum Outcome {
    Ready { kubeconfig: String },
    Exited(ExitStatus),
}

impl Up {
    fn start(args: &[&str], state: &Path, bpf_dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut child = Command::new(sluice_tests::bin("xtask"))
            .arg("up")
            .args(args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--state-dir")
            .arg(state)
            .env("SLUICE_BPF_DIR", bpf_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn xtask up");
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Reads `up`'s output until it reports the cluster up or exits (bounded by `limit`).
    fn outcome(&mut self, limit: Duration) -> Outcome {
        let started = Instant::now();
        loop {
            match self.lines.recv_timeout(Duration::from_millis(500)) {
                Ok(line) => {
                    eprintln!("[xtask up] {line}");
                    let kubeconfig = line
                        .trim()
                        .strip_prefix("export KUBECONFIG=")
                        .map(str::to_owned);
                    self.seen.push(line);
                    if let Some(kubeconfig) = kubeconfig {
                        return Outcome::Ready { kubeconfig };
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().expect("wait for xtask up");
                    return Outcome::Exited(status);
                }
            }
            assert!(
                started.elapsed() < limit,
                "xtask up neither came up nor exited within {limit:?}:\n{}",
                self.output()
            );
        }
    }

    fn output(&self) -> String {
        self.seen.join("\n")
    }

    /// SIGINT (Ctrl-C) and the exit status.
    fn interrupt(&mut self) -> ExitStatus {
        sluice_test_util::run(Command::new("kill").args(["-INT", &self.child.id().to_string()]));
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                while let Ok(line) = self.lines.try_recv() {
                    eprintln!("[xtask up] {line}");
                    self.seen.push(line);
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "xtask up did not stop after SIGINT"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.interrupt();
        }
    }
}

fn kubectl(kubeconfig: &str, args: &[&str]) -> String {
    sluice_test_util::stdout(
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env(
                "KUBECACHEDIR",
                Path::new(kubeconfig).with_file_name("kube-cache"),
            ),
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_lowercase()
}

#[test]
fn up_builds_a_missing_ebpf_object_then_reaches_a_ready_node() {
    if !sluice_test_util::require_root_and_tools(
        "up_builds_a_missing_ebpf_object_then_reaches_a_ready_node",
        TOOLS,
    ) {
        return;
    }
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tmp = tempfile::Builder::new()
        .prefix("sluice-up-")
        .tempdir()
        .expect("tempdir");
    // As on a fresh clone: no eBPF object where `up` looks for it.
    let bpf_dir = tmp.path().join("bpf");
    assert!(!bpf_dir.exists());
    // Not --skip-build: `up` must build what is missing (cargo finds the workspace
    // binaries fresh, as `cargo xtask test` built them).
    let mut up = Up::start(&["--dev"], &tmp.path().join("state"), &bpf_dir);
    let kubeconfig = match up.outcome(Duration::from_mins(10)) {
        Outcome::Ready { kubeconfig } => kubeconfig,
        Outcome::Exited(status) => panic!("xtask up exited ({status}):\n{}", up.output()),
    };
    let object = bpf_dir.join("sluice-sock");
    assert!(
        object.is_file(),
        "up reported the cluster up without building {}:\n{}",
        object.display(),
        up.output()
    );
    assert!(
        up.seen.iter().any(|l| l.contains("[build-ebpf] wrote")),
        "no build progress printed:\n{}",
        up.output()
    );
    let ready = kubectl(
        &kubeconfig,
        &[
            "get",
            "node",
            &hostname(),
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
    );
    assert_eq!(ready.trim(), "True");
    let status = up.interrupt();
    assert!(
        status.success(),
        "Ctrl-C is a clean stop: {status}\n{}",
        up.output()
    );
}

#[test]
fn up_fails_when_the_agent_cannot_start_even_if_the_stored_node_reads_ready() {
    if !sluice_test_util::require_root_and_tools(
        "up_fails_when_the_agent_cannot_start_even_if_the_stored_node_reads_ready",
        TOOLS,
    ) {
        return;
    }
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tmp = tempfile::Builder::new()
        .prefix("sluice-up-")
        .tempdir()
        .expect("tempdir");
    let state = tmp.path().join("state");
    seed_ready_node(&state, &hostname());

    // An object the agent cannot load: it exits at start, every time.
    let bpf_dir = tmp.path().join("bpf");
    std::fs::create_dir_all(&bpf_dir).expect("bpf dir");
    std::fs::write(bpf_dir.join("sluice-sock"), b"not an ELF object").expect("bad object");

    let mut up = Up::start(&["--dev", "--skip-build"], &state, &bpf_dir);
    match up.outcome(Duration::from_mins(5)) {
        Outcome::Ready { .. } => panic!(
            "xtask up reported the cluster up while its node agent could not start:\n{}",
            up.output()
        ),
        Outcome::Exited(status) => {
            assert!(!status.success(), "up must fail:\n{}", up.output());
        }
    }
    let output = up.output();
    assert!(
        output.contains("node agent exited 5 times"),
        "the failure names the crash loop:\n{output}"
    );
    // The agent's error chain reaches the user, causes included.
    assert!(
        output.contains("loading") && output.contains("Caused by"),
        "the agent's error and its causes are shown:\n{output}"
    );
    assert!(
        !output
            .lines()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| w[0].trim_end().ends_with("Caused by:") && w[1].trim().is_empty()),
        "an empty `Caused by:`:\n{output}"
    );
}

/// A store left by an "earlier run": the Node exists and reads Ready with a heartbeat from
/// before `up` starts.
fn seed_ready_node(state: &Path, node: &str) {
    std::fs::create_dir_all(state.join("store")).expect("store dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let kubeconfig = state.join("seed-kubeconfig");
    let mut control_plane = Command::new(sluice_tests::bin("sluice-control-plane"))
        .arg("--data-dir")
        .arg(state.join("store"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the control plane");
    let kc = kubeconfig.to_str().expect("utf-8 path").to_owned();
    let deadline = Instant::now() + Duration::from_mins(1);
    while !(kubeconfig.exists()
        && Command::new("kubectl")
            .args(["get", "--raw", "/readyz"])
            .env("KUBECONFIG", &kc)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()))
    {
        assert!(Instant::now() < deadline, "control plane did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let manifest = state.join("node.json");
    std::fs::write(
        &manifest,
        serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
            .to_string(),
    )
    .expect("node manifest");
    kubectl(
        &kc,
        &["create", "-f", manifest.to_str().expect("utf-8 path")],
    );
    let heartbeat = "2026-01-01T00:00:00Z";
    let status = serde_json::json!({"status": {"conditions": [{
        "type": "Ready", "status": "True", "reason": "KubeletReady",
        "message": "kubelet is posting ready status",
        "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat,
    }]}});
    kubectl(
        &kc,
        &[
            "patch",
            "node",
            node,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ],
    );
    let ready = kubectl(
        &kc,
        &[
            "get",
            "node",
            node,
            "-o",
            "jsonpath={.status.conditions[0].status}",
        ],
    );
    assert_eq!(ready.trim(), "True", "the seeded Node reads Ready");
    control_plane
        .kill()
        .expect("stop the seeding control plane");
    control_plane.wait().expect("reap it");
}
