//! Custom resources: the [`Resource`]s a `CustomResourceDefinition` serves, one per served
//! version, with a strategy built from the version's structural schema (pruning, defaulting,
//! validation), its subresources and its printer columns. Conversion is `None`: every
//! version shares the stored objects and only `apiVersion` differs.

use serde_json::{Value, json};
use sluice_structural::Schema;

use super::printers::{age, human_duration, s};
use super::strategy::{Canonical, Column, Strategy, ValidationContext};
use super::{Resource, Subresource};
use crate::apiserver::status::Cause;

/// One printer column (`additionalPrinterColumns[]`).
#[derive(Debug, Clone)]
struct PrinterColumn {
    column: Column,
    json_path: String,
}

/// The strategy of one served version of a custom resource.
pub struct CustomResourceStrategy {
    group: String,
    version: String,
    kind: String,
    storage_version: String,
    schema: Option<Schema>,
    open_api: Option<Value>,
    has_status: bool,
    scale: Option<Scale>,
    columns: Vec<PrinterColumn>,
}

#[derive(Debug, Clone)]
struct Scale {
    spec_replicas: Vec<String>,
    status_replicas: Vec<String>,
    label_selector: Option<String>,
}

/// `.spec.replicas` -> `["spec", "replicas"]`.
fn dotted(path: &str) -> Vec<String> {
    path.trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn cell(obj: &Value, c: &PrinterColumn) -> Value {
    let found = sluice_structural::json_path(obj, &c.json_path)
        .ok()
        .and_then(|v| v.into_iter().next());
    match (found, c.column.ty) {
        (None | Some(Value::Null), _) => json!("<none>"),
        (Some(Value::String(t)), "date") => json!(age(&Value::String(t))),
        (Some(v @ Value::Number(_)), "integer" | "number") => v,
        (Some(Value::Bool(b)), "boolean") => json!(b),
        (Some(Value::Number(n)), "date") => json!(human_duration(n.as_i64().unwrap_or(0))),
        (Some(Value::String(t)), _) => json!(t),
        (Some(v), _) => json!(v.to_string()),
    }
}

impl Strategy for CustomResourceStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        let mut value = input.clone();
        if !value["metadata"].is_object() && !value["metadata"].is_null() {
            return Err("metadata must be an object".into());
        }
        let unknown_fields = match &self.schema {
            Some(schema) => schema.prune(&mut value),
            None => Vec::new(),
        };
        Ok(Canonical {
            value,
            unknown_fields,
        })
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn has_status(&self) -> bool {
        self.has_status
    }

    fn default(&self, obj: &mut Value) {
        if let Some(schema) = &self.schema {
            schema.apply_defaults(obj);
        }
    }

    fn validate(&self, obj: &Value, _cx: &ValidationContext) -> Vec<Cause> {
        let Some(schema) = &self.schema else {
            return Vec::new();
        };
        schema
            .validate(obj)
            .into_iter()
            .map(|e| Cause {
                reason: e.reason,
                field: e.field,
                message: e.message,
            })
            .collect()
    }

    fn columns(&self) -> Vec<Column> {
        let mut out = vec![super::strategy::col("Name", "string", 0)];
        if self.columns.is_empty() {
            out.push(super::strategy::col("Age", "date", 0));
        }
        out.extend(self.columns.iter().map(|c| c.column.clone()));
        out
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut out = vec![json!(s(&obj["metadata"]["name"]))];
        if self.columns.is_empty() {
            out.push(json!(age(&obj["metadata"]["creationTimestamp"])));
        }
        out.extend(self.columns.iter().map(|c| cell(obj, c)));
        out
    }

    fn scale_selector(&self, obj: &Value) -> String {
        let Some(path) = self
            .scale
            .as_ref()
            .and_then(|s| s.label_selector.as_deref())
        else {
            return String::new();
        };
        sluice_structural::json_path(obj, path)
            .ok()
            .and_then(|v| v.into_iter().next())
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    }

    fn scale_paths(&self) -> (Vec<String>, Vec<String>) {
        match &self.scale {
            Some(s) => (s.spec_replicas.clone(), s.status_replicas.clone()),
            None => (dotted(".spec.replicas"), dotted(".status.replicas")),
        }
    }

    fn openapi_schema(&self) -> Option<(String, Value)> {
        let schema = self.open_api.as_ref()?;
        Some((
            sluice_openapi::custom_resource_schema_name(&self.group, &self.version, &self.kind),
            sluice_openapi::custom_resource_schema(&self.group, &self.version, &self.kind, schema),
        ))
    }

    fn encode_stored(&self, mut obj: Value) -> Value {
        obj["apiVersion"] = json!(format!("{}/{}", self.group, self.storage_version));
        obj
    }

    fn decode_stored(&self, mut obj: Value) -> Value {
        obj["apiVersion"] = json!(format!("{}/{}", self.group, self.version));
        obj
    }
}

/// The resources a (valid, established) CRD serves: one per served version.
#[must_use]
pub fn resources(crd: &Value) -> Vec<Resource> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default();
    let kind = names["kind"].as_str().unwrap_or_default();
    let singular = names["singular"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map_or_else(|| kind.to_lowercase(), String::from);
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .and_then(|v| v["name"].as_str())
        .unwrap_or_default()
        .to_string();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(String::from))
            .collect()
    };
    let mut out = Vec::new();
    for v in versions
        .iter()
        .filter(|v| v["served"].as_bool() == Some(true))
    {
        let version = v["name"].as_str().unwrap_or_default();
        let open_api = v["schema"]["openAPIV3Schema"].clone();
        let schema = (!open_api.is_null())
            .then(|| Schema::parse(&open_api, "").ok())
            .flatten();
        let subs = &v["subresources"];
        let has_status = subs["status"].is_object();
        let scale = subs["scale"].is_object().then(|| Scale {
            spec_replicas: dotted(
                subs["scale"]["specReplicasPath"]
                    .as_str()
                    .unwrap_or(".spec.replicas"),
            ),
            status_replicas: dotted(
                subs["scale"]["statusReplicasPath"]
                    .as_str()
                    .unwrap_or(".status.replicas"),
            ),
            label_selector: subs["scale"]["labelSelectorPath"]
                .as_str()
                .map(String::from),
        });
        let columns = v["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| PrinterColumn {
                column: Column {
                    name: c["name"].as_str().unwrap_or_default().to_string(),
                    ty: match c["type"].as_str() {
                        Some("integer") => "integer",
                        Some("number") => "number",
                        Some("boolean") => "boolean",
                        Some("date") => "date",
                        _ => "string",
                    },
                    priority: u8::try_from(c["priority"].as_i64().unwrap_or(0)).unwrap_or(0),
                    description: c["description"].as_str().unwrap_or_default().to_string(),
                },
                json_path: c["jsonPath"].as_str().unwrap_or_default().to_string(),
            })
            .collect();
        let strategy = CustomResourceStrategy {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            storage_version: storage_version.clone(),
            schema,
            open_api: (!open_api.is_null()).then_some(open_api),
            has_status,
            scale: scale.clone(),
            columns,
        };
        let mut subresources = Vec::new();
        if has_status {
            subresources.push(Subresource::Status);
        }
        if scale.is_some() {
            subresources.push(Subresource::Scale);
        }
        let mut r = Resource::new(
            group, version, plural, &singular, kind, namespaced, strategy,
        )
        .subresources(&subresources);
        r.short_names = strings(&names["shortNames"]);
        r.categories = strings(&names["categories"]);
        r.storage_version = version == storage_version;
        out.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crontab() -> Value {
        json!({"spec": {"group": "stable.example.com", "scope": "Namespaced",
        "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
        "versions": [
            {"name": "v1", "served": true, "storage": true,
             "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
             "additionalPrinterColumns": [{"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                 {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}],
             "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {
                    "cronSpec": {"type": "string"},
                    "replicas": {"type": "integer", "minimum": 1, "default": 1}}},
                "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}}},
            {"name": "v1beta1", "served": true, "storage": false,
             "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
            {"name": "v0", "served": false, "storage": false}
        ]}})
    }

    #[test]
    fn serves_each_served_version_with_its_schema() {
        let rs = resources(&crontab());
        assert_eq!(rs.len(), 2);
        let v1 = &rs[0];
        assert_eq!(
            (v1.plural.as_str(), v1.kind.as_str()),
            ("crontabs", "CronTab")
        );
        assert_eq!(
            v1.subresources,
            vec![Subresource::Status, Subresource::Scale]
        );
        assert!(v1.storage_version && !rs[1].storage_version);
        assert_eq!(v1.key_prefix(), rs[1].key_prefix());
        let mut obj = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "c"}, "spec": {"cronSpec": "* * * * */5", "bogus": 1}});
        let c = v1.strategy.canonical(&obj).unwrap();
        assert_eq!(c.unknown_fields, vec!["spec.bogus".to_string()]);
        assert!(c.value["spec"].get("bogus").is_none());
        obj = c.value;
        v1.strategy.default(&mut obj);
        assert_eq!(obj["spec"]["replicas"], 1);
        let cx = ValidationContext {
            node_port_range: (1, 2),
        };
        assert!(v1.strategy.validate(&obj, &cx).is_empty());
        obj["spec"]["replicas"] = json!(0);
        let causes = v1.strategy.validate(&obj, &cx);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.replicas");
    }

    #[test]
    fn printer_columns_and_versions_in_storage() {
        let rs = resources(&crontab());
        let v1 = &rs[0];
        let names: Vec<String> = v1.strategy.columns().into_iter().map(|c| c.name).collect();
        assert_eq!(names, vec!["Name", "Spec", "Replicas"]);
        let obj = json!({"metadata": {"name": "c"}, "spec": {"cronSpec": "x", "replicas": 2}});
        assert_eq!(
            v1.strategy.cells(&obj),
            vec![json!("c"), json!("x"), json!(2)]
        );
        let beta = &rs[1];
        assert_eq!(beta.strategy.columns().len(), 2, "Name and Age by default");
        let stored = beta
            .strategy
            .encode_stored(json!({"apiVersion": "stable.example.com/v1beta1"}));
        assert_eq!(stored["apiVersion"], "stable.example.com/v1");
        assert_eq!(
            beta.strategy.decode_stored(stored)["apiVersion"],
            "stable.example.com/v1beta1"
        );
        assert_eq!(v1.strategy.scale_paths().0, vec!["spec", "replicas"]);
    }
}
