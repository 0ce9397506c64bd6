//! The built-in kinds: one file each, one line each in [`builtins`].

pub mod apiservice;
pub mod clusterrole;
pub mod clusterrolebinding;
pub mod configmap;
pub mod controllerrevision;
pub mod cronjob;
pub mod csidriver;
pub mod csinode;
pub mod customresourcedefinition;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod event;
pub mod events_v1;
pub mod hpa_v1;
pub mod hpa_v2;
pub mod ingress;
pub mod ingressclass;
pub mod job;
pub mod lease;
pub mod limitrange;
pub mod namespace;
pub mod networkpolicy;
pub mod node;
pub mod persistentvolume;
pub mod persistentvolumeclaim;
pub mod pod;
pub mod poddisruptionbudget;
pub mod podtemplate;
pub mod priorityclass;
pub mod replicaset;
pub mod replicationcontroller;
pub mod resourcequota;
pub mod role;
pub mod rolebinding;
pub mod secret;
pub mod service;
pub mod serviceaccount;
pub mod statefulset;
pub mod storageclass;
pub mod volumeattachment;

use super::Resource;

/// Every built-in resource, in discovery order (core first).
#[must_use]
pub fn builtins() -> Vec<Resource> {
    vec![
        namespace::resource(),
        node::resource(),
        pod::resource(),
        service::resource(),
        endpoints::resource(),
        serviceaccount::resource(),
        configmap::resource(),
        secret::resource(),
        event::resource(),
        replicationcontroller::resource(),
        persistentvolume::resource(),
        persistentvolumeclaim::resource(),
        podtemplate::resource(),
        resourcequota::resource(),
        limitrange::resource(),
        deployment::resource(),
        replicaset::resource(),
        daemonset::resource(),
        statefulset::resource(),
        controllerrevision::resource(),
        job::resource(),
        cronjob::resource(),
        hpa_v2::resource(),
        hpa_v1::resource(),
        endpointslice::resource(),
        events_v1::resource(),
        lease::resource(),
        storageclass::resource(),
        csidriver::resource(),
        csinode::resource(),
        volumeattachment::resource(),
        poddisruptionbudget::resource(),
        ingress::resource(),
        ingressclass::resource(),
        networkpolicy::resource(),
        role::resource(),
        clusterrole::resource(),
        rolebinding::resource(),
        clusterrolebinding::resource(),
        priorityclass::resource(),
        apiservice::resource(),
        customresourcedefinition::resource(),
    ]
}
