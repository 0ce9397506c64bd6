use std::net::Ipv4Addr;

use sluice_ebpf_common::{SockAffinityKey, SockAffinityValue, SockRevNatKey, SockRevNatValue};

use super::{Maps, render};
use crate::datapath::{
    BackendKey, BackendValue, Be16, Be32, DatapathOps, FakeDatapath, RevNatKey, RevNatValue,
    ServiceKey, ServiceValue,
};
use crate::proxy::{
    Backend, Desired, Frontend, FrontendSpec, Protocol, Reconciler, ServicePortName,
};

fn snapshot(dp: &FakeDatapath) -> Maps {
    Maps {
        services: dp.services().unwrap(),
        backends: dp.backends().unwrap(),
        rev_nats: dp.rev_nats().unwrap(),
        sock_rev_nats: Vec::new(),
        sock_affinities: Vec::new(),
        north_south: None,
    }
}

fn spec(name: &str, backends: &[(Ipv4Addr, u16)]) -> FrontendSpec {
    FrontendSpec::new(
        ServicePortName::new("default", name, ""),
        backends.iter().map(|(addr, port)| Backend {
            addr: *addr,
            port: *port,
        }),
    )
}

#[test]
fn lists_frontends_with_their_backends_rev_nat_and_sockets() {
    let mut desired = Desired::default();
    desired.insert(
        Frontend {
            vip: Ipv4Addr::new(10, 96, 0, 10),
            port: 80,
            protocol: Protocol::Tcp,
        },
        spec(
            "web",
            &[
                (Ipv4Addr::new(10, 244, 0, 5), 8080),
                (Ipv4Addr::new(10, 244, 0, 6), 8080),
            ],
        )
        .with_affinity(600),
    );
    desired.insert(
        Frontend {
            vip: Ipv4Addr::new(10, 96, 0, 53),
            port: 53,
            protocol: Protocol::Udp,
        },
        spec("dns", &[(Ipv4Addr::new(10, 244, 0, 5), 5353)]),
    );
    desired.insert(
        Frontend {
            vip: Ipv4Addr::new(10, 96, 0, 9),
            port: 443,
            protocol: Protocol::Tcp,
        },
        spec("empty", &[]),
    );
    let mut dp = FakeDatapath::new();
    Reconciler::new().apply(&desired, &mut dp).unwrap();
    let mut maps = snapshot(&dp);
    maps.sock_rev_nats.push((
        SockRevNatKey::new(
            4097,
            Be32::from_octets([10, 244, 0, 5]),
            Be16::from_host(5353),
        ),
        SockRevNatValue {
            vip: Be32::from_octets([10, 96, 0, 53]),
            port: Be16::from_host(53),
            rev_nat_id: 3,
        },
    ));
    maps.sock_affinities.push((
        SockAffinityKey::new(4_026_531_840, 2),
        SockAffinityValue {
            last_used_ns: 123_456_789,
            backend_id: 2,
            slot: 2,
            pad: [0; 2],
        },
    ));
    let got = render(&maps);
    let want = "\
SERVICES (sluice_svc_v1, backends from sluice_be_v1)
FRONTEND            REV-NAT   SLOT   BACKEND                  STATE
10.96.0.9:443/TCP   1         0      (no backends: refused)
10.96.0.10:80/TCP   2         0      (2 backends)             ClientIP-affinity (600s)
                              1      10.244.0.5:8080 (id 1)   active
                              2      10.244.0.6:8080 (id 2)   active
10.96.0.53:53/UDP   3         0      (1 backend)
                              1      10.244.0.5:5353 (id 3)   active

BACKENDS (sluice_be_v1)
ID   ADDRESS               STATE    SLOTS
1    10.244.0.5:8080/TCP   active   1
2    10.244.0.6:8080/TCP   active   1
3    10.244.0.5:5353/UDP   active   1

REVERSE NAT (sluice_revnat_v1)
REV-NAT   FRONTEND
1         10.96.0.9:443
2         10.96.0.10:80
3         10.96.0.53:53

SOCKET REVERSE NAT (sluice_sock_revnat_v1, LRU)
SOCKET COOKIE   BACKEND           FRONTEND        REV-NAT
4097            10.244.0.5:5353   10.96.0.53:53   3

SOCKET SESSION AFFINITY (sluice_sock_aff_v1, LRU)
NETNS COOKIE   REV-NAT   SLOT   BACKEND ID   LAST USED (ktime ns)
4026531840     2         2      2            123456789
";
    assert_eq!(got, want, "\ngot:\n{got}");
}

#[test]
fn empty_maps_list_every_section_as_none() {
    assert_eq!(
        render(&Maps::default()),
        "\
SERVICES (sluice_svc_v1, backends from sluice_be_v1)
(none)

BACKENDS (sluice_be_v1)
(none)

REVERSE NAT (sluice_revnat_v1)
(none)

SOCKET REVERSE NAT (sluice_sock_revnat_v1, LRU)
(none)

SOCKET SESSION AFFINITY (sluice_sock_aff_v1, LRU)
(none)
"
    );
}

#[test]
fn inconsistent_entries_are_shown_not_hidden() {
    let key = |last, slot| {
        ServiceKey::new(
            Be32::from_octets([10, 96, 0, last]),
            Be16::from_host(80),
            6,
            slot,
        )
    };
    let backend = BackendValue {
        flags: 1,
        ..BackendValue::new(Be32::from_octets([10, 244, 0, 5]), Be16::from_host(80), 6)
    };
    let maps = Maps {
        services: vec![
            // 10.96.0.1: count 3, slot 2 missing, slot 3 names a missing
            // backend, slot 4 past the count; no rev-NAT entry 7.
            (key(1, 0), ServiceValue::frontend(3, 0, 7)),
            (key(1, 1), ServiceValue::backend_slot(1, 7)),
            (key(1, 3), ServiceValue::backend_slot(9, 7)),
            (key(1, 4), ServiceValue::backend_slot(1, 7)),
            // 10.96.0.2: slots without a frontend entry.
            (key(2, 1), ServiceValue::backend_slot(1, 8)),
        ],
        backends: vec![(BackendKey { id: 1 }, backend)],
        rev_nats: vec![(
            RevNatKey::new(8),
            RevNatValue::new(Be32::from_octets([10, 96, 0, 2]), Be16::from_host(80)),
        )],
        sock_rev_nats: Vec::new(),
        sock_affinities: Vec::new(),
        north_south: None,
    };
    let got = render(&maps);
    let services: String = got.split("\n\n").next().unwrap().to_owned();
    assert_eq!(
        services,
        "\
SERVICES (sluice_svc_v1, backends from sluice_be_v1)
FRONTEND           REV-NAT   SLOT   BACKEND                             STATE
10.96.0.1:80/TCP   7         0      (3 backends)                        rev-NAT entry missing
                             1      10.244.0.5:80 (id 1)                flags=0x01
                             2      <missing slot>                      broken
                             3      <missing backend 9>                 broken
                             4      10.244.0.5:80 (id 1)                unused (past count)
10.96.0.2:80/TCP   -         0      (no frontend entry: slots unused)   stale
                             1      10.244.0.5:80 (id 1)                unused (past count)",
        "\ngot:\n{got}"
    );
    assert!(
        got.contains("1    10.244.0.5:80/TCP   flags=0x01   3\n"),
        "{got}"
    );
}

#[test]
fn north_south_sections_show_frontends_conntrack_snat_and_affinity() {
    use crate::datapath::{FakeNodePortMaps, NodePortOps};
    use sluice_ebpf_common::nodeport::{
        AffinityKey, AffinityValue, CT_FLAG_REPLY, CT_FLAG_SNAT, CtKey, CtValue, EXT_BACKEND_LOCAL,
        EXT_FLAG_AFFINITY, EXT_FLAG_NODEPORT, ExtServiceValue, NodeIpKey, SnatKey, SnatValue,
    };
    let mut fake = FakeNodePortMaps::default();
    let np = ServiceKey::frontend(Be32::from_raw(0), Be16::from_host(30080), 6);
    fake.upsert_service(
        np,
        ExtServiceValue::frontend(2, EXT_FLAG_NODEPORT | EXT_FLAG_AFFINITY, 3)
            .with_affinity_timeout(60),
    )
    .unwrap();
    let a = Be32::from_ipv4(Ipv4Addr::new(10, 244, 0, 2));
    let b = Be32::from_ipv4(Ipv4Addr::new(10, 244, 1, 2));
    fake.upsert_service(
        np.with_slot(1),
        ExtServiceValue::backend(3, a, Be16::from_host(8080), EXT_BACKEND_LOCAL),
    )
    .unwrap();
    fake.upsert_service(
        np.with_slot(2),
        ExtServiceValue::backend(3, b, Be16::from_host(8080), 0),
    )
    .unwrap();
    let node = Be32::from_ipv4(Ipv4Addr::new(172, 30, 0, 11));
    let client = Be32::from_ipv4(Ipv4Addr::new(172, 30, 0, 1));
    let ns = super::NorthSouth {
        services: fake.services().unwrap(),
        node_ips: vec![NodeIpKey { addr: node }],
        ct: vec![
            (
                CtKey::new(
                    client,
                    Be16::from_host(40000),
                    node,
                    Be16::from_host(30080),
                    6,
                ),
                CtValue {
                    addr: b,
                    nat_addr: node,
                    port: Be16::from_host(8080),
                    nat_port: Be16::from_host(61000),
                    flags: CT_FLAG_SNAT,
                    svc_id: 3,
                    last_seen: 0,
                },
            ),
            (
                CtKey::new(b, Be16::from_host(8080), node, Be16::from_host(61000), 6),
                CtValue {
                    addr: node,
                    nat_addr: client,
                    port: Be16::from_host(30080),
                    nat_port: Be16::from_host(40000),
                    flags: CT_FLAG_SNAT | CT_FLAG_REPLY,
                    svc_id: 3,
                    last_seen: 0,
                },
            ),
        ],
        snat: vec![(
            SnatKey {
                addr: node,
                port: Be16::from_host(61000),
                proto: 6,
                pad: 0,
            },
            SnatValue {
                client_addr: client,
                backend_addr: b,
                client_port: Be16::from_host(40000),
                backend_port: Be16::from_host(8080),
                pad: 0,
            },
        )],
        affinity: vec![(
            AffinityKey {
                client,
                svc_id: 3,
                pad: 0,
            },
            AffinityValue {
                backend_addr: b,
                backend_port: Be16::from_host(8080),
                slot: 2,
                last_seen: 0,
            },
        )],
    };
    let maps = Maps {
        north_south: Some(ns),
        ..Maps::default()
    };
    let out = render(&maps);
    for want in [
        "NORTH-SOUTH FRONTENDS (sluice_extsvc_v1)",
        "*:30080/TCP",
        "NodePort,ClientIP-affinity (60s)",
        "10.244.0.2:8080",
        "local",
        "10.244.1.2:8080",
        "remote",
        "NODE ADDRESSES (sluice_nodeip_v1)",
        "172.30.0.11",
        "172.30.0.1:40000 -> 172.30.0.11:30080/TCP",
        "dst -> 10.244.1.2:8080, src -> 172.30.0.11:61000",
        "src -> 172.30.0.11:30080, dst -> 172.30.0.1:40000",
        "172.30.0.11:61000/TCP",
        "SESSION AFFINITY (sluice_affinity_v1, LRU)",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
}
