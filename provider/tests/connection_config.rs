//! Connection settings end to end: env fallbacks and precedence, kubeconfig loading and
//! context selection, explicit overrides, and every validation error the provider reports.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use terraform_provider_kargo::config::{
    ConfigError, ExecSettings, Secret, Setting, Settings, Source,
};
use terraform_provider_kargo::kargo::{self, KargoClient};
use terraform_provider_kargo::plugin::{AttributePath, Context, PathStep, Provider, Value};
use terraform_provider_kargo::provider::{KargoProvider, ProviderData};

const SECRET_TOKEN: &str = "tok-Zm9vYmFyc2VjcmV0";

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

fn no_env() -> impl Fn(&str) -> Option<String> {
    env(&[])
}

fn pem_pair() -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["kube.example".to_string()]).unwrap();
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A kubeconfig with contexts `dev` (current) and `prod`; `prefix` keeps names distinct
/// across files.
fn kubeconfig(dir: &Path, file: &str, prefix: &str, current: &str, exec_user: bool) -> PathBuf {
    let user = if exec_user {
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: kubeconfig-plugin\n".to_string()
    } else {
        "    token: kubeconfig-token\n".to_string()
    };
    let text = format!(
        "apiVersion: v1
kind: Config
current-context: {current}
clusters:
- name: {prefix}dev-cluster
  cluster:
    server: https://{prefix}dev.example:6443
- name: {prefix}prod-cluster
  cluster:
    server: https://{prefix}prod.example:6443
    tls-server-name: prod-internal
contexts:
- name: {prefix}dev
  context:
    cluster: {prefix}dev-cluster
    user: {prefix}user
- name: {prefix}prod
  context:
    cluster: {prefix}prod-cluster
    user: {prefix}user
users:
- name: {prefix}user
  user:
{user}- name: {prefix}other-user
  user:
    token: other-token
"
    );
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

fn one_error(settings: Settings, vars: &[(&str, &str)]) -> ConfigError {
    let resolved = settings.resolve(env(vars));
    let errors = resolved.validate();
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one error, got {errors:?}"
    );
    errors.into_iter().next().unwrap()
}

fn build_error(settings: Settings, vars: &[(&str, &str)]) -> ConfigError {
    match settings.resolve(env(vars)).kube_config() {
        Ok(config) => panic!("expected an error, got a config for {}", config.cluster_url),
        Err(e) => e,
    }
}

#[test]
fn kubeconfig_current_context_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = kubeconfig(dir.path(), "config", "", "dev", false);
    let settings = Settings {
        config_path: Some(path.display().to_string()),
        ..Default::default()
    };
    let config = settings.resolve(no_env()).kube_config().unwrap();
    assert_eq!(config.cluster_url.to_string(), "https://dev.example:6443/");
    assert_eq!(token_of(&config).as_deref(), Some("kubeconfig-token"));
}

#[test]
fn config_context_and_overrides_select_cluster_and_user() {
    let dir = tempfile::tempdir().unwrap();
    let path = kubeconfig(dir.path(), "config", "", "dev", false);
    let settings = Settings {
        config_path: Some(path.display().to_string()),
        config_context: Some("prod".into()),
        ..Default::default()
    };
    let config = settings.clone().resolve(no_env()).kube_config().unwrap();
    assert_eq!(config.cluster_url.to_string(), "https://prod.example:6443/");
    assert_eq!(config.tls_server_name.as_deref(), Some("prod-internal"));

    let settings = Settings {
        config_context_cluster: Some("dev-cluster".into()),
        config_context_auth_info: Some("other-user".into()),
        ..settings
    };
    let config = settings.resolve(no_env()).kube_config().unwrap();
    assert_eq!(config.cluster_url.to_string(), "https://dev.example:6443/");
    assert_eq!(token_of(&config).as_deref(), Some("other-token"));
}

/// kube-rs keeps credentials in secret wrappers; their serialized form is the plain value.
fn auth_field(config: &kube::Config, field: &str) -> Option<String> {
    let auth = serde_json::to_value(&config.auth_info).unwrap();
    auth[field].as_str().map(str::to_string)
}

fn token_of(config: &kube::Config) -> Option<String> {
    auth_field(config, "token")
}

#[test]
fn config_paths_are_merged_first_file_wins() {
    let dir = tempfile::tempdir().unwrap();
    let first = kubeconfig(dir.path(), "a", "", "prod", false);
    let second = kubeconfig(dir.path(), "b", "b-", "b-dev", false);
    let settings = Settings {
        config_paths: vec![first.display().to_string(), second.display().to_string()],
        ..Default::default()
    };
    // current-context comes from the first file.
    let config = settings.clone().resolve(no_env()).kube_config().unwrap();
    assert_eq!(config.cluster_url.to_string(), "https://prod.example:6443/");
    // Contexts only the second file defines are available.
    let settings = Settings {
        config_context: Some("b-prod".into()),
        ..settings
    };
    let config = settings.resolve(no_env()).kube_config().unwrap();
    assert_eq!(
        config.cluster_url.to_string(),
        "https://b-prod.example:6443/"
    );
}

#[test]
fn missing_kubeconfig_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope").join("config");
    let settings = Settings {
        config_path: Some(missing.display().to_string()),
        ..Default::default()
    };
    let err = build_error(settings, &[]);
    assert_eq!(err.setting, Some(Setting::ConfigPath));
    assert_eq!(err.source, Source::Explicit);
    assert!(
        err.message.contains(&missing.display().to_string()),
        "{err}"
    );
    assert!(err.message.contains("does not exist"), "{err}");

    // From the environment, the message says which variable pointed there.
    let err = build_error(
        Settings::default(),
        &[("KUBE_CONFIG_PATHS", &missing.display().to_string())],
    );
    assert_eq!(err.setting, Some(Setting::ConfigPaths));
    assert!(
        err.to_string()
            .starts_with("KUBE_CONFIG_PATHS (environment variable): "),
        "{err}"
    );
}

#[test]
fn unknown_context_lists_available_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = kubeconfig(dir.path(), "config", "", "dev", false);
    let settings = Settings {
        config_path: Some(path.display().to_string()),
        config_context: Some("staging".into()),
        ..Default::default()
    };
    let err = build_error(settings, &[]);
    assert_eq!(err.setting, Some(Setting::ConfigContext));
    assert!(err.message.contains("\"staging\""), "{err}");
    assert!(err.message.contains("\"dev\", \"prod\""), "{err}");

    let settings = Settings {
        config_path: Some(path.display().to_string()),
        config_context_cluster: Some("nope-cluster".into()),
        ..Default::default()
    };
    let err = build_error(settings, &[]);
    assert_eq!(err.setting, Some(Setting::ConfigContextCluster));
    assert!(
        err.message.contains("\"dev-cluster\", \"prod-cluster\""),
        "{err}"
    );

    let settings = Settings {
        config_path: Some(path.display().to_string()),
        config_context_auth_info: Some("nobody".into()),
        ..Default::default()
    };
    let err = build_error(settings, &[]);
    assert_eq!(err.setting, Some(Setting::ConfigContextAuthInfo));
    assert!(err.message.contains("\"user\", \"other-user\""), "{err}");
}

#[test]
fn unparsable_kubeconfig_does_not_echo_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken");
    std::fs::write(
        &path,
        format!("users:\n- name: x\n  user: {{token: {SECRET_TOKEN}\n  [[["),
    )
    .unwrap();
    let settings = Settings {
        config_path: Some(path.display().to_string()),
        ..Default::default()
    };
    let err = build_error(settings, &[]);
    assert!(err.message.contains("not valid kubeconfig YAML"), "{err}");
    assert!(!err.to_string().contains(SECRET_TOKEN), "{err}");
}

#[test]
fn block_wins_over_env_and_env_fills_gaps() {
    let vars = [
        ("KUBE_HOST", "https://env.example:6443"),
        ("KUBE_TOKEN", "env-token"),
        ("KUBE_INSECURE", "true"),
        ("KUBE_TLS_SERVER_NAME", "env-sni"),
    ];
    let settings = Settings {
        host: Some("https://block.example:6443".into()),
        ..Default::default()
    };
    let resolved = settings.resolve(env(&vars));
    assert_eq!(resolved.source(Setting::Host), Source::Explicit);
    assert_eq!(resolved.source(Setting::Token), Source::Env("KUBE_TOKEN"));
    assert_eq!(
        resolved.source(Setting::Insecure),
        Source::Env("KUBE_INSECURE")
    );
    let config = resolved.kube_config().unwrap();
    assert_eq!(
        config.cluster_url.to_string(),
        "https://block.example:6443/"
    );
    assert_eq!(token_of(&config).as_deref(), Some("env-token"));
    assert!(config.accept_invalid_certs);
    assert_eq!(config.tls_server_name.as_deref(), Some("env-sni"));

    // Explicit false beats KUBE_INSECURE=true.
    let settings = Settings {
        insecure: Some(false),
        ..Default::default()
    };
    let resolved = settings.resolve(env(&vars));
    assert!(!resolved.kube_config().unwrap().accept_invalid_certs);
}

#[test]
fn unknown_block_values_are_not_replaced_by_env() {
    let mut settings = Settings::default();
    settings.unknown.insert(Setting::Host);
    let resolved = settings.resolve(env(&[("KUBE_HOST", "https://env.example")]));
    assert_eq!(resolved.source(Setting::Host), Source::Unknown);
    assert!(resolved.settings().host.is_none());
    assert!(!resolved.is_known());
    let err = resolved.kube_config().unwrap_err();
    assert!(err.message.contains("host"), "{err}");
}

#[test]
fn kubeconfig_path_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let block = kubeconfig(dir.path(), "block", "", "dev", false);
    let from_path_env = kubeconfig(dir.path(), "env-path", "", "prod", false);
    let from_paths_env = kubeconfig(dir.path(), "env-paths", "p-", "p-dev", false);
    let vars = [
        ("KUBE_CONFIG_PATH", from_path_env.to_str().unwrap()),
        ("KUBE_CONFIG_PATHS", from_paths_env.to_str().unwrap()),
    ];
    let url = |settings: Settings, vars: &[(&str, &str)]| {
        settings
            .resolve(env(vars))
            .kube_config()
            .unwrap()
            .cluster_url
            .to_string()
    };

    let explicit = Settings {
        config_paths: vec![block.display().to_string()],
        ..Default::default()
    };
    assert_eq!(url(explicit, &vars), "https://dev.example:6443/");
    assert_eq!(
        url(Settings::default(), &vars),
        "https://prod.example:6443/"
    );
    assert_eq!(
        url(Settings::default(), &vars[1..]),
        "https://p-dev.example:6443/"
    );

    // KUBE_CONFIG_PATHS is a path list.
    let joined = std::env::join_paths([from_paths_env.as_path(), from_path_env.as_path()]).unwrap();
    let joined = joined.to_str().unwrap();
    let resolved = Settings::default().resolve(env(&[("KUBE_CONFIG_PATHS", joined)]));
    assert_eq!(resolved.settings().config_paths.len(), 2);
}

#[test]
fn explicit_host_and_token_override_the_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let path = kubeconfig(dir.path(), "config", "", "dev", true);
    let settings = Settings {
        config_path: Some(path.display().to_string()),
        host: Some("https://override.example:443".into()),
        token: Some(Secret::new("explicit-token")),
        ..Default::default()
    };
    let config = settings.resolve(no_env()).kube_config().unwrap();
    assert_eq!(
        config.cluster_url.to_string(),
        "https://override.example:443/"
    );
    assert_eq!(token_of(&config).as_deref(), Some("explicit-token"));
    assert!(
        config.auth_info.exec.is_none(),
        "the kubeconfig's exec plugin must be replaced by the token"
    );
}

#[test]
fn explicit_exec_replaces_kubeconfig_and_env_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = kubeconfig(dir.path(), "config", "", "dev", false);
    let settings = Settings {
        config_path: Some(path.display().to_string()),
        exec: Some(ExecSettings {
            api_version: "client.authentication.k8s.io/v1beta1".into(),
            command: "aws".into(),
            args: vec!["eks".into(), "get-token".into()],
            env: [("AWS_PROFILE".to_string(), "ops".to_string())].into(),
        }),
        ..Default::default()
    };
    let resolved = settings.resolve(env(&[("KUBE_TOKEN", "env-token")]));
    assert_eq!(resolved.source(Setting::Token), Source::Unset);
    let config = resolved.kube_config().unwrap();
    assert!(
        config.auth_info.token.is_none(),
        "kubeconfig and KUBE_TOKEN tokens must be replaced by exec"
    );
    let exec = config.auth_info.exec.as_ref().unwrap();
    assert_eq!(exec.command.as_deref(), Some("aws"));
    assert_eq!(
        exec.api_version.as_deref(),
        Some("client.authentication.k8s.io/v1beta1")
    );
    assert_eq!(
        exec.args.as_deref(),
        Some(&["eks".to_string(), "get-token".to_string()][..])
    );
    let env = exec.env.as_ref().unwrap();
    assert_eq!(env[0].get("name").map(String::as_str), Some("AWS_PROFILE"));
    assert_eq!(env[0].get("value").map(String::as_str), Some("ops"));
}

#[test]
fn host_with_certificates_builds_a_config() {
    let (ca, _) = pem_pair();
    let (cert, key) = pem_pair();
    let settings = Settings {
        host: Some("https://10.1.2.3:6443".into()),
        cluster_ca_certificate: Some(format!("{ca}{ca}")),
        client_certificate: Some(cert.clone()),
        client_key: Some(Secret::new(key.clone())),
        proxy_url: Some("http://proxy.example:3128".into()),
        ..Default::default()
    };
    let config = settings.resolve(no_env()).kube_config().unwrap();
    assert_eq!(config.root_cert.as_ref().map(Vec::len), Some(2));
    assert_eq!(
        config.auth_info.client_certificate_data.as_deref(),
        Some(b64(&cert).as_str())
    );
    assert_eq!(auth_field(&config, "client-key-data"), Some(b64(&key)));
    assert_eq!(
        config.proxy_url.as_ref().map(|u| u.to_string()).as_deref(),
        Some("http://proxy.example:3128/")
    );
}

#[test]
fn nothing_configured_explains_how_to_configure() {
    let err = build_error(Settings::default(), &[]);
    assert_eq!(err.setting, None);
    for hint in [
        "config_path",
        "KUBE_CONFIG_PATH",
        "host",
        "KUBE_HOST",
        "token",
        "exec",
        "in-cluster",
        "KUBECONFIG",
    ] {
        assert!(err.message.contains(hint), "missing {hint:?} in {err}");
    }
    // Credentials without a cluster to send them to.
    let err = build_error(
        Settings {
            token: Some(Secret::new(SECRET_TOKEN)),
            ..Default::default()
        },
        &[],
    );
    assert_eq!(err.setting, Some(Setting::Host));
    assert!(
        err.message
            .contains("is required when no kubeconfig is configured"),
        "{err}"
    );
    assert!(!err.to_string().contains(SECRET_TOKEN));

    // In a pod the service account is tried instead (and here it is not mounted).
    let err = build_error(
        Settings::default(),
        &[("KUBERNETES_SERVICE_HOST", "10.0.0.1")],
    );
    assert!(
        err.message
            .contains("in-cluster service account configuration could not be loaded"),
        "{err}"
    );
}

#[test]
fn token_with_exec_is_reported_on_token() {
    let settings = Settings {
        host: Some("https://k.example".into()),
        token: Some(Secret::new(SECRET_TOKEN)),
        exec: Some(ExecSettings {
            api_version: "client.authentication.k8s.io/v1".into(),
            command: "plugin".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = one_error(settings, &[]);
    assert_eq!(err.setting, Some(Setting::Token));
    assert!(err.message.contains("conflicts with exec"), "{err}");
    assert!(!err.to_string().contains(SECRET_TOKEN));
}

#[test]
fn malformed_pem_names_the_attribute_without_echoing_it() {
    let (good_cert, good_key) = pem_pair();
    let garbage = "-----BEGIN CERTIFICATE-----\nnot*base64*at*all\n-----END CERTIFICATE-----\n";
    let err = one_error(
        Settings {
            host: Some("https://k".into()),
            cluster_ca_certificate: Some(garbage.into()),
            ..Default::default()
        },
        &[],
    );
    assert_eq!(err.setting, Some(Setting::ClusterCaCertificate));
    assert!(!err.message.contains("not*base64"), "{err}");

    let err = one_error(
        Settings {
            host: Some("https://k".into()),
            client_certificate: Some("hello".into()),
            client_key: Some(Secret::new(good_key.clone())),
            ..Default::default()
        },
        &[],
    );
    assert_eq!(err.setting, Some(Setting::ClientCertificate));
    assert!(err.message.contains("no PEM certificate"), "{err}");

    let secret_key =
        format!("-----BEGIN PRIVATE KEY-----\n{SECRET_TOKEN}!!\n-----END PRIVATE KEY-----\n");
    let err = one_error(
        Settings {
            host: Some("https://k".into()),
            client_certificate: Some(good_cert.clone()),
            client_key: Some(Secret::new(secret_key)),
            ..Default::default()
        },
        &[],
    );
    assert_eq!(err.setting, Some(Setting::ClientKey));
    assert!(!err.to_string().contains(SECRET_TOKEN), "{err}");

    // A base64-encoded PEM (kubeconfig's *-data form) gets a hint.
    let err = one_error(
        Settings {
            host: Some("https://k".into()),
            cluster_ca_certificate: Some(b64(&good_cert)),
            ..Default::default()
        },
        &[],
    );
    assert!(err.message.contains("looks base64-encoded"), "{err}");

    // Same checks on environment values, reported against the variable.
    let err = one_error(
        Settings::default(),
        &[("KUBE_CLUSTER_CA_CERT_DATA", garbage)],
    );
    assert_eq!(err.source, Source::Env("KUBE_CLUSTER_CA_CERT_DATA"));
}

#[test]
fn client_certificate_needs_client_key() {
    let (cert, key) = pem_pair();
    let err = one_error(
        Settings {
            client_certificate: Some(cert.clone()),
            ..Default::default()
        },
        &[],
    );
    assert_eq!(err.setting, Some(Setting::ClientCertificate));
    assert!(err.message.contains("requires client_key"), "{err}");

    let err = one_error(
        Settings {
            client_key: Some(Secret::new(key.clone())),
            ..Default::default()
        },
        &[],
    );
    assert_eq!(err.setting, Some(Setting::ClientKey));

    // The key may come from the environment.
    let settings = Settings {
        client_certificate: Some(cert),
        ..Default::default()
    };
    assert!(
        settings
            .resolve(env(&[("KUBE_CLIENT_KEY_DATA", &key)]))
            .validate()
            .is_empty()
    );

    // An unknown key (plan time) is not reported as missing.
    let mut settings = Settings {
        client_certificate: Some(pem_pair().0),
        ..Default::default()
    };
    settings.unknown.insert(Setting::ClientKey);
    assert!(settings.resolve(no_env()).validate().is_empty());
}

#[test]
fn invalid_host_and_proxy_urls() {
    let err = one_error(
        Settings {
            host: Some("kube.example:6443".into()),
            ..Default::default()
        },
        &[],
    );
    assert_eq!(err.setting, Some(Setting::Host));
    assert!(err.message.contains("no scheme"), "{err}");
    let err = one_error(
        Settings {
            host: Some("https://bad host".into()),
            ..Default::default()
        },
        &[],
    );
    assert_eq!(err.setting, Some(Setting::Host));

    let err = one_error(
        Settings {
            proxy_url: Some("socks5://bob:hunter2@proxy:1080".into()),
            ..Default::default()
        },
        &[],
    );
    assert_eq!(err.setting, Some(Setting::ProxyUrl));
    assert!(err.message.contains("socks5"), "{err}");
    assert!(!err.message.contains("hunter2"), "{err}");
    let err = one_error(Settings::default(), &[("KUBE_PROXY_URL", "::not a url::")]);
    assert_eq!(err.source, Source::Env("KUBE_PROXY_URL"));
}

#[test]
fn other_setting_checks() {
    let err = one_error(Settings::default(), &[("KUBE_INSECURE", "maybe")]);
    assert_eq!(err.setting, Some(Setting::Insecure));
    let err = one_error(
        Settings {
            api_wait_timeout: Some("five minutes".into()),
            ..Default::default()
        },
        &[],
    );
    assert_eq!(err.setting, Some(Setting::ApiWaitTimeout));
    let err = one_error(
        Settings {
            config_path: Some("/a".into()),
            config_paths: vec!["/b".into()],
            ..Default::default()
        },
        &[],
    );
    assert_eq!(err.setting, Some(Setting::ConfigPaths));
    let err = one_error(
        Settings {
            exec: Some(ExecSettings {
                api_version: "client.authentication.k8s.io/v1alpha1".into(),
                command: "x".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        &[],
    );
    assert_eq!(
        (err.setting, err.nested),
        (Some(Setting::Exec), Some("api_version"))
    );

    let resolved = Settings {
        api_wait_timeout: Some("90s".into()),
        ..Default::default()
    }
    .resolve(no_env());
    assert_eq!(
        resolved.api_wait_timeout(),
        std::time::Duration::from_secs(90)
    );
    assert_eq!(resolved.field_manager(), "terraform-provider-kargo");
    assert!(!resolved.force_conflicts());
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let settings = Settings {
        token: Some(Secret::new(SECRET_TOKEN)),
        client_key: Some(Secret::new(format!("key-{SECRET_TOKEN}"))),
        exec: Some(ExecSettings {
            api_version: "client.authentication.k8s.io/v1".into(),
            command: "plugin".into(),
            args: vec![format!("--token={SECRET_TOKEN}")],
            env: [(
                "AWS_SECRET_ACCESS_KEY".to_string(),
                SECRET_TOKEN.to_string(),
            )]
            .into(),
        }),
        ..Default::default()
    };
    let resolved = settings.resolve(no_env());
    let text = format!("{resolved:?} {}", resolved.describe());
    assert!(!text.contains(SECRET_TOKEN), "{text}");
}

// ---- through the provider ---------------------------------------------------------------

fn provider_block(attrs: Vec<(&str, Value)>) -> Value {
    Value::object(attrs)
}

fn exec_block() -> Value {
    Value::List(vec![Value::object([
        (
            "api_version",
            Value::string("client.authentication.k8s.io/v1"),
        ),
        ("command", Value::string("plugin")),
        ("args", Value::Null),
        ("env", Value::Null),
    ])])
}

fn error_paths(config: &Value) -> Vec<(Option<AttributePath>, String)> {
    let diags = KargoProvider::new().validate_config(config);
    assert!(diags.has_errors(), "expected errors for {config:?}");
    diags
        .0
        .into_iter()
        .map(|d| (d.attribute, format!("{}: {}", d.summary, d.detail)))
        .collect()
}

#[test]
fn validate_config_reports_on_attribute_paths() {
    let (cert, _) = pem_pair();
    let cases: Vec<(Value, AttributePath)> = vec![
        (
            provider_block(vec![
                ("token", Value::string(SECRET_TOKEN)),
                ("exec", exec_block()),
            ]),
            AttributePath::attr("token"),
        ),
        (
            provider_block(vec![("host", Value::string("ftp://k"))]),
            AttributePath::attr("host"),
        ),
        (
            provider_block(vec![("proxy_url", Value::string("nope"))]),
            AttributePath::attr("proxy_url"),
        ),
        (
            provider_block(vec![("cluster_ca_certificate", Value::string("junk"))]),
            AttributePath::attr("cluster_ca_certificate"),
        ),
        (
            provider_block(vec![("client_certificate", Value::string(cert))]),
            AttributePath::attr("client_certificate"),
        ),
        (
            provider_block(vec![(
                "client_key",
                Value::string(format!("-----BEGIN PRIVATE KEY-----\n{SECRET_TOKEN}\n")),
            )]),
            AttributePath::attr("client_key"),
        ),
        (
            provider_block(vec![("api_wait_timeout", Value::string("soon"))]),
            AttributePath::attr("api_wait_timeout"),
        ),
    ];
    for (config, expected) in cases {
        let errors = error_paths(&config);
        assert!(
            errors
                .iter()
                .any(|(path, _)| path.as_ref() == Some(&expected)),
            "expected an error at {expected}, got {errors:?}"
        );
        for (_, text) in &errors {
            assert!(!text.contains(SECRET_TOKEN), "secret leaked: {text}");
        }
    }

    let bad_exec = Value::List(vec![Value::object([
        ("api_version", Value::string("v0")),
        ("command", Value::string("plugin")),
    ])]);
    let errors = error_paths(&provider_block(vec![("exec", bad_exec)]));
    let expected = AttributePath(vec![
        PathStep::Attr("exec".into()),
        PathStep::Index(0),
        PathStep::Attr("api_version".into()),
    ]);
    assert!(
        errors.iter().any(|(p, _)| p.as_ref() == Some(&expected)),
        "{errors:?}"
    );

    // Unknown values are not validated, and a fully unknown block is fine.
    let diags = KargoProvider::new().validate_config(&provider_block(vec![
        ("host", Value::Unknown),
        ("token", Value::Unknown),
    ]));
    assert!(!diags.has_errors(), "{diags:?}");
}

#[tokio::test]
async fn configure_with_unknown_values_defers_the_client() {
    let provider = KargoProvider::new();
    let data = provider.data();
    assert!(!data.is_configured());
    assert!(matches!(data.client(), Err(kargo::Error::Config(_))));
    let diags = provider
        .configure(
            &Context::default(),
            &provider_block(vec![("host", Value::Unknown)]),
            "1.11.4",
        )
        .await;
    assert!(!diags.has_errors(), "{diags:?}");
    assert!(data.is_configured());
    assert!(!data.configuration_known());
    assert!(matches!(data.client(), Err(kargo::Error::ConfigUnknown)));

    // A block that is unknown as a whole is accepted the same way.
    let diags = provider
        .configure(&Context::default(), &Value::Unknown, "1.11.4")
        .await;
    assert!(!diags.has_errors(), "{diags:?}");
    assert!(!data.configuration_known());
}

#[tokio::test]
async fn configure_never_connects_and_builds_the_client_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = kubeconfig(dir.path(), "config", "", "dev", false);
    let provider = KargoProvider::new();
    let config = provider_block(vec![
        ("config_path", Value::string(path.display().to_string())),
        // Nothing listens here: configuring and building the client must still succeed.
        ("host", Value::string("https://127.0.0.1:9")),
        ("field_manager", Value::string("platform-team")),
        ("force_conflicts", Value::Bool(true)),
        ("api_wait_timeout", Value::string("45s")),
    ]);
    let diags = provider
        .configure(&Context::default(), &config, "1.11.4")
        .await;
    assert!(!diags.has_errors(), "{diags:?}");
    let data = provider.data();
    assert!(data.configuration_known());
    let client = data.client().unwrap();
    assert_eq!(client.host(), "https://127.0.0.1:9");
    assert_eq!(client.field_manager(), "platform-team");
    assert!(client.force_conflicts());
    assert_eq!(
        client.api_wait_timeout(),
        std::time::Duration::from_secs(45)
    );
    let again = data.client().unwrap();
    assert!(
        Arc::ptr_eq(&client, &again),
        "the client must be built once and shared"
    );
}

#[tokio::test]
async fn kubeconfig_problems_surface_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("later.kubeconfig");
    let provider = KargoProvider::new();
    let config = provider_block(vec![(
        "config_path",
        Value::string(missing.display().to_string()),
    )]);
    // The file may be written by the same apply, so configure accepts it...
    let diags = provider
        .configure(&Context::default(), &config, "1.11.4")
        .await;
    assert!(!diags.has_errors(), "{diags:?}");
    // ...and the first call that needs the cluster explains what is wrong.
    let err = provider.data().client().unwrap_err();
    assert!(
        matches!(&err, kargo::Error::Config(m) if m.contains(&missing.display().to_string())),
        "{err}"
    );

    // Once the file exists, the next call succeeds.
    kubeconfig(dir.path(), "later.kubeconfig", "", "dev", false);
    let client: Arc<KargoClient> = provider.data().client().unwrap();
    assert_eq!(client.host(), "https://dev.example:6443");
}

#[test]
fn client_outside_a_runtime_is_an_error_not_a_panic() {
    let data = ProviderData::default();
    data.configure(
        Settings {
            host: Some("https://127.0.0.1:9".into()),
            ..Default::default()
        }
        .resolve(no_env()),
    );
    let err = data.client().unwrap_err();
    assert!(err.to_string().contains("Tokio runtime"), "{err}");
}
