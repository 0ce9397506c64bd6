//! The control plane process of `up`: API server, scheduler and controllers
//! in one binary, on the host, serving HTTP on `--listen`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use super::{say, stopping};
use crate::{process, workspace_root};

/// A running control plane.
pub struct ControlPlane {
    child: Option<Child>,
    /// The kubeconfig it wrote (for kubectl and the node agents).
    pub kubeconfig: PathBuf,
    log: PathBuf,
}

impl ControlPlane {
    /// Starts `<bin_dir>/sluice-control-plane` over `<state>/store` and waits
    /// until it wrote `<state>/kubeconfig` (which it does once it listens).
    /// `extra` arguments go to the control plane as they are (`--lb-pool ...`).
    pub fn start(state: &Path, bin_dir: &Path, listen: &str, extra: &[String]) -> Result<Self> {
        let store = state.join("store");
        let kubeconfig = state.join("kubeconfig");
        fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
        // A kubeconfig left by an earlier run must not count (file times are too
        // coarse to tell them apart).
        match fs::remove_file(&kubeconfig) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(err).with_context(|| format!("removing {}", kubeconfig.display()));
            }
            _ => {}
        }
        let log = state.join("control-plane.log");
        let mut cmd = Command::new(bin_dir.join("sluice-control-plane"));
        cmd.arg("--data-dir")
            .arg(&store)
            .args(["--listen", listen])
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .args(extra)
            .current_dir(workspace_root());
        let mut plane = Self {
            child: Some(process::spawn(&mut cmd, &log)?),
            kubeconfig,
            log,
        };
        say(
            "control plane",
            &format!("started (log {})", plane.log.display()),
        );
        plane.wait_for_kubeconfig()?;
        say("control plane", "ready");
        Ok(plane)
    }

    /// Fails when the process has exited.
    pub fn check(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            self.child = None;
            bail!(
                "the control plane exited: {status}{}",
                process::log_tail(&self.log)
            );
        }
        Ok(())
    }

    fn wait_for_kubeconfig(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            self.check()?;
            if fs::metadata(&self.kubeconfig).is_ok_and(|meta| meta.len() > 0) {
                return Ok(());
            }
            if stopping() {
                bail!("interrupted");
            }
            if Instant::now() > deadline {
                bail!("no kubeconfig at {} after 60 s", self.kubeconfig.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            say("stopping", "control plane");
            process::terminate(&mut child, Duration::from_secs(10)).context("control plane")?;
        }
        Ok(())
    }
}
