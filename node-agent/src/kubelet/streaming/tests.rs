//! The streaming endpoints against a fake pod source and a fake runtime stream server on
//! loopback: SPDY passed through byte for byte (with the query), WebSocket v5 translated to
//! SPDY streams (stdin to its end, stdout, the exit status), the port-forward tunnel, and
//! the errors a client can cause.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::{SinkExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use sluice_proto::runtime::v1 as cri;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use super::{CommandOptions, StreamRequest, remotecommand};
use crate::kubelet::server::{Attempt, PodSource, router};

/// One pod `default/web` (uid `u-1`) with a running container `app` (id `c1`).
struct Fake {
    runtime: String,
    asked: Mutex<Vec<StreamRequest>>,
}

impl PodSource for Fake {
    fn pods(&self) -> Vec<Arc<Pod>> {
        vec![Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "web", "namespace": "default", "uid": "u-1"},
                "spec": {"containers": [{"name": "app"}, {"name": "stopped"}]},
            }))
            .unwrap(),
        )]
    }

    fn attempts(&self, uid: &str, container: &str) -> BoxFuture<'static, Vec<Attempt>> {
        let running = uid == "u-1" && container == "app";
        Box::pin(std::future::ready(vec![Attempt {
            id: format!("id-{container}"),
            attempt: 0,
            running,
            created_at: 1,
        }]))
    }

    fn sandbox(&self, _uid: &str) -> BoxFuture<'static, Option<String>> {
        Box::pin(std::future::ready(Some("sb-1".into())))
    }

    fn stream_url(&self, req: StreamRequest) -> BoxFuture<'static, Result<String, tonic::Status>> {
        let path = match &req {
            StreamRequest::Exec(_) => "exec",
            StreamRequest::Attach(_) => "attach",
            StreamRequest::PortForward(_) => "portforward",
        };
        self.asked.lock().unwrap().push(req);
        let url = format!("http://{}/{path}/token", self.runtime);
        Box::pin(std::future::ready(Ok(url)))
    }

    fn exec_sync(
        &self,
        container_id: String,
        cmd: Vec<String>,
    ) -> BoxFuture<'static, Result<cri::ExecSyncResponse, tonic::Status>> {
        Box::pin(std::future::ready(Ok(cri::ExecSyncResponse {
            stdout: format!("{container_id}: {}\n", cmd.join(" ")).into_bytes(),
            stderr: b"warn\n".to_vec(),
            exit_code: 0,
        })))
    }
}

/// Reads an HTTP request head off `s`.
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).await.unwrap(), 1, "head cut short: {head:?}");
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

/// What the fake runtime does after its `101`.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Echo raw bytes (a pass-through check).
    Echo,
    /// Serve an exec over SPDY: stdin to stdout upper-cased, then exit code 3.
    Exec,
}

/// A fake runtime stream server; returns its address and the request heads it saw.
async fn runtime(behaviour: Behaviour) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let head = read_head(&mut s).await;
                seen.lock().unwrap().push(head.clone());
                let upgrade = head
                    .lines()
                    .find_map(|l| l.strip_prefix("upgrade: ").or(l.strip_prefix("Upgrade: ")))
                    .unwrap_or("SPDY/3.1")
                    .to_string();
                s.write_all(
                    format!(
                        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {upgrade}\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .await
                .unwrap();
                match behaviour {
                    Behaviour::Echo => {
                        let (mut r, mut w) = s.into_split();
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                    }
                    Behaviour::Exec => serve_exec(s).await,
                }
            });
        }
    });
    (addr, heads)
}

/// The runtime side of an exec over SPDY, as containerd's stream server behaves.
async fn serve_exec(s: TcpStream) {
    let (session, mut incoming) = sluice_spdy::Session::new(s, sluice_spdy::Role::Server);
    let mut streams = std::collections::HashMap::new();
    while streams.len() < 3 {
        let st = incoming.accept().await.expect("a stream");
        let kind = st
            .headers()
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("streamtype"))
            .map(|(_, v)| v.clone())
            .expect("streamType header");
        streams.insert(kind, st);
    }
    let mut stdin = streams.remove("stdin").expect("stdin");
    let mut stdout = streams.remove("stdout").expect("stdout");
    let mut error = streams.remove("error").expect("error");
    let mut input = Vec::new();
    stdin.read_to_end(&mut input).await.unwrap();
    stdout.write_all(&input.to_ascii_uppercase()).await.unwrap();
    stdout.shutdown().await.unwrap();
    let status = json!({"metadata": {}, "status": "Failure", "message": "command terminated with non-zero exit code",
        "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}});
    error
        .write_all(status.to_string().as_bytes())
        .await
        .unwrap();
    error.shutdown().await.unwrap();
    session.close().await;
}

/// The kubelet router on loopback, with the fake source pointing at `runtime`.
async fn kubelet(runtime: String) -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake {
        runtime,
        asked: Mutex::new(Vec::new()),
    });
    let app = router(fake.clone(), std::env::temp_dir());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (addr, fake)
}

async fn ws_connect(
    addr: &str,
    path: &str,
    protocol: &str,
) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], protocol);
    ws
}

#[tokio::test]
async fn spdy_passes_through_with_its_query() {
    let (rt, heads) = runtime(Behaviour::Echo).await;
    let (addr, fake) = kubelet(rt).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        b"POST /exec/default/web/app?command=ls&command=-l&output=1&error=1 HTTP/1.1\r\nHost: k\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{head}"
    );
    s.write_all(b"spdy bytes").await.unwrap();
    let mut back = [0u8; 10];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"spdy bytes");
    let seen = heads.lock().unwrap().clone();
    assert!(
        seen[0].starts_with("POST /exec/token?command=ls&command=-l&output=1&error=1 HTTP/1.1"),
        "{seen:?}"
    );
    assert!(
        seen[0]
            .to_ascii_lowercase()
            .contains("x-stream-protocol-version: v4.channel.k8s.io")
    );
    let asked = fake.asked.lock().unwrap();
    let StreamRequest::Exec(e) = &asked[0] else {
        panic!("{asked:?}")
    };
    assert_eq!(e.container_id, "id-app");
    assert_eq!(e.cmd, ["ls", "-l"]);
    assert!(e.stdout && e.stderr && !e.stdin && !e.tty);
}

#[tokio::test]
async fn websocket_v5_is_translated_to_spdy() {
    let (rt, heads) = runtime(Behaviour::Exec).await;
    let (addr, _) = kubelet(rt).await;
    let mut ws = ws_connect(
        &addr,
        "/exec/default/web/app?command=cat&input=1&output=1",
        "v5.channel.k8s.io",
    )
    .await;
    ws.send(Message::Binary(b"\x00hello ".to_vec().into()))
        .await
        .unwrap();
    ws.send(Message::Binary(b"\x00world".to_vec().into()))
        .await
        .unwrap();
    // The close signal for stdin: the runtime's stdin stream ends.
    ws.send(Message::Binary(vec![255, 0].into())).await.unwrap();
    let mut stdout = Vec::new();
    let mut status = Vec::new();
    while let Some(msg) = ws.next().await {
        match msg.unwrap() {
            Message::Binary(b) if b.first() == Some(&1) => stdout.extend_from_slice(&b[1..]),
            Message::Binary(b) if b.first() == Some(&3) => status.extend_from_slice(&b[1..]),
            Message::Close(_) => break,
            _ => {}
        }
    }
    assert_eq!(stdout, b"HELLO WORLD");
    let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");
    let seen = heads.lock().unwrap();
    assert!(
        seen[0].to_ascii_lowercase().contains("upgrade: spdy/3.1"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn port_forward_tunnel_and_ports() {
    let (rt, heads) = runtime(Behaviour::Echo).await;
    let (addr, fake) = kubelet(rt).await;
    let mut ws = ws_connect(
        &addr,
        "/portForward/default/web?ports=8080,9090",
        "SPDY/3.1+portforward.k8s.io",
    )
    .await;
    ws.send(Message::Binary(b"tunnelled".to_vec().into()))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 9 {
        match ws.next().await.unwrap().unwrap() {
            Message::Binary(b) => got.extend_from_slice(&b),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, b"tunnelled");
    let seen = heads.lock().unwrap().clone();
    assert!(
        seen[0].starts_with("POST /portforward/token HTTP/1.1"),
        "{seen:?}"
    );
    assert!(
        seen[0]
            .to_ascii_lowercase()
            .contains("x-stream-protocol-version: portforward.k8s.io"),
        "{seen:?}"
    );
    let asked = fake.asked.lock().unwrap();
    let StreamRequest::PortForward(p) = &asked[0] else {
        panic!("{asked:?}")
    };
    assert_eq!(p.pod_sandbox_id, "sb-1");
    assert_eq!(p.port, [8080, 9090]);
}

#[tokio::test]
async fn websocket_v4_port_forward_passes_through_with_port_parameters() {
    let (rt, heads) = runtime(Behaviour::Echo).await;
    let (addr, _) = kubelet(rt).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        b"GET /portForward/default/web?ports=8080 HTTP/1.1\r\nHost: k\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let seen = heads.lock().unwrap().clone();
    assert!(
        seen[0].starts_with("GET /portforward/token?port=8080 HTTP/1.1"),
        "{seen:?}"
    );
    assert!(seen[0].contains("dGhlIHNhbXBsZSBub25jZQ=="), "{seen:?}");
}

async fn plain_request(addr: &str, head: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (code, body)
}

#[tokio::test]
async fn errors_are_statuses() {
    let (rt, _) = runtime(Behaviour::Echo).await;
    let (addr, _) = kubelet(rt).await;
    let spdy = "Upgrade: SPDY/3.1\r\nConnection: close\r\n\r\n";
    for (path, code, message) in [
        (
            "/exec/default/web/nope?command=ls&output=1",
            404,
            "container not found (\"nope\")",
        ),
        (
            "/exec/default/gone/app?command=ls&output=1",
            404,
            "pod default/gone not found on this node",
        ),
        (
            "/exec/default/web/stopped?command=ls&output=1",
            400,
            "container \"stopped\" in pod \"web\" is not running",
        ),
        (
            "/exec/default/web/app?output=1",
            400,
            "you must specify at least one command for the container",
        ),
        (
            "/exec/default/web/app?command=ls",
            400,
            "you must specify at least 1 of stdin, stdout, stderr",
        ),
    ] {
        let (got, body) =
            plain_request(&addr, &format!("POST {path} HTTP/1.1\r\nHost: k\r\n{spdy}")).await;
        assert_eq!(got, code, "{path}: {body}");
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["code"], code);
        assert_eq!(status["message"], message, "{path}");
    }
    let (got, body) = plain_request(
        &addr,
        "POST /exec/default/web/app?command=ls&output=1 HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(got, 400, "{body}");
    assert!(body.contains("Upgrade request required"), "{body}");
}

#[tokio::test]
async fn run_answers_with_the_output() {
    let (rt, _) = runtime(Behaviour::Echo).await;
    let (addr, _) = kubelet(rt).await;
    let (code, body) = plain_request(
        &addr,
        "POST /run/default/web/app?cmd=echo+hi+there HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body, "id-app: echo hi there\nwarn\n");
}

fn q(s: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(s.as_bytes()).into_owned().collect()
}

#[test]
fn command_options() {
    let o = CommandOptions::parse(&q("command=sh&command=-c&command=echo+hi&output=1&error=1"))
        .unwrap();
    assert_eq!(o.command, ["sh", "-c", "echo hi"]);
    assert_eq!(
        o.streams,
        remotecommand::Streams {
            stdin: false,
            stdout: true,
            stderr: true,
            tty: false
        }
    );
    let t = CommandOptions::parse(&q("input=true&output=1&error=1&tty=1")).unwrap();
    assert!(t.streams.tty && t.streams.stdin && !t.streams.stderr);
    assert_eq!(
        CommandOptions::parse(&q("command=ls&tty=1")).unwrap_err(),
        "you must specify at least 1 of stdin, stdout, stderr"
    );
}
