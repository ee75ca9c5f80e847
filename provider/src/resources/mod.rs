//! Terraform resources and data sources: schema, validation, plan, apply, read, import.
//! One file per resource type; `common` holds what they share.

use std::sync::Arc;

use crate::plugin::Resource;
use crate::provider::ProviderData;

pub mod common;
pub mod convert;
pub mod freight;
pub mod freight_approval;
pub mod project;
pub mod promotion;
pub mod promotion_task;
pub mod stage;
pub mod templates;
pub mod validators;
pub mod warehouse;

/// Every managed resource type the provider offers.
pub fn all(data: &ProviderData) -> Vec<Arc<dyn Resource>> {
    vec![
        Arc::new(project::ProjectResource::new(data.clone())),
        Arc::new(warehouse::WarehouseResource::new(data.clone())),
        Arc::new(stage::StageResource::new(data.clone())),
        Arc::new(promotion_task::PromotionTaskResource::new(data.clone())),
        Arc::new(promotion::PromotionResource::new(data.clone())),
        Arc::new(promotion_task::ClusterPromotionTaskResource::new(
            data.clone(),
        )),
        Arc::new(freight_approval::FreightApprovalResource::new(data.clone())),
    ]
}
