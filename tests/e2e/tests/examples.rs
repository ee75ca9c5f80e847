//! The per-resource examples (examples/resources/<type>/), which become the registry docs,
//! applied together against a sandbox: they must work as written, plan empty afterwards, and
//! their import.sh commands must import what they created.

use std::time::Duration;

use kargo_e2e::{Env, example_dir};
use serde_json::{Value as Json, json};

/// Example directories, in the order their resources depend on each other.
const EXAMPLES: [&str; 5] = [
    "kargo_project",
    "kargo_warehouse",
    "kargo_promotion_task",
    "kargo_cluster_promotion_task",
    "kargo_stage",
];

fn read(resource_type: &str, file: &str) -> String {
    let path = example_dir("resources").join(resource_type).join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} is part of the docs: {e}", path.display()))
}

/// The `terraform import <address> <id>` commands of an import.sh.
fn import_commands(resource_type: &str) -> Vec<(String, String)> {
    read(resource_type, "import.sh")
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("terraform import ")?;
            let (address, id) = rest.split_once(' ')?;
            Some((address.to_string(), id.trim().to_string()))
        })
        .collect()
}

/// Every example (the quickstart and the hub cluster among them) is formatted as
/// `terraform fmt` writes it and valid against the provider's schema: what
/// `scripts/examples-check.sh` (`make examples-check`) checks, run with the provider built here.
#[test]
fn every_example_is_formatted_and_valid() {
    let root = example_dir("..");
    let out = std::process::Command::new(root.join("scripts/examples-check.sh"))
        .env("CARGO_TARGET_DIR", kargo_e2e::terraform::target_dir())
        .env_remove("TF_CLI_CONFIG_FILE")
        .output()
        .expect("run scripts/examples-check.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for example in [
        "examples/quickstart",
        "examples/hub-cluster",
        "examples/migration",
    ] {
        assert!(text.contains(&format!("ok: {example}\n")), "{text}");
    }
}

#[test]
fn the_resource_examples_apply_plan_empty_import_and_destroy() {
    let env = Env::new();
    // The namespace and the webhook Secret a platform team would provide (the project
    // example says so in its comments), so that the receiver's URL is published at once.
    env.project_namespace(
        "guestbook",
        &[("github-webhook", "secret", "webhook-token")],
    );
    env.config("");
    for example in EXAMPLES {
        env.tf
            .write(&format!("{example}.tf"), &read(example, "resource.tf"));
    }
    env.tf.apply().ok();
    env.tf.assert_no_changes();

    // What the examples promise is what Kargo got.
    let warehouse = env
        .get("warehouses", Some("guestbook"), "guestbook")
        .expect("the warehouse example creates a warehouse");
    let kinds: Vec<&str> = warehouse["spec"]["subscriptions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_object()?.keys().next().map(String::as_str))
        .collect();
    assert_eq!(kinds, vec!["image", "git", "chart"]);
    let staging = env
        .get("stages", Some("guestbook"), "staging")
        .expect("the stage example creates staging");
    assert_eq!(
        staging["spec"]["requestedFreight"][0]["sources"],
        json!({"stages": ["dev"], "requiredSoakTime": "1h0m0s"})
    );
    assert_eq!(
        staging["spec"]["verification"]["analysisTemplates"][0]["name"],
        "smoke-test"
    );
    let steps: Vec<&str> = staging["spec"]["promotionTemplate"]["spec"]["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["uses"].as_str())
        .collect();
    assert_eq!(
        steps,
        vec![
            "git-clone",
            "kustomize-set-image",
            "git-commit",
            "git-push",
            "argocd-update"
        ]
    );
    assert_eq!(
        staging["spec"]["promotionTemplate"]["spec"]["steps"][1]["config"]["path"],
        "./src/env/${{ ctx.stage }}",
        "Kargo expressions reach Kargo untouched"
    );
    env.eventually(
        "the project example's policy to enable auto-promotion for dev",
        Duration::from_secs(10),
        |env| {
            env.get("stages", Some("guestbook"), "dev")
                .is_some_and(|dev| dev["status"]["autoPromotionEnabled"] == true)
        },
    );
    assert!(
        env.get("promotiontasks", Some("guestbook"), "update-image")
            .is_some()
    );
    assert!(
        env.get("clusterpromotiontasks", None, "notify-slack")
            .is_some()
    );
    let pc = env
        .get("projectconfigs", Some("guestbook"), "guestbook")
        .expect("the project example's receiver and links live in its ProjectConfig");
    let published = pc["status"]["webhookReceivers"][0]["url"]
        .as_str()
        .expect("Kargo published the receiver's URL")
        .to_string();
    let output = env.tf.run(&["output", "-raw", "github_webhook_url"]).ok();
    assert_eq!(output.stdout, published);

    // The import commands the docs show bring each object back into state unchanged.
    for example in EXAMPLES {
        let commands = import_commands(example);
        assert!(!commands.is_empty(), "{example}/import.sh has no import");
        for (address, id) in commands {
            env.tf.run(&["state", "rm", &address]).ok();
            env.tf.run(&["import", &address, &id]).ok();
        }
    }
    // `timeouts` exist only in configuration, so an import cannot know the project
    // example's: writing them into state is the one change, and it touches nothing else.
    let plan = env.tf.plan_json();
    let changes: Vec<&Json> = plan["resource_changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["change"]["actions"] != json!(["no-op"]))
        .collect();
    assert_eq!(changes.len(), 1, "{plan}");
    assert_eq!(changes[0]["address"], "kargo_project.guestbook");
    assert!(changes[0]["change"]["before"]["timeouts"].is_null());
    assert_eq!(
        changes[0]["change"]["after"]["timeouts"],
        json!({"create": "5m", "update": null, "delete": "15m"})
    );
    for key in [
        "webhook_receivers",
        "freight_links",
        "stage_links",
        "promotion_policies",
    ] {
        assert_eq!(
            changes[0]["change"]["before"][key], changes[0]["change"]["after"][key],
            "{key}"
        );
    }
    env.tf.apply().ok();
    env.tf.assert_no_changes();

    env.tf.destroy().ok();
    for (resource, namespace, name) in [
        ("projects", None, "guestbook"),
        ("namespaces", None, "guestbook"),
        ("clusterpromotiontasks", None, "notify-slack"),
    ] {
        assert!(
            env.get(resource, namespace, name).is_none(),
            "{resource}/{name} left after destroy"
        );
    }
}
