//! North-south load balancing: frontend lookup, conntrack, backend choice,
//! DNAT/SNAT and the reverse translation of replies, for any [`Packet`]
//! (tc or XDP). After Cilium's `lib/nodeport.h` + `lib/conntrack.h`, much
//! smaller: IPv4, TCP/UDP, one SNAT address.
//!
//! - [`ingress`] (tc ingress and XDP of the external interface): a packet of
//!   a tracked flow is translated as its conntrack entry says (original
//!   direction: DNAT to the backend, SNAT when the flow has it; reply of a
//!   source-NATed flow from a remote backend: back to frontend -> client). A new
//!   packet to a frontend gets a backend (flow hash, or the service's Maglev
//!   table), a SNAT port when the backend is remote and the policy is
//!   `Cluster`, two conntrack entries, and the same translation.
//! - [`egress`] (tc egress of the external interface): replies of local
//!   backends get the frontend address back as their source.
//!
//! Everything else passes untouched. Conntrack entries idle longer than
//! their protocol's timeout are ignored (and replaced by the next new flow
//! on the same tuple); the maps are LRU, so the kernel evicts the oldest
//! under pressure. A TCP FIN or RST marks both entries of its flow closing
//! (a 10 s timeout instead of 6 h); a SNAT port whose flow's reply entry is
//! gone or timed out is taken again.

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_ktime_get_ns, maps::lpm_trie::Key};
use sluice_ebpf_common::{
    Be16, Be32, PROTO_TCP,
    nodeport::{
        AffinityKey, AffinityValue, CT_FLAG_CLOSING, CT_FLAG_LOCAL, CT_FLAG_REPLY, CT_FLAG_SNAT,
        CT_REFRESH_NS, CT_TIMEOUT_TCP_CLOSING_NS, CT_TIMEOUT_TCP_NS, CT_TIMEOUT_UDP_NS, CtKey,
        CtValue, EXT_BACKEND_LOCAL, EXT_FLAG_AFFINITY, EXT_FLAG_LOCAL, EXT_FLAG_MAGLEV,
        EXT_FLAG_SOURCE_RANGES, ExtServiceValue, MAGLEV_TABLE_SIZE, MaglevKey, NP_CFG_FIB_REDIRECT,
        NP_STAT_AFFINITY_HIT, NP_STAT_CT_CREATE, NP_STAT_DROP_CT, NP_STAT_DROP_NO_BACKEND,
        NP_STAT_DROP_REWRITE, NP_STAT_DROP_SNAT_EXHAUSTED, NP_STAT_DROP_SOURCE_RANGE,
        NP_STAT_FORWARD, NP_STAT_PASS_UNSUPPORTED, NP_STAT_REPLY, NodeIpKey, NodePortConfig,
        SOURCE_RANGE_SVC_BITS, ServiceKey, SnatKey, SnatValue, SourceRangeKey, flow_hash, reduce,
    },
};

use super::{
    maps::{AFFINITY, CONFIG, CT, EXT_SERVICES, MAGLEV, NODE_IPS, SNAT, SOURCE_RANGES, count},
    packet::{Action, DST, Packet, RewriteError, SRC},
    parse::{DPORT_OFF, Parsed, SPORT_OFF, Tuple, parse},
};

/// How many SNAT ports a new flow tries before it is dropped.
const SNAT_TRIES: u32 = 16;

/// The ingress path (tc ingress, XDP) of the external interface.
#[inline(always)]
pub fn ingress<P: Packet>(pkt: &mut P) -> Action {
    let mut tuple = Tuple::ZERO;
    match parse(pkt.data(), pkt.data_end(), &mut tuple) {
        Parsed::Tuple => {}
        Parsed::Unsupported => {
            count(NP_STAT_PASS_UNSUPPORTED);
            return Action::PASS;
        }
        Parsed::Other => return Action::PASS,
    }
    let now = now();
    let key = CtKey::new(tuple.src, tuple.sport, tuple.dst, tuple.dport, tuple.proto);
    if let Some(entry) = ct_lookup(&key, now, tuple.proto) {
        note_close(&tuple, &key, &entry, now);
        return if entry.flags & CT_FLAG_REPLY == 0 {
            forward(pkt, &tuple, &entry)
        } else {
            reply(pkt, &tuple, &entry, true)
        };
    }
    new_flow(pkt, &tuple, &key, now)
}

/// The egress path (tc egress) of the external interface: replies of local
/// backends are translated back to the frontend; the rest passes.
#[inline(always)]
pub fn egress<P: Packet>(pkt: &mut P) -> Action {
    let mut tuple = Tuple::ZERO;
    if parse(pkt.data(), pkt.data_end(), &mut tuple) != Parsed::Tuple {
        return Action::PASS;
    }
    let key = CtKey::new(tuple.src, tuple.sport, tuple.dst, tuple.dport, tuple.proto);
    let now = now();
    match ct_lookup(&key, now, tuple.proto) {
        Some(entry) if entry.flags & CT_FLAG_REPLY != 0 => {
            note_close(&tuple, &key, &entry, now);
            reply(pkt, &tuple, &entry, false)
        }
        _ => Action::PASS,
    }
}

/// TCP flags FIN and RST.
const TCP_FIN_OR_RST: u8 = 0x01 | 0x04;

/// On a TCP FIN or RST, marks both entries of the flow closing (see
/// [`CT_FLAG_CLOSING`]): the one `key` found and its other direction.
#[inline(always)]
fn note_close(tuple: &Tuple, key: &CtKey, entry: &CtValue, now: u64) {
    if tuple.proto != PROTO_TCP || tuple.tcp_flags & TCP_FIN_OR_RST == 0 {
        return;
    }
    let snat = entry.flags & CT_FLAG_SNAT != 0;
    let other = if entry.flags & CT_FLAG_REPLY == 0 {
        // Seen client -> frontend: the reply comes from the backend to the client or
        // to the SNAT address.
        let (to, to_port) = if snat {
            (entry.nat_addr, entry.nat_port)
        } else {
            (tuple.src, tuple.sport)
        };
        CtKey::new(entry.addr, entry.port, to, to_port, tuple.proto)
    } else {
        // Seen backend -> client (or SNAT address): the original went client -> frontend.
        let (from, from_port) = if snat {
            (entry.nat_addr, entry.nat_port)
        } else {
            (tuple.dst, tuple.dport)
        };
        CtKey::new(from, from_port, entry.addr, entry.port, tuple.proto)
    };
    mark_closing(key, now);
    mark_closing(&other, now);
}

#[inline(always)]
fn mark_closing(key: &CtKey, now: u64) {
    if let Some(ptr) = CT.get_ptr_mut(key) {
        // SAFETY: pointer from a successful lookup, valid for this run; a
        // racing writer can at worst store the same flag or a recent time.
        unsafe {
            (*ptr).flags |= CT_FLAG_CLOSING;
            (*ptr).last_seen = now;
        }
    }
}

#[inline(always)]
fn now() -> u64 {
    // SAFETY: bpf_ktime_get_ns takes no arguments and has no preconditions.
    unsafe { bpf_ktime_get_ns() }
}

/// The live conntrack entry of `key`, refreshing its `last_seen` when stale
/// by more than [`CT_REFRESH_NS`]. An entry idle past its timeout is `None`.
#[inline(always)]
fn ct_lookup(key: &CtKey, now: u64, proto: u8) -> Option<CtValue> {
    let ptr = CT.get_ptr_mut(key)?;
    // SAFETY: the pointer comes from a successful lookup and stays valid for
    // this run (LRU elements are freed after an RCU grace period); the value
    // is copied out.
    let entry = unsafe { *ptr };
    let timeout = if proto != PROTO_TCP {
        CT_TIMEOUT_UDP_NS
    } else if entry.flags & CT_FLAG_CLOSING != 0 {
        CT_TIMEOUT_TCP_CLOSING_NS
    } else {
        CT_TIMEOUT_TCP_NS
    };
    let idle = now.saturating_sub(entry.last_seen);
    if idle > timeout {
        return None;
    }
    if idle > CT_REFRESH_NS {
        // SAFETY: as above; a racing writer can at worst store another
        // recent timestamp.
        unsafe { (*ptr).last_seen = now };
    }
    Some(entry)
}

/// The frontend for a packet to `tuple.dst:dport`: the exact address, else
/// the wildcard `NodePort` when the address is one of this node's.
#[inline(always)]
fn frontend(tuple: &Tuple) -> Option<(ServiceKey, ExtServiceValue)> {
    let exact = ServiceKey::frontend(tuple.dst, tuple.dport, tuple.proto);
    if let Some(value) = EXT_SERVICES.get_ptr(exact) {
        // SAFETY: pointer from a successful lookup, copied out at once.
        return Some((exact, unsafe { *value }));
    }
    NODE_IPS.get_ptr(NodeIpKey { addr: tuple.dst })?;
    let wildcard = ServiceKey::frontend(Be32::from_raw(0), tuple.dport, tuple.proto);
    // SAFETY: pointer from a successful lookup, copied out at once.
    EXT_SERVICES
        .get_ptr(wildcard)
        .map(|value| (wildcard, unsafe { *value }))
}

/// The backend slot (`1..=count`) for a flow with `hash`.
#[inline(always)]
fn choose_slot(fe: &ExtServiceValue, hash: u32) -> Option<u16> {
    if fe.flags & EXT_FLAG_MAGLEV != 0 {
        let table = MAGLEV.get_ptr(MaglevKey {
            svc_id: fe.svc_id,
            pad: 0,
        })?;
        #[expect(clippy::cast_possible_truncation, reason = "the table size fits u32")]
        let index = reduce(hash, MAGLEV_TABLE_SIZE as u32) as usize;
        // SAFETY: pointer from a successful lookup; `index` is below the
        // table's length (`reduce`), so the read is in bounds (and `get`
        // checks again).
        let slot = unsafe { (*table).slots.get(index).copied()? };
        return (slot >= 1 && slot <= fe.count).then_some(slot);
    }
    // `reduce`, not `%`: no division-by-zero panic path, bounds the
    // verifier can follow. `count != 0` was checked by the caller.
    #[expect(clippy::cast_possible_truncation, reason = "below count, a u16")]
    let slot = reduce(hash, u32::from(fe.count)) as u16 + 1;
    Some(slot)
}

/// A new packet: to a frontend? Then choose, track and translate.
#[inline(always)]
fn new_flow<P: Packet>(pkt: &mut P, tuple: &Tuple, key: &CtKey, now: u64) -> Action {
    let Some((fe_key, fe)) = frontend(tuple) else {
        return Action::PASS;
    };
    if fe.count == 0 {
        count(NP_STAT_DROP_NO_BACKEND);
        return Action::DROP;
    }
    if fe.flags & EXT_FLAG_SOURCE_RANGES != 0 && !source_allowed(fe.svc_id, tuple.src) {
        count(NP_STAT_DROP_SOURCE_RANGE);
        return Action::DROP;
    }
    let hash = flow_hash(tuple.src, tuple.sport, tuple.dst, tuple.dport, tuple.proto);
    let affinity_key = AffinityKey {
        client: tuple.src,
        svc_id: fe.svc_id,
        pad: 0,
    };
    let affinity = fe.flags & EXT_FLAG_AFFINITY != 0;
    let sticky = if affinity {
        affinity_backend(&fe_key, &fe, &affinity_key, now)
    } else {
        None
    };
    let (slot, backend) = if let Some(found) = sticky {
        count(NP_STAT_AFFINITY_HIT);
        found
    } else {
        let chosen = choose_slot(&fe, hash).and_then(|slot| {
            // SAFETY: pointer from a successful lookup, copied out at once.
            let value = unsafe { *EXT_SERVICES.get_ptr(fe_key.with_slot(slot))? };
            Some((slot, value))
        });
        let Some(chosen) = chosen else {
            count(NP_STAT_DROP_NO_BACKEND);
            return Action::DROP;
        };
        chosen
    };
    if affinity {
        let value = AffinityValue {
            backend_addr: backend.backend_addr,
            backend_port: backend.backend_port,
            slot,
            last_seen: now,
        };
        // Best effort: without the entry the next flow is hashed again.
        let _ = AFFINITY.insert(affinity_key, value, 0);
    }
    let local = backend.backend_flags & EXT_BACKEND_LOCAL != 0;
    // SAFETY: pointer from a successful lookup of an array entry, copied out.
    let config = CONFIG
        .get_ptr(0)
        .map_or(NodePortConfig::default(), |cfg| unsafe { *cfg });

    let mut entry = CtValue {
        addr: backend.backend_addr,
        nat_addr: Be32::from_raw(0),
        port: backend.backend_port,
        nat_port: Be16::from_raw(0),
        flags: if local { CT_FLAG_LOCAL } else { 0 },
        svc_id: fe.svc_id,
        last_seen: now,
    };
    // The reply comes back to the client, or to the SNAT address:port.
    let mut reply_to = (tuple.src, tuple.sport);
    let snat = !local && fe.flags & EXT_FLAG_LOCAL == 0 && config.snat_addr.raw() != 0;
    if snat {
        let Some(port) = snat_port(&config, tuple, &backend, hash) else {
            count(NP_STAT_DROP_SNAT_EXHAUSTED);
            return Action::DROP;
        };
        entry.flags |= CT_FLAG_SNAT;
        entry.nat_addr = config.snat_addr;
        entry.nat_port = port;
        reply_to = (config.snat_addr, port);
    }
    let reverse_key = CtKey::new(
        backend.backend_addr,
        backend.backend_port,
        reply_to.0,
        reply_to.1,
        tuple.proto,
    );
    let reverse = CtValue {
        addr: tuple.dst,
        nat_addr: if snat { tuple.src } else { Be32::from_raw(0) },
        port: tuple.dport,
        nat_port: if snat { tuple.sport } else { Be16::from_raw(0) },
        flags: entry.flags | CT_FLAG_REPLY,
        svc_id: fe.svc_id,
        last_seen: now,
    };
    // Reply entry first: once the forward entry exists, packets flow.
    if CT.insert(reverse_key, reverse, 0).is_err() || CT.insert(key, entry, 0).is_err() {
        count(NP_STAT_DROP_CT);
        return Action::DROP;
    }
    count(NP_STAT_CT_CREATE);
    forward(pkt, tuple, &entry)
}

/// Whether `client` is inside one of service `svc_id`'s source ranges.
#[inline(always)]
fn source_allowed(svc_id: u16, client: Be32) -> bool {
    let key = Key::new(
        SOURCE_RANGE_SVC_BITS + 32,
        SourceRangeKey {
            svc_id,
            pad: 0,
            addr: client,
        },
    );
    SOURCE_RANGES.get(&key).is_some()
}

/// The client's affinity backend `(slot, value)`, if its entry is younger
/// than the frontend's timeout and the slot still holds that backend.
#[inline(always)]
fn affinity_backend(
    fe_key: &ServiceKey,
    fe: &ExtServiceValue,
    key: &AffinityKey,
    now: u64,
) -> Option<(u16, ExtServiceValue)> {
    // SAFETY: pointer from a successful lookup, copied out at once.
    let entry = unsafe { *AFFINITY.get_ptr(key)? };
    let timeout = u64::from(fe.affinity_timeout_s) * 1_000_000_000;
    if now.saturating_sub(entry.last_seen) > timeout || entry.slot == 0 || entry.slot > fe.count {
        return None;
    }
    // SAFETY: pointer from a successful lookup, copied out at once.
    let value = unsafe { *EXT_SERVICES.get_ptr(fe_key.with_slot(entry.slot))? };
    (value.backend_addr == entry.backend_addr && value.backend_port == entry.backend_port)
        .then_some((entry.slot, value))
}

/// Takes a free SNAT port for a new flow, trying up to [`SNAT_TRIES`] ports
/// from one the flow hash picks.
#[inline(always)]
fn snat_port(
    config: &NodePortConfig,
    tuple: &Tuple,
    backend: &ExtServiceValue,
    hash: u32,
) -> Option<Be16> {
    let min = u32::from(config.snat_port_min);
    let max = u32::from(config.snat_port_max);
    if min == 0 || max < min {
        return None;
    }
    let range = max - min + 1;
    let value = SnatValue {
        client_addr: tuple.src,
        backend_addr: backend.backend_addr,
        client_port: tuple.sport,
        backend_port: backend.backend_port,
        pad: 0,
    };
    let start = reduce(hash, range);
    for i in 0..SNAT_TRIES {
        if i >= range {
            break;
        }
        // start < range and i < range: one subtraction wraps it.
        let mut offset = start + i;
        if offset >= range {
            offset -= range;
        }
        #[expect(
            clippy::cast_possible_truncation,
            reason = "min + offset <= max <= u16::MAX"
        )]
        let port = Be16::from_host((min + offset) as u16);
        let key = SnatKey {
            addr: config.snat_addr,
            port,
            proto: tuple.proto,
            pad: 0,
        };
        if SNAT.insert(key, value, u64::from(BPF_NOEXIST)).is_ok() {
            return Some(port);
        }
        // Taken: free again when its flow's reply entry is gone or timed out.
        if let Some(holder) = SNAT.get_ptr(key) {
            // SAFETY: pointer from a successful lookup, copied out at once.
            let holder = unsafe { *holder };
            let reply = CtKey::new(
                holder.backend_addr,
                holder.backend_port,
                config.snat_addr,
                port,
                tuple.proto,
            );
            if ct_lookup(&reply, now(), tuple.proto).is_none() && SNAT.insert(key, value, 0).is_ok()
            {
                return Some(port);
            }
        }
    }
    None
}

/// Original direction: destination to the backend, source to the SNAT
/// address when the flow has one; then to the stack (local backend) or out
/// through the FIB.
#[inline(always)]
fn forward<P: Packet>(pkt: &mut P, tuple: &Tuple, entry: &CtValue) -> Action {
    if entry.flags & CT_FLAG_LOCAL == 0 && fib_redirect() {
        let src = if entry.flags & CT_FLAG_SNAT != 0 {
            entry.nat_addr
        } else {
            tuple.src
        };
        if !pkt.routable(src.raw(), entry.addr.raw()) {
            // Untouched: the next hook (tc) translates it from the same entry.
            return Action::PASS;
        }
    }
    let rewritten = rewrite_dst(pkt, tuple, entry.addr, entry.port).and_then(|()| {
        if entry.flags & CT_FLAG_SNAT != 0 {
            rewrite_src(pkt, tuple, entry.nat_addr, entry.nat_port)
        } else {
            Ok(())
        }
    });
    if rewritten.is_err() {
        count(NP_STAT_DROP_REWRITE);
        return Action::DROP;
    }
    count(NP_STAT_FORWARD);
    if entry.flags & CT_FLAG_LOCAL != 0 {
        return Action::PASS;
    }
    let src = if entry.flags & CT_FLAG_SNAT != 0 {
        entry.nat_addr
    } else {
        tuple.src
    };
    route(pkt, src, entry.addr)
}

/// Reply direction: source back to the frontend, destination back to the
/// client when the flow was source-NATed. At ingress (a remote backend's reply)
/// the packet goes back out through the FIB; at egress it just continues.
#[inline(always)]
fn reply<P: Packet>(pkt: &mut P, tuple: &Tuple, entry: &CtValue, at_ingress: bool) -> Action {
    let snat = entry.flags & CT_FLAG_SNAT != 0;
    if at_ingress && fib_redirect() {
        let dst = if snat { entry.nat_addr } else { tuple.dst };
        if !pkt.routable(entry.addr.raw(), dst.raw()) {
            return Action::PASS;
        }
    }
    let rewritten = rewrite_src(pkt, tuple, entry.addr, entry.port).and_then(|()| {
        if snat {
            rewrite_dst(pkt, tuple, entry.nat_addr, entry.nat_port)
        } else {
            Ok(())
        }
    });
    if rewritten.is_err() {
        count(NP_STAT_DROP_REWRITE);
        return Action::DROP;
    }
    count(NP_STAT_REPLY);
    if !at_ingress {
        return Action::PASS;
    }
    let dst = if snat { entry.nat_addr } else { tuple.dst };
    route(pkt, entry.addr, dst)
}

/// Whether translated packets leave through the FIB (`NP_CFG_FIB_REDIRECT`).
#[inline(always)]
fn fib_redirect() -> bool {
    // SAFETY: pointer from a successful lookup of an array entry; read once.
    CONFIG
        .get_ptr(0)
        .is_some_and(|cfg| unsafe { (*cfg).flags } & NP_CFG_FIB_REDIRECT != 0)
}

/// Out through the FIB when configured and the lookup succeeds, else the stack.
#[inline(always)]
fn route<P: Packet>(pkt: &mut P, src: Be32, dst: Be32) -> Action {
    if !fib_redirect() {
        return Action::PASS;
    }
    pkt.fib_forward(src.raw(), dst.raw())
}

#[inline(always)]
fn rewrite_dst<P: Packet>(
    pkt: &mut P,
    tuple: &Tuple,
    addr: Be32,
    port: Be16,
) -> Result<(), RewriteError> {
    if addr != tuple.dst {
        pkt.rewrite_addr(tuple, DST, tuple.dst.raw(), addr.raw())?;
    }
    if port != tuple.dport {
        pkt.rewrite_port(tuple, DPORT_OFF, tuple.dport.raw(), port.raw())?;
    }
    Ok(())
}

#[inline(always)]
fn rewrite_src<P: Packet>(
    pkt: &mut P,
    tuple: &Tuple,
    addr: Be32,
    port: Be16,
) -> Result<(), RewriteError> {
    if addr != tuple.src {
        pkt.rewrite_addr(tuple, SRC, tuple.src.raw(), addr.raw())?;
    }
    if port != tuple.sport {
        pkt.rewrite_port(tuple, SPORT_OFF, tuple.sport.raw(), port.raw())?;
    }
    Ok(())
}
