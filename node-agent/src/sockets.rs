//! Destroying pods' sockets that are connected to a backend which went away,
//! through the kernel's socket diagnostics (`NETLINK_SOCK_DIAG`, `SOCK_DESTROY`;
//! this kernel has `CONFIG_INET_DIAG_DESTROY`).
//!
//! The socket load balancer translates a connected socket once, at
//! `connect()`: a UDP client that connected to a `ClusterIP` keeps sending to
//! the backend it got, also after that backend is gone. Destroying the
//! socket makes its next call fail (`ECONNABORTED`), so the client reconnects
//! and the hook picks a live backend, as Cilium does. A destroyed TCP socket
//! gets a reset rather than hanging.
//!
//! Socket diagnostics only see the sockets of the caller's network
//! namespace, and every pod has its own: [`pod_namespaces`] finds them from
//! the processes in this node's pod cgroup, and [`destroy`] enters each one
//! on a thread of its own (`setns` changes only the calling thread).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Errors of socket destruction.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Entering a pod's network namespace failed.
    #[error("entering the network namespace {path}")]
    Namespace {
        /// `/proc/<pid>/ns/net`.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A netlink socket call failed.
    #[error("socket diagnostics: {what}")]
    Netlink {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The transport protocols whose sockets can be destroyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Transport {
    fn number(self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
        }
    }
}

/// One IPv4 socket as socket diagnostics report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketId {
    /// Local address.
    pub local: SocketAddrV4,
    /// Peer address (`0.0.0.0:0` when unconnected).
    pub peer: SocketAddrV4,
    /// Bound interface (0: none).
    pub interface: u32,
    /// The kernel's socket cookie (what the socket LB's hooks record).
    pub cookie: u64,
    /// The `TCP_*` state number (UDP: 1, "established", once connected).
    pub state: u8,
}

/// `SOCK_DIAG_BY_FAMILY`.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `SOCK_DESTROY`.
const SOCK_DESTROY: u16 = 21;
/// Size of `struct nlmsghdr`.
const NLMSG_HDR: usize = 16;
/// Size of `struct inet_diag_req_v2`.
const REQ_LEN: usize = 56;
/// Size of `struct inet_diag_msg`.
const MSG_LEN: usize = 72;
/// `NLMSG_ERROR`, `NLMSG_DONE`.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// Encodes a `SOCK_DIAG_BY_FAMILY` dump or `SOCK_DESTROY` request.
fn request(
    kind: u16,
    flags: u16,
    seq: u32,
    transport: Transport,
    id: Option<&SocketId>,
) -> Vec<u8> {
    let total = NLMSG_HDR + REQ_LEN;
    let mut buf = Vec::with_capacity(total);
    buf.extend_from_slice(&u32::try_from(total).unwrap_or(u32::MAX).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    // inet_diag_req_v2: family, protocol, ext, pad, states (all).
    buf.extend_from_slice(&[
        u8::try_from(libc::AF_INET).unwrap_or(2),
        transport.number(),
        0,
        0,
    ]);
    buf.extend_from_slice(&u32::MAX.to_ne_bytes());
    encode_id(&mut buf, id);
    buf
}

/// `struct inet_diag_sockid`: ports and addresses in network order, the
/// interface and the cookie (two native `u32`s, low half first) in host order.
fn encode_id(buf: &mut Vec<u8>, id: Option<&SocketId>) {
    let zero = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
    let (local, peer, interface, cookie) = id.map_or((zero, zero, 0, 0), |id| {
        (id.local, id.peer, id.interface, id.cookie)
    });
    buf.extend_from_slice(&local.port().to_be_bytes());
    buf.extend_from_slice(&peer.port().to_be_bytes());
    buf.extend_from_slice(&local.ip().octets());
    buf.extend_from_slice(&[0; 12]);
    buf.extend_from_slice(&peer.ip().octets());
    buf.extend_from_slice(&[0; 12]);
    buf.extend_from_slice(&interface.to_ne_bytes());
    // The kernel reads the cookie as two u32s: [0] low, [1] high.
    let low = u32::try_from(cookie & 0xffff_ffff).unwrap_or(0);
    let high = u32::try_from(cookie >> 32).unwrap_or(0);
    buf.extend_from_slice(&low.to_ne_bytes());
    buf.extend_from_slice(&high.to_ne_bytes());
}

fn u16_ne(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_ne(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn port_be(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn ipv4(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let o: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}

/// Decodes the `inet_diag_msg` body of one response message.
fn decode_msg(body: &[u8]) -> Option<SocketId> {
    if body.len() < MSG_LEN {
        return None;
    }
    let state = body[1];
    // id starts at 4: sport, dport, src[16], dst[16], if, cookie[2].
    let local = SocketAddrV4::new(ipv4(body, 8)?, port_be(body, 4)?);
    let peer = SocketAddrV4::new(ipv4(body, 24)?, port_be(body, 6)?);
    let interface = u32_ne(body, 40)?;
    let cookie = u64::from(u32_ne(body, 44)?) | (u64::from(u32_ne(body, 48)?) << 32);
    Some(SocketId {
        local,
        peer,
        interface,
        cookie,
        state,
    })
}

/// What one read of netlink messages said.
#[derive(Debug, Default, PartialEq, Eq)]
struct Batch {
    sockets: Vec<SocketId>,
    /// `NLMSG_ERROR`'s code (0 is an ack), if one came.
    error: Option<i32>,
    done: bool,
}

/// Splits a buffer of netlink messages.
fn decode_batch(buf: &[u8]) -> Batch {
    let mut batch = Batch::default();
    let mut at = 0;
    while let (Some(len), Some(kind)) = (u32_ne(buf, at), u16_ne(buf, at + 4)) {
        let len = usize::try_from(len).unwrap_or(0);
        if len < NLMSG_HDR || at + len > buf.len() {
            break;
        }
        let body = &buf[at + NLMSG_HDR..at + len];
        match kind {
            NLMSG_DONE => batch.done = true,
            NLMSG_ERROR => {
                batch.error = u32_ne(body, 0).map(|e| i32::from_ne_bytes(e.to_ne_bytes()));
            }
            SOCK_DIAG_BY_FAMILY => batch.sockets.extend(decode_msg(body)),
            _ => {}
        }
        // Messages are 4-byte aligned.
        at += (len + 3) & !3;
    }
    batch
}

/// A `NETLINK_SOCK_DIAG` socket of the calling thread's network namespace.
struct Diag {
    fd: OwnedFd,
    seq: u32,
}

impl Diag {
    fn open() -> Result<Self, SocketError> {
        // SAFETY: socket(2) with constant arguments; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(SocketError::Netlink {
                what: "opening the socket",
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd, seq: 0 })
    }

    fn send(&mut self, what: &'static str, message: &[u8]) -> Result<(), SocketError> {
        // SAFETY: `message` is valid for its length; a zeroed sockaddr_nl addresses the kernel.
        let sent = unsafe {
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = u16::try_from(libc::AF_NETLINK).unwrap_or(16);
            libc::sendto(
                self.fd.as_raw_fd(),
                message.as_ptr().cast(),
                message.len(),
                0,
                std::ptr::from_ref(&addr).cast(),
                u32::try_from(std::mem::size_of::<libc::sockaddr_nl>()).unwrap_or(12),
            )
        };
        if sent < 0 {
            return Err(SocketError::Netlink {
                what,
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    fn receive(&mut self, what: &'static str, buf: &mut [u8]) -> Result<Batch, SocketError> {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let n = usize::try_from(n).map_err(|_| SocketError::Netlink {
            what,
            source: io::Error::last_os_error(),
        })?;
        Ok(decode_batch(&buf[..n]))
    }

    /// Every socket of `transport` in this namespace.
    fn dump(&mut self, transport: Transport) -> Result<Vec<SocketId>, SocketError> {
        self.seq += 1;
        let flags = u16::try_from(libc::NLM_F_REQUEST | libc::NLM_F_DUMP).unwrap_or(0x301);
        self.send(
            "dump",
            &request(SOCK_DIAG_BY_FAMILY, flags, self.seq, transport, None),
        )?;
        let mut buf = vec![0u8; 32 * 1024];
        let mut sockets = Vec::new();
        loop {
            let batch = self.receive("dump", &mut buf)?;
            sockets.extend(batch.sockets);
            if let Some(code) = batch.error.filter(|c| *c != 0) {
                return Err(SocketError::Netlink {
                    what: "dump",
                    source: io::Error::from_raw_os_error(-code),
                });
            }
            if batch.done {
                return Ok(sockets);
            }
        }
    }

    /// Destroys one socket; `false` when it was already gone.
    fn destroy(&mut self, transport: Transport, id: &SocketId) -> Result<bool, SocketError> {
        self.seq += 1;
        let flags = u16::try_from(libc::NLM_F_REQUEST | libc::NLM_F_ACK).unwrap_or(5);
        self.send(
            "destroy",
            &request(SOCK_DESTROY, flags, self.seq, transport, Some(id)),
        )?;
        let mut buf = vec![0u8; 4096];
        loop {
            let batch = self.receive("destroy", &mut buf)?;
            match batch.error {
                Some(0) => return Ok(true),
                Some(code) if -code == libc::ENOENT => return Ok(false),
                Some(code) => {
                    return Err(SocketError::Netlink {
                        what: "destroy",
                        source: io::Error::from_raw_os_error(-code),
                    });
                }
                None => {}
            }
        }
    }
}

/// The network namespaces of the processes under the cgroup2 path `cgroup`
/// (as `/proc/<pid>/cgroup` names it: `/sluice/node-1` or `/kubepods`), one
/// `/proc/<pid>/ns/net` per namespace.
#[must_use]
pub fn pod_namespaces(cgroup: &str) -> Vec<PathBuf> {
    let prefix = cgroup.trim_end_matches('/');
    let mut by_inode = BTreeMap::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in procs.filter_map(Result::ok) {
        let name = entry.file_name();
        if !name
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let Ok(groups) = fs::read_to_string(entry.path().join("cgroup")) else {
            continue;
        };
        let inside = groups.lines().any(|line| {
            line.strip_prefix("0::")
                .is_some_and(|path| path == prefix || path.starts_with(&format!("{prefix}/")))
        });
        if !inside {
            continue;
        }
        let ns = entry.path().join("ns/net");
        if let Ok(meta) = fs::metadata(&ns) {
            by_inode.entry(meta.ino()).or_insert(ns);
        }
    }
    by_inode.into_values().collect()
}

/// Destroys, in each of `namespaces`, the `transport` sockets for which
/// `matches` holds; returns how many it destroyed. A namespace that went
/// away meanwhile is skipped.
///
/// # Errors
/// The first failure to enter a namespace or to talk to the kernel.
pub fn destroy(
    namespaces: &[PathBuf],
    transport: Transport,
    matches: &(dyn Fn(&SocketId) -> bool + Sync),
) -> Result<usize, SocketError> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = namespaces
            .iter()
            .map(|ns| scope.spawn(move || destroy_in(ns, transport, matches)))
            .collect();
        let mut total = 0;
        for worker in workers {
            total += worker.join().unwrap_or(Ok(0))?;
        }
        Ok(total)
    })
}

/// Every `transport` socket in each of `namespaces`.
///
/// # Errors
/// The first failure to enter a namespace or to talk to the kernel.
pub fn list(namespaces: &[PathBuf], transport: Transport) -> Result<Vec<SocketId>, SocketError> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = namespaces
            .iter()
            .map(|ns| {
                scope.spawn(move || {
                    enter(ns)?;
                    Diag::open()?.dump(transport)
                })
            })
            .collect();
        let mut all = Vec::new();
        for worker in workers {
            all.extend(worker.join().unwrap_or(Ok(Vec::new()))?);
        }
        Ok(all)
    })
}

/// Moves the calling thread into the network namespace at `ns`; `false` when
/// it no longer exists.
fn enter(ns: &PathBuf) -> Result<bool, SocketError> {
    let file = match fs::File::open(ns) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(SocketError::Namespace {
                path: ns.clone(),
                source,
            });
        }
    };
    // SAFETY: setns(2) on a valid descriptor; it moves only the calling thread (a scoped,
    // short-lived one here) into the namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(SocketError::Namespace {
            path: ns.clone(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(true)
}

fn destroy_in(
    ns: &PathBuf,
    transport: Transport,
    matches: &(dyn Fn(&SocketId) -> bool + Sync),
) -> Result<usize, SocketError> {
    if !enter(ns)? {
        return Ok(0);
    }
    let mut diag = Diag::open()?;
    let mut destroyed = 0;
    for id in diag.dump(transport)?.iter().filter(|id| matches(id)) {
        if diag.destroy(transport, id)? {
            destroyed += 1;
        }
    }
    Ok(destroyed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> SocketId {
        SocketId {
            local: "10.244.0.5:40000".parse().unwrap(),
            peer: "10.244.1.7:53".parse().unwrap(),
            interface: 3,
            cookie: 0x0000_0001_0000_0002,
            state: 1,
        }
    }

    #[test]
    fn requests_have_the_kernel_layout() {
        let req = request(SOCK_DESTROY, 5, 9, Transport::Udp, Some(&id()));
        assert_eq!(req.len(), NLMSG_HDR + REQ_LEN);
        assert_eq!(u32_ne(&req, 0), Some(72));
        assert_eq!(u16_ne(&req, 4), Some(SOCK_DESTROY));
        assert_eq!(u16_ne(&req, 6), Some(5));
        assert_eq!(u32_ne(&req, 8), Some(9));
        let body = &req[NLMSG_HDR..];
        assert_eq!(&body[..4], &[2, 17, 0, 0]);
        assert_eq!(u32_ne(body, 4), Some(u32::MAX));
        // sport 40000, dport 53, big-endian.
        assert_eq!(&body[8..12], &[0x9c, 0x40, 0, 53]);
        assert_eq!(&body[12..16], &[10, 244, 0, 5]);
        assert_eq!(&body[28..32], &[10, 244, 1, 7]);
        assert_eq!(u32_ne(body, 44), Some(3));
        assert_eq!(u32_ne(body, 48), Some(2));
        assert_eq!(u32_ne(body, 52), Some(1));
    }

    #[test]
    fn decodes_what_it_encodes_and_stops_at_done() {
        // A response: header + inet_diag_msg (family, state, timer, retrans, id, 5 u32s).
        let mut msg = Vec::new();
        let mut body = vec![2u8, 1, 0, 0];
        let mut ids = Vec::new();
        encode_id(&mut ids, Some(&id()));
        body.extend_from_slice(&ids);
        body.extend_from_slice(&[0; 20]);
        let len = u32::try_from(NLMSG_HDR + body.len()).unwrap();
        msg.extend_from_slice(&len.to_ne_bytes());
        msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        msg.extend_from_slice(&[0; 10]);
        msg.extend_from_slice(&body);
        msg.extend_from_slice(&20u32.to_ne_bytes());
        msg.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        msg.extend_from_slice(&[0; 14]);
        let batch = decode_batch(&msg);
        assert_eq!(batch.sockets, vec![id()]);
        assert!(batch.done);
        assert_eq!(batch.error, None);
        // Truncated input decodes to nothing, without panicking.
        assert_eq!(decode_batch(&msg[..30]), Batch::default());
        assert_eq!(decode_msg(&body[..40]), None);
    }

    #[test]
    fn errors_carry_their_code() {
        let mut msg = Vec::new();
        msg.extend_from_slice(&20u32.to_ne_bytes());
        msg.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        msg.extend_from_slice(&[0; 10]);
        msg.extend_from_slice(&(-libc::ENOENT).to_ne_bytes());
        assert_eq!(decode_batch(&msg).error, Some(-libc::ENOENT));
    }
}
