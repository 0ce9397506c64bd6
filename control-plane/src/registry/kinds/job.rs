//! `batch/v1 Job`: its strategy and resource entry.

use k8s_openapi::api::batch;
use serde_json::{Value, json};

use super::super::printers::{
    age, containers_images, epoch_seconds, has_condition, human_duration, n, s, selector_string,
};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{
    clear_status, default_pod_spec, immutable, labels_from_template, non_negative, obj_mut,
    set_default, validate_containers, without,
};
use super::super::{Resource, Subresource};
use crate::apiserver::selectors::LabelSelector;
use crate::apiserver::status::Cause;

/// The `jobs` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new("batch", "v1", "jobs", "job", "Job", true, JobStrategy)
        .categories(&["all"])
        .subresources(&[Subresource::Status])
}

/// The label naming a Job's controller uid (selector and pod template).
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The label naming the Job of a pod.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The pre-1.27 spellings, still written.
const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";
const LEGACY_JOB_NAME_LABEL: &str = "job-name";

/// Upstream's `Job` strategy and printer.
pub struct JobStrategy;

/// Whether the selector is generated (`spec.manualSelector` unset or false).
fn generated_selector(obj: &Value) -> bool {
    obj["spec"]["manualSelector"].as_bool() != Some(true)
}

/// Upstream's `generateSelector`: the template gets `job-name` and `controller-uid` labels
/// (both spellings, user-set ones are kept and rejected by validation if wrong) and the
/// selector matches the controller uid.
fn generate_selector(obj: &mut Value) {
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let uid = obj["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let spec = obj_mut(obj, "spec");
    let template = spec.entry("template").or_insert_with(|| json!({}));
    let labels = obj_mut(obj_mut_value(template, "metadata"), "labels");
    if !name.is_empty() {
        for k in [LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL] {
            labels.entry(k).or_insert_with(|| json!(name));
        }
    }
    for k in [LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL] {
        labels.entry(k).or_insert_with(|| json!(uid));
    }
    let selector = spec.entry("selector").or_insert_with(|| json!({}));
    if !selector.is_object() {
        *selector = json!({});
    }
    let ml = obj_mut(selector, "matchLabels");
    ml.entry(CONTROLLER_UID_LABEL).or_insert_with(|| json!(uid));
}

/// `obj_mut` for a value reached through a map entry.
fn obj_mut_value<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    obj_mut(v, key);
    &mut v[key]
}

/// Upstream's `SetDefaults_Job` on a Job spec (`spec` of a Job; a `CronJob`'s job template
/// only gets the pod spec defaults).
fn default_job_spec(spec: &mut serde_json::Map<String, Value>) {
    if spec.get("completions").is_none_or(Value::is_null)
        && spec.get("parallelism").is_none_or(Value::is_null)
    {
        spec.insert("completions".into(), json!(1));
        spec.insert("parallelism".into(), json!(1));
    }
    set_default(spec, "parallelism", json!(1));
    let backoff = if spec
        .get("backoffLimitPerIndex")
        .is_some_and(|v| !v.is_null())
    {
        i64::from(i32::MAX)
    } else {
        6
    };
    set_default(spec, "backoffLimit", json!(backoff));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    let has_failure_policy = spec.get("podFailurePolicy").is_some_and(|v| !v.is_null());
    if let Some(rules) = spec
        .get_mut("podFailurePolicy")
        .and_then(|p| p.get_mut("rules"))
        .and_then(Value::as_array_mut)
    {
        for rule in rules {
            for pattern in rule
                .get_mut("onPodConditions")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(p) = pattern.as_object_mut() {
                    set_default(p, "status", json!("True"));
                }
            }
        }
    }
    set_default(
        spec,
        "podReplacementPolicy",
        json!(if has_failure_policy {
            "Failed"
        } else {
            "TerminatingOrFailed"
        }),
    );
    set_default(spec, "manualSelector", json!(false));
}

/// Rules of a Job spec shared by Jobs and `CronJob` job templates (upstream's
/// `validateJobSpec`), fields under `path`.
pub(crate) fn validate_job_spec(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    for f in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        non_negative(&spec[f], &format!("{path}.{f}"), causes);
    }
    match spec["completionMode"].as_str() {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            if spec["completions"].is_null() {
                causes.push(Cause {
                    reason: "FieldValueRequired",
                    field: format!("{path}.completions"),
                    message: "Required value: when completion mode is Indexed".into(),
                });
            }
        }
        Some(other) => causes.push(Cause::not_supported(
            format!("{path}.completionMode"),
            &json!(other),
            &["NonIndexed", "Indexed"],
        )),
    }
    if let Some(p) = spec["podReplacementPolicy"].as_str()
        && !["TerminatingOrFailed", "Failed"].contains(&p)
    {
        causes.push(Cause::not_supported(
            format!("{path}.podReplacementPolicy"),
            &json!(p),
            &["Failed", "TerminatingOrFailed"],
        ));
    }
    let tspec = &spec["template"]["spec"];
    validate_containers(tspec, &format!("{path}.template.spec"), causes);
    match tspec["restartPolicy"].as_str() {
        Some("OnFailure" | "Never") => {}
        other => causes.push(Cause::not_supported(
            format!("{path}.template.spec.restartPolicy"),
            &json!(other.unwrap_or_default()),
            &["OnFailure", "Never"],
        )),
    }
}

impl Strategy for JobStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<batch::v1::Job>(input)
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn has_status(&self) -> bool {
        true
    }

    /// Status is the controller's; the selector and its labels are generated from the uid
    /// (upstream does this in `Validate`, after the name and uid are set).
    fn prepare_create(&self, obj: &mut Value) {
        clear_status(obj);
        let template = obj["spec"]["template"].clone();
        labels_from_template(obj, &template);
        if generated_selector(obj) {
            generate_selector(obj);
        }
    }

    fn default(&self, obj: &mut Value) {
        let spec = obj_mut(obj, "spec");
        default_job_spec(spec);
        if let Some(ps) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
            default_pod_spec(ps);
        }
        let template = obj["spec"]["template"].clone();
        labels_from_template(obj, &template);
    }

    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        let spec = &obj["spec"];
        let tmpl_labels = spec["template"]["metadata"].get("labels");
        match spec.get("selector").filter(|s| !s.is_null()) {
            None => causes.push(Cause::required("spec.selector")),
            Some(sel) => match LabelSelector::from_json(sel) {
                Err(e) => causes.push(Cause::invalid("spec.selector", sel, &e)),
                Ok(ls) => {
                    if !ls.matches(tmpl_labels) {
                        causes.push(Cause::invalid(
                            "spec.template.metadata.labels",
                            tmpl_labels.unwrap_or(&Value::Null),
                            "`selector` does not match template `labels`",
                        ));
                    }
                }
            },
        }
        if generated_selector(obj) {
            let uid = &obj["metadata"]["uid"];
            if uid.as_str().is_none_or(str::is_empty) {
                causes.push(Cause::required("metadata.uid"));
            } else {
                for k in [LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL] {
                    let have = tmpl_labels.and_then(|l| l.get(k));
                    if have != Some(uid) {
                        causes.push(Cause::invalid(
                            format!("spec.template.metadata.labels[{k}]"),
                            have.unwrap_or(&Value::Null),
                            &format!("must be '{}'", s(uid)),
                        ));
                    }
                }
                if spec["selector"]["matchLabels"][CONTROLLER_UID_LABEL] != *uid {
                    causes.push(Cause::invalid(
                        "spec.selector",
                        &spec["selector"],
                        "`selector` not auto-generated",
                    ));
                }
            }
        }
        validate_job_spec(spec, "spec", &mut causes);
        causes
    }

    /// Upstream's `ValidateJobSpecUpdate`: selector, completion mode and failure policies
    /// never change; completions only for an Indexed Job in tandem with parallelism; the
    /// template only while the Job is suspended and never started, and then only its
    /// scheduling directives and labels/annotations.
    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        let (o, n) = (&old["spec"], &new["spec"]);
        for f in [
            "selector",
            "completionMode",
            "podFailurePolicy",
            "backoffLimitPerIndex",
            "managedBy",
            "successPolicy",
        ] {
            immutable(&o[f], &n[f], &format!("spec.{f}"), &mut causes);
        }
        if o["completions"] != n["completions"] {
            if n["completionMode"] == "Indexed" {
                if !n["completions"].is_null() && n["completions"] != n["parallelism"] {
                    causes.push(Cause::invalid(
                        "spec.completions",
                        &n["completions"],
                        "can only be modified in tandem with spec.parallelism",
                    ));
                }
            } else {
                immutable(
                    &o["completions"],
                    &n["completions"],
                    "spec.completions",
                    &mut causes,
                );
            }
        }
        let suspended_unstarted =
            n["suspend"].as_bool() == Some(true) && new["status"]["startTime"].is_null();
        let template_view = |t: &Value| {
            if !suspended_unstarted {
                return t.clone();
            }
            let mut t = without(t, "metadata");
            if let Some(spec) = t.get_mut("spec").and_then(Value::as_object_mut) {
                for f in ["nodeSelector", "tolerations", "affinity", "schedulingGates"] {
                    spec.remove(f);
                }
            }
            t
        };
        if template_view(&o["template"]) != template_view(&n["template"]) {
            causes.push(Cause::invalid(
                "spec.template",
                &n["template"],
                "field is immutable",
            ));
        }
        causes
    }

    fn field_selectors(&self) -> &'static [&'static str] {
        &["status.successful"]
    }

    /// Upstream's Job field label `status.successful` is `status.succeeded`, "0" when unset.
    fn field_value(&self, obj: &Value, field: &str) -> String {
        if field == "status.successful" {
            obj["status"]["succeeded"].as_i64().unwrap_or(0).to_string()
        } else {
            crate::apiserver::selectors::field_value(obj, field)
        }
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("Job", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Status", "string", 0),
            col("Completions", "string", 0),
            col("Duration", "string", 0),
            col("Age", "string", 0),
            col("Containers", "string", 1),
            col("Images", "string", 1),
            col("Selector", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let (spec, status) = (&o["spec"], &o["status"]);
        let succeeded = n(&status["succeeded"]);
        let completions = if spec["completions"].is_i64() {
            format!("{succeeded}/{}", n(&spec["completions"]))
        } else if n(&spec["parallelism"]) > 1 {
            format!("{succeeded}/1 of {}", n(&spec["parallelism"]))
        } else {
            format!("{succeeded}/1")
        };
        let duration = match (
            epoch_seconds(&status["startTime"]),
            epoch_seconds(&status["completionTime"]),
        ) {
            (None, _) => String::new(),
            (Some(start), None) => {
                human_duration(k8s_openapi::jiff::Timestamp::now().as_second() - start)
            }
            (Some(start), Some(end)) => human_duration(end - start),
        };
        let (cs, imgs) = containers_images(&spec["template"]["spec"]);
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(job_status(o)),
            json!(completions),
            json!(duration),
            json!(age(&o["metadata"]["creationTimestamp"])),
            json!(cs),
            json!(imgs),
            json!(selector_string(&spec["selector"])),
        ]
    }
}

/// The Status column, as upstream's job printer derives it from the conditions.
fn job_status(o: &Value) -> &'static str {
    if has_condition(o, "Complete") {
        "Complete"
    } else if has_condition(o, "Failed") {
        "Failed"
    } else if !o["metadata"]["deletionTimestamp"].is_null() {
        "Terminating"
    } else if has_condition(o, "Suspended") {
        "Suspended"
    } else if has_condition(o, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(o, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successful_field_label_reads_succeeded() {
        assert_eq!(
            JobStrategy.field_value(&json!({"status": {"succeeded": 2}}), "status.successful"),
            "2"
        );
        assert_eq!(
            JobStrategy.field_value(&json!({}), "status.successful"),
            "0"
        );
    }

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    fn created(body: Value) -> Value {
        let mut j = body;
        j["metadata"]["uid"] = json!("u-1");
        JobStrategy.prepare_create(&mut j);
        JobStrategy.default(&mut j);
        j
    }

    fn pi() -> Value {
        created(
            json!({"metadata": {"name": "pi"}, "spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl:5.34"}]}}}}),
        )
    }

    #[test]
    fn defaults_and_generated_selector() {
        let j = pi();
        let spec = &j["spec"];
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["manualSelector"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(spec["selector"]["matchLabels"][CONTROLLER_UID_LABEL], "u-1");
        let labels = &spec["template"]["metadata"]["labels"];
        assert_eq!(labels[JOB_NAME_LABEL], "pi");
        assert_eq!(labels["job-name"], "pi");
        assert_eq!(labels["controller-uid"], "u-1");
        assert_eq!(j["metadata"]["labels"][CONTROLLER_UID_LABEL], "u-1");
        assert_eq!(spec["template"]["spec"]["dnsPolicy"], "ClusterFirst");
        assert!(JobStrategy.validate(&j, &CX).is_empty());
        let parallel = created(json!({"metadata": {"name": "p"}, "spec": {"parallelism": 3,
            "template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "i"}]}}}}));
        assert!(parallel["spec"]["completions"].is_null());
        assert_eq!(JobStrategy.cells(&parallel)[2], "0/1 of 3");
    }

    #[test]
    fn restart_policy_always_is_refused() {
        let j = created(
            json!({"metadata": {"name": "pi"}, "spec": {"template": {"spec": {
            "containers": [{"name": "pi", "image": "perl"}]}}}}),
        );
        let causes = JobStrategy.validate(&j, &CX);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.template.spec.restartPolicy");
        assert_eq!(
            causes[0].message,
            "Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
        );
    }

    #[test]
    fn manual_selector_must_match() {
        let j = created(
            json!({"metadata": {"name": "m"}, "spec": {"manualSelector": true,
            "selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "y"}}, "spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}),
        );
        let causes = JobStrategy.validate(&j, &CX);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn selector_and_template_are_immutable_unless_suspended() {
        let old = pi();
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:6");
        let causes = JobStrategy.validate_update(&old, &new);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.template");
        let mut new = old.clone();
        new["spec"]["selector"]["matchLabels"]["x"] = json!("y");
        assert_eq!(
            JobStrategy.validate_update(&old, &new)[0].field,
            "spec.selector"
        );
        let mut suspended = old.clone();
        suspended["spec"]["suspend"] = json!(true);
        let mut moved = suspended.clone();
        moved["spec"]["template"]["spec"]["nodeSelector"] = json!({"zone": "a"});
        assert!(JobStrategy.validate_update(&suspended, &moved).is_empty());
        let mut more = old.clone();
        more["spec"]["parallelism"] = json!(4);
        assert!(JobStrategy.validate_update(&old, &more).is_empty());
        more["spec"]["completions"] = json!(4);
        assert_eq!(
            JobStrategy.validate_update(&old, &more)[0].field,
            "spec.completions"
        );
    }

    #[test]
    fn cells_like_kubectl() {
        let mut j = pi();
        j["status"] = json!({"succeeded": 1, "startTime": "2024-01-01T00:00:00Z",
            "completionTime": "2024-01-01T00:00:07Z",
            "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]});
        let c = JobStrategy.cells(&j);
        assert_eq!(c.len(), JobStrategy.columns().len());
        assert_eq!(c[0], "pi");
        assert_eq!(c[1], "Complete");
        assert_eq!(c[2], "1/1");
        assert_eq!(c[3], "7s");
        assert_eq!(c[5], "pi");
        assert_eq!(c[6], "perl:5.34");
        assert_eq!(c[7], format!("{CONTROLLER_UID_LABEL}=u-1"));
        let mut suspended = pi();
        suspended["status"] = json!({"conditions": [{"type": "Suspended", "status": "True"}]});
        assert_eq!(JobStrategy.cells(&suspended)[1], "Suspended");
        assert_eq!(JobStrategy.cells(&pi())[1], "Running");
        assert_eq!(JobStrategy.cells(&pi())[3], "");
        assert_eq!(
            JobStrategy.cells(&json!({})).len(),
            JobStrategy.columns().len()
        );
    }
}
