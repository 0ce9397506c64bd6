//! `batch/v1 CronJob`: its strategy and resource entry.

use k8s_openapi::api::batch;
use serde_json::{Value, json};

use super::super::printers::{age, bool_ptr, containers_images, none_if_empty, s, selector_string};
use super::super::strategy::{Canonical, Column, Strategy, ValidationContext, col, typed};
use super::super::validation::{
    clear_status, default_pod_spec, non_negative, obj_mut, set_default,
};
use super::super::{Resource, Subresource};
use super::job::validate_job_spec;
use crate::apiserver::status::Cause;

/// The `cronjobs` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new(
        "batch",
        "v1",
        "cronjobs",
        "cronjob",
        "CronJob",
        true,
        CronJobStrategy,
    )
    .short_names(&["cj"])
    .categories(&["all"])
    .subresources(&[Subresource::Status])
}

/// Upstream's `CronJob` strategy and printer.
pub struct CronJobStrategy;

/// One field of a standard cron spec: its bounds and, for months and weekdays, its names.
struct CronField {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const FIELDS: [CronField; 5] = [
    CronField {
        min: 0,
        max: 59,
        names: &[],
    },
    CronField {
        min: 0,
        max: 23,
        names: &[],
    },
    CronField {
        min: 1,
        max: 31,
        names: &[],
    },
    CronField {
        min: 1,
        max: 12,
        names: MONTHS,
    },
    CronField {
        min: 0,
        max: 6,
        names: DAYS,
    },
];

fn cron_value(text: &str, f: &CronField) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = f.names.iter().position(|n| *n == lower) {
        let i = u32::try_from(i).unwrap_or(0);
        return Ok(i + f.min);
    }
    text.parse::<u32>()
        .map_err(|e| format!("failed to parse int from {text}: {e}"))
}

/// One comma-separated part of a field: `*`, `?`, `a`, `a-b`, each optionally `/step`.
fn cron_range(expr: &str, f: &CronField) -> Result<(), String> {
    let (range, step) = match expr.split_once('/') {
        Some((r, st)) => (r, Some(st)),
        None => (expr, None),
    };
    let (lo, hi) = if range == "*" || range == "?" {
        (f.min, f.max)
    } else if let Some((a, b)) = range.split_once('-') {
        (cron_value(a, f)?, cron_value(b, f)?)
    } else {
        let v = cron_value(range, f)?;
        (v, if step.is_some() { f.max } else { v })
    };
    if let Some(st) = step {
        let st = st
            .parse::<u32>()
            .map_err(|e| format!("failed to parse int from {st}: {e}"))?;
        if st == 0 {
            return Err(format!("step of range should be a positive number: {expr}"));
        }
    }
    if lo < f.min {
        return Err(format!(
            "beginning of range ({lo}) below minimum ({}): {expr}",
            f.min
        ));
    }
    if hi > f.max {
        return Err(format!(
            "end of range ({hi}) above maximum ({}): {expr}",
            f.max
        ));
    }
    if lo > hi {
        return Err(format!(
            "beginning of range ({lo}) beyond end of range ({hi}): {expr}"
        ));
    }
    Ok(())
}

/// Parse a schedule as robfig/cron's `ParseStandard` (what upstream validates with): five
/// fields or a `@descriptor`, an optional leading `TZ=`/`CRON_TZ=`.
pub(crate) fn parse_schedule(schedule: &str) -> Result<(), String> {
    let mut spec = schedule.trim();
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        spec = spec.split_once(' ').map_or("", |(_, rest)| rest).trim();
    }
    if let Some(desc) = spec.strip_prefix('@') {
        return match desc {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            d if d.starts_with("every ") => Ok(()),
            _ => Err(format!("unrecognized descriptor: {spec}")),
        };
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    for (text, f) in fields.iter().zip(FIELDS.iter()) {
        for part in text.split(',') {
            cron_range(part, f)?;
        }
    }
    Ok(())
}

fn validate_time_zone(tz: &Value, causes: &mut Vec<Cause>) {
    let Some(name) = tz.as_str() else { return };
    let path = "spec.timeZone";
    if name.is_empty() {
        causes.push(Cause::invalid(
            path,
            tz,
            "timeZone must be nil or non-empty string",
        ));
        return;
    }
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 14
            && p != "."
            && p != ".."
            && !p.starts_with('-')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
    };
    if !name.split('/').all(part_ok) {
        causes.push(Cause::invalid(
            path,
            tz,
            &format!("unknown time zone {name}"),
        ));
        return;
    }
    if name.eq_ignore_ascii_case("Local") {
        causes.push(Cause::invalid(
            path,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
        return;
    }
    // Go's time.LoadLocation reads the zone database; where the host has one, a name it lacks
    // is unknown.
    let zoneinfo = std::path::Path::new("/usr/share/zoneinfo");
    if name != "UTC" && zoneinfo.is_dir() && !zoneinfo.join(name).is_file() {
        causes.push(Cause::invalid(
            path,
            tz,
            &format!("unknown time zone {name}"),
        ));
    }
}

impl Strategy for CronJobStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<batch::v1::CronJob>(input)
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn has_status(&self) -> bool {
        true
    }

    fn prepare_create(&self, obj: &mut Value) {
        clear_status(obj);
    }

    fn default(&self, obj: &mut Value) {
        let spec = obj_mut(obj, "spec");
        set_default(spec, "concurrencyPolicy", json!("Allow"));
        set_default(spec, "suspend", json!(false));
        set_default(spec, "successfulJobsHistoryLimit", json!(3));
        set_default(spec, "failedJobsHistoryLimit", json!(1));
        if let Some(ps) = spec
            .get_mut("jobTemplate")
            .and_then(|t| t.get_mut("spec"))
            .and_then(|t| t.get_mut("template"))
            .and_then(|t| t.get_mut("spec"))
        {
            default_pod_spec(ps);
        }
    }

    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let mut causes = Vec::new();
        let spec = &obj["spec"];
        // Job names are the CronJob's plus an 11-character suffix.
        if let Some(name) = obj["metadata"]["name"].as_str()
            && name.len() > 52
        {
            causes.push(Cause::invalid(
                "metadata.name",
                &json!(name),
                "must be no more than 52 characters",
            ));
        }
        match spec["schedule"].as_str() {
            None | Some("") => causes.push(Cause::required("spec.schedule")),
            Some(sched) => {
                if let Err(e) = parse_schedule(sched) {
                    causes.push(Cause::invalid("spec.schedule", &json!(sched), &e));
                } else if sched.contains("TZ") && !spec["timeZone"].is_null() {
                    causes.push(Cause::invalid(
                        "spec.schedule",
                        &json!(sched),
                        "cannot use both timeZone field and TZ or CRON_TZ in schedule",
                    ));
                }
            }
        }
        validate_time_zone(&spec["timeZone"], &mut causes);
        match spec["concurrencyPolicy"].as_str() {
            Some("Allow" | "Forbid" | "Replace") => {}
            None | Some("") => causes.push(Cause::required("spec.concurrencyPolicy")),
            Some(other) => causes.push(Cause::not_supported(
                "spec.concurrencyPolicy",
                &json!(other),
                &["Allow", "Forbid", "Replace"],
            )),
        }
        for f in [
            "startingDeadlineSeconds",
            "successfulJobsHistoryLimit",
            "failedJobsHistoryLimit",
        ] {
            non_negative(&spec[f], &format!("spec.{f}"), &mut causes);
        }
        let jt = &spec["jobTemplate"]["spec"];
        if !jt["selector"].is_null() {
            causes.push(Cause::invalid(
                "spec.jobTemplate.spec.selector",
                &jt["selector"],
                "`selector` will be auto-generated",
            ));
        }
        if jt["manualSelector"].as_bool() == Some(true) {
            causes.push(Cause::not_supported(
                "spec.jobTemplate.spec.manualSelector",
                &json!(true),
                &["nil", "false"],
            ));
        }
        validate_job_spec(jt, "spec.jobTemplate.spec", &mut causes);
        causes
    }

    fn list_strategy(&self, path: &[&str]) -> Option<sluice_patch::ListStrategy> {
        Some(sluice_patch::list_strategy("CronJob", path))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Schedule", "string", 0),
            col("Timezone", "string", 0),
            col("Suspend", "boolean", 0),
            col("Active", "integer", 0),
            col("Last Schedule", "string", 0),
            col("Age", "string", 0),
            col("Containers", "string", 1),
            col("Images", "string", 1),
            col("Selector", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let (spec, status) = (&o["spec"], &o["status"]);
        let last = if status["lastScheduleTime"].is_null() {
            "<none>".to_string()
        } else {
            age(&status["lastScheduleTime"])
        };
        let jt = &spec["jobTemplate"]["spec"];
        let (cs, imgs) = containers_images(&jt["template"]["spec"]);
        let active = status["active"].as_array().map_or(0, Vec::len);
        vec![
            json!(s(&o["metadata"]["name"])),
            json!(s(&spec["schedule"])),
            json!(none_if_empty(s(&spec["timeZone"]))),
            json!(bool_ptr(&spec["suspend"])),
            json!(active),
            json!(last),
            json!(age(&o["metadata"]["creationTimestamp"])),
            json!(cs),
            json!(imgs),
            json!(selector_string(&jt["selector"])),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: ValidationContext = ValidationContext {
        node_port_range: (30000, 32767),
    };

    fn hello(schedule: &str) -> Value {
        let mut c = json!({"metadata": {"name": "hello"}, "spec": {"schedule": schedule,
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                "containers": [{"name": "hello", "image": "busybox:1.28"}]}}}}}});
        CronJobStrategy.prepare_create(&mut c);
        CronJobStrategy.default(&mut c);
        c
    }

    #[test]
    fn defaults() {
        let c = hello("*/1 * * * *");
        assert_eq!(c["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(c["spec"]["suspend"], false);
        assert_eq!(c["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(c["spec"]["failedJobsHistoryLimit"], 1);
        let jt = &c["spec"]["jobTemplate"]["spec"];
        assert!(
            jt["backoffLimit"].is_null(),
            "job defaults are not applied to templates"
        );
        assert_eq!(jt["template"]["spec"]["terminationGracePeriodSeconds"], 30);
        assert!(CronJobStrategy.validate(&c, &CX).is_empty());
    }

    #[test]
    fn schedules() {
        for ok in [
            "*/5 * * * *",
            "0 0 1 jan,jul mon-fri",
            "@hourly",
            "15 3 * * ?",
            "0-30/10 * * * 0",
        ] {
            assert!(parse_schedule(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            parse_schedule("* * *").unwrap_err(),
            "expected exactly 5 fields, found 3: [* * *]"
        );
        assert_eq!(
            parse_schedule("61 * * * *").unwrap_err(),
            "end of range (61) above maximum (59): 61"
        );
        assert!(parse_schedule("@fortnightly").is_err());
    }

    #[test]
    fn invalid_schedule_and_template() {
        let mut c = hello("* * *");
        c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        let causes = CronJobStrategy.validate(&c, &CX);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.schedule",
                "spec.jobTemplate.spec.template.spec.restartPolicy"
            ]
        );
        let mut missing = hello("");
        missing["spec"]["timeZone"] = json!("Local");
        let causes = CronJobStrategy.validate(&missing, &CX);
        assert_eq!(causes[0].field, "spec.schedule");
        assert_eq!(causes[0].reason, "FieldValueRequired");
        assert_eq!(causes[1].field, "spec.timeZone");
    }

    #[test]
    fn cells_like_kubectl() {
        let mut c = hello("*/1 * * * *");
        c["status"] =
            json!({"active": [{"name": "hello-1"}], "lastScheduleTime": "2020-01-01T00:00:00Z"});
        let row = CronJobStrategy.cells(&c);
        assert_eq!(row.len(), CronJobStrategy.columns().len());
        assert_eq!(row[1], "*/1 * * * *");
        assert_eq!(row[2], "<none>");
        assert_eq!(row[3], "False");
        assert_eq!(row[4], 1);
        assert_ne!(row[5], "<none>");
        assert_eq!(row[7], "hello");
        assert_eq!(row[8], "busybox:1.28");
        assert_eq!(row[9], "<none>");
        let empty = CronJobStrategy.cells(&json!({}));
        assert_eq!(empty.len(), CronJobStrategy.columns().len());
        assert_eq!(empty[3], "<unset>");
        assert_eq!(empty[5], "<none>");
    }
}
