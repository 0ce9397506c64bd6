//! Serving `CustomResourceDefinition`s: a CRD that is written is installed into the registry
//! at once (its resources are served from the next request on) and marked `Established`; a
//! watch on the CRDs keeps every API server sharing the store in step; a deleted CRD's
//! objects are removed before its cleanup finalizer is dropped.

use std::sync::Arc;

use futures::StreamExt;
use serde_json::{Value, json};
use sluice_store::{Event, StoreError};

use super::status::ApiResult;
use super::{ApiServer, decorate, encode, now};
use crate::registry::Resource;
use crate::registry::custom;
use crate::registry::kinds::customresourcedefinition::CLEANUP_FINALIZER;

fn is_crds(r: &Resource) -> bool {
    r.group == "apiextensions.k8s.io" && r.plural == "customresourcedefinitions"
}

fn group_plural(crd: &Value) -> (String, String) {
    (
        crd["spec"]["group"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        crd["spec"]["names"]["plural"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn condition(ty: &str, reason: &str, message: &str) -> Value {
    json!({"type": ty, "status": "True", "lastTransitionTime": now(), "reason": reason, "message": message})
}

impl ApiServer {
    /// After any successful write of an object (bookkeeping other resources hang off).
    pub(super) async fn after_write(&self, r: &Resource, obj: &Value) {
        if is_crds(r) && obj["metadata"]["deletionTimestamp"].is_null() {
            self.install_crd(obj);
            if let Err(e) = self.establish(obj).await {
                tracing::warn!(error = %e.message, "marking a CRD established failed");
            }
        }
    }

    /// Serve (or stop serving) the resources a CRD defines.
    fn install_crd(&self, crd: &Value) {
        let (group, plural) = group_plural(crd);
        if group.is_empty() || plural.is_empty() {
            return;
        }
        let deleting = !crd["metadata"]["deletionTimestamp"].is_null();
        let resources = if deleting {
            Vec::new()
        } else {
            custom::resources(crd)
        };
        self.registry.install(&group, &plural, resources);
    }

    /// Write `acceptedNames`, `storedVersions` and the `NamesAccepted`/`Established`
    /// conditions, once.
    async fn establish(&self, crd: &Value) -> ApiResult<()> {
        let r = self.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions");
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        let retries = super::verbs::Retries::new();
        loop {
            let Some(kv) = self.store.get(&r.key(None, name)).await? else {
                return Ok(());
            };
            let mut cur = decorate(&r, &kv)?;
            let storage: Vec<Value> = cur["spec"]["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["storage"].as_bool() == Some(true))
                .map(|v| v["name"].clone())
                .collect();
            let mut stored: Vec<Value> = cur["status"]["storedVersions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for v in storage {
                if !stored.contains(&v) {
                    stored.push(v);
                }
            }
            let status = json!({
                "acceptedNames": cur["spec"]["names"],
                "storedVersions": stored,
                "conditions": [
                    condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                    condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                ],
            });
            let same = cur["status"]["acceptedNames"] == status["acceptedNames"]
                && cur["status"]["storedVersions"] == status["storedVersions"]
                && cur["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
                });
            if same {
                return Ok(());
            }
            cur["status"] = status;
            match self
                .store
                .update(&kv.key, encode(&r, &cur), kv.mod_revision)
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => retries.again(&r, name).await?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A CRD marked for deletion: delete every object it defines, stop serving it, then drop
    /// the cleanup finalizer (deleting the CRD if nothing else holds it).
    async fn clean_up_crd(&self, crd: &Value) -> ApiResult<()> {
        let (group, plural) = group_plural(crd);
        self.registry.install(&group, &plural, Vec::new());
        let prefix = format!("/registry/{plural}.{group}/");
        let objects = self.store.range(&prefix, None, None, None).await?;
        for kv in &objects.kvs {
            match self.store.delete(&kv.key, None).await {
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let r = self.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions");
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        let retries = super::verbs::Retries::new();
        loop {
            let Some(kv) = self.store.get(&r.key(None, name)).await? else {
                return Ok(());
            };
            let mut cur = decorate(&r, &kv)?;
            let fins: Vec<Value> = cur["metadata"]["finalizers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|f| *f != CLEANUP_FINALIZER)
                .cloned()
                .collect();
            let res = if fins.is_empty() {
                self.store
                    .delete(&kv.key, Some(kv.mod_revision))
                    .await
                    .map(|_| ())
            } else {
                cur["metadata"]["finalizers"] = Value::Array(fins);
                self.store
                    .update(&kv.key, encode(&r, &cur), kv.mod_revision)
                    .await
                    .map(|_| ())
            };
            match res {
                Ok(()) | Err(StoreError::NotFound { .. }) => return Ok(()),
                Err(StoreError::Conflict { .. }) => retries.again(&r, name).await?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn on_crd(&self, crd: &Value) {
        if crd["metadata"]["deletionTimestamp"].is_null() {
            self.install_crd(crd);
        } else if let Err(e) = self.clean_up_crd(crd).await {
            tracing::warn!(error = %e.message, "cleaning up a deleted CRD failed; retried on its next change");
        }
    }

    /// At start: serve every stored CRD; then follow the CRDs (writes by this or another API
    /// server on the same store) for as long as the server runs.
    pub(super) async fn serve_crds(self: &Arc<Self>) -> ApiResult<()> {
        let r = self.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions");
        let all = self.store.range(&r.key_prefix(), None, None, None).await?;
        for kv in &all.kvs {
            let crd = decorate(&r, kv)?;
            self.on_crd(&crd).await;
        }
        let mut stream = self.store.watch(&r.key_prefix(), all.revision).await?;
        let srv = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(ev) = stream.next().await {
                let Some(srv) = srv.upgrade() else { return };
                match ev {
                    Ok(Event::Put { kv, .. }) => {
                        if let Ok(crd) = decorate(&r, &kv) {
                            srv.on_crd(&crd).await;
                        }
                    }
                    Ok(Event::Delete { prev, .. }) => {
                        if let Ok(crd) = decorate(&r, &prev) {
                            let (group, plural) = group_plural(&crd);
                            srv.registry.install(&group, &plural, Vec::new());
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "CRD watch ended; restart the API server to follow CRDs again");
                        return;
                    }
                }
            }
        });
        Ok(())
    }
}
