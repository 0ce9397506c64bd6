//! Requests the API server sends on to a node's kubelet: `pods/log` streams
//! `GET /containerLogs/{ns}/{pod}/{container}` from the kubelet serving the pod's node (its
//! `InternalIP` and `daemonEndpoints.kubeletEndpoint.Port`), as upstream's `LogLocation` does.

use axum::body::Body;
use axum::response::Response;
use hyper_util::rt::TokioIo;

use super::ApiServer;
use super::options::Query;
use super::proxy::container_of;
use super::status::{ApiError, ApiResult};
use crate::registry::Resource;

/// The `PodLogOptions` parameters passed on, with whether each must be an integer.
const LOG_PARAMS: &[(&str, bool)] = &[
    ("follow", false),
    ("previous", false),
    ("timestamps", false),
    ("sinceTime", false),
    ("tailLines", true),
    ("sinceSeconds", true),
    ("limitBytes", true),
];

/// The kubelet query for the request's log options; bad integers are refused here.
fn log_query(query: &Query) -> ApiResult<String> {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (param, integer) in LOG_PARAMS {
        if let Some(v) = query.get(param) {
            if *integer && v.parse::<i64>().map_or(true, |n| n < 0) {
                return Err(ApiError::bad_request(format!(
                    "{param}: Invalid value: {v:?}: must be a non-negative integer"
                )));
            }
            out.append_pair(param, v);
        }
    }
    Ok(out.finish())
}

impl ApiServer {
    /// `GET pods/{name}/log`: stream the container's log from its node's kubelet.
    pub(super) async fn pod_log(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        query: &Query,
    ) -> ApiResult<Response> {
        let (pod, _) = self.get(r, ns, name).await?;
        let container = container_of(&pod, name, query.get("container"))?;
        let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        if node_name.is_empty() {
            return Err(ApiError::bad_request(format!(
                "pod {name} does not have a host assigned"
            )));
        }
        let (ip, port) = self.kubelet_of(node_name).await?;
        let addr = format!("{ip}:{port}");
        let ns = ns.unwrap_or_default();
        let path = format!(
            "/containerLogs/{ns}/{name}/{container}?{}",
            log_query(query)?
        );
        let unreachable = |e: &dyn std::fmt::Display| {
            ApiError::internal(format!("Get \"http://{addr}{path}\": {e}"))
        };
        let stream = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| unreachable(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "kubelet log connection ended");
            }
        });
        let request = hyper::Request::get(&path)
            .header("host", &addr)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| unreachable(&e))?;
        let reply = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(&e))?;
        let status = reply.status();
        if !status.is_success() {
            use http_body_util::BodyExt;
            let body = reply
                .into_body()
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&body).trim().to_string();
            return Err(match status.as_u16() {
                404 => ApiError::new(404, "NotFound", text),
                400 => ApiError::bad_request(text),
                _ => ApiError::internal(text),
            });
        }
        Ok(Response::builder()
            .status(200)
            .header("content-type", "text/plain")
            .header("cache-control", "no-cache, private")
            .body(Body::new(reply.into_body()))
            .expect("static response parts"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::proxy::kubelet_address;
    use super::*;
    use serde_json::json;

    #[test]
    fn picks_the_only_container_or_asks() {
        let one = json!({"spec": {"containers": [{"name": "web"}]}});
        assert_eq!(container_of(&one, "p", None).unwrap(), "web");
        let two = json!({"spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "a"}, {"name": "b"}],
            "ephemeralContainers": [{"name": "dbg"}]}});
        let e = container_of(&two, "p", None).unwrap_err();
        // Upstream's validateContainer lists every container, init and ephemeral ones too.
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [init a b dbg]"
        );
        assert_eq!(container_of(&two, "p", Some("init")).unwrap(), "init");
        assert_eq!(container_of(&two, "p", Some("dbg")).unwrap(), "dbg");
        let e = container_of(&two, "p", Some("x")).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "container x is not valid for pod p")
        );
        let none = json!({"spec": {}});
        assert_eq!(
            container_of(&none, "p", None).unwrap_err().message,
            "a container name must be specified for pod p"
        );
    }

    #[test]
    fn kubelet_address_and_query() {
        let node = json!({"status": {"addresses": [{"type": "Hostname", "address": "n"}, {"type": "InternalIP", "address": "10.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}});
        assert_eq!(
            kubelet_address(&node).unwrap(),
            ("10.0.0.5".to_string(), 10250)
        );
        let q = Query::parse(Some("follow=true&tailLines=5&container=c&bogus=1"));
        assert_eq!(log_query(&q).unwrap(), "follow=true&tailLines=5");
        assert_eq!(
            log_query(&Query::parse(Some("tailLines=-1")))
                .unwrap_err()
                .code,
            400
        );
    }
}
