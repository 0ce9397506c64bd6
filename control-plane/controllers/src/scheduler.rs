//! The scheduler: binds each pending pod to a node that fits it, least-allocated first.
//!
//! Filters follow upstream's default profile (`NodeUnschedulable`, `TaintToleration`, `NodeAffinity`
//! for `spec.nodeSelector`, `NodeResourcesFit`) and the failure message has upstream's shape, e.g.
//! `0/1 nodes are available: 1 Insufficient cpu.` Pods are scheduled one at a time; bound but not
//! yet observed pods are remembered ("assumed") so a stale cache cannot overcommit a node.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    Binding, Node, ObjectReference, Pod, PodCondition, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use rand::Rng;
use rand::seq::IndexedRandom;

use crate::common::{self, Backoffs};
use sluice_k8s_values::quantity;

/// Why a scheduling attempt failed (not "no node fits": that is a normal outcome).
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// An API call failed.
    #[error("{action} for pod {pod}: {source}")]
    Api {
        /// What we were doing.
        action: &'static str,
        /// `namespace/name`.
        pod: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The node or pod cache is gone (its watch ended).
    #[error("cache not ready: {0}")]
    Cache(#[from] reflector::store::WriterDropped),
}

/// CPU (millicores) and memory (bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Millicores.
    pub cpu: i64,
    /// Bytes.
    pub memory: i64,
}

impl Resources {
    fn add(&mut self, other: Resources) {
        self.cpu = self.cpu.saturating_add(other.cpu);
        self.memory = self.memory.saturating_add(other.memory);
    }
    fn max(self, other: Resources) -> Resources {
        Resources {
            cpu: self.cpu.max(other.cpu),
            memory: self.memory.max(other.memory),
        }
    }
}

/// Default request upstream assumes for scoring when a container has none (100m, 200Mi).
const NON_ZERO_CPU: i64 = 100;
const NON_ZERO_MEMORY: i64 = 200 * 1024 * 1024;

fn container_requests(c: &k8s_openapi::api::core::v1::Container, non_zero: bool) -> Resources {
    let res = c.resources.as_ref();
    let get = |name: &str| {
        res.and_then(|r| r.requests.as_ref().and_then(|m| m.get(name)))
            .or_else(|| res.and_then(|r| r.limits.as_ref().and_then(|m| m.get(name))))
            .map(|q| q.0.clone())
    };
    let cpu = get("cpu").and_then(|q| quantity::milli_value(&q).ok());
    let memory = get("memory").and_then(|q| quantity::value(&q).ok());
    if non_zero {
        Resources {
            cpu: cpu.unwrap_or(NON_ZERO_CPU),
            memory: memory.unwrap_or(NON_ZERO_MEMORY),
        }
    } else {
        Resources {
            cpu: cpu.unwrap_or(0),
            memory: memory.unwrap_or(0),
        }
    }
}

fn requests_impl(pod: &Pod, non_zero: bool) -> Resources {
    let Some(spec) = &pod.spec else {
        return Resources::default();
    };
    let mut sum = Resources::default();
    for c in &spec.containers {
        sum.add(container_requests(c, non_zero));
    }
    for c in spec.init_containers.iter().flatten() {
        sum = sum.max(container_requests(c, false));
    }
    sum
}

/// A pod's effective requests: the sum over containers, or the largest init container if
/// that is more (per resource). A missing request falls back to the limit, as upstream defaults.
#[must_use]
pub fn pod_requests(pod: &Pod) -> Resources {
    requests_impl(pod, false)
}

/// What a node has handed out already.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeUsage {
    /// Sum of bound, non-terminal pods' requests.
    pub requested: Resources,
    /// Sum of the same pods' requests with upstream's non-zero defaults (for scoring).
    pub requested_non_zero: Resources,
    /// Number of bound, non-terminal pods.
    pub pods: i64,
}

impl NodeUsage {
    /// Adds a pod to the usage.
    pub fn add_pod(&mut self, pod: &Pod) {
        self.requested.add(pod_requests(pod));
        self.requested_non_zero.add(requests_impl(pod, true));
        self.pods += 1;
    }
}

/// Whether a toleration tolerates a taint (upstream `ToleratesTaint`).
#[must_use]
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    let operator = t.operator.as_deref().unwrap_or("Equal");
    if key.is_empty() {
        return operator == "Exists";
    }
    if key != taint.key {
        return false;
    }
    match operator {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

fn tolerated(pod: &Pod, taint: &Taint) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| tolerates(t, taint)))
}

fn allocatable<'a>(node: &'a Node, name: &str) -> Option<&'a str> {
    node.status
        .as_ref()?
        .allocatable
        .as_ref()?
        .get(name)
        .map(|q| q.0.as_str())
}

/// Allocatable CPU, memory and pods; missing values mean "unlimited" for cpu/memory and 110 pods.
#[must_use]
pub fn node_allocatable(node: &Node) -> (Resources, i64) {
    let cpu = allocatable(node, "cpu")
        .and_then(|q| quantity::milli_value(q).ok())
        .unwrap_or(i64::MAX);
    let memory = allocatable(node, "memory")
        .and_then(|q| quantity::value(q).ok())
        .unwrap_or(i64::MAX);
    let pods = allocatable(node, "pods")
        .and_then(|q| quantity::value(q).ok())
        .unwrap_or(110);
    (Resources { cpu, memory }, pods)
}

/// Runs the filters for one node; `Err` carries upstream-style reasons (one or more).
///
/// # Errors
/// The reasons the pod does not fit.
pub fn filter(pod: &Pod, node: &Node, usage: &NodeUsage) -> Result<(), Vec<String>> {
    let spec = node.spec.as_ref();
    if spec.and_then(|s| s.unschedulable) == Some(true) {
        let taint = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        if !tolerated(pod, &taint) {
            return Err(vec!["node(s) were unschedulable".into()]);
        }
    }
    let not_ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "False");
    if not_ready {
        return Err(vec!["node(s) were not ready".into()]);
    }
    for taint in spec.and_then(|s| s.taints.as_ref()).into_iter().flatten() {
        if (taint.effect == "NoSchedule" || taint.effect == "NoExecute") && !tolerated(pod, taint) {
            return Err(vec![format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or("")
            )]);
        }
    }
    let empty = BTreeMap::new();
    let node_labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let selector = pod.spec.as_ref().and_then(|s| s.node_selector.as_ref());
    if selector.is_some_and(|sel| sel.iter().any(|(k, v)| node_labels.get(k) != Some(v))) {
        return Err(vec![
            "node(s) didn't match Pod's node affinity/selector".into(),
        ]);
    }
    let (alloc, max_pods) = node_allocatable(node);
    let req = pod_requests(pod);
    let mut reasons = Vec::new();
    if usage.pods + 1 > max_pods {
        reasons.push("Too many pods".to_string());
    }
    if req.cpu > 0 && usage.requested.cpu.saturating_add(req.cpu) > alloc.cpu {
        reasons.push("Insufficient cpu".to_string());
    }
    if req.memory > 0 && usage.requested.memory.saturating_add(req.memory) > alloc.memory {
        reasons.push("Insufficient memory".to_string());
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

/// Least-allocated score 0..=100 (upstream `LeastAllocated`, cpu and memory weighted equally).
#[must_use]
pub fn score(pod: &Pod, node: &Node, usage: &NodeUsage) -> i64 {
    let (alloc, _) = node_allocatable(node);
    let mut want = usage.requested_non_zero;
    want.add(requests_impl(pod, true));
    let part = |alloc: i64, used: i64| -> i64 {
        if alloc <= 0 || alloc == i64::MAX {
            return 100;
        }
        if used > alloc {
            return 0;
        }
        let free = i128::from(alloc - used) * 100 / i128::from(alloc);
        i64::try_from(free).unwrap_or(0)
    };
    i64::midpoint(part(alloc.cpu, want.cpu), part(alloc.memory, want.memory))
}

/// The upstream-style message for a pod no node accepted.
#[must_use]
pub fn failure_message(total_nodes: usize, reasons: &[Vec<String>]) -> String {
    if total_nodes == 0 {
        return "no nodes available to schedule pods".to_string();
    }
    let mut histogram: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reasons.iter().flatten() {
        *histogram.entry(r.as_str()).or_default() += 1;
    }
    let mut parts: Vec<String> = histogram.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    format!("0/{total_nodes} nodes are available: {}.", parts.join(", "))
}

/// Picks a node: filter, score, random tie-break among the best.
///
/// # Errors
/// The `FailedScheduling` message when no node fits.
pub fn select_node<R: Rng + ?Sized, S: std::hash::BuildHasher>(
    pod: &Pod,
    nodes: &[Arc<Node>],
    usage: &HashMap<String, NodeUsage, S>,
    rng: &mut R,
) -> Result<String, String> {
    let mut reasons = Vec::new();
    let mut best: Vec<&str> = Vec::new();
    let mut best_score = i64::MIN;
    let none = NodeUsage::default();
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let u = usage.get(name).unwrap_or(&none);
        if let Err(r) = filter(pod, node, u) {
            reasons.push(r);
        } else {
            let s = score(pod, node, u);
            if s > best_score {
                best_score = s;
                best.clear();
            }
            if s == best_score {
                best.push(name);
            }
        }
    }
    best.choose(rng)
        .map(|n| (*n).to_string())
        .ok_or_else(|| failure_message(nodes.len(), &reasons))
}

fn responsible(pod: &Pod, scheduler_name: &str) -> bool {
    let spec = pod.spec.as_ref();
    let name = spec
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or("default-scheduler");
    let name = if name.is_empty() {
        "default-scheduler"
    } else {
        name
    };
    name == scheduler_name
}

fn needs_scheduling(pod: &Pod, scheduler_name: &str) -> bool {
    pod.spec
        .as_ref()
        .is_some_and(|s| s.node_name.as_deref().unwrap_or("").is_empty())
        && pod.metadata.deletion_timestamp.is_none()
        && !common::pod_is_terminal(pod)
        && responsible(pod, scheduler_name)
}

struct Ctx {
    client: Client,
    nodes: Store<Node>,
    pods: Store<Pod>,
    scheduler_name: String,
    /// pod uid -> (node, pod) for pods we bound but the cache still shows unbound.
    assumed: Mutex<HashMap<String, (String, Pod)>>,
    /// pod uid -> (message, the Recorder of its `FailedScheduling` series); see `record_event`.
    events: Mutex<HashMap<String, (String, Recorder)>>,
    backoffs: Backoffs,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn usage_by_node(ctx: &Ctx) -> HashMap<String, NodeUsage> {
    let mut usage: HashMap<String, NodeUsage> = HashMap::new();
    let mut seen_unbound = std::collections::HashSet::new();
    for pod in ctx.pods.state() {
        if common::pod_is_terminal(&pod) {
            continue;
        }
        match pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .filter(|n| !n.is_empty())
        {
            Some(node) => usage.entry(node.to_string()).or_default().add_pod(&pod),
            None => {
                seen_unbound.insert(pod.uid().unwrap_or_default());
            }
        }
    }
    let mut assumed = lock(&ctx.assumed);
    assumed.retain(|uid, _| seen_unbound.contains(uid));
    for (node, pod) in assumed.values() {
        usage.entry(node.clone()).or_default().add_pod(pod);
    }
    usage
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Ctx>) -> Result<Action, SchedulerError> {
    if !needs_scheduling(&pod, &ctx.scheduler_name) {
        return Ok(Action::await_change());
    }
    let uid = pod.uid().unwrap_or_default();
    if lock(&ctx.assumed).contains_key(&uid) {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    ctx.nodes.wait_until_ready().await?;
    ctx.pods.wait_until_ready().await?;
    let nodes = ctx.nodes.state();
    let usage = usage_by_node(&ctx);
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let key = format!("{ns}/{name}");
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let choice = select_node(&pod, &nodes, &usage, &mut rand::rng());
    match choice {
        Ok(node) => {
            let binding = Binding {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    ..ObjectMeta::default()
                },
                target: ObjectReference {
                    kind: Some("Node".into()),
                    name: Some(node.clone()),
                    ..ObjectReference::default()
                },
            };
            match api
                .create_subresource::<_, serde_json::Value>(
                    "binding",
                    &name,
                    &PostParams::default(),
                    &binding,
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(pod = %key, node = %node, "bound");
                    lock(&ctx.assumed).insert(uid.clone(), (node, (*pod).clone()));
                }
                Err(e) if common::is_not_found(&e) || common::is_conflict(&e) => {
                    tracing::debug!(pod = %key, error = %e, "binding skipped");
                }
                Err(source) => {
                    return Err(SchedulerError::Api {
                        action: "bind",
                        pod: key,
                        source,
                    });
                }
            }
            ctx.backoffs.reset(&key);
            lock(&ctx.events).remove(&uid);
            Ok(Action::await_change())
        }
        Err(message) => {
            tracing::info!(pod = %key, %message, "unschedulable");
            mark_unschedulable(&api, &pod, &message)
                .await
                .map_err(|source| SchedulerError::Api {
                    action: "set PodScheduled condition",
                    pod: key.clone(),
                    source,
                })?;
            record_event(&ctx, &pod, &message)
                .await
                .map_err(|source| SchedulerError::Api {
                    action: "record FailedScheduling event",
                    pod: key.clone(),
                    source,
                })?;
            let delay = ctx.backoffs.fail(&key).min(Duration::from_secs(15));
            Ok(Action::requeue(delay))
        }
    }
}

/// The pod's conditions with PodScheduled=False/Unschedulable; `None` if already so.
#[must_use]
pub fn unschedulable_conditions(pod: &Pod, message: &str) -> Option<Vec<PodCondition>> {
    let existing = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let current = existing.iter().find(|c| c.type_ == "PodScheduled");
    if current.is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
            && c.message.as_deref() == Some(message)
    }) {
        return None;
    }
    let transition = match current {
        Some(c) if c.status == "False" => c.last_transition_time.clone(),
        _ => None,
    }
    .or_else(|| Some(common::now()));
    let mut out: Vec<PodCondition> = existing
        .into_iter()
        .filter(|c| c.type_ != "PodScheduled")
        .collect();
    out.push(PodCondition {
        type_: "PodScheduled".into(),
        status: "False".into(),
        reason: Some("Unschedulable".into()),
        message: Some(message.to_string()),
        last_transition_time: transition,
        ..PodCondition::default()
    });
    Some(out)
}

async fn mark_unschedulable(api: &Api<Pod>, pod: &Pod, message: &str) -> Result<(), kube::Error> {
    let Some(conditions) = unschedulable_conditions(pod, message) else {
        return Ok(());
    };
    let patch = serde_json::json!({ "status": { "conditions": conditions } });
    match api
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if common::is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Records `FailedScheduling` through kube's [`Recorder`] (an `events.k8s.io/v1` Event).
///
/// A `Recorder` turns a repeat into a series of the first event (count and last time),
/// keyed by type, action, reason and the regarding object but not the note, which stays
/// the first one's (upstream's `events.k8s.io` semantics). A pod whose failure message
/// changes must show the new message, so each pod keeps one `Recorder` per message: the
/// same message bumps its series, a new message gets a fresh `Recorder` and so a new Event.
async fn record_event(ctx: &Ctx, pod: &Pod, message: &str) -> Result<(), kube::Error> {
    let uid = pod.uid().unwrap_or_default();
    let fresh = || {
        Recorder::new(
            ctx.client.clone(),
            Reporter {
                controller: ctx.scheduler_name.clone(),
                instance: None,
            },
        )
    };
    let recorder = {
        let mut events = lock(&ctx.events);
        match events.get(&uid) {
            Some((m, r)) if m == message => r.clone(),
            _ => {
                let r = fresh();
                events.insert(uid.clone(), (message.to_string(), r.clone()));
                r
            }
        }
    };
    let mut regarding = pod.object_ref(&());
    // A series is keyed by the whole reference; the pod's resourceVersion moves with every
    // status write and must not split it.
    regarding.resource_version = None;
    let event = Event {
        type_: EventType::Warning,
        reason: "FailedScheduling".into(),
        note: Some(message.to_string()),
        action: "Scheduling".into(),
        secondary: None,
    };
    let result = match recorder.publish(&event, &regarding).await {
        // The series' Event is gone (deleted or expired): start a new one.
        Err(e) if common::is_not_found(&e) => {
            let r = fresh();
            lock(&ctx.events).insert(uid, (message.to_string(), r.clone()));
            r.publish(&event, &regarding).await
        }
        other => other,
    };
    match result {
        Err(e) if common::is_conflict(&e) => Ok(()),
        other => other,
    }
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "kube's Controller::run passes the object and the context by value"
)]
fn error_policy(pod: Arc<Pod>, err: &SchedulerError, ctx: Arc<Ctx>) -> Action {
    common::error_policy(pod.as_ref(), err, &ctx.backoffs, "scheduler")
}

/// Runs the scheduler until dropped.
pub async fn run(client: Client, config: crate::Config) {
    let (nodes, writer) = reflector::store::<Node>();
    let node_events = reflector::reflector(
        writer,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()).default_backoff(),
    )
    .filter_map(|ev| futures::future::ready(ev.ok().map(|_| ())));
    let controller = Controller::new(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(1))
        .reconcile_all_on(node_events);
    let ctx = Arc::new(Ctx {
        client,
        nodes,
        pods: controller.store(),
        scheduler_name: config.scheduler_name.clone(),
        assumed: Mutex::new(HashMap::new()),
        events: Mutex::new(HashMap::new()),
        backoffs: Backoffs::default(),
    });
    common::drain("scheduler", controller.run(reconcile, error_policy, ctx)).await;
}

#[cfg(test)]
mod tests;
