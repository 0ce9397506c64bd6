//! Server-side apply and `metadata.managedFields`, over `sluice-apply`: every write records
//! its manager's fields (operation Update), an apply (`PATCH` with
//! `application/apply-patch+yaml`) merges the configuration, prunes what the manager stopped
//! applying and answers 409 with `FieldManagerConflict` causes when another manager owns a
//! field it changes, unless `force=true`.

use std::sync::Arc;

use serde_json::Value;
use sluice_apply::{ApplyError, ListType};
use sluice_patch::ListStrategy;

use super::options::PatchOptions;
use super::status::{ApiError, ApiResult, Cause};
use super::verbs::{Patched, decode};
use super::{ApiServer, now};
use crate::registry::{Resource, Subresource};

/// A resource's list types as server-side apply needs them: from the strategy's strategic
/// merge list strategies, with the keys where apply's differ (container and Service ports
/// are keyed by port *and* protocol).
struct ApplySchema<'a>(&'a Resource);

impl sluice_apply::Schema for ApplySchema<'_> {
    fn list_type(&self, path: &[&str]) -> ListType {
        match self.0.strategy.list_strategy(path) {
            Some(ListStrategy::MergeByKey("containerPort")) => {
                ListType::Map(vec!["containerPort".into(), "protocol".into()])
            }
            Some(ListStrategy::MergeByKey("port")) if path.last() == Some(&"ports") => {
                ListType::Map(vec!["port".into(), "protocol".into()])
            }
            Some(ListStrategy::MergeByKey(key)) => ListType::Map(vec![key.to_string()]),
            Some(ListStrategy::MergePrimitive) => ListType::Set,
            Some(ListStrategy::Atomic) | None => ListType::Atomic,
        }
    }

    fn is_atomic_map(&self, path: &[&str]) -> bool {
        // `LabelSelector` is `structType=atomic`; a Service's selector is `mapType=atomic`.
        path == ["spec", "selector"]
    }

    fn key_default(&self, _path: &[&str], key: &str) -> Option<Value> {
        (key == "protocol").then(|| Value::String("TCP".into()))
    }

    fn reset_fields(&self, subresource: Option<&str>) -> Vec<Vec<String>> {
        match subresource {
            None if self.0.strategy.has_status() => vec![vec!["status".to_owned()]],
            None => Vec::new(),
            Some(_) => vec![
                vec!["spec".to_owned()],
                vec!["metadata".to_owned(), "labels".to_owned()],
            ],
        }
    }
}

fn apply_error(e: ApplyError) -> ApiError {
    match e {
        ApplyError::Conflicts(conflicts) => {
            let mut err = ApiError::new(
                409,
                "Conflict",
                ApplyError::Conflicts(conflicts.clone()).to_string(),
            );
            err.details.causes = conflicts
                .into_iter()
                .map(|c| Cause {
                    reason: "FieldManagerConflict",
                    field: c.field,
                    message: c.message,
                })
                .collect();
            err
        }
        ApplyError::Invalid(msg) => ApiError::bad_request(msg),
    }
}

impl ApiServer {
    /// `PATCH` with `application/apply-patch+yaml`: create the object if missing, otherwise
    /// merge the configuration into it, retried against fresh state after a conflicting
    /// write (as every unconditional write).
    pub(super) async fn apply(
        self: &Arc<Self>,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        sub: Option<Subresource>,
        config: &Value,
        opts: &PatchOptions,
    ) -> ApiResult<Patched> {
        let manager = opts.write.field_manager.clone().unwrap_or_default();
        let schema = ApplySchema(r);
        let subresource = sub.map(Subresource::name);
        if config["metadata"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty() && n != name)
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                config["metadata"]["name"].as_str().unwrap_or_default()
            )));
        }
        let write = super::options::WriteOptions {
            managed_fields_set: true,
            ..opts.write.clone()
        };
        let retries = super::verbs::Retries::new();
        loop {
            let live = match self.get(r, ns, name).await {
                Ok((v, _)) => Some(v),
                Err(e) if e.code == 404 && sub.is_none() => None,
                Err(e) => return Err(e),
            };
            let applied = sluice_apply::apply(
                live.as_ref(),
                config,
                &manager,
                &r.api_version(),
                subresource,
                opts.force,
                &schema,
                &now(),
            )
            .map_err(apply_error)?;
            let result = if live.is_none() {
                let mut obj = applied;
                obj["metadata"]["name"] = Value::String(name.to_string());
                self.create(r, ns, &obj, &write)
                    .await
                    .map(|(v, w)| (v, w, true))
            } else {
                let (obj, _) = decode(r, &applied, opts.write.field_validation)?;
                self.update_unconditionally(r, ns, name, sub, obj, &write)
                    .await
                    .map(|(v, w)| (v, w, false))
            };
            match result {
                // Created meanwhile by someone else, or a write won: apply to the fresh state.
                Err(e)
                    if e.code == 409
                        && (e.reason == "AlreadyExists" || e.reason == "Conflict")
                        && e.details.causes.is_empty() =>
                {
                    retries.again(r, name).await?;
                }
                other => return other,
            }
        }
    }

    /// Record a write in `metadata.managedFields` (operation Update for `manager`, or the
    /// User-Agent's manager). A request that sets managedFields itself keeps them as given.
    pub(super) fn track_managed_fields(
        r: &Resource,
        old: Option<&Value>,
        new: &mut Value,
        manager: Option<&str>,
        subresource: Option<&str>,
    ) {
        let manager = manager.unwrap_or("unknown");
        *new = sluice_apply::update(
            old,
            new,
            manager,
            &r.api_version(),
            subresource,
            &ApplySchema(r),
            &now(),
        );
    }
}
