//! sluice's eBPF programs; built for the BPF target by `cargo xtask build-ebpf`.
//!
//! The library holds what every object shares: the map definitions (names and
//! layouts come from `sluice-ebpf-common`) and the load-balancing logic. Each
//! binary in `src/bin/` is one attach point with thin entry points, after
//! Cilium's `bpf_sock.c` + `lib/lb.h` split.
//!
//! Maps are pinned by name (`PinningType::ByName`): userspace loads the object
//! with a per-node pin directory, so an agent restart reuses the same maps and
//! drops no traffic, and several objects share one set of maps.
#![no_std]

pub mod lb;
pub mod maps;
