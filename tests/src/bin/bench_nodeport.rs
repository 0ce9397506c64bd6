//! `cargo xtask bench nodeport`: the north-south programs, in two parts (`--only
//! prog-run,live`, default both).
//!
//! # `prog-run`: ns/packet under `BPF_PROG_RUN`
//!
//! ns/packet of the north-south programs under `BPF_PROG_RUN` with a repeat count (the
//! kernel times the loop), against a no-op program of the same type, no packet generator
//! involved.
//!
//! Paths measured, each for XDP (`sluice_np_xdp`) and tc ingress
//! (`sluice_np_tc_in`):
//! - `noop`: a two-instruction program returning PASS / `TC_ACT_OK` (the
//!   test-run harness itself);
//! - `miss`: a TCP packet to no frontend (parse, conntrack miss, frontend
//!   miss, pass);
//! - `ct-dnat`: a tracked flow, destination rewritten (conntrack hit,
//!   address + port + IPv4 and L4 checksums);
//! - `ct-snat-dnat`: a tracked flow rewritten on both sides;
//! - `new-flow`: the first packet of a flow (frontend, backend choice, two
//!   conntrack inserts, DNAT), one run per distinct flow.
//!
//! A repeated run feeds the program the packet it rewrote on the previous
//! repetition, so the tracked-flow cases use a pair of conntrack entries
//! that translate the packet back and forth: every repetition is a hit and
//! a full rewrite. Each case runs `--prog-run-rounds` times (interleaved); the
//! report gives the median. Everything (pins) is removed on exit.
//!
//! # `live`: requests/s and packets/s through a node namespace
//!
//! Client, node and backend network namespaces joined by veths (see `topology`); a
//! `NodePort` on the node answered by kube-proxy-shaped iptables rules, by the tc programs
//! or by tc + XDP, with 10 and 10,000 Services (`--services`); TCP requests on new
//! connections and UDP echoes from the client namespace (see `traffic`); each variant as a
//! ratio to iptables at the same N, variants interleaved over `--rounds` rounds (rotated
//! order), medians reported (see `live`). Everything (namespaces, pins, rules) is removed on
//! exit, on error and on SIGINT/SIGTERM, and leftovers of a killed run at start.

// A bin's root resolves modules next to itself: these live in `bench_nodeport/`.
#[path = "bench_nodeport/live.rs"]
mod live;
#[path = "bench_nodeport/topology.rs"]
mod topology;
#[path = "bench_nodeport/traffic.rs"]
mod traffic;

use std::{
    net::Ipv4Addr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use clap::Parser;
use sluice_ebpf_common::{
    Be16, Be32, PROTO_TCP,
    nodeport::{
        CT_FLAG_LOCAL, CT_FLAG_SNAT, CtKey, CtValue, EXT_BACKEND_LOCAL, EXT_FLAG_EXTERNAL_IP,
        ExtServiceValue, NODEPORT_TC_OBJECT, NODEPORT_XDP_OBJECT, NP_TC_INGRESS_PROGRAM,
        NP_XDP_PROGRAM, NodePortConfig, ServiceKey,
    },
};
use sluice_node_agent::datapath::{
    NodePortKind, NodePortMaps, NodePortObject, ObjectSource, unpin, unpin_nodeport,
};

/// A part of the benchmark (`--only`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    ProgRun,
    Live,
}

#[derive(Parser)]
struct Args {
    /// Which parts to run (comma-separated; default: both, `prog-run` first).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// prog-run: repetitions per `BPF_PROG_RUN` call.
    #[arg(long, default_value_t = 1_000_000)]
    repeat: u32,
    /// prog-run: interleaved rounds per case (the median is reported).
    #[arg(long, default_value_t = 5)]
    prog_run_rounds: usize,
    /// prog-run: distinct flows for the `new-flow` case (one run each).
    #[arg(long, default_value_t = 20_000)]
    new_flows: u16,
    /// live: interleaved rounds (each runs every variant once per N, in a rotated order);
    /// medians are over rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// live: seconds of each TCP and each UDP run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// live: Service counts (comma-separated, at most 10000 each).
    #[arg(long, value_delimiter = ',', default_value = "10,10000")]
    services: Vec<u32>,
    /// live: which topologies (comma-separated; default both): `routed` (client and
    /// backend on two links of the node), `one-nic` (one bridged segment: the node has one
    /// interface, the only shape where the XDP program forwards itself).
    #[arg(long, value_enum, value_delimiter = ',')]
    topology: Vec<topology::Kind>,
    /// live: which variants (comma-separated; default all: iptables, tc, xdp).
    #[arg(long, value_enum, value_delimiter = ',')]
    variants: Vec<live::Variant>,
    /// live: TCP client threads (a new connection per request).
    #[arg(long, default_value_t = 4)]
    tcp_clients: usize,
    /// live: UDP flows (one socket and thread each).
    #[arg(long, default_value_t = 4)]
    udp_flows: usize,
    /// live: UDP datagrams in flight per flow.
    #[arg(long, default_value_t = 8)]
    udp_window: usize,
    /// live: program the eBPF maps with Maglev tables (the agent's default). The Maglev
    /// map holds `MAGLEV_MAX_ENTRIES` (1,024) tables, fewer than 10,000 Services.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    maglev: bool,
}

impl Args {
    fn runs(&self, part: Part) -> bool {
        self.only.is_empty() || self.only.contains(&part)
    }
}

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const FRONTEND: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const BACKEND: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 5);
const SNAT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// An Ethernet + IPv4 + TCP SYN (checksums are irrelevant to the cost).
fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    frame.extend_from_slice(&[0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, PROTO_TCP, 0, 0]);
    frame.extend_from_slice(&src.0.octets());
    frame.extend_from_slice(&dst.0.octets());
    frame.extend_from_slice(&src.1.to_be_bytes());
    frame.extend_from_slice(&dst.1.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 3, 232, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0]);
    frame
}

fn key(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> CtKey {
    CtKey::new(
        Be32::from_ipv4(src.0),
        Be16::from_host(src.1),
        Be32::from_ipv4(dst.0),
        Be16::from_host(dst.1),
        PROTO_TCP,
    )
}

fn value(addr: Ipv4Addr, port: u16, nat: (Ipv4Addr, u16), flags: u16) -> CtValue {
    CtValue {
        addr: Be32::from_ipv4(addr),
        nat_addr: Be32::from_ipv4(nat.0),
        port: Be16::from_host(port),
        nat_port: Be16::from_host(nat.1),
        flags,
        svc_id: 1,
        // "Seen in the future": never idle, never refreshed (no write per packet).
        last_seen: u64::MAX,
    }
}

// ------------------------------------------------------ the no-op baseline

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_PROG_TYPE_XDP: u32 = 6;

/// Calls `bpf(cmd, attr, size_of(attr))`.
fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> std::io::Result<i64> {
    // SAFETY: `attr` is a zero-initialised, 128-byte, 8-aligned buffer the
    // kernel reads (and for TEST_RUN writes) up to the size we pass; every
    // pointer stored in it points to memory that outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Loads `r0 = retval; exit` as a program of `prog_type`.
fn load_noop(prog_type: u32, retval: u8) -> Result<OwnedFd> {
    // mov64 r0, imm; exit
    let insns: [u64; 2] = [
        u64::from_le_bytes([0xb7, 0, 0, 0, retval, 0, 0, 0]),
        u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),
    ];
    let license = b"GPL\0";
    let mut attr = [0u64; 16];
    // prog_type (u32), insn_cnt (u32) | insns (u64) | license (u64)
    attr[0] = u64::from(prog_type) | (2 << 32);
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    let fd = bpf(BPF_PROG_LOAD, &mut attr).context("BPF_PROG_LOAD of the no-op program")?;
    let fd = i32::try_from(fd)?;
    // SAFETY: BPF_PROG_LOAD returned a new fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `BPF_PROG_TEST_RUN` of `fd` on `packet`, `repeat` times: mean ns per run.
fn run_raw(fd: &OwnedFd, packet: &[u8], repeat: u32) -> Result<u64> {
    let mut out = vec![0u8; packet.len() + 256];
    let mut attr = [0u64; 16];
    // prog_fd, retval | data_size_in, data_size_out | data_in | data_out | repeat, duration
    attr[0] = u64::from(u32::try_from(fd.as_raw_fd())?);
    attr[1] = u64::from(u32::try_from(packet.len())?) | (u64::try_from(out.len())? << 32);
    attr[2] = packet.as_ptr() as u64;
    attr[3] = out.as_mut_ptr() as u64;
    attr[4] = u64::from(repeat);
    bpf(BPF_PROG_TEST_RUN, &mut attr).context("BPF_PROG_TEST_RUN of the no-op program")?;
    Ok(attr[4] >> 32)
}

// ------------------------------------------------------------------- main

/// The directory of the north-south objects: that of `SLUICE_BPF_OBJ` (as `cargo xtask
/// bench` sets it), else `SLUICE_BPF_DIR`, else the workspace's `target/bpf`.
fn object_dir() -> PathBuf {
    if let Some(obj) = std::env::var_os("SLUICE_BPF_OBJ")
        && let Some(dir) = Path::new(&obj).parent()
    {
        return dir.to_owned();
    }
    if let Some(dir) = std::env::var_os("SLUICE_BPF_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bpf")
}

struct Pins(PathBuf);

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = unpin_nodeport(&self.0);
        let _ = unpin(&self.0);
    }
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

/// The median (the mean of the middle two for an even count); 0 for none.
fn median_f64(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        f64::midpoint(values[mid - 1], values[mid])
    } else {
        values[mid]
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !sluice_test_util::is_root() {
        bail!("bench nodeport needs root (it loads eBPF programs and builds network namespaces)");
    }
    if args.runs(Part::ProgRun) {
        prog_run(&args)?;
    }
    if args.runs(Part::Live) {
        live::run(&args)?;
    }
    Ok(())
}

/// Part `prog-run`: ns/packet under `BPF_PROG_RUN` (see the module docs).
fn prog_run(args: &Args) -> Result<()> {
    let dir = object_dir();
    let pins = Pins(PathBuf::from(format!(
        "/sys/fs/bpf/sluice-bench-nodeport-{}",
        std::process::id()
    )));
    let tc = NodePortObject::load(
        ObjectSource::Path(&dir.join(NODEPORT_TC_OBJECT)),
        NodePortKind::Tc,
        &pins.0,
    )
    .with_context(|| format!("loading {}", dir.join(NODEPORT_TC_OBJECT).display()))?;
    let xdp = NodePortObject::load(
        ObjectSource::Path(&dir.join(NODEPORT_XDP_OBJECT)),
        NodePortKind::Xdp,
        &pins.0,
    )?;
    let mut maps = NodePortMaps::open(&pins.0)?;
    maps.set_config(NodePortConfig {
        snat_addr: Be32::from_ipv4(SNAT),
        snat_port_min: 1_024,
        snat_port_max: 65_535,
        flags: 0,
    })?;
    let fe = ServiceKey::frontend(Be32::from_ipv4(FRONTEND), Be16::from_host(80), PROTO_TCP);
    maps.upsert_service(
        fe.with_slot(1),
        ExtServiceValue::backend(
            1,
            Be32::from_ipv4(BACKEND),
            Be16::from_host(8_080),
            EXT_BACKEND_LOCAL,
        ),
    )?;
    maps.upsert_service(fe, ExtServiceValue::frontend(1, EXT_FLAG_EXTERNAL_IP, 1))?;

    // ct-dnat: client:1000 -> frontend:80 <-> client:1000 -> backend:8080.
    let dnat_in = tcp((CLIENT, 1_000), (FRONTEND, 80));
    maps.ct_insert(
        key((CLIENT, 1_000), (FRONTEND, 80)),
        value(BACKEND, 8_080, (Ipv4Addr::UNSPECIFIED, 0), CT_FLAG_LOCAL),
    )?;
    maps.ct_insert(
        key((CLIENT, 1_000), (BACKEND, 8_080)),
        value(FRONTEND, 80, (Ipv4Addr::UNSPECIFIED, 0), CT_FLAG_LOCAL),
    )?;
    // ct-snat-dnat: client:2000 -> frontend:80 <-> snat:40000 -> backend:8080.
    let snat_in = tcp((CLIENT, 2_000), (FRONTEND, 80));
    maps.ct_insert(
        key((CLIENT, 2_000), (FRONTEND, 80)),
        value(BACKEND, 8_080, (SNAT, 40_000), CT_FLAG_SNAT),
    )?;
    maps.ct_insert(
        key((SNAT, 40_000), (BACKEND, 8_080)),
        value(FRONTEND, 80, (CLIENT, 2_000), CT_FLAG_SNAT),
    )?;
    let miss = tcp((CLIENT, 3_000), (Ipv4Addr::new(192, 0, 2, 200), 80));

    let noop_xdp = load_noop(BPF_PROG_TYPE_XDP, 2)?;
    let noop_tc = load_noop(BPF_PROG_TYPE_SCHED_CLS, 0)?;

    let mut rows: Vec<(&str, Vec<u64>, Vec<u64>)> = ["noop", "miss", "ct-dnat", "ct-snat-dnat"]
        .into_iter()
        .map(|case| (case, Vec::new(), Vec::new()))
        .collect();
    for _ in 0..args.prog_run_rounds {
        for (case, xdp_ns, tc_ns) in &mut rows {
            let packet = match *case {
                "ct-dnat" => &dnat_in,
                "ct-snat-dnat" => &snat_in,
                // "noop" and "miss" run on the packet that matches nothing.
                _ => &miss,
            };
            if *case == "noop" {
                xdp_ns.push(run_raw(&noop_xdp, packet, args.repeat)?);
                tc_ns.push(run_raw(&noop_tc, packet, args.repeat)?);
            } else {
                xdp_ns.push(xdp.run(NP_XDP_PROGRAM, packet, args.repeat)?.duration_ns);
                tc_ns.push(
                    tc.run(NP_TC_INGRESS_PROGRAM, packet, args.repeat)?
                        .duration_ns,
                );
            }
        }
    }

    // new-flow: one run per distinct client (address, port), alternating
    // programs so both see the same number of fresh flows.
    let (mut new_xdp, mut new_tc) = (Vec::new(), Vec::new());
    for i in 0..args.new_flows {
        let client = Ipv4Addr::new(100, 64, (i >> 8) as u8, (i & 0xff) as u8);
        let packet = tcp((client, 10_000 + (i % 50_000)), (FRONTEND, 80));
        if i % 2 == 0 {
            new_xdp.push(xdp.run(NP_XDP_PROGRAM, &packet, 1)?.duration_ns);
        } else {
            new_tc.push(tc.run(NP_TC_INGRESS_PROGRAM, &packet, 1)?.duration_ns);
        }
    }
    let stats = maps.stats()?;

    println!(
        "bench nodeport: BPF_PROG_RUN, repeat {} x {} rounds (median ns/packet); new-flow: median of {} single runs per program",
        args.repeat,
        args.prog_run_rounds,
        args.new_flows / 2
    );
    println!("{:<14} {:>8} {:>8}", "case", "xdp", "tc");
    for (case, xdp_ns, tc_ns) in rows {
        println!("{case:<14} {:>8} {:>8}", median(xdp_ns), median(tc_ns));
    }
    println!(
        "{:<14} {:>8} {:>8}",
        "new-flow",
        median(new_xdp),
        median(new_tc)
    );
    println!("counters: {stats:?}");
    Ok(())
}
