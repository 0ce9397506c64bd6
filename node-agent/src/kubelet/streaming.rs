//! The kubelet's streaming endpoints, what the API server's `pods/exec`, `pods/attach` and
//! `pods/portforward` reach: `GET|POST /exec/{ns}/{pod}/{container}`,
//! `/attach/{ns}/{pod}/{container}` and `/portForward/{ns}/{pod}`, plus `POST /run/...`
//! (a command's output, no streams).
//!
//! Each asks the runtime (CRI `Exec`, `Attach`, `PortForward`) for a one-shot URL on its
//! stream server and then either proxies the client's upgrade there unchanged, when the
//! client speaks what containerd 1.6 speaks (SPDY/3.1, WebSocket `v4.channel.k8s.io` and
//! older), or translates: WebSocket `v5.channel.k8s.io` (kubectl's default since 1.31) to
//! SPDY in [`remotecommand`], and WebSocket `SPDY/3.1+portforward.k8s.io` (an SPDY session
//! tunnelled in WebSocket messages) to plain SPDY in [`tunnel`].

pub mod remotecommand;
#[cfg(test)]
mod tests;
pub mod tunnel;
pub mod upgrade;
pub mod websocket;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use sluice_proto::runtime::v1 as cri;

use super::server::PodSource;

/// The SPDY upgrade token.
pub const SPDY: &str = "SPDY/3.1";
/// The WebSocket subprotocol kubectl tunnels an SPDY port-forward session in.
pub const PORT_FORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
/// The SPDY port-forward protocol version.
pub const PORT_FORWARD: &str = "portforward.k8s.io";

/// A stream URL request to the runtime.
#[derive(Debug, Clone)]
pub enum StreamRequest {
    /// `kubectl exec`.
    Exec(cri::ExecRequest),
    /// `kubectl attach`.
    Attach(cri::AttachRequest),
    /// `kubectl port-forward`.
    PortForward(cri::PortForwardRequest),
}

/// Which remote command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Run a new process.
    Exec,
    /// Attach to the container's own process.
    Attach,
}

/// A Kubernetes `Status` failure, which the API server passes on to the client as it is.
pub fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(format!("{body}\n")))
        .expect("static response parts")
}

fn bad_request(message: &str) -> Response<Body> {
    status(StatusCode::BAD_REQUEST, "BadRequest", message)
}

fn internal(message: &str) -> Response<Body> {
    status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
}

/// The remote command options of a request (upstream's `input`, `output`, `error`, `tty`
/// and repeated `command` parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOptions {
    /// The streams.
    pub streams: remotecommand::Streams,
    /// The command (exec only).
    pub command: Vec<String>,
}

fn flag(query: &[(String, String)], name: &str) -> bool {
    query
        .iter()
        .any(|(k, v)| k == name && matches!(v.as_str(), "1" | "true"))
}

impl CommandOptions {
    /// Parses the query; a terminal has no separate stderr.
    pub fn parse(query: &[(String, String)]) -> Result<Self, String> {
        let tty = flag(query, "tty");
        let streams = remotecommand::Streams {
            stdin: flag(query, "input"),
            stdout: flag(query, "output"),
            stderr: flag(query, "error") && !tty,
            tty,
        };
        if !streams.stdin && !streams.stdout && !streams.stderr {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        let command = query
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect();
        Ok(Self { streams, command })
    }
}

fn query_pairs(req: &Request<Body>) -> Vec<(String, String)> {
    form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The pod, or the `Status` that says it is not on this node.
fn find_pod(
    source: &dyn PodSource,
    namespace: &str,
    name: &str,
) -> Result<Arc<Pod>, Box<Response<Body>>> {
    source.pod(namespace, name).ok_or_else(|| {
        Box::new(status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("pod {namespace}/{name} not found on this node"),
        ))
    })
}

/// The runtime id of `container`'s running attempt in `pod`.
async fn running_container(
    source: &dyn PodSource,
    pod: &Pod,
    container: &str,
) -> Result<String, Box<Response<Body>>> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    if !super::server::has_container(pod, container) {
        return Err(Box::new(status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("container not found ({container:?})"),
        )));
    }
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let attempts = source.attempts(uid, container).await;
    attempts
        .iter()
        .filter(|a| a.running)
        .max_by_key(|a| (a.created_at, a.attempt))
        .map(|a| a.id.clone())
        .ok_or_else(|| {
            Box::new(bad_request(&format!(
                "container {container:?} in pod {name:?} is not running"
            )))
        })
}

fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (k.parse::<header::HeaderName>(), HeaderValue::from_str(v)) {
            h.append(k, v);
        }
    }
    h
}

fn is_spdy(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(SPDY))
}

/// One line per session: which verb, and over which transport (tests read it).
fn log_session(verb: &str, namespace: &str, pod: &str, websocket: bool, translated: bool) {
    let transport = if websocket { "websocket" } else { "spdy" };
    let mode = if translated {
        "translated"
    } else {
        "passthrough"
    };
    tracing::info!(verb = %verb, transport = %transport, mode = %mode, pod = %format!("{namespace}/{pod}"), "stream session");
}

/// Passes the client's upgrade through to `url` unchanged.
async fn pass_through(req: Request<Body>, url: &str) -> Response<Body> {
    match upgrade::proxy(req, url).await {
        Ok(r) => r,
        Err(e) => internal(&format!("error proxying to the container runtime: {e}")),
    }
}

/// `GET|POST /exec/{ns}/{pod}/{container}` and `/attach/...`.
pub async fn remote_command(
    source: Arc<dyn PodSource>,
    verb: Verb,
    (namespace, pod_name, container): (String, String, String),
    mut req: Request<Body>,
) -> Response<Body> {
    let opts = match CommandOptions::parse(&query_pairs(&req)) {
        Ok(o) => o,
        Err(e) => return bad_request(&e),
    };
    if verb == Verb::Exec && opts.command.is_empty() {
        return bad_request("you must specify at least one command for the container");
    }
    let websocket = websocket::is_websocket(req.headers());
    if !websocket && !is_spdy(req.headers()) {
        return bad_request("Upgrade request required");
    }
    let pod = match find_pod(source.as_ref(), &namespace, &pod_name) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let id = match running_container(source.as_ref(), &pod, &container).await {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let s = opts.streams;
    let request = match verb {
        Verb::Exec => StreamRequest::Exec(cri::ExecRequest {
            container_id: id,
            cmd: opts.command.clone(),
            tty: s.tty,
            stdin: s.stdin,
            stdout: s.stdout,
            stderr: s.stderr,
        }),
        Verb::Attach => StreamRequest::Attach(cri::AttachRequest {
            container_id: id,
            stdin: s.stdin,
            tty: s.tty,
            stdout: s.stdout,
            stderr: s.stderr,
        }),
    };
    let url = match source.stream_url(request).await {
        Ok(u) => u,
        Err(e) => return internal(&format!("the container runtime refused: {}", e.message())),
    };
    let v5 = websocket
        && websocket::offered(req.headers())
            .iter()
            .any(|p| p == remotecommand::V5);
    let verb_name = match verb {
        Verb::Exec => "exec",
        Verb::Attach => "attach",
    };
    log_session(verb_name, &namespace, &pod_name, websocket, v5);
    if !v5 {
        // As upstream's upgrade-aware proxy, the request's query goes along.
        let url = match req.uri().query() {
            Some(q) => format!("{url}?{q}"),
            None => url,
        };
        return pass_through(req, &url).await;
    }
    let backend = header_map(&[("X-Stream-Protocol-Version", remotecommand::RUNTIME_VERSION)]);
    let io = match upgrade::dial(&url, SPDY, &backend).await {
        Ok((_, io)) => io,
        Err(e) => return internal(&format!("error dialing the container runtime: {e}")),
    };
    let runtime = match remotecommand::Runtime::open(io, s).await {
        Ok(r) => r,
        Err(e) => return internal(&format!("opening the runtime's streams: {e}")),
    };
    let Some((response, socket)) = websocket::accept(&mut req, remotecommand::V5) else {
        return bad_request("invalid WebSocket handshake");
    };
    tokio::spawn(async move {
        match socket.await {
            Ok(ws) => remotecommand::bridge(ws, runtime).await,
            Err(e) => tracing::debug!(error = %e, "client upgrade did not complete"),
        }
    });
    response
}

/// `GET|POST /portForward/{ns}/{pod}`.
pub async fn port_forward(
    source: Arc<dyn PodSource>,
    (namespace, pod_name): (String, String),
    mut req: Request<Body>,
) -> Response<Body> {
    let websocket = websocket::is_websocket(req.headers());
    if !websocket && !is_spdy(req.headers()) {
        return bad_request("Upgrade request required");
    }
    let pod = match find_pod(source.as_ref(), &namespace, &pod_name) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let Some(sandbox) = source.sandbox(uid).await else {
        return bad_request(&format!("pod {pod_name:?} has no running sandbox"));
    };
    let ports: Vec<i32> = query_pairs(&req)
        .iter()
        .filter(|(k, _)| k == "ports" || k == "port")
        .flat_map(|(_, v)| v.split(',').map(str::to_string).collect::<Vec<_>>())
        .filter_map(|p| p.trim().parse::<i32>().ok())
        .collect();
    // The runtime's WebSocket port-forward takes its ports as repeated `port` parameters.
    let port_query = ports
        .iter()
        .map(|p| format!("port={p}"))
        .collect::<Vec<_>>()
        .join("&");
    let url = match source
        .stream_url(StreamRequest::PortForward(cri::PortForwardRequest {
            pod_sandbox_id: sandbox,
            port: ports.clone(),
        }))
        .await
    {
        Ok(u) => u,
        Err(e) => return internal(&format!("the container runtime refused: {}", e.message())),
    };
    let tunnelled = websocket
        && websocket::offered(req.headers())
            .iter()
            .any(|p| p == PORT_FORWARD_TUNNEL);
    log_session("portforward", &namespace, &pod_name, websocket, tunnelled);
    if !tunnelled {
        let url = if port_query.is_empty() {
            url
        } else {
            format!("{url}?{port_query}")
        };
        return pass_through(req, &url).await;
    }
    let backend = header_map(&[("X-Stream-Protocol-Version", PORT_FORWARD)]);
    let io = match upgrade::dial(&url, SPDY, &backend).await {
        Ok((_, io)) => io,
        Err(e) => return internal(&format!("error dialing the container runtime: {e}")),
    };
    let Some((response, socket)) = websocket::accept(&mut req, PORT_FORWARD_TUNNEL) else {
        return bad_request("invalid WebSocket handshake");
    };
    tokio::spawn(async move {
        match socket.await {
            Ok(ws) => tunnel::carry(ws, io).await,
            Err(e) => tracing::debug!(error = %e, "client upgrade did not complete"),
        }
    });
    response
}

/// `POST /run/{ns}/{pod}/{container}?cmd=...`: runs the space-separated command and answers
/// with its output (stdout, then stderr), as upstream's kubelet does.
pub async fn run(
    source: Arc<dyn PodSource>,
    (namespace, pod_name, container): (String, String, String),
    req: Request<Body>,
) -> Response<Body> {
    let cmd: Vec<String> = query_pairs(&req)
        .into_iter()
        .find(|(k, _)| k == "cmd")
        .map(|(_, v)| {
            v.split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if cmd.is_empty() {
        return bad_request("missing cmd parameter");
    }
    let pod = match find_pod(source.as_ref(), &namespace, &pod_name) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let id = match running_container(source.as_ref(), &pod, &container).await {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match source.exec_sync(id, cmd).await {
        Ok(out) => {
            let mut body = out.stdout;
            body.extend_from_slice(&out.stderr);
            Response::builder()
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(Body::from(body))
                .expect("static response parts")
        }
        Err(e) => internal(&format!("running the command: {}", e.message())),
    }
}
