//! `data "kargo_stage"`: the freight a Stage holds, its health, its last promotion and where
//! it takes freight from, as Kargo reports them.

use async_trait::async_trait;

use super::{Named, id, named_object_block, origin_attribute, read_fields, read_named};
use crate::config::ProviderData;
use crate::kargo::{PromotionReference, Stage};
use crate::plugin::{
    Attribute, Context, DataSource, Diagnostics, NestedObject, Schema, Shape, Value,
};
use crate::resolve::stage::{status_attributes, status_values};

/// The `kargo_stage` data source.
pub struct StageDataSource {
    data: ProviderData,
}

impl StageDataSource {
    pub fn new(data: ProviderData) -> Self {
        Self { data }
    }
}

fn computed_string(name: &str, description: &str) -> Attribute {
    Attribute::string(name).computed().description(description)
}

fn last_promotion_attributes() -> Vec<Attribute> {
    vec![
        computed_string("name", "Name of the promotion."),
        computed_string(
            "phase",
            "How it ended: `Succeeded`, `Failed`, `Errored` or `Aborted`.",
        ),
        computed_string("message", "Kargo's message about the outcome, if any."),
        computed_string("finished_at", "When it finished (RFC 3339)."),
        computed_string("freight", "Name of the freight it promoted."),
    ]
}

/// The shape of `requested_freight`: the `kargo_stage` resource's without
/// `sources.auto_promotion_options`; the attribute names map onto Kargo's fields one to one.
fn requested_freight_attributes() -> Vec<Attribute> {
    vec![
        origin_attribute("Name of the warehouse.", "Where the freight is produced."),
        Attribute::nested(
            "sources",
            NestedObject::single(vec![
                Attribute::bool("direct").computed().description(
                    "Whether the stage takes this freight straight from the warehouse.",
                ),
                Attribute::string_list("stages")
                    .computed()
                    .description("Upstream stages the freight must have been verified in first."),
                computed_string(
                    "required_soak_time",
                    "How long the freight must have stayed in an upstream stage, as Kargo \
                     stores it (e.g. `1h0m0s`); null when none is required.",
                ),
                computed_string(
                    "availability_strategy",
                    "`OneOf` or `All` upstream stages; null means `OneOf`.",
                ),
            ]),
        )
        .computed()
        .description("Where the stage may take this freight from."),
    ]
}

fn schema() -> Schema {
    let mut attributes = status_attributes(
        "The freight the stage currently holds, in the same shape as the `kargo_stage` \
         resource's `current_freight` (for a stage requesting from several warehouses, the \
         freight of the first `requested_freight` entry). Null until something has been \
         promoted.",
    );
    attributes.extend([
        Attribute::nested(
            "last_promotion",
            NestedObject::single(last_promotion_attributes()),
        )
        .computed()
        .description("The stage's most recent finished promotion; null when there is none."),
        Attribute::nested(
            "requested_freight",
            NestedObject::list(requested_freight_attributes()),
        )
        .computed()
        .description(
            "The freight the stage requests: from which warehouses, and through which sources.",
        ),
        Attribute::bool("control_flow").computed().description(
            "True for a control-flow stage: one without promotion steps, which only passes \
             freight on to the stages downstream of it and cannot be promoted to.",
        ),
    ]);
    Schema::new(
        0,
        named_object_block("stage", attributes).description(
            "Reads a Kargo stage: the freight it holds (for example the image tag running in an \
             environment), its health and its last promotion.\n\nThe stage must exist when the \
             data source is read; reading fails with the names of the stages the project has \
             otherwise.",
        ),
    )
}

fn last_promotion(last: Option<&PromotionReference>) -> Value {
    let Some(p) = last else {
        return Value::Null;
    };
    let text = |s: Option<&str>| {
        s.filter(|s| !s.is_empty())
            .map_or(Value::Null, Value::string)
    };
    let status = p.status.as_ref();
    Value::object([
        ("name", text(Some(&p.name))),
        ("phase", text(p.phase())),
        ("message", text(status.and_then(|s| s.message.as_deref()))),
        ("finished_at", text(p.finished_at.as_deref())),
        ("freight", text(p.freight_name())),
    ])
}

#[async_trait]
impl DataSource for StageDataSource {
    fn type_name(&self) -> &'static str {
        "kargo_stage"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    async fn read(&self, _ctx: &Context, config: Value) -> (Value, Diagnostics) {
        let Named {
            project,
            name,
            client,
            live,
        } = match read_named::<Stage>(&self.data, &config).await {
            Ok(named) => named,
            Err(d) => return (config, d.into()),
        };
        let requested_attributes = requested_freight_attributes();
        let requested = live
            .requested_freight()
            .iter()
            .map(|r| {
                read_fields(
                    Shape::of_attributes(&requested_attributes),
                    serde_json::to_value(r).ok().as_ref(),
                )
            })
            .collect();
        let status = status_values(&client, &live, &Value::Null).await;
        let state = Value::object(
            [
                ("id", id(&project, &name)),
                ("project", Value::string(&project)),
                ("name", Value::string(&name)),
            ]
            .into_iter()
            .chain(status)
            .chain([
                (
                    "last_promotion",
                    last_promotion(live.status.last_promotion.as_ref()),
                ),
                ("requested_freight", Value::List(requested)),
                ("control_flow", Value::Bool(!live.has_promotion_steps())),
            ]),
        );
        (state, Diagnostics::default())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kargo::types::test_support::stage;

    #[test]
    fn last_promotion_reads_kargo_fields() {
        let live = stage(json!({"status": {"lastPromotion": {
            "name": "prod.01abc.f1",
            "freight": {"name": "f1"},
            "finishedAt": "2025-01-01T00:00:00Z",
            "status": {"phase": "Failed", "message": "step 2 failed"},
        }}}));
        let v = last_promotion(live.status.last_promotion.as_ref());
        assert_eq!(v.get("phase"), &Value::string("Failed"));
        assert_eq!(v.get("message"), &Value::string("step 2 failed"));
        assert_eq!(v.get("freight"), &Value::string("f1"));
        assert_eq!(v.get("finished_at"), &Value::string("2025-01-01T00:00:00Z"));
        let none = stage(json!({"status": {}}));
        assert_eq!(
            last_promotion(none.status.last_promotion.as_ref()),
            Value::Null
        );
    }

    #[test]
    fn requested_freight_reads_like_the_resource() {
        let r = json!({"origin": {"kind": "Warehouse", "name": "app"},
            "sources": {"stages": ["dev"], "requiredSoakTime": "1h0m0s"}});
        let v = read_fields(
            Shape::of_attributes(&requested_freight_attributes()),
            Some(&r),
        );
        assert_eq!(v.get("origin").get("name"), &Value::string("app"));
        let sources = v.get("sources");
        assert_eq!(
            sources.get("stages"),
            &Value::List(vec![Value::string("dev")])
        );
        assert_eq!(sources.get("required_soak_time"), &Value::string("1h0m0s"));
        assert_eq!(sources.get("direct"), &Value::Null);
        let ty = NestedObject::single(requested_freight_attributes()).implied_type();
        assert_eq!(
            Value::from_json(&v.to_json().unwrap(), &ty),
            v,
            "the value fits the schema type"
        );
    }
}
