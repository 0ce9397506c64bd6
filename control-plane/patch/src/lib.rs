//! Kubernetes patch semantics: strategic merge patch, JSON merge patch (RFC 7386) and JSON patch (RFC 6902).
//!
//! The API server answers `PATCH` requests from `kubectl` with these pure functions over
//! [`serde_json::Value`]; each returns a new value and leaves its inputs alone:
//!
//! - [`json_patch`] for `application/json-patch+json` (`kubectl patch --type json`);
//! - [`merge_patch`] for `application/merge-patch+json` (`kubectl patch --type merge`);
//! - [`strategic_merge_patch`] for `application/strategic-merge-patch+json`, what `kubectl
//!   apply`, `edit`, `set image`, `label`, `annotate` and `patch` send by default, driven by the
//!   per-kind list strategies of [`list_strategy`].
//!
//! No function panics on any input; malformed patches are [`PatchError`]s.
//!
//! ```
//! use serde_json::json;
//! use sluice_patch::strategic_merge_patch;
//!
//! // `kubectl set image deployment/web web=nginx:2`
//! let live = json!({"spec": {"template": {"spec": {"containers": [
//!     {"name": "web", "image": "nginx:1"}, {"name": "log", "image": "fluentbit"}
//! ]}}}});
//! let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}});
//! let out = strategic_merge_patch(&live, &patch, "Deployment").unwrap();
//! assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:2");
//! assert_eq!(out["spec"]["template"]["spec"]["containers"][1]["image"], "fluentbit");
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod json_patch;
mod merge_patch;
mod schema;
mod strategic;

pub use error::PatchError;
pub use json_patch::json_patch;
pub use merge_patch::merge_patch;
pub use schema::{KindSchema, ListStrategy, PatchSchema, list_strategy, retain_keys_allowed};
pub use strategic::{strategic_merge_patch, strategic_merge_patch_with};
