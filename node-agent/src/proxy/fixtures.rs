//! Test fixtures: Services and `EndpointSlices` built from JSON, as the
//! apiserver would serve them.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

/// A `ClusterIP` Service `namespace/name` with `ports` as
/// `(name, port, protocol)`; an empty name leaves the port unnamed.
pub fn service(
    namespace: &str,
    name: &str,
    cluster_ip: &str,
    ports: &[(&str, i32, &str)],
) -> Service {
    service_json(json!({
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ports": ports_json(ports),
        },
    }))
}

/// A Service from its JSON.
pub fn service_json(value: Value) -> Service {
    serde_json::from_value(value).unwrap_or_else(|e| panic!("bad Service fixture: {e}"))
}

/// An IPv4 `EndpointSlice` `name` for Service `service` with `ports` as
/// `(name, port, protocol)` and `endpoints` as `(address, ready)`, where
/// `ready == None` leaves the condition unset.
pub fn slice(
    namespace: &str,
    service: &str,
    name: &str,
    ports: &[(&str, i32, &str)],
    endpoints: &[(&str, Option<bool>)],
) -> EndpointSlice {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(addr, ready)| match ready {
            Some(ready) => json!({"addresses": [addr], "conditions": {"ready": ready}}),
            None => json!({"addresses": [addr]}),
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {
            "namespace": namespace,
            "name": name,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
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
