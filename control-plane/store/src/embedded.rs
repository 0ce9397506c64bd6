//! The embedded backend: an in-memory MVCC index made durable by a write-ahead log.
//!
//! # Write path (group commit)
//! A write takes the state lock, validates against the newest state, assigns the next
//! revision, *stages* the change in the index (invisible to readers), encodes its log record and
//! queues it for the writer thread, all under the lock, so log order is revision order. It then
//! waits for its acknowledgement. The writer thread takes every queued record at once, writes
//! them with one `write`, `fdatasync`s once, then makes the batch visible (raises the visible
//! revision, wakes watchers) and acknowledges each writer. Writers that arrive while a batch is
//! being synced form the next batch, so one fsync serves many writes under load.
//!
//! Reads and watches only ever see revisions up to the last durable one. If a log write or
//! fsync fails, the store refuses every later write (staged writes behind the failure are never
//! made visible), since the log can no longer be trusted to be in step with memory.
//!
//! # Files in the store directory
//! - `wal.log`: the log (format in `wal`). Created, and rewritten by compaction, as a snapshot:
//!   written to `wal.tmp`, fsynced, renamed over `wal.log`, directory fsynced. The header of
//!   each snapshot keeps the compaction point and the current revision.
//! - `LOCK`: held with an exclusive file lock while the store is open.
//!
//! # Recovery
//! `open` replays the log. A damaged record at the end of the file (a write torn by a crash:
//! never acknowledged, since acknowledgement follows fsync) is truncated away; damage followed
//! by more data is reported as [`StoreError::Corrupt`].

mod mvcc;
mod wal;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use bytes::Bytes;
use futures::StreamExt as _;
use tokio::sync::{oneshot, watch};

use crate::{Event, KeyValue, RangeResult, Revision, Store, StoreError, WatchStream};
use mvcc::{Mvcc, Write};
use wal::Record;

const LOG_FILE: &str = "wal.log";
const LOCK_FILE: &str = "LOCK";
/// Events a watcher scans per lock acquisition.
const WATCH_SCAN: usize = 1024;

/// The embedded, durable store backend. Cheap to share as `Arc<dyn Store>`; closing (dropping
/// the last handle) flushes queued writes and ends open watches with [`StoreError::Closed`].
pub struct Embedded {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    /// A directory removed when the store closes (see `open_temporary`).
    #[cfg(feature = "test-util")]
    temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

struct Shared {
    state: Mutex<State>,
    /// Signals the writer thread that `queue` is non-empty or `closing` is set.
    wake_writer: Condvar,
    /// Watchers subscribe here for "visible revision moved" notifications.
    visible_rx: watch::Receiver<Revision>,
    /// `None` for an in-memory store.
    dir: Option<PathBuf>,
    /// Log flushes (one write + fsync each) so far: tests check that commits are grouped.
    flushes: std::sync::atomic::AtomicU64,
}

struct State {
    mvcc: Mvcc,
    queue: Vec<Job>,
    closing: bool,
    /// Set when a log write failed: all later writes are refused.
    failed: Option<String>,
}

type Ack = oneshot::Sender<Result<(), StoreError>>;

enum Job {
    Write {
        revision: Revision,
        record: Vec<u8>,
        ack: Ack,
    },
    Compact {
        revision: Revision,
        ack: Ack,
    },
}

/// Where the writer thread persists records.
enum Log {
    Memory,
    File {
        dir: PathBuf,
        path: PathBuf,
        file: File,
        /// Held (exclusively locked) for as long as the store is open.
        _lock: File,
    },
}

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| StoreError::Io { context, source }
}

fn failed_err(msg: &str) -> StoreError {
    StoreError::Io {
        context: format!("store refuses writes after an earlier log failure: {msg}"),
        source: std::io::Error::other(msg.to_owned()),
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Critical sections do not panic; if one ever did, the state is still consistent
        // enough to read, and writes fail through `failed`.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Embedded {
    /// Opens (creating if needed) the store in directory `dir`, replaying its log.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the directory or log cannot be read or written,
    /// [`StoreError::Locked`] if another process has it open, [`StoreError::Corrupt`] if the
    /// log is damaged other than at its tail.
    pub fn open(dir: impl AsRef<Path>) -> Result<Embedded, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(format!("opening {}", lock_path.display())))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: dir.display().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(StoreError::Io {
                    context: format!("locking {}", lock_path.display()),
                    source,
                });
            }
        }
        let path = dir.join(LOG_FILE);
        let tmp = path.with_extension("tmp");
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::Io {
                    context: format!("removing {}", tmp.display()),
                    source,
                });
            }
        }
        let (mvcc, file) = if path.exists() {
            let mvcc = recover(&path)?;
            let file = File::options()
                .append(true)
                .open(&path)
                .map_err(io_err(format!("opening {}", path.display())))?;
            (mvcc, file)
        } else {
            let mvcc = Mvcc::default();
            let mut bytes = Vec::new();
            for record in mvcc.snapshot(0) {
                wal::encode(&record, &mut bytes);
            }
            let file = wal::replace_file(&dir, &path, &bytes)?;
            (mvcc, file)
        };
        Ok(Self::start(
            mvcc,
            Log::File {
                dir: dir.clone(),
                path,
                file,
                _lock: lock,
            },
            Some(dir),
        ))
    }

    /// A store that keeps everything in memory only (for tests and throwaway clusters).
    #[must_use]
    pub fn open_in_memory() -> Embedded {
        Self::start(Mvcc::default(), Log::Memory, None)
    }

    /// A durable store in a fresh temporary directory, removed when the store is dropped.
    ///
    /// # Errors
    /// As [`Embedded::open`].
    #[cfg(feature = "test-util")]
    pub fn open_temporary() -> Result<Embedded, StoreError> {
        let temp = tempfile::Builder::new()
            .prefix("sluice-store-")
            .tempdir()
            .map_err(io_err("creating a temporary directory".to_owned()))?;
        let mut store = Embedded::open(temp.path())?;
        store.temp = Some(temp);
        Ok(store)
    }

    fn start(mvcc: Mvcc, log: Log, dir: Option<PathBuf>) -> Embedded {
        let (visible_tx, visible_rx) = watch::channel(mvcc.visible);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                mvcc,
                queue: Vec::new(),
                closing: false,
                failed: None,
            }),
            wake_writer: Condvar::new(),
            visible_rx,
            dir,
            flushes: std::sync::atomic::AtomicU64::new(0),
        });
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("sluice-store-wal".to_owned())
            .spawn(move || writer_loop(&writer_shared, log, &visible_tx));
        match writer {
            Ok(handle) => Embedded {
                shared,
                writer: Some(handle),
                #[cfg(feature = "test-util")]
                temp: None,
            },
            Err(e) => {
                // Without a writer nothing can be made durable: refuse writes.
                shared.lock().failed = Some(format!("cannot start the log writer thread: {e}"));
                Embedded {
                    shared,
                    writer: None,
                    #[cfg(feature = "test-util")]
                    temp: None,
                }
            }
        }
    }

    /// Stages a write, queues its record and waits until it is durable.
    async fn write(
        &self,
        key: &str,
        value: Option<Bytes>,
        write: Write,
    ) -> Result<Event, StoreError> {
        if let Some(v) = &value {
            let size = wal::put_payload_len(key, v);
            if size > wal::MAX_PAYLOAD {
                return Err(StoreError::TooLarge {
                    key: key.to_owned(),
                    size,
                    max: wal::MAX_PAYLOAD,
                });
            }
        }
        let (event, rx) = {
            let mut st = self.shared.lock();
            if let Some(msg) = &st.failed {
                return Err(failed_err(msg));
            }
            if st.closing {
                return Err(StoreError::Closed);
            }
            let event = st.mvcc.stage(key, value, write)?;
            let mut record = Vec::new();
            wal::encode(&record_of(&event), &mut record);
            let (ack, rx) = oneshot::channel();
            st.queue.push(Job::Write {
                revision: event.revision(),
                record,
                ack,
            });
            self.shared.wake_writer.notify_one();
            (event, rx)
        };
        match rx.await {
            Ok(Ok(())) => Ok(event),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Closed),
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake_writer.notify_one();
        if let Some(handle) = self.writer.take() {
            // The writer drains the queue, then exits; a panic there is already reported.
            let _ = handle.join();
        }
    }
}

fn record_of(event: &Event) -> Record {
    match event {
        Event::Put { kv, .. } => Record::Put {
            key: kv.key.clone(),
            value: kv.value.clone(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
        },
        Event::Delete { prev, revision } => Record::Delete {
            key: prev.key.clone(),
            revision: *revision,
        },
    }
}

/// Replays the log at `path`, truncating a torn tail.
fn recover(path: &Path) -> Result<Mvcc, StoreError> {
    let log = wal::read_log(path)?;
    let display = path.display().to_string();
    let corrupt = |reason: String| StoreError::Corrupt {
        path: display.clone(),
        offset: 0,
        reason,
    };
    let mut records = log.records.into_iter();
    let Some(Record::Header {
        compacted,
        revision,
    }) = records.next()
    else {
        return Err(corrupt(
            "log does not start with a header record".to_owned(),
        ));
    };
    let mut mvcc = Mvcc::default();
    mvcc.replay_header(compacted).map_err(&corrupt)?;
    for record in records {
        match record {
            Record::Header { compacted, .. } => {
                return Err(corrupt(format!(
                    "second header record (compacted {compacted}) inside the log"
                )));
            }
            Record::Put {
                key,
                value,
                create_revision,
                mod_revision,
            } => mvcc
                .replay_put(key, value, create_revision, mod_revision)
                .map_err(&corrupt)?,
            Record::Delete { key, revision } => {
                mvcc.replay_delete(&key, revision).map_err(&corrupt)?;
            }
        }
    }
    mvcc.finish_replay(revision);
    if log.valid_len < log.file_len {
        // A torn tail from a crash mid-write: never acknowledged, drop it.
        File::options()
            .write(true)
            .open(path)
            .and_then(|f| {
                f.set_len(log.valid_len)?;
                f.sync_all()
            })
            .map_err(io_err(format!("truncating torn tail of {display}")))?;
    }
    Ok(mvcc)
}

/// The writer thread: group commit and compaction snapshots.
fn writer_loop(shared: &Shared, mut log: Log, visible_tx: &watch::Sender<Revision>) {
    let mut batch = Batch::default();
    loop {
        let jobs = {
            let mut st = shared.lock();
            while st.queue.is_empty() && !st.closing {
                st = shared
                    .wake_writer
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if st.queue.is_empty() {
                return; // closing, and everything queued is done
            }
            std::mem::take(&mut st.queue)
        };
        for job in jobs {
            match job {
                Job::Write {
                    revision,
                    record,
                    ack,
                } => {
                    batch.bytes.extend_from_slice(&record);
                    batch.acks.push(ack);
                    batch.last = revision;
                }
                Job::Compact { revision, ack } => {
                    batch.flush(shared, &mut log, visible_tx);
                    let result = compact_log(shared, &mut log, revision);
                    let _ = ack.send(result);
                }
            }
        }
        batch.flush(shared, &mut log, visible_tx);
    }
}

#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    acks: Vec<Ack>,
    last: Revision,
}

impl Batch {
    /// Writes and fsyncs the batch, makes it visible and acknowledges it.
    fn flush(&mut self, shared: &Shared, log: &mut Log, visible_tx: &watch::Sender<Revision>) {
        if self.acks.is_empty() {
            return;
        }
        let failed = shared.lock().failed.clone();
        let result = match (failed, log) {
            (Some(msg), _) => Err(msg),
            (None, Log::Memory) => Ok(()),
            (None, Log::File { file, path, .. }) => file
                .write_all(&self.bytes)
                .and_then(|()| file.sync_data())
                .map_err(|e| format!("writing {}: {e}", path.display())),
        };
        self.bytes.clear();
        shared
            .flushes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match result {
            Ok(()) => {
                shared.lock().mvcc.visible = self.last;
                visible_tx.send_replace(self.last);
                for ack in self.acks.drain(..) {
                    let _ = ack.send(Ok(()));
                }
            }
            Err(msg) => {
                shared.lock().failed.get_or_insert_with(|| msg.clone());
                for ack in self.acks.drain(..) {
                    let _ = ack.send(Err(failed_err(&msg)));
                }
            }
        }
    }
}

/// Compacts at `revision`: rewrites the log as a snapshot, then drops the history in memory.
fn compact_log(shared: &Shared, log: &mut Log, revision: Revision) -> Result<(), StoreError> {
    let records = {
        let st = shared.lock();
        if let Some(msg) = &st.failed {
            return Err(failed_err(msg));
        }
        let m = &st.mvcc;
        if revision < m.compacted {
            return Err(StoreError::Compacted {
                requested: revision,
                compacted: m.compacted,
            });
        }
        if revision == m.compacted {
            return Ok(());
        }
        if revision > m.visible {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: m.visible,
            });
        }
        match log {
            Log::Memory => None,
            Log::File { .. } => Some(m.snapshot(revision)),
        }
    };
    if let (
        Some(records),
        Log::File {
            dir, path, file, ..
        },
    ) = (records, &mut *log)
    {
        let mut bytes = Vec::new();
        for record in &records {
            wal::encode(record, &mut bytes);
        }
        drop(records);
        *file = wal::replace_file(dir, path, &bytes)?;
    }
    shared.lock().mvcc.compact(revision);
    Ok(())
}

#[async_trait::async_trait]
impl Store for Embedded {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let st = self.shared.lock();
        Ok(st.mvcc.get_at(key, st.mvcc.visible))
    }

    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
        revision: Option<Revision>,
    ) -> Result<RangeResult, StoreError> {
        self.shared
            .lock()
            .mvcc
            .range(prefix, start_after, limit, revision)
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue, StoreError> {
        match self.write(key, Some(value), Write::Create).await? {
            Event::Put { kv, .. } => Ok(kv),
            Event::Delete { .. } => Err(internal("create made a delete")),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
    ) -> Result<KeyValue, StoreError> {
        let write = Write::Update {
            expected: expected_mod_revision,
        };
        match self.write(key, Some(value), write).await? {
            Event::Put { kv, .. } => Ok(kv),
            Event::Delete { .. } => Err(internal("update made a delete")),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        let write = Write::Delete {
            expected: expected_mod_revision,
        };
        match self.write(key, None, write).await? {
            Event::Delete { prev, .. } => Ok(prev),
            Event::Put { .. } => Err(internal("delete made a put")),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        {
            let st = self.shared.lock();
            if after < st.mvcc.compacted {
                return Err(StoreError::Compacted {
                    requested: after,
                    compacted: st.mvcc.compacted,
                });
            }
        }
        let watcher = Watcher {
            shared: Arc::clone(&self.shared),
            rx: self.shared.visible_rx.clone(),
            prefix: prefix.to_owned(),
            cursor: after,
            buf: VecDeque::new(),
            done: false,
        };
        Ok(futures::stream::unfold(watcher, Watcher::next).boxed())
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.shared.lock().mvcc.visible)
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let rx = {
            let mut st = self.shared.lock();
            if let Some(msg) = &st.failed {
                return Err(failed_err(msg));
            }
            if st.closing {
                return Err(StoreError::Closed);
            }
            let m = &st.mvcc;
            if revision < m.compacted {
                return Err(StoreError::Compacted {
                    requested: revision,
                    compacted: m.compacted,
                });
            }
            if revision == m.compacted {
                return Ok(());
            }
            if revision > m.visible {
                return Err(StoreError::FutureRevision {
                    requested: revision,
                    current: m.visible,
                });
            }
            let (ack, rx) = oneshot::channel();
            st.queue.push(Job::Compact { revision, ack });
            self.shared.wake_writer.notify_one();
            rx
        };
        rx.await.unwrap_or(Err(StoreError::Closed))
    }

    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.shared.lock().mvcc.compacted)
    }
}

fn internal(message: &str) -> StoreError {
    StoreError::Backend {
        message: format!("internal: {message}"),
    }
}

/// A watch stream's state: pulls events from the shared history, so it never skips one; a
/// watcher that falls behind compaction ends with [`StoreError::Compacted`].
struct Watcher {
    shared: Arc<Shared>,
    rx: watch::Receiver<Revision>,
    prefix: String,
    /// Revision of the last event scanned.
    cursor: Revision,
    buf: VecDeque<Event>,
    done: bool,
}

impl Watcher {
    async fn next(mut self) -> Option<(Result<Event, StoreError>, Watcher)> {
        loop {
            if let Some(event) = self.buf.pop_front() {
                return Some((Ok(event), self));
            }
            if self.done {
                return None;
            }
            self.rx.borrow_and_update();
            let scanned = self.shared.lock().mvcc.events_after(
                &self.prefix,
                &mut self.cursor,
                WATCH_SCAN,
                &mut self.buf,
            );
            match scanned {
                Err(e) => {
                    self.done = true;
                    return Some((Err(e), self));
                }
                Ok(_) if !self.buf.is_empty() => {}
                Ok(false) => tokio::task::yield_now().await,
                Ok(true) => {
                    if self.rx.changed().await.is_err() {
                        self.done = true;
                        return Some((Err(StoreError::Closed), self));
                    }
                }
            }
        }
    }
}
