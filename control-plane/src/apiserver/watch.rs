//! Watch: chunked JSON events, one per line, flushed one by one. Replays from a
//! resourceVersion, sends bookmarks on request, and answers a compacted version with an
//! in-stream `ERROR` event carrying a 410 Expired `Status`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use futures::StreamExt;
use rand::Rng;
use serde_json::{Value, json};
use sluice_store::{Event, StoreError};
use tokio::sync::mpsc;

use super::options::{Selectors, WatchOptions};
use super::status::{ApiError, ApiResult};
use super::{ApiServer, Req, decorate, decorate_at, table};
use crate::registry::Resource;

struct Sink {
    tx: mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
    table: Option<TableCtx>,
    metadata_only: bool,
}

struct TableCtx {
    r: Arc<Resource>,
    first: bool,
    include_object: Option<String>,
    wide: bool,
}

impl Sink {
    /// Send one event; false once the client is gone.
    async fn send(&mut self, kind: &str, obj: Value) -> bool {
        let obj = match (&mut self.table, kind) {
            (Some(t), "ADDED" | "MODIFIED" | "DELETED") => {
                let v = table::table_for_watch(
                    &t.r,
                    &obj,
                    t.first,
                    t.include_object.as_deref(),
                    t.wide,
                );
                t.first = false;
                v
            }
            (None, "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK") if self.metadata_only => {
                super::partial_metadata(&obj)
            }
            _ => obj,
        };
        let mut line = json!({"type": kind, "object": obj}).to_string();
        line.push('\n');
        self.tx.send(Ok(bytes::Bytes::from(line))).await.is_ok()
    }
}

fn bookmark(r: &Resource, rv: i64, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": r.kind, "apiVersion": r.api_version(), "metadata": meta})
}

fn expired(requested: i64, compacted: i64) -> Value {
    ApiError::expired(format!(
        "too old resource version: {requested} ({compacted})"
    ))
    .to_status()
}

pub(super) async fn serve(
    srv: &Arc<ApiServer>,
    req: &Req,
    r: Arc<Resource>,
    ns: Option<String>,
    opts: WatchOptions,
) -> ApiResult<Response> {
    let WatchOptions {
        selectors: sel,
        bookmarks,
        send_initial_events: send_initial,
        resource_version: start_rv,
        timeout,
    } = opts;
    let timeout = timeout.unwrap_or_else(|| {
        let min = srv.config.min_request_timeout.as_millis().max(1);
        let ms = rand::rng().random_range(min..=min * 2);
        Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    });
    let prefix = r.list_prefix(ns.as_deref());
    let (tx, rx) = mpsc::channel(256);
    let accept_table = req.wants_table();
    let mut sink = Sink {
        tx,
        metadata_only: req.wants_metadata_only(),
        table: accept_table.then(|| TableCtx {
            r: r.clone(),
            first: true,
            include_object: req.q("includeObject").map(String::from),
            wide: false,
        }),
    };
    // The initial state: synthetic ADDED events when the client did not name a version
    // (or asked for initial events).
    let mut initial = Vec::new();
    let after = if send_initial || start_rv.is_none() {
        let res = srv
            .store
            .range(&prefix, None, None, start_rv.filter(|_| send_initial))
            .await;
        let res = match res {
            Ok(res) => res,
            Err(StoreError::Compacted {
                requested,
                compacted,
            }) => {
                return Ok(one_event_response(&expired(requested, compacted)));
            }
            Err(e) => return Err(e.into()),
        };
        for kv in &res.kvs {
            let v = decorate(&r, kv)?;
            if sel.matches(&v) {
                initial.push(v);
            }
        }
        res.revision
    } else {
        start_rv.unwrap_or_default()
    };
    let stream = match srv.store.watch(&prefix, after).await {
        Ok(s) => s,
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => {
            return Ok(one_event_response(&expired(requested, compacted)));
        }
        Err(e) => return Err(e.into()),
    };
    let bookmark_every = srv.config.bookmark_interval;
    tokio::spawn(async move {
        let mut stream = stream;
        for obj in initial {
            if !sink.send("ADDED", obj).await {
                return;
            }
        }
        if send_initial && !sink.send("BOOKMARK", bookmark(&r, after, true)).await {
            return;
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(bookmark_every);
        ticker.tick().await;
        let mut last_rv = after;
        loop {
            tokio::select! {
                () = &mut deadline => return,
                _ = ticker.tick(), if bookmarks => {
                    if !sink.send("BOOKMARK", bookmark(&r, last_rv, false)).await { return; }
                }
                ev = stream.next() => {
                    let ok = match ev {
                        None => return,
                        Some(Err(StoreError::Compacted { requested, compacted })) => {
                            let _ = sink.send("ERROR", expired(requested, compacted)).await;
                            return;
                        }
                        Some(Err(StoreError::WatchLagged { revision })) => {
                            let _ = sink.send("ERROR", expired(revision, revision)).await;
                            return;
                        }
                        Some(Err(e)) => {
                            let _ = sink.send("ERROR", ApiError::internal(e.to_string()).to_status()).await;
                            return;
                        }
                        Some(Ok(event)) => {
                            last_rv = event.revision();
                            match translate(&r, &event, &sel) {
                                Ok(Some((kind, obj))) => sink.send(kind, obj).await,
                                Ok(None) => true,
                                Err(e) => {
                                    let _ = sink.send("ERROR", e.to_status()).await;
                                    return;
                                }
                            }
                        }
                    };
                    if !ok { return; }
                }
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("cache-control", "no-cache, private")
        .body(body)
        .expect("static response parts"))
}

/// A store event as the watch event a client with these selectors should see, if any.
fn translate(
    r: &Resource,
    event: &Event,
    sel: &Selectors,
) -> ApiResult<Option<(&'static str, Value)>> {
    Ok(match event {
        Event::Put { kv, prev } => {
            let now = decorate(r, kv)?;
            let was = match prev {
                Some(p) => sel.matches(&decorate(r, p)?),
                None => false,
            };
            match (was, sel.matches(&now)) {
                (true, true) => Some(("MODIFIED", now)),
                (false, true) => Some(("ADDED", now)),
                (true, false) => Some(("DELETED", now)),
                (false, false) => None,
            }
        }
        Event::Delete { prev, revision } => {
            let obj = decorate_at(r, prev, *revision)?;
            sel.matches(&obj).then_some(("DELETED", obj))
        }
    })
}

fn one_event_response(status: &Value) -> Response {
    let line = format!("{}\n", json!({"type": "ERROR", "object": status}));
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(line))
        .expect("static response parts")
}
