//! Tests specific to the embedded backend: durability, recovery, the log format.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;

use super::wal::{self, Record};
use super::{Embedded, LOG_FILE};
use crate::{Event, KeyValue, Store, StoreError};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sluice-store-test-")
        .tempdir()
        .unwrap()
}

async fn dump(store: &dyn Store) -> Vec<KeyValue> {
    store.range("", None, None, None).await.unwrap().kvs
}

/// The next watch item, failing the test instead of hanging.
async fn next(w: &mut crate::WatchStream) -> Option<Result<Event, StoreError>> {
    tokio::time::timeout(std::time::Duration::from_secs(10), w.next())
        .await
        .expect("watch stalled")
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn record_round_trip() {
    let records = vec![
        Record::Header {
            compacted: 3,
            revision: 9,
        },
        Record::Put {
            key: "/registry/pods/default/web-1".to_owned(),
            value: b("{\"kind\":\"Pod\"}"),
            create_revision: 4,
            mod_revision: 7,
        },
        Record::Put {
            key: String::new(),
            value: Bytes::new(),
            create_revision: 8,
            mod_revision: 8,
        },
        Record::Delete {
            key: "ü".to_owned(),
            revision: 9,
        },
    ];
    let mut bytes = Vec::new();
    for r in &records {
        wal::encode(r, &mut bytes);
    }
    let read = wal::parse_log(&bytes, "test").unwrap();
    assert_eq!(read.records, records);
    assert_eq!(read.valid_len, bytes.len() as u64);

    // Every truncation is a torn tail: a prefix of the records, never an error.
    for cut in 0..bytes.len() {
        let read = wal::parse_log(&bytes[..cut], "test").unwrap();
        assert!(read.records.len() < records.len());
        assert_eq!(read.records[..], records[..read.records.len()]);
    }
    // A flipped bit in the last record is a torn tail; in an earlier one, corruption.
    let mut last = bytes.clone();
    let n = last.len();
    last[n - 1] ^= 1;
    assert_eq!(wal::parse_log(&last, "test").unwrap().records.len(), 3);
    let mut middle = bytes.clone();
    middle[20] ^= 1;
    assert!(matches!(
        wal::parse_log(&middle, "test"),
        Err(StoreError::Corrupt { .. })
    ));
    // Zeroes after the records (a preallocated tail) are a torn tail.
    let mut zeros = bytes.clone();
    zeros.extend_from_slice(&[0; 100]);
    assert_eq!(wal::parse_log(&zeros, "test").unwrap().records.len(), 4);
}

#[test]
fn garbage_never_panics() {
    // Deterministic pseudo-random inputs, with and without a valid prefix.
    let mut valid = Vec::new();
    wal::encode(
        &Record::Header {
            compacted: 0,
            revision: 0,
        },
        &mut valid,
    );
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in 0..400usize {
        let mut data = if len % 2 == 0 {
            valid.clone()
        } else {
            Vec::new()
        };
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.push(x.to_le_bytes()[3]);
        }
        let _ = wal::parse_log(&data, "fuzz");
    }
}

#[tokio::test]
async fn reopen_restores_everything() {
    let dir = tempdir();
    let (kvs, rev) = {
        let store = Embedded::open(dir.path()).unwrap();
        let a = store.create("/a", b("a1")).await.unwrap();
        store.create("/b", b("b1")).await.unwrap();
        store.update("/a", b("a2"), a.mod_revision).await.unwrap();
        store.create("/c", b("c1")).await.unwrap();
        store.delete("/b", None).await.unwrap();
        (dump(&store).await, store.current_revision().await.unwrap())
    };
    assert_eq!(rev, 5);
    let store = Embedded::open(dir.path()).unwrap();
    assert_eq!(dump(&store).await, kvs);
    assert_eq!(store.current_revision().await.unwrap(), rev);
    // History survives too: MVCC reads and watch replay from the beginning.
    let at2 = store.range("", None, None, Some(2)).await.unwrap();
    assert_eq!(at2.kvs.len(), 2);
    let mut w = store.watch("/", 0).await.unwrap();
    let mut revs = Vec::new();
    for _ in 0..5 {
        revs.push(next(&mut w).await.unwrap().unwrap().revision());
    }
    assert_eq!(revs, [1, 2, 3, 4, 5]);
    // And the next write continues the revision sequence.
    let d = store.create("/d", b("d")).await.unwrap();
    assert_eq!(d.mod_revision, 6);
    match next(&mut w).await.unwrap().unwrap() {
        Event::Put { kv, prev: None } => assert_eq!(kv, d),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn delete_only_tail_keeps_revision() {
    let dir = tempdir();
    {
        let store = Embedded::open(dir.path()).unwrap();
        store.create("/a", b("a")).await.unwrap();
        store.create("/b", b("b")).await.unwrap();
        store.compact(2).await.unwrap();
        store.delete("/a", None).await.unwrap();
        store.delete("/b", None).await.unwrap();
        assert_eq!(store.current_revision().await.unwrap(), 4);
        store.compact(4).await.unwrap();
    }
    let store = Embedded::open(dir.path()).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), 4);
    assert_eq!(store.compacted_revision().await.unwrap(), 4);
    assert!(dump(&store).await.is_empty());
    let a = store.create("/a", b("again")).await.unwrap();
    assert_eq!((a.create_revision, a.mod_revision), (5, 5));
}

#[tokio::test]
async fn compaction_persists_and_shrinks_log() {
    let dir = tempdir();
    let log = dir.path().join(LOG_FILE);
    let (latest, history_tail) = {
        let store = Embedded::open(dir.path()).unwrap();
        let mut kv = store.create("/k", b("0")).await.unwrap();
        for i in 1..500 {
            kv = store
                .update("/k", b(&format!("{i:0>100}")), kv.mod_revision)
                .await
                .unwrap();
        }
        store.create("/other", b("x")).await.unwrap();
        let before = std::fs::metadata(&log).unwrap().len();
        store.compact(450).await.unwrap();
        let after = std::fs::metadata(&log).unwrap().len();
        assert!(after * 5 < before, "log not rewritten: {before} -> {after}");
        // Writes after compaction go to the new log.
        store
            .update("/k", b("last"), kv.mod_revision)
            .await
            .unwrap();
        let tail: Vec<Event> = {
            let mut w = store.watch("/k", 450).await.unwrap();
            let mut v = Vec::new();
            for _ in 0..51 {
                // 451..=500 and 502 (501 is /other).
                v.push(next(&mut w).await.unwrap().unwrap());
            }
            v
        };
        (dump(&store).await, tail)
    };
    let store = Embedded::open(dir.path()).unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), 450);
    assert_eq!(store.current_revision().await.unwrap(), 502);
    assert_eq!(dump(&store).await, latest);
    // The retained history (above the compaction point) is still there, with prev values.
    let mut w = store.watch("/k", 450).await.unwrap();
    for expected in history_tail {
        assert_eq!(next(&mut w).await.unwrap().unwrap(), expected);
    }
    assert!(matches!(
        store.watch("/k", 449).await,
        Err(StoreError::Compacted { .. })
    ));
    assert!(matches!(
        store.range("/k", None, None, Some(449)).await,
        Err(StoreError::Compacted { .. })
    ));
    let at450 = store.range("/k", None, None, Some(450)).await.unwrap();
    assert_eq!(at450.kvs[0].mod_revision, 450);
}

#[tokio::test]
async fn torn_tail_is_truncated() {
    let dir = tempdir();
    let log = dir.path().join(LOG_FILE);
    let kvs = {
        let store = Embedded::open(dir.path()).unwrap();
        for i in 0..10 {
            store.create(&format!("/k{i}"), b("v")).await.unwrap();
        }
        dump(&store).await
    };
    let good_len = std::fs::metadata(&log).unwrap().len();

    // Half a record, as a crash mid-write leaves it.
    let mut rec = Vec::new();
    wal::encode(
        &Record::Put {
            key: "/torn".to_owned(),
            value: b("never acknowledged"),
            create_revision: 11,
            mod_revision: 11,
        },
        &mut rec,
    );
    append(&log, &rec[..rec.len() / 2]);
    {
        let store = Embedded::open(dir.path()).unwrap();
        assert_eq!(dump(&store).await, kvs);
        assert_eq!(store.current_revision().await.unwrap(), 10);
        assert_eq!(std::fs::metadata(&log).unwrap().len(), good_len);
        // The log is writable after the repair.
        store.create("/after", b("x")).await.unwrap();
    }
    // Random garbage after a valid log.
    append(&log, b"\x07garbage\xff\xfe that is not a record");
    let store = Embedded::open(dir.path()).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), 11);
    assert!(store.get("/after").await.unwrap().is_some());
}

#[tokio::test]
async fn corruption_in_the_middle_is_an_error() {
    let dir = tempdir();
    let log = dir.path().join(LOG_FILE);
    {
        let store = Embedded::open(dir.path()).unwrap();
        for i in 0..10 {
            store.create(&format!("/k{i}"), b("value")).await.unwrap();
        }
    }
    let mut bytes = std::fs::read(&log).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&log, &bytes).unwrap();
    match Embedded::open(dir.path()) {
        Err(StoreError::Corrupt { .. }) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // A log without a header is corrupt too.
    std::fs::write(&log, b"").unwrap();
    assert!(matches!(
        Embedded::open(dir.path()),
        Err(StoreError::Corrupt { .. })
    ));
}

#[tokio::test]
async fn second_open_is_locked() {
    let dir = tempdir();
    let store = Embedded::open(dir.path()).unwrap();
    match Embedded::open(dir.path()) {
        Err(StoreError::Locked { .. }) => {}
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(store);
    Embedded::open(dir.path()).unwrap();
}

fn store_flushes(store: &Embedded) -> u64 {
    store
        .shared
        .flushes
        .load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_survive_reopen() {
    let dir = tempdir();
    let mut written = Vec::new();
    {
        let store = Arc::new(Embedded::open(dir.path()).unwrap());
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let mut kvs = Vec::new();
                    for i in 0..200 {
                        let key = format!("/c/{t:02}/{i:04}");
                        kvs.push(store.create(&key, b(&key)).await.unwrap());
                    }
                    kvs
                })
            })
            .collect();
        for task in tasks {
            written.extend(task.await.unwrap());
        }
        let flushes = store_flushes(&store);
        eprintln!("3200 writes in {flushes} flushes");
        assert!(
            flushes < 3200,
            "no group commit: {flushes} flushes for 3200 writes"
        );
    }
    written.sort_by_key(|kv| kv.mod_revision);
    let revs: Vec<_> = written.iter().map(|kv| kv.mod_revision).collect();
    assert_eq!(revs, (1..=3200).collect::<Vec<_>>());
    written.sort_by(|a, b| a.key.cmp(&b.key));
    let store = Embedded::open(dir.path()).unwrap();
    assert_eq!(dump(&store).await, written);
    assert_eq!(store.current_revision().await.unwrap(), 3200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_concurrent_with_writes_loses_nothing() {
    let dir = tempdir();
    let expected = {
        let store: Arc<dyn Store> = Arc::new(Embedded::open(dir.path()).unwrap());
        let writer = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..1000 {
                    store.create(&format!("/w/{i:04}"), b("x")).await.unwrap();
                }
            })
        };
        let mut compacted = 0;
        while !writer.is_finished() {
            let rev = store.current_revision().await.unwrap();
            if rev > compacted {
                store.compact(rev).await.unwrap();
                compacted = rev;
            }
            tokio::task::yield_now().await;
        }
        writer.await.unwrap();
        assert!(compacted > 0);
        dump(&*store).await
    };
    assert_eq!(expected.len(), 1000);
    let store = Embedded::open(dir.path()).unwrap();
    assert_eq!(dump(&store).await, expected);
    assert_eq!(store.current_revision().await.unwrap(), 1000);
}

#[tokio::test]
async fn watch_ends_when_store_closes() {
    let store = Embedded::open_in_memory();
    let mut w = store.watch("", 0).await.unwrap();
    store.create("/a", b("a")).await.unwrap();
    assert!(next(&mut w).await.unwrap().is_ok());
    drop(store);
    assert!(matches!(next(&mut w).await, Some(Err(StoreError::Closed))));
    assert!(next(&mut w).await.is_none());
}
