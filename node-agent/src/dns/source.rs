//! Keeps [`Records`] in line with the API: reflectors of Services,
//! `EndpointSlices` and Namespaces, and per-Service recompilation on every
//! watch event.

use std::collections::{BTreeSet, HashMap};
use std::pin::pin;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

use super::DnsError;
use super::records::{Records, ServiceName};
use crate::proxy::desired::SERVICE_NAME_LABEL;

/// Follows Services, `EndpointSlices` and Namespaces of all namespaces and
/// keeps `records` equal to what they publish, until a watch ends.
///
/// A Service event, or an `EndpointSlice` event for a slice labelled with a
/// Service's name, recompiles that one Service and swaps its entry in place
/// (no timer, no whole-zone rebuild); a completed (re)list of any kind
/// rebuilds the whole zone from the stores and replaces it at once. The
/// records are marked synced once all three kinds have listed. Watch errors
/// are retried with kube's default backoff.
///
/// # Errors
/// [`DnsError::WatchEnded`] when a watch stream ends.
pub async fn follow(client: kube::Client, records: watch::Sender<Records>) -> Result<(), DnsError> {
    let (services, services_writer) = reflector::store::<Service>();
    let (slices, slices_writer) = reflector::store::<EndpointSlice>();
    let (namespaces, namespaces_writer) = reflector::store::<Namespace>();
    let mut service_events = pin!(
        reflector::reflector(
            services_writer,
            watcher(
                Api::<Service>::all(client.clone()),
                watcher::Config::default()
            ),
        )
        .default_backoff()
    );
    let mut slice_events = pin!(
        reflector::reflector(
            slices_writer,
            watcher(
                Api::<EndpointSlice>::all(client.clone()),
                watcher::Config::default()
            ),
        )
        .default_backoff()
    );
    let mut namespace_events = pin!(
        reflector::reflector(
            namespaces_writer,
            watcher(Api::<Namespace>::all(client), watcher::Config::default()),
        )
        .default_backoff()
    );

    let mut zone = Zone {
        services,
        slices,
        namespaces,
        by_service: HashMap::new(),
        owner: HashMap::new(),
        listed: [false; 3],
    };
    loop {
        tokio::select! {
            event = service_events.next() => {
                match event.ok_or(DnsError::WatchEnded { kind: "Service" })? {
                    Ok(watcher::Event::Apply(svc) | watcher::Event::Delete(svc)) => {
                        if let Some(name) = ServiceName::of(&svc) {
                            zone.recompile(&records, &name);
                        }
                    }
                    Ok(watcher::Event::InitDone) => zone.listed(0, &records),
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                    Err(e) => tracing::warn!(kind = "Service", error = %e, "watch failed; retrying"),
                }
            }
            event = slice_events.next() => {
                match event.ok_or(DnsError::WatchEnded { kind: "EndpointSlice" })? {
                    Ok(watcher::Event::Apply(slice)) => {
                        for name in zone.index_slice(&slice, true) {
                            zone.recompile(&records, &name);
                        }
                    }
                    Ok(watcher::Event::Delete(slice)) => {
                        for name in zone.index_slice(&slice, false) {
                            zone.recompile(&records, &name);
                        }
                    }
                    Ok(watcher::Event::InitDone) => zone.listed(1, &records),
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                    Err(e) => tracing::warn!(kind = "EndpointSlice", error = %e, "watch failed; retrying"),
                }
            }
            event = namespace_events.next() => {
                match event.ok_or(DnsError::WatchEnded { kind: "Namespace" })? {
                    Ok(watcher::Event::Apply(ns)) => {
                        if let Some(name) = ns.metadata.name.as_deref() {
                            records.send_modify(|r| r.set_namespace(name, true));
                        }
                    }
                    Ok(watcher::Event::Delete(ns)) => {
                        if let Some(name) = ns.metadata.name.as_deref() {
                            records.send_modify(|r| r.set_namespace(name, false));
                        }
                    }
                    Ok(watcher::Event::InitDone) => zone.listed(2, &records),
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                    Err(e) => tracing::warn!(kind = "Namespace", error = %e, "watch failed; retrying"),
                }
            }
        }
    }
}

/// The stores and the index from a Service to the slices that name it.
struct Zone {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    namespaces: Store<Namespace>,
    /// Service -> names of the `EndpointSlices` (in its namespace) labelled with it.
    by_service: HashMap<ServiceName, BTreeSet<String>>,
    /// `(namespace, slice)` -> the Service it was last indexed under.
    owner: HashMap<(String, String), ServiceName>,
    /// Services, slices, namespaces: whether each has completed a list.
    listed: [bool; 3],
}

impl Zone {
    /// Indexes `slice` (or unindexes it when `present` is false); returns the
    /// Services whose records it may change (its old and its new owner).
    fn index_slice(&mut self, slice: &EndpointSlice, present: bool) -> Vec<ServiceName> {
        let (Some(namespace), Some(name)) = (
            slice.metadata.namespace.as_deref(),
            slice.metadata.name.as_deref(),
        ) else {
            return Vec::new();
        };
        let key = (namespace.to_owned(), name.to_owned());
        let new_owner = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .filter(|_| present)
            .map(|svc| ServiceName::new(namespace, svc));
        let mut touched = Vec::new();
        if let Some(old) = self.owner.remove(&key) {
            if let Some(names) = self.by_service.get_mut(&old) {
                names.remove(name);
                if names.is_empty() {
                    self.by_service.remove(&old);
                }
            }
            touched.push(old);
        }
        if let Some(owner) = new_owner {
            self.by_service
                .entry(owner.clone())
                .or_default()
                .insert(name.to_owned());
            self.owner.insert(key, owner.clone());
            if !touched.contains(&owner) {
                touched.push(owner);
            }
        }
        touched
    }

    /// Recompiles Service `name` from the stores and swaps its records.
    fn recompile(&self, records: &watch::Sender<Records>, name: &ServiceName) {
        let service = self
            .services
            .get(&ObjectRef::new(&name.name).within(&name.namespace));
        let slices = self.slices_of(name);
        records.send_if_modified(|r| match &service {
            Some(service) => r.upsert_service(service, slices.iter().map(AsRef::as_ref)),
            None => r.set_service(name.clone(), None),
        });
    }

    fn slices_of(&self, name: &ServiceName) -> Vec<std::sync::Arc<EndpointSlice>> {
        self.by_service
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|slice| {
                self.slices
                    .get(&ObjectRef::new(slice).within(&name.namespace))
            })
            .collect()
    }

    /// Kind `kind` completed a (re)list: rebuild the index and the zone.
    fn listed(&mut self, kind: usize, records: &watch::Sender<Records>) {
        self.listed[kind] = true;
        self.by_service.clear();
        self.owner.clear();
        for slice in self.slices.state() {
            self.index_slice(&slice, true);
        }
        let mut fresh = records.borrow().empty_like();
        for ns in self.namespaces.state() {
            if let Some(name) = ns.metadata.name.as_deref() {
                fresh.set_namespace(name, true);
            }
        }
        for service in self.services.state() {
            if let Some(name) = ServiceName::of(&service) {
                let slices = self.slices_of(&name);
                fresh.upsert_service(&service, slices.iter().map(AsRef::as_ref));
            }
        }
        fresh.set_synced(self.listed.iter().all(|l| *l));
        tracing::info!(
            services = fresh.service_count(),
            synced = fresh.synced(),
            "cluster DNS records rebuilt"
        );
        records.send_replace(fresh);
    }
}
