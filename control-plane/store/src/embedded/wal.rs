//! The write-ahead log's on-disk format: framing, encoding and the recovering reader.
//!
//! A log file is a sequence of records, each
//! `[payload length: u32 LE][CRC32 (IEEE) of payload: u32 LE][payload]`.
//! Payloads (all integers little-endian, strings as `u32` length + UTF-8 bytes):
//! - `1` Header: `compacted: i64`, `revision: i64`: the first record of every file (a fresh
//!   file or a snapshot written by compaction);
//! - `2` Put: `create_revision: i64`, `mod_revision: i64`, key, value (as `u32` length + bytes);
//! - `3` Delete: `revision: i64`, key.
//!
//! In a snapshot, Puts at or below the header's `compacted` are the base state (the live keys
//! as of the compaction point); records above it are the retained history, replayed as events.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use bytes::Bytes;

use crate::{Revision, StoreError};

const TAG_HEADER: u8 = 1;
const TAG_PUT: u8 = 2;
const TAG_DELETE: u8 = 3;

/// Frame overhead: length + CRC.
const FRAME: usize = 8;
/// Larger payloads are refused (and a length field above it marks a damaged frame).
pub(crate) const MAX_PAYLOAD: usize = 1 << 30;

/// One log record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    /// Start of a file: the compaction point and the revision the file starts at.
    Header {
        compacted: Revision,
        revision: Revision,
    },
    /// A key written.
    Put {
        key: String,
        value: Bytes,
        create_revision: Revision,
        mod_revision: Revision,
    },
    /// A key deleted.
    Delete { key: String, revision: Revision },
}

/// Appends the framed encoding of `record` to `out`.
pub(crate) fn encode(record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME]);
    match record {
        Record::Header {
            compacted,
            revision,
        } => {
            out.push(TAG_HEADER);
            out.extend_from_slice(&compacted.to_le_bytes());
            out.extend_from_slice(&revision.to_le_bytes());
        }
        Record::Put {
            key,
            value,
            create_revision,
            mod_revision,
        } => {
            out.push(TAG_PUT);
            out.extend_from_slice(&create_revision.to_le_bytes());
            out.extend_from_slice(&mod_revision.to_le_bytes());
            put_bytes(out, key.as_bytes());
            put_bytes(out, value);
        }
        Record::Delete { key, revision } => {
            out.push(TAG_DELETE);
            out.extend_from_slice(&revision.to_le_bytes());
            put_bytes(out, key.as_bytes());
        }
    }
    let payload = &out[start + FRAME..];
    // Callers check sizes against MAX_PAYLOAD first, so this fits in a u32.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The encoded payload size of a Put, to refuse oversized writes before they reach the log.
pub(crate) fn put_payload_len(key: &str, value: &[u8]) -> usize {
    1 + 8 + 8 + 4 + key.len() + 4 + value.len()
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

/// What reading a log file found.
#[derive(Debug)]
pub(crate) struct ReadLog {
    /// The valid records, in order.
    pub records: Vec<Record>,
    /// Bytes of valid records; anything after it is a torn tail to truncate.
    pub valid_len: u64,
    /// The file's length as read.
    pub file_len: u64,
}

/// Reads every record of the log at `path`. A damaged record at the end of the file (a write
/// torn by a crash) ends the log at `valid_len`; damage followed by more data is
/// [`StoreError::Corrupt`].
pub(crate) fn read_log(path: &Path) -> Result<ReadLog, StoreError> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(|source| StoreError::Io {
            context: format!("reading {}", path.display()),
            source,
        })?;
    parse_log(&data, &path.display().to_string())
}

/// Parses log bytes; see [`read_log`].
pub(crate) fn parse_log(data: &[u8], path: &str) -> Result<ReadLog, StoreError> {
    let file_len = data.len() as u64;
    let mut records = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.to_owned(),
            offset: pos as u64,
            reason,
        };
        let rest = &data[pos..];
        if rest.len() < FRAME {
            break; // torn frame header
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > rest.len() - FRAME {
            break; // record runs past the end of the file: torn
        }
        let payload = &rest[FRAME..FRAME + len];
        let end = pos + FRAME + len;
        if len == 0 || len > MAX_PAYLOAD || crc32fast::hash(payload) != crc {
            // Damage at the very end (or a zero-filled tail) is a torn write; elsewhere it
            // means acknowledged data was lost.
            if end == data.len() || rest.iter().all(|&b| b == 0) {
                break;
            }
            return Err(corrupt(format!(
                "record checksum mismatch ({len} byte payload) with {} bytes after it",
                data.len() - end
            )));
        }
        let record = decode(payload).map_err(corrupt)?;
        records.push(record);
        pos = end;
    }
    Ok(ReadLog {
        records,
        valid_len: pos as u64,
        file_len,
    })
}

struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.data.len() < n {
            return Err(format!(
                "record payload truncated: need {n} bytes, have {}",
                self.data.len()
            ));
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn i64(&mut self) -> Result<i64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let b = self.take(4)?;
        let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|e| format!("key is not UTF-8: {e}"))
    }
}

fn decode(payload: &[u8]) -> Result<Record, String> {
    let mut c = Cursor { data: payload };
    let record = match c.u8()? {
        TAG_HEADER => Record::Header {
            compacted: c.i64()?,
            revision: c.i64()?,
        },
        TAG_PUT => {
            let create_revision = c.i64()?;
            let mod_revision = c.i64()?;
            let key = c.string()?;
            let value = Bytes::copy_from_slice(c.bytes()?);
            Record::Put {
                key,
                value,
                create_revision,
                mod_revision,
            }
        }
        TAG_DELETE => {
            let revision = c.i64()?;
            let key = c.string()?;
            Record::Delete { key, revision }
        }
        tag => return Err(format!("unknown record tag {tag}")),
    };
    if !c.data.is_empty() {
        return Err(format!("{} stray bytes after record", c.data.len()));
    }
    Ok(record)
}

/// Writes `bytes` as the whole content of `path` crash-safely: write a temporary file, fsync
/// it, rename it over `path`, fsync the directory. Returns the new file, open for appending.
pub(crate) fn replace_file(dir: &Path, path: &Path, bytes: &[u8]) -> Result<File, StoreError> {
    let tmp = path.with_extension("tmp");
    let io = |context: String| move |source| StoreError::Io { context, source };
    let mut file = File::options()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&tmp)
        .map_err(io(format!("creating {}", tmp.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!(
        "renaming {} to {}",
        tmp.display(),
        path.display()
    )))?;
    sync_dir(dir)?;
    Ok(file)
}

/// Fsyncs a directory so a rename or create in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Io {
            context: format!("syncing directory {}", dir.display()),
            source,
        })
}
