//! The sandbox as a promotion test bench: the cluster clock in every `Date` header, the
//! `promote` command (Kargo's UI and CLI) and `hold-promotion` (a promotion that keeps running).

mod core_support;

use std::time::Duration;

use core_support::{create, get, start_kargo as start, wait_until};
use kube::Client;
use serde_json::{Value, json};

use kargo_sandbox::Sandbox;

async fn promotion(client: &Client, name: &str) -> Value {
    get(client, "Promotion", Some("p"), name)
        .await
        .expect("promotion exists")
}

async fn phase_eventually(client: &Client, name: &str, want: &str) -> Value {
    wait_until(
        20,
        &format!("promotion {name} to reach {want}"),
        async || {
            let p = promotion(client, name).await;
            (p["status"]["phase"] == want).then_some(p)
        },
    )
    .await
}

/// A project with a warehouse, a `dev` stage taking freight directly and a `prod` stage
/// taking it from `dev`; returns the name and alias of freight for tag 1.0.0.
async fn pipeline(sandbox: &Sandbox, client: &Client) -> (String, String) {
    create(client, json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Project", "metadata": {"name": "p"}})).await.expect("created");
    create(
        client,
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse",
        "metadata": {"name": "w", "namespace": "p"},
        "spec": {"subscriptions": [{"image": {"repoURL": "ghcr.io/acme/app"}}]}}),
    )
    .await
    .expect("created");
    for (name, sources) in [
        ("dev", json!({"direct": true})),
        ("prod", json!({"stages": ["dev"]})),
    ] {
        create(client, json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
            "metadata": {"name": name, "namespace": "p"},
            "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}, "sources": sources}],
                     "promotionTemplate": {"spec": {"steps": [{"uses": "git-clone", "as": "clone"}, {"uses": "git-push", "as": "push"}]}}}}))
        .await
        .expect("created");
    }
    let out = sandbox
        .control(
            "publish",
            &json!({"project": "p", "warehouse": "w", "images": [{"repoURL": "ghcr.io/acme/app", "tag": "1.0.0"}]}),
        )
        .expect("publish");
    (
        out["name"].as_str().expect("name").to_string(),
        out["alias"].as_str().expect("alias").to_string(),
    )
}

#[tokio::test]
async fn every_response_carries_the_sandbox_clock() {
    let (sandbox, client) = start().await;
    let date = || async {
        let req = http::Request::get("/version")
            .body(kube::client::Body::empty())
            .unwrap();
        let resp = client.send(req).await.expect("answer");
        let text = resp.headers()[http::header::DATE]
            .to_str()
            .unwrap()
            .to_string();
        jiff::fmt::rfc2822::DateTimeParser::new()
            .parse_timestamp(&text)
            .expect("an HTTP date")
    };
    let before = date().await;
    assert!(
        before.duration_since(jiff::Timestamp::now()).abs() < jiff::SignedDuration::from_secs(5),
        "starts at real time"
    );
    sandbox.advance_clock(Duration::from_secs(3 * 3600));
    let after = date().await;
    assert!(
        after.duration_since(before) >= jiff::SignedDuration::from_secs(3 * 3600),
        "{before} -> {after}"
    );
}

#[tokio::test]
async fn promote_acts_like_the_ui_and_refuses_unavailable_freight() {
    let (sandbox, client) = start().await;
    let (freight, alias) = pipeline(&sandbox, &client).await;
    let out = sandbox
        .control(
            "promote",
            &json!({"project": "p", "stage": "dev", "freight": alias}),
        )
        .expect("promote by alias");
    let name = out["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("dev."), "{name}");
    let done = phase_eventually(&client, &name, "Succeeded").await;
    assert_eq!(done["spec"]["freight"], json!(freight));
    assert_eq!(
        done["metadata"]["annotations"]["kargo.akuity.io/create-actor"],
        "admin"
    );
    let err = sandbox
        .control(
            "promote",
            &json!({"project": "p", "stage": "prod", "freight": "nope"}),
        )
        .unwrap_err();
    assert_eq!(err.code, 404);
    // prod takes freight only once dev has verified it; right after the promotion it may
    // not have, so use a second freight that dev never saw.
    let other = sandbox
        .control(
            "publish",
            &json!({"project": "p", "warehouse": "w", "images": [{"repoURL": "ghcr.io/acme/app", "tag": "1.1.0"}]}),
        )
        .unwrap();
    let err = sandbox
        .control(
            "promote",
            &json!({"project": "p", "stage": "prod", "freight": other["name"]}),
        )
        .unwrap_err();
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains("not verified in Stage \"dev\""),
        "{}",
        err.message
    );
    assert!(
        sandbox
            .control("promote", &json!({"project": "p"}))
            .is_err()
    );
}

#[tokio::test]
async fn held_promotions_keep_running_until_faults_are_cleared() {
    let (sandbox, client) = start().await;
    let (freight, _) = pipeline(&sandbox, &client).await;
    sandbox
        .control(
            "hold-promotion",
            &json!({"project": "p", "stage": "dev", "step": "push"}),
        )
        .expect("hold");
    let out = sandbox
        .control(
            "promote",
            &json!({"project": "p", "stage": "dev", "freight": freight}),
        )
        .unwrap();
    let name = out["name"].as_str().unwrap().to_string();
    phase_eventually(&client, &name, "Running").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let p = promotion(&client, &name).await;
    assert_eq!(p["status"]["phase"], "Running", "still held");
    assert_eq!(
        p["status"]["stepExecutionMetadata"][0]["status"],
        "Succeeded"
    );
    assert_eq!(p["status"]["stepExecutionMetadata"][1]["status"], "Running");
    sandbox.clear_faults().unwrap();
    phase_eventually(&client, &name, "Succeeded").await;
}
