//! The spec's result and error documents.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{CniError, config::version_at_least};

/// An ADD result (spec "Success").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    /// The spec version of this document (the config's `cniVersion`).
    #[serde(default)]
    pub cni_version: String,
    /// Interfaces created; the container side has `sandbox` set.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// Routes installed in the container.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// DNS settings (none: the runtime's resolv.conf stands).
    #[serde(default = "empty_object")]
    pub dns: Value,
}

fn empty_object() -> Value {
    json!({})
}

/// One interface of a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// The interface's name.
    pub name: String,
    /// Its hardware address, `aa:bb:cc:dd:ee:ff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The netns path for container-side interfaces; absent on the host side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// One address of a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// `"4"`; present only in pre-1.0.0 results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The address in CIDR form, `10.244.0.2/32`.
    pub address: String,
    /// The next hop the container uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// One route of a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination in CIDR form.
    pub dst: String,
    /// Next hop, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

impl CniResult {
    /// Shapes the result for `version` (pre-1.0.0 results carry `ips[].version`).
    #[must_use]
    pub fn for_version(mut self, version: &str) -> Self {
        let legacy = !version_at_least(version, "1.0.0");
        for ip in &mut self.ips {
            ip.version = legacy.then(|| "4".to_owned());
        }
        version.clone_into(&mut self.cni_version);
        self
    }
}

/// The spec's error document.
#[must_use]
pub fn error_json(cni_version: &str, err: &CniError) -> String {
    let mut doc = json!({
        "cniVersion": cni_version,
        "code": err.code(),
        "msg": err.to_string(),
    });
    let details = err.details();
    if !details.is_empty() {
        doc["details"] = Value::String(details);
    }
    doc.to_string()
}
