//! The live part's traffic: the backend servers (threads in the backend namespace) and the
//! load generators (threads in the client namespace).
//!
//! - TCP, a new connection per request: connect, write [`REQUEST`], read [`REPLY`]. The
//!   server accepts, reads the request, writes the reply and closes with a reset (see
//!   `abort_on_close` for why no side keeps a `TIME_WAIT`).
//! - UDP echo: each client socket keeps a window of datagrams in flight to one flow (its
//!   own source port), sending the next one as each echo arrives; a window with no echo for
//!   [`UDP_TIMEOUT`] counts as lost and is sent again. Each echo is two packets through the
//!   node (request and reply).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::topology::{BACKEND_NS, CLIENT_NS, enter};

pub const BACKEND_PORT: u16 = 8080;
pub const REQUEST: &[u8] = b"GET /npb\n";
pub const REPLY: &[u8] = b"200 npb-backend\n";
/// TCP accept threads of the backend.
const TCP_SERVERS: usize = 4;
/// UDP echo threads of the backend.
const UDP_SERVERS: usize = 2;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const IO_TIMEOUT: Duration = Duration::from_secs(1);
const UDP_TIMEOUT: Duration = Duration::from_millis(200);
const UDP_PAYLOAD: [u8; 64] = [0x5a; 64];

/// The backend's TCP and UDP servers on `0.0.0.0:BACKEND_PORT` in the backend namespace
/// (threads); stopped and joined when dropped.
pub struct Backend {
    stop: Arc<AtomicBool>,
    listener: TcpListener,
    threads: Vec<JoinHandle<()>>,
}

impl Backend {
    pub fn start() -> Result<Self> {
        let (tcp, udp) = std::thread::scope(|scope| {
            scope
                .spawn(|| -> Result<(TcpListener, UdpSocket)> {
                    enter(BACKEND_NS)?;
                    let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, BACKEND_PORT);
                    let tcp = TcpListener::bind(any).context("bind the TCP backend")?;
                    let udp = UdpSocket::bind(any).context("bind the UDP backend")?;
                    Ok((tcp, udp))
                })
                .join()
                .map_err(|_| anyhow::anyhow!("the backend thread panicked"))?
        })?;
        // The sockets belong to the backend namespace whichever thread serves them.
        udp.set_read_timeout(Some(UDP_TIMEOUT))?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for _ in 0..TCP_SERVERS {
            let listener = tcp.try_clone()?;
            let stop = Arc::clone(&stop);
            threads.push(std::thread::spawn(move || serve_tcp(&listener, &stop)));
        }
        for _ in 0..UDP_SERVERS {
            let socket = udp.try_clone()?;
            let stop = Arc::clone(&stop);
            threads.push(std::thread::spawn(move || serve_udp(&socket, &stop)));
        }
        Ok(Self {
            stop,
            listener: tcp,
            threads,
        })
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // SAFETY: shutdown(2) on the listener's own fd, open for the call; on a listening
        // socket it only makes blocked and later accept() calls fail (no memory involved).
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn serve_tcp(listener: &TcpListener, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        if let Ok((mut stream, _)) = listener.accept() {
            let _ = answer(&mut stream);
        }
    }
}

fn answer(stream: &mut TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < REQUEST.len() {
        let n = stream.read(&mut buf[got..])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
    }
    stream.write_all(REPLY)?;
    abort_on_close(stream)
}

/// `SO_LINGER` 0: the close that follows sends a reset, and the server keeps no
/// `TIME_WAIT`. With the natural close the backend's `TIME_WAIT` sockets meet new SYNs on
/// the same (source-NATed) tuples as the client cycles through its ports: `MASQUERADE
/// --random-fully` maps a new flow onto a port an older flow left in `TIME_WAIT`, the
/// backend drops the SYN as a PAWS reject (`TcpExtPAWSTimewait`) and the client retries
/// after 1 s, which measures the benchmark's port reuse, not the datapath.
fn abort_on_close(stream: &TcpStream) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt(2) on the stream's own open fd, with a pointer to a live
    // `struct linger` and its exact size; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::linger>()).unwrap_or(0),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn serve_udp(socket: &UdpSocket, stop: &AtomicBool) {
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, peer)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], peer);
        }
    }
}

/// One short TCP request on a new connection.
pub fn tcp_request(target: SocketAddr) -> io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    stream.write_all(REQUEST)?;
    // The reply, then the server's reset (see `abort_on_close`): read just the reply.
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < REPLY.len() {
        let n = stream.read(&mut buf[got..REPLY.len()])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    if &buf[..got] == REPLY {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("reply {:?}", String::from_utf8_lossy(&buf[..got])),
        ))
    }
}

/// One UDP echo, from the client namespace's calling thread.
fn udp_echo(target: SocketAddr) -> io::Result<()> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.connect(target)?;
    socket.set_read_timeout(Some(IO_TIMEOUT))?;
    socket.send(&UDP_PAYLOAD)?;
    let mut buf = [0u8; 128];
    let n = socket.recv(&mut buf)?;
    if buf[..n] == UDP_PAYLOAD {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidData, "echo differs"))
    }
}

/// Checks from the client namespace that `target` answers a TCP request and a UDP echo,
/// retrying for up to `patience` (the first packets may wait for ARP).
pub fn probe(target: SocketAddr, patience: Duration) -> Result<()> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter(CLIENT_NS)?;
                let deadline = Instant::now() + patience;
                for (what, check) in [
                    (
                        "TCP request",
                        tcp_request as fn(SocketAddr) -> io::Result<()>,
                    ),
                    ("UDP echo", udp_echo),
                ] {
                    loop {
                        match check(target) {
                            Ok(()) => break,
                            Err(e) if Instant::now() >= deadline => {
                                bail!("{what} to {target} from {CLIENT_NS}: {e}")
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(100)),
                        }
                    }
                }
                Ok(())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("probe thread panicked"))?
    })
}

/// What a TCP run achieved.
#[derive(Clone, Debug, Default)]
pub struct TcpRun {
    pub ok: u64,
    pub failed: u64,
    pub seconds: f64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
}

impl TcpRun {
    #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.seconds
    }
}

/// `clients` threads in the client namespace, each making new-connection requests to
/// `target` back to back for `duration`.
pub fn tcp_load(target: SocketAddr, clients: usize, duration: Duration) -> Result<TcpRun> {
    let started = Instant::now();
    let deadline = started + duration;
    let parts: Vec<Result<TcpRun>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(move || {
                    enter(CLIENT_NS)?;
                    let mut run = TcpRun::default();
                    while Instant::now() < deadline {
                        match tcp_request(target) {
                            Ok(()) => run.ok += 1,
                            Err(e) => {
                                run.failed += 1;
                                run.first_error.get_or_insert_with(|| e.to_string());
                            }
                        }
                    }
                    Ok(run)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("client thread panicked"))?
            })
            .collect()
    });
    let mut total = TcpRun {
        seconds: started.elapsed().as_secs_f64(),
        ..TcpRun::default()
    };
    for part in parts {
        let part = part?;
        total.ok += part.ok;
        total.failed += part.failed;
        if total.first_error.is_none() {
            total.first_error = part.first_error;
        }
    }
    Ok(total)
}

/// What a UDP run achieved.
#[derive(Clone, Debug, Default)]
pub struct UdpRun {
    pub echoes: u64,
    /// Datagrams given up on (window timeouts, errors such as ICMP unreachable).
    pub lost: u64,
    pub seconds: f64,
}

impl UdpRun {
    /// Packets through the node per second: each echo is a request and a reply.
    #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    pub fn pps(&self) -> f64 {
        2.0 * self.echoes as f64 / self.seconds
    }
}

/// `sockets` threads in the client namespace, each one UDP flow to `target` with `window`
/// datagrams in flight, for `duration`.
pub fn udp_load(
    target: SocketAddr,
    sockets: usize,
    window: usize,
    duration: Duration,
) -> Result<UdpRun> {
    let started = Instant::now();
    let deadline = started + duration;
    let parts: Vec<Result<UdpRun>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..sockets)
            .map(|_| scope.spawn(move || udp_flow(target, window, deadline)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("client thread panicked"))?
            })
            .collect()
    });
    let mut total = UdpRun {
        seconds: started.elapsed().as_secs_f64(),
        ..UdpRun::default()
    };
    for part in parts {
        let part = part?;
        total.echoes += part.echoes;
        total.lost += part.lost;
    }
    Ok(total)
}

fn udp_flow(target: SocketAddr, window: usize, deadline: Instant) -> Result<UdpRun> {
    enter(CLIENT_NS)?;
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).context("bind a UDP client")?;
    socket.connect(target).context("connect a UDP client")?;
    socket.set_read_timeout(Some(UDP_TIMEOUT))?;
    let mut run = UdpRun::default();
    let mut buf = [0u8; 128];
    let mut in_flight = 0usize;
    let refill = |in_flight: &mut usize, run: &mut UdpRun| {
        run.lost += *in_flight as u64;
        *in_flight = 0;
        for _ in 0..window {
            if socket.send(&UDP_PAYLOAD).is_ok() {
                *in_flight += 1;
            } else {
                run.lost += 1;
            }
        }
    };
    refill(&mut in_flight, &mut run);
    while Instant::now() < deadline {
        match socket.recv(&mut buf) {
            Ok(_) => {
                run.echoes += 1;
                in_flight = in_flight.saturating_sub(1);
                if socket.send(&UDP_PAYLOAD).is_ok() {
                    in_flight += 1;
                } else {
                    run.lost += 1;
                }
            }
            Err(_) => refill(&mut in_flight, &mut run),
        }
    }
    Ok(run)
}
