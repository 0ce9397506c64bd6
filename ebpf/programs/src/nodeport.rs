//! North-south datapath shared by the tc object (`src/bin/nodeport.rs`) and
//! the XDP object (`src/bin/nodeport_xdp.rs`), each of which includes this
//! file as a module (`#[path]`), so neither object carries the socket-LB
//! maps of the library (see the library's docs).
//!
//! - [`parse`]: Ethernet + IPv4 + TCP/UDP with direct packet access;
//! - [`packet`]: the [`packet::Packet`] context abstraction (tc: store and
//!   checksum helpers; XDP: pointers and [`csum`]);
//! - [`csum`]: incremental checksum updates (RFC 1624);
//! - [`maps`]: the maps (layouts from `sluice_ebpf_common::nodeport`);
//! - [`nat`]: frontend lookup, conntrack, backend choice, DNAT/SNAT and
//!   the reverse translation.
#![allow(
    clippy::inline_always,
    reason = "BPF-to-BPF calls cost verifier state and stack; the per-packet helpers are small and inlined into each entry point, as Cilium's __always_inline helpers are"
)]
#![allow(
    dead_code,
    reason = "each object uses a different subset (the XDP object has no egress path)"
)]

#[path = "nodeport/csum.rs"]
pub mod csum;
#[path = "nodeport/maps.rs"]
pub mod maps;
#[path = "nodeport/nat.rs"]
pub mod nat;
#[path = "nodeport/packet.rs"]
pub mod packet;
#[path = "nodeport/parse.rs"]
pub mod parse;
