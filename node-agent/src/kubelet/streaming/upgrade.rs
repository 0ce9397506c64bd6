//! HTTP/1.1 upgrades towards the runtime's stream server: the byte-for-byte proxy used when
//! the client speaks a protocol the runtime speaks too (SPDY, WebSocket `v4.channel.k8s.io`),
//! and the dial used when the kubelet itself speaks SPDY to the runtime.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;

/// Headers that describe one hop, never copied from one connection to the next (RFC 9110
/// 7.6.1), except that `Connection: Upgrade` and `Upgrade` are set again for upgrades.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
];

/// Why a runtime stream URL could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The URL is not `http://host:port/path`.
    #[error("bad stream URL {0:?}")]
    Url(String),
    /// Connecting or speaking HTTP failed.
    #[error("{url}: {source}")]
    Io {
        /// The URL.
        url: String,
        /// Cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The runtime answered something other than `101 Switching Protocols`.
    #[error("{url}: the runtime answered {status}: {body}")]
    Refused {
        /// The URL.
        url: String,
        /// Its status.
        status: StatusCode,
        /// Its body, as text.
        body: String,
    },
}

/// `http://host:port/path?query` split into the address to dial and the request target.
fn split_url(url: &str) -> Result<(String, String), UpgradeError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| UpgradeError::Url(url.to_string()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(UpgradeError::Url(url.to_string()));
    }
    Ok((authority.to_string(), path.to_string()))
}

fn io_error(url: &str, e: impl std::error::Error + Send + Sync + 'static) -> UpgradeError {
    UpgradeError::Io {
        url: url.to_string(),
        source: Box::new(e),
    }
}

/// Sends `method url` with `headers` (plus `Host`) on a fresh connection that allows an
/// upgrade, and returns the response.
async fn send(
    method: &axum::http::Method,
    url: &str,
    headers: &HeaderMap,
    upgrade: Option<&HeaderValue>,
) -> Result<Response<hyper::body::Incoming>, UpgradeError> {
    let (authority, path) = split_url(url)?;
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .map_err(|e| io_error(url, e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| io_error(url, e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "stream server connection ended");
        }
    });
    let mut req = hyper::Request::builder().method(method.clone()).uri(&path);
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            req = req.header(name, value);
        }
    }
    req = req.header(header::HOST, &authority);
    if let Some(u) = upgrade {
        req = req
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, u);
    }
    let req = req
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| io_error(url, e))?;
    sender.send_request(req).await.map_err(|e| io_error(url, e))
}

async fn body_text(resp: Response<hyper::body::Incoming>) -> String {
    use http_body_util::BodyExt as _;
    resp.into_body()
        .collect()
        .await
        .map(|c| String::from_utf8_lossy(&c.to_bytes()).trim().to_string())
        .unwrap_or_default()
}

/// Dials `url` with `Upgrade: protocol` and the given headers; on `101` returns the
/// response's headers and the upgraded connection.
pub async fn dial(
    url: &str,
    protocol: &str,
    headers: &HeaderMap,
) -> Result<(HeaderMap, TokioIo<Upgraded>), UpgradeError> {
    let upgrade = HeaderValue::from_str(protocol).map_err(|e| io_error(url, e))?;
    let mut resp = send(&axum::http::Method::POST, url, headers, Some(&upgrade)).await?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = resp.status();
        return Err(UpgradeError::Refused {
            url: url.to_string(),
            status,
            body: body_text(resp).await,
        });
    }
    let headers = resp.headers().clone();
    let upgraded = hyper::upgrade::on(&mut resp)
        .await
        .map_err(|e| io_error(url, e))?;
    Ok((headers, TokioIo::new(upgraded)))
}

/// Proxies `req` to `url` as it is (method and end-to-end headers). A `101` answer is passed
/// back and both upgraded connections are spliced until either side ends; any other answer
/// is passed back with its body.
pub async fn proxy(mut req: Request<Body>, url: &str) -> Result<Response<Body>, UpgradeError> {
    let upgrade = req.headers().get(header::UPGRADE).cloned();
    let mut resp = send(req.method(), url, req.headers(), upgrade.as_ref()).await?;
    let status = resp.status();
    let mut out = Response::builder().status(status);
    for (name, value) in resp.headers() {
        if status == StatusCode::SWITCHING_PROTOCOLS || !HOP_BY_HOP.contains(&name.as_str()) {
            out = out.header(name, value);
        }
    }
    if status != StatusCode::SWITCHING_PROTOCOLS {
        return out
            .body(Body::new(resp.into_body()))
            .map_err(|e| io_error(url, e));
    }
    let client_side = hyper::upgrade::on(&mut req);
    let runtime_side = hyper::upgrade::on(&mut resp);
    let what = url.to_string();
    tokio::spawn(async move {
        let (client, runtime) = match tokio::try_join!(client_side, runtime_side) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(url = %what, error = %e, "upgrade did not complete");
                return;
            }
        };
        splice(TokioIo::new(client), TokioIo::new(runtime)).await;
    });
    out.body(Body::empty()).map_err(|e| io_error(url, e))
}

/// Copies bytes both ways until both directions end; each side's end of input shuts down
/// the other side's output.
pub async fn splice<A, B>(mut a: A, mut b: B)
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = tokio::io::copy_bidirectional(&mut a, &mut b).await {
        tracing::debug!(error = %e, "stream splice ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            split_url("http://127.0.0.1:4000/exec/abc").unwrap(),
            ("127.0.0.1:4000".into(), "/exec/abc".into())
        );
        assert_eq!(
            split_url("http://[::1]:4000").unwrap(),
            ("[::1]:4000".into(), "/".into())
        );
        assert!(split_url("https://x/").is_err());
        assert!(split_url("http:///x").is_err());
    }
}
