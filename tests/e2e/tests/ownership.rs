//! Field ownership end to end: fields last written imperatively (`kubectl label`, `kubectl
//! annotate`, `kubectl edit`) are drift that apply takes back; fields owned by another
//! server-side applier are a conflict that the plan reports, naming the manager and the field,
//! until `force_conflicts` takes them.

mod server_side;

use std::process::Command;

use kargo_e2e::{At, Env, actions, planned_actions};
use serde_json::json;

const WAREHOUSE: &str = r#"
resource "kargo_project" "p" {
  name = "shop"
}

resource "kargo_warehouse" "app" {
  project     = kargo_project.p.name
  name        = "app"
  labels      = { team = "payments" }
  annotations = { owner = "platform" }
  interval    = "5m"
  subscriptions {
    image { repo_url = "ghcr.io/acme/app" }
  }
}
"#;

/// Runs kubectl against the sandbox of `env`, as someone editing by hand would.
fn kubectl(env: &Env, args: &[&str]) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(env.sandbox.kubeconfig_path())
        .args(args)
        .output()
        .expect("kubectl runs (it must be on PATH for the end-to-end tests)");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn warehouse(env: &Env) -> serde_json::Value {
    env.get("warehouses", Some("shop"), "app")
        .expect("the warehouse exists")
}

#[test]
fn imperative_edits_are_drift_that_apply_takes_back() {
    let env = Env::new();
    env.config(WAREHOUSE);
    env.tf.apply().ok();

    kubectl(
        &env,
        &[
            "label",
            "--overwrite",
            "-n",
            "shop",
            "warehouses.kargo.akuity.io/app",
            "team=other",
        ],
    );
    kubectl(
        &env,
        &[
            "annotate",
            "--overwrite",
            "-n",
            "shop",
            "warehouses.kargo.akuity.io/app",
            "owner=someone",
        ],
    );
    // `kubectl edit` with an editor that changes the interval.
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(env.sandbox.kubeconfig_path())
        .args(["edit", "-n", "shop", "warehouses.kargo.akuity.io/app"])
        .env(
            "KUBE_EDITOR",
            "sed -i -e 's/^  interval: .*$/  interval: 7m/'",
        )
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl edit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live = warehouse(&env);
    assert_eq!(live["metadata"]["labels"]["team"], "other");
    assert_eq!(live["spec"]["interval"], "7m0s", "edited");
    let managers: Vec<&str> = live["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["operation"] == "Update")
        .filter_map(|e| e["manager"].as_str())
        .collect();
    for m in ["kubectl-label", "kubectl-annotate", "kubectl-edit"] {
        assert!(
            managers.contains(&m),
            "{m} edited imperatively: {managers:?}"
        );
    }

    let plan = env.tf.plan_json();
    assert_eq!(
        planned_actions(&plan, "kargo_warehouse.app"),
        actions(&["update"]),
        "the plan shows the drift it will take back"
    );
    env.tf.apply().ok();
    let live = warehouse(&env);
    assert_eq!(live["metadata"]["labels"]["team"], "payments");
    assert_eq!(live["metadata"]["annotations"]["owner"], "platform");
    assert_eq!(live["spec"]["interval"], "5m0s");
    env.tf.assert_no_changes();
}

#[test]
fn another_appliers_field_is_reported_at_plan_until_force_conflicts_takes_it() {
    let env = Env::new();
    env.config(WAREHOUSE);
    env.tf.apply().ok();

    // Another applier (Argo CD with server-side apply) takes the interval.
    server_side::apply_forced(
        &env,
        "argocd-controller",
        &json!({
            "apiVersion": "kargo.akuity.io/v1alpha1",
            "kind": "Warehouse",
            "metadata": {"name": "app", "namespace": "shop"},
            "spec": {"interval": "9m"}
        }),
    );
    assert_eq!(warehouse(&env)["spec"]["interval"], "9m0s");
    env.sandbox.reset_requests();
    let out = env.tf.run(&["plan"]).failed();
    let text = out.flat();
    assert!(
        text.contains("Failed to update the Warehouse (server-side dry run)"),
        "{text}"
    );
    assert!(
        text.contains("\"argocd-controller\""),
        "the manager is named: {text}"
    );
    assert!(
        text.contains(".spec.interval"),
        "the field is named: {text}"
    );
    assert!(
        text.contains("`force_conflicts`"),
        "the fix is named: {text}"
    );
    assert!(
        text.contains(r#"in resource "kargo_warehouse" "app": "#)
            && text.contains(r#"interval = "5m""#),
        "on the attribute: {text}"
    );
    assert!(
        env.sandbox
            .requests()
            .iter()
            .any(|r| r.resource == "warehouses" && r.verb == "patch" && r.path.contains("app")),
        "the plan asked the API server (dry run)"
    );
    assert_eq!(
        warehouse(&env)["spec"]["interval"],
        "9m0s",
        "the dry run stored nothing"
    );

    env.tf.write_main(&format!(
        "{}\n{WAREHOUSE}",
        env.provider_block()
            .replace("config_path", "force_conflicts = true\n  config_path")
    ));
    env.tf.run(&["plan"]).ok();
    env.tf.apply().ok();
    assert_eq!(
        warehouse(&env)["spec"]["interval"],
        "5m0s",
        "force_conflicts took it"
    );
    env.tf.assert_no_changes();
}

#[test]
fn another_appliers_project_label_is_reported_at_plan_until_force_conflicts_takes_it() {
    let env = Env::new();
    let project = r#"
resource "kargo_project" "p" {
  name   = "shop"
  labels = { team = "payments" }
}
"#;
    env.config(project);
    env.tf.apply().ok();
    server_side::apply_forced(
        &env,
        "argocd-controller",
        &json!({
            "apiVersion": "kargo.akuity.io/v1alpha1",
            "kind": "Project",
            "metadata": {"name": "shop", "labels": {"team": "other"}}
        }),
    );
    env.sandbox.reset_requests();
    let out = env.tf.run(&["plan", "-json"]).failed();
    let found = out.json_diagnostics_at();
    assert_eq!(found.len(), 1, "{}", out.all());
    let (diagnostic, at) = &found[0];
    assert_eq!(
        (
            diagnostic.severity.as_str(),
            diagnostic.address.as_str(),
            diagnostic.summary.as_str()
        ),
        (
            "error",
            "kargo_project.p",
            "Failed to update the project (server-side dry run)"
        )
    );
    for part in [
        "\"argocd-controller\"",
        ".metadata.labels.team",
        "`force_conflicts`",
    ] {
        assert!(diagnostic.detail.contains(part), "{part} in {diagnostic:?}");
    }
    assert_eq!(
        *at,
        At::nth(env.tf.path(), "main.tf", "{ team = \"payments\" }", 1),
        "on the labels"
    );
    assert!(
        env.sandbox
            .requests()
            .iter()
            .any(|r| r.resource == "projects" && r.verb == "patch" && r.code == 409),
        "the plan asked the API server (dry run)"
    );
    let live = env.get("projects", None, "shop").unwrap();
    assert_eq!(
        live["metadata"]["labels"]["team"], "other",
        "nothing stored"
    );

    env.tf.write_main(&format!(
        "{}\n{project}",
        env.provider_block()
            .replace("config_path", "force_conflicts = true\n  config_path")
    ));
    env.tf.apply().ok();
    let live = env.get("projects", None, "shop").unwrap();
    assert_eq!(live["metadata"]["labels"]["team"], "payments", "taken");
    env.tf.assert_no_changes();
}
