//! The pod worker: one task per pod bound to this node. Each tick it observes the runtime
//! (sandbox and containers through CRI), moves one step towards the pod's spec (sandbox,
//! init containers, containers, restarts with back-off, probes, graceful stop), and
//! writes `.status` when it changed.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::{EventType, Recorder};
use serde_json::{Value, json};
use sluice_proto::runtime::v1 as cri;
use tokio::sync::watch;

use super::probe::{self, Outcome};
use super::spec::{self, LABEL_POD_UID};
use super::status::{self, ContainerView, Observed, State};
use super::{Config, KubeletError, now, rfc3339_from_nanos};

/// Back-off after a container exits: 10 s doubling to 300 s; reset after 10 min of running.
const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_mins(5);
const BACKOFF_RESET: Duration = Duration::from_mins(10);
const TICK: Duration = Duration::from_millis(500);

/// Which probe of a container.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Readiness,
    Liveness,
}

#[derive(Debug, Default)]
struct Memo {
    backoff: Duration,
    backoff_until: Option<Instant>,
    /// The container id the probe state below belongs to.
    probed_id: String,
    liveness_failures: i32,
    readiness_ok: Option<bool>,
    readiness_streak: i32,
    next_liveness: Option<Instant>,
    next_readiness: Option<Instant>,
    waiting: Option<(String, String)>,
}

/// Per-pod state the worker keeps between ticks (everything else is observed).
pub struct Worker {
    uid: String,
    cfg: std::sync::Arc<Config>,
    client: kube::Client,
    recorder: Recorder,
    cri: sluice_proto::Clients,
    memo: HashMap<String, Memo>,
    start_time: Option<String>,
    last_status: Value,
    sandbox_error: Option<String>,
    /// Whether this step changed anything in the runtime (else the observation still holds).
    acted: bool,
}

/// The latest CRI view of a pod.
struct Runtime {
    sandbox: Option<cri::PodSandbox>,
    ip: Option<String>,
    /// Containers of the ready sandbox by name, newest attempt last.
    containers: BTreeMap<String, Vec<cri::Container>>,
}

fn grace_of(pod: &Pod) -> i64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
        .max(0)
}

impl Worker {
    /// A worker for one pod; `recorder` is the kubelet's (see [`super::recorder`]).
    pub fn new(
        uid: String,
        cfg: std::sync::Arc<Config>,
        client: kube::Client,
        recorder: Recorder,
        cri: sluice_proto::Clients,
    ) -> Self {
        Self {
            uid,
            cfg,
            client,
            recorder,
            cri,
            memo: HashMap::new(),
            start_time: None,
            last_status: Value::Null,
            sandbox_error: None,
            acted: false,
        }
    }

    /// Records an event about the pod or one of its containers (see [`super::event`]).
    async fn event(
        &self,
        pod: &Pod,
        container: Option<&str>,
        type_: EventType,
        action: &str,
        reason: &str,
        note: &str,
    ) {
        super::event(&self.recorder, pod, container, type_, action, reason, note).await;
    }

    /// Run until the pod is gone and its runtime objects are removed.
    pub async fn run(mut self, mut rx: watch::Receiver<Option<Pod>>) {
        loop {
            let pod = rx.borrow_and_update().clone();
            match pod {
                None => {
                    // Deleted from the API (force delete or after our final delete): clean up.
                    let uid = self.uid.clone();
                    if let Err(e) = self.kill_sandboxes(&uid, 0).await {
                        tracing::warn!(%uid, error = %e, "cleaning up a deleted pod");
                    }
                    remove_pod_logs(std::path::Path::new(&self.cfg.log_root()), &uid);
                    return;
                }
                // Boxed: a step's future is large (CRI requests and responses).
                Some(pod) => match Box::pin(self.step(&pod)).await {
                    Ok(true) => {
                        // Stopped, removed and deleted from the API: its logs go too.
                        remove_pod_logs(std::path::Path::new(&self.cfg.log_root()), &self.uid);
                        return;
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(pod = %name_of(&pod), error = %e, "pod sync failed"),
                },
            }
            tokio::select! {
                _ = rx.changed() => {}
                () = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// The pod's sandboxes (any state), by the uid label we set.
    async fn sandboxes_of(&mut self, uid: &str) -> Result<Vec<cri::PodSandbox>, KubeletError> {
        let filter = cri::PodSandboxFilter {
            label_selector: HashMap::from([(LABEL_POD_UID.to_string(), uid.to_string())]),
            ..Default::default()
        };
        let req = cri::ListPodSandboxRequest {
            filter: Some(filter),
        };
        Ok(self
            .cri
            .runtime
            .list_pod_sandbox(req)
            .await?
            .into_inner()
            .items)
    }

    /// The containers of one sandbox (any state).
    async fn containers_of(
        &mut self,
        sandbox_id: &str,
    ) -> Result<Vec<cri::Container>, KubeletError> {
        let filter = cri::ContainerFilter {
            pod_sandbox_id: sandbox_id.to_string(),
            ..Default::default()
        };
        let req = cri::ListContainersRequest {
            filter: Some(filter),
        };
        Ok(self
            .cri
            .runtime
            .list_containers(req)
            .await?
            .into_inner()
            .containers)
    }

    async fn observe(&mut self, uid: &str) -> Result<Runtime, KubeletError> {
        let sandboxes = self.sandboxes_of(uid).await?;
        let ready = sandboxes
            .into_iter()
            .filter(|s| s.state == cri::PodSandboxState::SandboxReady as i32)
            .max_by_key(|s| s.created_at);
        let mut rt = Runtime {
            sandbox: None,
            ip: None,
            containers: BTreeMap::new(),
        };
        if let Some(sb) = ready {
            let st = self
                .cri
                .runtime
                .pod_sandbox_status(cri::PodSandboxStatusRequest {
                    pod_sandbox_id: sb.id.clone(),
                    verbose: false,
                })
                .await?
                .into_inner();
            rt.ip = st
                .status
                .and_then(|s| s.network)
                .map(|n| n.ip)
                .filter(|ip| !ip.is_empty());
            let cs = self.containers_of(&sb.id).await?;
            for c in cs {
                let name = c
                    .metadata
                    .as_ref()
                    .map(|m| m.name.clone())
                    .unwrap_or_default();
                rt.containers.entry(name).or_default().push(c);
            }
            for v in rt.containers.values_mut() {
                v.sort_by_key(|c| c.metadata.as_ref().map_or(0, |m| m.attempt));
            }
            rt.sandbox = Some(sb);
        }
        Ok(rt)
    }

    /// One step. Returns true when the worker is done (pod deleted and cleaned up).
    async fn step(&mut self, pod: &Pod) -> Result<bool, KubeletError> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            self.kill_sandboxes(&uid, grace_of(pod)).await?;
            let api: Api<Pod> = Api::namespaced(
                self.client.clone(),
                pod.metadata.namespace.as_deref().unwrap_or("default"),
            );
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api
                .delete(pod.metadata.name.as_deref().unwrap_or_default(), &dp)
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
            return Ok(true);
        }
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            // Terminal pods keep their status; their sandbox is stopped.
            self.kill_sandboxes(&uid, 0).await?;
            return Ok(false);
        }
        let mut rt = self.observe(&uid).await?;
        if rt.sandbox.is_none() {
            self.run_sandbox(pod).await;
            rt = self.observe(&uid).await?;
        }
        if let Some(sb) = rt.sandbox.clone() {
            self.acted = false;
            Box::pin(self.sync_containers(pod, &sb, &rt)).await?;
            // In steady state nothing changed: report from what we just observed.
            if self.acted {
                rt = self.observe(&uid).await?;
            }
        }
        self.report(pod, &rt).await?;
        Ok(false)
    }

    async fn run_sandbox(&mut self, pod: &Pod) {
        let config = self.cfg.sandbox_config(pod);
        if let Err(e) = std::fs::create_dir_all(&config.log_directory) {
            self.sandbox_error = Some(format!("creating log directory: {e}"));
            return;
        }
        match self
            .cri
            .runtime
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await
        {
            Ok(_) => {
                self.sandbox_error = None;
                if self.start_time.is_none() {
                    self.start_time = Some(now());
                }
            }
            Err(e) => {
                let msg = format!("Failed to create pod sandbox: {}", e.message());
                if self.sandbox_error.as_deref() != Some(msg.as_str()) {
                    self.event(
                        pod,
                        None,
                        EventType::Warning,
                        "CreatePodSandbox",
                        "FailedCreatePodSandBox",
                        &msg,
                    )
                    .await;
                }
                self.sandbox_error = Some(msg);
            }
        }
    }

    async fn env_sources(&self, pod: &Pod, ip: &str) -> spec::EnvSources {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let mut src = spec::EnvSources {
            pod_ip: ip.to_string(),
            host_ip: self.cfg.node_ip.clone(),
            ..Default::default()
        };
        let spec = pod.spec.clone().unwrap_or_default();
        let all: Vec<Container> = spec
            .init_containers
            .clone()
            .unwrap_or_default()
            .into_iter()
            .chain(spec.containers.clone())
            .collect();
        let (mut cms, mut secrets) = (Vec::new(), Vec::new());
        for c in &all {
            for e in c.env.clone().unwrap_or_default() {
                if let Some(vf) = e.value_from {
                    if let Some(k) = vf.config_map_key_ref {
                        cms.push(k.name);
                    }
                    if let Some(k) = vf.secret_key_ref {
                        secrets.push(k.name);
                    }
                }
            }
            for f in c.env_from.clone().unwrap_or_default() {
                if let Some(r) = f.config_map_ref {
                    cms.push(r.name);
                }
                if let Some(r) = f.secret_ref {
                    secrets.push(r.name);
                }
            }
        }
        let cm_api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
        for name in cms {
            if let Ok(Some(cm)) = cm_api.get_opt(&name).await {
                src.config_maps.insert(name, cm.data.unwrap_or_default());
            }
        }
        let s_api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        for name in secrets {
            if let Ok(Some(s)) = s_api.get_opt(&name).await {
                let mut data: BTreeMap<String, String> = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).to_string()))
                    .collect();
                data.extend(s.string_data.unwrap_or_default());
                src.secrets.insert(name, data);
            }
        }
        src
    }

    async fn ensure_image(&mut self, pod: &Pod, c: &Container) -> Result<(), (String, String)> {
        let image = c.image.clone().unwrap_or_default();
        let spec = cri::ImageSpec {
            image: image.clone(),
            ..Default::default()
        };
        let present = match self
            .cri
            .image
            .image_status(cri::ImageStatusRequest {
                image: Some(spec.clone()),
                verbose: false,
            })
            .await
        {
            Ok(r) => r.into_inner().image.is_some(),
            Err(e) => return Err(("ErrImagePull".into(), e.message().to_string())),
        };
        let policy = c
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| "IfNotPresent".into());
        if present && policy != "Always" {
            return Ok(());
        }
        if policy == "Never" {
            return Err((
                "ErrImageNeverPull".into(),
                format!("Container image \"{image}\" is not present with pull policy of Never"),
            ));
        }
        match self
            .cri
            .image
            .pull_image(cri::PullImageRequest {
                image: Some(spec),
                auth: None,
                sandbox_config: None,
            })
            .await
        {
            Ok(_) => {
                self.event(
                    pod,
                    Some(&c.name),
                    EventType::Normal,
                    "PullImage",
                    "Pulled",
                    &format!("Successfully pulled image \"{image}\""),
                )
                .await;
                Ok(())
            }
            Err(e) => {
                let msg = format!("Failed to pull image \"{image}\": {}", e.message());
                self.event(
                    pod,
                    Some(&c.name),
                    EventType::Warning,
                    "PullImage",
                    "Failed",
                    &msg,
                )
                .await;
                Err(("ErrImagePull".into(), msg))
            }
        }
    }

    /// Start a container the runtime created but did not start (e.g. we crashed between the two).
    async fn start_created(&mut self, id: &str) {
        self.acted = true;
        let _ = self
            .cri
            .runtime
            .start_container(cri::StartContainerRequest {
                container_id: id.to_string(),
            })
            .await;
    }

    /// Create and start attempt `attempt` of a container.
    async fn start_container(
        &mut self,
        pod: &Pod,
        sb: &cri::PodSandbox,
        c: &Container,
        attempt: u32,
        ip: &str,
    ) {
        Box::pin(self.create_and_start(pod, sb, c, attempt, None, ip)).await;
    }

    /// An ephemeral container, in the process namespace of `target` (a container id) if set.
    async fn start_ephemeral(
        &mut self,
        pod: &Pod,
        sb: &cri::PodSandbox,
        c: &Container,
        target: Option<String>,
        ip: &str,
    ) {
        Box::pin(self.create_and_start(pod, sb, c, 0, target, ip)).await;
    }

    async fn create_and_start(
        &mut self,
        pod: &Pod,
        sb: &cri::PodSandbox,
        c: &Container,
        attempt: u32,
        pid_target: Option<String>,
        ip: &str,
    ) {
        self.acted = true;
        if let Err((reason, message)) = self.ensure_image(pod, c).await {
            self.memo.entry(c.name.clone()).or_default().waiting = Some((reason, message));
            return;
        }
        let src = self.env_sources(pod, ip).await;
        let envs = match spec::environment(pod, c, &src) {
            Ok(e) => e,
            Err(e) => {
                self.memo.entry(c.name.clone()).or_default().waiting =
                    Some(("CreateContainerConfigError".into(), e.to_string()));
                return;
            }
        };
        let sandbox_config = self.cfg.sandbox_config(pod);
        let _ = std::fs::create_dir_all(format!("{}/{}", sandbox_config.log_directory, c.name));
        let mut config = spec::container_config(pod, c, attempt, envs);
        if let Some(target) = pid_target
            && let Some(ns) = config
                .linux
                .as_mut()
                .and_then(|l| l.security_context.as_mut())
                .and_then(|s| s.namespace_options.as_mut())
        {
            ns.pid = cri::NamespaceMode::Target as i32;
            ns.target_id = target;
        }
        let created = self
            .cri
            .runtime
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: sb.id.clone(),
                config: Some(config),
                sandbox_config: Some(sandbox_config),
            })
            .await;
        let id = match created {
            Ok(r) => r.into_inner().container_id,
            Err(e) => {
                self.container_failed(pod, &c.name, "CreateContainerError", e.message())
                    .await;
                return;
            }
        };
        match self
            .cri
            .runtime
            .start_container(cri::StartContainerRequest {
                container_id: id.clone(),
            })
            .await
        {
            Ok(_) => {
                self.memo.entry(c.name.clone()).or_default().waiting = None;
                self.event(
                    pod,
                    Some(&c.name),
                    EventType::Normal,
                    "StartContainer",
                    "Started",
                    &format!("Started container {}", c.name),
                )
                .await;
            }
            Err(e) => {
                self.container_failed(pod, &c.name, "RunContainerError", e.message())
                    .await;
            }
        }
    }

    /// A container could not be created or started: say so in an event and in its
    /// waiting state.
    async fn container_failed(&mut self, pod: &Pod, container: &str, reason: &str, message: &str) {
        self.event(
            pod,
            Some(container),
            EventType::Warning,
            "StartContainer",
            "Failed",
            &format!("Error: {message}"),
        )
        .await;
        self.memo.entry(container.to_string()).or_default().waiting =
            Some((reason.to_string(), message.to_string()));
    }

    async fn status_of(&mut self, id: &str) -> Option<cri::ContainerStatus> {
        self.cri
            .runtime
            .container_status(cri::ContainerStatusRequest {
                container_id: id.to_string(),
                verbose: false,
            })
            .await
            .ok()?
            .into_inner()
            .status
    }

    /// Whether a dead container should run again, per restartPolicy.
    fn should_restart(policy: &str, exit_code: i32, init: bool) -> bool {
        match policy {
            "Always" => !init || exit_code != 0,
            "OnFailure" => exit_code != 0,
            _ => false,
        }
    }

    /// Start, restart (with back-off) and probe containers of a ready sandbox.
    async fn sync_containers(
        &mut self,
        pod: &Pod,
        sb: &cri::PodSandbox,
        rt: &Runtime,
    ) -> Result<(), KubeletError> {
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        let ip = rt.ip.clone().unwrap_or_default();
        // Init containers run one at a time, in order, each to success.
        for c in spec.init_containers.clone().unwrap_or_default() {
            match rt.containers.get(&c.name).and_then(|v| v.last()) {
                None => {
                    self.start_container(pod, sb, &c, 0, &ip).await;
                    return Ok(());
                }
                Some(cur) if cur.state == cri::ContainerState::ContainerExited as i32 => {
                    let code = self.status_of(&cur.id).await.map_or(1, |s| s.exit_code);
                    if code == 0 {
                        continue;
                    }
                    if Self::should_restart(&policy, code, true) {
                        self.restart_after_backoff(pod, sb, &c, &rt.containers[&c.name], &ip)
                            .await;
                    }
                    return Ok(());
                }
                Some(cur) if cur.state == cri::ContainerState::ContainerCreated as i32 => {
                    self.start_created(&cur.id).await;
                    return Ok(());
                }
                Some(_) => return Ok(()),
            }
        }
        for c in &spec.containers {
            match rt.containers.get(&c.name).and_then(|v| v.last()) {
                None => self.start_container(pod, sb, c, 0, &ip).await,
                Some(cur) if cur.state == cri::ContainerState::ContainerCreated as i32 => {
                    self.start_created(&cur.id).await;
                }
                Some(cur) if cur.state == cri::ContainerState::ContainerRunning as i32 => {
                    self.probe(pod, c, cur, &ip).await;
                }
                Some(cur) => {
                    let code = self.status_of(&cur.id).await.map_or(1, |s| s.exit_code);
                    if Self::should_restart(&policy, code, false) {
                        self.restart_after_backoff(pod, sb, c, &rt.containers[&c.name], &ip)
                            .await;
                    }
                }
            }
        }
        // Ephemeral containers run once each and are never restarted, whatever the policy.
        for (c, target) in spec::ephemeral_containers(pod) {
            match rt.containers.get(&c.name).and_then(|v| v.last()) {
                None => {
                    let target_id = target.and_then(|t| {
                        rt.containers
                            .get(&t)
                            .and_then(|v| v.last())
                            .filter(|cur| cur.state == cri::ContainerState::ContainerRunning as i32)
                            .map(|cur| cur.id.clone())
                    });
                    self.start_ephemeral(pod, sb, &c, target_id, &ip).await;
                }
                Some(cur) if cur.state == cri::ContainerState::ContainerCreated as i32 => {
                    self.start_created(&cur.id).await;
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// `attempts` are this container's attempts in the sandbox, oldest first; the last is dead.
    async fn restart_after_backoff(
        &mut self,
        pod: &Pod,
        sb: &cri::PodSandbox,
        c: &Container,
        attempts: &[cri::Container],
        ip: &str,
    ) {
        let Some(cur) = attempts.last() else { return };
        let status = self.status_of(&cur.id).await;
        let ran_for = status.as_ref().map_or(Duration::ZERO, |s| {
            Duration::from_nanos(u64::try_from((s.finished_at - s.started_at).max(0)).unwrap_or(0))
        });
        let memo = self.memo.entry(c.name.clone()).or_default();
        let now = Instant::now();
        match memo.backoff_until {
            None => {
                memo.backoff = if ran_for >= BACKOFF_RESET || memo.backoff.is_zero() {
                    BACKOFF_START
                } else {
                    (memo.backoff * 2).min(BACKOFF_MAX)
                };
                memo.backoff_until = Some(now + memo.backoff);
                let msg = format!(
                    "back-off {:?} restarting failed container={} pod={}",
                    memo.backoff,
                    c.name,
                    name_of(pod)
                );
                memo.waiting = Some(("CrashLoopBackOff".into(), msg.clone()));
                self.event(
                    pod,
                    Some(&c.name),
                    EventType::Warning,
                    "RestartContainer",
                    "BackOff",
                    &msg,
                )
                .await;
            }
            Some(t) if now < t => {}
            Some(_) => {
                memo.backoff_until = None;
                let attempt = cur.metadata.as_ref().map_or(0, |m| m.attempt) + 1;
                self.acted = true;
                // Keep only the last dead attempt (for lastState and logs).
                for old in &attempts[..attempts.len() - 1] {
                    let _ = self
                        .cri
                        .runtime
                        .remove_container(cri::RemoveContainerRequest {
                            container_id: old.id.clone(),
                        })
                        .await;
                }
                self.start_container(pod, sb, c, attempt, ip).await;
            }
        }
    }

    async fn probe(&mut self, pod: &Pod, c: &Container, cur: &cri::Container, ip: &str) {
        let named: Vec<(String, i32)> = c
            .ports
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| Some((p.name?, p.container_port)))
            .collect();
        let started = self.status_of(&cur.id).await.map_or(0, |s| s.started_at);
        let since_start = Duration::from_nanos(u64::try_from(now_nanos() - started).unwrap_or(0));
        let memo = self.memo.entry(c.name.clone()).or_default();
        if memo.probed_id != cur.id {
            *memo = Memo {
                backoff: memo.backoff,
                probed_id: cur.id.clone(),
                ..Memo::default()
            };
        }
        if let Some(p) = &c.readiness_probe
            && let Some(outcome) = self
                .run_if_due(
                    Kind::Readiness,
                    p,
                    &c.name,
                    &cur.id,
                    since_start,
                    ip,
                    &named,
                )
                .await
        {
            let memo = self.memo.entry(c.name.clone()).or_default();
            match outcome {
                Outcome::Success => {
                    memo.readiness_streak = memo.readiness_streak.max(0) + 1;
                    if memo.readiness_streak >= p.success_threshold.unwrap_or(1) {
                        memo.readiness_ok = Some(true);
                    }
                }
                Outcome::Failure(why) => {
                    memo.readiness_streak = memo.readiness_streak.min(0) - 1;
                    if -memo.readiness_streak >= p.failure_threshold.unwrap_or(3)
                        || memo.readiness_ok.is_none()
                    {
                        if memo.readiness_ok != Some(false) {
                            self.event(
                                pod,
                                Some(&c.name),
                                EventType::Warning,
                                "ProbeReadiness",
                                "Unhealthy",
                                &format!("Readiness probe failed: {why}"),
                            )
                            .await;
                        }
                        self.memo.entry(c.name.clone()).or_default().readiness_ok = Some(false);
                    }
                }
            }
        }
        if let Some(p) = &c.liveness_probe
            && let Some(outcome) = self
                .run_if_due(Kind::Liveness, p, &c.name, &cur.id, since_start, ip, &named)
                .await
        {
            let memo = self.memo.entry(c.name.clone()).or_default();
            match outcome {
                Outcome::Success => memo.liveness_failures = 0,
                Outcome::Failure(why) => {
                    memo.liveness_failures += 1;
                    if memo.liveness_failures >= p.failure_threshold.unwrap_or(3) {
                        memo.liveness_failures = 0;
                        self.event(
                            pod,
                            Some(&c.name),
                            EventType::Warning,
                            "ProbeLiveness",
                            "Unhealthy",
                            &format!("Liveness probe failed: {why}"),
                        )
                        .await;
                        self.event(
                            pod,
                            Some(&c.name),
                            EventType::Normal,
                            "KillContainer",
                            "Killing",
                            &format!(
                                "Container {} failed liveness probe, will be restarted",
                                c.name
                            ),
                        )
                        .await;
                        let grace = pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.termination_grace_period_seconds)
                            .unwrap_or(30);
                        self.acted = true;
                        let _ = self
                            .cri
                            .runtime
                            .stop_container(cri::StopContainerRequest {
                                container_id: cur.id.clone(),
                                timeout: grace,
                            })
                            .await;
                    }
                }
            }
        }
    }

    /// Run `p` when its initial delay has passed and its period is due (then schedule the
    /// next run); `None` when it is not time yet.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site; the probe, its container and the clock are what decide a run"
    )]
    async fn run_if_due(
        &mut self,
        kind: Kind,
        p: &k8s_openapi::api::core::v1::Probe,
        container: &str,
        container_id: &str,
        since_start: Duration,
        ip: &str,
        named: &[(String, i32)],
    ) -> Option<Outcome> {
        let delay =
            Duration::from_secs(u64::try_from(p.initial_delay_seconds.unwrap_or(0)).unwrap_or(0));
        let memo = self.memo.entry(container.to_string()).or_default();
        let next = match kind {
            Kind::Readiness => &mut memo.next_readiness,
            Kind::Liveness => &mut memo.next_liveness,
        };
        let now = Instant::now();
        if since_start < delay || next.is_some_and(|t| now < t) {
            return None;
        }
        *next = Some(now + period(p));
        Some(probe::run(p, &mut self.cri, container_id, ip, named).await)
    }

    /// Stop every container (with the grace period), then stop and remove the sandboxes.
    async fn kill_sandboxes(&mut self, uid: &str, grace: i64) -> Result<(), KubeletError> {
        let sandboxes = self.sandboxes_of(uid).await?;
        for sb in sandboxes {
            let cs = self.containers_of(&sb.id).await?;
            let stops = cs
                .iter()
                .filter(|c| c.state == cri::ContainerState::ContainerRunning as i32)
                .map(|c| {
                    let mut rt = self.cri.runtime.clone();
                    let id = c.id.clone();
                    async move {
                        rt.stop_container(cri::StopContainerRequest {
                            container_id: id,
                            timeout: grace,
                        })
                        .await
                    }
                });
            for r in futures::future::join_all(stops).await {
                if let Err(e) = r {
                    tracing::warn!(error = %e.message(), "stopping container");
                }
            }
            self.cri
                .runtime
                .stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: sb.id.clone(),
                })
                .await?;
            self.cri
                .runtime
                .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                    pod_sandbox_id: sb.id.clone(),
                })
                .await?;
        }
        Ok(())
    }

    async fn view(&mut self, c: &Container, rt: &Runtime, probes_ready: bool) -> ContainerView {
        let image = c.image.clone().unwrap_or_default();
        let attempts = rt.containers.get(&c.name).cloned().unwrap_or_default();
        let memo_waiting = self.memo.get(&c.name).and_then(|m| m.waiting.clone());
        let mut v = ContainerView {
            name: c.name.clone(),
            image: image.clone(),
            image_id: String::new(),
            container_id: String::new(),
            state: State::Waiting {
                reason: "ContainerCreating".into(),
                message: String::new(),
            },
            last_state: None,
            restart_count: 0,
            ready: false,
        };
        if rt.sandbox.is_none() {
            v.state = State::Waiting {
                reason: "ContainerCreating".into(),
                message: self.sandbox_error.clone().unwrap_or_default(),
            };
            return v;
        }
        if let Some(prev) = attempts.len().checked_sub(2).and_then(|i| attempts.get(i))
            && let Some(s) = self.status_of(&prev.id).await
        {
            v.last_state = Some(terminated(&s));
        }
        let Some(cur) = attempts.last() else {
            if let Some((reason, message)) = memo_waiting {
                v.state = State::Waiting { reason, message };
            }
            return v;
        };
        v.restart_count = cur.metadata.as_ref().map_or(0, |m| m.attempt);
        v.container_id = format!("containerd://{}", cur.id);
        let Some(s) = self.status_of(&cur.id).await else {
            return v;
        };
        v.image_id.clone_from(&s.image_ref);
        if s.state == cri::ContainerState::ContainerRunning as i32 {
            v.state = State::Running {
                started_at: rfc3339_from_nanos(s.started_at),
            };
            let readiness = self
                .memo
                .get(&c.name)
                .filter(|m| m.probed_id == cur.id)
                .and_then(|m| m.readiness_ok);
            v.ready = if c.readiness_probe.is_some() {
                probes_ready && readiness == Some(true)
            } else {
                true
            };
        } else if s.state == cri::ContainerState::ContainerExited as i32 {
            let t = terminated(&s);
            match memo_waiting {
                Some((reason, message)) if reason == "CrashLoopBackOff" => {
                    v.last_state = Some(t);
                    v.state = State::Waiting { reason, message };
                }
                _ => v.state = t,
            }
        } else if let Some((reason, message)) = memo_waiting {
            v.state = State::Waiting { reason, message };
        }
        v
    }

    async fn report(&mut self, pod: &Pod, rt: &Runtime) -> Result<(), KubeletError> {
        let spec = pod.spec.clone().unwrap_or_default();
        let mut init = Vec::new();
        for c in spec.init_containers.clone().unwrap_or_default() {
            let mut v = self.view(&c, rt, true).await;
            if matches!(v.state, State::Terminated { exit_code: 0, .. }) {
                v.ready = true;
            }
            init.push(v);
        }
        let initialized = init
            .iter()
            .all(|c| matches!(c.state, State::Terminated { exit_code: 0, .. }));
        let mut containers = Vec::new();
        for c in &spec.containers {
            let mut v = self.view(c, rt, true).await;
            if !initialized && !rt.containers.contains_key(&c.name) {
                v.state = State::Waiting {
                    reason: "PodInitializing".into(),
                    message: String::new(),
                };
            }
            containers.push(v);
        }
        let mut ephemeral = Vec::new();
        for (c, _) in spec::ephemeral_containers(pod) {
            ephemeral.push(self.view(&c, rt, true).await);
        }
        let observed = Observed {
            restart_policy: spec
                .restart_policy
                .clone()
                .unwrap_or_else(|| "Always".into()),
            sandbox_ready: rt.sandbox.is_some(),
            pod_ip: rt.ip.clone(),
            host_ip: self.cfg.node_ip.clone(),
            start_time: self.start_time.clone().or_else(|| {
                pod.status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .map(|t| t.0.to_string())
            }),
            init,
            containers,
            ephemeral,
        };
        let previous =
            serde_json::to_value(pod.status.clone().unwrap_or_default()).unwrap_or(Value::Null);
        let t = now();
        let status = status::pod_status(&observed, &previous, &t);
        let mut compare = status.clone();
        compare["uid"] = json!(pod.metadata.uid);
        if compare == self.last_status {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        api.patch_status(
            pod.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await?;
        self.last_status = compare;
        Ok(())
    }
}

fn period(p: &k8s_openapi::api::core::v1::Probe) -> Duration {
    Duration::from_secs(u64::try_from(p.period_seconds.unwrap_or(10).max(1)).unwrap_or(10))
}

fn terminated(s: &cri::ContainerStatus) -> State {
    let reason = if !s.reason.is_empty() {
        s.reason.clone()
    } else if s.exit_code == 0 {
        "Completed".into()
    } else {
        "Error".into()
    };
    State::Terminated {
        exit_code: s.exit_code,
        reason,
        message: s.message.clone(),
        started_at: rfc3339_from_nanos(s.started_at),
        finished_at: rfc3339_from_nanos(s.finished_at),
        container_id: format!("containerd://{}", s.id),
    }
}

fn now_nanos() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    )
    .unwrap_or(i64::MAX)
}

pub(super) fn name_of(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// A removed pod's logs go with it: its `<ns>_<name>_<uid>` directory under the log root.
fn remove_pod_logs(log_root: &std::path::Path, uid: &str) {
    let Ok(entries) = std::fs::read_dir(log_root) else {
        return;
    };
    let suffix = format!("_{uid}");
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().ends_with(&suffix)
            && let Err(err) = std::fs::remove_dir_all(e.path())
        {
            tracing::warn!(path = %e.path().display(), error = %err, "removing a deleted pod's logs");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_pods_logs_go_and_others_stay() {
        let root = tempfile::tempdir().expect("tempdir");
        for d in ["default_web_u-1/c", "default_web_u-2/c", "other_x_u-11/c"] {
            std::fs::create_dir_all(root.path().join(d)).expect("mkdir");
            std::fs::write(root.path().join(d).join("0.log"), b"x").expect("write");
        }
        remove_pod_logs(root.path(), "u-1");
        assert!(!root.path().join("default_web_u-1").exists());
        assert!(root.path().join("default_web_u-2/c/0.log").exists());
        assert!(root.path().join("other_x_u-11/c/0.log").exists());
        remove_pod_logs(&root.path().join("missing"), "u-2");
    }

    #[test]
    fn restart_policy_decisions() {
        assert!(Worker::should_restart("Always", 0, false));
        assert!(!Worker::should_restart("Always", 0, true));
        assert!(Worker::should_restart("Always", 1, true));
        assert!(Worker::should_restart("OnFailure", 2, false));
        assert!(!Worker::should_restart("OnFailure", 0, false));
        assert!(!Worker::should_restart("Never", 1, false));
    }

    #[test]
    fn terminated_reasons() {
        let s = cri::ContainerStatus {
            exit_code: 0,
            ..Default::default()
        };
        assert!(
            matches!(terminated(&s), State::Terminated { ref reason, .. } if reason == "Completed")
        );
        let s = cri::ContainerStatus {
            exit_code: 137,
            reason: "OOMKilled".into(),
            ..Default::default()
        };
        assert!(
            matches!(terminated(&s), State::Terminated { ref reason, exit_code: 137, .. } if reason == "OOMKilled")
        );
    }
}
