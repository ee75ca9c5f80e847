//! kargo_warehouse, kargo_stage, kargo_promotion_task and kargo_cluster_promotion_task end
//! to end: apply → empty plan → in-place change → replace → import → destroy.

use kargo_e2e::{Env, planned_actions};

const PIPELINE: &str = r##"
resource "kargo_project" "p" {
  name = "shop"
}

resource "kargo_warehouse" "app" {
  project  = kargo_project.p.name
  name     = "app"
  interval = "10m"
  subscriptions = [
    { image = { repo_url = "ghcr.io/acme/app", constraint = "^1.0.0" } },
  ]
}

resource "kargo_cluster_promotion_task" "notify" {
  name = "notify"
  vars = [{ name = "channel", value = "#deploys" }]
  steps = [
    { uses = "http", config = jsonencode({ url = "https://hooks.example.com", method = "POST" }) },
  ]
}

resource "kargo_promotion_task" "update" {
  project = kargo_project.p.name
  name    = "update-image"
  vars    = [{ name = "repo" }]
  steps = [
    { uses = "git-clone", as = "clone", config = jsonencode({ repoURL = "$${{ vars.repo }}", checkout = [{ branch = "main", path = "./src" }] }) },
    { uses = "git-commit", config = jsonencode({ path = "./src", message = "promote" }) },
  ]
}

resource "kargo_stage" "dev" {
  project = kargo_project.p.name
  name    = "dev"
  requested_freight = [
    { origin = { name = kargo_warehouse.app.name }, sources = { direct = true } },
  ]
  promotion_template = {
    steps = [
      { task = { name = kargo_promotion_task.update.name }, as = "update", vars = [{ name = "repo", value = "https://github.com/acme/gitops" }] },
      { task = { name = kargo_cluster_promotion_task.notify.name, kind = "ClusterPromotionTask" } },
    ]
  }
}

resource "kargo_stage" "prod" {
  project = kargo_project.p.name
  name    = "prod"
  requested_freight = [
    { origin = { name = kargo_warehouse.app.name }, sources = { stages = [kargo_stage.dev.name], required_soak_time = "1h" } },
  ]
  promotion_template = {
    steps = [{ uses = "fail", config = jsonencode({ message = "not yet" }) }]
  }
}
"##;

#[test]
fn pipeline_lifecycle() {
    let env = Env::new();
    env.config(PIPELINE);
    env.tf.apply().ok();
    env.tf.assert_no_changes();

    let wh = env
        .get("warehouses", Some("shop"), "app")
        .expect("warehouse stored");
    assert_eq!(
        wh["spec"]["interval"], "10m0s",
        "Kargo re-marshals the duration; the plan stays empty"
    );
    assert_eq!(
        wh["spec"]["subscriptions"][0]["image"]["imageSelectionStrategy"],
        "SemVer"
    );
    let dev = env
        .get("stages", Some("shop"), "dev")
        .expect("stage stored");
    assert_eq!(
        dev["spec"]["promotionTemplate"]["spec"]["steps"][0]["task"]["name"],
        "update-image"
    );
    assert!(env.get("clusterpromotiontasks", None, "notify").is_some());
    let task = env
        .get("promotiontasks", Some("shop"), "update-image")
        .expect("task stored");
    assert_eq!(
        task["spec"]["steps"][0]["config"]["repoURL"], "${{ vars.repo }}",
        "expressions pass through untouched"
    );
    let state = env.tf.resource("kargo_warehouse.app");
    assert_eq!(state["interval"], "10m", "the user's spelling is kept");
    assert_eq!(state["id"], "shop/app");

    // In place: a new constraint and a re-encoded (reordered) step config.
    let changed = PIPELINE
        .replace("constraint = \"^1.0.0\"", "constraint = \"^1.2.0\"")
        .replace(
            "jsonencode({ url = \"https://hooks.example.com\", method = \"POST\" })",
            "\"{\\\"method\\\": \\\"POST\\\", \\\"url\\\": \\\"https://hooks.example.com\\\"}\"",
        );
    env.config(&changed);
    let plan = env.tf.plan_json();
    assert_eq!(
        planned_actions(&plan, "kargo_warehouse.app"),
        Some(vec!["update".to_string()])
    );
    assert_eq!(
        planned_actions(&plan, "kargo_cluster_promotion_task.notify"),
        Some(vec!["no-op".to_string()]),
        "reordering JSON keys is not a change"
    );
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    assert_eq!(
        env.get("warehouses", Some("shop"), "app").unwrap()["spec"]["subscriptions"][0]["image"]["constraint"],
        "^1.2.0"
    );

    // Renaming the production stage replaces it.
    let renamed = changed.replace("name    = \"prod\"", "name    = \"production\"");
    env.config(&renamed);
    let plan = env.tf.plan_json();
    assert_eq!(
        planned_actions(&plan, "kargo_stage.prod"),
        Some(vec!["delete".to_string(), "create".to_string()])
    );
    env.tf.apply().ok();
    assert!(env.get("stages", Some("shop"), "prod").is_none());
    assert!(env.get("stages", Some("shop"), "production").is_some());
    env.tf.assert_no_changes();

    // Import round trip for each kind.
    for addr in [
        "kargo_warehouse.app",
        "kargo_stage.dev",
        "kargo_promotion_task.update",
        "kargo_cluster_promotion_task.notify",
    ] {
        env.tf.run(&["state", "rm", addr]).ok();
    }
    let imports = r#"
import {
  to = kargo_warehouse.app
  id = "shop/app"
}
import {
  to = kargo_stage.dev
  id = "shop/dev"
}
import {
  to = kargo_promotion_task.update
  id = "shop/update-image"
}
import {
  to = kargo_cluster_promotion_task.notify
  id = "notify"
}
"#;
    env.config(&format!("{renamed}\n{imports}"));
    env.tf.apply().ok();
    env.tf.assert_no_changes();

    env.tf.destroy().ok();
    for (res, ns, name) in [
        ("stages", Some("shop"), "dev"),
        ("warehouses", Some("shop"), "app"),
        ("clusterpromotiontasks", None, "notify"),
    ] {
        assert!(
            env.get(res, ns, name).is_none(),
            "{res}/{name} still present after destroy"
        );
    }
    assert!(env.get("namespaces", None, "shop").is_none());
}

#[test]
fn plan_time_validation_names_the_attribute_and_the_replacement() {
    let env = Env::new();
    env.config(
        r#"
resource "kargo_warehouse" "w" {
  project  = "shop"
  name     = "w"
  interval = "5 minutes"
  subscriptions = [
    { image = { repo_url = "ghcr.io/acme/app", allow_tags = "^v1" } },
  ]
}

resource "kargo_stage" "s" {
  project = "shop"
  name    = "s"
  requested_freight = [
    { origin = { name = "w" }, sources = { direct = true, stages = ["a"], auto_promotion_options = { selection_policy = "MatchUpstream" } } },
  ]
  promotion_template = {
    steps = [
      { uses = "git-clone", task = { name = "t" } },
    ]
  }
}
"#,
    );
    let out = env.tf.run(&["validate"]).failed();
    let text = out.flat();
    assert!(text.contains("5 minutes"), "duration error: {text}");
    assert!(
        text.contains("allow_tags_regexes"),
        "removed field names its replacement: {text}"
    );
    assert!(text.contains("MatchUpstream"), "MatchUpstream rule: {text}");
    assert!(
        text.contains("uses") && text.contains("task"),
        "uses xor task: {text}"
    );
    env.assert_no_requests("validation needs no cluster");
}
