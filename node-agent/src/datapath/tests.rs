use super::{
    BackendKey, BackendValue, Be16, Be32, DatapathError, DatapathOps, FakeDatapath, PROTO_TCP,
    RevNatKey, RevNatValue, ServiceKey, ServiceValue,
};

fn vip() -> ServiceKey {
    ServiceKey::frontend(
        Be32::from_octets([10, 96, 0, 10]),
        Be16::from_host(80),
        PROTO_TCP,
    )
}

fn backend(last: u8, port: u16) -> BackendValue {
    BackendValue::new(
        Be32::from_octets([10, 244, 0, last]),
        Be16::from_host(port),
        PROTO_TCP,
    )
}

#[test]
fn removal_of_missing_entries_succeeds() {
    let mut dp = FakeDatapath::new();
    dp.remove_service(&vip()).unwrap();
    dp.remove_backend(&BackendKey { id: 1 }).unwrap();
}

#[test]
fn full_maps_report_map_full() {
    let mut dp = FakeDatapath::with_capacity(2, 1);
    dp.upsert_backend(BackendKey { id: 1 }, backend(1, 80))
        .unwrap();
    // Replacing an existing key needs no room.
    dp.upsert_backend(BackendKey { id: 1 }, backend(2, 80))
        .unwrap();
    let err = dp
        .upsert_backend(BackendKey { id: 2 }, backend(2, 80))
        .unwrap_err();
    assert!(matches!(err, DatapathError::MapFull { .. }), "{err}");

    // The services map holds two entries: a third is refused, a rewrite is not.
    dp.upsert_service(vip(), ServiceValue::frontend(1, 0, 1))
        .unwrap();
    dp.upsert_service(vip().with_slot(1), ServiceValue::backend_slot(1, 1))
        .unwrap();
    dp.upsert_service(vip(), ServiceValue::frontend(1, 0, 2))
        .unwrap();
    let err = dp
        .upsert_service(vip().with_slot(2), ServiceValue::backend_slot(1, 1))
        .unwrap_err();
    assert!(
        matches!(err, DatapathError::MapFull { map } if map == super::SERVICES_MAP),
        "{err}"
    );
}

fn frontend(last: u8, port: u16) -> RevNatValue {
    RevNatValue::new(Be32::from_octets([10, 96, 0, last]), Be16::from_host(port))
}

#[test]
fn rev_nat_upsert_replace_and_dump_sorted() {
    let mut dp = FakeDatapath::new();
    dp.upsert_rev_nat(RevNatKey::new(3), frontend(3, 53))
        .unwrap();
    dp.upsert_rev_nat(RevNatKey::new(1), frontend(1, 80))
        .unwrap();
    // Replacing keeps one entry per id.
    dp.upsert_rev_nat(RevNatKey::new(1), frontend(1, 443))
        .unwrap();

    assert_eq!(
        dp.rev_nats().unwrap(),
        vec![
            (RevNatKey::new(1), frontend(1, 443)),
            (RevNatKey::new(3), frontend(3, 53)),
        ]
    );
    assert_eq!(RevNatKey::new(1).pad, [0; 2]);
    assert_eq!(frontend(1, 443).pad, [0; 2]);
}

#[test]
fn rev_nat_removal_is_idempotent_and_leaves_other_maps() {
    let mut dp = FakeDatapath::new();
    dp.upsert_service(vip(), ServiceValue::frontend(1, 0, 1))
        .unwrap();
    dp.upsert_service(vip().with_slot(1), ServiceValue::backend_slot(1, 1))
        .unwrap();
    dp.upsert_rev_nat(RevNatKey::new(1), frontend(10, 80))
        .unwrap();
    dp.remove_rev_nat(&RevNatKey::new(1)).unwrap();
    dp.remove_rev_nat(&RevNatKey::new(1)).unwrap();
    dp.remove_rev_nat(&RevNatKey::new(9)).unwrap();

    assert!(dp.rev_nats().unwrap().is_empty());
    assert_eq!(dp.services.len(), 2);
}

#[test]
fn full_rev_nat_map_reports_map_full() {
    let mut dp = FakeDatapath::new().with_rev_nat_capacity(1);
    dp.upsert_rev_nat(RevNatKey::new(1), frontend(1, 80))
        .unwrap();
    dp.upsert_rev_nat(RevNatKey::new(1), frontend(2, 80))
        .unwrap();
    let err = dp
        .upsert_rev_nat(RevNatKey::new(2), frontend(2, 80))
        .unwrap_err();
    assert!(
        matches!(err, DatapathError::MapFull { map } if map == super::REV_NAT_MAP),
        "{err}"
    );
}
