//! `LoadBalancer` IPAM: gives each `type: LoadBalancer` Service an address from the configured
//! pool and writes it to `status.loadBalancer.ingress` (as a cloud's service controller
//! would; the nodes then answer and announce it).
//!
//! Level-triggered and stateless: the addresses in use are read back from the Services'
//! statuses on every pass. A Service keeps the address it has (when it is in the pool and no
//! older Service holds it); a requested `spec.loadBalancerIP` is honoured when free; else the
//! lowest free address is taken. A Service that stops being a `LoadBalancer` (or names another
//! `loadBalancerClass`) gets its status cleared, which frees the address.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use sluice_k8s_values::Ipv4Net;

use crate::common::{self, Backoffs};

/// The `loadBalancerClass` this controller implements besides the default (none).
pub const CLASS: &str = "sluice.dev/lb";

/// Why a Service could not get an address.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    /// Every address of the pool is in use.
    #[error("no free address left in the LoadBalancer pool {pool}")]
    Exhausted {
        /// The pool.
        pool: Ipv4Net,
    },
    /// An API call failed.
    #[error("writing the status of service {service}: {source}")]
    Api {
        /// `namespace/name`.
        service: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

/// What a Service's status should become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Its status is right as it is.
    Keep,
    /// Give it this address.
    Assign(Ipv4Addr),
    /// It is no `LoadBalancer` of ours (any more): clear the addresses we gave it.
    Clear,
    /// It is one of ours, but the pool has no free address.
    Exhausted,
}

/// Whether this controller serves `svc`: `type: LoadBalancer` and no class or ours.
#[must_use]
pub fn is_ours(svc: &Service) -> bool {
    svc.spec.as_ref().is_some_and(|s| {
        s.type_.as_deref() == Some("LoadBalancer")
            && s.load_balancer_class.as_deref().is_none_or(|c| c == CLASS)
    })
}

/// The IPv4 ingress addresses in a Service's status.
#[must_use]
pub fn ingress_ips(svc: &Service) -> Vec<Ipv4Addr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

/// The usable addresses of `pool`: all but its network and broadcast addresses (for pools
/// of /30 or wider).
fn usable(pool: Ipv4Net) -> impl Iterator<Item = Ipv4Addr> {
    let skip_ends = pool.prefix_len() <= 30;
    pool.hosts()
        .chain(std::iter::once(pool.broadcast()))
        .filter(move |ip| !skip_ends || (*ip != pool.network() && *ip != pool.broadcast()))
        .collect::<BTreeSet<_>>()
        .into_iter()
}

/// The decision for `svc`, given the pool addresses `taken` by other Services.
#[must_use]
pub fn decide(svc: &Service, pool: Ipv4Net, taken: &BTreeSet<Ipv4Addr>) -> Decision {
    let current = ingress_ips(svc);
    if !is_ours(svc) {
        return if current.iter().any(|ip| pool.contains(ip)) {
            Decision::Clear
        } else {
            Decision::Keep
        };
    }
    if let [ip] = current.as_slice()
        && pool.contains(ip)
        && !taken.contains(ip)
    {
        return Decision::Keep;
    }
    let requested = svc
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_ip.as_deref())
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        .filter(|ip| pool.contains(ip) && !taken.contains(ip));
    if let Some(ip) = requested {
        return Decision::Assign(ip);
    }
    usable(pool)
        .find(|ip| !taken.contains(ip))
        .map_or(Decision::Exhausted, Decision::Assign)
}

/// The pool addresses other Services hold: the statuses, where two claim one address the
/// older Service (then the smaller `namespace/name`) keeps it.
fn taken_by_others(svc: &Service, all: &[Arc<Service>], pool: Ipv4Net) -> BTreeSet<Ipv4Addr> {
    let me = common::key_of(svc);
    let rank = |s: &Service| (s.metadata.creation_timestamp.clone(), common::key_of(s));
    let mine = rank(svc);
    let my_ips = ingress_ips(svc);
    all.iter()
        .filter(|o| common::key_of(o.as_ref()) != me && is_ours(o))
        .flat_map(|o| {
            let older = rank(o) < mine;
            let my_ips = &my_ips;
            ingress_ips(o)
                .into_iter()
                .filter(move |ip| pool.contains(ip) && (older || !my_ips.contains(ip)))
        })
        .collect()
}

struct Ctx {
    client: Client,
    services: Store<Service>,
    pool: Ipv4Net,
    /// Addresses handed out that the cache may not show yet: service key -> address.
    pending: Mutex<HashMap<String, Ipv4Addr>>,
    backoffs: Backoffs,
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, LbError> {
    let key = common::key_of(svc.as_ref());
    let all = ctx.services.state();
    let mut taken = taken_by_others(&svc, &all, ctx.pool);
    {
        let mut pending = ctx
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget what the cache now shows (or what belongs to Services that are gone).
        pending.retain(|k, ip| {
            all.iter()
                .find(|s| common::key_of(s.as_ref()) == *k)
                .is_some_and(|s| is_ours(s) && !ingress_ips(s).contains(ip))
        });
        taken.extend(
            pending
                .iter()
                .filter(|(k, _)| **k != key)
                .map(|(_, ip)| *ip),
        );
        if pending.contains_key(&key) {
            return Ok(Action::requeue(Duration::from_secs(2)));
        }
    }
    let status = match decide(&svc, ctx.pool, &taken) {
        Decision::Keep => return Ok(Action::await_change()),
        Decision::Exhausted => return Err(LbError::Exhausted { pool: ctx.pool }),
        Decision::Clear => serde_json::json!({"status": {"loadBalancer": {}}}),
        Decision::Assign(ip) => serde_json::json!({"status": {"loadBalancer": {"ingress": [
            {"ip": ip.to_string(), "ipMode": "VIP"}
        ]}}}),
    };
    let ns = svc.namespace().unwrap_or_default();
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    match api
        .patch_status(
            &svc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
    {
        Ok(_) => {}
        Err(e) if common::is_not_found(&e) => return Ok(Action::await_change()),
        Err(source) => {
            return Err(LbError::Api {
                service: key,
                source,
            });
        }
    }
    if let Some(ip) = status["status"]["loadBalancer"]["ingress"][0]["ip"]
        .as_str()
        .and_then(|ip| ip.parse().ok())
    {
        tracing::info!(service = %key, %ip, "assigned a LoadBalancer address");
        ctx.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.clone(), ip);
    } else {
        tracing::info!(service = %key, "cleared a LoadBalancer address");
    }
    ctx.backoffs.reset(&key);
    Ok(Action::await_change())
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "kube's Controller::run passes the object and the context by value"
)]
fn error_policy(svc: Arc<Service>, err: &LbError, ctx: Arc<Ctx>) -> Action {
    common::error_policy(svc.as_ref(), err, &ctx.backoffs, "loadbalancer-ipam")
}

/// Runs `LoadBalancer` IPAM until dropped; without a pool it does nothing (`LoadBalancer`
/// Services then stay pending, as upstream's without a cloud provider).
pub async fn run(client: Client, config: crate::Config) {
    let Some(pool) = config.lb_pool else {
        return;
    };
    let controller = Controller::new(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .with_config(kube::runtime::controller::Config::default().concurrency(1));
    let services = controller.store();
    let ctx = Arc::new(Ctx {
        client,
        services,
        pool,
        pending: Mutex::new(HashMap::new()),
        backoffs: Backoffs::default(),
    });
    tracing::info!(%pool, "LoadBalancer IPAM");
    common::drain(
        "loadbalancer-ipam",
        controller.run(reconcile, error_policy, ctx),
    )
    .await;
}

#[cfg(test)]
mod tests;
