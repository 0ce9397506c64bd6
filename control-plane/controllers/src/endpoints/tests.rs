use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::*;

fn service(ports: &serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "metadata": { "name": "web", "namespace": "default", "uid": "svc-uid", "labels": { "team": "a" } },
        "spec": { "selector": { "app": "web" }, "ports": ports }
    }))
    .unwrap()
}

fn pod(name: &str, ip: Option<&str>, ready: bool, http_port: Option<i32>) -> Pod {
    let ports = match http_port {
        Some(p) => json!([{ "name": "http", "containerPort": p }]),
        None => json!([]),
    };
    serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": "default", "uid": format!("{name}-uid"), "labels": { "app": "web" } },
        "spec": { "nodeName": "n1", "containers": [{ "name": "c", "ports": ports }] },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }]
        }
    }))
    .unwrap()
}

fn cond(e: &Endpoint) -> (Option<bool>, Option<bool>, Option<bool>) {
    let c = e.conditions.as_ref().unwrap();
    (c.ready, c.serving, c.terminating)
}

#[test]
fn int_target_port_ready_and_not_ready() {
    let svc = service(&json!([{ "name": "web", "port": 80, "targetPort": 8080 }]));
    let pods = vec![
        pod("b", Some("10.0.0.2"), false, None),
        pod("a", Some("10.0.0.1"), true, None),
        pod("c", None, true, None),
    ];
    let slices = desired_slices(&svc, &pods);
    assert_eq!(slices.len(), 1);
    let s = &slices[0];
    assert_eq!(
        s.ports,
        vec![EndpointPort {
            name: Some("web".into()),
            port: Some(8080),
            protocol: Some("TCP".into()),
            app_protocol: None
        }]
    );
    let addrs: Vec<&str> = s
        .endpoints
        .iter()
        .map(|e| e.addresses[0].as_str())
        .collect();
    assert_eq!(
        addrs,
        ["10.0.0.1", "10.0.0.2"],
        "sorted, pod without IP left out"
    );
    assert_eq!(cond(&s.endpoints[0]), (Some(true), Some(true), Some(false)));
    assert_eq!(
        cond(&s.endpoints[1]),
        (Some(false), Some(false), Some(false))
    );
    assert_eq!(s.endpoints[0].node_name.as_deref(), Some("n1"));
    let tr = s.endpoints[0].target_ref.as_ref().unwrap();
    assert_eq!(
        (tr.kind.as_deref(), tr.name.as_deref(), tr.uid.as_deref()),
        (Some("Pod"), Some("a"), Some("a-uid"))
    );

    let subsets = desired_subsets(&svc, &pods).unwrap();
    assert_eq!(subsets.len(), 1);
    assert_eq!(subsets[0].addresses.as_ref().unwrap()[0].ip, "10.0.0.1");
    assert_eq!(
        subsets[0].not_ready_addresses.as_ref().unwrap()[0].ip,
        "10.0.0.2"
    );
    assert_eq!(subsets[0].ports.as_ref().unwrap()[0].port, 8080);
}

#[test]
fn named_ports_group_pods() {
    let svc = service(&json!([{ "name": "http", "port": 80, "targetPort": "http" }]));
    let pods = vec![
        pod("a", Some("10.0.0.1"), true, Some(8080)),
        pod("b", Some("10.0.0.2"), true, Some(9090)),
        pod("c", Some("10.0.0.3"), true, Some(8080)),
        pod("d", Some("10.0.0.4"), true, None),
    ];
    let slices = desired_slices(&svc, &pods);
    let summary: Vec<(Vec<Option<i32>>, Vec<String>)> = slices
        .iter()
        .map(|s| {
            (
                s.ports.iter().map(|p| p.port).collect(),
                s.endpoints.iter().map(|e| e.addresses[0].clone()).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (vec![], vec!["10.0.0.4".to_string()]),
            (
                vec![Some(8080)],
                vec!["10.0.0.1".to_string(), "10.0.0.3".to_string()]
            ),
            (vec![Some(9090)], vec!["10.0.0.2".to_string()]),
        ]
    );
    let subsets = desired_subsets(&svc, &pods).unwrap();
    assert_eq!(subsets.len(), 3);
}

#[test]
fn terminating_and_terminal_pods() {
    let svc = service(&json!([{ "port": 80 }]));
    let mut going = pod("a", Some("10.0.0.1"), true, None);
    going.metadata.deletion_timestamp = Some(crate::common::now());
    let mut done = pod("b", Some("10.0.0.2"), false, None);
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let mut other = pod("c", Some("10.0.0.3"), true, None);
    other.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
    let pods = vec![going, done, other];
    let slices = desired_slices(&svc, &pods);
    assert_eq!(slices.len(), 1);
    assert_eq!(slices[0].endpoints.len(), 1);
    assert_eq!(
        cond(&slices[0].endpoints[0]),
        (Some(false), Some(true), Some(true))
    );
    assert_eq!(
        slices[0].ports[0].port,
        Some(80),
        "no targetPort means the service port"
    );
    assert_eq!(slices[0].ports[0].name.as_deref(), Some(""));
    assert!(
        desired_subsets(&svc, &pods).is_none(),
        "terminating pods are not in v1 Endpoints"
    );
}

#[test]
fn no_pods_leaves_a_placeholder() {
    let svc = service(&json!([{ "port": 80 }]));
    assert_eq!(desired_slices(&svc, &[]), vec![DesiredSlice::default()]);
    assert!(desired_endpoints(&svc, &[]).subsets.is_none());
}

#[test]
fn services_without_selector_are_ignored() {
    let mut svc = service(&json!([{ "port": 80 }]));
    assert!(manages(&svc));
    svc.spec.as_mut().unwrap().selector = None;
    assert!(!manages(&svc));
}

fn existing(name: &str, content: &DesiredSlice) -> EndpointSlice {
    let mut s = slice_object(&service(&json!([])), content.clone());
    s.metadata.name = Some(name.into());
    s
}

#[test]
fn plan_is_idempotent_and_minimal() {
    let svc = service(&json!([{ "name": "http", "port": 80, "targetPort": "http" }]));
    let pods = vec![
        pod("a", Some("10.0.0.1"), true, Some(8080)),
        pod("b", Some("10.0.0.2"), true, Some(9090)),
    ];
    let desired = desired_slices(&svc, &pods);
    let plan = plan_slices("web", desired.clone(), &[]);
    assert_eq!(plan.create.len(), 2);

    let current: Vec<EndpointSlice> = desired
        .iter()
        .enumerate()
        .map(|(i, d)| existing(&format!("web-{i}"), d))
        .collect();
    assert!(
        plan_slices("web", desired.clone(), &current).is_empty(),
        "no-op reconcile writes nothing"
    );

    // Pod b goes away: its slice is deleted, the other left alone.
    let fewer = desired_slices(&svc, &pods[..1]);
    let plan = plan_slices("web", fewer, &current);
    assert_eq!(
        (plan.create.len(), plan.update.len(), plan.delete.clone()),
        (0, 0, vec!["web-1".to_string()])
    );

    // A new pod on port 8080 updates that slice in place.
    let more = vec![
        pods[0].clone(),
        pods[1].clone(),
        pod("c", Some("10.0.0.3"), true, Some(8080)),
    ];
    let plan = plan_slices("web", desired_slices(&svc, &more), &current);
    assert_eq!(plan.update.len(), 1);
    assert_eq!(plan.update[0].0, "web-0");
    assert!(plan.create.is_empty() && plan.delete.is_empty());
}

#[test]
fn slice_metadata() {
    let svc = service(&json!([{ "port": 80 }]));
    let s = slice_object(&svc, DesiredSlice::default());
    assert_eq!(s.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(s.address_type, "IPv4");
    let labels = s.metadata.labels.unwrap();
    assert_eq!(labels[SERVICE_NAME_LABEL], "web");
    assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
    let owner = &s.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Service", "svc-uid")
    );
}

mod glue {
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::{Ctx, reconcile};
    use super::{pod, service};
    use crate::common::Backoffs;
    use serde_json::json;
    use sluice_test_util::fake_api::FakeApi;

    #[tokio::test]
    async fn writes_once_then_idles() {
        let fake = FakeApi::default();
        let svc = service(&json!([{ "name": "http", "port": 80, "targetPort": "http" }]));
        fake.insert(
            "api/v1/namespaces/default/services",
            serde_json::to_value(&svc).unwrap(),
        );
        for p in [
            pod("a", Some("10.0.0.1"), true, Some(8080)),
            pod("b", Some("10.0.0.2"), false, Some(8080)),
        ] {
            fake.insert(
                "api/v1/namespaces/default/pods",
                serde_json::to_value(p).unwrap(),
            );
        }
        let ctx = Arc::new(Ctx {
            client: fake.client(),
            backoffs: Backoffs::default(),
            resync: Duration::from_mins(5),
        });
        reconcile(Arc::new(svc.clone()), ctx.clone()).await.unwrap();
        let slices = fake.list("apis/discovery.k8s.io/v1/namespaces/default/endpointslices");
        assert_eq!(slices.len(), 1);
        assert!(
            slices[0]["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("web-")
        );
        assert_eq!(slices[0]["endpoints"].as_array().unwrap().len(), 2);
        let ep = fake.get("api/v1/namespaces/default/endpoints/web").unwrap();
        assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "10.0.0.1");
        assert_eq!(ep["subsets"][0]["notReadyAddresses"][0]["ip"], "10.0.0.2");
        assert_eq!(ep["subsets"][0]["ports"][0]["port"], 8080);
        assert_eq!(fake.take_writes().len(), 2);

        reconcile(Arc::new(svc.clone()), ctx.clone()).await.unwrap();
        assert_eq!(
            fake.take_writes(),
            Vec::<String>::new(),
            "no-op reconcile writes nothing"
        );

        fake.remove("api/v1/namespaces/default/pods/b");
        reconcile(Arc::new(svc), ctx).await.unwrap();
        let writes = fake.take_writes();
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert!(writes.iter().all(|w| w.starts_with("PUT")));
    }
}

#[test]
fn hostname_published_only_for_the_pods_subdomain() {
    let svc = service(&json!([{ "name": "web", "port": 80 }]));
    let mut named = pod("a", Some("10.0.0.1"), true, None);
    let spec = named.spec.as_mut().unwrap();
    spec.hostname = Some("db-0".into());
    spec.subdomain = Some("web".into());
    let mut other = pod("b", Some("10.0.0.2"), true, None);
    let spec = other.spec.as_mut().unwrap();
    spec.hostname = Some("db-1".into());
    spec.subdomain = Some("elsewhere".into());
    let slices = desired_slices(&svc, &[named, other]);
    let hostnames: Vec<Option<&str>> = slices[0]
        .endpoints
        .iter()
        .map(|e| e.hostname.as_deref())
        .collect();
    assert_eq!(hostnames, [Some("db-0"), None]);
}
