//! Kubernetes semantics through kube-rs: server-side apply and conflicts, watches,
//! optimistic concurrency, generation, status subresource, finalizers and namespaces.

mod core_support;

use std::time::Duration;

use core_support::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};

fn warehouse(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse",
        "metadata": {"name": name, "namespace": "p"}, "spec": spec})
}

fn stage(name: &str, finalizers: &[&str]) -> DynamicObject {
    dynamic(
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
        "metadata": {"name": name, "namespace": "p", "finalizers": finalizers},
        "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}, "sources": {"direct": true}}]}}),
    )
}

fn managers(obj: &DynamicObject) -> Vec<(String, String)> {
    obj.metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn owned_by(obj: &DynamicObject, manager: &str) -> Value {
    let entry = obj
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|m| m.manager.as_deref() == Some(manager));
    entry
        .and_then(|e| e.fields_v1.as_ref())
        .map(|f| f.0.clone())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn server_side_apply_conflicts_force_and_releases_fields() {
    let sandbox = start_plain().await;
    let client = client(&sandbox).await;
    namespace(&client, "p").await;
    let api = kargo_api(&client, "p", "Warehouse", "warehouses");
    let subs = json!([{"image": {"repoURL": "ghcr.io/a/b"}}]);

    let mut alice = warehouse("w", json!({"interval": "1m", "subscriptions": subs}));
    alice["metadata"]["labels"] = json!({"team": "a", "tier": "x"});
    let created = api
        .patch("w", &PatchParams::apply("alice"), &Patch::Apply(&alice))
        .await
        .unwrap();
    assert_eq!(created.data["spec"]["interval"], "1m");
    assert_eq!(
        managers(&created),
        vec![("alice".to_string(), "Apply".to_string())]
    );
    assert_eq!(
        owned_by(&created, "alice")["f:spec"]["f:interval"],
        json!({})
    );

    // Another manager changing a field alice owns is a conflict naming field and manager.
    let bob = warehouse("w", json!({"interval": "2m"}));
    let err = api_error(
        api.patch("w", &PatchParams::apply("bob"), &Patch::Apply(&bob))
            .await,
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"alice\": .spec.interval"
    );
    let raw = api.get_opt("w").await.unwrap().unwrap();
    assert_eq!(
        raw.data["spec"]["interval"], "1m",
        "a refused apply changes nothing"
    );

    let causes = err
        .details
        .as_ref()
        .map(|d| d.causes.clone())
        .unwrap_or_default();
    let causes: Vec<(String, String, String)> = causes
        .into_iter()
        .map(|c| (c.reason, c.message, c.field))
        .collect();
    assert_eq!(
        causes,
        vec![(
            "FieldManagerConflict".into(),
            "conflict with \"alice\"".into(),
            ".spec.interval".into()
        )]
    );

    // Forcing takes ownership.
    let forced = api
        .patch("w", &PatchParams::apply("bob").force(), &Patch::Apply(&bob))
        .await
        .unwrap();
    assert_eq!(forced.data["spec"]["interval"], "2m");
    assert!(
        owned_by(&forced, "alice")["f:spec"]
            .get("f:interval")
            .is_none()
    );
    assert_eq!(owned_by(&forced, "bob")["f:spec"]["f:interval"], json!({}));

    // Alice omits the `tier` label she applied before: nobody else owns it, so it goes.
    let mut again = warehouse("w", json!({"subscriptions": subs}));
    again["metadata"]["labels"] = json!({"team": "a"});
    let after = api
        .patch("w", &PatchParams::apply("alice"), &Patch::Apply(&again))
        .await
        .unwrap();
    let labels = after.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
    assert!(
        !labels.contains_key("tier"),
        "released label removed: {labels:?}"
    );
    assert_eq!(after.data["spec"]["interval"], "2m", "bob's field stays");

    // Re-applying the same configuration later changes nothing, not even the resourceVersion.
    sandbox.advance_clock(Duration::from_secs(120));
    let same = api
        .patch("w", &PatchParams::apply("alice"), &Patch::Apply(&again))
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version,
        after.metadata.resource_version
    );
}

#[tokio::test]
async fn get_opt_missing_object_and_wrong_token() {
    let sandbox = start_plain().await;
    let client = client(&sandbox).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default-ns");
    namespace(&client, "default-ns").await;
    assert!(cms.get_opt("nope").await.unwrap().is_none());
    let err = api_error(cms.get("nope").await);
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "configmaps \"nope\" not found");

    let text = std::fs::read_to_string(sandbox.kubeconfig_path())
        .unwrap()
        .replace(sandbox.token(), "wrong-token");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("kubeconfig");
    std::fs::write(&bad, text).unwrap();
    let bad_client = client_for(&bad).await;
    let err = api_error(
        Api::<Namespace>::all(bad_client)
            .list(&Default::default())
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (401, "Unauthorized"));
}

#[tokio::test]
async fn stale_update_conflicts_and_generation_tracks_spec_only() {
    let sandbox = start_plain().await;
    let client = client(&sandbox).await;
    namespace(&client, "p").await;
    let api = kargo_api(&client, "p", "Stage", "stages");
    let created = api
        .create(&PostParams::default(), &stage("s", &[]))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    // Metadata-only change: generation stays.
    let mut labelled = created.clone();
    labelled.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
    let labelled = api
        .replace("s", &PostParams::default(), &labelled)
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(1));
    assert_ne!(
        labelled.metadata.resource_version,
        created.metadata.resource_version
    );

    // A PUT carrying the old resourceVersion is refused.
    let err = api_error(api.replace("s", &PostParams::default(), &created).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on stages.kargo.akuity.io \"s\": the object has been modified; please apply \
         your changes to the latest version and try again"
    );

    // Status writes don't bump generation; spec writes do.
    let mut with_status = labelled.clone();
    with_status.data["status"] = json!({"freightSummary": "0/1 Fulfilled"});
    let status_written = api
        .replace_status("s", &PostParams::default(), &with_status)
        .await
        .unwrap();
    assert_eq!(status_written.metadata.generation, Some(1));
    assert_eq!(
        status_written.data["status"]["freightSummary"],
        "0/1 Fulfilled"
    );

    let mut spec_changed = status_written.clone();
    spec_changed.data["spec"]["shard"] = json!("east");
    let spec_written = api
        .replace("s", &PostParams::default(), &spec_changed)
        .await
        .unwrap();
    assert_eq!(spec_written.metadata.generation, Some(2));
}

#[tokio::test]
async fn status_subresource_is_separate_from_the_main_resource() {
    let sandbox = start_plain().await;
    let client = client(&sandbox).await;
    namespace(&client, "p").await;
    let api = kargo_api(&client, "p", "Stage", "stages");
    let mut s = stage("s", &[]);
    s.data["status"] = json!({"freightSummary": "ignored on create"});
    let created = api.create(&PostParams::default(), &s).await.unwrap();
    assert!(
        created.data.get("status").is_none(),
        "create cannot set status: {:?}",
        created.data
    );

    // Main resource: status in the body is ignored.
    let mut main = created.clone();
    main.data["status"] = json!({"freightSummary": "from main"});
    main.data["spec"]["shard"] = json!("a");
    let after_main = api
        .replace("s", &PostParams::default(), &main)
        .await
        .unwrap();
    assert_eq!(after_main.data["spec"]["shard"], "a");
    assert!(after_main.data.get("status").is_none());

    // Status subresource: only status changes.
    let patch = json!({"spec": {"shard": "b"}, "status": {"freightSummary": "from status"}});
    let after_status = api
        .patch_status("s", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(after_status.data["spec"]["shard"], "a");
    assert_eq!(after_status.data["status"]["freightSummary"], "from status");
    let status_manager = after_status
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|m| m.subresource.as_deref() == Some("status"))
        .map(|m| m.operation.clone());
    assert_eq!(status_manager, Some(Some("Update".to_string())));
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let sandbox = start_plain().await;
    let client = client(&sandbox).await;
    namespace(&client, "p").await;
    let api = kargo_api(&client, "p", "Stage", "stages");
    api.create(&PostParams::default(), &stage("s", &["example.com/hold"]))
        .await
        .unwrap();

    api.delete("s", &DeleteParams::default()).await.unwrap();
    let held = api
        .get_opt("s")
        .await
        .unwrap()
        .expect("still there while the finalizer is set");
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(
        held.metadata.generation,
        Some(2),
        "setting deletionTimestamp bumps generation"
    );

    let patch = json!({"metadata": {"finalizers": null}});
    api.patch("s", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert!(
        api.get_opt("s").await.unwrap().is_none(),
        "gone once the last finalizer is removed"
    );
}

#[tokio::test]
async fn namespace_deletion_terminates_content_and_waits_for_finalizers() {
    let sandbox = start_plain().await;
    let client = client(&sandbox).await;
    namespace(&client, "p").await;
    let nss: Api<Namespace> = Api::all(client.clone());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "p");
    let stages = kargo_api(&client, "p", "Stage", "stages");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"k": "v"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    stages
        .create(&PostParams::default(), &stage("s", &["example.com/hold"]))
        .await
        .unwrap();
    let mut ns = nss.get("p").await.unwrap();
    ns.metadata.finalizers = Some(vec!["kargo.akuity.io/finalizer".into()]);
    nss.replace("p", &PostParams::default(), &ns).await.unwrap();

    nss.delete("p", &DeleteParams::default()).await.unwrap();
    let terminating = nss.get("p").await.unwrap();
    assert_eq!(
        terminating.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert!(
        cms.get_opt("c").await.unwrap().is_none(),
        "content without finalizers is deleted at once"
    );
    assert!(
        stages
            .get("s")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );

    let err = api_error(cms.create(&PostParams::default(), &cm).await);
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        err.message,
        "configmaps \"c\" is forbidden: unable to create new content in namespace p because it is being terminated"
    );
    let missing: Api<ConfigMap> = Api::namespaced(client.clone(), "nope");
    let err = api_error(missing.create(&PostParams::default(), &cm).await);
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );

    stages
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    assert!(
        nss.get_opt("p").await.unwrap().is_some(),
        "the namespace's own finalizer still holds it"
    );
    let json_patch = json!([{"op": "remove", "path": "/metadata/finalizers"}]);
    nss.patch(
        "p",
        &PatchParams::default(),
        &Patch::Json::<()>(serde_json::from_value(json_patch).unwrap()),
    )
    .await
    .unwrap();
    assert!(
        nss.get_opt("p").await.unwrap().is_none(),
        "empty and unfinalized: gone"
    );
}

#[tokio::test]
async fn watchers_see_changes_and_streaming_lists() {
    let sandbox = start_plain().await;
    let client = client(&sandbox).await;
    namespace(&client, "w").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "w");
    let cm = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
    };
    cms.create(&PostParams::default(), &cm("before"))
        .await
        .unwrap();

    for cfg in [
        watcher::Config::default(),
        watcher::Config::default().streaming_lists(),
    ] {
        let mut events = watcher(cms.clone(), cfg).boxed();
        let mut next = async || {
            tokio::time::timeout(Duration::from_secs(5), events.try_next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
        };
        // The initial list (ended by InitDone, a bookmark for streaming lists), then live changes.
        let mut initial = Vec::new();
        loop {
            match next().await {
                watcher::Event::InitApply(o) => initial.push(o.metadata.name.unwrap_or_default()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
        assert!(initial.contains(&"before".to_string()), "{initial:?}");
        let new_name = format!("z-{}", sandbox.request_counts().total());
        cms.create(&PostParams::default(), &cm(&new_name))
            .await
            .unwrap();
        match next().await {
            watcher::Event::Apply(o) => {
                assert_eq!(o.metadata.name.as_deref(), Some(new_name.as_str()))
            }
            other => panic!("expected the new object, got {other:?}"),
        }
    }

    // A raw watch from an old version replays; from a version no longer kept it is 410 Gone.
    let list = cms.list(&Default::default()).await.unwrap();
    let rv: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
    cms.delete("before", &DeleteParams::default())
        .await
        .unwrap();
    let mut events = cms
        .watch(&Default::default(), &rv.to_string())
        .await
        .unwrap()
        .boxed();
    let ev = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(ev, kube::api::WatchEvent::Deleted(ref o) if o.metadata.name.as_deref() == Some("before")),
        "{ev:?}"
    );

    // Once the replay window has moved past a version, watching from it is 410 Gone.
    sandbox.with_txn(|txn| {
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "churn", "namespace": "w"}});
        txn.create(cm.clone()).unwrap();
        for i in 0..10_001 {
            cm["data"] = json!({"i": i.to_string()});
            txn.update(cm.clone()).unwrap();
        }
    });
    let mut events = cms
        .watch(&Default::default(), &rv.to_string())
        .await
        .unwrap()
        .boxed();
    let ev = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match ev {
        kube::api::WatchEvent::Error(e) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

#[tokio::test]
async fn generate_name_dry_run_and_method_errors() {
    let sandbox = start_plain().await;
    let client = client(&sandbox).await;
    namespace(&client, "p").await;
    let api = kargo_api(&client, "p", "Stage", "stages");
    let mut generated = stage("ignored", &[]);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("dev-".into());
    let created = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    let name = created.metadata.name.clone().unwrap();
    assert!(name.len() == 9 && name.starts_with("dev-"), "{name}");
    assert!(
        name[4..]
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        "{name}"
    );
    assert!(
        created
            .metadata
            .uid
            .as_deref()
            .is_some_and(|u| u.len() == 36)
    );
    assert!(created.metadata.creation_timestamp.is_some());

    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let preview = api.create(&dry, &stage("preview", &[])).await.unwrap();
    assert_eq!(preview.metadata.name.as_deref(), Some("preview"));
    assert!(
        api.get_opt("preview").await.unwrap().is_none(),
        "dry-run stores nothing"
    );
    api.delete(
        &name,
        &DeleteParams {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        api.get_opt(&name).await.unwrap().is_some(),
        "dry-run deletes nothing"
    );

    // As on a real API server, a create carrying a resourceVersion is refused outright…
    let e = api_error(api.create(&PostParams::default(), &created).await);
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            500,
            "resourceVersion should not be set on objects to be created"
        )
    );
    // …and an existing name is a conflict.
    let mut again = created.clone();
    again.metadata.resource_version = None;
    let e = api_error(api.create(&PostParams::default(), &again).await);
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(
        e.message,
        format!("stages.kargo.akuity.io \"{name}\" already exists")
    );

    let req = http::Request::builder()
        .method("POST")
        .uri(format!(
            "/apis/kargo.akuity.io/v1alpha1/namespaces/p/stages/{name}"
        ))
        .body(b"{}".to_vec())
        .unwrap();
    let e = api_error(client.request_text(req).await);
    assert_eq!((e.code, e.reason.as_str()), (405, "MethodNotAllowed"));
    let req = http::Request::builder()
        .method("PATCH")
        .uri(format!(
            "/apis/kargo.akuity.io/v1alpha1/namespaces/p/stages/{name}"
        ))
        .header("Content-Type", "application/strategic-merge-patch+json")
        .body(b"{}".to_vec())
        .unwrap();
    let e = api_error(client.request_text(req).await);
    assert_eq!((e.code, e.reason.as_str()), (415, "UnsupportedMediaType"));
}

#[tokio::test]
async fn paths_route_like_the_api_server() {
    let sandbox = start_plain().await;
    let client = client(&sandbox).await;
    namespace(&client, "p").await;
    let get = async |method: &str, path: &str| -> (u16, Value) {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .body(kube::client::Body::empty())
            .unwrap();
        let resp = client.send(req).await.expect("an answer");
        let code = resp.status().as_u16();
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    };
    let logged = || {
        let r = sandbox.requests().pop().expect("logged");
        (r.verb, r.resource, r.namespace, r.name, r.code)
    };
    let s = |v: &str| Some(v.to_string());

    let (code, ns) = get("GET", "/api/v1/namespaces/p").await;
    assert_eq!((code, ns["metadata"]["name"].as_str()), (200, Some("p")));
    assert_eq!(
        logged(),
        ("get".into(), "namespaces".into(), None, s("p"), 200)
    );
    // `namespaces/<ns>/<word>` is the namespace's subresource when <word> is not a kind.
    let (code, ns) = get("GET", "/api/v1/namespaces/p/status").await;
    assert_eq!(
        (code, ns["status"]["phase"].as_str()),
        (200, Some("Active"))
    );
    assert_eq!(
        logged(),
        ("get".into(), "namespaces/status".into(), None, s("p"), 200)
    );
    let (code, list) = get("GET", "/api/v1/namespaces/p/configmaps").await;
    assert_eq!((code, list["kind"].as_str()), (200, Some("ConfigMapList")));
    assert_eq!(
        logged(),
        ("list".into(), "configmaps".into(), s("p"), None, 200)
    );
    let (code, _) = get(
        "GET",
        "/api/v1/watch/namespaces/p/configmaps?timeoutSeconds=1",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        logged(),
        ("watch".into(), "configmaps".into(), s("p"), None, 200)
    );
    // Query values are percent-decoded (and `+` is a space).
    let (code, list) = get(
        "GET",
        "/api/v1/namespaces?labelSelector=kubernetes.io%2Fmetadata.name+in+%28p%29",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");

    let stages = "/apis/kargo.akuity.io/v1alpha1/namespaces/p/stages";
    let (code, e) = get("GET", &format!("{stages}/x/status")).await;
    assert_eq!((code, e["reason"].as_str()), (404, Some("NotFound")));
    assert_eq!(e["message"], "stages.kargo.akuity.io \"x\" not found");
    assert_eq!(
        logged(),
        ("get".into(), "stages/status".into(), s("p"), s("x"), 404)
    );
    let (code, e) = get("GET", &format!("{stages}/x/bogus")).await;
    assert_eq!(
        (code, e["message"].as_str()),
        (
            404,
            Some("the server could not find the requested resource")
        )
    );
    for missing in [
        "/api/v2/namespaces",
        "/nope",
        "/openapi/v3/apis/nope/v1",
        "/apis/kargo.akuity.io/v1alpha1/namespaces/p/stages/x/status/more",
    ] {
        let (code, _) = get("GET", missing).await;
        assert_eq!(code, 404, "{missing}");
    }
    assert_eq!(
        logged(),
        (
            "get".into(),
            "/apis/kargo.akuity.io/v1alpha1/namespaces/p/stages/x/status/more".into(),
            None,
            None,
            404
        )
    );
    let (code, e) = get("POST", "/version").await;
    assert_eq!(
        (code, e["reason"].as_str()),
        (405, Some("MethodNotAllowed"))
    );
}

/// The store's resourceVersion (a list's), which any write moves.
async fn store_version(client: &kube::Client) -> String {
    Api::<Namespace>::all(client.clone())
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
}

#[tokio::test]
async fn dry_run_answers_what_would_be_and_changes_nothing() {
    let sandbox = start_plain().await;
    let client = client(&sandbox).await;
    namespace(&client, "p").await;
    let api = kargo_api(&client, "p", "Warehouse", "warehouses");
    let subs = json!([{"image": {"repoURL": "ghcr.io/a/b"}}]);
    let mut body = warehouse("w", json!({"interval": "1m", "subscriptions": subs}));
    body["metadata"]["finalizers"] = json!(["test/hold"]);
    let live = api
        .create(&PostParams::default(), &dynamic(body))
        .await
        .unwrap();
    let rv = live.metadata.resource_version.clone();
    let before = store_version(&client).await;
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };

    // Create: defaulted, named from generateName, given a uid; not stored, no version.
    let mut generated = warehouse("", json!({"subscriptions": subs}));
    generated["metadata"] = json!({"generateName": "w-", "namespace": "p"});
    let preview = api.create(&dry, &dynamic(generated)).await.unwrap();
    let name = preview.metadata.name.clone().unwrap();
    assert!(name.starts_with("w-") && name.len() == 7, "{name}");
    assert_eq!(preview.data["spec"]["interval"], "5m0s");
    assert!(preview.metadata.uid.is_some() && preview.metadata.resource_version.is_none());
    assert!(api.get_opt(&name).await.unwrap().is_none());

    // Update, merge and JSON patch, apply: the changed object at the same resourceVersion.
    let mut changed = live.clone();
    changed.data["spec"]["interval"] = json!("2m");
    let updated = api.replace("w", &dry, &changed).await.unwrap();
    let patch = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let merged = api
        .patch(
            "w",
            &patch,
            &Patch::Merge(json!({"spec": {"interval": "3m"}})),
        )
        .await
        .unwrap();
    let replace = json!([{"op": "replace", "path": "/spec/interval", "value": "4m"}]);
    let patched = api
        .patch(
            "w",
            &patch,
            &Patch::Json::<()>(serde_json::from_value(replace).unwrap()),
        )
        .await
        .unwrap();
    let applied = api
        .patch(
            "w",
            &PatchParams::apply("preview").dry_run().force(),
            &Patch::Apply(warehouse("w", json!({"interval": "5m"}))),
        )
        .await
        .unwrap();
    for (obj, interval) in [
        (&updated, "2m"),
        (&merged, "3m"),
        (&patched, "4m"),
        (&applied, "5m"),
    ] {
        assert_eq!(obj.data["spec"]["interval"], interval);
        assert_eq!(obj.metadata.resource_version, rv, "{interval}");
        assert_eq!(obj.metadata.generation, Some(2), "{interval}");
    }
    assert!(managers(&applied).contains(&("preview".into(), "Apply".into())));
    let created_by_apply = api
        .patch(
            "new",
            &PatchParams::apply("preview").dry_run(),
            &Patch::Apply(warehouse("new", json!({"subscriptions": subs}))),
        )
        .await
        .unwrap();
    assert_eq!(created_by_apply.data["spec"]["interval"], "5m0s");
    assert!(api.get_opt("new").await.unwrap().is_none());

    // Delete: the object as the deletion would leave it (marked, as it has a finalizer).
    let dry_delete = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    let marked = api.delete("w", &dry_delete).await.unwrap().left().unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.generation, Some(2));
    api.delete_collection(&dry_delete, &Default::default())
        .await
        .unwrap();
    let ns = Api::<Namespace>::all(client.clone())
        .delete("p", &dry_delete)
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(
        ns.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );

    // Nothing changed: the stored object, the namespace, the store's version.
    let stored = api.get("w").await.unwrap();
    assert_eq!(
        serde_json::to_value(&stored).unwrap(),
        serde_json::to_value(&live).unwrap()
    );
    let ns = Api::<Namespace>::all(client.clone())
        .get("p")
        .await
        .unwrap();
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    assert_eq!(store_version(&client).await, before);
}

#[tokio::test]
async fn dry_run_runs_admission_and_validation_without_side_effects() {
    let sandbox = start(kargo_sandbox::Options::default()).await;
    let client = client(&sandbox).await;
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let projects: Api<DynamicObject> =
        Api::all_with(client.clone(), &kargo_resource("Project", "projects"));
    let project = dynamic(
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Project",
        "metadata": {"name": "dry"}}),
    );
    let preview = projects.create(&dry, &project).await.unwrap();
    assert_eq!(preview.metadata.name.as_deref(), Some("dry"));
    assert!(projects.get_opt("dry").await.unwrap().is_none());
    let namespaces = Api::<Namespace>::all(client.clone());
    assert!(
        namespaces.get_opt("dry").await.unwrap().is_none(),
        "the Project webhook creates no namespace for a dry run"
    );

    // The same refusals as a real write: the webhook's and the schema's.
    namespace(&client, "plain").await;
    let warehouses = kargo_api(&client, "plain", "Warehouse", "warehouses");
    let subs = json!([{"image": {"repoURL": "ghcr.io/a/b"}}]);
    let mut w = warehouse("w", json!({"subscriptions": subs}));
    w["metadata"]["namespace"] = json!("plain");
    let real = api_error(
        warehouses
            .create(&PostParams::default(), &dynamic(w.clone()))
            .await,
    );
    let dry_err = api_error(warehouses.create(&dry, &dynamic(w.clone())).await);
    assert_eq!(real.code, 422);
    assert_eq!((dry_err.code, dry_err.message), (real.code, real.message));
    projects
        .create(&PostParams::default(), &project)
        .await
        .unwrap();
    let in_project = kargo_api(&client, "dry", "Warehouse", "warehouses");
    // Go parses `-1h` (so the mutating webhook passes it on as `-1h0m0s`); the CRD's
    // pattern refuses it.
    let mut bad = warehouse("w", json!({"interval": "-1h", "subscriptions": subs}));
    bad["metadata"]["namespace"] = json!("dry");
    let e = api_error(in_project.create(&dry, &dynamic(bad)).await);
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains("spec.interval in body should match"),
        "{}",
        e.message
    );

    // Only `All` is a dry run.
    let req = http::Request::builder()
        .method("POST")
        .uri("/apis/kargo.akuity.io/v1alpha1/projects?dryRun=Some")
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&project).unwrap())
        .unwrap();
    let e = api_error(client.request_text(req).await);
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            422,
            "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Some\"}: supported values: \"All\""
        )
    );
}

#[tokio::test]
async fn access_reviews_in_json_answer_for_the_authenticated_user() {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let sandbox = start_kargo().await.0;
    sandbox.add_user(kargo_sandbox::User::new("carol", "carol-token").deny("delete", "stages"));
    let mut config = config_for(sandbox.kubeconfig_path()).await;
    config.auth_info.token = Some("carol-token".to_string().into());
    let carol = kube::Client::try_from(config).unwrap();
    let review = |verb: &str| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some("kargo.akuity.io".into()),
                resource: Some("stages".into()),
                namespace: Some("p".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(carol);
    for (verb, allowed) in [("delete", false), ("get", true)] {
        let answer = api
            .create(&PostParams::default(), &review(verb))
            .await
            .unwrap();
        assert_eq!(answer.status.map(|s| s.allowed), Some(allowed), "{verb}");
    }
    // A review is answered, not stored: there is nothing to get.
    let err = api_error(api.get("x").await);
    assert_eq!(err.code, 405);
}
