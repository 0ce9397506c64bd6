//! Admission checks that read other objects, as upstream's admission plugins do (each names
//! the resource it applies to): the `ServiceAccount` plugin's check that a pod's service
//! account exists.

use serde_json::Value;

use super::ApiServer;
use super::status::{ApiError, ApiResult};
use crate::registry::Resource;

impl ApiServer {
    /// Checks before a create is validated.
    pub(super) async fn admit_create(&self, r: &Resource, ns: &str, obj: &Value) -> ApiResult<()> {
        if r.group.is_empty() && r.plural == "pods" {
            self.check_service_account(obj, ns).await?;
        }
        Ok(())
    }

    /// A pod may only name a service account that exists (`default` is created by the
    /// serviceaccount controller moments after its namespace, so it is not waited for).
    async fn check_service_account(&self, pod: &Value, ns: &str) -> ApiResult<()> {
        let sa = pod["spec"]["serviceAccountName"]
            .as_str()
            .unwrap_or("default");
        let sa_r = self.resource("", "v1", "serviceaccounts");
        if sa == "default" || self.store.get(&sa_r.key(Some(ns), sa)).await?.is_some() {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "pods \"{}\" is forbidden: error looking up service account {ns}/{sa}: serviceaccount \"{sa}\" not found",
                pod["metadata"]["name"].as_str().unwrap_or_default()
            )))
        }
    }
}
