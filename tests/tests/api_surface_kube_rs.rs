//! The API surface through kube-rs against the real control plane binary: server-side
//! apply with `Patch::Apply` (create, update, a 409 conflict with a second field manager,
//! co-ownership, `.force()`), and the dynamic API (`DynamicObject` + `ApiResource`, found
//! through discovery) over a `CustomResourceDefinition`: create, list, get, apply, delete.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde_json::{Value, json};
use sluice_tests::controlplane::ControlPlane;
use sluice_tests::wait_for;

fn deployment(replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "ssa"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "ssa"}},
            "template": {"metadata": {"labels": {"app": "ssa"}},
                "spec": {"containers": [{"name": "c", "image": "sluice/test:1"}]}}},
    })
}

/// The managers with an `Apply` entry that owns `.spec.replicas`.
fn replicas_owners(d: &Deployment) -> Vec<String> {
    let mut owners: Vec<String> = d
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.operation.as_deref() == Some("Apply"))
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .and_then(|f| f.0.get("f:spec"))
                .and_then(|s| s.get("f:replicas"))
                .is_some()
        })
        .filter_map(|m| m.manager.clone())
        .collect();
    owners.sort();
    owners
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_through_kube_rs() {
    let cp = ControlPlane::start(&["--no-controllers"]).await;
    let deps: Api<Deployment> = Api::default_namespaced(cp.client().await);

    // Create: the object does not exist yet.
    let d = deps
        .patch(
            "ssa",
            &PatchParams::apply("team-a"),
            &Patch::Apply(deployment(2)),
        )
        .await
        .expect("apply creates");
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(2));
    assert!(d.metadata.uid.is_some() && d.metadata.creation_timestamp.is_some());
    assert_eq!(replicas_owners(&d), ["team-a"]);

    // Update by the same manager.
    let d = deps
        .patch(
            "ssa",
            &PatchParams::apply("team-a"),
            &Patch::Apply(deployment(3)),
        )
        .await
        .expect("apply updates");
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(3));
    assert_eq!(d.metadata.generation, Some(2));

    // A second manager with another value: 409, naming the owner and the field.
    let err = deps
        .patch(
            "ssa",
            &PatchParams::apply("team-b"),
            &Patch::Apply(deployment(5)),
        )
        .await
        .expect_err("a conflicting apply is refused");
    let kube::Error::Api(status) = err else {
        panic!("not an API error: {err:?}");
    };
    assert_eq!(status.code, 409, "{status:?}");
    assert_eq!(status.reason, "Conflict", "{status:?}");
    assert!(
        status.message.contains("conflict with \"team-a\""),
        "{status:?}"
    );
    let causes = status
        .details
        .as_ref()
        .map(|d| d.causes.clone())
        .unwrap_or_default();
    assert!(
        causes.iter().any(|c| c.reason == "FieldManagerConflict"
            && c.field == ".spec.replicas"
            && c.message.contains("conflict with \"team-a\"")),
        "{status:?}"
    );
    let d = deps.get("ssa").await.expect("get");
    assert_eq!(
        d.spec.as_ref().and_then(|s| s.replicas),
        Some(3),
        "the refused apply wrote nothing"
    );

    // Applying the same value is no conflict: the field is then shared.
    let d = deps
        .patch(
            "ssa",
            &PatchParams::apply("team-c"),
            &Patch::Apply(deployment(3)),
        )
        .await
        .expect("an agreeing apply is accepted");
    assert_eq!(replicas_owners(&d), ["team-a", "team-c"]);

    // Forced, the second manager takes the field from both.
    let d = deps
        .patch(
            "ssa",
            &PatchParams::apply("team-b").force(),
            &Patch::Apply(deployment(5)),
        )
        .await
        .expect("a forced apply is accepted");
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(5));
    assert_eq!(replicas_owners(&d), ["team-b"]);
    let managers: Vec<_> = d
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.operation.as_deref() == Some("Apply"))
        .filter_map(|m| m.manager.as_deref())
        .collect();
    assert!(
        managers.contains(&"team-a") && managers.contains(&"team-b"),
        "team-a keeps the rest of its fields: {managers:?}"
    );

    // A dry run changes nothing.
    let dry = deps
        .patch(
            "ssa",
            &PatchParams::apply("team-b").force().dry_run(),
            &Patch::Apply(deployment(7)),
        )
        .await
        .expect("dry-run apply");
    assert_eq!(dry.spec.as_ref().and_then(|s| s.replicas), Some(7));
    let d = deps.get("ssa").await.expect("get");
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(5));
}

const CRD: &str = r"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.sluice.io
spec:
  group: example.sluice.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
              color: {type: string, default: grey}
          status:
            type: object
            properties:
              ready: {type: boolean}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::too_many_lines, reason = "one lifecycle, step after step")]
async fn dynamic_api_over_a_crd() {
    let cp = ControlPlane::start(&["--no-controllers"]).await;
    let client = cp.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_yaml::from_str(CRD).expect("crd yaml");
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("create CRD");
    wait_for(
        "the CRD to be established",
        Duration::from_secs(20),
        || async {
            let c = crds.get("widgets.example.sluice.io").await.ok()?;
            c.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        },
    )
    .await;

    // Discovery finds the new kind, its scope, verbs and subresources.
    let gvk = GroupVersionKind::gvk("example.sluice.io", "v1alpha1", "Widget");
    let (ar, caps) = wait_for("discovery of Widget", Duration::from_secs(20), || async {
        kube::discovery::pinned_kind(&client, &gvk).await.ok()
    })
    .await;
    assert_eq!(ar.plural, "widgets");
    assert_eq!(ar.api_version, "example.sluice.io/v1alpha1");
    assert!(matches!(caps.scope, Scope::Namespaced), "{caps:?}");
    for verb in ["create", "get", "list", "watch", "patch", "delete"] {
        assert!(caps.supports_operation(verb), "{verb}: {caps:?}");
    }
    assert!(
        caps.subresources.iter().any(|(r, _)| r.plural == "status"),
        "{caps:?}"
    );
    assert_eq!(
        ar,
        kube::api::ApiResource::from_gvk_with_plural(&gvk, "widgets")
    );

    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let mut w =
        DynamicObject::new("small", &ar).data(json!({"spec": {"size": 1, "shape": "round"}}));
    w.metadata.labels = Some([("tier".to_string(), "a".to_string())].into());
    let created = widgets
        .create(&PostParams::default(), &w)
        .await
        .expect("create widget");
    assert_eq!(
        created.types.as_ref().map(|t| t.kind.as_str()),
        Some("Widget")
    );
    assert!(created.metadata.uid.is_some());
    assert_eq!(
        created.data["spec"],
        json!({"size": 1, "color": "grey"}),
        "defaulted, and the unknown field pruned"
    );
    let big = DynamicObject::new("big", &ar).data(json!({"spec": {"size": 9, "color": "red"}}));
    widgets
        .create(&PostParams::default(), &big)
        .await
        .expect("create widget");

    // Invalid: refused with the field named.
    let bad = DynamicObject::new("bad", &ar).data(json!({"spec": {"size": 0}}));
    let err = widgets
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("size 0 is below the minimum");
    let kube::Error::Api(status) = err else {
        panic!("not an API error: {err:?}");
    };
    assert_eq!(
        (status.code, status.reason.as_str()),
        (422, "Invalid"),
        "{status:?}"
    );
    assert!(
        status
            .details
            .as_ref()
            .is_some_and(|d| d.causes.iter().any(|c| c.field == "spec.size")),
        "{status:?}"
    );
    let missing = DynamicObject::new("bad", &ar).data(json!({"spec": {"color": "blue"}}));
    let err = widgets
        .create(&PostParams::default(), &missing)
        .await
        .expect_err("size is required");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 422 && s.message.contains("spec.size")),
        "{err:?}"
    );
    assert!(widgets.get_opt("bad").await.expect("get").is_none());

    // List, with a label selector too.
    let all = widgets.list(&ListParams::default()).await.expect("list");
    let mut names: Vec<_> = all
        .items
        .iter()
        .filter_map(|o| o.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["big", "small"]);
    let tier_a = widgets
        .list(&ListParams::default().labels("tier=a"))
        .await
        .expect("list by label");
    assert_eq!(tier_a.items.len(), 1);
    assert_eq!(tier_a.items[0].metadata.name.as_deref(), Some("small"));

    // Get.
    let got = widgets.get("big").await.expect("get");
    assert_eq!(got.data["spec"], json!({"size": 9, "color": "red"}));
    assert_eq!(got.metadata.namespace.as_deref(), Some("default"));

    // Server-side apply through the dynamic API: the field belongs to the creator (an
    // Update), so a plain apply conflicts and a forced one takes it.
    let patch = Patch::Apply(json!({
        "apiVersion": "example.sluice.io/v1alpha1", "kind": "Widget",
        "metadata": {"name": "big"}, "spec": {"size": 10},
    }));
    let err = widgets
        .patch("big", &PatchParams::apply("widget-tool"), &patch)
        .await
        .expect_err("size is owned by the creator");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409
            && s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.field == ".spec.size"))),
        "{err:?}"
    );
    let applied = widgets
        .patch("big", &PatchParams::apply("widget-tool").force(), &patch)
        .await
        .expect("apply a widget");
    assert_eq!(applied.data["spec"]["size"], 10);
    assert_eq!(applied.data["spec"]["color"], "red", "kept");
    let with_status = widgets
        .patch_status(
            "big",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await
        .expect("patch status");
    assert_eq!(with_status.data["status"]["ready"], true);
    assert_eq!(
        with_status.metadata.generation, applied.metadata.generation,
        "a status write does not bump generation"
    );

    // Delete.
    widgets
        .delete("small", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for("small to be gone", Duration::from_secs(10), || async {
        widgets
            .get_opt("small")
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;
    let left = widgets.list(&ListParams::default()).await.expect("list");
    assert_eq!(left.items.len(), 1);
    let err = widgets
        .delete("small", &DeleteParams::default())
        .await
        .expect_err("already gone");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404),
        "{err:?}"
    );
}
