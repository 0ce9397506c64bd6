//! Pure computation of a Pod's `.status` from what the kubelet observed: phase,
//! conditions and container statuses, with upstream's phase rules.

use serde_json::{Value, json};

/// One container's state as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not running yet (or backing off), with a reason like `ContainerCreating`.
    Waiting {
        /// Reason.
        reason: String,
        /// Message.
        message: String,
    },
    /// Running since `started_at` (RFC 3339).
    Running {
        /// Start time.
        started_at: String,
    },
    /// Exited.
    Terminated {
        /// Exit code.
        exit_code: i32,
        /// `Completed`, `Error`, `OOMKilled`...
        reason: String,
        /// Message.
        message: String,
        /// Start time.
        started_at: String,
        /// Finish time.
        finished_at: String,
        /// Runtime container id.
        container_id: String,
    },
}

impl State {
    fn to_json(&self) -> Value {
        match self {
            State::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if !message.is_empty() {
                    w["message"] = json!(message);
                }
                json!({"waiting": w})
            }
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated {
                exit_code,
                reason,
                message,
                started_at,
                finished_at,
                container_id,
            } => {
                let mut t = json!({"exitCode": exit_code, "reason": reason, "startedAt": started_at,
                    "finishedAt": finished_at, "containerID": container_id});
                if !message.is_empty() {
                    t["message"] = json!(message);
                }
                json!({"terminated": t})
            }
        }
    }
}

/// What the kubelet knows about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    /// Container name.
    pub name: String,
    /// Image as specified.
    pub image: String,
    /// Image as resolved by the runtime.
    pub image_id: String,
    /// `containerd://<id>` of the current attempt, if created.
    pub container_id: String,
    /// Current state.
    pub state: State,
    /// The previous attempt's termination, if any.
    pub last_state: Option<State>,
    /// Restarts so far.
    pub restart_count: u32,
    /// Readiness (probe result, or running if no probe).
    pub ready: bool,
}

impl ContainerView {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name, "image": self.image, "imageID": self.image_id,
            "ready": self.ready, "restartCount": self.restart_count,
            "started": matches!(self.state, State::Running { .. }),
            "state": self.state.to_json(),
            "lastState": self.last_state.as_ref().map_or_else(|| json!({}), State::to_json),
        });
        if !self.container_id.is_empty() {
            v["containerID"] = json!(self.container_id);
        }
        v
    }
}

/// The phase upstream's `getPhase` computes.
#[must_use]
pub fn phase(
    restart_policy: &str,
    init: &[ContainerView],
    containers: &[ContainerView],
) -> &'static str {
    for c in init {
        match &c.state {
            State::Terminated { exit_code: 0, .. } => {}
            State::Terminated { .. } if restart_policy == "Never" => return "Failed",
            _ => return "Pending",
        }
    }
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated { exit_code, .. } => {
                stopped += 1;
                if *exit_code == 0 {
                    succeeded += 1;
                }
            }
            State::Waiting { .. } if c.last_state.is_some() => stopped += 1,
            State::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        match restart_policy {
            "OnFailure" if succeeded == stopped => "Succeeded",
            "Always" | "OnFailure" => "Running",
            _ if succeeded == stopped => "Succeeded",
            _ => "Failed",
        }
    } else {
        "Pending"
    }
}

fn condition(ty: &str, ok: bool, reason: &str, previous: &Value, now: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let old = previous
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == ty))
        .filter(|c| c["status"] == status);
    let since = old
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(now)
        .to_string();
    let mut c =
        json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
    if !ok && !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    c
}

/// Inputs of [`pod_status`].
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The pod's restart policy.
    pub restart_policy: String,
    /// The sandbox is ready (network set up).
    pub sandbox_ready: bool,
    /// Pod IP from the sandbox.
    pub pod_ip: Option<String>,
    /// Node IP.
    pub host_ip: String,
    /// When the kubelet first started the pod.
    pub start_time: Option<String>,
    /// Init containers, in spec order.
    pub init: Vec<ContainerView>,
    /// App containers, in spec order.
    pub containers: Vec<ContainerView>,
    /// Ephemeral (debug) containers, in spec order: they count for neither phase nor
    /// readiness.
    pub ephemeral: Vec<ContainerView>,
}

/// The full `.status`; `previous` is the pod's current status (for condition transition times
/// and the scheduler's `PodScheduled` condition).
#[must_use]
pub fn pod_status(o: &Observed, previous: &Value, now: &str) -> Value {
    let prev_conds = &previous["conditions"];
    let phase = phase(&o.restart_policy, &o.init, &o.containers);
    let initialized = o
        .init
        .iter()
        .all(|c| matches!(c.state, State::Terminated { exit_code: 0, .. }));
    let terminal = phase == "Succeeded" || phase == "Failed";
    let all_ready = !terminal && o.containers.iter().all(|c| c.ready);
    let not_ready: Vec<&str> = o
        .containers
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let reason = if terminal {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let mut conditions = vec![
        condition(
            "PodReadyToStartContainers",
            o.sandbox_ready,
            "",
            prev_conds,
            now,
        ),
        condition(
            "Initialized",
            initialized,
            "ContainersNotInitialized",
            prev_conds,
            now,
        ),
        condition("Ready", all_ready, reason, prev_conds, now),
        condition("ContainersReady", all_ready, reason, prev_conds, now),
    ];
    if !all_ready && !terminal {
        let msg = format!("containers with unready status: [{}]", not_ready.join(" "));
        conditions[2]["message"] = json!(msg);
        conditions[3]["message"] = json!(msg);
    }
    if let Some(sched) = prev_conds
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled"))
    {
        conditions.push(sched.clone());
    } else {
        conditions.push(condition("PodScheduled", true, "", prev_conds, now));
    }
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": o.host_ip,
        "hostIPs": [{"ip": o.host_ip}],
        "containerStatuses": o.containers.iter().map(ContainerView::to_json).collect::<Vec<_>>(),
        "qosClass": previous["qosClass"],
    });
    if !o.init.is_empty() {
        status["initContainerStatuses"] =
            Value::Array(o.init.iter().map(ContainerView::to_json).collect());
    }
    if !o.ephemeral.is_empty() {
        status["ephemeralContainerStatuses"] =
            Value::Array(o.ephemeral.iter().map(ContainerView::to_json).collect());
    }
    if let Some(ip) = &o.pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    if let Some(t) = &o.start_time {
        status["startTime"] = json!(t);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(
        name: &str,
        state: State,
        ready: bool,
        restarts: u32,
        last: Option<State>,
    ) -> ContainerView {
        ContainerView {
            name: name.into(),
            image: "img".into(),
            image_id: String::new(),
            container_id: String::new(),
            state,
            last_state: last,
            restart_count: restarts,
            ready,
        }
    }
    fn running() -> State {
        State::Running {
            started_at: "t".into(),
        }
    }
    fn exited(code: i32) -> State {
        State::Terminated {
            exit_code: code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: String::new(),
            started_at: "a".into(),
            finished_at: "b".into(),
            container_id: String::new(),
        }
    }
    fn waiting(r: &str) -> State {
        State::Waiting {
            reason: r.into(),
            message: String::new(),
        }
    }

    #[test]
    fn phases_follow_upstream() {
        assert_eq!(
            phase(
                "Always",
                &[],
                &[c("a", waiting("ContainerCreating"), false, 0, None)]
            ),
            "Pending"
        );
        assert_eq!(
            phase("Always", &[], &[c("a", running(), true, 0, None)]),
            "Running"
        );
        // Crash looping is still Running.
        assert_eq!(
            phase(
                "Always",
                &[],
                &[c(
                    "a",
                    waiting("CrashLoopBackOff"),
                    false,
                    3,
                    Some(exited(1))
                )]
            ),
            "Running"
        );
        assert_eq!(
            phase("Never", &[], &[c("a", exited(0), false, 0, None)]),
            "Succeeded"
        );
        assert_eq!(
            phase("Never", &[], &[c("a", exited(2), false, 0, None)]),
            "Failed"
        );
        assert_eq!(
            phase("OnFailure", &[], &[c("a", exited(2), false, 0, None)]),
            "Running"
        );
        assert_eq!(
            phase("OnFailure", &[], &[c("a", exited(0), false, 0, None)]),
            "Succeeded"
        );
        // Init containers gate everything.
        assert_eq!(
            phase(
                "Always",
                &[c("i", running(), false, 0, None)],
                &[c("a", waiting("PodInitializing"), false, 0, None)]
            ),
            "Pending"
        );
        assert_eq!(
            phase("Never", &[c("i", exited(1), false, 0, None)], &[]),
            "Failed"
        );
    }

    #[test]
    fn ready_conditions_and_transition_times() {
        let o = Observed {
            restart_policy: "Always".into(),
            sandbox_ready: true,
            pod_ip: Some("10.244.0.2".into()),
            host_ip: "192.0.2.1".into(),
            start_time: Some("s".into()),
            init: vec![],
            containers: vec![
                c("a", running(), true, 0, None),
                c("b", running(), false, 1, Some(exited(137))),
            ],
            ephemeral: vec![c("debugger", running(), false, 0, None)],
        };
        let s = pod_status(
            &o,
            &json!({"conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "sched"}]}),
            "t1",
        );
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.244.0.2");
        // An ephemeral container has a status of its own and no say in readiness or phase.
        assert_eq!(s["ephemeralContainerStatuses"][0]["name"], "debugger");
        assert_eq!(s["containerStatuses"].as_array().unwrap().len(), 2);
        let ready = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["message"], "containers with unready status: [b]");
        assert_eq!(s["containerStatuses"][1]["restartCount"], 1);
        assert_eq!(
            s["containerStatuses"][1]["lastState"]["terminated"]["exitCode"],
            137
        );
        let sched = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "PodScheduled")
            .unwrap();
        assert_eq!(sched["lastTransitionTime"], "sched");
        // Same state later keeps the transition time; a change takes the new time.
        let again = pod_status(&o, &s, "t2");
        let init = again["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Initialized")
            .unwrap();
        assert_eq!(init["lastTransitionTime"], "t1");
        let mut o2 = o.clone();
        o2.containers[1].ready = true;
        let s3 = pod_status(&o2, &again, "t3");
        let ready = s3["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(
            (
                ready["status"].as_str(),
                ready["lastTransitionTime"].as_str()
            ),
            (Some("True"), Some("t3"))
        );
    }
}
