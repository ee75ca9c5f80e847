//! `data "kargo_warehouse"`: what a Warehouse has discovered (image tags, commits, chart
//! versions) and the newest Freight it has produced, as Kargo reports them.

use std::sync::LazyLock;

use super::{Named, id, named_object_block, read_fields, read_named};
use crate::config::ProviderData;
use crate::kargo::{Freight, Origin, Warehouse, condition};
use crate::plugin::{
    Attribute, Context, DataSource, Diagnostics, NestedObject, Schema, Shape, Value,
};
use crate::resolve::choice::freight_summary_attribute;
use crate::resolve::{self, values::summary_value};
use async_trait::async_trait;

/// The `kargo_warehouse` data source.
pub struct WarehouseDataSource {
    data: ProviderData,
}

impl WarehouseDataSource {
    pub fn new(data: ProviderData) -> Self {
        Self { data }
    }
}

fn computed_strings(fields: &[(&str, &str)]) -> Vec<Attribute> {
    fields
        .iter()
        .map(|(name, description)| {
            Attribute::string(*name)
                .computed()
                .description(*description)
        })
        .collect()
}

fn discovered_artifacts_attributes() -> Vec<Attribute> {
    let mut references = computed_strings(&[
        ("tag", "The tag."),
        (
            "digest",
            "The digest the tag pointed to when it was discovered.",
        ),
        (
            "created_at",
            "When the image was built, as the registry reports it.",
        ),
    ]);
    references.push(
        Attribute::string_map("annotations")
            .computed()
            .description("The image's OCI annotations, when the registry provides them."),
    );
    let mut images = computed_strings(&[
        ("repo_url", "The image repository."),
        (
            "platform",
            "The platform the subscription selects (`os/arch`), if any.",
        ),
    ]);
    images.push(
        Attribute::nested("references", NestedObject::list(references))
            .computed()
            .description("The image references found, newest (by the subscription's selection strategy) first."),
    );
    let mut git = computed_strings(&[("repo_url", "The Git repository.")]);
    git.push(
        Attribute::nested(
            "commits",
            NestedObject::list(computed_strings(&[
                ("id", "The commit ID."),
                (
                    "branch",
                    "The branch it was found on, when selected from a branch.",
                ),
                ("tag", "The tag, when selected by tag."),
                ("subject", "The first line of the commit message."),
                ("author", "The author."),
                ("committer", "The committer."),
                ("creator_date", "When the commit (or tag) was created."),
            ])),
        )
        .computed()
        .description("The commits found, in selection order."),
    );
    let mut charts = computed_strings(&[
        ("repo_url", "The chart repository."),
        ("name", "The chart name (empty for OCI repositories)."),
        (
            "semver_constraint",
            "The version constraint of the subscription.",
        ),
    ]);
    charts.push(
        Attribute::string_list("versions")
            .computed()
            .description("The versions found, newest first."),
    );
    vec![
        Attribute::string("discovered_at")
            .computed()
            .description("When the warehouse last discovered artifacts (RFC 3339)."),
        Attribute::nested("images", NestedObject::list(images))
            .computed()
            .description("One entry per image subscription."),
        Attribute::nested("git", NestedObject::list(git))
            .computed()
            .description("One entry per Git subscription."),
        Attribute::nested("charts", NestedObject::list(charts))
            .computed()
            .description("One entry per Helm chart subscription."),
    ]
}

fn schema() -> Schema {
    let attributes = vec![
        Attribute::nested(
            "discovered_artifacts",
            NestedObject::single(discovered_artifacts_attributes()),
        )
        .computed()
        .description(
            "What the warehouse's subscriptions found at its last discovery (Kargo's \
             `status.discoveredArtifacts`), up to each subscription's `discovery_limit`. Null \
             until the warehouse has run a discovery.",
        ),
        freight_summary_attribute(
            "latest_freight",
            "The newest freight that originates from this warehouse (by discovery time), \
             whether Kargo built it automatically or it was assembled by hand. Null when the \
             warehouse has produced none.",
        ),
        Attribute::string("last_freight_id").computed().description(
            "The newest freight the warehouse's own discovery produced, as Kargo reports it \
             (`status.lastFreightID`). Null until Kargo has built one (never with a `Manual` \
             freight creation policy).",
        ),
        Attribute::bool("ready").computed().description(
            "Whether Kargo reports the warehouse Ready (its last discovery succeeded).",
        ),
        Attribute::string("message")
            .computed()
            .description("Kargo's explanation of the Ready condition, e.g. why discovery failed."),
    ];
    Schema::new(
        0,
        named_object_block("warehouse", attributes).description(
            "Reads a Kargo warehouse: the artifacts it discovered and the newest freight it \
             produced. Useful to show which image tag, commit or chart version the pipeline \
             would pick up next.\n\nThe warehouse must exist when the data source is read; \
             reading fails with the names of the warehouses the project has otherwise.",
        ),
    )
}

/// The Ready condition's status and message.
fn ready(live: &Warehouse) -> (Value, Value) {
    match condition(&live.status.conditions, "Ready") {
        Some(c) => (
            Value::Bool(c.is_true()),
            Some(c.message.as_str())
                .filter(|m| !m.is_empty())
                .map_or(Value::Null, Value::string),
        ),
        None => (Value::Bool(false), Value::Null),
    }
}

/// The newest of `freight` that comes from warehouse `name`, as Kargo orders freight: by
/// discovery time, then by name.
fn newest_from<'a>(freight: &'a [Freight], name: &str) -> Option<&'a Freight> {
    let origin = Origin::warehouse(name);
    freight
        .iter()
        .filter(|f| f.origin == origin)
        .min_by(|a, b| a.cmp_newest_first(b))
}

/// The state for a live Warehouse and the project's Freight.
fn state(project: &str, name: &str, live: &Warehouse, freight: &[Freight]) -> Value {
    static DISCOVERED_ARTIFACTS: LazyLock<Vec<Attribute>> =
        LazyLock::new(discovered_artifacts_attributes);
    let discovered = live
        .status
        .discovered_artifacts
        .as_ref()
        .map_or(Value::Null, |d| {
            read_fields(Shape::of_attributes(&DISCOVERED_ARTIFACTS), Some(d))
        });
    let latest = newest_from(freight, name).map_or(Value::Null, summary_value);
    let last_freight_id = live
        .status
        .last_freight_id
        .as_deref()
        .map_or(Value::Null, Value::string);
    let (ready, message) = ready(live);
    Value::object([
        ("id", id(project, name)),
        ("project", Value::string(project)),
        ("name", Value::string(name)),
        ("discovered_artifacts", discovered),
        ("latest_freight", latest),
        ("last_freight_id", last_freight_id),
        ("ready", ready),
        ("message", message),
    ])
}

#[async_trait]
impl DataSource for WarehouseDataSource {
    fn type_name(&self) -> &'static str {
        "kargo_warehouse"
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
        } = match read_named::<Warehouse>(&self.data, &config).await {
            Ok(named) => named,
            Err(d) => return (config, d.into()),
        };
        let freight = match resolve::stored_freight(&client, &project).await {
            Ok(items) => items,
            Err(e) => {
                let what = format!("the freight of project {project:?}");
                return (config, super::read_error(&what, &e).into());
            }
        };
        (
            state(&project, &name, &live, &freight),
            Diagnostics::default(),
        )
    }
}
