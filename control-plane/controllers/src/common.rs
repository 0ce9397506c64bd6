//! Helpers shared by the controllers: API error classification, label selectors, owner
//! references, pod state, per-object backoff and the watch-loop driver.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::runtime::controller::Action;

/// The HTTP status code of an API error, if the server answered one.
#[must_use]
pub fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// 404 Not Found.
#[must_use]
pub fn is_not_found(err: &kube::Error) -> bool {
    api_code(err) == Some(404)
}

/// 409 Conflict / `AlreadyExists`.
#[must_use]
pub fn is_conflict(err: &kube::Error) -> bool {
    api_code(err) == Some(409)
}

/// Whether a label selector matches a label set. An empty selector matches everything.
#[must_use]
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(ml) = &sel.match_labels
        && ml.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return false;
    }
    for expr in sel.match_expressions.iter().flatten() {
        let values = expr.values.as_deref().unwrap_or_default();
        let value = labels.get(&expr.key);
        let ok = match expr.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether a selector has no terms at all (upstream refuses to act on those).
#[must_use]
pub fn selector_is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

/// Renders equality terms as a label selector string (`a=b,c=d`) for LIST requests.
#[must_use]
pub fn labels_to_selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The owner reference marked `controller: true`, if any.
#[must_use]
pub fn controller_of(refs: Option<&Vec<OwnerReference>>) -> Option<&OwnerReference> {
    refs?.iter().find(|r| r.controller == Some(true))
}

/// A controller owner reference (`controller` and `blockOwnerDeletion` set) pointing at `owner`.
#[must_use]
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).to_string(),
        kind: K::kind(&()).to_string(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `obj` is controlled by the object with this uid.
#[must_use]
pub fn is_controlled_by(refs: Option<&Vec<OwnerReference>>, uid: &str) -> bool {
    controller_of(refs).is_some_and(|r| r.uid == uid)
}

/// `Succeeded` or `Failed`.
#[must_use]
pub fn pod_is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The pod's phase, `Pending` when unset.
#[must_use]
pub fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Ready condition is True; returns since when (if known).
#[must_use]
pub fn pod_ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    let cond = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (cond.status == "True").then(|| cond.last_transition_time.as_ref().map(|t| t.0))
}

/// Whether the pod's Ready condition is True.
#[must_use]
pub fn pod_is_ready(pod: &Pod) -> bool {
    pod_ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` at `now`.
#[must_use]
pub fn pod_is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match pod_ready_since(pod) {
        Some(_) if min_ready_seconds <= 0 => true,
        None | Some(None) => false,
        Some(Some(since)) => since.as_second() + i64::from(min_ready_seconds) <= now.as_second(),
    }
}

/// The current time as a Kubernetes `Time`.
#[must_use]
pub fn now() -> Time {
    Time(Timestamp::now())
}

/// Per-object exponential backoff for error policies: 1 s doubling to 60 s.
#[derive(Debug, Default)]
pub struct Backoffs {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoffs {
    /// Records a failure for `key` and returns how long to wait.
    pub fn fail(&self, key: &str) -> Duration {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(*n)
    }

    /// Forgets the failures of `key` (after a success).
    pub fn reset(&self, key: &str) {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(key);
    }
}

/// Delay after `n` consecutive failures: 1 s, 2 s, 4 s, ... capped at 60 s.
#[must_use]
pub fn backoff_delay(n: u32) -> Duration {
    let secs = 1u64 << n.saturating_sub(1).min(6);
    Duration::from_secs(secs.min(60))
}

/// A stable key for an object: `namespace/name`.
#[must_use]
pub fn key_of<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or(""),
        obj.meta().name.as_deref().unwrap_or("")
    )
}

/// Error policy shared by the controllers: log, back off per object.
pub fn error_policy<K: Resource, E: std::error::Error>(
    obj: &K,
    err: &E,
    backoffs: &Backoffs,
    what: &str,
) -> Action {
    let key = key_of(obj);
    let delay = backoffs.fail(&key);
    tracing::warn!(controller = what, object = %key, error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Drains a controller's result stream, logging failures, until it ends.
pub async fn drain<S, T, E>(what: &'static str, stream: S)
where
    S: futures::Stream<Item = Result<T, E>>,
    E: Debug,
{
    stream
        .for_each(|res| async move {
            if let Err(err) = res {
                tracing::debug!(controller = what, error = ?err, "controller event");
            }
        })
        .await;
    tracing::info!(controller = what, "controller stopped");
}

/// A ready reflector store holding `objects` (tests).
#[cfg(test)]
pub fn test_store<K>(dyntype: K::DynamicType, objects: Vec<K>) -> kube::runtime::reflector::Store<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    use kube::runtime::watcher::Event;
    let mut w = kube::runtime::reflector::store::Writer::new(dyntype);
    w.apply_watcher_event(&Event::Init);
    for o in objects {
        w.apply_watcher_event(&Event::InitApply(o));
    }
    w.apply_watcher_event(&Event::InitDone);
    let reader = w.as_reader();
    // Keep the writer alive for the life of the test process so readers stay ready.
    std::mem::forget(w);
    reader
}
