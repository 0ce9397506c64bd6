//! SPDY/3.1 framing and sessions: the transport under Kubernetes' streaming
//! protocols (exec, attach, port-forward) as spoken by kubectl and by
//! containerd's CRI stream server through Go's `github.com/moby/spdystream`.
//!
//! The node agent dials the one-shot URL containerd returns from CRI
//! Exec/Attach/PortForward, performs the HTTP/1.1 `Upgrade: SPDY/3.1`
//! handshake itself and hands the upgraded byte stream to [`Session::new`]
//! as a [`Role::Client`]. The same session type can serve kubectl as a
//! [`Role::Server`].
//!
//! # Layers
//!
//! * [`frame`]: every SPDY/3.1 frame type, an [`frame::Encoder`] and an
//!   incremental [`frame::Decoder`] (partial input yields "need more"; bad
//!   input yields a [`frame::FrameError`], never a panic). Header blocks are
//!   SPDY/3 name/value blocks (32-bit counts and lengths, repeated values
//!   joined by NUL, names lowercased) compressed with one zlib stream per
//!   direction for the whole session, primed with the SPDY/3 dictionary
//!   ([`dictionary`]) and sync-flushed after each block.
//! * [`session`]: [`Session`] (open streams, ping, close), [`Incoming`]
//!   (streams the peer opened) and [`Stream`] (`AsyncRead + AsyncWrite`).
//!   A spawned driver task owns the socket.
//!
//! # Roles
//!
//! A client opens odd stream ids (1, 3, 5, ...) and a server even ones; PING
//! ids follow the same parity, and a PING of the peer's parity is echoed.
//! [`Session::open`] sends SYN_STREAM and waits for SYN_REPLY (client-go
//! does the same, for 30 s); [`Incoming::accept`] answers SYN_REPLY with
//! empty headers, as Kubernetes' spdy server does.
//!
//! # Flow control
//!
//! spdystream neither sends WINDOW_UPDATE nor looks at the ones it gets, and
//! ignores SETTINGS. We therefore never hold writes back on a send window
//! (it would stall after 64 KiB against Go) and ignore received
//! WINDOW_UPDATE and SETTINGS. We do send WINDOW_UPDATE (stream and, per
//! 3.1, session level) for data the application has consumed, which Go
//! ignores and a spec-following peer needs; [`Config::send_window_updates`]
//! turns that off.
//!
//! Back-pressure on our side: each stream buffers at most
//! [`Config::max_stream_buffer`] bytes (plus one frame) for its reader; while
//! any stream is at that limit the driver stops reading the socket, which
//! pushes back on the peer through TCP. Like spdystream (whose frame workers
//! block on an unbuffered channel), this is head-of-line blocking: a stream
//! nobody reads eventually stalls the others. Writers wait while the session
//! has [`Config::write_buffer`] bytes of DATA queued for the socket.
//!
//! # Not implemented
//!
//! * Server push and associated streams (we never send them; a received
//!   unidirectional stream is accepted like any other, without SYN_REPLY).
//! * Priorities (we send 0 and ignore the peer's), credential slots,
//!   SETTINGS persistence and every SETTINGS value.
//! * Enforcing the peer's flow-control windows (see above).
//! * HEADERS frames are decoded (and their FIN honoured) but their headers
//!   are not surfaced, and we never send them.
#![forbid(unsafe_code)]
#![allow(
    clippy::doc_markdown,
    reason = "docs name SPDY frames and flags (SYN_STREAM, FLAG_FIN) as the spec spells them, not as code"
)]
#![deny(missing_docs)]

pub mod dictionary;
pub mod frame;
pub mod session;

pub use frame::{FrameError, Headers, RstStatus};
pub use session::{CloseReason, Config, Error, Incoming, Role, Session, Stream};
