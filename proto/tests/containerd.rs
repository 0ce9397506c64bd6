//! Talks to a real containerd: `$SLUICE_CRI_SOCKET` when set, otherwise a private
//! containerd this test starts (Debian's binary, a config of its own in a temp dir) and
//! stops. Without root or containerd it fails under CI and is skipped elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_proto::runtime::v1 as cri;

/// A containerd of this test's own, killed on drop.
struct Private {
    child: Child,
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Private {
    fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sluice-cri-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        let socket = d.join("containerd.sock");
        let config = d.join("config.toml");
        // Only what a CRI Version/Status/List needs; `restrict_oom_score_adj` because this
        // machine's root lacks CAP_SYS_RESOURCE.
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 [grpc]\n  address = \"{sock}\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\"]\n  restrict_oom_score_adj = true\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"{cni}/bin\"\n  conf_dir = \"{cni}/conf\"\n",
                root = d.join("root").display(),
                state = d.join("state").display(),
                sock = socket.display(),
                cni = d.join("cni").display(),
            ),
        )
        .expect("containerd config");
        let log = std::fs::File::create(d.join("containerd.log")).expect("log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "containerd did not create {} within 30 s: {}",
                socket.display(),
                std::fs::read_to_string(d.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            _dir: dir,
            socket,
        }
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn version_and_status_against_real_containerd() {
    const TEST: &str = "version_and_status_against_real_containerd";
    let given = std::env::var_os("SLUICE_CRI_SOCKET").map(PathBuf::from);
    let private = if given.is_none() {
        if !sluice_test_util::require_root_and_tools(TEST, &["containerd"]) {
            return;
        }
        Some(Private::start())
    } else {
        None
    };
    let socket: &Path = given
        .as_deref()
        .or(private.as_ref().map(|p| p.socket.as_path()))
        .expect("a socket");
    let mut cri = sluice_proto::connect(socket)
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", std::error::Error::source(&e)));

    let version = cri
        .runtime
        .version(cri::VersionRequest {
            version: sluice_proto::CRI_VERSION.into(),
        })
        .await
        .unwrap()
        .into_inner();
    println!("{version:?}");
    assert_eq!(version.runtime_api_version, "v1");
    assert!(!version.runtime_name.is_empty());

    let status = cri
        .runtime
        .status(cri::StatusRequest { verbose: false })
        .await
        .unwrap()
        .into_inner();
    println!("{status:?}");
    let conditions = status.status.expect("RuntimeStatus").conditions;
    assert!(
        conditions.iter().any(|c| c.r#type == "RuntimeReady"),
        "no RuntimeReady condition in {conditions:?}"
    );

    // Read-only calls that work on any node, even one without network.
    let sandboxes = cri
        .runtime
        .list_pod_sandbox(cri::ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    let containers = cri
        .runtime
        .list_containers(cri::ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    let images = cri
        .image
        .list_images(cri::ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .images;
    println!(
        "{} sandboxes, {} containers, {} images",
        sandboxes.len(),
        containers.len(),
        images.len()
    );

    let absent = cri
        .image
        .image_status(cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: "sluice.invalid/no-such-image:never".into(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        absent.image, None,
        "an absent image is an empty answer, not an error"
    );
}
