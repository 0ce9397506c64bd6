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
//! Files: `config.rs` renders `config.toml`, `teardown.rs` is the stop
//! (pods, tasks, shims), `mounts.rs` reads and undoes mounts; this file
//! starts, adopts and supervises the process.

use std::{
    fs,
    io::Write as _,
    os::unix::{fs::symlink, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::process::{self, quiet, tail};

mod config;
mod mounts;
mod teardown;

pub use config::Config;

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
        let socket = config::socket_path(&cfg.dir);
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
            process::die_with_parent(&mut cmd);
        }
        if let Some(netns) = &containerd.cfg.netns {
            process::in_netns(&mut cmd, netns)?;
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
        if process::alive(starter) {
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

fn replace_symlink(target: &Path, link: &Path) -> Result<()> {
    if fs::read_link(link).is_ok_and(|current| current == target) {
        return Ok(());
    }
    let _ = fs::remove_file(link);
    symlink(target, link)
        .with_context(|| format!("linking {} -> {}", link.display(), target.display()))
}
