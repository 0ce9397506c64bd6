//! The sluice node agent: kubelet over CRI, the eBPF service proxy and the CNI plugin.
//!
//! [`datapath`] is the only module that touches aya and the kernel's BPF
//! objects; everything above it talks to the [`datapath::DatapathOps`] trait,
//! which has an in-memory fake for unit tests.
#![deny(missing_docs)]

pub mod cni;
pub mod datapath;
pub mod dns;
pub mod healthcheck;
pub mod kubelet;
pub mod lbaddr;
pub mod lbctl;
pub mod proxy;
pub mod routes;
pub mod sockets;
