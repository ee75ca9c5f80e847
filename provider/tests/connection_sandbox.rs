//! The connection and client against the sandbox Kubernetes API over TLS: provider block to
//! live client, credentials, server-side apply ownership, watches, and Kargo starting late.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kargo_sandbox::{HttpFault, Options, Sandbox};
use serde_json::json;
use terraform_provider_kargo::kargo::{
    Error, KargoClient, Namespace, Object as _, Project, Warehouse, decode,
};
use terraform_provider_kargo::plugin::{Context, Provider, Value as TfValue};
use terraform_provider_kargo::provider::KargoProvider;
use tokio_util::sync::CancellationToken;

async fn client_for(block: Vec<(&str, TfValue)>) -> Arc<KargoClient> {
    let provider = KargoProvider::new();
    let diags = provider
        .configure(&Context::default(), &TfValue::object(block), "1.11.4")
        .await;
    assert!(!diags.has_errors(), "{diags:?}");
    provider.data().client().unwrap()
}

fn s(v: &str) -> TfValue {
    TfValue::string(v)
}

fn warehouse(interval: &str) -> Warehouse {
    decode(json!({"spec": {"interval": interval, "subscriptions": [{"image": {"repoURL": "ghcr.io/example/app"}}]}}))
        .unwrap()
}

async fn project(client: &KargoClient, name: &str) {
    let cancel = CancellationToken::new();
    client.ensure_kargo_api(&cancel).await.unwrap();
    client.apply(None, name, &Project::default()).await.unwrap();
    // The project's namespace is created by Kargo; wait for it like a resource would.
    client
        .wait_until(
            None,
            name,
            "the project namespace",
            Duration::from_secs(10),
            &cancel,
            |ns: Option<&Namespace>| ns.is_some(),
        )
        .await
        .unwrap();
}

fn managers(object: &Warehouse) -> Vec<String> {
    object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|e| e.manager.clone())
        .collect()
}

#[tokio::test]
async fn kubeconfig_from_the_provider_block_reaches_the_api() {
    let sandbox = Sandbox::start(Options::default()).await.unwrap();
    let client = client_for(vec![(
        "config_path",
        s(&sandbox.kubeconfig_path().display().to_string()),
    )])
    .await;
    assert!(client.server_version().await.unwrap().starts_with('v'));
    project(&client, "demo").await;
    let stored = client
        .apply(Some("demo"), "images", &warehouse("10m0s"))
        .await
        .unwrap();
    assert_eq!(stored.spec.rest["interval"], "10m0s");
    assert!(
        managers(&stored).contains(&"terraform-provider-kargo".to_string()),
        "{:?}",
        managers(&stored)
    );
    let read = client
        .get::<Warehouse>(Some("demo"), "images")
        .await
        .unwrap()
        .unwrap();
    assert!(read.metadata.uid.is_some());
    assert_eq!(read.metadata.uid, stored.metadata.uid);
    assert_eq!(
        client.get::<Warehouse>(Some("demo"), "nope").await.unwrap(),
        None
    );
    let listed = client.list::<Warehouse>(Some("demo"), None).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(listed.resource_version.is_some());
}

#[tokio::test]
async fn explicit_host_token_and_ca() {
    let sandbox = Sandbox::start(Options::default()).await.unwrap();
    let client = client_for(vec![
        ("host", s(sandbox.server_url())),
        ("token", s(sandbox.token())),
        ("cluster_ca_certificate", s(sandbox.ca_pem())),
    ])
    .await;
    client
        .ensure_kargo_api(&CancellationToken::new())
        .await
        .unwrap();

    // Without the CA the server certificate cannot be verified...
    let client = client_for(vec![
        ("host", s(sandbox.server_url())),
        ("token", s(sandbox.token())),
    ])
    .await;
    let err = client.get::<Project>(None, "x").await.unwrap_err();
    assert!(
        matches!(&err, Error::Unreachable { host, .. } if host == sandbox.server_url()),
        "{err:?}"
    );
    // ...unless verification is switched off.
    let client = client_for(vec![
        ("host", s(sandbox.server_url())),
        ("token", s(sandbox.token())),
        ("insecure", TfValue::Bool(true)),
    ])
    .await;
    assert_eq!(client.get::<Project>(None, "x").await.unwrap(), None);

    // A rejected token is reported as such, without echoing it.
    let client = client_for(vec![
        ("host", s(sandbox.server_url())),
        ("token", s("not-the-token")),
        ("cluster_ca_certificate", s(sandbox.ca_pem())),
    ])
    .await;
    let err = client.get::<Project>(None, "x").await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(!err.to_string().contains("not-the-token"));
}

#[tokio::test]
async fn ssa_conflicts_name_the_other_manager_and_force_takes_over() {
    let sandbox = Sandbox::start(Options::default()).await.unwrap();
    let path = sandbox.kubeconfig_path().display().to_string();
    let ours = client_for(vec![("config_path", s(&path))]).await;
    let theirs = client_for(vec![
        ("config_path", s(&path)),
        ("field_manager", s("someone-else")),
    ])
    .await;
    project(&ours, "demo").await;
    ours.apply(Some("demo"), "images", &warehouse("10m0s"))
        .await
        .unwrap();

    let err = theirs
        .apply(Some("demo"), "images", &warehouse("20m0s"))
        .await
        .unwrap_err();
    let Error::Conflict {
        managers, fields, ..
    } = &err
    else {
        panic!("expected Conflict, got {err:?}")
    };
    assert_eq!(managers, &vec!["terraform-provider-kargo".to_string()]);
    assert!(fields.iter().any(|f| f.contains("interval")), "{fields:?}");

    let forced = client_for(vec![
        ("config_path", s(&path)),
        ("field_manager", s("someone-else")),
        ("force_conflicts", TfValue::Bool(true)),
    ])
    .await;
    let stored = forced
        .apply(Some("demo"), "images", &warehouse("20m0s"))
        .await
        .unwrap();
    assert_eq!(stored.spec.rest["interval"], "20m0s");
}

#[tokio::test]
async fn schema_violations_are_invalid() {
    let sandbox = Sandbox::start(Options::default()).await.unwrap();
    let client = client_for(vec![(
        "config_path",
        s(&sandbox.kubeconfig_path().display().to_string()),
    )])
    .await;
    project(&client, "demo").await;
    // Go parses `-5m`, so Kargo's mutating webhook passes it on; the CRD's pattern refuses it.
    let err = client
        .apply(Some("demo"), "images", &warehouse("-5m"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("interval"), "{err}");
}

fn stage_label(w: &Warehouse) -> Option<&str> {
    w.metadata.labels.as_ref()?.get("stage").map(String::as_str)
}

#[tokio::test]
async fn waits_follow_the_watch() {
    let sandbox = Sandbox::start(Options::default()).await.unwrap();
    let client = client_for(vec![(
        "config_path",
        s(&sandbox.kubeconfig_path().display().to_string()),
    )])
    .await;
    project(&client, "demo").await;
    client
        .apply(Some("demo"), "images", &warehouse("10m0s"))
        .await
        .unwrap();

    let writer = client.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let patch = json!({"metadata": {"labels": {"stage": "ready"}}});
        writer
            .merge_patch::<Warehouse>(Some("demo"), "images", &patch)
            .await
            .unwrap();
    });
    let cancel = CancellationToken::new();
    let seen = client
        .wait_until(
            Some("demo"),
            "images",
            "the label",
            Duration::from_secs(10),
            &cancel,
            |w: Option<&Warehouse>| w.is_some_and(|w| stage_label(w) == Some("ready")),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stage_label(&seen), Some("ready"));

    assert!(
        client
            .delete::<Warehouse>(Some("demo"), "images")
            .await
            .unwrap()
    );
    client
        .wait_deleted::<Warehouse>(Some("demo"), "images", Duration::from_secs(10), &cancel)
        .await
        .unwrap();
    assert!(
        !client
            .delete::<Warehouse>(Some("demo"), "images")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn apply_waits_for_kargo_installed_late_and_retries_unavailable() {
    let sandbox = Arc::new(
        Sandbox::start(Options::default().without_kargo())
            .await
            .unwrap(),
    );
    let client = client_for(vec![
        (
            "config_path",
            s(&sandbox.kubeconfig_path().display().to_string()),
        ),
        ("api_wait_timeout", s("20s")),
    ])
    .await;
    let err = client
        .wait_for_kargo_api(Duration::from_millis(300), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");

    let installer = sandbox.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        installer.install_kargo();
    });
    let started = Instant::now();
    let cancel = CancellationToken::new();
    client.ensure_kargo_api(&cancel).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "returned before Kargo was installed"
    );
    assert!(client.kargo_api_ready());

    sandbox
        .inject_fault(
            HttpFault::unavailable()
                .verb("patch")
                .resource("projects")
                .times(2),
        )
        .unwrap();
    let late = Project::default();
    let stored = client
        .retry_while_kargo_starting("Project \"late\"", &cancel, || {
            client.apply(None, "late", &late)
        })
        .await
        .unwrap();
    assert_eq!(stored.name(), "late");
    assert_eq!(sandbox.request_counts().get("patch", "projects"), 3);
}
