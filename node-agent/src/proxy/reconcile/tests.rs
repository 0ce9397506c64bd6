use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use sluice_ebpf_common::{RevNatKey, RevNatValue};

use super::{IdAllocator, Reconciler, Stats};
use crate::datapath::{
    BackendKey, BackendValue, Be16, Be32, DatapathError, DatapathOps, FakeDatapath, ServiceKey,
    ServiceValue,
};
use crate::proxy::desired::{Backend, Desired, Frontend, FrontendSpec, Protocol, ServicePortName};
use crate::proxy::fixtures::{service, slice};

// ---- helpers ---------------------------------------------------------------

fn fe(vip: &str, port: u16, protocol: Protocol) -> Frontend {
    Frontend {
        vip: vip.parse().unwrap(),
        port,
        protocol,
    }
}

fn be(addr: &str, port: u16) -> Backend {
    Backend {
        addr: addr.parse::<Ipv4Addr>().unwrap(),
        port,
    }
}

/// A desired state from `(frontend, service name, backends)`, built the way
/// kernel tests and benchmarks build theirs.
fn state(frontends: &[(Frontend, &str, &[Backend])]) -> Desired {
    let mut desired = Desired::default();
    for (frontend, name, backends) in frontends {
        desired.insert(
            *frontend,
            FrontendSpec::new(
                ServicePortName::new("default", name, ""),
                backends.iter().copied(),
            ),
        );
    }
    desired
}

fn proto(number: u8) -> &'static str {
    Protocol::from_number(number).map_or("?", |p| match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    })
}

/// Every map as sorted text lines (golden-style dump).
fn dump<D: DatapathOps + ?Sized>(dp: &D) -> Vec<String> {
    let mut lines = Vec::new();
    for (k, v) in dp.services().unwrap() {
        let fe = format!(
            "{}:{}/{}",
            k.vip.to_ipv4(),
            k.port.to_host(),
            proto(k.proto)
        );
        if k.slot == 0 {
            lines.push(format!(
                "svc {fe} #0 count={} rev={}",
                v.count, v.rev_nat_id
            ));
        } else {
            lines.push(format!(
                "svc {fe} #{} backend={} rev={}",
                k.slot, v.backend_id, v.rev_nat_id
            ));
        }
    }
    for (k, v) in dp.backends().unwrap() {
        lines.push(format!(
            "be {} {}:{}/{} flags={}",
            k.id,
            v.addr.to_ipv4(),
            v.port.to_host(),
            proto(v.proto),
            v.flags
        ));
    }
    for (k, v) in dp.rev_nats().unwrap() {
        lines.push(format!(
            "rev {} {}:{}",
            k.id,
            v.vip.to_ipv4(),
            v.port.to_host()
        ));
    }
    lines
}

fn assert_dump<D: DatapathOps + ?Sized>(dp: &D, expected: &[&str]) {
    let got = dump(dp);
    assert_eq!(
        got,
        expected.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
        "\ngot:\n{}\n",
        got.join("\n")
    );
}

/// Checks, after every single write, that no connect could see a dangling
/// reference: every frontend's slots `1..=count` exist and name a backend in
/// the backends map, and its reverse-NAT id is in the reverse-NAT map.
#[derive(Default, Clone)]
struct Checked {
    inner: FakeDatapath,
    writes: usize,
    /// Whole-map reads (`services()`, `backends()`, `rev_nats()`).
    reads: std::cell::Cell<usize>,
    /// Frontends (slot 0 keys) whose entries were written or removed.
    touched: BTreeSet<ServiceKey>,
}

impl Checked {
    fn check(&self, after: &str) {
        let services: std::collections::BTreeMap<_, _> =
            self.inner.services().unwrap().into_iter().collect();
        let backends: BTreeSet<u32> = self
            .inner
            .backends()
            .unwrap()
            .iter()
            .map(|(k, _)| k.id)
            .collect();
        let rev_nats: BTreeSet<u16> = self
            .inner
            .rev_nats()
            .unwrap()
            .iter()
            .map(|(k, _)| k.id)
            .collect();
        for (key, value) in services.iter().filter(|(k, _)| k.slot == 0) {
            assert!(
                rev_nats.contains(&value.rev_nat_id),
                "after {after}: frontend {key:?} names missing rev-nat {}",
                value.rev_nat_id
            );
            for slot in 1..=value.count {
                let slot_value = services
                    .get(&key.with_slot(slot))
                    .unwrap_or_else(|| panic!("after {after}: {key:?} slot {slot} missing"));
                assert!(
                    backends.contains(&slot_value.backend_id),
                    "after {after}: {key:?} slot {slot} names missing backend {}",
                    slot_value.backend_id
                );
            }
        }
    }
}

impl DatapathOps for Checked {
    fn upsert_service(
        &mut self,
        key: ServiceKey,
        value: ServiceValue,
    ) -> Result<(), DatapathError> {
        self.inner.upsert_service(key, value)?;
        self.writes += 1;
        self.touched.insert(key.with_slot(0));
        self.check(&format!("upsert_service {key:?}"));
        Ok(())
    }
    fn remove_service(&mut self, key: &ServiceKey) -> Result<(), DatapathError> {
        self.inner.remove_service(key)?;
        self.writes += 1;
        self.touched.insert(key.with_slot(0));
        self.check(&format!("remove_service {key:?}"));
        Ok(())
    }
    fn upsert_backend(
        &mut self,
        key: BackendKey,
        value: BackendValue,
    ) -> Result<(), DatapathError> {
        self.inner.upsert_backend(key, value)?;
        self.writes += 1;
        self.check(&format!("upsert_backend {key:?}"));
        Ok(())
    }
    fn remove_backend(&mut self, key: &BackendKey) -> Result<(), DatapathError> {
        self.inner.remove_backend(key)?;
        self.writes += 1;
        self.check(&format!("remove_backend {key:?}"));
        Ok(())
    }
    fn services(&self) -> Result<Vec<(ServiceKey, ServiceValue)>, DatapathError> {
        self.reads.set(self.reads.get() + 1);
        self.inner.services()
    }
    fn backends(&self) -> Result<Vec<(BackendKey, BackendValue)>, DatapathError> {
        self.reads.set(self.reads.get() + 1);
        self.inner.backends()
    }
    fn upsert_rev_nat(&mut self, key: RevNatKey, value: RevNatValue) -> Result<(), DatapathError> {
        self.inner.upsert_rev_nat(key, value)?;
        self.writes += 1;
        self.check(&format!("upsert_rev_nat {key:?}"));
        Ok(())
    }
    fn remove_rev_nat(&mut self, key: &RevNatKey) -> Result<(), DatapathError> {
        self.inner.remove_rev_nat(key)?;
        self.writes += 1;
        self.check(&format!("remove_rev_nat {key:?}"));
        Ok(())
    }
    fn rev_nats(&self) -> Result<Vec<(RevNatKey, RevNatValue)>, DatapathError> {
        self.reads.set(self.reads.get() + 1);
        self.inner.rev_nats()
    }
}

fn web() -> Frontend {
    fe("10.96.0.10", 80, Protocol::Tcp)
}
fn dns() -> Frontend {
    fe("10.96.0.53", 53, Protocol::Udp)
}

// ---- tests -----------------------------------------------------------------

#[test]
fn first_apply_writes_the_expected_maps_from_api_objects() {
    let services = [
        service(
            "default",
            "web",
            "10.96.0.10",
            &[("http", 80, "TCP"), ("metrics", 9100, "TCP")],
        ),
        service("kube-system", "dns", "10.96.0.53", &[("dns", 53, "UDP")]),
        service("default", "empty", "10.96.0.99", &[("", 80, "TCP")]),
    ];
    let slices = [
        slice(
            "default",
            "web",
            "web-a",
            &[("http", 8080, "TCP"), ("metrics", 19100, "TCP")],
            &[
                ("10.244.0.5", Some(true)),
                ("10.244.0.6", None),
                ("10.244.0.7", Some(false)),
            ],
        ),
        slice(
            "kube-system",
            "dns",
            "dns-a",
            &[("dns", 53, "UDP")],
            &[("10.244.0.5", None)],
        ),
    ];
    let desired = crate::proxy::desired(&services, &slices);
    let mut dp = Checked::default();
    let stats = Reconciler::new().apply(&desired, &mut dp).unwrap();
    assert_dump(
        &dp,
        &[
            "svc 10.96.0.10:80/TCP #0 count=2 rev=1",
            "svc 10.96.0.10:80/TCP #1 backend=1 rev=1",
            "svc 10.96.0.10:80/TCP #2 backend=2 rev=1",
            "svc 10.96.0.10:9100/TCP #0 count=2 rev=2",
            "svc 10.96.0.10:9100/TCP #1 backend=3 rev=2",
            "svc 10.96.0.10:9100/TCP #2 backend=4 rev=2",
            "svc 10.96.0.53:53/UDP #0 count=1 rev=3",
            "svc 10.96.0.53:53/UDP #1 backend=5 rev=3",
            "svc 10.96.0.99:80/TCP #0 count=0 rev=4",
            "be 1 10.244.0.5:8080/TCP flags=0",
            "be 2 10.244.0.6:8080/TCP flags=0",
            "be 3 10.244.0.5:19100/TCP flags=0",
            "be 4 10.244.0.6:19100/TCP flags=0",
            "be 5 10.244.0.5:53/UDP flags=0",
            "rev 1 10.96.0.10:80",
            "rev 2 10.96.0.10:9100",
            "rev 3 10.96.0.53:53",
            "rev 4 10.96.0.99:80",
        ],
    );
    assert_eq!(
        stats,
        Stats {
            frontends_added: 4,
            slots_written: 5,
            backends_written: 5,
            rev_nats_written: 4,
            frontends_changed: 4,
            ..Stats::default()
        }
    );
    assert_eq!(stats.writes(), dp.writes);
}

#[test]
fn second_apply_of_the_same_state_writes_nothing() {
    let desired = state(&[
        (
            web(),
            "web",
            &[be("10.244.0.5", 8080), be("10.244.0.6", 8080)],
        ),
        (dns(), "dns", &[be("10.244.0.5", 53)]),
        (fe("10.96.0.99", 80, Protocol::Tcp), "empty", &[]),
    ]);
    let mut dp = Checked::default();
    let mut reconciler = Reconciler::new();
    let first = reconciler.apply(&desired, &mut dp).unwrap();
    assert_eq!(first.writes(), dp.writes);
    let before = dump(&dp);
    let second = reconciler.apply(&desired, &mut dp).unwrap();
    assert_eq!(second, Stats::default());
    assert!(second.is_empty());
    assert_eq!(dp.writes, first.writes());
    assert_eq!(dump(&dp), before);
    // A fresh reconciler (an agent restart) writes nothing either.
    assert!(
        Reconciler::new()
            .apply(&desired, &mut dp)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn scaling_two_to_one_removes_the_slot_and_the_unreferenced_backend() {
    let mut dp = Checked::default();
    let mut reconciler = Reconciler::new();
    let two = state(&[(
        web(),
        "web",
        &[be("10.244.0.5", 8080), be("10.244.0.6", 8080)],
    )]);
    reconciler.apply(&two, &mut dp).unwrap();
    // The backend in slot 1 goes; the one in slot 2 moves down.
    let one = state(&[(web(), "web", &[be("10.244.0.6", 8080)])]);
    let stats = reconciler.apply(&one, &mut dp).unwrap();
    assert_dump(
        &dp,
        &[
            "svc 10.96.0.10:80/TCP #0 count=1 rev=1",
            "svc 10.96.0.10:80/TCP #1 backend=2 rev=1",
            "be 2 10.244.0.6:8080/TCP flags=0",
            "rev 1 10.96.0.10:80",
        ],
    );
    assert_eq!(
        stats,
        Stats {
            frontends_updated: 1,
            slots_written: 1,
            slots_removed: 1,
            backends_removed: 1,
            frontends_changed: 1,
            ..Stats::default()
        }
    );
}

#[test]
fn scaling_up_keeps_existing_slots_and_fills_new_ones() {
    let mut dp = Checked::default();
    let mut reconciler = Reconciler::new();
    reconciler
        .apply(
            &state(&[(
                web(),
                "web",
                &[be("10.244.0.5", 8080), be("10.244.0.9", 8080)],
            )]),
            &mut dp,
        )
        .unwrap();
    // 10.244.0.7 sorts between the two: it still only takes the new slot 3.
    let three = state(&[(
        web(),
        "web",
        &[
            be("10.244.0.5", 8080),
            be("10.244.0.7", 8080),
            be("10.244.0.9", 8080),
        ],
    )]);
    let stats = reconciler.apply(&three, &mut dp).unwrap();
    assert_eq!(
        stats,
        Stats {
            frontends_updated: 1,
            slots_written: 1,
            backends_written: 1,
            frontends_changed: 1,
            ..Stats::default()
        }
    );
    assert_dump(
        &dp,
        &[
            "svc 10.96.0.10:80/TCP #0 count=3 rev=1",
            "svc 10.96.0.10:80/TCP #1 backend=1 rev=1",
            "svc 10.96.0.10:80/TCP #2 backend=2 rev=1",
            "svc 10.96.0.10:80/TCP #3 backend=3 rev=1",
            "be 1 10.244.0.5:8080/TCP flags=0",
            "be 2 10.244.0.9:8080/TCP flags=0",
            "be 3 10.244.0.7:8080/TCP flags=0",
            "rev 1 10.96.0.10:80",
        ],
    );
}

#[test]
fn replacing_every_backend_never_exposes_a_dangling_slot() {
    // `Checked` asserts the invariant after every write of every step.
    let mut dp = Checked::default();
    let mut reconciler = Reconciler::new();
    let steps = [
        state(&[(
            web(),
            "web",
            &[
                be("10.244.0.1", 80),
                be("10.244.0.2", 80),
                be("10.244.0.3", 80),
            ],
        )]),
        state(&[(web(), "web", &[be("10.244.1.1", 80)])]),
        state(&[
            (web(), "web", &[be("10.244.2.1", 80), be("10.244.2.2", 80)]),
            (dns(), "dns", &[be("10.244.2.1", 53)]),
        ]),
        state(&[(web(), "web", &[])]),
        state(&[(dns(), "dns", &[be("10.244.3.1", 53), be("10.244.3.2", 53)])]),
        Desired::default(),
    ];
    for step in &steps {
        reconciler.apply(step, &mut dp).unwrap();
        assert!(reconciler.apply(step, &mut dp).unwrap().is_empty());
    }
    assert_dump(&dp, &[]);
}

#[test]
fn deleting_a_service_removes_frontend_slots_rev_nat_and_its_backends_only() {
    let mut dp = Checked::default();
    let mut reconciler = Reconciler::new();
    let api = fe("10.96.0.11", 80, Protocol::Tcp);
    reconciler
        .apply(
            &state(&[
                (
                    web(),
                    "web",
                    &[be("10.244.0.5", 8080), be("10.244.0.6", 8080)],
                ),
                (
                    api,
                    "api",
                    &[be("10.244.0.6", 8080), be("10.244.0.8", 9090)],
                ),
            ]),
            &mut dp,
        )
        .unwrap();
    let stats = reconciler
        .apply(
            &state(&[(
                api,
                "api",
                &[be("10.244.0.6", 8080), be("10.244.0.8", 9090)],
            )]),
            &mut dp,
        )
        .unwrap();
    assert_eq!(
        stats,
        Stats {
            frontends_removed: 1,
            slots_removed: 2,
            rev_nats_removed: 1,
            backends_removed: 1,
            ..Stats::default()
        }
    );
    // 10.244.0.6:8080 is shared with api and stays.
    assert_dump(
        &dp,
        &[
            "svc 10.96.0.11:80/TCP #0 count=2 rev=2",
            "svc 10.96.0.11:80/TCP #1 backend=2 rev=2",
            "svc 10.96.0.11:80/TCP #2 backend=3 rev=2",
            "be 2 10.244.0.6:8080/TCP flags=0",
            "be 3 10.244.0.8:9090/TCP flags=0",
            "rev 2 10.96.0.11:80",
        ],
    );
    // Deleting it again (the next pass) writes nothing and fails nothing.
    let again = reconciler
        .apply(
            &state(&[(
                api,
                "api",
                &[be("10.244.0.6", 8080), be("10.244.0.8", 9090)],
            )]),
            &mut dp,
        )
        .unwrap();
    assert!(again.is_empty(), "{again}");
}

#[test]
fn scaling_to_zero_keeps_the_frontend_with_count_zero() {
    // The frontend stays (count 0: connects are refused, not passed through
    // to the unroutable VIP); its slots and now unreferenced backends go.
    let mut dp = Checked::default();
    let mut reconciler = Reconciler::new();
    reconciler
        .apply(
            &state(&[(
                web(),
                "web",
                &[be("10.244.0.5", 8080), be("10.244.0.6", 8080)],
            )]),
            &mut dp,
        )
        .unwrap();
    let stats = reconciler
        .apply(&state(&[(web(), "web", &[])]), &mut dp)
        .unwrap();
    assert_dump(
        &dp,
        &[
            "svc 10.96.0.10:80/TCP #0 count=0 rev=1",
            "rev 1 10.96.0.10:80",
        ],
    );
    assert_eq!(
        stats,
        Stats {
            frontends_updated: 1,
            slots_removed: 2,
            backends_removed: 2,
            frontends_changed: 1,
            ..Stats::default()
        }
    );
}

#[test]
fn plain_frontend_specs_equal_what_desired_builds_from_api_objects() {
    // Kernel tests and the service benchmark build their state with
    // `FrontendSpec::new` from plain (vip, port, protocol, backends): it must
    // be the state the agent computes from the equivalent API objects, with
    // backends sorted and deduplicated alike.
    let services = [service("default", "web", "10.96.0.10", &[("", 80, "TCP")])];
    let slices = [
        slice(
            "default",
            "web",
            "web-a",
            &[("", 8080, "TCP")],
            &[("10.244.0.6", None), ("10.244.0.5", Some(true))],
        ),
        slice(
            "default",
            "web",
            "web-b",
            &[("", 8080, "TCP")],
            &[("10.244.0.5", None)],
        ),
    ];
    let plain = state(&[(
        web(),
        "web",
        &[
            be("10.244.0.6", 8080),
            be("10.244.0.5", 8080),
            be("10.244.0.6", 8080),
        ],
    )]);
    assert_eq!(crate::proxy::desired(&services, &slices), plain);
    assert_eq!(
        plain.frontends[&web()].backends,
        [be("10.244.0.5", 8080), be("10.244.0.6", 8080)]
    );
}

#[test]
fn same_address_and_port_share_a_backend_id_per_protocol() {
    let mut dp = FakeDatapath::new();
    let dns_tcp = fe("10.96.0.53", 53, Protocol::Tcp);
    let other = fe("10.96.0.54", 53, Protocol::Udp);
    Reconciler::new()
        .apply(
            &state(&[
                (dns(), "dns", &[be("10.244.0.3", 53)]),
                (dns_tcp, "dns", &[be("10.244.0.3", 53)]),
                (other, "other", &[be("10.244.0.3", 53)]),
            ]),
            &mut dp,
        )
        .unwrap();
    assert_dump(
        &dp,
        &[
            "svc 10.96.0.53:53/TCP #0 count=1 rev=1",
            "svc 10.96.0.53:53/TCP #1 backend=1 rev=1",
            "svc 10.96.0.53:53/UDP #0 count=1 rev=2",
            "svc 10.96.0.53:53/UDP #1 backend=2 rev=2",
            "svc 10.96.0.54:53/UDP #0 count=1 rev=3",
            "svc 10.96.0.54:53/UDP #1 backend=2 rev=3",
            "be 1 10.244.0.3:53/TCP flags=0",
            "be 2 10.244.0.3:53/UDP flags=0",
            "rev 1 10.96.0.53:53",
            "rev 2 10.96.0.53:53",
            "rev 3 10.96.0.54:53",
        ],
    );
}

fn tcp_backend(addr: [u8; 4], port: u16) -> BackendValue {
    BackendValue::new(Be32::from_octets(addr), Be16::from_host(port), 6)
}

#[test]
fn restart_prunes_stale_entries_and_keeps_the_ids_of_what_is_still_desired() {
    let mut dp = Checked::default();
    let api = fe("10.96.0.11", 80, Protocol::Tcp);
    // A previous run programmed web and api...
    let mut previous = Reconciler::new();
    previous
        .apply(
            &state(&[
                (api, "api", &[be("10.244.0.8", 9090)]),
                (
                    web(),
                    "web",
                    &[be("10.244.0.5", 8080), be("10.244.0.6", 8080)],
                ),
            ]),
            &mut dp,
        )
        .unwrap();
    assert_dump(
        &dp,
        &[
            "svc 10.96.0.10:80/TCP #0 count=2 rev=1",
            "svc 10.96.0.10:80/TCP #1 backend=1 rev=1",
            "svc 10.96.0.10:80/TCP #2 backend=2 rev=1",
            "svc 10.96.0.11:80/TCP #0 count=1 rev=2",
            "svc 10.96.0.11:80/TCP #1 backend=3 rev=2",
            "be 1 10.244.0.5:8080/TCP flags=0",
            "be 2 10.244.0.6:8080/TCP flags=0",
            "be 3 10.244.0.8:9090/TCP flags=0",
            "rev 1 10.96.0.10:80",
            "rev 2 10.96.0.11:80",
        ],
    );
    // ...and died half-way through other work, leaving junk: slots of a
    // frontend whose slot 0 is gone, an unreferenced backend and rev-nat.
    let junk = ServiceKey::frontend(Be32::from_octets([10, 96, 0, 77]), Be16::from_host(80), 6);
    dp.inner
        .upsert_service(junk.with_slot(1), ServiceValue::backend_slot(40, 9))
        .unwrap();
    dp.inner
        .upsert_service(junk.with_slot(2), ServiceValue::backend_slot(41, 9))
        .unwrap();
    dp.inner
        .upsert_backend(BackendKey { id: 40 }, tcp_backend([10, 244, 0, 40], 80))
        .unwrap();
    dp.inner
        .upsert_rev_nat(
            RevNatKey::new(9),
            RevNatValue::new(Be32::from_octets([10, 96, 0, 77]), Be16::from_host(80)),
        )
        .unwrap();

    // The new run: api is gone, web gained a backend.
    let mut restarted = Reconciler::new();
    let now = state(&[(
        web(),
        "web",
        &[
            be("10.244.0.5", 8080),
            be("10.244.0.6", 8080),
            be("10.244.0.7", 8080),
        ],
    )]);
    let stats = restarted.apply(&now, &mut dp).unwrap();
    // web kept rev-nat id 1 and backend ids 1 and 2; the new backend got an
    // id after every id in the backends map (40 is the highest).
    assert_dump(
        &dp,
        &[
            "svc 10.96.0.10:80/TCP #0 count=3 rev=1",
            "svc 10.96.0.10:80/TCP #1 backend=1 rev=1",
            "svc 10.96.0.10:80/TCP #2 backend=2 rev=1",
            "svc 10.96.0.10:80/TCP #3 backend=41 rev=1",
            "be 1 10.244.0.5:8080/TCP flags=0",
            "be 2 10.244.0.6:8080/TCP flags=0",
            "be 41 10.244.0.7:8080/TCP flags=0",
            "rev 1 10.96.0.10:80",
        ],
    );
    assert_eq!(
        stats,
        Stats {
            frontends_updated: 1,
            frontends_removed: 1,
            slots_written: 1,
            slots_removed: 3,
            backends_written: 1,
            backends_removed: 2,
            rev_nats_removed: 2,
            frontends_changed: 1,
            ..Stats::default()
        }
    );
    assert!(restarted.apply(&now, &mut dp).unwrap().is_empty());
}

#[test]
fn a_frontend_missing_slot_zero_is_repaired_and_an_orphan_rev_nat_adopted() {
    // A previous run died after writing the rev-nat entry and slot 1 of web
    // but before its slot 0.
    let mut dp = Checked::default();
    dp.inner
        .upsert_backend(BackendKey { id: 5 }, tcp_backend([10, 244, 0, 5], 8080))
        .unwrap();
    dp.inner
        .upsert_rev_nat(
            RevNatKey::new(7),
            RevNatValue::new(Be32::from_octets([10, 96, 0, 10]), Be16::from_host(80)),
        )
        .unwrap();
    let key = ServiceKey::frontend(Be32::from_octets([10, 96, 0, 10]), Be16::from_host(80), 6);
    dp.inner
        .upsert_service(key.with_slot(1), ServiceValue::backend_slot(5, 7))
        .unwrap();
    let stats = Reconciler::new()
        .apply(
            &state(&[(web(), "web", &[be("10.244.0.5", 8080)])]),
            &mut dp,
        )
        .unwrap();
    assert_eq!(
        stats,
        Stats {
            frontends_added: 1,
            frontends_changed: 1,
            ..Stats::default()
        }
    );
    assert_dump(
        &dp,
        &[
            "svc 10.96.0.10:80/TCP #0 count=1 rev=7",
            "svc 10.96.0.10:80/TCP #1 backend=5 rev=7",
            "be 5 10.244.0.5:8080/TCP flags=0",
            "rev 7 10.96.0.10:80",
        ],
    );
}

#[test]
fn freed_ids_are_not_reused_by_the_next_allocations() {
    let mut dp = Checked::default();
    let mut reconciler = Reconciler::new();
    let api = fe("10.96.0.11", 80, Protocol::Tcp);
    reconciler
        .apply(
            &state(&[(web(), "web", &[be("10.244.0.5", 8080)])]),
            &mut dp,
        )
        .unwrap();
    // web and its backend go, api and a new backend come, in one apply:
    // neither may take the ids just freed.
    reconciler
        .apply(&state(&[(api, "api", &[be("10.244.0.6", 8080)])]), &mut dp)
        .unwrap();
    assert_dump(
        &dp,
        &[
            "svc 10.96.0.11:80/TCP #0 count=1 rev=2",
            "svc 10.96.0.11:80/TCP #1 backend=2 rev=2",
            "be 2 10.244.0.6:8080/TCP flags=0",
            "rev 2 10.96.0.11:80",
        ],
    );
    // After a restart, numbering continues after what is in the maps.
    let mut restarted = Reconciler::new();
    restarted
        .apply(
            &state(&[
                (api, "api", &[be("10.244.0.6", 8080)]),
                (web(), "web", &[be("10.244.0.5", 8080)]),
            ]),
            &mut dp,
        )
        .unwrap();
    assert_dump(
        &dp,
        &[
            "svc 10.96.0.10:80/TCP #0 count=1 rev=3",
            "svc 10.96.0.10:80/TCP #1 backend=3 rev=3",
            "svc 10.96.0.11:80/TCP #0 count=1 rev=2",
            "svc 10.96.0.11:80/TCP #1 backend=2 rev=2",
            "be 2 10.244.0.6:8080/TCP flags=0",
            "be 3 10.244.0.5:8080/TCP flags=0",
            "rev 2 10.96.0.11:80",
            "rev 3 10.96.0.10:80",
        ],
    );
}

#[test]
fn backend_flags_are_rewritten_in_place() {
    let mut dp = Checked::default();
    let mut reconciler = Reconciler::new();
    let desired = state(&[(web(), "web", &[be("10.244.0.5", 8080)])]);
    reconciler.apply(&desired, &mut dp).unwrap();
    let mut odd = tcp_backend([10, 244, 0, 5], 8080);
    odd.flags = 1;
    dp.inner.upsert_backend(BackendKey { id: 1 }, odd).unwrap();
    let stats = reconciler.apply(&desired, &mut dp).unwrap();
    assert_eq!(
        stats,
        Stats {
            backends_written: 1,
            ..Stats::default()
        }
    );
    assert_eq!(
        dp.backends().unwrap(),
        vec![(BackendKey { id: 1 }, tcp_backend([10, 244, 0, 5], 8080))]
    );
}

#[test]
fn a_full_map_fails_the_apply_and_leaves_no_dangling_slot() {
    let mut dp = Checked {
        inner: FakeDatapath::with_capacity(3, 64),
        ..Checked::default()
    };
    let mut reconciler = Reconciler::new();
    let big = state(&[(
        web(),
        "web",
        &[
            be("10.244.0.1", 80),
            be("10.244.0.2", 80),
            be("10.244.0.3", 80),
        ],
    )]);
    let err = reconciler.apply(&big, &mut dp).unwrap_err();
    assert!(
        matches!(
            err,
            crate::proxy::ProxyError::Datapath {
                source: DatapathError::MapFull { .. }
            }
        ),
        "{err}"
    );
    // The count was never written, so no connect picks the partial slots;
    // a smaller state fits and cleans up.
    let small = state(&[(web(), "web", &[be("10.244.0.1", 80)])]);
    reconciler.apply(&small, &mut dp).unwrap();
    assert_dump(
        &dp,
        &[
            "svc 10.96.0.10:80/TCP #0 count=1 rev=1",
            "svc 10.96.0.10:80/TCP #1 backend=1 rev=1",
            "be 1 10.244.0.1:80/TCP flags=0",
            "rev 1 10.96.0.10:80",
        ],
    );
}

#[test]
fn id_allocator_skips_ids_in_use_wraps_and_reports_exhaustion() {
    let mut ids = IdAllocator::new(1, 4);
    assert_eq!(ids.allocate(|_| false), Some(1));
    assert_eq!(ids.allocate(|id| id == 2), Some(3));
    ids.observe(2); // behind the cursor: no effect
    assert_eq!(ids.allocate(|_| false), Some(4));
    assert_eq!(ids.allocate(|_| false), Some(1), "wraps to min");
    assert_eq!(ids.allocate(|id| id != 3), Some(3));
    assert_eq!(ids.allocate(|_| true), None);
    let mut ids = IdAllocator::new(1, 10);
    ids.observe(7);
    assert_eq!(ids.allocate(|_| false), Some(8));
    ids.observe(10);
    assert_eq!(ids.allocate(|_| false), Some(1));
}

// ---- the shadow: incremental applies and verify-and-repair -----------------

/// The frontends whose spec differs between two desired states.
fn changed_between(before: &Desired, after: &Desired) -> BTreeSet<Frontend> {
    let mut changed = BTreeSet::new();
    for (frontend, spec) in &before.frontends {
        if after.frontends.get(frontend) != Some(spec) {
            changed.insert(*frontend);
        }
    }
    for (frontend, spec) in &after.frontends {
        if before.frontends.get(frontend) != Some(spec) {
            changed.insert(*frontend);
        }
    }
    changed
}

/// What a connect to each frontend can reach: `frontend -> sorted backends`,
/// resolved through slots and the backends map (ids left out).
fn reachable(dp: &FakeDatapath) -> Vec<String> {
    let backends: std::collections::BTreeMap<u32, BackendValue> =
        dp.backends.iter().map(|(k, v)| (k.id, *v)).collect();
    let mut lines = Vec::new();
    for (key, value) in dp.services.iter().filter(|(k, _)| k.slot == 0) {
        let mut to: Vec<String> = (1..=value.count)
            .map(|slot| {
                let id = dp.services[&key.with_slot(slot)].backend_id;
                let b = backends[&id];
                format!("{}:{}", b.addr.to_ipv4(), b.port.to_host())
            })
            .collect();
        to.sort();
        let rev = dp.rev_nats[&RevNatKey::new(value.rev_nat_id)];
        lines.push(format!(
            "{}:{}/{} rev={}:{} -> {}",
            key.vip.to_ipv4(),
            key.port.to_host(),
            proto(key.proto),
            rev.vip.to_ipv4(),
            rev.port.to_host(),
            to.join(",")
        ));
    }
    lines.sort();
    lines
}

fn expected_reachable(desired: &Desired) -> Vec<String> {
    desired
        .frontends
        .iter()
        .map(|(f, spec)| {
            let mut to: Vec<String> = spec.backends.iter().map(ToString::to_string).collect();
            to.sort();
            format!(
                "{}:{}/{} rev={}:{} -> {}",
                f.vip,
                f.port,
                f.protocol,
                f.vip,
                f.port,
                to.join(",")
            )
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A random desired state over a small pool of frontends and backends, so
/// steps share backends between frontends and reuse addresses.
fn random_state(rng: &mut rand::rngs::StdRng) -> Desired {
    use rand::Rng;
    let mut desired = Desired::default();
    for i in 0..12u8 {
        if !rng.random_bool(0.6) {
            continue;
        }
        let protocol = if i % 3 == 0 {
            Protocol::Udp
        } else {
            Protocol::Tcp
        };
        let frontend = Frontend {
            vip: Ipv4Addr::new(10, 96, 0, i / 2),
            port: 80,
            protocol,
        };
        let n = rng.random_range(0..5);
        let backends = (0..n).map(|_| Backend {
            addr: Ipv4Addr::new(10, 244, 0, rng.random_range(1..8)),
            port: 8080 + rng.random_range(0..2),
        });
        desired.insert(
            frontend,
            FrontendSpec::new(
                ServicePortName::new("default", &format!("svc-{i}"), ""),
                backends,
            ),
        );
    }
    desired
}

#[test]
fn incremental_applies_equal_full_applies_over_random_sequences() {
    use rand::SeedableRng;
    for seed in 0..40 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut incremental = Checked::default();
        let mut full = Checked::default();
        let mut inc = Reconciler::new();
        let mut all = Reconciler::new();
        let mut before = Desired::default();
        inc.apply(&before, &mut incremental).unwrap();
        for step in 0..30 {
            let after = random_state(&mut rng);
            let changed = changed_between(&before, &after);
            let reads = incremental.reads.get();
            // `Checked` asserts the write-order invariant after every write.
            inc.apply_changes(&after, &changed, &mut incremental)
                .unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
            assert_eq!(
                incremental.reads.get(),
                reads,
                "seed {seed} step {step}: an incremental apply read the maps"
            );
            all.apply(&after, &mut full).unwrap();
            // Same maps, ids included, as the full pass builds them...
            assert_eq!(
                dump(&incremental),
                dump(&full),
                "seed {seed} step {step}: incremental and full applies differ"
            );
            // ...which is the desired state, and a fixpoint of a full pass.
            assert_eq!(
                reachable(&incremental.inner),
                expected_reachable(&after),
                "seed {seed} step {step}"
            );
            let mut copy = incremental.inner.clone();
            let again = inc.clone().apply(&after, &mut copy).unwrap();
            assert!(again.is_empty(), "seed {seed} step {step}: {again}");
            before = after;
        }
    }
}

/// `n` services `svc-<i>` at 10.96.<i/256>.<i%256>:80 with one backend each.
fn many(n: u16) -> Desired {
    let mut desired = Desired::default();
    for i in 0..n {
        let [hi, lo] = i.to_be_bytes();
        desired.insert(
            Frontend {
                vip: Ipv4Addr::new(10, 96, hi, lo),
                port: 80,
                protocol: Protocol::Tcp,
            },
            FrontendSpec::new(
                ServicePortName::new("default", &format!("svc-{i}"), ""),
                [Backend {
                    addr: Ipv4Addr::new(10, 244, hi, lo),
                    port: 8080,
                }],
            ),
        );
    }
    desired
}

#[test]
fn an_incremental_apply_reads_nothing_and_writes_only_the_changed_service() {
    let mut dp = Checked::default();
    let mut reconciler = Reconciler::new();
    let mut desired = many(500);
    reconciler.apply(&desired, &mut dp).unwrap();
    let (reads, writes) = (dp.reads.get(), dp.writes);
    dp.touched.clear();

    // svc-7 scales to two backends (one shared with svc-8), a new Service
    // comes, svc-9 goes.
    let svc7 = fe("10.96.0.7", 80, Protocol::Tcp);
    let svc9 = fe("10.96.0.9", 80, Protocol::Tcp);
    let new = fe("10.96.200.1", 80, Protocol::Tcp);
    desired.insert(
        svc7,
        FrontendSpec::new(
            ServicePortName::new("default", "svc-7", ""),
            [be("10.244.0.7", 8080), be("10.244.0.8", 8080)],
        ),
    );
    desired.insert(
        new,
        FrontendSpec::new(
            ServicePortName::new("default", "new", ""),
            [be("10.244.200.1", 8080)],
        ),
    );
    desired.frontends.remove(&svc9);
    let changed: BTreeSet<Frontend> = [svc7, svc9, new].into_iter().collect();
    let stats = reconciler
        .apply_changes(&desired, &changed, &mut dp)
        .unwrap();
    assert_eq!(dp.reads.get(), reads, "no map was read");
    assert_eq!(
        stats,
        Stats {
            frontends_added: 1,
            frontends_updated: 1,
            frontends_removed: 1,
            slots_written: 2,
            slots_removed: 1,
            backends_written: 1,
            backends_removed: 1,
            rev_nats_written: 1,
            rev_nats_removed: 1,
            frontends_changed: 2,
        }
    );
    assert_eq!(dp.writes - writes, stats.writes());
    assert_eq!(
        dp.touched,
        changed.iter().map(super::frontend_key).collect(),
        "only the changed frontends' entries were written"
    );
    assert_eq!(reachable(&dp.inner), expected_reachable(&desired));
    // Nothing left to do for anyone.
    assert!(reconciler.apply(&desired, &mut dp).unwrap().is_empty());
    assert!(
        reconciler
            .apply_changes(&desired, &BTreeSet::new(), &mut dp)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn verify_and_repair_fixes_entries_changed_behind_the_reconcilers_back() {
    let mut dp = Checked::default();
    let mut reconciler = Reconciler::new();
    let desired = state(&[
        (
            web(),
            "web",
            &[be("10.244.0.5", 8080), be("10.244.0.6", 8080)],
        ),
        (dns(), "dns", &[be("10.244.0.5", 53)]),
    ]);
    reconciler.apply(&desired, &mut dp).unwrap();
    let good = dump(&dp);
    // Behind its back: web's count drops to 1 and its slot 2 goes, the dns
    // backend gets a flag, and a stranger adds a frontend and a rev-NAT entry.
    let web_key = super::frontend_key(&web());
    let mut web_value = dp.inner.services[&web_key];
    web_value.count = 1;
    dp.inner.upsert_service(web_key, web_value).unwrap();
    dp.inner.remove_service(&web_key.with_slot(2)).unwrap();
    let (dns_backend, mut flagged) = dp
        .inner
        .backends
        .iter()
        .find(|(_, v)| v.proto == 17)
        .map(|(k, v)| (*k, *v))
        .unwrap();
    flagged.flags = 1;
    dp.inner.upsert_backend(dns_backend, flagged).unwrap();
    let stranger = ServiceKey::frontend(Be32::from_octets([10, 96, 9, 9]), Be16::from_host(80), 6);
    dp.inner
        .upsert_service(stranger, ServiceValue::frontend(0, 0, 99))
        .unwrap();
    dp.inner
        .upsert_rev_nat(
            RevNatKey::new(99),
            RevNatValue::new(Be32::from_octets([10, 96, 9, 9]), Be16::from_host(80)),
        )
        .unwrap();

    // The incremental pass trusts its shadow: nothing to do.
    assert!(
        reconciler
            .apply_changes(&desired, &BTreeSet::new(), &mut dp)
            .unwrap()
            .is_empty()
    );
    // The verify pass reads the maps and repairs all four.
    let stats = reconciler.apply(&desired, &mut dp).unwrap();
    assert_eq!(
        stats,
        Stats {
            frontends_updated: 1,
            frontends_removed: 1,
            slots_written: 1,
            backends_written: 1,
            rev_nats_removed: 1,
            frontends_changed: 1,
            ..Stats::default()
        }
    );
    assert_eq!(stats.writes(), 5, "five entries repaired");
    assert_eq!(dump(&dp), good);
    assert!(reconciler.apply(&desired, &mut dp).unwrap().is_empty());
}

#[test]
fn a_restarted_agent_adopts_what_incremental_applies_wrote() {
    let mut dp = Checked::default();
    let mut previous = Reconciler::new();
    let first = state(&[(web(), "web", &[be("10.244.0.5", 8080)])]);
    previous.apply(&first, &mut dp).unwrap();
    let second = state(&[
        (
            web(),
            "web",
            &[be("10.244.0.5", 8080), be("10.244.0.6", 8080)],
        ),
        (dns(), "dns", &[be("10.244.0.5", 53)]),
    ]);
    previous
        .apply_changes(&second, &changed_between(&first, &second), &mut dp)
        .unwrap();
    let programmed = dump(&dp);
    // The new run's first apply (incremental without a shadow: the full
    // pass) adopts everything, ids included.
    let mut restarted = Reconciler::new();
    assert!(!restarted.has_shadow());
    let stats = restarted
        .apply_changes(&second, &BTreeSet::new(), &mut dp)
        .unwrap();
    assert!(stats.is_empty(), "{stats}");
    assert!(restarted.has_shadow());
    assert_eq!(dump(&dp), programmed);
    // New ids continue after the adopted ones.
    let third = state(&[
        (web(), "web", &[be("10.244.0.9", 8080)]),
        (dns(), "dns", &[be("10.244.0.5", 53)]),
    ]);
    restarted
        .apply_changes(&third, &changed_between(&second, &third), &mut dp)
        .unwrap();
    assert_dump(
        &dp,
        &[
            "svc 10.96.0.10:80/TCP #0 count=1 rev=1",
            "svc 10.96.0.10:80/TCP #1 backend=4 rev=1",
            "svc 10.96.0.53:53/UDP #0 count=1 rev=2",
            "svc 10.96.0.53:53/UDP #1 backend=3 rev=2",
            "be 3 10.244.0.5:53/UDP flags=0",
            "be 4 10.244.0.9:8080/TCP flags=0",
            "rev 1 10.96.0.10:80",
            "rev 2 10.96.0.53:53",
        ],
    );
}

#[test]
fn replacing_every_backend_incrementally_never_exposes_a_dangling_slot() {
    // `Checked` asserts after every write that slots 1..=count name backends
    // in the map and the frontend's rev-NAT id exists.
    let mut dp = Checked::default();
    let mut reconciler = Reconciler::new();
    let steps = [
        state(&[
            (
                web(),
                "web",
                &[
                    be("10.244.0.1", 80),
                    be("10.244.0.2", 80),
                    be("10.244.0.3", 80),
                ],
            ),
            (dns(), "dns", &[be("10.244.0.1", 53)]),
        ]),
        state(&[
            (web(), "web", &[be("10.244.1.1", 80)]),
            (dns(), "dns", &[be("10.244.0.1", 53)]),
        ]),
        state(&[(web(), "web", &[be("10.244.2.1", 80), be("10.244.2.2", 80)])]),
        state(&[(web(), "web", &[])]),
        Desired::default(),
    ];
    let mut before = Desired::default();
    reconciler.apply(&before, &mut dp).unwrap();
    for step in &steps {
        reconciler
            .apply_changes(step, &changed_between(&before, step), &mut dp)
            .unwrap();
        assert_eq!(reachable(&dp.inner), expected_reachable(step));
        before = step.clone();
    }
    assert_dump(&dp, &[]);
}

#[test]
fn a_failed_incremental_apply_is_finished_by_the_next_full_pass() {
    let mut dp = Checked {
        inner: FakeDatapath::with_capacity(6, 64),
        ..Checked::default()
    };
    let mut reconciler = Reconciler::new();
    let small = state(&[(web(), "web", &[be("10.244.0.1", 80)])]);
    reconciler.apply(&small, &mut dp).unwrap();
    let big = state(&[
        (web(), "web", &[be("10.244.0.1", 80)]),
        (
            dns(),
            "dns",
            &[
                be("10.244.0.1", 53),
                be("10.244.0.2", 53),
                be("10.244.0.3", 53),
                be("10.244.0.4", 53),
                be("10.244.0.5", 53),
            ],
        ),
    ]);
    let changed = changed_between(&small, &big);
    let err = reconciler
        .apply_changes(&big, &changed, &mut dp)
        .unwrap_err();
    assert!(
        matches!(
            err,
            crate::proxy::ProxyError::Datapath {
                source: DatapathError::MapFull { .. }
            }
        ),
        "{err}"
    );
    assert!(!reconciler.has_shadow(), "a failed apply drops the shadow");
    // Room again (a smaller dns): the next apply reads the maps and finishes.
    let fits = state(&[
        (web(), "web", &[be("10.244.0.1", 80)]),
        (dns(), "dns", &[be("10.244.0.1", 53)]),
    ]);
    reconciler
        .apply_changes(&fits, &BTreeSet::new(), &mut dp)
        .unwrap();
    assert_eq!(reachable(&dp.inner), expected_reachable(&fits));
}

#[test]
fn removed_backends_are_reported_once_for_their_sockets() {
    let mut dp = FakeDatapath::default();
    let mut reconciler = Reconciler::new();
    let two = state(&[(
        web(),
        "web",
        &[be("10.244.0.5", 8080), be("10.244.0.6", 8080)],
    )]);
    reconciler.apply(&two, &mut dp).unwrap();
    assert!(reconciler.take_removed_backends().is_empty());
    let one = state(&[(web(), "web", &[be("10.244.0.5", 8080)])]);
    let changed: BTreeSet<Frontend> = [web()].into();
    reconciler.apply_changes(&one, &changed, &mut dp).unwrap();
    let removed = reconciler.take_removed_backends();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].addr.to_ipv4(), Ipv4Addr::new(10, 244, 0, 6));
    assert_eq!(removed[0].port.to_host(), 8080);
    assert!(
        reconciler.take_removed_backends().is_empty(),
        "reported once"
    );
}

#[test]
fn client_ip_affinity_is_written_into_the_frontend_and_follows_its_timeout() {
    let with_timeout = |timeout_s| {
        let mut desired = Desired::default();
        desired.insert(
            web(),
            FrontendSpec::new(
                ServicePortName::new("default", "web", ""),
                [be("10.244.0.5", 8080), be("10.244.0.6", 8080)],
            )
            .with_affinity(timeout_s),
        );
        desired
    };
    let frontend_value = |dp: &Checked| {
        dp.services()
            .unwrap()
            .into_iter()
            .find(|(k, _)| k.slot == 0)
            .map(|(_, v)| v)
            .unwrap()
    };
    let mut dp = Checked::default();
    let mut reconciler = Reconciler::new();
    reconciler.apply(&with_timeout(10_800), &mut dp).unwrap();
    let value = frontend_value(&dp);
    assert_eq!(value, ServiceValue::frontend_with_affinity(2, 1, 10_800));
    assert_eq!(value.affinity_timeout_s(), Some(10_800));
    // A new timeout rewrites slot 0 only; dropping affinity clears the flag.
    let stats = reconciler.apply(&with_timeout(60), &mut dp).unwrap();
    assert_eq!(
        stats,
        Stats {
            frontends_updated: 1,
            frontends_changed: 1,
            ..Stats::default()
        }
    );
    assert_eq!(frontend_value(&dp).affinity_timeout_s(), Some(60));
    reconciler.apply(&with_timeout(0), &mut dp).unwrap();
    assert_eq!(frontend_value(&dp), ServiceValue::frontend(2, 0, 1));
    assert_eq!(frontend_value(&dp).affinity_timeout_s(), None);
}
