//! Versioned key-value store with etcd semantics (revisions, compare-and-swap, watch, compaction).
//!
//! The API server keeps Kubernetes objects here: keys like `/registry/pods/default/web-1`,
//! values the object's JSON bytes. [`Store`] is the one interface; it maps 1:1 onto etcd's
//! KV API (a `Txn` comparing `mod_revision`, `Range` with prefix/limit/revision, `Watch` with a
//! start revision, `Compact`), so an etcd backend can implement it directly.
//!
//! Semantics, as in etcd:
//! - one global revision counter, incremented by every write (create, update, delete);
//! - each key carries `create_revision` (the revision that created it; a key deleted and created
//!   again gets a new one) and `mod_revision` (the revision of its last write);
//! - reads can be made at an old revision (MVCC) until that revision is compacted;
//! - a watch replays every event after a given revision, then follows live events, with no gap
//!   and no duplicate.
//!
//! Mapping onto etcd v3 (for the etcd backend):
//! - `get` / `range`: `Range` (key = `prefix`, or `start_after` + `"\0"`; `range_end` = prefix
//!   end; `limit`; `revision`); `more` and the header revision come back as they are;
//! - `create`: `Txn(If create_revision(key) == 0, Then Put, Else Range(key))`;
//! - `update`: `Txn(If mod_revision(key) == expected, Then Put, Else Range(key))`, where an
//!   empty Else range means `NotFound`;
//! - `delete`: `Txn(If mod_revision(key) == expected (or none), Then DeleteRange(prev_kv),
//!   Else Range(key))`;
//! - `watch`: `Watch(prefix, start_revision = after + 1, prev_kv = true)`;
//! - `compact`: `Compact(revision)`.
//!
//! The backend-agnostic test suite is `conformance` (feature `test-util`), which also provides
//! `Embedded::open_temporary` for other crates' tests.
//!
//! [`Embedded`] is the default backend: an in-memory MVCC index made durable by a write-ahead
//! log with group commit (see the `embedded` module docs).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use bytes::Bytes;
use futures::stream::BoxStream;

mod embedded;

#[cfg(feature = "test-util")]
pub mod conformance;

pub use embedded::Embedded;

/// A store revision. Revision 0 is the empty store before any write; every write increments it.
pub type Revision = i64;

/// A key with its value and revisions, as of some revision of the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, e.g. `/registry/pods/default/web-1`.
    pub key: String,
    /// The value (object JSON for the API server; opaque here).
    pub value: Bytes,
    /// The revision at which this key was (last) created.
    pub create_revision: Revision,
    /// The revision of the last write to this key.
    pub mod_revision: Revision,
}

/// The answer to [`Store::range`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeResult {
    /// Matching keys, in key order.
    pub kvs: Vec<KeyValue>,
    /// True if `limit` cut the result short: more keys match after the last one returned.
    pub more: bool,
    /// The store revision the range was read at (pass it back to read the next page
    /// consistently, or to start a watch after it).
    pub revision: Revision,
}

/// One change to one key, as delivered by [`Store::watch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The key was created or updated.
    Put {
        /// The key as written, with `mod_revision` the event's revision.
        kv: KeyValue,
        /// The key before this write, if it existed.
        prev: Option<KeyValue>,
    },
    /// The key was deleted.
    Delete {
        /// The key as it was just before the delete.
        prev: KeyValue,
        /// The revision of the delete.
        revision: Revision,
    },
}

impl Event {
    /// The revision at which this event happened.
    #[must_use]
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }

    /// The key this event is about.
    #[must_use]
    pub fn key(&self) -> &str {
        match self {
            Event::Put { kv, .. } => &kv.key,
            Event::Delete { prev, .. } => &prev.key,
        }
    }
}

/// Errors of [`Store`] operations.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The key does not exist.
    #[error("key {key:?} not found")]
    NotFound {
        /// The key asked for.
        key: String,
    },
    /// `create` of a key that already exists.
    #[error("key {key:?} already exists")]
    AlreadyExists {
        /// The key asked for.
        key: String,
    },
    /// A compare-and-swap failed: the key's `mod_revision` was not the expected one.
    #[error("conflict on key {key:?}: expected mod_revision {expected}, found {}", current.as_ref().map_or(0, |kv| kv.mod_revision))]
    Conflict {
        /// The key asked for.
        key: String,
        /// The `mod_revision` the caller expected.
        expected: Revision,
        /// The key as it is now (`None` if it does not exist).
        current: Option<KeyValue>,
    },
    /// The revision asked for has been compacted away (HTTP 410 Gone / "too old resource version").
    #[error("revision {requested} has been compacted (compacted revision is {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The store's compaction point.
        compacted: Revision,
    },
    /// The revision asked for is newer than the store's current revision.
    #[error("revision {requested} is in the future (current revision is {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// A watch consumer fell too far behind (its events were compacted or its buffer overflowed);
    /// the client must list again.
    #[error("watch fell behind at revision {revision}; list again")]
    WatchLagged {
        /// The last revision the watcher had received.
        revision: Revision,
    },
    /// An I/O error on the store's files. After a failed log write the store refuses writes.
    #[error("{context}")]
    Io {
        /// What the store was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The on-disk data is damaged (not a torn tail, which is repaired on open).
    #[error("store data corrupt in {path} at byte {offset}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: String,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A value too large for one log record.
    #[error("value of key {key:?} is too large ({size} bytes, limit {max})")]
    TooLarge {
        /// The key written.
        key: String,
        /// The encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The store directory is in use by another process.
    #[error("store directory {path} is locked by another process")]
    Locked {
        /// The store directory.
        path: String,
    },
    /// The store has been shut down (or failed earlier and refuses further writes).
    #[error("store is closed")]
    Closed,
    /// The backend failed in a way not covered above (e.g. an etcd RPC error).
    #[error("store backend error: {message}")]
    Backend {
        /// What went wrong.
        message: String,
    },
}

/// A stream of watch events; it ends with an `Err` item when the watcher must list again.
pub type WatchStream = BoxStream<'static, Result<Event, StoreError>>;

/// A versioned key-value store with etcd semantics.
///
/// Object-safe: hold it as `Arc<dyn Store>`.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The latest value of `key`, or `None` if it does not exist.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Keys starting with `prefix` (empty: all keys), in key order, strictly after
    /// `start_after` if given, at most `limit` of them (`None` or `Some(0)`: no limit;
    /// `more` is true if the result was cut short).
    ///
    /// Read at `revision` if it is `Some(r)` with `r > 0` (the state as of that revision:
    /// [`StoreError::Compacted`] if `r` is below the compaction point,
    /// [`StoreError::FutureRevision`] if above the current revision), else at the latest revision.
    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
        revision: Option<Revision>,
    ) -> Result<RangeResult, StoreError>;

    /// Creates `key`; [`StoreError::AlreadyExists`] if it exists.
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue, StoreError>;

    /// Replaces the value of `key` if its `mod_revision` is `expected_mod_revision`:
    /// [`StoreError::Conflict`] (with the current kv) if it differs, [`StoreError::NotFound`]
    /// if the key does not exist.
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
    ) -> Result<KeyValue, StoreError>;

    /// Deletes `key` and returns it as it was; if `expected_mod_revision` is given it must
    /// match ([`StoreError::Conflict`] otherwise). [`StoreError::NotFound`] if absent.
    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<Revision>,
    ) -> Result<KeyValue, StoreError>;

    /// All events on keys under `prefix` with revision greater than `after` (the revision a
    /// client listed at), in revision order, then live events, with no gap and no duplicate.
    ///
    /// Returns [`StoreError::Compacted`] at once if `after` is below the compaction point.
    /// `after` may be in the future: events start when the store gets there.
    /// The stream ends with an `Err` item (never by silently skipping events) if the consumer
    /// falls behind compaction or the store closes; the client must then list again.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError>;

    /// The store's current revision (that of the last acknowledged write).
    async fn current_revision(&self) -> Result<Revision, StoreError>;

    /// Drops history at and below `revision`, keeping the latest version of each live key.
    /// Later watches and ranges below it fail with [`StoreError::Compacted`].
    ///
    /// Compacting at the current compaction point again is a no-op; below it is
    /// [`StoreError::Compacted`]; above the current revision is [`StoreError::FutureRevision`].
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;

    /// The revision of the last compaction (0 if never compacted).
    async fn compacted_revision(&self) -> Result<Revision, StoreError>;
}
