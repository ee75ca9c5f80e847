//! A small, general tfplugin6 server: the only code that sees protobuf types.
//! Resources implement [`Resource`] over decoded [`Value`]s and never touch msgpack or gRPC.

pub mod diagnostics;
pub mod handshake;
pub mod logging;
pub mod plan;
pub mod schema;
pub mod server;
pub mod validate;
pub mod value;

use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

pub use diagnostics::{AttributePath, Diagnostic, Diagnostics, PathStep, Severity};
pub use schema::{
    Attribute, AttributeType, Block, NestedBlock, NestedObject, Nesting, Schema, Shape,
};
pub use value::{Type, Value};

/// What every provider call gets besides its payload.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// Cancelled when Terraform sends StopProvider (Ctrl-C). Long waits must select on it
    /// and return promptly, leaving state consistent.
    pub cancel: CancellationToken,
}

/// The provider as a whole: its configuration schema, configure, and its resource types.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The `provider "kargo" { ... }` block.
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
    fn resources(&self) -> Vec<Arc<dyn Resource>>;
    fn data_sources(&self) -> Vec<Arc<dyn DataSource>>;
}

/// PlanResourceChange input. `prior_state` is `Value::Null` when creating;
/// `config` / `proposed_new_state` are `Value::Null` when destroying.
#[derive(Clone, Debug)]
pub struct PlanRequest {
    pub prior_state: Value,
    pub proposed_new_state: Value,
    pub config: Value,
    pub prior_private: Vec<u8>,
}

#[derive(Clone, Debug, Default)]
pub struct PlanResponse {
    pub planned_state: Value,
    pub requires_replace: Vec<AttributePath>,
    pub planned_private: Vec<u8>,
    pub diagnostics: Diagnostics,
}

/// Result of create / update. A non-null `new_state` together with error diagnostics
/// makes Terraform keep the object in state as tainted.
#[derive(Clone, Debug, Default)]
pub struct ApplyResult {
    pub new_state: Value,
    pub private: Vec<u8>,
    pub diagnostics: Diagnostics,
}

/// Result of read. `new_state == Value::Null` means the object is gone.
#[derive(Clone, Debug, Default)]
pub struct ReadResult {
    pub new_state: Value,
    pub private: Vec<u8>,
    pub diagnostics: Diagnostics,
}

#[derive(Clone, Debug, Default)]
pub struct ImportResult {
    /// The state to hand to Read; it needs only enough to find the object.
    pub state: Value,
    pub private: Vec<u8>,
    pub diagnostics: Diagnostics,
}

/// One managed resource type. The server decodes and encodes values with `schema()`'s type.
#[async_trait]
pub trait Resource: Send + Sync + 'static {
    fn type_name(&self) -> &'static str;
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
    async fn create(&self, ctx: &Context, planned: Value, config: Value) -> ApplyResult;
    async fn update(
        &self,
        ctx: &Context,
        prior: Value,
        planned: Value,
        config: Value,
        private: Vec<u8>,
    ) -> ApplyResult;
    async fn delete(&self, ctx: &Context, prior: Value, private: Vec<u8>) -> Diagnostics;
    async fn read(&self, ctx: &Context, state: Value, private: Vec<u8>) -> ReadResult;
    async fn import(&self, ctx: &Context, id: &str) -> ImportResult;
}

/// One data source type.
#[async_trait]
pub trait DataSource: Send + Sync + 'static {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn validate(&self, _config: &Value) -> Diagnostics {
        Diagnostics::default()
    }
    /// Returns the full state (config plus computed attributes).
    async fn read(&self, ctx: &Context, config: Value) -> (Value, Diagnostics);
}
