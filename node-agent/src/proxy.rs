//! The service proxy: keeps the eBPF service maps equal to what the API says.
//!
//! ```text
//! watch Services ───────┐  reflector stores    DesiredIndex          Reconciler
//! watch EndpointSlices ─┴─> (all namespaces) ──> changed Services ──> apply_changes() ──> writes
//!                                               -> their frontends    (diff vs shadow)
//!                           every resync ───────────────────────────> apply() (verify + repair)
//! ```
//!
//! [`run`] follows the watch events: each names the Service it touches (a
//! Service's `namespace/name`; an `EndpointSlice`'s namespace and
//! `kubernetes.io/service-name` label, and its previous owner when the label
//! changed or the slice went). As soon as an event is processed (together
//! with whatever events are already queued: no fixed debounce), only those
//! Services are recomputed with the pure
//! [`service_frontends`](desired::service_frontends) (what [`desired()`]
//! maps over every Service) and only their changed frontends are written,
//! diffed against the reconciler's shadow of the maps. So the cost of one
//! change does not grow with the number of Services.
//!
//! Level-triggered underneath, after kube-proxy and Cilium: a watch's
//! initial list (and any re-list) rebuilds the whole desired state from the
//! stores; the first apply, and one every [`Options::resync`], is a full
//! pass that re-reads the live maps and repairs any drift (it logs how many
//! entries it repaired). The first pass after an agent restart prunes
//! whatever the previous run left behind, keeping the ids of what is still
//! wanted.
//!
//! Nothing is applied before both stores hold a complete initial list, so a
//! restart never prunes live services from a half-filled cache.

pub mod desired;
pub mod endpoints;
pub mod external;
pub mod index;
pub mod reconcile;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::datapath::{Be16, Be32, DatapathError, DatapathOps, NodePortOps};
pub use desired::{
    Backend, Desired, Frontend, FrontendSpec, Protocol, ServicePortName, desired,
    service_frontends, service_frontends_on,
};
pub use external::reconcile::{ExtReconciler, ExtStats};
pub use external::{ExtBackend, ExtSpec, ExternalIndex, HealthCheck, ServiceExternal};
pub use index::{DesiredIndex, ServiceRef};
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
        /// `Service`, `EndpointSlice` or `Pod`.
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
    /// For the last apply triggered by watch events: from the first of its events reaching
    /// the proxy to the end of the apply (the proxy's own share of the API-write-to-map
    /// latency); `None` for a pass triggered by the resync timer or a retry.
    pub event_to_applied: Option<Duration>,
    /// Full verify-and-repair passes done (the start-up pass not counted).
    pub verified: u64,
    /// Map entries those passes had to repair (written or removed), in total.
    pub repaired: u64,
}

/// Settings of [`run`].
#[derive(Debug)]
pub struct Options {
    /// The verify-and-repair period: a full pass re-reads the live maps at
    /// least this often and repairs edits made behind the proxy's back.
    pub resync: Duration,
    /// How long to wait before trying again after a failed apply.
    pub retry: Duration,
    /// Services this node answers itself (`namespace`, `name`, address on this node): the
    /// cluster DNS Service goes to the agent's own DNS server.
    pub node_local: Vec<(String, String, std::net::Ipv4Addr)>,
    /// The cgroup of this node's pods (as `/proc/<pid>/cgroup` names it): when a backend
    /// leaves the maps, its pods' connected UDP sockets to it are destroyed there
    /// ([`crate::sockets`]), so a client's next send reaches a live backend. `None`: never.
    pub pods_cgroup: Option<String>,
    /// This node's name: `internalTrafficPolicy: Local` cluster IPs balance to its
    /// endpoints only. `None`: the policy is ignored.
    pub node_name: Option<String>,
    /// North-south (`NodePort`, `externalIPs`, `LoadBalancer`): the tc/XDP maps of this
    /// node and where to publish what it announces and health-checks. `None`: cluster IPs only.
    pub external: Option<External>,
    progress: watch::Sender<Progress>,
}

/// The north-south part of the proxy: the maps, their reconciler, and the
/// channels that carry the `LoadBalancer` IPs this node announces and the
/// `healthCheckNodePort`s it serves (`None` until the first apply).
pub struct External {
    /// This node's name (which endpoints are local).
    pub node_name: String,
    /// The north-south maps.
    pub maps: Box<dyn NodePortOps + Send>,
    /// Their reconciler (node addresses, SNAT configuration, Maglev).
    pub reconciler: ExtReconciler,
    /// The `LoadBalancer` IPs this node should answer ARP for.
    pub announce: watch::Sender<Option<std::collections::BTreeSet<std::net::Ipv4Addr>>>,
    /// The `healthCheckNodePort`s this node serves, by port.
    pub health: watch::Sender<Option<std::collections::BTreeMap<u16, HealthCheck>>>,
}

impl std::fmt::Debug for External {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("External")
            .field("node_name", &self.node_name)
            .field("reconciler", &self.reconciler)
            .finish_non_exhaustive()
    }
}

/// [`External`] and its incremental desired state, inside the proxy.
struct ExternalState {
    index: ExternalIndex,
    opts: External,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(30),
            retry: Duration::from_secs(1),
            node_local: Vec::new(),
            pods_cgroup: None,
            node_name: None,
            external: None,
            progress: watch::Sender::new(Progress::default()),
        }
    }
}

impl Options {
    /// Default settings: 30 s resync, 1 s retry.
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

/// Events at most handled in one batch before applying (the rest waits for
/// the next apply, so a flood of events cannot postpone programming).
const MAX_BATCH: usize = 1024;

/// What the next apply has to do.
#[derive(Debug, Default)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent reasons to apply, each set by its own event"
)]
struct Pending {
    /// Services to recompute.
    services: BTreeSet<ServiceRef>,
    /// A watch (re-)listed: rebuild the whole desired state from the stores.
    rebuild: bool,
    /// A full verify-and-repair pass is due.
    verify: bool,
    /// The last apply failed: apply again (the reconciler then reads the
    /// maps in full).
    failed: bool,
    /// When the first watch event of this batch was received.
    since: Option<std::time::Instant>,
    /// Pods of this node whose host ports to recompute (`namespace`, `name`).
    pods: BTreeSet<(String, String)>,
    /// The pod watch (re-)listed: recompute every pod's host ports.
    pods_rebuild: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.services.is_empty()
            && self.pods.is_empty()
            && !self.rebuild
            && !self.pods_rebuild
            && !self.verify
            && !self.failed
    }
}

/// The proxy's state between applies: the datapath, the reconciler, the
/// incremental desired state, and what it publishes.
struct Proxy<D> {
    dp: D,
    reconciler: Reconciler,
    index: DesiredIndex,
    progress: watch::Sender<Progress>,
    services_listed: bool,
    slices_listed: bool,
    /// This node's pods listed (always true without north-south).
    pods_listed: bool,
    pods_cgroup: Option<String>,
    external: Option<ExternalState>,
}

impl<D: DatapathOps> Proxy<D> {
    /// Destroys, off the event loop, the pods' connected UDP sockets to backends that just
    /// left the maps: the socket LB translated them once, at `connect()`, so without this
    /// they would keep sending to the old backend.
    fn destroy_sockets_to_removed(&mut self) {
        let removed: Vec<std::net::SocketAddrV4> = self
            .reconciler
            .take_removed_backends()
            .into_iter()
            .filter(|b| b.proto == sluice_ebpf_common::PROTO_UDP)
            .map(|b| std::net::SocketAddrV4::new(b.addr.to_ipv4(), b.port.to_host()))
            .collect();
        let Some(cgroup) = self.pods_cgroup.clone() else {
            return;
        };
        if removed.is_empty() {
            return;
        }
        tokio::task::spawn_blocking(move || {
            let namespaces = crate::sockets::pod_namespaces(&cgroup);
            match crate::sockets::destroy(&namespaces, crate::sockets::Transport::Udp, &|s| {
                removed.contains(&s.peer)
            }) {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    sockets = n,
                    backends = ?removed,
                    "destroyed connected UDP sockets to removed backends"
                ),
                Err(e) => tracing::warn!(error = %e, "destroying sockets to removed backends"),
            }
        });
    }

    /// Notes a Service event.
    fn service_event(
        &mut self,
        event: Result<watcher::Event<Service>, watcher::Error>,
        pending: &mut Pending,
    ) {
        match event {
            Ok(watcher::Event::Apply(service) | watcher::Event::Delete(service)) => {
                pending.services.insert(index::service_ref(&service));
            }
            Ok(watcher::Event::InitDone) => {
                if !self.services_listed {
                    tracing::debug!(kind = "Service", "initial list complete");
                }
                self.services_listed = true;
                pending.rebuild = true;
            }
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
            Err(e) => tracing::warn!(kind = "Service", error = %e, "watch failed; retrying"),
        }
    }

    /// Notes an `EndpointSlice` event.
    fn slice_event(
        &mut self,
        event: Result<watcher::Event<EndpointSlice>, watcher::Error>,
        pending: &mut Pending,
    ) {
        match event {
            Ok(watcher::Event::Apply(slice)) => {
                pending.services.extend(self.index.slice_applied(&slice));
            }
            Ok(watcher::Event::Delete(slice)) => {
                pending.services.extend(self.index.slice_deleted(&slice));
            }
            Ok(watcher::Event::InitDone) => {
                if !self.slices_listed {
                    tracing::debug!(kind = "EndpointSlice", "initial list complete");
                }
                self.slices_listed = true;
                pending.rebuild = true;
            }
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
            Err(e) => tracing::warn!(kind = "EndpointSlice", error = %e, "watch failed; retrying"),
        }
    }

    /// Notes an event of this node's pods (their host ports).
    fn pod_event(
        &mut self,
        event: Result<watcher::Event<Pod>, watcher::Error>,
        pending: &mut Pending,
    ) {
        match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::Delete(pod)) => {
                pending.pods.insert((
                    pod.metadata.namespace.clone().unwrap_or_default(),
                    pod.metadata.name.clone().unwrap_or_default(),
                ));
            }
            Ok(watcher::Event::InitDone) => {
                self.pods_listed = true;
                pending.pods_rebuild = true;
            }
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
            Err(e) => tracing::warn!(kind = "Pod", error = %e, "watch failed; retrying"),
        }
    }

    /// Brings the desired state up to date with `pending` and applies it:
    /// incrementally, or in full when a verify pass is due or the shadow is
    /// gone. Returns whether the apply succeeded.
    fn sync(
        &mut self,
        pending: &mut Pending,
        services: &Store<Service>,
        slices: &Store<EndpointSlice>,
        pods: &Store<Pod>,
    ) -> bool {
        let started = std::time::Instant::now();
        let mut changed = BTreeSet::new();
        let mut ext_changed = BTreeSet::new();
        let own_slices = |index: &DesiredIndex, id: &ServiceRef| -> Vec<Arc<EndpointSlice>> {
            index
                .slice_names(id)
                .filter_map(|name| slices.get(&ObjectRef::new(name).within(&id.0)))
                .collect()
        };
        if pending.rebuild {
            let all = services.state();
            changed = self.index.rebuild(&all, &slices.state());
            if let Some(ext) = &mut self.external {
                let old = ext.index.clear();
                for service in &all {
                    let id = index::service_ref(service);
                    let own = own_slices(&self.index, &id);
                    let own: Vec<&EndpointSlice> = own.iter().map(AsRef::as_ref).collect();
                    ext.index
                        .update_service(&id, Some(service), &own, &mut BTreeSet::new());
                }
                let new = ext.index.frontends();
                ext_changed.extend(old.keys().filter(|f| new.get(f) != old.get(f)).copied());
                ext_changed.extend(new.keys().filter(|f| new.get(f) != old.get(f)).copied());
            }
        } else {
            for id in &pending.services {
                let service = services.get(&ObjectRef::new(&id.1).within(&id.0));
                let own = own_slices(&self.index, id);
                let own: Vec<&EndpointSlice> = own.iter().map(AsRef::as_ref).collect();
                self.index
                    .update_service(id, service.as_deref(), &own, &mut changed);
                if let Some(ext) = &mut self.external {
                    ext.index
                        .update_service(id, service.as_deref(), &own, &mut ext_changed);
                }
            }
        }
        if let Some(ext) = &mut self.external {
            if pending.pods_rebuild {
                let listed: BTreeSet<(String, String)> = pods
                    .state()
                    .iter()
                    .map(|p| {
                        (
                            p.metadata.namespace.clone().unwrap_or_default(),
                            p.metadata.name.clone().unwrap_or_default(),
                        )
                    })
                    .collect();
                pending.pods.extend(ext.index.pods());
                pending.pods.extend(listed);
            }
            for (namespace, name) in &pending.pods {
                let pod = pods.get(&ObjectRef::new(name).within(namespace));
                ext.index
                    .update_pod(namespace, name, pod.as_deref(), &mut ext_changed);
            }
        }
        let recomputed = pending.services.len();
        let since = pending.since;
        let verify = pending.verify && self.reconciler.has_shadow();
        let start = !self.reconciler.has_shadow();
        *pending = Pending::default();
        let desired = self.index.desired();
        let result = if verify {
            self.reconciler.apply(desired, &mut self.dp)
        } else {
            self.reconciler
                .apply_changes(desired, &changed, &mut self.dp)
        };
        let result = result.and_then(|stats| {
            if let Some(ext) = &mut self.external {
                ext.apply(verify, &ext_changed)?;
            }
            Ok(stats)
        });
        match result {
            Ok(stats) => {
                let took = started.elapsed();
                if verify && !stats.is_empty() {
                    tracing::warn!(
                        repaired = stats.writes(),
                        frontends = desired.frontends.len(),
                        took_ms = took.as_millis(),
                        "verify-and-repair: map entries differed from the shadow and were repaired: {stats}"
                    );
                } else if verify {
                    tracing::debug!(
                        frontends = desired.frontends.len(),
                        took_ms = took.as_millis(),
                        "verify-and-repair: maps as expected"
                    );
                } else if start {
                    tracing::info!(
                        frontends = desired.frontends.len(),
                        took_ms = took.as_millis(),
                        "service maps reconciled in full (live entries adopted, stale ones pruned): {stats}"
                    );
                } else if !stats.is_empty() {
                    tracing::info!(
                        services = recomputed,
                        changed = stats.frontends_changed,
                        "service maps updated: {stats}"
                    );
                }
                let frontends = desired.frontends.len();
                let backends = self.reconciler.backend_count();
                self.progress.send_modify(|p| {
                    p.generation += 1;
                    p.applied_at = Some(Instant::now());
                    p.frontends = frontends;
                    p.backends = backends;
                    p.last = stats;
                    p.error = None;
                    p.event_to_applied = since.map(|t| t.elapsed());
                    if verify {
                        p.verified += 1;
                        p.repaired += u64::try_from(stats.writes()).unwrap_or(u64::MAX);
                    }
                });
                self.destroy_sockets_to_removed();
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "applying service maps failed; retrying");
                self.progress.send_modify(|p| p.error = Some(e.to_string()));
                pending.failed = true;
                false
            }
        }
    }
}

impl ExternalState {
    /// Applies the north-south state (in full when `verify` or without a
    /// shadow), flushes the tracked flows of backends that left, and
    /// publishes the announced IPs and health checks.
    fn apply(&mut self, verify: bool, changed: &BTreeSet<Frontend>) -> Result<(), ProxyError> {
        let desired = self.index.frontends();
        let full = verify || !self.opts.reconciler.has_shadow();
        let stats = if full {
            self.opts
                .reconciler
                .apply(desired, self.opts.maps.as_mut())?
        } else {
            self.opts
                .reconciler
                .apply_changes(desired, changed, self.opts.maps.as_mut())?
        };
        if full && !stats.is_empty() {
            tracing::info!(
                frontends = desired.len(),
                "north-south maps reconciled in full: {stats}"
            );
        } else if !stats.is_empty() {
            tracing::debug!(changed = changed.len(), "north-south maps updated: {stats}");
        }
        // A UDP backend that left is flushed at once; a TCP one only once it has left the
        // slices altogether (a terminating pod keeps its established connections). The
        // draining set is gathered only when some backend left, not on every apply.
        let removed = self.opts.reconciler.take_removed_backends();
        let draining: BTreeSet<(desired::Backend, Protocol)> = if removed.is_empty() {
            BTreeSet::new()
        } else {
            desired
                .iter()
                .flat_map(|(f, s)| s.draining.iter().map(|b| (*b, f.protocol)))
                .collect()
        };
        let flush: Vec<(Be32, Be16, u8)> = removed
            .into_iter()
            .filter(|(backend, protocol)| {
                *protocol != Protocol::Tcp || !draining.contains(&(*backend, *protocol))
            })
            .map(|(backend, protocol)| {
                (
                    Be32::from_ipv4(backend.addr),
                    Be16::from_host(backend.port),
                    protocol.number(),
                )
            })
            .collect();
        // One walk of the conntrack map for every backend that left in this apply.
        match self.opts.maps.flush_backends(&flush) {
            Ok(0) => {}
            Ok(flows) => tracing::info!(
                backends = flush.len(),
                flows,
                "flushed tracked flows to removed backends"
            ),
            Err(e) => tracing::warn!(error = %e, "flushing flows to removed backends"),
        }
        let announced = self.index.announced();
        self.opts.announce.send_if_modified(|current| {
            let changed = current.as_ref() != Some(&announced);
            *current = Some(announced);
            changed
        });
        let checks = self.index.health_checks();
        self.opts.health.send_if_modified(|current| {
            let changed = current.as_ref() != Some(&checks);
            *current = Some(checks);
            changed
        });
        Ok(())
    }
}

/// Runs the service proxy until a watch ends: reflects Services and
/// `EndpointSlices` of all namespaces and keeps `dp` in line with them.
///
/// Watch errors are retried with kube's default backoff and do not end the
/// proxy; neither do failed applies (retried after [`Options::retry`], as a
/// full pass).
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
                Api::<EndpointSlice>::all(client.clone()),
                watcher::Config::default()
            ),
        )
        .default_backoff()
    );

    // This node's pods, for their host ports (north-south only).
    let (pods, pods_writer) = reflector::store::<Pod>();
    let mut pod_events = match &opts.external {
        Some(external) => reflector::reflector(
            pods_writer,
            watcher(
                Api::<Pod>::all(client.clone()),
                watcher::Config::default().fields(&format!("spec.nodeName={}", external.node_name)),
            ),
        )
        .default_backoff()
        .boxed(),
        None => futures::stream::pending().boxed(),
    };
    let pods_listed = opts.external.is_none();
    let mut proxy = Proxy {
        dp,
        reconciler: Reconciler::new(),
        index: match &opts.node_name {
            Some(node) => DesiredIndex::new(opts.node_local).on_node(node),
            None => DesiredIndex::new(opts.node_local),
        },
        progress: opts.progress,
        services_listed: false,
        slices_listed: false,
        pods_listed,
        pods_cgroup: opts.pods_cgroup,
        external: opts.external.map(|opts| ExternalState {
            index: ExternalIndex::new(&opts.node_name),
            opts,
        }),
    };
    let mut pending = Pending::default();
    // While a failed apply waits for its retry.
    let mut retry_at: Option<Instant> = None;
    let mut resync = tokio::time::interval_at(Instant::now() + opts.resync, opts.resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        tokio::select! {
            event = service_events.next() => {
                let event = event.ok_or(ProxyError::WatchEnded { kind: "Service" })?;
                pending.since.get_or_insert_with(std::time::Instant::now);
                proxy.service_event(event, &mut pending);
            }
            event = slice_events.next() => {
                let event = event.ok_or(ProxyError::WatchEnded { kind: "EndpointSlice" })?;
                pending.since.get_or_insert_with(std::time::Instant::now);
                proxy.slice_event(event, &mut pending);
            }
            event = pod_events.next() => {
                let event = event.ok_or(ProxyError::WatchEnded { kind: "Pod" })?;
                proxy.pod_event(event, &mut pending);
            }
            () = sleep_until(retry_at) => retry_at = None,
            _ = resync.tick() => pending.verify = true,
        }
        // Whatever is queued already goes into this apply too.
        for _ in 0..MAX_BATCH {
            let mut more = false;
            if let Some(event) = service_events.next().now_or_never() {
                let event = event.ok_or(ProxyError::WatchEnded { kind: "Service" })?;
                proxy.service_event(event, &mut pending);
                more = true;
            }
            if let Some(event) = slice_events.next().now_or_never() {
                let event = event.ok_or(ProxyError::WatchEnded {
                    kind: "EndpointSlice",
                })?;
                proxy.slice_event(event, &mut pending);
                more = true;
            }
            if let Some(event) = pod_events.next().now_or_never() {
                let event = event.ok_or(ProxyError::WatchEnded { kind: "Pod" })?;
                proxy.pod_event(event, &mut pending);
                more = true;
            }
            if !more {
                break;
            }
        }
        if pending.is_empty() {
            pending.since = None;
            continue;
        }
        if retry_at.is_some() {
            continue;
        }
        if !(proxy.services_listed && proxy.slices_listed && proxy.pods_listed) {
            // Kept pending: the initial lists' completion rebuilds anyway.
            pending.verify = false;
            proxy.progress.send_modify(|p| p.held_back += 1);
            continue;
        }
        if !proxy.sync(&mut pending, &services, &slices, &pods) {
            retry_at = Some(Instant::now() + opts.retry);
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
