//! The namespace controller: empties a terminating namespace, then removes the `kubernetes`
//! finalizer through the `finalize` subresource so the API server can delete it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::common::{self, Backoffs};

/// The finalizer the API server puts in `spec.finalizers` of every namespace.
pub const FINALIZER: &str = "kubernetes";

/// Why a namespace reconcile failed.
#[derive(Debug, thiserror::Error)]
#[error("{action} in namespace {namespace}: {source}")]
pub struct NamespaceError {
    /// What we were doing.
    pub action: String,
    /// The namespace.
    pub namespace: String,
    /// The client error.
    #[source]
    pub source: kube::Error,
}

/// Whether the namespace is terminating and still waits for us.
#[must_use]
pub fn needs_cleanup(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        && ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

/// The namespace with our finalizer removed from `spec.finalizers` (the body of the finalize PUT).
#[must_use]
pub fn without_finalizer(ns: &Namespace) -> Namespace {
    let mut out = ns.clone();
    if let Some(f) = out.spec.as_mut().and_then(|s| s.finalizers.as_mut()) {
        f.retain(|f| f != FINALIZER);
    }
    out
}

struct Ctx {
    client: Client,
    kinds: Vec<ApiResource>,
    backoffs: Backoffs,
}

/// Deletes what is left of one kind; returns how many objects remain (including those already
/// being deleted).
async fn purge(client: &Client, ns: &str, ar: &ApiResource) -> Result<usize, NamespaceError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    let err = |action: &str, source| NamespaceError {
        action: format!("{action} {}", ar.plural),
        namespace: ns.to_string(),
        source,
    };
    let items = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) if matches!(common::api_code(&e), Some(404 | 405)) => return Ok(0),
        Err(e) => return Err(err("list", e)),
    };
    for obj in items
        .iter()
        .filter(|o| o.metadata.deletion_timestamp.is_none())
    {
        match api
            .delete(&obj.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(e) if common::is_not_found(&e) || common::is_conflict(&e) => {}
            Err(e) => return Err(err("delete", e)),
        }
    }
    Ok(items.len())
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, NamespaceError> {
    if !needs_cleanup(&ns) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let mut remaining = 0;
    for ar in &ctx.kinds {
        remaining += purge(&ctx.client, &name, ar).await?;
    }
    if remaining > 0 {
        tracing::debug!(namespace = %name, remaining, "waiting for namespace contents to go");
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    match api
        .replace_subresource(
            "finalize",
            &name,
            &PostParams::default(),
            &without_finalizer(&ns),
        )
        .await
    {
        Ok(_) => tracing::info!(namespace = %name, "namespace finalized"),
        Err(e) if common::is_not_found(&e) => {}
        Err(source) => {
            return Err(NamespaceError {
                action: "finalize".into(),
                namespace: name,
                source,
            });
        }
    }
    ctx.backoffs.reset(&name);
    Ok(Action::await_change())
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "kube's Controller::run passes the object and the context by value"
)]
fn error_policy(ns: Arc<Namespace>, err: &NamespaceError, ctx: Arc<Ctx>) -> Action {
    common::error_policy(ns.as_ref(), err, &ctx.backoffs, "namespace")
}

/// Runs the namespace controller until dropped.
pub async fn run(client: Client, _config: crate::Config, kinds: Vec<ApiResource>) {
    let controller = Controller::new(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    );
    let ctx = Arc::new(Ctx {
        client,
        kinds,
        backoffs: Backoffs::default(),
    });
    common::drain("namespace", controller.run(reconcile, error_policy, ctx)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finalize_body() {
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": { "name": "x", "deletionTimestamp": "2024-01-01T00:00:00Z" },
            "spec": { "finalizers": ["kubernetes", "other"] },
            "status": { "phase": "Terminating" }
        }))
        .unwrap();
        assert!(needs_cleanup(&ns));
        let done = without_finalizer(&ns);
        assert_eq!(
            done.spec.as_ref().unwrap().finalizers.as_deref(),
            Some(&["other".to_string()][..])
        );
        assert!(!needs_cleanup(&done));
        let live: Namespace = serde_json::from_value(
            json!({ "metadata": { "name": "y" }, "spec": { "finalizers": ["kubernetes"] } }),
        )
        .unwrap();
        assert!(!needs_cleanup(&live));
    }

    #[tokio::test]
    async fn empties_then_finalizes() {
        use sluice_test_util::fake_api::FakeApi;
        let fake = FakeApi::default();
        let ns = json!({ "metadata": { "name": "x", "deletionTimestamp": "2024-01-01T00:00:00Z" },
            "spec": { "finalizers": ["kubernetes"] }, "status": { "phase": "Terminating" } });
        fake.insert("api/v1/namespaces", ns.clone());
        fake.insert(
            "api/v1/namespaces/x/configmaps",
            json!({ "metadata": { "name": "cm", "namespace": "x" } }),
        );
        let ctx = Arc::new(Ctx {
            client: fake.client(),
            kinds: crate::kinds::fallback_kinds(),
            backoffs: Backoffs::default(),
        });
        let ns: Namespace = serde_json::from_value(ns).unwrap();
        let action = reconcile(Arc::new(ns.clone()), ctx.clone()).await.unwrap();
        assert_eq!(action, Action::requeue(Duration::from_secs(1)));
        assert_eq!(
            fake.take_writes(),
            vec!["DELETE /api/v1/namespaces/x/configmaps/cm".to_string()]
        );
        reconcile(Arc::new(ns), ctx).await.unwrap();
        assert_eq!(
            fake.take_writes(),
            vec!["PUT /api/v1/namespaces/x/finalize".to_string()]
        );
        assert_eq!(
            fake.get("api/v1/namespaces/x").unwrap()["spec"]["finalizers"],
            json!([])
        );
    }
}
