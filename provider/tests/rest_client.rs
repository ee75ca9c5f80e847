//! The client over Kargo's API server (REST `/v1beta1`) against the sandbox: HTTP/2 when
//! offered, TLS verification, full updates that keep what others set and write nothing when
//! nothing changed, and what the REST API cannot do named as such.

use std::sync::Arc;
use std::time::Duration;

use kargo_sandbox::{Options, Sandbox};
use serde_json::json;
use terraform_provider_kargo::kargo::rest::{RestApi, RestAuth, RestConfig};
use terraform_provider_kargo::kargo::{
    Error, KargoClient, Namespace, Object as _, Project, Secret, Transport, Warehouse, decode,
};
use terraform_provider_kargo::plugin::{Context, Provider, Value as TfValue};
use terraform_provider_kargo::provider::KargoProvider;
use tokio_util::sync::CancellationToken;

const KARGO: &str = "kargo.akuity.io";
const GET: reqwest::Method = reqwest::Method::GET;
const VERSION: &str = "/v1beta1/system/server-version";

/// A client configured as Terraform configures the provider: an `api_server` block.
async fn connected(sandbox: &Sandbox) -> Arc<KargoClient> {
    let provider = KargoProvider::new();
    let api_server = TfValue::object([
        ("url", TfValue::string(sandbox.server_url())),
        ("admin_password", TfValue::string(sandbox.admin_password())),
        ("ca_certificate", TfValue::string(sandbox.ca_pem())),
    ]);
    let block = TfValue::object([("api_server", TfValue::List(vec![api_server]))]);
    let diags = provider
        .configure(&Context::default(), &block, "1.11.4")
        .await;
    assert!(!diags.has_errors(), "{diags:?}");
    let client = provider.data().client().unwrap();
    assert_eq!(client.transport(), Transport::KargoApiServer);
    client
}

/// Project `shop`, written through the API server, and its namespace once Kargo made it (seen
/// through the Project, as the API server serves no namespaces).
async fn project_shop(client: &KargoClient, cancel: &CancellationToken) -> Namespace {
    client.ensure_kargo_api(cancel).await.unwrap();
    client
        .apply(None, "shop", &Project::default())
        .await
        .unwrap();
    client
        .wait_until(
            None,
            "shop",
            "the project namespace",
            Duration::from_secs(10),
            cancel,
            |ns: Option<&Namespace>| ns.is_some(),
        )
        .await
        .unwrap()
        .unwrap()
}

fn rest(sandbox: &Sandbox, ca: Option<&str>, insecure: bool) -> Arc<RestApi> {
    RestApi::new(RestConfig {
        url: sandbox.server_url().to_string(),
        auth: RestAuth::AdminPassword(sandbox.admin_password().to_string()),
        ca_pem: ca.map(str::to_string),
        insecure_skip_tls_verify: insecure,
    })
    .unwrap()
}

fn warehouse(labels: serde_json::Value, interval: &str) -> Warehouse {
    decode(json!({
        "metadata": {"labels": labels},
        "spec": {"interval": interval, "subscriptions": [{"image": {"repoURL": "ghcr.io/example/app"}}]},
    }))
    .unwrap()
}

/// Writes the provider sent through `/v1beta1/resources` since the log was last reset.
fn writes(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .requests()
        .iter()
        .filter(|r| r.path == "/v1beta1/resources")
        .map(|r| r.method.clone())
        .collect()
}

#[tokio::test]
async fn http2_is_spoken_when_the_server_offers_it_and_http1_otherwise() {
    for (options, expected) in [
        (Options::default().http2(), reqwest::Version::HTTP_2),
        (Options::default(), reqwest::Version::HTTP_11),
    ] {
        let sandbox = Sandbox::start(options).await.unwrap();
        let api = rest(&sandbox, Some(sandbox.ca_pem()), false);
        let answer = api.call(GET, VERSION, None, "the version").await.unwrap();
        assert_eq!(answer.version, expected);
        let version: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert!(version["version"].is_string(), "{version}");
    }
}

#[tokio::test]
async fn the_servers_certificate_is_verified_unless_told_not_to() {
    let sandbox = Sandbox::start(Options::default()).await.unwrap();
    // The system's roots do not know the sandbox's CA.
    let err = rest(&sandbox, None, false)
        .call(GET, VERSION, None, "the version")
        .await
        .err()
        .expect("an unknown issuer is refused");
    let Error::ApiServerUnreachable { host, reason } = &err else {
        panic!("expected ApiServerUnreachable, got {err:?}");
    };
    assert_eq!(host, sandbox.server_url());
    assert!(reason.contains("certificate"), "{reason}");
    assert!(
        err.to_string()
            .starts_with(&format!("could not reach Kargo's API server at {host}")),
        "{err}"
    );
    let answer = rest(&sandbox, None, true)
        .call(GET, VERSION, None, "the version")
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn full_updates_keep_what_others_set_drop_what_terraform_removed_and_skip_no_ops() {
    let sandbox = Sandbox::start(Options::default()).await.unwrap();
    let client = connected(&sandbox).await;
    let cancel = CancellationToken::new();
    let ns = project_shop(&client, &cancel).await;
    assert_eq!(
        ns.metadata.labels.unwrap()["kargo.akuity.io/project"],
        "true"
    );

    let stored = client
        .apply(
            Some("shop"),
            "app",
            &warehouse(json!({"team": "a"}), "5m0s"),
        )
        .await
        .unwrap();
    assert_eq!(stored.metadata.labels.as_ref().unwrap()["team"], "a");
    // Someone labels and annotates it with kubectl.
    sandbox.with_txn(|txn| {
        let mut w = txn.get(KARGO, "warehouses", Some("shop"), "app").unwrap();
        w["metadata"]["labels"]["owner"] = json!("ops");
        w["metadata"]["annotations"]["note"] = json!("keep");
        txn.update(w).unwrap();
    });

    // The same configuration again: read, nothing to write.
    sandbox.reset_requests();
    client
        .apply(
            Some("shop"),
            "app",
            &warehouse(json!({"team": "a"}), "5m0s"),
        )
        .await
        .unwrap();
    assert_eq!(writes(&sandbox), Vec::<String>::new());

    // Terraform drops its label and changes the interval: one full update.
    let stored = client
        .apply(Some("shop"), "app", &warehouse(json!({}), "10m0s"))
        .await
        .unwrap();
    assert_eq!(writes(&sandbox), vec!["PUT".to_string()]);
    let live = sandbox
        .get(KARGO, "warehouses", Some("shop"), "app")
        .unwrap();
    // What the write returned is what was stored (Kargo's controller may have moved on since).
    let stored = serde_json::to_value(&stored).unwrap();
    assert_eq!(live["spec"], stored["spec"]);
    assert_eq!(live["metadata"]["uid"], stored["metadata"]["uid"]);
    assert_eq!(live["spec"]["interval"], "10m0s");
    assert_eq!(live["metadata"]["labels"], json!({"owner": "ops"}));
    assert_eq!(live["metadata"]["annotations"]["note"], "keep");

    // Deletion through the route; gone is `false` the second time.
    assert!(
        client
            .delete::<Warehouse>(Some("shop"), "app")
            .await
            .unwrap()
    );
    client
        .wait_deleted::<Warehouse>(Some("shop"), "app", Duration::from_secs(10), &cancel)
        .await
        .unwrap();
    assert!(
        !client
            .delete::<Warehouse>(Some("shop"), "app")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn what_the_rest_api_cannot_do_is_an_error_that_says_so() {
    let sandbox = Sandbox::start(Options::default()).await.unwrap();
    let client = connected(&sandbox).await;
    let err = client
        .list::<Secret>(Some("shop"), Some("kargo.akuity.io/cred-type=git"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotOverApiServer(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "Kargo's API server cannot list Secret objects in project \"shop\"; connect through the Kubernetes API for this"
    );
    let err = client
        .dry_run_apply(Some("shop"), "app", &warehouse(json!({}), "5m0s"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotOverApiServer(_)), "{err:?}");
    assert!(
        sandbox.requests().is_empty(),
        "nothing was sent: {:?}",
        sandbox.requests()
    );
}

#[tokio::test]
async fn a_stages_promotions_are_listed_by_stage_and_filtered_by_label() {
    let sandbox = Sandbox::start(Options::default()).await.unwrap();
    let client = connected(&sandbox).await;
    project_shop(&client, &CancellationToken::new()).await;
    // Promotions as Kargo's controllers would find them, for two stages, some labelled.
    sandbox.with_txn(|txn| {
        for (name, stage, key) in [
            ("dev.1", "dev", Some("a")),
            ("dev.2", "dev", Some("b")),
            ("dev.3", "dev", None),
            ("prod.1", "prod", Some("a")),
        ] {
            let mut promotion = json!({
                "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
                "metadata": {"name": name, "namespace": "shop"},
                "spec": {"stage": stage, "freight": "f", "steps": [{"uses": "fake"}]},
            });
            if let Some(key) = key {
                promotion["metadata"]["labels"] = json!({"key": key});
            }
            txn.create(promotion).unwrap();
        }
    });
    let found = client
        .list_promotions("shop", "dev", "key=a")
        .await
        .unwrap();
    let names: Vec<&str> = found.items.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["dev.1"]);
    let found = client.list_promotions("shop", "dev", "key").await.unwrap();
    let names: Vec<&str> = found.items.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["dev.1", "dev.2"]);
}
