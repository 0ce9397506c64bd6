//! A whole single-node cluster started the way `cargo xtask up` starts it (containerd with
//! the local images, the control plane, the node agent), in a temporary state dir, stopped
//! with SIGINT like a user's Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A running `xtask up`.
pub struct Cluster {
    child: Option<Child>,
    state: TempDir,
    /// The kubeconfig `up` printed.
    pub kubeconfig: PathBuf,
    /// API address.
    pub addr: String,
    output: mpsc::Receiver<String>,
    lines: Vec<String>,
}

impl Cluster {
    /// Start `xtask up --dev --skip-build` (the debug binaries must be built) and wait for
    /// the `export KUBECONFIG=` line, which `up` prints once the node is Ready.
    pub fn start() -> Self {
        Self::start_with(true)
    }

    /// Start with the debug (`dev`) or release binaries.
    pub fn start_with(dev: bool) -> Self {
        let state = tempfile::Builder::new()
            .prefix("sluice-e2e-")
            .tempdir()
            .expect("state dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let addr = format!("127.0.0.1:{port}");
        // xtask itself is always a debug build (`cargo xtask` runs it from target/debug).
        let xtask = crate::bin_dir()
            .parent()
            .map(|t| t.join("debug").join("xtask"))
            .filter(|p| p.exists())
            .unwrap_or_else(|| crate::bin("xtask"));
        let mut args = vec!["up", "--skip-build", "--listen", &addr, "--state-dir"];
        if dev {
            args.insert(1, "--dev");
        }
        let mut child = Command::new(xtask)
            .args(&args)
            .arg(state.path())
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
        let mut cluster = Self {
            child: Some(child),
            kubeconfig: PathBuf::new(),
            state,
            addr,
            output: rx,
            lines: Vec::new(),
        };
        let started = Instant::now();
        loop {
            match cluster.output.recv_timeout(Duration::from_secs(1)) {
                Ok(line) => {
                    eprintln!("[xtask up] {line}");
                    if let Some(path) = line.trim().strip_prefix("export KUBECONFIG=") {
                        cluster.kubeconfig = PathBuf::from(path);
                        cluster.lines.push(line);
                        break;
                    }
                    cluster.lines.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "xtask up exited before the cluster was ready:\n{}",
                    cluster.logs()
                ),
            }
            assert!(
                started.elapsed() < Duration::from_secs(240),
                "cluster not ready in 240 s:\n{}",
                cluster.logs()
            );
        }
        cluster
    }

    /// The state dir.
    #[must_use]
    pub fn state(&self) -> &Path {
        self.state.path()
    }

    /// containerd's socket (from the config `up` generated).
    #[must_use]
    pub fn containerd_socket(&self) -> PathBuf {
        let config = std::fs::read_to_string(self.state.path().join("containerd/config.toml"))
            .unwrap_or_default();
        let line = config
            .lines()
            .find(|l| l.trim_start().starts_with("address = \"/"))
            .unwrap_or_default();
        PathBuf::from(line.split('"').nth(1).unwrap_or_default())
    }

    /// Run a command inside a pod's first container (through containerd, as `kubectl exec` would
    /// through the kubelet); returns (exit success, stdout).
    pub fn exec_in_pod(&self, pod: &str, cmd: &[&str]) -> (bool, String) {
        let out = self.kubectl_ok(&[
            "get",
            "pod",
            pod,
            "-o",
            "jsonpath={.status.containerStatuses[0].containerID}",
        ]);
        let id = out.trim().trim_start_matches("containerd://").to_string();
        let exec_id = format!("e2e-{}", rand::random::<u32>());
        let out = Command::new("ctr")
            .arg("--address")
            .arg(self.containerd_socket())
            .args(["-n", "k8s.io", "tasks", "exec", "--exec-id", &exec_id, &id])
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .expect("ctr tasks exec");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    }

    /// Pids of processes whose command line mentions this cluster's state dir and `needle`.
    #[must_use]
    pub fn pids_of(&self, needle: &str) -> Vec<u32> {
        let out = Command::new("pgrep")
            .args(["-f", &format!("{needle}.*{}", self.state.path().display())])
            .output()
            .expect("pgrep");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// What `up` printed plus the daemons' logs (for failure messages).
    #[must_use]
    pub fn logs(&self) -> String {
        let mut s = self.lines.join("\n");
        for f in [
            "control-plane.log",
            "node-agent.log",
            "containerd/containerd.log",
        ] {
            let p = self.state.path().join(f);
            if let Ok(text) = std::fs::read_to_string(&p) {
                let tail: Vec<&str> = text.lines().rev().take(60).collect();
                s.push_str(&format!("\n--- {} (last 60 lines) ---\n", p.display()));
                s.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            }
        }
        s
    }

    /// kubectl against the cluster.
    #[must_use]
    pub fn kubectl(&self, args: &[&str]) -> Output {
        let kubectl = std::env::var("SLUICE_KUBECTL").unwrap_or_else(|_| "kubectl".into());
        Command::new(kubectl)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.state.path().join("kube-cache"))
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    }

    /// kubectl that must succeed; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// kubectl apply of a manifest.
    pub fn apply(&self, manifest: &str) {
        let path = self
            .state
            .path()
            .join(format!("manifest-{}.yaml", rand::random::<u32>()));
        std::fs::write(&path, manifest).expect("write manifest");
        self.kubectl_ok(&["apply", "-f", path.to_str().expect("utf-8 path")]);
    }

    /// A kube-rs client.
    pub async fn client(&self) -> kube::Client {
        let uri: http::Uri = format!("http://{}", self.addr).parse().expect("uri");
        kube::Client::try_from(kube::Config::new(uri)).expect("client")
    }

    /// SIGINT, as Ctrl-C would, and wait for `up` to exit; returns whether it exited 0.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(90) {
            if let Ok(Some(status)) = child.try_wait() {
                while let Ok(line) = self.output.try_recv() {
                    eprintln!("[xtask up] {line}");
                    self.lines.push(line);
                }
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        self.stop();
    }
}
