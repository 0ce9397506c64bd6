//! kube-proxy-shaped iptables `nat` rules, the baseline of the benchmarks that compare
//! sluice's eBPF service proxy with kube-proxy's iptables mode (`bench service`,
//! `bench nodeport`).
//!
//! The layout follows what kube-proxy's iptables proxier writes for a `Cluster`-policy
//! Service (chain names aside: kube-proxy hashes the service name into them, these carry the
//! service's index):
//!
//! ```text
//! PREROUTING, OUTPUT -> SERVICES            (one rule per cluster IP and port)
//!   -d <clusterIP> --dport <port> -> SVC-<i>
//!   ... and last: -m addrtype --dst-type LOCAL -> NODEPORTS
//! NODEPORTS: --dport <nodePort> -> EXT-<i> -> MARK-MASQ, then SVC-<i>
//! SVC-<i>: -m statistic --probability 1/k -> SEP-<i><j>, ..., the last endpoint unconditionally
//! SEP-<i><j>: (hairpin: -s <endpoint> -> MARK-MASQ) DNAT --to-destination <endpoint>
//! POSTROUTING -> POSTROUTING-chain: marked packets are MASQUERADEd
//! ```
//!
//! [`Layout::script`] renders it as one `iptables-restore` input, so thousands of Services are
//! installed in one transaction; [`restore`] feeds it to `iptables-restore`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};

/// The mark kube-proxy sets on packets to masquerade (`--iptables-masquerade-bit` 14).
pub const MASQ_MARK: &str = "0x4000/0x4000";

/// A Service port's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The name iptables takes (`-p`, `-m`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// One Service port, as kube-proxy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// `namespace/name:port`, the rules' comment.
    pub name: String,
    /// The cluster IP.
    pub cluster_ip: Ipv4Addr,
    /// The service port.
    pub port: u16,
    /// The protocol.
    pub protocol: Protocol,
    /// The node port, for a `NodePort` Service.
    pub node_port: Option<u16>,
    /// The ready endpoints (empty: no rules past the services chain).
    pub endpoints: Vec<SocketAddrV4>,
}

/// How the chains are named and hooked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout<'a> {
    /// Prefix of every chain (`KUBE-` as kube-proxy, in a namespace of its own; a benchmark
    /// sharing the host's tables picks its own, so it can remove exactly what it made).
    pub prefix: &'a str,
    /// Also write kube-proxy's masquerading: the mark chain, the node-port `EXT-` chains that
    /// mark external traffic, the hairpin rule of every endpoint and the postrouting chain
    /// that masquerades marked packets.
    pub masquerade: bool,
    /// Also hook the chains into the built-in ones (`PREROUTING` and `OUTPUT` jump to the
    /// services chain, `POSTROUTING` to the postrouting chain). Without it the caller hooks
    /// the services chain where it wants.
    pub hook: bool,
}

impl Layout<'_> {
    /// The services chain (kube-proxy's `KUBE-SERVICES`).
    #[must_use]
    pub fn services_chain(&self) -> String {
        format!("{}SERVICES", self.prefix)
    }

    /// The per-service chain of the `i`-th service (kube-proxy's `KUBE-SVC-<hash>`).
    #[must_use]
    pub fn svc_chain(&self, i: usize) -> String {
        format!("{}SVC-{i:012}", self.prefix)
    }

    /// The node-ports chain (kube-proxy's `KUBE-NODEPORTS`).
    #[must_use]
    pub fn nodeports_chain(&self) -> String {
        format!("{}NODEPORTS", self.prefix)
    }

    /// The `iptables-restore` input for `services` (the `nat` table only; chains are
    /// declared, so existing ones of the same name are flushed, others kept with
    /// `--noflush`). Services are written in order.
    #[must_use]
    pub fn script(&self, services: &[Service]) -> String {
        let p = self.prefix;
        let top = self.services_chain();
        let nodeports = self.nodeports_chain();
        let mark_masq = format!("{p}MARK-MASQ");
        let postrouting = format!("{p}POSTROUTING");
        let any_node_port = services.iter().any(|s| s.node_port.is_some());

        let mut chains = format!("*nat\n:{top} - [0:0]\n");
        let mut rules = String::new();
        if any_node_port {
            let _ = writeln!(chains, ":{nodeports} - [0:0]");
        }
        if self.masquerade {
            let _ = writeln!(chains, ":{mark_masq} - [0:0]\n:{postrouting} - [0:0]");
            let _ = writeln!(rules, "-A {mark_masq} -j MARK --or-mark {}", 0x4000);
            let _ = writeln!(
                rules,
                "-A {postrouting} -m mark ! --mark {MASQ_MARK} -j RETURN\n\
                 -A {postrouting} -j MARK --xor-mark {}\n\
                 -A {postrouting} -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully",
                0x4000
            );
        }
        let mut nodeport_rules = String::new();
        for (i, svc) in services.iter().enumerate() {
            let name = &svc.name;
            let proto = svc.protocol.name();
            let chain = self.svc_chain(i);
            let _ = writeln!(chains, ":{chain} - [0:0]");
            let _ = writeln!(
                rules,
                "-A {top} -d {}/32 -p {proto} -m comment --comment \"{name} cluster IP\" -m {proto} --dport {} -j {chain}",
                svc.cluster_ip, svc.port
            );
            if let Some(node_port) = svc.node_port {
                let target = if self.masquerade {
                    let ext = format!("{p}EXT-{i:012}");
                    let _ = writeln!(chains, ":{ext} - [0:0]");
                    let _ = writeln!(
                        rules,
                        "-A {ext} -m comment --comment \"masquerade traffic for {name} external destinations\" -j {mark_masq}\n\
                         -A {ext} -j {chain}"
                    );
                    ext
                } else {
                    chain.clone()
                };
                let _ = writeln!(
                    nodeport_rules,
                    "-A {nodeports} -p {proto} -m comment --comment \"{name}\" -m {proto} --dport {node_port} -j {target}"
                );
            }
            let k = svc.endpoints.len();
            for (j, ep) in svc.endpoints.iter().enumerate() {
                let sep = format!("{p}SEP-{i:010}{j:02}");
                let _ = writeln!(chains, ":{sep} - [0:0]");
                if j + 1 < k {
                    #[allow(
                        clippy::cast_precision_loss,
                        reason = "endpoint counts are tiny: exact in f64"
                    )]
                    let prob = 1.0 / (k - j) as f64;
                    let _ = writeln!(
                        rules,
                        "-A {chain} -m comment --comment \"{name} -> {ep}\" -m statistic --mode random --probability {prob:.11} -j {sep}"
                    );
                } else {
                    let _ = writeln!(
                        rules,
                        "-A {chain} -m comment --comment \"{name} -> {ep}\" -j {sep}"
                    );
                }
                if self.masquerade {
                    let _ = writeln!(
                        rules,
                        "-A {sep} -s {}/32 -m comment --comment \"{name}\" -j {mark_masq}",
                        ep.ip()
                    );
                }
                let _ = writeln!(
                    rules,
                    "-A {sep} -p {proto} -m comment --comment \"{name}\" -m {proto} -j DNAT --to-destination {ep}"
                );
            }
        }
        if any_node_port {
            let _ = writeln!(
                rules,
                "-A {top} -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j {nodeports}"
            );
            rules.push_str(&nodeport_rules);
        }
        if self.hook {
            let _ = writeln!(
                rules,
                "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j {top}\n\
                 -A OUTPUT -m comment --comment \"kubernetes service portals\" -j {top}"
            );
            if self.masquerade {
                let _ = writeln!(
                    rules,
                    "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j {postrouting}"
                );
            }
        }
        chains.push_str(&rules);
        chains.push_str("COMMIT\n");
        chains
    }
}

/// Runs `cmd` (an `iptables-restore`, maybe behind `ip netns exec`, with its flags) with
/// `script` on its stdin.
///
/// # Errors
/// When it cannot start or fails (its stderr in the error).
pub fn restore(cmd: &mut Command, script: &str) -> Result<()> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("start iptables-restore")?;
    child
        .stdin
        .take()
        .context("iptables-restore stdin")?
        .write_all(script.as_bytes())
        .context("write rules")?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "iptables-restore failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(i: u8, node_port: Option<u16>, endpoints: usize) -> Service {
        Service {
            name: format!("bench/svc-{i}:http"),
            cluster_ip: Ipv4Addr::new(10, 96, 0, i),
            port: 80,
            protocol: Protocol::Tcp,
            node_port,
            endpoints: (0..endpoints)
                .map(|j| {
                    SocketAddrV4::new(Ipv4Addr::new(10, 244, i, u8::try_from(j).unwrap()), 8080)
                })
                .collect(),
        }
    }

    #[test]
    fn cluster_ip_only_without_masquerade() {
        let layout = Layout {
            prefix: "SLB-",
            masquerade: false,
            hook: false,
        };
        let script = layout.script(&[svc(1, None, 2)]);
        assert_eq!(
            script,
            "*nat\n\
             :SLB-SERVICES - [0:0]\n\
             :SLB-SVC-000000000000 - [0:0]\n\
             :SLB-SEP-000000000000 - [0:0]\n\
             :SLB-SEP-000000000001 - [0:0]\n\
             -A SLB-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"bench/svc-1:http cluster IP\" -m tcp --dport 80 -j SLB-SVC-000000000000\n\
             -A SLB-SVC-000000000000 -m comment --comment \"bench/svc-1:http -> 10.244.1.0:8080\" -m statistic --mode random --probability 0.50000000000 -j SLB-SEP-000000000000\n\
             -A SLB-SEP-000000000000 -p tcp -m comment --comment \"bench/svc-1:http\" -m tcp -j DNAT --to-destination 10.244.1.0:8080\n\
             -A SLB-SVC-000000000000 -m comment --comment \"bench/svc-1:http -> 10.244.1.1:8080\" -j SLB-SEP-000000000001\n\
             -A SLB-SEP-000000000001 -p tcp -m comment --comment \"bench/svc-1:http\" -m tcp -j DNAT --to-destination 10.244.1.1:8080\n\
             COMMIT\n"
        );
    }

    #[test]
    fn node_ports_are_matched_last_and_masqueraded() {
        let layout = Layout {
            prefix: "KUBE-",
            masquerade: true,
            hook: true,
        };
        let script = layout.script(&[svc(1, Some(30_001), 1), svc(2, Some(30_002), 1)]);
        let rules: Vec<&str> = script.lines().filter(|l| l.starts_with("-A ")).collect();
        let nodeports_jump = rules
            .iter()
            .position(|r| r.contains("--dst-type LOCAL -j KUBE-NODEPORTS"))
            .unwrap();
        let last_services_rule = rules
            .iter()
            .rposition(|r| r.starts_with("-A KUBE-SERVICES "))
            .unwrap();
        assert_eq!(nodeports_jump, last_services_rule);
        assert!(rules.contains(
            &"-A KUBE-NODEPORTS -p tcp -m comment --comment \"bench/svc-2:http\" -m tcp --dport 30002 -j KUBE-EXT-000000000001"
        ));
        assert!(rules.contains(&"-A KUBE-EXT-000000000001 -j KUBE-SVC-000000000001"));
        assert!(rules.contains(
            &"-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
        ));
        assert!(rules.contains(&"-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING"));
        assert!(script.contains("-j MASQUERADE --random-fully"));
        assert!(script.ends_with("COMMIT\n"));
    }
}
