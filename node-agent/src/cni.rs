//! sluice's CNI plugin (`sluice-cni`): a routed veth per pod, no bridge.
//!
//! Implements CNI spec 1.0.0 (ADD, DEL, CHECK, VERSION; containerd 1.6 calls
//! ADD and DEL) and the 1.1.0 verbs GC and STATUS. Configs with `cniVersion`
//! 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0 are accepted; results are written in
//! the config's version.
//!
//! # Config (one entry of a conflist's `plugins`)
//! ```json
//! {"cniVersion":"1.0.0","name":"sluice","plugins":[
//!   {"type":"sluice-cni","podCIDR":"10.244.0.0/24","dataDir":"/var/lib/sluice/cni","mtu":1500},
//!   {"type":"loopback"}]}
//! ```
//! | field | required | default | meaning |
//! |---|---|---|---|
//! | `podCIDR` | yes | | the node's IPv4 pod range (`Node.spec.podCIDR`), /30 or larger, host bits zero |
//! | `gateway` | no | first host address of `podCIDR` | the pods' next hop; put as a /32 on every host-side veth |
//! | `dataDir` | no | `/var/lib/sluice/cni` | IPAM state: `<dataDir>/<name>/allocations.json` + `lock` |
//! | `mtu` | no | 1500 | MTU of both veth ends (68..=65535) |
//!
//! `name` must match `^[a-zA-Z0-9][a-zA-Z0-9_.-]*$` (it names a directory).
//! `type` is not checked, so the binary may be installed under another name.
//! `runtimeConfig` and `args` are ignored; so is `CNI_ARGS` (containerd sends
//! `IgnoreUnknown=1;K8S_POD_*=...`) and `CNI_PATH` (nothing is delegated).
//!
//! # Addressing and routing (Cilium/Calico-style, like the reference `ptp`)
//! With `podCIDR` 10.244.0.0/24 and the default gateway 10.244.0.1:
//! - IPAM gives each (`CNI_CONTAINERID`, `CNI_IFNAME`) one /32 from the CIDR,
//!   skipping the network, broadcast and gateway addresses.
//! - A veth pair: the container end is `CNI_IFNAME` (created straight into
//!   `CNI_NETNS`); the host end is `lxc` + 11 hex digits of an FNV-1a hash of
//!   container id and ifname (14 characters), so DEL finds it without state.
//! - Pod side: `10.244.0.5/32 dev eth0`, `10.244.0.1 dev eth0 scope link`,
//!   `default via 10.244.0.1 dev eth0`.
//! - Host side: link up, `10.244.0.1/32` on the host veth (the same /32 on
//!   every host veth; Linux allows that), `10.244.0.5 dev lxc… scope link`.
//!   The pod ARPs for 10.244.0.1 and the host answers because that address is
//!   its own; host->pod traffic leaves with source 10.244.0.1. No bridge, no
//!   proxy ARP, so the host veth is a clean tc attach point.
//! - Sysctls are left alone. Host<->pod needs none. Pod<->pod and pod<->world
//!   need `net.ipv4.ip_forward=1` on the node (the node agent's job, like
//!   masquerading); strict `rp_filter` is fine (the reverse route is the veth).
//! - IPv4 only.
//!
//! # Failure semantics
//! ADD creates nothing before it has checked that the host veth does not
//! exist; on any later failure it deletes the veth it made and frees the
//! address it took (an address held by an earlier ADD of the same container
//! and ifname is kept). An existing `CNI_IFNAME` in the netns fails ADD with
//! code 100. DEL is idempotent and needs no netns: it deletes the host veth
//! (the kernel removes the peer and the routes) and frees the address.
//!
//! # Error codes
//! The spec's 1 (version), 2, 3 (netns missing), 4 (env), 5 (I/O), 6 (stdin
//! not JSON), 7 (config), 11, 50 (STATUS: not ready); plugin-specific 100
//! (already exists), 101 (pool exhausted), 102 (link/route operation failed),
//! 103 (CHECK mismatch). Errors go to stdout as `{"cniVersion","code","msg",
//! "details"}` with exit status 1.

mod config;
mod error;
mod ipam;
mod link;
mod result;

use std::{fs, net::Ipv4Addr, path::Path};

use serde_json::{Value, json};
use sluice_k8s_values::Ipv4Net;

pub use config::{
    Attachment, CONFLIST_FILE, DEFAULT_DATA_DIR, DEFAULT_MTU, Env, LATEST_VERSION, NETWORK_NAME,
    NetConf, Network, POD_CIDR_MAX_PREFIX, SUPPORTED_VERSIONS, Verb, parse_pod_cidr,
};
pub use error::CniError;
pub use ipam::{Locked, Owner, Pool};
pub use result::{CniResult, Interface, IpConfig, Route};

/// What the binary prints and how it exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The document for stdout (empty for DEL, CHECK, GC and STATUS success).
    pub stdout: String,
    /// 0 on success, 1 on error.
    pub exit_code: u8,
}

/// Runs one plugin invocation: `var` looks up `CNI_*` variables, `stdin` is
/// the network configuration. Never panics on bad input.
pub fn execute(var: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Reply {
    match dispatch(&var, stdin) {
        Ok(stdout) => Reply {
            stdout,
            exit_code: 0,
        },
        Err(err) => {
            let version = config::sniff_version(stdin).unwrap_or_else(|| "1.0.0".to_owned());
            Reply {
                stdout: result::error_json(&version, &err),
                exit_code: 1,
            }
        }
    }
}

fn dispatch(var: &impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Result<String, CniError> {
    let env = Env::from_lookup(var)?;
    match env.verb {
        Verb::Version => Ok(version_info()),
        Verb::Add => {
            let conf = config::parse(stdin)?;
            let res = add(&env, &conf)?;
            serde_json::to_string(&res).map_err(|source| CniError::Decode {
                what: "result (encoding)".into(),
                source,
            })
        }
        Verb::Del => {
            let conf = config::parse(stdin)?;
            del(&env, &conf).map(|()| String::new())
        }
        Verb::Check => {
            let conf = config::parse(stdin)?;
            require_version(&conf.cni_version, "0.4.0", "CHECK")?;
            check(&env, &conf).map(|()| String::new())
        }
        Verb::Gc => {
            let conf = config::parse(stdin)?;
            require_version(&conf.cni_version, "1.1.0", "GC")?;
            gc(&conf).map(|()| String::new())
        }
        Verb::Status => status(stdin).map(|()| String::new()),
    }
}

fn require_version(version: &str, min: &str, verb: &str) -> Result<(), CniError> {
    if config::version_at_least(version, min) {
        Ok(())
    } else {
        Err(CniError::IncompatibleVersion {
            reason: format!("config version {version} does not allow {verb} (needs {min})"),
        })
    }
}

/// The VERSION reply.
#[must_use]
pub fn version_info() -> String {
    json!({"cniVersion": LATEST_VERSION, "supportedVersions": SUPPORTED_VERSIONS}).to_string()
}

/// FNV-1a, 64 bit: stable across builds and platforms (unlike `DefaultHasher`).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separator, so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The host-side veth name of an attachment: `lxc` + 11 hex digits.
#[must_use]
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    let h = fnv1a(&[container_id.as_bytes(), ifname.as_bytes()]);
    format!("lxc{:011x}", h >> 20)
}

/// A fresh locally administered unicast MAC.
fn random_mac(container_id: &str, ifname: &str, side: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let h = fnv1a(&[
        container_id.as_bytes(),
        ifname.as_bytes(),
        side.as_bytes(),
        &std::process::id().to_le_bytes(),
        &nanos.to_le_bytes(),
    ]);
    let b = h.to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        (b[0] & 0xfc) | 0x02,
        b[1],
        b[2],
        b[3],
        b[4],
        b[5]
    )
}

fn pool(conf: &NetConf) -> Pool {
    Pool::new(config::network_dir(conf), conf.pod_cidr, conf.gateway)
}

fn netns_path(env: &Env) -> Result<&Path, CniError> {
    env.netns.as_deref().ok_or(CniError::InvalidEnv {
        name: "CNI_NETNS",
        reason: "not set".into(),
    })
}

fn add(env: &Env, conf: &NetConf) -> Result<CniResult, CniError> {
    let ns_path = netns_path(env)?;
    let ns = link::Netns::open(ns_path)?;
    let host = host_veth_name(&env.container_id, &env.ifname);
    if link::host_link_exists(&host) {
        return Err(CniError::AlreadyExists {
            what: format!(
                "host veth {host} for container {} ifname {}",
                env.container_id, env.ifname
            ),
        });
    }
    let pool = pool(conf);
    let (ip, fresh) = {
        let mut locked = pool.lock()?;
        let got = locked.allocate(&env.container_id, &env.ifname)?;
        locked.commit()?;
        got
    };
    match plumb(env, conf, &ns, ns_path, &host, ip) {
        Ok(res) => Ok(res),
        Err(err) => {
            // Roll back: the host veth (if we got that far) takes its peer
            // and routes with it; then the address, if this ADD took it.
            let _ = link::delete_host_link(&host);
            if fresh && let Ok(mut locked) = pool.lock() {
                locked.release(&env.container_id, &env.ifname);
                let _ = locked.commit();
            }
            Err(err)
        }
    }
}

fn plumb(
    env: &Env,
    conf: &NetConf,
    ns: &link::Netns,
    ns_path: &Path,
    host: &str,
    ip: Ipv4Addr,
) -> Result<CniResult, CniError> {
    let ifname = &env.ifname;
    let gw = conf.gateway;
    let mtu = conf.mtu;
    let host_mac = random_mac(&env.container_id, ifname, "host");
    let pod_mac = random_mac(&env.container_id, ifname, "pod");
    let host_cmds = [
        format!(
            "link add {host} address {host_mac} mtu {mtu} type veth peer name {ifname} address {pod_mac} mtu {mtu} netns {}",
            ns_path.display()
        ),
        format!("addr add {gw}/32 dev {host}"),
        format!("link set dev {host} up"),
        format!("route add {ip}/32 dev {host} scope link"),
    ];
    if let Err(err) = link::batch(None, &host_cmds) {
        if link::netns_link_exists(ns, ifname).unwrap_or(false) && !link::host_link_exists(host) {
            return Err(CniError::AlreadyExists {
                what: format!("interface {ifname} in {}", ns_path.display()),
            });
        }
        return Err(err);
    }
    let pod_cmds = [
        format!("link set dev {ifname} up"),
        format!("addr add {ip}/32 dev {ifname}"),
        format!("route add {gw}/32 dev {ifname} scope link"),
        format!("route add default via {gw} dev {ifname}"),
    ];
    link::batch(Some(ns), &pod_cmds)?;
    Ok(CniResult {
        cni_version: String::new(),
        interfaces: vec![
            Interface {
                name: host.to_owned(),
                mac: Some(host_mac),
                sandbox: None,
            },
            Interface {
                name: ifname.clone(),
                mac: Some(pod_mac),
                sandbox: Some(ns_path.display().to_string()),
            },
        ],
        ips: vec![IpConfig {
            version: None,
            address: format!("{ip}/32"),
            gateway: Some(gw.to_string()),
            interface: Some(1),
        }],
        routes: vec![Route {
            dst: "0.0.0.0/0".into(),
            gw: Some(gw.to_string()),
        }],
        dns: json!({}),
    }
    .for_version(&conf.cni_version))
}

fn del(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let host = host_veth_name(&env.container_id, &env.ifname);
    link::delete_host_link(&host)?;
    let pool = pool(conf);
    let mut locked = pool.lock()?;
    locked.release(&env.container_id, &env.ifname);
    locked.commit()
}

fn check(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let fail = |reason: String| CniError::CheckFailed { reason };
    let prev = conf
        .prev_result
        .clone()
        .ok_or_else(|| CniError::config("CHECK needs prevResult"))?;
    let prev: CniResult = serde_json::from_value(prev).map_err(|source| CniError::Decode {
        what: "prevResult".into(),
        source,
    })?;
    let (idx, iface) = prev
        .interfaces
        .iter()
        .enumerate()
        .find(|(_, i)| i.name == env.ifname && i.sandbox.is_some())
        .ok_or_else(|| {
            fail(format!(
                "prevResult has no sandbox interface {}",
                env.ifname
            ))
        })?;
    let ips: Vec<&IpConfig> = prev
        .ips
        .iter()
        .filter(|i| i.interface == Some(idx))
        .collect();
    let [ipc] = ips.as_slice() else {
        return Err(fail(format!(
            "prevResult has {} addresses on {}, expected 1",
            ips.len(),
            env.ifname
        )));
    };
    // An interface address: host bits are the point, so no truncation.
    let ip = ipc
        .address
        .parse::<Ipv4Net>()
        .map(|a| a.addr())
        .map_err(|_| {
            fail(format!(
                "prevResult address {:?} is not IPv4 CIDR",
                ipc.address
            ))
        })?;

    let ns = link::Netns::open(netns_path(env)?)?;
    // Container side: link, MAC, address, routes.
    let links = match link::json(Some(&ns), &["addr", "show", "dev", &env.ifname]) {
        Ok(v) => v,
        Err(CniError::Netlink { message, .. }) if message.contains("does not exist") => {
            return Err(fail(format!("interface {} is missing", env.ifname)));
        }
        Err(e) => return Err(e),
    };
    let l = links
        .get(0)
        .ok_or_else(|| fail(format!("interface {} is missing", env.ifname)))?;
    if let Some(mac) = &iface.mac {
        let have = l.get("address").and_then(Value::as_str).unwrap_or("");
        if !have.eq_ignore_ascii_case(mac) {
            return Err(fail(format!(
                "{} has MAC {have}, expected {mac}",
                env.ifname
            )));
        }
    }
    if !has_flag(l, "UP") {
        return Err(fail(format!("{} is down", env.ifname)));
    }
    let addr_ok = l
        .get("addr_info")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter().any(|ai| {
                ai.get("local").and_then(Value::as_str) == Some(&ip.to_string())
                    && ai.get("prefixlen").and_then(Value::as_u64) == Some(32)
            })
        });
    if !addr_ok {
        return Err(fail(format!(
            "{} lacks address {}",
            env.ifname, ipc.address
        )));
    }
    let routes = link::json(Some(&ns), &["route", "show"])?;
    let mut wanted: Vec<(String, Option<String>)> = prev
        .routes
        .iter()
        .map(|r| (normalise_dst(&r.dst), r.gw.clone()))
        .collect();
    wanted.push((format!("{}/32", conf.gateway), None));
    for (dst, gw) in &wanted {
        let found = routes.as_array().is_some_and(|rs| {
            rs.iter().any(|r| {
                r.get("dst")
                    .and_then(Value::as_str)
                    .map(normalise_dst)
                    .as_ref()
                    == Some(dst)
                    && gw
                        .as_deref()
                        .is_none_or(|g| r.get("gateway").and_then(Value::as_str) == Some(g))
            })
        });
        if !found {
            let via = gw
                .as_deref()
                .map(|g| format!(" via {g}"))
                .unwrap_or_default();
            return Err(fail(format!(
                "route {dst}{via} is missing in the container"
            )));
        }
    }
    // Host side: veth up, /32 route to the pod through it.
    let host = host_veth_name(&env.container_id, &env.ifname);
    if !link::host_link_exists(&host) {
        return Err(fail(format!("host veth {host} is missing")));
    }
    let hl = link::json(None, &["link", "show", "dev", &host])?;
    if !hl.get(0).is_some_and(|l| has_flag(l, "UP")) {
        return Err(fail(format!("host veth {host} is down")));
    }
    let hr = link::json(None, &["route", "show", "exact", &format!("{ip}/32")])?;
    let host_routed = hr.as_array().is_some_and(|rs| {
        rs.iter()
            .any(|r| r.get("dev").and_then(Value::as_str) == Some(host.as_str()))
    });
    if !host_routed {
        return Err(fail(format!("host route {ip}/32 dev {host} is missing")));
    }
    // IPAM agrees.
    let held = pool(conf).lock()?.find(&env.container_id, &env.ifname);
    if held != Some(ip) {
        return Err(fail(format!(
            "IPAM holds {held:?} for this attachment, prevResult says {ip}"
        )));
    }
    Ok(())
}

fn has_flag(link: &Value, flag: &str) -> bool {
    link.get("flags")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x.as_str() == Some(flag)))
}

/// `ip -j` prints `default` and bare addresses for /32; results use CIDR.
fn normalise_dst(dst: &str) -> String {
    if dst == "default" {
        "0.0.0.0/0".to_owned()
    } else if dst.contains('/') {
        dst.to_owned()
    } else {
        format!("{dst}/32")
    }
}

fn gc(conf: &NetConf) -> Result<(), CniError> {
    let valid = conf
        .valid_attachments
        .as_deref()
        .ok_or_else(|| CniError::config("GC needs cni.dev/valid-attachments"))?;
    let pool = pool(conf);
    let freed = {
        let mut locked = pool.lock()?;
        let freed = locked.retain_attachments(valid);
        locked.commit()?;
        freed
    };
    let mut first_err = None;
    for (_, owner) in freed {
        if let Err(e) = link::delete_host_link(&host_veth_name(&owner.container_id, &owner.ifname))
        {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn status(stdin: &[u8]) -> Result<(), CniError> {
    let (version, _) = config::decode_versioned(stdin)?;
    require_version(&version, "1.1.0", "STATUS")?;
    let conf = config::parse(stdin).map_err(|e| match e {
        CniError::InvalidConfig { reason } => CniError::NotAvailable { reason },
        other => other,
    })?;
    let dir = config::network_dir(&conf);
    let probe = dir.join(".status-probe");
    fs::create_dir_all(&dir)
        .and_then(|()| fs::write(&probe, b"ok"))
        .and_then(|()| fs::remove_file(&probe))
        .map_err(|e| CniError::NotAvailable {
            reason: format!("dataDir {} is not writable: {e}", dir.display()),
        })?;
    let full = pool(&conf)
        .lock()
        .map_err(|e| CniError::NotAvailable {
            reason: format!("IPAM state unusable: {e}"),
        })?
        .is_full();
    if full {
        return Err(CniError::NotAvailable {
            reason: format!("no free address left in {}", conf.pod_cidr),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
