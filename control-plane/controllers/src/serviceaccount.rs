//! The service account controller: a `default` `ServiceAccount` in every namespace that is not
//! terminating.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::common::{self, Backoffs};

/// Why a service account reconcile failed.
#[derive(Debug, thiserror::Error)]
#[error("ensure default serviceaccount in {namespace}: {source}")]
pub struct ServiceAccountError {
    /// The namespace.
    pub namespace: String,
    /// The client error.
    #[source]
    pub source: kube::Error,
}

/// Whether the namespace should have its default account (it is not being deleted).
#[must_use]
pub fn wants_default(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating")
}

struct Ctx {
    client: Client,
    backoffs: Backoffs,
    resync: Duration,
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, ServiceAccountError> {
    if !wants_default(&ns) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &name);
    let err = |source| ServiceAccountError {
        namespace: name.clone(),
        source,
    };
    if api.get_opt("default").await.map_err(err)?.is_none() {
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some("default".into()),
                namespace: Some(name.clone()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => tracing::info!(namespace = %name, "created default serviceaccount"),
            // Exists (raced with the API server's own defaulting) or namespace now terminating.
            Err(e) if common::is_conflict(&e) || common::api_code(&e) == Some(403) => {}
            Err(e) => return Err(err(e)),
        }
    }
    ctx.backoffs.reset(&name);
    Ok(Action::requeue(ctx.resync))
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "kube's Controller::run passes the object and the context by value"
)]
fn error_policy(ns: Arc<Namespace>, err: &ServiceAccountError, ctx: Arc<Ctx>) -> Action {
    common::error_policy(ns.as_ref(), err, &ctx.backoffs, "serviceaccount")
}

/// Runs the service account controller until dropped.
pub async fn run(client: Client, config: crate::Config) {
    let controller = Controller::new(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<ServiceAccount>::all(client.clone()),
        watcher::Config::default().fields("metadata.name=default"),
        |sa: ServiceAccount| sa.namespace().map(|ns| ObjectRef::<Namespace>::new(&ns)),
    );
    let ctx = Arc::new(Ctx {
        client,
        backoffs: Backoffs::default(),
        resync: config.resync,
    });
    common::drain(
        "serviceaccount",
        controller.run(reconcile, error_policy, ctx),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminating_namespaces_get_no_account() {
        let mut ns = Namespace::default();
        assert!(wants_default(&ns));
        ns.status = Some(k8s_openapi::api::core::v1::NamespaceStatus {
            phase: Some("Terminating".into()),
            conditions: None,
        });
        assert!(!wants_default(&ns));
        let mut ns = Namespace::default();
        ns.metadata.deletion_timestamp = Some(common::now());
        assert!(!wants_default(&ns));
    }

    #[tokio::test]
    async fn creates_default_once() {
        use sluice_test_util::fake_api::FakeApi;
        let fake = FakeApi::default();
        let ctx = Arc::new(Ctx {
            client: fake.client(),
            backoffs: Backoffs::default(),
            resync: Duration::from_mins(5),
        });
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({ "metadata": { "name": "team" } })).unwrap();
        reconcile(Arc::new(ns.clone()), ctx.clone()).await.unwrap();
        assert!(
            fake.get("api/v1/namespaces/team/serviceaccounts/default")
                .is_some()
        );
        fake.take_writes();
        reconcile(Arc::new(ns), ctx).await.unwrap();
        assert!(fake.take_writes().is_empty());
    }
}
