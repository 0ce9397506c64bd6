//! Talks to a real containerd when one is running; skipped otherwise.
//!
//! The socket is `$SLUICE_CRI_SOCKET`, else containerd's default.

use std::path::PathBuf;

use sluice_proto::runtime::v1 as cri;

#[tokio::test]
async fn version_and_status_against_real_containerd() {
    let socket = std::env::var_os("SLUICE_CRI_SOCKET").map_or_else(
        || PathBuf::from(sluice_proto::CONTAINERD_SOCKET),
        PathBuf::from,
    );
    let socket = socket.as_path();
    if !socket.exists() {
        println!(
            "skipped: {} does not exist (containerd not running)",
            socket.display()
        );
        return;
    }
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
