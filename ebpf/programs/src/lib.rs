//! sluice's eBPF programs; built for the BPF target by `cargo xtask build-ebpf`.
//!
//! The library holds what every object shares: the map definitions (names and
//! layouts come from `sluice-ebpf-common`) and the load-balancing logic. Each
//! binary in `src/bin/` is one attach point with thin entry points, after
//! Cilium's `bpf_sock.c` + `lib/lb.h` split.
//!
//! The north-south programs (`sluice-nodeport`, `sluice-nodeport-xdp`) do
//! not use this library: their maps and logic live in `src/nodeport.rs`
//! and `src/nodeport/`, which each of their binaries includes as a module.
//! Every `#[map]` static a binary links ends up in its object (and is
//! created and pinned at load), so keeping the two sets apart keeps the
//! socket-LB object free of conntrack maps and the tc/XDP objects free of
//! the socket maps.
//!
//! Maps are pinned by name (`PinningType::ByName`): userspace loads the object
//! with a per-node pin directory, so an agent restart reuses the same maps and
//! drops no traffic, and several objects share one set of maps.
//!
//! Logging (`aya-log-ebpf`) is for rare paths only, never per packet at
//! info: records go through the `AYA_LOGS` ring buffer (one per loaded
//! object, not pinned) to the node agent, which logs them with target
//! [`LOG_TARGET`]. Userspace sets the `AYA_LOG_LEVEL` global at load time,
//! so a level it does not want is dead code the verifier drops.
#![allow(
    clippy::inline_always,
    reason = "BPF-to-BPF calls cost verifier state and stack; the LB helpers are small and run once per connect, so they are inlined into each entry point as Cilium's __always_inline helpers are"
)]
#![no_std]

/// The `log` target every record of these programs carries
/// (`RUST_LOG=sluice_ebpf=debug` shows them all). Must equal
/// `sluice_node_agent::datapath::BPF_LOG_TARGET`; the node agent's kernel
/// test checks a record's target against it.
pub const LOG_TARGET: &str = "sluice_ebpf";

pub mod lb;
pub mod maps;
