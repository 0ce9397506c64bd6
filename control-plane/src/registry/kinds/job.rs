//! `batch/v1 Job`: its strategy and resource entry.

use k8s_openapi::api::batch;
use serde_json::Value;

use super::super::strategy::{Canonical, Strategy, typed};
use super::super::{Resource, Subresource};

/// The `jobs` resource.
#[must_use]
pub fn resource() -> Resource {
    Resource::new("batch", "v1", "jobs", "job", "Job", true, JobStrategy)
        .categories(&["all"])
        .subresources(&[Subresource::Status])
}

/// Upstream's `Job` strategy and printer.
pub struct JobStrategy;

impl Strategy for JobStrategy {
    fn canonical(&self, input: &Value) -> Result<Canonical, String> {
        typed::<batch::v1::Job>(input)
    }

    fn has_status(&self) -> bool {
        true
    }
}
