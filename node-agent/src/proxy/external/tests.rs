use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};
use sluice_ebpf_common::nodeport::{
    EXT_BACKEND_LOCAL, EXT_FLAG_AFFINITY, EXT_FLAG_EXTERNAL_IP, EXT_FLAG_LOADBALANCER,
    EXT_FLAG_LOCAL, EXT_FLAG_MAGLEV, EXT_FLAG_NODEPORT, EXT_FLAG_SOURCE_RANGES, NodePortConfig,
    ServiceKey,
};
use sluice_ebpf_common::{Be16, Be32, PROTO_TCP};

use super::reconcile::ExtReconciler;
use super::{ExtBackend, ExternalIndex, announcer, service_external};
use crate::datapath::{FakeNodePortMaps, NodePortOps};
use crate::proxy::desired::{Backend, Frontend, Protocol};
use crate::proxy::fixtures::service_json;

fn lb_service(policy: &str, extra: &Value) -> k8s_openapi::api::core::v1::Service {
    let mut value = json!({
        "metadata": {"namespace": "default", "name": "web"},
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": "10.96.0.50",
            "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}],
            "externalTrafficPolicy": policy,
            "externalIPs": ["192.0.2.7"],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "172.30.0.241"}]}},
    });
    if let (Some(spec), Some(extra)) = (value["spec"].as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    service_json(value)
}

/// Endpoints as `(address, node, ready, serving, terminating)`.
fn slice(endpoints: &[(&str, &str, bool, bool, bool)]) -> EndpointSlice {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(addr, node, ready, serving, terminating)| {
            json!({"addresses": [addr], "nodeName": node,
                   "conditions": {"ready": ready, "serving": serving, "terminating": terminating}})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "web-1",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .unwrap()
}

fn fe(vip: [u8; 4], port: u16) -> Frontend {
    Frontend {
        vip: Ipv4Addr::from(vip),
        port,
        protocol: Protocol::Tcp,
    }
}

fn be(addr: [u8; 4], local: bool) -> ExtBackend {
    ExtBackend {
        backend: Backend {
            addr: Ipv4Addr::from(addr),
            port: 8080,
        },
        local,
    }
}

#[test]
fn nodeport_external_ip_and_ingress_frontends_with_cluster_policy() {
    let svc = lb_service("Cluster", &json!({}));
    let slice = slice(&[
        ("10.244.1.5", "node-1", true, true, false),
        ("10.244.2.5", "node-2", true, true, false),
    ]);
    let out = service_external(&svc, &[&slice], "node-1");
    let keys: Vec<Frontend> = out.frontends.keys().copied().collect();
    assert_eq!(
        keys,
        vec![
            fe([0, 0, 0, 0], 30080),
            fe([172, 30, 0, 241], 80),
            fe([192, 0, 2, 7], 80)
        ]
    );
    let np = &out.frontends[&fe([0, 0, 0, 0], 30080)];
    assert_eq!(np.flags, EXT_FLAG_NODEPORT);
    assert_eq!(
        np.backends,
        vec![be([10, 244, 1, 5], true), be([10, 244, 2, 5], false)]
    );
    assert_eq!(
        out.frontends[&fe([172, 30, 0, 241], 80)].flags,
        EXT_FLAG_LOADBALANCER
    );
    assert_eq!(
        out.frontends[&fe([192, 0, 2, 7], 80)].flags,
        EXT_FLAG_EXTERNAL_IP
    );
    assert_eq!(out.health, None, "no health check without policy Local");
    // Exactly one of the two serving nodes announces the ingress IP.
    let other = service_external(&svc, &[&slice], "node-2");
    assert_eq!(out.announce.len() + other.announce.len(), 1);
}

#[test]
fn local_policy_keeps_only_local_endpoints_and_serves_a_health_check() {
    let svc = lb_service("Local", &json!({"healthCheckNodePort": 31000}));
    let slice = slice(&[
        ("10.244.1.5", "node-1", true, true, false),
        ("10.244.2.5", "node-2", true, true, false),
    ]);
    let on1 = service_external(&svc, &[&slice], "node-1");
    let np = &on1.frontends[&fe([0, 0, 0, 0], 30080)];
    assert_eq!(np.flags, EXT_FLAG_NODEPORT | EXT_FLAG_LOCAL);
    assert_eq!(np.backends, vec![be([10, 244, 1, 5], true)]);
    assert_eq!(
        on1.health.as_ref().map(|h| (h.port, h.local_endpoints)),
        Some((31000, 1))
    );
    let on3 = service_external(&svc, &[&slice], "node-3");
    assert!(on3.frontends[&fe([0, 0, 0, 0], 30080)].backends.is_empty());
    assert_eq!(on3.health.as_ref().map(|h| h.local_endpoints), Some(0));
    assert!(
        on3.announce.is_empty(),
        "a node without endpoints never announces"
    );
}

#[test]
fn terminating_serving_endpoints_only_when_no_ready_one() {
    let svc = lb_service("Cluster", &json!({}));
    let both = slice(&[
        ("10.244.1.5", "node-1", true, true, false),
        ("10.244.1.6", "node-1", false, true, true),
    ]);
    let out = service_external(&svc, &[&both], "node-1");
    let np = &out.frontends[&fe([0, 0, 0, 0], 30080)];
    assert_eq!(np.backends, vec![be([10, 244, 1, 5], true)]);
    assert_eq!(
        np.draining,
        vec![Backend {
            addr: Ipv4Addr::new(10, 244, 1, 6),
            port: 8080
        }]
    );
    let only = slice(&[
        ("10.244.1.6", "node-1", false, true, true),
        ("10.244.1.7", "node-1", false, false, true),
    ]);
    let out = service_external(&svc, &[&only], "node-1");
    assert_eq!(
        out.frontends[&fe([0, 0, 0, 0], 30080)].backends,
        vec![be([10, 244, 1, 6], true)]
    );
}

#[test]
fn affinity_and_source_ranges() {
    let svc = lb_service(
        "Cluster",
        &json!({"sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                "loadBalancerSourceRanges": ["10.1.2.3/8", "192.168.7.9"]}),
    );
    let out = service_external(&svc, &[], "node-1");
    let lb = &out.frontends[&fe([172, 30, 0, 241], 80)];
    assert_eq!(
        lb.flags,
        EXT_FLAG_LOADBALANCER | EXT_FLAG_AFFINITY | EXT_FLAG_SOURCE_RANGES
    );
    assert_eq!(lb.affinity_timeout_s, 60);
    assert_eq!(
        lb.source_ranges,
        vec![
            (Ipv4Addr::new(10, 0, 0, 0), 8),
            (Ipv4Addr::new(192, 168, 7, 9), 32)
        ]
    );
    let np = &out.frontends[&fe([0, 0, 0, 0], 30080)];
    assert_eq!(
        np.flags & EXT_FLAG_SOURCE_RANGES,
        0,
        "ranges restrict LB IPs only"
    );
    let default = service_external(
        &lb_service("Cluster", &json!({"sessionAffinity": "ClientIP"})),
        &[],
        "node-1",
    );
    assert_eq!(
        default.frontends[&fe([0, 0, 0, 0], 30080)].affinity_timeout_s,
        10_800
    );
}

#[test]
fn cluster_ip_services_get_only_external_ips() {
    let svc = service_json(json!({
        "metadata": {"namespace": "default", "name": "web"},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.50", "externalIPs": ["192.0.2.7"],
                 "ports": [{"name": "http", "port": 80, "nodePort": 30080}]},
    }));
    let out = service_external(&svc, &[], "node-1");
    assert_eq!(
        out.frontends.keys().copied().collect::<Vec<_>>(),
        vec![fe([192, 0, 2, 7], 80)]
    );
}

#[test]
fn announcer_is_stable_and_spreads() {
    let nodes = ["node-1", "node-2", "node-3"];
    let mut winners = BTreeSet::new();
    for last in 1..=40u8 {
        let ip = Ipv4Addr::new(172, 30, 0, last);
        let a = announcer(ip, nodes).unwrap();
        assert_eq!(announcer(ip, nodes.iter().rev().copied()), Some(a));
        winners.insert(a);
    }
    assert_eq!(winners.len(), 3);
    assert_eq!(announcer(Ipv4Addr::LOCALHOST, []), None);
}

fn reconciler() -> ExtReconciler {
    ExtReconciler::new(
        vec![Ipv4Addr::new(172, 30, 0, 11)],
        NodePortConfig {
            snat_addr: Be32::from_ipv4(Ipv4Addr::new(172, 30, 0, 11)),
            snat_port_min: 32768,
            snat_port_max: 65535,
            flags: 0,
        },
        true,
    )
}

fn index_with(endpoints: &[(&str, &str, bool, bool, bool)]) -> ExternalIndex {
    let mut index = ExternalIndex::new("node-1");
    let svc = lb_service("Cluster", &json!({}));
    let slice = slice(endpoints);
    let mut changed = BTreeSet::new();
    index.update_service(
        &("default".into(), "web".into()),
        Some(&svc),
        &[&slice],
        &mut changed,
    );
    index
}

#[test]
fn reconciler_writes_slots_maglev_and_prunes() {
    let mut maps = FakeNodePortMaps::default();
    // A stale entry a previous run left.
    let stale = ServiceKey::frontend(
        Be32::from_ipv4(Ipv4Addr::new(1, 2, 3, 4)),
        Be16::from_host(1),
        PROTO_TCP,
    );
    maps.upsert_service(
        stale,
        sluice_ebpf_common::nodeport::ExtServiceValue::frontend(0, 0, 9),
    )
    .unwrap();
    let index = index_with(&[
        ("10.244.1.5", "node-1", true, true, false),
        ("10.244.2.5", "node-2", true, true, false),
    ]);
    let mut r = reconciler();
    r.apply(index.frontends(), &mut maps).unwrap();
    assert!(!maps.services.contains_key(&stale));
    let np = ServiceKey::frontend(Be32::from_raw(0), Be16::from_host(30080), PROTO_TCP);
    let front = maps.services[&np];
    assert_eq!(front.count, 2);
    assert_eq!(front.flags, EXT_FLAG_NODEPORT | EXT_FLAG_MAGLEV);
    assert_eq!(
        maps.services[&np.with_slot(1)].backend_flags,
        EXT_BACKEND_LOCAL
    );
    assert_eq!(maps.services[&np.with_slot(2)].backend_flags, 0);
    assert_eq!(maps.maglev.len(), 3, "one table per frontend");
    assert_eq!(maps.node_ips.len(), 1);
    assert_eq!(maps.config.snat_port_min, 32768);
    // Idempotent: a second full pass writes nothing.
    assert!(r.apply(index.frontends(), &mut maps).unwrap().is_empty());

    // One backend goes: its slot goes, and it is reported for flushing.
    let smaller = index_with(&[("10.244.1.5", "node-1", true, true, false)]);
    let changed: BTreeSet<Frontend> = smaller.frontends().keys().copied().collect();
    r.apply_changes(smaller.frontends(), &changed, &mut maps)
        .unwrap();
    assert_eq!(maps.services[&np].count, 1);
    assert!(!maps.services.contains_key(&np.with_slot(2)));
    let removed = r.take_removed_backends();
    assert_eq!(
        removed.into_iter().collect::<Vec<_>>(),
        vec![(
            Backend {
                addr: Ipv4Addr::new(10, 244, 2, 5),
                port: 8080
            },
            Protocol::Tcp
        )]
    );

    // A restart adopts the ids and writes nothing.
    let ids: BTreeMap<Frontend, Option<u16>> =
        smaller.frontends().keys().map(|f| (*f, r.id(f))).collect();
    let mut again = reconciler();
    let stats = again.apply(smaller.frontends(), &mut maps).unwrap();
    assert_eq!(
        (stats.written, stats.removed, stats.ranges),
        (0, 0, 0),
        "{stats}"
    );
    for (f, id) in ids {
        assert_eq!(again.id(&f), id);
    }

    // The Service goes: everything goes.
    let empty = BTreeMap::new();
    again.apply_changes(&empty, &changed, &mut maps).unwrap();
    assert!(maps.services.is_empty());
    assert!(maps.maglev.is_empty());
}

#[test]
fn reconciler_writes_and_prunes_source_ranges() {
    let mut index = ExternalIndex::new("node-1");
    let svc = lb_service(
        "Cluster",
        &json!({"loadBalancerSourceRanges": ["10.0.0.0/8"]}),
    );
    let mut changed = BTreeSet::new();
    let id = ("default".to_owned(), "web".to_owned());
    index.update_service(&id, Some(&svc), &[], &mut changed);
    let mut maps = FakeNodePortMaps::default();
    let mut r = reconciler();
    r.apply(index.frontends(), &mut maps).unwrap();
    let lb_id = r.id(&fe([172, 30, 0, 241], 80)).unwrap();
    assert_eq!(
        maps.source_ranges.iter().copied().collect::<Vec<_>>(),
        vec![(lb_id, Be32::from_ipv4(Ipv4Addr::new(10, 0, 0, 0)), 8)]
    );
    let svc = lb_service(
        "Cluster",
        &json!({"loadBalancerSourceRanges": ["192.168.0.0/16"]}),
    );
    let mut changed = BTreeSet::new();
    index.update_service(&id, Some(&svc), &[], &mut changed);
    assert_eq!(
        changed.len(),
        1,
        "only the LB frontend changed: {changed:?}"
    );
    r.apply_changes(index.frontends(), &changed, &mut maps)
        .unwrap();
    assert_eq!(
        maps.source_ranges.iter().copied().collect::<Vec<_>>(),
        vec![(lb_id, Be32::from_ipv4(Ipv4Addr::new(192, 168, 0, 0)), 16)]
    );
    // The zero-backend frontend exists and drops.
    assert_eq!(
        maps.services[&ServiceKey::frontend(
            Be32::from_ipv4(Ipv4Addr::new(172, 30, 0, 241)),
            Be16::from_host(80),
            PROTO_TCP
        )]
            .count,
        0
    );
}

#[test]
fn host_ports_become_local_frontends() {
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "hp"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "x", "ports": [
            {"containerPort": 8080, "hostPort": 8081},
            {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "172.30.0.11"},
            {"containerPort": 9090}
        ]}]},
        "status": {"phase": "Running", "podIP": "10.244.0.9"},
    }))
    .unwrap();
    let out = super::pod_host_ports(&pod);
    assert_eq!(out.frontends.len(), 2, "{out:?}");
    let tcp = &out.frontends[&fe([0, 0, 0, 0], 8081)];
    assert_eq!(tcp.flags, EXT_FLAG_NODEPORT | EXT_FLAG_LOCAL);
    assert_eq!(
        tcp.backends,
        vec![ExtBackend {
            backend: Backend {
                addr: Ipv4Addr::new(10, 244, 0, 9),
                port: 8080
            },
            local: true
        }]
    );
    let udp = Frontend {
        vip: Ipv4Addr::new(172, 30, 0, 11),
        port: 5353,
        protocol: Protocol::Udp,
    };
    assert_eq!(out.frontends[&udp].backends[0].backend.port, 53);

    // Through the index, and gone with the pod or once it has finished.
    let mut index = ExternalIndex::new("node-1");
    let mut changed = BTreeSet::new();
    index.update_pod("default", "hp", Some(&pod), &mut changed);
    assert_eq!(changed.len(), 2);
    let mut done = pod.clone();
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let mut changed = BTreeSet::new();
    index.update_pod("default", "hp", Some(&done), &mut changed);
    assert_eq!(changed.len(), 2);
    assert!(index.frontends().is_empty());
}

#[test]
fn frontends_past_the_maglev_capacity_fall_back_to_the_flow_hash() {
    use sluice_ebpf_common::nodeport::MAGLEV_MAX_ENTRIES;
    let n = usize::try_from(MAGLEV_MAX_ENTRIES).unwrap() + 10;
    let mut desired = BTreeMap::new();
    let spec = super::ExtSpec {
        service: crate::proxy::ServicePortName::new("default", "web", ""),
        flags: EXT_FLAG_NODEPORT,
        affinity_timeout_s: 0,
        source_ranges: Vec::new(),
        backends: vec![be([10, 244, 1, 5], true)],
        draining: Vec::new(),
    };
    for i in 0..n {
        desired.insert(
            fe([0, 0, 0, 0], 30_000 + u16::try_from(i).unwrap()),
            spec.clone(),
        );
    }
    let mut maps = FakeNodePortMaps::default();
    let mut r = reconciler();
    r.apply(&desired, &mut maps).unwrap();
    assert_eq!(maps.maglev.len(), n - 10);
    let plain = maps
        .services
        .iter()
        .filter(|(k, v)| k.slot == 0 && v.flags & EXT_FLAG_MAGLEV == 0)
        .count();
    assert_eq!(plain, 10, "the frontends without a table lack the flag");
    assert_eq!(
        maps.maglev_refused, 0,
        "no write is tried once the shadow counts a full map"
    );
    // A verify pass changes nothing and tries nothing.
    assert!(r.apply(&desired, &mut maps).unwrap().is_empty());
    assert_eq!(maps.maglev_refused, 0);
    // Frontends that leave free their tables; the next pass gives them to those without.
    for i in 0..10 {
        desired.remove(&fe([0, 0, 0, 0], 30_000 + u16::try_from(i).unwrap()));
    }
    r.apply(&desired, &mut maps).unwrap();
    assert_eq!(maps.maglev.len(), n - 10);
    assert!(
        maps.services
            .iter()
            .filter(|(k, _)| k.slot == 0)
            .all(|(_, v)| v.flags & EXT_FLAG_MAGLEV != 0),
        "every frontend left has a table"
    );
}
