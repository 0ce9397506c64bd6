use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, FlushCompress};

use super::header_block::{HeaderDecompressor, MAX_HEADER_BLOCK, decode_block, encode_block};
use super::*;
use crate::dictionary::{SPDY3_DICTIONARY, SPDY3_DICTIONARY_ID};

fn h(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn decode_one(dec: &mut Decoder, bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = dec.decode(&mut buf).unwrap().expect("a whole frame");
    assert!(buf.is_empty(), "frame left {} bytes", buf.len());
    frame
}

fn all_frames() -> Vec<Frame> {
    vec![
        Frame::SynStream(SynStream {
            stream_id: 1,
            associated_stream_id: 0,
            priority: 3,
            slot: 0,
            fin: false,
            unidirectional: false,
            headers: h(&[("streamtype", "error"), ("port", "80")]),
        }),
        Frame::SynStream(SynStream {
            stream_id: MAX_STREAM_ID,
            associated_stream_id: 7,
            priority: 7,
            slot: 2,
            fin: true,
            unidirectional: true,
            headers: Vec::new(),
        }),
        Frame::SynReply(SynReply {
            stream_id: 1,
            fin: false,
            headers: Vec::new(),
        }),
        Frame::SynReply(SynReply {
            stream_id: 3,
            fin: true,
            headers: h(&[(":status", "200")]),
        }),
        Frame::RstStream(RstStream {
            stream_id: 5,
            status: RstStatus::Cancel,
        }),
        Frame::RstStream(RstStream {
            stream_id: 5,
            status: RstStatus::Other(42),
        }),
        Frame::Settings(Settings {
            clear: true,
            entries: vec![
                Setting {
                    flags: 1,
                    id: setting_id::INITIAL_WINDOW_SIZE,
                    value: 65536,
                },
                Setting {
                    flags: 0,
                    id: setting_id::MAX_CONCURRENT_STREAMS,
                    value: 100,
                },
            ],
        }),
        Frame::Settings(Settings {
            clear: false,
            entries: Vec::new(),
        }),
        Frame::Ping(Ping { id: 1 }),
        Frame::Ping(Ping { id: u32::MAX }),
        Frame::GoAway(GoAway {
            last_good_stream_id: 9,
            status: GoAwayStatus::ProtocolError,
        }),
        Frame::Headers(HeadersFrame {
            stream_id: 7,
            fin: true,
            headers: h(&[("x-a", "1"), ("x-a", "2")]),
        }),
        Frame::WindowUpdate(WindowUpdate {
            stream_id: 0,
            delta: 1 << 20,
        }),
        Frame::WindowUpdate(WindowUpdate {
            stream_id: 3,
            delta: 0x7fff_ffff,
        }),
        Frame::Data(Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from_static(b"hello"),
        }),
        Frame::Data(Data {
            stream_id: 1,
            fin: true,
            data: Bytes::new(),
        }),
    ]
}

#[test]
fn every_frame_type_round_trips() {
    let mut enc = Encoder::new();
    let mut dec = Decoder::new();
    for frame in all_frames() {
        let mut buf = BytesMut::new();
        enc.encode(&frame, &mut buf).unwrap();
        let back = decode_one(&mut dec, &buf);
        assert_eq!(back, frame);
    }
}

#[test]
fn frames_decode_back_to_back_from_one_buffer() {
    let mut enc = Encoder::new();
    let mut buf = BytesMut::new();
    for frame in all_frames() {
        enc.encode(&frame, &mut buf).unwrap();
    }
    let mut dec = Decoder::new();
    let mut got = Vec::new();
    while let Some(frame) = dec.decode(&mut buf).unwrap() {
        got.push(frame);
    }
    assert_eq!(got, all_frames());
}

#[test]
fn partial_input_needs_more_without_consuming() {
    let mut enc = Encoder::new();
    let mut wire = BytesMut::new();
    for frame in all_frames() {
        enc.encode(&frame, &mut wire).unwrap();
    }
    // Feed one byte at a time: every frame must appear exactly once.
    let mut dec = Decoder::new();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &b in &wire {
        buf.put_u8(b);
        let before = buf.len();
        match dec.decode(&mut buf).unwrap() {
            Some(frame) => got.push(frame),
            None => assert_eq!(buf.len(), before, "need-more must not consume"),
        }
    }
    assert!(buf.is_empty());
    assert_eq!(got, all_frames());
}

// Hand-built vectors, written from the draft 3.1 frame layouts.

#[test]
fn rst_stream_from_spec_bytes() {
    // 1|version 3|type 3, flags 0, length 8, stream 5, status 5 (CANCEL)
    let bytes = hex("80030003000000080000000500000005");
    let frame = decode_one(&mut Decoder::new(), &bytes);
    assert_eq!(
        frame,
        Frame::RstStream(RstStream {
            stream_id: 5,
            status: RstStatus::Cancel
        })
    );
    let mut out = BytesMut::new();
    Encoder::new().encode(&frame, &mut out).unwrap();
    assert_eq!(&out[..], &bytes[..]);
}

#[test]
fn settings_from_spec_bytes() {
    // type 4, flags CLEAR, length 20, 2 entries:
    // flags 1 | id 7 (INITIAL_WINDOW_SIZE) = 65536; flags 0 | id 4 = 1000
    let bytes = hex(concat!(
        "8003000401000014000000020100000700010000000000040000",
        "03e8"
    ));
    let frame = decode_one(&mut Decoder::new(), &bytes);
    assert_eq!(
        frame,
        Frame::Settings(Settings {
            clear: true,
            entries: vec![
                Setting {
                    flags: 1,
                    id: 7,
                    value: 65536
                },
                Setting {
                    flags: 0,
                    id: 4,
                    value: 1000
                },
            ],
        })
    );
    let mut out = BytesMut::new();
    Encoder::new().encode(&frame, &mut out).unwrap();
    assert_eq!(&out[..], &bytes[..]);
}

#[test]
fn ping_goaway_window_update_from_spec_bytes() {
    let ping = hex("800300060000000400000003");
    assert_eq!(
        decode_one(&mut Decoder::new(), &ping),
        Frame::Ping(Ping { id: 3 })
    );
    // GOAWAY, length 8, last good 7 (reserved bit set: must be masked), status 2
    let goaway = hex("80030007000000088000000700000002");
    assert_eq!(
        decode_one(&mut Decoder::new(), &goaway),
        Frame::GoAway(GoAway {
            last_good_stream_id: 7,
            status: GoAwayStatus::InternalError
        })
    );
    // WINDOW_UPDATE for the session (stream 0), delta 0x10000
    let wu = hex(concat!("800300090000000800000000", "00010000"));
    assert_eq!(
        decode_one(&mut Decoder::new(), &wu),
        Frame::WindowUpdate(WindowUpdate {
            stream_id: 0,
            delta: 0x10000
        })
    );
}

#[test]
fn data_frames_from_spdystream_wire_capture() {
    // "Writing to stream" on stream 1, then an empty DATA with FIN: the
    // spdystream README client as captured in node-spdy-transport's tests.
    let bytes = hex(concat!(
        "000000010000001157726974696e6720746f2073747265616d",
        "0000000101000000"
    ));
    let mut buf = BytesMut::from(&bytes[..]);
    let mut dec = Decoder::new();
    assert_eq!(
        dec.decode(&mut buf).unwrap(),
        Some(Frame::Data(Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from_static(b"Writing to stream")
        }))
    );
    assert_eq!(
        dec.decode(&mut buf).unwrap(),
        Some(Frame::Data(Data {
            stream_id: 1,
            fin: true,
            data: Bytes::new()
        }))
    );
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
}

#[test]
fn syn_reply_from_spdystream_wire_capture() {
    // A Go spdystream server's SYN_REPLY with empty headers: zlib header
    // 78 f9, DICTID e3c6a7c2 (the SPDY/3 dictionary), one sync-flushed block.
    let bytes = hex("80030002000000140000000178f9e3c6a7c202a6230600000000ffff");
    assert_eq!(
        decode_one(&mut Decoder::new(), &bytes),
        Frame::SynReply(SynReply {
            stream_id: 1,
            fin: false,
            headers: Vec::new()
        })
    );
}

#[test]
fn syn_stream_from_foreign_encoder() {
    // A SYN_STREAM for stream 1 carrying :method GET and :path / (among
    // others), produced by node-spdy-transport's encoder.
    let bytes = hex(concat!(
        "800300010000002c0000000100000000000078",
        "f9e3c6a7c202e50e507ab442a45a77d7105006",
        "b32a4804974d8cfa00000000ffff"
    ));
    let Frame::SynStream(f) = decode_one(&mut Decoder::new(), &bytes) else {
        panic!("not a SYN_STREAM");
    };
    assert_eq!(f.stream_id, 1);
    assert_eq!(f.associated_stream_id, 0);
    assert!(!f.fin);
    assert!(
        f.headers
            .contains(&(":method".to_owned(), "GET".to_owned()))
    );
    assert!(f.headers.contains(&(":path".to_owned(), "/".to_owned())));
}

/// A zlib stream written by hand (RFC 1950/1951): header with FDICT and the
/// SPDY/3 DICTID, then one non-final stored block holding `block`.
fn hand_zlib_stored(block: &[u8]) -> Vec<u8> {
    // CMF 0x78 (deflate, 32 KiB window); FLG 0xf9 = FLEVEL 3 | FDICT, with
    // FCHECK making 0x78f9 a multiple of 31.
    let mut z = vec![0x78, 0xf9];
    z.extend_from_slice(&SPDY3_DICTIONARY_ID.to_be_bytes());
    z.push(0x00); // BFINAL 0, BTYPE 00 (stored), padded to the byte
    let len = block.len() as u16;
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&(!len).to_le_bytes());
    z.extend_from_slice(block);
    z
}

#[test]
fn syn_stream_hand_built_with_stored_zlib_block() {
    // Name/value block: 1 pair, "streamtype" = "stdout"
    let mut block = Vec::new();
    block.extend_from_slice(&1u32.to_be_bytes());
    block.extend_from_slice(&10u32.to_be_bytes());
    block.extend_from_slice(b"streamtype");
    block.extend_from_slice(&6u32.to_be_bytes());
    block.extend_from_slice(b"stdout");
    let z = hand_zlib_stored(&block);
    let mut frame = Vec::new();
    frame.extend_from_slice(&[0x80, 0x03, 0x00, 0x01]);
    let length = 10 + z.len() as u32;
    frame.extend_from_slice(&(0x0100_0000 | length).to_be_bytes()); // FLAG_FIN
    frame.extend_from_slice(&3u32.to_be_bytes()); // stream 3
    frame.extend_from_slice(&0u32.to_be_bytes()); // associated
    frame.push(2 << 5); // priority 2
    frame.push(0); // slot
    frame.extend_from_slice(&z);
    assert_eq!(
        decode_one(&mut Decoder::new(), &frame),
        Frame::SynStream(SynStream {
            stream_id: 3,
            associated_stream_id: 0,
            priority: 2,
            slot: 0,
            fin: true,
            unidirectional: false,
            headers: h(&[("streamtype", "stdout")]),
        })
    );
}

#[test]
fn decompressor_supplies_dictionary_to_an_fdict_stream() {
    // Compress two blocks the way Go does: one zlib stream with the
    // dictionary set, a sync flush after each block.
    let mut z = Compress::new(Compression::best(), true);
    z.set_dictionary(SPDY3_DICTIONARY).unwrap();
    let mut sync = |input: &[u8]| {
        let mut out = Vec::with_capacity(4096);
        z.compress_vec(input, &mut out, FlushCompress::Sync)
            .unwrap();
        out
    };
    let one = encode_block(&h(&[
        ("streamtype", "stdin"),
        ("content-type", "text/plain"),
    ]))
    .unwrap();
    let two = encode_block(&h(&[("streamtype", "stdout")])).unwrap();
    let c1 = sync(&one);
    let c2 = sync(&two);
    // FDICT is set and the DICTID is the SPDY/3 dictionary's.
    assert_eq!(c1[1] & 0x20, 0x20);
    assert_eq!(
        u32::from_be_bytes([c1[2], c1[3], c1[4], c1[5]]),
        SPDY3_DICTIONARY_ID
    );
    assert_eq!(
        &c1[c1.len() - 4..],
        &[0, 0, 0xff, 0xff],
        "sync flush marker"
    );

    let mut d = HeaderDecompressor::new();
    assert_eq!(d.decompress(&c1).unwrap(), one);
    assert_eq!(d.decompress(&c2).unwrap(), two);
}

#[test]
fn header_compression_continues_across_frames_both_directions() {
    let headers = h(&[("streamtype", "stdout"), ("x-kubernetes-pf-requestid", "0")]);
    let syn = |id| {
        Frame::SynStream(SynStream {
            stream_id: id,
            associated_stream_id: 0,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: false,
            headers: headers.clone(),
        })
    };
    let reply = |id| {
        Frame::SynReply(SynReply {
            stream_id: id,
            fin: false,
            headers: headers.clone(),
        })
    };
    let (mut c_enc, mut s_dec) = (Encoder::new(), Decoder::new());
    let (mut s_enc, mut c_dec) = (Encoder::new(), Decoder::new());
    let mut client_wire = Vec::new();
    let mut server_wire = Vec::new();
    for id in [1, 3, 5] {
        let mut b = BytesMut::new();
        c_enc.encode(&syn(id), &mut b).unwrap();
        assert_eq!(decode_one(&mut s_dec, &b), syn(id));
        client_wire.push(b);
        let mut b = BytesMut::new();
        s_enc.encode(&reply(id), &mut b).unwrap();
        assert_eq!(decode_one(&mut c_dec, &b), reply(id));
        server_wire.push(b);
    }
    // The context carried over: repeated headers shrink...
    assert!(client_wire[1].len() < client_wire[0].len());
    assert!(server_wire[2].len() < server_wire[0].len());
    // ...and a later frame cannot be read without the earlier ones.
    let mut fresh = Decoder::new();
    let mut later = client_wire[1].clone();
    assert!(fresh.decode(&mut later).is_err());
}

#[test]
fn header_block_format_and_multi_values() {
    let block = encode_block(&h(&[("Foo", "a"), ("bar", ""), ("foo", "b")])).unwrap();
    let mut expected = Vec::new();
    expected.extend_from_slice(&2u32.to_be_bytes());
    expected.extend_from_slice(&3u32.to_be_bytes());
    expected.extend_from_slice(b"foo");
    expected.extend_from_slice(&3u32.to_be_bytes());
    expected.extend_from_slice(b"a\0b");
    expected.extend_from_slice(&3u32.to_be_bytes());
    expected.extend_from_slice(b"bar");
    expected.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(block, expected);
    assert_eq!(
        decode_block(&block).unwrap(),
        h(&[("foo", "a"), ("foo", "b"), ("bar", "")])
    );
}

#[test]
fn encoder_rejects_what_it_cannot_send() {
    let mut enc = Encoder::new();
    let mut buf = BytesMut::new();
    let bad_header = Frame::SynReply(SynReply {
        stream_id: 1,
        fin: false,
        headers: h(&[("", "x")]),
    });
    assert!(matches!(
        enc.encode(&bad_header, &mut buf),
        Err(FrameError::InvalidHeader { .. })
    ));
    let nul = Frame::SynReply(SynReply {
        stream_id: 1,
        fin: false,
        headers: h(&[("a", "x\0y")]),
    });
    assert!(enc.encode(&nul, &mut buf).is_err());
    let zero = Frame::Data(Data {
        stream_id: 0,
        fin: false,
        data: Bytes::new(),
    });
    assert!(matches!(
        enc.encode(&zero, &mut buf),
        Err(FrameError::ZeroStreamId { .. })
    ));
    let big_id = Frame::RstStream(RstStream {
        stream_id: 1 << 31,
        status: RstStatus::Cancel,
    });
    assert!(matches!(
        enc.encode(&big_id, &mut buf),
        Err(FrameError::StreamIdTooLarge { .. })
    ));
    let huge = Frame::Data(Data {
        stream_id: 1,
        fin: false,
        data: Bytes::from(vec![0; MAX_FRAME_PAYLOAD + 1]),
    });
    assert!(matches!(
        enc.encode(&huge, &mut buf),
        Err(FrameError::PayloadTooLarge { .. })
    ));
    let big_headers = Frame::SynReply(SynReply {
        stream_id: 1,
        fin: false,
        headers: vec![("a".to_owned(), "x".repeat(MAX_HEADER_BLOCK))],
    });
    assert!(matches!(
        enc.encode(&big_headers, &mut buf),
        Err(FrameError::HeaderBlockTooLarge { .. })
    ));
    assert!(buf.is_empty(), "failed encodes write nothing");
    // The compressor was not disturbed by the failures.
    let ok = Frame::SynReply(SynReply {
        stream_id: 1,
        fin: false,
        headers: h(&[("a", "b")]),
    });
    enc.encode(&ok, &mut buf).unwrap();
    assert_eq!(decode_one(&mut Decoder::new(), &buf), ok);
}

#[test]
fn malformed_frames_are_errors() {
    let cases: &[(&str, &str)] = &[
        ("version 2", "80020003000000080000000500000005"),
        ("RST length 7", "8003000300000007000000050000000500"),
        ("RST status 0", "80030003000000080000000500000000"),
        ("RST stream 0", "80030003000000080000000000000005"),
        ("PING length 8", "80030006000000080000000100000000"),
        ("GOAWAY length 4", "800300070000000400000001"),
        ("WINDOW_UPDATE length 4", "800300090000000400000001"),
        (
            "SETTINGS count lies",
            concat!("800300040000000c0000000200000001", "00000001"),
        ),
        ("DATA stream 0", "0000000000000001ff"),
        ("SYN_STREAM too short", "80030001000000040000000100"),
        ("SYN_REPLY garbage zlib", "80030002000000080000000112345678"),
        ("SYN_REPLY no header block", "800300020000000400000001"),
    ];
    for (what, bytes) in cases {
        let mut buf = BytesMut::from(&hex(bytes)[..]);
        let res = Decoder::new().decode(&mut buf);
        assert!(res.is_err(), "{what}: {res:?}");
    }
}

#[test]
fn header_block_lies_are_errors() {
    // count 1000 in a 4-byte block
    assert!(decode_block(&1000u32.to_be_bytes()).is_err());
    // name length beyond the block
    let mut b = Vec::new();
    b.extend_from_slice(&1u32.to_be_bytes());
    b.extend_from_slice(&u32::MAX.to_be_bytes());
    b.extend_from_slice(b"abcdabcd");
    assert!(decode_block(&b).is_err());
    // trailing bytes
    let mut b = encode_block(&h(&[("a", "b")])).unwrap();
    b.push(0);
    assert!(decode_block(&b).is_err());
    // a stored zlib block holding a truncated name/value block
    let z = hand_zlib_stored(&[0, 0, 0, 1, 0, 0]);
    let mut d = HeaderDecompressor::new();
    let out = d.decompress(&z).unwrap();
    assert!(decode_block(&out).is_err());
}

#[test]
fn unknown_control_frames_are_surfaced_not_fatal() {
    let bytes = hex("8003000a00000002abcd");
    assert_eq!(
        decode_one(&mut Decoder::new(), &bytes),
        Frame::Unknown(UnknownFrame {
            frame_type: 10,
            flags: 0,
            payload: Bytes::from_static(&[0xab, 0xcd]),
        })
    );
}

#[test]
fn garbage_never_panics() {
    // Deterministic xorshift noise, alone and after a valid prefix.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut enc = Encoder::new();
    let mut valid = BytesMut::new();
    for frame in all_frames() {
        enc.encode(&frame, &mut valid).unwrap();
    }
    for round in 0..2000 {
        let len = (next() % 96) as usize;
        let mut buf = BytesMut::new();
        if round % 2 == 0 {
            buf.extend_from_slice(&valid[..(next() as usize) % valid.len()]);
        }
        for _ in 0..len {
            buf.put_u8(next() as u8);
        }
        if round % 3 == 0 && buf.len() >= 8 {
            // Keep lengths small so the garbage forms whole frames.
            buf[0] = 0x80 | (buf[0] & 0x01);
            buf[1] = 3;
            buf[5] = 0;
            buf[6] = 0;
        }
        let mut dec = Decoder::new();
        for _ in 0..64 {
            match dec.decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    // Truncating a valid frame's compressed block is an error, not a panic.
    let mut one = BytesMut::new();
    Encoder::new().encode(&all_frames()[0], &mut one).unwrap();
    for cut in 11..one.len() {
        let mut frame = one[..cut].to_vec();
        let length = (cut - 8) as u32;
        frame[5..8].copy_from_slice(&length.to_be_bytes()[1..]);
        let mut buf = BytesMut::from(&frame[..]);
        let _ = Decoder::new().decode(&mut buf);
    }
}

#[test]
fn dictionary_is_the_spdy3_one() {
    assert_eq!(SPDY3_DICTIONARY.len(), 1423);
    // Adler-32 (RFC 1950 section 8.2), computed here rather than by zlib.
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in SPDY3_DICTIONARY {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    assert_eq!((b << 16) | a, SPDY3_DICTIONARY_ID);
    // It opens with 65 length-prefixed words, starting "options".
    let mut rest = SPDY3_DICTIONARY;
    let mut words = Vec::new();
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        if len > 64 || len > tail.len() {
            break;
        }
        words.push(&tail[..len]);
        rest = &tail[len..];
    }
    assert_eq!(words.len(), 65);
    assert_eq!(words[0], b"options");
    assert_eq!(words[64], b"origin");
    assert!(rest.ends_with(b"enq=0."));
}
