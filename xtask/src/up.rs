//! `cargo xtask up`: a single-node cluster in the foreground.
//!
//! Order: setup, release build, containerd (with the local images
//! imported), control plane, node agent (when built), wait for the Node to
//! be Ready. Ctrl-C (SIGINT) or SIGTERM stops everything in reverse order:
//! node agent, control plane, then containerd, whose stop tears down pods
//! (CNI DEL, tasks, containers), shims, mounts and network namespaces.
//!
//! Children run in their own process groups, so a terminal's Ctrl-C reaches
//! only us and the stop stays ordered; they also get SIGTERM if we die.
//!
//! `cargo xtask containerd` runs only the containerd part, for working on
//! the node agent against a real CRI.

use std::{
    fs,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result, bail};

use crate::{
    cargo,
    containerd::{self, Containerd},
    images, target_dir, workspace_root,
};

/// Set by SIGINT/SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Options of `up` and `containerd`.
#[derive(clap::Args, Debug, Clone)]
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
    /// Where the API server listens (HTTP; keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: String,
}

impl Options {
    /// Where the workspace binaries are: target/release or target/debug.
    fn bin_dir(&self) -> PathBuf {
        target_dir().join(if self.dev { "debug" } else { "release" })
    }
}

fn say(what: &str, result: &str) {
    println!("[up] {what} ... {result}");
}

fn stopping() -> bool {
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
    let containerd = start_containerd(opts, &state)?;
    let mut cluster = Cluster {
        containerd: Some(containerd),
        control_plane: None,
        node_agent: None,
        agent_respawn: None,
    };
    let result = cluster.start_and_wait(&state, &opts.bin_dir(), &bpf_object, &opts.listen);
    let stopped = cluster.stop();
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
    let mut containerd = start_containerd(opts, &state)?;
    println!(
        "[up] containerd serves {}; ctr: ctr --address {} -n k8s.io ...; Ctrl-C stops it",
        containerd.socket().display(),
        containerd.socket().display()
    );
    while !stopping() {
        if !containerd.is_running() {
            let log = containerd.log_path();
            drop(containerd);
            bail!("containerd exited; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    say("stopping", "containerd");
    containerd.stop()?;
    say("stopped", "nothing left behind");
    Ok(())
}

fn state_dir(opts: &Options) -> Result<PathBuf> {
    let state = workspace_root().join(&opts.state_dir);
    fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
    Ok(fs::canonicalize(&state)?)
}

/// Starts containerd under `<state>/containerd` and imports the images.
fn start_containerd(opts: &Options, state: &Path) -> Result<Containerd> {
    let mut cfg = containerd::Config::new(state.join("containerd"));
    cfg.cni_dir = state.join("cni");
    cfg.cni_plugin = Some(opts.bin_dir().join("sluice-cni"));
    images::PAUSE.clone_into(&mut cfg.sandbox_image);
    cfg.die_with_parent = true;
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
        opts.force_images,
    )?;
    let imported = images::import(&containerd, &archives, opts.force_images)?;
    let all: Vec<&str> = archives
        .iter()
        .flat_map(|archive| archive.refs.iter().map(|(name, _)| name.as_str()))
        .collect();
    if imported.is_empty() {
        say("images", &format!("already imported ({})", all.join(", ")));
    } else {
        say("images", &format!("imported ({})", imported.join(", ")));
    }
    Ok(containerd)
}

struct Cluster {
    containerd: Option<Containerd>,
    control_plane: Option<Child>,
    node_agent: Option<Child>,
    /// How to start the node agent again: `up` supervises it like an init system would.
    agent_respawn: Option<Respawn>,
}

/// A command to run again after it exits.
struct Respawn {
    program: PathBuf,
    args: Vec<std::ffi::OsString>,
    envs: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    log: PathBuf,
    restarts: Vec<Instant>,
}

impl Respawn {
    fn of(cmd: &Command, log: &Path) -> Self {
        Self {
            program: PathBuf::from(cmd.get_program()),
            args: cmd.get_args().map(std::ffi::OsStr::to_os_string).collect(),
            envs: cmd
                .get_envs()
                .filter_map(|(k, v)| Some((k.to_os_string(), v?.to_os_string())))
                .collect(),
            log: log.to_path_buf(),
            restarts: Vec::new(),
        }
    }

    fn spawn(&mut self) -> Result<Child> {
        let now = Instant::now();
        self.restarts
            .retain(|t| now.duration_since(*t) < Duration::from_mins(1));
        if self.restarts.len() >= 5 {
            bail!(
                "the node agent exited 5 times within a minute{}",
                log_tail(&self.log)
            );
        }
        self.restarts.push(now);
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .current_dir(workspace_root());
        spawn(&mut cmd, &self.log)
    }
}

impl Cluster {
    fn start_and_wait(
        &mut self,
        state: &Path,
        bin_dir: &Path,
        bpf_object: &Path,
        listen: &str,
    ) -> Result<()> {
        let store = state.join("store");
        let kubeconfig = state.join("kubeconfig");
        fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;

        let binary = bin_dir.join("sluice-control-plane");
        let log = state.join("control-plane.log");
        // The control plane writes the kubeconfig once it listens: one left by an earlier
        // run must not count (file times are too coarse to tell them apart).
        match fs::remove_file(&kubeconfig) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(err).with_context(|| format!("removing {}", kubeconfig.display()));
            }
            _ => {}
        }
        let mut cmd = Command::new(&binary);
        cmd.arg("--data-dir")
            .arg(&store)
            .args(["--listen", listen])
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .current_dir(workspace_root());
        self.control_plane = Some(spawn(&mut cmd, &log)?);
        say("control plane", &format!("started (log {})", log.display()));
        self.wait_for_kubeconfig(&kubeconfig)?;
        say("control plane", "ready");

        let agent = bin_dir.join("sluice-node-agent");
        let node = hostname();
        let containerd = self.containerd.as_ref().context("containerd is gone")?;
        let log = state.join("node-agent.log");
        let mut cmd = Command::new(&agent);
        cmd.args(["--node-name", &node])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cri-socket")
            .arg(containerd.socket())
            .arg("--cni-conf-dir")
            .arg(containerd.cni_conf_dir())
            .arg("--cni-bin-dir")
            .arg(containerd.cni_bin_dir())
            .arg("--cni-data-dir")
            .arg(containerd.cni_data_dir())
            .arg("--state-dir")
            .arg(state.join("node"))
            .env("SLUICE_BPF_OBJ", bpf_object)
            .current_dir(workspace_root());
        self.agent_respawn = Some(Respawn::of(&cmd, &log));
        // Evidence of readiness must come from this agent: a heartbeat after this instant.
        let agent_started = SystemTime::now();
        self.node_agent = Some(spawn(&mut cmd, &log)?);
        say(
            "node agent",
            &format!("started as node {node} (log {})", log.display()),
        );
        self.wait_for_node_ready(&kubeconfig, &node, agent_started)?;
        let absolute = fs::canonicalize(&kubeconfig).unwrap_or(kubeconfig);
        println!("[up] cluster is up; in another shell:");
        println!("export KUBECONFIG={}", absolute.display());
        println!("[up] Ctrl-C stops everything");
        while !stopping() {
            self.check_children()?;
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// Fails when a child has exited.
    fn check_children(&mut self) -> Result<()> {
        if let Some(containerd) = self.containerd.as_mut()
            && !containerd.is_running()
        {
            bail!("containerd exited; see {}", containerd.log_path().display());
        }
        if let Some(agent) = self.node_agent.as_mut()
            && let Some(status) = agent.try_wait()?
            && !stopping()
        {
            let respawn = self.agent_respawn.as_mut().context("node agent exited")?;
            say("node agent", &format!("exited ({status}); restarting"));
            self.node_agent = Some(respawn.spawn()?);
        }
        for (name, child) in [
            ("control plane", &mut self.control_plane),
            ("node agent", &mut self.node_agent),
        ] {
            if let Some(process) = child
                && let Some(status) = process.try_wait()?
            {
                *child = None;
                bail!("the {name} exited: {status}");
            }
        }
        Ok(())
    }

    fn wait_for_kubeconfig(&mut self, path: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            self.check_children()?;
            if fs::metadata(path).is_ok_and(|meta| meta.len() > 0) {
                return Ok(());
            }
            if stopping() {
                bail!("interrupted");
            }
            if Instant::now() > deadline {
                bail!("no kubeconfig at {} after 60 s", path.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the Node's Ready condition is True with a heartbeat no older than
    /// `since` (the agent's start), so a Node left Ready in the store by an earlier run
    /// proves nothing. Fails after two minutes, showing the end of the agent's log.
    fn wait_for_node_ready(
        &mut self,
        kubeconfig: &Path,
        node: &str,
        since: SystemTime,
    ) -> Result<()> {
        let timeout = Duration::from_mins(2);
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            self.check_children()?;
            let json = crate::output(
                Command::new("kubectl")
                    .arg("--kubeconfig")
                    .arg(kubeconfig)
                    .args(["get", "node", node, "-o", "json"])
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
                let log = state_log(self.agent_respawn.as_ref());
                bail!(
                    "node {node} did not report Ready within {timeout:?} of the agent's start \
                     (last seen: {last}){log}"
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Stops everything in reverse order; reports every failure.
    fn stop(&mut self) -> Result<()> {
        let mut problems = Vec::new();
        for (name, child) in [
            ("node agent", self.node_agent.take()),
            ("control plane", self.control_plane.take()),
        ] {
            if let Some(mut child) = child {
                say("stopping", name);
                if let Err(err) = terminate(&mut child, Duration::from_secs(10)) {
                    problems.push(format!("{name}: {err:#}"));
                }
            }
        }
        if self.agent_respawn.take().is_some() {
            // The agent leaves its eBPF hooks pinned so a restart drops no traffic; a full
            // teardown removes them (unpinning the links detaches the programs).
            // ... and the unreachable routes it installed for the pod and Service ranges.
            let _ = Command::new("sh")
                .arg("-c")
                .arg("ip route show type unreachable | grep -E '^unreachable (10\\.244\\.|10\\.96\\.0\\.0/12)' | while read -r _ cidr _; do ip route del unreachable \"$cidr\"; done")
                .status();
            let pins = Path::new("/sys/fs/bpf/sluice").join(hostname());
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
        if problems.is_empty() {
            say("stopped", "nothing left behind");
            Ok(())
        } else {
            bail!("stopping the cluster: {}", problems.join("; "))
        }
    }
}

/// Spawns `cmd` with its output appended to `log`, in its own process
/// group, with SIGTERM on our death.
fn spawn(cmd: &mut Command, log: &Path) -> Result<Child> {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .process_group(0);
    // An error's chain, not a stack trace, is what the log (and its tail in our own
    // errors) must show; panics keep their backtraces (RUST_BACKTRACE).
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        cmd.env("RUST_LIB_BACKTRACE", "0");
    }
    // SAFETY: the closure runs between fork and exec and only calls prctl,
    // which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd.spawn()
        .with_context(|| format!("cannot start {}", cmd.get_program().to_string_lossy()))
}

/// SIGTERM, wait up to `timeout`, then SIGKILL.
fn terminate(child: &mut Child, timeout: Duration) -> Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) takes plain integers; the child is not yet reaped,
        // so its pid cannot have been reused.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill()?;
    child.wait()?;
    bail!("did not stop within {timeout:?} of SIGTERM; killed")
}

/// This machine's hostname, lowercased (a Node name).
fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(
        |_| "localhost".to_owned(),
        |name| name.trim().to_lowercase(),
    )
}

/// What a Node object says about a node agent started at some instant.
#[derive(Debug, PartialEq, Eq)]
enum Readiness {
    /// No Node object (or it cannot be read).
    Unregistered,
    /// A Ready condition that is not True, or that no heartbeat since the start backs.
    NotYet {
        /// The condition's status, or `None` without a Ready condition.
        status: Option<String>,
        /// Whether its heartbeat is from before the start (an earlier run's).
        stale: bool,
    },
    /// Ready: True with a heartbeat at or after the start.
    Ready,
}

impl Readiness {
    fn of_node(json: &str, since: SystemTime) -> Self {
        let Ok(node) = serde_json::from_str::<serde_json::Value>(json) else {
            return Self::Unregistered;
        };
        let ready = node["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready");
        let Some(ready) = ready else {
            return Self::NotYet {
                status: None,
                stale: false,
            };
        };
        let status = ready["status"].as_str().unwrap_or_default().to_owned();
        // Kubernetes times have second precision: compare whole seconds.
        let since = jiff::Timestamp::try_from(since).map_or(i64::MAX, jiff::Timestamp::as_second);
        let fresh = ready["lastHeartbeatTime"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .is_some_and(|t| t.as_second() >= since);
        if status == "True" && fresh {
            Self::Ready
        } else {
            Self::NotYet {
                status: Some(status),
                stale: !fresh,
            }
        }
    }
}

impl std::fmt::Display for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unregistered => f.write_str("not registered"),
            Self::NotYet { status: None, .. } => f.write_str("no Ready condition"),
            Self::NotYet {
                status: Some(status),
                stale: true,
            } => write!(f, "Ready: {status}, heartbeat older than this start"),
            Self::NotYet {
                status: Some(status),
                stale: false,
            } => write!(f, "Ready: {status}"),
            Self::Ready => f.write_str("Ready"),
        }
    }
}

/// The end of the agent's log, for an error message.
fn state_log(respawn: Option<&Respawn>) -> String {
    respawn.map(|r| log_tail(&r.log)).unwrap_or_default()
}

/// "; the last lines of <log>:" and those lines, for an error message.
fn log_tail(log: &Path) -> String {
    let tail = containerd::tail(log, 15).replace('\n', "\n    ");
    format!("; the last lines of {}:\n    {tail}", log.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(status: &str, heartbeat: &str) -> String {
        serde_json::json!({"status": {"conditions": [
            {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": heartbeat},
            {"type": "Ready", "status": status, "lastHeartbeatTime": heartbeat},
        ]}})
        .to_string()
    }

    fn at(rfc3339: &str) -> SystemTime {
        SystemTime::from(rfc3339.parse::<jiff::Timestamp>().unwrap())
    }

    #[test]
    fn ready_needs_a_heartbeat_from_this_run() {
        let start = at("2026-12-01T10:00:00.600Z");
        assert_eq!(
            Readiness::of_node(&node("True", "2026-12-01T10:00:03Z"), start),
            Readiness::Ready
        );
        // The same second as the start counts (times have second precision).
        assert_eq!(
            Readiness::of_node(&node("True", "2026-12-01T10:00:00Z"), start),
            Readiness::Ready
        );
        // An earlier run's Ready: True proves nothing.
        assert_eq!(
            Readiness::of_node(&node("True", "2026-12-01T09:59:59Z"), start),
            Readiness::NotYet {
                status: Some("True".into()),
                stale: true
            }
        );
        assert_eq!(
            Readiness::of_node(&node("False", "2026-12-01T10:00:05Z"), start),
            Readiness::NotYet {
                status: Some("False".into()),
                stale: false
            }
        );
    }

    #[test]
    fn missing_or_unreadable_nodes_are_not_ready() {
        let start = at("2026-12-01T10:00:00Z");
        assert_eq!(
            Readiness::of_node("not json", start),
            Readiness::Unregistered
        );
        assert_eq!(
            Readiness::of_node(r#"{"status": {}}"#, start),
            Readiness::NotYet {
                status: None,
                stale: false
            }
        );
        assert_eq!(
            Readiness::of_node(&node("True", "garbage"), start),
            Readiness::NotYet {
                status: Some("True".into()),
                stale: true
            }
        );
    }
}
