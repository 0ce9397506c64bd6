//! The disruption controller: the status of every policy/v1 `PodDisruptionBudget`, which the
//! API server's `pods/eviction` spends (upstream kube-controller-manager's `disruption`).
//!
//! For each budget, [`sync`](reconcile) lists the namespace's pods, keeps those its
//! `spec.selector` selects (an empty selector `{}` selects every pod, a missing one none, as
//! policy/v1 says) and computes, as upstream's `trySync` / `getExpectedPodCount`:
//! - `expectedPods`: for an integer `minAvailable`, the number of selected pods; for a
//!   percentage `minAvailable` or any `maxUnavailable`, the sum of the `spec.replicas` of the
//!   selected pods' controllers (each counted once), found through the pods' controller
//!   `ownerReferences`: a `ReplicaSet` (or the Deployment controlling it), a `StatefulSet`, a
//!   `ReplicationController`. Pods without a controller add nothing (upstream's "unmanaged
//!   pods", logged). A pod whose controller is missing or of another kind fails the sync:
//!   upstream would also ask the generic `/scale` subresource of other kinds; we do not;
//! - `desiredHealthy`: the integer `minAvailable`, a percentage of `expectedPods` rounded up,
//!   or `expectedPods - maxUnavailable` (a percentage rounded up) floored at zero;
//! - `currentHealthy`: selected pods that are Ready, not being deleted, and not in
//!   `disruptedPods` (evicted, deletion not yet seen);
//! - `disruptionsAllowed`: `max(0, currentHealthy - desiredHealthy)`, and zero while
//!   `expectedPods` is zero (a budget whose pods are not there yet is safe);
//! - `disruptedPods`: the eviction's entries, minus pods that are gone or being deleted and
//!   entries older than [`DELETION_TIMEOUT`] (the pod was not deleted after all); the budget
//!   is requeued for when the oldest live entry expires;
//! - the `DisruptionAllowed` condition (`SufficientPods` / `InsufficientPods`, its
//!   `lastTransitionTime` kept while its status stays the same) and `observedGeneration`.
//!
//! When the sync fails (an API error, a pod without a findable controller, a malformed
//! percentage) the budget fails safe, as upstream's `failSafe`: `disruptionsAllowed` 0 and the
//! condition False with reason `SyncFailed`; the error then retries with backoff.
//!
//! The status is written through the status subresource with the budget's resourceVersion
//! (evictions write the same status; a conflict means an eviction won and the budget is
//! recomputed), and only when it changed. Every pod event requeues every budget of the pod's
//! namespace: a watch mapper only sees a pod's new labels, so selecting by them would miss a
//! pod that left a budget. Not done here: upstream's clean-up of stale `DisruptionTarget` pod
//! conditions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{
    PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::common::{self, Backoffs};

/// How long an evicted pod stays in `disruptedPods` (not counted healthy) waiting for its
/// deletion to be seen; upstream's `DeletionTimeout`.
pub const DELETION_TIMEOUT: Duration = Duration::from_mins(2);
/// The condition type the controller sets.
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
/// Reason when disruptions are allowed.
pub const SUFFICIENT_PODS: &str = "SufficientPods";
/// Reason when no disruption is allowed.
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
/// Reason when the status could not be computed.
pub const SYNC_FAILED: &str = "SyncFailed";

/// Requeue delay after a status write lost to a concurrent writer (usually an eviction).
const CONFLICT_RETRY: Duration = Duration::from_millis(100);

/// Why a disruption budget reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum DisruptionError {
    /// An API call failed.
    #[error("{action} for poddisruptionbudget {pdb}: {source}")]
    Api {
        /// What we were doing.
        action: &'static str,
        /// `namespace/name`.
        pdb: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A selected pod names a controller that does not exist or whose scale we cannot read.
    #[error("found no controllers for pod {pod:?}")]
    NoController {
        /// The pod's name.
        pod: String,
    },
    /// `minAvailable` or `maxUnavailable` is a string but not a percentage.
    #[error(
        "invalid value for IntOrString: invalid type: string is not a percentage: {field} {value:?}"
    )]
    InvalidValue {
        /// `minAvailable` or `maxUnavailable`.
        field: &'static str,
        /// The offending value.
        value: String,
    },
}

/// Whether the budget's selector selects these pod labels: a missing selector selects
/// nothing, an empty one everything (policy/v1). Namespaces are the caller's business.
#[must_use]
pub fn selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    let empty = BTreeMap::new();
    common::selector_matches(sel, pod.metadata.labels.as_ref().unwrap_or(&empty))
}

/// Whether `expectedPods` is the controllers' scale (a percentage `minAvailable` or any
/// `maxUnavailable`) rather than the number of selected pods (an integer `minAvailable`).
#[must_use]
pub fn needs_controller_scale(spec: &PodDisruptionBudgetSpec) -> bool {
    spec.max_unavailable.is_some() || matches!(spec.min_available, Some(IntOrString::String(_)))
}

/// Upstream `GetScaledValueFromIntOrPercent(v, total, roundUp=true)`: an integer as is, a
/// percentage of `total` rounded up; any other string is an error.
pub fn scaled_up(v: &IntOrString, total: i32, field: &'static str) -> Result<i32, DisruptionError> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct = s
                .strip_suffix('%')
                .and_then(|p| p.parse::<i64>().ok())
                .ok_or_else(|| DisruptionError::InvalidValue {
                    field,
                    value: s.clone(),
                })?;
            let v = (i64::from(total) * pct + 99).div_euclid(100);
            Ok(i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX }))
        }
    }
}

/// `desiredHealthy` for `expected` pods: the integer `minAvailable`, a percentage of
/// `expected` rounded up, or `expected - maxUnavailable` floored at zero. Neither set: 0.
pub fn desired_healthy(
    spec: &PodDisruptionBudgetSpec,
    expected: i32,
) -> Result<i32, DisruptionError> {
    if let Some(max) = &spec.max_unavailable {
        let max = scaled_up(max, expected, "maxUnavailable")?;
        return Ok(expected.saturating_sub(max).max(0));
    }
    match &spec.min_available {
        Some(min) => scaled_up(min, expected, "minAvailable"),
        None => Ok(0),
    }
}

fn deadline(evicted: &Time) -> Timestamp {
    let timeout = SignedDuration::try_from(DELETION_TIMEOUT).unwrap_or(SignedDuration::MAX);
    evicted.0.checked_add(timeout).unwrap_or(Timestamp::MAX)
}

/// Upstream `buildDisruptedPodMap`: the entries of `disrupted` whose pod is still selected,
/// not being deleted, and evicted less than [`DELETION_TIMEOUT`] before `now`; and when the
/// first of them expires.
#[must_use]
pub fn live_disruptions(
    disrupted: Option<&BTreeMap<String, Time>>,
    selected: &[&Pod],
    now: Timestamp,
) -> (BTreeMap<String, Time>, Option<Timestamp>) {
    let mut live = BTreeMap::new();
    let mut recheck: Option<Timestamp> = None;
    let Some(disrupted) = disrupted else {
        return (live, recheck);
    };
    for pod in selected {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = pod.name_any();
        let Some(evicted) = disrupted.get(&name) else {
            continue;
        };
        let expires = deadline(evicted);
        if expires <= now {
            tracing::info!(pod = %name, "pod was expected to be deleted after its eviction but was not");
            continue;
        }
        recheck = Some(recheck.map_or(expires, |r| r.min(expires)));
        live.insert(name, evicted.clone());
    }
    (live, recheck)
}

/// Upstream `countHealthyPods`: selected pods that are Ready, not being deleted and not
/// waiting for deletion after an eviction (`live` as from [`live_disruptions`]).
#[must_use]
pub fn current_healthy(selected: &[&Pod], live: &BTreeMap<String, Time>) -> i32 {
    let n = selected
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !live.contains_key(&p.name_any()))
        .filter(|p| common::pod_is_ready(p))
        .count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// `apimeta.SetStatusCondition`: replaces the condition of the same type, keeping its
/// `lastTransitionTime` unless the status changes.
pub fn set_condition(conditions: &mut Vec<Condition>, new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        None => conditions.push(new),
        Some(c) => {
            if c.status != new.status {
                c.status = new.status;
                c.last_transition_time = new.last_transition_time;
            }
            c.reason = new.reason;
            c.message = new.message;
            c.observed_generation = new.observed_generation;
        }
    }
}

fn disruption_allowed(
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    Condition {
        type_: DISRUPTION_ALLOWED.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time: Time(now),
    }
}

/// Upstream `updatePdbStatus` + `UpdateDisruptionAllowedCondition`: the status for these
/// counts (`disrupted` as from [`live_disruptions`]), with the condition set at `now`.
#[must_use]
pub fn compute_status(
    pdb: &PodDisruptionBudget,
    expected: i32,
    desired: i32,
    healthy: i32,
    disrupted: BTreeMap<String, Time>,
    now: Timestamp,
) -> PodDisruptionBudgetStatus {
    let allowed = if expected <= 0 {
        0
    } else {
        healthy.saturating_sub(desired).max(0)
    };
    let generation = pdb.metadata.generation;
    let mut conditions = pdb
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let counts = format!("{healthy} of {expected} expected pods healthy, {desired} needed");
    let cond = if allowed > 0 {
        disruption_allowed(
            "True",
            SUFFICIENT_PODS,
            format!("{counts}: {allowed} disruptions allowed"),
            generation,
            now,
        )
    } else {
        disruption_allowed(
            "False",
            INSUFFICIENT_PODS,
            format!("{counts}: no disruptions allowed"),
            generation,
            now,
        )
    };
    set_condition(&mut conditions, cond);
    PodDisruptionBudgetStatus {
        conditions: Some(conditions),
        current_healthy: healthy,
        desired_healthy: desired,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        disruptions_allowed: allowed,
        expected_pods: expected,
        observed_generation: generation,
    }
}

/// Upstream `failSafe`: the old status with no disruption allowed and the condition False,
/// reason `SyncFailed`, saying why. `observedGeneration` stays as it was.
#[must_use]
pub fn fail_safe_status(
    pdb: &PodDisruptionBudget,
    message: &str,
    now: Timestamp,
) -> PodDisruptionBudgetStatus {
    let mut status = pdb.status.clone().unwrap_or_default();
    status.disruptions_allowed = 0;
    let generation = status.observed_generation;
    set_condition(
        status.conditions.get_or_insert_with(Vec::new),
        disruption_allowed("False", SYNC_FAILED, message.to_string(), generation, now),
    );
    status
}

/// Whether writing `new` over `old` would change nothing (missing and empty lists and maps
/// are the same).
#[must_use]
pub fn status_unchanged(
    old: Option<&PodDisruptionBudgetStatus>,
    new: &PodDisruptionBudgetStatus,
) -> bool {
    let norm = |s: &PodDisruptionBudgetStatus| {
        let mut s = s.clone();
        if s.conditions.as_ref().is_some_and(Vec::is_empty) {
            s.conditions = None;
        }
        if s.disrupted_pods.as_ref().is_some_and(BTreeMap::is_empty) {
            s.disrupted_pods = None;
        }
        s
    };
    old.is_some_and(|old| norm(old) == norm(new))
}

struct Ctx {
    client: Client,
    backoffs: Backoffs,
    resync: Duration,
}

/// `(uid, spec.replicas)` of the object whose scale counts for a pod controlled by `r`
/// (the Deployment for a `ReplicaSet` a Deployment controls), or `None` when there is no such
/// object (missing, uid mismatch, unsupported kind); upstream's finders.
async fn controller_scale(
    client: &Client,
    ns: &str,
    r: &OwnerReference,
) -> Result<Option<(String, i32)>, kube::Error> {
    let group = r.api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let apps = matches!(group, "apps" | "extensions");
    let found = |uid: Option<String>, replicas: Option<i32>| {
        uid.filter(|u| *u == r.uid)
            .map(|u| (u, replicas.unwrap_or(1)))
    };
    match r.kind.as_str() {
        "ReplicaSet" if apps => {
            let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
            let Some(rs) = api.get_opt(&r.name).await? else {
                return Ok(None);
            };
            if rs.uid().as_deref() != Some(r.uid.as_str()) {
                return Ok(None);
            }
            match common::controller_of(rs.metadata.owner_references.as_ref()) {
                Some(d) if d.kind == "Deployment" => {
                    let d_group = d.api_version.rsplit_once('/').map_or("", |(g, _)| g);
                    if !matches!(d_group, "apps" | "extensions") {
                        return Ok(None);
                    }
                    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
                    Ok(api.get_opt(&d.name).await?.and_then(|dep| {
                        let uid = dep.uid().filter(|u| *u == d.uid);
                        uid.map(|u| (u, dep.spec.and_then(|s| s.replicas).unwrap_or(1)))
                    }))
                }
                _ => Ok(found(rs.uid(), rs.spec.and_then(|s| s.replicas))),
            }
        }
        "StatefulSet" if group == "apps" => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
            Ok(api
                .get_opt(&r.name)
                .await?
                .and_then(|s| found(s.uid(), s.spec.and_then(|s| s.replicas))))
        }
        "ReplicationController" if group.is_empty() => {
            let api: Api<ReplicationController> = Api::namespaced(client.clone(), ns);
            Ok(api
                .get_opt(&r.name)
                .await?
                .and_then(|rc| found(rc.uid(), rc.spec.and_then(|s| s.replicas))))
        }
        _ => Ok(None),
    }
}

/// Upstream `getExpectedScale`: the summed scale of the selected pods' controllers, each
/// counted once. Pods without a controller count for nothing.
async fn expected_scale(
    client: &Client,
    ns: &str,
    key: &str,
    pods: &[&Pod],
) -> Result<i32, DisruptionError> {
    // Controller ref uid -> uid of the object whose scale counts.
    let mut resolved: BTreeMap<String, String> = BTreeMap::new();
    let mut scales: BTreeMap<String, i32> = BTreeMap::new();
    let mut unmanaged = Vec::new();
    for pod in pods {
        let Some(r) = common::controller_of(pod.metadata.owner_references.as_ref()) else {
            unmanaged.push(pod.name_any());
            continue;
        };
        if resolved.contains_key(&r.uid) {
            continue;
        }
        let scale =
            controller_scale(client, ns, r)
                .await
                .map_err(|source| DisruptionError::Api {
                    action: "get the scale of a pod's controller",
                    pdb: key.to_string(),
                    source,
                })?;
        let Some((uid, replicas)) = scale else {
            return Err(DisruptionError::NoController {
                pod: pod.name_any(),
            });
        };
        resolved.insert(r.uid.clone(), uid.clone());
        scales.insert(uid, replicas);
    }
    if !unmanaged.is_empty() {
        tracing::warn!(pdb = %key, pods = ?unmanaged, "pods selected by the budget have no controller and do not count toward expectedPods; use an integer minAvailable to count them");
    }
    let total: i64 = scales.values().map(|n| i64::from(*n)).sum();
    Ok(i32::try_from(total).unwrap_or(i32::MAX))
}

/// The status this budget should have at `now`, and when to look again (a disrupted pod's
/// entry expiring).
async fn sync(
    client: &Client,
    pdb: &PodDisruptionBudget,
    key: &str,
    now: Timestamp,
) -> Result<(PodDisruptionBudgetStatus, Option<Timestamp>), DisruptionError> {
    let ns = pdb.namespace().unwrap_or_default();
    let spec = pdb.spec.clone().unwrap_or_default();
    let pods = match &spec.selector {
        None => Vec::new(),
        Some(sel) => {
            // Equality terms go to the server; expressions are checked here.
            let match_labels = sel.match_labels.clone().unwrap_or_default();
            let lp = ListParams::default().labels(&common::labels_to_selector(&match_labels));
            Api::<Pod>::namespaced(client.clone(), &ns)
                .list(&lp)
                .await
                .map_err(|source| DisruptionError::Api {
                    action: "list pods",
                    pdb: key.to_string(),
                    source,
                })?
                .items
        }
    };
    let selected: Vec<&Pod> = pods.iter().filter(|p| selects(pdb, p)).collect();
    let expected = if needs_controller_scale(&spec) {
        expected_scale(client, &ns, key, &selected).await?
    } else {
        i32::try_from(selected.len()).unwrap_or(i32::MAX)
    };
    let desired = desired_healthy(&spec, expected)?;
    let disrupted = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref());
    let (live, recheck) = live_disruptions(disrupted, &selected, now);
    let healthy = current_healthy(&selected, &live);
    let status = compute_status(pdb, expected, desired, healthy, live, now);
    Ok((status, recheck))
}

/// What a status write did.
enum Write {
    /// Nothing to change, or the budget is gone.
    Done,
    /// Someone else wrote the budget since we read it.
    Conflict,
}

async fn write_status(
    api: &Api<PodDisruptionBudget>,
    pdb: &PodDisruptionBudget,
    status: PodDisruptionBudgetStatus,
    key: &str,
) -> Result<Write, DisruptionError> {
    if status_unchanged(pdb.status.as_ref(), &status) {
        return Ok(Write::Done);
    }
    let mut obj = pdb.clone();
    obj.status = Some(status);
    // The object carries the resourceVersion we computed from: a concurrent eviction's
    // write makes this a conflict instead of being overwritten.
    match api
        .replace_status(&pdb.name_any(), &PostParams::default(), &obj)
        .await
    {
        Ok(_) => Ok(Write::Done),
        Err(e) if common::is_not_found(&e) => Ok(Write::Done),
        Err(e) if common::is_conflict(&e) => Ok(Write::Conflict),
        Err(source) => Err(DisruptionError::Api {
            action: "update status",
            pdb: key.to_string(),
            source,
        }),
    }
}

fn until(now: Timestamp, then: Timestamp) -> Duration {
    let ms = then.as_millisecond().saturating_sub(now.as_millisecond());
    // A little late rather than early, so the entry has expired when we look.
    Duration::from_millis(u64::try_from(ms).unwrap_or(0)) + Duration::from_millis(100)
}

async fn reconcile(
    pdb: Arc<PodDisruptionBudget>,
    ctx: Arc<Ctx>,
) -> Result<Action, DisruptionError> {
    let ns = pdb.namespace().unwrap_or_default();
    let name = pdb.name_any();
    let key = format!("{ns}/{name}");
    let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &ns);
    // Evictions write this status between watch events: start from the stored copy.
    let Some(pdb) = api
        .get_opt(&name)
        .await
        .map_err(|source| DisruptionError::Api {
            action: "get",
            pdb: key.clone(),
            source,
        })?
    else {
        return Ok(Action::await_change());
    };
    let now = Timestamp::now();
    match sync(&ctx.client, &pdb, &key, now).await {
        Ok((status, recheck)) => {
            if let Write::Conflict = write_status(&api, &pdb, status, &key).await? {
                return Ok(Action::requeue(CONFLICT_RETRY));
            }
            ctx.backoffs.reset(&key);
            let next = recheck.map_or(ctx.resync, |t| until(now, t).min(ctx.resync));
            Ok(Action::requeue(next))
        }
        Err(err) => {
            let status = fail_safe_status(&pdb, &err.to_string(), now);
            if let Write::Conflict = write_status(&api, &pdb, status, &key).await? {
                return Ok(Action::requeue(CONFLICT_RETRY));
            }
            Err(err)
        }
    }
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "kube's Controller::run passes the object and the context by value"
)]
fn error_policy(pdb: Arc<PodDisruptionBudget>, err: &DisruptionError, ctx: Arc<Ctx>) -> Action {
    common::error_policy(pdb.as_ref(), err, &ctx.backoffs, "disruption")
}

/// Runs the disruption controller until dropped.
pub async fn run(client: Client, config: crate::Config) {
    let controller = Controller::new(
        Api::<PodDisruptionBudget>::all(client.clone()),
        watcher::Config::default(),
    );
    let budgets = controller.store();
    let controller = controller.watches(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        move |pod: Pod| {
            let ns = pod.namespace();
            budgets
                .state()
                .into_iter()
                .filter(|pdb| pdb.namespace() == ns)
                .map(|pdb| ObjectRef::from_obj(pdb.as_ref()))
                .collect::<Vec<_>>()
        },
    );
    let ctx = Arc::new(Ctx {
        client,
        backoffs: Backoffs::default(),
        resync: config.resync,
    });
    common::drain("disruption", controller.run(reconcile, error_policy, ctx)).await;
}

#[cfg(test)]
mod tests;
