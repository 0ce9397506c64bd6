//! `cargo xtask bench api`: latency (p50/p99) and throughput of create, get, list and
//! watch fan-out with N concurrent kube-rs clients against the real control plane binary,
//! and its resident memory with many pods stored. Numbers, not assertions.
//!
//! Creates come in four variants, interleaved round by round so that each sees the same
//! store size and machine state: kube-rs typed (`create`), and over the same client's
//! connections with bodies encoded once beforehand, JSON (`create-json`), protobuf as
//! kubectl sends it (`create-protobuf`) and server-side apply (`apply-ssa`,
//! `application/apply-patch+yaml` with a `fieldManager`).
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    reason = "statistics for display: counts, sizes and percentile indexes are far below 2^52 and never negative"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use sluice_tests::controlplane::ControlPlane;

#[derive(Parser, Debug)]
struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Objects created in the create phase (and read back in the get phase).
    #[arg(long, default_value_t = 2000)]
    objects: usize,
    /// List requests in the list phase.
    #[arg(long, default_value_t = 100)]
    lists: usize,
    /// Watchers in the fan-out phase.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Events each watcher receives in the fan-out phase.
    #[arg(long, default_value_t = 50)]
    events: usize,
    /// Pods stored for the memory measurement.
    #[arg(long, default_value_t = 10_000)]
    rss_pods: usize,
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"}},
        "spec": {"containers": [{"name": "c", "image": "sluice/test:1",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            "ports": [{"containerPort": 8080, "name": "http"}]}]},
    }))
    .expect("pod json")
}

/// (n, p50 ms, p99 ms, throughput per second).
fn stats(mut lat: Vec<Duration>, wall: Duration) -> (usize, f64, f64, f64) {
    lat.sort();
    let pct = |p: f64| {
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat.get(i).copied().unwrap_or_default()
    };
    (
        lat.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat.len() as f64 / wall.as_secs_f64(),
    )
}

/// Prints one result line; returns (p50, p99, throughput per second).
fn report(name: &str, lat: Vec<Duration>, wall: Duration) -> (f64, f64, f64) {
    let stats = stats(lat, wall);
    println!(
        "{name:<14} n={:<6} p50={:>8.2}ms p99={:>8.2}ms throughput={:>9.0}/s",
        stats.0, stats.1, stats.2, stats.3
    );
    (stats.1, stats.2, stats.3)
}

/// Run `total` operations split over `clients` tasks; returns per-op latencies and wall time.
async fn run_phase<F, Fut>(clients: usize, total: usize, op: F) -> (Vec<Duration>, Duration)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = c;
            while i < total {
                let t = Instant::now();
                op(i).await;
                lat.push(t.elapsed());
                i += clients;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    (all, start.elapsed())
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let cp = ControlPlane::start(&["--no-controllers"]).await;
    let client = cp.client().await;
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    println!(
        "sluice API benchmark: {} clients, {} objects, {} watchers x {} events (release build, embedded store, fsync per write batch)",
        args.clients, args.objects, args.watchers, args.events
    );
    let rss_idle = cp.rss_kib().unwrap_or(0);

    create_variants(&args, &client, &api).await;

    let a = api.clone();
    let n = args.objects;
    let (lat, wall) = run_phase(args.clients, args.objects, move |i| {
        let a = a.clone();
        async move {
            a.get(&format!("bench-{}", (i * 7919) % n))
                .await
                .expect("get");
        }
    })
    .await;
    report("get", lat, wall);

    let a = api.clone();
    let (lat, wall) = run_phase(args.clients, args.lists, move |_| {
        let a = a.clone();
        async move {
            let l = a
                .list(&ListParams::default().limit(500))
                .await
                .expect("list");
            assert!(!l.items.is_empty());
        }
    })
    .await;
    report("list(500)", lat, wall);

    // Watch fan-out: every watcher sees every event; latency from the create's ack.
    let rv = api
        .list(&ListParams::default().limit(1))
        .await
        .expect("list")
        .metadata
        .resource_version
        .unwrap_or_default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let mut watchers = Vec::new();
    for _ in 0..args.watchers {
        let a = api.clone();
        let tx = tx.clone();
        let rv = rv.clone();
        watchers.push(tokio::spawn(async move {
            let mut s = a
                .watch(&WatchParams::default().labels("app=fanout"), &rv)
                .await
                .expect("watch")
                .boxed();
            while let Some(ev) = s.next().await {
                if let Ok(WatchEvent::Added(p)) = ev {
                    let _ = tx.send((p.metadata.name.unwrap_or_default(), Instant::now()));
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut acked = std::collections::HashMap::new();
    let start = Instant::now();
    for i in 0..args.events {
        let mut p = pod(&format!("fanout-{i}"));
        p.metadata
            .labels
            .get_or_insert_default()
            .insert("app".into(), "fanout".into());
        let t = Instant::now();
        api.create(&PostParams::default(), &p)
            .await
            .expect("create");
        acked.insert(format!("fanout-{i}"), t);
    }
    let mut lat = Vec::new();
    let want = args.events * args.watchers;
    while lat.len() < want {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some((name, at))) => lat.push(at.duration_since(acked[&name])),
            _ => break,
        }
    }
    let wall = start.elapsed();
    for w in watchers {
        w.abort();
    }
    println!("watch fan-out: {}/{} deliveries", lat.len(), want);
    report("watch-deliver", lat, wall);

    // Memory with many pods stored.
    let have = args.objects * CREATE_VARIANTS.len() + args.events;
    let more = args.rss_pods.saturating_sub(have);
    let a = api.clone();
    let (_, wall) = run_phase(args.clients, more, move |i| {
        let a = a.clone();
        async move {
            a.create(&PostParams::default(), &pod(&format!("rss-{i}")))
                .await
                .expect("create");
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = cp.rss_kib().unwrap_or(0);
    let store_bytes: u64 = walk_size(&cp.dir().join("store"));
    println!(
        "memory: RSS idle {:.1} MiB, with {} pods stored {:.1} MiB ({:.2} KiB/pod); store on disk {:.1} MiB; loaded {} pods in {:.1}s",
        rss_idle as f64 / 1024.0,
        have + more,
        rss as f64 / 1024.0,
        rss.saturating_sub(rss_idle) as f64 / (have + more) as f64,
        store_bytes as f64 / 1_048_576.0,
        more,
        wall.as_secs_f64()
    );
}

/// The create variants, in the order of the first round.
const CREATE_VARIANTS: [&str; 4] = ["create", "create-json", "create-protobuf", "apply-ssa"];

/// Rounds the create phase is cut into; each round runs every variant once, the order
/// rotating, so that none is favoured by store size, cache warmth or position.
const CREATE_ROUNDS: usize = 10;

const PODS: &str = "/api/v1/namespaces/default/pods";

/// A raw request through the kube-rs client's connection pool.
fn raw(method: &str, uri: &str, content_type: &str, body: Vec<u8>) -> http::Request<Vec<u8>> {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(
            http::header::ACCEPT,
            "application/vnd.kubernetes.protobuf,application/json",
        )
        .body(body)
        .expect("request")
}

/// One create through `variant`, of object `i` (bodies of the raw variants pre-encoded).
async fn create_one(
    variant: &str,
    i: usize,
    client: &kube::Client,
    api: &Api<Pod>,
    bodies: &[Vec<Vec<u8>>; 4],
) {
    let request = match variant {
        "create" => {
            api.create(&PostParams::default(), &pod(&format!("bench-{i}")))
                .await
                .expect("create");
            return;
        }
        "create-json" => raw("POST", PODS, "application/json", bodies[1][i].clone()),
        "create-protobuf" => raw(
            "POST",
            PODS,
            sluice_k8s_protobuf::CONTENT_TYPE,
            bodies[2][i].clone(),
        ),
        "apply-ssa" => raw(
            "PATCH",
            &format!("{PODS}/ssa-{i}?fieldManager=bench"),
            "application/apply-patch+yaml",
            bodies[3][i].clone(),
        ),
        other => unreachable!("no create variant {other}"),
    };
    client
        .request_text(request)
        .await
        .unwrap_or_else(|e| panic!("{variant} {i}: {e}"));
}

/// The create phase: every variant creates `args.objects` pods, interleaved in rounds.
async fn create_variants(args: &Args, client: &kube::Client, api: &Api<Pod>) {
    let n = args.objects;
    let json_of = |prefix: &str, i: usize| {
        let mut v = serde_json::to_value(pod(&format!("{prefix}-{i}"))).expect("pod json");
        v["apiVersion"] = "v1".into();
        v["kind"] = "Pod".into();
        v
    };
    let bodies: Arc<[Vec<Vec<u8>>; 4]> = Arc::new([
        Vec::new(),
        (0..n)
            .map(|i| serde_json::to_vec(&json_of("json", i)).expect("json"))
            .collect(),
        (0..n)
            .map(|i| sluice_k8s_protobuf::encode(&json_of("pb", i)).expect("protobuf"))
            .collect(),
        (0..n)
            .map(|i| serde_json::to_vec(&json_of("ssa", i)).expect("json"))
            .collect(),
    ]);
    let mut lat: [Vec<Duration>; 4] = Default::default();
    let mut wall = [Duration::ZERO; 4];
    for round in 0..CREATE_ROUNDS {
        let (lo, hi) = (n * round / CREATE_ROUNDS, n * (round + 1) / CREATE_ROUNDS);
        for k in 0..CREATE_VARIANTS.len() {
            let v = (round + k) % CREATE_VARIANTS.len();
            let (client, api, bodies) = (client.clone(), api.clone(), bodies.clone());
            let (l, w) = run_phase(args.clients, hi - lo, move |i| {
                let (client, api, bodies) = (client.clone(), api.clone(), bodies.clone());
                async move { create_one(CREATE_VARIANTS[v], lo + i, &client, &api, &bodies).await }
            })
            .await;
            lat[v].extend(l);
            wall[v] += w;
        }
    }
    let [typed, json, protobuf, ssa] = lat;
    report("create", typed, wall[0]);
    let json = report("create-json", json, wall[1]);
    let protobuf = report("create-protobuf", protobuf, wall[2]);
    let ssa = report("apply-ssa", ssa, wall[3]);
    println!(
        "protobuf/JSON create: p50 x{:.2} p99 x{:.2} throughput x{:.2}; apply/JSON create: p50 x{:.2} throughput x{:.2}",
        protobuf.0 / json.0,
        protobuf.1 / json.1,
        protobuf.2 / json.2,
        ssa.0 / json.0,
        ssa.2 / json.2,
    );
}

fn walk_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p).map_or(0, |rd| {
        rd.filter_map(Result::ok)
            .map(|e| {
                let m = e.metadata().ok();
                if m.as_ref().is_some_and(std::fs::Metadata::is_dir) {
                    walk_size(&e.path())
                } else {
                    m.map_or(0, |m| m.len())
                }
            })
            .sum()
    })
}
