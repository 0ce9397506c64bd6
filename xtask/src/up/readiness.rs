//! Whether a Node object shows a node agent of this run as Ready.

use std::time::SystemTime;

/// What a Node object says about a node agent started at some instant.
#[derive(Debug, PartialEq, Eq)]
pub enum Readiness {
    /// No Node object (or it cannot be read).
    Unregistered,
    /// A Ready condition that is not True, or that no heartbeat since the start backs.
    NotYet {
        /// The condition's status, or `None` without a Ready condition.
        status: Option<String>,
        /// Whether its heartbeat is from before the start (an earlier run's).
        stale: bool,
    },
    /// Ready: True with a heartbeat at or after the start.
    Ready,
}

impl Readiness {
    pub fn of_node(json: &str, since: SystemTime) -> Self {
        let Ok(node) = serde_json::from_str::<serde_json::Value>(json) else {
            return Self::Unregistered;
        };
        let ready = node["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready");
        let Some(ready) = ready else {
            return Self::NotYet {
                status: None,
                stale: false,
            };
        };
        let status = ready["status"].as_str().unwrap_or_default().to_owned();
        // Kubernetes times have second precision: compare whole seconds.
        let since = jiff::Timestamp::try_from(since).map_or(i64::MAX, jiff::Timestamp::as_second);
        let fresh = ready["lastHeartbeatTime"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .is_some_and(|t| t.as_second() >= since);
        if status == "True" && fresh {
            Self::Ready
        } else {
            Self::NotYet {
                status: Some(status),
                stale: !fresh,
            }
        }
    }
}

impl std::fmt::Display for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unregistered => f.write_str("not registered"),
            Self::NotYet { status: None, .. } => f.write_str("no Ready condition"),
            Self::NotYet {
                status: Some(status),
                stale: true,
            } => write!(f, "Ready: {status}, heartbeat older than this start"),
            Self::NotYet {
                status: Some(status),
                stale: false,
            } => write!(f, "Ready: {status}"),
            Self::Ready => f.write_str("Ready"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(status: &str, heartbeat: &str) -> String {
        serde_json::json!({"status": {"conditions": [
            {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": heartbeat},
            {"type": "Ready", "status": status, "lastHeartbeatTime": heartbeat},
        ]}})
        .to_string()
    }

    fn at(rfc3339: &str) -> SystemTime {
        SystemTime::from(rfc3339.parse::<jiff::Timestamp>().unwrap())
    }

    #[test]
    fn ready_needs_a_heartbeat_from_this_run() {
        let start = at("2026-12-01T10:00:00.600Z");
        assert_eq!(
            Readiness::of_node(&node("True", "2026-12-01T10:00:03Z"), start),
            Readiness::Ready
        );
        // The same second as the start counts (times have second precision).
        assert_eq!(
            Readiness::of_node(&node("True", "2026-12-01T10:00:00Z"), start),
            Readiness::Ready
        );
        // An earlier run's Ready: True proves nothing.
        assert_eq!(
            Readiness::of_node(&node("True", "2026-12-01T09:59:59Z"), start),
            Readiness::NotYet {
                status: Some("True".into()),
                stale: true
            }
        );
        assert_eq!(
            Readiness::of_node(&node("False", "2026-12-01T10:00:05Z"), start),
            Readiness::NotYet {
                status: Some("False".into()),
                stale: false
            }
        );
    }

    #[test]
    fn missing_or_unreadable_nodes_are_not_ready() {
        let start = at("2026-12-01T10:00:00Z");
        assert_eq!(
            Readiness::of_node("not json", start),
            Readiness::Unregistered
        );
        assert_eq!(
            Readiness::of_node(r#"{"status": {}}"#, start),
            Readiness::NotYet {
                status: None,
                stale: false
            }
        );
        assert_eq!(
            Readiness::of_node(&node("True", "garbage"), start),
            Readiness::NotYet {
                status: Some("True".into()),
                stale: true
            }
        );
    }
}
