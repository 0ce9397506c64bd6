//! `cargo xtask bench pod-startup`: time from creating a Pod to it being Running with an IP,
//! p50/p99, on a real single-node cluster (containerd, sluice CNI, the kubelet) started as
//! `cargo xtask up` starts it, with the image already local. Numbers, not assertions.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use sluice_tests::cluster::Cluster;

#[derive(Parser, Debug)]
struct Args {
    /// Pods per phase.
    #[arg(long, default_value_t = 50)]
    pods: usize,
    /// Use the debug binaries (target/debug) instead of release.
    #[arg(long)]
    dev: bool,
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "startup"}},
        "spec": {"terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "localhost/sluice/test:1"}]}}))
    .expect("pod json")
}

fn pct(lat: &mut [Duration], p: f64) -> f64 {
    lat.sort();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a percentile's index: non-negative and below the sample count"
    )]
    let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
    lat.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Create `names` (all at once when `burst`, else one after the other) and time each to Running+IP.
async fn phase(api: &Api<Pod>, names: &[String], burst: bool) -> Vec<Duration> {
    let rv = api
        .list(&ListParams::default().limit(1))
        .await
        .expect("list")
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut stream = api
        .watch(&WatchParams::default().labels("bench=startup"), &rv)
        .await
        .expect("watch")
        .boxed();
    let mut created: HashMap<String, Instant> = HashMap::new();
    let mut done: HashMap<String, Duration> = HashMap::new();
    let mut next = 0;
    let deadline = Instant::now() + Duration::from_mins(10);
    while done.len() < names.len() && Instant::now() < deadline {
        while next < names.len() && (burst || done.len() == next) {
            created.insert(names[next].clone(), Instant::now());
            api.create(&PostParams::default(), &pod(&names[next]))
                .await
                .expect("create");
            next += 1;
        }
        let Ok(Some(ev)) = tokio::time::timeout(Duration::from_mins(1), stream.next()).await else {
            break;
        };
        if let Ok(WatchEvent::Added(p) | WatchEvent::Modified(p)) = ev {
            let name = p.metadata.name.clone().unwrap_or_default();
            let st = p.status.unwrap_or_default();
            if st.phase.as_deref() == Some("Running")
                && st.pod_ip.is_some()
                && !done.contains_key(&name)
                && let Some(t) = created.get(&name)
            {
                done.insert(name, t.elapsed());
            }
        }
    }
    done.into_values().collect()
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let cluster = Cluster::start_with(args.dev);
    let api: Api<Pod> = Api::namespaced(cluster.client().await, "default");
    println!(
        "pod startup: create -> Running with a pod IP; {} pods per phase; image local; {} binaries",
        args.pods,
        if args.dev { "debug" } else { "release" }
    );
    for (label, burst) in [("one at a time", false), ("burst", true)] {
        let names: Vec<String> = (0..args.pods)
            .map(|i| format!("start-{}-{i}", if burst { "b" } else { "s" }))
            .collect();
        let mut lat = phase(&api, &names, burst).await;
        let n = lat.len();
        println!(
            "{label:<14} n={n:<4} p50={:>8.1}ms p99={:>8.1}ms",
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99)
        );
        let _ = api
            .delete_collection(
                &DeleteParams::default().grace_period(0),
                &ListParams::default().labels("bench=startup"),
            )
            .await;
        let wait = Instant::now();
        while wait.elapsed() < Duration::from_mins(2) {
            if api
                .list(&ListParams::default().labels("bench=startup"))
                .await
                .is_ok_and(|l| l.items.is_empty())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    drop(cluster);
}
