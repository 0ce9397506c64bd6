//! A whole single-node cluster started the way `cargo xtask up` starts it (containerd with
//! the local images, the control plane, the node agent), in a temporary state dir, stopped
//! with SIGINT like a user's Ctrl-C.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// An `xtask up` process and everything it has printed so far.
pub struct Up {
    /// Held while this `up` runs: one node per machine (it binds the node IP's kubelet and
    /// DNS ports and attaches to the root cgroup), so clusters of concurrent tests take turns.
    _machine: std::fs::File,
    child: Child,
    output: mpsc::Receiver<String>,
    /// Every line `up` printed (stdout and stderr), in arrival order.
    pub lines: Vec<String>,
}

/// How `up`'s start-up ended.
pub enum Outcome {
    /// It printed the `export KUBECONFIG=` line: the cluster is up.
    Ready {
        /// The kubeconfig it named.
        kubeconfig: PathBuf,
    },
    /// It exited first.
    Exited(ExitStatus),
}

impl Up {
    /// Spawns `xtask up <args> --listen <listen> --state-dir <state>` with `envs`.
    ///
    /// # Panics
    /// When xtask cannot be started.
    pub fn spawn(args: &[&str], listen: &str, state: &Path, envs: &[(&str, &Path)]) -> Self {
        let machine = std::fs::File::create(MACHINE_LOCK).expect("create the machine lock");
        machine.lock().expect("take the machine lock");
        // xtask itself is always a debug build (`cargo xtask` runs it from target/debug).
        let xtask = crate::bin_dir()
            .parent()
            .map(|t| t.join("debug").join("xtask"))
            .filter(|p| p.exists())
            .unwrap_or_else(|| crate::bin("xtask"));
        let mut child = Command::new(xtask)
            .arg("up")
            .args(args)
            .args(["--listen", listen, "--state-dir"])
            .arg(state)
            .envs(envs.iter().copied())
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
            _machine: machine,
            child,
            output: rx,
            lines: Vec::new(),
        }
    }

    /// Reads `up`'s output until it reports the cluster up or exits.
    ///
    /// # Panics
    /// When it does neither within `limit`.
    pub fn outcome(&mut self, limit: Duration) -> Outcome {
        let started = Instant::now();
        loop {
            match self.output.recv_timeout(Duration::from_millis(500)) {
                Ok(line) => {
                    eprintln!("[xtask up] {line}");
                    let kubeconfig = line
                        .trim()
                        .strip_prefix("export KUBECONFIG=")
                        .map(PathBuf::from);
                    self.lines.push(line);
                    if let Some(kubeconfig) = kubeconfig {
                        return Outcome::Ready { kubeconfig };
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Outcome::Exited(self.child.wait().expect("wait for xtask up"));
                }
            }
            assert!(
                started.elapsed() < limit,
                "xtask up neither came up nor exited within {limit:?}:\n{}",
                self.lines.join("\n")
            );
        }
    }

    /// SIGINT, as Ctrl-C would, and `up`'s exit status (`None`: it did not stop within 90 s
    /// and was killed).
    ///
    /// # Panics
    /// When `kill` fails (unless already unwinding).
    pub fn interrupt(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let sent = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        // Not while unwinding: a second panic would abort the test binary.
        assert!(
            std::thread::panicking() || sent.as_ref().is_ok_and(ExitStatus::success),
            "kill -INT {}: {sent:?}",
            self.child.id()
        );
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(90) {
            if let Ok(Some(status)) = self.child.try_wait() {
                while let Ok(line) = self.output.try_recv() {
                    eprintln!("[xtask up] {line}");
                    self.lines.push(line);
                }
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

/// The lock file every `up` a test starts holds: see [`Up`].
pub const MACHINE_LOCK: &str = "/tmp/sluice-e2e-node.lock";

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.interrupt();
    }
}

/// A free loopback address for an API server.
///
/// # Panics
/// When no port can be bound.
#[must_use]
pub fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    format!("127.0.0.1:{port}")
}

/// The host's address on the bridge of a multi-node `up` (xtask's `up/network.rs`).
pub const BRIDGE_HOST: &str = "172.30.0.1";

/// A running `xtask up`.
pub struct Cluster {
    up: Option<Up>,
    state: TempDir,
    /// The kubeconfig `up` printed.
    pub kubeconfig: PathBuf,
    /// API address.
    pub addr: String,
}

impl Cluster {
    /// Start `xtask up --dev --skip-build` (the debug binaries must be built) and wait for
    /// the `export KUBECONFIG=` line, which `up` prints once the node is Ready.
    pub fn start() -> Self {
        Self::start_with(true)
    }

    /// Start with the debug (`dev`) or release binaries.
    pub fn start_with(dev: bool) -> Self {
        Self::start_with_env(dev, &[])
    }

    /// Start with the debug (`dev`) or release binaries, `envs` set for `up` and so for the
    /// daemons it starts (`SLUICE_DNS_UPSTREAM` for the node agent, say).
    pub fn start_with_env(dev: bool, envs: &[(&str, &Path)]) -> Self {
        let args: &[&str] = if dev {
            &["--dev", "--skip-build"]
        } else {
            &["--skip-build"]
        };
        Self::start_up(args, free_addr(), envs)
    }

    /// Start `nodes` nodes (`xtask up --dev --skip-build --nodes <nodes> --tunnel <tunnel>`):
    /// each in its own network namespace on the `sluice0` bridge, the API server on the host's
    /// address there; `tunnel` is `none` (native routing) or `vxlan`.
    pub fn start_nodes(nodes: u16, tunnel: &str) -> Self {
        Self::start_nodes_with(true, nodes, tunnel)
    }

    /// [`Cluster::start_nodes`] with the debug (`dev`) or release binaries.
    pub fn start_nodes_with(dev: bool, nodes: u16, tunnel: &str) -> Self {
        Self::start_nodes_args(dev, nodes, tunnel, &[])
    }

    /// [`Cluster::start_nodes_with`] plus more `xtask up` arguments (`--xdp`).
    pub fn start_nodes_args(dev: bool, nodes: u16, tunnel: &str, extra: &[&str]) -> Self {
        let port = free_addr()
            .rsplit_once(':')
            .map(|(_, port)| port.to_owned())
            .expect("host:port");
        let nodes = nodes.to_string();
        let mut args = vec!["--skip-build", "--nodes", &nodes, "--tunnel", tunnel];
        if dev {
            args.insert(0, "--dev");
        }
        args.extend_from_slice(extra);
        Self::start_up(&args, format!("{BRIDGE_HOST}:{port}"), &[])
    }

    fn start_up(args: &[&str], addr: String, envs: &[(&str, &Path)]) -> Self {
        let state = tempfile::Builder::new()
            .prefix("sluice-e2e-")
            .tempdir()
            .expect("state dir");
        let mut cluster = Self {
            up: Some(Up::spawn(args, &addr, state.path(), envs)),
            kubeconfig: PathBuf::new(),
            state,
            addr,
        };
        let outcome = cluster
            .up
            .as_mut()
            .expect("up")
            .outcome(Duration::from_mins(6));
        match outcome {
            Outcome::Ready { kubeconfig } => cluster.kubeconfig = kubeconfig,
            Outcome::Exited(status) => panic!(
                "xtask up exited ({status}) before the cluster was ready:\n{}",
                cluster.logs()
            ),
        }
        cluster
    }

    /// The state dir.
    #[must_use]
    pub fn state(&self) -> &Path {
        self.state.path()
    }

    /// containerd's socket (from the config `up` generated).
    ///
    /// # Panics
    /// When the config cannot be read or names no socket.
    #[must_use]
    pub fn containerd_socket(&self) -> PathBuf {
        socket_in(&self.state.path().join("containerd/config.toml"))
    }

    /// The containerd socket of node `node` (`node-1`, ...) of a multi-node cluster (from the
    /// config `up` generated under `nodes/<node>/`).
    ///
    /// # Panics
    /// When the config cannot be read or names no socket.
    #[must_use]
    pub fn node_containerd_socket(&self, node: &str) -> PathBuf {
        socket_in(
            &self
                .state
                .path()
                .join("nodes")
                .join(node)
                .join("containerd/config.toml"),
        )
    }

    /// Run a command inside a pod's first container (through containerd, as `kubectl exec` would
    /// through the kubelet); returns (exit success, stdout). `ctr`'s stderr goes to ours.
    pub fn exec_in_pod(&self, pod: &str, cmd: &[&str]) -> (bool, String) {
        let out = self.kubectl_ok(&[
            "get",
            "pod",
            pod,
            "-o",
            "jsonpath={.status.containerStatuses[0].containerID}",
        ]);
        let id = out.trim().trim_start_matches("containerd://").to_string();
        assert!(!id.is_empty(), "pod {pod} has no container id yet");
        let exec_id = format!("e2e-{}", rand::random::<u32>());
        let out = Command::new("ctr")
            .arg("--address")
            .arg(self.containerd_socket())
            .args(["-n", "k8s.io", "tasks", "exec", "--exec-id", &exec_id, &id])
            .args(cmd)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("run ctr tasks exec");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    }

    /// Pids of processes whose command line mentions this cluster's state dir and `needle`.
    #[must_use]
    pub fn pids_of(&self, needle: &str) -> Vec<u32> {
        pgrep(&format!("{needle}.*{}", self.state.path().display()))
    }

    /// What `up` printed plus the daemons' logs (for failure messages).
    #[must_use]
    pub fn logs(&self) -> String {
        let mut s = self
            .up
            .as_ref()
            .map(|up| up.lines.join("\n"))
            .unwrap_or_default();
        let mut files: Vec<PathBuf> = [
            "control-plane.log",
            "node-agent.log",
            "containerd/containerd.log",
        ]
        .iter()
        .map(|f| self.state.path().join(f))
        .collect();
        // A multi-node `up` keeps each node's logs under nodes/<name>/.
        if let Ok(nodes) = std::fs::read_dir(self.state.path().join("nodes")) {
            let mut dirs: Vec<PathBuf> = nodes.filter_map(Result::ok).map(|e| e.path()).collect();
            dirs.sort();
            for dir in dirs {
                files.push(dir.join("node-agent.log"));
                files.push(dir.join("containerd/containerd.log"));
            }
        }
        for p in files {
            if let Ok(text) = std::fs::read_to_string(&p) {
                let tail: Vec<&str> = text.lines().rev().take(60).collect();
                let _ = writeln!(s, "\n--- {} (last 60 lines) ---", p.display());
                s.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            }
        }
        s
    }

    /// A kubectl command against the cluster, to spawn (streams such as `logs -f`).
    #[must_use]
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(crate::kubectl_program());
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.state.path().join("kube-cache"))
            .stdin(Stdio::null());
        cmd
    }

    /// kubectl against the cluster.
    #[must_use]
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(crate::kubectl_program())
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
    #[expect(
        clippy::unused_async,
        reason = "callers (tests and benchmarks) await it, as they would a real connect"
    )]
    pub async fn client(&self) -> kube::Client {
        let uri: http::Uri = format!("http://{}", self.addr).parse().expect("uri");
        kube::Client::try_from(kube::Config::new(uri)).expect("client")
    }

    /// SIGINT, as Ctrl-C would, and wait for `up` to exit; returns whether it exited 0.
    pub fn stop(&mut self) -> bool {
        self.up
            .as_mut()
            .is_none_or(|up| up.interrupt().is_some_and(|status| status.success()))
    }
}

/// The socket address a containerd `config.toml` at `path` names.
///
/// # Panics
/// When the config cannot be read or names no socket.
fn socket_in(path: &Path) -> PathBuf {
    let config =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    config
        .lines()
        .find(|l| l.trim_start().starts_with("address = \"/"))
        .and_then(|l| l.split('"').nth(1))
        .map_or_else(
            || panic!("no socket address in {}:\n{config}", path.display()),
            PathBuf::from,
        )
}

/// Pids of processes whose full command line matches `pattern` (`pgrep -f`).
///
/// # Panics
/// When pgrep fails (it exits 1 for "no process", which is not a failure).
#[must_use]
pub fn pgrep(pattern: &str) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .expect("run pgrep");
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "pgrep -f {pattern} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            l.trim()
                .parse()
                .unwrap_or_else(|e| panic!("pgrep printed {l:?}: {e}"))
        })
        .collect()
}

/// The tools a test that starts a [`Cluster`] needs besides root: what `xtask up` runs
/// (containerd, runc, the image tools, kubectl, `ip`) and what the cluster helpers run.
pub const CLUSTER_TOOLS: &[&str] = &[
    "containerd",
    "ctr",
    "runc",
    "umoci",
    "tar",
    // The images' contents, as xtask/src/images.rs names them.
    "/bin/busybox",
    "/usr/bin/catatonit",
    "kubectl",
    "ip",
    "pgrep",
    "kill",
];

/// `test` starts a [`Cluster`] (plus `extra` tools): fails under CI when it cannot, else
/// reports the test as skipped (the test must then return).
#[must_use]
pub fn require_cluster(test: &str, extra: &[&str]) -> bool {
    let tools: Vec<&str> = CLUSTER_TOOLS.iter().chain(extra).copied().collect();
    sluice_test_util::require_root_and_tools(test, &tools)
        && (crate::kubectl_program() == "kubectl" || crate::require_kubectl(test))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        self.stop();
    }
}
