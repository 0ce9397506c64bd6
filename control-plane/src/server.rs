//! Assembly: open the store, serve the API on a socket, run the compactor, the scheduler
//! and the controllers (as HTTP clients of the same server).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sluice_store::{Embedded, Store};

use crate::apiserver::{self, ApiServer};

/// Everything the control plane needs to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// Directory of the embedded store.
    pub data_dir: PathBuf,
    /// Address to serve the API on.
    pub listen: SocketAddr,
    /// Where to write a kubeconfig for clients (optional).
    pub kubeconfig_out: Option<PathBuf>,
    /// API server settings.
    pub api: apiserver::Config,
    /// How often the store is compacted.
    pub compaction_interval: Duration,
    /// Run the scheduler and controllers in this process.
    pub controllers: Option<sluice_controllers::Config>,
}

/// Errors starting the control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store could not be opened.
    #[error("opening the store in {dir}: {source}")]
    Store {
        /// The directory.
        dir: String,
        /// Cause.
        #[source]
        source: sluice_store::StoreError,
    },
    /// Bootstrapping the API objects failed.
    #[error("bootstrapping the API server: {0}")]
    Bootstrap(String),
    /// Socket or file trouble.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Building the in-process client failed.
    #[error("building the controllers' client: {0}")]
    Client(String),
}

/// A running control plane.
pub struct Running {
    /// The address the API is served on.
    pub addr: SocketAddr,
    /// The API server (for in-process tests).
    pub server: Arc<ApiServer>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stop serving and stop every background task.
    pub fn shutdown(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Start everything; returns once the API is accepting connections.
pub async fn start(opts: Options) -> Result<Running, Error> {
    let store: Arc<dyn Store> =
        Arc::new(
            Embedded::open(&opts.data_dir).map_err(|source| Error::Store {
                dir: opts.data_dir.display().to_string(),
                source,
            })?,
        );
    start_with_store(opts, store).await
}

/// Start over a given store (tests use this with other backends).
pub async fn start_with_store(opts: Options, store: Arc<dyn Store>) -> Result<Running, Error> {
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| Error::Io {
            context: format!("binding {}", opts.listen),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Io {
        context: "local address".into(),
        source,
    })?;
    let mut api = opts.api.clone();
    api.advertise = addr;
    let server = ApiServer::new(store, api)
        .await
        .map_err(|e| Error::Bootstrap(e.message))?;
    let mut tasks = Vec::new();
    let router = server.clone().router();
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "API server stopped");
        }
    }));
    tasks.push(tokio::spawn(
        server.clone().run_compactor(opts.compaction_interval),
    ));
    let url = format!("http://{addr}");
    if let Some(path) = &opts.kubeconfig_out {
        crate::kubeconfig::write(path, &url).map_err(|source| Error::Io {
            context: format!("writing kubeconfig {}", path.display()),
            source,
        })?;
    }
    if let Some(cfg) = opts.controllers.clone() {
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| Error::Client(e.to_string()))?;
        let client = kube::Client::try_from(kube::Config::new(uri))
            .map_err(|e| Error::Client(e.to_string()))?;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = Box::pin(sluice_controllers::run(client, cfg)).await {
                tracing::error!(error = %e, "controllers stopped");
            }
        }));
    }
    tracing::info!(%addr, "API server listening");
    Ok(Running {
        addr,
        server,
        tasks,
    })
}
