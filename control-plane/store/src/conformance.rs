//! Backend-agnostic conformance suite for [`Store`] (feature `test-util`).
//!
//! Every backend must pass it. Each case is a `pub async fn(Arc<dyn Store>)` that panics on
//! failure; [`run_all`] runs them all in order, and [`conformance_tests!`](crate::conformance_tests)
//! expands to one `#[tokio::test]` per case.
//!
//! The cases assume a fresh, empty store per case but not that revisions start at any given
//! number or move by exactly one between a case's writes (another client of a shared etcd may
//! write in between); they only write keys under `/conformance/`.

#![allow(
    clippy::missing_panics_doc,
    reason = "conformance cases report failure by panicking, like tests"
)]

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;

use crate::{Event, KeyValue, Revision, Store, StoreError, WatchStream};

/// How long a case waits for one watch event before failing.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn next_event(stream: &mut WatchStream) -> Event {
    match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watch stream failed: {e}"),
        Ok(None) => panic!("watch stream ended"),
        Err(elapsed) => panic!("no watch event within {EVENT_TIMEOUT:?}: {elapsed}"),
    }
}

/// The names and functions of every case, in the order [`run_all`] runs them.
#[must_use]
#[allow(
    clippy::type_complexity,
    reason = "the one place this list type is spelled out; an alias would only move it"
)]
pub fn cases() -> Vec<(
    &'static str,
    fn(Arc<dyn Store>) -> futures::future::BoxFuture<'static, ()>,
)> {
    macro_rules! list {
        ($($name:ident),* $(,)?) => {
            vec![$((stringify!($name), (|s: Arc<dyn Store>| Box::pin($name(s))) as fn(Arc<dyn Store>) -> futures::future::BoxFuture<'static, ()>)),*]
        };
    }
    list![
        create_get,
        update_compare_and_swap,
        delete_with_and_without_expected,
        recreate_gets_new_create_revision,
        range_prefix_order_limit,
        range_at_old_revision,
        range_future_revision,
        watch_replays_history_then_live,
        watch_from_middle_and_prefix_filter,
        watch_future_start,
        compaction,
        watch_behind_compaction_ends_with_error,
        concurrent_creates,
        concurrent_updates_one_winner,
    ]
}

/// Runs every case against a fresh store from `make`, panicking with the case name on failure.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    for (name, case) in cases() {
        let store = make().await;
        let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(case(store)));
        if let Err(panic) = outcome.await {
            eprintln!("conformance case {name} failed");
            std::panic::resume_unwind(panic);
        }
    }
}

/// Expands to one `#[tokio::test]` per conformance case, each on a store from `$make`
/// (an expression of type `impl Fn() -> impl Future<Output = Arc<dyn Store>>`).
/// The calling crate needs `tokio` with the `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            create_get,
            update_compare_and_swap,
            delete_with_and_without_expected,
            recreate_gets_new_create_revision,
            range_prefix_order_limit,
            range_at_old_revision,
            range_future_revision,
            watch_replays_history_then_live,
            watch_from_middle_and_prefix_filter,
            watch_future_start,
            compaction,
            watch_behind_compaction_ends_with_error,
            concurrent_creates,
            concurrent_updates_one_winner,
        );
    };
    (@cases $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let make = $make;
                $crate::conformance::$name(make().await).await;
            }
        )*
    };
}

/// create returns the new kv; get sees it; creating it again is `AlreadyExists`.
pub async fn create_get(store: Arc<dyn Store>) {
    let before = store.current_revision().await.unwrap();
    assert_eq!(store.get("/conformance/a").await.unwrap(), None);
    let kv = store.create("/conformance/a", b("one")).await.unwrap();
    assert_eq!(kv.key, "/conformance/a");
    assert_eq!(kv.value, b("one"));
    assert!(kv.mod_revision > before, "{kv:?} not after {before}");
    assert_eq!(kv.create_revision, kv.mod_revision);
    assert!(store.current_revision().await.unwrap() >= kv.mod_revision);
    assert_eq!(store.get("/conformance/a").await.unwrap(), Some(kv.clone()));
    match store.create("/conformance/a", b("two")).await {
        Err(StoreError::AlreadyExists { key }) => assert_eq!(key, "/conformance/a"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(store.get("/conformance/a").await.unwrap(), Some(kv));
    assert_eq!(store.get("/conformance/a/").await.unwrap(), None);
    assert_eq!(store.get("/conformance").await.unwrap(), None);
    // Empty values and odd keys are fine.
    let empty = store.create("/conformance/ü ", Bytes::new()).await.unwrap();
    assert_eq!(
        store.get("/conformance/ü ").await.unwrap(),
        Some(empty.clone())
    );
    assert!(empty.value.is_empty());
}

/// update is a compare-and-swap on `mod_revision`.
pub async fn update_compare_and_swap(store: Arc<dyn Store>) {
    let v1 = store.create("/conformance/k", b("v1")).await.unwrap();
    let v2 = store
        .update("/conformance/k", b("v2"), v1.mod_revision)
        .await
        .unwrap();
    assert_eq!(v2.value, b("v2"));
    assert_eq!(v2.create_revision, v1.create_revision);
    assert!(v2.mod_revision > v1.mod_revision);
    assert_eq!(store.get("/conformance/k").await.unwrap(), Some(v2.clone()));

    match store
        .update("/conformance/k", b("stale"), v1.mod_revision)
        .await
    {
        Err(StoreError::Conflict {
            key,
            expected,
            current,
        }) => {
            assert_eq!(key, "/conformance/k");
            assert_eq!(expected, v1.mod_revision);
            assert_eq!(current, Some(v2.clone()));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(store.get("/conformance/k").await.unwrap(), Some(v2.clone()));
    match store.update("/conformance/missing", b("x"), 1).await {
        Err(StoreError::NotFound { key }) => assert_eq!(key, "/conformance/missing"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    // An update with the same value still makes a new revision.
    let v3 = store
        .update("/conformance/k", b("v2"), v2.mod_revision)
        .await
        .unwrap();
    assert!(v3.mod_revision > v2.mod_revision);
}

/// delete with a wrong expected revision conflicts; with the right one or none it deletes.
pub async fn delete_with_and_without_expected(store: Arc<dyn Store>) {
    let a = store.create("/conformance/a", b("a")).await.unwrap();
    let bkv = store.create("/conformance/b", b("b")).await.unwrap();
    match store
        .delete("/conformance/a", Some(a.mod_revision + 1000))
        .await
    {
        Err(StoreError::Conflict { current, .. }) => assert_eq!(current, Some(a.clone())),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(store.get("/conformance/a").await.unwrap(), Some(a.clone()));
    let before = store.current_revision().await.unwrap();
    let deleted = store
        .delete("/conformance/a", Some(a.mod_revision))
        .await
        .unwrap();
    assert_eq!(deleted, a);
    assert!(store.current_revision().await.unwrap() > before);
    assert_eq!(store.get("/conformance/a").await.unwrap(), None);
    let deleted = store.delete("/conformance/b", None).await.unwrap();
    assert_eq!(deleted, bkv);
    assert_eq!(store.get("/conformance/b").await.unwrap(), None);
    for key in ["/conformance/a", "/conformance/never"] {
        match store.delete(key, None).await {
            Err(StoreError::NotFound { key: k }) => assert_eq!(k, key),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }
    match store.delete("/conformance/a", Some(a.mod_revision)).await {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// A key deleted and created again gets a new `create_revision`.
pub async fn recreate_gets_new_create_revision(store: Arc<dyn Store>) {
    let first = store.create("/conformance/r", b("1")).await.unwrap();
    store.delete("/conformance/r", None).await.unwrap();
    let second = store.create("/conformance/r", b("2")).await.unwrap();
    assert!(second.create_revision > first.create_revision);
    assert_eq!(second.create_revision, second.mod_revision);
    match store
        .update("/conformance/r", b("3"), first.mod_revision)
        .await
    {
        Err(StoreError::Conflict { current, .. }) => assert_eq!(current, Some(second)),
        other => panic!("expected Conflict, got {other:?}"),
    }
}

/// range: prefix, key order, limit, `more`, `start_after` paging, deleted keys left out.
#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
pub async fn range_prefix_order_limit(store: Arc<dyn Store>) {
    // Created out of order on purpose.
    for key in [
        "/conformance/pods/ns1/c",
        "/conformance/pods/ns1/a",
        "/conformance/pods/ns2/a",
        "/conformance/pods/ns1/b",
        "/conformance/podsx/ns1/z",
        "/conformance/pod",
        "/conformance/pods/ns1/d",
    ] {
        store.create(key, b(key)).await.unwrap();
    }
    store.delete("/conformance/pods/ns1/d", None).await.unwrap();
    let current = store.current_revision().await.unwrap();

    let keys = |kvs: &[KeyValue]| kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>();
    let all = store
        .range("/conformance/pods/", None, None, None)
        .await
        .unwrap();
    assert_eq!(
        keys(&all.kvs),
        [
            "/conformance/pods/ns1/a",
            "/conformance/pods/ns1/b",
            "/conformance/pods/ns1/c",
            "/conformance/pods/ns2/a"
        ]
    );
    assert!(!all.more);
    assert_eq!(all.revision, current);
    for kv in &all.kvs {
        assert_eq!(kv.value, b(&kv.key));
    }

    let ns1 = store
        .range("/conformance/pods/ns1/", None, None, None)
        .await
        .unwrap();
    assert_eq!(ns1.kvs.len(), 3);

    let page = store
        .range("/conformance/pods/", None, Some(2), None)
        .await
        .unwrap();
    assert_eq!(
        keys(&page.kvs),
        ["/conformance/pods/ns1/a", "/conformance/pods/ns1/b"]
    );
    assert!(page.more);
    let page2 = store
        .range(
            "/conformance/pods/",
            Some("/conformance/pods/ns1/b"),
            Some(2),
            Some(page.revision),
        )
        .await
        .unwrap();
    assert_eq!(
        keys(&page2.kvs),
        ["/conformance/pods/ns1/c", "/conformance/pods/ns2/a"]
    );
    assert!(!page2.more, "exactly `limit` left is not `more`");
    assert_eq!(page2.revision, page.revision);

    // Paging one by one visits every key once.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let r = store
            .range("/conformance/", after.as_deref(), Some(1), None)
            .await
            .unwrap();
        seen.extend(keys(&r.kvs));
        after = r.kvs.last().map(|kv| kv.key.clone());
        if !r.more {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            "/conformance/pod",
            "/conformance/pods/ns1/a",
            "/conformance/pods/ns1/b",
            "/conformance/pods/ns1/c",
            "/conformance/pods/ns2/a",
            "/conformance/podsx/ns1/z"
        ]
    );

    // start_after before the prefix is the same as none; after all keys gives nothing.
    let r = store
        .range("/conformance/pods/", Some("/a"), None, None)
        .await
        .unwrap();
    assert_eq!(r.kvs.len(), 4);
    let r = store
        .range(
            "/conformance/pods/",
            Some("/conformance/pods/zzz"),
            None,
            None,
        )
        .await
        .unwrap();
    assert!(r.kvs.is_empty() && !r.more);
    let r = store
        .range("/conformance/nothing/", None, Some(5), None)
        .await
        .unwrap();
    assert!(r.kvs.is_empty() && !r.more);
    // Limit 0 means no limit, as in etcd.
    let r = store
        .range("/conformance/pods/", None, Some(0), None)
        .await
        .unwrap();
    assert_eq!(r.kvs.len(), 4);
    // An exact key is a prefix of itself.
    let r = store
        .range("/conformance/pod", None, None, None)
        .await
        .unwrap();
    assert_eq!(r.kvs.len(), 7 - 1);
}

/// range at an old revision sees the state as of that revision (MVCC).
pub async fn range_at_old_revision(store: Arc<dyn Store>) {
    let a1 = store.create("/conformance/a", b("a1")).await.unwrap();
    let b1 = store.create("/conformance/b", b("b1")).await.unwrap();
    let r1 = store.current_revision().await.unwrap();
    let a2 = store
        .update("/conformance/a", b("a2"), a1.mod_revision)
        .await
        .unwrap();
    store.delete("/conformance/b", None).await.unwrap();
    let c1 = store.create("/conformance/c", b("c1")).await.unwrap();
    let r2 = store.current_revision().await.unwrap();

    let old = store
        .range("/conformance/", None, None, Some(r1))
        .await
        .unwrap();
    assert_eq!(old.kvs, vec![a1.clone(), b1.clone()]);
    assert_eq!(old.revision, r1);
    let at_a1 = store
        .range("/conformance/", None, None, Some(a1.mod_revision))
        .await
        .unwrap();
    assert_eq!(at_a1.kvs, vec![a1.clone()]);
    let now = store
        .range("/conformance/", None, None, Some(r2))
        .await
        .unwrap();
    assert_eq!(now.kvs, vec![a2.clone(), c1.clone()]);
    let latest = store
        .range("/conformance/", None, None, None)
        .await
        .unwrap();
    assert_eq!(latest.kvs, now.kvs);
    // Paging at an old revision is consistent even though the store moved on.
    let p1 = store
        .range("/conformance/", None, Some(1), Some(r1))
        .await
        .unwrap();
    assert_eq!((p1.kvs.clone(), p1.more), (vec![a1], true));
    let p2 = store
        .range("/conformance/", Some("/conformance/a"), Some(1), Some(r1))
        .await
        .unwrap();
    assert_eq!((p2.kvs, p2.more), (vec![b1], false));
}

/// range at a revision after the current one is `FutureRevision`.
pub async fn range_future_revision(store: Arc<dyn Store>) {
    store.create("/conformance/a", b("a")).await.unwrap();
    let current = store.current_revision().await.unwrap();
    match store
        .range("/conformance/", None, None, Some(current + 1_000_000))
        .await
    {
        Err(StoreError::FutureRevision { requested, .. }) => {
            assert_eq!(requested, current + 1_000_000);
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
}

/// A watch replays the events after `after`, then follows live ones, with `prev` filled in.
pub async fn watch_replays_history_then_live(store: Arc<dyn Store>) {
    let start = store.current_revision().await.unwrap();
    let a1 = store.create("/conformance/w/a", b("a1")).await.unwrap();
    let a2 = store
        .update("/conformance/w/a", b("a2"), a1.mod_revision)
        .await
        .unwrap();
    let del = store.delete("/conformance/w/a", None).await.unwrap();
    let del_rev = store.current_revision().await.unwrap();
    assert_eq!(del, a2);

    let mut stream = store.watch("/conformance/w/", start).await.unwrap();
    assert_eq!(
        next_event(&mut stream).await,
        Event::Put {
            kv: a1.clone(),
            prev: None
        }
    );
    assert_eq!(
        next_event(&mut stream).await,
        Event::Put {
            kv: a2.clone(),
            prev: Some(a1)
        }
    );
    assert_eq!(
        next_event(&mut stream).await,
        Event::Delete {
            prev: a2,
            revision: del_rev
        }
    );

    // Live events from a concurrent writer: all of them, in order, no duplicates.
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut written = Vec::new();
            for i in 0..200 {
                let key = format!("/conformance/w/live-{}", i % 7);
                let kv = match store.get(&key).await.unwrap() {
                    None => store.create(&key, b(&i.to_string())).await.unwrap(),
                    Some(cur) => store
                        .update(&key, b(&i.to_string()), cur.mod_revision)
                        .await
                        .unwrap(),
                };
                written.push(kv);
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            written
        })
    };
    let mut got = Vec::new();
    let mut last_rev = del_rev;
    let mut latest: BTreeMap<String, KeyValue> = BTreeMap::new();
    for _ in 0..200 {
        let Event::Put { kv, prev } = next_event(&mut stream).await else {
            panic!("expected only puts");
        };
        assert!(kv.mod_revision > last_rev, "events out of order");
        last_rev = kv.mod_revision;
        assert_eq!(prev, latest.get(&kv.key).cloned(), "wrong prev for {kv:?}");
        latest.insert(kv.key.clone(), kv.clone());
        got.push(kv);
    }
    let written = writer.await.unwrap();
    assert_eq!(got, written);
}

/// A watch from the middle of history starts after that revision and sees only its prefix.
pub async fn watch_from_middle_and_prefix_filter(store: Arc<dyn Store>) {
    let x1 = store.create("/conformance/x/1", b("1")).await.unwrap();
    let _other = store.create("/conformance/y/1", b("1")).await.unwrap();
    let x2 = store.create("/conformance/x/2", b("2")).await.unwrap();
    let _other = store.create("/conformance/xy", b("1")).await.unwrap();
    let x3 = store.create("/conformance/x/3", b("3")).await.unwrap();

    let mut stream = store
        .watch("/conformance/x/", x1.mod_revision)
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut stream).await,
        Event::Put { kv: x2, prev: None }
    );
    assert_eq!(
        next_event(&mut stream).await,
        Event::Put {
            kv: x3.clone(),
            prev: None
        }
    );
    store.create("/conformance/y/2", b("2")).await.unwrap();
    let x3d = store
        .delete("/conformance/x/3", Some(x3.mod_revision))
        .await
        .unwrap();
    match next_event(&mut stream).await {
        Event::Delete { prev, revision } => {
            assert_eq!(prev, x3d);
            assert!(revision > x3.mod_revision);
        }
        other @ Event::Put { .. } => panic!("expected delete, got {other:?}"),
    }
    // Nothing more is pending.
    let extra = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
    assert!(extra.is_err(), "unexpected event {extra:?}");

    // A watch at the current revision sees only what comes next.
    let now = store.current_revision().await.unwrap();
    let mut stream = store.watch("/conformance/", now).await.unwrap();
    let z = store.create("/conformance/z", b("z")).await.unwrap();
    assert_eq!(
        next_event(&mut stream).await,
        Event::Put { kv: z, prev: None }
    );
}

/// A watch may start after a revision the store has not reached yet.
pub async fn watch_future_start(store: Arc<dyn Store>) {
    let now = store.current_revision().await.unwrap();
    let first = store.create("/conformance/f/0", b("0")).await.unwrap();
    // `first` is at or after now + 1; start after it, before the store gets there.
    let mut stream = store
        .watch("/conformance/f/", first.mod_revision)
        .await
        .unwrap();
    assert!(first.mod_revision > now);
    let second = store.create("/conformance/f/1", b("1")).await.unwrap();
    assert_eq!(
        next_event(&mut stream).await,
        Event::Put {
            kv: second,
            prev: None
        }
    );
}

/// Compaction: old revisions become `Compacted` for range and watch; latest data stays.
pub async fn compaction(store: Arc<dyn Store>) {
    let a1 = store.create("/conformance/c/a", b("a1")).await.unwrap();
    let gone = store.create("/conformance/c/gone", b("g")).await.unwrap();
    let a2 = store
        .update("/conformance/c/a", b("a2"), a1.mod_revision)
        .await
        .unwrap();
    store.delete("/conformance/c/gone", None).await.unwrap();
    let keep = store.create("/conformance/c/keep", b("k")).await.unwrap();
    let at = store.current_revision().await.unwrap();
    let a3 = store
        .update("/conformance/c/a", b("a3"), a2.mod_revision)
        .await
        .unwrap();

    store.compact(at).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), at);
    // Compacting at the same point again is a no-op; below it is an error.
    store.compact(at).await.unwrap();
    match store.compact(gone.mod_revision).await {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => {
            assert_eq!((requested, compacted), (gone.mod_revision, at));
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    let current = store.current_revision().await.unwrap();
    match store.compact(current + 1_000_000).await {
        Err(StoreError::FutureRevision { .. }) => {}
        other => panic!("expected FutureRevision, got {other:?}"),
    }

    match store
        .range("/conformance/c/", None, None, Some(at - 1))
        .await
    {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => {
            assert_eq!((requested, compacted), (at - 1, at));
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    // The compaction point itself is still readable.
    let r = store
        .range("/conformance/c/", None, None, Some(at))
        .await
        .unwrap();
    assert_eq!(r.kvs, vec![a2.clone(), keep.clone()]);
    let r = store
        .range("/conformance/c/", None, None, None)
        .await
        .unwrap();
    assert_eq!(r.kvs, vec![a3.clone(), keep.clone()]);
    assert_eq!(store.get("/conformance/c/gone").await.unwrap(), None);

    match store.watch("/conformance/c/", at - 1).await {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => {
            assert_eq!((requested, compacted), (at - 1, at));
        }
        Ok(_) => panic!("expected Compacted, got a stream"),
        Err(e) => panic!("expected Compacted, got {e:?}"),
    }
    let mut stream = store.watch("/conformance/c/", at).await.unwrap();
    assert_eq!(
        next_event(&mut stream).await,
        Event::Put {
            kv: a3.clone(),
            prev: Some(a2)
        }
    );
    // Writes after compaction work, and CAS still uses mod revisions.
    let a4 = store
        .update("/conformance/c/a", b("a4"), a3.mod_revision)
        .await
        .unwrap();
    assert_eq!(a4.create_revision, a1.create_revision);
    assert_eq!(
        next_event(&mut stream).await,
        Event::Put {
            kv: a4,
            prev: Some(a3)
        }
    );
}

/// A watcher that falls behind compaction gets an error, never a silent gap: the events it
/// does get are a gap-free prefix of the history, then the stream ends with an `Err`.
pub async fn watch_behind_compaction_ends_with_error(store: Arc<dyn Store>) {
    let start = store.current_revision().await.unwrap();
    let mut stream = store.watch("/conformance/s/", start).await.unwrap();
    let mut written = Vec::new();
    for i in 0..3000 {
        written.push(
            store
                .create(&format!("/conformance/s/{i:05}"), b("x"))
                .await
                .unwrap(),
        );
    }
    let last = store.current_revision().await.unwrap();
    store.compact(last).await.unwrap();
    // A backend may have delivered (buffered) events before the compaction; it must then
    // deliver all of them, or a gap-free prefix followed by an error.
    let mut got = Vec::new();
    let error = loop {
        if got.len() == written.len() {
            break None;
        }
        match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(Event::Put { kv, .. }))) => got.push(kv),
            Ok(Some(Ok(other))) => panic!("unexpected event {other:?}"),
            Ok(Some(Err(e))) => break Some(e),
            Ok(None) => panic!("stream ended without an error"),
            Err(elapsed) => panic!("stream stalled after {} events: {elapsed}", got.len()),
        }
    };
    assert_eq!(got[..], written[..got.len()], "events skipped");
    if let Some(error) = error {
        assert!(
            matches!(
                error,
                StoreError::Compacted { .. } | StoreError::WatchLagged { .. }
            ),
            "unexpected error {error:?}"
        );
        assert!(
            tokio::time::timeout(EVENT_TIMEOUT, stream.next())
                .await
                .unwrap()
                .is_none(),
            "stream goes on after its error"
        );
    }
}

/// 16 tasks x 200 creates: unique revisions, increasing per task, all readable.
pub async fn concurrent_creates(store: Arc<dyn Store>) {
    const TASKS: usize = 16;
    const PER_TASK: usize = 200;
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch("/conformance/cc/", start).await.unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut kvs = Vec::with_capacity(PER_TASK);
                for i in 0..PER_TASK {
                    let key = format!("/conformance/cc/{t:02}/{i:04}");
                    kvs.push(store.create(&key, b(&key)).await.unwrap());
                }
                kvs
            })
        })
        .collect();
    let mut revisions = HashSet::new();
    let mut all = Vec::new();
    for task in tasks {
        let kvs = task.await.unwrap();
        for pair in kvs.windows(2) {
            assert!(pair[0].mod_revision < pair[1].mod_revision);
        }
        for kv in &kvs {
            assert!(revisions.insert(kv.mod_revision), "revision reused: {kv:?}");
        }
        all.extend(kvs);
    }
    assert_eq!(revisions.len(), TASKS * PER_TASK);
    all.sort_by(|a, b| a.key.cmp(&b.key));
    let listed = store
        .range("/conformance/cc/", None, None, None)
        .await
        .unwrap();
    assert_eq!(listed.kvs, all);
    // The watch saw every create, once, in revision order.
    all.sort_by_key(|kv| kv.mod_revision);
    for kv in all {
        assert_eq!(next_event(&mut watch).await, Event::Put { kv, prev: None });
    }
}

/// Many concurrent CAS updates from the same revision: exactly one wins.
pub async fn concurrent_updates_one_winner(store: Arc<dyn Store>) {
    let kv = store.create("/conformance/cas", b("0")).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(&store);
            let rev: Revision = kv.mod_revision;
            tokio::spawn(async move {
                store
                    .update("/conformance/cas", b(&i.to_string()), rev)
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(kv) => winners.push(kv),
            Err(StoreError::Conflict { current, .. }) => assert!(current.is_some()),
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        store.get("/conformance/cas").await.unwrap(),
        Some(winners.remove(0))
    );
}
