//! The stop: CNI DEL for every pod sandbox, tasks and containers deleted,
//! containerd stopped, leftover shims killed, mounts under our directory
//! undone.

use std::{
    fs,
    io::Write as _,
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

use super::{CNI_CACHE_DIR, CNI_CONFLIST, CNI_NETWORK, Containerd, mounts};
use crate::process::{self, quiet};

impl Containerd {
    pub(super) fn teardown(&mut self) -> Result<()> {
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
            && let Err(err) = process::terminate(&mut child, self.cfg.stop_timeout)
        {
            problems.push(format!("stopping containerd: {err:#}"));
        }
        if let Some(pid) = self.adopted.take()
            && let Err(err) = process::terminate_pid(pid, self.cfg.stop_timeout)
        {
            problems.push(format!("stopping containerd: {err:#}"));
        }
        let shims = kill_shims(&self.socket);
        if shims > 0 {
            problems.push(format!("killed {shims} leftover shim(s)"));
        }
        // What shims and the CRI plugin leave mounted: overlay rootfs, sandbox
        // shm, and the pod network namespaces (their veths go with them).
        let left = mounts::unmount_under(&self.cfg.dir);
        if !left.is_empty() {
            problems.push(format!("still mounted: {}", left.join(", ")));
        }
        mounts::remove_netns_files(&self.state());
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
        let mut cmd = Command::new(&binary);
        if let Some(ns) = &self.cfg.netns {
            process::in_netns(&mut cmd, ns)?;
        }
        let mut child = cmd
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
            process::signal(pid, libc::SIGKILL);
            killed += 1;
        }
    }
    killed
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
}
