//! Kubernetes value types shared by the control plane and the node agent: resource
//! quantities, IPv4 CIDRs, and values written the way the Go API server writes them.
//!
//! [`quantity`] parses resource quantities exactly (integer arithmetic, upstream's
//! suffixes and rounding). [`cidr`] parses IPv4 CIDRs into [`Ipv4Net`] (from the `ipnet`
//! crate, re-exported so every user names the same type) and holds the address
//! arithmetic more than one caller needs. Policies such as the longest prefix a range may
//! have stay with the caller that has them.
//!
//! [`gojson`] writes a `serde_json::Value` byte for byte as Go's `encoding/json` does
//! (sorted keys, HTML-safe escapes, Go's float layout), and [`gofmt`] holds Go's
//! `%q` and `%v` renderings of strings and numbers; the apply (server-side apply) and
//! structural (CRD schema) crates both print through them, so their output agrees
//! with each other and with upstream.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cidr;
pub mod gofmt;
pub mod gojson;
pub mod quantity;

pub use ipnet::Ipv4Net;
