//! What a stage's status reports, as `kargo_stage` and its data source both show it: the
//! freight it holds, its health and whether Kargo auto-promotes into it.

use super::choice::freight_summary_attribute;
use super::values::stage_freight_value;
use crate::kargo::{KargoClient, Stage};
use crate::plugin::{Attribute, Value};

/// `current_freight`, `health` and `auto_promotion_enabled`, with `current_freight`
/// described as given: the resource and the data source word it differently.
pub fn status_attributes(current_freight_description: &str) -> Vec<Attribute> {
    vec![
        freight_summary_attribute("current_freight", current_freight_description),
        Attribute::string("health").computed().description(
            "The stage's health as Kargo reports it: `Healthy`, `Unhealthy`, `Progressing`, \
             `Unknown` or `NotApplicable`; null before Kargo has assessed it.",
        ),
        Attribute::bool("auto_promotion_enabled")
            .computed()
            .description(
                "Whether the project's promotion policies let Kargo promote into this stage \
             automatically.",
            ),
    ]
}

/// The values of [`status_attributes`] for `stage`. The alias of the current freight is kept
/// from `prior` while the freight is unchanged (otherwise it is read from the Freight).
pub async fn status_values(
    client: &KargoClient,
    stage: &Stage,
    prior: &Value,
) -> Vec<(&'static str, Value)> {
    let health = stage
        .status
        .health
        .as_ref()
        .and_then(|h| h.status.as_deref())
        .map_or(Value::Null, Value::string);
    let auto = stage.status.auto_promotion_enabled.unwrap_or(false);
    let freight = stage_freight_value(client, stage, None, prior.get("current_freight")).await;
    vec![
        ("health", health),
        ("auto_promotion_enabled", Value::Bool(auto)),
        ("current_freight", freight),
    ]
}
