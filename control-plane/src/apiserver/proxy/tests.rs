//! The connect subresources and `pods/ephemeralcontainers` over real HTTP: the API server on
//! 127.0.0.1 over the in-memory store, a fake kubelet speaking raw HTTP/1.1 (so the bytes on
//! the wire are checked, upgrades included) and a fake pod HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::HeaderMap;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sluice_store::Embedded;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::super::options::WriteOptions;
use super::super::{ApiServer, Config};
use super::*;

async fn api_with(proxy_loopback: bool) -> (Arc<ApiServer>, SocketAddr) {
    let cfg = Config {
        proxy_loopback,
        ..Config::default()
    };
    let srv = ApiServer::new(Arc::new(Embedded::open_in_memory()), cfg)
        .await
        .expect("server starts");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = srv.clone().router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (srv, addr)
}

async fn api() -> (Arc<ApiServer>, SocketAddr) {
    api_with(true).await
}

fn w() -> WriteOptions {
    WriteOptions::default()
}

/// A node whose kubelet listens on 127.0.0.1:`port`.
async fn node(srv: &Arc<ApiServer>, name: &str, port: u16) {
    let nodes = srv.resource("", "v1", "nodes");
    let body = json!({"metadata": {"name": name}, "status": {
        "addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}});
    srv.create(&nodes, None, &body, &w()).await.unwrap();
}

/// A pod in `default` with the given spec, then the given status.
async fn pod(srv: &Arc<ApiServer>, name: &str, spec: Value, status: Value) {
    let pods = srv.resource("", "v1", "pods");
    let body = json!({"metadata": {"name": name}, "spec": spec});
    srv.create(&pods, Some("default"), &body, &w())
        .await
        .unwrap();
    let (mut p, _) = srv.get(&pods, Some("default"), name).await.unwrap();
    p["status"] = status;
    srv.update(
        &pods,
        Some("default"),
        name,
        Some(Subresource::Status),
        &p,
        &w(),
    )
    .await
    .unwrap();
}

fn running() -> Value {
    json!({"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]})
}

/// One HTTP/1.1 request through hyper's client: status, headers, body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, HeaderMap, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let body = http_body_util::Full::new(bytes::Bytes::from(body.to_string()));
    let resp = sender.send_request(b.body(body).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn status_of(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["kind"], "Status", "{body}");
    v
}

/// Read an HTTP head (through the blank line) byte by byte, so nothing after it is taken.
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        let n = s.read(&mut b).await.unwrap();
        assert!(n == 1, "connection closed inside the head: {head:?}");
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

/// The values of header `name` in a raw head, in order.
fn header_values(head: &str, name: &str) -> Vec<String> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

#[derive(Clone, Copy)]
enum Kubelet {
    /// Answer 101, say `from-kubelet`, echo what comes in upper-cased, say `bye` at EOF.
    Upgrade,
    /// Answer 400 with a `Status` body.
    Refuse,
}

const KUBELET_STATUS: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"kubelet says no","reason":"BadRequest","code":400}"#;

/// A fake kubelet on a raw socket: every request head it reads is sent on the channel.
async fn fake_kubelet(mode: Kubelet) -> (u16, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let head = read_head(&mut s).await;
                tx.send(head).unwrap();
                match mode {
                    Kubelet::Upgrade => {
                        s.write_all(
                            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
                              Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\nfrom-kubelet",
                        )
                        .await
                        .unwrap();
                        let mut buf = [0u8; 1024];
                        loop {
                            let n = s.read(&mut buf).await.unwrap();
                            if n == 0 {
                                break;
                            }
                            s.write_all(&buf[..n].to_ascii_uppercase()).await.unwrap();
                        }
                        s.write_all(b"bye").await.unwrap();
                        s.shutdown().await.unwrap();
                    }
                    Kubelet::Refuse => {
                        let resp = format!(
                            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{KUBELET_STATUS}",
                            KUBELET_STATUS.len()
                        );
                        s.write_all(resp.as_bytes()).await.unwrap();
                        s.shutdown().await.unwrap();
                    }
                }
            });
        }
    });
    (port, rx)
}

/// Send an upgrade request on a raw socket; returns the socket and the answer's head.
async fn upgrade(api: SocketAddr, method: &str, path: &str, extra: &[&str]) -> (TcpStream, String) {
    let mut s = TcpStream::connect(api).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {api}\r\n");
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    (s, head)
}

const WEBSOCKET: &[&str] = &[
    "Connection: Upgrade",
    "Upgrade: websocket",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Protocol: v5.channel.k8s.io",
    "X-Stream-Protocol-Version: v4.channel.k8s.io",
    "X-Stream-Protocol-Version: v5.channel.k8s.io",
    "Authorization: Bearer api-server-credential",
];

/// Bytes both ways through the upgraded connection, and both half-closes (a splice that
/// loses a half-close fails here instead of hanging).
async fn exchange(s: TcpStream) {
    tokio::time::timeout(std::time::Duration::from_secs(10), exchange_bytes(s))
        .await
        .expect("the upgraded connection carries bytes and closes");
}

async fn exchange_bytes(mut s: TcpStream) {
    let mut hello = [0u8; 12];
    s.read_exact(&mut hello).await.unwrap();
    assert_eq!(&hello, b"from-kubelet");
    s.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    s.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"PING");
    // Our write side closes: the kubelet reads EOF, says bye and closes its side.
    s.shutdown().await.unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"bye");
}

/// A node `n1` with a fake kubelet and a running two-container pod `p` on it.
async fn exec_setup(
    mode: Kubelet,
) -> (
    Arc<ApiServer>,
    SocketAddr,
    mpsc::UnboundedReceiver<String>,
    u16,
) {
    let (srv, addr) = api().await;
    let (port, heads) = fake_kubelet(mode).await;
    node(&srv, "n1", port).await;
    pod(
        &srv,
        "p",
        json!({"nodeName": "n1", "containers": [{"name": "c", "image": "i"}, {"name": "d", "image": "i"}]}),
        running(),
    )
    .await;
    (srv, addr, heads, port)
}

#[tokio::test]
async fn exec_upgrades_through_the_kubelet_and_carries_bytes_both_ways() {
    let (_srv, addr, mut heads, port) = exec_setup(Kubelet::Upgrade).await;
    let (s, head) = upgrade(
        addr,
        "GET",
        "/api/v1/namespaces/default/pods/p/exec?command=sh&command=-c&command=echo%20hi&container=c&stdin=true&stdout=true&stderr=false&tty=true",
        WEBSOCKET,
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(
        header_values(&head, "sec-websocket-accept"),
        ["s3pPLMBiTxaQ9kYGzzhZRbK+xOo="]
    );
    assert_eq!(
        header_values(&head, "sec-websocket-protocol"),
        ["v5.channel.k8s.io"]
    );
    assert_eq!(header_values(&head, "upgrade"), ["websocket"]);
    let kubelet = heads.recv().await.unwrap();
    assert!(
        kubelet.starts_with(
            "GET /exec/default/p/c?command=sh&command=-c&command=echo+hi&input=1&output=1&tty=1 HTTP/1.1\r\n"
        ),
        "{kubelet}"
    );
    assert_eq!(header_values(&kubelet, "upgrade"), ["websocket"]);
    assert_eq!(header_values(&kubelet, "connection"), ["Upgrade"]);
    assert_eq!(
        header_values(&kubelet, "sec-websocket-key"),
        ["dGhlIHNhbXBsZSBub25jZQ=="]
    );
    assert_eq!(header_values(&kubelet, "sec-websocket-version"), ["13"]);
    assert_eq!(
        header_values(&kubelet, "x-stream-protocol-version"),
        ["v4.channel.k8s.io", "v5.channel.k8s.io"]
    );
    assert!(
        header_values(&kubelet, "authorization").is_empty(),
        "{kubelet}"
    );
    assert_eq!(
        header_values(&kubelet, "host"),
        [format!("127.0.0.1:{port}")]
    );
    exchange(s).await;
}

#[tokio::test]
async fn attach_and_portforward_upgrade_with_their_kubelet_paths() {
    let (_srv, addr, mut heads, _) = exec_setup(Kubelet::Upgrade).await;
    let spdy = [
        "Connection: Upgrade",
        "Upgrade: SPDY/3.1",
        "X-Stream-Protocol-Version: v4.channel.k8s.io",
    ];
    let (s, head) = upgrade(
        addr,
        "POST",
        "/api/v1/namespaces/default/pods/p/attach?container=d&stdin=1&tty=0",
        &spdy,
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let kubelet = heads.recv().await.unwrap();
    assert!(
        kubelet.starts_with("POST /attach/default/p/d?error=1&input=1&output=1 HTTP/1.1\r\n"),
        "{kubelet}"
    );
    assert_eq!(header_values(&kubelet, "upgrade"), ["SPDY/3.1"]);
    exchange(s).await;

    let pf = [
        "Connection: Upgrade",
        "Upgrade: websocket",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io",
    ];
    let (s, head) = upgrade(
        addr,
        "GET",
        "/api/v1/namespaces/default/pods/p/portforward?ports=8080&ports=9090,53",
        &pf,
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let kubelet = heads.recv().await.unwrap();
    assert!(
        kubelet.starts_with("GET /portForward/default/p?port=8080%2C9090%2C53 HTTP/1.1\r\n"),
        "{kubelet}"
    );
    assert_eq!(
        header_values(&kubelet, "sec-websocket-protocol"),
        ["SPDY/3.1+portforward.k8s.io"]
    );
    exchange(s).await;

    // Without ports (kubectl's SPDY port-forward names them per stream): no query.
    let (s, _) = upgrade(
        addr,
        "POST",
        "/api/v1/namespaces/default/pods/p/portforward",
        &spdy,
    )
    .await;
    let kubelet = heads.recv().await.unwrap();
    assert!(
        kubelet.starts_with("POST /portForward/default/p HTTP/1.1\r\n"),
        "{kubelet}"
    );
    exchange(s).await;
}

#[tokio::test]
async fn a_kubelet_refusal_is_passed_through() {
    let (_srv, addr, _heads, _) = exec_setup(Kubelet::Refuse).await;
    let headers: Vec<(&str, &str)> = WEBSOCKET
        .iter()
        .filter_map(|h| h.split_once(": "))
        .collect();
    let (code, h, body) = request(
        addr,
        "GET",
        "/api/v1/namespaces/default/pods/p/exec?command=ls&container=c",
        &headers,
        "",
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(body, KUBELET_STATUS);
}

#[tokio::test]
async fn exec_is_validated_before_the_kubelet_is_asked() {
    let (srv, addr, mut heads, _) = exec_setup(Kubelet::Upgrade).await;
    let headers: Vec<(&str, &str)> = WEBSOCKET
        .iter()
        .filter_map(|h| h.split_once(": "))
        .collect();
    let exec = |path: &'static str| {
        let headers = headers.clone();
        async move { request(addr, "POST", path, &headers, "").await }
    };
    let (code, _, body) = exec("/api/v1/namespaces/default/pods/nope/exec?command=ls").await;
    assert_eq!(code, 404);
    assert_eq!(status_of(&body)["message"], "pods \"nope\" not found");

    let (code, _, body) =
        exec("/api/v1/namespaces/default/pods/p/exec?command=ls&container=zz").await;
    assert_eq!(code, 400);
    assert_eq!(
        status_of(&body)["message"],
        "container zz is not valid for pod p"
    );
    let (code, _, body) = exec("/api/v1/namespaces/default/pods/p/exec?command=ls").await;
    assert_eq!(code, 400);
    assert_eq!(
        status_of(&body)["message"],
        "a container name must be specified for pod p, choose one of: [c d]"
    );

    pod(
        &srv,
        "done",
        json!({"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}),
        json!({"phase": "Succeeded"}),
    )
    .await;
    let (code, _, body) = exec("/api/v1/namespaces/default/pods/done/exec?command=ls").await;
    assert_eq!(code, 400);
    assert_eq!(
        status_of(&body)["message"],
        "cannot exec into a container in a completed pod; current phase is Succeeded"
    );
    let (code, _, body) = exec("/api/v1/namespaces/default/pods/done/attach").await;
    assert_eq!(code, 400);
    assert_eq!(
        status_of(&body)["message"],
        "cannot attach a container in a completed pod; current phase is Succeeded"
    );

    pod(
        &srv,
        "unbound",
        json!({"containers": [{"name": "c", "image": "i"}]}),
        json!({"phase": "Pending"}),
    )
    .await;
    let (code, _, body) = exec("/api/v1/namespaces/default/pods/unbound/exec?command=ls").await;
    assert_eq!(code, 400);
    assert_eq!(
        status_of(&body)["message"],
        "pod unbound does not have a host assigned"
    );

    // A plain request (no upgrade) is refused, as upstream's UpgradeRequired handler does.
    let (code, _, body) = request(
        addr,
        "POST",
        "/api/v1/namespaces/default/pods/p/exec?command=ls&container=c",
        &[],
        "",
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(status_of(&body)["message"], "Upgrade request required");
    let (code, _, _) = exec("/api/v1/namespaces/default/pods/p/exec/extra").await;
    assert_eq!(code, 404);
    // None of these reached the kubelet.
    assert!(heads.try_recv().is_err());
}

#[tokio::test]
async fn an_unreachable_kubelet_is_a_500_status() {
    let (srv, addr) = api().await;
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    node(&srv, "dead", port).await;
    pod(
        &srv,
        "p",
        json!({"nodeName": "dead", "containers": [{"name": "c", "image": "i"}]}),
        running(),
    )
    .await;
    let headers: Vec<(&str, &str)> = WEBSOCKET
        .iter()
        .filter_map(|h| h.split_once(": "))
        .collect();
    let (code, _, body) = request(
        addr,
        "GET",
        "/api/v1/namespaces/default/pods/p/exec?command=ls",
        &headers,
        "",
    )
    .await;
    assert_eq!(code, 500);
    let st = status_of(&body);
    assert_eq!(st["reason"], "InternalError");
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "error dialing backend: dial tcp 127.0.0.1:{port}: "
        )),
        "{msg}"
    );
}

/// A fake pod: answers every request with what it saw, as JSON.
async fn echo_server() -> u16 {
    let app = axum::Router::new().fallback(|req: Request| async move {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let h = |k: &str| {
            parts
                .headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        let v = json!({"method": parts.method.as_str(), "uri": parts.uri.to_string(),
            "host": h("host"), "authorization": h("authorization"), "test": h("x-test"),
            "forwardedUri": h("x-forwarded-uri"), "body": String::from_utf8_lossy(&body)});
        ([("x-backend", "pod")], axum::Json(v))
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

fn echoed(code: u16, h: &HeaderMap, body: &str) -> Value {
    assert_eq!(code, 200, "{body}");
    assert_eq!(h["x-backend"], "pod");
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn pods_proxy_passes_method_path_query_headers_and_body() {
    let (srv, addr) = api().await;
    let port = echo_server().await;
    pod(
        &srv,
        "web",
        json!({"containers": [{"name": "c", "image": "i"}, {"name": "d", "image": "i", "ports": [{"containerPort": port}]}]}),
        running(),
    )
    .await;
    let (code, h, body) = request(
        addr,
        "POST",
        "/api/v1/namespaces/default/pods/web/proxy/a/b%20c?x=1&y=2",
        &[
            ("x-test", "yes"),
            ("authorization", "Bearer secret"),
            ("content-type", "text/plain"),
        ],
        "hello pod",
    )
    .await;
    let v = echoed(code, &h, &body);
    assert_eq!(v["method"], "POST");
    assert_eq!(v["uri"], "/a/b%20c?x=1&y=2");
    assert_eq!(v["body"], "hello pod");
    assert_eq!(v["test"], "yes");
    assert_eq!(v["authorization"], Value::Null);
    assert_eq!(v["host"], format!("127.0.0.1:{port}"));
    assert_eq!(
        v["forwardedUri"],
        "/api/v1/namespaces/default/pods/web/proxy/a/b%20c?x=1&y=2"
    );
    // An explicit port, and a trailing slash kept.
    let (code, h, body) = request(
        addr,
        "GET",
        &format!("/api/v1/namespaces/default/pods/web:{port}/proxy/dir/"),
        &[],
        "",
    )
    .await;
    assert_eq!(echoed(code, &h, &body)["uri"], "/dir/");
    let (code, h, body) = request(
        addr,
        "DELETE",
        &format!("/api/v1/namespaces/default/pods/http:web:{port}/proxy"),
        &[],
        "",
    )
    .await;
    let v = echoed(code, &h, &body);
    assert_eq!(
        (v["method"].as_str(), v["uri"].as_str()),
        (Some("DELETE"), Some("/"))
    );
    let (code, _, body) = request(
        addr,
        "GET",
        "/api/v1/namespaces/default/pods/https:web:443/proxy/",
        &[],
        "",
    )
    .await;
    assert_eq!(code, 400, "{body}");
    let (code, _, body) = request(
        addr,
        "GET",
        "/api/v1/namespaces/default/pods/ghost/proxy/",
        &[],
        "",
    )
    .await;
    assert_eq!(code, 404, "{body}");
    // A backend that refuses: upstream's 503.
    let (code, _, body) = request(
        addr,
        "GET",
        "/api/v1/namespaces/default/pods/web:1/proxy/",
        &[],
        "",
    )
    .await;
    assert_eq!(code, 503);
    assert!(
        status_of(&body)["message"]
            .as_str()
            .unwrap()
            .starts_with("error trying to reach service: dial tcp 127.0.0.1:1: "),
        "{body}"
    );
}

#[tokio::test]
async fn proxies_refuse_loopback_unless_allowed() {
    let (srv, addr) = api_with(false).await;
    let port = echo_server().await;
    pod(
        &srv,
        "web",
        json!({"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": port}]}]}),
        running(),
    )
    .await;
    let (code, _, body) = request(
        addr,
        "GET",
        "/api/v1/namespaces/default/pods/web/proxy/",
        &[],
        "",
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(status_of(&body)["message"], "address not allowed");
}

#[tokio::test]
async fn services_proxy_picks_a_ready_endpoint_by_port_name_or_number() {
    let (srv, addr) = api().await;
    let port = echo_server().await;
    let svcs = srv.resource("", "v1", "services");
    let slices = srv.resource("discovery.k8s.io", "v1", "endpointslices");
    for name in ["svc", "empty"] {
        let body = json!({"metadata": {"name": name}, "spec": {"selector": {"app": name}, "ports": [
            {"name": "http", "port": 80, "targetPort": 8080}, {"name": "metrics", "port": 9090}]}});
        srv.create(&svcs, Some("default"), &body, &w())
            .await
            .unwrap();
    }
    let slice = json!({"metadata": {"name": "svc-abcde", "labels": {"kubernetes.io/service-name": "svc"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}},
                      {"addresses": ["127.0.0.2"], "conditions": {"ready": false}}],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}, {"name": "metrics", "port": 1, "protocol": "TCP"}]});
    srv.create(&slices, Some("default"), &slice, &w())
        .await
        .unwrap();
    // The not-ready endpoint (127.0.0.2, where nothing listens) is never chosen.
    for _ in 0..6 {
        let (code, h, body) = request(
            addr,
            "PUT",
            "/api/v1/namespaces/default/services/svc:http/proxy/p?q=1",
            &[],
            "put body",
        )
        .await;
        let v = echoed(code, &h, &body);
        assert_eq!(v["uri"], "/p?q=1");
        assert_eq!(v["method"], "PUT");
        assert_eq!(v["body"], "put body");
    }
    for id in ["svc:80", "http:svc:80"] {
        let (code, h, body) = request(
            addr,
            "GET",
            &format!("/api/v1/namespaces/default/services/{id}/proxy/"),
            &[],
            "",
        )
        .await;
        assert_eq!(echoed(code, &h, &body)["uri"], "/", "{id}");
    }
    let (code, _, body) = request(
        addr,
        "GET",
        "/api/v1/namespaces/default/services/svc:81/proxy/",
        &[],
        "",
    )
    .await;
    assert_eq!(code, 503);
    assert_eq!(
        status_of(&body)["message"],
        "no service port 81 found for service \"svc\""
    );
    let (code, _, body) = request(
        addr,
        "GET",
        "/api/v1/namespaces/default/services/empty:http/proxy/",
        &[],
        "",
    )
    .await;
    assert_eq!(code, 503);
    let st = status_of(&body);
    assert_eq!(st["reason"], "ServiceUnavailable");
    assert_eq!(
        st["message"],
        "no endpoints available for service \"empty\""
    );
    let (code, _, body) = request(
        addr,
        "GET",
        "/api/v1/namespaces/default/services/svc:nope/proxy/",
        &[],
        "",
    )
    .await;
    assert_eq!(code, 503);
    assert_eq!(
        status_of(&body)["message"],
        "no endpoints available for service \"svc:nope\""
    );
    let (code, _, _) = request(
        addr,
        "GET",
        "/api/v1/namespaces/default/services/https:svc:443/proxy/",
        &[],
        "",
    )
    .await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn nodes_proxy_goes_to_the_kubelet_with_path_query_and_body() {
    let (srv, addr) = api().await;
    let port = echo_server().await;
    node(&srv, "pn", port).await;
    let (code, h, body) = request(
        addr,
        "POST",
        "/api/v1/nodes/pn/proxy/stats/summary?only_cpu=true",
        &[("x-test", "node")],
        "node body",
    )
    .await;
    let v = echoed(code, &h, &body);
    assert_eq!(v["uri"], "/stats/summary?only_cpu=true");
    assert_eq!(v["method"], "POST");
    assert_eq!(v["body"], "node body");
    assert_eq!(v["test"], "node");
    let (code, h, body) = request(
        addr,
        "GET",
        &format!("/api/v1/nodes/pn:{port}/proxy/healthz"),
        &[],
        "",
    )
    .await;
    assert_eq!(echoed(code, &h, &body)["uri"], "/healthz");
    let (code, _, _) = request(addr, "GET", "/api/v1/nodes/ghost/proxy/", &[], "").await;
    assert_eq!(code, 404);
}

fn debugger(name: &str) -> Value {
    json!({"name": name, "image": "busybox", "targetContainerName": "c", "stdin": true, "tty": true,
        "terminationMessagePolicy": "File", "imagePullPolicy": "Always", "resources": {}})
}

/// The ephemeral container names of a pod, sorted (strategic merge puts the patch's
/// items first unless the client sends `$setElementOrder`, as kubectl does).
fn ephemeral_names(pod: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = pod["spec"]["ephemeralContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    names
}

fn causes(body: &str) -> Vec<(String, String)> {
    let st = status_of(body);
    assert_eq!(st["code"], 422, "{body}");
    st["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap_or_default().to_string(),
                c["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn ephemeral_containers_are_added_only_through_their_subresource() {
    let (srv, addr) = api().await;
    pod(
        &srv,
        "dbg",
        json!({"containers": [{"name": "c", "image": "i"}]}),
        running(),
    )
    .await;
    let url = "/api/v1/namespaces/default/pods/dbg/ephemeralcontainers";
    let smp = [("content-type", "application/strategic-merge-patch+json")];
    // What `kubectl debug -it dbg --image=busybox --target=c` sends.
    let patch = json!({"spec": {"ephemeralContainers": [debugger("debugger-1")]}}).to_string();
    let (code, _, body) = request(addr, "PATCH", url, &smp, &patch).await;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["kind"], "Pod");
    assert_eq!(v["spec"]["ephemeralContainers"][0]["name"], "debugger-1");
    // Strategic merge by name: a second one joins the first.
    let patch = json!({"spec": {"ephemeralContainers": [debugger("debugger-2")]}}).to_string();
    let (code, _, body) = request(addr, "PATCH", url, &smp, &patch).await;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ephemeral_names(&v), ["debugger-1", "debugger-2"]);
    let (code, _, body) = request(addr, "GET", url, &[], "").await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["spec"]["ephemeralContainers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Changing or removing an existing one is refused.
    let patch =
        json!({"spec": {"ephemeralContainers": [{"name": "debugger-1", "image": "alpine"}]}})
            .to_string();
    let (code, _, body) = request(addr, "PATCH", url, &smp, &patch).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        causes(&body),
        [(
            "spec.ephemeralContainers".to_string(),
            "Forbidden: existing ephemeral containers \"debugger-1\" may not be changed\n"
                .to_string()
        )]
    );
    let remove = r#"[{"op": "remove", "path": "/spec/ephemeralContainers/0"}]"#;
    let (code, _, body) = request(
        addr,
        "PATCH",
        url,
        &[("content-type", "application/json-patch+json")],
        remove,
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert!(
        causes(&body)[0]
            .1
            .starts_with("Forbidden: existing ephemeral containers \"debugger-")
            && causes(&body)[0].1.ends_with("\" may not be removed\n"),
        "{body}"
    );
    // Ports, probes, a name taken by a container, a target that is not there.
    let mut bad = debugger("c");
    bad["ports"] = json!([{"containerPort": 80}]);
    bad["readinessProbe"] = json!({"exec": {"command": ["true"]}});
    bad["targetContainerName"] = json!("nope");
    let patch = json!({"spec": {"ephemeralContainers": [bad]}}).to_string();
    let (code, _, body) = request(
        addr,
        "PATCH",
        url,
        &[("content-type", "application/merge-patch+json")],
        &patch,
    )
    .await;
    assert_eq!(code, 422, "{body}");
    let got = causes(&body);
    for (field, message) in [
        ("spec.ephemeralContainers[0].name", "Duplicate value: \"c\""),
        (
            "spec.ephemeralContainers[0].targetContainerName",
            "Not found: \"nope\"",
        ),
        (
            "spec.ephemeralContainers[0].ports",
            "Forbidden: cannot be set for an Ephemeral Container",
        ),
        (
            "spec.ephemeralContainers[0].readinessProbe",
            "Forbidden: cannot be set for an Ephemeral Container",
        ),
    ] {
        assert!(
            got.contains(&(field.to_string(), message.to_string())),
            "{field}: {got:?}"
        );
    }

    // The pod itself: a PUT or PATCH neither drops nor changes them.
    let pods = srv.resource("", "v1", "pods");
    let (mut p, _) = srv.get(&pods, Some("default"), "dbg").await.unwrap();
    p["spec"]["ephemeralContainers"] = json!([]);
    p["metadata"]["labels"] = json!({"edited": "yes"});
    let (code, _, body) = request(
        addr,
        "PUT",
        "/api/v1/namespaces/default/pods/dbg",
        &[("content-type", "application/json")],
        &p.to_string(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["metadata"]["labels"]["edited"], "yes");
    assert_eq!(
        v["spec"]["ephemeralContainers"].as_array().unwrap().len(),
        2
    );
    let patch = json!({"spec": {"ephemeralContainers": [debugger("sneaky")]}}).to_string();
    let (code, _, body) = request(
        addr,
        "PATCH",
        "/api/v1/namespaces/default/pods/dbg",
        &[("content-type", "application/merge-patch+json")],
        &patch,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (p, _) = srv.get(&pods, Some("default"), "dbg").await.unwrap();
    assert_eq!(ephemeral_names(&p), ["debugger-1", "debugger-2"]);
}

#[test]
fn ids_queries_and_headers() {
    assert_eq!(split_scheme_name_port("a"), Some(("", "a", "")));
    assert_eq!(split_scheme_name_port("a:80"), Some(("", "a", "80")));
    assert_eq!(
        split_scheme_name_port("https:a:443"),
        Some(("https", "a", "443"))
    );
    assert_eq!(split_scheme_name_port("ftp:a:21"), None);
    assert_eq!(split_scheme_name_port(":80"), None);
    assert_eq!(split_scheme_name_port("a:b:c:d"), None);
    let q = pairs(Some(
        "command=ls&command=-la&stdin=1&stdout=false&stderr=0&tty=true",
    ));
    assert_eq!(
        stream_query(&q, true),
        "command=ls&command=-la&input=1&tty=1"
    );
    assert_eq!(stream_query(&pairs(None), true), "error=1&output=1");
    assert_eq!(stream_query(&q, false), "input=1&tty=1");
    assert_eq!(
        port_forward_query(&pairs(Some("ports=80&ports=443,8080"))).unwrap(),
        "port=80%2C443%2C8080"
    );
    assert_eq!(
        port_forward_query(&pairs(Some("ports=http")))
            .unwrap_err()
            .code,
        400
    );
    assert!(proxyable("10.244.0.5", false).is_ok());
    assert!(proxyable("127.0.0.1", false).is_err());
    assert!(proxyable("127.0.0.1", true).is_ok());
    assert!(proxyable("169.254.169.254", true).is_err());
    assert!(proxyable("0.0.0.0", true).is_err());
    assert!(proxyable("", true).is_err());
    let mut h = HeaderMap::new();
    h.insert("connection", "keep-alive, x-private".parse().unwrap());
    h.insert("x-private", "1".parse().unwrap());
    h.insert("keep-alive", "timeout=5".parse().unwrap());
    h.insert("accept", "*/*".parse().unwrap());
    h.insert("authorization", "Bearer t".parse().unwrap());
    let out = pass_headers(&h, false);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out.contains_key("accept"));
    let mut up = HeaderMap::new();
    up.insert("connection", "Upgrade".parse().unwrap());
    up.insert("upgrade", "SPDY/3.1".parse().unwrap());
    assert!(is_upgrade(&up));
    assert_eq!(pass_headers(&up, true).len(), 2);
    assert!(pass_headers(&up, false).is_empty());
}
