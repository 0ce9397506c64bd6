//! `OpenAPI` v3 documents with the real schemas of the served kinds, shaped as the
//! upstream API server serves them at `/openapi/v3/apis/<group>/<version>`.
//!
//! kubectl reads these documents for `kubectl explain` (it finds a resource's GVK on
//! the `x-kubernetes-group-version-kind` of its path operations, then the component
//! schema carrying that GVK, and walks `properties`, `items`, `additionalProperties`,
//! `$ref` and `allOf`) and for `--validate=strict` (a PATCH operation tagged with the
//! GVK and a `fieldValidation` query parameter tells it the server validates fields).
//!
//! Where the schemas come from: k8s-openapi's `schemars` feature implements
//! `schemars::JsonSchema` for every built-in type (feature `v1_33`: the schemas of
//! Kubernetes 1.33), named as upstream (`io.k8s.api.apps.v1.Deployment`) with
//! descriptions, `required`, `format`s and `x-kubernetes-int-or-string`. This crate
//! generates them once (lazily), converts them to upstream's v3 shape (a `$ref` with
//! a description becomes `allOf: [{$ref}]` + description, refs point into
//! `#/components/schemas/`), adds `x-kubernetes-group-version-kind` to every
//! top-level kind, and builds the `<Kind>List` schemas k8s-openapi has no schema for.
//!
//! What the source lacks: k8s-openapi drops the list and patch metadata extensions
//! (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
//! `x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`) from the built-in
//! schemas, so [`list_type`] answers `None` for every built-in path; it answers from
//! the schema when a custom resource's schema carries them ([`schema_list_type`]).
//! Strategic merge patch is deliberately not advertised on PATCH operations: kubectl
//! would then compute strategic patches from these schemas, which have no merge
//! keys; without it kubectl uses its compiled-in patch metadata for built-in kinds.

mod builtin;
mod convert;
mod custom;
mod document;
mod list_type;
mod paths;
#[cfg(test)]
mod tests;

pub use builtin::{builtin_schema, component_schema};
pub use custom::{custom_resource_schema, custom_resource_schema_name, schema_name};
pub use document::{
    Document, document_hash, group_version_document, group_version_document_cached, gv_path,
    openapi_v3_index,
};
pub use list_type::{ListType, list_type, schema_list_type};

/// The version reported in every document's `info`: the Kubernetes release whose
/// built-in schemas k8s-openapi's `v1_33` feature carries.
pub const SCHEMA_KUBERNETES_VERSION: &str = "v1.33.0";

/// One kind served in a group-version, as discovery lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServedKind<'a> {
    /// API group, `""` for the core group.
    pub group: &'a str,
    /// API version (`v1`, `v1beta1`, ...).
    pub version: &'a str,
    /// Kind (`Deployment`).
    pub kind: &'a str,
    /// Resource name in paths (`deployments`).
    pub plural: &'a str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Subresources served (`"status"`, `"scale"`, `"binding"`, `"log"`, ...).
    pub subresources: &'a [&'a str],
}
