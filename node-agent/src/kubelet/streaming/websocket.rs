//! The server side of a WebSocket handshake on an axum request: which subprotocols the
//! client offers, and the `101` answer that accepts one.

use axum::body::Body;
use axum::http::{HeaderMap, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The connection a WebSocket upgrade leaves.
pub type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Whether the request asks to upgrade to WebSocket.
pub fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The subprotocols offered (`Sec-WebSocket-Protocol`, comma-separated, possibly over
/// several header lines), in the client's order.
pub fn offered(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Accepts the upgrade with `protocol`: returns the `101` to send and a future that yields
/// the WebSocket once the client has it. `None` when the request is not a valid version-13
/// handshake.
pub fn accept(
    req: &mut Request<Body>,
    protocol: &str,
) -> Option<(
    Response<Body>,
    impl Future<Output = Result<Socket, hyper::Error>> + Send + 'static,
)> {
    let headers = req.headers();
    if !is_websocket(headers)
        || headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_none_or(|v| v.as_bytes() != b"13")
    {
        return None;
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?;
    let accept = derive_accept_key(key.as_bytes());
    let response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .header(header::SEC_WEBSOCKET_PROTOCOL, protocol)
        .body(Body::empty())
        .ok()?;
    let upgrade = hyper::upgrade::on(req);
    let socket = async move {
        let io = TokioIo::new(upgrade.await?);
        Ok(WebSocketStream::from_raw_socket(io, Role::Server, None).await)
    };
    Some((response, socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_protocols_over_lines_and_commas() {
        let mut h = HeaderMap::new();
        h.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            "v5.channel.k8s.io, v4.channel.k8s.io".parse().unwrap(),
        );
        h.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            "channel.k8s.io".parse().unwrap(),
        );
        assert_eq!(
            offered(&h),
            ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"]
        );
        assert!(!is_websocket(&h));
        h.insert(header::UPGRADE, "WebSocket".parse().unwrap());
        assert!(is_websocket(&h));
    }

    #[test]
    fn accept_needs_version_13_and_a_key() {
        let mut req = Request::get("/")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .body(Body::empty())
            .unwrap();
        assert!(accept(&mut req, "v5.channel.k8s.io").is_none());
        req.headers_mut().insert(
            header::SEC_WEBSOCKET_KEY,
            "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap(),
        );
        let (resp, _) = accept(&mut req, "v5.channel.k8s.io").unwrap();
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        // RFC 6455 section 1.3's worked example.
        assert_eq!(
            resp.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            resp.headers()[header::SEC_WEBSOCKET_PROTOCOL],
            "v5.channel.k8s.io"
        );
    }
}
