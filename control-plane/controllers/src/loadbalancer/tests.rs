use super::*;
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

fn pool() -> Ipv4Net {
    "172.30.0.240/29".parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn svc(name: &str, ty: &str, ingress: &[&str]) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            creation_timestamp: Some(Time(
                format!("2026-12-01T00:00:0{}Z", name.len() % 10)
                    .parse()
                    .unwrap(),
            )),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(ty.into()),
            ..ServiceSpec::default()
        }),
        status: Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: (!ingress.is_empty()).then(|| {
                    ingress
                        .iter()
                        .map(|i| LoadBalancerIngress {
                            ip: Some((*i).into()),
                            ..LoadBalancerIngress::default()
                        })
                        .collect()
                }),
            }),
            ..ServiceStatus::default()
        }),
    }
}

#[test]
fn a_new_load_balancer_gets_the_lowest_free_address() {
    let s = svc("web", "LoadBalancer", &[]);
    assert_eq!(
        decide(&s, pool(), &BTreeSet::new()),
        Decision::Assign(ip("172.30.0.241"))
    );
    let taken = [ip("172.30.0.241"), ip("172.30.0.242")].into();
    assert_eq!(
        decide(&s, pool(), &taken),
        Decision::Assign(ip("172.30.0.243"))
    );
}

#[test]
fn the_pool_ends_are_not_handed_out_and_exhaustion_is_reported() {
    let s = svc("web", "LoadBalancer", &[]);
    let all: BTreeSet<Ipv4Addr> = (241..=246).map(|i| Ipv4Addr::new(172, 30, 0, i)).collect();
    assert_eq!(usable(pool()).collect::<BTreeSet<_>>(), all);
    assert_eq!(decide(&s, pool(), &all), Decision::Exhausted);
    // A one-address pool hands out that address.
    let one: Ipv4Net = "172.30.0.250/32".parse().unwrap();
    assert_eq!(
        decide(&s, one, &BTreeSet::new()),
        Decision::Assign(ip("172.30.0.250"))
    );
}

#[test]
fn an_address_is_kept_and_a_requested_one_honoured_when_free() {
    let has = svc("web", "LoadBalancer", &["172.30.0.244"]);
    assert_eq!(decide(&has, pool(), &BTreeSet::new()), Decision::Keep);
    let mut wants = svc("web", "LoadBalancer", &[]);
    wants.spec.as_mut().unwrap().load_balancer_ip = Some("172.30.0.245".into());
    assert_eq!(
        decide(&wants, pool(), &BTreeSet::new()),
        Decision::Assign(ip("172.30.0.245"))
    );
    // Taken, or outside the pool: the next free one instead.
    let taken = [ip("172.30.0.245")].into();
    assert_eq!(
        decide(&wants, pool(), &taken),
        Decision::Assign(ip("172.30.0.241"))
    );
    wants.spec.as_mut().unwrap().load_balancer_ip = Some("10.0.0.1".into());
    assert_eq!(
        decide(&wants, pool(), &BTreeSet::new()),
        Decision::Assign(ip("172.30.0.241"))
    );
}

#[test]
fn others_and_former_load_balancers_are_cleared_or_left_alone() {
    let former = svc("web", "ClusterIP", &["172.30.0.241"]);
    assert_eq!(decide(&former, pool(), &BTreeSet::new()), Decision::Clear);
    let plain = svc("web", "ClusterIP", &[]);
    assert_eq!(decide(&plain, pool(), &BTreeSet::new()), Decision::Keep);
    let mut other_class = svc("web", "LoadBalancer", &[]);
    other_class.spec.as_mut().unwrap().load_balancer_class = Some("example.com/lb".into());
    assert!(!is_ours(&other_class));
    assert_eq!(
        decide(&other_class, pool(), &BTreeSet::new()),
        Decision::Keep
    );
    let mut ours = svc("web", "LoadBalancer", &[]);
    ours.spec.as_mut().unwrap().load_balancer_class = Some(CLASS.into());
    assert!(is_ours(&ours));
}

#[test]
fn of_two_services_claiming_one_address_the_older_keeps_it() {
    // "a" sorts older than "bb" by creation time (the fixture derives it from the name).
    let older = Arc::new(svc("a", "LoadBalancer", &["172.30.0.241"]));
    let newer = Arc::new(svc("bb", "LoadBalancer", &["172.30.0.241"]));
    let all = vec![older.clone(), newer.clone()];
    let for_newer = taken_by_others(&newer, &all, pool());
    assert!(for_newer.contains(&ip("172.30.0.241")));
    assert_eq!(
        decide(&newer, pool(), &for_newer),
        Decision::Assign(ip("172.30.0.242"))
    );
    let for_older = taken_by_others(&older, &all, pool());
    assert!(!for_older.contains(&ip("172.30.0.241")));
    assert_eq!(decide(&older, pool(), &for_older), Decision::Keep);
}
