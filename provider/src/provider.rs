//! The `kargo` provider: its configuration block's schema and the provider's RPCs, which
//! hand the decoded settings to [`crate::config`] and list the resources and data sources.

use std::sync::Arc;

use async_trait::async_trait;

pub use crate::config::ProviderData;
use crate::config::{Setting, config_diagnostics, preview, settings_from_config};
use crate::plugin::{
    Attribute, Block, Context, DataSource, Diagnostics, NestedBlock, Nesting, Provider, Resource,
    Schema, Value,
};

const PROVIDER_DESCRIPTION: &str = "\
The Kargo provider manages [Kargo](https://kargo.io) promotion pipelines (projects, warehouses, \
stages, promotion tasks and promotions, `kargo.akuity.io/v1alpha1`) through the Kubernetes API of \
the cluster Kargo runs in, or through Kargo's own API server (its REST API, `/v1beta1`) with the \
`api_server` block.

The Kubernetes connection settings mirror the Kubernetes provider's, including its `KUBE_*` environment \
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
same run) are accepted: new resources can still be planned.

**Kargo's API server.** With an `api_server` block (or `KARGO_API_URL`), the provider works \
through Kargo's API server instead, with a Kargo API token or the admin password; the Kubernetes \
settings must then be left unset. Its writes are full updates rather than server-side apply, so \
`field_manager` and `force_conflicts` have no effect; plans skip Kargo's dry-run checks; \
approvals cannot be withdrawn on destroy; and the preview cannot read Kargo's Git credentials \
(`read_kargo_credentials`).";

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

fn preview_block() -> Block {
    let credentials = Block::new(vec![
        Attribute::string("url_prefix").optional().description(
            "The credentials are used for Git repositories whose URL starts with this prefix \
(the longest matching prefix wins), e.g. `https://github.com/acme/`. Set this or `url_regex`.",
        ),
        Attribute::string("url_regex").optional().description(
            "The credentials are used for Git repositories whose URL this regular expression \
matches (anywhere in the URL unless anchored with `^` and `$`), e.g. \
`^https://github\\.com/acme/.*-manifests\\.git$`. Prefix entries are tried first; regular \
expressions then in the order written. Set this or `url_prefix`.",
        ),
        Attribute::string("username").required().description(
            "User name for HTTP basic authentication (for a token, any non-empty name Git host \
accepts, e.g. `git` or `x-access-token`).",
        ),
        Attribute::string("password")
            .required()
            .sensitive()
            .description(
                "Password or token. Sensitive: never logged and never stored in the state.",
            ),
    ])
    .description(
        "Credentials for the Git repositories the preview fetches, tried before Kargo's credential \
Secrets (`read_kargo_credentials`) and the Git credential helper.",
    );
    Block::new(vec![
        Attribute::bool("enabled").optional().description(
            "Whether plans of `kargo_promotion` preview the manifest changes the promotion would \
commit (`manifest_changes`). Defaults to `true`.",
        ),
        Attribute::string("timeout").optional().description(
            "How long one promotion's preview may take, Git fetches included, before it is \
reported unavailable. A duration such as `20s` or `1m`. Defaults to `20s`.",
        ),
        Attribute::string("ca_file").optional().description(
            "Path to PEM certificates trusted for HTTPS Git hosts, besides the system's.",
        ),
        Attribute::bool("read_kargo_credentials")
            .optional()
            .description(
                "Whether the preview uses Kargo's own Git credentials: Secrets labelled \
`kargo.akuity.io/cred-type: git` in the project's namespace, then in \
`kargo_shared_namespace`, matched on `repoURL` as Kargo matches them. Needs `get` and `list` on \
`secrets` in those namespaces. Defaults to `false`.",
            ),
        Attribute::string("kargo_shared_namespace")
            .optional()
            .description(
                "Kargo's shared-resources namespace, where credentials for every project live. \
Defaults to `kargo-shared-resources`.",
            ),
        Attribute::bool("git_credential_helper")
            .optional()
            .description(
                "Whether the user's Git credential helper (`git credential fill`, when `git` is \
installed) is asked for credentials when a Git host refuses anonymous access and no other \
source has credentials for it. It never prompts and must answer within 10 seconds. \
Defaults to `true`.",
            ),
        Attribute::string("cache_dir").optional().description(
            "Where fetched repositories are kept between plans (each is fetched at most once per \
plan). Defaults to `$XDG_CACHE_HOME/terraform-provider-kargo/git` or \
`~/.cache/terraform-provider-kargo/git`.",
        ),
    ])
    .description(
        "The plan-time preview of promotions: a local dry run of the stage's promotion steps that \
shows, in `manifest_changes` of `kargo_promotion`, what the promotion would commit.",
    )
    .block(NestedBlock::new(
        "git_credentials",
        credentials,
        Nesting::List,
    ))
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

    let api_server = Block::new(vec![
        Attribute::string("url").optional().description(
            "URL of Kargo's API server, with the base path it is served under if any, e.g. \
`https://kargo.example.com` or `https://example.com/kargo`. Can be set with the `KARGO_API_URL` \
environment variable.",
        ),
        Attribute::string("token")
            .optional()
            .sensitive()
            .description(
                "Bearer token: a Kargo API token (created for a Kargo role with `kargo create token` \
or the UI), an OIDC ID token, or a Kubernetes service account token. Conflicts with \
`admin_password`. Can be set with the `KARGO_API_TOKEN` environment variable.",
            ),
        Attribute::string("admin_password")
            .optional()
            .sensitive()
            .description(
                "Password of Kargo's admin account. The provider logs in with it \
(`POST /v1beta1/login`) and logs in again when the token expires. Conflicts with `token`. Can be \
set with the `KARGO_ADMIN_PASSWORD` environment variable.",
            ),
        Attribute::string("ca_certificate").optional().description(
            "PEM-encoded CA certificate(s) that verify the API server's certificate instead of the \
system's trust roots.",
        ),
        Attribute::bool("insecure_skip_tls_verify")
            .optional()
            .description(
                "Skip verification of the API server's TLS certificate. Unsafe outside test \
installations. Defaults to `false`.",
            ),
    ])
    .description(
        "Work through Kargo's own API server (REST, `/v1beta1`, Kargo v1.9 or later) instead of \
the Kubernetes API: for Kargo on the Akuity Platform, hubs whose Kubernetes API is private, or \
teams that hand out Kargo API tokens rather than kubeconfigs. Conflicts with the Kubernetes \
connection settings.",
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
    .block(NestedBlock::new(Setting::Exec.name(), exec, Nesting::List).max_items(1))
    .block(NestedBlock::new(Setting::ApiServer.name(), api_server, Nesting::List).max_items(1))
    .block(NestedBlock::new(preview::BLOCK, preview_block(), Nesting::List).max_items(1));
    Schema::new(0, block)
}

/// What the configuration asks for that Kargo's API server cannot do, on the attribute
/// that asks for it.
fn api_server_limits(
    config: &Value,
    preview: Option<&crate::steps::preview::Settings>,
) -> Diagnostics {
    use crate::plugin::{AttributePath, Diagnostic};
    let mut diags = Diagnostics::default();
    if preview.is_some_and(|p| p.read_kargo_credentials) {
        diags.push(
            Diagnostic::error(
                "Kargo's Git credentials cannot be read through its API server",
                "Kargo's API server never returns the values of its credential Secrets, so the \
                 promotion preview cannot use them. Give the preview its own `git_credentials`, \
                 or connect through the Kubernetes API.",
            )
            .at(AttributePath::attr(preview::BLOCK)
                .join_index(0)
                .join_attr("read_kargo_credentials")),
        );
    }
    if config.get(Setting::ForceConflicts.name()).as_bool() == Some(true) {
        diags.push(
            Diagnostic::warning(
                "force_conflicts has no effect through Kargo's API server",
                "Kargo's API server writes objects with full updates, not server-side apply: \
                 there are no field owners to conflict with, and the provider's write replaces \
                 the fields it manages whoever set them last.",
            )
            .at(AttributePath::attr(Setting::ForceConflicts.name())),
        );
    }
    if config.get(Setting::FieldManager.name()).as_str().is_some() {
        diags.push(
            Diagnostic::warning(
                "field_manager has no effect through Kargo's API server",
                "Kargo's API server writes objects under its own identity, not a field manager \
                 the provider names.",
            )
            .at(AttributePath::attr(Setting::FieldManager.name())),
        );
    }
    diags
}

#[async_trait]
impl Provider for KargoProvider {
    fn schema(&self) -> Schema {
        provider_schema()
    }

    fn validate_config(&self, config: &Value) -> Diagnostics {
        let mut diags =
            config_diagnostics(&settings_from_config(config).resolve_from_process_env());
        if let Err(d) = preview::preview_settings(config) {
            diags.extend(d);
        }
        diags
    }

    async fn configure(
        &self,
        _ctx: &Context,
        config: &Value,
        terraform_version: &str,
    ) -> Diagnostics {
        let resolved = settings_from_config(config).resolve_from_process_env();
        let mut diags = config_diagnostics(&resolved);
        match preview::preview_settings(config) {
            Ok(settings) => {
                if resolved.api_server().is_some() {
                    diags.extend(api_server_limits(config, settings.as_ref()));
                }
                self.data.set_preview(settings);
            }
            Err(d) => diags.extend(d),
        }
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
}
