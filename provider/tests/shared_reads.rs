//! The client's shared reads against the sandbox, counted in its request log: concurrent
//! callers share one request, fresh reads always go out, writes and waits drop what they may
//! have changed, and the cluster's clock comes from answers already received.

use std::sync::Arc;
use std::time::Duration;

use kargo_sandbox::{HttpFault, Options, Sandbox};
use serde_json::json;
use terraform_provider_kargo::kargo::{KargoClient, Namespace, Project, Warehouse, decode};
use terraform_provider_kargo::plugin::{Context, Provider, Value as TfValue};
use terraform_provider_kargo::provider::KargoProvider;
use tokio_util::sync::CancellationToken;

async fn connected(sandbox: &Sandbox) -> Arc<KargoClient> {
    let provider = KargoProvider::new();
    let block = TfValue::object([(
        "config_path",
        TfValue::string(sandbox.kubeconfig_path().display().to_string()),
    )]);
    let diags = provider
        .configure(&Context::default(), &block, "1.11.4")
        .await;
    assert!(!diags.has_errors(), "{diags:?}");
    provider.data().client().unwrap()
}

fn warehouse(interval: &str) -> Warehouse {
    decode(json!({"spec": {"interval": interval, "subscriptions": [{"image": {"repoURL": "ghcr.io/example/app"}}]}}))
        .unwrap()
}

/// A sandbox with projects `shop` and `other`, each holding warehouse `app`, and a client
/// to it; the request log starts empty.
async fn two_projects() -> (Sandbox, Arc<KargoClient>) {
    let sandbox = Sandbox::start(Options::default()).await.unwrap();
    let client = connected(&sandbox).await;
    let cancel = CancellationToken::new();
    client.ensure_kargo_api(&cancel).await.unwrap();
    for project in ["shop", "other"] {
        client
            .apply(None, project, &Project::default())
            .await
            .unwrap();
        client
            .wait_until(
                None,
                project,
                "the project namespace",
                Duration::from_secs(10),
                &cancel,
                |ns: Option<&Namespace>| ns.is_some(),
            )
            .await
            .unwrap();
        client
            .apply(Some(project), "app", &warehouse("10m0s"))
            .await
            .unwrap();
    }
    sandbox.reset_requests();
    (sandbox, client)
}

fn interval(w: &Option<Warehouse>) -> String {
    w.as_ref().unwrap().spec.rest["interval"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn concurrent_callers_share_one_request_per_object_and_list() {
    let (sandbox, client) = two_projects().await;
    // Each answer takes a while, so every caller asks while the first request is out.
    sandbox
        .inject_fault(HttpFault::delay(Duration::from_millis(200)))
        .unwrap();
    let gets = (0..20).map(|_| client.get_shared::<Warehouse>(Some("shop"), "app"));
    let lists = (0..20).map(|_| client.list_shared::<Warehouse>(Some("shop"), None));
    let (gets, lists) = tokio::join!(
        futures::future::join_all(gets),
        futures::future::join_all(lists)
    );
    assert!(
        gets.iter()
            .all(|g| interval(g.as_ref().unwrap()) == "10m0s")
    );
    assert!(lists.iter().all(|l| l.as_ref().unwrap().items.len() == 1));
    let missing = client
        .get_shared::<Warehouse>(Some("shop"), "nope")
        .await
        .unwrap();
    assert!(missing.is_none());
    let again = client
        .get_shared::<Warehouse>(Some("shop"), "nope")
        .await
        .unwrap();
    assert!(
        again.is_none(),
        "an object that does not exist is shared too"
    );
    let counts = sandbox.request_counts();
    assert_eq!(counts.get("get", "warehouses"), 2, "app once, nope once");
    assert_eq!(counts.get("list", "warehouses"), 1);
    assert_eq!(counts.total(), 3);
}

#[tokio::test]
async fn fresh_reads_always_go_out_and_serve_shared_readers_after_them() {
    let (sandbox, client) = two_projects().await;
    for _ in 0..3 {
        client.get::<Warehouse>(Some("shop"), "app").await.unwrap();
    }
    assert_eq!(
        sandbox.request_counts().get("get", "warehouses"),
        3,
        "a refresh of a managed object is never served from the cache"
    );
    client
        .get_shared::<Warehouse>(Some("shop"), "app")
        .await
        .unwrap();
    assert_eq!(sandbox.request_counts().get("get", "warehouses"), 3);
}

#[tokio::test]
async fn writes_and_waits_drop_what_they_may_have_changed() {
    let (sandbox, client) = two_projects().await;
    let shop = client
        .get_shared::<Warehouse>(Some("shop"), "app")
        .await
        .unwrap();
    client
        .get_shared::<Warehouse>(Some("other"), "app")
        .await
        .unwrap();
    assert_eq!(interval(&shop), "10m0s");
    // Changed behind the provider's back: the shared read does not see it (one plan sees one
    // state of the object), the next fresh read does.
    sandbox.with_txn(|txn| {
        let mut w = txn
            .get("kargo.akuity.io", "warehouses", Some("shop"), "app")
            .unwrap();
        w["spec"]["interval"] = json!("7m0s");
        txn.update(w).unwrap();
    });
    let cached = client
        .get_shared::<Warehouse>(Some("shop"), "app")
        .await
        .unwrap();
    assert_eq!(interval(&cached), "10m0s");

    // A write in `shop` drops what was read in `shop`, not in `other`.
    client
        .apply(Some("shop"), "second", &warehouse("5m0s"))
        .await
        .unwrap();
    sandbox.reset_requests();
    let after_write = client
        .get_shared::<Warehouse>(Some("shop"), "app")
        .await
        .unwrap();
    assert_eq!(interval(&after_write), "7m0s", "read again after the write");
    client
        .get_shared::<Warehouse>(Some("other"), "app")
        .await
        .unwrap();
    assert_eq!(
        sandbox.request_counts().get("get", "warehouses"),
        1,
        "only shop's warehouse was read again"
    );

    // A dry run writes nothing and drops nothing.
    client
        .dry_run_apply(Some("shop"), "second", &warehouse("1m0s"))
        .await
        .unwrap();
    sandbox.reset_requests();
    client
        .get_shared::<Warehouse>(Some("shop"), "app")
        .await
        .unwrap();
    assert_eq!(sandbox.request_counts().get("get", "warehouses"), 0);

    // The end of a wait in `shop` drops it too: Kargo acted there meanwhile.
    client
        .wait_until(
            Some("shop"),
            "app",
            "the warehouse",
            Duration::from_secs(10),
            &CancellationToken::new(),
            |w: Option<&Warehouse>| w.is_some(),
        )
        .await
        .unwrap();
    sandbox.reset_requests();
    client
        .get_shared::<Warehouse>(Some("shop"), "app")
        .await
        .unwrap();
    assert_eq!(sandbox.request_counts().get("get", "warehouses"), 1);
}

#[tokio::test]
async fn a_failed_read_is_shared_by_its_waiters_and_read_again_later() {
    let (sandbox, client) = two_projects().await;
    sandbox
        .inject_fault(
            HttpFault::unavailable()
                .verb("get")
                .resource("warehouses")
                .times(1),
        )
        .unwrap();
    let both = tokio::join!(
        client.get_shared::<Warehouse>(Some("shop"), "app"),
        client.get_shared::<Warehouse>(Some("shop"), "app")
    );
    assert!(both.0.is_err() && both.1.is_err(), "{both:?}");
    assert_eq!(sandbox.request_counts().get("get", "warehouses"), 1);
    let later = client
        .get_shared::<Warehouse>(Some("shop"), "app")
        .await
        .unwrap();
    assert_eq!(interval(&later), "10m0s");
    assert_eq!(sandbox.request_counts().get("get", "warehouses"), 2);
}

#[tokio::test]
async fn the_clock_comes_from_answers_already_received() {
    let sandbox = Sandbox::start(Options::default()).await.unwrap();
    let client = connected(&sandbox).await;
    // Nothing received yet: one GET /version for its Date.
    let first = client.server_time().await.unwrap();
    assert_eq!(sandbox.request_counts().get("get", "/version"), 1);
    for _ in 0..10 {
        client.server_time().await.unwrap();
    }
    assert_eq!(
        sandbox.request_counts().total(),
        1,
        "the clock is kept, not asked again"
    );
    let drift = (first - sandbox.now()).get_seconds().abs();
    assert!(drift <= 2, "{first} vs the sandbox's {}", sandbox.now());
    // The sandbox's clock moves on an hour; the next answer's Date says so, without another
    // request for the clock.
    sandbox.advance_clock(Duration::from_secs(3600));
    client.get::<Namespace>(None, "default").await.unwrap();
    let moved = client.server_time().await.unwrap();
    assert_eq!(sandbox.request_counts().get("get", "/version"), 1);
    let drift = (moved - sandbox.now()).get_seconds().abs();
    assert!(drift <= 2, "{moved} vs the sandbox's {}", sandbox.now());
}
