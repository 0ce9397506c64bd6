//! `batch/v1 CronJob`: its strategy and resource entry.

use k8s_openapi::api::batch;
use serde_json::Value;

use super::super::strategy::{Canonical, Strategy, typed};
use super::super::{Resource, Subresource};

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

impl Strategy for CronJobStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<batch::v1::CronJob>(input)
    }

    fn has_status(&self) -> bool {
        true
    }
}
