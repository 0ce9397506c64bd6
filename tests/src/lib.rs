//! Shared harness for sluice's end-to-end tests: start the real binaries, drive real
//! kubectl and kube-rs against them, act as a minimal fake kubelet, and wait for state.

pub mod cluster;
pub mod controlplane;
pub mod fake_kubelet;
pub mod http;
pub mod iptables_rules;

use std::future::Future;
use std::time::{Duration, Instant};

/// Poll `check` until it returns `Some`, or panic after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The directory holding the workspace's built binaries (`target/debug` next to the test
/// executable), or `SLUICE_BIN_DIR`.
#[must_use]
pub fn bin_dir() -> std::path::PathBuf {
    if let Ok(d) = std::env::var("SLUICE_BIN_DIR") {
        return d.into();
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> or target/<profile>/<bin> -> target/<profile>
    let dir = exe.parent().expect("executable dir");
    if dir.ends_with("deps") {
        dir.parent().expect("target dir").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The kubectl the tests run: `SLUICE_KUBECTL`, else `kubectl` on `PATH`.
#[must_use]
pub fn kubectl_program() -> String {
    std::env::var("SLUICE_KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

/// `test` drives [`kubectl_program`]: fails under CI when it is missing,
/// else reports the test as skipped (the test must then return).
#[must_use]
pub fn require_kubectl(test: &str) -> bool {
    let kubectl = kubectl_program();
    sluice_test_util::require(
        test,
        sluice_test_util::has_tool(&kubectl),
        &format!("kubectl (`{kubectl}`, set SLUICE_KUBECTL to another one)"),
    )
}

/// Path of a workspace binary; panics with the command to build it if missing.
#[must_use]
pub fn bin(name: &str) -> std::path::PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build it first (`cargo build -p <crate>`, or run the suite with `cargo xtask test`)",
        p.display()
    );
    p
}

/// For a benchmark that builds host state (netns, veths, servers): on SIGINT or SIGTERM run
/// `cleanup`, then exit 130. Nothing else would run its drops; `xtask up`, in the same process
/// group, stops the cluster on the same Ctrl-C.
pub fn cleanup_on_signal(cleanup: fn()) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("signal runtime: {e}"))?;
    std::thread::spawn(move || {
        runtime.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("[bench] interrupted: cleaning up");
            cleanup();
            std::process::exit(130);
        });
    });
    Ok(())
}
