//! An SPDY/3.1 session over one byte stream: stream multiplexing, PING,
//! GOAWAY and the background task that owns the socket.
//!
//! [`Session::new`] spawns a driver task (so it must be called inside a tokio
//! runtime). The driver alone reads and writes the socket; [`Session`],
//! [`Incoming`] and every [`Stream`] talk to it through shared state behind a
//! mutex, queueing frames for it to encode and taking the data it decoded.
//! Frames leave in the order they were queued, which keeps stream ids
//! monotonic on the wire and SYN_REPLY ahead of a stream's first DATA.

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, oneshot};
use tokio::time::Sleep;

use crate::frame::{
    Data, Decoder, Encoder, Frame, FrameError, GoAway, GoAwayStatus, Headers, MAX_STREAM_ID, Ping,
    RstStatus, RstStream, SynReply, SynStream, WindowUpdate, header_block,
};

/// Which end of the connection we are: it decides stream and ping id parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Opens odd-numbered streams (1, 3, 5, ...) and sends odd ping ids.
    Client,
    /// Opens even-numbered streams (2, 4, ...) and sends even ping ids.
    Server,
}

impl Role {
    fn first_id(self) -> u32 {
        match self {
            Self::Client => 1,
            Self::Server => 2,
        }
    }

    /// Whether `id` has the parity of ids this role allocates.
    fn owns(self, id: u32) -> bool {
        (id % 2 == 1) == (self == Self::Client)
    }
}

/// Session tunables. [`Config::default`] suits Kubernetes streaming.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long [`Session::open`] waits for the peer's SYN_REPLY (client-go
    /// waits 30 s, `createStreamResponseTimeout`).
    pub open_timeout: Duration,
    /// Bytes buffered per stream for a reader before the driver stops reading
    /// the socket (1 MiB).
    pub max_stream_buffer: usize,
    /// Largest DATA payload we send; larger writes are split (32 KiB).
    pub max_data_frame: usize,
    /// DATA bytes queued for the socket across the session before writers
    /// wait (256 KiB).
    pub write_buffer: usize,
    /// Send WINDOW_UPDATE for data the application consumed. spdystream
    /// ignores them; a spec-following peer needs them to send more than
    /// 64 KiB. On by default.
    pub send_window_updates: bool,
    /// After GOAWAY (sent or received) or a protocol error, how long to wait
    /// for streams to finish and writes to flush before dropping the socket.
    pub close_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            open_timeout: Duration::from_secs(30),
            max_stream_buffer: 1 << 20,
            max_data_frame: 32 * 1024,
            write_buffer: 256 * 1024,
            send_window_updates: true,
            close_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// We closed it: [`Session::close`], or every [`Session`] handle dropped.
    Local,
    /// The peer sent GOAWAY and every stream finished.
    GoneAway,
    /// The socket reached EOF.
    PeerClosed,
    /// Reading or writing the socket failed.
    Io(io::ErrorKind),
    /// The peer sent a malformed frame (we answered GOAWAY PROTOCOL_ERROR).
    Protocol(String),
    /// Streams did not finish within [`Config::close_timeout`].
    Timeout,
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local => f.write_str("closed locally"),
            Self::GoneAway => f.write_str("peer sent GOAWAY"),
            Self::PeerClosed => f.write_str("peer closed the connection"),
            Self::Io(kind) => write!(f, "i/o error: {kind}"),
            Self::Protocol(msg) => write!(f, "protocol error: {msg}"),
            Self::Timeout => f.write_str("close timed out"),
        }
    }
}

/// Session errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The session has ended.
    #[error("SPDY session closed: {0}")]
    Closed(CloseReason),
    /// The peer sent GOAWAY: it takes no new streams.
    #[error("peer sent GOAWAY; no new streams")]
    GoneAway,
    /// We sent GOAWAY (close or drop): no new streams.
    #[error("session is closing; no new streams")]
    Closing,
    /// The peer answered SYN_STREAM with RST_STREAM.
    #[error("stream {stream_id} reset by peer: {status}")]
    Reset {
        /// The stream.
        stream_id: u32,
        /// The peer's status.
        status: RstStatus,
    },
    /// No SYN_REPLY within [`Config::open_timeout`]; the stream was reset.
    #[error("no SYN_REPLY for stream {stream_id} within {timeout:?}")]
    OpenTimeout {
        /// The stream.
        stream_id: u32,
        /// The timeout.
        timeout: Duration,
    },
    /// All 2^31 stream ids of our parity are used.
    #[error("stream ids exhausted")]
    StreamIdsExhausted,
    /// The headers cannot be sent.
    #[error("invalid headers")]
    Frame(#[from] FrameError),
}

/// Bytes of consumed data after which we send WINDOW_UPDATE (half the
/// default 64 KiB window).
const WINDOW_UPDATE_THRESHOLD: u32 = 32 * 1024;
/// The driver encodes queued frames until its write buffer holds this much.
const WRITE_CHUNK: usize = 64 * 1024;
/// Size of the driver's socket read.
const READ_CHUNK: usize = 32 * 1024;
/// Peer-opened streams waiting for [`Incoming::accept`]; more are refused.
const MAX_ACCEPT_QUEUE: usize = 256;
/// Rounds of the driver loop before it yields to other tasks.
const DRIVER_BUDGET: usize = 64;

/// How a stream was reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reset {
    Local,
    Peer(RstStatus),
}

#[derive(Debug, Default)]
struct StreamState {
    recv: VecDeque<Bytes>,
    recv_len: usize,
    remote_fin: bool,
    local_fin: bool,
    reset: Option<Reset>,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    /// Frames of this stream queued or written but not yet flushed.
    queued_frames: usize,
    /// Set while [`Session::open`] waits for SYN_REPLY.
    reply: Option<oneshot::Sender<Result<Headers, Error>>>,
    /// Peer-opened stream waiting in the accept queue: its SYN_STREAM headers.
    syn_headers: Option<Headers>,
    unidirectional: bool,
    consumed_unacked: u32,
}

impl StreamState {
    fn done(&self) -> bool {
        self.reset.is_some() || (self.local_fin && self.remote_fin)
    }

    fn wake(&mut self) {
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
        if let Some(w) = self.write_waker.take() {
            w.wake();
        }
    }
}

struct Outbound {
    frame: Frame,
    stream: Option<u32>,
    data_len: usize,
    size: usize,
}

struct State {
    role: Role,
    next_stream_id: u32,
    next_ping_id: u32,
    last_peer_stream_id: u32,
    streams: HashMap<u32, StreamState>,
    accept_queue: VecDeque<u32>,
    accept_waker: Option<Waker>,
    incoming_alive: bool,
    outbound: VecDeque<Outbound>,
    /// DATA payload bytes queued or unflushed.
    queued_data: usize,
    /// Approximate bytes of all queued frames.
    outbound_bytes: usize,
    driver_waker: Option<Waker>,
    pings: HashMap<u32, oneshot::Sender<()>>,
    goaway_sent: bool,
    goaway_received: bool,
    /// Close after flushing, without waiting for streams.
    hard_close: Option<CloseReason>,
    closed: Option<CloseReason>,
    session_consumed: u32,
}

impl State {
    fn wake_driver(&mut self) {
        if let Some(w) = self.driver_waker.take() {
            w.wake();
        }
    }

    fn queue(&mut self, frame: Frame, stream: Option<u32>) {
        let data_len = match &frame {
            Frame::Data(d) => d.data.len(),
            _ => 0,
        };
        let size = data_len + 64;
        if let Some(id) = stream
            && let Some(s) = self.streams.get_mut(&id)
        {
            s.queued_frames += 1;
        }
        self.queued_data += data_len;
        self.outbound_bytes += size;
        self.outbound.push_back(Outbound {
            frame,
            stream,
            data_len,
            size,
        });
        self.wake_driver();
    }

    fn reset_frame(&mut self, stream_id: u32, status: RstStatus) {
        self.queue(Frame::RstStream(RstStream { stream_id, status }), None);
    }

    /// Sends GOAWAY once and stops taking new streams.
    fn begin_close(&mut self) {
        if self.goaway_sent || self.closed.is_some() {
            return;
        }
        self.goaway_sent = true;
        let last_good_stream_id = self.last_peer_stream_id;
        self.queue(
            Frame::GoAway(GoAway {
                last_good_stream_id,
                status: GoAwayStatus::Ok,
            }),
            None,
        );
        if let Some(w) = self.accept_waker.take() {
            w.wake();
        }
    }

    fn read_paused(&self, config: &Config) -> bool {
        self.outbound_bytes > config.write_buffer.saturating_mul(4)
            || self
                .streams
                .values()
                .any(|s| s.recv_len >= config.max_stream_buffer)
    }

    /// GOAWAY went one way or the other and nothing is left to finish.
    fn graceful_done(&self) -> bool {
        (self.goaway_sent || self.goaway_received)
            && self.accept_queue.is_empty()
            && self.streams.values().all(StreamState::done)
    }

    fn count_session_consumed(&mut self, n: usize, config: &Config) {
        if !config.send_window_updates {
            return;
        }
        self.session_consumed = self.session_consumed.saturating_add(n as u32);
        if self.session_consumed >= WINDOW_UPDATE_THRESHOLD {
            let delta = std::mem::take(&mut self.session_consumed);
            self.queue(
                Frame::WindowUpdate(WindowUpdate {
                    stream_id: 0,
                    delta,
                }),
                None,
            );
        }
    }

    fn on_frame(&mut self, frame: Frame, config: &Config) {
        tracing::trace!(frame = frame.name(), "spdy frame received");
        match frame {
            Frame::SynStream(f) => self.on_syn_stream(f),
            Frame::SynReply(f) => self.on_syn_reply(f),
            Frame::RstStream(f) => self.on_rst(f),
            Frame::Ping(Ping { id }) => {
                if self.role.owns(id) {
                    if let Some(tx) = self.pings.remove(&id) {
                        let _ = tx.send(());
                    }
                } else {
                    self.queue(Frame::Ping(Ping { id }), None);
                }
            }
            Frame::GoAway(f) => self.on_goaway(f),
            Frame::Headers(f) => {
                if f.fin
                    && let Some(s) = self.streams.get_mut(&f.stream_id)
                {
                    s.remote_fin = true;
                    s.wake();
                }
            }
            Frame::Data(f) => self.on_data(f, config),
            Frame::Settings(f) => tracing::debug!(?f, "ignoring SPDY SETTINGS"),
            // We do not enforce send windows (spdystream sends no
            // WINDOW_UPDATE), so grants need no bookkeeping.
            Frame::WindowUpdate(_) => {}
            Frame::Unknown(f) => {
                tracing::debug!(
                    frame_type = f.frame_type,
                    "ignoring unknown SPDY control frame"
                );
            }
        }
    }

    fn on_syn_stream(&mut self, f: SynStream) {
        let id = f.stream_id;
        if self.role.owns(id) || id <= self.last_peer_stream_id {
            tracing::debug!(id, "SYN_STREAM with an invalid stream id");
            self.reset_frame(id, RstStatus::ProtocolError);
            return;
        }
        self.last_peer_stream_id = id;
        if self.goaway_sent
            || self.hard_close.is_some()
            || !self.incoming_alive
            || self.accept_queue.len() >= MAX_ACCEPT_QUEUE
        {
            self.reset_frame(id, RstStatus::RefusedStream);
            return;
        }
        self.streams.insert(
            id,
            StreamState {
                remote_fin: f.fin,
                local_fin: f.unidirectional,
                unidirectional: f.unidirectional,
                syn_headers: Some(f.headers),
                ..StreamState::default()
            },
        );
        self.accept_queue.push_back(id);
        if let Some(w) = self.accept_waker.take() {
            w.wake();
        }
    }

    fn on_syn_reply(&mut self, f: SynReply) {
        let role = self.role;
        let Some(s) = self.streams.get_mut(&f.stream_id) else {
            return;
        };
        if !role.owns(f.stream_id) {
            return;
        }
        if let Some(tx) = s.reply.take() {
            let _ = tx.send(Ok(f.headers));
        }
        if f.fin {
            s.remote_fin = true;
            s.wake();
        }
    }

    fn on_rst(&mut self, f: RstStream) {
        let id = f.stream_id;
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.reset.is_none() {
            s.reset = Some(Reset::Peer(f.status));
        }
        if let Some(tx) = s.reply.take() {
            let _ = tx.send(Err(Error::Reset {
                stream_id: id,
                status: f.status,
            }));
        }
        s.wake();
        if s.syn_headers.is_some() {
            // Never accepted: forget it.
            self.streams.remove(&id);
            self.accept_queue.retain(|&q| q != id);
        }
    }

    fn on_goaway(&mut self, f: GoAway) {
        tracing::debug!(last = f.last_good_stream_id, status = ?f.status, "SPDY GOAWAY received");
        self.goaway_received = true;
        let role = self.role;
        for (&id, s) in &mut self.streams {
            // Our streams above the peer's last good id were never processed.
            if role.owns(id) && id > f.last_good_stream_id && s.reset.is_none() {
                s.reset = Some(Reset::Peer(RstStatus::RefusedStream));
                if let Some(tx) = s.reply.take() {
                    let _ = tx.send(Err(Error::GoneAway));
                }
                s.wake();
            }
        }
    }

    fn on_data(&mut self, f: Data, config: &Config) {
        let len = f.data.len();
        match self.streams.get_mut(&f.stream_id) {
            Some(s) if s.reset.is_none() && !s.remote_fin => {
                if len > 0 {
                    s.recv.push_back(f.data);
                    s.recv_len += len;
                }
                if f.fin {
                    s.remote_fin = true;
                }
                if let Some(w) = s.read_waker.take() {
                    w.wake();
                }
            }
            _ => {
                tracing::trace!(id = f.stream_id, len, "discarding DATA for a closed stream");
                self.count_session_consumed(len, config);
            }
        }
    }

    /// The session has ended: fail everything that waits.
    fn terminate(&mut self, reason: CloseReason) {
        if self.closed.is_some() {
            return;
        }
        tracing::debug!(%reason, "SPDY session closed");
        for s in self.streams.values_mut() {
            if let Some(tx) = s.reply.take() {
                let _ = tx.send(Err(Error::Closed(reason.clone())));
            }
            s.wake();
        }
        self.closed = Some(reason);
        self.pings.clear();
        self.outbound.clear();
        self.queued_data = 0;
        self.outbound_bytes = 0;
        if let Some(w) = self.accept_waker.take() {
            w.wake();
        }
    }
}

struct Shared {
    state: Mutex<State>,
    config: Config,
    closed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A handle on an SPDY session. Cheap to clone.
///
/// When the last clone is dropped the session closes gracefully: GOAWAY is
/// sent, the peer can open no new streams, and the connection is shut down
/// once every live stream has finished both ways (or been dropped or reset)
/// and pending writes have flushed, or after [`Config::close_timeout`].
/// Streams therefore outlive the handle; a server that only accepts must
/// still keep a `Session` alive for as long as it wants new streams.
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionRef>,
}

struct SessionRef {
    shared: Arc<Shared>,
}

impl Drop for SessionRef {
    fn drop(&mut self) {
        self.shared.lock().begin_close();
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.inner.shared.lock();
        f.debug_struct("Session")
            .field("role", &st.role)
            .field("streams", &st.streams.len())
            .field("closed", &st.closed)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Starts a session over `io` with the default [`Config`].
    ///
    /// Spawns the driver task: call inside a tokio runtime.
    pub fn new<T>(io: T, role: Role) -> (Session, Incoming)
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Self::with_config(io, role, Config::default())
    }

    /// Starts a session with `config`.
    pub fn with_config<T>(io: T, role: Role, config: Config) -> (Session, Incoming)
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                role,
                next_stream_id: role.first_id(),
                next_ping_id: role.first_id(),
                last_peer_stream_id: 0,
                streams: HashMap::new(),
                accept_queue: VecDeque::new(),
                accept_waker: None,
                incoming_alive: true,
                outbound: VecDeque::new(),
                queued_data: 0,
                outbound_bytes: 0,
                driver_waker: None,
                pings: HashMap::new(),
                goaway_sent: false,
                goaway_received: false,
                hard_close: None,
                closed: None,
                session_consumed: 0,
            }),
            config,
            closed: Notify::new(),
        });
        let driver = Driver {
            io,
            shared: Arc::clone(&shared),
            encoder: Encoder::new(),
            decoder: Decoder::new(),
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            write_buf: BytesMut::with_capacity(WRITE_CHUNK),
            flight: Vec::new(),
            read_closed: false,
            deadline: None,
        };
        tokio::spawn(driver.run());
        let session = Session {
            inner: Arc::new(SessionRef {
                shared: Arc::clone(&shared),
            }),
        };
        (session, Incoming { shared })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// Opens a stream: sends SYN_STREAM with `headers` (names are lowercased
    /// on the wire) and waits for the peer's SYN_REPLY.
    ///
    /// Fails with [`Error::Reset`] if the peer answers RST_STREAM, and with
    /// [`Error::OpenTimeout`] (after resetting the stream) if it does not
    /// answer within [`Config::open_timeout`]. Dropping the future resets
    /// the stream.
    pub async fn open(&self, headers: Headers) -> Result<Stream, Error> {
        header_block::encode_block(&headers)?;
        let shared = Arc::clone(self.shared());
        let (tx, rx) = oneshot::channel();
        let mut stream = {
            let mut st = shared.lock();
            if let Some(reason) = &st.closed {
                return Err(Error::Closed(reason.clone()));
            }
            if st.goaway_received {
                return Err(Error::GoneAway);
            }
            if st.goaway_sent || st.hard_close.is_some() {
                return Err(Error::Closing);
            }
            let id = st.next_stream_id;
            if id > MAX_STREAM_ID {
                return Err(Error::StreamIdsExhausted);
            }
            st.next_stream_id += 2;
            st.streams.insert(
                id,
                StreamState {
                    reply: Some(tx),
                    ..StreamState::default()
                },
            );
            st.queue(
                Frame::SynStream(SynStream {
                    stream_id: id,
                    associated_stream_id: 0,
                    priority: 0,
                    slot: 0,
                    fin: false,
                    unidirectional: false,
                    headers: headers.clone(),
                }),
                Some(id),
            );
            Stream {
                id,
                shared: Arc::clone(&shared),
                headers,
                reply_headers: Vec::new(),
            }
        };
        let timeout = shared.config.open_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(reply))) => {
                stream.reply_headers = reply;
                Ok(stream)
            }
            Ok(Ok(Err(err))) => Err(err),
            Ok(Err(_)) => Err(Error::Closed(
                shared.lock().closed.clone().unwrap_or(CloseReason::Local),
            )),
            // `stream` drops here and resets itself.
            Err(_) => Err(Error::OpenTimeout {
                stream_id: stream.id,
                timeout,
            }),
        }
    }

    /// Sends PING and waits for the echo; returns the round-trip time.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let (tx, rx) = oneshot::channel();
        let start = Instant::now();
        {
            let mut st = self.shared().lock();
            if let Some(reason) = &st.closed {
                return Err(Error::Closed(reason.clone()));
            }
            let id = st.next_ping_id;
            st.next_ping_id = if id > MAX_STREAM_ID - 2 {
                st.role.first_id()
            } else {
                id + 2
            };
            st.pings.insert(id, tx);
            st.queue(Frame::Ping(Ping { id }), None);
        }
        match rx.await {
            Ok(()) => Ok(start.elapsed()),
            Err(_) => Err(Error::Closed(
                self.shared()
                    .lock()
                    .closed
                    .clone()
                    .unwrap_or(CloseReason::Local),
            )),
        }
    }

    /// Closes the session: sends GOAWAY (no new streams either way), then
    /// waits until every stream has finished and the connection is shut
    /// down (at most [`Config::close_timeout`]).
    ///
    /// A spdystream peer stops reading when it gets GOAWAY and closes the
    /// connection soon after, so against Go this ends the live streams too.
    pub async fn close(&self) {
        self.shared().lock().begin_close();
        self.closed().await;
    }

    /// Waits until the session has ended, for whatever reason.
    pub async fn closed(&self) {
        loop {
            let notified = self.shared().closed.notified();
            if self.shared().lock().closed.is_some() {
                return;
            }
            notified.await;
        }
    }

    /// Why the session ended, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared().lock().closed.clone()
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.shared().lock().role
    }
}

/// Streams opened by the peer.
///
/// Dropping it refuses (RST_STREAM REFUSED_STREAM) streams not yet accepted
/// and all later ones.
pub struct Incoming {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming").finish_non_exhaustive()
    }
}

impl Incoming {
    /// The next stream the peer opened, after sending its SYN_REPLY (empty
    /// headers, as Kubernetes' spdy server does). `None` once the session has
    /// ended or we sent GOAWAY and nothing is queued.
    pub async fn accept(&mut self) -> Option<Stream> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Poll form of [`Incoming::accept`].
    pub fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<Option<Stream>> {
        let mut st = self.shared.lock();
        while let Some(id) = st.accept_queue.pop_front() {
            let Some(s) = st.streams.get_mut(&id) else {
                continue;
            };
            let headers = s.syn_headers.take().unwrap_or_default();
            let unidirectional = s.unidirectional;
            if !unidirectional {
                // A unidirectional stream gets no reply (server push).
                st.queue(
                    Frame::SynReply(SynReply {
                        stream_id: id,
                        fin: false,
                        headers: Vec::new(),
                    }),
                    Some(id),
                );
            }
            return Poll::Ready(Some(Stream {
                id,
                shared: Arc::clone(&self.shared),
                headers,
                reply_headers: Vec::new(),
            }));
        }
        if st.closed.is_some() || st.goaway_sent || st.hard_close.is_some() {
            return Poll::Ready(None);
        }
        st.accept_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.incoming_alive = false;
        let queued: Vec<u32> = st.accept_queue.drain(..).collect();
        for id in queued {
            st.streams.remove(&id);
            if st.closed.is_none() {
                st.reset_frame(id, RstStatus::RefusedStream);
            }
        }
        st.wake_driver();
    }
}

/// One SPDY stream: a bidirectional byte stream.
///
/// * Writes become DATA frames of at most [`Config::max_data_frame`] bytes.
///   They are not held back by the peer's flow-control window (spdystream
///   never sends WINDOW_UPDATE); they wait only while the session has
///   [`Config::write_buffer`] bytes queued for the socket. `poll_flush`
///   waits until this stream's frames are written to the socket.
/// * `poll_shutdown` sends an empty DATA frame with FLAG_FIN (half-close);
///   reading goes on until the peer's FIN.
/// * Reads return the peer's data, then EOF after its FIN. After a
///   RST_STREAM from the peer, reads return what was buffered and then EOF
///   (as spdystream does: Kubernetes' servers end exec sessions by resetting
///   their streams), writes fail with `ConnectionReset`; see
///   [`Stream::reset_status`]. If the connection is lost before FIN, reads
///   fail with `ConnectionAborted` and writes with `BrokenPipe`.
/// * Dropping a stream that is not finished sends RST_STREAM CANCEL if the
///   peer may still send, otherwise FIN.
///
/// Use `tokio::io::split` for separate read and write halves.
pub struct Stream {
    id: u32,
    shared: Arc<Shared>,
    headers: Headers,
    reply_headers: Headers,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.id)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

fn io_error(kind: io::ErrorKind, msg: impl Into<String>) -> io::Error {
    io::Error::new(kind, msg.into())
}

impl Stream {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The SYN_STREAM headers: the peer's for accepted streams, ours for
    /// opened ones.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first value of SYN_STREAM header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The peer's SYN_REPLY headers, for streams we opened.
    pub fn reply_headers(&self) -> &[(String, String)] {
        &self.reply_headers
    }

    /// Aborts the stream with RST_STREAM CANCEL. Buffered input is dropped;
    /// later reads return EOF and writes fail.
    pub fn reset(&mut self) {
        let mut st = self.shared.lock();
        let closed = st.closed.is_some();
        let Some(s) = st.streams.get_mut(&self.id) else {
            return;
        };
        if s.reset.is_some() {
            return;
        }
        s.reset = Some(Reset::Local);
        let dropped = std::mem::take(&mut s.recv_len);
        s.recv.clear();
        s.wake();
        let config = self.shared.config.clone();
        st.count_session_consumed(dropped, &config);
        if !closed {
            st.reset_frame(self.id, RstStatus::Cancel);
        }
        st.wake_driver();
    }

    /// The status of the peer's RST_STREAM, if it reset this stream.
    pub fn reset_status(&self) -> Option<RstStatus> {
        match self.shared.lock().streams.get(&self.id)?.reset? {
            Reset::Peer(status) => Some(status),
            Reset::Local => None,
        }
    }

    fn poll_flush_inner(&self, cx: &Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.shared.lock();
        let closed = st.closed.clone();
        let Some(s) = st.streams.get_mut(&self.id) else {
            return Poll::Ready(Ok(()));
        };
        if s.queued_frames == 0 {
            return Poll::Ready(Ok(()));
        }
        if let Some(reason) = closed {
            return Poll::Ready(Err(io_error(
                io::ErrorKind::BrokenPipe,
                format!("SPDY session closed: {reason}"),
            )));
        }
        s.write_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let config = &self.shared.config;
        let mut st = self.shared.lock();
        let closed = st.closed.clone();
        let Some(s) = st.streams.get_mut(&self.id) else {
            return Poll::Ready(Ok(()));
        };
        if s.recv_len > 0 {
            let was_full = s.recv_len >= config.max_stream_buffer;
            let mut n = 0;
            while buf.remaining() > 0 {
                let Some(front) = s.recv.front_mut() else {
                    break;
                };
                let take = front.len().min(buf.remaining());
                buf.put_slice(&front[..take]);
                front.advance(take);
                if front.is_empty() {
                    s.recv.pop_front();
                }
                n += take;
            }
            s.recv_len -= n;
            let mut update = None;
            if config.send_window_updates && !s.remote_fin && s.reset.is_none() {
                s.consumed_unacked = s.consumed_unacked.saturating_add(n as u32);
                if s.consumed_unacked >= WINDOW_UPDATE_THRESHOLD {
                    update = Some(std::mem::take(&mut s.consumed_unacked));
                }
            }
            let now_free = was_full && s.recv_len < config.max_stream_buffer;
            if closed.is_none() {
                if let Some(delta) = update {
                    st.queue(
                        Frame::WindowUpdate(WindowUpdate {
                            stream_id: self.id,
                            delta,
                        }),
                        None,
                    );
                }
                st.count_session_consumed(n, config);
            }
            if now_free {
                st.wake_driver();
            }
            return Poll::Ready(Ok(()));
        }
        if s.remote_fin || s.reset.is_some() {
            return Poll::Ready(Ok(()));
        }
        if let Some(reason) = closed {
            return Poll::Ready(Err(io_error(
                io::ErrorKind::ConnectionAborted,
                format!("SPDY session closed before FIN: {reason}"),
            )));
        }
        s.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let config = &self.shared.config;
        let mut st = self.shared.lock();
        if let Some(reason) = &st.closed {
            return Poll::Ready(Err(io_error(
                io::ErrorKind::BrokenPipe,
                format!("SPDY session closed: {reason}"),
            )));
        }
        let queued = st.queued_data;
        let Some(s) = st.streams.get_mut(&self.id) else {
            return Poll::Ready(Err(io_error(io::ErrorKind::BrokenPipe, "stream is gone")));
        };
        if s.reset.is_some() {
            return Poll::Ready(Err(io_error(
                io::ErrorKind::ConnectionReset,
                format!("SPDY stream {} was reset", self.id),
            )));
        }
        if s.local_fin {
            return Poll::Ready(Err(io_error(
                io::ErrorKind::BrokenPipe,
                "write after shutdown (or on a unidirectional stream)",
            )));
        }
        if queued >= config.write_buffer {
            s.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(config.max_data_frame.max(1));
        st.queue(
            Frame::Data(Data {
                stream_id: self.id,
                fin: false,
                data: Bytes::copy_from_slice(&buf[..n]),
            }),
            Some(self.id),
        );
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush_inner(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        {
            let mut st = self.shared.lock();
            let closed = st.closed.is_some();
            let Some(s) = st.streams.get_mut(&self.id) else {
                return Poll::Ready(Ok(()));
            };
            if s.reset.is_some() {
                return Poll::Ready(Ok(()));
            }
            if !s.local_fin {
                if closed {
                    return Poll::Ready(Err(io_error(
                        io::ErrorKind::BrokenPipe,
                        "SPDY session closed",
                    )));
                }
                s.local_fin = true;
                st.queue(
                    Frame::Data(Data {
                        stream_id: self.id,
                        fin: true,
                        data: Bytes::new(),
                    }),
                    Some(self.id),
                );
            }
        }
        self.poll_flush_inner(cx)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        let Some(s) = st.streams.remove(&self.id) else {
            return;
        };
        let dropped = s.recv_len;
        if st.closed.is_none() && s.reset.is_none() {
            if !s.remote_fin {
                st.reset_frame(self.id, RstStatus::Cancel);
            } else if !s.local_fin {
                st.queue(
                    Frame::Data(Data {
                        stream_id: self.id,
                        fin: true,
                        data: Bytes::new(),
                    }),
                    None,
                );
            }
        }
        if st.closed.is_none() {
            let config = self.shared.config.clone();
            st.count_session_consumed(dropped, &config);
        }
        st.wake_driver();
    }
}

/// The background task: owns the socket, encodes queued frames, decodes and
/// dispatches incoming ones.
struct Driver<T> {
    io: T,
    shared: Arc<Shared>,
    encoder: Encoder,
    decoder: Decoder,
    read_buf: BytesMut,
    scratch: Box<[u8]>,
    write_buf: BytesMut,
    /// (stream, DATA bytes) of frames in `write_buf` or written but unflushed.
    flight: Vec<(Option<u32>, usize)>,
    read_closed: bool,
    deadline: Option<Pin<Box<Sleep>>>,
}

enum Step {
    Continue,
    Done(CloseReason),
}

impl<T: AsyncRead + AsyncWrite + Unpin> Driver<T> {
    async fn run(mut self) {
        let reason = poll_fn(|cx| self.poll_run(cx)).await;
        self.finish(reason);
    }

    fn finish(&mut self, reason: CloseReason) {
        self.shared.lock().terminate(reason);
        self.shared.closed.notify_waiters();
    }

    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<CloseReason> {
        for _ in 0..DRIVER_BUDGET {
            match self.step(cx) {
                Poll::Ready(Step::Done(reason)) => return Poll::Ready(reason),
                Poll::Ready(Step::Continue) => {}
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// One round: `Ready(Continue)` if anything moved.
    fn step(&mut self, cx: &mut Context<'_>) -> Poll<Step> {
        let config = self.shared.config.clone();
        let mut progress = false;
        let (paused, closing, hard, graceful_done) = {
            let mut st = self.shared.lock();
            st.driver_waker = Some(cx.waker().clone());
            while self.write_buf.len() < WRITE_CHUNK {
                let Some(out) = st.outbound.pop_front() else {
                    break;
                };
                st.outbound_bytes = st.outbound_bytes.saturating_sub(out.size);
                if let Err(err) = self.encoder.encode(&out.frame, &mut self.write_buf) {
                    // Frames are validated before queueing; this would be a bug.
                    tracing::error!(%err, frame = out.frame.name(), "dropping unencodable frame");
                }
                self.flight.push((out.stream, out.data_len));
                progress = true;
            }
            // A received GOAWAY lets our streams run on (as spdystream does);
            // only our own close is bounded by the timeout.
            let closing = st.goaway_sent || st.hard_close.is_some();
            (
                st.read_paused(&config),
                closing,
                st.hard_close.clone(),
                st.graceful_done() && st.outbound.is_empty(),
            )
        };

        if closing && self.deadline.is_none() {
            self.deadline = Some(Box::pin(tokio::time::sleep(config.close_timeout)));
        }
        if let Some(deadline) = &mut self.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Step::Done(hard.unwrap_or(CloseReason::Timeout)));
        }

        // Write.
        if !self.write_buf.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &self.write_buf) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Step::Done(CloseReason::Io(io::ErrorKind::WriteZero)));
                }
                Poll::Ready(Ok(n)) => {
                    self.write_buf.advance(n);
                    progress = true;
                }
                Poll::Ready(Err(err)) => {
                    return Poll::Ready(Step::Done(CloseReason::Io(err.kind())));
                }
                Poll::Pending => {}
            }
        }
        if self.write_buf.is_empty() && !self.flight.is_empty() {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    self.ack_flight();
                    progress = true;
                }
                Poll::Ready(Err(err)) => {
                    return Poll::Ready(Step::Done(CloseReason::Io(err.kind())));
                }
                Poll::Pending => {}
            }
        }

        // Read.
        if !self.read_closed && !paused && hard.is_none() {
            let mut rb = ReadBuf::new(&mut self.scratch);
            match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    self.read_closed = true;
                    return Poll::Ready(Step::Done(CloseReason::PeerClosed));
                }
                Poll::Ready(Ok(())) => {
                    self.read_buf.extend_from_slice(rb.filled());
                    self.dispatch(&config);
                    progress = true;
                }
                Poll::Ready(Err(err)) => {
                    return Poll::Ready(Step::Done(CloseReason::Io(err.kind())));
                }
                Poll::Pending => {}
            }
        }

        // Close once everything is out.
        let drained = self.write_buf.is_empty() && self.flight.is_empty();
        if drained && (hard.is_some() || graceful_done) {
            let still_empty = self.shared.lock().outbound.is_empty();
            if still_empty {
                return match Pin::new(&mut self.io).poll_shutdown(cx) {
                    Poll::Ready(_) => Poll::Ready(Step::Done(hard.unwrap_or_else(|| {
                        if self.shared.lock().goaway_sent {
                            CloseReason::Local
                        } else {
                            CloseReason::GoneAway
                        }
                    }))),
                    Poll::Pending => Poll::Pending,
                };
            }
            progress = true;
        }

        if progress {
            Poll::Ready(Step::Continue)
        } else {
            Poll::Pending
        }
    }

    fn dispatch(&mut self, config: &Config) {
        let mut st = self.shared.lock();
        loop {
            match self.decoder.decode(&mut self.read_buf) {
                Ok(Some(frame)) => st.on_frame(frame, config),
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!(%err, "malformed SPDY frame; closing session");
                    self.read_closed = true;
                    self.read_buf.clear();
                    let last_good_stream_id = st.last_peer_stream_id;
                    st.goaway_sent = true;
                    st.queue(
                        Frame::GoAway(GoAway {
                            last_good_stream_id,
                            status: GoAwayStatus::ProtocolError,
                        }),
                        None,
                    );
                    st.hard_close = Some(CloseReason::Protocol(err.to_string()));
                    return;
                }
            }
        }
    }

    /// Everything in flight reached the socket: release writers.
    fn ack_flight(&mut self) {
        let mut st = self.shared.lock();
        for (stream, data_len) in self.flight.drain(..) {
            st.queued_data = st.queued_data.saturating_sub(data_len);
            if let Some(id) = stream
                && let Some(s) = st.streams.get_mut(&id)
            {
                s.queued_frames = s.queued_frames.saturating_sub(1);
            }
        }
        for s in st.streams.values_mut() {
            if let Some(w) = s.write_waker.take() {
                w.wake();
            }
        }
    }
}

impl<T> Drop for Driver<T> {
    fn drop(&mut self) {
        // The task was dropped (runtime shut down) or finished: make sure no
        // one waits forever.
        self.shared.lock().terminate(CloseReason::Local);
        self.shared.closed.notify_waiters();
    }
}
