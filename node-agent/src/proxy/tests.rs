//! Tests of the run loop against a minimal in-process HTTP apiserver (lists
//! and chunked watches over a local socket; no cluster), with a shared fake
//! datapath.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sluice_ebpf_common::{RevNatKey, RevNatValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};

use super::{Options, Progress, run};
use crate::datapath::{
    BackendKey, BackendValue, Be16, Be32, DatapathError, DatapathOps, FakeDatapath, ServiceKey,
    ServiceValue,
};
use crate::proxy::fixtures::{service, slice};

/// A fake datapath the test can look into while `run` owns a handle.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<FakeDatapath>>);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, FakeDatapath> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn frontends(&self) -> Vec<(ServiceKey, u16)> {
        let dp = self.lock();
        dp.services()
            .unwrap()
            .into_iter()
            .filter(|(k, _)| k.slot == 0)
            .map(|(k, v)| (k, v.count))
            .collect()
    }
}

impl DatapathOps for Shared {
    fn upsert_service(
        &mut self,
        key: ServiceKey,
        value: ServiceValue,
    ) -> Result<(), DatapathError> {
        self.lock().upsert_service(key, value)
    }
    fn remove_service(&mut self, key: &ServiceKey) -> Result<(), DatapathError> {
        self.lock().remove_service(key)
    }
    fn upsert_backend(
        &mut self,
        key: BackendKey,
        value: BackendValue,
    ) -> Result<(), DatapathError> {
        self.lock().upsert_backend(key, value)
    }
    fn remove_backend(&mut self, key: &BackendKey) -> Result<(), DatapathError> {
        self.lock().remove_backend(key)
    }
    fn services(&self) -> Result<Vec<(ServiceKey, ServiceValue)>, DatapathError> {
        self.lock().services()
    }
    fn backends(&self) -> Result<Vec<(BackendKey, BackendValue)>, DatapathError> {
        self.lock().backends()
    }
    fn upsert_rev_nat(&mut self, key: RevNatKey, value: RevNatValue) -> Result<(), DatapathError> {
        self.lock().upsert_rev_nat(key, value)
    }
    fn remove_rev_nat(&mut self, key: &RevNatKey) -> Result<(), DatapathError> {
        self.lock().remove_rev_nat(key)
    }
    fn rev_nats(&self) -> Result<Vec<(RevNatKey, RevNatValue)>, DatapathError> {
        self.lock().rev_nats()
    }
}

/// Just enough of an apiserver for two reflectors: one list per kind, then
/// a chunked watch fed from `events`. The `EndpointSlice` list is held back
/// until `release_slices` is set.
#[derive(Clone)]
struct FakeApi {
    services: Vec<Value>,
    slices: Vec<Value>,
    release_slices: watch::Receiver<bool>,
    events: broadcast::Sender<(&'static str, Value)>,
    /// Number of watches subscribed to `events`.
    watches: Arc<watch::Sender<usize>>,
}

const SERVICES_PATH: &str = "/api/v1/services";
const SLICES_PATH: &str = "/apis/discovery.k8s.io/v1/endpointslices";

impl FakeApi {
    async fn serve(self, listener: TcpListener) {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(self.clone().connection(conn));
        }
    }

    async fn connection(self, mut conn: TcpStream) {
        let mut buf = Vec::new();
        loop {
            let head = loop {
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    break head;
                }
                let mut chunk = [0u8; 4096];
                match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let target = head
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let kind: &'static str = match path {
                SERVICES_PATH => "services",
                SLICES_PATH => "slices",
                _ => {
                    let body = b"{}";
                    let _ = conn
                        .write_all(
                            format!("HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len()).as_bytes(),
                        )
                        .await;
                    let _ = conn.write_all(body).await;
                    continue;
                }
            };
            if query
                .split('&')
                .any(|q| q == "watch=true" || q == "watch=1")
            {
                self.watch(conn, kind).await;
                return;
            }
            let (list_kind, api_version, items) = if kind == "services" {
                ("ServiceList", "v1", self.services.clone())
            } else {
                let mut release = self.release_slices.clone();
                let _ = release.wait_for(|r| *r).await;
                (
                    "EndpointSliceList",
                    "discovery.k8s.io/v1",
                    self.slices.clone(),
                )
            };
            let body = json!({
                "apiVersion": api_version,
                "kind": list_kind,
                "metadata": {"resourceVersion": "1"},
                "items": items,
            })
            .to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            if conn.write_all(head.as_bytes()).await.is_err()
                || conn.write_all(body.as_bytes()).await.is_err()
            {
                return;
            }
        }
    }

    async fn watch(&self, mut conn: TcpStream, kind: &'static str) {
        let mut events = self.events.subscribe();
        self.watches.send_modify(|n| *n += 1);
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        if conn.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        while let Ok((to, event)) = events.recv().await {
            if to != kind {
                continue;
            }
            let line = format!("{event}\n");
            let chunk = format!("{:x}\r\n{line}\r\n", line.len());
            if conn.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

async fn wait_for(
    progress: &mut watch::Receiver<Progress>,
    what: &str,
    f: impl Fn(&Progress) -> bool,
) {
    tokio::time::timeout(Duration::from_secs(10), progress.wait_for(f))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|_| panic!("proxy stopped while waiting for {what}"));
}

fn frontend(octets: [u8; 4], port: u16) -> ServiceKey {
    ServiceKey::frontend(Be32::from_octets(octets), Be16::from_host(port), 6)
}

#[tokio::test]
async fn applies_only_after_both_lists_then_follows_watch_events() {
    let services = vec![
        serde_json::to_value(service("default", "web", "10.96.0.10", &[("", 80, "TCP")])).unwrap(),
    ];
    let slices = vec![
        serde_json::to_value(slice(
            "default",
            "web",
            "web-a",
            &[("", 8080, "TCP")],
            &[("10.244.0.5", None)],
        ))
        .unwrap(),
    ];
    let (release, release_slices) = watch::channel(false);
    let (events, _) = broadcast::channel(16);
    let watches = Arc::new(watch::Sender::new(0));
    let mut watching = watches.subscribe();
    let api = FakeApi {
        services,
        slices,
        release_slices,
        events: events.clone(),
        watches,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(api.serve(listener));
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();

    // A leftover from a previous run: must survive until both lists are in,
    // then be pruned.
    let dp = Shared::default();
    let stale = frontend([10, 96, 0, 77], 80);
    dp.clone()
        .upsert_service(stale, ServiceValue::frontend(0, 0, 9))
        .unwrap();

    let opts = Options {
        debounce: Duration::from_millis(5),
        ..Options::new()
    };
    let mut progress = opts.subscribe();
    let proxy = tokio::spawn(run(client, dp.clone(), opts));

    // Services are listed, slices are not: nothing may be applied.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(progress.borrow().generation, 0);
    assert_eq!(dp.frontends(), vec![(stale, 0)]);

    release.send(true).unwrap();
    wait_for(&mut progress, "the first apply", |p| p.generation >= 1).await;
    assert_eq!(dp.frontends(), vec![(frontend([10, 96, 0, 10], 80), 1)]);
    {
        let p = progress.borrow();
        assert_eq!((p.frontends, p.backends), (1, 1));
        assert!(p.error.is_none());
    }

    // A watch event scales web to two endpoints (once both watches are
    // subscribed, so the event is not lost).
    tokio::time::timeout(Duration::from_secs(10), watching.wait_for(|n| *n >= 2))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for the watches"))
        .unwrap();
    let mut scaled = slice(
        "default",
        "web",
        "web-a",
        &[("", 8080, "TCP")],
        &[("10.244.0.5", None), ("10.244.0.6", None)],
    );
    scaled.metadata.resource_version = Some("2".into());
    events
        .send(("slices", json!({"type": "MODIFIED", "object": scaled})))
        .unwrap();
    wait_for(&mut progress, "the scale-up", |p| p.backends == 2).await;
    assert_eq!(dp.frontends(), vec![(frontend([10, 96, 0, 10], 80), 2)]);
    assert_eq!(dp.lock().backends().unwrap().len(), 2);

    // Deleting the Service removes everything.
    let mut web = service("default", "web", "10.96.0.10", &[("", 80, "TCP")]);
    web.metadata.resource_version = Some("3".into());
    events
        .send(("services", json!({"type": "DELETED", "object": web})))
        .unwrap();
    wait_for(&mut progress, "the deletion", |p| p.frontends == 0).await;
    assert!(dp.frontends().is_empty());
    assert!(dp.lock().backends().unwrap().is_empty());
    assert!(dp.lock().rev_nats().unwrap().is_empty());
    proxy.abort();
}
