//! `terraform-provider-echo`: a minimal provider on `tfplugin`, with one resource, `echo_store`,
//! that stores what it is given in Terraform's state and nothing anywhere else.
//!
//! Its schema has the shape of a typical "watcher" resource: a list of subscriptions, each one
//! of three nested kinds (`image`, `git`, `chart`), optional attributes with defaults that plan
//! as known values, computed attributes, and `timeouts`. It is what the crate's end-to-end tests
//! drive through the real `terraform` binary, and the floor a benchmark can compare a real
//! provider against: everything a plugin provider pays, with no API behind it.
//!
//! Build it with `cargo build -p tfplugin --example terraform-provider-echo`, then point
//! Terraform at `target/debug/examples` with a `dev_overrides` block for
//! `registry.terraform.io/example/echo` (see the crate's README).

use std::process::ExitCode;
use std::sync::{Arc, RwLock};

use tfplugin::validate::validators::{exactly_one_of, int_between, matches, one_of};
use tfplugin::{
    ApplyResult, Attribute, Block, Context, DataSource, Diagnostics, ImportResult, NestedBlock,
    Provider, ReadResult, Resource, Schema, ServeOptions, Value, async_trait,
};

fn main() -> ExitCode {
    ServeOptions::new("registry.terraform.io/example/echo")
        .version(env!("CARGO_PKG_VERSION"))
        .run(Echo::default)
}

/// The provider: its block has one setting, which the resource reads once configured.
#[derive(Default)]
struct Echo {
    id_prefix: Arc<RwLock<String>>,
}

#[async_trait]
impl Provider for Echo {
    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::string("id_prefix")
                    .optional()
                    .description("Prepended to every `echo_store` ID. Default: none."),
            ]),
        )
    }

    async fn configure(&self, _ctx: &Context, config: &Value, _tf_version: &str) -> Diagnostics {
        // During plan the prefix may be unknown; the IDs it feeds are only made at apply.
        if let Some(prefix) = config.get("id_prefix").as_str()
            && let Ok(mut id_prefix) = self.id_prefix.write()
        {
            *id_prefix = prefix.to_string();
        }
        Diagnostics::default()
    }

    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        vec![Arc::new(Store {
            id_prefix: self.id_prefix.clone(),
        })]
    }

    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        Vec::new()
    }
}

/// `echo_store`: the planned state is the stored state, plus an ID and a generation count.
struct Store {
    id_prefix: Arc<RwLock<String>>,
}

/// A Go-style duration such as `30s`, `10m` or `1h30m`.
const DURATION: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

fn discovery_limit() -> Attribute {
    Attribute::number("discovery_limit")
        .default(Value::int(20))
        .validate(int_between(1, 100))
        .description("How many versions to look at. Default `20`.")
}

fn strict_semvers() -> Attribute {
    Attribute::bool("strict_semvers")
        .default(Value::Bool(true))
        .description("Consider only complete semantic versions. Default `true`.")
}

fn subscriptions() -> NestedBlock {
    let image = Block::new(vec![
        Attribute::string("repo_url").required(),
        Attribute::string("image_selection_strategy")
            .default(Value::string("SemVer"))
            .validate(one_of(&["SemVer", "Lexical", "NewestBuild", "Digest"])),
        Attribute::string("constraint").optional(),
        strict_semvers(),
        discovery_limit(),
        Attribute::string("platform").optional(),
    ]);
    let git = Block::new(vec![
        Attribute::string("repo_url").required(),
        Attribute::string("commit_selection_strategy")
            .default(Value::string("NewestFromBranch"))
            .validate(one_of(&[
                "NewestFromBranch",
                "SemVer",
                "Lexical",
                "NewestTag",
            ])),
        Attribute::string("branch").optional(),
        strict_semvers(),
        Attribute::string_list("include_paths").optional(),
        discovery_limit(),
    ]);
    let chart = Block::new(vec![
        Attribute::string("repo_url").required(),
        Attribute::string("name").optional(),
        Attribute::string("semver_constraint").optional(),
        discovery_limit(),
    ]);
    let subscription = Block::default()
        .block(NestedBlock::single("image", image))
        .block(NestedBlock::single("git", git))
        .block(NestedBlock::single("chart", chart));
    NestedBlock::list("subscriptions", subscription)
        .validate(exactly_one_of(&["image", "git", "chart"]))
        .description(
            "What to watch, one block each, with exactly one of `image`, `git` or `chart`.",
        )
}

fn timeouts() -> NestedBlock {
    let timeout = |which: &str| {
        Attribute::string(which).optional().validate(matches(
            DURATION,
            "must be a duration such as 30s, 10m or 1h",
        ))
    };
    NestedBlock::single(
        "timeouts",
        Block::new(vec![timeout("create"), timeout("delete")]),
    )
}

/// Fills what only apply knows: the ID, the generation, and null for anything else unknown.
fn resolved(mut planned: Value, id: String, generation: i64) -> Value {
    fn unknown_to_null(value: &mut Value) {
        match value {
            Value::Unknown => *value = Value::Null,
            Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
                items.iter_mut().for_each(unknown_to_null)
            }
            Value::Map(entries) | Value::Object(entries) => {
                entries.values_mut().for_each(unknown_to_null)
            }
            _ => {}
        }
    }
    planned.set("id", Value::string(id));
    planned.set("generation", Value::int(generation));
    unknown_to_null(&mut planned);
    planned
}

#[async_trait]
impl Resource for Store {
    fn type_name(&self) -> &'static str {
        "echo_store"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::string("id").computed().use_state_for_unknown(),
                Attribute::string("project").optional().requires_replace(),
                Attribute::string("name").required().requires_replace(),
                Attribute::string("shard").optional(),
                Attribute::string("interval")
                    .default(Value::string("5m0s"))
                    .validate(matches(DURATION, "must be a duration such as 30s or 5m")),
                Attribute::string("creation_policy")
                    .default(Value::string("Automatic"))
                    .validate(one_of(&["Automatic", "Manual"])),
                Attribute::number("generation").computed(),
            ])
            .block(subscriptions())
            .block(timeouts())
            .description("Stores its configuration in Terraform's state, and nothing else."),
        )
    }

    // `validate` and `plan` are the schema-driven defaults: required attributes, validators,
    // defaults, "known after apply" for computed values, replacement when `name` changes.

    async fn create(&self, _ctx: &Context, planned: Value, _config: Value) -> ApplyResult {
        let prefix = self.id_prefix.read().map(|p| p.clone()).unwrap_or_default();
        let id = match planned.get("project").as_str() {
            Some(project) => format!("{prefix}{project}/{}", planned.str_or_empty("name")),
            None => format!("{prefix}{}", planned.str_or_empty("name")),
        };
        ApplyResult {
            new_state: resolved(planned, id, 1),
            ..ApplyResult::default()
        }
    }

    async fn update(
        &self,
        _ctx: &Context,
        prior: Value,
        planned: Value,
        _config: Value,
        private: Vec<u8>,
    ) -> ApplyResult {
        let id = prior.str_or_empty("id").to_string();
        let generation = prior.get("generation").as_i64().unwrap_or(0) + 1;
        ApplyResult {
            new_state: resolved(planned, id, generation),
            private,
            ..ApplyResult::default()
        }
    }

    async fn delete(&self, _ctx: &Context, _prior: Value, _private: Vec<u8>) -> Diagnostics {
        Diagnostics::default()
    }

    async fn read(&self, _ctx: &Context, state: Value, private: Vec<u8>) -> ReadResult {
        ReadResult {
            new_state: state,
            private,
            ..ReadResult::default()
        }
    }

    async fn import(&self, _ctx: &Context, id: &str) -> ImportResult {
        let mut diagnostics = Diagnostics::default();
        diagnostics.error(
            "Import is not supported",
            format!(
                "An echo_store keeps nothing outside Terraform's state, so there is no {id:?} \
                 to import. Declare the resource instead."
            ),
        );
        ImportResult {
            diagnostics,
            ..ImportResult::default()
        }
    }
}
