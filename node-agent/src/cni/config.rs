//! The plugin's inputs: the `CNI_*` environment and the network config on stdin.

use std::{
    fmt,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    str::FromStr,
};

use serde::Deserialize;
use serde_json::Value;

use super::CniError;

/// Spec versions this plugin accepts in `cniVersion` (and lists for VERSION).
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/// The newest spec version this plugin implements.
pub const LATEST_VERSION: &str = "1.1.0";
/// Default `dataDir`.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/sluice/cni";
/// Default `mtu`.
pub const DEFAULT_MTU: u32 = 1500;

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

/// An IPv4 prefix such as `10.244.0.0/24` (host bits must be zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    len: u8,
}

impl Ipv4Net {
    /// The network address.
    #[must_use]
    pub fn network(self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    #[must_use]
    pub fn prefix_len(self) -> u8 {
        self.len
    }

    fn mask(self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len))
        }
    }

    /// The broadcast (last) address.
    #[must_use]
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// Whether `ip` lies in this prefix.
    #[must_use]
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not an IPv4 CIDR (a.b.c.d/n)"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{s:?}: {addr:?} is not an IPv4 address"))?;
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| format!("{s:?}: prefix length must be 0..=32"))?;
        let net = Self { addr, len };
        if u32::from(addr) & !net.mask() != 0 {
            return Err(format!("{s:?} has host bits set"));
        }
        Ok(net)
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
    let pod_cidr: Ipv4Net = raw
        .pod_cidr
        .as_deref()
        .ok_or_else(|| CniError::config("podCIDR is required"))?
        .parse()
        .map_err(|e| CniError::config(format!("podCIDR: {e}")))?;
    if pod_cidr.prefix_len() > 30 {
        return Err(CniError::config(format!(
            "podCIDR {pod_cidr} is too small (the longest prefix is /30)"
        )));
    }
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
            if pod_cidr.contains(g) && (g == pod_cidr.network() || g == pod_cidr.broadcast()) {
                return Err(CniError::config(format!(
                    "gateway {g} is the network or broadcast address of {pod_cidr}"
                )));
            }
            g
        }
        None => Ipv4Addr::from(u32::from(pod_cidr.network()) + 1),
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
