//! kargo_project end to end: the real terraform binary against a fresh sandbox.

use kargo_e2e::{Env, planned_actions};
use serde_json::json;

#[test]
fn project_lifecycle_apply_update_replace_import_destroy() {
    let env = Env::new();
    env.config(
        r#"
resource "kargo_project" "p" {
  name   = "guestbook"
  labels = { team = "platform" }
  promotion_policies = [
    { stage_selector = { name = "dev" }, auto_promotion_enabled = true },
  ]
}
"#,
    );
    env.tf.apply().ok();
    env.tf.assert_no_changes();

    let project = env
        .get("projects", None, "guestbook")
        .expect("project exists in the sandbox");
    assert_eq!(project["metadata"]["labels"]["team"], "platform");
    let ns = env
        .get("namespaces", None, "guestbook")
        .expect("Kargo created the project namespace");
    assert_eq!(ns["metadata"]["labels"]["kargo.akuity.io/project"], "true");
    let pc = env
        .get("projectconfigs", Some("guestbook"), "guestbook")
        .expect("policies live in the ProjectConfig");
    assert_eq!(
        pc["spec"]["promotionPolicies"][0]["stageSelector"]["name"],
        "dev"
    );
    assert_eq!(
        pc["spec"]["promotionPolicies"][0]["autoPromotionEnabled"],
        true
    );
    let state = env.tf.resource("kargo_project.p");
    assert_eq!(state["namespace"], "guestbook");
    assert_eq!(state["ready"], true);
    assert_eq!(state["id"], "guestbook");

    // In-place update: labels and policies change, nothing is replaced.
    env.config(
        r#"
resource "kargo_project" "p" {
  name   = "guestbook"
  labels = { team = "apps" }
}
"#,
    );
    let plan = env.tf.plan_json();
    assert_eq!(
        planned_actions(&plan, "kargo_project.p"),
        Some(vec!["update".to_string()])
    );
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    assert_eq!(
        env.get("projects", None, "guestbook").unwrap()["metadata"]["labels"]["team"],
        "apps"
    );
    assert!(
        env.get("projectconfigs", Some("guestbook"), "guestbook")
            .is_none(),
        "dropping the policies removes the ProjectConfig"
    );

    // Rename: replaced.
    env.config(
        r#"
resource "kargo_project" "p" {
  name   = "guestbook2"
  labels = { team = "apps" }
}
"#,
    );
    let plan = env.tf.plan_json();
    assert_eq!(
        planned_actions(&plan, "kargo_project.p"),
        Some(vec!["delete".to_string(), "create".to_string()])
    );
    env.tf.apply().ok();
    assert!(
        env.get("projects", None, "guestbook").is_none(),
        "old project deleted"
    );
    assert!(
        env.get("namespaces", None, "guestbook").is_none(),
        "old namespace deleted"
    );
    assert!(env.get("projects", None, "guestbook2").is_some());
    env.tf.assert_no_changes();

    // Import round trip: forget it, adopt it with an import block, expect an empty plan.
    env.tf.run(&["state", "rm", "kargo_project.p"]).ok();
    env.config(
        r#"
import {
  to = kargo_project.p
  id = "guestbook2"
}

resource "kargo_project" "p" {
  name   = "guestbook2"
  labels = { team = "apps" }
}
"#,
    );
    env.tf.apply().ok();
    env.tf.assert_no_changes();

    env.tf.destroy().ok();
    assert!(env.get("projects", None, "guestbook2").is_none());
    assert!(env.get("namespaces", None, "guestbook2").is_none());
}

#[test]
fn out_of_band_label_change_shows_as_drift() {
    let env = Env::new();
    env.config(
        r#"
resource "kargo_project" "p" {
  name   = "drift"
  labels = { team = "a" }
}
"#,
    );
    env.tf.apply().ok();
    env.sandbox.with_txn(|txn| {
        let mut p = txn.get(KARGO_GROUP, "projects", None, "drift").unwrap();
        p["metadata"]["labels"]["team"] = json!("changed");
        txn.update(p).unwrap();
    });
    let out = env.tf.plan_code();
    assert_eq!(out.code, 2, "drift must show in the plan:\n{}", out.all());
    assert!(
        out.stdout.contains("\"changed\" -> \"a\""),
        "plan names the drifted value:\n{}",
        out.stdout
    );
}

const KARGO_GROUP: &str = "kargo.akuity.io";

#[test]
fn invalid_name_is_rejected_at_plan_on_the_attribute() {
    let env = Env::new();
    env.config(r#"resource "kargo_project" "p" { name = "Not_A_Label" }"#);
    let out = env.tf.run(&["plan"]).failed();
    assert!(out.stderr.contains("Invalid name"), "{}", out.stderr);
    assert!(
        out.stderr.contains("with kargo_project.p,") && out.stderr.contains("name"),
        "{}",
        out.stderr
    );
    assert!(
        env.sandbox.requests().is_empty(),
        "validation needs no cluster: {:?}",
        env.sandbox.requests()
    );
}

#[test]
fn namespace_without_the_project_label_is_refused_with_the_label_to_add() {
    let env = Env::new();
    env.sandbox.with_txn(|txn| {
        txn.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "taken"}}))
            .unwrap();
    });
    env.config(r#"resource "kargo_project" "p" { name = "taken" }"#);
    let out = env.tf.apply().failed();
    assert!(
        out.stderr.contains("kargo.akuity.io/project=true"),
        "{}",
        out.stderr
    );

    // Labelled, the namespace is adopted.
    env.sandbox.with_txn(|txn| {
        let mut ns = txn.get("", "namespaces", None, "taken").unwrap();
        ns["metadata"]["labels"] = json!({"kargo.akuity.io/project": "true"});
        txn.update(ns).unwrap();
    });
    env.tf.apply().ok();
    env.tf.assert_no_changes();
}
