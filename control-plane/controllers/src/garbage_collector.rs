//! The garbage collector: deletes objects whose owners are all gone, and carries out
//! Foreground (`foregroundDeletion` finalizer) and Orphan (`orphan` finalizer) deletion.
//!
//! One code path serves every namespaced kind through `DynamicObject`: a reflector per kind
//! feeds an in-memory view; each scan computes decisions from that view with pure functions
//! (`decide`, `owner_action`), and re-checks owners with a fresh GET before deleting anything,
//! so a stale or half-loaded cache never causes a delete.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use crate::common;

/// Finalizer asking the GC to delete dependents before the owner goes.
pub const FOREGROUND: &str = "foregroundDeletion";
/// Finalizer asking the GC to detach dependents before the owner goes.
pub const ORPHAN: &str = "orphan";

/// Why a GC action failed.
#[derive(Debug, thiserror::Error)]
#[error("{action} {kind} {namespace}/{name}: {source}")]
pub struct GcError {
    /// What we were doing.
    pub action: &'static str,
    /// The object's kind.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The client error.
    #[source]
    pub source: kube::Error,
}

/// What we know about one owner reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// An object with that kind, name and uid exists.
    Present,
    /// None exists (missing, or the name now has another uid).
    Absent,
    /// A kind we do not track (e.g. cluster-scoped); treated as present.
    Unknown,
}

/// What to do with a dependent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Leave it.
    Keep,
    /// Every owner is gone: delete it.
    Delete,
    /// Some owners are gone: drop these (dangling) owner uids from its references.
    RemoveRefs(Vec<String>),
}

/// Decides a dependent's fate from the states of its owner references.
#[must_use]
pub fn decide(refs: &[OwnerReference], state: impl Fn(&OwnerReference) -> OwnerState) -> Decision {
    if refs.is_empty() {
        return Decision::Keep;
    }
    let states: Vec<OwnerState> = refs.iter().map(&state).collect();
    let dangling: Vec<String> = refs
        .iter()
        .zip(&states)
        .filter(|(_, s)| **s == OwnerState::Absent)
        .map(|(r, _)| r.uid.clone())
        .collect();
    if dangling.len() == refs.len() {
        Decision::Delete
    } else if dangling.is_empty() {
        Decision::Keep
    } else {
        Decision::RemoveRefs(dangling)
    }
}

/// The state of an owner reference given what a lookup by kind+name returned (`None`: not
/// found; `Some(uid)`: found with that uid); `tracked` is whether we know the kind at all.
#[must_use]
pub fn owner_state(
    reference: &OwnerReference,
    tracked: bool,
    found_uid: Option<&str>,
) -> OwnerState {
    match (tracked, found_uid) {
        (false, _) => OwnerState::Unknown,
        (true, Some(uid)) if uid == reference.uid => OwnerState::Present,
        (true, _) => OwnerState::Absent,
    }
}

/// What to do for an owner that is being deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerAction {
    /// Nothing (not being deleted, or no GC finalizer).
    None,
    /// Foreground: delete these dependents (indices into the list given) and wait.
    DeleteDependents(Vec<usize>),
    /// Foreground: wait, dependents are already going.
    Wait,
    /// Orphan: remove the owner from these dependents' references, then the finalizer.
    Orphan(Vec<usize>),
    /// Remove this finalizer from the owner.
    RemoveFinalizer(&'static str),
}

/// Decides the next step for `owner` given its current dependents (`true` = already being
/// deleted).
#[must_use]
pub fn owner_action(deleting: bool, finalizers: &[String], dependents: &[bool]) -> OwnerAction {
    if !deleting {
        return OwnerAction::None;
    }
    if finalizers.iter().any(|f| f == ORPHAN) {
        return if dependents.is_empty() {
            OwnerAction::RemoveFinalizer(ORPHAN)
        } else {
            OwnerAction::Orphan((0..dependents.len()).collect())
        };
    }
    if finalizers.iter().any(|f| f == FOREGROUND) {
        if dependents.is_empty() {
            return OwnerAction::RemoveFinalizer(FOREGROUND);
        }
        let live: Vec<usize> = dependents
            .iter()
            .enumerate()
            .filter(|(_, d)| !**d)
            .map(|(i, _)| i)
            .collect();
        return if live.is_empty() {
            OwnerAction::Wait
        } else {
            OwnerAction::DeleteDependents(live)
        };
    }
    OwnerAction::None
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

struct Kind {
    ar: ApiResource,
    store: Store<DynamicObject>,
}

struct Gc {
    client: Client,
    kinds: Vec<Kind>,
}

struct Item {
    kind: usize,
    obj: Arc<DynamicObject>,
}

impl Gc {
    fn kind_index(&self, api_version: &str, kind: &str) -> Option<usize> {
        self.kinds
            .iter()
            .position(|k| k.ar.kind == kind && k.ar.group == group_of(api_version))
    }

    fn api(&self, kind: usize, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &self.kinds[kind].ar)
    }

    fn err(
        &self,
        action: &'static str,
        kind: usize,
        obj: &DynamicObject,
    ) -> impl FnOnce(kube::Error) -> GcError {
        let kind = self.kinds[kind].ar.kind.clone();
        let namespace = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        move |source| GcError {
            action,
            kind,
            namespace,
            name,
            source,
        }
    }

    /// Owner state from a fresh GET.
    async fn fresh_state(&self, ns: &str, r: &OwnerReference) -> Result<OwnerState, kube::Error> {
        let Some(kind) = self.kind_index(&r.api_version, &r.kind) else {
            return Ok(OwnerState::Unknown);
        };
        let found = self.api(kind, ns).get_opt(&r.name).await?;
        Ok(owner_state(
            r,
            true,
            found.as_ref().and_then(|o| o.metadata.uid.as_deref()),
        ))
    }

    async fn scan(&self) -> Vec<GcError> {
        let mut errors = Vec::new();
        let mut items: Vec<Item> = Vec::new();
        for (i, k) in self.kinds.iter().enumerate() {
            items.extend(k.store.state().into_iter().map(|obj| Item { kind: i, obj }));
        }
        // (kind, namespace, name) -> uid, and owner uid -> dependents.
        let mut by_name: HashMap<(usize, String, String), String> = HashMap::new();
        let mut dependents: HashMap<String, Vec<usize>> = HashMap::new();
        for (idx, item) in items.iter().enumerate() {
            let key = (
                item.kind,
                item.obj.namespace().unwrap_or_default(),
                item.obj.name_any(),
            );
            by_name.insert(key, item.obj.metadata.uid.clone().unwrap_or_default());
            for r in item.obj.metadata.owner_references.iter().flatten() {
                dependents.entry(r.uid.clone()).or_default().push(idx);
            }
        }
        // Dependents whose owners are gone.
        for item in &items {
            let obj = &item.obj;
            let refs = obj.metadata.owner_references.clone().unwrap_or_default();
            if refs.is_empty() || obj.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let ns = obj.namespace().unwrap_or_default();
            let cached = decide(&refs, |r| match self.kind_index(&r.api_version, &r.kind) {
                None => OwnerState::Unknown,
                Some(k) => owner_state(
                    r,
                    true,
                    by_name
                        .get(&(k, ns.clone(), r.name.clone()))
                        .map(String::as_str),
                ),
            });
            if cached == Decision::Keep {
                continue;
            }
            if let Err(e) = self.collect(item, &refs, &ns, &dependents).await {
                errors.push(e);
            }
        }
        // Owners being deleted with a GC finalizer.
        for item in &items {
            let obj = &item.obj;
            let uid = obj.metadata.uid.clone().unwrap_or_default();
            let deps: Vec<&Item> = dependents
                .get(&uid)
                .into_iter()
                .flatten()
                .map(|i| &items[*i])
                .collect();
            let flags: Vec<bool> = deps
                .iter()
                .map(|d| d.obj.metadata.deletion_timestamp.is_some())
                .collect();
            let finalizers = obj.metadata.finalizers.clone().unwrap_or_default();
            let action = owner_action(
                obj.metadata.deletion_timestamp.is_some(),
                &finalizers,
                &flags,
            );
            if let Err(e) = self
                .act_on_owner(item, &uid, action, &deps, &dependents)
                .await
            {
                errors.push(e);
            }
        }
        errors
    }

    async fn collect(
        &self,
        item: &Item,
        refs: &[OwnerReference],
        ns: &str,
        dependents: &HashMap<String, Vec<usize>>,
    ) -> Result<(), GcError> {
        let obj = &item.obj;
        let mut fresh = Vec::with_capacity(refs.len());
        for r in refs {
            fresh.push(self.fresh_state(ns, r).await.map_err(self.err(
                "look up owner of",
                item.kind,
                obj,
            ))?);
        }
        let decision = decide(refs, |r| {
            refs.iter()
                .position(|x| x.uid == r.uid)
                .map_or(OwnerState::Unknown, |i| fresh[i])
        });
        let api = self.api(item.kind, ns);
        match decision {
            Decision::Keep => Ok(()),
            Decision::Delete => {
                let uid = obj.metadata.uid.clone().unwrap_or_default();
                let has_dependents = dependents.get(&uid).is_some_and(|d| !d.is_empty());
                self.delete(item, has_dependents).await?;
                tracing::info!(kind = %self.kinds[item.kind].ar.kind, namespace = %ns, name = %obj.name_any(), "collected orphan");
                Ok(())
            }
            Decision::RemoveRefs(dangling) => {
                let keep: Vec<&OwnerReference> =
                    refs.iter().filter(|r| !dangling.contains(&r.uid)).collect();
                let patch = serde_json::json!({ "metadata": { "ownerReferences": keep } });
                match api
                    .patch(
                        &obj.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) if common::is_not_found(&e) => Ok(()),
                    Err(e) => Err(self.err("remove dangling owners of", item.kind, obj)(e)),
                }
            }
        }
    }

    async fn delete(&self, item: &Item, foreground: bool) -> Result<(), GcError> {
        let obj = &item.obj;
        let api = self.api(item.kind, &obj.namespace().unwrap_or_default());
        let dp = DeleteParams {
            propagation_policy: Some(if foreground {
                PropagationPolicy::Foreground
            } else {
                PropagationPolicy::Background
            }),
            preconditions: Some(Preconditions {
                uid: obj.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&obj.name_any(), &dp).await {
            Ok(_) => Ok(()),
            Err(e) if common::is_not_found(&e) || common::is_conflict(&e) => Ok(()),
            Err(e) => Err(self.err("delete", item.kind, obj)(e)),
        }
    }

    async fn act_on_owner(
        &self,
        owner: &Item,
        owner_uid: &str,
        action: OwnerAction,
        deps: &[&Item],
        dependents: &HashMap<String, Vec<usize>>,
    ) -> Result<(), GcError> {
        match action {
            OwnerAction::None | OwnerAction::Wait => Ok(()),
            OwnerAction::DeleteDependents(which) => {
                for i in which {
                    let d = deps[i];
                    let uid = d.obj.metadata.uid.clone().unwrap_or_default();
                    self.delete(d, dependents.get(&uid).is_some_and(|v| !v.is_empty()))
                        .await?;
                }
                Ok(())
            }
            OwnerAction::Orphan(which) => {
                for i in which {
                    let d = deps[i];
                    let keep: Vec<OwnerReference> = d
                        .obj
                        .metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .filter(|r| r.uid != owner_uid)
                        .cloned()
                        .collect();
                    let patch = serde_json::json!({ "metadata": { "ownerReferences": keep } });
                    let api = self.api(d.kind, &d.obj.namespace().unwrap_or_default());
                    match api
                        .patch(
                            &d.obj.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if common::is_not_found(&e) => {}
                        Err(e) => return Err(self.err("orphan", d.kind, &d.obj)(e)),
                    }
                }
                self.remove_finalizer(owner, ORPHAN).await
            }
            OwnerAction::RemoveFinalizer(f) => self.remove_finalizer(owner, f).await,
        }
    }

    async fn remove_finalizer(&self, owner: &Item, finalizer: &str) -> Result<(), GcError> {
        let obj = &owner.obj;
        let keep: Vec<String> = obj
            .metadata
            .finalizers
            .iter()
            .flatten()
            .filter(|f| *f != finalizer)
            .cloned()
            .collect();
        let patch = serde_json::json!({ "metadata": { "finalizers": keep } });
        let api = self.api(owner.kind, &obj.namespace().unwrap_or_default());
        match api
            .patch(
                &obj.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                tracing::info!(kind = %self.kinds[owner.kind].ar.kind, name = %obj.name_any(), finalizer, "removed finalizer");
                Ok(())
            }
            Err(e) if common::is_not_found(&e) => Ok(()),
            Err(e) => Err(self.err("remove finalizer from", owner.kind, obj)(e)),
        }
    }
}

/// Runs the garbage collector over `kinds` until dropped.
pub async fn run(client: Client, kinds: Vec<ApiResource>) {
    let mut gc = Gc {
        client: client.clone(),
        kinds: Vec::new(),
    };
    let mut streams: Vec<BoxStream<'static, ()>> = Vec::new();
    for ar in kinds {
        let writer = reflector::store::Writer::<DynamicObject>::new(ar.clone());
        let store = writer.as_reader();
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let stream = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default()).default_backoff(),
        )
        .filter_map(|ev| futures::future::ready(ev.ok().map(|_| ())))
        .boxed();
        streams.push(stream);
        gc.kinds.push(Kind { ar, store });
    }
    let mut triggers = futures::stream::select_all(streams);
    let gc = Arc::new(gc);
    let notify = tokio::sync::Notify::new();
    // Drive the watches in the background of this future while waiting for them to load.
    let scans = async {
        for k in &gc.kinds {
            if k.store.wait_until_ready().await.is_err() {
                return;
            }
        }
        tracing::info!(kinds = gc.kinds.len(), "garbage collector caches ready");
        loop {
            for e in gc.scan().await {
                tracing::warn!(error = %e, "garbage collector");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), notify.notified()).await;
        }
    };
    let pump = async {
        while triggers.next().await.is_some() {
            notify.notify_one();
        }
    };
    futures::join!(scans, pump);
}

#[cfg(test)]
mod tests;
