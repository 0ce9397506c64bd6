//! `cargo xtask up` itself, as a user on a fresh clone meets it: it builds what is missing
//! (the eBPF object included) before starting anything, and it says the cluster is up only on
//! evidence from the processes it just started.
//!
//! The two tests share the host's node name (and so its pin directory and cgroup hooks), so
//! they run one at a time.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sluice_tests::cluster::{Outcome, Up, free_addr, require_cluster};

/// One `up` at a time: both tests would register the same Node and pins.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    sluice_test_util::stdout(
        Command::new(sluice_tests::kubectl_program())
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("KUBECACHEDIR", kubeconfig.with_file_name("kube-cache")),
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_lowercase()
}

/// The test's preconditions (it starts a cluster), its turn, and a temp dir; `None` when it
/// cannot run (then it is reported as skipped, or fails under CI).
fn prepare(test: &str) -> Option<(std::sync::MutexGuard<'static, ()>, tempfile::TempDir)> {
    if !require_cluster(test, &[]) {
        return None;
    }
    let turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tmp = tempfile::Builder::new()
        .prefix("sluice-up-")
        .tempdir()
        .expect("tempdir");
    Some((turn, tmp))
}

#[test]
fn up_builds_a_missing_ebpf_object_then_reaches_a_ready_node() {
    let Some((_one, tmp)) = prepare("up_builds_a_missing_ebpf_object_then_reaches_a_ready_node")
    else {
        return;
    };
    // As on a fresh clone: no eBPF object where `up` looks for it.
    let bpf_dir = tmp.path().join("bpf");
    assert!(!bpf_dir.exists());
    // Not --skip-build: `up` must build what is missing (cargo finds the workspace
    // binaries fresh, as `cargo xtask test` built them).
    let mut up = Up::spawn(
        &["--dev"],
        &free_addr(),
        &tmp.path().join("state"),
        &[("SLUICE_BPF_DIR", &bpf_dir)],
    );
    let kubeconfig = match up.outcome(Duration::from_mins(10)) {
        Outcome::Ready { kubeconfig } => kubeconfig,
        Outcome::Exited(status) => panic!("xtask up exited ({status}):\n{}", up.lines.join("\n")),
    };
    let object = bpf_dir.join("sluice-sock");
    assert!(
        object.is_file(),
        "up reported the cluster up without building {}:\n{}",
        object.display(),
        up.lines.join("\n")
    );
    assert!(
        up.lines.iter().any(|l| l.contains("[build-ebpf] wrote")),
        "no build progress printed:\n{}",
        up.lines.join("\n")
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
        status.is_some_and(|s| s.success()),
        "Ctrl-C is a clean stop: {status:?}\n{}",
        up.lines.join("\n")
    );
}

#[test]
fn up_fails_when_the_agent_cannot_start_even_if_the_stored_node_reads_ready() {
    let Some((_one, tmp)) =
        prepare("up_fails_when_the_agent_cannot_start_even_if_the_stored_node_reads_ready")
    else {
        return;
    };
    let state = tmp.path().join("state");
    seed_ready_node(&state, &hostname());

    // An object the agent cannot load: it exits at start, every time.
    let bpf_dir = tmp.path().join("bpf");
    std::fs::create_dir_all(&bpf_dir).expect("bpf dir");
    std::fs::write(bpf_dir.join("sluice-sock"), b"not an ELF object").expect("bad object");

    let mut up = Up::spawn(
        &["--dev", "--skip-build"],
        &free_addr(),
        &state,
        &[("SLUICE_BPF_DIR", &bpf_dir)],
    );
    match up.outcome(Duration::from_mins(5)) {
        Outcome::Ready { .. } => panic!(
            "xtask up reported the cluster up while its node agent could not start:\n{}",
            up.lines.join("\n")
        ),
        Outcome::Exited(status) => {
            assert!(!status.success(), "up must fail:\n{}", up.lines.join("\n"));
        }
    }
    let output = up.lines.join("\n");
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
    let kubeconfig = state.join("seed-kubeconfig");
    let mut control_plane = Command::new(sluice_tests::bin("sluice-control-plane"))
        .arg("--data-dir")
        .arg(state.join("store"))
        .args(["--listen", &free_addr()])
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the control plane");
    let deadline = Instant::now() + Duration::from_mins(1);
    while !(kubeconfig.exists()
        && Command::new(sluice_tests::kubectl_program())
            .args(["get", "--raw", "/readyz"])
            .env("KUBECONFIG", &kubeconfig)
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
        &kubeconfig,
        &["create", "-f", manifest.to_str().expect("utf-8 path")],
    );
    let heartbeat = "2026-01-01T00:00:00Z";
    let status = serde_json::json!({"status": {"conditions": [{
        "type": "Ready", "status": "True", "reason": "KubeletReady",
        "message": "kubelet is posting ready status",
        "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat,
    }]}});
    kubectl(
        &kubeconfig,
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
        &kubeconfig,
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
