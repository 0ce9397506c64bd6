//! The in-memory MVCC index and event history of the embedded backend (no I/O here).

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

use bytes::Bytes;

use crate::{Event, KeyValue, RangeResult, Revision, StoreError};

/// One version of a key: a value written at `mod_revision`, or a tombstone.
#[derive(Clone, Debug)]
struct Version {
    mod_revision: Revision,
    create_revision: Revision,
    /// `None`: the key was deleted at `mod_revision`.
    value: Option<Bytes>,
}

/// The MVCC state: every retained version of every key plus the event history.
///
/// Writes are *staged* here before they are durable; `visible` is the revision of the last
/// durable write, and every read is made at or below it, so nothing unacknowledged is ever seen.
#[derive(Debug, Default)]
pub(crate) struct Mvcc {
    /// Versions per key, oldest first.
    index: BTreeMap<String, Vec<Version>>,
    /// One event per revision above `compacted`, in revision order (staged ones included).
    history: VecDeque<Event>,
    /// Revision of the last staged write.
    pub(crate) staged: Revision,
    /// Revision of the last durable write: reads happen at or below it.
    pub(crate) visible: Revision,
    /// Compaction point: history at and below it is gone.
    pub(crate) compacted: Revision,
}

/// The kind of write to stage.
pub(crate) enum Write {
    Create,
    Update { expected: Revision },
    Delete { expected: Option<Revision> },
}

impl Version {
    fn to_kv(&self, key: &str) -> Option<KeyValue> {
        self.value.as_ref().map(|value| KeyValue {
            key: key.to_owned(),
            value: value.clone(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
        })
    }
}

/// The version of a key as of `rev` (`None` if it had no version then).
fn version_at(versions: &[Version], rev: Revision) -> Option<&Version> {
    let n = versions.partition_point(|v| v.mod_revision <= rev);
    n.checked_sub(1).map(|i| &versions[i])
}

impl Mvcc {
    /// The live value of `key` as of `rev`.
    pub(crate) fn get_at(&self, key: &str, rev: Revision) -> Option<KeyValue> {
        self.index
            .get(key)
            .and_then(|v| version_at(v, rev))
            .and_then(|v| v.to_kv(key))
    }

    /// The newest (possibly staged) live value of `key`.
    fn get_staged(&self, key: &str) -> Option<KeyValue> {
        self.index
            .get(key)
            .and_then(|v| v.last())
            .and_then(|v| v.to_kv(key))
    }

    /// Checks that `rev` can be read: not compacted, not in the future.
    pub(crate) fn check_readable(&self, rev: Revision) -> Result<(), StoreError> {
        if rev < self.compacted {
            return Err(StoreError::Compacted {
                requested: rev,
                compacted: self.compacted,
            });
        }
        if rev > self.visible {
            return Err(StoreError::FutureRevision {
                requested: rev,
                current: self.visible,
            });
        }
        Ok(())
    }

    /// Range read; see [`crate::Store::range`].
    pub(crate) fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
        revision: Option<Revision>,
    ) -> Result<RangeResult, StoreError> {
        let rev = match revision {
            Some(r) if r > 0 => {
                self.check_readable(r)?;
                r
            }
            _ => self.visible,
        };
        let limit = limit.filter(|&l| l > 0).unwrap_or(usize::MAX);
        let lower = match start_after {
            Some(s) if s >= prefix => Bound::Excluded(s),
            _ => Bound::Included(prefix),
        };
        let mut kvs = Vec::new();
        let mut more = false;
        for (key, versions) in self
            .index
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
        {
            let Some(kv) = version_at(versions, rev).and_then(|v| v.to_kv(key)) else {
                continue;
            };
            if kvs.len() == limit {
                more = true;
                break;
            }
            kvs.push(kv);
        }
        Ok(RangeResult {
            kvs,
            more,
            revision: rev,
        })
    }

    /// Validates a write against the newest (staged) state and stages it at revision
    /// `staged + 1`. Returns the event it makes.
    pub(crate) fn stage(
        &mut self,
        key: &str,
        value: Option<Bytes>,
        write: Write,
    ) -> Result<Event, StoreError> {
        let current = self.get_staged(key);
        let rev = self.staged + 1;
        let event = match (write, current, value) {
            (Write::Create, None, Some(value)) => Event::Put {
                kv: KeyValue {
                    key: key.to_owned(),
                    value,
                    create_revision: rev,
                    mod_revision: rev,
                },
                prev: None,
            },
            (Write::Create, Some(_), _) => {
                return Err(StoreError::AlreadyExists {
                    key: key.to_owned(),
                });
            }
            (Write::Update { .. } | Write::Delete { .. }, None, _) => {
                return Err(StoreError::NotFound {
                    key: key.to_owned(),
                });
            }
            (Write::Update { expected }, Some(cur), Some(value)) => {
                if cur.mod_revision != expected {
                    return Err(StoreError::Conflict {
                        key: key.to_owned(),
                        expected,
                        current: Some(cur),
                    });
                }
                Event::Put {
                    kv: KeyValue {
                        key: key.to_owned(),
                        value,
                        create_revision: cur.create_revision,
                        mod_revision: rev,
                    },
                    prev: Some(cur),
                }
            }
            (Write::Delete { expected }, Some(cur), _) => {
                if let Some(expected) = expected
                    && cur.mod_revision != expected
                {
                    return Err(StoreError::Conflict {
                        key: key.to_owned(),
                        expected,
                        current: Some(cur),
                    });
                }
                Event::Delete {
                    prev: cur,
                    revision: rev,
                }
            }
            (Write::Create | Write::Update { .. }, _, None) => {
                return Err(StoreError::Backend {
                    message: "internal: put without a value".to_owned(),
                });
            }
        };
        self.apply(event.clone());
        Ok(event)
    }

    /// Records `event` (whose revision must be `staged + 1`) in the index and history.
    fn apply(&mut self, event: Event) {
        let version = match &event {
            Event::Put { kv, .. } => Version {
                mod_revision: kv.mod_revision,
                create_revision: kv.create_revision,
                value: Some(kv.value.clone()),
            },
            Event::Delete { prev, revision } => Version {
                mod_revision: *revision,
                create_revision: prev.create_revision,
                value: None,
            },
        };
        self.staged = version.mod_revision;
        match self.index.get_mut(event.key()) {
            Some(versions) => versions.push(version),
            None => {
                self.index.insert(event.key().to_owned(), vec![version]);
            }
        }
        self.history.push_back(event);
    }

    /// Replays a logged Put. At or below the compaction point it is base state (no event);
    /// above it, an event that must come in revision order.
    pub(crate) fn replay_put(
        &mut self,
        key: String,
        value: Bytes,
        create_revision: Revision,
        mod_revision: Revision,
    ) -> Result<(), String> {
        if create_revision <= 0 || create_revision > mod_revision {
            return Err(format!(
                "put of {key:?}: bad revisions create={create_revision} mod={mod_revision}"
            ));
        }
        if mod_revision <= self.compacted {
            let versions = self.index.entry(key).or_default();
            if !versions.is_empty() {
                return Err("base state lists a key twice".to_owned());
            }
            versions.push(Version {
                mod_revision,
                create_revision,
                value: Some(value),
            });
            return Ok(());
        }
        if mod_revision != self.staged + 1 {
            return Err(format!(
                "put of {key:?} at revision {mod_revision} follows revision {}",
                self.staged
            ));
        }
        let prev = self.get_staged(&key);
        let expected_create = prev.as_ref().map_or(mod_revision, |p| p.create_revision);
        if create_revision != expected_create {
            return Err(format!(
                "put of {key:?} at revision {mod_revision} has create_revision {create_revision}, expected {expected_create}"
            ));
        }
        self.apply(Event::Put {
            kv: KeyValue {
                key,
                value,
                create_revision,
                mod_revision,
            },
            prev,
        });
        Ok(())
    }

    /// Replays a logged Delete (always an event above the compaction point).
    pub(crate) fn replay_delete(&mut self, key: &str, revision: Revision) -> Result<(), String> {
        if revision != self.staged + 1 {
            return Err(format!(
                "delete of {key:?} at revision {revision} follows revision {}",
                self.staged
            ));
        }
        let Some(prev) = self.get_staged(key) else {
            return Err(format!(
                "delete of missing key {key:?} at revision {revision}"
            ));
        };
        self.apply(Event::Delete { prev, revision });
        Ok(())
    }

    /// Drops history at and below `rev` (which must be at most `visible`).
    pub(crate) fn compact(&mut self, rev: Revision) {
        if rev <= self.compacted {
            return;
        }
        self.index.retain(|_, versions| {
            // Keep the version current at `rev` (if live) and everything after it.
            let n = versions.partition_point(|v| v.mod_revision <= rev);
            let keep_from = match n.checked_sub(1) {
                Some(i) if versions[i].value.is_some() => i,
                _ => n,
            };
            versions.drain(..keep_from);
            !versions.is_empty()
        });
        while self.history.front().is_some_and(|e| e.revision() <= rev) {
            self.history.pop_front();
        }
        self.compacted = rev;
    }

    /// The log records of a snapshot at `self.visible` as if compacted at `compact_at`
    /// (at least `self.compacted`): header, base state as of the compaction point, then every
    /// event after it up to `visible`. Staged (not yet durable) writes are left out: they are
    /// still queued for the log and will be appended after the snapshot.
    pub(crate) fn snapshot(&self, compact_at: Revision) -> Vec<super::wal::Record> {
        use super::wal::Record;
        let compact_at = compact_at.max(self.compacted);
        let mut out = vec![Record::Header {
            compacted: compact_at,
            revision: self.visible,
        }];
        for (key, versions) in &self.index {
            if let Some(kv) = version_at(versions, compact_at).and_then(|v| v.to_kv(key)) {
                out.push(Record::Put {
                    key: kv.key,
                    value: kv.value,
                    create_revision: kv.create_revision,
                    mod_revision: kv.mod_revision,
                });
            }
        }
        let start = self.history.partition_point(|e| e.revision() <= compact_at);
        for event in self
            .history
            .range(start..)
            .take_while(|e| e.revision() <= self.visible)
        {
            out.push(match event {
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
            });
        }
        out
    }

    /// Copies into `out` the visible events after `*cursor` on keys under `prefix`, scanning at
    /// most `max_scan` events, and advances `*cursor` past what it scanned. Returns true if it
    /// reached the last visible event.
    pub(crate) fn events_after(
        &self,
        prefix: &str,
        cursor: &mut Revision,
        max_scan: usize,
        out: &mut VecDeque<Event>,
    ) -> Result<bool, StoreError> {
        if *cursor < self.compacted {
            return Err(StoreError::Compacted {
                requested: *cursor,
                compacted: self.compacted,
            });
        }
        let start = self.history.partition_point(|e| e.revision() <= *cursor);
        for event in self.history.range(start..).take(max_scan) {
            let rev = event.revision();
            if rev > self.visible {
                return Ok(true);
            }
            if event.key().starts_with(prefix) {
                out.push_back(event.clone());
            }
            *cursor = rev;
        }
        Ok(*cursor >= self.visible || start.saturating_add(max_scan) >= self.history.len())
    }
}

impl Mvcc {
    /// Starts a replay from a log header.
    pub(crate) fn replay_header(&mut self, compacted: Revision) -> Result<(), String> {
        if compacted < 0 || !self.index.is_empty() || self.staged != 0 {
            return Err(format!(
                "unexpected header (compacted {compacted}) after records"
            ));
        }
        self.compacted = compacted;
        self.staged = compacted;
        self.visible = compacted;
        Ok(())
    }

    /// Ends a replay: everything replayed is durable; the revision never goes below the
    /// header's `revision`.
    pub(crate) fn finish_replay(&mut self, header_revision: Revision) {
        self.staged = self.staged.max(header_revision);
        self.visible = self.staged;
    }
}
