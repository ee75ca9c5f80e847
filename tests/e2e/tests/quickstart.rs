//! examples/quickstart, applied as written against a sandbox the way `make demo` runs it:
//! the pipeline, a promotion into dev, then the plan-time diff when a newer image appears.

use kargo_e2e::pipeline::{held_in, publish_image};
use kargo_e2e::{Env, actions, example_dir, planned_actions, planned_after};

const IMAGE: &str = "ghcr.io/akuity/guestbook";

#[test]
fn the_quickstart_applies_promotes_and_shows_the_next_promotion_at_plan() {
    let mut env = Env::new();
    let main = std::fs::read_to_string(example_dir("quickstart").join("main.tf"))
        .expect("examples/quickstart/main.tf");
    env.tf.write_main(&main);
    let kubeconfig = env.sandbox.kubeconfig_path().display().to_string();
    env.tf.env("TF_VAR_kubeconfig", &kubeconfig);

    // The pipeline alone: no promotion is declared while dev_version is null.
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    for stage in ["dev", "staging"] {
        assert!(
            env.get("stages", Some("kargo-demo"), stage).is_some(),
            "stage {stage} created"
        );
    }

    let (first, first_alias) = publish_image(&env, "kargo-demo", "guestbook", IMAGE, "1.0.0");
    env.tf.env("TF_VAR_dev_version", "^1.0.0");
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    let promotion = env.tf.resource("kargo_promotion.dev[0]");
    assert_eq!(promotion["freight_name"], first.as_str());
    assert_eq!(promotion["phase"], "Succeeded");
    assert_eq!(
        held_in(&env, "kargo-demo", "guestbook", "dev").as_deref(),
        Some(first.as_str()),
        "dev runs the promoted freight"
    );

    // A newer image: the plan names the freight that moves and what it changes.
    let (second, second_alias) = publish_image(&env, "kargo-demo", "guestbook", IMAGE, "1.1.0");
    let plan = env.tf.plan_json();
    assert_eq!(
        planned_actions(&plan, "kargo_promotion.dev[0]"),
        actions(&["delete", "create"]),
        "a new target is a new promotion"
    );
    let after = planned_after(&plan, "kargo_promotion.dev[0]").expect("planned promotion");
    assert_eq!(after["freight_name"], second.as_str());
    assert_eq!(after["stage_freight"]["alias"], first_alias.as_str());
    assert_eq!(after["changes"][0]["from"], "1.0.0");
    assert_eq!(after["changes"][0]["to"], "1.1.0");
    let summary = after["summary"].as_str().expect("summary known at plan");
    assert!(
        summary.contains(&first_alias) && summary.contains(&second_alias),
        "the summary names both freights: {summary}"
    );

    env.tf.apply().ok();
    env.tf.assert_no_changes();
    let outputs = env.tf.outputs();
    assert_eq!(outputs["dev_promotion"]["freight"], second_alias.as_str());
    assert_eq!(outputs["dev_promotion"]["phase"], "Succeeded");

    env.tf.destroy().ok();
    assert!(env.get("projects", None, "kargo-demo").is_none());
}
