//! Start the real `sluice-control-plane` binary on a free loopback port, and talk to it
//! with kubectl, kube-rs and raw HTTP.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use tempfile::TempDir;

/// A control plane process owned by a test; killed on drop.
pub struct ControlPlane {
    child: Option<Child>,
    dir: TempDir,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    extra: Vec<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl ControlPlane {
    /// Start with default flags plus `extra`.
    pub async fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cp = Self {
            child: None,
            dir,
            addr,
            extra: extra.iter().map(|s| (*s).to_string()).collect(),
        };
        cp.spawn().await;
        cp
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("control-plane.log"))
            .expect("log file");
        let child = Command::new(crate::bin("sluice-control-plane"))
            .arg("--data-dir")
            .arg(self.dir.path().join("store"))
            .arg("--listen")
            .arg(&self.addr)
            .arg("--kubeconfig-out")
            .arg(self.kubeconfig())
            .args(&self.extra)
            .env("RUST_LOG", "info,kube_runtime=warn,kube_client=warn")
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn sluice-control-plane");
        self.child = Some(child);
        let addr = self.addr.clone();
        let started = std::time::Instant::now();
        loop {
            let r = tokio::time::timeout(
                Duration::from_secs(2),
                crate::http::try_request(&addr, "GET", "/readyz", "text/plain", b""),
            )
            .await;
            if let Ok(Ok(reply)) = r
                && reply.code == 200
            {
                break;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "control plane exited early ({status}); log:\n{}",
                    self.log()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "control plane did not become ready; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The kubeconfig is written after the socket is bound.
        crate::wait_for("kubeconfig", Duration::from_secs(10), || async {
            self.kubeconfig().exists().then_some(())
        })
        .await;
    }

    /// Kill -9 and start again on the same data dir and port.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// SIGKILL the process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The kubeconfig the server wrote.
    #[must_use]
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// The server's process id.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Resident memory of the server process in KiB (from /proc).
    #[must_use]
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Scratch directory of this test.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("control-plane.log")).unwrap_or_default()
    }

    /// A `kubectl` command pointed at this server, with its own cache dir.
    #[must_use]
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(crate::kubectl_program());
        c.args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("KUBECACHEDIR", self.dir.path().join("kube-cache"))
            .env("HOME", self.dir.path())
            .stdin(Stdio::null());
        c
    }

    /// Run kubectl to completion.
    #[must_use]
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args).output().expect("run kubectl")
    }

    /// Run kubectl, panic unless it succeeds; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// kubectl with a manifest on stdin.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .kubectl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write manifest");
        child.wait_with_output().expect("kubectl output")
    }

    /// A kube-rs client for this server.
    #[expect(
        clippy::unused_async,
        reason = "callers (tests and benchmarks) await it, as they would a real connect"
    )]
    pub async fn client(&self) -> kube::Client {
        let uri: http::Uri = format!("http://{}", self.addr).parse().expect("uri");
        kube::Client::try_from(kube::Config::new(uri)).expect("kube client")
    }

    /// A raw HTTP request.
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> crate::http::Reply {
        crate::http::request(&self.addr, method, path, content_type, body).await
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- control plane log ---\n{}", self.log());
        }
    }
}
