//! `healthCheckNodePort`s: for every `LoadBalancer` Service with
//! `externalTrafficPolicy: Local`, an HTTP server on this node at that port
//! that tells an external load balancer whether this node has an endpoint of
//! the Service: `200` with the count when it has, `503` when it has none, as
//! kube-proxy's service health server answers (any path, any method):
//!
//! ```json
//! {"service":{"namespace":"default","name":"web"},"localEndpoints":1,"serviceProxyHealthy":true}
//! ```
//!
//! [`run`] follows the proxy's [`HealthCheck`] set: it opens a listener for a
//! new port, updates the count of a kept one without closing it, and closes
//! the listeners of ports no longer wanted.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::proxy::HealthCheck;

/// The response to a health-check request: status line code and JSON body.
#[must_use]
pub fn response(check: &HealthCheck) -> (u16, String) {
    let body = serde_json::json!({
        "service": {"namespace": check.service.0, "name": check.service.1},
        "localEndpoints": check.local_endpoints,
        "serviceProxyHealthy": true,
    })
    .to_string();
    (if check.local_endpoints > 0 { 200 } else { 503 }, body)
}

fn render(check: &HealthCheck) -> Vec<u8> {
    let (code, body) = response(check);
    let reason = if code == 200 {
        "OK"
    } else {
        "Service Unavailable"
    };
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves one port until aborted, answering from the latest `check`.
async fn serve(listener: TcpListener, check: watch::Receiver<HealthCheck>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let check = check.clone();
        tokio::spawn(async move {
            // Read the request head (up to 8 KiB, 5 s); the answer does not depend on it.
            let mut buf = vec![0u8; 8192];
            let mut read = 0;
            let head = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while read < buf.len() {
                    match stream.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => read += n,
                    }
                    if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        return true;
                    }
                }
                true
            })
            .await;
            if matches!(head, Ok(true)) {
                let reply = render(&check.borrow());
                let _ = stream.write_all(&reply).await;
                let _ = stream.shutdown().await;
            }
        });
    }
}

/// Follows the health-check set published by the proxy (`None` until its
/// first apply) and serves each port on `bind` (every address: `0.0.0.0`).
/// A port that cannot be bound is logged and retried on the next change.
pub async fn run(bind: Ipv4Addr, mut checks: watch::Receiver<Option<BTreeMap<u16, HealthCheck>>>) {
    let mut servers: HashMap<u16, (watch::Sender<HealthCheck>, JoinHandle<()>)> = HashMap::new();
    loop {
        let wanted = checks.borrow_and_update().clone();
        if let Some(wanted) = wanted {
            servers.retain(|port, (_, task)| {
                let keep = wanted.contains_key(port);
                if !keep {
                    task.abort();
                    tracing::info!(port, "healthCheckNodePort closed");
                }
                keep
            });
            for (port, check) in wanted {
                if let Some((tx, _)) = servers.get(&port) {
                    tx.send_if_modified(|current| {
                        let changed = *current != check;
                        *current = check.clone();
                        changed
                    });
                    continue;
                }
                match TcpListener::bind(SocketAddr::from((bind, port))).await {
                    Ok(listener) => {
                        tracing::info!(port, service = %format!("{}/{}", check.service.0, check.service.1),
                            local_endpoints = check.local_endpoints, "serving healthCheckNodePort");
                        let (tx, rx) = watch::channel(check);
                        let task = tokio::spawn(serve(listener, rx));
                        servers.insert(port, (tx, task));
                    }
                    Err(e) => tracing::warn!(port, error = %e, "cannot serve healthCheckNodePort"),
                }
            }
        }
        if checks.changed().await.is_err() {
            for (_, task) in servers.values() {
                task.abort();
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{HealthCheck, response, run};
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn check(port: u16, local: usize) -> HealthCheck {
        HealthCheck {
            port,
            service: ("default".into(), "web".into()),
            local_endpoints: local,
        }
    }

    #[test]
    fn body_and_code_follow_kube_proxy() {
        assert_eq!(
            response(&check(1, 2)),
            (
                200,
                r#"{"service":{"namespace":"default","name":"web"},"localEndpoints":2,"serviceProxyHealthy":true}"#
                    .to_owned()
            )
        );
        assert_eq!(response(&check(1, 0)).0, 503);
    }

    async fn get(port: u16) -> Option<String> {
        let mut s = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .ok()?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        Some(out)
    }

    async fn wait_for(port: u16, want: &str) -> String {
        for _ in 0..200 {
            if let Some(out) = get(port).await
                && out.starts_with(want)
            {
                return out;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("port {port} never answered {want:?}: {:?}", get(port).await);
    }

    #[tokio::test]
    async fn serves_updates_and_closes_ports() {
        let port = {
            let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            l.local_addr().unwrap().port()
        };
        let (tx, rx) = tokio::sync::watch::channel(None);
        let task = tokio::spawn(run(Ipv4Addr::LOCALHOST, rx));
        tx.send(Some(BTreeMap::from([(port, check(port, 0))])))
            .unwrap();
        let out = wait_for(port, "HTTP/1.1 503").await;
        assert!(out.contains(r#""localEndpoints":0"#), "{out}");
        tx.send(Some(BTreeMap::from([(port, check(port, 1))])))
            .unwrap();
        wait_for(port, "HTTP/1.1 200 OK").await;
        tx.send(Some(BTreeMap::new())).unwrap();
        for _ in 0..200 {
            if get(port).await.is_none() {
                task.abort();
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("port {port} still open after its check went");
    }
}
