//! End-to-end flows of the emulated control plane over the in-memory `FakeTxn`: Projects,
//! publishing, Promotions, soak, approval, faults, auto-promotion and deletion.

use std::time::Duration;

use serde_json::{Value, json};

use super::testkit::FakeTxn;
use super::util::{self, GROUP, LABEL_ALIAS, LABEL_PROJECT, str_at};
use super::{Kargo, KargoConfig};
use crate::hooks::Control;

const ADMIN: &str = "admin";

fn kargo() -> Kargo {
    Kargo::with_config(KargoConfig {
        step_duration: Duration::from_millis(10),
        verification_duration: Duration::from_millis(30),
        webhook_base_url: "https://hooks.example.com/webhook".into(),
    })
}

fn project(t: &mut FakeTxn, k: &Kargo, name: &str) {
    let p = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Project", "metadata": {"name": name}});
    t.client_create(k, p, ADMIN).unwrap();
    t.settle(k);
}

fn warehouse(t: &mut FakeTxn, k: &Kargo, ns: &str, name: &str, extra: Value) {
    let mut spec = json!({"subscriptions": [{"image": {"repoURL": "ghcr.io/acme/app"}}]});
    if let (Some(s), Value::Object(e)) = (spec.as_object_mut(), extra) {
        s.extend(e);
    }
    let w = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse",
        "metadata": {"name": name, "namespace": ns}, "spec": spec});
    t.client_create(k, w, ADMIN).unwrap();
    t.settle(k);
}

fn stage(t: &mut FakeTxn, k: &Kargo, ns: &str, name: &str, sources: Value, extra: Value) {
    let mut spec = json!({
        "requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}, "sources": sources}],
        "promotionTemplate": {"spec": {"steps": [{"uses": "git-clone"}, {"uses": "git-push", "as": "push"}]}},
    });
    if let (Some(s), Value::Object(e)) = (spec.as_object_mut(), extra) {
        s.extend(e);
    }
    let s = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
        "metadata": {"name": name, "namespace": ns}, "spec": spec});
    t.client_create(k, s, ADMIN).unwrap();
    t.settle(k);
}

fn publish(t: &mut FakeTxn, k: &Kargo, tag: &str) -> Value {
    let body = json!({"project": "p", "warehouse": "w", "images": [{"repoURL": "ghcr.io/acme/app", "tag": tag}]});
    let out = k.control(t, "publish", &body).unwrap();
    t.settle(k);
    out
}

fn promote(
    t: &mut FakeTxn,
    k: &Kargo,
    stage_name: &str,
    freight: &str,
) -> Result<String, crate::hooks::ApiError> {
    let p = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
        "metadata": {"name": "ignored", "namespace": "p"}, "spec": {"stage": stage_name, "freight": freight}});
    let created = t.client_create(k, p, ADMIN)?;
    t.settle(k);
    Ok(util::name(&created).to_string())
}

fn wait_phase(t: &mut FakeTxn, k: &Kargo, name: &str) -> String {
    for _ in 0..200 {
        t.run_for(k, 10);
        let phase = t
            .obj("promotions", "p", name)
            .map(|p| str_at(p, "status.phase").to_string())
            .unwrap_or_default();
        if super::promotions::is_terminal(&phase) {
            return phase;
        }
    }
    panic!(
        "promotion {name} did not finish: {:?}",
        t.obj("promotions", "p", name)
    );
}

/// The name of the Freight currently in a Stage (null when none).
fn current(t: &FakeTxn, stage_name: &str) -> Value {
    t.obj("stages", "p", stage_name)
        .and_then(|s| {
            s.pointer("/status/freightHistory/0/items/Warehouse~1w/name")
                .cloned()
        })
        .unwrap_or(Value::Null)
}

fn setup() -> (FakeTxn, Kargo) {
    let (mut t, k) = (FakeTxn::new(), kargo());
    project(&mut t, &k, "p");
    warehouse(&mut t, &k, "p", "w", json!({}));
    (t, k)
}

#[test]
fn project_creates_labelled_namespace_and_becomes_ready() {
    let (mut t, k) = (FakeTxn::new(), kargo());
    project(&mut t, &k, "p");
    let ns = t.obj("namespaces", "", "p").unwrap();
    assert_eq!(util::label(ns, LABEL_PROJECT), Some("true"));
    assert!(util::has_finalizer(ns, util::FINALIZER));
    let p = t.obj("projects", "", "p").unwrap();
    assert!(util::has_finalizer(p, util::FINALIZER));
    let ready = util::condition(&p["status"], "Ready").unwrap();
    assert_eq!(
        (str_at(ready, "status"), str_at(ready, "reason")),
        ("True", "Synced")
    );
    assert_eq!(p["status"]["stats"]["warehouses"]["count"], 0);
    use crate::hooks::Txn;
    let rbac = "rbac.authorization.k8s.io";
    assert!(
        t.get(rbac, "rolebindings", Some("p"), "kargo-project-admin")
            .is_some()
    );
    for role in ["kargo-admin", "kargo-viewer", "kargo-promoter"] {
        let r = t.get(rbac, "roles", Some("p"), role).unwrap();
        assert_eq!(
            util::annotation(&r, "rbac.kargo.akuity.io/managed"),
            Some("true")
        );
        assert!(t.get("", "serviceaccounts", Some("p"), role).is_some());
        assert_eq!(
            t.get(rbac, "rolebindings", Some("p"), role).unwrap()["roleRef"]["name"],
            role
        );
    }
    let promoter = t.get(rbac, "roles", Some("p"), "kargo-promoter").unwrap();
    assert!(
        promoter["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["verbs"] == json!(["promote"]))
    );
}

#[test]
fn project_conflicts_with_unlabelled_namespace_and_adopts_labelled_one() {
    let (mut t, k) = (FakeTxn::new(), kargo());
    use crate::hooks::Txn;
    t.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "plain"}}))
        .unwrap();
    let p = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Project", "metadata": {"name": "plain"}});
    let e = t.client_create(&k, p, ADMIN).unwrap_err();
    assert_eq!(e.code, 409);
    assert!(
        e.message.contains(
            "namespace \"plain\" already exists and is not labeled as a Project namespace"
        ),
        "{}",
        e.message
    );
    assert!(
        e.message
            .starts_with("admission webhook \"project.kargo.akuity.io\" denied the request")
    );

    t.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "adopt", "labels": {LABEL_PROJECT: "true"}}}))
        .unwrap();
    project(&mut t, &k, "adopt");
    assert!(util::has_finalizer(
        t.obj("namespaces", "", "adopt").unwrap(),
        util::FINALIZER
    ));
}

#[test]
fn deleting_a_project_deletes_its_namespace_unless_kept() {
    let (mut t, k) = setup();
    use crate::hooks::Txn;
    t.delete(GROUP, "projects", None, "p").unwrap();
    t.settle(&k);
    assert!(t.obj("projects", "", "p").is_none());
    assert!(t.obj("namespaces", "", "p").is_none());
    assert!(t.obj("warehouses", "p", "w").is_none());

    project(&mut t, &k, "keep");
    let mut p = t.obj("projects", "", "keep").unwrap().clone();
    util::set_annotation(&mut p, util::ANNOTATION_KEEP_NAMESPACE, "true");
    t.update(p).unwrap();
    t.delete(GROUP, "projects", None, "keep").unwrap();
    t.settle(&k);
    assert!(t.obj("projects", "", "keep").is_none());
    let ns = t.obj("namespaces", "", "keep").unwrap();
    assert!(!util::has_finalizer(ns, util::FINALIZER));
}

#[test]
fn deleting_the_namespace_deletes_the_project() {
    let (mut t, k) = setup();
    use crate::hooks::Txn;
    t.delete("", "namespaces", None, "p").unwrap();
    t.settle(&k);
    assert!(t.obj("projects", "", "p").is_none());
    assert!(t.obj("namespaces", "", "p").is_none());
}

#[test]
fn publish_creates_freight_named_by_its_artifacts() {
    let (mut t, k) = setup();
    let w = t.obj("warehouses", "p", "w").unwrap();
    assert_eq!(
        w["spec"]["subscriptions"][0]["image"]["imageSelectionStrategy"],
        "SemVer"
    );
    let ready = util::condition(&w["status"], "Ready").unwrap();
    assert_eq!(str_at(ready, "reason"), "MissingImageReferences");

    let out = publish(&mut t, &k, "1.0.0");
    let name = out["name"].as_str().unwrap().to_string();
    let f = t.obj("freights", "p", &name).unwrap().clone();
    assert_eq!(super::names::freight_id(&f), name);
    let digest = str_at(&f, "images.0.digest");
    assert!(
        f["images"][0]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{digest}"
    );
    assert_eq!(out["alias"], f["alias"]);
    assert_eq!(util::label(&f, LABEL_ALIAS), f["alias"].as_str());
    let w = t.obj("warehouses", "p", "w").unwrap();
    assert_eq!(w["status"]["lastFreightID"], json!(name));
    assert!(util::condition_true(&w["status"], "Ready"));

    // Publishing the same artifact again returns the same Freight.
    let again = publish(&mut t, &k, "1.0.0");
    assert_eq!(again["name"], json!(name));
    assert_eq!(t.all("freights", "p").len(), 1);

    // An older semver does not become the newest artifact.
    let older = publish(&mut t, &k, "0.9.0");
    assert_eq!(older["name"], json!(name));

    let bad = json!({"project": "p", "warehouse": "w", "images": [{"repoURL": "ghcr.io/acme/other", "tag": "1"}]});
    let e = k.control(&mut t, "publish", &bad).unwrap_err();
    assert_eq!(e.code, 422);
    assert_eq!(e.causes[0].field, "images[0].repoURL");
}

#[test]
fn manual_warehouses_do_not_create_freight() {
    let (mut t, k) = (FakeTxn::new(), kargo());
    project(&mut t, &k, "p");
    warehouse(
        &mut t,
        &k,
        "p",
        "w",
        json!({"freightCreationPolicy": "Manual"}),
    );
    let out = publish(&mut t, &k, "1.0.0");
    assert!(out["name"].is_null());
    assert!(t.all("freights", "p").is_empty());
}

#[test]
fn unsupported_creation_criteria_are_an_error() {
    let (mut t, k) = (FakeTxn::new(), kargo());
    project(&mut t, &k, "p");
    warehouse(
        &mut t,
        &k,
        "p",
        "w",
        json!({"freightCreationCriteria": {"expression": "imageFrom('x').Tag != ''"}}),
    );
    let body = json!({"project": "p", "warehouse": "w", "images": [{"repoURL": "ghcr.io/acme/app", "tag": "1.0.0"}]});
    let e = k.control(&mut t, "publish", &body).unwrap_err();
    assert!(
        e.message.contains("Freight creation criteria"),
        "{}",
        e.message
    );
}

#[test]
fn promotion_lifecycle_reaches_succeeded() {
    let (mut t, k) = setup();
    stage(
        &mut t,
        &k,
        "p",
        "dev",
        json!({"direct": true}),
        json!({"vars": [{"name": "a", "value": "1"}]}),
    );
    let freight = publish(&mut t, &k, "1.0.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    let name = promote(&mut t, &k, "dev", &freight).unwrap();
    let parts: Vec<&str> = name.split('.').collect();
    assert_eq!(parts[0], "dev");
    assert_eq!(parts[1].len(), 26);
    assert_eq!(parts[2], &freight[..7]);
    let p = t.obj("promotions", "p", &name).unwrap().clone();
    assert_eq!(p["spec"]["steps"][0]["as"], "step-1");
    assert_eq!(p["spec"]["steps"][1]["as"], "push");
    assert_eq!(p["spec"]["vars"][0]["name"], "a");
    assert_eq!(util::label(&p, util::LABEL_STAGE), Some("dev"));
    assert_eq!(
        util::annotation(&p, util::ANNOTATION_CREATE_ACTOR),
        Some("kubernetes:admin")
    );
    assert_eq!(p["metadata"]["ownerReferences"][0]["name"], "dev");

    assert_eq!(wait_phase(&mut t, &k, &name), "Succeeded");
    let p = t.obj("promotions", "p", &name).unwrap();
    let metas = p["status"]["stepExecutionMetadata"].as_array().unwrap();
    assert_eq!(metas.len(), 2);
    assert!(
        metas
            .iter()
            .all(|m| m["status"] == "Succeeded" && m.get("startedAt").is_some())
    );
    t.settle(&k);
    let s = t.obj("stages", "p", "dev").unwrap();
    assert_eq!(
        s["status"]["freightHistory"][0]["items"]["Warehouse/w"]["name"],
        json!(freight)
    );
    assert_eq!(s["status"]["lastPromotion"]["name"], json!(name));
    assert!(s["status"].get("currentPromotion").is_none());
    assert_eq!(s["status"]["freightSummary"], json!(freight));
    assert!(
        util::condition_true(&s["status"], "Ready"),
        "{}",
        s["status"]
    );
    let f = t.obj("freights", "p", &freight).unwrap();
    assert!(f["status"]["currentlyIn"].get("dev").is_some());
    assert!(f["status"]["verifiedIn"].get("dev").is_some());
}

#[test]
fn promotions_need_available_freight_permission_and_a_real_stage() {
    let (mut t, k) = setup();
    stage(&mut t, &k, "p", "dev", json!({"direct": true}), json!({}));
    stage(&mut t, &k, "p", "qa", json!({"stages": ["dev"]}), json!({}));
    let freight = publish(&mut t, &k, "1.0.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    let e = promote(&mut t, &k, "qa", &freight).unwrap_err();
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains("Freight is not available to this Stage"),
        "{}",
        e.message
    );
    let neither = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
        "metadata": {"name": "x", "namespace": "p"}, "spec": {"stage": "dev"}});
    let e = t.client_create(&k, neither, ADMIN).unwrap_err();
    assert_eq!(e.code, 422);
    assert!(
        e.message.ends_with(
            "spec: Invalid value: \"object\": exactly one of freight or origin must be set"
        ),
        "{}",
        e.message
    );
    let both = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
        "metadata": {"name": "x", "namespace": "p"},
        "spec": {"stage": "dev", "freight": freight, "origin": {"kind": "Warehouse", "name": "w"}}});
    let e = t.client_create(&k, both, ADMIN).unwrap_err();
    assert!(!e.message.contains("admission webhook"), "{}", e.message);
    let e = promote(&mut t, &k, "nope", &freight).unwrap_err();
    assert!(e.message.contains("spec.stage"), "{}", e.message);
    t.denied.push("mallory".into());
    let p = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
        "metadata": {"name": "x", "namespace": "p"}, "spec": {"stage": "dev", "freight": freight}});
    let e = t.client_create(&k, p, "mallory").unwrap_err();
    assert_eq!(e.code, 500);
    // webhook.go `authorize`: apierrors.NewForbidden on `promotionGroupResource` (Resource
    // "Promotion"), wrapped by NewInternalError on create.
    let re = regex::Regex::new(
        r#"^admission webhook "promotion.kargo.akuity.io" denied the request: Internal error occurred: Promotion.kargo.akuity.io "dev\.[0-9a-z]{26}\.[0-9a-f]{7}" is forbidden: subject "mallory" is not permitted to create Promotions for Stage "dev"$"#,
    )
    .unwrap();
    assert!(re.is_match(&e.message), "{}", e.message);
    let mine = promote(&mut t, &k, "dev", &freight).unwrap();
    let e = t
        .client_delete(&k, GROUP, "promotions", Some("p"), &mine, "mallory")
        .unwrap_err();
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        format!(
            "admission webhook \"promotion.kargo.akuity.io\" denied the request: Promotion.kargo.akuity.io {mine:?} is forbidden: subject \"mallory\" is not permitted to delete Promotions for Stage \"dev\""
        )
    );
    t.client_delete(&k, GROUP, "promotions", Some("p"), &mine, ADMIN)
        .unwrap();
}

#[test]
fn webhook_receivers_get_hashed_paths() {
    let (mut t, k) = setup();
    use crate::hooks::Txn;
    let pc = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "ProjectConfig",
        "metadata": {"name": "p", "namespace": "p"},
        "spec": {"webhookReceivers": [{"name": "gh", "github": {"secretRef": {"name": "gh-secret"}}}]}});
    t.client_create(&k, pc, ADMIN).unwrap();
    t.settle(&k);
    let status = &t.obj("projectconfigs", "p", "p").unwrap()["status"];
    let ready = util::condition(status, "Ready").unwrap();
    assert_eq!(str_at(ready, "reason"), "SyncWebhookReceiversFailed");
    assert!(str_at(ready, "message").contains("gh-secret"), "{ready}");

    t.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gh-secret", "namespace": "p"},
        "data": {"secret": "czNjcjN0"}}))
        .unwrap();
    t.settle(&k);
    let status = &t.obj("projectconfigs", "p", "p").unwrap()["status"];
    assert!(util::condition_true(status, "Ready"), "{status}");
    let expected = format!("/webhook/github/{}", super::names::sha256_hex(b"pghs3cr3t"));
    assert_eq!(status["webhookReceivers"][0]["path"], json!(expected));
    assert_eq!(
        status["webhookReceivers"][0]["url"],
        json!(format!("https://hooks.example.com{expected}"))
    );
}

#[test]
fn injected_step_failure_fails_once() {
    let (mut t, k) = setup();
    stage(&mut t, &k, "p", "dev", json!({"direct": true}), json!({}));
    let freight = publish(&mut t, &k, "1.0.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    let body =
        json!({"project": "p", "stage": "dev", "step": "push", "message": "remote rejected"});
    k.control(&mut t, "fail-promotion", &body).unwrap();
    let name = promote(&mut t, &k, "dev", &freight).unwrap();
    assert_eq!(wait_phase(&mut t, &k, &name), "Failed");
    let p = t.obj("promotions", "p", &name).unwrap();
    assert_eq!(p["status"]["message"], "step \"push\": remote rejected");
    assert_eq!(p["status"]["stepExecutionMetadata"][1]["status"], "Failed");
    t.settle(&k);
    let s = t.obj("stages", "p", "dev").unwrap();
    let ready = util::condition(&s["status"], "Ready").unwrap();
    assert_eq!(str_at(ready, "reason"), "LastPromotionFailed");
    let again = promote(&mut t, &k, "dev", &freight).unwrap();
    assert_eq!(wait_phase(&mut t, &k, &again), "Succeeded");
}

#[test]
fn fail_step_and_abort() {
    let (mut t, k) = setup();
    let steps = json!({"promotionTemplate": {"spec": {"steps": [
        {"uses": "fail", "config": {"message": "no"}}, {"uses": "git-push"}]}}});
    stage(&mut t, &k, "p", "dev", json!({"direct": true}), steps);
    let freight = publish(&mut t, &k, "1.0.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    let name = promote(&mut t, &k, "dev", &freight).unwrap();
    assert_eq!(wait_phase(&mut t, &k, &name), "Failed");
    let p = t.obj("promotions", "p", &name).unwrap();
    assert_eq!(p["status"]["message"], "step \"step-1\": failed: no");
    assert_eq!(p["status"]["stepExecutionMetadata"][1]["status"], "Skipped");

    let slow = promote(&mut t, &k, "dev", &freight).unwrap();
    let mut p = t.obj("promotions", "p", &slow).unwrap().clone();
    util::set_annotation(&mut p, util::ANNOTATION_ABORT, "terminate");
    t.client_update(&k, p, "bob", false).unwrap();
    t.settle(&k);
    let p = t.obj("promotions", "p", &slow).unwrap();
    assert_eq!(p["status"]["phase"], "Aborted");
    assert_eq!(
        p["status"]["message"],
        "Promotion terminated by kubernetes:bob"
    );

    let mut changed = p.clone();
    changed["spec"]["freight"] = json!("other");
    let e = t.client_update(&k, changed, ADMIN, false).unwrap_err();
    assert!(e.message.contains("spec is immutable"), "{}", e.message);
}

#[test]
fn soak_time_and_approval_gate_downstream_stages() {
    let (mut t, k) = setup();
    stage(&mut t, &k, "p", "dev", json!({"direct": true}), json!({}));
    stage(
        &mut t,
        &k,
        "p",
        "qa",
        json!({"stages": ["dev"], "requiredSoakTime": "1h"}),
        json!({}),
    );
    let freight = publish(&mut t, &k, "1.0.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    let name = promote(&mut t, &k, "dev", &freight).unwrap();
    assert_eq!(wait_phase(&mut t, &k, &name), "Succeeded");
    t.settle(&k);
    let q = json!({"project": "p", "stage": "qa", "freight": freight});
    let out = k.control(&mut t, "available", &q).unwrap();
    assert_eq!(out["available"], false);
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .contains("1h0m0s of required 1h0m0s remaining"),
        "{out}"
    );

    t.now += jiff::SignedDuration::from_mins(61);
    let out = k.control(&mut t, "available", &q).unwrap();
    assert_eq!(out["available"], true, "{out}");
    let promoted = promote(&mut t, &k, "qa", &freight).unwrap();
    assert_eq!(wait_phase(&mut t, &k, &promoted), "Succeeded");

    // Approval makes Freight available without verification upstream.
    stage(
        &mut t,
        &k,
        "p",
        "prod",
        json!({"stages": ["uat"]}),
        json!({}),
    );
    let q = json!({"project": "p", "stage": "prod", "freight": freight});
    assert_eq!(
        k.control(&mut t, "available", &q).unwrap()["available"],
        false
    );
    let mut f = t.obj("freights", "p", &freight).unwrap().clone();
    f["status"]["approvedFor"] = json!({"prod": {"approvedAt": "2024-01-01T00:00:00Z"}});
    t.client_update(&k, f.clone(), ADMIN, true).unwrap();
    assert_eq!(
        k.control(&mut t, "available", &q).unwrap()["available"],
        true
    );
    f["status"]["approvedFor"] = json!({"ghost": {"approvedAt": "2024-01-01T00:00:00Z"}});
    let e = t.client_update(&k, f, ADMIN, true).unwrap_err();
    assert!(
        e.message.contains("Stage \"ghost\" not found"),
        "{}",
        e.message
    );
}

/// Stage `dev` with an analysis template and its verification set to fail, and freight
/// 1.0.0 promoted into it (the promotion succeeded; verification follows); returns the
/// freight's name.
fn dev_promoted_with_failing_verification() -> (FakeTxn, Kargo, String) {
    let (mut t, k) = setup();
    let extra = json!({"verification": {"analysisTemplates": [{"name": "smoke"}]}});
    stage(&mut t, &k, "p", "dev", json!({"direct": true}), extra);
    k.control(
        &mut t,
        "fail-verification",
        &json!({"project": "p", "stage": "dev"}),
    )
    .unwrap();
    let freight = publish(&mut t, &k, "1.0.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    let name = promote(&mut t, &k, "dev", &freight).unwrap();
    assert_eq!(wait_phase(&mut t, &k, &name), "Succeeded");
    (t, k, freight)
}

#[test]
fn verification_can_be_made_to_fail() {
    let (mut t, k, freight) = dev_promoted_with_failing_verification();
    t.run_until(&k, |t| {
        t.obj("stages", "p", "dev")
            .and_then(|s| s.pointer("/status/freightHistory/0/verificationHistory/0/finishTime"))
            .is_some()
    });
    let s = t.obj("stages", "p", "dev").unwrap();
    let vh = &s["status"]["freightHistory"][0]["verificationHistory"][0];
    assert_eq!(vh["phase"], "Failed", "{}", s["status"]);
    let f = t.obj("freights", "p", &freight).unwrap();
    assert!(f.pointer("/status/verifiedIn/dev").is_none());

    k.control(&mut t, "clear-faults", &json!({})).unwrap();
    let again = promote(&mut t, &k, "dev", &freight).unwrap();
    assert_eq!(wait_phase(&mut t, &k, &again), "Succeeded");
    t.run_until(&k, |t| {
        t.obj("freights", "p", &freight)
            .and_then(|f| f.pointer("/status/verifiedIn/dev"))
            .is_some()
    });
    let f = t.obj("freights", "p", &freight).unwrap();
    assert!(
        f.pointer("/status/verifiedIn/dev").is_some(),
        "{}",
        f["status"]
    );
}

#[test]
fn project_config_enables_auto_promotion() {
    let (mut t, k) = setup();
    stage(&mut t, &k, "p", "dev", json!({"direct": true}), json!({}));
    let pc = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "ProjectConfig",
        "metadata": {"name": "p", "namespace": "p"},
        "spec": {"promotionPolicies": [{"stageSelector": {"name": "glob:d*"}, "autoPromotionEnabled": true}]}});
    t.client_create(&k, pc, ADMIN).unwrap();
    t.settle(&k);
    assert_eq!(
        t.obj("stages", "p", "dev").unwrap()["status"]["autoPromotionEnabled"],
        true
    );
    let first = publish(&mut t, &k, "1.0.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    t.run_until(&k, |t| current(t, "dev") == json!(first));
    let s = t.obj("stages", "p", "dev").unwrap();
    assert_eq!(
        s["status"]["freightHistory"][0]["items"]["Warehouse/w"]["name"],
        json!(first),
        "{}",
        s["status"]
    );
    let second = publish(&mut t, &k, "1.1.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    t.run_until(&k, |t| current(t, "dev") == json!(second));
    let s = t.obj("stages", "p", "dev").unwrap();
    assert_eq!(
        s["status"]["freightHistory"][0]["items"]["Warehouse/w"]["name"],
        json!(second)
    );
    assert_eq!(s["status"]["freightHistory"].as_array().unwrap().len(), 2);
    let promos = t.all("promotions", "p");
    assert_eq!(promos.len(), 2);
    assert!(
        promos
            .iter()
            .all(|p| util::annotation(p, util::ANNOTATION_CREATE_ACTOR).is_none())
    );

    let bad = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "ProjectConfig",
        "metadata": {"name": "other", "namespace": "p"}, "spec": {}});
    let e = t.client_create(&k, bad, ADMIN).unwrap_err();
    assert!(e.message.contains("metadata.name"), "{}", e.message);
}

#[test]
fn freight_in_use_cannot_be_deleted_and_stage_deletion_cleans_up() {
    let (mut t, k) = setup();
    stage(&mut t, &k, "p", "dev", json!({"direct": true}), json!({}));
    let freight = publish(&mut t, &k, "1.0.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    let name = promote(&mut t, &k, "dev", &freight).unwrap();
    assert_eq!(wait_phase(&mut t, &k, &name), "Succeeded");
    t.settle(&k);
    let e = t
        .client_delete(&k, GROUP, "freights", Some("p"), &freight, ADMIN)
        .unwrap_err();
    assert_eq!(e.code, 403);
    assert!(
        e.message.contains("freight is in-use by stages (\"dev\")"),
        "{}",
        e.message
    );

    t.client_delete(&k, GROUP, "stages", Some("p"), "dev", ADMIN)
        .unwrap();
    t.settle(&k);
    assert!(t.obj("stages", "p", "dev").is_none());
    let f = t.obj("freights", "p", &freight).unwrap();
    assert!(f.pointer("/status/verifiedIn/dev").is_none());
    assert!(t.all("promotions", "p").is_empty());
    t.client_delete(&k, GROUP, "freights", Some("p"), &freight, ADMIN)
        .unwrap();
}

#[test]
fn promotion_by_origin_and_task_inflation() {
    let (mut t, k) = setup();
    let task = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "PromotionTask",
        "metadata": {"name": "deploy", "namespace": "p"},
        "spec": {"vars": [{"name": "env"}, {"name": "repo", "value": "r"}],
                 "steps": [{"uses": "git-clone", "as": "clone"}, {"uses": "git-push"}]}});
    t.client_create(&k, task, ADMIN).unwrap();
    let steps = json!({"promotionTemplate": {"spec": {"steps": [
        {"task": {"name": "deploy"}, "as": "d", "vars": [{"name": "env", "value": "dev"}]}, {"uses": "git-tag"}]}}});
    stage(&mut t, &k, "p", "dev", json!({"direct": true}), steps);
    let freight = publish(&mut t, &k, "1.0.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    let p = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
        "metadata": {"generateName": "x-", "namespace": "p"},
        "spec": {"stage": "dev", "origin": {"kind": "Warehouse", "name": "w"}}});
    let created = t.client_create(&k, p, ADMIN).unwrap();
    assert_eq!(created["spec"]["freight"], json!(freight));
    assert!(created["spec"].get("origin").is_none());
    let aliases: Vec<&str> = created["spec"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["as"].as_str().unwrap())
        .collect();
    assert_eq!(aliases, vec!["d::clone", "d::step-2", "step-2"]);
    assert_eq!(
        created["spec"]["steps"][0]["vars"],
        json!([{"name": "repo", "value": "r"}, {"name": "env", "value": "dev"}])
    );
}

#[test]
fn aliases_are_unique_on_update_and_stats_follow_writes() {
    let (mut t, k) = setup();
    let a = publish(&mut t, &k, "1.0.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    let b = publish(&mut t, &k, "2.0.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(a, b);
    let taken = str_at(t.obj("freights", "p", &a).unwrap(), "alias").to_string();
    let mut fb = t.obj("freights", "p", &b).unwrap().clone();
    fb["alias"] = json!(taken);
    let e = t.client_update(&k, fb.clone(), ADMIN, false).unwrap_err();
    assert_eq!(e.code, 409);
    fb["alias"] = json!("release-candidate");
    let updated = t.client_update(&k, fb, ADMIN, false).unwrap();
    assert_eq!(
        util::label(&updated, LABEL_ALIAS),
        Some("release-candidate")
    );

    t.run_until(&k, |t| {
        t.obj("projects", "", "p").unwrap()["status"]["stats"]["warehouses"]["count"] == 1
    });
    let p = t.obj("projects", "", "p").unwrap();
    assert_eq!(p["status"]["stats"]["warehouses"]["count"], 1);
}

#[test]
fn match_upstream_follows_the_upstream_stage() {
    let (mut t, k) = setup();
    stage(&mut t, &k, "p", "dev", json!({"direct": true}), json!({}));
    let mu =
        json!({"stages": ["dev"], "autoPromotionOptions": {"selectionPolicy": "MatchUpstream"}});
    stage(&mut t, &k, "p", "qa", mu, json!({}));
    let pc = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "ProjectConfig",
        "metadata": {"name": "p", "namespace": "p"},
        "spec": {"promotionPolicies": [{"stageSelector": {"name": "glob:*"}, "autoPromotionEnabled": true}]}});
    t.client_create(&k, pc, ADMIN).unwrap();
    t.settle(&k);
    let v1 = publish(&mut t, &k, "1.0.0")["name"].clone();
    t.run_until(&k, |t| current(t, "qa") == v1);
    assert_eq!((current(&t, "dev"), current(&t, "qa")), (v1.clone(), v1));
    let v2 = publish(&mut t, &k, "1.1.0")["name"].clone();
    t.run_until(&k, |t| current(t, "qa") == v2);
    assert_eq!((current(&t, "dev"), current(&t, "qa")), (v2.clone(), v2));
}

const HOLD: &str = "kargo.akuity.io/auto-promotion-hold";
const RESUME: &str = "kargo.akuity.io/auto-promotion-resume";

/// Ticks past the slow sweep (every 20 ticks) that re-reconciles auto-promoted Stages, so an
/// auto-promotion that was going to happen has happened.
fn sweep(t: &mut FakeTxn, k: &Kargo) {
    use crate::hooks::Controller;
    for _ in 0..45 {
        k.tick(t);
        t.settle(k);
    }
}

fn auto_promoted_dev() -> (FakeTxn, Kargo, String, String) {
    let (mut t, k) = setup();
    stage(&mut t, &k, "p", "dev", json!({"direct": true}), json!({}));
    let pc = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "ProjectConfig",
        "metadata": {"name": "p", "namespace": "p"},
        "spec": {"promotionPolicies": [{"stageSelector": {"name": "dev"}, "autoPromotionEnabled": true}]}});
    t.client_create(&k, pc, ADMIN).unwrap();
    t.settle(&k);
    let v1 = publish(&mut t, &k, "1.0.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(t.run_until(&k, |t| current(t, "dev") == json!(v1)));
    let v2 = publish(&mut t, &k, "1.1.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(t.run_until(&k, |t| current(t, "dev") == json!(v2)));
    (t, k, v1, v2)
}

/// Kargo v1.11.2 pkg/webhook/kubernetes/promotion/webhook.go `syncHoldAnnotations` and
/// pkg/controller/stages/regular_stages.go `syncPromotions` / `autoPromoteFreight`: a user's
/// rollback of an auto-promoted Stage is stamped with hold intent (whatever intent the client
/// sent), the Stage records the hold once it succeeds, and newer Freight is not auto-promoted
/// while it stands.
#[test]
fn a_rollback_of_an_auto_promoted_stage_holds_it() {
    let (mut t, k, v1, v2) = auto_promoted_dev();
    for p in t.all("promotions", "p") {
        assert!(
            util::annotation(&p, HOLD).is_none() && util::annotation(&p, RESUME).is_none(),
            "auto-promotions carry no intent: {p}"
        );
    }
    let rollback = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
        "metadata": {"name": "x", "namespace": "p", "annotations": {RESUME: "Warehouse/w"}},
        "spec": {"stage": "dev", "freight": v1}});
    let created = t.client_create(&k, rollback, ADMIN).unwrap();
    let name = util::name(&created).to_string();
    assert_eq!(util::annotation(&created, HOLD), Some("Warehouse/w"));
    assert_eq!(
        util::annotation(&created, RESUME),
        None,
        "client intent dropped"
    );
    t.settle(&k);
    assert_eq!(wait_phase(&mut t, &k, &name), "Succeeded");
    assert!(t.run_until(&k, |t| current(t, "dev") == json!(v1)));
    let s = t.obj("stages", "p", "dev").unwrap();
    let hold = &s["status"]["autoPromotionHolds"]["Warehouse/w"];
    assert_eq!(hold["freightName"], json!(v1), "{}", s["status"]);
    assert_eq!(hold["origin"], json!({"kind": "Warehouse", "name": "w"}));
    assert_eq!(hold["promotionName"], json!(name));
    assert_eq!(hold["actor"], "kubernetes:admin");
    assert_eq!(
        s["status"]["effectiveAutoPromotionHolds"]["Warehouse/w"]["promotionName"],
        json!(name)
    );

    // Newer freight arrives; the held Stage stays where the user put it.
    let v3 = publish(&mut t, &k, "1.2.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    sweep(&mut t, &k);
    assert_eq!(current(&t, "dev"), json!(v1));
    assert_eq!(
        t.all("promotions", "p").len(),
        3,
        "no auto-promotion while held"
    );
    assert_ne!(v2, v3);
}

/// webhook.go `syncHoldAnnotations`: Freight that is the candidate gets resume intent;
/// regular_stages.go `syncPromotions`: a finished resume-intent Promotion deletes the hold
/// (the emptied map is omitted), and auto-promotion follows new Freight again.
#[test]
fn promoting_the_candidate_resumes_auto_promotion() {
    let (mut t, k, v1, v2) = auto_promoted_dev();
    let rollback = promote(&mut t, &k, "dev", &v1).unwrap();
    assert_eq!(wait_phase(&mut t, &k, &rollback), "Succeeded");
    assert!(t.run_until(&k, |t| {
        t.obj("stages", "p", "dev").is_some_and(|s| {
            s.pointer("/status/autoPromotionHolds/Warehouse~1w")
                .is_some()
        })
    }));
    let resume = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
        "metadata": {"name": "x", "namespace": "p", "annotations": {HOLD: "Warehouse/w"}},
        "spec": {"stage": "dev", "freight": v2}});
    let created = t.client_create(&k, resume, ADMIN).unwrap();
    assert_eq!(util::annotation(&created, RESUME), Some("Warehouse/w"));
    assert_eq!(
        util::annotation(&created, HOLD),
        None,
        "client intent dropped"
    );
    let name = util::name(&created).to_string();
    t.settle(&k);
    assert_eq!(wait_phase(&mut t, &k, &name), "Succeeded");
    assert!(t.run_until(&k, |t| current(t, "dev") == json!(v2)));
    sweep(&mut t, &k);
    let s = t.obj("stages", "p", "dev").unwrap();
    assert!(
        s["status"].get("autoPromotionHolds").is_none()
            && s["status"].get("effectiveAutoPromotionHolds").is_none(),
        "{}",
        s["status"]
    );
    let v3 = publish(&mut t, &k, "1.2.0")["name"].clone();
    assert!(t.run_until(&k, |t| current(t, "dev") == v3));
}

/// webhook.go `Default` on update: the stored hold/resume annotations win over what a client
/// writes, and ones it adds are dropped.
#[test]
fn hold_and_resume_annotations_cannot_be_changed_after_creation() {
    let (mut t, k, v1, _) = auto_promoted_dev();
    let rollback = promote(&mut t, &k, "dev", &v1).unwrap();
    let mut p = t.obj("promotions", "p", &rollback).unwrap().clone();
    p["metadata"]["annotations"][HOLD] = json!("Warehouse/other");
    p["metadata"]["annotations"][RESUME] = json!("Warehouse/w");
    let updated = t.client_update(&k, p, ADMIN, false).unwrap();
    assert_eq!(util::annotation(&updated, HOLD), Some("Warehouse/w"));
    assert_eq!(util::annotation(&updated, RESUME), None);
    // A Promotion admitted without intent cannot gain one.
    let auto = t
        .all("promotions", "p")
        .into_iter()
        .find(|p| util::annotation(p, HOLD).is_none())
        .unwrap();
    let mut auto = auto.clone();
    auto["metadata"]["annotations"][HOLD] = json!("Warehouse/w");
    let updated = t.client_update(&k, auto, ADMIN, false).unwrap();
    assert_eq!(util::annotation(&updated, HOLD), None);
}

/// webhook.go `syncHoldAnnotations` stamps nothing when the ProjectConfig does not enable
/// auto-promotion; regular_stages.go `syncPromotions` clears holds while it is disabled.
#[test]
fn without_auto_promotion_there_are_no_holds() {
    let (mut t, k, v1, _) = auto_promoted_dev();
    let rollback = promote(&mut t, &k, "dev", &v1).unwrap();
    assert_eq!(wait_phase(&mut t, &k, &rollback), "Succeeded");
    assert!(t.run_until(&k, |t| {
        t.obj("stages", "p", "dev")
            .is_some_and(|s| s.pointer("/status/autoPromotionHolds").is_some())
    }));
    let mut pc = t.obj("projectconfigs", "p", "p").unwrap().clone();
    pc["spec"]["promotionPolicies"] = json!([]);
    t.client_update(&k, pc, ADMIN, false).unwrap();
    t.settle(&k);
    sweep(&mut t, &k);
    let s = t.obj("stages", "p", "dev").unwrap();
    assert!(
        s["status"].get("autoPromotionEnabled").is_none(),
        "omitempty"
    );
    assert!(
        s["status"].get("autoPromotionHolds").is_none(),
        "{}",
        s["status"]
    );
    let again = promote(&mut t, &k, "dev", &v1).unwrap();
    let p = t.obj("promotions", "p", &again).unwrap();
    assert_eq!(util::annotation(p, HOLD), None);
    assert_eq!(util::annotation(p, RESUME), None);
}

/// Kargo writes status as a merge patch of its Go types (pkg/kubeclient `PatchStatus`), whose
/// fields are `omitempty` (api/v1alpha1 stage_types.go `AutoPromotionEnabled`,
/// promotion_types.go `CurrentStep`, freight_types.go `CurrentlyIn`/`VerifiedIn`/
/// `ApprovedFor`): no `autoPromotionEnabled: false`, no `currentStep: 0`, and a map emptied
/// by the controller disappears.
#[test]
fn status_is_written_as_omitempty_go_types_patch_it() {
    let (mut t, k) = setup();
    stage(&mut t, &k, "p", "dev", json!({"direct": true}), json!({}));
    let s = t.obj("stages", "p", "dev").unwrap();
    assert!(s["status"].is_object(), "{s}");
    assert!(
        s["status"].get("autoPromotionEnabled").is_none(),
        "{}",
        s["status"]
    );
    let f1 = publish(&mut t, &k, "1.0.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    let f2 = publish(&mut t, &k, "1.1.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    let p1 = promote(&mut t, &k, "dev", &f1).unwrap();
    // The first step is running: Kargo has no `currentStep` to write yet.
    t.run_until(&k, |t| {
        t.obj("promotions", "p", &p1)
            .is_some_and(|p| str_at(p, "status.phase") == "Running")
    });
    let running = t.obj("promotions", "p", &p1).unwrap();
    assert!(
        running["status"].get("currentStep").is_none(),
        "{}",
        running["status"]
    );
    assert_eq!(wait_phase(&mut t, &k, &p1), "Succeeded");
    assert_eq!(
        t.obj("promotions", "p", &p1).unwrap()["status"]["currentStep"],
        1,
        "the last step's index is written"
    );
    assert!(t.run_until(&k, |t| current(t, "dev") == json!(f1)));
    assert!(t.obj("freights", "p", &f1).unwrap()["status"]["currentlyIn"]["dev"].is_object());
    let p2 = promote(&mut t, &k, "dev", &f2).unwrap();
    assert_eq!(wait_phase(&mut t, &k, &p2), "Succeeded");
    assert!(t.run_until(&k, |t| current(t, "dev") == json!(f2)));
    assert!(
        t.run_until(&k, |t| {
            t.obj("freights", "p", &f1)
                .is_some_and(|f| f["status"].get("currentlyIn").is_none())
        }),
        "{}",
        t.obj("freights", "p", &f1).unwrap()["status"]
    );
    // Deleting the stage empties verifiedIn of both, which Kargo then omits.
    t.client_delete(&k, GROUP, "stages", Some("p"), "dev", ADMIN)
        .unwrap();
    t.settle(&k);
    for f in [&f1, &f2] {
        let status = &t.obj("freights", "p", f).unwrap()["status"];
        assert!(status.get("verifiedIn").is_none(), "{status}");
    }
}

/// pkg/controller/stages/regular_stages.go and control_flow_stages.go, and
/// pkg/controller/management/projectconfigs/project_configs.go (v1.11.2): the
/// `kargo.akuity.io/refresh` token is acknowledged in `status.lastHandledRefresh`, as for
/// Warehouses.
#[test]
fn refresh_tokens_are_acknowledged_by_stages_and_project_configs() {
    let (mut t, k) = setup();
    stage(&mut t, &k, "p", "dev", json!({"direct": true}), json!({}));
    let flow = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
        "metadata": {"name": "gate", "namespace": "p"},
        "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}, "sources": {"direct": true}}]}});
    t.client_create(&k, flow, ADMIN).unwrap();
    let pc = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "ProjectConfig",
        "metadata": {"name": "p", "namespace": "p"}, "spec": {}});
    t.client_create(&k, pc, ADMIN).unwrap();
    t.settle(&k);
    for (resource, name) in [
        ("stages", "dev"),
        ("stages", "gate"),
        ("projectconfigs", "p"),
    ] {
        let before = t.obj(resource, "p", name).unwrap().clone();
        assert!(
            before["status"].get("lastHandledRefresh").is_none(),
            "{resource}/{name}: {}",
            before["status"]
        );
        let mut obj = before;
        obj["metadata"]["annotations"]["kargo.akuity.io/refresh"] = json!("token-1");
        t.client_update(&k, obj, ADMIN, false).unwrap();
        t.settle(&k);
        let after = t.obj(resource, "p", name).unwrap();
        assert_eq!(
            after["status"]["lastHandledRefresh"], "token-1",
            "{resource}/{name}: {}",
            after["status"]
        );
    }
}

/// pkg/controller/labels.go `GetShardRequirement` and predicates.go `ResponsibleFor`
/// (v1.11.2): the controller of a default installation (no shard name) watches only Stages and
/// Promotions without the `kargo.akuity.io/shard` label, so a Stage assigned to a shard gets
/// no status or finalizer here, and its Promotions (labelled for the shard too) never run.
#[test]
fn stages_and_promotions_of_a_shard_are_not_reconciled_by_the_default_controller() {
    let (mut t, k) = setup();
    stage(
        &mut t,
        &k,
        "p",
        "east",
        json!({"direct": true}),
        json!({"shard": "east"}),
    );
    stage(&mut t, &k, "p", "dev", json!({"direct": true}), json!({}));
    let sharded = t.obj("stages", "p", "east").unwrap();
    assert_eq!(
        sharded["metadata"]["labels"]["kargo.akuity.io/shard"],
        "east"
    );
    assert!(
        sharded
            .get("status")
            .is_none_or(|s| s.get("conditions").is_none()),
        "{sharded}"
    );
    assert!(sharded["metadata"].get("finalizers").is_none(), "{sharded}");
    assert!(
        t.obj("stages", "p", "dev").unwrap()["status"]["conditions"].is_array(),
        "the unsharded stage is reconciled"
    );
    let f = publish(&mut t, &k, "1.0.0")["name"]
        .as_str()
        .unwrap()
        .to_string();
    let p = promote(&mut t, &k, "east", &f).unwrap();
    assert_eq!(
        t.obj("promotions", "p", &p).unwrap()["metadata"]["labels"]["kargo.akuity.io/shard"],
        "east"
    );
    sweep(&mut t, &k);
    let promo = t.obj("promotions", "p", &p).unwrap();
    assert!(
        promo.get("status").is_none_or(|s| s.get("phase").is_none()),
        "{promo}"
    );
    let dev = promote(&mut t, &k, "dev", &f).unwrap();
    assert_eq!(wait_phase(&mut t, &k, &dev), "Succeeded");
    // Without Kargo's finalizer, deleting the sharded stage is immediate.
    t.client_delete(&k, GROUP, "stages", Some("p"), "east", ADMIN)
        .unwrap();
    t.settle(&k);
    assert!(t.obj("stages", "p", "east").is_none());
}

/// Kargo v1.11.2 admits an image subscription's deprecated `allowTags` (nothing in
/// pkg/subscription/image.go `ValidateSubscription` looks at it) and fails discovery on it:
/// pkg/image/tag_based_selector.go, wrapped by pkg/subscription/image.go and reported by
/// pkg/controller/warehouses/warehouses.go as Healthy/Ready False.
#[test]
fn deprecated_allow_tags_are_admitted_and_fail_discovery() {
    let (mut t, k) = setup();
    let w = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse",
        "metadata": {"name": "old", "namespace": "p"},
        "spec": {"subscriptions": [{"image": {"repoURL": "ghcr.io/acme/old", "allowTags": "^v1"}}]}});
    t.client_create(&k, w, ADMIN).unwrap();
    t.settle(&k);
    let w = t.obj("warehouses", "p", "old").unwrap();
    let err = "error discovering artifacts: error obtaining selector for image \
               \"ghcr.io/acme/old\": error building tag based selector: AllowTags is deprecated \
               and unsupported as of v1.11.0; use AllowTagsRegexes instead";
    let ready = w["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "DiscoveryFailure");
    assert_eq!(
        ready["message"],
        format!("Artifact discovery failed: {err}")
    );
    let healthy = w["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Healthy")
        .unwrap();
    assert_eq!(healthy["reason"], "DiscoveryFailed");
    assert_eq!(
        healthy["message"],
        format!("Unable to discover artifacts: {err}")
    );
}

/// Kargo v1.11.2's mutating webhooks decode the object first: a duration `metav1.Duration`
/// cannot parse fails the decode, which controller-runtime answers with 400 and Go's
/// `time.ParseDuration` text (src/time/format.go).
#[test]
fn an_undecodable_duration_is_a_400_with_gos_text() {
    let (mut t, k) = setup();
    let s = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
        "metadata": {"name": "dev", "namespace": "p"},
        "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"},
                                       "sources": {"direct": true, "requiredSoakTime": "3days"}}],
                 "promotionTemplate": {"spec": {"steps": [{"uses": "git-clone"}]}}}});
    let e = t.client_create(&k, s, ADMIN).unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        e.message,
        "admission webhook \"stage.kargo.akuity.io\" denied the request: time: unknown unit \"days\" in duration \"3days\""
    );
    let w = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse",
        "metadata": {"name": "w2", "namespace": "p"},
        "spec": {"interval": "10", "subscriptions": [{"image": {"repoURL": "ghcr.io/acme/x"}}]}});
    let e = t.client_create(&k, w, ADMIN).unwrap_err();
    assert_eq!(e.code, 400);
    assert!(
        e.message
            .ends_with("denied the request: time: missing unit in duration \"10\""),
        "{}",
        e.message
    );
}

/// pkg/webhook/kubernetes/promotiontask/webhook.go `ValidateCreate` (v1.11.2): the namespace
/// must belong to a Project (an error on `metadata.namespace`, listed before the spec's), and
/// `apierrors.NewInvalid` joins several errors as `is invalid: [e1, e2]`.
#[test]
fn a_promotion_task_outside_a_project_is_rejected_on_its_namespace() {
    let (mut t, k) = setup();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "plain"}});
    crate::hooks::Txn::create(&mut t, ns).unwrap();
    let task = |ns: &str, steps: Value| {
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "PromotionTask",
               "metadata": {"name": "t", "namespace": ns}, "spec": {"steps": steps}})
    };
    let e = t
        .client_create(&k, task("plain", json!([{"uses": "git-clone"}])), ADMIN)
        .unwrap_err();
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        "admission webhook \"promotiontask.kargo.akuity.io\" denied the request: PromotionTask.kargo.akuity.io \"t\" is invalid: metadata.namespace: Invalid value: \"plain\": namespace \"plain\" is not a project"
    );
    let twice = json!([{"uses": "git-clone", "as": "a"}, {"uses": "git-push", "as": "a"}]);
    let e = t
        .client_create(&k, task("plain", twice), ADMIN)
        .unwrap_err();
    assert!(
        e.message
            .contains("is invalid: [metadata.namespace: Invalid value: \"plain\""),
        "{}",
        e.message
    );
    assert!(e.message.ends_with("]"), "{}", e.message);
    assert_eq!(e.causes.len(), 2);
    assert!(
        t.client_create(&k, task("p", json!([{"uses": "git-clone"}])), ADMIN)
            .is_ok()
    );
}

fn annotate_stage(t: &mut FakeTxn, k: &Kargo, key: &str, value: &str) -> Value {
    let mut s = t.obj("stages", "p", "dev").unwrap().clone();
    s["metadata"]["annotations"][key] = json!(value);
    let updated = t.client_update(k, s, ADMIN, false).unwrap();
    t.settle(k);
    updated
}

fn latest_vi(t: &FakeTxn) -> Value {
    t.obj("stages", "p", "dev").unwrap()["status"]["freightHistory"][0]["verificationHistory"][0]
        .clone()
}

/// pkg/webhook/kubernetes/stage/webhook.go `Default` rewrites a new `reverify` / `abort`
/// request as `{"id","actor"}`; pkg/controller/stages/regular_stages.go
/// `verifyStageFreight` runs a named terminal verification again (a new entry, attributed to
/// who asked) and `abortVerification` ends a named running one as Failed, "Verification
/// aborted by user".
#[test]
fn reverify_and_abort_requests_are_recorded_and_acted_on() {
    let (mut t, k, freight) = dev_promoted_with_failing_verification();
    assert!(t.run_until(&k, |t| latest_vi(t)["phase"] == "Failed"));
    let failed = latest_vi(&t);
    let failed_id = failed["id"].as_str().unwrap().to_string();
    k.control(&mut t, "clear-faults", &json!({})).unwrap();

    // Re-verify the failed verification by its bare ID.
    let s = annotate_stage(&mut t, &k, "kargo.akuity.io/reverify", &failed_id);
    assert_eq!(
        util::annotation(&s, "kargo.akuity.io/reverify").unwrap(),
        format!("{{\"id\":\"{failed_id}\",\"actor\":\"kubernetes:admin\"}}")
    );
    let running = latest_vi(&t);
    assert_ne!(running["id"], failed["id"], "a new verification entry");
    assert_eq!(running["phase"], "Running");
    assert_eq!(running["actor"], "kubernetes:admin");
    let history =
        &t.obj("stages", "p", "dev").unwrap()["status"]["freightHistory"][0]["verificationHistory"];
    assert_eq!(history.as_array().unwrap().len(), 2);
    assert_eq!(history[1]["id"], failed["id"]);

    // Abort it while it runs.
    let running_id = running["id"].as_str().unwrap().to_string();
    let s = annotate_stage(&mut t, &k, "kargo.akuity.io/abort", &running_id);
    assert_eq!(
        util::annotation(&s, "kargo.akuity.io/abort").unwrap(),
        format!("{{\"id\":\"{running_id}\",\"actor\":\"kubernetes:admin\"}}")
    );
    let aborted = latest_vi(&t);
    assert_eq!(aborted["id"], json!(running_id));
    assert_eq!(aborted["phase"], "Failed");
    assert_eq!(aborted["message"], "Verification aborted by user");
    assert!(aborted["finishTime"].is_string());
    let s = t.obj("stages", "p", "dev").unwrap();
    let verified = s["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Verified")
        .unwrap();
    assert_eq!(verified["reason"], "VerificationFailed");

    // The same request again changes nothing; a re-verification of the aborted one passes.
    let unchanged = annotate_stage(
        &mut t,
        &k,
        "kargo.akuity.io/abort",
        &format!("{{\"id\":\"{running_id}\",\"actor\":\"kubernetes:admin\"}}"),
    );
    assert_eq!(
        util::annotation(&unchanged, "kargo.akuity.io/abort").unwrap(),
        format!("{{\"id\":\"{running_id}\",\"actor\":\"kubernetes:admin\"}}")
    );
    annotate_stage(&mut t, &k, "kargo.akuity.io/reverify", &running_id);
    assert!(t.run_until(&k, |t| latest_vi(t)["phase"] == "Successful"));
    assert!(t.run_until(&k, |t| {
        t.obj("freights", "p", &freight)
            .is_some_and(|f| f.pointer("/status/verifiedIn/dev").is_some())
    }));
}
