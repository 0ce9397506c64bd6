//! Socket tests: [`serve`] on loopback queried with hickory's client (UDP and
//! TCP), forwarding to a fake upstream (a hickory-server authority), malformed
//! input; and [`follow`] against the shared in-memory fake API server.

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::client::{Client, ClientHandle};
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::net::tcp::TcpClientStream;
use hickory_server::net::udp::UdpClientStream;
use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::rdata::{A, SOA};
use hickory_server::proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use serde_json::json;
use sluice_test_util::fake_api::FakeApi;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::records::tests::{cluster, cluster_ip, slice};
use super::{Bound, Config, Records, ServiceName, bind, follow, parse_resolv_conf, serve};

const LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

/// Starts [`serve`] on a free loopback port with `records`, forwarding to
/// `upstream`; returns its address.
async fn start(records: watch::Receiver<Records>, upstream: Vec<SocketAddr>) -> SocketAddr {
    let bound: Bound = bind(&[LOOPBACK]).await.unwrap();
    let addr = bound.local_addrs()[0];
    let mut config = Config::new(vec![addr], upstream);
    config.upstream_timeout = Duration::from_millis(300);
    tokio::spawn(async move { serve(bound, records, &config).await });
    addr
}

fn udp_client(addr: SocketAddr) -> Client<TokioRuntimeProvider> {
    let stream = UdpClientStream::builder(addr, TokioRuntimeProvider::default()).build();
    let (client, bg) = Client::<TokioRuntimeProvider>::from_sender(stream);
    tokio::spawn(bg);
    client
}

async fn tcp_client(addr: SocketAddr) -> Client<TokioRuntimeProvider> {
    let (stream, sender) = TcpClientStream::new(addr, None, None, TokioRuntimeProvider::new());
    let (client, bg) = Client::<TokioRuntimeProvider>::new(stream.await.unwrap(), sender);
    tokio::spawn(bg);
    client
}

async fn ask(client: &mut Client<TokioRuntimeProvider>, qname: &str, qtype: RecordType) -> Message {
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        client.query(name(qname), DNSClass::IN, qtype),
    )
    .await
    .unwrap_or_else(|_| panic!("{qname} {qtype}: no answer"))
    .unwrap_or_else(|e| panic!("{qname} {qtype}: {e}"));
    response.into_message()
}

fn a_records(message: &Message) -> Vec<Ipv4Addr> {
    message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(A(ip)) => Some(*ip),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn serves_the_cluster_zone_over_udp_and_tcp_and_follows_updates() {
    let (tx, rx) = watch::channel(cluster());
    let addr = start(rx, Vec::new()).await;
    for mut client in [udp_client(addr), tcp_client(addr).await] {
        let reply = ask(
            &mut client,
            "kubernetes.default.svc.cluster.local.",
            RecordType::A,
        )
        .await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.metadata.authoritative);
        assert_eq!(a_records(&reply), [Ipv4Addr::new(10, 96, 0, 1)]);
        assert_eq!(reply.answers[0].ttl, 5);

        let reply = ask(
            &mut client,
            "_pg._tcp.pg.db.svc.cluster.local.",
            RecordType::SRV,
        )
        .await;
        assert_eq!(reply.answers.len(), 3);
        assert_eq!(reply.additionals.len(), 4);

        let reply = ask(
            &mut client,
            "nope.default.svc.cluster.local.",
            RecordType::A,
        )
        .await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(reply.authorities.len(), 1);
        assert_eq!(reply.authorities[0].record_type(), RecordType::SOA);

        let reply = ask(
            &mut client,
            "kubernetes.default.svc.cluster.local.",
            RecordType::AAAA,
        )
        .await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.answers.is_empty());
        assert_eq!(reply.authorities[0].record_type(), RecordType::SOA);

        let reply = ask(&mut client, "1.0.96.10.in-addr.arpa.", RecordType::PTR).await;
        assert_eq!(reply.answers.len(), 1);
    }

    // A change is served by the next query: no rebuild, no timer.
    tx.send_modify(|r| {
        let slices: [&k8s_openapi::api::discovery::v1::EndpointSlice; 0] = [];
        r.upsert_service(&cluster_ip("default", "new", &["10.96.0.77"], &[]), slices);
    });
    let mut client = udp_client(addr);
    let reply = ask(&mut client, "new.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(a_records(&reply), [Ipv4Addr::new(10, 96, 0, 77)]);
    tx.send_modify(|r| {
        r.set_service(ServiceName::new("default", "new"), None);
    });
    let reply = ask(&mut client, "new.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
}

/// A fake upstream: a hickory-server authority for `example.com` with
/// `www` (one A) and `big` (120 A records: too big for one UDP reply).
async fn fake_upstream() -> SocketAddr {
    let origin = name("example.com.");
    let mut zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
        origin.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
    );
    let soa = SOA::new(
        name("ns.example.com."),
        name("hostmaster.example.com."),
        1,
        3600,
        600,
        86400,
        60,
    );
    assert!(zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1));
    assert!(zone.upsert_mut(
        Record::from_rdata(
            name("www.example.com."),
            60,
            RData::A(A::new(192, 0, 2, 53))
        ),
        1
    ));
    for i in 1..=120 {
        assert!(zone.upsert_mut(
            Record::from_rdata(name("big.example.com."), 60, RData::A(A::new(192, 0, 2, i))),
            1
        ));
    }
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
    let bound = bind(&[LOOPBACK]).await.unwrap();
    let addr = bound.local_addrs()[0];
    let mut server = Server::new(catalog);
    for socket in bound.udp {
        server.register_socket(socket);
    }
    for listener in bound.tcp {
        server.register_listener(listener, Duration::from_secs(5), 8);
    }
    tokio::spawn(async move { server.block_until_done().await });
    addr
}

#[tokio::test]
async fn forwards_other_names_upstream_passing_the_rcode_through() {
    let upstream = fake_upstream().await;
    // A dead upstream first: it is skipped after its timeout.
    let dead = UdpSocket::bind(LOOPBACK).await.unwrap();
    let (_tx, rx) = watch::channel(cluster());
    let addr = start(rx, vec![dead.local_addr().unwrap(), upstream]).await;
    let mut udp = udp_client(addr);
    let mut tcp = tcp_client(addr).await;

    let reply = ask(&mut udp, "www.example.com.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(!reply.metadata.authoritative && reply.metadata.recursion_available);
    assert_eq!(a_records(&reply), [Ipv4Addr::new(192, 0, 2, 53)]);

    let reply = ask(&mut udp, "nope.example.com.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(reply.authorities[0].record_type(), RecordType::SOA);
    // Not the upstream's zone: its REFUSED is passed through.
    let reply = ask(&mut udp, "www.example.org.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);

    // 120 records: the upstream truncates over UDP, the server retries over
    // TCP and gives a TCP client all of them; a UDP client gets TC.
    let reply = ask(&mut tcp, "big.example.com.", RecordType::A).await;
    assert_eq!(a_records(&reply).len(), 120);
    assert!(!reply.metadata.truncation);
    let reply = ask(&mut udp, "big.example.com.", RecordType::A).await;
    assert!(reply.metadata.truncation, "{reply:?}");

    // An ExternalName's target is resolved upstream and appended.
    let reply = ask(&mut udp, "ext.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(reply.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(a_records(&reply), [Ipv4Addr::new(192, 0, 2, 53)]);

    // No upstream answers at all: SERVFAIL.
    let (_tx, rx) = watch::channel(cluster());
    let lonely = start(rx, vec![dead.local_addr().unwrap()]).await;
    let mut client = udp_client(lonely);
    let reply = ask(&mut client, "www.example.com.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
}

/// Sends `bytes` over UDP to `addr` and returns the reply, if one comes.
async fn raw(socket: &UdpSocket, addr: SocketAddr, bytes: &[u8]) -> Option<Message> {
    socket.send_to(bytes, addr).await.unwrap();
    let mut buf = [0u8; 4096];
    match tokio::time::timeout(Duration::from_millis(500), socket.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(Message::from_vec(&buf[..n]).unwrap()),
        _ => None,
    }
}

/// A query header: `id`, RD set, opcode QUERY, and the four section counts.
fn header(id: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut bytes = id.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0x01, 0x00]);
    for count in counts {
        bytes.extend_from_slice(&count.to_be_bytes());
    }
    bytes
}

/// `name` in wire form (no compression).
fn wire_name(name: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        bytes.push(u8::try_from(label.len()).unwrap());
        bytes.extend_from_slice(label.as_bytes());
    }
    bytes.push(0);
    bytes
}

/// Malformed queries that still carry a header: `(id, what is wrong, bytes)`.
fn malformed() -> Vec<(u16, &'static str, Vec<u8>)> {
    let mut question = wire_name("kubernetes.default.svc.cluster.local");
    question.extend_from_slice(&[0, 1, 0, 1]);
    let cases: [(&str, [u16; 4], Vec<u8>); 10] = [
        (
            "garbage for a question",
            [1, 0, 0, 0],
            vec![0x3f, b'x', 0xff, 0xc0],
        ),
        ("no question", [0, 0, 0, 0], Vec::new()),
        (
            "one question announced, none sent",
            [1, 0, 0, 0],
            Vec::new(),
        ),
        (
            "extended label type 0b01",
            [1, 0, 0, 0],
            vec![0x41, b'x', 0, 0, 1, 0, 1],
        ),
        (
            "reserved label type 0b10",
            [1, 0, 0, 0],
            vec![0x81, b'x', 0, 0, 1, 0, 1],
        ),
        (
            "a compression pointer to itself",
            [1, 0, 0, 0],
            vec![0xc0, 12, 0, 1, 0, 1],
        ),
        (
            "a label running past the end",
            [1, 0, 0, 0],
            vec![0x20, b'w', b'e', b'b'],
        ),
        (
            "a question without type and class",
            [1, 0, 0, 0],
            wire_name("web.svc.cluster.local"),
        ),
        (
            "an answer announced, none sent",
            [1, 1, 0, 0],
            question.clone(),
        ),
        (
            "an additional record cut short",
            [1, 0, 0, 1],
            [&question[..], &[0, 0, 41]].concat(),
        ),
    ];
    cases
        .into_iter()
        .zip(1..)
        .map(|((what, counts, body), id)| {
            let mut bytes = header(id, counts);
            bytes.extend_from_slice(&body);
            (id, what, bytes)
        })
        .collect()
}

async fn read_tcp(stream: &mut tokio::net::TcpStream) -> Message {
    use tokio::io::AsyncReadExt;
    let read = async {
        let len = stream.read_u16().await.unwrap();
        let mut buf = vec![0; usize::from(len)];
        stream.read_exact(&mut buf).await.unwrap();
        Message::from_vec(&buf).unwrap()
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("a TCP reply")
}

#[tokio::test]
async fn malformed_queries_get_formerr_and_the_server_stays_up() {
    let (_tx, rx) = watch::channel(cluster());
    let addr = start(rx, Vec::new()).await;
    let socket = UdpSocket::bind(LOOPBACK).await.unwrap();

    // Shorter than a header: nothing to answer to.
    assert!(raw(&socket, addr, b"\xde\xad\xbe").await.is_none());
    assert!(raw(&socket, addr, b"").await.is_none());
    // Every other malformed query is answered FORMERR, with its id.
    for (id, what, bytes) in malformed() {
        let reply = raw(&socket, addr, &bytes)
            .await
            .unwrap_or_else(|| panic!("{what}: no reply"));
        assert_eq!(reply.metadata.id, id, "{what}");
        assert_eq!(reply.metadata.message_type, MessageType::Response, "{what}");
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::FormErr,
            "{what}"
        );
        assert!(reply.answers.is_empty(), "{what}");
    }
    // Two questions in one query.
    let mut two = Message::query();
    two.metadata.id = 70;
    two.add_query(Query::query(name("a.cluster.local."), RecordType::A));
    two.add_query(Query::query(name("b.cluster.local."), RecordType::A));
    let reply = raw(&socket, addr, &two.to_vec().unwrap()).await.unwrap();
    assert_eq!(reply.metadata.id, 70);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);

    // An opcode other than QUERY.
    let mut status = Message::query();
    status.metadata.id = 80;
    status.metadata.op_code = OpCode::Status;
    status.add_query(Query::query(
        name("kubernetes.default.svc.cluster.local."),
        RecordType::A,
    ));
    let reply = raw(&socket, addr, &status.to_vec().unwrap()).await.unwrap();
    assert_eq!(reply.metadata.id, 80);
    assert_eq!(reply.metadata.response_code, ResponseCode::NotImp);

    // Random bytes behind a header, of every length up to 300: whatever the
    // server makes of them, it keeps serving (checked below).
    let mut rng = rand::rng();
    for len in 0..300 {
        let mut bytes = header(0xf000, [1, 0, 0, 0]);
        bytes.extend((0..len).map(|_| rand::Rng::random::<u8>(&mut rng)));
        socket.send_to(&bytes, addr).await.unwrap();
    }

    // Over TCP: FORMERR for each, on the same connection, then a real answer.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    for (id, what, bytes) in malformed() {
        use tokio::io::AsyncWriteExt;
        let mut framed = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).await.unwrap();
        let reply = read_tcp(&mut stream).await;
        assert_eq!(reply.metadata.id, id, "TCP {what}");
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::FormErr,
            "TCP {what}"
        );
    }
    {
        use tokio::io::AsyncWriteExt;
        let mut query = Message::query();
        query.metadata.id = 90;
        query.add_query(Query::query(
            name("dns-version.cluster.local."),
            RecordType::TXT,
        ));
        let bytes = query.to_vec().unwrap();
        let mut framed = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).await.unwrap();
    }
    let reply = read_tcp(&mut stream).await;
    assert_eq!(reply.metadata.id, 90);
    assert_eq!(reply.answers.len(), 1);

    // Still serving.
    let mut client = udp_client(addr);
    let reply = ask(
        &mut client,
        "kubernetes.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(a_records(&reply), [Ipv4Addr::new(10, 96, 0, 1)]);
    let mut client = tcp_client(addr).await;
    let reply = ask(&mut client, "dns-version.cluster.local.", RecordType::TXT).await;
    assert_eq!(reply.answers.len(), 1);
}

const SERVICES: &str = "api/v1/namespaces/default/services";
const SLICES: &str = "apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
const NAMESPACES: &str = "api/v1/namespaces";

/// Waits until `records` satisfy `f`.
async fn wait_for(
    records: &mut watch::Receiver<Records>,
    what: &str,
    f: impl Fn(&Records) -> bool,
) {
    tokio::time::timeout(Duration::from_secs(10), records.wait_for(|r| f(r)))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|_| panic!("follow stopped while waiting for {what}"));
}

fn a_of(records: &Records, qname: &str) -> Vec<Ipv4Addr> {
    super::answer(records, &Query::query(name(qname), RecordType::A))
        .map(|r| {
            r.answers
                .iter()
                .filter_map(|a| match &a.data {
                    RData::A(A(ip)) => Some(*ip),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn follow_keeps_records_in_line_with_the_api() {
    let api = FakeApi::default();
    api.insert(NAMESPACES, json!({"metadata": {"name": "default"}}));
    api.insert(NAMESPACES, json!({"metadata": {"name": "quiet"}}));
    api.insert(
        SERVICES,
        serde_json::to_value(cluster_ip(
            "default",
            "web",
            &["10.96.0.10"],
            &[("http", 80, "TCP")],
        ))
        .unwrap(),
    );
    let mut watching = api.watches();
    let (tx, mut rx) = watch::channel(Records::new("cluster.local", 5).unwrap());
    let task = tokio::spawn(follow(api.client(), tx));

    wait_for(&mut rx, "the initial lists", Records::synced).await;
    assert_eq!(
        a_of(&rx.borrow(), "web.default.svc.cluster.local."),
        [Ipv4Addr::new(10, 96, 0, 10)]
    );
    {
        let records = rx.borrow();
        let quiet = Query::query(name("quiet.svc.cluster.local."), RecordType::A);
        assert!(
            super::answer(&records, &quiet).unwrap().is_nodata(),
            "an empty namespace exists"
        );
    }
    tokio::time::timeout(Duration::from_secs(10), watching.wait_for(|n| *n >= 3))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for the watches"))
        .unwrap();

    // A new headless Service, then its slice: each watch event is served at once
    // (how fast is `cargo xtask bench dns`'s to measure, not this test's).
    api.insert(
        SERVICES,
        json!({
            "metadata": {"namespace": "default", "name": "db"},
            "spec": {"clusterIP": "None", "clusterIPs": ["None"]},
        }),
    );
    api.insert(
        SLICES,
        serde_json::to_value(slice(
            "default",
            "db",
            "db-1",
            "IPv4",
            &[("pg", 5432, "TCP")],
            &[("10.244.0.5", Some("db-0"), Some(true))],
        ))
        .unwrap(),
    );
    wait_for(&mut rx, "the headless endpoint", |r| {
        a_of(r, "db-0.db.default.svc.cluster.local.") == [Ipv4Addr::new(10, 244, 0, 5)]
    })
    .await;

    // The endpoint turns unready: the Service has no ready endpoint, NXDOMAIN.
    api.insert(
        SLICES,
        serde_json::to_value(slice(
            "default",
            "db",
            "db-1",
            "IPv4",
            &[],
            &[("10.244.0.5", Some("db-0"), Some(false))],
        ))
        .unwrap(),
    );
    wait_for(&mut rx, "the unready endpoint", |r| {
        super::answer(
            r,
            &Query::query(name("db.default.svc.cluster.local."), RecordType::A),
        )
        .is_some_and(|resp| resp.code == ResponseCode::NXDomain)
    })
    .await;

    // Deleting a Service removes its records and PTR.
    api.remove(&format!("{SERVICES}/web")).expect("web exists");
    wait_for(&mut rx, "the deletion", |r| {
        r.service(&ServiceName::new("default", "web")).is_none()
    })
    .await;
    assert!(
        super::answer(
            &rx.borrow(),
            &Query::query(name("10.0.96.10.in-addr.arpa."), RecordType::PTR)
        )
        .is_none()
    );
    task.abort();
}

#[test]
fn resolv_conf_nameservers_in_order() {
    let text = "\
# generated
search default.svc.cluster.local svc.cluster.local
nameserver 10.0.0.2
nameserver   192.0.2.1  # second
;nameserver 9.9.9.9
nameserver fe80::1%eth0
nameserver 10.0.0.2
nameserver not-an-ip
options ndots:5
";
    assert_eq!(
        parse_resolv_conf(text),
        [
            "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
            "192.0.2.1:53".parse().unwrap(),
            "[fe80::1]:53".parse().unwrap(),
        ]
    );
    assert!(parse_resolv_conf("").is_empty());
}

#[test]
fn upstream_flag_values() {
    use super::parse_upstream;
    assert_eq!(
        parse_upstream("10.0.0.2").unwrap(),
        "10.0.0.2:53".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        parse_upstream(" 127.0.0.1:5353 ").unwrap(),
        "127.0.0.1:5353".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        parse_upstream("fd00::53").unwrap(),
        "[fd00::53]:53".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        parse_upstream("[fd00::53]:5300").unwrap(),
        "[fd00::53]:5300".parse::<SocketAddr>().unwrap()
    );
    for bad in [
        "",
        "dns.example",
        "10.0.0.2:",
        "10.0.0.2:99999",
        "10.0.0.256",
    ] {
        assert!(parse_upstream(bad).is_err(), "{bad:?}");
    }
}
