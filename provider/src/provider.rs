//! The `kargo` provider: its configuration block, decoding it into connection settings,
//! and the shared handle through which resources reach the (lazily built) cluster client.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use crate::kargo::connection::{
    ConfigError, ExecSettings, Resolved, Secret, Setting, Settings, Source,
};
use crate::kargo::{self, ClientOptions, KargoClient};
use crate::plugin::{
    Attribute, AttributePath, Block, Context, DataSource, Diagnostic, Diagnostics, NestedBlock,
    Nesting, Provider, Resource, Schema, Value,
};
use crate::resources::templates::Pipeline;

const PROVIDER_DESCRIPTION: &str = "\
The Kargo provider manages [Kargo](https://kargo.io) promotion pipelines (projects, warehouses, \
stages, promotion tasks and promotions, `kargo.akuity.io/v1alpha1`) through the Kubernetes API of \
the cluster Kargo runs in.

The connection settings mirror the Kubernetes provider's, including its `KUBE_*` environment \
variables, so an existing configuration can be reused.

**Precedence.** An attribute set in this block wins over its environment variable. \
`config_path` or `config_paths` in the block win over `KUBE_CONFIG_PATH`, which wins over \
`KUBE_CONFIG_PATHS`. Explicit `host`, `cluster_ca_certificate`, `client_certificate`/`client_key`, \
`insecure`, `tls_server_name`, `proxy_url`, `token` and `exec` override what the kubeconfig \
provides; `token` and `exec` each replace the kubeconfig's credentials. The provider never reads \
`KUBECONFIG` or `~/.kube/config` unless they are named in `config_path`/`config_paths`. With \
nothing configured it uses the in-cluster service account when running in a pod \
(`KUBERNETES_SERVICE_HOST` is set).

The provider does not contact the cluster while it is being configured, and configuration \
values that are only known after apply (for example the endpoint of a cluster created in the \
same run) are accepted: new resources can still be planned.";

/// Decodes the provider block. Unknown attributes (plan time) are recorded in
/// `Settings::unknown`; empty strings count as unset, as in the Kubernetes provider.
pub fn settings_from_config(config: &Value) -> Settings {
    let mut settings = Settings::default();
    if config.is_unknown() {
        // The whole block is not known yet: nothing can be decided about the connection.
        settings.unknown.extend([
            Setting::Host,
            Setting::ConfigPath,
            Setting::Token,
            Setting::Exec,
        ]);
        return settings;
    }
    let mut string = |name: Setting| -> Option<String> {
        match config.get(name.name()) {
            Value::Unknown => {
                settings.unknown.insert(name);
                None
            }
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    };
    let config_path = string(Setting::ConfigPath);
    let config_context = string(Setting::ConfigContext);
    let config_context_auth_info = string(Setting::ConfigContextAuthInfo);
    let config_context_cluster = string(Setting::ConfigContextCluster);
    let host = string(Setting::Host);
    let token = string(Setting::Token).map(Secret::from);
    let cluster_ca_certificate = string(Setting::ClusterCaCertificate);
    let client_certificate = string(Setting::ClientCertificate);
    let client_key = string(Setting::ClientKey).map(Secret::from);
    let tls_server_name = string(Setting::TlsServerName);
    let proxy_url = string(Setting::ProxyUrl);
    let field_manager = string(Setting::FieldManager);
    let api_wait_timeout = string(Setting::ApiWaitTimeout);
    settings.config_path = config_path;
    settings.config_context = config_context;
    settings.config_context_auth_info = config_context_auth_info;
    settings.config_context_cluster = config_context_cluster;
    settings.host = host;
    settings.token = token;
    settings.cluster_ca_certificate = cluster_ca_certificate;
    settings.client_certificate = client_certificate;
    settings.client_key = client_key;
    settings.tls_server_name = tls_server_name;
    settings.proxy_url = proxy_url;
    settings.field_manager = field_manager;
    settings.api_wait_timeout = api_wait_timeout;

    for (name, slot) in [
        (Setting::Insecure, &mut settings.insecure),
        (Setting::ForceConflicts, &mut settings.force_conflicts),
    ] {
        match config.get(name.name()) {
            Value::Unknown => {
                settings.unknown.insert(name);
            }
            v => *slot = v.as_bool(),
        }
    }

    let paths = config.get(Setting::ConfigPaths.name());
    if paths.is_wholly_known() {
        settings.config_paths = paths
            .elements()
            .iter()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect();
    } else {
        settings.unknown.insert(Setting::ConfigPaths);
    }

    let exec = config.get(Setting::Exec.name());
    // A list block (max one) on the wire; tolerate a single object too.
    let exec = match exec {
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
            items.first().cloned().unwrap_or(Value::Null)
        }
        other => other.clone(),
    };
    if !exec.is_wholly_known() {
        settings.unknown.insert(Setting::Exec);
    } else if !exec.is_null() {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        settings.exec = Some(ExecSettings {
            api_version: text(exec.get("api_version")),
            command: text(exec.get("command")),
            args: exec
                .get("args")
                .elements()
                .iter()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect(),
            env: exec
                .get("env")
                .entries()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                        .collect()
                })
                .unwrap_or_else(BTreeMap::new),
        });
    }
    settings
}

/// A connection problem as a diagnostic: on the offending attribute when it was set in the
/// block, otherwise naming the environment variable.
pub fn config_error_diagnostic(err: &ConfigError) -> Diagnostic {
    let summary = match err.location() {
        Some(location) => format!("Invalid provider setting {location}"),
        None => "Invalid provider configuration".to_string(),
    };
    let diagnostic = Diagnostic::error(summary, err.message.clone());
    match (err.setting, err.source) {
        (Some(setting), Source::Explicit | Source::Unknown) => {
            let mut path = AttributePath::attr(setting.name());
            if let Some(nested) = err.nested {
                path = path.join_index(0).join_attr(nested);
            }
            diagnostic.at(path)
        }
        _ => diagnostic,
    }
}

fn config_diagnostics(resolved: &Resolved) -> Diagnostics {
    let mut diags = Diagnostics::default();
    for err in resolved.validate() {
        diags.push(config_error_diagnostic(&err));
    }
    diags
}

/// The provider's shared state as resources see it. Cloned into every resource at
/// construction; becomes usable once Terraform has configured the provider.
#[derive(Clone, Default)]
pub struct ProviderData {
    shared: Arc<Mutex<State>>,
    pipeline: Pipeline,
}

#[derive(Default)]
enum State {
    #[default]
    Unconfigured,
    Configured {
        resolved: Arc<Resolved>,
        client: Option<Arc<KargoClient>>,
    },
}

impl ProviderData {
    /// A handle that is already connected to `client` (for tests and embedding).
    pub fn from_client(client: Arc<KargoClient>) -> Self {
        let resolved = Arc::new(Settings::default().resolve(|_| None));
        Self {
            shared: Arc::new(Mutex::new(State::Configured {
                resolved,
                client: Some(client),
            })),
            pipeline: Pipeline::default(),
        }
    }

    /// The warehouses and promotion tasks of the configuration, for checks across resources.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Records the configuration; the client is built on first use.
    pub fn configure(&self, resolved: Resolved) {
        let mut state = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        *state = State::Configured {
            resolved: Arc::new(resolved),
            client: None,
        };
    }

    /// True once ConfigureProvider has run.
    pub fn is_configured(&self) -> bool {
        matches!(
            *self.shared.lock().unwrap_or_else(PoisonError::into_inner),
            State::Configured { .. }
        )
    }

    /// True when the provider is configured and no setting waits for a value known only
    /// after apply. When false, resources should plan without the cluster (showing
    /// "known after apply") and only fail if they truly need it.
    pub fn configuration_known(&self) -> bool {
        match &*self.shared.lock().unwrap_or_else(PoisonError::into_inner) {
            State::Configured {
                client: Some(_), ..
            } => true,
            State::Configured { resolved, .. } => resolved.is_known(),
            State::Unconfigured => false,
        }
    }

    /// The cluster client, built on first call (reading kubeconfig files then, never
    /// connecting) and shared afterwards. Must be called within a Tokio runtime.
    ///
    /// Fails with [`kargo::Error::ConfigUnknown`] while the configuration is not known yet
    /// and [`kargo::Error::Config`] when the settings cannot be used (the message says how
    /// to configure the connection).
    pub fn client(&self) -> Result<Arc<KargoClient>, kargo::Error> {
        let mut state = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let State::Configured { resolved, client } = &mut *state else {
            return Err(kargo::Error::Config(
                "the kargo provider has not been configured yet".into(),
            ));
        };
        if let Some(client) = client {
            return Ok(client.clone());
        }
        if !resolved.is_known() {
            return Err(kargo::Error::ConfigUnknown);
        }
        let config = resolved
            .kube_config()
            .map_err(|e| kargo::Error::Config(e.to_string()))?;
        let options = ClientOptions {
            field_manager: resolved.field_manager().to_string(),
            force_conflicts: resolved.force_conflicts(),
            api_wait_timeout: resolved.api_wait_timeout(),
        };
        let built = Arc::new(KargoClient::from_config(config, options)?);
        tracing::debug!(host = built.host(), connection = %resolved.describe(), "Kubernetes client ready");
        *client = Some(built.clone());
        Ok(built)
    }
}

/// The `kargo` provider.
#[derive(Default)]
pub struct KargoProvider {
    data: ProviderData,
}

impl KargoProvider {
    pub fn new() -> Self {
        Self::default()
    }

    /// The handle resources are constructed with.
    pub fn data(&self) -> ProviderData {
        self.data.clone()
    }
}

fn string_attr(setting: Setting, description: &str) -> Attribute {
    Attribute::string(setting.name())
        .optional()
        .description(description)
}

fn provider_schema() -> Schema {
    let exec = Block::new(vec![
        Attribute::string("api_version").required().description(
            "API version of the `ExecCredential` exchanged with the plugin: \
`client.authentication.k8s.io/v1` or `client.authentication.k8s.io/v1beta1`.",
        ),
        Attribute::string("command").required().description(
            "Command to run, looked up in `PATH` unless it contains a path separator.",
        ),
        Attribute::string_list("args")
            .optional()
            .description("Arguments passed to the command."),
        Attribute::string_map("env")
            .optional()
            .description("Extra environment variables set for the command."),
    ])
    .description(
        "Credential plugin run to obtain credentials for the Kubernetes API, for example \
`aws eks get-token` or `gke-gcloud-auth-plugin`. Replaces the kubeconfig's credentials and any \
`KUBE_TOKEN`. Conflicts with `token`. The plugin runs non-interactively.",
    );

    let block = Block::new(vec![
        string_attr(
            Setting::ConfigPath,
            "Path to a kubeconfig file (`~` is expanded). Can be set with the `KUBE_CONFIG_PATH` \
environment variable. Conflicts with `config_paths`. `KUBECONFIG` is not read.",
        ),
        Attribute::string_list(Setting::ConfigPaths.name()).optional().description(
            "Kubeconfig files merged in order (the first file to define a context, cluster or user \
wins). Can be set with the `KUBE_CONFIG_PATHS` environment variable (a list separated by `:`, or \
`;` on Windows), which is used only when neither `config_path`, `config_paths` nor \
`KUBE_CONFIG_PATH` is set.",
        ),
        string_attr(
            Setting::ConfigContext,
            "Context to use from the kubeconfig. Defaults to its `current-context`. Can be set with \
the `KUBE_CTX` environment variable.",
        ),
        string_attr(
            Setting::ConfigContextAuthInfo,
            "Kubeconfig user to use instead of the context's user. Can be set with the \
`KUBE_CTX_AUTH_INFO` environment variable.",
        ),
        string_attr(
            Setting::ConfigContextCluster,
            "Kubeconfig cluster to use instead of the context's cluster. Can be set with the \
`KUBE_CTX_CLUSTER` environment variable.",
        ),
        string_attr(
            Setting::Host,
            "URL of the Kubernetes API server, e.g. `https://203.0.113.10:6443`. Overrides the \
kubeconfig's server. Can be set with the `KUBE_HOST` environment variable.",
        ),
        string_attr(
            Setting::Token,
            "Bearer token for the Kubernetes API. Replaces the kubeconfig's credentials. Conflicts \
with `exec`. Can be set with the `KUBE_TOKEN` environment variable (ignored when an `exec` block \
is present).",
        )
        .sensitive(),
        string_attr(
            Setting::ClusterCaCertificate,
            "PEM-encoded CA certificate(s) used to verify the API server's certificate. Overrides the \
kubeconfig's CA. Can be set with the `KUBE_CLUSTER_CA_CERT_DATA` environment variable.",
        ),
        string_attr(
            Setting::ClientCertificate,
            "PEM-encoded client certificate for TLS client authentication; requires `client_key`. \
Can be set with the `KUBE_CLIENT_CERT_DATA` environment variable.",
        ),
        string_attr(
            Setting::ClientKey,
            "PEM-encoded private key of `client_certificate`. Can be set with the \
`KUBE_CLIENT_KEY_DATA` environment variable.",
        )
        .sensitive(),
        Attribute::bool(Setting::Insecure.name()).optional().description(
            "Skip verification of the API server's TLS certificate. Unsafe outside test clusters. \
Defaults to `false`. Can be set with the `KUBE_INSECURE` environment variable.",
        ),
        string_attr(
            Setting::TlsServerName,
            "Server name used for SNI and to verify the API server's certificate, when it differs \
from the host in the URL. Can be set with the `KUBE_TLS_SERVER_NAME` environment variable.",
        ),
        string_attr(
            Setting::ProxyUrl,
            "URL of an HTTP(S) proxy for requests to the Kubernetes API, e.g. \
`http://proxy.example.com:3128`. Can be set with the `KUBE_PROXY_URL` environment variable.",
        ),
        string_attr(
            Setting::FieldManager,
            "Field manager name used for server-side apply; the provider owns exactly the fields \
it writes under this name. Defaults to `terraform-provider-kargo`.",
        ),
        Attribute::bool(Setting::ForceConflicts.name()).optional().description(
            "Take ownership of fields another field manager owns when server-side apply reports a \
conflict. Defaults to `false`: conflicts are reported as errors naming the other managers and \
the fields.",
        ),
        string_attr(
            Setting::ApiWaitTimeout,
            "How long an apply waits for the Kargo API (`kargo.akuity.io/v1alpha1`) and its \
admission webhooks to be served before giving up, for example when Kargo is installed by the \
same apply. A duration such as `90s`, `5m` or `1h30m`. Defaults to `5m`.",
        ),
    ])
    .description(PROVIDER_DESCRIPTION)
    .block(NestedBlock::new(Setting::Exec.name(), exec, Nesting::List).max_items(1));
    Schema::new(0, block)
}

#[async_trait]
impl Provider for KargoProvider {
    fn schema(&self) -> Schema {
        provider_schema()
    }

    fn validate_config(&self, config: &Value) -> Diagnostics {
        config_diagnostics(&settings_from_config(config).resolve_from_process_env())
    }

    async fn configure(
        &self,
        _ctx: &Context,
        config: &Value,
        terraform_version: &str,
    ) -> Diagnostics {
        let resolved = settings_from_config(config).resolve_from_process_env();
        let diags = config_diagnostics(&resolved);
        if diags.has_errors() {
            return diags;
        }
        tracing::debug!(
            terraform_version,
            connection = %resolved.describe(),
            known = resolved.is_known(),
            field_manager = resolved.field_manager(),
            "kargo provider configured"
        );
        self.data.configure(resolved);
        diags
    }

    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        crate::resources::all(&self.data())
    }

    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        crate::data_sources::all(&self.data())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(attrs: Vec<(&str, Value)>) -> Value {
        Value::object(attrs)
    }

    #[test]
    fn every_attribute_is_documented_with_its_env_var() {
        let schema = provider_schema();
        for attr in &schema.block.attributes {
            assert!(
                !attr.description.is_empty(),
                "{} has no description",
                attr.name
            );
            assert!(
                attr.optional && !attr.required && !attr.computed,
                "{} must be optional",
                attr.name
            );
        }
        for setting in [
            Setting::ConfigPath,
            Setting::ConfigPaths,
            Setting::ConfigContext,
            Setting::ConfigContextAuthInfo,
            Setting::ConfigContextCluster,
            Setting::Host,
            Setting::Token,
            Setting::ClusterCaCertificate,
            Setting::ClientCertificate,
            Setting::ClientKey,
            Setting::Insecure,
            Setting::TlsServerName,
            Setting::ProxyUrl,
            Setting::FieldManager,
            Setting::ForceConflicts,
            Setting::ApiWaitTimeout,
        ] {
            let attr = schema
                .block
                .attribute(setting.name())
                .unwrap_or_else(|| panic!("{} missing", setting.name()));
            if let Some(var) = setting.env_var() {
                assert!(
                    attr.description.contains(var),
                    "{} does not name {var}",
                    setting.name()
                );
            }
        }
        assert!(schema.block.attribute("token").unwrap().sensitive);
        assert!(schema.block.attribute("client_key").unwrap().sensitive);
        assert!(
            schema
                .block
                .attribute("field_manager")
                .unwrap()
                .description
                .contains("terraform-provider-kargo")
        );
        assert!(
            schema
                .block
                .attribute("api_wait_timeout")
                .unwrap()
                .description
                .contains("`5m`")
        );
        let exec = schema.block.nested_block("exec").unwrap();
        assert_eq!(exec.max_items, 1);
        assert!(exec.block.attribute("api_version").unwrap().required);
        assert!(exec.block.attribute("command").unwrap().required);
    }

    #[test]
    fn decoding_records_unknowns_and_ignores_empty_strings() {
        let config = block(vec![
            ("host", Value::Unknown),
            ("token", Value::string("")),
            ("config_context", Value::string("kind-dev")),
            ("insecure", Value::Bool(true)),
            (
                "config_paths",
                Value::List(vec![Value::string("/a"), Value::Unknown]),
            ),
        ]);
        let s = settings_from_config(&config);
        assert!(s.host.is_none());
        assert!(s.token.is_none());
        assert_eq!(s.config_context.as_deref(), Some("kind-dev"));
        assert_eq!(s.insecure, Some(true));
        assert!(s.unknown.contains(&Setting::Host));
        assert!(s.unknown.contains(&Setting::ConfigPaths));
        assert!(!s.unknown.contains(&Setting::Token));
    }

    #[test]
    fn decoding_reads_the_exec_block() {
        let exec = Value::object([
            (
                "api_version",
                Value::string("client.authentication.k8s.io/v1"),
            ),
            ("command", Value::string("aws")),
            (
                "args",
                Value::List(vec![Value::string("eks"), Value::string("get-token")]),
            ),
            (
                "env",
                Value::Map([("AWS_PROFILE".to_string(), Value::string("ops"))].into()),
            ),
        ]);
        let s = settings_from_config(&block(vec![("exec", Value::List(vec![exec]))]));
        let exec = s.exec.unwrap();
        assert_eq!(exec.command, "aws");
        assert_eq!(exec.args, vec!["eks", "get-token"]);
        assert_eq!(exec.env.get("AWS_PROFILE").map(String::as_str), Some("ops"));
    }
}
