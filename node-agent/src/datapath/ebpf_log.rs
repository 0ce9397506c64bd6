//! The eBPF programs' log records (aya-log) in the agent's log.
//!
//! The programs write records with `aya-log-ebpf` into the object's
//! `AYA_LOGS` ring buffer (one per loaded object, not pinned). Loading the
//! object sets up an [`aya_log::EbpfLogger`] on that ring buffer, which
//! hands every record to the `log` facade ([`log::logger`]) with target
//! [`BPF_LOG_TARGET`]. In the node agent, tracing-subscriber's `tracing-log`
//! bridge turns those into tracing events, so they show up in the agent's
//! log and obey its filter (`RUST_LOG=sluice_ebpf=debug`).
//!
//! Polling: when [`Datapath::load`](super::Datapath::load) runs inside a
//! tokio runtime (the agent), a task waits for the ring buffer's fd to be
//! readable and drains it; dropping the `Datapath` stops the task. Without
//! a runtime the logger is kept and drained by
//! [`Datapath::flush_logs`](super::Datapath::flush_logs).
//!
//! Level: records are cheap but not free, so the programs' `AYA_LOG_LEVEL`
//! global is set at load time from [`log::max_level`] (tracing-subscriber
//! sets it from its filter when it is installed): a level nobody would see
//! is dead code the verifier prunes. Raising the filter later takes effect
//! at the next load.

use aya::Ebpf;
use aya_log::EbpfLogger;
use log::{LevelFilter, Log};
use tokio::{
    io::{Interest, unix::AsyncFd},
    task::JoinHandle,
};

/// The `log` target of every record the eBPF programs write
/// (`sluice_ebpf::LOG_TARGET` on the BPF side).
pub const BPF_LOG_TARGET: &str = "sluice_ebpf";

/// Name of the global in the object that gates levels (`aya_log::LEVEL`).
pub(super) const LEVEL_GLOBAL: &str = aya_log::LEVEL;

/// The value for the programs' `AYA_LOG_LEVEL` global: the most verbose
/// level the `log` facade lets through now (0: none).
pub(super) fn bpf_log_level() -> u8 {
    let level = match log::max_level() {
        LevelFilter::Off => return 0,
        LevelFilter::Error => aya_log::Level::Error,
        LevelFilter::Warn => aya_log::Level::Warn,
        LevelFilter::Info => aya_log::Level::Info,
        LevelFilter::Debug => aya_log::Level::Debug,
        LevelFilter::Trace => aya_log::Level::Trace,
    };
    level as u8
}

type Logger = EbpfLogger<&'static dyn Log>;

/// Where the object's log records are read.
pub(super) enum EbpfLogs {
    /// No logger (the object has no `AYA_LOGS` map, or setup failed).
    Off,
    /// No runtime at load: drained by `Datapath::flush_logs`.
    Local(Box<Logger>),
    /// Drained by a tokio task, aborted on drop.
    Task(JoinHandle<()>),
}

impl Drop for EbpfLogs {
    fn drop(&mut self) {
        if let Self::Task(task) = self {
            task.abort();
        }
    }
}

impl std::fmt::Debug for EbpfLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Off => "Off",
            Self::Local(_) => "Local",
            Self::Task(_) => "Task",
        })
    }
}

impl EbpfLogs {
    /// Takes the object's log ring buffer and starts reading it: in a tokio
    /// task when a runtime is current, else kept for [`EbpfLogs::flush`].
    /// Failure is not fatal: the datapath works without its log.
    pub(super) fn start(ebpf: &mut Ebpf) -> Self {
        let logger = match EbpfLogger::init(ebpf) {
            Ok(logger) => logger,
            Err(error) => {
                tracing::warn!(%error, "eBPF log records will not reach the agent's log");
                return Self::Off;
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => Self::Task(runtime.spawn(pump(logger))),
            Err(_) => Self::Local(Box::new(logger)),
        }
    }

    /// Drains pending records into the `log` facade (only when no task does).
    pub(super) fn flush(&mut self) {
        if let Self::Local(logger) = self {
            logger.flush();
        }
    }
}

/// Waits for records and logs them, until aborted.
async fn pump(logger: Logger) {
    // Registered here, not at load: in a runtime without I/O enabled this
    // panics, and only this task dies, not the load.
    // SAFETY: the fd is the logger's own ring buffer map fd (`MapData` owns
    // it), open from `EbpfLogger::init` until the logger is dropped, which
    // only the `AsyncFd` does; `as_raw_fd` always returns that same fd.
    let registered = unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) };
    let mut fd = match registered {
        Ok(fd) => fd,
        Err(error) => {
            tracing::warn!(%error, "eBPF log records will not reach the agent's log");
            return;
        }
    };
    loop {
        let mut ready = match fd.readable_mut().await {
            Ok(ready) => ready,
            Err(error) => {
                tracing::warn!(%error, "reading eBPF log records failed; no more will be logged");
                return;
            }
        };
        ready.get_inner_mut().flush();
        ready.clear_ready();
    }
}
