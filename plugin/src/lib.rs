//! A small, general Terraform provider server (plugin protocol 6), the only code that sees
//! protobuf types: resources implement [`Resource`] over decoded [`Value`]s.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod diagnostics;
mod error;
pub mod handshake;
pub mod logging;
pub mod plan;
pub mod schema;
mod serve;
pub mod server;
pub mod validate;
pub mod value;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// Re-exported so that providers can implement the traits without depending on it.
pub use async_trait::async_trait;
pub use diagnostics::{AttributePath, Diagnostic, Diagnostics, PathStep, Severity};
pub use error::{Error, Result};
pub use schema::{
    Attribute, AttributeType, Block, NestedBlock, NestedObject, Nesting, Schema, Shape,
};
pub use serve::ServeOptions;
pub use value::{Type, Value};

/// What every provider call gets besides its payload.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// Cancelled when Terraform sends StopProvider (Ctrl-C). Long waits must select on it
    /// and return promptly, leaving state consistent.
    pub cancel: CancellationToken,
}

/// The provider as a whole: its configuration schema, configure, and its resource types.
///
/// See the [crate documentation](crate) for a complete provider.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The schema of the `provider "<type>" { ... }` block.
    fn schema(&self) -> Schema;
    /// Extra validation of the provider block beyond what the schema declares.
    fn validate_config(&self, _config: &Value) -> Diagnostics {
        Diagnostics::default()
    }
    /// ConfigureProvider. `config` may contain unknown values during plan.
    async fn configure(
        &self,
        ctx: &Context,
        config: &Value,
        terraform_version: &str,
    ) -> Diagnostics;
    /// The managed resource types, each named by its [`Resource::type_name`].
    fn resources(&self) -> Vec<Arc<dyn Resource>>;
    /// The data source types, each named by its [`DataSource::type_name`].
    fn data_sources(&self) -> Vec<Arc<dyn DataSource>>;
}

/// PlanResourceChange input. `prior_state` is `Value::Null` when creating;
/// `config` / `proposed_new_state` are `Value::Null` when destroying.
#[derive(Clone, Debug)]
pub struct PlanRequest {
    /// The state before the change; null when creating.
    pub prior_state: Value,
    /// Terraform's proposal: the configuration merged with the prior state's computed values.
    pub proposed_new_state: Value,
    /// The configuration as written (unknown values possible); null when destroying.
    pub config: Value,
    /// The private data stored with the prior state.
    pub prior_private: Vec<u8>,
}

/// PlanResourceChange output.
#[derive(Clone, Debug, Default)]
pub struct PlanResponse {
    /// What the resource will look like after apply; unknown where not yet known.
    pub planned_state: Value,
    /// Attributes whose change replaces the resource (Terraform shows "forces replacement").
    pub requires_replace: Vec<AttributePath>,
    /// Private data handed to apply.
    pub planned_private: Vec<u8>,
    /// Problems found while planning.
    pub diagnostics: Diagnostics,
}

/// Result of create / update. A non-null `new_state` together with error diagnostics
/// makes Terraform keep the object in state as tainted.
#[derive(Clone, Debug, Default)]
pub struct ApplyResult {
    /// The state after the change.
    pub new_state: Value,
    /// Private data to store with the state.
    pub private: Vec<u8>,
    /// Problems met while applying.
    pub diagnostics: Diagnostics,
}

/// Result of read. `new_state == Value::Null` means the object is gone.
#[derive(Clone, Debug, Default)]
pub struct ReadResult {
    /// The state as the remote object is now; null when it is gone.
    pub new_state: Value,
    /// Private data to store with the state.
    pub private: Vec<u8>,
    /// Problems met while reading.
    pub diagnostics: Diagnostics,
}

/// Result of import. A null `state` without errors tells the user nothing was found.
#[derive(Clone, Debug, Default)]
pub struct ImportResult {
    /// The state to hand to Read; it needs only enough to find the object.
    pub state: Value,
    /// Private data to store with the state.
    pub private: Vec<u8>,
    /// Problems met while importing.
    pub diagnostics: Diagnostics,
}

/// One managed resource type. The server decodes and encodes values with `schema()`'s type.
#[async_trait]
pub trait Resource: Send + Sync + 'static {
    /// The resource type's name, e.g. `echo_store`: the provider's type name, `_`, a noun.
    fn type_name(&self) -> &'static str;
    /// The resource's schema; the server decodes and encodes every value with its type.
    fn schema(&self) -> Schema;
    /// Rules beyond those the schema declares (the schema's own rules run first).
    /// `config` may contain unknown values; skip checks on them.
    fn validate(&self, _config: &Value) -> Diagnostics {
        Diagnostics::default()
    }
    /// UpgradeResourceState: rewrites `state`, the JSON Terraform stored under schema
    /// `version` (older than the current one), into the current schema's shape before it is
    /// decoded with the current type. Default: unchanged, which suits additive changes (gone
    /// attributes are dropped and new ones start null when decoded).
    fn upgrade_state(&self, _version: i64, _state: &mut serde_json::Value) -> Diagnostics {
        Diagnostics::default()
    }
    /// Default: the schema-driven plan in [`plan::plan_from_schema`].
    async fn plan(&self, _ctx: &Context, req: PlanRequest) -> PlanResponse {
        plan::plan_from_schema(&self.schema(), &req)
    }
    /// Creates the object `planned` describes and returns its state (unknowns resolved).
    async fn create(&self, ctx: &Context, planned: Value, config: Value) -> ApplyResult;
    /// Changes the object from `prior` to `planned` and returns its new state.
    async fn update(
        &self,
        ctx: &Context,
        prior: Value,
        planned: Value,
        config: Value,
        private: Vec<u8>,
    ) -> ApplyResult;
    /// Deletes the object; errors keep it in state.
    async fn delete(&self, ctx: &Context, prior: Value, private: Vec<u8>) -> Diagnostics;
    /// Refreshes `state` from the remote object (null when it is gone).
    async fn read(&self, ctx: &Context, state: Value, private: Vec<u8>) -> ReadResult;
    /// `terraform import` / `import {}` blocks: a state from which [`read`](Self::read)
    /// can find the object named by `id`.
    async fn import(&self, ctx: &Context, id: &str) -> ImportResult;
}

/// One data source type.
#[async_trait]
pub trait DataSource: Send + Sync + 'static {
    /// The data source type's name, e.g. `echo_store`.
    fn type_name(&self) -> &'static str;
    /// The data source's schema: its arguments and the computed attributes it reads.
    fn schema(&self) -> Schema;
    /// Rules beyond those the schema declares (the schema's own rules run first).
    fn validate(&self, _config: &Value) -> Diagnostics {
        Diagnostics::default()
    }
    /// Returns the full state (config plus computed attributes).
    async fn read(&self, ctx: &Context, config: Value) -> (Value, Diagnostics);
}
