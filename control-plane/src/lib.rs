//! The sluice control plane: a Kubernetes API server over a versioned store, plus the
//! scheduler and controllers, which are ordinary API clients of that server.
#![forbid(unsafe_code)]

pub mod apiserver;
pub mod kubeconfig;
pub mod registry;
pub mod server;
