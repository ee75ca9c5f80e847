//! The provider's configuration: decoding the provider block into connection settings
//! (with `KUBE_*` fallbacks), and the shared handle through which resources reach the client.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::kargo::{self, ClientOptions, KargoClient};
use crate::plugin::{AttributePath, Diagnostic, Diagnostics, Value};

pub mod preview;
pub mod settings;

pub use settings::{
    ApiServerSettings, ConfigError, ExecSettings, Resolved, Secret, Setting, Settings, Source,
};

/// Decodes the provider block. Unknown attributes (plan time) are recorded in
/// `Settings::unknown`; empty strings count as unset, as in the Kubernetes provider.
pub fn settings_from_config(config: &Value) -> Settings {
    let mut settings = Settings::default();
    if config.is_unknown() {
        // The whole block is not known yet: nothing can be decided about the connection.
        settings.unknown.extend([
            Setting::ApiServer,
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

    let api = match config.get(Setting::ApiServer.name()) {
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
            items.first().cloned().unwrap_or(Value::Null)
        }
        other => other.clone(),
    };
    if !api.is_wholly_known() {
        settings.unknown.insert(Setting::ApiServer);
    } else if !api.is_null() {
        let text = |name: &str| {
            api.get(name)
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        settings.api_server = Some(ApiServerSettings {
            url: text("url"),
            token: text("token").map(Secret::from),
            admin_password: text("admin_password").map(Secret::from),
            ca_certificate: text("ca_certificate"),
            insecure_skip_tls_verify: api.get("insecure_skip_tls_verify").as_bool(),
            ..ApiServerSettings::default()
        });
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

pub(crate) fn config_diagnostics(resolved: &Resolved) -> Diagnostics {
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
    /// What Terraform's validation of the configuration's resources has recorded, for the
    /// checks of promotion templates that span resources (tasks, warehouses, stages).
    pipeline: crate::resources::templates::Pipeline,
    /// The `promotion_preview` settings; `None` while unknown (previews off).
    preview: Arc<Mutex<Option<crate::steps::preview::Settings>>>,
    /// The idempotency keys of the promotions planned since Terraform configured the provider
    /// (once per plan or apply), to find two resources that declare the same promotion.
    promotion_keys: Arc<Mutex<std::collections::BTreeSet<String>>>,
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
            pipeline: Default::default(),
            preview: Arc::new(Mutex::new(Some(Default::default()))),
            promotion_keys: Default::default(),
        }
    }

    /// Records that a promotion with idempotency key `key` is planned; `false` when one with
    /// the same key was already planned since the provider was configured.
    pub fn claim_promotion_key(&self, key: &str) -> bool {
        self.promotion_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_string())
    }

    /// Records the `promotion_preview` settings.
    pub fn set_preview(&self, settings: Option<crate::steps::preview::Settings>) {
        *self.preview.lock().unwrap_or_else(PoisonError::into_inner) = settings;
    }

    /// The `promotion_preview` settings; `None` while the block is not known.
    pub fn preview(&self) -> Option<crate::steps::preview::Settings> {
        self.preview
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The warehouses and promotion tasks of the configuration, for checks across resources.
    pub fn pipeline(&self) -> &crate::resources::templates::Pipeline {
        &self.pipeline
    }

    /// Records the configuration; the client is built on first use.
    pub fn configure(&self, resolved: Resolved) {
        // A new plan or apply (the same provider process serves several under `-debug`).
        self.promotion_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
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
        let options = ClientOptions {
            field_manager: resolved.field_manager().to_string(),
            force_conflicts: resolved.force_conflicts(),
            api_wait_timeout: resolved.api_wait_timeout(),
        };
        if let Some(api) = resolved.api_server() {
            if let Some(first) = resolved.validate().into_iter().next() {
                return Err(kargo::Error::Config(first.to_string()));
            }
            let auth = match (&api.token, &api.admin_password) {
                (Some(token), _) => kargo::rest::RestAuth::Token(token.expose().to_string()),
                (None, Some(password)) => {
                    kargo::rest::RestAuth::AdminPassword(password.expose().to_string())
                }
                (None, None) => {
                    return Err(kargo::Error::Config(
                        "api_server needs a token or admin_password".into(),
                    ));
                }
            };
            let rest = kargo::rest::RestApi::new(kargo::rest::RestConfig {
                url: api.url.clone().unwrap_or_default(),
                auth,
                ca_pem: api.ca_certificate.clone(),
                insecure_skip_tls_verify: api.insecure_skip_tls_verify.unwrap_or(false),
            })?;
            let built = Arc::new(KargoClient::from_rest(rest, options));
            tracing::debug!(host = built.host(), connection = %resolved.describe(), "Kargo API server client ready");
            *client = Some(built.clone());
            return Ok(built);
        }
        let config = resolved
            .kube_config()
            .map_err(|e| kargo::Error::Config(e.to_string()))?;
        let built = Arc::new(KargoClient::from_config(config, options)?);
        tracing::debug!(host = built.host(), connection = %resolved.describe(), "Kubernetes client ready");
        *client = Some(built.clone());
        Ok(built)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(attrs: Vec<(&str, Value)>) -> Value {
        Value::object(attrs)
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

    fn api_server_block(attrs: Vec<(&str, Value)>) -> Value {
        Value::List(vec![Value::object(attrs)])
    }

    #[test]
    fn decoding_reads_the_api_server_block() {
        let config = block(vec![(
            "api_server",
            api_server_block(vec![
                ("url", Value::string("https://kargo.example.com/kargo")),
                ("token", Value::string("kargo-token")),
                ("admin_password", Value::string("")),
                ("ca_certificate", Value::Null),
                ("insecure_skip_tls_verify", Value::Bool(true)),
            ]),
        )]);
        let s = settings_from_config(&config);
        let api = s.api_server.unwrap();
        assert_eq!(api.url.as_deref(), Some("https://kargo.example.com/kargo"));
        assert_eq!(api.token.as_ref().map(Secret::expose), Some("kargo-token"));
        // Empty strings count as unset, as everywhere in the block.
        assert!(api.admin_password.is_none());
        assert!(api.ca_certificate.is_none());
        assert_eq!(api.insecure_skip_tls_verify, Some(true));
        assert_eq!(api.url_source, None);
        assert!(s.unknown.is_empty(), "{:?}", s.unknown);

        // No block, or an empty list of blocks: Kargo's API server is not configured.
        for absent in [Value::Null, Value::List(vec![])] {
            let s = settings_from_config(&block(vec![("api_server", absent)]));
            assert!(s.api_server.is_none());
            assert!(!s.unknown.contains(&Setting::ApiServer));
        }
    }

    #[test]
    fn an_api_server_block_not_known_yet_is_decided_at_apply() {
        let partly = block(vec![(
            "api_server",
            api_server_block(vec![
                ("url", Value::string("https://kargo.example.com")),
                ("token", Value::Unknown),
            ]),
        )]);
        let whole = block(vec![("api_server", Value::Unknown)]);
        for config in [partly, whole] {
            let s = settings_from_config(&config);
            assert!(s.api_server.is_none());
            assert!(s.unknown.contains(&Setting::ApiServer));
            let resolved = s.resolve(|name| {
                (name == settings::API_URL_ENV).then(|| "https://env.example.com".to_string())
            });
            assert!(resolved.uses_api_server());
            assert!(!resolved.is_known());
            assert!(config_diagnostics(&resolved).0.is_empty());
        }
        let s = settings_from_config(&Value::Unknown);
        assert!(s.unknown.contains(&Setting::ApiServer));
    }

    #[test]
    fn api_server_problems_land_on_the_attribute_or_name_the_variable() {
        let config = block(vec![
            ("config_path", Value::string("/etc/kubeconfig")),
            (
                "api_server",
                api_server_block(vec![
                    ("url", Value::string("kargo.example.com")),
                    ("token", Value::string("kargo-token")),
                    ("admin_password", Value::string("admin-password")),
                ]),
            ),
        ]);
        let diags = config_diagnostics(&settings_from_config(&config).resolve(|_| None));
        let found: Vec<(String, Option<AttributePath>)> = diags
            .0
            .iter()
            .map(|d| (d.summary.clone(), d.attribute.clone()))
            .collect();
        let nested = |name: &str| {
            Some(
                AttributePath::attr("api_server")
                    .join_index(0)
                    .join_attr(name),
            )
        };
        assert_eq!(
            found,
            vec![
                (
                    "Invalid provider setting api_server".to_string(),
                    Some(AttributePath::attr("api_server"))
                ),
                (
                    "Invalid provider setting api_server.url".to_string(),
                    nested("url")
                ),
                (
                    "Invalid provider setting api_server.admin_password".to_string(),
                    nested("admin_password")
                ),
            ]
        );
        for d in &diags.0 {
            assert!(!d.detail.contains("kargo-token"), "{}", d.detail);
            assert!(!d.detail.contains("admin-password"), "{}", d.detail);
        }

        // From the environment: no attribute to point at; the summary names the variable.
        let resolved = Settings::default().resolve(|name| {
            (name == settings::API_URL_ENV).then(|| "https://kargo.example.com".to_string())
        });
        let diags = config_diagnostics(&resolved);
        assert_eq!(diags.0.len(), 1, "{diags:?}");
        assert_eq!(
            diags.0[0].summary,
            "Invalid provider setting KARGO_API_URL (environment variable)"
        );
        assert_eq!(diags.0[0].attribute, None);
        assert!(
            diags.0[0].detail.starts_with("needs KARGO_API_TOKEN"),
            "{}",
            diags.0[0].detail
        );
    }
}
