//! Cluster DNS, answered by the node agent (hickory-server).
//!
//! ```text
//! watch Services ────────┐  reflector stores   per-Service     watch::Sender<Records>   Handler (UDP+TCP on every
//! watch EndpointSlices ──┼─> (all namespaces) ─> recompile ───> (in memory, no rebuild) ─> listen address): answer()
//! watch Namespaces ──────┘                                                                 or forward upstream
//! ```
//!
//! [`follow`] keeps a [`Records`] in line with the API: every watch event
//! recompiles the one Service it concerns (a Service, or an `EndpointSlice`
//! labelled with its name) and swaps that Service's entry in place, so a
//! change is served as soon as the event is read; only a (re)list rebuilds
//! the whole zone. [`serve`] answers every query with the pure [`answer`]
//! when it is in the cluster zone (or a reverse name of a cluster address),
//! and forwards the rest to the upstream resolvers (the node's resolv.conf
//! nameservers, or the agent's `--dns-upstream`) over UDP, retrying over TCP
//! when the reply is truncated, passing the upstream's response code through.
//! A malformed query gets FORMERR when its header can be read (its id is
//! echoed; a query with no question or more than one is malformed too),
//! anything shorter than a header is dropped, an opcode other than QUERY gets
//! NOTIMP, and none of them stops the server.
//!
//! [`run`] is both, on the sockets of a [`Config`].

mod records;
mod server;
mod source;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

pub use records::{
    NamedPort, Records, Response, SCHEMA_VERSION, ServiceName, ServiceRecords,
    TOLERATE_UNREADY_ANNOTATION, answer,
};
pub use source::follow;

/// How long a TCP connection may sit idle between queries.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection.
const TCP_RESPONSE_BUFFER: usize = 32;

/// Errors from cluster DNS.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A listen address could not be bound.
    #[error("binding DNS {proto} on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// `UDP` or `TCP`.
        proto: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The cluster domain is no domain name.
    #[error("cluster domain {domain:?} is not a DNS name")]
    ClusterDomain {
        /// The configured domain.
        domain: String,
        /// The cause.
        #[source]
        source: hickory_server::proto::ProtoError,
    },
    /// Reading the resolver configuration failed.
    #[error("reading {path}")]
    ResolvConf {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The DNS server stopped.
    #[error("the DNS server stopped")]
    Serve {
        /// The cause.
        #[source]
        source: hickory_server::net::NetError,
    },
    /// An upstream resolver is neither `ip` nor `ip:port`.
    #[error("DNS upstream {value:?} is neither an IP address nor IP:port")]
    Upstream {
        /// The value given.
        value: String,
    },
    /// A watch stream ended (the client was shut down).
    #[error("the {kind} watch ended")]
    WatchEnded {
        /// `Service`, `EndpointSlice` or `Namespace`.
        kind: &'static str,
    },
}

/// Settings of [`run`].
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to serve, UDP and TCP on each.
    pub listen: Vec<SocketAddr>,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// Resolvers for names outside the cluster zone, tried in order (see
    /// [`parse_resolv_conf`]); none means such queries get SERVFAIL.
    pub upstream: Vec<SocketAddr>,
    /// TTL of every cluster record, and of negative answers (seconds).
    pub ttl: u32,
    /// How long to wait for one upstream before trying the next.
    pub upstream_timeout: Duration,
}

impl Config {
    /// Serves `listen`, forwarding to `upstream`: zone `cluster.local`, TTL 5 s,
    /// 2 s per upstream attempt.
    #[must_use]
    pub fn new(listen: Vec<SocketAddr>, upstream: Vec<SocketAddr>) -> Self {
        Self {
            listen,
            cluster_domain: "cluster.local".to_owned(),
            upstream,
            ttl: 5,
            upstream_timeout: Duration::from_secs(2),
        }
    }

    /// An empty [`Records`] for this zone and TTL.
    pub fn records(&self) -> Result<Records, DnsError> {
        Records::new(&self.cluster_domain, self.ttl).map_err(|source| DnsError::ClusterDomain {
            domain: self.cluster_domain.clone(),
            source,
        })
    }
}

/// The `nameserver` addresses of a resolv.conf (port 53), in order, without
/// duplicates; other lines and comments are ignored.
#[must_use]
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut servers = Vec::new();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = words.next() else { continue };
        // An IPv6 nameserver may carry a zone (`fe80::1%eth0`); drop it.
        let addr = addr.split('%').next().unwrap_or_default();
        let Ok(ip) = addr.parse::<IpAddr>() else {
            continue;
        };
        let server = SocketAddr::new(ip, 53);
        if !servers.contains(&server) {
            servers.push(server);
        }
    }
    servers
}

/// An upstream resolver given as `ip` (port 53) or `ip:port` (`[v6]:port`), as the agent's
/// `--dns-upstream` takes it.
///
/// # Errors
/// [`DnsError::Upstream`] when `value` is neither.
pub fn parse_upstream(value: &str) -> Result<SocketAddr, DnsError> {
    let value = value.trim();
    value
        .parse::<SocketAddr>()
        .ok()
        .or_else(|| {
            value
                .parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .ok_or_else(|| DnsError::Upstream {
            value: value.to_owned(),
        })
}

/// [`parse_resolv_conf`] of the file at `path` (the node's `/etc/resolv.conf`).
pub fn read_resolv_conf(path: &Path) -> Result<Vec<SocketAddr>, DnsError> {
    let text = std::fs::read_to_string(path).map_err(|source| DnsError::ResolvConf {
        path: path.display().to_string(),
        source,
    })?;
    Ok(parse_resolv_conf(&text))
}

/// Sockets bound for [`serve`]: a UDP socket and a TCP listener on each
/// address (a port of 0 picks one free port for both).
#[derive(Debug)]
pub struct Bound {
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    addrs: Vec<SocketAddr>,
}

impl Bound {
    /// The addresses served, with the ports actually bound.
    #[must_use]
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}

/// Binds UDP and TCP on every address of `listen`.
pub async fn bind(listen: &[SocketAddr]) -> Result<Bound, DnsError> {
    let mut bound = Bound {
        udp: Vec::new(),
        tcp: Vec::new(),
        addrs: Vec::new(),
    };
    for addr in listen {
        let (udp, tcp, local) = bind_one(*addr).await?;
        bound.udp.push(udp);
        bound.tcp.push(tcp);
        bound.addrs.push(local);
    }
    Ok(bound)
}

/// One UDP socket and one TCP listener on the same address and port.
async fn bind_one(addr: SocketAddr) -> Result<(UdpSocket, TcpListener, SocketAddr), DnsError> {
    let bind_err = |proto, source| DnsError::Bind {
        addr,
        proto,
        source,
    };
    let mut attempts = 0;
    loop {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|e| bind_err("UDP", e))?;
        let local = udp.local_addr().map_err(|e| bind_err("UDP", e))?;
        match TcpListener::bind(local).await {
            Ok(tcp) => return Ok((udp, tcp, local)),
            // The port UDP picked is taken for TCP: pick another.
            Err(e) if addr.port() == 0 && attempts < 16 => {
                tracing::debug!(%local, error = %e, "TCP port taken; rebinding");
                attempts += 1;
            }
            Err(e) => return Err(bind_err("TCP", e)),
        }
    }
}

/// Serves DNS on `bound` from `records` until the server fails, forwarding
/// other names to `config.upstream`.
pub async fn serve(
    bound: Bound,
    records: watch::Receiver<Records>,
    config: &Config,
) -> Result<(), DnsError> {
    let handler = server::Handler::new(records, config.upstream.clone(), config.upstream_timeout);
    let mut server = Server::new(handler);
    for socket in bound.udp {
        server.register_socket(socket);
    }
    for listener in bound.tcp {
        server.register_listener(listener, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
    }
    tracing::info!(listen = ?bound.addrs, upstream = ?config.upstream, zone = %config.cluster_domain, "serving cluster DNS");
    server
        .block_until_done()
        .await
        .map_err(|source| DnsError::Serve { source })
}

/// Serves cluster DNS on `config.listen` with records from the API, until the
/// server fails or a watch ends.
pub async fn run(client: kube::Client, config: Config) -> Result<(), DnsError> {
    let (tx, rx) = watch::channel(config.records()?);
    let bound = bind(&config.listen).await?;
    tokio::select! {
        result = follow(client, tx) => result,
        result = serve(bound, rx, &config) => result,
    }
}
