//! Kargo behaviour of an in-process sandbox driven through kube-rs, as real clients see it:
//! Projects, Warehouse defaults, publishing, Promotions, soak, approval, faults, auto-promotion.

mod core_support;

use std::time::Duration;

use core_support::{api, create, get, start_kargo as start, wait_until};
use kube::Client;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use kargo_sandbox::{Sandbox, User};

fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn status_code(e: &kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn project(client: &Client, name: &str) {
    create(client, json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Project", "metadata": {"name": name}}))
        .await
        .unwrap();
}

async fn warehouse(client: &Client, ns: &str, spec: Value) -> Value {
    create(
        client,
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse",
               "metadata": {"name": "w", "namespace": ns}, "spec": spec}),
    )
    .await
    .unwrap()
}

async fn stage(client: &Client, ns: &str, name: &str, sources: Value) {
    let spec = json!({
        "requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}, "sources": sources}],
        "promotionTemplate": {"spec": {"steps": [
            {"uses": "git-clone", "config": {"repoURL": "https://github.com/acme/gitops"}},
            {"uses": "git-push", "as": "push", "config": {"path": "./out"}},
            {"uses": "argocd-update", "config": {"apps": [{"name": "app"}]}}
        ]}},
    });
    create(
        client,
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
               "metadata": {"name": name, "namespace": ns}, "spec": spec}),
    )
    .await
    .unwrap();
}

fn publish(sandbox: &Sandbox, ns: &str, tag: &str) -> Value {
    let body = json!({"project": ns, "warehouse": "w", "images": [{"repoURL": "ghcr.io/acme/app", "tag": tag}]});
    sandbox.control("publish", &body).expect("publish succeeds")
}

async fn promote(
    client: &Client,
    ns: &str,
    stage_name: &str,
    freight: &str,
) -> Result<String, kube::Error> {
    let p = create(
        client,
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
               "metadata": {"name": "my-promotion", "namespace": ns},
               "spec": {"stage": stage_name, "freight": freight, "steps": [{"uses": "ignored"}]}}),
    )
    .await?;
    Ok(p["metadata"]["name"].as_str().unwrap().to_string())
}

async fn finished(client: &Client, ns: &str, name: &str) -> Value {
    wait_until(20, "a terminal Promotion phase", async || {
        let p = get(client, "Promotion", Some(ns), name).await?;
        let phase = p.pointer("/status/phase")?.as_str()?.to_string();
        ["Succeeded", "Failed", "Errored", "Aborted"]
            .contains(&phase.as_str())
            .then_some(p)
    })
    .await
}

/// Kargo's Freight ID formula, applied independently of the sandbox's code.
fn expected_freight_id(warehouse: &str, image: &str, tag: &str, digest: &str) -> String {
    let input = format!("Warehouse/{warehouse}:{image}:{tag}@{digest}");
    Sha1::digest(input.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn project_creates_its_namespace_and_conflicts_with_foreign_ones() {
    let (_sandbox, client) = start().await;
    project(&client, "demo").await;
    let ns = get(&client, "Namespace", None, "demo")
        .await
        .expect("namespace created by the webhook");
    assert_eq!(ns["metadata"]["labels"]["kargo.akuity.io/project"], "true");
    assert!(
        ns["metadata"]["finalizers"]
            .as_array()
            .unwrap()
            .contains(&json!("kargo.akuity.io/finalizer"))
    );
    let ready = wait_until(10, "Project Ready", async || {
        let p = get(&client, "Project", None, "demo").await?;
        condition(&p, "Ready")
            .filter(|c| c["status"] == "True")
            .cloned()
    })
    .await;
    assert_eq!(ready["reason"], "Synced");

    create(
        &client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "taken"}}),
    )
    .await
    .unwrap();
    let err = create(
        &client,
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Project", "metadata": {"name": "taken"}}),
    )
    .await
    .unwrap_err();
    assert_eq!(status_code(&err), 409);
    assert!(
        message(&err).contains("already exists and is not labeled as a Project namespace"),
        "{}",
        message(&err)
    );
}

#[tokio::test]
async fn warehouse_gets_kargo_defaults() {
    let (_sandbox, client) = start().await;
    project(&client, "p").await;
    let w = warehouse(
        &client,
        "p",
        json!({"interval": "10m", "shard": "east", "subscriptions": [
            {"image": {"repoURL": "ghcr.io/acme/app"}},
            {"git": {"repoURL": "https://github.com/acme/app.git"}}
        ]}),
    )
    .await;
    assert_eq!(w["spec"]["interval"], "10m0s");
    assert_eq!(w["spec"]["freightCreationPolicy"], "Automatic");
    assert_eq!(w["metadata"]["labels"]["kargo.akuity.io/shard"], "east");
    let image = &w["spec"]["subscriptions"][0]["image"];
    assert_eq!(image["imageSelectionStrategy"], "SemVer");
    assert_eq!(image["strictSemvers"], true);
    assert_eq!(image["discoveryLimit"], 20);
    assert_eq!(
        w["spec"]["subscriptions"][1]["git"]["commitSelectionStrategy"],
        "NewestFromBranch"
    );

    // v1.11.2 admits the deprecated `allowTags` and fails discovery on it
    // (pkg/image/tag_based_selector.go, reported by pkg/controller/warehouses).
    create(
        &client,
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse",
               "metadata": {"name": "old", "namespace": "p"},
               "spec": {"subscriptions": [{"image": {"repoURL": "ghcr.io/acme/app", "allowTags": "^v"}}]}}),
    )
    .await
    .expect("admitted");
    let ready = wait_until(10, "the discovery failure", async || {
        let w = get(&client, "Warehouse", Some("p"), "old").await?;
        let ready = condition(&w, "Ready")?.clone();
        (ready["reason"] == "DiscoveryFailure").then_some(ready)
    })
    .await;
    assert_eq!(ready["status"], "False");
    assert_eq!(
        ready["message"],
        "Artifact discovery failed: error discovering artifacts: error obtaining selector for \
         image \"ghcr.io/acme/app\": error building tag based selector: AllowTags is deprecated \
         and unsupported as of v1.11.0; use AllowTagsRegexes instead"
    );
}

#[tokio::test]
async fn publish_creates_freight_with_kargo_id_and_alias() {
    let (sandbox, client) = start().await;
    project(&client, "p").await;
    warehouse(
        &client,
        "p",
        json!({"subscriptions": [{"image": {"repoURL": "ghcr.io/acme/app"}}]}),
    )
    .await;
    let body = json!({"project": "p", "warehouse": "w",
        "images": [{"repoURL": "ghcr.io/acme/app", "tag": "1.2.3", "digest": "sha256:0123"}]});
    let out = sandbox.control("publish", &body).unwrap();
    let name = out["name"].as_str().unwrap();
    assert_eq!(
        name,
        expected_freight_id("w", "ghcr.io/acme/app", "1.2.3", "sha256:0123")
    );
    let f = get(&client, "Freight", Some("p"), name)
        .await
        .expect("freight stored");
    let alias = f["alias"].as_str().unwrap();
    assert_eq!(out["alias"], json!(alias));
    assert_eq!(
        f["metadata"]["labels"]["kargo.akuity.io/alias"],
        json!(alias)
    );
    assert_eq!(f["origin"], json!({"kind": "Warehouse", "name": "w"}));

    let again = sandbox.control("publish", &body).unwrap();
    assert_eq!(again["name"], json!(name));
    let w = get(&client, "Warehouse", Some("p"), "w").await.unwrap();
    assert_eq!(w["status"]["lastFreightID"], json!(name));
}

#[tokio::test]
async fn promotion_runs_to_succeeded_and_updates_stage_and_freight() {
    let (sandbox, client) = start().await;
    project(&client, "p").await;
    warehouse(
        &client,
        "p",
        json!({"subscriptions": [{"image": {"repoURL": "ghcr.io/acme/app"}}]}),
    )
    .await;
    stage(&client, "p", "dev", json!({"direct": true})).await;
    let freight = publish(&sandbox, "p", "1.0.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    let name = promote(&client, "p", "dev", &freight).await.unwrap();
    assert!(name.starts_with("dev."), "{name}");
    assert!(name.ends_with(&format!(".{}", &freight[..7])), "{name}");
    assert_ne!(name, "my-promotion");

    let running = wait_until(10, "a Running Promotion", async || {
        let p = get(&client, "Promotion", Some("p"), &name).await?;
        (p.pointer("/status/phase")? == "Running").then_some(p)
    })
    .await;
    assert!(running.pointer("/status/startedAt").is_some());

    let done = finished(&client, "p", &name).await;
    assert_eq!(done["status"]["phase"], "Succeeded", "{}", done["status"]);
    let steps = done["spec"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3, "steps come from the Stage, not the request");
    let metas = done["status"]["stepExecutionMetadata"].as_array().unwrap();
    let aliases: Vec<&str> = metas.iter().map(|m| m["alias"].as_str().unwrap()).collect();
    assert_eq!(aliases, vec!["step-1", "push", "step-3"]);
    assert!(metas.iter().all(|m| m["status"] == "Succeeded"));

    let s = wait_until(10, "Stage Ready", async || {
        let s = get(&client, "Stage", Some("p"), "dev").await?;
        condition(&s, "Ready")
            .filter(|c| c["status"] == "True")
            .map(|_| s.clone())
    })
    .await;
    assert_eq!(
        s["status"]["freightHistory"][0]["items"]["Warehouse/w"]["name"],
        json!(freight)
    );
    assert_eq!(s["status"]["lastPromotion"]["name"], json!(name));
    assert_eq!(s["status"]["freightSummary"], json!(freight));
    let f = get(&client, "Freight", Some("p"), &freight).await.unwrap();
    assert!(f.pointer("/status/currentlyIn/dev/since").is_some());
    assert!(f.pointer("/status/verifiedIn/dev/verifiedAt").is_some());

    let err = api(&client, "Freight", Some("p"))
        .delete(&freight, &DeleteParams::default())
        .await
        .unwrap_err();
    assert_eq!(status_code(&err), 403);
}

#[tokio::test]
async fn soak_time_passes_with_the_sandbox_clock_and_approval_bypasses_it() {
    let (sandbox, client) = start().await;
    project(&client, "p").await;
    warehouse(
        &client,
        "p",
        json!({"subscriptions": [{"image": {"repoURL": "ghcr.io/acme/app"}}]}),
    )
    .await;
    stage(&client, "p", "dev", json!({"direct": true})).await;
    stage(
        &client,
        "p",
        "qa",
        json!({"stages": ["dev"], "requiredSoakTime": "1h"}),
    )
    .await;
    stage(&client, "p", "prod", json!({"stages": ["qa"]})).await;
    let freight = publish(&sandbox, "p", "1.0.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    let name = promote(&client, "p", "dev", &freight).await.unwrap();
    assert_eq!(
        finished(&client, "p", &name).await["status"]["phase"],
        "Succeeded"
    );
    wait_until(10, "verification in dev", async || {
        get(&client, "Freight", Some("p"), &freight)
            .await?
            .pointer("/status/verifiedIn/dev")
            .cloned()
    })
    .await;

    let err = promote(&client, "p", "qa", &freight).await.unwrap_err();
    assert_eq!(status_code(&err), 422);
    assert!(
        message(&err).contains("Freight is not available to this Stage"),
        "{}",
        message(&err)
    );
    let why = sandbox
        .control(
            "available",
            &json!({"project": "p", "stage": "qa", "freight": freight}),
        )
        .unwrap();
    assert_eq!(why["available"], false);
    assert!(
        why["reason"]
            .as_str()
            .unwrap()
            .contains("soaking in Stage \"dev\""),
        "{why}"
    );

    sandbox.advance_clock(Duration::from_secs(3601));
    let qa = promote(&client, "p", "qa", &freight)
        .await
        .expect("available after the soak time");
    assert_eq!(
        finished(&client, "p", &qa).await["status"]["phase"],
        "Succeeded"
    );

    // prod needs qa verification; approval through the status subresource bypasses it.
    let patch =
        json!({"status": {"approvedFor": {"prod": {"approvedAt": "2030-01-01T00:00:00Z"}}}});
    let freights = api(&client, "Freight", Some("p"));
    freights
        .patch_status(&freight, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let why = sandbox
        .control(
            "available",
            &json!({"project": "p", "stage": "prod", "freight": freight}),
        )
        .unwrap();
    assert_eq!(why["available"], true, "{why}");
}

#[tokio::test]
async fn fail_promotion_fault_fails_the_next_promotion_once() {
    let (sandbox, client) = start().await;
    project(&client, "p").await;
    warehouse(
        &client,
        "p",
        json!({"subscriptions": [{"image": {"repoURL": "ghcr.io/acme/app"}}]}),
    )
    .await;
    stage(&client, "p", "dev", json!({"direct": true})).await;
    let freight = publish(&sandbox, "p", "1.0.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    sandbox
        .control(
            "fail-promotion",
            &json!({"project": "p", "stage": "dev", "step": 2, "message": "push rejected"}),
        )
        .unwrap();
    let first = promote(&client, "p", "dev", &freight).await.unwrap();
    let done = finished(&client, "p", &first).await;
    assert_eq!(done["status"]["phase"], "Failed");
    assert_eq!(done["status"]["message"], "step \"push\": push rejected");
    assert_eq!(
        done["status"]["stepExecutionMetadata"][2]["status"],
        "Skipped"
    );

    let second = promote(&client, "p", "dev", &freight).await.unwrap();
    assert_eq!(
        finished(&client, "p", &second).await["status"]["phase"],
        "Succeeded"
    );
}

#[tokio::test]
async fn promote_permission_is_enforced() {
    let (sandbox, client) = start().await;
    project(&client, "p").await;
    warehouse(
        &client,
        "p",
        json!({"subscriptions": [{"image": {"repoURL": "ghcr.io/acme/app"}}]}),
    )
    .await;
    stage(&client, "p", "dev", json!({"direct": true})).await;
    let freight = publish(&sandbox, "p", "1.0.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    sandbox.add_user(User::new("viewer", "viewer-token").deny("promote", "stages"));
    let mut config = core_support::config_for(sandbox.kubeconfig_path()).await;
    config.auth_info.token = Some("viewer-token".to_string().into());
    let viewer = Client::try_from(config).unwrap();
    let err = promote(&viewer, "p", "dev", &freight).await.unwrap_err();
    assert_eq!(status_code(&err), 500);
    assert!(
        message(&err)
            .contains("subject \"viewer\" is not permitted to create Promotions for Stage \"dev\""),
        "{}",
        message(&err)
    );
}

#[tokio::test]
async fn project_config_turns_on_auto_promotion() {
    let (sandbox, client) = start().await;
    project(&client, "p").await;
    warehouse(
        &client,
        "p",
        json!({"subscriptions": [{"image": {"repoURL": "ghcr.io/acme/app"}}]}),
    )
    .await;
    stage(&client, "p", "dev", json!({"direct": true})).await;
    stage(&client, "p", "prod", json!({"direct": true})).await;
    create(
        &client,
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "ProjectConfig",
               "metadata": {"name": "p", "namespace": "p"},
               "spec": {"promotionPolicies": [{"stageSelector": {"name": "regex:^dev$"}, "autoPromotionEnabled": true}]}}),
    )
    .await
    .unwrap();
    wait_until(10, "autoPromotionEnabled on dev", async || {
        let s = get(&client, "Stage", Some("p"), "dev").await?;
        (s.pointer("/status/autoPromotionEnabled")? == true).then_some(())
    })
    .await;

    let freight = publish(&sandbox, "p", "1.0.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    let s = wait_until(20, "dev to get the new Freight by itself", async || {
        let s = get(&client, "Stage", Some("p"), "dev").await?;
        (s.pointer("/status/freightHistory/0/items/Warehouse~1w/name")? == &json!(freight))
            .then_some(s)
    })
    .await;
    assert_eq!(s["status"]["autoPromotionEnabled"], true);
    let prod = get(&client, "Stage", Some("p"), "prod").await.unwrap();
    assert!(
        prod["status"].get("autoPromotionEnabled").is_none(),
        "omitempty, as Kargo writes it"
    );
    assert!(
        prod.pointer("/status/freightHistory/0").is_none(),
        "prod is not auto-promoted"
    );
    let promos = api(&client, "Promotion", Some("p"))
        .list(&Default::default())
        .await
        .unwrap();
    assert_eq!(promos.items.len(), 1);
    let auto = &promos.items[0];
    assert!(
        auto.metadata
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key("kargo.akuity.io/create-actor"))
    );
}
