//! kargo_warehouse, kargo_stage, kargo_promotion_task and kargo_cluster_promotion_task end
//! to end: apply → empty plan → in-place change → replace → import → destroy, and objects
//! created in the same apply as their project.

use std::time::Duration;

use kargo_e2e::{Env, Transport, actions, planned_actions};
use kargo_sandbox::HttpFault;
use serde_json::json;

const PIPELINE: &str = r##"
resource "kargo_project" "p" {
  name = "shop"
}

resource "kargo_warehouse" "app" {
  project  = kargo_project.p.name
  name     = "app"
  interval = "10m"
  subscriptions {
    image {
      repo_url   = "ghcr.io/acme/app"
      constraint = "^1.0.0"
    }
  }
}

resource "kargo_cluster_promotion_task" "notify" {
  name = "notify"
  vars {
    name  = "channel"
    value = "#deploys"
  }
  steps {
    uses   = "http"
    config = jsonencode({ url = "https://hooks.example.com", method = "POST" })
  }
}

resource "kargo_promotion_task" "update" {
  project = kargo_project.p.name
  name    = "update-image"
  vars { name = "repo" }
  steps {
    uses   = "git-clone"
    as     = "clone"
    config = jsonencode({ repoURL = "$${{ vars.repo }}", checkout = [{ branch = "main", path = "./src" }] })
  }
  steps {
    uses   = "git-commit"
    config = jsonencode({ path = "./src", message = "promote" })
  }
}

resource "kargo_stage" "dev" {
  project = kargo_project.p.name
  name    = "dev"
  requested_freight {
    origin { name = kargo_warehouse.app.name }
    sources { direct = true }
  }
  promotion_template {
    steps {
      as = "update"
      task { name = kargo_promotion_task.update.name }
      vars {
        name  = "repo"
        value = "https://github.com/acme/gitops"
      }
    }
    steps {
      task {
        name = kargo_cluster_promotion_task.notify.name
        kind = "ClusterPromotionTask"
      }
    }
  }
}

resource "kargo_stage" "prod" {
  project = kargo_project.p.name
  name    = "prod"
  requested_freight {
    origin { name = kargo_warehouse.app.name }
    sources {
      stages             = [kargo_stage.dev.name]
      required_soak_time = "1h"
    }
  }
  promotion_template {
    steps {
      uses   = "fail"
      config = jsonencode({ message = "not yet" })
    }
  }
}
"##;

/// Every object the pipeline creates, as (resource, namespace, name).
const PIPELINE_OBJECTS: [(&str, Option<&str>, &str); 5] = [
    ("warehouses", Some("shop"), "app"),
    ("stages", Some("shop"), "dev"),
    ("stages", Some("shop"), "prod"),
    ("promotiontasks", Some("shop"), "update-image"),
    ("clusterpromotiontasks", None, "notify"),
];

kargo_e2e::over_both_transports!(pipeline_lifecycle);

fn pipeline_lifecycle(transport: Transport) {
    let env = Env::over(transport);
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

    // A step config re-encoded with its keys in another order is not a change.
    let reordered = PIPELINE.replace(
        "jsonencode({ url = \"https://hooks.example.com\", method = \"POST\" })",
        "\"{\\\"method\\\": \\\"POST\\\", \\\"url\\\": \\\"https://hooks.example.com\\\"}\"",
    );
    env.config(&reordered);
    let plan = env.tf.plan_json();
    assert_eq!(
        planned_actions(&plan, "kargo_cluster_promotion_task.notify"),
        actions(&["no-op"]),
        "reordering JSON keys is not a change"
    );
    env.tf.assert_no_changes();

    // In place: a new constraint, a new value for a stage's step var, a new step in the
    // project's task and a new var in the cluster's task.
    let changed = reordered
        .replace("constraint = \"^1.0.0\"", "constraint = \"^1.2.0\"")
        .replace(
            "value = \"https://github.com/acme/gitops\"",
            "value = \"https://github.com/acme/deploy\"",
        )
        .replace(
            "message = \"promote\" })\n  }\n",
            "message = \"promote\" })\n  }\n  steps {\n    uses   = \"git-push\"\n    config = jsonencode({ path = \"./src\" })\n  }\n",
        )
        .replace(
            "value = \"#deploys\"\n  }\n",
            "value = \"#deploys\"\n  }\n  vars {\n    name  = \"severity\"\n    value = \"info\"\n  }\n",
        );
    assert_eq!(changed.matches("steps {").count(), 7, "{changed}");
    assert_eq!(changed.matches("vars {").count(), 4, "{changed}");
    env.config(&changed);
    let plan = env.tf.plan_json();
    for addr in [
        "kargo_warehouse.app",
        "kargo_stage.dev",
        "kargo_promotion_task.update",
        "kargo_cluster_promotion_task.notify",
    ] {
        assert_eq!(planned_actions(&plan, addr), actions(&["update"]), "{addr}");
    }
    assert_eq!(
        planned_actions(&plan, "kargo_stage.prod"),
        actions(&["no-op"])
    );
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    assert_eq!(
        env.get("warehouses", Some("shop"), "app").unwrap()["spec"]["subscriptions"][0]["image"]["constraint"],
        "^1.2.0"
    );
    assert_eq!(
        env.get("stages", Some("shop"), "dev").unwrap()["spec"]["promotionTemplate"]["spec"]["steps"]
            [0]["vars"],
        json!([{"name": "repo", "value": "https://github.com/acme/deploy"}])
    );
    let task = env
        .get("promotiontasks", Some("shop"), "update-image")
        .unwrap();
    assert_eq!(
        task["spec"]["steps"][2],
        json!({"uses": "git-push", "config": {"path": "./src"}})
    );
    assert_eq!(
        env.get("clusterpromotiontasks", None, "notify").unwrap()["spec"]["vars"],
        json!([{"name": "channel", "value": "#deploys"}, {"name": "severity", "value": "info"}])
    );

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
    env.config(&format!("{changed}\n{imports}"));
    env.tf.apply().ok();
    env.tf.assert_no_changes();

    env.destroy_and_assert_gone("shop", &PIPELINE_OBJECTS);
    env.assert_went_through_transport();
}

#[test]
fn renaming_replaces_each_pipeline_object_and_its_users_follow_in_place() {
    let env = Env::new();
    env.config(PIPELINE);
    env.tf.apply().ok();

    let renamed = PIPELINE
        .replace("name     = \"app\"", "name     = \"api\"")
        .replace("name    = \"update-image\"", "name    = \"bump-image\"")
        .replace("name = \"notify\"", "name = \"announce\"")
        .replace("name    = \"prod\"", "name    = \"production\"");
    env.config(&renamed);
    let plan = env.tf.plan_json();
    for addr in [
        "kargo_warehouse.app",
        "kargo_promotion_task.update",
        "kargo_cluster_promotion_task.notify",
        "kargo_stage.prod",
    ] {
        assert_eq!(
            planned_actions(&plan, addr),
            actions(&["delete", "create"]),
            "{addr}"
        );
    }
    assert_eq!(
        planned_actions(&plan, "kargo_stage.dev"),
        actions(&["update"]),
        "the stage follows the new names in place"
    );
    env.tf.apply().ok();
    env.tf.assert_no_changes();

    let renames = [
        ("warehouses", Some("shop"), "app", "api"),
        ("promotiontasks", Some("shop"), "update-image", "bump-image"),
        ("clusterpromotiontasks", None, "notify", "announce"),
        ("stages", Some("shop"), "prod", "production"),
    ];
    for (res, ns, old, new) in renames {
        assert!(env.get(res, ns, old).is_none(), "{res}/{old} deleted");
        assert!(env.get(res, ns, new).is_some(), "{res}/{new} created");
    }
    let dev = env.get("stages", Some("shop"), "dev").expect("dev kept");
    assert_eq!(dev["spec"]["requestedFreight"][0]["origin"]["name"], "api");
    let steps = &dev["spec"]["promotionTemplate"]["spec"]["steps"];
    assert_eq!(steps[0]["task"]["name"], "bump-image");
    assert_eq!(steps[1]["task"]["name"], "announce");
    assert_eq!(env.tf.resource("kargo_warehouse.app")["id"], "shop/api");

    let objects: Vec<_> = renames
        .iter()
        .map(|(res, ns, _, new)| (*res, *ns, *new))
        .chain([("stages", Some("shop"), "dev")])
        .collect();
    env.destroy_and_assert_gone("shop", &objects);
}

#[test]
fn objects_of_a_project_created_in_the_same_apply_wait_for_its_namespace() {
    let env = Env::new();
    // The project is slow to come, so the other writes certainly reach Kargo before its
    // namespace exists.
    env.sandbox
        .inject_fault(
            HttpFault::delay(Duration::from_secs(2))
                .verb("patch")
                .resource("projects")
                .times(1),
        )
        .expect("inject fault");
    // A literal project name and no depends_on: Terraform creates all four at once.
    env.config(
        r#"
resource "kargo_project" "shop" {
  name = "shop"
}

resource "kargo_warehouse" "app" {
  project = "shop"
  name    = "app"
  subscriptions {
    image { repo_url = "ghcr.io/acme/app" }
  }
}

resource "kargo_promotion_task" "update" {
  project = "shop"
  name    = "update-image"
  steps {
    uses   = "git-clone"
    config = jsonencode({ repoURL = "https://github.com/acme/gitops", checkout = [{ branch = "main", path = "./src" }] })
  }
}

resource "kargo_stage" "dev" {
  project = "shop"
  name    = "dev"
  requested_freight {
    origin { name = "app" }
    sources { direct = true }
  }
  promotion_template {
    steps {
      task { name = "update-image" }
    }
  }
}
"#,
    );
    env.tf.apply().ok();
    for (res, name) in [
        ("warehouses", "app"),
        ("promotiontasks", "update-image"),
        ("stages", "dev"),
    ] {
        assert!(
            env.get(res, Some("shop"), name).is_some(),
            "{res}/{name} created"
        );
    }
    let refused: Vec<String> = env
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| r.verb == "patch" && r.namespace.as_deref() == Some("shop") && r.code >= 400)
        .map(|r| r.resource)
        .collect();
    for res in ["warehouses", "promotiontasks", "stages"] {
        assert!(
            refused.iter().any(|r| r == res),
            "the first write of {res} came before the namespace and was retried: {refused:?}"
        );
    }
    env.tf.assert_no_changes();
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
  subscriptions {
    image {
      repo_url   = "ghcr.io/acme/app"
      allow_tags = "^v1"
    }
  }
}

resource "kargo_stage" "s" {
  project = "shop"
  name    = "s"
  requested_freight {
    origin { name = "w" }
    sources {
      direct = true
      stages = ["a"]
      auto_promotion_options { selection_policy = "MatchUpstream" }
    }
  }
  promotion_template {
    steps {
      uses = "git-clone"
      task { name = "t" }
    }
  }
}
"#,
    );
    let out = env.tf.run(&["validate"]).failed();
    out.assert_error(
        "kargo_warehouse.w",
        &[
            "Invalid duration",
            "\"5 minutes\" is not a duration Kargo accepts",
        ],
    );
    out.assert_error(
        "kargo_warehouse.w",
        &[
            "Removed attribute",
            "`subscriptions[0].image.allow_tags`: `allow_tags` was removed in Kargo v1.11",
            "use `allow_tags_regexes`",
        ],
    );
    out.assert_error(
        "kargo_stage.s",
        &[
            "Conflicting freight sources",
            "`requested_freight[0].sources.direct`: The `MatchUpstream` selection policy",
            "cannot be combined with `direct = true`",
        ],
    );
    out.assert_error(
        "kargo_stage.s",
        &["`promotion_template.steps[0]`: Only one of \"uses\", \"task\" may be set"],
    );
    env.assert_no_requests("validation needs no cluster");
}

#[test]
fn an_update_is_bounded_by_timeouts_update_and_keeps_the_prior_state() {
    let env = Env::new();
    let hcl = |interval: &str| {
        format!(
            "resource \"kargo_project\" \"p\" {{\n  name = \"shop\"\n}}\n\nresource \"kargo_warehouse\" \"app\" {{\n  project  = kargo_project.p.name\n  name     = \"app\"\n  interval = \"{interval}\"\n  subscriptions {{\n    image {{ repo_url = \"ghcr.io/acme/app\" }}\n  }}\n  timeouts {{ update = \"1s\" }}\n}}\n"
        )
    };
    env.config(&hcl("10m"));
    env.tf.apply().ok();
    // Every write of the warehouse is held for 3s before the API server handles it.
    env.sandbox
        .inject_fault(
            HttpFault::delay(Duration::from_secs(3))
                .verb("patch")
                .resource("warehouses"),
        )
        .expect("inject fault");
    env.config(&hcl("20m"));
    let started = std::time::Instant::now();
    let text = env.tf.apply().failed().flat();
    assert!(text.contains("Failed to update the Warehouse"), "{text}");
    assert!(text.contains("`timeouts.update`"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the update gave up at its bound"
    );
    assert_eq!(
        env.tf.resource("kargo_warehouse.app")["interval"],
        "10m",
        "the prior state stands"
    );
    env.sandbox.clear_faults().expect("clear faults");
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    assert_eq!(
        env.get("warehouses", Some("shop"), "app").unwrap()["spec"]["interval"],
        "20m0s"
    );
}
