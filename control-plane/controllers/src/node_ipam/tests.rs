use super::*;

fn c(s: &str) -> Ipv4Net {
    cidr::parse(s).unwrap()
}

#[test]
fn first_free_range() {
    assert_eq!(
        allocate(c("10.244.0.0/16"), 24, &[]).unwrap(),
        c("10.244.0.0/24")
    );
    assert_eq!(
        allocate(
            c("10.244.0.0/16"),
            24,
            &[c("10.244.0.0/24"), c("10.244.1.0/24")]
        )
        .unwrap(),
        c("10.244.2.0/24")
    );
}

#[test]
fn skips_holes_and_overlaps() {
    let used = [c("10.244.0.0/24"), c("10.244.2.0/24")];
    assert_eq!(
        allocate(c("10.244.0.0/16"), 24, &used).unwrap(),
        c("10.244.1.0/24")
    );
    // A foreign, wider range blocks everything it covers.
    let used = [c("10.244.0.0/23")];
    assert_eq!(
        allocate(c("10.244.0.0/16"), 24, &used).unwrap(),
        c("10.244.2.0/24")
    );
    // A narrower range inside a candidate blocks that candidate.
    let used = [c("10.244.0.128/25")];
    assert_eq!(
        allocate(c("10.244.0.0/16"), 24, &used).unwrap(),
        c("10.244.1.0/24")
    );
}

#[test]
fn exhaustion() {
    let used = [c("10.0.0.0/25"), c("10.0.0.128/25")];
    assert!(matches!(
        allocate(c("10.0.0.0/24"), 25, &used),
        Err(IpamError::Exhausted { mask: 25, .. })
    ));
    assert!(matches!(
        allocate(c("10.0.0.0/24"), 16, &[]),
        Err(IpamError::BadMask { .. })
    ));
    assert_eq!(
        allocate(c("10.0.0.0/24"), 24, &[]).unwrap(),
        c("10.0.0.0/24")
    );
}

#[test]
fn cidr_parsing() {
    assert_eq!(
        c("10.244.3.7/16").to_string(),
        "10.244.0.0/16",
        "host bits cleared"
    );
    assert!(cidr::parse("10.0.0.0").is_err());
    assert!(cidr::parse("10.0.0.0/33").is_err());
    assert!(cidr::overlaps(c("10.0.0.0/8"), c("10.1.0.0/16")));
    assert!(!cidr::overlaps(c("10.0.0.0/24"), c("10.0.1.0/24")));
}

#[tokio::test]
async fn patches_nodes_without_overlap() {
    use crate::common::test_store;
    use serde_json::json;
    use sluice_test_util::fake_api::FakeApi;
    let fake = FakeApi::default();
    let with: Node = serde_json::from_value(
        json!({ "metadata": { "name": "a" }, "spec": { "podCIDR": "10.244.0.0/24" } }),
    )
    .unwrap();
    let without: Node = serde_json::from_value(json!({ "metadata": { "name": "b" } })).unwrap();
    let also: Node = serde_json::from_value(json!({ "metadata": { "name": "c" } })).unwrap();
    for n in [&with, &without, &also] {
        fake.insert("api/v1/nodes", serde_json::to_value(n).unwrap());
    }
    let ctx = Arc::new(Ctx {
        client: fake.client(),
        nodes: test_store((), vec![with.clone(), without.clone(), also.clone()]),
        cluster: c("10.244.0.0/16"),
        mask: 24,
        pending: Mutex::new(HashMap::new()),
        backoffs: Backoffs::default(),
    });
    reconcile(Arc::new(with), ctx.clone()).await.unwrap();
    assert!(fake.take_writes().is_empty());
    reconcile(Arc::new(without), ctx.clone()).await.unwrap();
    // The cache still shows b without a range; c must not get the same one.
    reconcile(Arc::new(also), ctx).await.unwrap();
    let b = fake.get("api/v1/nodes/b").unwrap();
    assert_eq!(b["spec"]["podCIDR"], "10.244.1.0/24");
    assert_eq!(b["spec"]["podCIDRs"], json!(["10.244.1.0/24"]));
    assert_eq!(
        fake.get("api/v1/nodes/c").unwrap()["spec"]["podCIDR"],
        "10.244.2.0/24"
    );
}
