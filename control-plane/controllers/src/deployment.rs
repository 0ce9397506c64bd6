//! The Deployment controller: one `ReplicaSet` per pod template, rolled with `RollingUpdate` or
//! Recreate, status shaped for `kubectl rollout status`.
//!
//! The step math (`new_rs_replicas`, `scale_down_old`, `rolling_step`) follows upstream's
//! `rolling.go` and is unit-tested as a table. `ReplicaSets` are listed from the API server on
//! each reconcile, so the controller never acts on a stale view of its own writes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::common::{self, Backoffs};

/// Label added to a `ReplicaSet`'s selector, template and pods.
pub const HASH_LABEL: &str = "pod-template-hash";
/// Revision annotation on `ReplicaSets` and the Deployment.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// `spec.replicas` of the Deployment when the `ReplicaSet` was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `spec.replicas + maxSurge` when the `ReplicaSet` was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// Why a Deployment reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// An API call failed.
    #[error("{action} for deployment {deployment}: {source}")]
    Api {
        /// What we were doing.
        action: &'static str,
        /// `namespace/name`.
        deployment: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A stable hash of a pod template (FNV-1a 32 over its canonical JSON, plus the collision
/// count as upstream does), rendered like upstream's `rand.SafeEncodeString(fmt.Sprint(h))`.
#[must_use]
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(&serde_json::to_vec(template).unwrap_or_default());
    if let Some(c) = collision_count {
        let mut buf = [0u8; 8];
        buf[..4].copy_from_slice(&c.to_le_bytes());
        feed(&buf);
    }
    h.to_string()
        .bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

fn without_hash(template: &PodTemplateSpec) -> serde_json::Value {
    let mut t = template.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
        if labels.is_empty()
            && let Some(m) = t.metadata.as_mut()
        {
            m.labels = None;
        }
    }
    serde_json::to_value(t).unwrap_or_default()
}

/// Whether two templates are equal apart from the `pod-template-hash` label.
#[must_use]
pub fn templates_equal(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

/// Resolves an int-or-percent against `total`, rounding percents up or down.
#[must_use]
pub fn scaled_value(v: Option<&IntOrString>, default: &str, total: i32, round_up: bool) -> i32 {
    let pct = match v {
        Some(IntOrString::Int(i)) => return (*i).max(0),
        Some(IntOrString::String(s)) => s.as_str(),
        None => default,
    };
    let Some(p) = pct
        .strip_suffix('%')
        .and_then(|p| p.trim().parse::<i64>().ok())
    else {
        return pct.parse().unwrap_or(0);
    };
    let num = i64::from(total) * p;
    let v = if round_up {
        (num + 99).div_euclid(100)
    } else {
        num.div_euclid(100)
    };
    i32::try_from(v.max(0)).unwrap_or(i32::MAX)
}

/// `(maxSurge, maxUnavailable)` for a deployment: surge rounds up, unavailable down, both zero
/// becomes unavailable 1. Recreate has no surge and no unavailability budget.
#[must_use]
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    let spec = d.spec.as_ref();
    let replicas = spec.and_then(|s| s.replicas).unwrap_or(1);
    let strategy = spec.and_then(|s| s.strategy.as_ref());
    if strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate") {
        return (0, 0);
    }
    let ru = strategy.and_then(|s| s.rolling_update.as_ref());
    resolve_fenceposts(
        ru.and_then(|r| r.max_surge.as_ref()),
        ru.and_then(|r| r.max_unavailable.as_ref()),
        replicas,
    )
}

/// Upstream `ResolveFenceposts`.
#[must_use]
pub fn resolve_fenceposts(
    surge: Option<&IntOrString>,
    unavailable: Option<&IntOrString>,
    replicas: i32,
) -> (i32, i32) {
    let surge = scaled_value(surge, "25%", replicas, true);
    let unavailable = scaled_value(unavailable, "25%", replicas, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// Spec and available counts of one `ReplicaSet`, for the step math.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RsCounts {
    /// `spec.replicas`.
    pub spec: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

/// Upstream `NewRSNewReplicas` for `RollingUpdate`: how big the new `ReplicaSet` may be now.
#[must_use]
pub fn new_rs_replicas(replicas: i32, max_surge: i32, new_spec: i32, all_spec: i32) -> i32 {
    if new_spec > replicas {
        return replicas;
    }
    let max_total = replicas + max_surge;
    if all_spec >= max_total {
        return new_spec;
    }
    let up = (max_total - all_spec).min(replicas - new_spec);
    new_spec + up.max(0)
}

/// Upstream `reconcileOldReplicaSets` (cleanupUnhealthyReplicas then
/// scaleDownOldReplicaSetsForRollingUpdate): new sizes of the old `ReplicaSets`, oldest first.
#[must_use]
pub fn scale_down_old(
    replicas: i32,
    max_unavailable: i32,
    new: RsCounts,
    olds: &[RsCounts],
) -> Vec<i32> {
    let mut sizes: Vec<i32> = olds.iter().map(|o| o.spec).collect();
    let old_total: i32 = sizes.iter().sum();
    if old_total == 0 {
        return sizes;
    }
    let all_total = old_total + new.spec;
    let min_available = replicas - max_unavailable;
    let new_unavailable = (new.spec - new.available).max(0);
    let max_scaled_down = all_total - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return sizes;
    }
    // Unhealthy pods of old ReplicaSets go first: they add nothing to availability.
    let mut cleaned = 0;
    for (size, old) in sizes.iter_mut().zip(olds) {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = (*size - old.available).max(0);
        if *size == 0 || unhealthy == 0 {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(unhealthy);
        *size -= down;
        cleaned += down;
    }
    // Then healthy pods, as far as the availability floor allows.
    let available: i32 = olds.iter().map(|o| o.available).sum::<i32>() + new.available;
    if available <= min_available {
        return sizes;
    }
    let total_down = available - min_available;
    let mut done = 0;
    for size in &mut sizes {
        if done >= total_down {
            break;
        }
        if *size == 0 {
            continue;
        }
        let down = (*size).min(total_down - done);
        *size -= down;
        done += down;
    }
    sizes
}

/// One `RollingUpdate` pass: the new `ReplicaSet` moves first; only when it is where it should be
/// do the old ones shrink. Returns `(new size, old sizes)`.
#[must_use]
pub fn rolling_step(
    replicas: i32,
    surge: i32,
    unavailable: i32,
    new: RsCounts,
    olds: &[RsCounts],
) -> (i32, Vec<i32>) {
    let all_spec = new.spec + olds.iter().map(|o| o.spec).sum::<i32>();
    let want_new = new_rs_replicas(replicas, surge, new.spec, all_spec);
    if want_new != new.spec {
        return (want_new, olds.iter().map(|o| o.spec).collect());
    }
    (new.spec, scale_down_old(replicas, unavailable, new, olds))
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn counts(rs: &ReplicaSet) -> RsCounts {
    RsCounts {
        spec: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        available: rs
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0),
    }
}

/// The `ReplicaSet` a deployment's current template runs in (without its generated fields).
#[must_use]
pub fn new_replica_set(d: &Deployment, hash: &str, replicas: i32, revision: i64) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let mut template = spec.template.clone();
    let tmeta = template.metadata.get_or_insert_with(ObjectMeta::default);
    tmeta
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.into());
    let mut selector: LabelSelector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.into());
    let (surge, _) = fenceposts(d);
    let desired = spec.replicas.unwrap_or(1);
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", d.name_any())),
            namespace: d.namespace(),
            labels: tmeta.labels.clone(),
            annotations: Some(BTreeMap::from([
                (REVISION.to_string(), revision.to_string()),
                (DESIRED_REPLICAS.to_string(), desired.to_string()),
                (MAX_REPLICAS.to_string(), (desired + surge).to_string()),
            ])),
            owner_references: Some(vec![common::controller_ref(d)]),
            ..ObjectMeta::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

/// Upstream `calculateStatus` plus the Available and Progressing conditions.
#[must_use]
pub fn compute_status(
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    all: &[&ReplicaSet],
    created: bool,
) -> DeploymentStatus {
    let spec = d.spec.as_ref();
    let replicas = spec.and_then(|s| s.replicas).unwrap_or(1);
    let st = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let available: i32 = all
        .iter()
        .map(|rs| st(rs).available_replicas.unwrap_or(0))
        .sum();
    let total_spec: i32 = all.iter().map(|rs| counts(rs).spec).sum();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(all.iter().map(|rs| st(rs).replicas).sum()),
        updated_replicas: Some(new_rs.map_or(0, |rs| st(rs).replicas)),
        ready_replicas: Some(
            all.iter()
                .map(|rs| st(rs).ready_replicas.unwrap_or(0))
                .sum(),
        ),
        available_replicas: Some(available),
        unavailable_replicas: Some((total_spec - available).max(0)),
        collision_count: d.status.as_ref().and_then(|s| s.collision_count),
        conditions: d.status.as_ref().and_then(|s| s.conditions.clone()),
        terminating_replicas: None,
    };
    let (_, max_unavailable) = fenceposts(d);
    if available >= replicas - max_unavailable {
        set_condition(
            &mut status,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        );
    } else {
        set_condition(
            &mut status,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        );
    }
    let rs_name = new_rs.map(ResourceExt::name_any).unwrap_or_default();
    if spec.and_then(|s| s.paused) == Some(true) {
        set_condition(
            &mut status,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
        );
    } else if status.updated_replicas == Some(replicas)
        && status.replicas == Some(replicas)
        && status.available_replicas == Some(replicas)
        && new_rs.is_some()
    {
        let msg = format!("ReplicaSet \"{rs_name}\" has successfully progressed.");
        set_condition(
            &mut status,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &msg,
        );
    } else if created {
        set_condition(
            &mut status,
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            &format!("Created new replica set \"{rs_name}\""),
        );
    } else if new_rs.is_some() {
        set_condition(
            &mut status,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{rs_name}\" is progressing."),
        );
    }
    status
}

/// Upstream `SetDeploymentCondition`: same status and reason keeps the old condition.
pub fn set_condition(
    status: &mut DeploymentStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
) {
    let conds = status.conditions.get_or_insert_with(Vec::new);
    let now = common::now();
    let old = conds.iter().position(|c| c.type_ == type_);
    if let Some(i) = old {
        let c = &conds[i];
        if c.status == value
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(message)
        {
            return;
        }
    }
    let transition = match old.map(|i| &conds[i]) {
        Some(c) if c.status == value => c.last_transition_time.clone(),
        _ => Some(now.clone()),
    };
    let cond = DeploymentCondition {
        type_: type_.to_string(),
        status: value.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_update_time: Some(now),
        last_transition_time: transition,
    };
    match old {
        Some(i) => conds[i] = cond,
        None => conds.push(cond),
    }
}

fn status_changed(old: Option<&DeploymentStatus>, new: &DeploymentStatus) -> bool {
    let Some(old) = old else { return true };
    let strip = |s: &DeploymentStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_update_time = None;
            c.last_transition_time = None;
        }
        s
    };
    strip(old) != strip(new)
}

/// Old `ReplicaSets` to delete beyond `revisionHistoryLimit` (only empty ones, oldest first).
#[must_use]
pub fn history_to_delete<'a>(olds: &[&'a ReplicaSet], limit: i32) -> Vec<&'a ReplicaSet> {
    let mut empty: Vec<&ReplicaSet> = olds
        .iter()
        .copied()
        .filter(|rs| {
            counts(rs).spec == 0
                && rs.status.as_ref().is_none_or(|s| s.replicas == 0)
                && rs.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let limit = usize::try_from(limit.max(0)).unwrap_or(0);
    if empty.len() <= limit {
        return Vec::new();
    }
    empty.sort_by_key(|rs| {
        (
            revision(rs),
            rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
        )
    });
    let n = empty.len() - limit;
    empty.truncate(n);
    empty
}

struct Ctx {
    client: Client,
    backoffs: Backoffs,
    resync: Duration,
}

struct Pass<'a> {
    d: &'a Deployment,
    rs_api: Api<ReplicaSet>,
    key: String,
}

impl Pass<'_> {
    fn err(&self, action: &'static str) -> impl FnOnce(kube::Error) -> DeploymentError + '_ {
        move |source| DeploymentError::Api {
            action,
            deployment: self.key.clone(),
            source,
        }
    }

    async fn scale(&self, rs: &ReplicaSet, size: i32) -> Result<(), DeploymentError> {
        let desired = self.d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let (surge, _) = fenceposts(self.d);
        let patch = serde_json::json!({
            "metadata": { "annotations": {
                DESIRED_REPLICAS: desired.to_string(),
                MAX_REPLICAS: (desired + surge).to_string(),
            }},
            "spec": { "replicas": size },
        });
        tracing::info!(deployment = %self.key, replicaset = %rs.name_any(), from = counts(rs).spec, to = size, "scaling");
        self.rs_api
            .patch(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(self.err("scale replicaset"))?;
        Ok(())
    }
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, DeploymentError> {
    let ns = d.namespace().unwrap_or_default();
    let key = format!("{ns}/{}", d.name_any());
    let Some(spec) = d.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    if d.metadata.deletion_timestamp.is_some() || common::selector_is_empty(&spec.selector) {
        return Ok(Action::await_change());
    }
    let pass = Pass {
        d: &d,
        rs_api: Api::namespaced(ctx.client.clone(), &ns),
        key: key.clone(),
    };
    let d_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let uid = d.uid().unwrap_or_default();
    let listed = pass
        .rs_api
        .list(&ListParams::default())
        .await
        .map_err(pass.err("list replicasets"))?
        .items;
    let owned: Vec<&ReplicaSet> = listed
        .iter()
        .filter(|rs| common::is_controlled_by(rs.metadata.owner_references.as_ref(), &uid))
        .collect();
    let collision = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = compute_hash(&spec.template, collision);
    let mut new_rs: Option<ReplicaSet> = owned
        .iter()
        .find(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| templates_equal(t, &spec.template))
        })
        .or_else(|| {
            owned
                .iter()
                .find(|rs| rs.labels().get(HASH_LABEL) == Some(&hash))
        })
        .map(|rs| (*rs).clone());
    let mut olds: Vec<&ReplicaSet> = owned
        .iter()
        .copied()
        .filter(|rs| new_rs.as_ref().is_none_or(|n| n.uid() != rs.uid()))
        .collect();
    olds.sort_by_key(|rs| {
        (
            rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
            revision(rs),
        )
    });
    let max_old_revision = olds.iter().map(|rs| revision(rs)).max().unwrap_or(0);
    let replicas = spec.replicas.unwrap_or(1);
    let (surge, unavailable) = fenceposts(&d);
    let paused = spec.paused == Some(true);
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let mut created = false;
    let mut changed = false;

    if !paused {
        // Make sure the new ReplicaSet exists (Recreate waits until old pods are gone).
        let old_pods: i32 = olds
            .iter()
            .map(|rs| rs.status.as_ref().map_or(0, |s| s.replicas))
            .sum();
        let old_active = olds.iter().any(|rs| counts(rs).spec > 0);
        if recreate && old_active {
            for rs in olds.iter().filter(|rs| counts(rs).spec > 0) {
                pass.scale(rs, 0).await?;
            }
            changed = true;
        } else if new_rs.is_none() && !(recreate && old_pods > 0) {
            let size = if recreate {
                replicas
            } else {
                let all_spec: i32 = olds.iter().map(|rs| counts(rs).spec).sum();
                new_rs_replicas(replicas, surge, 0, all_spec)
            };
            let want = new_replica_set(&d, &hash, size, max_old_revision + 1);
            match pass.rs_api.create(&PostParams::default(), &want).await {
                Ok(rs) => {
                    tracing::info!(deployment = %key, replicaset = %rs.name_any(), replicas = size, "created new replicaset");
                    new_rs = Some(rs);
                    created = true;
                    changed = true;
                }
                Err(e) if common::is_conflict(&e) => {
                    let name = want.name_any();
                    let existing = pass
                        .rs_api
                        .get(&name)
                        .await
                        .map_err(pass.err("get replicaset"))?;
                    let ours =
                        common::is_controlled_by(existing.metadata.owner_references.as_ref(), &uid);
                    if ours {
                        new_rs = Some(existing);
                    } else {
                        let patch = serde_json::json!({ "status": { "collisionCount": collision.unwrap_or(0) + 1 } });
                        d_api
                            .patch_status(
                                &d.name_any(),
                                &PatchParams::default(),
                                &Patch::Merge(&patch),
                            )
                            .await
                            .map_err(pass.err("bump collisionCount"))?;
                        return Ok(Action::requeue(Duration::from_millis(200)));
                    }
                }
                Err(e) => return Err(pass.err("create replicaset")(e)),
            }
        } else if let Some(rs) = new_rs.clone() {
            if revision(&rs) <= max_old_revision {
                let patch = serde_json::json!({ "metadata": { "annotations": { REVISION: (max_old_revision + 1).to_string() } } });
                let rs = pass
                    .rs_api
                    .patch(
                        &rs.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                    .map_err(pass.err("bump revision"))?;
                new_rs = Some(rs);
            }
            if recreate {
                if old_pods == 0 && counts(new_rs.as_ref().unwrap_or(&rs)).spec != replicas {
                    pass.scale(new_rs.as_ref().unwrap_or(&rs), replicas).await?;
                    changed = true;
                }
            } else {
                let new_counts = counts(new_rs.as_ref().unwrap_or(&rs));
                let old_counts: Vec<RsCounts> = olds.iter().map(|rs| counts(rs)).collect();
                let (want_new, want_olds) =
                    rolling_step(replicas, surge, unavailable, new_counts, &old_counts);
                if want_new == new_counts.spec {
                    for (rs, size) in olds.iter().zip(want_olds) {
                        if size != counts(rs).spec {
                            pass.scale(rs, size).await?;
                            changed = true;
                        }
                    }
                } else {
                    pass.scale(new_rs.as_ref().unwrap_or(&rs), want_new).await?;
                    changed = true;
                }
            }
        }
        // Revision annotation on the Deployment follows the new ReplicaSet.
        if let Some(rs) = &new_rs {
            let rev = revision(rs).to_string();
            if d.annotations().get(REVISION) != Some(&rev) {
                let patch = serde_json::json!({ "metadata": { "annotations": { REVISION: rev } } });
                d_api
                    .patch(
                        &d.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                    .map_err(pass.err("annotate deployment"))?;
            }
        }
    }

    // History cleanup.
    let limit = spec.revision_history_limit.unwrap_or(10);
    for rs in history_to_delete(&olds, limit) {
        match pass
            .rs_api
            .delete(&rs.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(e) if common::is_not_found(&e) => {}
            Err(e) => return Err(pass.err("delete old replicaset")(e)),
        }
    }

    let mut all: Vec<&ReplicaSet> = olds.clone();
    if let Some(rs) = &new_rs {
        all.push(rs);
    }
    let status = compute_status(&d, new_rs.as_ref(), &all, created);
    if status_changed(d.status.as_ref(), &status) {
        let patch = serde_json::json!({ "status": status });
        match d_api
            .patch_status(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if common::is_not_found(&e) => {}
            Err(e) => return Err(pass.err("update status")(e)),
        }
    }
    ctx.backoffs.reset(&key);
    let done = status.updated_replicas == Some(replicas)
        && status.replicas == Some(replicas)
        && status.available_replicas == Some(replicas);
    if changed || !done {
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    Ok(Action::requeue(ctx.resync))
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "kube's Controller::run passes the object and the context by value"
)]
fn error_policy(d: Arc<Deployment>, err: &DeploymentError, ctx: Arc<Ctx>) -> Action {
    common::error_policy(d.as_ref(), err, &ctx.backoffs, "deployment")
}

/// Runs the Deployment controller until dropped.
pub async fn run(client: Client, config: crate::Config) {
    let controller = Controller::new(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let ctx = Arc::new(Ctx {
        client,
        backoffs: Backoffs::default(),
        resync: config.resync,
    });
    common::drain("deployment", controller.run(reconcile, error_policy, ctx)).await;
}

#[cfg(test)]
mod tests;
