//! The kubelet's HTTP server, read-only part: `GET /containerLogs/{namespace}/{pod}/{container}`
//! (what the API server's `pods/log` proxies to, with upstream's `PodLogOptions` query),
//! `GET /pods` (the `PodList` of the pods bound to this node, as the kubelet's cache has
//! them) and `GET /healthz`.
//!
//! Plain HTTP on the node's `InternalIP` for now: TLS and authorization come later.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{ObjectRef, Store};
use sluice_proto::runtime::v1 as cri;

use super::logs::{self, LogOptions, LogStream};
use super::spec;
use super::streaming::{self, StreamRequest, Verb};

/// One attempt (restart) of a container as the runtime has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The runtime's container id.
    pub id: String,
    /// The restart number (`ContainerMetadata.attempt`, the log file's name).
    pub attempt: u32,
    /// Whether it is running.
    pub running: bool,
    /// When it was created (Unix nanoseconds).
    pub created_at: i64,
}

/// Where the server learns about pods and containers.
pub trait PodSource: Send + Sync + 'static {
    /// The pods bound to this node.
    fn pods(&self) -> Vec<Arc<Pod>>;

    /// One pod bound to this node.
    fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        self.pods().into_iter().find(|p| {
            p.metadata.namespace.as_deref() == Some(namespace)
                && p.metadata.name.as_deref() == Some(name)
        })
    }

    /// The runtime's attempts of `container` in the pod with `uid` (empty when it has
    /// none, or cannot be asked).
    fn attempts(&self, uid: &str, container: &str) -> BoxFuture<'static, Vec<Attempt>>;

    /// The id of the pod's ready sandbox.
    fn sandbox(&self, uid: &str) -> BoxFuture<'static, Option<String>>;

    /// A one-shot URL on the runtime's stream server.
    fn stream_url(&self, req: StreamRequest) -> BoxFuture<'static, Result<String, tonic::Status>>;

    /// Runs a command in a container and waits for its output.
    fn exec_sync(
        &self,
        container_id: String,
        cmd: Vec<String>,
    ) -> BoxFuture<'static, Result<cri::ExecSyncResponse, tonic::Status>>;
}

/// The agent's [`PodSource`]: the kubelet's reflector of this node's pods, and CRI.
#[derive(Clone)]
pub struct KubeletPods {
    /// This node's pods.
    pub store: Store<Pod>,
    /// The runtime.
    pub cri: sluice_proto::Clients,
}

impl PodSource for KubeletPods {
    fn pods(&self) -> Vec<Arc<Pod>> {
        self.store.state()
    }

    fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        self.store.get(&ObjectRef::new(name).within(namespace))
    }

    fn attempts(&self, uid: &str, container: &str) -> BoxFuture<'static, Vec<Attempt>> {
        let mut cri = self.cri.clone();
        let filter = cri::ContainerFilter {
            label_selector: [
                (spec::LABEL_POD_UID.to_string(), uid.to_string()),
                (
                    spec::LABEL_CONTAINER_NAME.to_string(),
                    container.to_string(),
                ),
            ]
            .into(),
            ..Default::default()
        };
        Box::pin(async move {
            match cri
                .runtime
                .list_containers(cri::ListContainersRequest {
                    filter: Some(filter),
                })
                .await
            {
                Ok(r) => r
                    .into_inner()
                    .containers
                    .into_iter()
                    .map(|c| Attempt {
                        id: c.id,
                        attempt: c.metadata.map_or(0, |m| m.attempt),
                        running: c.state == cri::ContainerState::ContainerRunning as i32,
                        created_at: c.created_at,
                    })
                    .collect(),
                Err(e) => {
                    tracing::debug!(error = %e, "listing containers for logs");
                    Vec::new()
                }
            }
        })
    }

    fn sandbox(&self, uid: &str) -> BoxFuture<'static, Option<String>> {
        let mut cri = self.cri.clone();
        let filter = cri::PodSandboxFilter {
            label_selector: [(spec::LABEL_POD_UID.to_string(), uid.to_string())].into(),
            state: Some(cri::PodSandboxStateValue {
                state: cri::PodSandboxState::SandboxReady.into(),
            }),
            ..Default::default()
        };
        Box::pin(async move {
            let list = cri
                .runtime
                .list_pod_sandbox(cri::ListPodSandboxRequest {
                    filter: Some(filter),
                })
                .await
                .ok()?;
            list.into_inner()
                .items
                .into_iter()
                .max_by_key(|s| s.created_at)
                .map(|s| s.id)
        })
    }

    fn stream_url(&self, req: StreamRequest) -> BoxFuture<'static, Result<String, tonic::Status>> {
        let mut cri = self.cri.clone();
        Box::pin(async move {
            Ok(match req {
                StreamRequest::Exec(r) => cri.runtime.exec(r).await?.into_inner().url,
                StreamRequest::Attach(r) => cri.runtime.attach(r).await?.into_inner().url,
                StreamRequest::PortForward(r) => {
                    cri.runtime.port_forward(r).await?.into_inner().url
                }
            })
        })
    }

    fn exec_sync(
        &self,
        container_id: String,
        cmd: Vec<String>,
    ) -> BoxFuture<'static, Result<cri::ExecSyncResponse, tonic::Status>> {
        let mut cri = self.cri.clone();
        Box::pin(async move {
            Ok(cri
                .runtime
                .exec_sync(cri::ExecSyncRequest {
                    container_id,
                    cmd,
                    timeout: 60,
                })
                .await?
                .into_inner())
        })
    }
}

#[derive(Clone)]
struct AppState {
    source: Arc<dyn PodSource>,
    log_root: Arc<PathBuf>,
}

/// The router: `source` for pods and containers, log directories under `log_root`
/// (`<log_root>/<ns>_<pod>_<uid>/<container>/<restart>.log`).
pub fn router(source: Arc<dyn PodSource>, log_root: PathBuf) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/pods", get(list_pods))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .route("/exec/{namespace}/{pod}/{container}", get(exec).post(exec))
        .route(
            "/attach/{namespace}/{pod}/{container}",
            get(attach).post(attach),
        )
        .route(
            "/portForward/{namespace}/{pod}",
            get(port_forward).post(port_forward),
        )
        .route("/run/{namespace}/{pod}/{container}", post(run))
        .with_state(AppState {
            source,
            log_root: Arc::new(log_root),
        })
}

/// Serves `router` on `listener` until the future is dropped, answering only loopback and
/// `peers` (the API server, this node); anyone else gets a 403 `Status`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    peers: Vec<std::net::IpAddr>,
) -> std::io::Result<()> {
    let peers = Arc::new(peers);
    let guarded = router.layer(axum::middleware::from_fn(
        move |ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
              req: axum::extract::Request,
              next: axum::middleware::Next| {
            let peers = peers.clone();
            async move {
                if allowed(&peers, peer.ip()) {
                    next.run(req).await
                } else {
                    streaming::status(
                        StatusCode::FORBIDDEN,
                        "Forbidden",
                        &format!("the kubelet answers only the API server, not {}", peer.ip()),
                    )
                }
            }
        },
    ));
    axum::serve(
        listener,
        guarded.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await
}

/// Whether a peer may use the kubelet server: loopback or one of `peers`.
fn allowed(peers: &[std::net::IpAddr], peer: std::net::IpAddr) -> bool {
    let peer = match peer {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, std::net::IpAddr::V4),
        v4 @ std::net::IpAddr::V4(_) => v4,
    };
    peer.is_loopback() || peers.contains(&peer)
}

fn plain(code: StatusCode, msg: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg + "\n",
    )
        .into_response()
}

async fn list_pods(State(st): State<AppState>) -> Response {
    let mut items: Vec<Pod> = st.source.pods().iter().map(|p| (**p).clone()).collect();
    items.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    let list = k8s_openapi::List::<Pod> {
        items,
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta::default(),
    };
    match serde_json::to_vec(&list) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn exec(
    State(st): State<AppState>,
    UrlPath(target): UrlPath<(String, String, String)>,
    req: axum::extract::Request,
) -> Response {
    streaming::remote_command(st.source, Verb::Exec, target, req).await
}

async fn attach(
    State(st): State<AppState>,
    UrlPath(target): UrlPath<(String, String, String)>,
    req: axum::extract::Request,
) -> Response {
    streaming::remote_command(st.source, Verb::Attach, target, req).await
}

async fn port_forward(
    State(st): State<AppState>,
    UrlPath(target): UrlPath<(String, String)>,
    req: axum::extract::Request,
) -> Response {
    streaming::port_forward(st.source, target, req).await
}

async fn run(
    State(st): State<AppState>,
    UrlPath(target): UrlPath<(String, String, String)>,
    req: axum::extract::Request,
) -> Response {
    streaming::run(st.source, target, req).await
}

/// Whether the pod's spec has a container (regular, init or ephemeral) named `name`.
pub(super) fn has_container(pod: &Pod, name: &str) -> bool {
    let Some(spec) = &pod.spec else { return false };
    spec.containers.iter().any(|c| c.name == name)
        || spec
            .init_containers
            .iter()
            .flatten()
            .any(|c| c.name == name)
        || spec
            .ephemeral_containers
            .iter()
            .flatten()
            .any(|c| c.name == name)
}

/// The restart count the pod's status reports for `container`.
fn status_restarts(pod: &Pod, container: &str) -> Option<u32> {
    let s = pod.status.as_ref()?;
    [
        &s.container_statuses,
        &s.init_container_statuses,
        &s.ephemeral_container_statuses,
    ]
    .into_iter()
    .flatten()
    .flatten()
    .find(|c| c.name == container)
    .and_then(|c| u32::try_from(c.restart_count).ok())
}

/// The current restart of a container: the runtime's newest attempt; else (the runtime
/// removed it, e.g. the pod finished) what the pod's status says; else the newest file.
fn current_restart(attempts: &[Attempt], status: Option<u32>, dir: &Path) -> Option<u32> {
    attempts
        .iter()
        .max_by_key(|a| (a.created_at, a.attempt))
        .map(|a| a.attempt)
        .or(status)
        .or_else(|| logs::restarts_on_disk(dir).last().copied())
}

async fn container_logs(
    State(st): State<AppState>,
    UrlPath((namespace, pod_name, container)): UrlPath<(String, String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let opts = match LogOptions::from_query(&query) {
        Ok(o) => o,
        Err(e) => return plain(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let Some(pod) = st.source.pod(&namespace, &pod_name) else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("pod {pod_name:?} does not exist"),
        );
    };
    if !has_container(&pod, &container) {
        return plain(
            StatusCode::NOT_FOUND,
            format!("container {container:?} not found in pod {pod_name:?}"),
        );
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let dir = PathBuf::from(spec::log_directory(
        &st.log_root.display().to_string(),
        &pod,
    ))
    .join(&container);
    let attempts = st.source.attempts(&uid, &container).await;
    let current = current_restart(&attempts, status_restarts(&pod, &container), &dir);
    let restart = if opts.previous {
        current.and_then(|n| n.checked_sub(1))
    } else {
        current
    };
    let path = restart.map(|n| logs::log_file(&dir, n));
    let stream = match path {
        Some(p) => LogStream::open(&p, &opts, k8s_openapi::jiff::Timestamp::now()).await,
        None => Err(std::io::ErrorKind::NotFound.into()),
    };
    let stream = match stream {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let msg = if opts.previous {
                format!("previous terminated container {container:?} in pod {pod_name:?} not found")
            } else {
                format!("container {container:?} in pod {pod_name:?} is waiting to start")
            };
            return plain(StatusCode::BAD_REQUEST, msg);
        }
        Err(e) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading the log of container {container:?}: {e}"),
            );
        }
    };
    let attempt = restart.unwrap_or_default();
    let source = st.source.clone();
    let running = move || {
        let f = source.attempts(&uid, &container);
        async move { f.await.iter().any(|a| a.attempt == attempt && a.running) }
    };
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(stream.into_stream(running)),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::http::Request;
    use futures::StreamExt as _;
    use serde_json::json;
    use tower::ServiceExt as _;

    use super::*;

    /// Pods and runtime attempts set by the test.
    #[derive(Default)]
    struct Fake {
        pods: Vec<Arc<Pod>>,
        attempts: Mutex<Vec<Attempt>>,
    }

    impl PodSource for Fake {
        fn pods(&self) -> Vec<Arc<Pod>> {
            self.pods.clone()
        }

        fn attempts(&self, uid: &str, container: &str) -> BoxFuture<'static, Vec<Attempt>> {
            let v = if uid == "u-1" && container == "app" {
                self.attempts.lock().unwrap().clone()
            } else {
                Vec::new()
            };
            Box::pin(std::future::ready(v))
        }

        fn sandbox(&self, _uid: &str) -> BoxFuture<'static, Option<String>> {
            Box::pin(std::future::ready(None))
        }

        fn stream_url(
            &self,
            _req: StreamRequest,
        ) -> BoxFuture<'static, Result<String, tonic::Status>> {
            Box::pin(std::future::ready(Err(tonic::Status::unimplemented(
                "fake",
            ))))
        }

        fn exec_sync(
            &self,
            _id: String,
            _cmd: Vec<String>,
        ) -> BoxFuture<'static, Result<cri::ExecSyncResponse, tonic::Status>> {
            Box::pin(std::future::ready(Err(tonic::Status::unimplemented(
                "fake",
            ))))
        }
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u-1"},
            "spec": {"nodeName": "n1", "containers": [{"name": "app"}, {"name": "side"}],
                     "initContainers": [{"name": "init"}]},
            "status": {"containerStatuses": [{"name": "side", "restartCount": 0, "ready": true, "image": "", "imageID": ""}]},
        }))
        .unwrap()
    }

    struct Setup {
        _dir: tempfile::TempDir,
        app: PathBuf,
        fake: Arc<Fake>,
        router: Router,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let pod_dir = dir.path().join("default_web_u-1");
        let app = pod_dir.join("app");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::create_dir_all(pod_dir.join("side")).unwrap();
        std::fs::write(
            app.join("0.log"),
            "2024-05-01T10:00:00Z stdout F first run\n",
        )
        .unwrap();
        std::fs::write(
            app.join("1.log"),
            "2024-05-01T10:01:00Z stdout F one\n2024-05-01T10:01:01Z stderr P tw\n2024-05-01T10:01:02Z stderr F o\n",
        )
        .unwrap();
        let fake = Arc::new(Fake {
            pods: vec![Arc::new(pod())],
            attempts: Mutex::new(vec![
                Attempt {
                    id: String::new(),
                    attempt: 0,
                    running: false,
                    created_at: 1,
                },
                Attempt {
                    id: String::new(),
                    attempt: 1,
                    running: false,
                    created_at: 2,
                },
            ]),
        });
        let router = router(fake.clone(), dir.path().to_path_buf());
        Setup {
            _dir: dir,
            app,
            fake,
            router,
        }
    }

    async fn get(router: &Router, uri: &str) -> (StatusCode, String) {
        let resp = router
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let code = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (code, String::from_utf8(body.to_vec()).unwrap())
    }

    #[test]
    fn only_loopback_and_the_api_server_are_answered() {
        let peers: Vec<std::net::IpAddr> = vec!["10.1.2.3".parse().unwrap()];
        assert!(allowed(&peers, "127.0.0.1".parse().unwrap()));
        assert!(allowed(&peers, "::1".parse().unwrap()));
        assert!(allowed(&peers, "10.1.2.3".parse().unwrap()));
        assert!(allowed(&peers, "::ffff:10.1.2.3".parse().unwrap()));
        assert!(!allowed(&peers, "10.1.2.4".parse().unwrap()));
        assert!(!allowed(&[], "192.0.2.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn healthz_and_pods() {
        let s = setup();
        assert_eq!(
            get(&s.router, "/healthz").await,
            (StatusCode::OK, "ok".into())
        );
        let (code, body) = get(&s.router, "/pods").await;
        assert_eq!(code, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["kind"], "PodList");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["items"][0]["metadata"]["uid"], "u-1");
        assert_eq!(v["items"][0]["kind"], "Pod");
    }

    #[tokio::test]
    async fn container_logs_current_previous_and_options() {
        let s = setup();
        let base = "/containerLogs/default/web/app";
        assert_eq!(
            get(&s.router, base).await,
            (StatusCode::OK, "one\ntwo\n".into())
        );
        assert_eq!(
            get(&s.router, &format!("{base}?previous=true")).await,
            (StatusCode::OK, "first run\n".into())
        );
        assert_eq!(
            get(&s.router, &format!("{base}?tailLines=1&timestamps=true")).await,
            (
                StatusCode::OK,
                "2024-05-01T10:01:01.000000000Z two\n".into()
            )
        );
        assert_eq!(
            get(
                &s.router,
                &format!("{base}?sinceTime=2024-05-01T10%3A01%3A01Z&limitBytes=2")
            )
            .await,
            (StatusCode::OK, "tw".into())
        );
        // The runtime forgot the container (pod finished): the newest file on disk.
        s.fake.attempts.lock().unwrap().clear();
        assert_eq!(
            get(&s.router, base).await,
            (StatusCode::OK, "one\ntwo\n".into())
        );
    }

    #[tokio::test]
    async fn container_logs_errors() {
        let s = setup();
        let (code, body) = get(&s.router, "/containerLogs/default/nope/app").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(body, "pod \"nope\" does not exist\n");
        let (code, body) = get(&s.router, "/containerLogs/other/web/app").await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
        let (code, body) = get(&s.router, "/containerLogs/default/web/nope").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(body, "container \"nope\" not found in pod \"web\"\n");
        for q in [
            "tailLines=-1",
            "limitBytes=0",
            "sinceSeconds=x",
            "sinceSeconds=1&sinceTime=2024-05-01T10:00:00Z",
        ] {
            let (code, body) = get(&s.router, &format!("/containerLogs/default/web/app?{q}")).await;
            assert_eq!(code, StatusCode::BAD_REQUEST, "{q}: {body}");
        }
        // `side` has restartCount 0 and no file yet; no previous either.
        let (code, body) = get(&s.router, "/containerLogs/default/web/side").await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            "container \"side\" in pod \"web\" is waiting to start\n"
        );
        let (code, body) = get(&s.router, "/containerLogs/default/web/side?previous=1").await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            "previous terminated container \"side\" in pod \"web\" not found\n"
        );
        let (code, _) = get(&s.router, "/containerLogs/default/web/init").await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        let (code, _) = get(&s.router, "/nope").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn follow_streams_lines_until_the_container_stops() {
        use std::io::Write as _;
        let s = setup();
        s.fake.attempts.lock().unwrap().push(Attempt {
            id: String::new(),
            attempt: 2,
            running: true,
            created_at: 3,
        });
        let log = s.app.join("2.log");
        std::fs::write(&log, "2024-05-01T10:02:00Z stdout F hello\n").unwrap();
        let resp = s
            .router
            .clone()
            .oneshot(
                Request::get("/containerLogs/default/web/app?follow=true")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = resp.into_body().into_data_stream();
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"hello\n");
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        writeln!(f, "2024-05-01T10:02:01Z stderr F world").unwrap();
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"world\n");
        writeln!(f, "2024-05-01T10:02:02Z stdout F bye").unwrap();
        s.fake.attempts.lock().unwrap()[2].running = false;
        let mut tail = Vec::new();
        while let Some(chunk) = body.next().await {
            tail.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(tail, b"bye\n");
    }
}
