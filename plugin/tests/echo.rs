//! The example provider end to end through the real `terraform` binary: apply, an empty plan
//! right after, an in-place update, a replacement, validation errors, and destroy.

mod common;

use serde_json::{Value as Json, json};

use common::{Workspace, assert_success, text};

const CONFIG: &str = r#"
provider "echo" {
  id_prefix = "x-"
}

resource "echo_store" "project" {
  name = "bench"
}

resource "echo_store" "w" {
  project  = echo_store.project.name
  name     = "w-1"
  interval = "INTERVAL"
  subscriptions {
    image {
      repo_url   = "ghcr.io/acme/app"
      constraint = "^1.0.0"
    }
  }
  subscriptions {
    chart { repo_url = "oci://ghcr.io/acme/charts/app" }
  }
  timeouts { create = "5m" }
}
"#;

fn config(interval: &str, name: &str) -> String {
    CONFIG
        .replace("INTERVAL", interval)
        .replace("\"w-1\"", &format!("{name:?}"))
}

/// The `values` of `address` in `terraform show -json` output.
fn resource(state: &Json, address: &str) -> Json {
    state["values"]["root_module"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["address"] == address)
        .map(|r| r["values"].clone())
        .unwrap_or_else(|| panic!("{address} is not in state: {state}"))
}

/// The actions `terraform plan -json` output plans for `address`.
fn planned_actions(ws: &Workspace, address: &str) -> Vec<String> {
    let out = ws.terraform(&["plan", "-input=false", "-out=tf.plan"], &[]);
    assert_success("terraform plan -out", &out);
    let out = ws.terraform(&["show", "-json", "tf.plan"], &[]);
    assert_success("terraform show -json tf.plan", &out);
    let plan: Json = serde_json::from_slice(&out.stdout).expect("plan JSON");
    plan["resource_changes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["address"] == address)
        .map(|c| serde_json::from_value(c["change"]["actions"].clone()).expect("actions"))
        .unwrap_or_default()
}

fn assert_empty_plan(ws: &Workspace) {
    let out = ws.terraform(&["plan", "-input=false", "-detailed-exitcode"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "expected no changes:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn apply_plan_update_replace_and_destroy() {
    let ws = Workspace::new(&config("10m", "w-1"));
    assert_eq!(planned_actions(&ws, "echo_store.w"), ["create"]);
    let out = ws.terraform(&["apply", "-auto-approve", "-input=false"], &[]);
    assert_success("terraform apply", &out);
    assert_empty_plan(&ws);

    // What was given is stored, with the schema's defaults filled in and the computed values set.
    let state = ws.state();
    let w = resource(&state, "echo_store.w");
    assert_eq!(w["id"], "x-bench/w-1");
    assert_eq!(w["generation"], 1);
    assert_eq!(w["interval"], "10m");
    assert_eq!(w["creation_policy"], "Automatic");
    assert_eq!(w["timeouts"], json!({ "create": "5m", "delete": null }));
    assert_eq!(
        w["subscriptions"],
        json!([
            {
                "image": {
                    "repo_url": "ghcr.io/acme/app",
                    "constraint": "^1.0.0",
                    "image_selection_strategy": "SemVer",
                    "strict_semvers": true,
                    "discovery_limit": 20,
                    "platform": null
                },
                "git": null,
                "chart": null
            },
            {
                "image": null,
                "git": null,
                "chart": {
                    "repo_url": "oci://ghcr.io/acme/charts/app",
                    "name": null,
                    "semver_constraint": null,
                    "discovery_limit": 20
                }
            }
        ])
    );
    let project = resource(&state, "echo_store.project");
    assert_eq!(project["id"], "x-bench");
    assert_eq!(project["interval"], "5m0s");
    assert_eq!(
        project["subscriptions"],
        json!([]),
        "no block is an empty list"
    );
    assert_eq!(project["timeouts"], Json::Null);

    // A changed attribute updates in place; the ID stays and the generation moves on.
    ws.write_main(&config("1h", "w-1"));
    assert_eq!(planned_actions(&ws, "echo_store.w"), ["update"]);
    assert_success(
        "terraform apply (update)",
        &ws.terraform(&["apply", "-auto-approve", "-input=false"], &[]),
    );
    assert_empty_plan(&ws);
    let w = resource(&ws.state(), "echo_store.w");
    assert_eq!(
        (&w["id"], &w["generation"], &w["interval"]),
        (&json!("x-bench/w-1"), &json!(2), &json!("1h"))
    );

    // A new name replaces it.
    ws.write_main(&config("1h", "w-2"));
    assert_eq!(planned_actions(&ws, "echo_store.w"), ["delete", "create"]);
    assert_success(
        "terraform apply (replace)",
        &ws.terraform(&["apply", "-auto-approve", "-input=false"], &[]),
    );
    assert_empty_plan(&ws);
    let w = resource(&ws.state(), "echo_store.w");
    assert_eq!(
        (&w["id"], &w["generation"]),
        (&json!("x-bench/w-2"), &json!(1))
    );

    let out = ws.terraform(&["destroy", "-auto-approve", "-input=false"], &[]);
    assert_success("terraform destroy", &out);
    assert!(
        text(&out.stdout).contains("Destroy complete! Resources: 2 destroyed."),
        "{}",
        text(&out.stdout)
    );
    let out = ws.terraform(&["state", "list"], &[]);
    assert_success("terraform state list", &out);
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn schema_rules_are_reported_on_the_attribute_at_plan() {
    let ws = Workspace::new(
        r#"
resource "echo_store" "bad" {
  name            = "bad"
  interval        = "soon"
  creation_policy = "Sometimes"
  subscriptions {
    image { repo_url = "ghcr.io/acme/app" }
    git { repo_url = "https://example.com/app.git" }
  }
  subscriptions {}
}
"#,
    );
    let out = ws.terraform(&["plan", "-input=false", "-no-color"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let errors = text(&out.stderr).replace('│', " ");
    let errors = errors.split_whitespace().collect::<Vec<_>>().join(" ");
    for expected in [
        "Error: Conflicting attributes with echo_store.bad, on main.tf line 14, in resource \"echo_store\" \"bad\": 14: git { repo_url = \"https://example.com/app.git\" } Only one of \"image\", \"git\", \"chart\" may be set; \"image\", \"git\" are set.",
        "Error: Invalid value with echo_store.bad, on main.tf line 10, in resource \"echo_store\" \"bad\": 10: interval = \"soon\" `interval` is \"soon\", but it must be a duration such as 30s or 5m.",
        "Error: Invalid value with echo_store.bad, on main.tf line 11, in resource \"echo_store\" \"bad\": 11: creation_policy = \"Sometimes\" `creation_policy` is \"Sometimes\"; allowed values are \"Automatic\", \"Manual\".",
        "Error: Missing attribute with echo_store.bad, on main.tf line 8, in resource \"echo_store\" \"bad\": 8: resource \"echo_store\" \"bad\" { Exactly one of \"image\", \"git\", \"chart\" must be set; none is.",
    ] {
        assert!(
            errors.contains(expected),
            "missing {expected:?} in:\n{errors}"
        );
    }
    assert_eq!(errors.matches("Error: ").count(), 4, "{errors}");
}

#[test]
fn import_explains_that_there_is_nothing_to_import() {
    let ws = Workspace::new("resource \"echo_store\" \"i\" {\n  name = \"i\"\n}\n");
    let out = ws.terraform(
        &["import", "-input=false", "-no-color", "echo_store.i", "i"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr).replace('│', " ");
    let stderr = stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        stderr.contains(
            "Error: Import is not supported An echo_store keeps nothing outside Terraform's \
             state, so there is no \"i\" to import. Declare the resource instead."
        ),
        "{stderr}"
    );
}
