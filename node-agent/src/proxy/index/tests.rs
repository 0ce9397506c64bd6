use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rand::{Rng, SeedableRng};

use super::{DesiredIndex, ServiceRef, service_ref};
use crate::proxy::desired::{Desired, Frontend, desired};
use crate::proxy::fixtures::{service, slice};

/// The API objects as the reflector stores would hold them.
#[derive(Default)]
struct Stores {
    services: BTreeMap<ServiceRef, Service>,
    /// By `(namespace, slice name)`.
    slices: BTreeMap<(String, String), EndpointSlice>,
}

impl Stores {
    /// Recomputes `dirty` in `index` from the stores, as `proxy::run` does.
    fn recompute(
        &self,
        index: &mut DesiredIndex,
        dirty: &BTreeSet<ServiceRef>,
        changed: &mut BTreeSet<Frontend>,
    ) {
        for id in dirty {
            let own: Vec<&EndpointSlice> = index
                .slice_names(id)
                .filter_map(|name| self.slices.get(&(id.0.clone(), name.to_owned())))
                .collect();
            let own: Vec<EndpointSlice> = own.into_iter().cloned().collect();
            let own: Vec<&EndpointSlice> = own.iter().collect();
            index.update_service(id, self.services.get(id), &own, changed);
        }
    }

    fn full(&self, node_local: &[(String, String, Ipv4Addr)]) -> Desired {
        let services: Vec<&Service> = self.services.values().collect();
        let slices: Vec<&EndpointSlice> = self.slices.values().collect();
        let mut d = desired(&services, &slices);
        for (namespace, name, addr) in node_local {
            d.serve_locally(namespace, name, *addr);
        }
        d
    }
}

fn changed_between(before: &Desired, after: &Desired) -> BTreeSet<Frontend> {
    let keys: BTreeSet<Frontend> = before
        .frontends
        .keys()
        .chain(after.frontends.keys())
        .copied()
        .collect();
    keys.into_iter()
        .filter(|f| before.frontends.get(f) != after.frontends.get(f))
        .collect()
}

const NAMESPACES: [&str; 2] = ["default", "shop"];

/// A random Service `svc-<n>`: its VIP collides with other Services' on
/// purpose (the claim rule decides), ports named or not, TCP/UDP/SCTP.
fn random_service(rng: &mut rand::rngs::StdRng, namespace: &str, n: u8) -> Service {
    let vip = format!("10.96.0.{}", rng.random_range(1..6));
    let mut ports: Vec<(&str, i32, &str)> = Vec::new();
    if rng.random_bool(0.8) {
        ports.push(("", 80, "TCP"));
    }
    if rng.random_bool(0.4) {
        ports.push(("dns", 53, ["UDP", "TCP", "SCTP"][rng.random_range(0..3)]));
    }
    let vip = if rng.random_bool(0.1) {
        "None".to_owned()
    } else {
        vip
    };
    service(namespace, &format!("svc-{n}"), &vip, &ports)
}

fn random_slice(
    rng: &mut rand::rngs::StdRng,
    namespace: &str,
    owner: u8,
    name: &str,
) -> EndpointSlice {
    let mut endpoints: Vec<(String, Option<bool>)> = Vec::new();
    for _ in 0..rng.random_range(0..4) {
        let ready = [None, Some(true), Some(false)][rng.random_range(0..3)];
        endpoints.push((format!("10.244.0.{}", rng.random_range(1..6)), ready));
    }
    let endpoints: Vec<(&str, Option<bool>)> =
        endpoints.iter().map(|(a, r)| (a.as_str(), *r)).collect();
    slice(
        namespace,
        &format!("svc-{owner}"),
        name,
        &[("", 8080, "TCP"), ("dns", 5353, "UDP")],
        &endpoints,
    )
}

#[test]
fn incremental_index_equals_desired_over_random_event_sequences() {
    let node_local = vec![(
        "default".to_owned(),
        "svc-1".to_owned(),
        Ipv4Addr::new(10, 0, 0, 1),
    )];
    for seed in 0..60 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut stores = Stores::default();
        let mut index = DesiredIndex::new(node_local.clone());
        for step in 0..60 {
            let before = index.desired().clone();
            let namespace = NAMESPACES[rng.random_range(0..2)];
            let mut dirty: BTreeSet<ServiceRef> = BTreeSet::new();
            match rng.random_range(0..5) {
                // Add or update a Service.
                0 | 1 => {
                    let n = rng.random_range(0..4);
                    let svc = random_service(&mut rng, namespace, n);
                    dirty.insert(service_ref(&svc));
                    stores.services.insert(service_ref(&svc), svc);
                }
                // Delete a Service (its slices stay).
                2 => {
                    let id = (
                        namespace.to_owned(),
                        format!("svc-{}", rng.random_range(0..4)),
                    );
                    if let Some(svc) = stores.services.remove(&id) {
                        dirty.insert(service_ref(&svc));
                    }
                }
                // Add or update a slice, possibly moving it to another Service.
                3 => {
                    let name = format!("slice-{}", rng.random_range(0..5));
                    let owner = rng.random_range(0..4);
                    let s = random_slice(&mut rng, namespace, owner, &name);
                    dirty.extend(index.slice_applied(&s));
                    stores.slices.insert((namespace.to_owned(), name), s);
                }
                // Delete a slice.
                _ => {
                    let key = (
                        namespace.to_owned(),
                        format!("slice-{}", rng.random_range(0..5)),
                    );
                    if let Some(s) = stores.slices.remove(&key) {
                        dirty.extend(index.slice_deleted(&s));
                    }
                }
            }
            let mut changed = BTreeSet::new();
            stores.recompute(&mut index, &dirty, &mut changed);
            let want = stores.full(&node_local);
            assert_eq!(
                index.desired(),
                &want,
                "seed {seed} step {step}: incremental desired state differs"
            );
            assert_eq!(
                changed,
                changed_between(&before, &want),
                "seed {seed} step {step}: changed frontends misreported"
            );
        }
        // A rebuild from the same stores changes nothing.
        let before = index.desired().clone();
        let services: Vec<&Service> = stores.services.values().collect();
        let slices: Vec<&EndpointSlice> = stores.slices.values().collect();
        assert!(index.rebuild(&services, &slices).is_empty(), "seed {seed}");
        assert_eq!(index.desired(), &before);
    }
}

#[test]
fn a_slice_moving_to_another_service_dirties_both_and_a_deleted_one_its_owner() {
    let mut index = DesiredIndex::default();
    let web = |n| ("default".to_owned(), format!("web{n}"));
    let s = slice("default", "web1", "s", &[("", 80, "TCP")], &[]);
    assert_eq!(index.slice_applied(&s), vec![web(1)]);
    assert_eq!(index.slice_names(&web(1)).collect::<Vec<_>>(), ["s"]);
    let moved = slice("default", "web2", "s", &[("", 80, "TCP")], &[]);
    let mut dirty = index.slice_applied(&moved);
    dirty.sort();
    assert_eq!(dirty, vec![web(1), web(2)]);
    assert_eq!(index.slice_names(&web(1)).count(), 0);
    assert_eq!(index.slice_deleted(&moved), vec![web(2)]);
    assert_eq!(index.slice_names(&web(2)).count(), 0);
    // A deletion the index never saw still names the label's owner.
    assert_eq!(index.slice_deleted(&s), vec![web(1)]);
}

#[test]
fn a_rebuild_reports_what_changed_against_the_previous_state() {
    let mut index = DesiredIndex::default();
    let services = [
        service("default", "web", "10.96.0.10", &[("", 80, "TCP")]),
        service("default", "api", "10.96.0.11", &[("", 80, "TCP")]),
    ];
    let slices = [slice(
        "default",
        "web",
        "web-a",
        &[("", 8080, "TCP")],
        &[("10.244.0.5", None)],
    )];
    assert_eq!(index.rebuild(&services, &slices).len(), 2);
    assert_eq!(index.desired(), &desired(&services, &slices));
    // A re-list in which api is gone and web lost its slice.
    let changed = index.rebuild(&services[..1], &[] as &[EndpointSlice]);
    assert_eq!(changed.len(), 2);
    assert_eq!(
        index.desired(),
        &desired(&services[..1], &[] as &[EndpointSlice])
    );
}
