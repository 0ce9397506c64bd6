//! The CRI v1 subset the sluice kubelet speaks to containerd, and a client
//! that reaches the runtime over its unix socket.
//!
//! [`runtime::v1`] is generated from `proto/cri/api.proto` (package
//! `runtime.v1`, services `RuntimeService` and `ImageService`) and committed,
//! so building this crate needs neither `protoc` nor a build script. Both the
//! clients and the servers are generated: the servers let tests run a fake
//! runtime in process. After changing the proto, run
//! `cargo run -p sluice-proto --bin gen-cri --features codegen`; the test
//! `generated_code_is_fresh` fails while the committed code is stale.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use sluice_proto::runtime::v1::VersionRequest;
//!
//! let mut cri = sluice_proto::connect(sluice_proto::CONTAINERD_SOCKET.as_ref()).await?;
//! let version = cri
//!     .runtime
//!     .version(VersionRequest { version: sluice_proto::CRI_VERSION.into() })
//!     .await?
//!     .into_inner();
//! println!("{} {}", version.runtime_name, version.runtime_version);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use runtime::v1::image_service_client::ImageServiceClient;
use runtime::v1::runtime_service_client::RuntimeServiceClient;

/// Generated CRI types, clients and servers.
pub mod runtime {
    /// CRI v1 (protobuf package `runtime.v1`). Generated code: see
    /// `proto/cri/api.proto` for what each message means.
    #[allow(missing_docs, clippy::all, clippy::pedantic)]
    pub mod v1 {
        include!("gen/runtime.v1.rs");
    }
}

/// containerd's default CRI socket.
pub const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";

/// The CRI version we send in `VersionRequest`.
pub const CRI_VERSION: &str = "v1";

/// Largest message accepted from or sent to the runtime. Listings on a busy
/// node exceed tonic's 4 MiB default; 16 MiB matches the kubelet's limit.
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// How long [`connect`] waits for the socket to accept and speak HTTP/2.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Placeholder authority: the connector ignores it and dials the socket.
const DUMMY_URI: &str = "http://[::]:50051";

/// Clients for both CRI services, sharing one HTTP/2 connection. Cloning is
/// cheap and clones share the connection.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Pod sandbox and container lifecycle, `Status`, `Version`.
    pub runtime: RuntimeServiceClient<Channel>,
    /// Image pull, list, status and removal.
    pub image: ImageServiceClient<Channel>,
}

impl Clients {
    /// Wraps an existing channel, raising the message size limits to
    /// [`MAX_MESSAGE_SIZE`].
    #[must_use]
    pub fn from_channel(channel: Channel) -> Self {
        Self {
            runtime: RuntimeServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
            image: ImageServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
        }
    }
}

/// Why [`connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The socket could not be dialled or did not complete the HTTP/2
    /// handshake within [`CONNECT_TIMEOUT`].
    #[error("cannot connect to CRI runtime at {}", path.display())]
    Connect {
        /// The socket we tried.
        path: PathBuf,
        /// The transport failure; its source chain holds the I/O error.
        #[source]
        source: tonic::transport::Error,
    },
}

/// Connects to a CRI runtime listening on the unix socket `socket` and
/// returns clients for both services.
///
/// The connection is made eagerly, so a missing socket or a dead runtime is
/// reported here. Should the runtime restart later, the channel reconnects
/// on the next call.
///
/// # Errors
///
/// [`ConnectError::Connect`] if the socket cannot be reached.
pub async fn connect(socket: &Path) -> Result<Clients, ConnectError> {
    let path = socket.to_path_buf();
    let dial = path.clone();
    let channel = Endpoint::from_static(DUMMY_URI)
        .connect_timeout(CONNECT_TIMEOUT)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let dial = dial.clone();
            async move { UnixStream::connect(dial).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|source| ConnectError::Connect { path, source })?;
    Ok(Clients::from_channel(channel))
}

/// Registry credentials must not end up in logs: show who, never the secret.
impl fmt::Debug for runtime::v1::AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn redacted(secret: &str) -> &'static str {
            if secret.is_empty() { "" } else { "<redacted>" }
        }
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("auth", &redacted(&self.auth))
            .field("server_address", &self.server_address)
            .field("identity_token", &redacted(&self.identity_token))
            .field("registry_token", &redacted(&self.registry_token))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::runtime::v1::AuthConfig;

    #[test]
    fn auth_config_debug_hides_secrets() {
        let auth = AuthConfig {
            username: "alice".into(),
            password: "hunter2".into(),
            auth: "YWxpY2U6aHVudGVyMg==".into(),
            server_address: "registry.example".into(),
            identity_token: String::new(),
            registry_token: "tok".into(),
        };
        let shown = format!("{auth:?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(shown.contains("registry.example"), "{shown}");
        for secret in ["hunter2", "YWxpY2U6aHVudGVyMg==", "tok\""] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
    }
}
