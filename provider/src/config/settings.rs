//! The provider block's connection settings: `KUBE_*` environment fallbacks, validation,
//! and building a `kube::Config` from kubeconfig files plus explicit overrides.
//!
//! # Precedence
//!
//! 1. A setting given explicitly (the provider block) wins over its `KUBE_*` environment
//!    variable; the variable is only a fallback for that one setting. `config_path` and
//!    `config_paths` count as one setting: either in the block beats `KUBE_CONFIG_PATH`,
//!    which beats `KUBE_CONFIG_PATHS`.
//! 2. When kubeconfig files are configured they are merged (the first file to define a
//!    context, cluster or user wins) and the context is chosen by `config_context`, or the
//!    files' `current-context`; `config_context_cluster` / `config_context_auth_info`
//!    replace the context's cluster / user.
//! 3. Explicit `host`, `cluster_ca_certificate`, `client_certificate`/`client_key`,
//!    `insecure`, `tls_server_name`, `proxy_url`, `token` and `exec` override what the
//!    kubeconfig provides. `token` and `exec` each replace the kubeconfig's credentials;
//!    an explicit `exec` also replaces a token that only comes from `KUBE_TOKEN`.
//! 4. `KUBECONFIG` and `~/.kube/config` are never read implicitly.
//! 5. With no kubeconfig and no `host`, the in-cluster service account is used when
//!    `KUBERNETES_SERVICE_HOST` is set; otherwise building the configuration fails with a
//!    message listing the ways to configure the connection.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use kube::config::{ExecConfig, ExecInteractiveMode, Kubeconfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::duration::parse_go_duration;

pub use crate::kargo::client::{DEFAULT_API_WAIT_TIMEOUT, DEFAULT_FIELD_MANAGER};
use crate::kargo::{chain_text, redact_userinfo};
/// Credential plugin API versions kube-rs can speak.
pub const EXEC_API_VERSIONS: [&str; 2] = [
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
];

/// One connection setting; names match the provider block's attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Setting {
    ConfigPath,
    ConfigPaths,
    ConfigContext,
    ConfigContextAuthInfo,
    ConfigContextCluster,
    Host,
    Token,
    ClusterCaCertificate,
    ClientCertificate,
    ClientKey,
    Insecure,
    TlsServerName,
    ProxyUrl,
    Exec,
    FieldManager,
    ForceConflicts,
    ApiWaitTimeout,
    /// The `api_server` block: Kargo's own API server instead of the Kubernetes API.
    ApiServer,
}

impl Setting {
    /// The attribute name in the provider block.
    pub fn name(self) -> &'static str {
        match self {
            Setting::ConfigPath => "config_path",
            Setting::ConfigPaths => "config_paths",
            Setting::ConfigContext => "config_context",
            Setting::ConfigContextAuthInfo => "config_context_auth_info",
            Setting::ConfigContextCluster => "config_context_cluster",
            Setting::Host => "host",
            Setting::Token => "token",
            Setting::ClusterCaCertificate => "cluster_ca_certificate",
            Setting::ClientCertificate => "client_certificate",
            Setting::ClientKey => "client_key",
            Setting::Insecure => "insecure",
            Setting::TlsServerName => "tls_server_name",
            Setting::ProxyUrl => "proxy_url",
            Setting::Exec => "exec",
            Setting::FieldManager => "field_manager",
            Setting::ForceConflicts => "force_conflicts",
            Setting::ApiWaitTimeout => "api_wait_timeout",
            Setting::ApiServer => "api_server",
        }
    }

    /// The environment variable used when the setting is not given explicitly.
    pub fn env_var(self) -> Option<&'static str> {
        match self {
            Setting::ConfigPath => Some("KUBE_CONFIG_PATH"),
            Setting::ConfigPaths => Some("KUBE_CONFIG_PATHS"),
            Setting::ConfigContext => Some("KUBE_CTX"),
            Setting::ConfigContextAuthInfo => Some("KUBE_CTX_AUTH_INFO"),
            Setting::ConfigContextCluster => Some("KUBE_CTX_CLUSTER"),
            Setting::Host => Some("KUBE_HOST"),
            Setting::Token => Some("KUBE_TOKEN"),
            Setting::ClusterCaCertificate => Some("KUBE_CLUSTER_CA_CERT_DATA"),
            Setting::ClientCertificate => Some("KUBE_CLIENT_CERT_DATA"),
            Setting::ClientKey => Some("KUBE_CLIENT_KEY_DATA"),
            Setting::Insecure => Some("KUBE_INSECURE"),
            Setting::TlsServerName => Some("KUBE_TLS_SERVER_NAME"),
            Setting::ProxyUrl => Some("KUBE_PROXY_URL"),
            Setting::ApiServer => Some(API_URL_ENV),
            Setting::Exec
            | Setting::FieldManager
            | Setting::ForceConflicts
            | Setting::ApiWaitTimeout => None,
        }
    }
}

/// Where a setting's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Unset,
    /// Given explicitly (in the provider block).
    Explicit,
    /// Given explicitly but not known yet (plan time); environment fallbacks do not apply.
    Unknown,
    /// Taken from this environment variable.
    Env(&'static str),
}

/// A string that never shows up in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself; only for handing it to the Kubernetes client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_string())
    }
}

/// The `exec` credential plugin settings.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ExecSettings {
    pub api_version: String,
    pub command: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
}

impl fmt::Debug for ExecSettings {
    // Plugin environments often carry credentials (cloud access keys); show names only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecSettings")
            .field("api_version", &self.api_version)
            .field("command", &self.command)
            .field("args", &self.args.len())
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Environment variables of the `api_server` block.
pub const API_URL_ENV: &str = "KARGO_API_URL";
pub const API_TOKEN_ENV: &str = "KARGO_API_TOKEN";
pub const ADMIN_PASSWORD_ENV: &str = "KARGO_ADMIN_PASSWORD";

/// The `api_server` block: Kargo's API server (REST `/v1beta1`) and how to authenticate.
#[derive(Clone, Debug, Default)]
pub struct ApiServerSettings {
    /// The server's URL, with its base path if it has one.
    pub url: Option<String>,
    pub token: Option<Secret>,
    pub admin_password: Option<Secret>,
    pub ca_certificate: Option<String>,
    pub insecure_skip_tls_verify: Option<bool>,
    /// Where `url`, `token` and `admin_password` came from: explicit, or the variable named.
    pub url_source: Option<&'static str>,
    pub token_source: Option<&'static str>,
    pub admin_password_source: Option<&'static str>,
}

/// The connection settings that choose the Kubernetes API, for the check that the
/// `api_server` block is not configured beside them.
const KUBE_CONNECTION: [Setting; 9] = [
    Setting::ConfigPath,
    Setting::ConfigPaths,
    Setting::Host,
    Setting::Token,
    Setting::Exec,
    Setting::ClusterCaCertificate,
    Setting::ClientCertificate,
    Setting::ClientKey,
    Setting::ConfigContext,
];

/// The connection settings as given explicitly (the provider block); `None` means unset.
/// Environment fallbacks are applied by [`Settings::resolve`].
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub config_path: Option<String>,
    pub config_paths: Vec<String>,
    pub config_context: Option<String>,
    pub config_context_auth_info: Option<String>,
    pub config_context_cluster: Option<String>,
    pub host: Option<String>,
    pub token: Option<Secret>,
    pub cluster_ca_certificate: Option<String>,
    pub client_certificate: Option<String>,
    pub client_key: Option<Secret>,
    pub insecure: Option<bool>,
    pub tls_server_name: Option<String>,
    pub proxy_url: Option<String>,
    pub exec: Option<ExecSettings>,
    pub field_manager: Option<String>,
    pub force_conflicts: Option<bool>,
    /// A duration such as `90s`, `5m` or `1h30m`.
    pub api_wait_timeout: Option<String>,
    /// The `api_server` block.
    pub api_server: Option<ApiServerSettings>,
    /// Settings given explicitly whose values are not known yet (plan time).
    pub unknown: BTreeSet<Setting>,
}

/// A connection setting that cannot be used, with the setting it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending setting; `None` when the problem is the configuration as a whole.
    pub setting: Option<Setting>,
    /// For `exec`: the attribute inside the block (`command`, `api_version`, ...).
    pub nested: Option<&'static str>,
    /// Where the offending value came from.
    pub source: Source,
    /// What is wrong and what to do; never contains secret values.
    pub message: String,
}

impl ConfigError {
    fn new(setting: Setting, source: Source, message: impl Into<String>) -> Self {
        Self {
            setting: Some(setting),
            nested: None,
            source,
            message: message.into(),
        }
    }
    fn general(message: impl Into<String>) -> Self {
        Self {
            setting: None,
            nested: None,
            source: Source::Unset,
            message: message.into(),
        }
    }
    /// `host`, `exec.command` or `KUBE_HOST (environment variable)`: how a user finds the value.
    pub fn location(&self) -> Option<String> {
        let setting = self.setting?;
        Some(match (self.source, self.nested) {
            (Source::Env(var), _) => format!("{var} (environment variable)"),
            (_, Some(nested)) => format!("{}.{nested}", setting.name()),
            _ => setting.name().to_string(),
        })
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location() {
            Some(location) => write!(f, "{location}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Settings with environment fallbacks applied and the origin of every value recorded.
#[derive(Clone, Debug)]
pub struct Resolved {
    settings: Settings,
    sources: BTreeMap<Setting, Source>,
    /// `KUBERNETES_SERVICE_HOST` was set: the in-cluster service account is an option.
    in_cluster: bool,
    /// Environment values that could not be parsed.
    env_errors: Vec<ConfigError>,
}

impl Settings {
    /// Applies `KUBE_*` fallbacks from the process environment.
    pub fn resolve_from_process_env(self) -> Resolved {
        self.resolve(|name| std::env::var(name).ok())
    }

    /// Applies `KUBE_*` fallbacks from `env` (a lookup such as `std::env::var`), filling
    /// only settings that were neither given explicitly nor are unknown.
    pub fn resolve(mut self, env: impl Fn(&str) -> Option<String>) -> Resolved {
        let lookup = |setting: Setting| -> Option<(String, &'static str)> {
            let var = setting.env_var()?;
            env(var).filter(|v| !v.is_empty()).map(|v| (v, var))
        };
        let mut sources = BTreeMap::new();
        let mut env_errors = Vec::new();
        let unknown = self.unknown.clone();
        let explicit = |s: Setting, set: bool| {
            if unknown.contains(&s) {
                Source::Unknown
            } else if set {
                Source::Explicit
            } else {
                Source::Unset
            }
        };

        macro_rules! string_setting {
            ($field:ident, $setting:expr, $wrap:expr) => {{
                let source = explicit($setting, self.$field.is_some());
                let source = if source == Source::Unset {
                    match lookup($setting) {
                        Some((value, var)) => {
                            self.$field = Some($wrap(value));
                            Source::Env(var)
                        }
                        None => Source::Unset,
                    }
                } else {
                    source
                };
                sources.insert($setting, source);
            }};
        }

        // config_path and config_paths are one choice: anything explicit beats the env.
        let path_source = explicit(Setting::ConfigPath, self.config_path.is_some());
        let paths_source = explicit(Setting::ConfigPaths, !self.config_paths.is_empty());
        if path_source == Source::Unset && paths_source == Source::Unset {
            if let Some((value, var)) = lookup(Setting::ConfigPath) {
                self.config_path = Some(value);
                sources.insert(Setting::ConfigPath, Source::Env(var));
            } else if let Some((value, var)) = lookup(Setting::ConfigPaths) {
                self.config_paths = std::env::split_paths(&value)
                    .filter(|p| !p.as_os_str().is_empty())
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect();
                sources.insert(Setting::ConfigPaths, Source::Env(var));
            }
        }
        sources.entry(Setting::ConfigPath).or_insert(path_source);
        sources.entry(Setting::ConfigPaths).or_insert(paths_source);

        let same = |v: String| v;
        string_setting!(config_context, Setting::ConfigContext, same);
        string_setting!(
            config_context_auth_info,
            Setting::ConfigContextAuthInfo,
            same
        );
        string_setting!(config_context_cluster, Setting::ConfigContextCluster, same);
        string_setting!(host, Setting::Host, same);
        string_setting!(cluster_ca_certificate, Setting::ClusterCaCertificate, same);
        string_setting!(client_certificate, Setting::ClientCertificate, same);
        string_setting!(client_key, Setting::ClientKey, Secret::new);
        string_setting!(tls_server_name, Setting::TlsServerName, same);
        string_setting!(proxy_url, Setting::ProxyUrl, same);

        let exec_source = explicit(Setting::Exec, self.exec.is_some());
        sources.insert(Setting::Exec, exec_source);
        let token_source = explicit(Setting::Token, self.token.is_some());
        if token_source == Source::Unset && exec_source == Source::Unset {
            string_setting!(token, Setting::Token, Secret::new);
        } else {
            // An explicit exec block replaces a token that would only come from KUBE_TOKEN.
            sources.insert(Setting::Token, token_source);
        }

        let insecure_source = explicit(Setting::Insecure, self.insecure.is_some());
        let insecure_source = if insecure_source == Source::Unset {
            match lookup(Setting::Insecure) {
                Some((value, var)) => match parse_bool(&value) {
                    Some(b) => {
                        self.insecure = Some(b);
                        Source::Env(var)
                    }
                    None => {
                        env_errors.push(ConfigError::new(
                            Setting::Insecure,
                            Source::Env(var),
                            format!("\"{value}\" is not a boolean; use true or false"),
                        ));
                        Source::Unset
                    }
                },
                None => Source::Unset,
            }
        } else {
            insecure_source
        };
        sources.insert(Setting::Insecure, insecure_source);

        for s in [
            Setting::FieldManager,
            Setting::ForceConflicts,
            Setting::ApiWaitTimeout,
        ] {
            let set = match s {
                Setting::FieldManager => self.field_manager.is_some(),
                Setting::ForceConflicts => self.force_conflicts.is_some(),
                _ => self.api_wait_timeout.is_some(),
            };
            sources.insert(s, explicit(s, set));
        }

        // Kargo's API server: the block, with its variables as fallbacks; or the variables
        // alone, unless the Kubernetes connection is configured explicitly.
        let api_source = explicit(Setting::ApiServer, self.api_server.is_some());
        let kube_explicit = KUBE_CONNECTION
            .iter()
            .any(|s| matches!(sources.get(s), Some(Source::Explicit | Source::Unknown)));
        let from_env = |var: &'static str| env(var).filter(|v| !v.is_empty());
        let mut api_source = api_source;
        match api_source {
            Source::Explicit => {
                if let Some(api) = self.api_server.as_mut() {
                    api.fill_from(&from_env);
                }
            }
            Source::Unset if !kube_explicit => {
                if let Some(url) = from_env(API_URL_ENV) {
                    let mut api = ApiServerSettings {
                        url: Some(url),
                        url_source: Some(API_URL_ENV),
                        ..ApiServerSettings::default()
                    };
                    api.fill_from(&from_env);
                    self.api_server = Some(api);
                    api_source = Source::Env(API_URL_ENV);
                }
            }
            _ => {}
        }
        sources.insert(Setting::ApiServer, api_source);

        let in_cluster = env("KUBERNETES_SERVICE_HOST").is_some_and(|v| !v.is_empty());
        Resolved {
            settings: self,
            sources,
            in_cluster,
            env_errors,
        }
    }
}

impl ApiServerSettings {
    /// Fills what the block leaves unset from `KARGO_API_URL`, and the credentials from
    /// `KARGO_API_TOKEN` / `KARGO_ADMIN_PASSWORD` when the block names neither.
    fn fill_from(&mut self, env: &impl Fn(&'static str) -> Option<String>) {
        if self.url.is_none()
            && let Some(url) = env(API_URL_ENV)
        {
            self.url = Some(url);
            self.url_source = Some(API_URL_ENV);
        }
        if self.token.is_none() && self.admin_password.is_none() {
            if let Some(token) = env(API_TOKEN_ENV) {
                self.token = Some(Secret::new(token));
                self.token_source = Some(API_TOKEN_ENV);
            }
            if let Some(password) = env(ADMIN_PASSWORD_ENV) {
                self.admin_password = Some(Secret::new(password));
                self.admin_password_source = Some(ADMIN_PASSWORD_ENV);
            }
        }
    }
}

impl Resolved {
    /// True when the provider works through Kargo's API server (the `api_server` block or
    /// `KARGO_API_URL`), possibly not known yet.
    pub fn uses_api_server(&self) -> bool {
        self.settings.api_server.is_some() || self.is_unknown(Setting::ApiServer)
    }

    /// The `api_server` settings after environment fallbacks.
    pub fn api_server(&self) -> Option<&ApiServerSettings> {
        self.settings.api_server.as_ref()
    }

    /// The settings after environment fallbacks.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Where `setting`'s value came from.
    pub fn source(&self, setting: Setting) -> Source {
        self.sources.get(&setting).copied().unwrap_or(Source::Unset)
    }

    fn is_unknown(&self, setting: Setting) -> bool {
        self.source(setting) == Source::Unknown
    }

    /// True when no setting is waiting for a value that is only known at apply time.
    pub fn is_known(&self) -> bool {
        self.settings.unknown.is_empty()
    }

    /// Field manager for server-side apply.
    pub fn field_manager(&self) -> &str {
        self.settings
            .field_manager
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_FIELD_MANAGER)
    }

    /// Whether server-side apply takes ownership of conflicting fields.
    pub fn force_conflicts(&self) -> bool {
        self.settings.force_conflicts.unwrap_or(false)
    }

    /// How long an apply waits for the Kargo API; the default when unset or invalid
    /// (an invalid value is reported by [`Resolved::validate`]).
    pub fn api_wait_timeout(&self) -> Duration {
        self.settings
            .api_wait_timeout
            .as_deref()
            .and_then(|s| parse_duration(s).ok())
            .unwrap_or(DEFAULT_API_WAIT_TIMEOUT)
    }

    /// Kubeconfig files to read, in merge order, with `~` expanded.
    fn kubeconfig_paths(&self) -> (Vec<PathBuf>, Setting) {
        let expand = |p: &String| expand_home(p);
        if let Some(p) = &self.settings.config_path {
            return (vec![expand(p)], Setting::ConfigPath);
        }
        (
            self.settings.config_paths.iter().map(expand).collect(),
            Setting::ConfigPaths,
        )
    }

    /// Checks that need no file system or network: URLs, PEM data, combinations of
    /// settings, durations. Settings that are not known yet are skipped. Returns every
    /// problem found.
    pub fn validate(&self) -> Vec<ConfigError> {
        let s = &self.settings;
        let mut errors = self.env_errors.clone();
        let err = |setting: Setting, message: String| {
            ConfigError::new(setting, self.source(setting), message)
        };

        if self.source(Setting::ConfigPath) == Source::Explicit
            && self.source(Setting::ConfigPaths) == Source::Explicit
        {
            errors.push(err(
                Setting::ConfigPaths,
                "conflicts with config_path; set one of them (config_paths takes a list of files to merge)".into(),
            ));
        }
        if s.config_path
            .as_deref()
            .is_some_and(|v| v.trim().is_empty())
        {
            errors.push(err(Setting::ConfigPath, "must not be empty".into()));
        }
        if s.config_paths.iter().any(|p| p.trim().is_empty()) {
            errors.push(err(
                Setting::ConfigPaths,
                "must not contain empty paths".into(),
            ));
        }

        if let Some(host) = &s.host
            && let Err(problem) = parse_url(host, &["https", "http"])
        {
            errors.push(err(
                Setting::Host,
                format!("{problem}; expected the API server URL, e.g. https://203.0.113.10:6443"),
            ));
        }
        if let Some(proxy) = &s.proxy_url
            && let Err(problem) = parse_url(proxy, &["http", "https"])
        {
            errors.push(err(
                Setting::ProxyUrl,
                format!(
                    "{problem}; expected an HTTP(S) proxy URL, e.g. http://proxy.example.com:3128"
                ),
            ));
        }

        if let Some(pem) = &s.cluster_ca_certificate
            && let Err(problem) = parse_certificates(pem)
        {
            errors.push(err(Setting::ClusterCaCertificate, problem));
        }
        if let Some(pem) = &s.client_certificate
            && let Err(problem) = parse_certificates(pem)
        {
            errors.push(err(Setting::ClientCertificate, problem));
        }
        if let Some(key) = &s.client_key
            && let Err(problem) = check_private_key(key.expose())
        {
            errors.push(err(Setting::ClientKey, problem));
        }
        let cert_set =
            s.client_certificate.is_some() || self.is_unknown(Setting::ClientCertificate);
        let key_set = s.client_key.is_some() || self.is_unknown(Setting::ClientKey);
        if s.client_certificate.is_some() && !key_set {
            errors.push(err(
                Setting::ClientCertificate,
                "requires client_key (or KUBE_CLIENT_KEY_DATA): a client certificate cannot be used without its private key".into(),
            ));
        }
        if s.client_key.is_some() && !cert_set {
            errors.push(err(
                Setting::ClientKey,
                "requires client_certificate (or KUBE_CLIENT_CERT_DATA): a private key cannot be used without its certificate".into(),
            ));
        }

        // Only known values conflict: an unknown one may still turn out null at apply.
        if self.source(Setting::Token) == Source::Explicit
            && self.source(Setting::Exec) == Source::Explicit
        {
            errors.push(err(
                Setting::Token,
                "conflicts with exec: use either a static token or a credential plugin, not both"
                    .into(),
            ));
        }
        if let Some(exec) = &s.exec {
            if exec.command.trim().is_empty() {
                errors.push(ConfigError {
                    nested: Some("command"),
                    ..err(
                        Setting::Exec,
                        "must name the credential plugin to run".into(),
                    )
                });
            }
            if !exec.api_version.is_empty()
                && !EXEC_API_VERSIONS.contains(&exec.api_version.as_str())
            {
                errors.push(ConfigError {
                    nested: Some("api_version"),
                    ..err(
                        Setting::Exec,
                        format!(
                            "\"{}\" is not supported; use {}",
                            exec.api_version,
                            EXEC_API_VERSIONS.join(" or ")
                        ),
                    )
                });
            }
        }

        if let Some(fm) = &s.field_manager
            && (fm.trim().is_empty() || fm.len() > 128)
        {
            errors.push(err(
                Setting::FieldManager,
                "must be between 1 and 128 characters".into(),
            ));
        }
        if let Some(timeout) = &s.api_wait_timeout
            && let Err(problem) = parse_duration(timeout)
        {
            errors.push(err(Setting::ApiWaitTimeout, problem));
        }
        errors.extend(self.validate_api_server());
        errors
    }

    /// The `api_server` block's checks: not beside the Kubernetes settings, a URL, exactly
    /// one way to authenticate, usable PEM.
    fn validate_api_server(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let source = self.source(Setting::ApiServer);
        if source == Source::Unset {
            return errors;
        }
        let kube: Vec<&str> = KUBE_CONNECTION
            .iter()
            .filter(|s| self.source(**s) != Source::Unset)
            .map(|s| s.name())
            .collect();
        let block = |nested: Option<&'static str>, message: String| ConfigError {
            nested,
            ..ConfigError::new(Setting::ApiServer, source, message)
        };
        // Only known values conflict: an unknown one may still turn out null at apply.
        match source {
            Source::Explicit => {
                let explicit: Vec<&str> = KUBE_CONNECTION
                    .iter()
                    .filter(|s| self.source(**s) == Source::Explicit)
                    .map(|s| s.name())
                    .collect();
                if !explicit.is_empty() {
                    errors.push(block(
                        None,
                        format!(
                            "conflicts with {}: the provider connects either through Kargo's API \
                             server (api_server) or through the Kubernetes API, not both; remove one",
                            explicit.join(", ")
                        ),
                    ));
                }
            }
            Source::Env(_) if !kube.is_empty() => {
                let vars: Vec<&str> = KUBE_CONNECTION
                    .iter()
                    .filter_map(|s| match self.source(*s) {
                        Source::Env(var) => Some(var),
                        _ => None,
                    })
                    .collect();
                errors.push(ConfigError::general(format!(
                    "both {API_URL_ENV} (Kargo's API server) and {} (the Kubernetes API) are set: \
                     the provider connects through one of them; unset one, or configure the \
                     connection in the provider block",
                    vars.join(", ")
                )));
            }
            _ => {}
        }
        let Some(api) = &self.settings.api_server else {
            return errors;
        };
        // A value taken from its environment variable is reported as that variable, not as
        // an attribute of the block the user did not write.
        let value = |nested: &'static str, var: Option<&'static str>, message: String| match var {
            Some(var) => ConfigError::new(Setting::ApiServer, Source::Env(var), message),
            None => block(Some(nested), message),
        };
        match &api.url {
            None => errors.push(block(
                Some("url"),
                format!(
                    "is required: the URL of Kargo's API server, e.g. https://kargo.example.com \
                     (or set {API_URL_ENV})"
                ),
            )),
            Some(url) => {
                if let Err(problem) = parse_url(url, &["https", "http"]) {
                    errors.push(value(
                        "url",
                        api.url_source,
                        format!(
                            "{problem}; expected the URL of Kargo's API server, e.g. https://kargo.example.com"
                        ),
                    ));
                }
            }
        }
        match (&api.token, &api.admin_password) {
            // Both come from the block, or both from the environment (the variables only
            // fill a block that names neither).
            (Some(_), Some(_)) if api.admin_password_source.is_some() => errors.push(value(
                "admin_password",
                api.admin_password_source,
                format!(
                    "conflicts with {API_TOKEN_ENV}: authenticate either with a token or with the \
                     admin password; unset one of them"
                ),
            )),
            (Some(_), Some(_)) => errors.push(block(
                Some("admin_password"),
                "conflicts with token: authenticate either with a token or with the admin password"
                    .into(),
            )),
            (None, None) if matches!(source, Source::Env(_)) => errors.push(block(
                None,
                format!(
                    "needs {API_TOKEN_ENV} (a Kargo API token) or {ADMIN_PASSWORD_ENV} (the admin \
                     account's password) to authenticate to Kargo's API server"
                ),
            )),
            (None, None) if source != Source::Unknown => errors.push(block(
                Some("token"),
                format!(
                    "a token or admin_password is required: a Kargo API token (token, or \
                     {API_TOKEN_ENV}), or the admin account's password (admin_password, or \
                     {ADMIN_PASSWORD_ENV})"
                ),
            )),
            _ => {}
        }
        if let Some(pem) = &api.ca_certificate
            && let Err(problem) = parse_certificates(pem)
        {
            errors.push(block(Some("ca_certificate"), problem));
        }
        errors
    }

    /// A short description of where the connection comes from, safe to log (no secrets).
    pub fn describe(&self) -> String {
        if let Some(api) = &self.settings.api_server {
            let auth = if api.token.is_some() {
                "token"
            } else {
                "admin password"
            };
            return format!(
                "Kargo API server {} ({auth})",
                redact_userinfo(api.url.as_deref().unwrap_or_default())
            );
        }
        let (paths, _) = self.kubeconfig_paths();
        let mut parts = Vec::new();
        if !paths.is_empty() {
            let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            parts.push(format!("kubeconfig {}", list.join(", ")));
            if let Some(ctx) = &self.settings.config_context {
                parts.push(format!("context {ctx}"));
            }
        }
        if let Some(host) = &self.settings.host {
            parts.push(format!("host {}", redact_userinfo(host)));
        }
        if self.settings.exec.is_some() {
            parts.push("exec credential plugin".into());
        } else if self.settings.token.is_some() {
            parts.push("bearer token".into());
        }
        if self.settings.client_certificate.is_some() {
            parts.push("client certificate".into());
        }
        if parts.is_empty() {
            parts.push(if self.in_cluster {
                "in-cluster service account".into()
            } else {
                "nothing configured".into()
            });
        }
        parts.join("; ")
    }

    /// Builds the kube-rs configuration: validates, reads and merges the kubeconfig files,
    /// selects the context, then applies explicit overrides. Reads files but never
    /// connects to the cluster.
    pub fn kube_config(&self) -> Result<kube::Config, ConfigError> {
        if !self.is_known() {
            let names: Vec<&str> = self.settings.unknown.iter().map(|s| s.name()).collect();
            return Err(ConfigError::general(format!(
                "the provider configuration is not known yet ({} depend on values known only after apply)",
                names.join(", ")
            )));
        }
        if let Some(first) = self.validate().into_iter().next() {
            return Err(first);
        }
        let s = &self.settings;
        let (paths, path_setting) = self.kubeconfig_paths();
        let mut config = if !paths.is_empty() {
            self.config_from_kubeconfig(&paths, path_setting)?
        } else if let Some(host) = &s.host {
            let uri = parse_url(host, &["https", "http"])
                .map_err(|p| ConfigError::new(Setting::Host, self.source(Setting::Host), p))?;
            kube::Config::new(uri)
        } else if !self.in_cluster
            && (s.token.is_some()
                || s.exec.is_some()
                || s.client_certificate.is_some()
                || s.cluster_ca_certificate.is_some())
        {
            return Err(ConfigError::new(
                Setting::Host,
                self.source(Setting::Host),
                "is required when no kubeconfig is configured: credentials and certificates alone do not say which \
                 API server to reach; set host (or KUBE_HOST), or config_path (or KUBE_CONFIG_PATH)",
            ));
        } else if self.in_cluster {
            kube::Config::incluster().map_err(|e| {
                ConfigError::general(format!(
                    "KUBERNETES_SERVICE_HOST is set but the in-cluster service account configuration could not be loaded: {e}. {}",
                    HOW_TO_CONFIGURE
                ))
            })?
        } else {
            return Err(ConfigError::general(format!(
                "no Kubernetes cluster is configured for the kargo provider. {HOW_TO_CONFIGURE}"
            )));
        };
        self.apply_overrides(&mut config)?;
        Ok(config)
    }

    fn config_from_kubeconfig(
        &self,
        paths: &[PathBuf],
        setting: Setting,
    ) -> Result<kube::Config, ConfigError> {
        let source = self.source(setting);
        let mut merged: Option<Kubeconfig> = None;
        for path in paths {
            if !path.exists() {
                return Err(ConfigError::new(
                    setting,
                    source,
                    format!("kubeconfig file \"{}\" does not exist", path.display()),
                ));
            }
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| kubeconfig_read_error(e, path, setting, source))?;
            merged = Some(match merged {
                None => kc,
                Some(m) => m.merge(kc).map_err(|e| {
                    ConfigError::new(
                        setting,
                        source,
                        format!("kubeconfig files cannot be merged: {e}"),
                    )
                })?,
            });
        }
        let mut kc = merged.unwrap_or_default();
        let files = paths
            .iter()
            .map(|p| format!("\"{}\"", p.display()))
            .collect::<Vec<_>>()
            .join(", ");

        let context_name = match &self.settings.config_context {
            Some(name) => name.clone(),
            None => match &kc.current_context {
                Some(name) if !name.is_empty() => name.clone(),
                _ => {
                    return Err(ConfigError::new(
                        Setting::ConfigContext,
                        self.source(Setting::ConfigContext),
                        format!(
                            "the kubeconfig ({files}) has no current-context; set config_context to one of: {}",
                            list_or_none(kc.contexts.iter().map(|c| c.name.as_str()))
                        ),
                    ));
                }
            },
        };
        let available = list_or_none(kc.contexts.iter().map(|c| c.name.as_str()));
        let cluster_names = list_or_none(kc.clusters.iter().map(|c| c.name.as_str()));
        let user_names = list_or_none(kc.auth_infos.iter().map(|c| c.name.as_str()));
        let Some(named) = kc.contexts.iter_mut().find(|c| c.name == context_name) else {
            return Err(ConfigError::new(
                Setting::ConfigContext,
                self.source(Setting::ConfigContext),
                format!(
                    "context \"{context_name}\" is not in the kubeconfig ({files}); available contexts: {available}"
                ),
            ));
        };
        let Some(context) = named.context.as_mut() else {
            return Err(ConfigError::new(
                Setting::ConfigContext,
                self.source(Setting::ConfigContext),
                format!("context \"{context_name}\" in the kubeconfig ({files}) is empty"),
            ));
        };
        // Overriding the context's cluster/user in place is what KubeConfigOptions does; doing
        // it here lets every lookup failure name the available alternatives.
        if let Some(cluster) = &self.settings.config_context_cluster {
            context.cluster = cluster.clone();
        }
        if let Some(user) = &self.settings.config_context_auth_info {
            context.user = Some(user.clone());
        }
        let cluster_name = context.cluster.clone();
        let user_name = context.user.clone();
        if !kc.clusters.iter().any(|c| c.name == cluster_name) {
            let (setting, src) = match &self.settings.config_context_cluster {
                Some(_) => (
                    Setting::ConfigContextCluster,
                    self.source(Setting::ConfigContextCluster),
                ),
                None => (Setting::ConfigContext, self.source(Setting::ConfigContext)),
            };
            return Err(ConfigError::new(
                setting,
                src,
                format!(
                    "cluster \"{cluster_name}\" is not in the kubeconfig ({files}); available clusters: {cluster_names}"
                ),
            ));
        }
        if let Some(user) = &user_name
            && self.settings.config_context_auth_info.is_some()
            && !kc.auth_infos.iter().any(|u| &u.name == user)
        {
            return Err(ConfigError::new(
                Setting::ConfigContextAuthInfo,
                self.source(Setting::ConfigContextAuthInfo),
                format!(
                    "user \"{user}\" is not in the kubeconfig ({files}); available users: {user_names}"
                ),
            ));
        }
        kc.current_context = Some(context_name.clone());
        kube::Config::try_from(kc).map_err(|e| {
            ConfigError::new(
                setting,
                source,
                format!(
                    "context \"{context_name}\" of the kubeconfig ({files}) cannot be used: {}",
                    kubeconfig_error_text(&e)
                ),
            )
        })
    }

    fn apply_overrides(&self, config: &mut kube::Config) -> Result<(), ConfigError> {
        let s = &self.settings;
        let b64 = base64::engine::general_purpose::STANDARD;
        if let Some(host) = &s.host {
            config.cluster_url = parse_url(host, &["https", "http"])
                .map_err(|p| ConfigError::new(Setting::Host, self.source(Setting::Host), p))?;
        }
        if let Some(pem) = &s.cluster_ca_certificate {
            let certs = parse_certificates(pem).map_err(|p| {
                ConfigError::new(
                    Setting::ClusterCaCertificate,
                    self.source(Setting::ClusterCaCertificate),
                    p,
                )
            })?;
            config.root_cert = Some(certs);
            // The in-cluster CA file would otherwise take precedence over the explicit CA.
            config.root_cert_file = None;
        }
        if let (Some(cert), Some(key)) = (&s.client_certificate, &s.client_key) {
            config.auth_info.client_certificate_data = Some(b64.encode(cert.as_bytes()));
            config.auth_info.client_key_data = Some(b64.encode(key.expose().as_bytes()).into());
            config.auth_info.client_certificate = None;
            config.auth_info.client_key = None;
        }
        if let Some(token) = &s.token {
            clear_credentials(&mut config.auth_info);
            config.auth_info.token = Some(token.expose().to_string().into());
        }
        if let Some(exec) = &s.exec {
            clear_credentials(&mut config.auth_info);
            config.auth_info.exec = Some(ExecConfig {
                api_version: Some(exec.api_version.clone()),
                command: Some(exec.command.clone()),
                args: (!exec.args.is_empty()).then(|| exec.args.clone()),
                env: (!exec.env.is_empty()).then(|| {
                    exec.env
                        .iter()
                        .map(|(k, v)| {
                            [
                                ("name".to_string(), k.clone()),
                                ("value".to_string(), v.clone()),
                            ]
                            .into()
                        })
                        .collect()
                }),
                // Terraform owns the terminal; a prompting plugin would hang the run.
                interactive_mode: Some(ExecInteractiveMode::Never),
                ..Default::default()
            });
        }
        if let Some(insecure) = s.insecure {
            config.accept_invalid_certs = insecure;
        }
        if let Some(name) = &s.tls_server_name {
            config.tls_server_name = Some(name.clone());
        }
        if let Some(proxy) = &s.proxy_url {
            config.proxy_url = Some(parse_url(proxy, &["http", "https"]).map_err(|p| {
                ConfigError::new(Setting::ProxyUrl, self.source(Setting::ProxyUrl), p)
            })?);
        }
        Ok(())
    }
}

const HOW_TO_CONFIGURE: &str = "Configure the connection in the provider block (or the matching environment variables): \
config_path / config_paths (KUBE_CONFIG_PATH / KUBE_CONFIG_PATHS) with optional config_context (KUBE_CTX); \
or host (KUBE_HOST) with cluster_ca_certificate (KUBE_CLUSTER_CA_CERT_DATA) and credentials: token (KUBE_TOKEN), \
client_certificate + client_key (KUBE_CLIENT_CERT_DATA + KUBE_CLIENT_KEY_DATA) or an exec block; \
or run the provider inside a pod so the in-cluster service account is used; \
or, to work through Kargo's own API server, an api_server block with url and token or admin_password \
(KARGO_API_URL with KARGO_API_TOKEN or KARGO_ADMIN_PASSWORD). \
KUBECONFIG and ~/.kube/config are not read unless named in config_path.";

/// Removes every way the kubeconfig user could authenticate other than client certificates,
/// so an explicit token or exec plugin is the one used.
fn clear_credentials(auth: &mut kube::config::AuthInfo) {
    auth.token = None;
    auth.token_file = None;
    auth.exec = None;
    auth.auth_provider = None;
    auth.username = None;
    auth.password = None;
}

fn list_or_none<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("\"{n}\"")).collect();
    if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    }
}

/// Kubeconfig errors, without anything that could quote the file's content (parser
/// snippets may include a line holding a token or key).
fn kubeconfig_error_text(err: &kube::config::KubeconfigError) -> String {
    use kube::config::KubeconfigError as K;
    match err {
        K::Parse(e) => match e.location() {
            Some(loc) => format!(
                "not valid kubeconfig YAML (error at line {}, column {})",
                loc.line(),
                loc.column()
            ),
            None => "not valid kubeconfig YAML".to_string(),
        },
        K::LoadClientKey(_) => "the user's client key could not be loaded".to_string(),
        other => chain_text(other),
    }
}

fn kubeconfig_read_error(
    err: kube::config::KubeconfigError,
    path: &std::path::Path,
    setting: Setting,
    source: Source,
) -> ConfigError {
    let text = match &err {
        kube::config::KubeconfigError::ReadConfig(io, _) => format!("cannot be read: {io}"),
        other => kubeconfig_error_text(other),
    };
    ConfigError::new(
        setting,
        source,
        format!("kubeconfig file \"{}\" {text}", path.display()),
    )
}

fn expand_home(path: &str) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    PathBuf::from(path)
}

/// Parses a boolean the way Go's `strconv.ParseBool` does, as the Kubernetes provider's
/// environment variables are read.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Parses a duration such as `300ms`, `90s`, `5m`, `1h30m` or `1.5h` (Go's notation).
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    parse_go_duration(value.trim()).ok_or_else(|| {
        format!("\"{value}\" is not a duration; use a number with a unit, e.g. 90s, 5m or 1h30m")
    })
}

/// Parses an absolute URL whose scheme is one of `schemes`. Messages never repeat the
/// URL's user-info part (it may hold a password).
fn parse_url(value: &str, schemes: &[&str]) -> Result<http::Uri, String> {
    let shown = shown_url(value);
    let uri: http::Uri = value
        .trim()
        .parse()
        .map_err(|_| format!("\"{shown}\" is not a valid URL"))?;
    let Some(scheme) = uri.scheme_str() else {
        return Err(format!("\"{shown}\" has no scheme ({}://...)", schemes[0]));
    };
    if !schemes.contains(&scheme) {
        return Err(format!(
            "\"{shown}\" uses scheme \"{scheme}\"; supported: {}",
            schemes.join(", ")
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("\"{shown}\" has no host"));
    }
    Ok(uri)
}

/// `value` as a message may show it: without its user-info part, also when the scheme is
/// missing (`user:password@host` is a common slip).
fn shown_url(value: &str) -> String {
    if value.contains("://") {
        return redact_userinfo(value);
    }
    let authority_end = value.find(['/', '?', '#']).unwrap_or(value.len());
    match value[..authority_end].rfind('@') {
        Some(at) => format!("***{}", &value[at..]),
        None => value.to_string(),
    }
}

/// Parses PEM certificates into DER. Messages never quote the input.
fn parse_certificates(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        match item {
            // A DER certificate is an ASN.1 SEQUENCE; anything else is garbage between markers.
            Ok(der) if der.first() == Some(&0x30) && der.len() > 16 => certs.push(der.to_vec()),
            Ok(_) => {
                return Err(
                    "contains a CERTIFICATE block that is not a valid DER certificate".into(),
                );
            }
            Err(_) => {
                return Err("is not valid PEM: a -----BEGIN CERTIFICATE----- block is malformed or not base64".into());
            }
        }
    }
    if certs.is_empty() {
        return Err(format!(
            "contains no PEM certificate (expected -----BEGIN CERTIFICATE-----){}",
            base64_hint(pem)
        ));
    }
    Ok(certs)
}

/// Checks a PEM private key. Messages never quote the input.
fn check_private_key(pem: &str) -> Result<(), String> {
    match PrivateKeyDer::from_pem_slice(pem.as_bytes()) {
        Ok(_) => Ok(()),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => Err(format!(
            "contains no PEM private key (expected -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY){}",
            base64_hint(pem)
        )),
        Err(_) => {
            Err("is not a valid PEM private key: the key block is malformed or not base64".into())
        }
    }
}

/// A hint for the common mistake of passing kubeconfig's base64 `*-data` value as is.
fn base64_hint(text: &str) -> &'static str {
    let compact: String = text.split_whitespace().collect();
    let decodes_to_pem = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .is_ok_and(|bytes| bytes.windows(10).any(|w| w == b"-----BEGIN"));
    if decodes_to_pem {
        "; the value looks base64-encoded: decode it first (e.g. with base64decode())"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "5", "m", "5 minutes", "-1s", "5x", "1h-3m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn booleans_like_go() {
        assert_eq!(parse_bool("true"), Some(true));
        assert_eq!(parse_bool("1"), Some(true));
        assert_eq!(parse_bool("F"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("abc123");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(s.expose(), "abc123");
    }

    // ---- Kargo's API server -------------------------------------------------------------

    const TOKEN: &str = "kargo-token-c2VjcmV0";
    const PASSWORD: &str = "admin-pw-hunter2";

    fn fake_env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    fn with_block(api: ApiServerSettings) -> Settings {
        Settings {
            api_server: Some(api),
            ..Settings::default()
        }
    }

    fn block(url: &str, token: Option<&str>, password: Option<&str>) -> ApiServerSettings {
        ApiServerSettings {
            url: Some(url.to_string()),
            token: token.map(Secret::from),
            admin_password: password.map(Secret::from),
            ..ApiServerSettings::default()
        }
    }

    /// The only error `validate` reports, as (location, message).
    fn only_error(resolved: &Resolved) -> (Option<String>, String) {
        let errors = resolved.validate();
        assert_eq!(errors.len(), 1, "expected one error, got {errors:?}");
        (errors[0].location(), errors[0].message.clone())
    }

    #[test]
    fn kargo_api_url_alone_selects_the_api_server() {
        let resolved = Settings::default().resolve(fake_env(&[
            (API_URL_ENV, "https://kargo.example.com"),
            (API_TOKEN_ENV, TOKEN),
        ]));
        assert!(resolved.uses_api_server());
        assert_eq!(
            resolved.source(Setting::ApiServer),
            Source::Env(API_URL_ENV)
        );
        let api = resolved.api_server().unwrap();
        assert_eq!(api.url.as_deref(), Some("https://kargo.example.com"));
        assert_eq!(api.url_source, Some(API_URL_ENV));
        assert_eq!(api.token.as_ref().map(Secret::expose), Some(TOKEN));
        assert_eq!(api.token_source, Some(API_TOKEN_ENV));
        assert!(api.admin_password.is_none());
        assert_eq!(resolved.validate(), vec![]);

        // The admin password works the same way.
        let resolved = Settings::default().resolve(fake_env(&[
            (API_URL_ENV, "https://kargo.example.com"),
            (ADMIN_PASSWORD_ENV, PASSWORD),
        ]));
        let api = resolved.api_server().unwrap();
        assert_eq!(
            api.admin_password.as_ref().map(Secret::expose),
            Some(PASSWORD)
        );
        assert_eq!(api.admin_password_source, Some(ADMIN_PASSWORD_ENV));
        assert_eq!(resolved.validate(), vec![]);

        // Credentials alone choose nothing.
        let resolved = Settings::default().resolve(fake_env(&[(API_TOKEN_ENV, TOKEN)]));
        assert!(!resolved.uses_api_server());
        assert_eq!(resolved.source(Setting::ApiServer), Source::Unset);
    }

    #[test]
    fn block_attributes_win_over_the_kargo_variables() {
        let env = fake_env(&[
            (API_URL_ENV, "https://env.example.com"),
            (API_TOKEN_ENV, "env-token"),
            (ADMIN_PASSWORD_ENV, "env-password"),
        ]);
        let resolved =
            with_block(block("https://block.example.com", Some(TOKEN), None)).resolve(&env);
        assert_eq!(resolved.source(Setting::ApiServer), Source::Explicit);
        let api = resolved.api_server().unwrap();
        assert_eq!(api.url.as_deref(), Some("https://block.example.com"));
        assert_eq!(api.url_source, None);
        assert_eq!(api.token.as_ref().map(Secret::expose), Some(TOKEN));
        assert_eq!(api.token_source, None);
        // The block names a credential: neither variable is read.
        assert!(api.admin_password.is_none(), "{api:?}");
        assert_eq!(resolved.validate(), vec![]);

        // A block naming the admin password does not pick up KARGO_API_TOKEN either.
        let resolved =
            with_block(block("https://block.example.com", None, Some(PASSWORD))).resolve(&env);
        let api = resolved.api_server().unwrap();
        assert!(api.token.is_none(), "{api:?}");
        assert_eq!(
            api.admin_password.as_ref().map(Secret::expose),
            Some(PASSWORD)
        );
        assert_eq!(resolved.validate(), vec![]);

        // An empty block takes the URL and the token from the environment.
        let resolved = with_block(ApiServerSettings::default()).resolve(fake_env(&[
            (API_URL_ENV, "https://env.example.com"),
            (API_TOKEN_ENV, "env-token"),
        ]));
        let api = resolved.api_server().unwrap();
        assert_eq!(api.url.as_deref(), Some("https://env.example.com"));
        assert_eq!(api.url_source, Some(API_URL_ENV));
        assert_eq!(api.token.as_ref().map(Secret::expose), Some("env-token"));
        assert_eq!(api.token_source, Some(API_TOKEN_ENV));
        assert_eq!(resolved.source(Setting::ApiServer), Source::Explicit);
        assert_eq!(resolved.validate(), vec![]);
    }

    #[test]
    fn api_server_block_beside_kubernetes_settings_is_an_error_on_the_block() {
        let settings = Settings {
            config_path: Some("/etc/kubeconfig".into()),
            host: Some("https://203.0.113.10:6443".into()),
            ..with_block(block("https://kargo.example.com", Some(TOKEN), None))
        };
        let resolved = settings.resolve(fake_env(&[]));
        let errors = resolved.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].setting, Some(Setting::ApiServer));
        assert_eq!(errors[0].nested, None);
        assert_eq!(errors[0].source, Source::Explicit);
        assert_eq!(errors[0].location().as_deref(), Some("api_server"));
        assert_eq!(
            errors[0].message,
            "conflicts with config_path, host: the provider connects either through Kargo's API \
             server (api_server) or through the Kubernetes API, not both; remove one"
        );

        // A Kubernetes setting not known yet conflicts with nothing: it may turn out null.
        let mut settings = with_block(block("https://kargo.example.com", Some(TOKEN), None));
        settings.unknown.insert(Setting::Exec);
        assert_eq!(settings.resolve(fake_env(&[])).validate(), vec![]);

        // KUBE_* variables do not count against an explicit block: the block chooses.
        let resolved = with_block(block("https://kargo.example.com", Some(TOKEN), None))
            .resolve(fake_env(&[("KUBE_CONFIG_PATH", "/etc/kubeconfig")]));
        assert_eq!(resolved.validate(), vec![]);
        assert!(resolved.uses_api_server());
    }

    #[test]
    fn both_transports_in_the_environment_is_a_general_error() {
        let resolved = Settings::default().resolve(fake_env(&[
            (API_URL_ENV, "https://kargo.example.com"),
            (API_TOKEN_ENV, TOKEN),
            ("KUBE_CONFIG_PATH", "/etc/kubeconfig"),
            ("KUBE_TOKEN", "kube-token"),
        ]));
        let errors = resolved.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].setting, None);
        assert_eq!(errors[0].location(), None);
        assert_eq!(
            errors[0].to_string(),
            "both KARGO_API_URL (Kargo's API server) and KUBE_CONFIG_PATH, KUBE_TOKEN (the \
             Kubernetes API) are set: the provider connects through one of them; unset one, or \
             configure the connection in the provider block"
        );
    }

    #[test]
    fn explicit_kubernetes_settings_win_over_kargo_api_url() {
        let settings = Settings {
            config_path: Some("/etc/kubeconfig".into()),
            ..Settings::default()
        };
        let resolved = settings.resolve(fake_env(&[
            (API_URL_ENV, "https://kargo.example.com"),
            (API_TOKEN_ENV, TOKEN),
        ]));
        assert!(!resolved.uses_api_server());
        assert!(resolved.api_server().is_none());
        assert_eq!(resolved.source(Setting::ApiServer), Source::Unset);
        assert_eq!(resolved.validate(), vec![]);
        assert_eq!(resolved.describe(), "kubeconfig /etc/kubeconfig");
    }

    #[test]
    fn nothing_configured_names_the_api_server_too() {
        let resolved = Settings::default().resolve(fake_env(&[]));
        assert!(!resolved.uses_api_server());
        assert_eq!(resolved.validate(), vec![]);
        let err = resolved.kube_config().unwrap_err();
        assert_eq!(err.location(), None);
        assert!(
            err.message
                .starts_with("no Kubernetes cluster is configured for the kargo provider. "),
            "{err}"
        );
        assert!(
            err.message.contains(
                "or, to work through Kargo's own API server, an api_server block with url and \
                 token or admin_password (KARGO_API_URL with KARGO_API_TOKEN or \
                 KARGO_ADMIN_PASSWORD)"
            ),
            "{err}"
        );
    }

    #[test]
    fn api_server_needs_a_url() {
        let resolved = with_block(ApiServerSettings {
            token: Some(Secret::from(TOKEN)),
            ..ApiServerSettings::default()
        })
        .resolve(fake_env(&[]));
        let errors = resolved.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].nested, Some("url"));
        assert_eq!(errors[0].location().as_deref(), Some("api_server.url"));
        assert_eq!(
            errors[0].message,
            "is required: the URL of Kargo's API server, e.g. https://kargo.example.com (or set \
             KARGO_API_URL)"
        );

        let (location, message) = only_error(
            &with_block(block("kargo.example.com", Some(TOKEN), None)).resolve(fake_env(&[])),
        );
        assert_eq!(location.as_deref(), Some("api_server.url"));
        assert_eq!(
            message,
            "\"kargo.example.com\" has no scheme (https://...); expected the URL of Kargo's API \
             server, e.g. https://kargo.example.com"
        );
    }

    #[test]
    fn an_unusable_kargo_api_url_is_reported_as_the_variable() {
        // The block leaves url to the environment: the problem is the variable's value.
        let (location, message) = only_error(
            &with_block(ApiServerSettings {
                token: Some(Secret::from(TOKEN)),
                ..ApiServerSettings::default()
            })
            .resolve(fake_env(&[(API_URL_ENV, "ftp://kargo.example.com")])),
        );
        assert_eq!(
            location.as_deref(),
            Some("KARGO_API_URL (environment variable)")
        );
        assert_eq!(
            message,
            "\"ftp://kargo.example.com\" uses scheme \"ftp\"; supported: https, http; expected \
             the URL of Kargo's API server, e.g. https://kargo.example.com"
        );
        // A URL with credentials in it is never repeated whole, with a scheme or without.
        let (_, message) = only_error(&Settings::default().resolve(fake_env(&[
            (API_URL_ENV, "kargo:hunter2@kargo.example.com"),
            (API_TOKEN_ENV, TOKEN),
        ])));
        assert_eq!(
            message,
            "\"***@kargo.example.com\" has no scheme (https://...); expected the URL of Kargo's \
             API server, e.g. https://kargo.example.com"
        );
        let (_, message) = only_error(&Settings::default().resolve(fake_env(&[
            (API_URL_ENV, "ftp://kargo:hunter2@kargo.example.com/kargo"),
            (API_TOKEN_ENV, TOKEN),
        ])));
        assert!(
            message.starts_with("\"ftp://***@kargo.example.com/kargo\" uses scheme \"ftp\""),
            "{message}"
        );
    }

    #[test]
    fn token_and_admin_password_conflict() {
        let resolved = with_block(block(
            "https://kargo.example.com",
            Some(TOKEN),
            Some(PASSWORD),
        ))
        .resolve(fake_env(&[]));
        let errors = resolved.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].source, Source::Explicit);
        assert_eq!(
            errors[0].to_string(),
            "api_server.admin_password: conflicts with token: authenticate either with a token or \
             with the admin password"
        );

        // Both from the environment: the variables are named, not the block's attributes.
        let both = [(API_TOKEN_ENV, TOKEN), (ADMIN_PASSWORD_ENV, PASSWORD)];
        for settings in [
            Settings::default(),
            with_block(ApiServerSettings::default()),
        ] {
            let mut vars = both.to_vec();
            vars.push((API_URL_ENV, "https://kargo.example.com"));
            let errors = settings.resolve(fake_env(&vars)).validate();
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].source, Source::Env(ADMIN_PASSWORD_ENV));
            assert_eq!(
                errors[0].to_string(),
                "KARGO_ADMIN_PASSWORD (environment variable): conflicts with KARGO_API_TOKEN: \
                 authenticate either with a token or with the admin password; unset one of them"
            );
        }
    }

    #[test]
    fn api_server_needs_a_credential() {
        let errors = with_block(block("https://kargo.example.com", None, None))
            .resolve(fake_env(&[]))
            .validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].nested, Some("token"));
        assert_eq!(
            errors[0].to_string(),
            "api_server.token: a token or admin_password is required: a Kargo API token (token, \
             or KARGO_API_TOKEN), or the admin account's password (admin_password, or \
             KARGO_ADMIN_PASSWORD)"
        );

        let errors = Settings::default()
            .resolve(fake_env(&[(API_URL_ENV, "https://kargo.example.com")]))
            .validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].source, Source::Env(API_URL_ENV));
        assert_eq!(
            errors[0].to_string(),
            "KARGO_API_URL (environment variable): needs KARGO_API_TOKEN (a Kargo API token) or \
             KARGO_ADMIN_PASSWORD (the admin account's password) to authenticate to Kargo's API \
             server"
        );
    }

    #[test]
    fn api_server_ca_certificate_must_be_pem() {
        let mut api = block("https://kargo.example.com", Some(TOKEN), None);
        api.ca_certificate = Some("not a certificate".into());
        let (location, message) = only_error(&with_block(api.clone()).resolve(fake_env(&[])));
        assert_eq!(location.as_deref(), Some("api_server.ca_certificate"));
        assert_eq!(
            message,
            "contains no PEM certificate (expected -----BEGIN CERTIFICATE-----)"
        );

        let pem = rcgen::generate_simple_self_signed(vec!["kargo.example.com".to_string()])
            .unwrap()
            .cert
            .pem();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&pem);
        api.ca_certificate = Some(encoded);
        let (_, message) = only_error(&with_block(api.clone()).resolve(fake_env(&[])));
        assert!(
            message.ends_with(
                "the value looks base64-encoded: decode it first (e.g. with base64decode())"
            ),
            "{message}"
        );

        api.ca_certificate = Some(pem);
        assert_eq!(with_block(api).resolve(fake_env(&[])).validate(), vec![]);
    }

    #[test]
    fn an_unknown_api_server_block_waits_for_apply() {
        let mut settings = Settings::default();
        settings.unknown.insert(Setting::ApiServer);
        let resolved = settings.resolve(fake_env(&[
            (API_URL_ENV, "https://kargo.example.com"),
            (API_TOKEN_ENV, TOKEN),
        ]));
        assert_eq!(resolved.source(Setting::ApiServer), Source::Unknown);
        assert!(resolved.uses_api_server());
        assert!(!resolved.is_known());
        // The variables do not stand in for a block that is only known at apply.
        assert!(resolved.api_server().is_none());
        assert_eq!(resolved.validate(), vec![]);
    }

    #[test]
    fn describe_never_shows_api_server_secrets() {
        let resolved = with_block(block(
            "https://terraform:hunter2@kargo.example.com/kargo",
            Some(TOKEN),
            None,
        ))
        .resolve(fake_env(&[]));
        assert_eq!(
            resolved.describe(),
            "Kargo API server https://***@kargo.example.com/kargo (token)"
        );
        let resolved = Settings::default().resolve(fake_env(&[
            (API_URL_ENV, "https://kargo.example.com"),
            (ADMIN_PASSWORD_ENV, PASSWORD),
        ]));
        let text = format!("{} {resolved:?}", resolved.describe());
        assert!(
            text.starts_with("Kargo API server https://kargo.example.com (admin password) "),
            "{text}"
        );
        for secret in [TOKEN, PASSWORD, "hunter2"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn urls() {
        assert!(parse_url("https://10.0.0.1:6443", &["https", "http"]).is_ok());
        assert!(
            parse_url("10.0.0.1:6443", &["https"])
                .unwrap_err()
                .contains("no scheme")
        );
        assert!(
            parse_url("ftp://x", &["https", "http"])
                .unwrap_err()
                .contains("scheme \"ftp\"")
        );
        assert!(
            parse_url("https://exa mple", &["https"])
                .unwrap_err()
                .contains("not a valid URL")
        );
    }
}
