//! A private containerd for sluice: generated config, child process, clean stop.
//!
//! Everything this containerd writes lives under one directory (`Config::dir`):
//! `config.toml`, `containerd.log`, `root/`, `state/` and the gRPC socket, so
//! several of them (one per simulated node) can run on one kernel beside a
//! system containerd. Pod network namespaces are mounted under `state/` too
//! (`netns_mounts_under_state_dir`), never in `/var/run/netns`, so what is ours
//! is exactly what lies under our directory.
//!
//! [`Containerd::stop`] leaves nothing behind: it runs CNI DEL for every pod
//! sandbox (the node agent does not tear pods down when it stops, and only a
//! DEL releases the pod's IP and host-side veth), kills and deletes every
//! task and container in the `k8s.io` namespace, stops containerd (SIGTERM,
//! then SIGKILL), kills shims still serving our socket and unmounts whatever
//! is left under our directory (overlay rootfs, shm, network namespaces).
//!
//! Only std, libc and anyhow: this module is meant to move into the tests
//! crate's harness as is.

use std::{
    collections::hash_map::DefaultHasher,
    fmt::Write as _,
    fs,
    hash::{Hash, Hasher},
    io::Write as _,
    os::unix::{fs::symlink, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// The containerd namespace the CRI plugin uses.
pub const K8S_NAMESPACE: &str = "k8s.io";
/// The sandbox image built by `images.rs`.
pub const DEFAULT_SANDBOX_IMAGE: &str = "localhost/sluice/pause:1";
/// The CNI network name (the conflist's `name`): the node agent's `cni::NETWORK_NAME`,
/// repeated because xtask builds the node agent and so cannot depend on it.
pub const CNI_NETWORK: &str = "sluice";
/// The conflist file name in the CNI conf dir: the node agent's `cni::CONFLIST_FILE`.
pub const CNI_CONFLIST: &str = "10-sluice.conflist";
/// Where Debian's containernetworking-plugins live.
pub const SYSTEM_CNI_DIR: &str = "/usr/lib/cni";
/// libcni's result cache, which containerd 1.6 does not let us move.
const CNI_CACHE_DIR: &str = "/var/lib/cni/results";
/// `sun_path` holds 108 bytes with the NUL; containerd adds `.ttrpc`.
const MAX_SOCKET_LEN: usize = 100;

/// How to run a containerd.
#[derive(Clone, Debug)]
pub struct Config {
    /// Everything containerd writes lives here (created if missing).
    pub dir: PathBuf,
    /// CNI directories: `bin/`, `conf/` and `data/` (the plugin's `dataDir`).
    /// Default: `<dir>/cni`.
    pub cni_dir: PathBuf,
    /// The sluice CNI plugin binary, symlinked into the CNI bin dir as
    /// `sluice-cni` when it exists.
    pub cni_plugin: Option<PathBuf>,
    /// The CRI sandbox (pause) image.
    pub sandbox_image: String,
    /// The containerd binary.
    pub containerd: PathBuf,
    /// The ctr binary.
    pub ctr: PathBuf,
    /// How long to wait for containerd to serve its socket.
    pub start_timeout: Duration,
    /// How long containerd gets after SIGTERM before SIGKILL.
    pub stop_timeout: Duration,
    /// SIGTERM containerd when the thread that started it dies
    /// (`PR_SET_PDEATHSIG`): right for a CLI's main thread, wrong for a
    /// test thread that hands the handle to others.
    pub die_with_parent: bool,
}

impl Config {
    /// Defaults for a containerd under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Self {
            cni_dir: dir.join("cni"),
            dir,
            cni_plugin: None,
            sandbox_image: DEFAULT_SANDBOX_IMAGE.to_owned(),
            containerd: PathBuf::from("containerd"),
            ctr: PathBuf::from("ctr"),
            start_timeout: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(10),
            die_with_parent: false,
        }
    }
}

/// A running containerd; [`Containerd::stop`] (or drop) tears it down.
pub struct Containerd {
    cfg: Config,
    socket: PathBuf,
    child: Option<Child>,
    /// A containerd left running by a run that died, which we stop.
    adopted: Option<u32>,
}

impl Containerd {
    /// Writes the config, starts containerd as a child in its own process group (a terminal's
    /// Ctrl-C must not reach it before our ordered stop) and waits until it
    /// answers `ctr version` with a healthy CRI plugin.
    pub fn start(mut cfg: Config) -> Result<Self> {
        fs::create_dir_all(&cfg.dir).with_context(|| format!("creating {}", cfg.dir.display()))?;
        cfg.dir = fs::canonicalize(&cfg.dir)?;
        fs::create_dir_all(&cfg.cni_dir)
            .with_context(|| format!("creating {}", cfg.cni_dir.display()))?;
        cfg.cni_dir = fs::canonicalize(&cfg.cni_dir)?;
        let socket = socket_path(&cfg.dir);
        let mut containerd = Self {
            cfg,
            socket,
            child: None,
            adopted: None,
        };
        for dir in [
            containerd.root(),
            containerd.state(),
            containerd.cni_bin_dir(),
            containerd.cni_conf_dir(),
            containerd.cni_data_dir(),
        ] {
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        containerd.link_cni_plugins()?;
        if containerd.socket.exists() {
            if containerd.answers() {
                containerd.adopt_orphan()?;
            }
            let _ = fs::remove_file(&containerd.socket);
        }
        if let Some(parent) = containerd.socket.parent() {
            fs::create_dir_all(parent)?;
        }
        let config = containerd.cfg.dir.join("config.toml");
        fs::write(&config, containerd.config_toml())
            .with_context(|| format!("writing {}", config.display()))?;
        let log_path = containerd.log_path();
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        writeln!(log, "---- sluice: starting containerd ----")?;
        let mut cmd = Command::new(&containerd.cfg.containerd);
        cmd.arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        if containerd.cfg.die_with_parent {
            // SAFETY: runs between fork and exec; prctl is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", containerd.cfg.containerd.display()))?;
        let owner = format!("{} {}\n", child.id(), std::process::id());
        containerd.child = Some(child);
        fs::write(containerd.owner_file(), owner)?;
        containerd.wait_ready()?;
        Ok(containerd)
    }

    /// The gRPC socket (what `--cri-socket` / `ctr --address` take).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// containerd's log file.
    pub fn log_path(&self) -> PathBuf {
        self.cfg.dir.join("containerd.log")
    }

    /// The CNI plugin directory containerd searches.
    pub fn cni_bin_dir(&self) -> PathBuf {
        self.cfg.cni_dir.join("bin")
    }

    /// The CNI conf directory containerd watches.
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.cfg.cni_dir.join("conf")
    }

    /// The sluice plugin's `dataDir` (IPAM state).
    pub fn cni_data_dir(&self) -> PathBuf {
        self.cfg.cni_dir.join("data")
    }

    /// Whether containerd is still running (false once it exited by itself).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// `ctr` against this containerd, in the `k8s.io` namespace.
    pub fn ctr(&self) -> Command {
        let mut cmd = Command::new(&self.cfg.ctr);
        cmd.arg("--address")
            .arg(&self.socket)
            .args(["--namespace", K8S_NAMESPACE, "--timeout", "120s"])
            .stdin(Stdio::null());
        cmd
    }

    /// Tears everything down (see the module docs). Errors of single steps
    /// are reported on stderr and do not stop the later steps; the result
    /// says whether anything is left.
    pub fn stop(mut self) -> Result<()> {
        self.teardown()
    }

    /// `<containerd pid> <pid of the process that started it>`.
    fn owner_file(&self) -> PathBuf {
        self.cfg.dir.join("containerd.pid")
    }

    /// A containerd already answers on our socket: if the process that
    /// started it is gone, tear it down like `stop` would; otherwise fail.
    fn adopt_orphan(&mut self) -> Result<()> {
        let owner = fs::read_to_string(self.owner_file()).unwrap_or_default();
        let mut pids = owner.split_whitespace().map(|pid| pid.parse::<u32>().ok());
        let (Some(Some(pid)), Some(Some(starter))) = (pids.next(), pids.next()) else {
            bail!(
                "a containerd not started by sluice serves {}",
                self.socket.display()
            );
        };
        if process_alive(starter) {
            bail!(
                "a containerd (pid {pid}) started by pid {starter} already serves {}",
                self.socket.display()
            );
        }
        eprintln!(
            "[containerd] stopping containerd pid {pid} left behind by a run that died (pid {starter})"
        );
        let is_containerd = fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| cmdline.windows(10).any(|w| w == b"containerd"));
        self.adopted = is_containerd.then_some(pid);
        self.teardown()
    }

    fn root(&self) -> PathBuf {
        self.cfg.dir.join("root")
    }

    fn state(&self) -> PathBuf {
        self.cfg.dir.join("state")
    }

    fn link_cni_plugins(&self) -> Result<()> {
        let bin = self.cni_bin_dir();
        replace_symlink(
            &Path::new(SYSTEM_CNI_DIR).join("loopback"),
            &bin.join("loopback"),
        )?;
        if let Some(plugin) = &self.cfg.cni_plugin
            && plugin.exists()
        {
            let plugin = fs::canonicalize(plugin)?;
            replace_symlink(&plugin, &bin.join("sluice-cni"))?;
        }
        Ok(())
    }

    /// The generated `config.toml` (version 2).
    pub fn config_toml(&self) -> String {
        let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
        let mut toml = String::new();
        let _ = write!(
            toml,
            r#"# Generated by sluice's xtask (containerd.rs); rewritten on every start.
version = 2
root = {root}
state = {state}
oom_score = 0
# Snapshotters that cannot work here only add noise to the log.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = {socket}

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

# The default is /opt/containerd: keep even that under our directory.
[plugins."io.containerd.internal.v1.opt"]
  path = {opt}

[{cri}]
  sandbox_image = {sandbox}
  # No AppArmor or SELinux on the test machines.
  disable_apparmor = true
  enable_selinux = false
  enable_cdi = false
  # Pod netns under <state>/, not /var/run/netns: each containerd owns its own.
  netns_mounts_under_state_dir = true
  # Streaming server (exec, attach, port-forward) on a free loopback port.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # We run without CAP_SYS_RESOURCE here: runc cannot lower a process's
  # oom_score_adj (the sandbox asks for -998), so clamp to containerd's own.
  restrict_oom_score_adj = true
  # This kernel has cgroup v1 controllers without hugetlb.
  tolerate_missing_hugetlb_controller = true
  max_container_log_line_size = 16384

  [{cri}.cni]
    bin_dir = {cni_bin}
    conf_dir = {cni_conf}
    max_conf_num = 1

  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false

    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [{cri}.containerd.runtimes.runc.options]
        # cgroupfs driver: there is no systemd here.
        SystemdCgroup = false
"#,
            root = toml_path(&self.root()),
            state = toml_path(&self.state()),
            socket = toml_path(&self.socket),
            opt = toml_path(&self.cfg.dir.join("opt")),
            sandbox = toml_str(&self.cfg.sandbox_image),
            cni_bin = toml_path(&self.cni_bin_dir()),
            cni_conf = toml_path(&self.cni_conf_dir()),
        );
        toml
    }

    fn answers(&self) -> bool {
        let mut cmd = self.ctr();
        cmd.args(["--connect-timeout", "1s", "version"]);
        quiet(&mut cmd).is_some()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.cfg.start_timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!(
                    "containerd exited during start ({status}); its log ({}) ends with:\n{}",
                    self.log_path().display(),
                    tail(&self.log_path(), 20)
                );
            }
            if self.socket.exists() && self.answers() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "containerd did not answer on {} within {:?}; its log ends with:\n{}",
                    self.socket.display(),
                    self.cfg.start_timeout,
                    tail(&self.log_path(), 20)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The CRI plugin loads asynchronously from the socket; a config it
        // rejects shows as an `error` status.
        let mut cmd = self.ctr();
        cmd.args(["plugins", "ls"]);
        let plugins = quiet(&mut cmd).context("ctr plugins ls failed")?;
        let cri = plugins
            .lines()
            .find(|line| {
                let mut fields = line.split_whitespace();
                fields.next() == Some("io.containerd.grpc.v1") && fields.next() == Some("cri")
            })
            .context("containerd has no CRI plugin")?;
        if !cri.split_whitespace().any(|field| field == "ok") {
            bail!(
                "containerd's CRI plugin did not load: {cri}\nlog:\n{}",
                tail(&self.log_path(), 20)
            );
        }
        Ok(())
    }

    fn teardown(&mut self) -> Result<()> {
        let mut problems = Vec::new();
        let running = self.is_running() || self.adopted.is_some();
        if running {
            if let Err(err) = self.delete_pod_networks() {
                problems.push(format!("CNI DEL: {err:#}"));
            }
            if let Err(err) = self.delete_workloads() {
                problems.push(format!("deleting tasks and containers: {err:#}"));
            }
        }
        if let Some(mut child) = self.child.take()
            && let Err(err) = terminate(&mut child, self.cfg.stop_timeout)
        {
            problems.push(format!("stopping containerd: {err:#}"));
        }
        if let Some(pid) = self.adopted.take()
            && let Err(err) = terminate_pid(pid, self.cfg.stop_timeout)
        {
            problems.push(format!("stopping containerd: {err:#}"));
        }
        let shims = kill_shims(&self.socket);
        if shims > 0 {
            problems.push(format!("killed {shims} leftover shim(s)"));
        }
        // What shims and the CRI plugin leave mounted: overlay rootfs, sandbox
        // shm, and the pod network namespaces (their veths go with them).
        let left = unmount_under(&self.cfg.dir);
        if !left.is_empty() {
            problems.push(format!("still mounted: {}", left.join(", ")));
        }
        remove_netns_files(&self.state());
        let _ = fs::remove_file(&self.socket);
        let _ = fs::remove_file(self.socket.with_extension("sock.ttrpc"));
        let _ = fs::remove_file(self.owner_file());
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("containerd teardown: {}", problems.join("; "))
        }
    }

    /// Runs CNI DEL, like containerd's `StopPodSandbox`, for every pod sandbox.
    fn delete_pod_networks(&self) -> Result<()> {
        let mut list = self.ctr();
        list.args([
            "containers",
            "ls",
            "-q",
            "labels.\"io.cri-containerd.kind\"==sandbox",
        ]);
        let sandboxes = quiet(&mut list).context("ctr containers ls failed")?;
        let conflist_path = self.cni_conf_dir().join(CNI_CONFLIST);
        let Ok(conflist) = fs::read_to_string(&conflist_path) else {
            return Ok(());
        };
        let plugins = conflist_plugins(&conflist)
            .with_context(|| format!("cannot read the plugins of {}", conflist_path.display()))?;
        let mut failures = Vec::new();
        for id in sandboxes.lines().map(str::trim).filter(|id| !id.is_empty()) {
            let mut info = self.ctr();
            info.args(["containers", "info", "--spec", id]);
            let netns = quiet(&mut info)
                .and_then(|spec| network_namespace_path(&spec))
                .unwrap_or_default();
            for plugin in plugins.iter().rev() {
                if let Err(err) = self.cni_del(id, &netns, plugin) {
                    failures.push(format!("{id}: {err:#}"));
                }
            }
            // libcni's result cache (containerd's go-cni keeps the default
            // dir): our network's, and that of the loopback network go-cni
            // adds by itself.
            for cached in [
                format!("{CNI_NETWORK}-{id}-eth0"),
                format!("cni-loopback-{id}-lo"),
            ] {
                let _ = fs::remove_file(Path::new(CNI_CACHE_DIR).join(cached));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            bail!("{}", failures.join("; "))
        }
    }

    fn cni_del(&self, id: &str, netns: &str, plugin: &serde_json::Value) -> Result<()> {
        let kind = plugin["type"].as_str().context("plugin without a type")?;
        let binary = self.cni_bin_dir().join(kind);
        if !binary.exists() {
            return Ok(());
        }
        // The runtime config libcni hands each plugin: the list's name and
        // version injected into the plugin's own object.
        let mut config = plugin.clone();
        config["cniVersion"] = "1.0.0".into();
        config["name"] = CNI_NETWORK.into();
        let stdin = config.to_string();
        let mut child = Command::new(&binary)
            .env("CNI_COMMAND", "DEL")
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", self.cni_bin_dir())
            .env("CNI_ARGS", "IgnoreUnknown=1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        child
            .stdin
            .take()
            .context("no stdin")?
            .write_all(stdin.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "{kind} DEL failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Kills and deletes every task and container in `k8s.io` (images stay).
    fn delete_workloads(&self) -> Result<()> {
        let mut list = self.ctr();
        list.args(["tasks", "ls", "-q"]);
        let tasks = quiet(&mut list).context("ctr tasks ls failed")?;
        let tasks: Vec<&str> = tasks
            .lines()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        for task in &tasks {
            let mut kill = self.ctr();
            kill.args(["tasks", "kill", "--all", "--signal", "SIGKILL", task]);
            let _ = quiet(&mut kill);
        }
        for task in &tasks {
            let mut delete = self.ctr();
            delete.args(["tasks", "delete", "--force", task]);
            let _ = quiet(&mut delete);
        }
        let mut list = self.ctr();
        list.args(["containers", "ls", "-q"]);
        let containers = quiet(&mut list).context("ctr containers ls failed")?;
        let mut failed = Vec::new();
        for container in containers.lines().map(str::trim).filter(|c| !c.is_empty()) {
            let mut delete = self.ctr();
            delete.args(["containers", "delete", container]);
            if quiet(&mut delete).is_none() {
                failed.push(container.to_owned());
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            bail!("could not delete containers {}", failed.join(", "))
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.child.is_some()
            && let Err(err) = self.teardown()
        {
            eprintln!("[containerd] {err:#}");
        }
    }
}

/// `<dir>/containerd.sock`, or `/run/sluice/<hash>/containerd.sock` when that
/// is too long for a unix socket address.
fn socket_path(dir: &Path) -> PathBuf {
    let local = dir.join("containerd.sock");
    if local.as_os_str().len() <= MAX_SOCKET_LEN {
        return local;
    }
    let mut hasher = DefaultHasher::new();
    dir.hash(&mut hasher);
    Path::new("/run/sluice")
        .join(format!("{:016x}", hasher.finish()))
        .join("containerd.sock")
}

fn replace_symlink(target: &Path, link: &Path) -> Result<()> {
    if fs::read_link(link).is_ok_and(|current| current == target) {
        return Ok(());
    }
    let _ = fs::remove_file(link);
    symlink(target, link)
        .with_context(|| format!("linking {} -> {}", link.display(), target.display()))
}

/// SIGTERM, wait up to `timeout`, then SIGKILL.
fn terminate(child: &mut Child, timeout: Duration) -> Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    signal(child.id(), libc::SIGTERM);
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

/// Like [`terminate`] for a process that is not our child.
fn terminate_pid(pid: u32, timeout: Duration) -> Result<()> {
    signal(pid, libc::SIGTERM);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !process_alive(pid) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(pid, libc::SIGKILL);
    bail!("pid {pid} did not stop within {timeout:?} of SIGTERM; killed")
}

/// Whether `pid` exists and is not a zombie.
fn process_alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name.
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
    })
}

fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) takes plain integers; a stale pid only yields ESRCH.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// SIGKILLs `containerd-shim*` processes started with `-address <socket>`;
/// returns how many.
fn kill_shims(socket: &Path) -> usize {
    let Ok(procs) = fs::read_dir("/proc") else {
        return 0;
    };
    let socket = socket.as_os_str().as_encoded_bytes();
    let mut killed = 0;
    for entry in procs.filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_shim = args.first().is_some_and(|argv0| {
            argv0
                .rsplit(|b| *b == b'/')
                .next()
                .is_some_and(|name| name.starts_with(b"containerd-shim"))
        });
        let ours = args
            .windows(2)
            .any(|pair| pair[0] == b"-address" && pair[1] == socket);
        if is_shim && ours {
            signal(pid, libc::SIGKILL);
            killed += 1;
        }
    }
    killed
}

/// Mount points under `dir` (from /proc/self/mountinfo), deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| PathBuf::from(unescape_mountinfo(point)))
        .filter(|point| point.starts_with(dir) && point != dir)
        .collect();
    mounts.sort_by_key(|point| std::cmp::Reverse(point.as_os_str().len()));
    mounts.dedup();
    mounts
}

/// Lazily unmounts everything under `dir`; returns what is still mounted.
fn unmount_under(dir: &Path) -> Vec<String> {
    for _ in 0..3 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return Vec::new();
        }
        for point in mounts {
            let Ok(path) = std::ffi::CString::new(point.as_os_str().as_encoded_bytes()) else {
                continue;
            };
            // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
            unsafe {
                libc::umount2(path.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
    mounts_under(dir)
        .into_iter()
        .map(|point| point.display().to_string())
        .collect()
}

/// Removes the (now unmounted) netns files the CRI plugin keeps under `state`.
fn remove_netns_files(state: &Path) {
    let dir = state.join("io.containerd.grpc.v1.cri").join("netns");
    if let Ok(entries) = fs::read_dir(&dir) {
        for entry in entries.filter_map(Result::ok) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        if let Some(digits) = octal {
            let code = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(code).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `path` of the `network` namespace in an OCI spec (pretty JSON).
fn network_namespace_path(spec: &str) -> Option<String> {
    let spec: serde_json::Value = serde_json::from_str(spec).ok()?;
    spec["linux"]["namespaces"]
        .as_array()?
        .iter()
        .find(|ns| ns["type"] == "network")?["path"]
        .as_str()
        .map(str::to_owned)
}

/// The objects of a conflist's `plugins` array.
fn conflist_plugins(conflist: &str) -> Option<Vec<serde_json::Value>> {
    let conflist: serde_json::Value = serde_json::from_str(conflist).ok()?;
    conflist["plugins"].as_array().cloned()
}

/// A TOML basic string: JSON's string escapes are TOML's.
fn toml_str(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

fn toml_path(path: &Path) -> String {
    toml_str(&path.to_string_lossy())
}

/// Runs a command quietly; its stdout when it succeeds.
fn quiet(cmd: &mut Command) -> Option<String> {
    let out = cmd.stdin(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_plugins_of_a_conflist() {
        // What the node agent writes (`cni::Network::conflist`, pretty-printed).
        let text = r#"{
  "cniVersion": "1.0.0",
  "name": "sluice",
  "plugins": [
    {
      "type": "sluice-cni",
      "podCIDR": "10.244.0.0/24",
      "dataDir": "/x/cni/data"
    },
    {
      "type": "loopback"
    }
  ]
}"#;
        let plugins = conflist_plugins(text).expect("plugins");
        assert_eq!(plugins.len(), 2);
        assert_eq!(plugins[0]["type"], "sluice-cni");
        assert_eq!(plugins[0]["podCIDR"], "10.244.0.0/24");
        assert_eq!(plugins[1]["type"], "loopback");
        assert_eq!(toml_str("a\"b\\c"), r#""a\"b\\c""#);
    }

    #[test]
    fn finds_the_network_namespace_in_a_spec() {
        let spec = r#"{"linux": {"namespaces": [
            {
                "type": "pid"
            },
            {
                "type": "network",
                "path": "/s/netns/cni-1"
            }
        ]}}"#;
        assert_eq!(
            network_namespace_path(spec).as_deref(),
            Some("/s/netns/cni-1")
        );
        let without = r#"{"linux": {"namespaces": [{"type": "network"}]}}"#;
        assert_eq!(network_namespace_path(without), None);
    }

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn long_directories_get_a_short_socket() {
        let long = PathBuf::from(format!("/{}", "d".repeat(120)));
        let socket = socket_path(&long);
        assert!(socket.starts_with("/run/sluice"));
        assert!(socket.as_os_str().len() <= MAX_SOCKET_LEN);
        assert_eq!(
            socket_path(Path::new("/s")),
            Path::new("/s/containerd.sock")
        );
    }
}
