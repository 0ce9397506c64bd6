//! Container logs for `kubectl logs`: parsing CRI log files (`<RFC3339Nano> <stdout|stderr>
//! <P|F> <message>`, one file per restart), upstream's `PodLogOptions`, and the bytes the
//! client is shown (stdout and stderr interleaved in file order), optionally following the
//! file as it grows until the container stops.
//!
//! Partial (`P`) records are joined with the following records of the same stream up to
//! their `F`, so `tailLines` and `sinceTime` count and filter whole lines and `timestamps`
//! prefixes each whole line once, with the time of its first fragment. (Upstream's kubelet
//! writes fragments as they are; the output differs only when timestamps are shown or a
//! tail starts inside a split line.)

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// How often a followed file is polled for new lines.
pub const POLL_INTERVAL: Duration = Duration::from_millis(150);
/// A joined line longer than this is let out unterminated rather than kept growing (a
/// container writing without newlines must not exhaust the agent's memory).
const MAX_JOINED: usize = 1 << 20;
/// Output is handed on in chunks of about this size (and whenever the file has no more).
const CHUNK: usize = 32 * 1024;

/// Which output stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The container's stdout.
    Stdout,
    /// The container's stderr.
    Stderr,
}

/// One record (file line) of a CRI log file, borrowed from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// The timestamp as written (RFC 3339 with nanoseconds).
    pub raw_time: &'a str,
    /// The timestamp.
    pub time: Timestamp,
    /// Its stream.
    pub stream: Stream,
    /// A `P` (partial) record: the line goes on in the next record of this stream.
    pub partial: bool,
    /// The content, without the line's newline.
    pub message: &'a [u8],
}

/// Why a CRI log record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A field is missing.
    #[error("log record has no {field}")]
    Missing {
        /// The missing field.
        field: &'static str,
    },
    /// The timestamp is not RFC 3339.
    #[error("log record has a bad timestamp {raw:?}")]
    Timestamp {
        /// What was there.
        raw: String,
    },
    /// The stream is neither `stdout` nor `stderr`.
    #[error("log record has an unknown stream {raw:?}")]
    Stream {
        /// What was there.
        raw: String,
    },
}

fn split_space(b: &[u8]) -> (&[u8], Option<&[u8]>) {
    match b.iter().position(|&c| c == b' ') {
        Some(i) => (&b[..i], Some(&b[i + 1..])),
        None => (b, None),
    }
}

/// Parses one record of a CRI log file (`line` without its newline; a trailing `\r` is
/// not stripped: it belongs to the message).
pub fn parse_record(line: &[u8]) -> Result<Record<'_>, ParseError> {
    let (ts, rest) = split_space(line);
    let rest = rest.ok_or(ParseError::Missing { field: "stream" })?;
    let raw_time = std::str::from_utf8(ts).map_err(|_| ParseError::Timestamp {
        raw: String::from_utf8_lossy(ts).into_owned(),
    })?;
    let time: Timestamp = raw_time.parse().map_err(|_| ParseError::Timestamp {
        raw: raw_time.to_string(),
    })?;
    let (stream, rest) = split_space(rest);
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        other => {
            return Err(ParseError::Stream {
                raw: String::from_utf8_lossy(other).into_owned(),
            });
        }
    };
    let rest = rest.ok_or(ParseError::Missing { field: "tag" })?;
    let (tags, message) = split_space(rest);
    // Tags are `:`-separated; the first says partial or full (upstream's parseCRILog).
    let partial = tags.split(|&c| c == b':').next() == Some(b"P");
    Ok(Record {
        raw_time,
        time,
        stream,
        partial,
        message: message.unwrap_or_default(),
    })
}

/// A whole line of output, joined from its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The first record's timestamp as written.
    pub raw_time: String,
    /// The first record's timestamp.
    pub time: Timestamp,
    /// Its stream.
    pub stream: Stream,
    /// The content without a newline.
    pub message: Vec<u8>,
    /// Ended by an `F` record (else it is what was left of a line at the end).
    pub complete: bool,
}

/// Joins `P` records with the following records of the same stream.
#[derive(Debug, Default)]
pub struct Joiner {
    pending: [Option<Line>; 2],
}

impl Joiner {
    /// Takes one record; a line when this record completes one.
    pub fn push(&mut self, r: &Record<'_>) -> Option<Line> {
        let slot = &mut self.pending[r.stream as usize];
        let line = slot.get_or_insert_with(|| Line {
            raw_time: r.raw_time.to_string(),
            time: r.time,
            stream: r.stream,
            message: Vec::new(),
            complete: false,
        });
        line.message.extend_from_slice(r.message);
        if !r.partial {
            let mut l = slot.take()?;
            l.complete = true;
            return Some(l);
        }
        if line.message.len() >= MAX_JOINED {
            return slot.take();
        }
        None
    }

    /// The unfinished lines, in order of their first record.
    pub fn finish(&mut self) -> Vec<Line> {
        let mut v: Vec<Line> = self.pending.iter_mut().filter_map(Option::take).collect();
        v.sort_by_key(|l| l.time);
        v
    }
}

/// A timestamp as upstream's kubelet prints it (`RFC3339NanoFixed`: always nine fraction
/// digits, the offset as written).
#[must_use]
pub fn fixed_nanos(raw: &str, time: Timestamp) -> String {
    // `YYYY-MM-DDTHH:MM:SS` then an optional fraction then the offset.
    let fallback = || {
        format!(
            "{}.{:09}Z",
            time.strftime("%Y-%m-%dT%H:%M:%S"),
            time.subsec_nanosecond().unsigned_abs()
        )
    };
    if raw.len() < 19 || !raw.is_char_boundary(19) {
        return fallback();
    }
    let (base, rest) = raw.split_at(19);
    let (frac, zone) = match rest.strip_prefix('.') {
        Some(r) => {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            (&r[..n], &r[n..])
        }
        None => ("", rest),
    };
    if zone.is_empty() {
        return fallback();
    }
    let mut out = String::with_capacity(35);
    out.push_str(base);
    out.push('.');
    out.push_str(&frac[..frac.len().min(9)]);
    out.extend(std::iter::repeat_n('0', 9usize.saturating_sub(frac.len())));
    out.push_str(zone);
    out
}

/// Upstream's `PodLogOptions` (core/v1) as the kubelet reads them from a query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// `container` (the kubelet's URL names the container; this is informational).
    pub container: Option<String>,
    /// `follow`: keep streaming until the container stops.
    pub follow: bool,
    /// `previous`: the previous restart's log.
    pub previous: bool,
    /// `tailLines`: only the last this many lines.
    pub tail_lines: Option<u64>,
    /// `sinceSeconds`: only lines at most this old.
    pub since_seconds: Option<u64>,
    /// `sinceTime`: only lines at or after this time.
    pub since_time: Option<Timestamp>,
    /// `timestamps`: prefix each line with its time.
    pub timestamps: bool,
    /// `limitBytes`: stop after this many bytes of output.
    pub limit_bytes: Option<u64>,
}

/// A query parameter the kubelet cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// Not a number, or not a time.
    #[error("invalid value {value:?} for {name}: {reason}")]
    Invalid {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// `sinceSeconds` together with `sinceTime`.
    #[error("at most one of `sinceTime` or `sinceSeconds` may be specified")]
    BothSince,
}

/// A boolean query value as the API machinery converts it: only `0` and `false` (any case)
/// are false; anything else, even an empty value, is true.
fn query_bool(v: &str) -> bool {
    !(v == "0" || v.eq_ignore_ascii_case("false"))
}

fn query_int(name: &'static str, v: &str, min: i64) -> Result<u64, OptionsError> {
    let n: i64 = v.parse().map_err(|_| OptionsError::Invalid {
        name,
        value: v.into(),
        reason: "not an integer",
    })?;
    if n < min {
        return Err(OptionsError::Invalid {
            name,
            value: v.into(),
            reason: if min == 0 {
                "must be greater than or equal to 0"
            } else {
                "must be greater than 0"
            },
        });
    }
    u64::try_from(n).map_err(|_| OptionsError::Invalid {
        name,
        value: v.into(),
        reason: "out of range",
    })
}

impl LogOptions {
    /// Reads and validates the options from query pairs (the first of repeated names
    /// counts; unknown names are ignored; the legacy `tail`, `all` meaning no limit, is
    /// read as `tailLines`), as upstream's kubelet and `ValidatePodLogOptions` do.
    pub fn from_query(pairs: &[(String, String)]) -> Result<Self, OptionsError> {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let mut o = LogOptions {
            container: get("container").map(String::from),
            follow: get("follow").is_some_and(query_bool),
            previous: get("previous").is_some_and(query_bool),
            timestamps: get("timestamps").is_some_and(query_bool),
            ..LogOptions::default()
        };
        match get("tail") {
            Some("all") => {}
            Some(t) => o.tail_lines = Some(query_int("tailLines", t, 0)?),
            None => {
                if let Some(t) = get("tailLines") {
                    o.tail_lines = Some(query_int("tailLines", t, 0)?);
                }
            }
        }
        if let Some(v) = get("limitBytes") {
            o.limit_bytes = Some(query_int("limitBytes", v, 1)?);
        }
        if let Some(v) = get("sinceSeconds") {
            o.since_seconds = Some(query_int("sinceSeconds", v, 1)?);
        }
        if let Some(v) = get("sinceTime") {
            o.since_time = Some(v.parse().map_err(|_| OptionsError::Invalid {
                name: "sinceTime",
                value: v.into(),
                reason: "not an RFC 3339 time",
            })?);
        }
        if o.since_seconds.is_some() && o.since_time.is_some() {
            return Err(OptionsError::BothSince);
        }
        Ok(o)
    }

    /// The earliest time a line may have (upstream's `NewLogOptions`: `sinceSeconds`
    /// before `now`, or `sinceTime` if later).
    #[must_use]
    pub fn since(&self, now: Timestamp) -> Option<Timestamp> {
        let from_seconds = self.since_seconds.map(|s| {
            now.checked_sub(SignedDuration::from_secs(
                i64::try_from(s).unwrap_or(i64::MAX),
            ))
            .unwrap_or(Timestamp::MIN)
        });
        match (from_seconds, self.since_time) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The log file of restart `restart` of a container, under the container's directory.
#[must_use]
pub fn log_file(container_dir: &Path, restart: u32) -> PathBuf {
    container_dir.join(format!("{restart}.log"))
}

/// The restart numbers that have a log file in a container's directory, ascending.
#[must_use]
pub fn restarts_on_disk(container_dir: &Path) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(container_dir)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".log")?
                .parse()
                .ok()
        })
        .collect();
    v.sort_unstable();
    v
}

/// Reads a log file's records into lines; `Ok(None)` at the current end of the file.
struct Records<R> {
    reader: BufReader<R>,
    buf: Vec<u8>,
    joiner: Joiner,
}

impl<R: AsyncRead + Unpin> Records<R> {
    fn new(r: R) -> Self {
        Self {
            reader: BufReader::new(r),
            buf: Vec::new(),
            joiner: Joiner::default(),
        }
    }

    /// The next line completed by the file so far. A record not yet ended by a newline
    /// is kept for the next call (the writer may be in the middle of it) unless `at_end`.
    async fn next(&mut self, at_end: bool) -> io::Result<Option<Line>> {
        loop {
            self.reader.read_until(b'\n', &mut self.buf).await?;
            let whole = self.buf.last() == Some(&b'\n');
            if self.buf.is_empty() || !whole && !at_end {
                return Ok(None);
            }
            if whole {
                self.buf.pop();
            }
            let parsed = parse_record(&self.buf).map(|r| self.joiner.push(&r));
            self.buf.clear();
            match parsed {
                Ok(Some(line)) => return Ok(Some(line)),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "skipping a log record"),
            }
        }
    }
}

/// Counts the lines of a log file as the output would have them.
async fn count_lines(path: &Path) -> io::Result<u64> {
    let mut r = Records::new(tokio::fs::File::open(path).await?);
    let mut n = 0u64;
    while r.next(true).await?.is_some() {
        n += 1;
    }
    Ok(n + r.joiner.finish().len() as u64)
}

/// The output of one log file under [`LogOptions`]: call [`LogStream::next_chunk`] until
/// it returns `None`, or turn it into a stream with [`LogStream::into_stream`].
pub struct LogStream {
    records: Records<tokio::fs::File>,
    /// The file followed, and the inode open: when rotation renames the file away, the
    /// runtime reopens a new one at `path`, and a follower moves on to it.
    path: PathBuf,
    inode: u64,
    phase: Phase,
    timestamps: bool,
    since: Option<Timestamp>,
    /// Lines still to drop for `tailLines`.
    skip: u64,
    /// Bytes still allowed by `limitBytes`.
    remaining: Option<u64>,
}

/// Where a [`LogStream`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Following the file while the container runs.
    Follow,
    /// Reading to the end of the file once more, then finishing (not following, or the
    /// container was seen stopped).
    ToEnd,
    /// The output is complete.
    Done,
}

impl LogStream {
    /// Opens `path` for `opts`, judging `sinceSeconds` from `now`.
    pub async fn open(path: &Path, opts: &LogOptions, now: Timestamp) -> io::Result<Self> {
        let skip = match opts.tail_lines {
            Some(n) => count_lines(path).await?.saturating_sub(n),
            None => 0,
        };
        let file = tokio::fs::File::open(path).await?;
        let inode = std::os::unix::fs::MetadataExt::ino(&file.metadata().await?);
        Ok(Self {
            records: Records::new(file),
            path: path.to_path_buf(),
            inode,
            phase: if opts.limit_bytes == Some(0) {
                Phase::Done
            } else if opts.follow {
                Phase::Follow
            } else {
                Phase::ToEnd
            },
            timestamps: opts.timestamps,
            since: opts.since(now),
            skip,
            remaining: opts.limit_bytes,
        })
    }

    /// Appends `line` to `out` as the client sees it; false once `limitBytes` is reached.
    fn write(&mut self, line: &Line, out: &mut Vec<u8>) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return true;
        }
        if self.since.is_some_and(|s| line.time < s) {
            return true;
        }
        let start = out.len();
        if self.timestamps {
            out.extend_from_slice(fixed_nanos(&line.raw_time, line.time).as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&line.message);
        if line.complete {
            out.push(b'\n');
        }
        if let Some(rem) = self.remaining.as_mut() {
            let written = (out.len() - start) as u64;
            if written >= *rem {
                out.truncate(start + usize::try_from(*rem).unwrap_or(usize::MAX));
                *rem = 0;
                return false;
            }
            *rem -= written;
        }
        true
    }

    /// The next piece of output: everything the file has now (up to a chunk), waiting for
    /// more while following. `running` says whether the container still runs; it is asked
    /// only at the end of the file while following. `None` when the output is complete.
    pub async fn next_chunk<F, Fut>(&mut self, running: &mut F) -> Option<io::Result<Vec<u8>>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let mut out = Vec::new();
        loop {
            if self.phase == Phase::Done {
                return (!out.is_empty()).then_some(Ok(out));
            }
            let at_end = self.phase == Phase::ToEnd;
            match self.records.next(at_end).await {
                Err(e) => {
                    self.phase = Phase::Done;
                    return Some(Err(e));
                }
                Ok(Some(line)) => {
                    if !self.write(&line, &mut out) {
                        self.phase = Phase::Done;
                    } else if out.len() >= CHUNK {
                        return Some(Ok(out));
                    }
                }
                Ok(None) if at_end => {
                    for line in self.records.joiner.finish() {
                        if !self.write(&line, &mut out) {
                            break;
                        }
                    }
                    self.phase = Phase::Done;
                }
                Ok(None) => {
                    if !out.is_empty() {
                        // Flush what arrived before waiting for more.
                        return Some(Ok(out));
                    }
                    if self.reopen_rotated().await {
                        continue;
                    }
                    if running().await {
                        tokio::time::sleep(POLL_INTERVAL).await;
                    } else {
                        // Lines written before it stopped are still to come.
                        self.phase = Phase::ToEnd;
                    }
                }
            }
        }
    }

    /// At the end of the open file: if `path` now names another file (the log was rotated
    /// and the runtime reopened it), continue with that one. Returns whether it did.
    async fn reopen_rotated(&mut self) -> bool {
        let Ok(meta) = tokio::fs::metadata(&self.path).await else {
            return false;
        };
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        if inode == self.inode {
            return false;
        }
        let Ok(file) = tokio::fs::File::open(&self.path).await else {
            return false;
        };
        self.records = Records::new(file);
        self.inode = inode;
        true
    }

    /// The output as a stream of chunks; `running` as for [`LogStream::next_chunk`].
    pub fn into_stream<F, Fut>(
        self,
        running: F,
    ) -> impl futures::Stream<Item = io::Result<Vec<u8>>> + Send
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = bool> + Send,
    {
        futures::stream::unfold((self, running), |(mut s, mut running)| async move {
            let chunk = s.next_chunk(&mut running).await?;
            Some((chunk, (s, running)))
        })
    }
}

/// The whole output of `path` under `opts` (not following), for tests and small callers.
pub async fn read_all(path: &Path, opts: &LogOptions, now: Timestamp) -> io::Result<Vec<u8>> {
    let opts = LogOptions {
        follow: false,
        ..opts.clone()
    };
    let mut s = LogStream::open(path, &opts, now).await?;
    let mut out = Vec::new();
    let mut never = || std::future::ready(false);
    while let Some(chunk) = s.next_chunk(&mut never).await {
        out.extend(chunk?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    const T0: &str = "2024-05-01T10:00:00.000000001Z";

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn q(pairs: &[(&str, &str)]) -> Result<LogOptions, OptionsError> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        LogOptions::from_query(&v)
    }

    fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const SAMPLE: &str = "\
2024-05-01T10:00:01.5Z stdout F one
2024-05-01T10:00:02.000000002Z stderr F two
2024-05-01T10:00:03Z stdout P thr
2024-05-01T10:00:03.1Z stderr F four
2024-05-01T10:00:03.2Z stdout P e
2024-05-01T10:00:04Z stdout F e!
not a record
2024-05-01T10:00:05+02:00 stdout F five
";

    #[test]
    fn parses_records() {
        let r = parse_record(b"2024-05-01T10:00:00.000000001Z stderr F:x hello world").unwrap();
        assert_eq!(r.raw_time, T0);
        assert_eq!(r.time, ts(T0));
        assert_eq!(r.stream, Stream::Stderr);
        assert!(!r.partial);
        assert_eq!(r.message, b"hello world");
        let r = parse_record(b"2024-05-01T10:00:00Z stdout P ").unwrap();
        assert!(r.partial);
        assert_eq!(r.message, b"");
        assert_eq!(
            parse_record(b"2024-05-01T10:00:00Z stdout F")
                .unwrap()
                .message,
            b""
        );
        assert!(matches!(
            parse_record(b"yesterday stdout F x"),
            Err(ParseError::Timestamp { .. })
        ));
        assert!(matches!(
            parse_record(b"2024-05-01T10:00:00Z stdin F x"),
            Err(ParseError::Stream { .. })
        ));
        assert!(matches!(
            parse_record(b"2024-05-01T10:00:00Z stdout"),
            Err(ParseError::Missing { field: "tag" })
        ));
    }

    #[test]
    fn fixed_timestamps() {
        assert_eq!(
            fixed_nanos("2024-05-01T10:00:01.5Z", ts("2024-05-01T10:00:01.5Z")),
            "2024-05-01T10:00:01.500000000Z"
        );
        assert_eq!(fixed_nanos(T0, ts(T0)), T0);
        let t = "2024-05-01T10:00:05+02:00";
        assert_eq!(fixed_nanos(t, ts(t)), "2024-05-01T10:00:05.000000000+02:00");
        assert_eq!(
            fixed_nanos("bogus", ts("2024-05-01T10:00:01.25Z")),
            "2024-05-01T10:00:01.250000000Z"
        );
    }

    #[test]
    fn options_from_query() {
        assert_eq!(q(&[]).unwrap(), LogOptions::default());
        let o = q(&[
            ("follow", "true"),
            ("previous", "1"),
            ("timestamps", ""),
            ("tailLines", "5"),
            ("limitBytes", "100"),
            ("sinceTime", "2024-05-01T10:00:00Z"),
            ("container", "c"),
            ("unknown", "x"),
        ])
        .unwrap();
        assert!(o.follow && o.previous && o.timestamps);
        assert_eq!(o.tail_lines, Some(5));
        assert_eq!(o.limit_bytes, Some(100));
        assert_eq!(o.since_time, Some(ts("2024-05-01T10:00:00Z")));
        assert_eq!(o.container.as_deref(), Some("c"));
        assert!(!q(&[("follow", "False")]).unwrap().follow);
        assert!(!q(&[("follow", "0")]).unwrap().follow);
        assert_eq!(q(&[("tail", "all")]).unwrap().tail_lines, None);
        assert_eq!(q(&[("tail", "3")]).unwrap().tail_lines, Some(3));
        assert_eq!(q(&[("tailLines", "0")]).unwrap().tail_lines, Some(0));
        for bad in [
            ("tailLines", "-1"),
            ("tailLines", "x"),
            ("limitBytes", "0"),
            ("sinceSeconds", "0"),
            ("sinceTime", "yesterday"),
        ] {
            assert!(
                matches!(q(&[bad]), Err(OptionsError::Invalid { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            q(&[("sinceSeconds", "5"), ("sinceTime", "2024-05-01T10:00:00Z")]),
            Err(OptionsError::BothSince)
        );
        let o = q(&[("sinceSeconds", "10")]).unwrap();
        assert_eq!(
            o.since(ts("2024-05-01T10:00:10Z")),
            Some(ts("2024-05-01T10:00:00Z"))
        );
    }

    async fn read(text: &str, pairs: &[(&str, &str)], now: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = file(dir.path(), "0.log", text);
        let out = read_all(&p, &q(pairs).unwrap(), ts(now)).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    const NOW: &str = "2024-05-01T10:00:10Z";

    #[tokio::test]
    async fn joins_partial_lines_in_file_order() {
        assert_eq!(
            read(SAMPLE, &[], NOW).await,
            "one\ntwo\nfour\nthree!\nfive\n"
        );
        // A line left partial at the end comes out unterminated.
        assert_eq!(
            read("2024-05-01T10:00:00Z stdout P abc\n", &[], NOW).await,
            "abc"
        );
        // A final record the writer had not finished still counts when not following.
        assert_eq!(
            read(
                "2024-05-01T10:00:00Z stdout F a\n2024-05-01T10:00:00Z stdout F b",
                &[],
                NOW
            )
            .await,
            "a\nb\n"
        );
    }

    #[tokio::test]
    async fn tail_counts_whole_lines() {
        assert_eq!(
            read(SAMPLE, &[("tailLines", "2")], NOW).await,
            "three!\nfive\n"
        );
        assert_eq!(read(SAMPLE, &[("tailLines", "0")], NOW).await, "");
        assert_eq!(
            read(SAMPLE, &[("tailLines", "100")], NOW).await,
            "one\ntwo\nfour\nthree!\nfive\n"
        );
    }

    #[tokio::test]
    async fn since_filters_by_the_line_start() {
        // "five" is at 08:00:05Z (its offset is +02:00).
        assert_eq!(
            read(SAMPLE, &[("sinceTime", "2024-05-01T10:00:03Z")], NOW).await,
            "four\nthree!\n"
        );
        assert_eq!(
            read(SAMPLE, &[("sinceSeconds", "8")], NOW).await,
            "two\nfour\nthree!\n"
        );
        // Tail first, then since (as upstream).
        assert_eq!(
            read(
                SAMPLE,
                &[("tailLines", "3"), ("sinceTime", "2024-05-01T10:00:03.1Z")],
                NOW
            )
            .await,
            "four\n"
        );
    }

    #[tokio::test]
    async fn timestamps_prefix_each_line() {
        assert_eq!(
            read(SAMPLE, &[("timestamps", "true"), ("tailLines", "3")], NOW).await,
            "2024-05-01T10:00:03.100000000Z four\n\
             2024-05-01T10:00:03.000000000Z three!\n\
             2024-05-01T10:00:05.000000000+02:00 five\n"
        );
    }

    #[tokio::test]
    async fn limit_bytes_cuts_the_output() {
        assert_eq!(read(SAMPLE, &[("limitBytes", "6")], NOW).await, "one\ntw");
        assert_eq!(read(SAMPLE, &[("limitBytes", "4")], NOW).await, "one\n");
        assert_eq!(
            read(SAMPLE, &[("limitBytes", "12"), ("timestamps", "1")], NOW).await,
            "2024-05-01T1"
        );
    }

    #[test]
    fn finds_restarts_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["0.log", "2.log", "10.log", "x.log", "3.log.tmp"] {
            file(dir.path(), n, "");
        }
        assert_eq!(restarts_on_disk(dir.path()), vec![0, 2, 10]);
        assert_eq!(log_file(dir.path(), 2), dir.path().join("2.log"));
        assert!(restarts_on_disk(&dir.path().join("missing")).is_empty());
    }

    #[tokio::test]
    async fn follow_sees_appended_lines_and_ends_when_the_container_stops() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let p = file(dir.path(), "0.log", "2024-05-01T10:00:00Z stdout F old\n");
        let running = Arc::new(AtomicBool::new(true));
        let opts = q(&[("follow", "true")]).unwrap();
        let mut s = LogStream::open(&p, &opts, ts(NOW)).await.unwrap();
        let r = running.clone();
        let mut is_running = move || std::future::ready(r.load(Ordering::SeqCst));
        assert_eq!(
            s.next_chunk(&mut is_running).await.unwrap().unwrap(),
            b"old\n"
        );

        // A writer appends a line in two writes (the first without its newline), then a
        // split line, then stops the container right after its last write.
        let (step_tx, mut step_rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
        let path = p.clone();
        let r = running.clone();
        let writer = tokio::spawn(async move {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            while let Some(text) = step_rx.recv().await {
                if text == "stop" {
                    r.store(false, Ordering::SeqCst);
                } else {
                    f.write_all(text.as_bytes()).unwrap();
                    f.flush().unwrap();
                }
            }
        });
        step_tx.send("2024-05-01T10:00:01Z stderr F ne").unwrap();
        step_tx.send("w\n").unwrap();
        assert_eq!(
            s.next_chunk(&mut is_running).await.unwrap().unwrap(),
            b"new\n"
        );
        step_tx.send("2024-05-01T10:00:02Z stdout P a").unwrap();
        step_tx.send("\n2024-05-01T10:00:02Z stdout F b\n").unwrap();
        assert_eq!(
            s.next_chunk(&mut is_running).await.unwrap().unwrap(),
            b"ab\n"
        );
        step_tx
            .send("2024-05-01T10:00:03Z stdout F last\n")
            .unwrap();
        step_tx.send("stop").unwrap();
        drop(step_tx);
        writer.await.unwrap();
        let mut rest = Vec::new();
        while let Some(c) = s.next_chunk(&mut is_running).await {
            rest.extend(c.unwrap());
        }
        assert_eq!(rest, b"last\n");
    }

    #[tokio::test]
    async fn follow_moves_to_the_reopened_file_after_rotation() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let p = file(
            dir.path(),
            "0.log",
            "2024-05-01T10:00:00Z stdout F before\n",
        );
        let opts = q(&[("follow", "1")]).unwrap();
        let mut s = LogStream::open(&p, &opts, ts(NOW)).await.unwrap();
        let mut running = || std::future::ready(true);
        assert_eq!(
            s.next_chunk(&mut running).await.unwrap().unwrap(),
            b"before\n"
        );
        // Rotation: the file is renamed away, the runtime reopens a new one at the path.
        std::fs::rename(&p, dir.path().join("0.log.20240501-100001")).unwrap();
        let mut f = std::fs::File::create(&p).unwrap();
        writeln!(f, "2024-05-01T10:00:02Z stdout F after").unwrap();
        let next = tokio::time::timeout(Duration::from_secs(10), s.next_chunk(&mut running))
            .await
            .expect("the follower saw the reopened file");
        assert_eq!(next.unwrap().unwrap(), b"after\n");
    }

    #[tokio::test]
    async fn follow_stream_flushes_each_line_and_ends() {
        use futures::StreamExt as _;
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let p = file(dir.path(), "0.log", "");
        let running = Arc::new(AtomicBool::new(true));
        let r = running.clone();
        let opts = q(&[("follow", "1"), ("timestamps", "1")]).unwrap();
        let s = LogStream::open(&p, &opts, ts(NOW)).await.unwrap();
        let mut stream =
            Box::pin(s.into_stream(move || std::future::ready(r.load(Ordering::SeqCst))));
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        for i in 0..3 {
            writeln!(f, "2024-05-01T10:00:0{i}Z stdout F line {i}").unwrap();
            let chunk = stream.next().await.unwrap().unwrap();
            assert_eq!(
                String::from_utf8(chunk).unwrap(),
                format!("2024-05-01T10:00:0{i}.000000000Z line {i}\n")
            );
        }
        running.store(false, Ordering::SeqCst);
        assert!(stream.next().await.is_none());
    }
}
