//! The built-in schemas: every k8s-openapi type with a GVK, generated once through
//! `schemars` and converted to upstream's `OpenAPI` v3 shape.

use std::collections::HashMap;
use std::sync::LazyLock;

use k8s_openapi::Resource;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::convert;

/// The component-schema name of `ObjectMeta`.
pub(crate) const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
/// The component-schema name of `ListMeta`.
pub(crate) const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
/// The component-schema names operations refer to.
pub(crate) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub(crate) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub(crate) const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub(crate) const API_RESOURCE_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList";

/// Upstream's descriptions of the `apiVersion` and `kind` fields (the same on every kind).
pub(crate) const API_VERSION_DESCRIPTION: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
pub(crate) const KIND_DESCRIPTION: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
pub(crate) const OBJECT_META_DESCRIPTION: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
pub(crate) const LIST_META_DESCRIPTION: &str = "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// One built-in kind: its GVK, whether it has a `<Kind>List`, and how to generate it.
struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    listable: bool,
    /// Adds the kind's schema (and everything it refers to) to the generator's
    /// definitions; returns its component name.
    add: fn(&mut SchemaGenerator) -> String,
}

fn add<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

const fn entry<T: Resource + JsonSchema>(listable: bool) -> Builtin {
    Builtin {
        group: T::GROUP,
        version: T::VERSION,
        kind: T::KIND,
        listable,
        add: add::<T>,
    }
}

macro_rules! builtins {
    ($($list:ident $($seg:ident)::+;)*) => {
        &[$(entry::<k8s_openapi::$($seg)::+>(builtins!(@listable $list)),)*]
    };
    (@listable listable) => { true };
    (@listable single) => { false };
}

/// Every type of k8s-openapi (`v1_33`) that implements `Resource`, so has a GVK.
static BUILTINS: &[Builtin] = builtins! {
    listable api::admissionregistration::v1::MutatingWebhookConfiguration;
    listable api::admissionregistration::v1::ValidatingAdmissionPolicy;
    listable api::admissionregistration::v1::ValidatingAdmissionPolicyBinding;
    listable api::admissionregistration::v1::ValidatingWebhookConfiguration;
    listable api::admissionregistration::v1alpha1::MutatingAdmissionPolicy;
    listable api::admissionregistration::v1alpha1::MutatingAdmissionPolicyBinding;
    listable api::admissionregistration::v1beta1::ValidatingAdmissionPolicy;
    listable api::admissionregistration::v1beta1::ValidatingAdmissionPolicyBinding;
    listable api::apiserverinternal::v1alpha1::StorageVersion;
    listable api::apps::v1::ControllerRevision;
    listable api::apps::v1::DaemonSet;
    listable api::apps::v1::Deployment;
    listable api::apps::v1::ReplicaSet;
    listable api::apps::v1::StatefulSet;
    single api::authentication::v1::SelfSubjectReview;
    single api::authentication::v1::TokenRequest;
    single api::authentication::v1::TokenReview;
    single api::authorization::v1::LocalSubjectAccessReview;
    single api::authorization::v1::SelfSubjectAccessReview;
    single api::authorization::v1::SelfSubjectRulesReview;
    single api::authorization::v1::SubjectAccessReview;
    listable api::autoscaling::v1::HorizontalPodAutoscaler;
    single api::autoscaling::v1::Scale;
    listable api::autoscaling::v2::HorizontalPodAutoscaler;
    listable api::batch::v1::CronJob;
    listable api::batch::v1::Job;
    listable api::certificates::v1::CertificateSigningRequest;
    listable api::certificates::v1alpha1::ClusterTrustBundle;
    listable api::certificates::v1beta1::ClusterTrustBundle;
    listable api::coordination::v1::Lease;
    listable api::coordination::v1alpha2::LeaseCandidate;
    listable api::coordination::v1beta1::LeaseCandidate;
    single api::core::v1::Binding;
    listable api::core::v1::ComponentStatus;
    listable api::core::v1::ConfigMap;
    listable api::core::v1::Endpoints;
    listable api::core::v1::Event;
    listable api::core::v1::LimitRange;
    listable api::core::v1::Namespace;
    listable api::core::v1::Node;
    listable api::core::v1::PersistentVolume;
    listable api::core::v1::PersistentVolumeClaim;
    listable api::core::v1::Pod;
    listable api::core::v1::PodTemplate;
    listable api::core::v1::ReplicationController;
    listable api::core::v1::ResourceQuota;
    listable api::core::v1::Secret;
    listable api::core::v1::Service;
    listable api::core::v1::ServiceAccount;
    listable api::discovery::v1::EndpointSlice;
    listable api::events::v1::Event;
    listable api::flowcontrol::v1::FlowSchema;
    listable api::flowcontrol::v1::PriorityLevelConfiguration;
    listable api::networking::v1::Ingress;
    listable api::networking::v1::IngressClass;
    listable api::networking::v1::IPAddress;
    listable api::networking::v1::NetworkPolicy;
    listable api::networking::v1::ServiceCIDR;
    listable api::networking::v1beta1::IPAddress;
    listable api::networking::v1beta1::ServiceCIDR;
    listable api::node::v1::RuntimeClass;
    single api::policy::v1::Eviction;
    listable api::policy::v1::PodDisruptionBudget;
    listable api::rbac::v1::ClusterRole;
    listable api::rbac::v1::ClusterRoleBinding;
    listable api::rbac::v1::Role;
    listable api::rbac::v1::RoleBinding;
    listable api::resource::v1alpha3::DeviceClass;
    listable api::resource::v1alpha3::DeviceTaintRule;
    listable api::resource::v1alpha3::ResourceClaim;
    listable api::resource::v1alpha3::ResourceClaimTemplate;
    listable api::resource::v1alpha3::ResourceSlice;
    listable api::resource::v1beta1::DeviceClass;
    listable api::resource::v1beta1::ResourceClaim;
    listable api::resource::v1beta1::ResourceClaimTemplate;
    listable api::resource::v1beta1::ResourceSlice;
    listable api::resource::v1beta2::DeviceClass;
    listable api::resource::v1beta2::ResourceClaim;
    listable api::resource::v1beta2::ResourceClaimTemplate;
    listable api::resource::v1beta2::ResourceSlice;
    listable api::scheduling::v1::PriorityClass;
    listable api::storage::v1::CSIDriver;
    listable api::storage::v1::CSINode;
    listable api::storage::v1::CSIStorageCapacity;
    listable api::storage::v1::StorageClass;
    listable api::storage::v1::VolumeAttachment;
    listable api::storage::v1alpha1::VolumeAttributesClass;
    listable api::storage::v1beta1::VolumeAttributesClass;
    listable api::storagemigration::v1alpha1::StorageVersionMigration;
    listable apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    single apimachinery::pkg::apis::meta::v1::APIGroup;
    single apimachinery::pkg::apis::meta::v1::APIVersions;
    single apimachinery::pkg::apis::meta::v1::Status;
    listable kube_aggregator::pkg::apis::apiregistration::v1::APIService;
};

/// A `(group, version, kind)` key.
pub(crate) type Gvk = (String, String, String);

/// Every built-in component schema, and which one holds which GVK.
pub(crate) struct Universe {
    pub(crate) schemas: Map<String, Value>,
    pub(crate) by_gvk: HashMap<Gvk, String>,
}

pub(crate) static UNIVERSE: LazyLock<Universe> = LazyLock::new(build);

fn build() -> Universe {
    let mut settings = SchemaSettings::openapi3();
    settings.meta_schema = None;
    // The conversion to upstream's shape is ours (`convert`), applied to every definition.
    settings.transforms = Vec::new();
    let mut generator = SchemaGenerator::new(settings);

    let mut kinds = Vec::new();
    for b in BUILTINS {
        let name = (b.add)(&mut generator);
        kinds.push((b, name));
    }
    // What operations refer to besides the kinds.
    add::<meta::ListMeta>(&mut generator);
    add::<meta::DeleteOptions>(&mut generator);
    add::<meta::WatchEvent<()>>(&mut generator);
    add::<meta::Patch>(&mut generator);
    add::<meta::APIResourceList>(&mut generator);
    add::<meta::APIGroupList>(&mut generator);

    let mut defs = generator.take_definitions(false);
    for schema in defs.values_mut() {
        convert::to_openapi_v3(schema);
    }

    let mut by_gvk = HashMap::new();
    let mut lists = Vec::new();
    for (b, name) in &kinds {
        let Some(schema) = defs.get_mut(name) else {
            continue;
        };
        convert::set_gvk(schema, b.group, b.version, b.kind);
        // k8s-openapi makes `metadata` required on every kind (its Rust field is not
        // an `Option`); upstream requires it only on core/v1 Event.
        if !(b.group.is_empty() && b.kind == "Event") {
            convert::unrequire(schema, "metadata");
        }
        by_gvk.insert(
            (
                b.group.to_string(),
                b.version.to_string(),
                b.kind.to_string(),
            ),
            name.clone(),
        );
        if b.listable {
            let list_kind = format!("{}List", b.kind);
            let list_name = format!("{name}List");
            lists.push((
                list_name.clone(),
                list_schema(b.group, b.version, b.kind, name),
            ));
            by_gvk.insert(
                (b.group.to_string(), b.version.to_string(), list_kind),
                list_name,
            );
        }
    }
    defs.extend(lists);

    let mut sorted: Vec<(String, Value)> = defs.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    Universe {
        schemas: sorted.into_iter().collect(),
        by_gvk,
    }
}

/// The `<Kind>List` schema (k8s-openapi's `List<T>` has no `JsonSchema`): upstream's
/// shape, `items` required.
pub(crate) fn list_schema(group: &str, version: &str, kind: &str, item_schema: &str) -> Value {
    let mut s = json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "properties": {
            "apiVersion": {"description": API_VERSION_DESCRIPTION, "type": "string"},
            "items": {
                "description": format!("Items is the list of {kind} objects."),
                "type": "array",
                "items": {"$ref": convert::ref_to(item_schema)},
            },
            "kind": {"description": KIND_DESCRIPTION, "type": "string"},
            "metadata": {
                "allOf": [{"$ref": convert::ref_to(LIST_META)}],
                "description": LIST_META_DESCRIPTION,
            },
        },
        "required": ["items"],
    });
    convert::set_gvk(&mut s, group, version, &format!("{kind}List"));
    s
}

/// The component name of a built-in kind (or `<Kind>List`) by GVK.
pub(crate) fn builtin_name(group: &str, version: &str, kind: &str) -> Option<&'static str> {
    UNIVERSE
        .by_gvk
        .get(&(group.to_string(), version.to_string(), kind.to_string()))
        .map(String::as_str)
}

/// Schema of a built-in kind (or its `<Kind>List`) by GVK, if known: the component
/// schema as it appears in documents, its `$ref`s pointing into
/// `#/components/schemas/` (resolve them with [`component_schema`]).
pub fn builtin_schema(group: &str, version: &str, kind: &str) -> Option<serde_json::Value> {
    builtin_name(group, version, kind).and_then(|n| UNIVERSE.schemas.get(n).cloned())
}

/// A built-in component schema by name (`io.k8s.api.core.v1.PodSpec`) or by `$ref`
/// (`#/components/schemas/io.k8s.api.core.v1.PodSpec`).
pub fn component_schema(name_or_ref: &str) -> Option<&'static serde_json::Value> {
    let name = name_or_ref
        .strip_prefix(convert::REF_PREFIX)
        .unwrap_or(name_or_ref);
    UNIVERSE.schemas.get(name)
}
