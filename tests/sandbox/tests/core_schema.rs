//! CRD schema enforcement with the committed facts of Kargo's CRDs: defaults, pruning, 422
//! field errors worded like the API server's, the CEL rules, and real-world manifests.

mod core_support;

use std::collections::BTreeSet;

use core_support::*;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// Every `x-kubernetes-validations` rule in Kargo v1.11's CRDs. A CRD update that adds a
/// rule makes this test fail until the sandbox implements it.
const KNOWN_RULES: &[&str] = &[
    "!has(self.task) || !has(self.continueOnError)",
    "!has(self.task) || !has(self.retry)",
    "(has(self.uses) ? !has(self.task) : has(self.task))",
    "has(self.freight) != has(self.origin)",
    "has(self.stage) ? !has(self.stageSelector) : has(self.stageSelector)",
    "has(self.uses) && !has(self.task)",
    "self.size() <= 1 || self[1] == 'Failed' || self[1] == 'Error'",
    "self.size() <= 1 || self[1] == 'Failed' || self[1] == 'Errored'",
    "self.size() == 0 || self[0] == 'Failed' || self[0] == 'Error'",
    "self.size() == 0 || self[0] == 'Failed' || self[0] == 'Errored'",
];

#[test]
fn every_cel_rule_in_the_crds_is_implemented() {
    let catalog = kargo_sandbox::schema::catalog();
    assert_eq!(catalog.crds.len(), 9);
    let loaded: BTreeSet<String> = catalog.rules().iter().map(|r| normalise(r)).collect();
    for rule in &loaded {
        assert!(
            kargo_sandbox::cel::known(rule),
            "CRD rule not implemented by the sandbox: {rule}"
        );
    }
    let listed: BTreeSet<String> = KNOWN_RULES.iter().map(|r| normalise(r)).collect();
    assert_eq!(
        loaded, listed,
        "the CRDs' rules changed: implement new ones in cel.rs and list them here"
    );
}

fn normalise(rule: &str) -> String {
    rule.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn causes(e: &kube::core::Status) -> Vec<(String, String)> {
    e.details
        .iter()
        .flat_map(|d| d.causes.iter())
        .map(|c| (c.field.clone(), c.message.clone()))
        .collect()
}

#[tokio::test]
async fn invalid_objects_are_rejected_with_field_paths() {
    let sandbox = start_plain().await;
    let client = client(&sandbox).await;
    namespace(&client, "p").await;
    let pp = PostParams::default();

    let warehouses = kargo_api(&client, "p", "Warehouse", "warehouses");
    let bad_interval = dynamic(
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse",
        "metadata": {"name": "w", "namespace": "p"},
        "spec": {"interval": "5 minutes", "subscriptions": [{"image": {"repoURL": "r"}}]}}),
    );
    let e = api_error(warehouses.create(&pp, &bad_interval).await);
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    let pattern = r"^([0-9]+(\.[0-9]+)?(s|m|h))+$";
    assert_eq!(
        causes(&e),
        vec![(
            "spec.interval".to_string(),
            format!("Invalid value: \"5 minutes\": spec.interval in body should match '{pattern}'")
        )]
    );
    assert_eq!(
        e.message,
        format!(
            "Warehouse.kargo.akuity.io \"w\" is invalid: spec.interval: Invalid value: \"5 minutes\": \
             spec.interval in body should match '{pattern}'"
        )
    );

    let stages = kargo_api(&client, "p", "Stage", "stages");
    let bad_origin = dynamic(
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
        "metadata": {"name": "s", "namespace": "p"},
        "spec": {"requestedFreight": [{"origin": {"kind": "Stage", "name": "dev"}, "sources": {}}]}}),
    );
    let e = api_error(stages.create(&pp, &bad_origin).await);
    assert_eq!(e.code, 422);
    assert_eq!(
        causes(&e),
        vec![(
            "spec.requestedFreight[0].origin.kind".to_string(),
            "Unsupported value: \"Stage\": supported values: \"Warehouse\"".to_string()
        )]
    );

    let no_freight = dynamic(
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
        "metadata": {"name": "s", "namespace": "p"}, "spec": {}}),
    );
    let e = api_error(stages.create(&pp, &no_freight).await);
    assert_eq!(
        causes(&e),
        vec![(
            "spec.requestedFreight".to_string(),
            "Required value".to_string()
        )]
    );

    // CEL rules report their message on the object that carries them.
    let promotions = kargo_api(&client, "p", "Promotion", "promotions");
    let both = dynamic(
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
        "metadata": {"name": "x", "namespace": "p"},
        "spec": {"stage": "s", "freight": "f", "origin": {"kind": "Warehouse", "name": "w"},
            "steps": [{"uses": "git-clone", "task": {"name": "t"}}]}}),
    );
    let e = api_error(promotions.create(&pp, &both).await);
    let got = causes(&e);
    assert!(
        got.contains(&(
            "spec".into(),
            "Invalid value: \"object\": exactly one of freight or origin must be set".into()
        )),
        "{got:?}"
    );
    assert!(
        got.contains(&(
            "spec.steps[0]".into(),
            "Invalid value: \"object\": Promotion step must have uses set and must not reference a task".into()
        )),
        "{got:?}"
    );
}

#[tokio::test]
async fn defaults_are_applied_and_unknown_fields_pruned_or_refused() {
    let sandbox = start_plain().await;
    let client = client(&sandbox).await;
    namespace(&client, "p").await;
    let warehouses = kargo_api(&client, "p", "Warehouse", "warehouses");
    let body = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse",
        "metadata": {"name": "w", "namespace": "p"},
        "spec": {"legacy": true, "subscriptions": [{"image": {"repoURL": "r", "anything": 1}}]}});

    let strict = PatchParams::apply("t").validation_strict();
    let e = api_error(warehouses.patch("w", &strict, &Patch::Apply(&body)).await);
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
    assert!(
        e.message.contains("unknown field \"spec.legacy\""),
        "{}",
        e.message
    );

    let created = warehouses
        .patch("w", &PatchParams::apply("t"), &Patch::Apply(&body))
        .await
        .unwrap();
    assert_eq!(created.data["spec"]["interval"], "5m0s");
    assert_eq!(created.data["spec"]["freightCreationPolicy"], "Automatic");
    assert!(
        created.data["spec"].get("legacy").is_none(),
        "unknown field pruned: {}",
        created.data
    );
    assert_eq!(
        created.data["spec"]["subscriptions"][0]["image"]["anything"], 1,
        "subscriptions preserve fields"
    );

    // A warning header names the dropped field (kubectl prints it).
    let manifest = tempfile::NamedTempFile::new().unwrap();
    let mut second = body.clone();
    second["metadata"]["name"] = json!("w2");
    std::fs::write(manifest.path(), serde_json::to_string(&second).unwrap()).unwrap();
    let path = manifest.path().to_str().unwrap();
    let (ok, _, err) = kubectl(&sandbox, &["create", "--validate=warn", "-f", path]).await;
    assert!(ok, "{err}");
    assert!(err.contains("unknown field \"spec.legacy\""), "{err}");
}

fn documents(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .filter(|v: &Value| v.is_object())
        .collect()
}

#[tokio::test]
async fn real_world_manifests_validate_and_the_legacy_one_does_not() {
    let Some(fixtures) = kargo_sandbox::reference::for_test("fixtures/real-world") else {
        return;
    };
    let sandbox = start_plain().await;
    let client = client(&sandbox).await;
    let mut checked = 0;
    let mut legacy_errors = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths {
        let legacy = path.to_string_lossy().contains("LEGACY");
        for mut doc in documents(&path) {
            let Some(kind) = doc["kind"].as_str().map(str::to_string) else {
                continue;
            };
            if doc["apiVersion"] != "kargo.akuity.io/v1alpha1" {
                continue;
            }
            let plural = format!("{}s", kind.to_lowercase());
            let namespaced =
                kind != "Project" && kind != "ClusterPromotionTask" && kind != "ClusterConfig";
            let ns = doc["metadata"]["namespace"]
                .as_str()
                .unwrap_or("fixtures")
                .to_string();
            if namespaced {
                doc["metadata"]["namespace"] = json!(ns);
                if client_namespace_missing(&client, &ns).await {
                    namespace(&client, &ns).await;
                }
            }
            let res = kargo_resource(&kind, &plural);
            let api: kube::Api<kube::api::DynamicObject> = if namespaced {
                kube::Api::namespaced_with(client.clone(), &ns, &res)
            } else {
                kube::Api::all_with(client.clone(), &res)
            };
            let name = doc["metadata"]["name"].as_str().unwrap().to_string();
            let pp = PatchParams::apply("fixtures").dry_run().validation_strict();
            let result = api.patch(&name, &pp, &Patch::Apply(&doc)).await;
            checked += 1;
            match (legacy, result) {
                (false, Ok(_)) => {}
                (false, Err(e)) => panic!("{} {kind}/{name} should be valid: {e}", path.display()),
                (true, Err(kube::Error::Api(e))) => legacy_errors.push((name, e.code, e.message)),
                (true, other) => {
                    if kind == "Stage" {
                        panic!("legacy {kind}/{name} should be refused, got {other:?}");
                    }
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} documents checked");
    let codes: Vec<(String, u16)> = legacy_errors
        .iter()
        .map(|(n, c, _)| (n.clone(), *c))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("dev".into(), 400),
            ("staging".into(), 400),
            ("production".into(), 400)
        ]
    );
    assert!(
        legacy_errors[0]
            .2
            .contains("unknown field \"spec.promotionMechanisms\""),
        "{legacy_errors:?}"
    );
    assert!(
        legacy_errors[2]
            .2
            .contains("unknown field \"spec.promotionPolicy\""),
        "{legacy_errors:?}"
    );
}

async fn client_namespace_missing(client: &kube::Client, ns: &str) -> bool {
    use k8s_openapi::api::core::v1::Namespace;
    kube::Api::<Namespace>::all(client.clone())
        .get_opt(ns)
        .await
        .unwrap()
        .is_none()
}
