//! Tests of the run loop against the shared in-memory fake API server (lists
//! and streamed watches through a real `kube::Client`; no cluster), with a
//! shared fake datapath.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_ebpf_common::{RevNatKey, RevNatValue};
use sluice_test_util::fake_api::FakeApi;
use tokio::sync::watch;

use super::{Options, Progress, run};
use crate::datapath::{
    BackendKey, BackendValue, Be16, Be32, DatapathError, DatapathOps, FakeDatapath, ServiceKey,
    ServiceValue,
};
use crate::proxy::fixtures::{service, slice};

/// A fake datapath the test can look into while `run` owns a handle.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<FakeDatapath>>);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, FakeDatapath> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn frontends(&self) -> Vec<(ServiceKey, u16)> {
        let dp = self.lock();
        dp.services()
            .unwrap()
            .into_iter()
            .filter(|(k, _)| k.slot == 0)
            .map(|(k, v)| (k, v.count))
            .collect()
    }
}

impl DatapathOps for Shared {
    fn upsert_service(
        &mut self,
        key: ServiceKey,
        value: ServiceValue,
    ) -> Result<(), DatapathError> {
        self.lock().upsert_service(key, value)
    }
    fn remove_service(&mut self, key: &ServiceKey) -> Result<(), DatapathError> {
        self.lock().remove_service(key)
    }
    fn upsert_backend(
        &mut self,
        key: BackendKey,
        value: BackendValue,
    ) -> Result<(), DatapathError> {
        self.lock().upsert_backend(key, value)
    }
    fn remove_backend(&mut self, key: &BackendKey) -> Result<(), DatapathError> {
        self.lock().remove_backend(key)
    }
    fn services(&self) -> Result<Vec<(ServiceKey, ServiceValue)>, DatapathError> {
        self.lock().services()
    }
    fn backends(&self) -> Result<Vec<(BackendKey, BackendValue)>, DatapathError> {
        self.lock().backends()
    }
    fn upsert_rev_nat(&mut self, key: RevNatKey, value: RevNatValue) -> Result<(), DatapathError> {
        self.lock().upsert_rev_nat(key, value)
    }
    fn remove_rev_nat(&mut self, key: &RevNatKey) -> Result<(), DatapathError> {
        self.lock().remove_rev_nat(key)
    }
    fn rev_nats(&self) -> Result<Vec<(RevNatKey, RevNatValue)>, DatapathError> {
        self.lock().rev_nats()
    }
}

async fn wait_for(
    progress: &mut watch::Receiver<Progress>,
    what: &str,
    f: impl Fn(&Progress) -> bool,
) {
    tokio::time::timeout(Duration::from_secs(10), progress.wait_for(f))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|_| panic!("proxy stopped while waiting for {what}"));
}

fn frontend(octets: [u8; 4], port: u16) -> ServiceKey {
    ServiceKey::frontend(Be32::from_octets(octets), Be16::from_host(port), 6)
}

const SERVICES: &str = "api/v1/namespaces/default/services";
const SLICES: &str = "apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
/// What the proxy lists: `EndpointSlices` of all namespaces.
const ALL_SLICES: &str = "apis/discovery.k8s.io/v1/endpointslices";

#[tokio::test]
async fn applies_only_after_both_lists_then_follows_watch_events() {
    let api = FakeApi::default();
    api.insert(
        SERVICES,
        serde_json::to_value(service("default", "web", "10.96.0.10", &[("", 80, "TCP")])).unwrap(),
    );
    api.insert(
        SLICES,
        serde_json::to_value(slice(
            "default",
            "web",
            "web-a",
            &[("", 8080, "TCP")],
            &[("10.244.0.5", None)],
        ))
        .unwrap(),
    );
    // The EndpointSlice list is held back until released.
    let slices_list = api.hold_lists(ALL_SLICES);
    let mut watching = api.watches();
    let client = api.client();

    // A leftover from a previous run: must survive until both lists are in,
    // then be pruned.
    let dp = Shared::default();
    let stale = frontend([10, 96, 0, 77], 80);
    dp.clone()
        .upsert_service(stale, ServiceValue::frontend(0, 0, 9))
        .unwrap();

    let opts = Options::new();
    let mut progress = opts.subscribe();
    let proxy = tokio::spawn(run(client, dp.clone(), opts));

    // Services are listed, slices are not: the pass the Service list made due
    // comes and applies nothing.
    wait_for(&mut progress, "a pass held back by the slice list", |p| {
        p.held_back >= 1
    })
    .await;
    assert_eq!(progress.borrow().generation, 0);
    assert_eq!(dp.frontends(), vec![(stale, 0)]);

    slices_list.release();
    wait_for(&mut progress, "the first apply", |p| p.generation >= 1).await;
    assert_eq!(dp.frontends(), vec![(frontend([10, 96, 0, 10], 80), 1)]);
    {
        let p = progress.borrow();
        assert_eq!((p.frontends, p.backends), (1, 1));
        assert!(p.error.is_none());
    }

    // A watch event scales web to two endpoints (once both watches are
    // subscribed, so the event reaches a live watch).
    tokio::time::timeout(Duration::from_secs(10), watching.wait_for(|n| *n >= 2))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for the watches"))
        .unwrap();
    api.insert(
        SLICES,
        serde_json::to_value(slice(
            "default",
            "web",
            "web-a",
            &[("", 8080, "TCP")],
            &[("10.244.0.5", None), ("10.244.0.6", None)],
        ))
        .unwrap(),
    );
    wait_for(&mut progress, "the scale-up", |p| p.backends == 2).await;
    assert_eq!(dp.frontends(), vec![(frontend([10, 96, 0, 10], 80), 2)]);
    assert_eq!(dp.lock().backends().unwrap().len(), 2);

    // Deleting the Service removes everything.
    api.remove(&format!("{SERVICES}/web")).expect("web exists");
    wait_for(&mut progress, "the deletion", |p| p.frontends == 0).await;
    assert!(dp.frontends().is_empty());
    assert!(dp.lock().backends().unwrap().is_empty());
    assert!(dp.lock().rev_nats().unwrap().is_empty());
    proxy.abort();
}

#[tokio::test]
async fn the_periodic_full_pass_repairs_an_entry_changed_behind_the_proxys_back() {
    let api = FakeApi::default();
    api.insert(
        SERVICES,
        serde_json::to_value(service("default", "web", "10.96.0.10", &[("", 80, "TCP")])).unwrap(),
    );
    api.insert(
        SLICES,
        serde_json::to_value(slice(
            "default",
            "web",
            "web-a",
            &[("", 8080, "TCP")],
            &[("10.244.0.5", None)],
        ))
        .unwrap(),
    );
    let dp = Shared::default();
    let opts = Options {
        resync: Duration::from_millis(50),
        ..Options::new()
    };
    let mut progress = opts.subscribe();
    let proxy = tokio::spawn(run(api.client(), dp.clone(), opts));
    wait_for(&mut progress, "the first apply", |p| p.generation >= 1).await;
    // Someone deletes the backend and zeroes the frontend's count.
    let key = frontend([10, 96, 0, 10], 80);
    {
        let mut maps = dp.lock();
        let id = *maps.backends.keys().next().expect("one backend");
        maps.remove_backend(&id).unwrap();
        let mut value = maps.services[&key];
        value.count = 0;
        maps.upsert_service(key, value).unwrap();
    }
    wait_for(&mut progress, "a repairing pass", |p| p.repaired >= 2).await;
    // Count restored, and the backend is back (under a fresh id: freed ids
    // are not reused soon) with the slot naming it.
    assert_eq!(dp.frontends(), vec![(key, 1)]);
    {
        let maps = dp.lock();
        let backends = maps.backends().unwrap();
        assert_eq!(backends.len(), 1);
        let (id, value) = backends[0];
        assert_eq!(
            (value.addr.to_ipv4(), value.port.to_host()),
            ([10, 244, 0, 5].into(), 8080)
        );
        assert_eq!(maps.services[&key.with_slot(1)].backend_id, id.id);
    }
    assert!(progress.borrow().verified >= 1);
    proxy.abort();
}
