//! A byte stream carried in WebSocket binary messages: kubectl's `SPDY/3.1+portforward.k8s.io`
//! subprotocol tunnels an SPDY session this way. The kubelet unwraps it and hands the bytes
//! to the runtime's SPDY port-forward endpoint unchanged.

use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

use super::websocket::Socket;

/// Copies the WebSocket's binary messages to `io` and `io`'s bytes back as binary messages,
/// until both directions end. A WebSocket close shuts down `io`'s write side; `io`'s end of
/// input closes the WebSocket.
pub async fn carry<S>(ws: Socket, io: S)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut sink, mut source) = ws.split();
    let (mut rd, mut wr) = tokio::io::split(io);
    let inbound = async move {
        while let Some(msg) = source.next().await {
            match msg {
                Ok(Message::Binary(b)) => {
                    if wr.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = wr.shutdown().await;
    };
    let outbound = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink
                        .send(Message::Binary(buf[..n].to_vec().into()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        let _ = sink.close().await;
    };
    tokio::join!(inbound, outbound);
}
