//! The `ReplicaSet` controller: keeps `spec.replicas` pods that match the selector and are
//! controlled by the `ReplicaSet`, and reports counts in the status subresource.
//!
//! Pods are listed from the API server on each reconcile (not from a cache), so a pod created
//! a moment ago is always seen and no "expectations" bookkeeping is needed.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::common::{self, Backoffs};

/// At most this many pods are created or deleted per reconcile; the rest follow on requeue.
pub const BURST: usize = 100;

/// Why a `ReplicaSet` reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaSetError {
    /// An API call failed.
    #[error("{action} for replicaset {rs}: {source}")]
    Api {
        /// What we were doing.
        action: &'static str,
        /// `namespace/name`.
        rs: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

/// The pod a `ReplicaSet` creates: its template, `generateName: <rs>-`, and a controller ref.
#[must_use]
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.namespace(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![common::controller_ref(rs)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Deletion preference: smaller sorts first (is deleted first). Unscheduled < scheduled,
/// Pending < Unknown < Running, not ready < ready, ready for less time first, more restarts
/// first, newer first.
fn deletion_key(pod: &Pod) -> impl Ord {
    let scheduled = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let phase = match common::pod_phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    };
    let ready = common::pod_ready_since(pod);
    let is_ready = ready.is_some();
    let ready_since = ready
        .flatten()
        .map_or(i64::MIN, k8s_openapi::jiff::Timestamp::as_second);
    let restarts: i32 = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum());
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(i64::MAX, |t| t.0.as_second());
    (
        scheduled,
        phase,
        is_ready,
        Reverse(ready_since),
        Reverse(restarts),
        Reverse(created),
        pod.name_any(),
    )
}

/// The `n` pods to delete first, in deletion order.
#[must_use]
pub fn pods_to_delete<'a>(pods: &[&'a Pod], n: usize) -> Vec<&'a Pod> {
    let mut sorted: Vec<&Pod> = pods.to_vec();
    sorted.sort_by_cached_key(|p| deletion_key(p));
    sorted.truncate(n);
    sorted
}

/// Pods that count toward the `ReplicaSet`: not being deleted and not terminal.
#[must_use]
pub fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && !common::pod_is_terminal(pod)
}

/// The status for these active pods at `now`, and when to look again for pods that are ready
/// but not yet available (minReadySeconds).
#[must_use]
pub fn compute_status(
    rs: &ReplicaSet,
    active: &[&Pod],
    now: Timestamp,
) -> (ReplicaSetStatus, Option<Duration>) {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let fully_labeled = active
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.as_ref();
            template_labels
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .count();
    let ready = active.iter().filter(|p| common::pod_is_ready(p)).count();
    let available = active
        .iter()
        .filter(|p| common::pod_is_available(p, min_ready, now))
        .count();
    let recheck = (ready > available)
        .then(|| Duration::from_secs(u64::try_from(min_ready.max(1)).unwrap_or(1)));
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let old = rs.status.clone().unwrap_or_default();
    let status = ReplicaSetStatus {
        replicas: count(active.len()),
        fully_labeled_replicas: Some(count(fully_labeled)),
        ready_replicas: Some(count(ready)),
        available_replicas: Some(count(available)),
        observed_generation: rs.metadata.generation,
        conditions: old.conditions,
        terminating_replicas: old.terminating_replicas,
    };
    (status, recheck)
}

fn status_eq(a: &ReplicaSetStatus, b: &ReplicaSetStatus) -> bool {
    let z = |v: Option<i32>| v.unwrap_or(0);
    a.replicas == b.replicas
        && z(a.fully_labeled_replicas) == z(b.fully_labeled_replicas)
        && z(a.ready_replicas) == z(b.ready_replicas)
        && z(a.available_replicas) == z(b.available_replicas)
        && a.observed_generation == b.observed_generation
}

struct Ctx {
    client: Client,
    backoffs: Backoffs,
    resync: Duration,
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, ReplicaSetError> {
    let ns = rs.namespace().unwrap_or_default();
    let key = format!("{ns}/{}", rs.name_any());
    let err = |action: &'static str| {
        let rs = key.clone();
        move |source| ReplicaSetError::Api { action, rs, source }
    };
    if rs.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(spec) = rs.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    if common::selector_is_empty(&spec.selector) {
        return Ok(Action::await_change());
    }
    let uid = rs.uid().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let match_labels = spec.selector.match_labels.clone().unwrap_or_default();
    let lp = ListParams::default().labels(&common::labels_to_selector(&match_labels));
    let pods = pods_api.list(&lp).await.map_err(err("list pods"))?.items;
    let empty = BTreeMap::new();
    let owned: Vec<&Pod> = pods
        .iter()
        .filter(|p| common::is_controlled_by(p.metadata.owner_references.as_ref(), &uid))
        .filter(|p| {
            common::selector_matches(&spec.selector, p.metadata.labels.as_ref().unwrap_or(&empty))
        })
        .collect();
    let active: Vec<&Pod> = owned.iter().copied().filter(|p| is_active(p)).collect();
    let want = usize::try_from(spec.replicas.unwrap_or(1).max(0)).unwrap_or(0);
    let mut more_work = false;
    if active.len() < want {
        let missing = want - active.len();
        more_work = missing > BURST;
        let pod = pod_from_template(&rs);
        for _ in 0..missing.min(BURST) {
            pods_api
                .create(&PostParams::default(), &pod)
                .await
                .map_err(err("create pod"))?;
        }
        tracing::info!(replicaset = %key, created = missing.min(BURST), "scaled up");
    } else if active.len() > want {
        let surplus = active.len() - want;
        more_work = surplus > BURST;
        for pod in pods_to_delete(&active, surplus.min(BURST)) {
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: pod.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::background()
            };
            match pods_api.delete(&pod.name_any(), &dp).await {
                Ok(_) => {}
                Err(e) if common::is_not_found(&e) || common::is_conflict(&e) => {}
                Err(e) => return Err(err("delete pod")(e)),
            }
        }
        tracing::info!(replicaset = %key, deleted = surplus.min(BURST), "scaled down");
    }
    let (status, recheck) = compute_status(&rs, &active, Timestamp::now());
    if !rs
        .status
        .as_ref()
        .is_some_and(|old| status_eq(old, &status))
    {
        let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = serde_json::json!({ "status": status });
        match rs_api
            .patch_status(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if common::is_not_found(&e) => {}
            Err(e) => return Err(err("update status")(e)),
        }
    }
    ctx.backoffs.reset(&format!("{ns}/{}", rs.name_any()));
    if more_work {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    Ok(Action::requeue(recheck.unwrap_or(ctx.resync)))
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "kube's Controller::run passes the object and the context by value"
)]
fn error_policy(rs: Arc<ReplicaSet>, err: &ReplicaSetError, ctx: Arc<Ctx>) -> Action {
    common::error_policy(rs.as_ref(), err, &ctx.backoffs, "replicaset")
}

/// Runs the `ReplicaSet` controller until dropped.
pub async fn run(client: Client, config: crate::Config) {
    let controller = Controller::new(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Pod>::all(client.clone()), watcher::Config::default());
    let ctx = Arc::new(Ctx {
        client,
        backoffs: Backoffs::default(),
        resync: config.resync,
    });
    common::drain("replicaset", controller.run(reconcile, error_policy, ctx)).await;
}

#[cfg(test)]
mod tests;
