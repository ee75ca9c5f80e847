//! What a stage's status reports, as `kargo_stage` and its data source both show it: the
//! freight it holds, its health, whether Kargo auto-promotes into it and what holds that back.

use super::choice::freight_summary_attribute;
use super::values::stage_freight_value;
use crate::kargo::{KargoClient, Stage};
use crate::plugin::{Attribute, NestedObject, Value};

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
        Attribute::nested(
            "auto_promotion_holds",
            NestedObject::map(vec![
                Attribute::string("freight")
                    .computed()
                    .description("Name of the freight promoted when the hold was placed."),
                Attribute::string("promotion")
                    .computed()
                    .description("Name of the promotion that placed the hold."),
                Attribute::string("actor")
                    .computed()
                    .description("Who created that promotion, as Kargo records it."),
                Attribute::string("created_at")
                    .computed()
                    .description("When that promotion was created (RFC 3339)."),
            ]),
        )
        .computed()
        .description(
            "Kargo v1.11+: the warehouses (by name) whose auto-promotion into this stage is on \
             hold, because someone promoted freight other than the auto-promotion candidate (a \
             rollback, e.g. a `kargo_promotion` of an older version). Kargo does not \
             auto-promote from a held warehouse until the candidate is promoted into the stage. \
             Empty when there is none.",
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
    let text = |s: Option<&str>| s.map_or(Value::Null, Value::string);
    let holds = stage
        .status
        .auto_promotion_holds
        .values()
        .map(|h| {
            (
                h.origin.name.clone(),
                Value::object([
                    ("freight", Value::string(&h.freight_name)),
                    ("promotion", text(h.promotion_name.as_deref())),
                    ("actor", text(h.actor.as_deref())),
                    ("created_at", text(h.created_at.as_deref())),
                ]),
            )
        })
        .collect();
    vec![
        ("auto_promotion_holds", Value::Map(holds)),
        ("health", health),
        ("auto_promotion_enabled", Value::Bool(auto)),
        ("current_freight", freight),
    ]
}
