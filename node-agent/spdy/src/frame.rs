//! SPDY/3.1 frames: types, an [`Encoder`] and an incremental [`Decoder`].
//!
//! Every frame starts with 8 bytes. A control frame is
//! `1 | version: u15 | type: u16 | flags: u8 | length: u24`, a data frame
//! `0 | stream_id: u31 | flags: u8 | length: u24`; `length` bytes of payload
//! follow. Frames that carry headers (SYN_STREAM, SYN_REPLY, HEADERS) compress
//! them with the session's zlib stream (see [`header_block`]), so an encoder
//! or decoder belongs to one direction of one session and must see every
//! frame of that direction, in order.

pub mod header_block;
#[cfg(test)]
mod tests;

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use header_block::{HeaderCompressor, HeaderDecompressor, decode_block, encode_block};

/// The SPDY version this crate speaks.
pub const VERSION: u16 = 3;
/// Length of every frame header.
pub const FRAME_HEADER_LEN: usize = 8;
/// Largest payload a frame can carry (the length field has 24 bits).
pub const MAX_FRAME_PAYLOAD: usize = 0x00ff_ffff;
/// Largest stream id (31 bits).
pub const MAX_STREAM_ID: u32 = 0x7fff_ffff;

/// FLAG_FIN on DATA, SYN_STREAM, SYN_REPLY and HEADERS.
pub const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL on SYN_STREAM.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// FLAG_SETTINGS_CLEAR_SETTINGS on SETTINGS.
pub const FLAG_CLEAR_SETTINGS: u8 = 0x01;

/// Control frame type codes.
pub mod kind {
    /// SYN_STREAM.
    pub const SYN_STREAM: u16 = 1;
    /// SYN_REPLY.
    pub const SYN_REPLY: u16 = 2;
    /// RST_STREAM.
    pub const RST_STREAM: u16 = 3;
    /// SETTINGS.
    pub const SETTINGS: u16 = 4;
    /// PING.
    pub const PING: u16 = 6;
    /// GOAWAY.
    pub const GOAWAY: u16 = 7;
    /// HEADERS.
    pub const HEADERS: u16 = 8;
    /// WINDOW_UPDATE.
    pub const WINDOW_UPDATE: u16 = 9;
}

/// SETTINGS ids (draft 3.1, section 2.6.4).
pub mod setting_id {
    /// SETTINGS_UPLOAD_BANDWIDTH.
    pub const UPLOAD_BANDWIDTH: u32 = 1;
    /// SETTINGS_DOWNLOAD_BANDWIDTH.
    pub const DOWNLOAD_BANDWIDTH: u32 = 2;
    /// SETTINGS_ROUND_TRIP_TIME.
    pub const ROUND_TRIP_TIME: u32 = 3;
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub const MAX_CONCURRENT_STREAMS: u32 = 4;
    /// SETTINGS_CURRENT_CWND.
    pub const CURRENT_CWND: u32 = 5;
    /// SETTINGS_DOWNLOAD_RETRANS_RATE.
    pub const DOWNLOAD_RETRANS_RATE: u32 = 6;
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub const INITIAL_WINDOW_SIZE: u32 = 7;
    /// SETTINGS_CLIENT_CERTIFICATE_VECTOR_SIZE.
    pub const CLIENT_CERTIFICATE_VECTOR_SIZE: u32 = 8;
}

/// Header name/value pairs in order; a name may repeat (sent NUL-joined).
pub type Headers = Vec<(String, String)>;

/// A malformed frame, or a frame that cannot be encoded.
///
/// A decode error leaves the session's header decompressor in an unknown
/// state, so a session treats every one as fatal.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A control frame of a version other than 3.
    #[error("unsupported SPDY version {version}")]
    UnsupportedVersion {
        /// The version field.
        version: u16,
    },
    /// A control frame whose length does not fit its type.
    #[error("{frame} frame with invalid length {length}")]
    InvalidLength {
        /// The frame type's name.
        frame: &'static str,
        /// The length field.
        length: usize,
    },
    /// A frame that needs a stream id carried 0.
    #[error("{frame} frame with stream id 0")]
    ZeroStreamId {
        /// The frame type's name.
        frame: &'static str,
    },
    /// A stream id above 2^31 - 1 was given to the encoder.
    #[error("stream id {id} does not fit in 31 bits")]
    StreamIdTooLarge {
        /// The id.
        id: u32,
    },
    /// RST_STREAM with status 0, which the spec forbids.
    #[error("RST_STREAM for stream {stream_id} with status 0")]
    ZeroRstStatus {
        /// The stream.
        stream_id: u32,
    },
    /// A payload over 2^24 - 1 bytes was given to the encoder.
    #[error("{frame} payload of {length} bytes exceeds the 24-bit length field")]
    PayloadTooLarge {
        /// The frame type's name.
        frame: &'static str,
        /// The payload length.
        length: usize,
    },
    /// A header the encoder cannot represent.
    #[error("invalid header {name:?}: {reason}")]
    InvalidHeader {
        /// The header name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A header block over [`header_block::MAX_HEADER_BLOCK`] bytes.
    #[error("header block exceeds {limit} bytes")]
    HeaderBlockTooLarge {
        /// The limit.
        limit: usize,
    },
    /// A name/value block that does not parse.
    #[error("malformed header block: {0}")]
    MalformedHeaderBlock(&'static str),
    /// The peer's zlib stream asks for a dictionary other than SPDY/3's.
    #[error("header zlib stream wants unknown dictionary {id:#010x}")]
    UnknownDictionary {
        /// The DICTID from the zlib header.
        id: u32,
    },
    /// zlib refused the compressed header bytes.
    #[error("header decompression failed")]
    Decompress {
        /// zlib's error.
        #[source]
        source: flate2::DecompressError,
    },
    /// zlib failed to compress (not expected to happen).
    #[error("header compression failed")]
    Compress {
        /// zlib's error.
        #[source]
        source: flate2::CompressError,
    },
}

/// RST_STREAM status codes (draft 3.1, section 2.6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RstStatus {
    /// 1: PROTOCOL_ERROR.
    ProtocolError,
    /// 2: INVALID_STREAM.
    InvalidStream,
    /// 3: REFUSED_STREAM.
    RefusedStream,
    /// 4: UNSUPPORTED_VERSION.
    UnsupportedVersion,
    /// 5: CANCEL.
    Cancel,
    /// 6: INTERNAL_ERROR.
    InternalError,
    /// 7: FLOW_CONTROL_ERROR.
    FlowControlError,
    /// 8: STREAM_IN_USE.
    StreamInUse,
    /// 9: STREAM_ALREADY_CLOSED.
    StreamAlreadyClosed,
    /// 11: FRAME_TOO_LARGE.
    FrameTooLarge,
    /// Any other non-zero code.
    Other(u32),
}

impl RstStatus {
    /// The wire code.
    pub fn code(self) -> u32 {
        match self {
            Self::ProtocolError => 1,
            Self::InvalidStream => 2,
            Self::RefusedStream => 3,
            Self::UnsupportedVersion => 4,
            Self::Cancel => 5,
            Self::InternalError => 6,
            Self::FlowControlError => 7,
            Self::StreamInUse => 8,
            Self::StreamAlreadyClosed => 9,
            Self::FrameTooLarge => 11,
            Self::Other(code) => code,
        }
    }

    /// The status for a wire code.
    pub fn from_code(code: u32) -> Self {
        match code {
            1 => Self::ProtocolError,
            2 => Self::InvalidStream,
            3 => Self::RefusedStream,
            4 => Self::UnsupportedVersion,
            5 => Self::Cancel,
            6 => Self::InternalError,
            7 => Self::FlowControlError,
            8 => Self::StreamInUse,
            9 => Self::StreamAlreadyClosed,
            11 => Self::FrameTooLarge,
            other => Self::Other(other),
        }
    }
}

impl fmt::Display for RstStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Other(code) => write!(f, "status {code}"),
            known => write!(f, "{known:?}"),
        }
    }
}

/// GOAWAY status codes (draft 3.1, section 2.6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GoAwayStatus {
    /// 0: OK.
    Ok,
    /// 1: PROTOCOL_ERROR.
    ProtocolError,
    /// 2: INTERNAL_ERROR.
    InternalError,
    /// Any other code.
    Other(u32),
}

impl GoAwayStatus {
    /// The wire code.
    pub fn code(self) -> u32 {
        match self {
            Self::Ok => 0,
            Self::ProtocolError => 1,
            Self::InternalError => 2,
            Self::Other(code) => code,
        }
    }

    /// The status for a wire code.
    pub fn from_code(code: u32) -> Self {
        match code {
            0 => Self::Ok,
            1 => Self::ProtocolError,
            2 => Self::InternalError,
            other => Self::Other(other),
        }
    }
}

/// SYN_STREAM: opens a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynStream {
    /// The new stream (odd from clients, even from servers).
    pub stream_id: u32,
    /// The stream this one is associated with (server push), or 0.
    pub associated_stream_id: u32,
    /// Priority 0 (highest) to 7.
    pub priority: u8,
    /// Credential slot (0 for none).
    pub slot: u8,
    /// FLAG_FIN: the sender will send nothing more.
    pub fin: bool,
    /// FLAG_UNIDIRECTIONAL: the receiver may not send on this stream.
    pub unidirectional: bool,
    /// The headers.
    pub headers: Headers,
}

/// SYN_REPLY: accepts a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynReply {
    /// The stream.
    pub stream_id: u32,
    /// FLAG_FIN.
    pub fin: bool,
    /// The headers.
    pub headers: Headers,
}

/// RST_STREAM: aborts a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RstStream {
    /// The stream.
    pub stream_id: u32,
    /// Why.
    pub status: RstStatus,
}

/// One SETTINGS entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// FLAG_SETTINGS_PERSIST_VALUE (1) / FLAG_SETTINGS_PERSISTED (2).
    pub flags: u8,
    /// The id (24 bits), see [`setting_id`].
    pub id: u32,
    /// The value.
    pub value: u32,
}

/// SETTINGS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// FLAG_SETTINGS_CLEAR_SETTINGS.
    pub clear: bool,
    /// The entries.
    pub entries: Vec<Setting>,
}

/// PING (echoed by the receiver when the id is of the sender's parity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    /// Odd from clients, even from servers.
    pub id: u32,
}

/// GOAWAY: no new streams on this session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoAway {
    /// The last stream the sender accepted from the receiver.
    pub last_good_stream_id: u32,
    /// Why.
    pub status: GoAwayStatus,
}

/// HEADERS: more headers on an open stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadersFrame {
    /// The stream.
    pub stream_id: u32,
    /// FLAG_FIN.
    pub fin: bool,
    /// The headers.
    pub headers: Headers,
}

/// WINDOW_UPDATE: grants send window (stream 0 is the session window, 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowUpdate {
    /// The stream, or 0 for the session.
    pub stream_id: u32,
    /// Bytes added to the window (31 bits).
    pub delta: u32,
}

/// DATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    /// The stream.
    pub stream_id: u32,
    /// FLAG_FIN: the sender's half of the stream is closed.
    pub fin: bool,
    /// The payload.
    pub data: Bytes,
}

/// A control frame of a type this crate does not know; the spec says to
/// ignore it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFrame {
    /// The type field.
    pub frame_type: u16,
    /// The flags.
    pub flags: u8,
    /// The payload.
    pub payload: Bytes,
}

/// Any SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// SYN_STREAM.
    SynStream(SynStream),
    /// SYN_REPLY.
    SynReply(SynReply),
    /// RST_STREAM.
    RstStream(RstStream),
    /// SETTINGS.
    Settings(Settings),
    /// PING.
    Ping(Ping),
    /// GOAWAY.
    GoAway(GoAway),
    /// HEADERS.
    Headers(HeadersFrame),
    /// WINDOW_UPDATE.
    WindowUpdate(WindowUpdate),
    /// DATA.
    Data(Data),
    /// A control frame of an unknown type (decoded only; not encodable).
    Unknown(UnknownFrame),
}

impl Frame {
    /// The frame type's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::SynStream(_) => "SYN_STREAM",
            Self::SynReply(_) => "SYN_REPLY",
            Self::RstStream(_) => "RST_STREAM",
            Self::Settings(_) => "SETTINGS",
            Self::Ping(_) => "PING",
            Self::GoAway(_) => "GOAWAY",
            Self::Headers(_) => "HEADERS",
            Self::WindowUpdate(_) => "WINDOW_UPDATE",
            Self::Data(_) => "DATA",
            Self::Unknown(_) => "unknown control",
        }
    }
}

/// Writes frames of one direction of a session; owns that direction's header
/// compressor.
#[derive(Debug, Default)]
pub struct Encoder {
    compressor: HeaderCompressor,
}

impl Encoder {
    /// An encoder with a fresh compression context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `frame` to `dst`.
    ///
    /// Validation happens before the header compressor is touched, so an
    /// error leaves the session's compression context usable.
    pub fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        match frame {
            Frame::SynStream(f) => {
                let id = stream_id(f.stream_id, "SYN_STREAM")?;
                let assoc = check_id(f.associated_stream_id)?;
                let block = self.header_block(&f.headers)?;
                let mut flags = 0;
                if f.fin {
                    flags |= FLAG_FIN;
                }
                if f.unidirectional {
                    flags |= FLAG_UNIDIRECTIONAL;
                }
                control_header(dst, kind::SYN_STREAM, flags, 10 + block.len(), "SYN_STREAM")?;
                dst.put_u32(id);
                dst.put_u32(assoc);
                dst.put_u8((f.priority & 0x07) << 5);
                dst.put_u8(f.slot);
                dst.put_slice(&block);
            }
            Frame::SynReply(f) => {
                self.stream_headers(
                    dst,
                    kind::SYN_REPLY,
                    "SYN_REPLY",
                    f.stream_id,
                    f.fin,
                    &f.headers,
                )?;
            }
            Frame::Headers(f) => {
                self.stream_headers(
                    dst,
                    kind::HEADERS,
                    "HEADERS",
                    f.stream_id,
                    f.fin,
                    &f.headers,
                )?;
            }
            Frame::RstStream(f) => {
                let id = stream_id(f.stream_id, "RST_STREAM")?;
                if f.status.code() == 0 {
                    return Err(FrameError::ZeroRstStatus { stream_id: id });
                }
                control_header(dst, kind::RST_STREAM, 0, 8, "RST_STREAM")?;
                dst.put_u32(id);
                dst.put_u32(f.status.code());
            }
            Frame::Settings(f) => {
                let length = f
                    .entries
                    .len()
                    .checked_mul(8)
                    .and_then(|n| n.checked_add(4))
                    .unwrap_or(usize::MAX);
                let flags = if f.clear { FLAG_CLEAR_SETTINGS } else { 0 };
                control_header(dst, kind::SETTINGS, flags, length, "SETTINGS")?;
                dst.put_u32(f.entries.len() as u32);
                for entry in &f.entries {
                    dst.put_u32(u32::from(entry.flags) << 24 | (entry.id & 0x00ff_ffff));
                    dst.put_u32(entry.value);
                }
            }
            Frame::Ping(f) => {
                control_header(dst, kind::PING, 0, 4, "PING")?;
                dst.put_u32(f.id);
            }
            Frame::GoAway(f) => {
                let last = check_id(f.last_good_stream_id)?;
                control_header(dst, kind::GOAWAY, 0, 8, "GOAWAY")?;
                dst.put_u32(last);
                dst.put_u32(f.status.code());
            }
            Frame::WindowUpdate(f) => {
                let id = check_id(f.stream_id)?;
                control_header(dst, kind::WINDOW_UPDATE, 0, 8, "WINDOW_UPDATE")?;
                dst.put_u32(id);
                dst.put_u32(f.delta & 0x7fff_ffff);
            }
            Frame::Data(f) => {
                let id = stream_id(f.stream_id, "DATA")?;
                if f.data.len() > MAX_FRAME_PAYLOAD {
                    return Err(FrameError::PayloadTooLarge {
                        frame: "DATA",
                        length: f.data.len(),
                    });
                }
                let flags = if f.fin { FLAG_FIN } else { 0 };
                dst.reserve(FRAME_HEADER_LEN + f.data.len());
                dst.put_u32(id);
                dst.put_u32(u32::from(flags) << 24 | f.data.len() as u32);
                dst.put_slice(&f.data);
            }
            Frame::Unknown(f) => {
                return Err(FrameError::InvalidLength {
                    frame: "unknown control",
                    length: f.payload.len(),
                });
            }
        }
        Ok(())
    }

    fn header_block(&mut self, headers: &[(String, String)]) -> Result<Vec<u8>, FrameError> {
        let block = encode_block(headers)?;
        self.compressor.compress(&block)
    }

    fn stream_headers(
        &mut self,
        dst: &mut BytesMut,
        frame_type: u16,
        name: &'static str,
        id: u32,
        fin: bool,
        headers: &[(String, String)],
    ) -> Result<(), FrameError> {
        let id = stream_id(id, name)?;
        let block = self.header_block(headers)?;
        let flags = if fin { FLAG_FIN } else { 0 };
        control_header(dst, frame_type, flags, 4 + block.len(), name)?;
        dst.put_u32(id);
        dst.put_slice(&block);
        Ok(())
    }
}

fn check_id(id: u32) -> Result<u32, FrameError> {
    if id > MAX_STREAM_ID {
        return Err(FrameError::StreamIdTooLarge { id });
    }
    Ok(id)
}

fn stream_id(id: u32, frame: &'static str) -> Result<u32, FrameError> {
    if id == 0 {
        return Err(FrameError::ZeroStreamId { frame });
    }
    check_id(id)
}

fn control_header(
    dst: &mut BytesMut,
    frame_type: u16,
    flags: u8,
    length: usize,
    frame: &'static str,
) -> Result<(), FrameError> {
    if length > MAX_FRAME_PAYLOAD {
        return Err(FrameError::PayloadTooLarge { frame, length });
    }
    dst.reserve(FRAME_HEADER_LEN + length);
    dst.put_u16(0x8000 | VERSION);
    dst.put_u16(frame_type);
    dst.put_u32(u32::from(flags) << 24 | length as u32);
    Ok(())
}

/// Reads frames of one direction of a session from a byte buffer; owns that
/// direction's header decompressor.
#[derive(Debug, Default)]
pub struct Decoder {
    decompressor: HeaderDecompressor,
}

impl Decoder {
    /// A decoder with a fresh decompression context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one whole frame off the front of `src`.
    ///
    /// Returns `Ok(None)` (consuming nothing) while `src` holds less than a
    /// whole frame. Never panics, whatever the bytes.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(header) = src.first_chunk::<FRAME_HEADER_LEN>() else {
            return Ok(None);
        };
        let first = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let flags = header[4];
        let length = (u32::from_be_bytes([0, header[5], header[6], header[7]])) as usize;
        if src.len() < FRAME_HEADER_LEN + length {
            src.reserve(FRAME_HEADER_LEN + length - src.len());
            return Ok(None);
        }
        src.advance(FRAME_HEADER_LEN);
        let payload = src.split_to(length).freeze();
        if first & 0x8000_0000 == 0 {
            let stream_id = first & MAX_STREAM_ID;
            if stream_id == 0 {
                return Err(FrameError::ZeroStreamId { frame: "DATA" });
            }
            return Ok(Some(Frame::Data(Data {
                stream_id,
                fin: flags & FLAG_FIN != 0,
                data: payload,
            })));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(FrameError::UnsupportedVersion { version });
        }
        let frame_type = (first & 0xffff) as u16;
        self.control(frame_type, flags, payload).map(Some)
    }

    fn control(&mut self, frame_type: u16, flags: u8, payload: Bytes) -> Result<Frame, FrameError> {
        let length = payload.len();
        let mut p = payload.clone();
        let fin = flags & FLAG_FIN != 0;
        Ok(match frame_type {
            kind::SYN_STREAM => {
                if length < 10 {
                    return Err(FrameError::InvalidLength {
                        frame: "SYN_STREAM",
                        length,
                    });
                }
                let stream_id = p.get_u32() & MAX_STREAM_ID;
                let associated_stream_id = p.get_u32() & MAX_STREAM_ID;
                let priority = p.get_u8() >> 5;
                let slot = p.get_u8();
                // Inflate before validating the id: the zlib stream must
                // advance over every header block, even a rejected one.
                let headers = self.headers(&p)?;
                if stream_id == 0 {
                    return Err(FrameError::ZeroStreamId {
                        frame: "SYN_STREAM",
                    });
                }
                Frame::SynStream(SynStream {
                    stream_id,
                    associated_stream_id,
                    priority,
                    slot,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers,
                })
            }
            kind::SYN_REPLY | kind::HEADERS => {
                let name = if frame_type == kind::SYN_REPLY {
                    "SYN_REPLY"
                } else {
                    "HEADERS"
                };
                if length < 4 {
                    return Err(FrameError::InvalidLength {
                        frame: name,
                        length,
                    });
                }
                let stream_id = p.get_u32() & MAX_STREAM_ID;
                let headers = self.headers(&p)?;
                if stream_id == 0 {
                    return Err(FrameError::ZeroStreamId { frame: name });
                }
                if frame_type == kind::SYN_REPLY {
                    Frame::SynReply(SynReply {
                        stream_id,
                        fin,
                        headers,
                    })
                } else {
                    Frame::Headers(HeadersFrame {
                        stream_id,
                        fin,
                        headers,
                    })
                }
            }
            kind::RST_STREAM => {
                if length != 8 {
                    return Err(FrameError::InvalidLength {
                        frame: "RST_STREAM",
                        length,
                    });
                }
                let stream_id = p.get_u32() & MAX_STREAM_ID;
                let code = p.get_u32();
                if stream_id == 0 {
                    return Err(FrameError::ZeroStreamId {
                        frame: "RST_STREAM",
                    });
                }
                if code == 0 {
                    return Err(FrameError::ZeroRstStatus { stream_id });
                }
                Frame::RstStream(RstStream {
                    stream_id,
                    status: RstStatus::from_code(code),
                })
            }
            kind::SETTINGS => {
                if length < 4 {
                    return Err(FrameError::InvalidLength {
                        frame: "SETTINGS",
                        length,
                    });
                }
                let count = p.get_u32() as usize;
                if count.checked_mul(8) != Some(length - 4) {
                    return Err(FrameError::InvalidLength {
                        frame: "SETTINGS",
                        length,
                    });
                }
                let mut entries = Vec::with_capacity(count);
                for _ in 0..count {
                    let flags_id = p.get_u32();
                    entries.push(Setting {
                        flags: (flags_id >> 24) as u8,
                        id: flags_id & 0x00ff_ffff,
                        value: p.get_u32(),
                    });
                }
                Frame::Settings(Settings {
                    clear: flags & FLAG_CLEAR_SETTINGS != 0,
                    entries,
                })
            }
            kind::PING => {
                if length != 4 {
                    return Err(FrameError::InvalidLength {
                        frame: "PING",
                        length,
                    });
                }
                Frame::Ping(Ping { id: p.get_u32() })
            }
            kind::GOAWAY => {
                if length != 8 {
                    return Err(FrameError::InvalidLength {
                        frame: "GOAWAY",
                        length,
                    });
                }
                Frame::GoAway(GoAway {
                    last_good_stream_id: p.get_u32() & MAX_STREAM_ID,
                    status: GoAwayStatus::from_code(p.get_u32()),
                })
            }
            kind::WINDOW_UPDATE => {
                if length != 8 {
                    return Err(FrameError::InvalidLength {
                        frame: "WINDOW_UPDATE",
                        length,
                    });
                }
                Frame::WindowUpdate(WindowUpdate {
                    stream_id: p.get_u32() & MAX_STREAM_ID,
                    delta: p.get_u32() & 0x7fff_ffff,
                })
            }
            other => Frame::Unknown(UnknownFrame {
                frame_type: other,
                flags,
                payload,
            }),
        })
    }

    fn headers(&mut self, compressed: &[u8]) -> Result<Headers, FrameError> {
        let block = self.decompressor.decompress(compressed)?;
        decode_block(&block)
    }
}
