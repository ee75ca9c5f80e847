//! Terraform resources and data sources: schema, validation, plan, apply, read, import.
//! One file per resource type; `common` holds what they share.

use std::sync::Arc;

use crate::plugin::Resource;
use crate::provider::ProviderData;

pub mod common;
pub mod project;

/// Every managed resource type the provider offers.
pub fn all(data: &ProviderData) -> Vec<Arc<dyn Resource>> {
    vec![Arc::new(project::ProjectResource::new(data.clone()))]
}
