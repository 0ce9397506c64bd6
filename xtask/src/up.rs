//! `cargo xtask up`: a single-node cluster in the foreground.

use std::{
    path::Path,
    process::Command,
    sync::atomic::{AtomicI32, Ordering},
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result, bail};

use crate::{cargo, target_dir, workspace_root};

/// The child to forward SIGINT/SIGTERM to (0: none yet).
static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signal: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe and takes plain integers.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

pub fn run() -> Result<()> {
    run_build()?;
    let root = workspace_root();
    let state = root.join(".state/cluster");
    let store = state.join("store");
    let kubeconfig = state.join("kubeconfig");
    std::fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;

    let binary = target_dir().join("release/sluice-control-plane");
    let started = SystemTime::now();
    let mut child = Command::new(&binary)
        .arg("--data-dir")
        .arg(&store)
        .args(["--listen", "127.0.0.1:6443"])
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .current_dir(root)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    CHILD.store(
        i32::try_from(child.id()).context("child pid out of range")?,
        Ordering::SeqCst,
    );
    // Ctrl-C reaches the whole foreground process group; we stay alive to
    // wait for the control plane, and forward signals sent to us alone.
    let handler = forward as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `forward` only does async-signal-safe work (an atomic load
        // and kill), and has the signature signal(2) expects.
        unsafe {
            libc::signal(signal, handler);
        }
    }

    let watched = kubeconfig.clone();
    std::thread::spawn(move || announce_kubeconfig(&watched, started));

    let status = child.wait().context("waiting for the control plane")?;
    if !status.success() {
        bail!("sluice-control-plane exited: {status}");
    }
    Ok(())
}

fn run_build() -> Result<()> {
    println!("[up] building (release)");
    crate::run(cargo().args(["build", "--release", "-p", "sluice-control-plane"]))
}

/// Prints the `export KUBECONFIG=` line once the control plane has written a
/// fresh kubeconfig.
fn announce_kubeconfig(path: &Path, started: SystemTime) {
    for _ in 0..600 {
        let fresh = std::fs::metadata(path)
            .and_then(|meta| meta.modified())
            .is_ok_and(|modified| modified >= started);
        if fresh {
            let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
            println!("[up] cluster is up; in another shell:");
            println!("export KUBECONFIG={}", absolute.display());
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("[up] no kubeconfig at {} after 60 s", path.display());
}
