//! The service proxy: keeps the eBPF service maps equal to what the API says.
//!
//! ```text
//! watch Services ───────┐  reflector stores   desired()     Reconciler::apply()
//! watch EndpointSlices ─┴─> (all namespaces) ──> Desired ──> diff vs live maps ──> writes
//! ```
//!
//! Level-triggered, after kube-proxy and Cilium: [`run`] never acts on a
//! watch delta. Whenever either store changes (batched for
//! [`Options::debounce`]) and at least every [`Options::resync`], it
//! recomputes the whole [`Desired`] state with the pure [`desired()`]
//! function and lets the [`Reconciler`] diff it against the live maps. A
//! missed delete is corrected on the next pass, and the first pass after an
//! agent restart prunes whatever the previous run left behind, keeping the
//! ids of what is still wanted.
//!
//! Nothing is applied before both stores hold a complete initial list, so a
//! restart never prunes live services from a half-filled cache.

pub mod desired;
pub mod reconcile;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use std::pin::pin;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::datapath::{DatapathError, DatapathOps};
pub use desired::{Backend, Desired, Frontend, FrontendSpec, Protocol, ServicePortName, desired};
pub use reconcile::{IdAllocator, Reconciler, Stats};

/// Errors from the service proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Reading or writing a datapath map failed.
    #[error("programming the datapath")]
    Datapath {
        /// The cause.
        #[from]
        source: DatapathError,
    },
    /// Every id of a kind is in use.
    #[error("no free {kind} id")]
    IdsExhausted {
        /// `backend` or `reverse-NAT`.
        kind: &'static str,
    },
    /// A frontend has more backends than a slot number can name.
    #[error("frontend {frontend} ({service}) has {count} backends; at most 65535 fit")]
    TooManyBackends {
        /// The frontend (`vip:port/proto`).
        frontend: String,
        /// The service port (`namespace/name:port`).
        service: String,
        /// How many backends it has.
        count: usize,
    },
    /// A watch stream ended (the client was shut down).
    #[error("the {kind} watch ended")]
    WatchEnded {
        /// `Service` or `EndpointSlice`.
        kind: &'static str,
    },
}

/// Where the proxy is: published after every apply (see [`Options::subscribe`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Number of successful applies so far; 0 until the first.
    pub generation: u64,
    /// Passes that were due but applied nothing because a store had not completed its
    /// initial list yet (what "nothing is applied before both stores listed" looks like).
    pub held_back: u64,
    /// When the last successful apply finished.
    pub applied_at: Option<Instant>,
    /// Frontends in the last applied state.
    pub frontends: usize,
    /// Distinct backends in the last applied state.
    pub backends: usize,
    /// What the last successful apply wrote.
    pub last: Stats,
    /// The last apply's error, if it failed (cleared by a success).
    pub error: Option<String>,
}

/// Settings of [`run`].
#[derive(Debug)]
pub struct Options {
    /// How long to collect store changes before applying them (the added
    /// latency from API write to map entry is at most this, plus the apply).
    pub debounce: Duration,
    /// Apply at least this often, changes or not (repairs edits made to the
    /// maps behind the proxy's back).
    pub resync: Duration,
    /// How long to wait before trying again after a failed apply.
    pub retry: Duration,
    /// Services this node answers itself (`namespace`, `name`, address on this node): the
    /// cluster DNS Service goes to the agent's own DNS server.
    pub node_local: Vec<(String, String, std::net::Ipv4Addr)>,
    progress: watch::Sender<Progress>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(20),
            resync: Duration::from_secs(30),
            retry: Duration::from_secs(1),
            node_local: Vec::new(),
            progress: watch::Sender::new(Progress::default()),
        }
    }
}

impl Options {
    /// Default settings: 20 ms debounce, 30 s resync, 1 s retry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Follows the proxy's [`Progress`] (for tests, benchmarks, health).
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }
}

/// The proxy's state between applies: the datapath, the reconciler, and
/// what it publishes.
struct Proxy<D> {
    dp: D,
    reconciler: Reconciler,
    node_local: Vec<(String, String, std::net::Ipv4Addr)>,
    progress: watch::Sender<Progress>,
}

impl<D: DatapathOps> Proxy<D> {
    /// Computes the desired state from the stores and applies it.
    fn sync(&mut self, services: &Store<Service>, slices: &Store<EndpointSlice>) -> bool {
        let mut desired = desired(&services.state(), &slices.state());
        for (namespace, name, addr) in &self.node_local {
            desired.serve_locally(namespace, name, *addr);
        }
        match self.reconciler.apply(&desired, &mut self.dp) {
            Ok(stats) => {
                if !stats.is_empty() {
                    tracing::info!(
                        frontends = desired.frontends.len(),
                        changed = stats.frontends_changed,
                        "service maps updated: {stats}"
                    );
                }
                let backends = desired.backend_count();
                self.progress.send_modify(|p| {
                    p.generation += 1;
                    p.applied_at = Some(Instant::now());
                    p.frontends = desired.frontends.len();
                    p.backends = backends;
                    p.last = stats;
                    p.error = None;
                });
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "applying service maps failed; retrying");
                self.progress.send_modify(|p| p.error = Some(e.to_string()));
                false
            }
        }
    }
}

/// Runs the service proxy until a watch ends: reflects Services and
/// `EndpointSlices` of all namespaces and keeps `dp` in line with them.
///
/// Watch errors are retried with kube's default backoff and do not end the
/// proxy; neither do failed applies (retried after [`Options::retry`]).
///
/// # Errors
/// [`ProxyError::WatchEnded`] when a watch stream ends.
pub async fn run<D: DatapathOps + Send + 'static>(
    client: kube::Client,
    dp: D,
    opts: Options,
) -> Result<(), ProxyError> {
    let (services, services_writer) = reflector::store::<Service>();
    let (slices, slices_writer) = reflector::store::<EndpointSlice>();
    let mut service_events = pin!(
        reflector::reflector(
            services_writer,
            watcher(
                Api::<Service>::all(client.clone()),
                watcher::Config::default()
            ),
        )
        .default_backoff()
    );
    let mut slice_events = pin!(
        reflector::reflector(
            slices_writer,
            watcher(
                Api::<EndpointSlice>::all(client),
                watcher::Config::default()
            ),
        )
        .default_backoff()
    );

    let mut proxy = Proxy {
        dp,
        reconciler: Reconciler::new(),
        node_local: opts.node_local,
        progress: opts.progress,
    };
    let (mut services_listed, mut slices_listed) = (false, false);
    // When to apply next; `None` while nothing is pending.
    let mut due: Option<Instant> = None;
    let mut resync = tokio::time::interval(opts.resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        tokio::select! {
            event = service_events.next() => {
                let event = event.ok_or(ProxyError::WatchEnded { kind: "Service" })?;
                if changed(event, &mut services_listed, "Service") {
                    due.get_or_insert_with(|| Instant::now() + opts.debounce);
                }
            }
            event = slice_events.next() => {
                let event = event.ok_or(ProxyError::WatchEnded { kind: "EndpointSlice" })?;
                if changed(event, &mut slices_listed, "EndpointSlice") {
                    due.get_or_insert_with(|| Instant::now() + opts.debounce);
                }
            }
            () = sleep_until(due) => {
                due = None;
                if !(services_listed && slices_listed) {
                    proxy.progress.send_modify(|p| p.held_back += 1);
                } else if !proxy.sync(&services, &slices) {
                    due = Some(Instant::now() + opts.retry);
                }
            }
            _ = resync.tick() => {
                if services_listed && slices_listed {
                    due.get_or_insert_with(Instant::now);
                }
            }
        }
    }
}

/// Whether a reflector event changed the store; notes when the initial list
/// is complete.
fn changed<K>(
    event: Result<watcher::Event<K>, watcher::Error>,
    listed: &mut bool,
    kind: &'static str,
) -> bool {
    match event {
        Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => true,
        Ok(watcher::Event::InitDone) => {
            if !*listed {
                tracing::debug!(kind, "initial list complete");
            }
            *listed = true;
            true
        }
        Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => false,
        Err(e) => {
            tracing::warn!(kind, error = %e, "watch failed; retrying");
            false
        }
    }
}

/// Sleeps until `due`, or forever when nothing is due.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}
