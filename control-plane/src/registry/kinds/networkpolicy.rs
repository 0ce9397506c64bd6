//! `networking.k8s.io/v1 NetworkPolicy`: its strategy and resource entry.

use k8s_openapi::api::networking;
use serde_json::{Value, json};

use super::super::Resource;
use super::super::printers::{age, s, selector_string};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{obj_mut, required_because};
use crate::apiserver::selectors::LabelSelector;
use crate::apiserver::status::Cause;

/// The `networkpolicies` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "networkpolicy",
        "NetworkPolicy",
        true,
        NetworkPolicyStrategy,
    )
    .short_names(&["netpol"])
}

const PROTOCOLS: [&str; 3] = ["TCP", "UDP", "SCTP"];
const POLICY_TYPES: [&str; 2] = ["Ingress", "Egress"];
const CIDR_MSG: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

/// Upstream's `NetworkPolicy` strategy and printer.
pub struct NetworkPolicyStrategy;

impl Strategy for NetworkPolicyStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<networking::v1::NetworkPolicy>(input)
    }

    fn uses_generation(&self) -> bool {
        true
    }

    /// `SetDefaults_NetworkPolicy` and `SetDefaults_NetworkPolicyPort`: a policy without
    /// `policyTypes` is an ingress policy, and an egress one too if it has egress rules;
    /// ports are TCP unless said otherwise.
    fn default(&self, obj: &mut Value) {
        let spec = obj_mut(obj, "spec");
        if spec
            .get("policyTypes")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            let egress = spec
                .get("egress")
                .and_then(Value::as_array)
                .is_some_and(|e| !e.is_empty());
            let types = if egress {
                json!(["Ingress", "Egress"])
            } else {
                json!(["Ingress"])
            };
            spec.insert("policyTypes".into(), types);
        }
        for dir in ["ingress", "egress"] {
            for rule in spec
                .get_mut(dir)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                for port in rule
                    .get_mut("ports")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    if let Some(p) = port.as_object_mut()
                        && p.get("protocol").is_none_or(Value::is_null)
                    {
                        p.insert("protocol".into(), json!("TCP"));
                    }
                }
            }
        }
    }

    /// `ValidateNetworkPolicySpec`.
    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let spec = &obj["spec"];
        let mut causes = Vec::new();
        validate_selector(&spec["podSelector"], "spec.podSelector", &mut causes);
        for (dir, peers) in [("ingress", "from"), ("egress", "to")] {
            for (i, rule) in spec[dir].as_array().into_iter().flatten().enumerate() {
                let path = format!("spec.{dir}[{i}]");
                for (j, port) in rule["ports"].as_array().into_iter().flatten().enumerate() {
                    validate_port(port, &format!("{path}.ports[{j}]"), &mut causes);
                }
                for (j, peer) in rule[peers].as_array().into_iter().flatten().enumerate() {
                    validate_peer(peer, &format!("{path}.{peers}[{j}]"), &mut causes);
                }
            }
        }
        let types = spec["policyTypes"].as_array().cloned().unwrap_or_default();
        if types.len() > POLICY_TYPES.len() {
            causes.push(Cause::invalid(
                "spec.policyTypes",
                &spec["policyTypes"],
                "may not specify more than two policyTypes",
            ));
            return causes;
        }
        for (i, t) in types.iter().enumerate() {
            if !t.as_str().is_some_and(|t| POLICY_TYPES.contains(&t)) {
                causes.push(Cause::not_supported(
                    format!("spec.policyTypes[{i}]"),
                    t,
                    &POLICY_TYPES,
                ));
            }
        }
        causes
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("NetworkPolicy", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Pod-Selector", "string", 0),
            col("Age", "string", 0),
        ]
    }

    /// `printNetworkPolicy`.
    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(selector_string(&o["spec"]["podSelector"])),
            json!(age(&o["metadata"]["creationTimestamp"])),
        ]
    }
}

fn validate_selector(sel: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Err(e) = LabelSelector::from_json(sel) {
        causes.push(Cause::invalid(path, sel, &e));
    }
}

/// `ValidateNetworkPolicyPort`.
fn validate_port(port: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(p) = port["protocol"].as_str()
        && !PROTOCOLS.contains(&p)
    {
        causes.push(Cause::not_supported(
            format!("{path}.protocol"),
            &json!(p),
            &PROTOCOLS,
        ));
    }
    let end = port["endPort"].as_i64();
    let in_range = |n: i64| (1..=65535).contains(&n);
    match &port["port"] {
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or(0);
            if !in_range(n) {
                causes.push(Cause::invalid(
                    format!("{path}.port"),
                    &json!(n),
                    "must be between 1 and 65535, inclusive",
                ));
            }
            if let Some(e) = end {
                if e < n {
                    causes.push(Cause::invalid(
                        format!("{path}.endPort"),
                        &json!(n),
                        "must be greater than or equal to `port`",
                    ));
                }
                if !in_range(e) {
                    causes.push(Cause::invalid(
                        format!("{path}.endPort"),
                        &json!(e),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
        Value::String(name) => {
            if let Some(e) = end {
                causes.push(Cause::invalid(
                    format!("{path}.endPort"),
                    &json!(e),
                    "may not be specified when `port` is non-numeric",
                ));
            }
            let ok = name.len() <= 15
                && name
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && name.bytes().any(|c| c.is_ascii_lowercase())
                && !name.contains("--")
                && !name.starts_with('-')
                && !name.ends_with('-');
            if !ok {
                causes.push(Cause::invalid(
                    format!("{path}.port"),
                    &json!(name),
                    "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                ));
            }
        }
        _ => {
            if let Some(e) = end {
                causes.push(Cause::invalid(
                    format!("{path}.endPort"),
                    &json!(e),
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
}

/// `ValidateNetworkPolicyPeer`: one of the selectors, or an IP block alone.
fn validate_peer(peer: &Value, path: &str, causes: &mut Vec<Cause>) {
    let mut peers = 0;
    for sel in ["podSelector", "namespaceSelector"] {
        if !peer[sel].is_null() {
            peers += 1;
            validate_selector(&peer[sel], &format!("{path}.{sel}"), causes);
        }
    }
    let block = &peer["ipBlock"];
    if !block.is_null() {
        peers += 1;
        validate_ip_block(block, &format!("{path}.ipBlock"), causes);
    }
    if peers == 0 {
        causes.push(required_because(path, "must specify a peer"));
    } else if peers > 1 && !block.is_null() {
        causes.push(Cause::forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
}

/// A CIDR as (address bits, prefix length, width).
fn parse_cidr(s: &str) -> Option<(u128, u32, u32)> {
    let (ip, len) = s.split_once('/')?;
    let len: u32 = len.parse().ok()?;
    let (bits, width) = match ip.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        std::net::IpAddr::V6(a) => (u128::from(a), 128),
    };
    (len <= width).then_some((bits, len, width))
}

/// `ValidateIPBlock`: every `except` is a strict subset of `cidr`.
fn validate_ip_block(block: &Value, path: &str, causes: &mut Vec<Cause>) {
    let cidr = s(&block["cidr"]);
    if cidr.is_empty() {
        causes.push(Cause::required(format!("{path}.cidr")));
        return;
    }
    let Some((base, len, width)) = parse_cidr(&cidr) else {
        causes.push(Cause::invalid(
            format!("{path}.cidr"),
            &json!(cidr),
            CIDR_MSG,
        ));
        return;
    };
    let mask = |l: u32| {
        if l == 0 {
            0
        } else {
            (u128::MAX << (width - l)) & (u128::MAX >> (128 - width))
        }
    };
    for (i, e) in block["except"].as_array().into_iter().flatten().enumerate() {
        let ep = format!("{path}.except[{i}]");
        let e = s(e);
        match parse_cidr(&e) {
            None => causes.push(Cause::invalid(ep, &json!(e), CIDR_MSG)),
            Some((ebits, elen, ewidth)) => {
                let inside = ewidth == width && (ebits & mask(len)) == (base & mask(len));
                if !inside || len >= elen {
                    causes.push(Cause::invalid(
                        ep,
                        &json!(e),
                        "must be a strict subset of `cidr`",
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    #[test]
    fn policy_types_and_protocols_default_as_upstream() {
        let mut np = json!({"metadata": {"name": "db"}, "spec": {"podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"ports": [{"port": 5432}]}], "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}});
        NetworkPolicyStrategy.default(&mut np);
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(np["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
        assert!(NetworkPolicyStrategy.validate(&np, &CX).is_empty());
        let mut deny = json!({"metadata": {"name": "deny"}, "spec": {"podSelector": {}}});
        NetworkPolicyStrategy.default(&mut deny);
        assert_eq!(deny["spec"]["policyTypes"], json!(["Ingress"]));
    }

    #[test]
    fn ports_peers_and_blocks_are_checked() {
        let np = json!({"metadata": {"name": "x"}, "spec": {"podSelector": {},
            "ingress": [{"ports": [{"protocol": "ICMP", "port": 80, "endPort": 70}],
                         "from": [{}, {"podSelector": {}, "ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}}]}],
            "policyTypes": ["Sideways"]}});
        let fields: Vec<String> = NetworkPolicyStrategy
            .validate(&np, &CX)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.ingress[0].ports[0].protocol",
                "spec.ingress[0].ports[0].endPort",
                "spec.ingress[0].from[0]",
                "spec.ingress[0].from[1].ipBlock.except[0]",
                "spec.ingress[0].from[1]",
                "spec.policyTypes[0]",
            ]
        );
    }

    #[test]
    fn cells_like_kubectl() {
        let np = json!({"metadata": {"name": "db"}, "spec": {"podSelector": {"matchLabels": {"app": "db"}}}});
        let c = NetworkPolicyStrategy.cells(&np);
        assert_eq!(c.len(), NetworkPolicyStrategy.columns().len());
        assert_eq!(c[1], "app=db");
        let all = json!({"metadata": {"name": "deny"}, "spec": {"podSelector": {}}});
        assert_eq!(NetworkPolicyStrategy.cells(&all)[1], "<none>");
    }
}
