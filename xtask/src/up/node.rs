//! One node of `up`: its containerd (with the local images imported) and its
//! node agent, supervised; readiness from the Node object; and the stop that
//! leaves nothing of the node behind.
//!
//! Everything a node owns lives under its own state directory, so several
//! nodes can reuse this bring-up on one machine.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result, bail};

use super::network::NodeNet;
use super::readiness::Readiness;
use super::{say, stopping};
use crate::{
    containerd::{self, Containerd},
    images,
    process::{self, Supervised},
    workspace_root,
};

/// What a node is made of.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// The Node name.
    pub name: String,
    /// Where the node keeps its state: `containerd/`, `cni/`, `node/` (the
    /// agent's state) and `node-agent.log`.
    pub state: PathBuf,
    /// Where the workspace binaries are.
    pub bin_dir: PathBuf,
    /// The socket-LB eBPF object.
    pub bpf_object: PathBuf,
    /// Rebuild and re-import the local images.
    pub force_images: bool,
    /// The agent's `--tunnel` (`none` or `vxlan`).
    pub tunnel: String,
    /// The agent's `--xdp` (namespaced nodes only).
    pub xdp: bool,
    /// The node's own network namespace and address on the test network; `None`
    /// runs the node in the host's network (the single-node default).
    pub net: Option<NodeNet>,
}

impl NodeSpec {
    /// Where the agent pins its eBPF maps and links (its default for this name).
    fn pin_dir(&self) -> PathBuf {
        Path::new("/sys/fs/bpf/sluice").join(&self.name)
    }

    /// The cgroup (from the hierarchy's root) of a namespaced node's pods: each such
    /// node's socket hooks attach there, so they see only its own pods.
    fn pods_cgroup(&self) -> Option<String> {
        self.net.as_ref().map(|_| format!("/sluice/{}", self.name))
    }
}

/// A node being brought up or running.
pub struct Node {
    spec: NodeSpec,
    containerd: Option<Containerd>,
    agent: Option<Child>,
    /// How to start the node agent again: `up` supervises it like an init system would.
    supervised: Option<Supervised>,
}

impl Node {
    /// Starts the node's containerd and imports the images; the agent comes
    /// later ([`Node::start_agent`]), once there is a control plane.
    pub fn start_containerd(spec: NodeSpec) -> Result<Self> {
        let mut cfg = containerd::Config::new(spec.state.join("containerd"));
        cfg.cni_dir = spec.state.join("cni");
        cfg.cni_plugin = Some(spec.bin_dir.join("sluice-cni"));
        images::PAUSE.clone_into(&mut cfg.sandbox_image);
        cfg.die_with_parent = true;
        cfg.netns = spec.net.as_ref().map(NodeNet::netns_path);
        let containerd = Containerd::start(cfg)?;
        say(
            "containerd",
            &format!(
                "ready ({}, log {})",
                containerd.socket().display(),
                containerd.log_path().display()
            ),
        );
        if !containerd.cni_bin_dir().join("sluice-cni").exists() {
            say(
                "cni",
                "sluice-cni is not built yet: pods cannot get a network",
            );
        }
        let archives = images::build_all(
            workspace_root(),
            &workspace_root().join(".state/images"),
            spec.force_images,
        )?;
        let imported = images::import(&containerd, &archives, spec.force_images)?;
        let all: Vec<&str> = archives
            .iter()
            .flat_map(|archive| archive.refs.iter().map(|(name, _)| name.as_str()))
            .collect();
        if imported.is_empty() {
            say("images", &format!("already imported ({})", all.join(", ")));
        } else {
            say("images", &format!("imported ({})", imported.join(", ")));
        }
        Ok(Self {
            spec,
            containerd: Some(containerd),
            agent: None,
            supervised: None,
        })
    }

    /// The node's containerd (while it runs).
    pub fn containerd(&mut self) -> Option<&mut Containerd> {
        self.containerd.as_mut()
    }

    /// Starts the node agent against `kubeconfig` and waits for the Node to be
    /// Ready with a heartbeat from this agent.
    pub fn start_agent(&mut self, kubeconfig: &Path) -> Result<()> {
        let containerd = self.containerd.as_ref().context("containerd is gone")?;
        let log = self.spec.state.join("node-agent.log");
        let mut cmd = Command::new(self.spec.bin_dir.join("sluice-node-agent"));
        cmd.args(["--node-name", &self.spec.name])
            .args(["--tunnel", &self.spec.tunnel])
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cri-socket")
            .arg(containerd.socket())
            .arg("--cni-conf-dir")
            .arg(containerd.cni_conf_dir())
            .arg("--cni-bin-dir")
            .arg(containerd.cni_bin_dir())
            .arg("--cni-data-dir")
            .arg(containerd.cni_data_dir())
            .arg("--state-dir")
            .arg(self.spec.state.join("node"))
            .env("SLUICE_BPF_OBJ", &self.spec.bpf_object)
            .current_dir(workspace_root());
        if self.spec.net.is_none() {
            // In the host's own network the external interface is the machine's: NodePort
            // handling there is left off (see the README).
            cmd.args(["--external-iface", "none"]);
        }
        if self.spec.net.is_some() && self.spec.xdp {
            cmd.arg("--xdp");
        }
        if let Some(net) = &self.spec.net {
            let pods = self.spec.pods_cgroup().unwrap_or_default();
            cmd.args(["--node-ip", &net.address.to_string()])
                .args(["--pods-cgroup", &pods])
                .arg("--cgroup-root")
                .arg(format!("{CGROUP2}{pods}"));
        }
        let mut supervised = Supervised::of("the node agent", &cmd, &log);
        if let Some(net) = &self.spec.net {
            supervised = supervised.in_netns(net.netns_path());
        }
        // Evidence of readiness must come from this agent: a heartbeat after this instant.
        let started = SystemTime::now();
        self.agent = Some(supervised.spawn()?);
        self.supervised = Some(supervised);
        say(
            "node agent",
            &format!("started as node {} (log {})", self.spec.name, log.display()),
        );
        self.wait_ready(kubeconfig, started)?;
        self.route_pods_from_host(kubeconfig)
    }

    /// On the test network, the host (where the control plane runs) learns the route to
    /// this node's podCIDR, as the router of a natively routed network does: pods reach
    /// the API server there (`kubernetes.default`), and its replies come back through the
    /// node instead of leaving by the host's default route.
    fn route_pods_from_host(&self, kubeconfig: &Path) -> Result<()> {
        let Some(net) = &self.spec.net else {
            return Ok(());
        };
        let cidr = crate::output(
            Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args([
                    "get",
                    "node",
                    &self.spec.name,
                    "-o",
                    "jsonpath={.spec.podCIDR}",
                ])
                .stderr(Stdio::null()),
        )
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .with_context(|| format!("node {} is Ready without a podCIDR", self.spec.name))?;
        super::network::route_via_node(&cidr, net)?;
        say(
            &format!("node {}", self.spec.name),
            &format!("host route {cidr} via {}", net.address),
        );
        Ok(())
    }

    /// Fails when containerd has exited; restarts an agent that exited (and
    /// fails when it keeps exiting).
    pub fn check(&mut self) -> Result<()> {
        if let Some(containerd) = self.containerd.as_mut()
            && !containerd.is_running()
        {
            bail!("containerd exited; see {}", containerd.log_path().display());
        }
        if let Some(agent) = self.agent.as_mut()
            && let Some(status) = agent.try_wait()?
            && !stopping()
        {
            let supervised = self.supervised.as_mut().context("node agent exited")?;
            say("node agent", &format!("exited ({status}); restarting"));
            self.agent = Some(supervised.spawn()?);
        }
        Ok(())
    }

    /// Waits until the Node's Ready condition is True with a heartbeat no older than
    /// `since` (the agent's start), so a Node left Ready in the store by an earlier run
    /// proves nothing. Fails after two minutes, showing the end of the agent's log.
    fn wait_ready(&mut self, kubeconfig: &Path, since: SystemTime) -> Result<()> {
        let node = self.spec.name.clone();
        let timeout = Duration::from_mins(2);
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            self.check()?;
            let json = crate::output(
                Command::new("kubectl")
                    .arg("--kubeconfig")
                    .arg(kubeconfig)
                    .args(["get", "node", &node, "-o", "json"])
                    .stderr(Stdio::null()),
            );
            let readiness = json.as_deref().map_or(Readiness::Unregistered, |json| {
                Readiness::of_node(json, since)
            });
            if readiness == Readiness::Ready {
                say(&format!("node {node}"), "Ready (heartbeat from this run)");
                return Ok(());
            }
            let shown = readiness.to_string();
            if shown != last {
                say(&format!("node {node}"), &format!("waiting ({shown})"));
                last = shown;
            }
            if stopping() {
                bail!("interrupted");
            }
            if Instant::now() > deadline {
                let log = self
                    .supervised
                    .as_ref()
                    .map(|s| process::log_tail(&s.log))
                    .unwrap_or_default();
                bail!(
                    "node {node} did not report Ready within {timeout:?} of the agent's start \
                     (last seen: {last}){log}"
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Stops the node agent (SIGTERM, then SIGKILL after 10 s).
    pub fn stop_agent(&mut self) -> Result<()> {
        if let Some(mut child) = self.agent.take() {
            say("stopping", "node agent");
            process::terminate(&mut child, Duration::from_secs(10)).context("node agent")?;
        }
        Ok(())
    }

    /// Stops what is left of the node: the agent's host state (eBPF pins,
    /// routes), then containerd (pods, shims, mounts, netns). Reports every
    /// failure in `problems`.
    pub fn stop_rest(&mut self, problems: &mut Vec<String>) {
        if let Err(err) = self.stop_agent() {
            problems.push(format!("{err:#}"));
        }
        if self.supervised.take().is_some() {
            // The agent leaves its eBPF hooks pinned so a restart drops no traffic; a
            // full teardown removes them (unpinning the links detaches the programs).
            // A host node also leaves routes in the host's table: the unreachable ones
            // for the pod and Service ranges, and those to other nodes' pods (`routes.rs`,
            // protocol 213). A namespaced node's routes go with its namespace.
            if self.spec.net.is_none() {
                let _ = Command::new("sh")
                    .arg("-c")
                    .arg("ip route show type unreachable | grep -E '^unreachable (10\\.244\\.|10\\.96\\.0\\.0/12)' | while read -r _ cidr _; do ip route del unreachable \"$cidr\"; done")
                    .status();
                let _ = Command::new("ip")
                    .args(["route", "flush", "proto", "213"])
                    .status();
            }
            let pins = self.spec.pin_dir();
            if pins.exists() {
                say(
                    "removing",
                    &format!("eBPF hooks and maps ({})", pins.display()),
                );
                if let Err(err) = fs::remove_dir_all(&pins) {
                    problems.push(format!("removing {}: {err}", pins.display()));
                }
            }
        }
        if let Some(containerd) = self.containerd.take() {
            say("stopping", "containerd (pods, shims, mounts, netns)");
            if let Err(err) = containerd.stop() {
                problems.push(format!("{err:#}"));
            }
        }
        if let Some(pods) = self.spec.pods_cgroup() {
            remove_cgroups(&pods, problems);
        }
    }
}

/// Where cgroup2 is mounted on the test machines (hybrid hierarchy).
const CGROUP2: &str = "/sys/fs/cgroup/unified";
/// The cgroup v1 controllers runc's cgroupfs driver creates pod cgroups in.
const CGROUP_V1: &[&str] = &[
    "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids", "systemd",
];

/// Removes a node's (now empty) cgroup subtree from every hierarchy, deepest first.
fn remove_cgroups(path: &str, problems: &mut Vec<String>) {
    let roots = std::iter::once(CGROUP2.to_owned())
        .chain(CGROUP_V1.iter().map(|c| format!("/sys/fs/cgroup/{c}")));
    for root in roots {
        let top = PathBuf::from(format!("{root}{path}"));
        if !top.exists() {
            continue;
        }
        let mut dirs = Vec::new();
        collect_dirs(&top, &mut dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in dirs {
            if let Err(err) = fs::remove_dir(&dir) {
                problems.push(format!("removing cgroup {}: {err}", dir.display()));
            }
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.filter_map(Result::ok) {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&entry.path(), out);
            }
        }
    }
}
