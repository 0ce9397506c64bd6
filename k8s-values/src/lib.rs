//! Kubernetes value types shared by the control plane and the node agent: resource
//! quantities and IPv4 CIDRs.
//!
//! [`quantity`] parses resource quantities exactly (integer arithmetic, upstream's
//! suffixes and rounding). [`cidr`] parses IPv4 CIDRs into [`Ipv4Net`] (from the `ipnet`
//! crate, re-exported so every user names the same type) and holds the address
//! arithmetic more than one caller needs. Policies such as the longest prefix a range may
//! have stay with the caller that has them.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cidr;
pub mod quantity;

pub use ipnet::Ipv4Net;
