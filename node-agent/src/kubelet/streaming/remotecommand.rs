//! `kubectl exec` and `attach` over WebSocket `v5.channel.k8s.io`, carried to the runtime's
//! stream server over SPDY `v4.channel.k8s.io` (containerd 1.6 speaks v4 over WebSocket,
//! which cannot close stdin, and SPDY up to v4).
//!
//! v5 frames each binary message with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 the
//! error channel (a `Status` JSON: `Success`, or `Failure` with reason `NonZeroExitCode`),
//! 4 terminal resize (`{"Width":w,"Height":h}`), and 255 a close signal whose second byte
//! names the channel that ended (the client's end of stdin). The SPDY side has one stream
//! per channel, named by its `streamType` header, and a half-close for the end of stdin.

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use sluice_spdy::{Role, Session, Stream};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::websocket::Socket;

/// The WebSocket subprotocol this module speaks to clients.
pub const V5: &str = "v5.channel.k8s.io";
/// The remotecommand version asked of the runtime over SPDY.
pub const RUNTIME_VERSION: &str = "v4.channel.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// The streams a session carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "the protocol's four independent flags (stdin, stdout, stderr, tty)"
)]
pub struct Streams {
    /// Standard input from the client.
    pub stdin: bool,
    /// Standard output to the client.
    pub stdout: bool,
    /// Standard error to the client (never with a terminal).
    pub stderr: bool,
    /// A terminal, and so a resize stream.
    pub tty: bool,
}

/// The runtime side of a session: one SPDY stream per channel.
pub struct Runtime {
    session: Session,
    error: Stream,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    resize: Option<Stream>,
}

fn headers(kind: &str) -> Vec<(String, String)> {
    vec![("streamType".to_string(), kind.to_string())]
}

impl Runtime {
    /// Opens the streams `want` names on an upgraded SPDY connection to the runtime, the
    /// error stream first (as client-go does: the server waits for every stream).
    pub async fn open<S>(io: S, want: Streams) -> Result<Self, sluice_spdy::Error>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (session, _incoming) = Session::new(io, Role::Client);
        let error = session.open(headers("error")).await?;
        let open = |on: bool, kind: &'static str| {
            let s = &session;
            async move {
                if on {
                    s.open(headers(kind)).await.map(Some)
                } else {
                    Ok(None)
                }
            }
        };
        let stdin = open(want.stdin, "stdin").await?;
        let stdout = open(want.stdout, "stdout").await?;
        let stderr = open(want.stderr && !want.tty, "stderr").await?;
        let resize = open(want.tty, "resize").await?;
        Ok(Self {
            session,
            error,
            stdin,
            stdout,
            stderr,
            resize,
        })
    }
}

fn framed(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

/// Copies one runtime output stream to the client as `channel` messages until it ends.
async fn output(mut stream: Stream, channel: u8, tx: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(framed(channel, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// What the client sent: stdin bytes, a resize, the end of stdin.
#[derive(Debug, PartialEq, Eq)]
enum Input<'a> {
    Stdin(&'a [u8]),
    Resize(&'a [u8]),
    CloseStdin,
    Other,
}

fn parse_input(msg: &[u8]) -> Input<'_> {
    match msg {
        [STDIN, rest @ ..] => Input::Stdin(rest),
        [RESIZE, rest @ ..] => Input::Resize(rest),
        [CLOSE, STDIN, ..] => Input::CloseStdin,
        _ => Input::Other,
    }
}

/// Carries one exec or attach session between the client's WebSocket and the runtime until
/// the runtime ends it, then sends the error channel's `Status` and closes the WebSocket.
pub async fn bridge(ws: Socket, runtime: Runtime) {
    let Runtime {
        session,
        mut error,
        mut stdin,
        stdout,
        stderr,
        mut resize,
    } = runtime;
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(16);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
        let _ = sink.close().await;
    });
    let mut input = tokio::spawn(async move {
        while let Some(Ok(msg)) = source.next().await {
            let Message::Binary(data) = msg else {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
                continue;
            };
            match parse_input(&data) {
                Input::Stdin(bytes) => {
                    if let Some(s) = stdin.as_mut()
                        && s.write_all(bytes).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Input::Resize(bytes) => {
                    tracing::debug!(size = %String::from_utf8_lossy(bytes), "terminal resize");
                    if let Some(s) = resize.as_mut() {
                        let _ = s.write_all(bytes).await;
                    }
                }
                Input::CloseStdin => {
                    if let Some(mut s) = stdin.take() {
                        let _ = s.shutdown().await;
                    }
                }
                Input::Other => {}
            }
        }
        // The client went away: the runtime is told by the session's end.
    });
    let outputs: Vec<_> = [(stdout, STDOUT), (stderr, STDERR)]
        .into_iter()
        .filter_map(|(s, ch)| s.map(|s| tokio::spawn(output(s, ch, tx.clone()))))
        .collect();
    let mut status = Vec::new();
    // The runtime ends the session (status, then its streams) unless the client leaves
    // first: then the runtime session is closed so its streams end too.
    let ended = tokio::select! {
        r = error.read_to_end(&mut status) => r.is_ok(),
        _ = &mut input => false,
        () = tx.closed() => false,
    };
    if !ended {
        session.close().await;
    }
    for o in outputs {
        let _ = o.await;
    }
    if ended && !status.is_empty() {
        let _ = tx.send(framed(ERROR, &status)).await;
    }
    drop(tx);
    let _ = writer.await;
    input.abort();
    if ended {
        session.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages() {
        assert_eq!(parse_input(&[0, b'h', b'i']), Input::Stdin(b"hi"));
        assert_eq!(parse_input(&[0]), Input::Stdin(b""));
        assert_eq!(
            parse_input(b"\x04{\"Width\":80,\"Height\":24}"),
            Input::Resize(b"{\"Width\":80,\"Height\":24}")
        );
        assert_eq!(parse_input(&[255, 0]), Input::CloseStdin);
        assert_eq!(parse_input(&[255, 1]), Input::Other);
        assert_eq!(parse_input(&[]), Input::Other);
        assert_eq!(parse_input(&[1, 2]), Input::Other);
    }

    #[test]
    fn framing() {
        assert_eq!(
            framed(2, b"x"),
            Message::Binary(Bytes::from_static(b"\x02x"))
        );
    }
}
