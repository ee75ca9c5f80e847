//! The tfplugin6 gRPC service and go-plugin's companion services: one method per RPC, decoding
//! Terraform's values with the schema, dispatching to [`Provider`] / [`Resource`], and encoding back.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use futures::StreamExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tonic::codegen::BoxStream;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use crate::schema::{Attribute, AttributeType, Block, NestedBlock, NestedObject, Nesting, Schema};
use crate::value::{self, Type, Value};
use crate::{
    AttributePath, Context, DataSource, Diagnostic, Diagnostics, PathStep, PlanRequest, Provider,
    Resource, Severity, validate,
};

/// Code generated from `proto/` by `build.rs` (tfplugin6 and go-plugin's services).
#[allow(
    clippy::all,
    clippy::pedantic,
    deprecated,
    missing_docs,
    unreachable_pub
)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/protos.rs"));
}

use proto::grpc::health::v1 as health;
use proto::plugin as goplugin;
use proto::tfplugin6 as tf;

/// Terraform's client accepts messages up to 2 GiB; state of large resources can be big.
const MAX_MESSAGE_SIZE: usize = i32::MAX as usize;

/// go-plugin's health check asks about this service name.
const HEALTH_SERVICE: &str = "plugin";

/// Serves `provider` on `incoming` until `shutdown` is cancelled, which go-plugin's Shutdown RPC
/// does. StopProvider cancels a child of `shutdown` that every call's [`Context`] carries.
pub async fn serve<I, IO, IE>(
    provider: Arc<dyn Provider>,
    incoming: I,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error>
where
    I: futures::Stream<Item = Result<IO, IE>>,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let service = ProviderService::new(provider, shutdown.child_token());
    tonic::transport::Server::builder()
        .add_service(
            tf::provider_server::ProviderServer::new(service)
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
        )
        .add_service(goplugin::grpc_controller_server::GrpcControllerServer::new(
            Controller {
                shutdown: shutdown.clone(),
            },
        ))
        .add_service(goplugin::grpc_stdio_server::GrpcStdioServer::new(
            IdleStreams {
                shutdown: shutdown.clone(),
            },
        ))
        .add_service(goplugin::grpc_broker_server::GrpcBrokerServer::new(
            IdleStreams {
                shutdown: shutdown.clone(),
            },
        ))
        .add_service(health::health_server::HealthServer::new(Health))
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
}

// ---------------------------------------------------------------------------------------------
// The provider service
// ---------------------------------------------------------------------------------------------

struct ResourceEntry {
    resource: Arc<dyn Resource>,
    schema: Schema,
    ty: Type,
    has_write_only: bool,
}

struct DataSourceEntry {
    data_source: Arc<dyn DataSource>,
    schema: Schema,
    ty: Type,
}

/// The tfplugin6 `Provider` service over a [`Provider`]. Schemas and their implied types are
/// computed once, at construction, since every value Terraform sends is decoded with them.
pub struct ProviderService {
    provider: Arc<dyn Provider>,
    provider_schema: Schema,
    provider_type: Type,
    resources: BTreeMap<String, ResourceEntry>,
    data_sources: BTreeMap<String, DataSourceEntry>,
    schema_response: OnceLock<tf::get_provider_schema::Response>,
    stop: CancellationToken,
}

impl ProviderService {
    /// `stop` is cancelled by StopProvider and handed to every call as [`Context::cancel`].
    pub fn new(provider: Arc<dyn Provider>, stop: CancellationToken) -> Self {
        let provider_schema = provider.schema();
        let provider_type = provider_schema.block.implied_type();
        let resources = provider
            .resources()
            .into_iter()
            .map(|resource| {
                let schema = resource.schema();
                let entry = ResourceEntry {
                    ty: schema.block.implied_type(),
                    has_write_only: block_has_write_only(&schema.block),
                    schema,
                    resource,
                };
                (entry.resource.type_name().to_string(), entry)
            })
            .collect();
        let data_sources = provider
            .data_sources()
            .into_iter()
            .map(|data_source| {
                let schema = data_source.schema();
                let entry = DataSourceEntry {
                    ty: schema.block.implied_type(),
                    schema,
                    data_source,
                };
                (entry.data_source.type_name().to_string(), entry)
            })
            .collect();
        Self {
            provider,
            provider_schema,
            provider_type,
            resources,
            data_sources,
            schema_response: OnceLock::new(),
            stop,
        }
    }

    fn context(&self) -> Context {
        Context {
            cancel: self.stop.clone(),
        }
    }

    fn resource(&self, type_name: &str, diags: &mut Diagnostics) -> Option<&ResourceEntry> {
        let entry = self.resources.get(type_name);
        if entry.is_none() {
            diags.push(unknown_type("resource", type_name));
        }
        entry
    }

    fn data_source(&self, type_name: &str, diags: &mut Diagnostics) -> Option<&DataSourceEntry> {
        let entry = self.data_sources.get(type_name);
        if entry.is_none() {
            diags.push(unknown_type("data source", type_name));
        }
        entry
    }

    fn build_schema_response(&self) -> tf::get_provider_schema::Response {
        let mut diags = Diagnostics::default();
        let provider = schema_to_proto(&self.provider_schema, &mut diags);
        let resource_schemas = self
            .resources
            .iter()
            .map(|(name, e)| (name.clone(), schema_to_proto(&e.schema, &mut diags)))
            .collect();
        let data_source_schemas = self
            .data_sources
            .iter()
            .map(|(name, e)| (name.clone(), schema_to_proto(&e.schema, &mut diags)))
            .collect();
        tf::get_provider_schema::Response {
            provider: Some(provider),
            resource_schemas,
            data_source_schemas,
            diagnostics: diagnostics_to_proto(&diags),
            server_capabilities: Some(server_capabilities()),
            ..Default::default()
        }
    }
}

fn server_capabilities() -> tf::ServerCapabilities {
    tf::ServerCapabilities {
        // Resources see destroys in PlanResourceChange (config and proposed state null).
        plan_destroy: true,
        // Every schema is computed in `ProviderService::new` and no RPC relies on
        // GetProviderSchema having been called, so Terraform may reuse schemas it has cached.
        get_provider_schema_optional: true,
        move_resource_state: false,
        generate_resource_config: false,
    }
}

/// Runs one RPC inside a span naming it, and logs its duration. Payloads are never logged:
/// they hold configuration values, which may be secrets.
async fn logged<T>(rpc: &'static str, type_name: &str, body: impl Future<Output = T>) -> T {
    let span = tracing::debug_span!("rpc", rpc, type_name = tracing::field::Empty);
    if !type_name.is_empty() {
        span.record("type_name", type_name);
    }
    let started = Instant::now();
    let out = body.instrument(span.clone()).await;
    span.in_scope(|| {
        let elapsed_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        tracing::debug!(elapsed_ms, "{rpc} finished");
    });
    out
}

#[tonic::async_trait]
impl tf::provider_server::Provider for ProviderService {
    async fn get_metadata(
        &self,
        _request: Request<tf::get_metadata::Request>,
    ) -> Result<Response<tf::get_metadata::Response>, Status> {
        let response = logged("GetMetadata", "", async {
            tf::get_metadata::Response {
                server_capabilities: Some(server_capabilities()),
                resources: self
                    .resources
                    .keys()
                    .map(|t| tf::get_metadata::ResourceMetadata {
                        type_name: t.clone(),
                    })
                    .collect(),
                data_sources: self
                    .data_sources
                    .keys()
                    .map(|t| tf::get_metadata::DataSourceMetadata {
                        type_name: t.clone(),
                    })
                    .collect(),
                ..Default::default()
            }
        })
        .await;
        Ok(Response::new(response))
    }

    async fn get_provider_schema(
        &self,
        _request: Request<tf::get_provider_schema::Request>,
    ) -> Result<Response<tf::get_provider_schema::Response>, Status> {
        let response = logged("GetProviderSchema", "", async {
            self.schema_response
                .get_or_init(|| self.build_schema_response())
                .clone()
        })
        .await;
        Ok(Response::new(response))
    }

    async fn get_resource_identity_schemas(
        &self,
        _request: Request<tf::get_resource_identity_schemas::Request>,
    ) -> Result<Response<tf::get_resource_identity_schemas::Response>, Status> {
        Ok(Response::new(
            tf::get_resource_identity_schemas::Response::default(),
        ))
    }

    async fn get_functions(
        &self,
        _request: Request<tf::get_functions::Request>,
    ) -> Result<Response<tf::get_functions::Response>, Status> {
        Ok(Response::new(tf::get_functions::Response::default()))
    }

    async fn call_function(
        &self,
        request: Request<tf::call_function::Request>,
    ) -> Result<Response<tf::call_function::Response>, Status> {
        let name = request.into_inner().name;
        Ok(Response::new(tf::call_function::Response {
            result: None,
            error: Some(tf::FunctionError {
                text: format!("This provider defines no function named {name:?}."),
                function_argument: None,
            }),
        }))
    }

    async fn validate_provider_config(
        &self,
        request: Request<tf::validate_provider_config::Request>,
    ) -> Result<Response<tf::validate_provider_config::Response>, Status> {
        let req = request.into_inner();
        let diags = logged("ValidateProviderConfig", "", async {
            let mut diags = Diagnostics::default();
            if let Some(config) = decode(
                req.config.as_ref(),
                &self.provider_type,
                "provider configuration",
                &mut diags,
            ) {
                diags.extend(validate::validate_config(
                    &self.provider_schema.block,
                    &config,
                ));
                diags.extend(self.provider.validate_config(&config));
            }
            diags
        })
        .await;
        Ok(Response::new(tf::validate_provider_config::Response {
            diagnostics: diagnostics_to_proto(&diags),
        }))
    }

    async fn validate_resource_config(
        &self,
        request: Request<tf::validate_resource_config::Request>,
    ) -> Result<Response<tf::validate_resource_config::Response>, Status> {
        let req = request.into_inner();
        let diags = logged("ValidateResourceConfig", &req.type_name, async {
            let mut diags = Diagnostics::default();
            if let Some(entry) = self.resource(&req.type_name, &mut diags)
                && let Some(config) = decode(
                    req.config.as_ref(),
                    &entry.ty,
                    "resource configuration",
                    &mut diags,
                )
            {
                diags.extend(validate::validate_config(&entry.schema.block, &config));
                diags.extend(entry.resource.validate(&config));
            }
            diags
        })
        .await;
        Ok(Response::new(tf::validate_resource_config::Response {
            diagnostics: diagnostics_to_proto(&diags),
        }))
    }

    async fn validate_data_resource_config(
        &self,
        request: Request<tf::validate_data_resource_config::Request>,
    ) -> Result<Response<tf::validate_data_resource_config::Response>, Status> {
        let req = request.into_inner();
        let diags = logged("ValidateDataResourceConfig", &req.type_name, async {
            let mut diags = Diagnostics::default();
            if let Some(entry) = self.data_source(&req.type_name, &mut diags)
                && let Some(config) = decode(
                    req.config.as_ref(),
                    &entry.ty,
                    "data source configuration",
                    &mut diags,
                )
            {
                diags.extend(validate::validate_config(&entry.schema.block, &config));
                diags.extend(entry.data_source.validate(&config));
            }
            diags
        })
        .await;
        Ok(Response::new(tf::validate_data_resource_config::Response {
            diagnostics: diagnostics_to_proto(&diags),
        }))
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<tf::upgrade_resource_state::Request>,
    ) -> Result<Response<tf::upgrade_resource_state::Response>, Status> {
        let req = request.into_inner();
        let response = logged("UpgradeResourceState", &req.type_name, async {
            let mut diags = Diagnostics::default();
            let mut upgraded = None;
            if let Some(entry) = self.resource(&req.type_name, &mut diags) {
                upgraded = upgrade_state(
                    entry,
                    &req.type_name,
                    req.version,
                    req.raw_state.as_ref(),
                    &mut diags,
                );
            }
            tf::upgrade_resource_state::Response {
                upgraded_state: upgraded,
                diagnostics: diagnostics_to_proto(&diags),
            }
        })
        .await;
        Ok(Response::new(response))
    }

    async fn configure_provider(
        &self,
        request: Request<tf::configure_provider::Request>,
    ) -> Result<Response<tf::configure_provider::Response>, Status> {
        let req = request.into_inner();
        let diags = logged("ConfigureProvider", "", async {
            let mut diags = Diagnostics::default();
            if let Some(config) = decode(
                req.config.as_ref(),
                &self.provider_type,
                "provider configuration",
                &mut diags,
            ) {
                diags.extend(
                    self.provider
                        .configure(&self.context(), &config, &req.terraform_version)
                        .await,
                );
            }
            diags
        })
        .await;
        Ok(Response::new(tf::configure_provider::Response {
            diagnostics: diagnostics_to_proto(&diags),
        }))
    }

    async fn read_resource(
        &self,
        request: Request<tf::read_resource::Request>,
    ) -> Result<Response<tf::read_resource::Response>, Status> {
        let req = request.into_inner();
        let response = logged("ReadResource", &req.type_name, async {
            let mut diags = Diagnostics::default();
            let mut response = tf::read_resource::Response::default();
            if let Some(entry) = self.resource(&req.type_name, &mut diags)
                && let Some(state) = decode(
                    req.current_state.as_ref(),
                    &entry.ty,
                    "current state",
                    &mut diags,
                )
            {
                let result = entry
                    .resource
                    .read(&self.context(), state, req.private)
                    .await;
                diags.extend(result.diagnostics);
                response.new_state = encode_state(entry, result.new_state, "new state", &mut diags);
                response.private = result.private;
            }
            response.diagnostics = diagnostics_to_proto(&diags);
            response
        })
        .await;
        Ok(Response::new(response))
    }

    async fn plan_resource_change(
        &self,
        request: Request<tf::plan_resource_change::Request>,
    ) -> Result<Response<tf::plan_resource_change::Response>, Status> {
        let req = request.into_inner();
        let response = logged("PlanResourceChange", &req.type_name, async {
            let mut diags = Diagnostics::default();
            let mut response = tf::plan_resource_change::Response::default();
            if let Some(entry) = self.resource(&req.type_name, &mut diags) {
                let prior = decode(
                    req.prior_state.as_ref(),
                    &entry.ty,
                    "prior state",
                    &mut diags,
                );
                let proposed = decode(
                    req.proposed_new_state.as_ref(),
                    &entry.ty,
                    "proposed new state",
                    &mut diags,
                );
                let config = decode(
                    req.config.as_ref(),
                    &entry.ty,
                    "resource configuration",
                    &mut diags,
                );
                if let (Some(prior_state), Some(proposed_new_state), Some(config)) =
                    (prior, proposed, config)
                {
                    let plan = PlanRequest {
                        prior_state,
                        proposed_new_state,
                        config,
                        prior_private: req.prior_private,
                    };
                    let result = entry.resource.plan(&self.context(), plan).await;
                    diags.extend(result.diagnostics);
                    response.planned_state =
                        encode_state(entry, result.planned_state, "planned state", &mut diags);
                    response.requires_replace =
                        result.requires_replace.iter().map(path_to_proto).collect();
                    response.planned_private = result.planned_private;
                }
            }
            response.diagnostics = diagnostics_to_proto(&diags);
            response
        })
        .await;
        Ok(Response::new(response))
    }

    async fn apply_resource_change(
        &self,
        request: Request<tf::apply_resource_change::Request>,
    ) -> Result<Response<tf::apply_resource_change::Response>, Status> {
        let req = request.into_inner();
        let response = logged("ApplyResourceChange", &req.type_name, async {
            let mut diags = Diagnostics::default();
            let mut response = tf::apply_resource_change::Response::default();
            if let Some(entry) = self.resource(&req.type_name, &mut diags) {
                let prior = decode(
                    req.prior_state.as_ref(),
                    &entry.ty,
                    "prior state",
                    &mut diags,
                );
                let planned = decode(
                    req.planned_state.as_ref(),
                    &entry.ty,
                    "planned state",
                    &mut diags,
                );
                let config = decode(
                    req.config.as_ref(),
                    &entry.ty,
                    "resource configuration",
                    &mut diags,
                );
                if let (Some(prior), Some(planned), Some(config)) = (prior, planned, config) {
                    let (new_state, private) = self
                        .apply(
                            entry,
                            prior,
                            planned,
                            config,
                            req.planned_private,
                            &mut diags,
                        )
                        .await;
                    response.new_state = encode_state(entry, new_state, "new state", &mut diags);
                    response.private = private;
                }
            }
            response.diagnostics = diagnostics_to_proto(&diags);
            response
        })
        .await;
        Ok(Response::new(response))
    }

    async fn import_resource_state(
        &self,
        request: Request<tf::import_resource_state::Request>,
    ) -> Result<Response<tf::import_resource_state::Response>, Status> {
        let req = request.into_inner();
        let response = logged("ImportResourceState", &req.type_name, async {
            let mut diags = Diagnostics::default();
            let mut response = tf::import_resource_state::Response::default();
            if let Some(entry) = self.resource(&req.type_name, &mut diags) {
                let result = entry.resource.import(&self.context(), &req.id).await;
                let found = !result.state.is_null();
                diags.extend(result.diagnostics);
                if found {
                    let state = encode_state(entry, result.state, "imported state", &mut diags);
                    if state.is_some() {
                        response.imported_resources.push(
                            tf::import_resource_state::ImportedResource {
                                type_name: req.type_name.clone(),
                                state,
                                private: result.private,
                                identity: None,
                            },
                        );
                    }
                } else if !diags.has_errors() {
                    diags.error(
                        "Nothing to import",
                        format!(
                            "No {} was found for the import ID {:?}.",
                            req.type_name, req.id
                        ),
                    );
                }
            }
            response.diagnostics = diagnostics_to_proto(&diags);
            response
        })
        .await;
        Ok(Response::new(response))
    }

    async fn move_resource_state(
        &self,
        request: Request<tf::move_resource_state::Request>,
    ) -> Result<Response<tf::move_resource_state::Response>, Status> {
        let req = request.into_inner();
        let mut diags = Diagnostics::default();
        diags.error(
            "Moving resource state is not supported",
            format!(
                "This provider cannot move {} state from {} of {} into {}. Remove the `moved` block, \
                 then import the object under its new address instead.",
                req.source_type_name,
                req.source_type_name,
                req.source_provider_address,
                req.target_type_name
            ),
        );
        Ok(Response::new(tf::move_resource_state::Response {
            diagnostics: diagnostics_to_proto(&diags),
            ..Default::default()
        }))
    }

    async fn read_data_source(
        &self,
        request: Request<tf::read_data_source::Request>,
    ) -> Result<Response<tf::read_data_source::Response>, Status> {
        let req = request.into_inner();
        let response = logged("ReadDataSource", &req.type_name, async {
            let mut diags = Diagnostics::default();
            let mut response = tf::read_data_source::Response::default();
            if let Some(entry) = self.data_source(&req.type_name, &mut diags)
                && let Some(config) = decode(
                    req.config.as_ref(),
                    &entry.ty,
                    "data source configuration",
                    &mut diags,
                )
            {
                let (state, read_diags) = entry.data_source.read(&self.context(), config).await;
                diags.extend(read_diags);
                response.state = encode(&state, &entry.ty, "data source state", &mut diags);
            }
            response.diagnostics = diagnostics_to_proto(&diags);
            response
        })
        .await;
        Ok(Response::new(response))
    }

    async fn stop_provider(
        &self,
        _request: Request<tf::stop_provider::Request>,
    ) -> Result<Response<tf::stop_provider::Response>, Status> {
        tracing::info!("StopProvider received: cancelling operations in progress");
        self.stop.cancel();
        Ok(Response::new(tf::stop_provider::Response {
            error: String::new(),
        }))
    }
}

impl ProviderService {
    /// Create (no prior state), delete (no planned state) or update.
    async fn apply(
        &self,
        entry: &ResourceEntry,
        prior: Value,
        planned: Value,
        config: Value,
        private: Vec<u8>,
        diags: &mut Diagnostics,
    ) -> (Value, Vec<u8>) {
        let ctx = self.context();
        match (prior.is_null(), planned.is_null()) {
            (true, true) => (Value::Null, Vec::new()),
            (true, false) => {
                let result = entry.resource.create(&ctx, planned, config).await;
                diags.extend(result.diagnostics);
                (result.new_state, result.private)
            }
            (false, true) => {
                let delete_diags = entry
                    .resource
                    .delete(&ctx, prior.clone(), private.clone())
                    .await;
                let failed = delete_diags.has_errors();
                diags.extend(delete_diags);
                // A failed delete leaves the object in place: Terraform must keep it in state.
                if failed {
                    (prior, private)
                } else {
                    (Value::Null, Vec::new())
                }
            }
            (false, false) => {
                let result = entry
                    .resource
                    .update(&ctx, prior, planned, config, private)
                    .await;
                diags.extend(result.diagnostics);
                (result.new_state, result.private)
            }
        }
    }
}

/// UpgradeResourceState: state stored by an older schema version is first rewritten by the
/// resource ([`Resource::upgrade_state`]), then every stored JSON is re-read with the current
/// schema. Attributes that are gone are dropped and new ones start null, so additive schema
/// changes need no version bump.
fn upgrade_state(
    entry: &ResourceEntry,
    type_name: &str,
    version: i64,
    raw: Option<&tf::RawState>,
    diags: &mut Diagnostics,
) -> Option<tf::DynamicValue> {
    if version > entry.schema.version {
        diags.error(
            "Resource state from a newer provider",
            format!(
                "This {type_name} was stored by a provider using schema version {version}, but this provider \
                 only knows versions up to {}. Upgrade the provider to the version that wrote the state.",
                entry.schema.version
            ),
        );
        return None;
    }
    let raw = raw.cloned().unwrap_or_default();
    if raw.json.is_empty() && !raw.flatmap.is_empty() {
        diags.error(
            "Unsupported state format",
            format!(
                "The stored state of this {type_name} uses the flatmap format of Terraform 0.11 and older, \
                 which this provider cannot read. Remove it from state and import it again."
            ),
        );
        return None;
    }
    let mut json = raw.json;
    if version < entry.schema.version && !json.is_empty() {
        let mut stored: serde_json::Value = match serde_json::from_slice(&json) {
            Ok(v) => v,
            Err(e) => {
                diags.error(
                    "Unable to read stored state",
                    format!("The stored state of this {type_name} is not JSON: {e}."),
                );
                return None;
            }
        };
        let upgraded = entry.resource.upgrade_state(version, &mut stored);
        let failed = upgraded.has_errors();
        diags.extend(upgraded);
        if failed {
            return None;
        }
        json = stored.to_string().into_bytes();
    }
    let state = if json.is_empty() {
        Value::Null
    } else {
        match value::decode_json(&json, &entry.ty) {
            Ok(state) => state,
            Err(e) => {
                let mut d = Diagnostic::error(
                    "Unable to read stored state",
                    format!(
                        "The stored state of this {type_name} does not match the provider's schema: {e}."
                    ),
                );
                if let Some(path) = e.path().filter(|p| !p.is_root()) {
                    d = d.at(path.clone());
                }
                diags.push(d);
                return None;
            }
        }
    };
    encode_state(entry, state, "upgraded state", diags)
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// Decodes a `DynamicValue` with `ty`; an absent or empty value is null. On failure, reports a
/// diagnostic and returns `None`: a malformed payload must become an error Terraform shows,
/// not a failed RPC.
fn decode(
    dv: Option<&tf::DynamicValue>,
    ty: &Type,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<Value> {
    let Some(dv) = dv else {
        return Some(Value::Null);
    };
    let decoded = if !dv.msgpack.is_empty() {
        value::decode_msgpack(&dv.msgpack, ty)
    } else if !dv.json.is_empty() {
        value::decode_json(&dv.json, ty)
    } else {
        return Some(Value::Null);
    };
    match decoded {
        Ok(v) => Some(v),
        Err(e) => {
            let mut d = Diagnostic::error(
                format!("Unable to decode the {what}"),
                format!(
                    "Terraform sent a {what} that does not match the provider's schema: {e}. \
                     This usually means Terraform and the provider disagree about the schema; please report it."
                ),
            );
            if let Some(path) = e.path().filter(|p| !p.is_root()) {
                d = d.at(path.clone());
            }
            diags.push(d);
            None
        }
    }
}

fn encode(v: &Value, ty: &Type, what: &str, diags: &mut Diagnostics) -> Option<tf::DynamicValue> {
    match value::encode_msgpack(v, ty) {
        Ok(msgpack) => Some(tf::DynamicValue {
            msgpack,
            json: Vec::new(),
        }),
        Err(e) => {
            diags.error(
                format!("Provider produced an invalid {what}"),
                format!("The {what} does not match the provider's own schema: {e}. This is a bug in the provider."),
            );
            None
        }
    }
}

/// Encodes a resource state after nulling write-only attributes, which Terraform requires to
/// be null in every state and plan it receives.
fn encode_state(
    entry: &ResourceEntry,
    mut state: Value,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<tf::DynamicValue> {
    if entry.has_write_only {
        null_write_only(
            &entry.schema.block.attributes,
            &entry.schema.block.blocks,
            &mut state,
        );
    }
    encode(&state, &entry.ty, what, diags)
}

fn block_has_write_only(block: &Block) -> bool {
    attrs_have_write_only(&block.attributes)
        || block.blocks.iter().any(|b| block_has_write_only(&b.block))
}

fn attrs_have_write_only(attributes: &[Attribute]) -> bool {
    attributes.iter().any(|a| {
        a.write_only
            || matches!(&a.ty, AttributeType::Nested(obj) if attrs_have_write_only(&obj.attributes))
    })
}

fn null_write_only(attributes: &[Attribute], blocks: &[NestedBlock], value: &mut Value) {
    let Value::Object(fields) = value else { return };
    for attr in attributes {
        let Some(v) = fields.get_mut(&attr.name) else {
            continue;
        };
        if attr.write_only {
            *v = Value::Null;
        } else if let AttributeType::Nested(obj) = &attr.ty {
            for_each_nested(obj.nesting, v, |element| {
                null_write_only(&obj.attributes, &[], element)
            });
        }
    }
    for block in blocks {
        if let Some(v) = fields.get_mut(&block.type_name) {
            for_each_nested(block.nesting, v, |element| {
                null_write_only(&block.block.attributes, &block.block.blocks, element)
            });
        }
    }
}

/// Calls `f` on each object a nested attribute or block holds under `nesting`.
fn for_each_nested(nesting: Nesting, value: &mut Value, mut f: impl FnMut(&mut Value)) {
    match nesting {
        Nesting::Single | Nesting::Group => f(value),
        Nesting::List | Nesting::Set => {
            if let Value::List(items) | Value::Set(items) | Value::Tuple(items) = value {
                items.iter_mut().for_each(f);
            }
        }
        Nesting::Map => {
            if let Value::Map(items) | Value::Object(items) = value {
                items.values_mut().for_each(f);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Schemas and diagnostics to protobuf
// ---------------------------------------------------------------------------------------------

fn schema_to_proto(schema: &Schema, diags: &mut Diagnostics) -> tf::Schema {
    tf::Schema {
        version: schema.version,
        block: Some(block_to_proto(&schema.block, schema.version, diags)),
    }
}

fn block_to_proto(block: &Block, version: i64, diags: &mut Diagnostics) -> tf::schema::Block {
    tf::schema::Block {
        version,
        attributes: block
            .attributes
            .iter()
            .map(|a| attribute_to_proto(a, diags))
            .collect(),
        block_types: block
            .blocks
            .iter()
            .map(|b| nested_block_to_proto(b, diags))
            .collect(),
        description: block.description.clone(),
        description_kind: tf::StringKind::Markdown as i32,
        deprecated: block.deprecation.is_some(),
        deprecation_message: block.deprecation.clone().unwrap_or_default(),
    }
}

fn attribute_to_proto(attr: &Attribute, diags: &mut Diagnostics) -> tf::schema::Attribute {
    // Terraform rejects the whole schema when both `type` and `nested_type` are set.
    let (ty, nested_type) = match &attr.ty {
        AttributeType::Primitive(t) => (t.to_json().to_string().into_bytes(), None),
        AttributeType::Nested(obj) => (Vec::new(), Some(object_to_proto(obj, &attr.name, diags))),
    };
    tf::schema::Attribute {
        name: attr.name.clone(),
        r#type: ty,
        nested_type,
        description: attr.description.clone(),
        required: attr.required,
        optional: attr.optional,
        computed: attr.computed,
        sensitive: attr.sensitive,
        description_kind: tf::StringKind::Markdown as i32,
        deprecated: attr.deprecation.is_some(),
        write_only: attr.write_only,
        deprecation_message: attr.deprecation.clone().unwrap_or_default(),
    }
}

fn object_to_proto(obj: &NestedObject, name: &str, diags: &mut Diagnostics) -> tf::schema::Object {
    use tf::schema::object::NestingMode;
    let nesting = match obj.nesting {
        Nesting::Single => NestingMode::Single,
        Nesting::List => NestingMode::List,
        Nesting::Set => NestingMode::Set,
        Nesting::Map => NestingMode::Map,
        Nesting::Group => {
            diags.error(
                "Invalid provider schema",
                format!("Nested attribute {name:?} uses group nesting, which only blocks support. This is a bug in the provider."),
            );
            NestingMode::Single
        }
    };
    tf::schema::Object {
        attributes: obj
            .attributes
            .iter()
            .map(|a| attribute_to_proto(a, diags))
            .collect(),
        nesting: nesting as i32,
        ..Default::default()
    }
}

fn nested_block_to_proto(block: &NestedBlock, diags: &mut Diagnostics) -> tf::schema::NestedBlock {
    use tf::schema::nested_block::NestingMode;
    let nesting = match block.nesting {
        Nesting::Single => NestingMode::Single,
        Nesting::List => NestingMode::List,
        Nesting::Set => NestingMode::Set,
        Nesting::Map => NestingMode::Map,
        Nesting::Group => NestingMode::Group,
    };
    tf::schema::NestedBlock {
        type_name: block.type_name.clone(),
        block: Some(block_to_proto(&block.block, 0, diags)),
        nesting: nesting as i32,
        min_items: block.min_items,
        max_items: block.max_items,
    }
}

fn diagnostics_to_proto(diags: &Diagnostics) -> Vec<tf::Diagnostic> {
    diags
        .0
        .iter()
        .map(|d| tf::Diagnostic {
            severity: match d.severity {
                Severity::Error => tf::diagnostic::Severity::Error as i32,
                Severity::Warning => tf::diagnostic::Severity::Warning as i32,
            },
            summary: d.summary.clone(),
            detail: d.detail.clone(),
            attribute: d
                .attribute
                .as_ref()
                .filter(|p| !p.is_root())
                .map(path_to_proto),
        })
        .collect()
}

fn path_to_proto(path: &AttributePath) -> tf::AttributePath {
    use tf::attribute_path::step::Selector;
    tf::AttributePath {
        steps: path
            .0
            .iter()
            .map(|step| tf::attribute_path::Step {
                selector: Some(match step {
                    PathStep::Attr(name) => Selector::AttributeName(name.clone()),
                    PathStep::Key(key) => Selector::ElementKeyString(key.clone()),
                    PathStep::Index(i) => Selector::ElementKeyInt(*i),
                }),
            })
            .collect(),
    }
}

fn unknown_type(kind: &str, type_name: &str) -> Diagnostic {
    Diagnostic::error(
        format!("Unknown {kind} type"),
        format!(
            "This provider has no {kind} type named {type_name:?}. Check the spelling, or upgrade the provider \
             if the type is newer than this version."
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// go-plugin's services
// ---------------------------------------------------------------------------------------------

/// go-plugin's controller: the host calls Shutdown when it is done with the plugin.
struct Controller {
    shutdown: CancellationToken,
}

#[tonic::async_trait]
impl goplugin::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(
        &self,
        _request: Request<goplugin::Empty>,
    ) -> Result<Response<goplugin::Empty>, Status> {
        tracing::debug!("Shutdown received from Terraform");
        self.shutdown.cancel();
        Ok(Response::new(goplugin::Empty {}))
    }
}

/// Stdio and broker streams: the host opens them at start-up; this provider never sends on
/// them. They end at shutdown so that they cannot hold up a graceful stop.
struct IdleStreams {
    shutdown: CancellationToken,
}

impl IdleStreams {
    fn idle<T: Send + 'static>(&self) -> BoxStream<T> {
        let shutdown = self.shutdown.clone();
        Box::pin(futures::stream::once(shutdown.cancelled_owned()).filter_map(|()| async { None }))
    }
}

#[tonic::async_trait]
impl goplugin::grpc_stdio_server::GrpcStdio for IdleStreams {
    async fn stream_stdio(
        &self,
        _request: Request<proto::google::protobuf::Empty>,
    ) -> Result<Response<BoxStream<goplugin::StdioData>>, Status> {
        Ok(Response::new(self.idle()))
    }
}

#[tonic::async_trait]
impl goplugin::grpc_broker_server::GrpcBroker for IdleStreams {
    async fn start_stream(
        &self,
        _request: Request<tonic::Streaming<goplugin::ConnInfo>>,
    ) -> Result<Response<BoxStream<goplugin::ConnInfo>>, Status> {
        Ok(Response::new(self.idle()))
    }
}

/// `grpc.health.v1`: go-plugin pings service "plugin" to check that the plugin is alive.
struct Health;

#[tonic::async_trait]
impl health::health_server::Health for Health {
    async fn check(
        &self,
        request: Request<health::HealthCheckRequest>,
    ) -> Result<Response<health::HealthCheckResponse>, Status> {
        let service = request.into_inner().service;
        if service.is_empty() || service == HEALTH_SERVICE {
            Ok(Response::new(health::HealthCheckResponse {
                status: health::health_check_response::ServingStatus::Serving as i32,
            }))
        } else {
            Err(Status::not_found(format!("unknown service {service:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ApplyResult, ImportResult, PlanResponse, ReadResult};
    use async_trait::async_trait;
    use std::sync::Mutex;
    use std::time::Duration;
    use tf::attribute_path::step::Selector;
    use tf::provider_server::Provider as _;

    const RESOURCE: &str = "example_test";
    const DATA_SOURCE: &str = "example_thing";

    struct FakeResource;

    fn resource_schema() -> Schema {
        let spec = NestedObject::single(vec![
            Attribute::number("replicas").optional(),
            Attribute::string("secret").optional().write_only(),
        ]);
        let rule = Block::new(vec![Attribute::string("match").required()]);
        Schema::new(
            1,
            Block::new(vec![
                Attribute::string("id").computed(),
                Attribute::string("name")
                    .required()
                    .description("The **name**."),
                Attribute::string("token").optional().write_only(),
                Attribute::nested("spec", spec).optional(),
                Attribute::string("old")
                    .optional()
                    .deprecated("Use `name`."),
            ])
            .block(NestedBlock::new("rule", rule, Nesting::List).max_items(3)),
        )
    }

    fn state(name: &str, token: Value, secret: Value) -> Value {
        Value::object([
            ("id", Value::string("id-1")),
            ("name", Value::string(name)),
            ("token", token),
            (
                "spec",
                Value::object([("replicas", Value::int(2)), ("secret", secret)]),
            ),
            ("old", Value::Null),
            (
                "rule",
                Value::List(vec![Value::object([("match", Value::string("m"))])]),
            ),
        ])
    }

    #[async_trait]
    impl Resource for FakeResource {
        fn type_name(&self) -> &'static str {
            RESOURCE
        }
        fn schema(&self) -> Schema {
            resource_schema()
        }
        /// Version 0 called `old` `legacy` and had `rule` as a nested attribute (null when
        /// unset); a state naming "corrupt" cannot be upgraded.
        fn upgrade_state(&self, version: i64, state: &mut serde_json::Value) -> Diagnostics {
            let mut diags = Diagnostics::default();
            assert_eq!(version, 0, "only older versions are upgraded");
            if state["name"] == "corrupt" {
                diags.error("Cannot upgrade", "the state names \"corrupt\"");
                return diags;
            }
            if let Some(legacy) = state.as_object_mut().and_then(|o| o.remove("legacy")) {
                state["old"] = legacy;
            }
            resource_schema().block.shape().fill_absent_blocks(state);
            diags
        }
        fn validate(&self, config: &Value) -> Diagnostics {
            let mut diags = Diagnostics::default();
            if config.get("name").as_str() == Some("forbidden") {
                diags.error_at(
                    AttributePath::attr("name"),
                    "Forbidden name",
                    "pick another",
                );
            }
            diags
        }
        async fn plan(&self, _ctx: &Context, req: PlanRequest) -> PlanResponse {
            let mut resp = PlanResponse {
                planned_state: req.proposed_new_state.clone(),
                ..Default::default()
            };
            if !req.prior_state.is_null()
                && !req.proposed_new_state.is_null()
                && req.prior_state.get("name") != req.proposed_new_state.get("name")
            {
                resp.requires_replace.push(AttributePath::attr("name"));
            }
            resp
        }
        async fn create(&self, _ctx: &Context, mut planned: Value, _config: Value) -> ApplyResult {
            planned.set("id", Value::string("generated"));
            ApplyResult {
                new_state: planned,
                private: b"p".to_vec(),
                diagnostics: Diagnostics::default(),
            }
        }
        async fn update(
            &self,
            _ctx: &Context,
            _prior: Value,
            planned: Value,
            _config: Value,
            private: Vec<u8>,
        ) -> ApplyResult {
            ApplyResult {
                new_state: planned,
                private,
                diagnostics: Diagnostics::default(),
            }
        }
        async fn delete(&self, _ctx: &Context, prior: Value, _private: Vec<u8>) -> Diagnostics {
            let mut diags = Diagnostics::default();
            if prior.get("name").as_str() == Some("undeletable") {
                diags.error("Delete failed", "the cluster said no");
            }
            diags
        }
        async fn read(&self, ctx: &Context, state: Value, private: Vec<u8>) -> ReadResult {
            match state.get("name").as_str() {
                Some("gone") => ReadResult {
                    new_state: Value::Null,
                    private,
                    ..Default::default()
                },
                Some("wait-for-stop") => {
                    let mut diagnostics = Diagnostics::default();
                    tokio::select! {
                        _ = ctx.cancel.cancelled() => diagnostics.error("Cancelled", "stopped by Terraform"),
                        _ = tokio::time::sleep(Duration::from_secs(10)) => diagnostics.error("Timed out", ""),
                    }
                    ReadResult {
                        new_state: state,
                        private,
                        diagnostics,
                    }
                }
                _ => ReadResult {
                    new_state: state,
                    private,
                    ..Default::default()
                },
            }
        }
        async fn import(&self, _ctx: &Context, id: &str) -> ImportResult {
            if id == "missing" {
                return ImportResult::default();
            }
            let mut imported = state(id, Value::Null, Value::Null);
            imported.set("token", Value::string("should not survive"));
            ImportResult {
                state: imported,
                private: b"i".to_vec(),
                diagnostics: Diagnostics::default(),
            }
        }
    }

    struct FakeDataSource;

    #[async_trait]
    impl DataSource for FakeDataSource {
        fn type_name(&self) -> &'static str {
            DATA_SOURCE
        }
        fn schema(&self) -> Schema {
            Schema::new(
                0,
                Block::new(vec![
                    Attribute::string("name").required(),
                    Attribute::string("value").computed(),
                ]),
            )
        }
        async fn read(&self, _ctx: &Context, mut config: Value) -> (Value, Diagnostics) {
            let value = format!("value of {}", config.get("name").as_str().unwrap_or("?"));
            config.set("value", Value::string(value));
            (config, Diagnostics::default())
        }
    }

    #[derive(Default)]
    struct FakeProvider {
        configured_with: Mutex<Option<(Value, String)>>,
    }

    #[async_trait]
    impl Provider for FakeProvider {
        fn schema(&self) -> Schema {
            Schema::new(0, Block::new(vec![Attribute::string("host").optional()]))
        }
        fn validate_config(&self, config: &Value) -> Diagnostics {
            let mut diags = Diagnostics::default();
            if config.get("host").as_str() == Some("bad") {
                diags.error_at(AttributePath::attr("host"), "Bad host", "not a URL");
            }
            diags
        }
        async fn configure(
            &self,
            _ctx: &Context,
            config: &Value,
            terraform_version: &str,
        ) -> Diagnostics {
            *self.configured_with.lock().unwrap() =
                Some((config.clone(), terraform_version.to_string()));
            Diagnostics::default()
        }
        fn resources(&self) -> Vec<Arc<dyn Resource>> {
            vec![Arc::new(FakeResource)]
        }
        fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
            vec![Arc::new(FakeDataSource)]
        }
    }

    fn service() -> (ProviderService, Arc<FakeProvider>) {
        let provider = Arc::new(FakeProvider::default());
        (
            ProviderService::new(provider.clone(), CancellationToken::new()),
            provider,
        )
    }

    fn resource_type() -> Type {
        resource_schema().block.implied_type()
    }

    fn dv(v: &Value, ty: &Type) -> Option<tf::DynamicValue> {
        Some(tf::DynamicValue {
            msgpack: value::encode_msgpack(v, ty).unwrap(),
            json: Vec::new(),
        })
    }

    fn undv(dv: &Option<tf::DynamicValue>, ty: &Type) -> Value {
        value::decode_msgpack(&dv.as_ref().expect("a value").msgpack, ty).unwrap()
    }

    fn summaries(diags: &[tf::Diagnostic]) -> Vec<&str> {
        diags.iter().map(|d| d.summary.as_str()).collect()
    }

    fn steps(path: &tf::AttributePath) -> Vec<Selector> {
        path.steps
            .iter()
            .map(|s| s.selector.clone().unwrap())
            .collect()
    }

    /// Every attribute, nested ones included, with its path.
    fn all_attributes<'a>(
        attrs: &'a [tf::schema::Attribute],
        out: &mut Vec<&'a tf::schema::Attribute>,
    ) {
        for a in attrs {
            out.push(a);
            if let Some(obj) = &a.nested_type {
                all_attributes(&obj.attributes, out);
            }
        }
    }

    #[tokio::test]
    async fn schema_is_converted_without_type_and_nested_type_together() {
        let (svc, _) = service();
        let resp = svc
            .get_provider_schema(Request::new(tf::get_provider_schema::Request {}))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
        assert!(resp.server_capabilities.unwrap().plan_destroy);
        let provider_block = resp.provider.unwrap().block.unwrap();
        assert_eq!(provider_block.attributes[0].name, "host");
        assert_eq!(provider_block.attributes[0].r#type, b"\"string\"");

        let schema = &resp.resource_schemas[RESOURCE];
        assert_eq!(schema.version, 1);
        let block = schema.block.as_ref().unwrap();
        let attr = |name: &str| block.attributes.iter().find(|a| a.name == name).unwrap();

        let name = attr("name");
        assert!(name.required && !name.optional && !name.computed);
        assert_eq!(name.description, "The **name**.");
        assert_eq!(name.description_kind, tf::StringKind::Markdown as i32);
        assert!(name.nested_type.is_none());
        assert!(attr("token").write_only);
        assert!(attr("id").computed);
        assert!(attr("old").deprecated);
        assert_eq!(attr("old").deprecation_message, "Use `name`.");

        let spec = attr("spec");
        assert!(spec.r#type.is_empty());
        let nested = spec.nested_type.as_ref().unwrap();
        assert_eq!(
            nested.nesting,
            tf::schema::object::NestingMode::Single as i32
        );
        assert_eq!(nested.attributes[1].name, "secret");
        assert!(nested.attributes[1].write_only);
        assert_eq!(nested.attributes[0].r#type, b"\"number\"");

        let rule = &block.block_types[0];
        assert_eq!(rule.type_name, "rule");
        assert_eq!(
            rule.nesting,
            tf::schema::nested_block::NestingMode::List as i32
        );
        assert_eq!(rule.max_items, 3);
        assert_eq!(rule.block.as_ref().unwrap().attributes[0].name, "match");

        let mut attributes = Vec::new();
        all_attributes(&block.attributes, &mut attributes);
        assert_eq!(attributes.len(), 7);
        for a in attributes {
            assert!(
                a.r#type.is_empty() != a.nested_type.is_none(),
                "{} must set exactly one of type and nested_type",
                a.name
            );
        }

        let ds = &resp.data_source_schemas[DATA_SOURCE];
        assert_eq!(ds.block.as_ref().unwrap().attributes.len(), 2);
    }

    #[tokio::test]
    async fn metadata_lists_types() {
        let (svc, _) = service();
        let resp = svc
            .get_metadata(Request::new(tf::get_metadata::Request {}))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.resources[0].type_name, RESOURCE);
        assert_eq!(resp.data_sources[0].type_name, DATA_SOURCE);
        // The other tests call RPCs on a service that was never asked for its schema.
        let capabilities = resp.server_capabilities.unwrap();
        assert!(capabilities.get_provider_schema_optional);
        assert!(capabilities.plan_destroy);
    }

    #[tokio::test]
    async fn unknown_types_and_bad_payloads_become_diagnostics() {
        let (svc, _) = service();
        let resp = svc
            .validate_resource_config(Request::new(tf::validate_resource_config::Request {
                type_name: "example_nope".into(),
                config: dv(&Value::Null, &Type::Dynamic),
                client_capabilities: None,
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(summaries(&resp.diagnostics), ["Unknown resource type"]);
        assert_eq!(
            resp.diagnostics[0].severity,
            tf::diagnostic::Severity::Error as i32
        );
        assert!(resp.diagnostics[0].detail.contains("example_nope"));

        // 0xc1 is never valid msgpack.
        let resp = svc
            .validate_resource_config(Request::new(tf::validate_resource_config::Request {
                type_name: RESOURCE.into(),
                config: Some(tf::DynamicValue {
                    msgpack: vec![0xc1],
                    json: Vec::new(),
                }),
                client_capabilities: None,
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            summaries(&resp.diagnostics),
            ["Unable to decode the resource configuration"]
        );

        let resp = svc
            .read_data_source(Request::new(tf::read_data_source::Request {
                type_name: "example_nope".into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(summaries(&resp.diagnostics), ["Unknown data source type"]);
    }

    #[tokio::test]
    async fn validation_runs_resource_rules_with_paths() {
        let (svc, _) = service();
        let ty = resource_type();
        let config = state("forbidden", Value::Null, Value::Null);
        let resp = svc
            .validate_resource_config(Request::new(tf::validate_resource_config::Request {
                type_name: RESOURCE.into(),
                config: dv(&config, &ty),
                client_capabilities: None,
            }))
            .await
            .unwrap()
            .into_inner();
        let forbidden: Vec<_> = resp
            .diagnostics
            .iter()
            .filter(|d| d.summary == "Forbidden name")
            .collect();
        assert_eq!(forbidden.len(), 1, "{:?}", resp.diagnostics);
        assert_eq!(
            steps(forbidden[0].attribute.as_ref().unwrap()),
            [Selector::AttributeName("name".into())]
        );

        let provider_ty = Type::object([("host", Type::String)]);
        let resp = svc
            .validate_provider_config(Request::new(tf::validate_provider_config::Request {
                config: dv(
                    &Value::object([("host", Value::string("bad"))]),
                    &provider_ty,
                ),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(summaries(&resp.diagnostics), ["Bad host"]);
    }

    #[tokio::test]
    async fn configure_passes_config_and_terraform_version() {
        let (svc, provider) = service();
        let provider_ty = Type::object([("host", Type::String)]);
        let config = Value::object([("host", Value::string("https://kube"))]);
        let resp = svc
            .configure_provider(Request::new(tf::configure_provider::Request {
                terraform_version: "1.11.4".into(),
                config: dv(&config, &provider_ty),
                client_capabilities: None,
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.diagnostics.is_empty());
        assert_eq!(
            *provider.configured_with.lock().unwrap(),
            Some((config, "1.11.4".to_string()))
        );
    }

    async fn apply(
        svc: &ProviderService,
        prior: &Value,
        planned: &Value,
    ) -> tf::apply_resource_change::Response {
        let ty = resource_type();
        svc.apply_resource_change(Request::new(tf::apply_resource_change::Request {
            type_name: RESOURCE.into(),
            prior_state: dv(prior, &ty),
            planned_state: dv(planned, &ty),
            config: dv(planned, &ty),
            planned_private: b"planned".to_vec(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
    }

    #[tokio::test]
    async fn create_returns_state_with_write_only_attributes_nulled() {
        let (svc, _) = service();
        let planned = state("a", Value::string("s3cret"), Value::string("x"));
        let resp = apply(&svc, &Value::Null, &planned).await;
        assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
        let new_state = undv(&resp.new_state, &resource_type());
        assert_eq!(new_state.get("id"), &Value::string("generated"));
        assert_eq!(new_state.get("name"), &Value::string("a"));
        assert_eq!(new_state.get("token"), &Value::Null);
        assert_eq!(new_state.get("spec").get("secret"), &Value::Null);
        assert_eq!(new_state.get("spec").get("replicas").as_i64(), Some(2));
        assert_eq!(resp.private, b"p");
    }

    #[tokio::test]
    async fn update_passes_private_state_through() {
        let (svc, _) = service();
        let prior = state("a", Value::Null, Value::Null);
        let mut planned = prior.clone();
        planned.set("old", Value::string("changed"));
        let resp = apply(&svc, &prior, &planned).await;
        assert!(resp.diagnostics.is_empty());
        assert_eq!(
            undv(&resp.new_state, &resource_type()).get("old"),
            &Value::string("changed")
        );
        assert_eq!(resp.private, b"planned");
    }

    #[tokio::test]
    async fn delete_failure_keeps_the_prior_state_and_success_clears_it() {
        let (svc, _) = service();
        let prior = state("undeletable", Value::Null, Value::Null);
        let resp = apply(&svc, &prior, &Value::Null).await;
        assert_eq!(summaries(&resp.diagnostics), ["Delete failed"]);
        assert_eq!(undv(&resp.new_state, &resource_type()), prior);

        let prior = state("a", Value::Null, Value::Null);
        let resp = apply(&svc, &prior, &Value::Null).await;
        assert!(resp.diagnostics.is_empty());
        assert_eq!(undv(&resp.new_state, &resource_type()), Value::Null);
    }

    #[tokio::test]
    async fn plan_reports_requires_replace_paths() {
        let (svc, _) = service();
        let ty = resource_type();
        let prior = state("a", Value::Null, Value::Null);
        let proposed = state("b", Value::string("tok"), Value::Null);
        let resp = svc
            .plan_resource_change(Request::new(tf::plan_resource_change::Request {
                type_name: RESOURCE.into(),
                prior_state: dv(&prior, &ty),
                proposed_new_state: dv(&proposed, &ty),
                config: dv(&proposed, &ty),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
        assert_eq!(resp.requires_replace.len(), 1);
        assert_eq!(
            steps(&resp.requires_replace[0]),
            [Selector::AttributeName("name".into())]
        );
        let planned = undv(&resp.planned_state, &ty);
        assert_eq!(planned.get("name"), &Value::string("b"));
        assert_eq!(
            planned.get("token"),
            &Value::Null,
            "write-only values never enter a plan"
        );
        assert!(!resp.legacy_type_system);
    }

    #[tokio::test]
    async fn read_of_a_vanished_object_returns_null() {
        let (svc, _) = service();
        let ty = resource_type();
        let resp = svc
            .read_resource(Request::new(tf::read_resource::Request {
                type_name: RESOURCE.into(),
                current_state: dv(&state("gone", Value::Null, Value::Null), &ty),
                private: b"keep".to_vec(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.diagnostics.is_empty());
        assert_eq!(undv(&resp.new_state, &ty), Value::Null);
        assert_eq!(resp.private, b"keep");
    }

    #[tokio::test]
    async fn stop_provider_cancels_operations_in_progress() {
        let (svc, _) = service();
        let ty = resource_type();
        let read = svc.read_resource(Request::new(tf::read_resource::Request {
            type_name: RESOURCE.into(),
            current_state: dv(&state("wait-for-stop", Value::Null, Value::Null), &ty),
            ..Default::default()
        }));
        let stop = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            svc.stop_provider(Request::new(tf::stop_provider::Request {}))
                .await
                .unwrap()
                .into_inner()
        };
        let started = Instant::now();
        let (read, stop) = tokio::join!(read, stop);
        assert_eq!(stop.error, "");
        assert_eq!(
            summaries(&read.unwrap().into_inner().diagnostics),
            ["Cancelled"]
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn import_returns_one_object_of_the_same_type() {
        let (svc, _) = service();
        let ty = resource_type();
        let resp = svc
            .import_resource_state(Request::new(tf::import_resource_state::Request {
                type_name: RESOURCE.into(),
                id: "abc".into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.diagnostics.is_empty());
        assert_eq!(resp.imported_resources.len(), 1);
        let imported = &resp.imported_resources[0];
        assert_eq!(imported.type_name, RESOURCE);
        assert_eq!(imported.private, b"i");
        let state = undv(&imported.state, &ty);
        assert_eq!(state.get("name"), &Value::string("abc"));
        assert_eq!(state.get("token"), &Value::Null);

        let resp = svc
            .import_resource_state(Request::new(tf::import_resource_state::Request {
                type_name: RESOURCE.into(),
                id: "missing".into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.imported_resources.is_empty());
        assert_eq!(summaries(&resp.diagnostics), ["Nothing to import"]);
    }

    async fn upgrade(
        svc: &ProviderService,
        version: i64,
        raw: tf::RawState,
    ) -> tf::upgrade_resource_state::Response {
        svc.upgrade_resource_state(Request::new(tf::upgrade_resource_state::Request {
            type_name: RESOURCE.into(),
            version,
            raw_state: Some(raw),
        }))
        .await
        .unwrap()
        .into_inner()
    }

    #[tokio::test]
    async fn upgrade_reads_json_with_the_current_schema() {
        let (svc, _) = service();
        // "legacy" is no longer in the schema and "spec"/"rule" are missing.
        let json = br#"{"id":"id-1","name":"a","token":null,"old":null,"legacy":"x"}"#;
        let resp = upgrade(
            &svc,
            0,
            tf::RawState {
                json: json.to_vec(),
                flatmap: Default::default(),
            },
        )
        .await;
        assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
        let state = undv(&resp.upgraded_state, &resource_type());
        assert_eq!(state.get("name"), &Value::string("a"));
        assert_eq!(state.get("spec"), &Value::Null);
        assert_eq!(
            state.get("old"),
            &Value::string("x"),
            "the resource's upgrade moved it"
        );
        assert_eq!(
            state.get("rule"),
            &Value::List(Vec::new()),
            "an unwritten list block is empty, never null"
        );

        // The current version is only re-read: nothing is moved.
        let resp = upgrade(
            &svc,
            1,
            tf::RawState {
                json: json.to_vec(),
                flatmap: Default::default(),
            },
        )
        .await;
        let state = undv(&resp.upgraded_state, &resource_type());
        assert!(state.get("old").is_null());
        assert!(state.get("rule").is_null());

        // The resource's refusal is Terraform's error, and nothing is returned.
        let resp = upgrade(
            &svc,
            0,
            tf::RawState {
                json: br#"{"name":"corrupt"}"#.to_vec(),
                flatmap: Default::default(),
            },
        )
        .await;
        assert_eq!(summaries(&resp.diagnostics), ["Cannot upgrade"]);
        assert!(resp.upgraded_state.is_none());
        let resp = upgrade(
            &svc,
            0,
            tf::RawState {
                json: b"{not json".to_vec(),
                flatmap: Default::default(),
            },
        )
        .await;
        assert_eq!(
            summaries(&resp.diagnostics),
            ["Unable to read stored state"]
        );

        let flatmap = [("id".to_string(), "x".to_string())].into_iter().collect();
        let resp = upgrade(
            &svc,
            0,
            tf::RawState {
                json: Vec::new(),
                flatmap,
            },
        )
        .await;
        assert_eq!(summaries(&resp.diagnostics), ["Unsupported state format"]);
        assert!(resp.upgraded_state.is_none());

        let resp = upgrade(
            &svc,
            2,
            tf::RawState {
                json: json.to_vec(),
                flatmap: Default::default(),
            },
        )
        .await;
        assert_eq!(
            summaries(&resp.diagnostics),
            ["Resource state from a newer provider"]
        );
    }

    #[tokio::test]
    async fn data_source_read_returns_the_full_state() {
        let (svc, _) = service();
        let ty = Type::object([("name", Type::String), ("value", Type::String)]);
        let config = Value::object([("name", Value::string("n")), ("value", Value::Unknown)]);
        let resp = svc
            .read_data_source(Request::new(tf::read_data_source::Request {
                type_name: DATA_SOURCE.into(),
                config: dv(&config, &ty),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.diagnostics.is_empty());
        assert_eq!(
            undv(&resp.state, &ty).get("value"),
            &Value::string("value of n")
        );
    }

    #[tokio::test]
    async fn unsupported_rpcs_answer_plainly() {
        let (svc, _) = service();
        let resp = svc
            .move_resource_state(Request::new(tf::move_resource_state::Request {
                source_type_name: "other_thing".into(),
                target_type_name: RESOURCE.into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            summaries(&resp.diagnostics),
            ["Moving resource state is not supported"]
        );

        let functions = svc
            .get_functions(Request::new(tf::get_functions::Request {}))
            .await
            .unwrap()
            .into_inner();
        assert!(functions.functions.is_empty() && functions.diagnostics.is_empty());
        let identities = svc
            .get_resource_identity_schemas(Request::new(
                tf::get_resource_identity_schemas::Request {},
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(identities.identity_schemas.is_empty());
        let status = svc
            .open_ephemeral_resource(Request::new(tf::open_ephemeral_resource::Request::default()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented);
    }

    #[test]
    fn diagnostic_paths_keep_keys_and_indexes() {
        let mut diags = Diagnostics::default();
        let path = AttributePath::attr("spec")
            .join_key("stage-a")
            .join_index(3)
            .join_attr("name");
        diags.error_at(path, "Bad", "detail");
        diags.push(Diagnostic::warning("Careful", "").at(AttributePath::root()));
        let proto = diagnostics_to_proto(&diags);
        assert_eq!(
            steps(proto[0].attribute.as_ref().unwrap()),
            [
                Selector::AttributeName("spec".into()),
                Selector::ElementKeyString("stage-a".into()),
                Selector::ElementKeyInt(3),
                Selector::AttributeName("name".into()),
            ]
        );
        assert_eq!(proto[1].severity, tf::diagnostic::Severity::Warning as i32);
        assert!(
            proto[1].attribute.is_none(),
            "a root path points at nothing"
        );
    }

    #[tokio::test]
    async fn health_and_shutdown_follow_go_plugin() {
        use goplugin::grpc_controller_server::GrpcController as _;
        use health::health_server::Health as _;
        let check = |service: &str| {
            Health.check(Request::new(health::HealthCheckRequest {
                service: service.into(),
            }))
        };
        let serving = check(HEALTH_SERVICE).await.unwrap().into_inner();
        assert_eq!(
            serving.status,
            health::health_check_response::ServingStatus::Serving as i32
        );
        assert_eq!(
            check("other").await.unwrap_err().code(),
            tonic::Code::NotFound
        );

        let shutdown = CancellationToken::new();
        let stop = shutdown.child_token();
        Controller {
            shutdown: shutdown.clone(),
        }
        .shutdown(Request::new(goplugin::Empty {}))
        .await
        .unwrap();
        assert!(shutdown.is_cancelled());
        assert!(
            stop.is_cancelled(),
            "shutting down also cancels work in progress"
        );
    }
}
