//! Pure tests of [`answer`]: every record type, and each NXDOMAIN / NODATA
//! case, from Services and `EndpointSlices` as the apiserver serves them.

use std::net::IpAddr;
use std::str::FromStr;

use hickory_server::proto::op::{Query, ResponseCode};
use hickory_server::proto::rr::rdata::{CNAME, PTR, SRV};
use hickory_server::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use super::{Records, Response, ServiceName, answer};

pub(in crate::dns) fn service(value: Value) -> Service {
    serde_json::from_value(value).unwrap_or_else(|e| panic!("bad Service fixture: {e}"))
}

/// A `ClusterIP` Service with `ports` as `(name, port, protocol)`.
pub(in crate::dns) fn cluster_ip(
    ns: &str,
    name: &str,
    ips: &[&str],
    ports: &[(&str, i32, &str)],
) -> Service {
    service(json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": {"type": "ClusterIP", "clusterIP": ips[0], "clusterIPs": ips, "ports": ports_json(ports)},
    }))
}

/// A headless Service.
fn headless(ns: &str, name: &str, ports: &[(&str, i32, &str)]) -> Service {
    service(json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"], "ports": ports_json(ports)},
    }))
}

/// An `EndpointSlice` of `svc` with `endpoints` as `(address, hostname, ready)`.
pub(in crate::dns) fn slice(
    ns: &str,
    svc: &str,
    name: &str,
    family: &str,
    ports: &[(&str, i32, &str)],
    endpoints: &[(&str, Option<&str>, Option<bool>)],
) -> EndpointSlice {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(addr, hostname, ready)| {
            let mut e = json!({"addresses": [addr]});
            if let Some(h) = hostname {
                e["hostname"] = json!(h);
            }
            if let Some(r) = ready {
                e["conditions"] = json!({"ready": r});
            }
            e
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": family,
        "ports": ports_json(ports),
        "endpoints": endpoints,
    }))
    .unwrap_or_else(|e| panic!("bad EndpointSlice fixture: {e}"))
}

fn ports_json(ports: &[(&str, i32, &str)]) -> Vec<Value> {
    ports
        .iter()
        .map(|(name, port, protocol)| {
            let mut p = json!({"port": port, "protocol": protocol});
            if !name.is_empty() {
                p["name"] = json!(name);
            }
            p
        })
        .collect()
}

/// The cluster of most tests: namespaces `default`, `empty` and `db`;
///
/// - `kubernetes` `ClusterIP` 10.96.0.1 port `https` 443/TCP;
/// - `web` `ClusterIP` 10.96.0.10 and `fd00::10`, ports `http` 80/TCP, `dns` 53/UDP, unnamed 8080;
/// - `db/pg` headless, port `pg` 5432 (endpoints at 5433): `pg-0` 10.244.0.5, `pg-1` 10.244.0.6,
///   unnamed 10.244.0.7, not ready 10.244.0.8 (`pg-3`), and `pg-0` `fd00::5` in an IPv6 slice;
/// - `db/none` headless with only an unready endpoint;
/// - `default/ext` `ExternalName` `www.example.com`, `default/alias` -> `web.default.svc.cluster.local`.
pub(in crate::dns) fn cluster() -> Records {
    let mut records = Records::new("cluster.local", 5).unwrap();
    for ns in ["default", "empty", "db"] {
        records.set_namespace(ns, true);
    }
    let slices: [&EndpointSlice; 0] = [];
    assert!(records.upsert_service(
        &cluster_ip(
            "default",
            "kubernetes",
            &["10.96.0.1"],
            &[("https", 443, "TCP")]
        ),
        slices
    ));
    records.upsert_service(
        &cluster_ip(
            "default",
            "web",
            &["10.96.0.10", "fd00::10"],
            &[("http", 80, "TCP"), ("dns", 53, "UDP"), ("", 8080, "TCP")],
        ),
        slices,
    );
    let pg4 = slice(
        "db",
        "pg",
        "pg-v4",
        "IPv4",
        &[("pg", 5433, "TCP")],
        &[
            ("10.244.0.5", Some("pg-0"), Some(true)),
            ("10.244.0.6", Some("pg-1"), None),
            ("10.244.0.7", None, Some(true)),
            ("10.244.0.8", Some("pg-3"), Some(false)),
        ],
    );
    let pg6 = slice(
        "db",
        "pg",
        "pg-v6",
        "IPv6",
        &[("pg", 5433, "TCP")],
        &[("fd00::5", Some("pg-0"), Some(true))],
    );
    // A slice of another Service is ignored.
    let other = slice(
        "db",
        "other",
        "other-1",
        "IPv4",
        &[],
        &[("10.244.9.9", None, None)],
    );
    records.upsert_service(
        &headless("db", "pg", &[("pg", 5432, "TCP")]),
        [&pg4, &pg6, &other],
    );
    let none = slice(
        "db",
        "none",
        "none-1",
        "IPv4",
        &[],
        &[("10.244.1.1", None, Some(false))],
    );
    records.upsert_service(&headless("db", "none", &[]), [&none]);
    records.upsert_service(
        &service(json!({
            "metadata": {"namespace": "default", "name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "www.example.com"},
        })),
        slices,
    );
    records.upsert_service(
        &service(json!({
            "metadata": {"namespace": "default", "name": "alias"},
            "spec": {"type": "ExternalName", "externalName": "web.default.svc.cluster.local."},
        })),
        slices,
    );
    records.set_synced(true);
    records
}

fn query(name: &str, qtype: RecordType) -> Query {
    Query::query(Name::from_ascii(name).unwrap(), qtype)
}

fn ask(records: &Records, name: &str, qtype: RecordType) -> Response {
    answer(records, &query(name, qtype)).unwrap_or_else(|| panic!("{name} {qtype} was forwarded"))
}

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

/// The answer's records as `"name TYPE data"` lines.
fn lines(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect()
}

fn assert_nxdomain(records: &Records, qname: &str, qtype: RecordType) {
    let r = ask(records, qname, qtype);
    assert_eq!(r.code, ResponseCode::NXDomain, "{qname} {qtype}: {r:?}");
    assert!(r.answers.is_empty());
    assert_soa(&r);
}

fn assert_nodata(records: &Records, qname: &str, qtype: RecordType) {
    let r = ask(records, qname, qtype);
    assert!(r.is_nodata(), "{qname} {qtype}: expected NODATA, got {r:?}");
    assert_soa(&r);
}

fn assert_soa(r: &Response) {
    assert_eq!(r.authority.len(), 1, "{r:?}");
    let soa = &r.authority[0];
    assert_eq!(soa.name, name("cluster.local."));
    let RData::SOA(data) = &soa.data else {
        panic!("not an SOA: {soa:?}")
    };
    assert_eq!(data.minimum, 5, "negative TTL is the record TTL");
    assert_eq!(data.mname, name("ns.dns.cluster.local."));
    assert_eq!(soa.ttl, 5);
}

#[test]
fn cluster_ip_service_has_a_and_aaaa() {
    let records = cluster();
    let r = ask(
        &records,
        "Kubernetes.Default.SVC.cluster.local.",
        RecordType::A,
    );
    assert_eq!(r.code, ResponseCode::NoError);
    // The owner keeps the query's case; comparison is case-insensitive.
    assert_eq!(
        lines(&r.answers),
        ["Kubernetes.Default.SVC.cluster.local. A 10.96.0.1"]
    );
    assert_eq!(r.answers[0].ttl, 5);
    assert!(r.authority.is_empty() && r.chase.is_none());

    let r = ask(&records, "web.default.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(
        lines(&r.answers),
        ["web.default.svc.cluster.local. AAAA fd00::10"]
    );
    // An IPv4-only Service: AAAA is NODATA.
    assert_nodata(
        &records,
        "kubernetes.default.svc.cluster.local.",
        RecordType::AAAA,
    );
    assert_nodata(
        &records,
        "kubernetes.default.svc.cluster.local.",
        RecordType::TXT,
    );
    // ANY gives every record at the name.
    let r = ask(&records, "web.default.svc.cluster.local.", RecordType::ANY);
    assert_eq!(r.answers.len(), 2);
}

#[test]
fn cluster_ip_srv_names_the_service_per_named_port() {
    let records = cluster();
    let r = ask(
        &records,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(r.code, ResponseCode::NoError);
    assert_eq!(r.answers.len(), 1);
    let RData::SRV(srv) = &r.answers[0].data else {
        panic!("{r:?}")
    };
    assert_eq!(srv.port, 80);
    assert_eq!(srv.target, name("web.default.svc.cluster.local."));
    // The target's addresses ride along.
    assert_eq!(
        lines(&r.additionals),
        [
            "web.default.svc.cluster.local. A 10.96.0.10",
            "web.default.svc.cluster.local. AAAA fd00::10"
        ]
    );
    let r = ask(
        &records,
        "_dns._udp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(r.answers.len(), 1);
    // The protocol must match, the port must exist (unnamed ports have no SRV).
    assert_nxdomain(
        &records,
        "_dns._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_nxdomain(
        &records,
        "_8080._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_nxdomain(
        &records,
        "_http._sctp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    // A on an SRV name, and the `_tcp` empty non-terminal: NODATA.
    assert_nodata(
        &records,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_nodata(
        &records,
        "_tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_nxdomain(
        &records,
        "_sctp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    // Deeper than `_port._proto` does not exist; nor do endpoint names of a ClusterIP Service.
    assert_nxdomain(
        &records,
        "x._http._tcp.web.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_nxdomain(
        &records,
        "pod-0.web.default.svc.cluster.local.",
        RecordType::A,
    );
    // SRV on the service name itself: the name exists, no SRV there.
    assert_nodata(&records, "web.default.svc.cluster.local.", RecordType::SRV);
}

#[test]
fn headless_service_has_ready_endpoints_and_hostnames() {
    let records = cluster();
    let r = ask(&records, "pg.db.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&r.answers),
        [
            "pg.db.svc.cluster.local. A 10.244.0.5",
            "pg.db.svc.cluster.local. A 10.244.0.6",
            "pg.db.svc.cluster.local. A 10.244.0.7"
        ],
        "ready (or unset) endpoints only"
    );
    let r = ask(&records, "pg.db.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(lines(&r.answers), ["pg.db.svc.cluster.local. AAAA fd00::5"]);

    let r = ask(&records, "pg-0.pg.db.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&r.answers),
        ["pg-0.pg.db.svc.cluster.local. A 10.244.0.5"]
    );
    let r = ask(&records, "pg-0.pg.db.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(
        lines(&r.answers),
        ["pg-0.pg.db.svc.cluster.local. AAAA fd00::5"]
    );
    // An endpoint without hostname gets a generated one.
    let r = ask(
        &records,
        "10-244-0-7.pg.db.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        lines(&r.answers),
        ["10-244-0-7.pg.db.svc.cluster.local. A 10.244.0.7"]
    );
    // pg-1 has no IPv6 address: NODATA; a not-ready endpoint's name does not exist.
    assert_nodata(&records, "pg-1.pg.db.svc.cluster.local.", RecordType::AAAA);
    assert_nxdomain(&records, "pg-3.pg.db.svc.cluster.local.", RecordType::A);
    assert_nxdomain(&records, "pg-9.pg.db.svc.cluster.local.", RecordType::A);
    assert_nxdomain(&records, "a.pg-0.pg.db.svc.cluster.local.", RecordType::A);
}

#[test]
fn headless_srv_has_one_record_per_ready_endpoint() {
    let records = cluster();
    let r = ask(
        &records,
        "_pg._tcp.pg.db.svc.cluster.local.",
        RecordType::SRV,
    );
    let mut targets: Vec<(String, u16)> = r
        .answers
        .iter()
        .map(|rec| match &rec.data {
            RData::SRV(SRV { target, port, .. }) => (target.to_string(), *port),
            other => panic!("not SRV: {other:?}"),
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            ("10-244-0-7.pg.db.svc.cluster.local.".to_owned(), 5433),
            ("pg-0.pg.db.svc.cluster.local.".to_owned(), 5433),
            ("pg-1.pg.db.svc.cluster.local.".to_owned(), 5433),
        ],
        "one per hostname, at the endpoint port"
    );
    assert_eq!(r.additionals.len(), 4, "A of each target and pg-0's AAAA");
    assert_nodata(&records, "_tcp.pg.db.svc.cluster.local.", RecordType::SRV);
}

#[test]
fn headless_service_without_ready_endpoints_is_nxdomain() {
    let records = cluster();
    assert_nxdomain(&records, "none.db.svc.cluster.local.", RecordType::A);
    assert_nxdomain(&records, "none.db.svc.cluster.local.", RecordType::AAAA);
    assert_nxdomain(
        &records,
        "10-244-1-1.none.db.svc.cluster.local.",
        RecordType::A,
    );
}

#[test]
fn publish_not_ready_addresses_serves_unready_endpoints() {
    let mut records = cluster();
    let svc = service(json!({
        "metadata": {"namespace": "db", "name": "none"},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": true},
    }));
    let none = slice(
        "db",
        "none",
        "none-1",
        "IPv4",
        &[],
        &[("10.244.1.1", None, Some(false))],
    );
    assert!(records.upsert_service(&svc, [&none]));
    let r = ask(&records, "none.db.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&r.answers),
        ["none.db.svc.cluster.local. A 10.244.1.1"]
    );
}

#[test]
fn ptr_for_cluster_ips_and_headless_endpoints() {
    let records = cluster();
    let r = ask(&records, "1.0.96.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        r.answers.iter().map(|a| a.data.clone()).collect::<Vec<_>>(),
        [RData::PTR(PTR(name(
            "kubernetes.default.svc.cluster.local."
        )))]
    );
    assert_eq!(r.answers[0].name, name("1.0.96.10.in-addr.arpa."));
    let r = ask(&records, "5.0.244.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        lines(&r.answers),
        ["5.0.244.10.in-addr.arpa. PTR pg-0.pg.db.svc.cluster.local."]
    );
    let r = ask(&records, "7.0.244.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        lines(&r.answers),
        ["7.0.244.10.in-addr.arpa. PTR 10-244-0-7.pg.db.svc.cluster.local."]
    );
    // IPv6 cluster IP and endpoint, as reversed nibbles.
    let v6 = |ip: &str| match ip.parse::<IpAddr>().unwrap() {
        IpAddr::V6(ip) => {
            let hex = format!("{:032x}", u128::from(ip));
            let mut labels: Vec<String> = hex.chars().rev().map(String::from).collect();
            labels.push("ip6.arpa.".to_owned());
            labels.join(".")
        }
        IpAddr::V4(_) => unreachable!(),
    };
    let r = ask(&records, &v6("fd00::10"), RecordType::PTR);
    assert_eq!(
        r.answers
            .iter()
            .map(|a| a.data.to_string())
            .collect::<Vec<_>>(),
        ["web.default.svc.cluster.local."]
    );
    let r = ask(&records, &v6("fd00::5"), RecordType::PTR);
    assert_eq!(r.answers.len(), 1);
    // A known reverse name without the asked type: NODATA under the reverse zone.
    let r = ask(&records, "1.0.96.10.in-addr.arpa.", RecordType::A);
    assert!(r.is_nodata());
    assert_eq!(r.authority[0].name, name("in-addr.arpa."));
    // Unknown addresses (not ready, not ours, partial names) are forwarded.
    for unknown in [
        "8.0.244.10.in-addr.arpa.",
        "8.8.8.8.in-addr.arpa.",
        "96.10.in-addr.arpa.",
    ] {
        assert_eq!(
            answer(&records, &query(unknown, RecordType::PTR)),
            None,
            "{unknown}"
        );
    }
}

#[test]
fn external_name_is_a_cname() {
    let records = cluster();
    let r = ask(&records, "ext.default.svc.cluster.local.", RecordType::A);
    assert_eq!(r.code, ResponseCode::NoError);
    assert_eq!(
        lines(&r.answers),
        ["ext.default.svc.cluster.local. CNAME www.example.com."]
    );
    assert_eq!(
        r.chase,
        Some(name("www.example.com.")),
        "the server resolves the target"
    );
    // Asking for the CNAME itself needs no chase.
    let r = ask(
        &records,
        "ext.default.svc.cluster.local.",
        RecordType::CNAME,
    );
    assert_eq!(
        r.answers[0].data,
        RData::CNAME(CNAME(name("www.example.com.")))
    );
    assert_eq!(r.chase, None);
    // A target inside the zone is followed here.
    let r = ask(&records, "alias.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&r.answers),
        [
            "alias.default.svc.cluster.local. CNAME web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. A 10.96.0.10"
        ]
    );
    assert_eq!(r.chase, None);
    assert_nxdomain(
        &records,
        "_http._tcp.ext.default.svc.cluster.local.",
        RecordType::SRV,
    );
}

#[test]
fn pod_records_exist_for_any_address_in_an_existing_namespace() {
    let records = cluster();
    let r = ask(
        &records,
        "10-244-3-17.default.pod.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        lines(&r.answers),
        ["10-244-3-17.default.pod.cluster.local. A 10.244.3.17"]
    );
    // A namespace without Services exists too.
    let r = ask(
        &records,
        "10-244-3-17.empty.pod.cluster.local.",
        RecordType::A,
    );
    assert_eq!(r.answers.len(), 1);
    let r = ask(
        &records,
        "fd00--7.default.pod.cluster.local.",
        RecordType::AAAA,
    );
    assert_eq!(
        lines(&r.answers),
        ["fd00--7.default.pod.cluster.local. AAAA fd00::7"]
    );
    assert_nodata(
        &records,
        "10-244-3-17.default.pod.cluster.local.",
        RecordType::AAAA,
    );
    assert_nxdomain(
        &records,
        "10-244-3-300.default.pod.cluster.local.",
        RecordType::A,
    );
    assert_nxdomain(&records, "web.default.pod.cluster.local.", RecordType::A);
    assert_nxdomain(
        &records,
        "10-244-3-17.nope.pod.cluster.local.",
        RecordType::A,
    );
    assert_nxdomain(
        &records,
        "x.10-244-3-17.default.pod.cluster.local.",
        RecordType::A,
    );
}

#[test]
fn dns_version_txt() {
    let records = cluster();
    let r = ask(&records, "dns-version.cluster.local.", RecordType::TXT);
    assert_eq!(lines(&r.answers), ["dns-version.cluster.local. TXT 1.1.0"]);
    let RData::TXT(txt) = &r.answers[0].data else {
        panic!()
    };
    assert_eq!(txt.txt_data.len(), 1);
    assert_eq!(&*txt.txt_data[0], b"1.1.0");
    assert_nodata(&records, "dns-version.cluster.local.", RecordType::A);
}

#[test]
fn zone_structure_nxdomain_and_nodata() {
    let records = cluster();
    // The apex has SOA and NS.
    let r = ask(&records, "cluster.local.", RecordType::SOA);
    assert_eq!(r.answers.len(), 1);
    assert_eq!(r.answers[0].record_type(), RecordType::SOA);
    let r = ask(&records, "cluster.local.", RecordType::NS);
    assert_eq!(
        lines(&r.answers),
        ["cluster.local. NS ns.dns.cluster.local."]
    );
    assert_nodata(&records, "cluster.local.", RecordType::A);
    // `svc` and `pod` always exist, a namespace exists with or without Services.
    assert_nodata(&records, "svc.cluster.local.", RecordType::A);
    assert_nodata(&records, "pod.cluster.local.", RecordType::A);
    assert_nodata(&records, "default.svc.cluster.local.", RecordType::A);
    assert_nodata(&records, "empty.svc.cluster.local.", RecordType::A);
    assert_nodata(&records, "empty.pod.cluster.local.", RecordType::A);
    // No such namespace, no such Service in an existing namespace, nothing else.
    assert_nxdomain(&records, "nope.svc.cluster.local.", RecordType::A);
    assert_nxdomain(&records, "web.nope.svc.cluster.local.", RecordType::A);
    assert_nxdomain(&records, "nope.default.svc.cluster.local.", RecordType::A);
    assert_nxdomain(&records, "nope.empty.svc.cluster.local.", RecordType::AAAA);
    assert_nxdomain(&records, "nope.cluster.local.", RecordType::A);
    assert_nxdomain(&records, "web.default.cluster.local.", RecordType::A);
    assert_nxdomain(
        &records,
        "a.b.c.d._http._tcp.web.default.svc.cluster.local.",
        RecordType::A,
    );
}

#[test]
fn odd_names_in_the_zone_are_answered_without_panicking() {
    let records = cluster();
    // No wildcards in the zone: `*` is a label like any other, and matches nothing.
    for qname in [
        "*.cluster.local.",
        "*.svc.cluster.local.",
        "*.default.svc.cluster.local.",
        "*.kubernetes.default.svc.cluster.local.",
        "_http._tcp.*.default.svc.cluster.local.",
        "*.default.pod.cluster.local.",
    ] {
        assert_nxdomain(&records, qname, RecordType::A);
    }
    // Letter case, binary labels, the longest names: answered, never a panic.
    let r = ask(
        &records,
        "KUBERNETES.Default.SVC.cluster.LOCAL.",
        RecordType::A,
    );
    assert_eq!(r.answers.len(), 1);
    let binary =
        Name::from_labels([&b"\xff\x00"[..], b"default", b"svc", b"cluster", b"local"]).unwrap();
    let r = answer(&records, &Query::query(binary, RecordType::A)).unwrap();
    assert_eq!(r.code, ResponseCode::NXDomain);
    let label = "a".repeat(63);
    let long = format!("{label}.{label}.{label}.{label:.47}.cluster.local.");
    assert_nxdomain(&records, &long, RecordType::A);
    for qtype in [
        RecordType::ANY,
        RecordType::AXFR,
        RecordType::OPT,
        RecordType::Unknown(65_280),
    ] {
        let r = ask(&records, "kubernetes.default.svc.cluster.local.", qtype);
        assert_eq!(r.code, ResponseCode::NoError, "{qtype}");
    }
}

#[test]
fn names_outside_the_zone_are_forwarded() {
    let records = cluster();
    for outside in ["www.example.com.", "local.", "cluster.local.example.", "."] {
        assert_eq!(
            answer(&records, &query(outside, RecordType::A)),
            None,
            "{outside}"
        );
    }
    // A relative name is taken as fully qualified.
    let r = ask(
        &records,
        "kubernetes.default.svc.cluster.local",
        RecordType::A,
    );
    assert_eq!(r.answers.len(), 1);
}

#[test]
fn other_classes_are_refused_in_the_zone() {
    let records = cluster();
    let mut q = query("kubernetes.default.svc.cluster.local.", RecordType::A);
    q.set_query_class(DNSClass::CH);
    let r = answer(&records, &q).unwrap();
    assert_eq!(r.code, ResponseCode::Refused);
}

#[test]
fn nxdomain_is_servfail_until_synced() {
    let mut records = cluster();
    records.set_synced(false);
    let r = ask(&records, "nope.default.svc.cluster.local.", RecordType::A);
    assert_eq!(r.code, ResponseCode::ServFail);
    // Positive answers and NODATA are served all the same.
    assert_eq!(
        ask(
            &records,
            "kubernetes.default.svc.cluster.local.",
            RecordType::A
        )
        .answers
        .len(),
        1
    );
    assert_nodata(
        &records,
        "kubernetes.default.svc.cluster.local.",
        RecordType::AAAA,
    );
}

#[test]
fn updates_replace_one_service_and_its_reverse_names() {
    let mut records = cluster();
    let serial = records.serial();
    // Unchanged: nothing happens.
    let slices: [&EndpointSlice; 0] = [];
    assert!(!records.upsert_service(
        &cluster_ip(
            "default",
            "kubernetes",
            &["10.96.0.1"],
            &[("https", 443, "TCP")]
        ),
        slices
    ));
    assert_eq!(records.serial(), serial);
    // A new cluster IP moves the A and the PTR.
    assert!(records.upsert_service(
        &cluster_ip(
            "default",
            "kubernetes",
            &["10.96.0.2"],
            &[("https", 443, "TCP")]
        ),
        slices
    ));
    assert!(records.serial() > serial);
    let r = ask(
        &records,
        "kubernetes.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        lines(&r.answers),
        ["kubernetes.default.svc.cluster.local. A 10.96.0.2"]
    );
    assert_eq!(
        answer(&records, &query("1.0.96.10.in-addr.arpa.", RecordType::PTR)),
        None
    );
    assert_eq!(
        ask(&records, "2.0.96.10.in-addr.arpa.", RecordType::PTR)
            .answers
            .len(),
        1
    );
    // Deleting removes everything it published.
    assert!(records.set_service(ServiceName::new("db", "pg"), None));
    assert_nxdomain(&records, "pg.db.svc.cluster.local.", RecordType::A);
    assert_nxdomain(
        &records,
        "_pg._tcp.pg.db.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(
        answer(
            &records,
            &query("5.0.244.10.in-addr.arpa.", RecordType::PTR)
        ),
        None
    );
    // The namespace still exists (it was listed), so its apex is NODATA.
    assert_nodata(&records, "db.svc.cluster.local.", RecordType::A);
    records.set_namespace("db", false);
    assert!(records.set_service(ServiceName::new("db", "none"), None));
    assert_nxdomain(&records, "db.svc.cluster.local.", RecordType::A);
}

#[test]
fn two_headless_services_share_an_endpoint_address() {
    let mut records = cluster();
    let a = slice(
        "db",
        "pg",
        "pg-v4",
        "IPv4",
        &[],
        &[("10.244.0.5", Some("pg-0"), None)],
    );
    let b = slice(
        "db",
        "pg2",
        "pg2-1",
        "IPv4",
        &[],
        &[("10.244.0.5", None, None)],
    );
    records.upsert_service(&headless("db", "pg", &[]), [&a]);
    records.upsert_service(&headless("db", "pg2", &[]), [&b]);
    let r = ask(&records, "5.0.244.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        lines(&r.answers),
        [
            "5.0.244.10.in-addr.arpa. PTR pg-0.pg.db.svc.cluster.local.",
            "5.0.244.10.in-addr.arpa. PTR 10-244-0-5.pg2.db.svc.cluster.local."
        ]
    );
    records.set_service(ServiceName::new("db", "pg2"), None);
    let r = ask(&records, "5.0.244.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(r.answers.len(), 1);
}

#[test]
fn custom_zone_and_ttl() {
    let mut records = Records::new("Sluice.Test.", 30).unwrap();
    records.set_synced(true);
    let slices: [&EndpointSlice; 0] = [];
    records.upsert_service(&cluster_ip("a", "b", &["10.0.0.1"], &[]), slices);
    let r = ask(&records, "b.a.svc.sluice.test.", RecordType::A);
    assert_eq!(r.answers[0].ttl, 30);
    assert_eq!(
        answer(&records, &query("b.a.svc.cluster.local.", RecordType::A)),
        None
    );
    let r = ask(&records, "x.a.svc.sluice.test.", RecordType::A);
    assert_eq!(r.authority[0].name, name("sluice.test."));
}
