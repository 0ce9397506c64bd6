//! Typed options of the verbs, parsed once from the query string and body (as upstream's
//! `metav1.CreateOptions`, `UpdateOptions`, `PatchOptions`, `DeleteOptions`, `ListOptions`).
//! The verbs take these, never the HTTP request, so they are unit-testable over a store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, ApiResult};
use crate::registry::Resource;

/// How unknown and duplicate fields are treated (`fieldValidation=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and answer a `Warning` header for each (the default).
    #[default]
    Warn,
    /// Refuse the request with 400.
    Strict,
}

impl FieldValidation {
    /// Parse the query parameter.
    pub fn parse(v: Option<&str>) -> ApiResult<Self> {
        match v {
            None | Some("" | "Warn") => Ok(Self::Warn),
            Some("Strict") => Ok(Self::Strict),
            Some("Ignore") => Ok(Self::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}. Valid values are Ignore, Warn, and Strict"
            ))),
        }
    }
}

/// Options of create and update (PUT).
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: everything but the store write.
    pub dry_run: bool,
    /// `fieldManager=`.
    pub field_manager: Option<String>,
    /// `fieldValidation=`.
    pub field_validation: FieldValidation,
    /// The object's `managedFields` are already computed (server-side apply): record no
    /// Update operation on top.
    pub managed_fields_set: bool,
}

/// The patch formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902 (`application/json-patch+json`).
    Json,
    /// RFC 7386 (`application/merge-patch+json`).
    Merge,
    /// Kubernetes strategic merge patch.
    Strategic,
    /// Server-side apply (`application/apply-patch+yaml`, also JSON since it is YAML).
    Apply,
}

impl PatchType {
    /// From the request's content type.
    pub fn from_content_type(ct: &str) -> ApiResult<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" => Ok(Self::Apply),
            other => Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
            ))),
        }
    }
}

/// Options of PATCH.
#[derive(Debug, Clone)]
pub struct PatchOptions {
    /// The patch format.
    pub patch_type: PatchType,
    /// Create/update options shared with PUT.
    pub write: WriteOptions,
    /// `force=true` (server-side apply only): take fields other managers own.
    pub force: bool,
}

/// Options of DELETE (query parameters override the body, as upstream).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace: Option<i64>,
    /// `propagationPolicy`: Orphan, Background or Foreground.
    pub propagation: Option<String>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub rv: Option<String>,
    /// `dryRun`.
    pub dry_run: bool,
}

impl DeleteOptions {
    /// From an optional `DeleteOptions` body (already decoded) and the query.
    pub fn parse(body: Option<&Value>, query: &Query) -> ApiResult<Self> {
        let mut o = Self {
            dry_run: query.dry_run(),
            ..Self::default()
        };
        if let Some(body) = body {
            o.grace = body["gracePeriodSeconds"].as_i64();
            o.propagation = body["propagationPolicy"].as_str().map(String::from);
            o.uid = body["preconditions"]["uid"].as_str().map(String::from);
            o.rv = body["preconditions"]["resourceVersion"]
                .as_str()
                .map(String::from);
            if body["dryRun"].as_array().is_some_and(|a| !a.is_empty()) {
                o.dry_run = true;
            }
            if body["orphanDependents"].as_bool() == Some(true) && o.propagation.is_none() {
                o.propagation = Some("Orphan".into());
            }
        }
        if let Some(g) = query.get("gracePeriodSeconds") {
            o.grace =
                Some(g.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}"))
                })?);
        }
        if let Some(p) = query.get("propagationPolicy") {
            o.propagation = Some(p.to_string());
        }
        if let Some(p) = &o.propagation
            && !["Orphan", "Background", "Foreground"].contains(&p.as_str())
        {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
        Ok(o)
    }
}

/// Label and field selectors of a list, watch or deletecollection.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    /// `labelSelector=`.
    pub labels: LabelSelector,
    /// `fieldSelector=`.
    pub fields: FieldSelector,
    /// The resource whose strategy computes field label values.
    pub resource: Option<Arc<Resource>>,
}

impl Selectors {
    /// Parse both selectors, checking field labels against the resource's.
    pub fn parse(query: &Query, r: &Arc<Resource>) -> ApiResult<Self> {
        let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or_default())
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(
            query.get("fieldSelector").unwrap_or_default(),
            &r.kind,
            r.strategy.field_selectors(),
        )
        .map_err(ApiError::bad_request)?;
        Ok(Self {
            labels,
            fields,
            resource: Some(r.clone()),
        })
    }

    /// Whether an object matches both.
    #[must_use]
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj["metadata"].get("labels"))
            && match &self.resource {
                Some(r) => self.fields.matches_with(|f| r.strategy.field_value(obj, f)),
                None => self.fields.matches(obj),
            }
    }

    /// Whether neither selects anything.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

/// Options of a list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Selectors.
    pub selectors: Selectors,
    /// `limit=` (0 or absent: everything).
    pub limit: Option<usize>,
    /// `continue=` token.
    pub continue_token: Option<String>,
}

impl ListOptions {
    /// Parse from the query.
    pub fn parse(query: &Query, r: &Arc<Resource>) -> ApiResult<Self> {
        let limit = query
            .get("limit")
            .map(|l| {
                l.parse::<usize>()
                    .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))
            })
            .transpose()?
            .filter(|l| *l > 0);
        Ok(Self {
            selectors: Selectors::parse(query, r)?,
            limit,
            continue_token: query.get("continue").map(String::from),
        })
    }
}

/// Options of a watch.
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// Selectors.
    pub selectors: Selectors,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `sendInitialEvents=true`.
    pub send_initial_events: bool,
    /// `resourceVersion=`: `None` for "" and "0" (start with the current state).
    pub resource_version: Option<i64>,
    /// `timeoutSeconds=`; `None` lets the server pick.
    pub timeout: Option<Duration>,
}

impl WatchOptions {
    /// Parse from the query.
    pub fn parse(query: &Query, r: &Arc<Resource>) -> ApiResult<Self> {
        let timeout = query
            .get("timeoutSeconds")
            .map(|t| {
                t.parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))
            })
            .transpose()?;
        let resource_version = match query.get("resourceVersion") {
            None | Some("0") => None,
            Some(s) => Some(
                s.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}")))?,
            ),
        };
        Ok(Self {
            selectors: Selectors::parse(query, r)?,
            bookmarks: query.get("allowWatchBookmarks") == Some("true"),
            send_initial_events: query.get("sendInitialEvents") == Some("true"),
            resource_version,
            timeout,
        })
    }
}

/// The decoded query string.
#[derive(Debug, Clone, Default)]
pub struct Query(pub HashMap<String, String>);

impl Query {
    /// Parse `a=b&c=d`.
    #[must_use]
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        )
    }

    /// A non-empty parameter.
    #[must_use]
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|s| !s.is_empty())
    }

    /// `dryRun=All` (any value counts, as upstream rejects unknown ones elsewhere).
    #[must_use]
    pub fn dry_run(&self) -> bool {
        self.get("dryRun").is_some()
    }

    /// Create/update options.
    pub fn write_options(&self) -> ApiResult<WriteOptions> {
        Ok(WriteOptions {
            dry_run: self.dry_run(),
            field_manager: self.get("fieldManager").map(String::from),
            field_validation: FieldValidation::parse(self.get("fieldValidation"))?,
            managed_fields_set: false,
        })
    }

    /// Patch options for a body of content type `ct`.
    pub fn patch_options(&self, ct: &str) -> ApiResult<PatchOptions> {
        let patch_type = PatchType::from_content_type(ct)?;
        let force = match self.get("force") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid force parameter {other:?}"
                )));
            }
        };
        if force && patch_type != PatchType::Apply {
            return Err(ApiError::bad_request(
                "force is only allowed for apply patches",
            ));
        }
        let write = self.write_options()?;
        if patch_type == PatchType::Apply && write.field_manager.is_none() {
            return Err(ApiError::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        Ok(PatchOptions {
            patch_type,
            write,
            force,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(s: &str) -> Query {
        Query::parse(Some(s))
    }

    #[test]
    fn field_validation_values() {
        assert_eq!(FieldValidation::parse(None).unwrap(), FieldValidation::Warn);
        assert_eq!(
            FieldValidation::parse(Some("Strict")).unwrap(),
            FieldValidation::Strict
        );
        assert_eq!(
            FieldValidation::parse(Some("strict")).unwrap_err().code,
            400
        );
    }

    #[test]
    fn patch_options_need_a_manager_for_apply_and_force_only_there() {
        let apply = "application/apply-patch+yaml";
        assert_eq!(q("").patch_options(apply).unwrap_err().code, 400);
        let o = q("fieldManager=m&force=true").patch_options(apply).unwrap();
        assert!(o.force);
        assert_eq!(o.write.field_manager.as_deref(), Some("m"));
        assert_eq!(
            q("force=true")
                .patch_options("application/merge-patch+json")
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(q("").patch_options("text/plain").unwrap_err().code, 415);
    }

    #[test]
    fn delete_options_query_overrides_body() {
        let body = json!({"gracePeriodSeconds": 30, "propagationPolicy": "Orphan",
            "preconditions": {"uid": "u", "resourceVersion": "7"}});
        let o = DeleteOptions::parse(Some(&body), &q("gracePeriodSeconds=0")).unwrap();
        assert_eq!(o.grace, Some(0));
        assert_eq!(o.propagation.as_deref(), Some("Orphan"));
        assert_eq!(o.uid.as_deref(), Some("u"));
        assert_eq!(o.rv.as_deref(), Some("7"));
        let orphan =
            DeleteOptions::parse(Some(&json!({"orphanDependents": true})), &q("")).unwrap();
        assert_eq!(orphan.propagation.as_deref(), Some("Orphan"));
        assert_eq!(
            DeleteOptions::parse(None, &q("propagationPolicy=Later"))
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn list_and_watch_options() {
        let reg = crate::registry::Registry::builtin();
        let pods = reg.find("", "v1", "pods").unwrap();
        let o = ListOptions::parse(
            &q("limit=5&labelSelector=app%3Dweb&fieldSelector=spec.nodeName%3Dn1"),
            &pods,
        )
        .unwrap();
        assert_eq!(o.limit, Some(5));
        assert!(
            o.selectors.matches(
                &json!({"metadata": {"labels": {"app": "web"}}, "spec": {"nodeName": "n1"}})
            )
        );
        assert_eq!(
            ListOptions::parse(&q("fieldSelector=spec.bogus%3Dx"), &pods)
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            ListOptions::parse(&q("limit=x"), &pods).unwrap_err().code,
            400
        );
        let w = WatchOptions::parse(
            &q("resourceVersion=0&allowWatchBookmarks=true&timeoutSeconds=5"),
            &pods,
        )
        .unwrap();
        assert_eq!(w.resource_version, None);
        assert!(w.bookmarks);
        assert_eq!(w.timeout, Some(Duration::from_secs(5)));
        assert_eq!(
            WatchOptions::parse(&q("resourceVersion=abc"), &pods)
                .unwrap_err()
                .code,
            400
        );
    }
}
