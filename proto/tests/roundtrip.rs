//! In-process round trip: the generated servers run a fake runtime on a unix
//! socket in a temp dir, and `sluice_proto::connect` talks to it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use sluice_proto::runtime::v1::{
    self as cri, image_service_server::ImageService, image_service_server::ImageServiceServer,
    runtime_service_server::RuntimeService, runtime_service_server::RuntimeServiceServer,
};
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

/// Remembers every request it was sent and answers from what it remembers.
#[derive(Default)]
struct Fake {
    sandboxes: Mutex<Vec<cri::RunPodSandboxRequest>>,
    containers: Mutex<Vec<cri::CreateContainerRequest>>,
    pulls: Mutex<Vec<cri::PullImageRequest>>,
}

const SANDBOX_IP: &str = "10.244.1.7";
const SANDBOX_IP6: &str = "fd00:10:244:1::7";
/// Enough tags to make a `ListImagesResponse` of about 6 MB.
const BIG_TAGS: usize = 150_000;
const IMAGE_ID: &str = "sha256:4f2d6a2b1e0c9d8f7e6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e";

#[tonic::async_trait]
impl RuntimeService for Fake {
    async fn version(
        &self,
        req: Request<cri::VersionRequest>,
    ) -> Result<Response<cri::VersionResponse>, Status> {
        Ok(Response::new(cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "fake".into(),
            runtime_version: "v0.0.1".into(),
            runtime_api_version: req.into_inner().version,
        }))
    }

    async fn run_pod_sandbox(
        &self,
        req: Request<cri::RunPodSandboxRequest>,
    ) -> Result<Response<cri::RunPodSandboxResponse>, Status> {
        let mut sandboxes = self.sandboxes.lock().unwrap();
        sandboxes.push(req.into_inner());
        Ok(Response::new(cri::RunPodSandboxResponse {
            pod_sandbox_id: format!("sb-{}", sandboxes.len() - 1),
        }))
    }

    async fn pod_sandbox_status(
        &self,
        req: Request<cri::PodSandboxStatusRequest>,
    ) -> Result<Response<cri::PodSandboxStatusResponse>, Status> {
        let id = req.into_inner().pod_sandbox_id;
        let sandboxes = self.sandboxes.lock().unwrap();
        let run = id
            .strip_prefix("sb-")
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| sandboxes.get(i))
            .ok_or_else(|| Status::not_found(format!("sandbox {id}")))?;
        let config = run.config.clone().unwrap_or_default();
        Ok(Response::new(cri::PodSandboxStatusResponse {
            status: Some(cri::PodSandboxStatus {
                id,
                metadata: config.metadata,
                state: cri::PodSandboxState::SandboxReady.into(),
                created_at: 1_700_000_000_000_000_000,
                network: Some(cri::PodSandboxNetworkStatus {
                    ip: SANDBOX_IP.into(),
                    additional_ips: vec![cri::PodIp {
                        ip: SANDBOX_IP6.into(),
                    }],
                }),
                linux: Some(cri::LinuxPodSandboxStatus {
                    namespaces: Some(cri::Namespace {
                        options: config
                            .linux
                            .and_then(|l| l.security_context)
                            .and_then(|s| s.namespace_options),
                    }),
                }),
                labels: config.labels,
                annotations: config.annotations,
                runtime_handler: run.runtime_handler.clone(),
            }),
            ..Default::default()
        }))
    }

    async fn create_container(
        &self,
        req: Request<cri::CreateContainerRequest>,
    ) -> Result<Response<cri::CreateContainerResponse>, Status> {
        let mut containers = self.containers.lock().unwrap();
        containers.push(req.into_inner());
        Ok(Response::new(cri::CreateContainerResponse {
            container_id: format!("ctr-{}", containers.len() - 1),
        }))
    }

    async fn container_status(
        &self,
        req: Request<cri::ContainerStatusRequest>,
    ) -> Result<Response<cri::ContainerStatusResponse>, Status> {
        let id = req.into_inner().container_id;
        let containers = self.containers.lock().unwrap();
        let create = id
            .strip_prefix("ctr-")
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| containers.get(i))
            .ok_or_else(|| Status::not_found(format!("container {id}")))?;
        let config = create.config.clone().unwrap_or_default();
        let log_dir = create
            .sandbox_config
            .as_ref()
            .map(|s| s.log_directory.clone())
            .unwrap_or_default();
        Ok(Response::new(cri::ContainerStatusResponse {
            status: Some(cri::ContainerStatus {
                id,
                metadata: config.metadata,
                state: cri::ContainerState::ContainerExited.into(),
                created_at: 1,
                started_at: 2,
                finished_at: 3,
                exit_code: 137,
                image: config.image,
                image_ref: IMAGE_ID.into(),
                reason: "OOMKilled".into(),
                message: "memory limit reached".into(),
                labels: config.labels,
                annotations: config.annotations,
                mounts: config.mounts,
                log_path: format!("{log_dir}/{}", config.log_path),
                resources: Some(cri::ContainerResources {
                    linux: config.linux.and_then(|l| l.resources),
                }),
                image_id: IMAGE_ID.into(),
            }),
            info: HashMap::new(),
        }))
    }
}

#[tonic::async_trait]
impl ImageService for Fake {
    async fn pull_image(
        &self,
        req: Request<cri::PullImageRequest>,
    ) -> Result<Response<cri::PullImageResponse>, Status> {
        self.pulls.lock().unwrap().push(req.into_inner());
        Ok(Response::new(cri::PullImageResponse {
            image_ref: IMAGE_ID.into(),
        }))
    }

    async fn image_status(
        &self,
        req: Request<cri::ImageStatusRequest>,
    ) -> Result<Response<cri::ImageStatusResponse>, Status> {
        let wanted = req.into_inner().image.unwrap_or_default().image;
        let pulled = self
            .pulls
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.image.as_ref().is_some_and(|i| i.image == wanted));
        // An absent image is an empty response, not an error.
        let image = pulled.then(|| cri::Image {
            id: IMAGE_ID.into(),
            repo_tags: vec![wanted.clone()],
            repo_digests: vec![format!("docker.io/library/busybox@{IMAGE_ID}")],
            size: 4_261_574,
            uid: Some(cri::Int64Value { value: 0 }),
            username: String::new(),
            spec: Some(cri::ImageSpec {
                image: wanted,
                ..Default::default()
            }),
            pinned: false,
        });
        Ok(Response::new(cri::ImageStatusResponse {
            image,
            info: HashMap::new(),
        }))
    }

    async fn list_images(
        &self,
        _req: Request<cri::ListImagesRequest>,
    ) -> Result<Response<cri::ListImagesResponse>, Status> {
        // Bigger than tonic's 4 MiB default decode limit.
        let tags = (0..BIG_TAGS)
            .map(|i| format!("registry.example/big/image:tag-{i:08}"))
            .collect();
        Ok(Response::new(cri::ListImagesResponse {
            images: vec![cri::Image {
                id: IMAGE_ID.into(),
                repo_tags: tags,
                ..Default::default()
            }],
        }))
    }
}

/// Serves `fake` on `socket` until the returned sender is dropped.
fn serve(fake: Arc<Fake>, socket: &Path) -> oneshot::Sender<()> {
    let listener = UnixListener::bind(socket).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(RuntimeServiceServer::from_arc(fake.clone()))
            .add_service(ImageServiceServer::from_arc(fake))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    stop
}

fn sandbox_config() -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "web-0".into(),
            uid: "6f1c0c5e-8d0a-4b53-9a57-3f7f0b2e4a11".into(),
            namespace: "default".into(),
            attempt: 1,
        }),
        hostname: "web-0".into(),
        log_directory: "/var/log/pods/default_web-0_6f1c0c5e".into(),
        dns_config: Some(cri::DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec![
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
            ],
            options: vec!["ndots:5".into()],
        }),
        port_mappings: vec![cri::PortMapping {
            protocol: cri::Protocol::Udp.into(),
            container_port: 53,
            host_port: 5353,
            host_ip: "127.0.0.1".into(),
        }],
        labels: HashMap::from([("app".into(), "web".into())]),
        annotations: HashMap::from([("kubernetes.io/config.source".into(), "api".into())]),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: "/kubepods/burstable/pod6f1c0c5e".into(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Pod.into(),
                    pid: cri::NamespaceMode::Container.into(),
                    ipc: cri::NamespaceMode::Node.into(),
                    target_id: String::new(),
                }),
                run_as_user: Some(cri::Int64Value { value: 1000 }),
                run_as_group: Some(cri::Int64Value { value: 0 }),
                supplemental_groups: vec![2000, 3000],
                seccomp: Some(cri::SecurityProfile {
                    profile_type: cri::security_profile::ProfileType::Localhost.into(),
                    localhost_ref: "profiles/audit.json".into(),
                }),
                ..Default::default()
            }),
            sysctls: HashMap::from([("net.ipv4.ip_unprivileged_port_start".into(), "0".into())]),
            ..Default::default()
        }),
    }
}

fn container_config() -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: "app".into(),
            attempt: 2,
        }),
        image: Some(cri::ImageSpec {
            image: "docker.io/library/busybox:1.36".into(),
            ..Default::default()
        }),
        command: vec!["/bin/sh".into(), "-c".into()],
        args: vec!["echo hi; sleep 3600".into()],
        working_dir: "/srv".into(),
        envs: vec![cri::KeyValue {
            key: "GREETING".into(),
            value: "héllo wörld".into(),
        }],
        mounts: vec![cri::Mount {
            container_path: "/data".into(),
            host_path: "/var/lib/kubelet/pods/6f1c0c5e/volumes/data".into(),
            readonly: true,
            selinux_relabel: false,
            propagation: cri::MountPropagation::PropagationHostToContainer.into(),
        }],
        devices: vec![cri::Device {
            container_path: "/dev/fuse".into(),
            host_path: "/dev/fuse".into(),
            permissions: "rwm".into(),
        }],
        labels: HashMap::from([("io.kubernetes.container.name".into(), "app".into())]),
        annotations: HashMap::from([("io.kubernetes.container.restartCount".into(), "2".into())]),
        log_path: "app/2.log".into(),
        stdin: true,
        stdin_once: true,
        tty: false,
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(cri::LinuxContainerResources {
                cpu_period: 100_000,
                cpu_quota: 50_000,
                cpu_shares: 512,
                memory_limit_in_bytes: 256 << 20,
                oom_score_adj: 999,
                cpuset_cpus: "0-1".into(),
                cpuset_mems: "0".into(),
                hugepage_limits: vec![cri::HugepageLimit {
                    page_size: "2MB".into(),
                    limit: 0,
                }],
                unified: HashMap::from([("memory.high".into(), "200000000".into())]),
                memory_swap_limit_in_bytes: 256 << 20,
            }),
            security_context: Some(cri::LinuxContainerSecurityContext {
                capabilities: Some(cri::Capability {
                    add_capabilities: vec!["NET_BIND_SERVICE".into()],
                    drop_capabilities: vec!["ALL".into()],
                    add_ambient_capabilities: vec![],
                }),
                run_as_user: Some(cri::Int64Value { value: 65534 }),
                no_new_privs: true,
                masked_paths: vec!["/proc/kcore".into()],
                readonly_paths: vec!["/proc/sys".into()],
                ..Default::default()
            }),
        }),
    }
}

#[tokio::test]
async fn round_trip_over_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cri.sock");
    let fake = Arc::new(Fake::default());
    let _stop = serve(fake.clone(), &socket);

    let mut cri = sluice_proto::connect(&socket).await.unwrap();

    // Version
    let version = cri
        .runtime
        .version(cri::VersionRequest {
            version: sluice_proto::CRI_VERSION.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(version.runtime_name, "fake");
    assert_eq!(version.runtime_api_version, "v1");

    // RunPodSandbox: the server sees exactly what we sent.
    let run = cri::RunPodSandboxRequest {
        config: Some(sandbox_config()),
        runtime_handler: "runc".into(),
    };
    let sandbox_id = cri
        .runtime
        .run_pod_sandbox(run.clone())
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    assert_eq!(sandbox_id, "sb-0");
    assert_eq!(
        fake.sandboxes.lock().unwrap().as_slice(),
        std::slice::from_ref(&run)
    );

    let status = cri
        .runtime
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: sandbox_id.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(status.id, sandbox_id);
    assert_eq!(status.state(), cri::PodSandboxState::SandboxReady);
    assert_eq!(status.metadata, sandbox_config().metadata);
    assert_eq!(status.labels, sandbox_config().labels);
    assert_eq!(status.runtime_handler, "runc");
    let network = status.network.unwrap();
    assert_eq!(network.ip, SANDBOX_IP);
    assert_eq!(
        network.additional_ips,
        vec![cri::PodIp {
            ip: SANDBOX_IP6.into()
        }]
    );
    let ns = status.linux.unwrap().namespaces.unwrap().options.unwrap();
    assert_eq!(ns.pid(), cri::NamespaceMode::Container);
    assert_eq!(ns.ipc(), cri::NamespaceMode::Node);

    // CreateContainer, then ContainerStatus.
    let create = cri::CreateContainerRequest {
        pod_sandbox_id: sandbox_id.clone(),
        config: Some(container_config()),
        sandbox_config: Some(sandbox_config()),
    };
    let container_id = cri
        .runtime
        .create_container(create.clone())
        .await
        .unwrap()
        .into_inner()
        .container_id;
    assert_eq!(container_id, "ctr-0");
    assert_eq!(
        fake.containers.lock().unwrap().as_slice(),
        std::slice::from_ref(&create)
    );

    let status = cri
        .runtime
        .container_status(cri::ContainerStatusRequest {
            container_id: container_id.clone(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    let config = container_config();
    assert_eq!(status.id, container_id);
    assert_eq!(status.state(), cri::ContainerState::ContainerExited);
    assert_eq!(
        (status.created_at, status.started_at, status.finished_at),
        (1, 2, 3)
    );
    assert_eq!(status.exit_code, 137);
    assert_eq!(status.reason, "OOMKilled");
    assert_eq!(status.message, "memory limit reached");
    assert_eq!(status.image, config.image);
    assert_eq!(status.image_ref, IMAGE_ID);
    assert_eq!(status.mounts, config.mounts);
    assert_eq!(
        status.mounts[0].propagation(),
        cri::MountPropagation::PropagationHostToContainer
    );
    assert_eq!(
        status.log_path,
        "/var/log/pods/default_web-0_6f1c0c5e/app/2.log"
    );
    assert_eq!(
        status.resources.unwrap().linux,
        config.linux.unwrap().resources,
        "LinuxContainerResources must round-trip"
    );

    // PullImage with credentials, then ImageStatus.
    let pull = cri::PullImageRequest {
        image: Some(cri::ImageSpec {
            image: "docker.io/library/busybox:1.36".into(),
            ..Default::default()
        }),
        auth: Some(cri::AuthConfig {
            username: "alice".into(),
            password: "hunter2".into(),
            server_address: "registry.example".into(),
            ..Default::default()
        }),
        sandbox_config: Some(sandbox_config()),
    };
    let image_ref = cri
        .image
        .pull_image(pull.clone())
        .await
        .unwrap()
        .into_inner()
        .image_ref;
    assert_eq!(image_ref, IMAGE_ID);
    assert_eq!(
        fake.pulls.lock().unwrap().as_slice(),
        std::slice::from_ref(&pull)
    );

    let image = cri
        .image
        .image_status(cri::ImageStatusRequest {
            image: pull.image.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .image
        .expect("pulled image is present");
    assert_eq!(image.id, IMAGE_ID);
    assert_eq!(
        image.repo_tags,
        vec!["docker.io/library/busybox:1.36".to_string()]
    );
    assert_eq!(image.size, 4_261_574);
    assert_eq!(image.uid, Some(cri::Int64Value { value: 0 }));

    let absent = cri
        .image
        .image_status(cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: "nope:latest".into(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(absent.image, None);

    // An rpc the fake does not implement comes back as Unimplemented.
    let err = cri
        .runtime
        .status(cri::StatusRequest { verbose: false })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
}

#[tokio::test]
async fn clients_accept_messages_over_4_mib() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cri.sock");
    let _stop = serve(Arc::new(Fake::default()), &socket);

    let mut cri = sluice_proto::connect(&socket).await.unwrap();
    let response = cri
        .image
        .list_images(cri::ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        prost::Message::encoded_len(&response) > 4 << 20,
        "response must exceed 4 MiB"
    );
    assert_eq!(response.images[0].repo_tags.len(), BIG_TAGS);
}

#[tokio::test]
async fn connect_to_missing_socket_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    let err = sluice_proto::connect(&socket).await.unwrap_err();
    let sluice_proto::ConnectError::Connect { path, .. } = &err;
    assert_eq!(path, &socket);
    assert!(err.to_string().contains("absent.sock"), "{err}");
    // The I/O cause stays reachable through the source chain.
    let mut chain = Vec::new();
    let mut source = std::error::Error::source(&err);
    while let Some(e) = source {
        chain.push(e.to_string());
        source = e.source();
    }
    assert!(
        chain.iter().any(|m| m.contains("No such file")),
        "source chain lacks the I/O error: {chain:?}"
    );
}
