//! Container probes: exec (through the runtime's `ExecSync`), HTTP GET and TCP connect.

use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sluice_proto::runtime::v1 as cri;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Passed.
    Success,
    /// Failed, with why.
    Failure(String),
}

fn port_of(port: &IntOrString, named: &[(String, i32)]) -> Option<u16> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).ok(),
        IntOrString::String(s) => named
            .iter()
            .find(|(n, _)| n == s)
            .and_then(|(_, p)| u16::try_from(*p).ok()),
    }
}

/// Run `probe` against a container. `named_ports` resolves named ports.
pub async fn run(
    probe: &Probe,
    cri: &mut sluice_proto::Clients,
    container_id: &str,
    pod_ip: &str,
    named_ports: &[(String, i32)],
) -> Outcome {
    let timeout =
        Duration::from_secs(u64::try_from(probe.timeout_seconds.unwrap_or(1).max(1)).unwrap_or(1));
    if let Some(exec) = &probe.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        let req = cri::ExecSyncRequest {
            container_id: container_id.to_string(),
            cmd,
            timeout: i64::try_from(timeout.as_secs()).unwrap_or(1),
        };
        return match tokio::time::timeout(
            timeout + Duration::from_secs(2),
            cri.runtime.exec_sync(req),
        )
        .await
        {
            Ok(Ok(r)) => {
                let r = r.into_inner();
                if r.exit_code == 0 {
                    Outcome::Success
                } else {
                    Outcome::Failure(format!(
                        "command exited {}: {}",
                        r.exit_code,
                        String::from_utf8_lossy(&r.stdout).trim()
                    ))
                }
            }
            Ok(Err(e)) => Outcome::Failure(format!("exec failed: {}", e.message())),
            Err(_) => Outcome::Failure(format!("command timed out after {timeout:?}")),
        };
    }
    if let Some(http) = &probe.http_get {
        let Some(port) = port_of(&http.port, named_ports) else {
            return Outcome::Failure(format!("unknown port {:?}", http.port));
        };
        let host = http
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| pod_ip.to_string());
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        return match tokio::time::timeout(timeout, http_get(&host, port, &path)).await {
            Ok(Ok(code)) if (200..400).contains(&code) => Outcome::Success,
            Ok(Ok(code)) => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
            Ok(Err(e)) => Outcome::Failure(format!("Get \"http://{host}:{port}{path}\": {e}")),
            Err(_) => Outcome::Failure(format!(
                "Get \"http://{host}:{port}{path}\": context deadline exceeded"
            )),
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        let Some(port) = port_of(&tcp.port, named_ports) else {
            return Outcome::Failure(format!("unknown port {:?}", tcp.port));
        };
        let host = tcp
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| pod_ip.to_string());
        return match tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port))).await
        {
            Ok(Ok(_)) => Outcome::Success,
            Ok(Err(e)) => Outcome::Failure(format!("dial tcp {host}:{port}: {e}")),
            Err(_) => Outcome::Failure(format!("dial tcp {host}:{port}: i/o timeout")),
        };
    }
    Outcome::Failure("probe has no handler".into())
}

async fn http_get(host: &str, port: u16, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect((host, port)).await?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.32\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = vec![0u8; 256];
    let mut got = 0;
    while got < 12 {
        let n = s.read(&mut buf[got..]).await?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let head = String::from_utf8_lossy(&buf[..got]);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("malformed HTTP response {head:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn http_and_tcp_probes_against_a_local_server() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let mut b = [0u8; 512];
                let n = s.read(&mut b).await.unwrap_or(0);
                let code = if String::from_utf8_lossy(&b[..n]).starts_with("GET /bad") {
                    500
                } else {
                    200
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        assert_eq!(http_get("127.0.0.1", port, "/ok").await.unwrap(), 200);
        assert_eq!(http_get("127.0.0.1", port, "/bad").await.unwrap(), 500);
        assert_eq!(
            port_of(
                &IntOrString::String("http".into()),
                &[("http".into(), 8080)]
            ),
            Some(8080)
        );
        assert_eq!(port_of(&IntOrString::String("nope".into()), &[]), None);
    }
}
