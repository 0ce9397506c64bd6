//! `POST pods/{name}/eviction`: a pod delete that honours the `PodDisruptionBudget`
//! selecting the pod (what `kubectl drain` sends), as upstream's eviction REST does: a
//! budget with no disruption left (or not yet observed by the disruption controller) answers
//! 429 `TooManyRequests` with a `DisruptionBudget` cause; otherwise the budget's
//! `disruptionsAllowed` is taken by compare-and-swap and the pod is deleted.

use serde_json::{Value, json};
use sluice_store::StoreError;

use super::options::{DeleteOptions, Query};
use super::selectors::LabelSelector;
use super::status::{ApiError, ApiResult, Cause};
use super::{ApiServer, decorate, encode, now};
use crate::registry::Resource;

const REFUSED: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

fn too_many(message: String) -> ApiError {
    let mut e = ApiError::new(429, "TooManyRequests", REFUSED);
    e.details.causes.push(Cause {
        reason: "DisruptionBudget",
        field: String::new(),
        message,
    });
    e
}

/// Whether a policy/v1 budget's selector selects these labels (an empty selector selects
/// every pod, a missing one none).
fn selects(pdb: &Value, labels: Option<&Value>) -> bool {
    let sel = &pdb["spec"]["selector"];
    if sel.is_null() {
        return false;
    }
    LabelSelector::from_json(sel).is_ok_and(|s| s.matches(labels))
}

impl ApiServer {
    /// Evict a pod.
    pub(super) async fn evict(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        body: &Value,
    ) -> ApiResult<Value> {
        let body_name = body["metadata"]["name"].as_str().unwrap_or_default();
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "name in URL does not match name in Eviction object: {name} vs {body_name}"
            )));
        }
        let delete_body = body.get("deleteOptions").filter(|v| v.is_object());
        let opts = DeleteOptions::parse(delete_body, &Query::default())?;
        let ns_name = ns.unwrap_or_default();
        let pdb_r = self.resource("policy", "v1", "poddisruptionbudgets");
        let retries = super::verbs::Retries::new();
        loop {
            let (pod, _) = self.get(r, ns, name).await?;
            // Pods that are done, not yet running or already going need no budget.
            let free = !pod["metadata"]["deletionTimestamp"].is_null()
                || matches!(
                    pod["status"]["phase"].as_str(),
                    Some("Succeeded" | "Failed" | "Pending")
                );
            if !free {
                let all = self
                    .store
                    .range(&pdb_r.list_prefix(Some(ns_name)), None, None, None)
                    .await?;
                let mut matching = Vec::new();
                for kv in &all.kvs {
                    let pdb = decorate(&pdb_r, kv)?;
                    if selects(&pdb, pod["metadata"].get("labels")) {
                        matching.push((pdb, kv.clone()));
                    }
                }
                if matching.len() > 1 {
                    return Err(ApiError::internal(
                        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                    ));
                }
                if let Some((mut pdb, kv)) = matching.pop() {
                    let pdb_name = pdb["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let observed = pdb["status"]["observedGeneration"].as_i64().unwrap_or(0);
                    let generation = pdb["metadata"]["generation"].as_i64().unwrap_or(0);
                    if observed < generation {
                        return Err(too_many(format!(
                            "The disruption budget {pdb_name} is still being processed by the server."
                        )));
                    }
                    let allowed = pdb["status"]["disruptionsAllowed"].as_i64().unwrap_or(0);
                    if allowed <= 0 {
                        return Err(too_many(format!(
                            "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                            pdb["status"]["desiredHealthy"].as_i64().unwrap_or(0),
                            pdb["status"]["currentHealthy"].as_i64().unwrap_or(0)
                        )));
                    }
                    pdb["status"]["disruptionsAllowed"] = json!(allowed - 1);
                    if !pdb["status"]["disruptedPods"].is_object() {
                        pdb["status"]["disruptedPods"] = json!({});
                    }
                    pdb["status"]["disruptedPods"][name] = json!(now());
                    if !opts.dry_run {
                        match self
                            .store
                            .update(&kv.key, encode(&pdb_r, &pdb), kv.mod_revision)
                            .await
                        {
                            Ok(_) => {}
                            // Another eviction or the controller wrote: decide again.
                            Err(StoreError::Conflict { .. }) => {
                                retries.again(&pdb_r, &pdb_name).await?;
                                continue;
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
            }
            self.delete(r, ns, name, &opts).await?;
            return Ok(
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use sluice_store::Embedded;

    use super::super::options::WriteOptions;
    use super::super::{ApiServer, Config};
    use crate::registry::Subresource;

    #[tokio::test]
    async fn evictions_take_the_budget_and_stop_at_zero() {
        let srv = ApiServer::new(Arc::new(Embedded::open_in_memory()), Config::default())
            .await
            .unwrap();
        let pods = srv.resource("", "v1", "pods");
        let pdbs = srv.resource("policy", "v1", "poddisruptionbudgets");
        let w = WriteOptions::default();
        for n in ["a", "b"] {
            srv.create(
                &pods,
                Some("default"),
                &json!({"metadata": {"name": n, "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}),
                &w,
            )
            .await
            .unwrap();
            let (mut p, _) = srv.get(&pods, Some("default"), n).await.unwrap();
            p["status"]["phase"] = json!("Running");
            srv.update(&pods, Some("default"), n, Some(Subresource::Status), &p, &w)
                .await
                .unwrap();
        }
        let (pdb, _) = srv
            .create(
                &pdbs,
                Some("default"),
                &json!({"metadata": {"name": "budget"},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}),
                &w,
            )
            .await
            .unwrap();
        // Not yet observed by the disruption controller: refused.
        let e = srv
            .evict(&pods, Some("default"), "a", &json!({}))
            .await
            .unwrap_err();
        assert_eq!((e.code, e.reason), (429, "TooManyRequests"));
        assert_eq!(e.details.causes[0].reason, "DisruptionBudget");
        let mut st = pdb.clone();
        st["status"] = json!({"observedGeneration": pdb["metadata"]["generation"], "disruptionsAllowed": 1,
            "currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2});
        srv.update(
            &pdbs,
            Some("default"),
            "budget",
            Some(Subresource::Status),
            &st,
            &w,
        )
        .await
        .unwrap();
        srv.evict(
            &pods,
            Some("default"),
            "a",
            &json!({"deleteOptions": {"gracePeriodSeconds": 0}}),
        )
        .await
        .unwrap();
        assert_eq!(
            srv.get(&pods, Some("default"), "a").await.unwrap_err().code,
            404
        );
        let (after, _) = srv.get(&pdbs, Some("default"), "budget").await.unwrap();
        assert_eq!(after["status"]["disruptionsAllowed"], 0);
        assert!(after["status"]["disruptedPods"]["a"].is_string());
        let e = srv
            .evict(&pods, Some("default"), "b", &json!({}))
            .await
            .unwrap_err();
        assert_eq!(e.code, 429);
        assert!(
            e.details.causes[0]
                .message
                .contains("needs 1 healthy pods and has 2 currently")
        );
        assert!(srv.get(&pods, Some("default"), "b").await.is_ok());
    }
}
