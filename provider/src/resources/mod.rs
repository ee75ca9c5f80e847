//! Terraform resources and data sources: schema, validation, plan, apply, read, import.
//! One file per resource type; `common` holds what they share.

use std::sync::Arc;

use crate::config::ProviderData;
use crate::plugin::Resource;

pub mod common;
pub mod convert;
pub mod freight_approval;
pub mod preview;
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

#[cfg(test)]
mod tests {
    use crate::config::ProviderData;
    use crate::plugin::{Block, Type};

    /// A dynamic attribute inside a list block makes Terraform type the blocks as a tuple,
    /// which the conversion and the state upgrade do not model: keep them out.
    #[test]
    fn no_list_block_holds_a_dynamic_value() {
        fn walk(block: &Block, at: &str) {
            for b in &block.blocks {
                assert!(
                    b.implied_type() != Type::Dynamic,
                    "{at}{} is a list block with a dynamic attribute",
                    b.type_name
                );
                walk(&b.block, &format!("{at}{}.", b.type_name));
            }
        }
        let data = ProviderData::default();
        for r in super::all(&data) {
            walk(&r.schema().block, &format!("{}.", r.type_name()));
        }
        for d in crate::data_sources::all(&data) {
            walk(&d.schema().block, &format!("{}.", d.type_name()));
        }
    }
}
