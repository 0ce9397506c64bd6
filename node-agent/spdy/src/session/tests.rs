use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
use tokio::time::timeout;

use super::*;
use crate::frame::{Decoder, Encoder, Frame, GoAway, GoAwayStatus, Ping, RstStream, SynReply};

const T: Duration = Duration::from_secs(10);

fn h(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

fn pair_with(config: &Config) -> ((Session, Incoming), (Session, Incoming)) {
    let (a, b) = duplex(64 * 1024);
    (
        Session::with_config(a, Role::Client, config.clone()),
        Session::with_config(b, Role::Server, config.clone()),
    )
}

fn pair() -> ((Session, Incoming), (Session, Incoming)) {
    pair_with(&Config::default())
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    timeout(T, f).await.expect("timed out")
}

/// The other end of the socket, driven frame by frame.
struct RawPeer {
    io: DuplexStream,
    enc: Encoder,
    dec: Decoder,
    buf: BytesMut,
}

impl RawPeer {
    fn new(role: Role) -> (Session, Incoming, RawPeer) {
        let (a, b) = duplex(64 * 1024);
        let config = Config {
            open_timeout: Duration::from_millis(300),
            ..Config::default()
        };
        let (s, i) = Session::with_config(a, role, config);
        let peer = RawPeer {
            io: b,
            enc: Encoder::new(),
            dec: Decoder::new(),
            buf: BytesMut::new(),
        };
        (s, i, peer)
    }

    async fn send(&mut self, frame: Frame) {
        let mut b = BytesMut::new();
        self.enc.encode(&frame, &mut b).unwrap();
        self.io.write_all(&b).await.unwrap();
    }

    /// The next frame other than WINDOW_UPDATE, or `None` at EOF.
    async fn recv(&mut self) -> Option<Frame> {
        within(async {
            loop {
                while let Some(frame) = self.dec.decode(&mut self.buf).unwrap() {
                    if !matches!(frame, Frame::WindowUpdate(_)) {
                        return Some(frame);
                    }
                }
                if self.io.read_buf(&mut self.buf).await.unwrap() == 0 {
                    return None;
                }
            }
        })
        .await
    }
}

#[tokio::test]
async fn client_opens_three_streams_and_talks_both_ways() {
    let ((client, _ci), (_server, mut incoming)) = pair();
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let mut s = within(incoming.accept()).await.unwrap();
            let name = s.header("streamtype").unwrap().to_owned();
            seen.push((s.id(), name.clone()));
            tokio::spawn(async move {
                let mut got = Vec::new();
                s.read_to_end(&mut got).await.unwrap();
                s.write_all(format!("{name}:").as_bytes()).await.unwrap();
                s.write_all(&got).await.unwrap();
                s.shutdown().await.unwrap();
            });
        }
        seen
    });
    let mut streams = Vec::new();
    for name in ["stdin", "stdout", "Error"] {
        let s = within(client.open(h(&[("StreamType", name)])))
            .await
            .unwrap();
        streams.push(s);
    }
    assert_eq!(
        streams.iter().map(Stream::id).collect::<Vec<_>>(),
        vec![1, 3, 5]
    );
    for (i, s) in streams.iter_mut().enumerate() {
        s.write_all(format!("hello {i}").as_bytes()).await.unwrap();
        s.shutdown().await.unwrap();
    }
    for (i, s) in streams.iter_mut().enumerate() {
        let mut back = String::new();
        within(s.read_to_string(&mut back)).await.unwrap();
        let name = ["stdin", "stdout", "Error"][i];
        assert_eq!(back, format!("{name}:hello {i}"));
    }
    // Names were lowercased on the wire; values kept.
    assert_eq!(
        server.await.unwrap(),
        vec![
            (1, "stdin".to_owned()),
            (3, "stdout".to_owned()),
            (5, "Error".to_owned())
        ]
    );
}

#[tokio::test]
async fn one_mebibyte_each_way_at_once() {
    let ((client, _ci), (_server, mut incoming)) = pair();
    let payload: Vec<u8> = (0..(1 << 20))
        .map(|i: u32| (i * 7 + i / 1000) as u8)
        .collect();
    let expect = payload.clone();
    let server = tokio::spawn(async move {
        let s = within(incoming.accept()).await.unwrap();
        let (mut r, mut w) = tokio::io::split(s);
        // Echo while still receiving: needs both directions flowing at once.
        let copied = tokio::io::copy(&mut r, &mut w).await.unwrap();
        w.shutdown().await.unwrap();
        copied
    });
    let s = within(client.open(Vec::new())).await.unwrap();
    let (mut r, mut w) = tokio::io::split(s);
    let writer = tokio::spawn(async move {
        w.write_all(&payload).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    within(r.read_to_end(&mut back)).await.unwrap();
    writer.await.unwrap();
    assert_eq!(server.await.unwrap(), 1 << 20);
    assert_eq!(back.len(), expect.len());
    assert!(back == expect, "echoed bytes differ");
}

#[tokio::test]
async fn half_close_lets_the_server_answer_after_client_fin() {
    let ((client, _ci), (_server, mut incoming)) = pair();
    let server = tokio::spawn(async move {
        let mut s = within(incoming.accept()).await.unwrap();
        let mut req = Vec::new();
        s.read_to_end(&mut req).await.unwrap(); // sees the client's FIN
        // Reading again stays at EOF.
        assert_eq!(s.read(&mut [0; 8]).await.unwrap(), 0);
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.write_all(b"answer to ").await.unwrap();
        s.write_all(&req).await.unwrap();
        s.shutdown().await.unwrap();
        // Writing after our own FIN fails.
        assert!(s.write_all(b"late").await.is_err());
    });
    let mut s = within(client.open(Vec::new())).await.unwrap();
    s.write_all(b"question").await.unwrap();
    s.shutdown().await.unwrap();
    assert!(s.write_all(b"more").await.is_err(), "write after FIN");
    let mut back = Vec::new();
    within(s.read_to_end(&mut back)).await.unwrap();
    assert_eq!(back, b"answer to question");
    server.await.unwrap();
}

#[tokio::test]
async fn reset_by_peer_ends_reads_and_fails_writes() {
    let ((client, _ci), (_server, mut incoming)) = pair();
    let server = tokio::spawn(async move {
        let mut s = within(incoming.accept()).await.unwrap();
        s.write_all(b"partial").await.unwrap();
        s.flush().await.unwrap();
        s.reset();
        // After our own reset, reads are at EOF and writes fail.
        assert_eq!(s.read(&mut [0; 4]).await.unwrap(), 0);
        assert!(s.write_all(b"x").await.is_err());
    });
    let mut s = within(client.open(Vec::new())).await.unwrap();
    let mut got = Vec::new();
    within(s.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got, b"partial", "data before RST is delivered");
    assert_eq!(s.reset_status(), Some(RstStatus::Cancel));
    let err = s.write_all(b"too late").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    server.await.unwrap();
}

#[tokio::test]
async fn open_fails_on_rst_and_times_out_without_reply() {
    let (client, _ci, mut peer) = RawPeer::new(Role::Client);
    let opener = tokio::spawn(async move {
        let refused = client.open(h(&[("streamtype", "data")])).await;
        let timed_out = client.open(Vec::new()).await;
        (refused, timed_out, client)
    });
    let Some(Frame::SynStream(syn)) = peer.recv().await else {
        panic!("expected SYN_STREAM");
    };
    assert_eq!(syn.stream_id, 1);
    assert_eq!(syn.headers, h(&[("streamtype", "data")]));
    peer.send(Frame::RstStream(RstStream {
        stream_id: 1,
        status: RstStatus::RefusedStream,
    }))
    .await;
    let Some(Frame::SynStream(syn)) = peer.recv().await else {
        panic!("expected second SYN_STREAM");
    };
    assert_eq!(syn.stream_id, 3);
    // No reply: the client gives up and cancels the stream.
    assert_eq!(
        peer.recv().await,
        Some(Frame::RstStream(RstStream {
            stream_id: 3,
            status: RstStatus::Cancel
        }))
    );
    let (refused, timed_out, _client) = opener.await.unwrap();
    assert!(matches!(
        refused,
        Err(Error::Reset {
            stream_id: 1,
            status: RstStatus::RefusedStream
        })
    ));
    assert!(matches!(
        timed_out,
        Err(Error::OpenTimeout { stream_id: 3, .. })
    ));
}

#[tokio::test]
async fn pings_are_answered_and_measured() {
    // A peer's PING (server parity, even) is echoed with the same id.
    let (client, _ci, mut peer) = RawPeer::new(Role::Client);
    peer.send(Frame::Ping(Ping { id: 2 })).await;
    assert_eq!(peer.recv().await, Some(Frame::Ping(Ping { id: 2 })));
    // Our own PING uses client parity, and the echo completes it.
    let pinger = tokio::spawn(async move { client.ping().await });
    assert_eq!(peer.recv().await, Some(Frame::Ping(Ping { id: 1 })));
    peer.send(Frame::Ping(Ping { id: 1 })).await;
    within(pinger).await.unwrap().unwrap();
    // Session to session.
    let ((client, _ci), (server, _si)) = pair();
    within(client.ping()).await.unwrap();
    within(server.ping()).await.unwrap();
}

#[tokio::test]
async fn server_side_goes_through_the_wire_as_spdystream_expects() {
    let (_server, mut incoming, mut peer) = RawPeer::new(Role::Server);
    peer.send(Frame::SynStream(crate::frame::SynStream {
        stream_id: 1,
        associated_stream_id: 0,
        priority: 0,
        slot: 0,
        fin: false,
        unidirectional: false,
        headers: h(&[("streamtype", "stdout")]),
    }))
    .await;
    let mut s = within(incoming.accept()).await.unwrap();
    assert_eq!(s.headers(), h(&[("streamtype", "stdout")]).as_slice());
    // The reply has empty headers and comes before any data.
    assert_eq!(
        peer.recv().await,
        Some(Frame::SynReply(SynReply {
            stream_id: 1,
            fin: false,
            headers: Vec::new()
        }))
    );
    s.write_all(b"out").await.unwrap();
    s.shutdown().await.unwrap();
    assert_eq!(
        peer.recv().await,
        Some(Frame::Data(Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from_static(b"out")
        }))
    );
    assert_eq!(
        peer.recv().await,
        Some(Frame::Data(Data {
            stream_id: 1,
            fin: true,
            data: Bytes::new()
        }))
    );
    // A stream id that goes backwards is refused with PROTOCOL_ERROR.
    peer.send(Frame::SynStream(crate::frame::SynStream {
        stream_id: 1,
        associated_stream_id: 0,
        priority: 0,
        slot: 0,
        fin: false,
        unidirectional: false,
        headers: Vec::new(),
    }))
    .await;
    assert_eq!(
        peer.recv().await,
        Some(Frame::RstStream(RstStream {
            stream_id: 1,
            status: RstStatus::ProtocolError
        }))
    );
}

#[tokio::test]
async fn goaway_from_peer_stops_new_streams_but_lets_old_ones_finish() {
    let (client, _ci, mut peer) = RawPeer::new(Role::Client);
    let opener = tokio::spawn(async move {
        let s = client.open(Vec::new()).await.unwrap();
        (s, client)
    });
    let Some(Frame::SynStream(syn)) = peer.recv().await else {
        panic!("expected SYN_STREAM");
    };
    peer.send(Frame::SynReply(SynReply {
        stream_id: syn.stream_id,
        fin: false,
        headers: Vec::new(),
    }))
    .await;
    let (mut s, client) = opener.await.unwrap();
    // The peer processed our stream 1 and takes no more.
    peer.send(Frame::GoAway(GoAway {
        last_good_stream_id: 1,
        status: GoAwayStatus::Ok,
    }))
    .await;
    peer.send(Frame::Data(Data {
        stream_id: 1,
        fin: true,
        data: Bytes::from_static(b"still here"),
    }))
    .await;
    // Frames are handled in order: once the data is read, GOAWAY was seen.
    let mut got = Vec::new();
    within(s.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got, b"still here");
    assert!(matches!(
        client.open(Vec::new()).await,
        Err(Error::GoneAway)
    ));
    // The stream opened before GOAWAY still sends.
    s.write_all(b"bye").await.unwrap();
    s.shutdown().await.unwrap();
    assert_eq!(
        peer.recv().await,
        Some(Frame::Data(Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from_static(b"bye")
        }))
    );
    assert!(matches!(
        peer.recv().await,
        Some(Frame::Data(Data { fin: true, .. }))
    ));
    // Both halves done after GOAWAY: the session closes by itself.
    within(client.closed()).await;
    assert_eq!(client.close_reason(), Some(CloseReason::GoneAway));
}

#[tokio::test]
async fn goaway_between_sessions_and_graceful_close() {
    let ((client, _ci), (server, mut incoming)) = pair();
    let (c, s) = within(async { tokio::join!(client.open(Vec::new()), incoming.accept()) }).await;
    let (mut c, mut s) = (c.unwrap(), s.unwrap());
    // The server closes: GOAWAY now, connection down once streams finish.
    let closer = tokio::spawn(async move {
        server.close().await;
        server.close_reason()
    });
    within(async {
        while !matches!(client.open(Vec::new()).await, Err(Error::GoneAway)) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    // The existing stream still carries data both ways.
    c.write_all(b"ping").await.unwrap();
    c.shutdown().await.unwrap();
    let mut got = Vec::new();
    within(s.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got, b"ping");
    s.write_all(b"pong").await.unwrap();
    s.shutdown().await.unwrap();
    let mut back = Vec::new();
    within(c.read_to_end(&mut back)).await.unwrap();
    assert_eq!(back, b"pong");
    assert_eq!(within(closer).await.unwrap(), Some(CloseReason::Local));
    within(client.closed()).await;
    assert!(incoming.accept().await.is_none());
}

#[tokio::test]
async fn refused_after_goaway_fails_our_later_streams() {
    let (client, _ci, mut peer) = RawPeer::new(Role::Client);
    let opener = tokio::spawn(async move { client.open(Vec::new()).await });
    let Some(Frame::SynStream(syn)) = peer.recv().await else {
        panic!("expected SYN_STREAM");
    };
    assert_eq!(syn.stream_id, 1);
    // The peer never processed stream 1.
    peer.send(Frame::GoAway(GoAway {
        last_good_stream_id: 0,
        status: GoAwayStatus::Ok,
    }))
    .await;
    assert!(matches!(
        within(opener).await.unwrap(),
        Err(Error::GoneAway)
    ));
}

#[tokio::test]
async fn socket_drop_fails_streams_and_ends_the_session() {
    let (client, _ci, mut peer) = RawPeer::new(Role::Client);
    let c2 = client.clone();
    let opener = tokio::spawn(async move { c2.open(Vec::new()).await.unwrap() });
    let Some(Frame::SynStream(syn)) = peer.recv().await else {
        panic!("expected SYN_STREAM");
    };
    peer.send(Frame::SynReply(SynReply {
        stream_id: syn.stream_id,
        fin: false,
        headers: Vec::new(),
    }))
    .await;
    peer.send(Frame::Data(Data {
        stream_id: syn.stream_id,
        fin: false,
        data: Bytes::from_static(b"last words"),
    }))
    .await;
    let mut s = opener.await.unwrap();
    drop(peer);
    let mut buf = [0u8; 10];
    within(s.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"last words");
    let err = within(s.read(&mut buf)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    within(client.closed()).await;
    assert_eq!(client.close_reason(), Some(CloseReason::PeerClosed));
    assert!(s.write_all(b"x").await.is_err());
    assert!(matches!(
        client.open(Vec::new()).await,
        Err(Error::Closed(_))
    ));
}

#[tokio::test]
async fn malformed_input_gets_goaway_protocol_error() {
    let (client, _ci, mut peer) = RawPeer::new(Role::Client);
    // A control frame of SPDY version 2.
    peer.io
        .write_all(&[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1])
        .await
        .unwrap();
    assert_eq!(
        peer.recv().await,
        Some(Frame::GoAway(GoAway {
            last_good_stream_id: 0,
            status: GoAwayStatus::ProtocolError
        }))
    );
    assert_eq!(peer.recv().await, None, "then the socket closes");
    within(client.closed()).await;
    assert!(matches!(
        client.close_reason(),
        Some(CloseReason::Protocol(_))
    ));
}

#[tokio::test]
async fn unread_stream_applies_back_pressure() {
    let config = Config {
        max_stream_buffer: 64 * 1024,
        write_buffer: 64 * 1024,
        ..Config::default()
    };
    let ((client, _ci), (_server, mut incoming)) = pair_with(&config);
    let (c, s) = within(async { tokio::join!(client.open(Vec::new()), incoming.accept()) }).await;
    let (mut c, mut s) = (c.unwrap(), s.unwrap());
    // 8 MiB into a stream nobody reads: the writer must stall, because the
    // server's buffer, the socket and our queue are all bounded.
    let total = 8 << 20;
    let writer = tokio::spawn(async move {
        let chunk = vec![0x5a; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            c.write_all(&chunk).await.unwrap();
            sent += chunk.len();
        }
        c.shutdown().await.unwrap();
        c
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!writer.is_finished(), "writer was not held back");
    // Reading releases it.
    let mut got = 0usize;
    let mut buf = vec![0; 64 * 1024];
    within(async {
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            assert!(buf[..n].iter().all(|&b| b == 0x5a));
            got += n;
        }
    })
    .await;
    assert_eq!(got, total);
    within(writer).await.unwrap();
}

#[tokio::test]
async fn consumed_data_is_acknowledged_with_window_updates() {
    let (_client, mut incoming, mut peer) = RawPeer::new(Role::Client);
    peer.send(Frame::SynStream(crate::frame::SynStream {
        stream_id: 2,
        associated_stream_id: 0,
        priority: 0,
        slot: 0,
        fin: false,
        unidirectional: false,
        headers: Vec::new(),
    }))
    .await;
    let mut s = within(incoming.accept()).await.unwrap();
    assert!(matches!(peer.recv().await, Some(Frame::SynReply(_))));
    peer.send(Frame::Data(Data {
        stream_id: 2,
        fin: false,
        data: Bytes::from(vec![1; 40_000]),
    }))
    .await;
    let mut buf = vec![0; 40_000];
    within(s.read_exact(&mut buf)).await.unwrap();
    // Both the stream and the session window are topped up.
    let mut updates = Vec::new();
    within(async {
        while updates.len() < 2 {
            while let Some(frame) = peer.dec.decode(&mut peer.buf).unwrap() {
                if let Frame::WindowUpdate(w) = frame {
                    updates.push((w.stream_id, w.delta));
                }
            }
            if updates.len() < 2 {
                peer.io.read_buf(&mut peer.buf).await.unwrap();
            }
        }
    })
    .await;
    updates.sort_unstable();
    assert_eq!(updates, vec![(0, 40_000), (2, 40_000)]);
}

#[tokio::test]
async fn dropping_the_session_sends_goaway_and_closes_when_streams_end() {
    let (client, _ci, mut peer) = RawPeer::new(Role::Client);
    drop(client);
    assert_eq!(
        peer.recv().await,
        Some(Frame::GoAway(GoAway {
            last_good_stream_id: 0,
            status: GoAwayStatus::Ok
        }))
    );
    assert_eq!(peer.recv().await, None, "no streams: the socket closes");
}

#[tokio::test]
async fn dropping_a_stream_resets_it_when_the_peer_may_still_send() {
    let ((client, _ci), (_server, mut incoming)) = pair();
    let (c, s) = within(async { tokio::join!(client.open(Vec::new()), incoming.accept()) }).await;
    let (c, mut s) = (c.unwrap(), s.unwrap());
    drop(c);
    let mut got = Vec::new();
    within(s.read_to_end(&mut got)).await.unwrap();
    assert!(got.is_empty());
    assert_eq!(s.reset_status(), Some(RstStatus::Cancel));
}
