//! `cargo xtask up`: a single-node cluster in the foreground.
//!
//! Order: setup, release build, containerd (with the local images
//! imported), control plane, node agent (when built), wait for the Node to
//! be Ready. Ctrl-C (SIGINT) or SIGTERM stops everything in reverse order:
//! node agent, control plane, then containerd, whose stop tears down pods
//! (CNI DEL, tasks, containers), shims, mounts and network namespaces.
//!
//! Children run in their own process groups (`process.rs`), so a terminal's
//! Ctrl-C reaches only us and the stop stays ordered; they also get SIGTERM
//! if we die. `control_plane.rs` runs the control plane, `node.rs` one node
//! (containerd and node agent), `readiness.rs` reads a Node's readiness.
//!
//! `cargo xtask containerd` runs only the containerd part, for working on
//! the node agent against a real CRI.

mod control_plane;
mod network;
mod node;
mod readiness;

use std::{
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::{cargo, target_dir, workspace_root};
use control_plane::ControlPlane;
use network::{NodeNet, TestNetwork};
use node::{Node, NodeSpec};

/// Set by SIGINT/SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Options of `up` and `containerd`.
#[derive(clap::Args, Debug, Clone)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent command-line switches, as clap parses them"
)]
pub struct Options {
    /// Where the cluster keeps its state (relative paths: to the workspace root).
    #[arg(long, default_value = ".state/cluster")]
    pub state_dir: PathBuf,
    /// Rebuild and re-import the local images.
    #[arg(long)]
    pub force_images: bool,
    /// Skip `setup` and the build (use the binaries already built).
    #[arg(long)]
    pub skip_build: bool,
    /// Build and run the dev profile (target/debug) instead of release.
    #[arg(long)]
    pub dev: bool,
    /// Where the API server listens (HTTP; keep it on loopback). Default: 127.0.0.1:6443,
    /// or the host's address on the test network with `--nodes` above 1.
    #[arg(long)]
    pub listen: Option<String>,
    /// How many nodes. One runs on the host's own network; more each get a network
    /// namespace on the host bridge `sluice0` (172.30.0.0/24, the host at .1, node i at
    /// .10+i), named `node-<i>`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub nodes: u16,
    /// How pods reach other nodes: `none` (native routing) or `vxlan` (an overlay).
    #[arg(long, default_value = "none", value_parser = ["none", "vxlan"])]
    pub tunnel: String,
    /// Addresses for `LoadBalancer` Services. Default with `--nodes` above 1: 172.30.0.240/28
    /// on the test network; with one node, none (such Services stay pending).
    #[arg(long)]
    pub lb_pool: Option<String>,
    /// With `--nodes` above 1: also attach the north-south XDP fast path to each node's
    /// `eth0` (tc handles what it passes; without this flag tc alone).
    #[arg(long)]
    pub xdp: bool,
}

impl Options {
    /// Where the workspace binaries are: target/release or target/debug.
    fn bin_dir(&self) -> PathBuf {
        target_dir().join(if self.dev { "debug" } else { "release" })
    }
}

pub(crate) fn say(what: &str, result: &str) {
    println!("[up] {what} ... {result}");
}

pub(crate) fn stopping() -> bool {
    STOP.load(Ordering::SeqCst)
}

fn install_signal_handlers() {
    let handler = request_stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `request_stop` only stores to an atomic (async-signal-safe)
        // and has the signature signal(2) expects.
        unsafe {
            libc::signal(signal, handler);
        }
    }
}

/// `cargo xtask up`.
pub fn run(opts: &Options) -> Result<()> {
    install_signal_handlers();
    let state = state_dir(opts)?;
    let bpf_object = if opts.skip_build {
        crate::ebpf::object_dir().join(crate::ebpf::SOCK_OBJECT)
    } else {
        crate::setup::all()?;
        // Everything the cluster runs, built when missing or stale (cargo decides).
        say("building", "the eBPF programs");
        let object = crate::ebpf::build_sock()?;
        say(
            "building",
            if opts.dev {
                "workspace binaries (dev)"
            } else {
                "workspace binaries (release; a first build takes about 15 minutes)"
            },
        );
        let mut build = cargo();
        build.args(["build", "--workspace", "--exclude", "sluice-ebpf", "--bins"]);
        if !opts.dev {
            build.arg("--release");
        }
        crate::run(&mut build)?;
        object
    };
    let needed = [
        opts.bin_dir().join("sluice-control-plane"),
        opts.bin_dir().join("sluice-node-agent"),
        opts.bin_dir().join("sluice-cni"),
        bpf_object.clone(),
    ];
    if let Some(missing) = needed.iter().find(|path| !path.exists()) {
        bail!(
            "{} is missing{}",
            missing.display(),
            if opts.skip_build {
                " (--skip-build uses what is already built: run without it)"
            } else {
                ""
            }
        );
    }
    if stopping() {
        return Ok(());
    }
    let specs = node_specs(opts, &state, &bpf_object);
    let network = if opts.nodes > 1 {
        let nets: Vec<NodeNet> = specs.iter().filter_map(|s| s.net.clone()).collect();
        let network = TestNetwork::create(&nets, opts.xdp)?;
        say(
            "network",
            &format!(
                "bridge {} ({}/{}), {} node namespaces",
                network::BRIDGE,
                network::HOST_ADDRESS,
                network::PREFIX,
                nets.len()
            ),
        );
        Some(network)
    } else {
        None
    };
    let mut cluster = Cluster {
        nodes: Vec::new(),
        control_plane: None,
    };
    let mut result = Ok(());
    for spec in specs {
        match Node::start_containerd(spec) {
            Ok(node) => cluster.nodes.push(node),
            Err(err) => {
                result = Err(err);
                break;
            }
        }
    }
    let listen = opts.listen.clone().unwrap_or_else(|| {
        if opts.nodes > 1 {
            format!("{}:6443", network::HOST_ADDRESS)
        } else {
            "127.0.0.1:6443".to_owned()
        }
    });
    if result.is_ok() {
        let pool = opts
            .lb_pool
            .clone()
            .or_else(|| (opts.nodes > 1).then(|| network::LB_POOL.to_owned()));
        let extra: Vec<String> = pool
            .map(|p| vec!["--lb-pool".to_owned(), p])
            .unwrap_or_default();
        result = cluster.start_and_wait(&state, &opts.bin_dir(), &listen, &extra);
    }
    let mut stopped = cluster.stop();
    if let Some(network) = network {
        say("removing", "the test network");
        stopped = stopped.and(network.remove());
    }
    // Ctrl-C during start is a stop, not a failure.
    if stopping() {
        return stopped;
    }
    result.and(stopped)
}

/// `cargo xtask containerd`: containerd with the images, until Ctrl-C.
pub fn containerd_only(opts: &Options) -> Result<()> {
    install_signal_handlers();
    let state = state_dir(opts)?;
    let mut node = Node::start_containerd(NodeSpec {
        name: hostname(),
        state,
        bin_dir: opts.bin_dir(),
        bpf_object: PathBuf::new(),
        force_images: opts.force_images,
        tunnel: opts.tunnel.clone(),
        xdp: false,
        net: None,
    })?;
    let containerd = node.containerd().context("containerd is gone")?;
    println!(
        "[up] containerd serves {}; ctr: ctr --address {} -n k8s.io ...; Ctrl-C stops it",
        containerd.socket().display(),
        containerd.socket().display()
    );
    let mut problems = Vec::new();
    let result = loop {
        if stopping() {
            break Ok(());
        }
        if let Err(err) = node.check() {
            break Err(err);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    node.stop_rest(&mut problems);
    result?;
    if problems.is_empty() {
        say("stopped", "nothing left behind");
        Ok(())
    } else {
        bail!("stopping containerd: {}", problems.join("; "))
    }
}

/// The nodes of this run: the host itself for one node (state in `<state>/`), else
/// `node-1..N`, each in its own namespace with its state in `<state>/nodes/<name>/`.
fn node_specs(opts: &Options, state: &Path, bpf_object: &Path) -> Vec<NodeSpec> {
    let spec = |name: String, state: PathBuf, net: Option<NodeNet>| NodeSpec {
        name,
        state,
        bin_dir: opts.bin_dir(),
        bpf_object: bpf_object.to_path_buf(),
        force_images: opts.force_images,
        tunnel: opts.tunnel.clone(),
        xdp: opts.xdp,
        net,
    };
    if opts.nodes == 1 {
        return vec![spec(hostname(), state.to_path_buf(), None)];
    }
    (1..=usize::from(opts.nodes))
        .map(|i| {
            let name = format!("node-{i}");
            let net = NodeNet::of(i, &name);
            spec(name.clone(), state.join("nodes").join(&name), Some(net))
        })
        .collect()
}

fn state_dir(opts: &Options) -> Result<PathBuf> {
    let state = workspace_root().join(&opts.state_dir);
    fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
    Ok(fs::canonicalize(&state)?)
}

/// The control plane and the nodes, started and stopped in order.
struct Cluster {
    nodes: Vec<Node>,
    control_plane: Option<ControlPlane>,
}

impl Cluster {
    fn start_and_wait(
        &mut self,
        state: &Path,
        bin_dir: &Path,
        listen: &str,
        extra: &[String],
    ) -> Result<()> {
        let plane = self
            .control_plane
            .insert(ControlPlane::start(state, bin_dir, listen, extra)?);
        let kubeconfig = plane.kubeconfig.clone();
        for node in &mut self.nodes {
            node.start_agent(&kubeconfig)?;
        }
        let absolute = fs::canonicalize(&kubeconfig).unwrap_or(kubeconfig);
        println!("[up] cluster is up; in another shell:");
        println!("export KUBECONFIG={}", absolute.display());
        println!("[up] Ctrl-C stops everything");
        while !stopping() {
            self.check()?;
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// Fails when a process has exited (a node agent is restarted instead).
    fn check(&mut self) -> Result<()> {
        for node in &mut self.nodes {
            node.check()?;
        }
        if let Some(plane) = self.control_plane.as_mut() {
            plane.check()?;
        }
        Ok(())
    }

    /// Stops everything in reverse order: node agents, control plane, then
    /// each node's host state and containerd; reports every failure.
    fn stop(&mut self) -> Result<()> {
        let mut problems = Vec::new();
        for node in &mut self.nodes {
            if let Err(err) = node.stop_agent() {
                problems.push(format!("{err:#}"));
            }
        }
        if let Some(mut plane) = self.control_plane.take()
            && let Err(err) = plane.stop()
        {
            problems.push(format!("{err:#}"));
        }
        for node in &mut self.nodes {
            node.stop_rest(&mut problems);
        }
        if problems.is_empty() {
            say("stopped", "nothing left behind");
            Ok(())
        } else {
            bail!("stopping the cluster: {}", problems.join("; "))
        }
    }
}

/// This machine's hostname, lowercased (a Node name).
fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(
        |_| "localhost".to_owned(),
        |name| name.trim().to_lowercase(),
    )
}
