//! Maps of the north-south (tc/XDP) programs. Names and layouts come from
//! `sluice_ebpf_common::nodeport`; the `name` strings must equal its consts
//! (`EXT_SERVICES_MAP`, ...), which the node agent's tests check.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray},
};
use sluice_ebpf_common::nodeport::{
    AFFINITY_MAX_ENTRIES, AffinityKey, AffinityValue, CT_MAX_ENTRIES, CtKey, CtValue,
    EXT_SERVICES_MAX_ENTRIES, ExtServiceValue, MAGLEV_MAX_ENTRIES, MaglevKey, MaglevValue,
    NODE_IPS_MAX_ENTRIES, NP_STATS_LEN, NodeIpKey, NodeIpValue, NodePortConfig, SNAT_MAX_ENTRIES,
    SOURCE_RANGES_MAX_ENTRIES, ServiceKey, SnatKey, SnatValue, SourceRangeKey,
};

/// North-south frontends (slot 0) and their backend slots; written by userspace.
#[map(name = "sluice_extsvc_v1")]
pub static EXT_SERVICES: HashMap<ServiceKey, ExtServiceValue> =
    HashMap::pinned(EXT_SERVICES_MAX_ENTRIES, 0);

/// This node's addresses (where a wildcard `NodePort` answers).
#[map(name = "sluice_nodeip_v1")]
pub static NODE_IPS: HashMap<NodeIpKey, NodeIpValue> = HashMap::pinned(NODE_IPS_MAX_ENTRIES, 0);

/// SNAT address, port range and flags (one entry).
#[map(name = "sluice_npcfg_v1")]
pub static CONFIG: Array<NodePortConfig> = Array::pinned(1, 0);

/// Connection tracking: both directions of every translated flow.
#[map(name = "sluice_ct_v1")]
pub static CT: LruHashMap<CtKey, CtValue> = LruHashMap::pinned(CT_MAX_ENTRIES, 0);

/// SNAT ports in use: `{node address, port, proto}` -> the flow.
#[map(name = "sluice_snat_v1")]
pub static SNAT: LruHashMap<SnatKey, SnatValue> = LruHashMap::pinned(SNAT_MAX_ENTRIES, 0);

/// Per-CPU counters, indexed by `NP_STAT_*`.
#[map(name = "sluice_npstat_v1")]
pub static STATS: PerCpuArray<u64> = PerCpuArray::pinned(NP_STATS_LEN, 0);

/// Maglev tables by service id; written by userspace.
#[map(name = "sluice_maglev_v1")]
pub static MAGLEV: HashMap<MaglevKey, MaglevValue> = HashMap::pinned(MAGLEV_MAX_ENTRIES, 0);

/// `loadBalancerSourceRanges`: `{svc_id, prefix}` -> 1; written by userspace.
/// LPM tries must be created with `BPF_F_NO_PREALLOC` (1).
#[map(name = "sluice_srcrange_v1")]
pub static SOURCE_RANGES: LpmTrie<SourceRangeKey, u32> =
    LpmTrie::pinned(SOURCE_RANGES_MAX_ENTRIES, 1);

/// `sessionAffinity: ClientIP`: `{client, svc_id}` -> backend, last use.
#[map(name = "sluice_affinity_v1")]
pub static AFFINITY: LruHashMap<AffinityKey, AffinityValue> =
    LruHashMap::pinned(AFFINITY_MAX_ENTRIES, 0);

/// Adds one to counter `index` (`NP_STAT_*`) of this CPU.
#[inline(always)]
pub fn count(index: u32) {
    if let Some(counter) = STATS.get_ptr_mut(index) {
        // SAFETY: the pointer comes from a successful lookup of this CPU's
        // slot of a per-CPU array; nothing else writes it while this
        // program runs on this CPU.
        unsafe { *counter += 1 };
    }
}
