//! The plugin's inputs: the `CNI_*` environment and the network config on stdin.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use serde_json::{Value, json};
use sluice_k8s_values::{Ipv4Net, cidr};

use super::CniError;

/// Spec versions this plugin accepts in `cniVersion` (and lists for VERSION).
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/// The newest spec version this plugin implements.
pub const LATEST_VERSION: &str = "1.1.0";
/// Default `dataDir`.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/sluice/cni";
/// Default `mtu`.
pub const DEFAULT_MTU: u32 = 1500;
/// The plugin's policy for `podCIDR`: at least one pod address besides the network,
/// gateway and broadcast addresses (a /30).
pub const POD_CIDR_MAX_PREFIX: u8 = 30;
/// The conflist the node agent writes into the runtime's CNI conf dir.
pub const CONFLIST_FILE: &str = "10-sluice.conflist";
/// The network's name in that conflist (also its IPAM directory under `dataDir`).
pub const NETWORK_NAME: &str = "sluice";

/// A CNI verb (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Attach a container.
    Add,
    /// Detach a container (idempotent).
    Del,
    /// Verify an attachment against `prevResult`.
    Check,
    /// Report supported versions.
    Version,
    /// Release everything not in `cni.dev/valid-attachments` (spec 1.1).
    Gc,
    /// Report whether ADD can be serviced (spec 1.1).
    Status,
}

impl Verb {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ADD" => Self::Add,
            "DEL" => Self::Del,
            "CHECK" => Self::Check,
            "VERSION" => Self::Version,
            "GC" => Self::Gc,
            "STATUS" => Self::Status,
            _ => return None,
        })
    }
}

/// The `CNI_*` environment of one invocation, validated for its verb.
#[derive(Debug, Clone)]
pub struct Env {
    /// `CNI_COMMAND`.
    pub verb: Verb,
    /// `CNI_CONTAINERID` (empty for VERSION, GC, STATUS).
    pub container_id: String,
    /// `CNI_NETNS`, a path; `None` when unset or empty (allowed for DEL only).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME` (empty for VERSION, GC, STATUS).
    pub ifname: String,
}

impl Env {
    /// Reads and validates the environment through `var` (a lookup such as
    /// `std::env::var`), so it is testable without touching the process env.
    ///
    /// # Errors
    /// [`CniError::InvalidEnv`] (code 4) for a missing or malformed variable.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, CniError> {
        let command = var("CNI_COMMAND").unwrap_or_default();
        let verb = Verb::parse(&command).ok_or_else(|| CniError::InvalidEnv {
            name: "CNI_COMMAND",
            reason: if command.is_empty() {
                "not set".into()
            } else {
                format!("unknown command {command:?}")
            },
        })?;
        let per_container = matches!(verb, Verb::Add | Verb::Del | Verb::Check);
        let mut env = Self {
            verb,
            container_id: String::new(),
            netns: None,
            ifname: String::new(),
        };
        if !per_container {
            return Ok(env);
        }
        env.container_id = required(&var, "CNI_CONTAINERID")?;
        validate_container_id(&env.container_id)?;
        env.ifname = required(&var, "CNI_IFNAME")?;
        validate_ifname(&env.ifname)?;
        env.netns = var("CNI_NETNS")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        if env.netns.is_none() && verb != Verb::Del {
            return Err(CniError::InvalidEnv {
                name: "CNI_NETNS",
                reason: "not set".into(),
            });
        }
        if let Some(ns) = &env.netns {
            let s = ns.to_string_lossy();
            if !ns.is_absolute()
                || s.chars()
                    .any(|c| !c.is_ascii_graphic() || matches!(c, '"' | '\'' | '#' | '\\'))
            {
                return Err(CniError::InvalidEnv {
                    name: "CNI_NETNS",
                    reason: format!("{s:?} is not an absolute path of printable ASCII"),
                });
            }
        }
        Ok(env)
    }
}

fn required(var: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<String, CniError> {
    var(name)
        .filter(|s| !s.is_empty())
        .ok_or(CniError::InvalidEnv {
            name,
            reason: "not set".into(),
        })
}

/// The spec: alphanumeric first, then alphanumerics, `_`, `.` or `-`.
fn validate_container_id(id: &str) -> Result<(), CniError> {
    let mut chars = id.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CniError::InvalidEnv {
            name: "CNI_CONTAINERID",
            reason: format!("{id:?} is not a valid container id"),
        })
    }
}

/// The spec: at most 15 characters, not `.`/`..`, no `/`, `:` or whitespace;
/// quotes, `#` and `\` are refused too (the name goes into `ip -batch` lines).
fn validate_ifname(name: &str) -> Result<(), CniError> {
    let ok = name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '/' | ':' | '"' | '\'' | '#' | '\\'));
    if ok {
        Ok(())
    } else {
        Err(CniError::InvalidEnv {
            name: "CNI_IFNAME",
            reason: format!("{name:?} is not a valid interface name"),
        })
    }
}

/// One entry of `cni.dev/valid-attachments` (GC).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct Attachment {
    /// The attachment's container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The attachment's interface name.
    pub ifname: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    name: String,
    #[serde(rename = "podCIDR")]
    pod_cidr: Option<String>,
    data_dir: Option<PathBuf>,
    mtu: Option<u32>,
    gateway: Option<String>,
    prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<Attachment>>,
}

/// The validated plugin configuration (one entry of a conflist's `plugins`,
/// with `cniVersion` and `name` copied in by the runtime).
#[derive(Debug, Clone)]
pub struct NetConf {
    /// `cniVersion`: one of [`SUPPORTED_VERSIONS`].
    pub cni_version: String,
    /// `name`: the network's name; also a directory name under `dataDir`.
    pub name: String,
    /// `podCIDR`: the node's pod range. Required.
    pub pod_cidr: Ipv4Net,
    /// `gateway`: the pod's next hop, put as a /32 on every host-side veth.
    /// Default: the first host address of `podCIDR`.
    pub gateway: Ipv4Addr,
    /// `dataDir`: where IPAM state and its lock live. Default [`DEFAULT_DATA_DIR`].
    pub data_dir: PathBuf,
    /// `mtu`: both veth ends. Default [`DEFAULT_MTU`].
    pub mtu: u32,
    /// `prevResult` (CHECK, DEL, chained ADD), undecoded.
    pub prev_result: Option<Value>,
    /// `cni.dev/valid-attachments` (GC).
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// Best-effort `cniVersion` of a stdin document, for error replies.
#[must_use]
pub fn sniff_version(stdin: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(stdin).ok()?;
    let version = v.get("cniVersion")?.as_str()?;
    SUPPORTED_VERSIONS
        .contains(&version)
        .then(|| version.to_owned())
}

/// Decodes stdin as JSON and checks its `cniVersion` (codes 6, 7, 1), then
/// returns the document.
///
/// # Errors
/// [`CniError::Decode`], [`CniError::InvalidConfig`] or
/// [`CniError::IncompatibleVersion`].
pub fn decode_versioned(stdin: &[u8]) -> Result<(String, Value), CniError> {
    let doc: Value = serde_json::from_slice(stdin).map_err(|source| CniError::Decode {
        what: "network configuration on stdin".into(),
        source,
    })?;
    let Some(obj) = doc.as_object() else {
        return Err(CniError::config(
            "network configuration is not a JSON object",
        ));
    };
    let version = match obj.get("cniVersion") {
        Some(Value::String(v)) => v.clone(),
        Some(_) => return Err(CniError::config("cniVersion is not a string")),
        None => return Err(CniError::config("cniVersion is missing")),
    };
    if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
        return Err(CniError::IncompatibleVersion {
            reason: format!(
                "config version {version:?} is not supported (supported: {})",
                SUPPORTED_VERSIONS.join(", ")
            ),
        });
    }
    Ok((version, doc))
}

/// Parses and validates a full network configuration.
///
/// # Errors
/// Codes 6 (not JSON), 1 (unsupported `cniVersion`) or 7 (anything else wrong).
pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
    let (cni_version, doc) = decode_versioned(stdin)?;
    let raw: RawConf = serde_json::from_value(doc).map_err(|e| CniError::config(format!("{e}")))?;
    validate_name(&raw.name)?;
    let pod_cidr = parse_pod_cidr(
        raw.pod_cidr
            .as_deref()
            .ok_or_else(|| CniError::config("podCIDR is required"))?,
    )?;
    let gateway = match raw.gateway.as_deref() {
        Some(g) => {
            let g: Ipv4Addr = g
                .parse()
                .map_err(|_| CniError::config(format!("gateway {g:?} is not an IPv4 address")))?;
            if g.is_unspecified() || g.is_broadcast() || g.is_multicast() || g.is_loopback() {
                return Err(CniError::config(format!(
                    "gateway {g} is not a unicast address"
                )));
            }
            if pod_cidr.contains(&g) && (g == pod_cidr.network() || g == pod_cidr.broadcast()) {
                return Err(CniError::config(format!(
                    "gateway {g} is the network or broadcast address of {pod_cidr}"
                )));
            }
            g
        }
        // A /30 or larger always has a first host address.
        None => cidr::nth(pod_cidr, 1).unwrap_or(pod_cidr.network()),
    };
    let mtu = raw.mtu.unwrap_or(DEFAULT_MTU);
    if !(68..=65_535).contains(&mtu) {
        return Err(CniError::config(format!("mtu {mtu} is outside 68..=65535")));
    }
    let data_dir = raw
        .data_dir
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    if !data_dir.is_absolute() {
        return Err(CniError::config(format!(
            "dataDir {} is not an absolute path",
            data_dir.display()
        )));
    }
    Ok(NetConf {
        cni_version,
        name: raw.name,
        pod_cidr,
        gateway,
        data_dir,
        mtu,
        prev_result: raw.prev_result,
        valid_attachments: raw.valid_attachments,
    })
}

/// Parses a `podCIDR` as the plugin accepts it: a network (host bits zero, so the config
/// names it exactly) of at most [`POD_CIDR_MAX_PREFIX`].
///
/// # Errors
/// [`CniError::InvalidConfig`] (code 7).
pub fn parse_pod_cidr(s: &str) -> Result<Ipv4Net, CniError> {
    cidr::parse_network(s)
        .and_then(|net| cidr::check_prefix(net, POD_CIDR_MAX_PREFIX))
        .map_err(|e| CniError::config(format!("podCIDR: {e}")))
}

/// One node's sluice network, rendered as the conflist the runtime reads ([`Network::conflist`])
/// and as the config the runtime hands the plugin from it ([`Network::plugin_config`]).
#[derive(Debug, Clone)]
pub struct Network {
    /// `name` of the list (default [`NETWORK_NAME`]).
    pub name: String,
    /// `cniVersion` of the list (default 1.0.0, what containerd 1.6 speaks).
    pub cni_version: String,
    /// The node's pod range.
    pub pod_cidr: Ipv4Net,
    /// The plugin's `dataDir`.
    pub data_dir: PathBuf,
    /// The plugin's `mtu`; `None` leaves the plugin's default.
    pub mtu: Option<u32>,
}

impl Network {
    /// The network for `pod_cidr` with its IPAM state under `data_dir`.
    #[must_use]
    pub fn new(pod_cidr: Ipv4Net, data_dir: &Path) -> Self {
        Self {
            name: NETWORK_NAME.to_owned(),
            cni_version: "1.0.0".to_owned(),
            pod_cidr,
            data_dir: data_dir.to_path_buf(),
            mtu: None,
        }
    }

    /// The sluice plugin's entry in the list.
    fn plugin(&self) -> Value {
        let mut plugin = json!({
            "type": "sluice-cni",
            "podCIDR": self.pod_cidr.to_string(),
            "dataDir": self.data_dir,
        });
        if let Some(mtu) = self.mtu {
            plugin["mtu"] = json!(mtu);
        }
        plugin
    }

    /// The conflist: the sluice plugin, then `loopback`.
    #[must_use]
    pub fn conflist(&self) -> Value {
        json!({
            "cniVersion": self.cni_version,
            "name": self.name,
            "plugins": [self.plugin(), {"type": "loopback"}],
        })
    }

    /// What a runtime (libcni) passes the sluice plugin from [`Network::conflist`]: the
    /// plugin's entry with the list's `cniVersion` and `name` copied in.
    #[must_use]
    pub fn plugin_config(&self) -> Value {
        let mut conf = self.plugin();
        conf["cniVersion"] = json!(self.cni_version);
        conf["name"] = json!(self.name);
        conf
    }
}

/// The spec: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`; it also names a directory.
fn validate_name(name: &str) -> Result<(), CniError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CniError::config(format!(
            "network name {name:?} is invalid"
        )))
    }
}

/// Whether `version` (one of [`SUPPORTED_VERSIONS`]) is at least `min`.
#[must_use]
pub fn version_at_least(version: &str, min: &str) -> bool {
    fn key(v: &str) -> (u32, u32, u32) {
        let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        (
            it.next().unwrap_or(0),
            it.next().unwrap_or(0),
            it.next().unwrap_or(0),
        )
    }
    key(version) >= key(min)
}

/// The directory holding one network's IPAM state.
#[must_use]
pub fn network_dir(conf: &NetConf) -> PathBuf {
    Path::new(&conf.data_dir).join(&conf.name)
}
