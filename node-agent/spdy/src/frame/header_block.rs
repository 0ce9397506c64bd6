//! SPDY/3 name/value header blocks and their zlib compression.
//!
//! A block is `count: u32`, then `count` times `name_len: u32, name,
//! value_len: u32, value` (all big-endian). A header with several values sends
//! them once, joined by NUL. Names are lowercase on the wire.
//!
//! Each direction of a session has one zlib stream that runs for the whole
//! session: every block is compressed into it and ends with a sync flush, so
//! the receiver can inflate each frame's bytes as they come while the LZ77
//! window carries over from frame to frame. The stream is primed with
//! [`SPDY3_DICTIONARY`].

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::{FrameError, Headers};
use crate::dictionary::{SPDY3_DICTIONARY, SPDY3_DICTIONARY_ID};

/// Largest uncompressed header block we write or accept (1 MiB).
///
/// The wire format allows more, but no Kubernetes stream needs more than a few
/// hundred bytes; the limit keeps a zlib bomb from a peer bounded.
pub const MAX_HEADER_BLOCK: usize = 1 << 20;

/// Serializes `headers` as an uncompressed SPDY/3 name/value block.
///
/// Names are lowercased; values of headers whose lowercased names are equal
/// are joined by NUL in first-seen order (SPDY/3 forbids repeating a name).
pub fn encode_block(headers: &[(String, String)]) -> Result<Vec<u8>, FrameError> {
    let mut merged: Vec<(String, Vec<u8>)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        if name.is_empty() {
            return Err(FrameError::InvalidHeader {
                name: name.clone(),
                reason: "empty name",
            });
        }
        if name.contains('\0') || value.contains('\0') {
            return Err(FrameError::InvalidHeader {
                name: name.clone(),
                reason: "NUL in name or value",
            });
        }
        let lower = name.to_ascii_lowercase();
        if let Some((_, joined)) = merged.iter_mut().find(|(n, _)| *n == lower) {
            joined.push(0);
            joined.extend_from_slice(value.as_bytes());
        } else {
            merged.push((lower, value.as_bytes().to_vec()));
        }
    }
    let mut out = Vec::new();
    put_len(&mut out, merged.len())?;
    for (name, value) in &merged {
        put_len(&mut out, name.len())?;
        out.extend_from_slice(name.as_bytes());
        put_len(&mut out, value.len())?;
        out.extend_from_slice(value);
        if out.len() > MAX_HEADER_BLOCK {
            return Err(FrameError::HeaderBlockTooLarge {
                limit: MAX_HEADER_BLOCK,
            });
        }
    }
    Ok(out)
}

fn put_len(out: &mut Vec<u8>, len: usize) -> Result<(), FrameError> {
    let len = u32::try_from(len).map_err(|_| FrameError::HeaderBlockTooLarge {
        limit: MAX_HEADER_BLOCK,
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Parses an uncompressed SPDY/3 name/value block.
///
/// NUL-joined values become one `(name, value)` pair each. Names are
/// lowercased (spdystream rejects uppercase names; we are lenient on input).
/// The whole of `block` must be used.
pub fn decode_block(block: &[u8]) -> Result<Headers, FrameError> {
    let mut rest = block;
    let count = take_u32(&mut rest)?;
    // Each pair needs at least 8 bytes, so a count larger than that is a lie;
    // checking first keeps a hostile count from sizing an allocation.
    if u64::from(count) * 8 > rest.len() as u64 {
        return Err(FrameError::MalformedHeaderBlock("pair count exceeds block"));
    }
    let mut headers = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let name = take_bytes(&mut rest)?;
        if name.is_empty() {
            return Err(FrameError::MalformedHeaderBlock("empty header name"));
        }
        let name = std::str::from_utf8(name)
            .map_err(|_| FrameError::MalformedHeaderBlock("header name is not UTF-8"))?
            .to_ascii_lowercase();
        let value = take_bytes(&mut rest)?;
        let value = std::str::from_utf8(value)
            .map_err(|_| FrameError::MalformedHeaderBlock("header value is not UTF-8"))?;
        for part in value.split('\0') {
            headers.push((name.clone(), part.to_owned()));
        }
    }
    if !rest.is_empty() {
        return Err(FrameError::MalformedHeaderBlock(
            "trailing bytes after last pair",
        ));
    }
    Ok(headers)
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, FrameError> {
    let Some((head, tail)) = rest.split_first_chunk::<4>() else {
        return Err(FrameError::MalformedHeaderBlock("truncated length"));
    };
    *rest = tail;
    Ok(u32::from_be_bytes(*head))
}

fn take_bytes<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], FrameError> {
    let len = take_u32(rest)? as usize;
    if len > rest.len() {
        return Err(FrameError::MalformedHeaderBlock("truncated name or value"));
    }
    let (bytes, tail) = rest.split_at(len);
    *rest = tail;
    Ok(bytes)
}

/// The sending half of a session's header compression: one zlib stream,
/// primed with the SPDY/3 dictionary, continued across frames.
pub struct HeaderCompressor {
    zlib: Compress,
}

impl std::fmt::Debug for HeaderCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderCompressor")
            .field("total_in", &self.zlib.total_in())
            .finish_non_exhaustive()
    }
}

impl Default for HeaderCompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderCompressor {
    /// A fresh compressor (zlib header with FDICT, default level).
    pub fn new() -> Self {
        let mut zlib = Compress::new(Compression::default(), true);
        // Setting a dictionary on a fresh deflate stream cannot fail.
        zlib.set_dictionary(SPDY3_DICTIONARY)
            .expect("a fresh zlib stream accepts a dictionary");
        Self { zlib }
    }

    /// Compresses one header block and sync-flushes, returning the bytes to
    /// put in the frame.
    pub fn compress(&mut self, block: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(block.len() / 2 + 64);
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let before = self.zlib.total_in();
            self.zlib
                .compress_vec(&block[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|source| FrameError::Compress { source })?;
            consumed += usize::try_from(self.zlib.total_in() - before).map_err(|_| {
                FrameError::HeaderBlockTooLarge {
                    limit: MAX_HEADER_BLOCK,
                }
            })?;
            // zlib has finished the flush once input is used up and it left
            // output space unused.
            if consumed == block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// The receiving half: one zlib stream for the session, inflated frame by
/// frame. Supplies the SPDY/3 dictionary when the stream asks for it (the
/// peer's zlib header has FDICT set, as Go's `zlib.NewWriterLevelDict` does).
pub struct HeaderDecompressor {
    zlib: Decompress,
    ended: bool,
}

impl std::fmt::Debug for HeaderDecompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderDecompressor")
            .field("total_in", &self.zlib.total_in())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecompressor {
    /// A fresh decompressor expecting a zlib header.
    pub fn new() -> Self {
        Self {
            zlib: Decompress::new(true),
            ended: false,
        }
    }

    /// Inflates the compressed header bytes of one frame. All of `input` must
    /// be used (it ends at a flush point), and the output may not exceed
    /// [`MAX_HEADER_BLOCK`].
    pub fn decompress(&mut self, input: &[u8]) -> Result<Vec<u8>, FrameError> {
        if self.ended {
            return Err(FrameError::MalformedHeaderBlock(
                "header zlib stream already ended",
            ));
        }
        let mut out = Vec::with_capacity(input.len().saturating_mul(4).clamp(64, 16 * 1024));
        let mut consumed = 0usize;
        loop {
            if out.len() > MAX_HEADER_BLOCK {
                return Err(FrameError::HeaderBlockTooLarge {
                    limit: MAX_HEADER_BLOCK,
                });
            }
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let before_in = self.zlib.total_in();
            let before_out = self.zlib.total_out();
            let status =
                match self
                    .zlib
                    .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
                {
                    Ok(status) => status,
                    Err(err) => match err.needs_dictionary() {
                        Some(id) if id == SPDY3_DICTIONARY_ID => {
                            // The zlib header (and DICTID) were consumed; account
                            // for them before priming the window.
                            consumed += delta(self.zlib.total_in(), before_in);
                            self.zlib
                                .set_dictionary(SPDY3_DICTIONARY)
                                .map_err(|source| FrameError::Decompress { source })?;
                            continue;
                        }
                        Some(id) => return Err(FrameError::UnknownDictionary { id }),
                        None => return Err(FrameError::Decompress { source: err }),
                    },
                };
            consumed += delta(self.zlib.total_in(), before_in);
            let produced = delta(self.zlib.total_out(), before_out);
            if status == Status::StreamEnd {
                self.ended = true;
                if consumed != input.len() {
                    return Err(FrameError::MalformedHeaderBlock(
                        "bytes after the end of the header zlib stream",
                    ));
                }
                return Ok(out);
            }
            let out_full = out.len() == out.capacity();
            if consumed == input.len() && !out_full {
                return Ok(out);
            }
            if consumed == input.len() && produced == 0 {
                return Ok(out);
            }
            if produced == 0 && delta(self.zlib.total_in(), before_in) == 0 && !out_full {
                // No progress with input left and room to write: the input
                // is not a valid continuation.
                return Err(FrameError::MalformedHeaderBlock(
                    "header zlib stream made no progress",
                ));
            }
        }
    }
}

fn delta(after: u64, before: u64) -> usize {
    usize::try_from(after - before).unwrap_or(usize::MAX)
}
