//! A real crash test: a child process (this test binary, re-run on the ignored `kill9_child`
//! with the store's directory in an environment variable) writes concurrently and prints each
//! acknowledged write; the parent kills it with SIGKILL mid-stream, reopens the store and
//! checks that every acknowledged write is there.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_store::{Embedded, Store};

const DIR_VAR: &str = "SLUICE_STORE_KILL9_DIR";
const WRITERS: usize = 8;

/// Not a test on its own: the child `kill9_loses_no_acknowledged_write` runs (and kills).
#[test]
#[ignore = "child process of kill9_loses_no_acknowledged_write, run by the parent"]
fn kill9_child() {
    let dir = std::env::var_os(DIR_VAR).unwrap_or_else(|| {
        panic!("kill9_child is run by kill9_loses_no_acknowledged_write, which sets {DIR_VAR}")
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(Embedded::open(&dir).unwrap());
        let out = Arc::new(Mutex::new(std::io::stdout()));
        let deadline = Instant::now() + Duration::from_mins(1);
        let tasks: Vec<_> = (0..WRITERS)
            .map(|t| {
                let store = Arc::clone(&store);
                let out = Arc::clone(&out);
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while Instant::now() < deadline {
                        let key = format!("/crash/{t}/{i:06}");
                        let kv = store
                            .create(&key, Bytes::from(key.clone().into_bytes()))
                            .await
                            .unwrap();
                        // Every fourth key is updated once more: acked as its own line.
                        let kv = if i.is_multiple_of(4) {
                            store
                                .update(&key, Bytes::from_static(b"updated"), kv.mod_revision)
                                .await
                                .unwrap()
                        } else {
                            kv
                        };
                        let mut out = out.lock().unwrap();
                        writeln!(out, "ACK {} {}", kv.key, kv.mod_revision).unwrap();
                        out.flush().unwrap();
                        i += 1;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[test]
fn kill9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "kill9_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut acked: BTreeMap<String, i64> = BTreeMap::new();
    let mut killed = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).unwrap();
        if n == 0 {
            break;
        }
        if !line.ends_with(b"\n") {
            break; // a line cut by the kill: not a complete acknowledgement
        }
        let text = String::from_utf8_lossy(&line);
        if let Some(rest) = text.strip_prefix("ACK ") {
            let mut parts = rest.split_whitespace();
            let key = parts.next().unwrap().to_owned();
            let rev: i64 = parts.next().unwrap().parse().unwrap();
            acked.insert(key, rev);
        }
        if !killed && acked.len() >= 2000 {
            child.kill().unwrap(); // SIGKILL: no destructor or flush runs
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        killed,
        "child exited after {} acknowledged writes, before it was killed: {status}",
        acked.len()
    );
    assert!(!status.success());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Embedded::open(dir.path()).unwrap();
        let current = store.current_revision().await.unwrap();
        let max_acked = acked.values().copied().max().unwrap();
        assert!(
            current >= max_acked,
            "revision went back: {current} < {max_acked}"
        );
        for (key, rev) in &acked {
            let kv = store
                .get(key)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged {key} at {rev} lost"));
            assert!(
                kv.mod_revision >= *rev,
                "{key}: {kv:?} older than acked {rev}"
            );
        }
        // Everything recovered is internally consistent: revisions are unique.
        let all = store.range("/crash/", None, None, None).await.unwrap().kvs;
        let mut revs: Vec<_> = all.iter().map(|kv| kv.mod_revision).collect();
        revs.sort_unstable();
        revs.dedup();
        assert_eq!(revs.len(), all.len());
        // And the store takes writes again.
        store.create("/after-crash", Bytes::new()).await.unwrap();
    });
}
