use std::net::Ipv4Addr;

use serde_json::json;

use super::{
    Backend, Desired, Frontend, FrontendSpec, Protocol, ServicePortName, desired,
    service_frontends, service_frontends_on,
};
use crate::proxy::fixtures::{service, service_json, slice};
use k8s_openapi::api::discovery::v1::EndpointSlice;

fn fe(vip: &str, port: u16, protocol: Protocol) -> Frontend {
    Frontend {
        vip: vip.parse().unwrap(),
        port,
        protocol,
    }
}

fn be(addr: &str, port: u16) -> Backend {
    Backend {
        addr: addr.parse::<Ipv4Addr>().unwrap(),
        port,
    }
}

fn spec(namespace: &str, name: &str, port: &str, backends: Vec<Backend>) -> FrontendSpec {
    FrontendSpec {
        service: ServicePortName {
            namespace: namespace.into(),
            name: name.into(),
            port: port.into(),
        },
        backends,
        affinity_timeout_s: 0,
    }
}

fn one(frontend: Frontend, spec: FrontendSpec) -> Desired {
    Desired {
        frontends: [(frontend, spec)].into_iter().collect(),
    }
}

#[test]
fn empty_input_gives_empty_state() {
    let none: &[k8s_openapi::api::core::v1::Service] = &[];
    let no_slices: &[k8s_openapi::api::discovery::v1::EndpointSlice] = &[];
    assert_eq!(desired(none, no_slices), Desired::default());
}

#[test]
fn added_service_gets_its_ready_endpoints() {
    let svcs = [service("default", "web", "10.96.0.10", &[("", 80, "TCP")])];
    let slices = [slice(
        "default",
        "web",
        "web-abc",
        &[("", 8080, "TCP")],
        &[("10.244.0.7", Some(true)), ("10.244.0.5", None)],
    )];
    let got = desired(&svcs, &slices);
    assert_eq!(
        got,
        one(
            fe("10.96.0.10", 80, Protocol::Tcp),
            spec(
                "default",
                "web",
                "",
                vec![be("10.244.0.5", 8080), be("10.244.0.7", 8080)]
            )
        )
    );
    assert_eq!(got.backend_count(), 2);
}

#[test]
fn changed_endpoints_change_the_backends() {
    let svcs = [service("default", "web", "10.96.0.10", &[("", 80, "TCP")])];
    let before = [slice(
        "default",
        "web",
        "web-abc",
        &[("", 8080, "TCP")],
        &[("10.244.0.5", Some(true)), ("10.244.0.6", Some(true))],
    )];
    let after = [slice(
        "default",
        "web",
        "web-abc",
        &[("", 8080, "TCP")],
        &[("10.244.0.6", Some(true)), ("10.244.0.9", Some(true))],
    )];
    let fe = fe("10.96.0.10", 80, Protocol::Tcp);
    assert_eq!(
        desired(&svcs, &before).frontends[&fe].backends,
        vec![be("10.244.0.5", 8080), be("10.244.0.6", 8080)]
    );
    assert_eq!(
        desired(&svcs, &after).frontends[&fe].backends,
        vec![be("10.244.0.6", 8080), be("10.244.0.9", 8080)]
    );
}

#[test]
fn removed_service_disappears_even_if_its_slices_remain() {
    let svcs = [
        service("default", "web", "10.96.0.10", &[("", 80, "TCP")]),
        service("default", "api", "10.96.0.11", &[("", 80, "TCP")]),
    ];
    let slices = [
        slice(
            "default",
            "web",
            "web-a",
            &[("", 8080, "TCP")],
            &[("10.244.0.5", None)],
        ),
        slice(
            "default",
            "api",
            "api-a",
            &[("", 9090, "TCP")],
            &[("10.244.0.6", None)],
        ),
    ];
    assert_eq!(desired(&svcs, &slices).frontends.len(), 2);
    let got = desired(&svcs[1..], &slices);
    assert_eq!(
        got,
        one(
            fe("10.96.0.11", 80, Protocol::Tcp),
            spec("default", "api", "", vec![be("10.244.0.6", 9090)])
        )
    );
}

#[test]
fn named_ports_map_to_their_own_slice_ports() {
    let svcs = [service(
        "shop",
        "cart",
        "10.96.1.1",
        &[("http", 80, "TCP"), ("metrics", 9100, "TCP")],
    )];
    let slices = [slice(
        "shop",
        "cart",
        "cart-a",
        &[("metrics", 19100, "TCP"), ("http", 8080, "TCP")],
        &[("10.244.1.2", Some(true))],
    )];
    let got = desired(&svcs, &slices);
    assert_eq!(
        got.frontends[&fe("10.96.1.1", 80, Protocol::Tcp)],
        spec("shop", "cart", "http", vec![be("10.244.1.2", 8080)])
    );
    assert_eq!(
        got.frontends[&fe("10.96.1.1", 9100, Protocol::Tcp)],
        spec("shop", "cart", "metrics", vec![be("10.244.1.2", 19100)])
    );
}

#[test]
fn not_ready_endpoints_are_excluded() {
    let svcs = [service("default", "web", "10.96.0.10", &[("", 80, "TCP")])];
    let slices = [slice(
        "default",
        "web",
        "web-a",
        &[("", 8080, "TCP")],
        &[
            ("10.244.0.5", Some(false)),
            ("10.244.0.6", Some(true)),
            ("10.244.0.7", None),
        ],
    )];
    assert_eq!(
        desired(&svcs, &slices).frontends[&fe("10.96.0.10", 80, Protocol::Tcp)].backends,
        vec![be("10.244.0.6", 8080), be("10.244.0.7", 8080)]
    );
}

#[test]
fn service_without_endpoints_has_a_frontend_with_no_backends() {
    let svcs = [service("default", "web", "10.96.0.10", &[("", 80, "TCP")])];
    let only_unready = [slice(
        "default",
        "web",
        "web-a",
        &[("", 8080, "TCP")],
        &[("10.244.0.5", Some(false))],
    )];
    let expected = one(
        fe("10.96.0.10", 80, Protocol::Tcp),
        spec("default", "web", "", vec![]),
    );
    let no_slices: &[k8s_openapi::api::discovery::v1::EndpointSlice] = &[];
    assert_eq!(desired(&svcs, no_slices), expected);
    assert_eq!(desired(&svcs, &only_unready), expected);
}

#[test]
fn headless_external_name_and_sctp_are_ignored() {
    let svcs = [
        service("default", "headless", "None", &[("", 80, "TCP")]),
        service_json(json!({
            "metadata": {"namespace": "default", "name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "example.com",
                     "ports": [{"port": 80}]},
        })),
        service("default", "sctp", "10.96.0.12", &[("", 3868, "SCTP")]),
        service_json(json!({
            "metadata": {"namespace": "default", "name": "noip"},
            "spec": {"ports": [{"port": 80}]},
        })),
    ];
    let slices = [slice(
        "default",
        "headless",
        "headless-a",
        &[("", 8080, "TCP")],
        &[("10.244.0.5", None)],
    )];
    assert_eq!(desired(&svcs, &slices), Desired::default());
}

#[test]
fn node_port_and_load_balancer_services_get_cluster_ip_frontends() {
    let svcs = [
        service_json(json!({
            "metadata": {"namespace": "default", "name": "np"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.20",
                     "ports": [{"port": 80, "nodePort": 30080}]},
        })),
        service_json(json!({
            "metadata": {"namespace": "default", "name": "lb"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.21",
                     "ports": [{"port": 443, "nodePort": 30443}]},
        })),
    ];
    let got = desired(
        &svcs,
        &[] as &[k8s_openapi::api::discovery::v1::EndpointSlice],
    );
    assert_eq!(
        got.frontends.keys().copied().collect::<Vec<_>>(),
        vec![
            fe("10.96.0.20", 80, Protocol::Tcp),
            fe("10.96.0.21", 443, Protocol::Tcp)
        ]
    );
}

#[test]
fn multiple_slices_of_one_service_are_merged_and_deduplicated() {
    let svcs = [service("default", "web", "10.96.0.10", &[("", 80, "TCP")])];
    let slices = [
        slice(
            "default",
            "web",
            "web-a",
            &[("", 8080, "TCP")],
            &[("10.244.0.9", None), ("10.244.0.5", None)],
        ),
        slice(
            "default",
            "web",
            "web-b",
            &[("", 8080, "TCP")],
            &[("10.244.0.7", None), ("10.244.0.5", None)],
        ),
        // Same service name, other namespace: not ours.
        slice(
            "other",
            "web",
            "web-c",
            &[("", 8080, "TCP")],
            &[("10.244.9.9", None)],
        ),
    ];
    assert_eq!(
        desired(&svcs, &slices).frontends[&fe("10.96.0.10", 80, Protocol::Tcp)].backends,
        vec![
            be("10.244.0.5", 8080),
            be("10.244.0.7", 8080),
            be("10.244.0.9", 8080)
        ]
    );
}

#[test]
fn udp_ports_are_separate_frontends_matched_by_protocol() {
    let svcs = [service(
        "kube-system",
        "kube-dns",
        "10.96.0.10",
        &[("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")],
    )];
    let slices = [slice(
        "kube-system",
        "kube-dns",
        "kube-dns-a",
        &[("dns", 5353, "UDP"), ("dns-tcp", 5354, "TCP")],
        &[("10.244.0.3", None)],
    )];
    let got = desired(&svcs, &slices);
    assert_eq!(
        got.frontends[&fe("10.96.0.10", 53, Protocol::Udp)],
        spec(
            "kube-system",
            "kube-dns",
            "dns",
            vec![be("10.244.0.3", 5353)]
        )
    );
    assert_eq!(
        got.frontends[&fe("10.96.0.10", 53, Protocol::Tcp)],
        spec(
            "kube-system",
            "kube-dns",
            "dns-tcp",
            vec![be("10.244.0.3", 5354)]
        )
    );
    assert_eq!(got.backend_count(), 2);
}

#[test]
fn slice_port_with_same_name_but_other_protocol_does_not_match() {
    let svcs = [service("default", "dns", "10.96.0.53", &[("", 53, "UDP")])];
    let slices = [slice(
        "default",
        "dns",
        "dns-a",
        &[("", 53, "TCP")],
        &[("10.244.0.3", None)],
    )];
    assert!(
        desired(&svcs, &slices).frontends[&fe("10.96.0.53", 53, Protocol::Udp)]
            .backends
            .is_empty()
    );
}

#[test]
fn ipv6_and_fqdn_slices_and_addresses_are_ignored() {
    let svcs = [service("default", "web", "10.96.0.10", &[("", 80, "TCP")])];
    let mut v6 = slice(
        "default",
        "web",
        "web-v6",
        &[("", 8080, "TCP")],
        &[("fd00::5", None)],
    );
    v6.address_type = "IPv6".into();
    let mut fqdn = slice(
        "default",
        "web",
        "web-fqdn",
        &[("", 8080, "TCP")],
        &[("example.com", None)],
    );
    fqdn.address_type = "FQDN".into();
    let garbage = slice(
        "default",
        "web",
        "web-bad",
        &[("", 8080, "TCP")],
        &[("not-an-ip", None)],
    );
    assert!(
        desired(&svcs, &[v6, fqdn, garbage]).frontends[&fe("10.96.0.10", 80, Protocol::Tcp)]
            .backends
            .is_empty()
    );
}

#[test]
fn dual_stack_service_uses_only_its_ipv4_cluster_ip() {
    let svcs = [service_json(json!({
        "metadata": {"namespace": "default", "name": "web"},
        "spec": {"clusterIP": "fd00::10", "clusterIPs": ["fd00::10", "10.96.0.10"],
                 "ports": [{"port": 80}]},
    }))];
    let got = desired(
        &svcs,
        &[] as &[k8s_openapi::api::discovery::v1::EndpointSlice],
    );
    assert_eq!(
        got.frontends.keys().copied().collect::<Vec<_>>(),
        vec![fe("10.96.0.10", 80, Protocol::Tcp)]
    );
}

#[test]
fn arcs_from_a_reflector_store_are_accepted() {
    use std::sync::Arc;
    let svcs = vec![Arc::new(service(
        "default",
        "web",
        "10.96.0.10",
        &[("", 80, "TCP")],
    ))];
    let slices = vec![Arc::new(slice(
        "default",
        "web",
        "web-a",
        &[("", 8080, "TCP")],
        &[("10.244.0.5", None)],
    ))];
    assert_eq!(desired(&svcs, &slices).backend_count(), 1);
}

#[test]
fn a_locally_served_service_goes_to_this_node_only() {
    let mut d = Desired::default();
    let fe = |port, protocol| Frontend {
        vip: Ipv4Addr::new(10, 96, 0, 10),
        port,
        protocol,
    };
    let spec = || {
        FrontendSpec::new(
            ServicePortName::new("kube-system", "kube-dns", "dns"),
            [Backend {
                addr: Ipv4Addr::new(10, 244, 1, 9),
                port: 5353,
            }],
        )
    };
    d.insert(fe(53, Protocol::Udp), spec());
    d.insert(fe(53, Protocol::Tcp), spec());
    let other = Frontend {
        vip: Ipv4Addr::new(10, 96, 0, 20),
        port: 80,
        protocol: Protocol::Tcp,
    };
    d.insert(
        other,
        FrontendSpec::new(ServicePortName::new("default", "web", ""), []),
    );
    d.serve_locally("kube-system", "kube-dns", Ipv4Addr::new(10, 244, 0, 1));
    let local = [Backend {
        addr: Ipv4Addr::new(10, 244, 0, 1),
        port: 53,
    }];
    assert_eq!(d.frontends[&fe(53, Protocol::Udp)].backends, local);
    assert_eq!(d.frontends[&fe(53, Protocol::Tcp)].backends, local);
    assert!(d.frontends[&other].backends.is_empty());
}

#[test]
fn internal_traffic_policy_local_keeps_cluster_ips_to_this_nodes_endpoints() {
    let service = service_json(json!({
        "metadata": {"namespace": "default", "name": "web"},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.50", "clusterIPs": ["10.96.0.50"],
                 "externalIPs": ["192.0.2.7"], "internalTrafficPolicy": "Local",
                 "ports": [{"port": 80, "protocol": "TCP"}]},
    }));
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "web-1",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.244.0.5"], "nodeName": "node-1"},
            {"addresses": ["10.244.1.5"], "nodeName": "node-2"},
        ],
    }))
    .unwrap();
    let vip = Frontend {
        vip: Ipv4Addr::new(10, 96, 0, 50),
        port: 80,
        protocol: Protocol::Tcp,
    };
    let ext = Frontend {
        vip: Ipv4Addr::new(192, 0, 2, 7),
        ..vip
    };
    let on1 = service_frontends_on(&service, &[&slice], Some("node-1"));
    assert_eq!(
        on1[&vip].backends,
        vec![Backend {
            addr: Ipv4Addr::new(10, 244, 0, 5),
            port: 8080
        }]
    );
    assert_eq!(
        on1[&ext].backends.len(),
        2,
        "external IPs keep every endpoint"
    );
    let on3 = service_frontends_on(&service, &[&slice], Some("node-3"));
    assert!(on3[&vip].backends.is_empty(), "no local endpoint: refused");
    assert_eq!(
        service_frontends(&service, &[&slice])[&vip].backends.len(),
        2
    );
}

#[test]
fn serving_terminating_endpoints_are_used_only_when_none_is_ready() {
    let svc = service("default", "web", "10.96.0.60", &[("", 80, "TCP")]);
    let slice_with = |endpoints: serde_json::Value| -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": "web-1",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints,
        }))
        .unwrap()
    };
    let terminating = |addr: &str, serving: bool| {
        json!({"addresses": [addr],
               "conditions": {"ready": false, "serving": serving, "terminating": true}})
    };
    let vip = fe("10.96.0.60", 80, Protocol::Tcp);
    // A ready endpoint left: the terminating ones carry no new connections.
    let mixed = slice_with(json!([
        {"addresses": ["10.244.0.5"], "conditions": {"ready": true}},
        terminating("10.244.0.6", true),
    ]));
    assert_eq!(
        service_frontends(&svc, &[&mixed])[&vip].backends,
        vec![be("10.244.0.5", 8080)]
    );
    // None ready: the serving terminating one takes them, the non-serving one never.
    let draining = slice_with(json!([
        terminating("10.244.0.6", true),
        terminating("10.244.0.7", false),
    ]));
    assert_eq!(
        service_frontends(&svc, &[&draining])[&vip].backends,
        vec![be("10.244.0.6", 8080)]
    );
}

#[test]
fn client_ip_affinity_gives_every_frontend_its_timeout() {
    let with_affinity = |config: serde_json::Value| {
        let mut spec = json!({"type": "ClusterIP", "clusterIP": "10.96.0.70",
                              "clusterIPs": ["10.96.0.70"], "externalIPs": ["192.0.2.9"],
                              "sessionAffinity": "ClientIP",
                              "ports": [{"port": 80, "protocol": "TCP"},
                                        {"name": "dns", "port": 53, "protocol": "UDP"}]});
        if !config.is_null() {
            spec["sessionAffinityConfig"] = config;
        }
        service_json(json!({"metadata": {"namespace": "default", "name": "web"}, "spec": spec}))
    };
    let none: &[&EndpointSlice] = &[];
    let defaulted = service_frontends(&with_affinity(serde_json::Value::Null), none);
    assert_eq!(
        defaulted.len(),
        4,
        "two ports on the cluster IP and the external IP"
    );
    assert!(
        defaulted.values().all(|s| s.affinity_timeout_s == 10_800),
        "upstream's default timeout: {defaulted:?}"
    );
    let minute = service_frontends(
        &with_affinity(json!({"clientIP": {"timeoutSeconds": 60}})),
        none,
    );
    assert!(minute.values().all(|s| s.affinity_timeout_s == 60));
    let plain = service("default", "web", "10.96.0.70", &[("", 80, "TCP")]);
    assert!(
        service_frontends(&plain, none)
            .values()
            .all(|s| s.affinity_timeout_s == 0)
    );
}
