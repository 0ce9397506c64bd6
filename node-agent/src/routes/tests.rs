use super::*;
use k8s_openapi::api::core::v1::{NodeAddress, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn node(name: &str, cidr: Option<&str>, ip: Option<&str>) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: cidr.map(Into::into),
            pod_cidrs: cidr.map(|c| vec![c.into()]),
            ..NodeSpec::default()
        }),
        status: Some(NodeStatus {
            addresses: ip.map(|ip| {
                vec![
                    NodeAddress {
                        type_: "Hostname".into(),
                        address: name.into(),
                    },
                    NodeAddress {
                        type_: "InternalIP".into(),
                        address: ip.into(),
                    },
                ]
            }),
            ..NodeStatus::default()
        }),
    }
}

fn route(cidr: &str, via: &str) -> PodRoute {
    PodRoute {
        cidr: cidr.parse().unwrap(),
        via: via.parse().unwrap(),
    }
}

#[test]
fn routes_every_other_node_range_via_its_internal_ip() {
    let nodes = [
        node("a", Some("10.244.0.0/24"), Some("10.99.0.11")),
        node("b", Some("10.244.1.0/24"), Some("10.99.0.12")),
        node("c", Some("10.244.2.0/24"), Some("10.99.0.13")),
    ];
    let wanted = desired(&nodes, "a");
    assert_eq!(
        wanted.into_iter().collect::<Vec<_>>(),
        vec![
            route("10.244.1.0/24", "10.99.0.12"),
            route("10.244.2.0/24", "10.99.0.13")
        ]
    );
}

#[test]
fn skips_nodes_without_a_range_or_address_and_overlapping_ranges() {
    let nodes = [
        node("a", Some("10.244.0.0/24"), Some("10.99.0.11")),
        // Not yet given a range by the node IPAM controller.
        node("b", None, Some("10.99.0.12")),
        // Not yet reporting its address.
        node("c", Some("10.244.2.0/24"), None),
        // A range that overlaps ours: routing it would take our own pods away.
        node("d", Some("10.244.0.0/16"), Some("10.99.0.14")),
        // Not an IPv4 address.
        node("e", Some("10.244.4.0/24"), Some("fd00::1")),
    ];
    assert!(desired(&nodes, "a").is_empty());
    // Without our own Node yet, nothing overlaps.
    assert_eq!(
        desired(&nodes[3..4], "a").into_iter().collect::<Vec<_>>(),
        vec![route("10.244.0.0/16", "10.99.0.14")]
    );
}

#[test]
fn prefers_pod_cidrs_over_pod_cidr() {
    let mut n = node("b", Some("10.244.1.0/24"), Some("10.99.0.12"));
    n.spec.as_mut().unwrap().pod_cidrs = Some(vec!["10.244.9.0/24".into(), "fd00::/64".into()]);
    assert_eq!(
        desired([&n], "a").into_iter().collect::<Vec<_>>(),
        vec![route("10.244.9.0/24", "10.99.0.12")]
    );
}

#[test]
fn diff_adds_missing_and_removes_stale() {
    let current: BTreeSet<_> = [
        route("10.244.1.0/24", "10.99.0.12"),
        route("10.244.5.0/24", "10.99.0.15"),
    ]
    .into();
    let wanted: BTreeSet<_> = [
        route("10.244.1.0/24", "10.99.0.12"),
        route("10.244.2.0/24", "10.99.0.13"),
    ]
    .into();
    assert_eq!(
        diff(&current, &wanted),
        Changes {
            added: vec![route("10.244.2.0/24", "10.99.0.13")],
            removed: vec![route("10.244.5.0/24", "10.99.0.15")],
        }
    );
    assert_eq!(diff(&wanted, &wanted), Changes::default());
}

#[test]
fn reads_back_only_its_own_routes() {
    let r = route("10.244.1.0/24", "10.99.0.12");
    assert_eq!(ours(&message(r, None)), Some(r));
    assert_eq!(ours(&message(r, Some(7))), Some(r));
    let mut other = message(r, None);
    other.header.protocol = RouteProtocol::Static;
    assert_eq!(ours(&other), None);
    let mut unreachable = message(r, None);
    unreachable.header.kind = RouteType::Unreachable;
    assert_eq!(ours(&unreachable), None);
}

#[test]
fn the_overlay_routes_via_the_range_gateway_at_a_mac_from_the_node_address() {
    let r = route("10.244.1.0/24", "172.30.0.12");
    assert_eq!(kernel_route(r, false), r);
    assert_eq!(kernel_route(r, true), route("10.244.1.0/24", "10.244.1.0"));
    assert_eq!(
        vxlan::mac_of("172.30.0.12".parse().unwrap()),
        [0x0a, 0x58, 172, 30, 0, 12]
    );
    // Locally administered, unicast.
    assert_eq!(vxlan::mac_of(Ipv4Addr::UNSPECIFIED)[0] & 0b11, 0b10);
}
