//! The migration guide end to end: objects written by another tool (as kubernetes_manifest
//! does, server-side apply under the field manager `Terraform`) are adopted with the guide's
//! `removed` and `import` blocks, and then changed with the remedy the guide gives.

mod server_side;

use kargo_e2e::{Env, actions, example_dir, planned_actions};
use serde_json::Value as Json;

/// The field manager kubernetes_manifest writes under unless told otherwise.
const OLD_MANAGER: &str = "Terraform";
const PROVIDER_MANAGER: &str = "terraform-provider-kargo";

fn read_example(rel: &str) -> String {
    let path = example_dir("migration").join(rel);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} is part of the migration guide: {e}", path.display()))
}

fn manifest(rel: &str) -> Json {
    serde_yaml::from_str(&read_example(rel)).expect("the example manifests are valid YAML")
}

/// The fields `manager` owns in `object`, as the `fieldsV1` JSON of its managedFields entry.
fn owned_by(object: &Json, manager: &str) -> Json {
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["manager"] == manager && e["subresource"].is_null())
        .map(|e| e["fieldsV1"].clone())
        .next()
        .unwrap_or(Json::Null)
}

fn owns_interval(env: &Env, manager: &str) -> bool {
    let warehouse = env
        .get("warehouses", Some("guestbook"), "guestbook")
        .expect("warehouse");
    !owned_by(&warehouse, manager)["f:spec"]["f:interval"].is_null()
}

/// The pipeline as an existing kubernetes_manifest configuration left it: the project
/// first (its namespace appears once Kargo reconciles it), then everything in it.
fn seed_as_kubernetes_manifest(env: &Env) {
    server_side::apply(env, OLD_MANAGER, &manifest("kargo/project.yaml"));
    env.eventually(
        "the project namespace",
        std::time::Duration::from_secs(30),
        |env| env.get("namespaces", None, "guestbook").is_some(),
    );
    for file in [
        "kargo/project-config.yaml",
        "kargo/warehouse.yaml",
        "kargo/promotion-task.yaml",
        "kargo/stage-dev.yaml",
    ] {
        server_side::apply(env, OLD_MANAGER, &manifest(file));
    }
    let warehouse = env
        .get("warehouses", Some("guestbook"), "guestbook")
        .expect("warehouse stored");
    // Kargo's defaults are in place, as on a real cluster.
    assert_eq!(warehouse["spec"]["interval"], "5m0s");
    assert_eq!(
        warehouse["spec"]["subscriptions"][0]["image"]["imageSelectionStrategy"],
        "SemVer"
    );
    assert!(owns_interval(env, OLD_MANAGER));
}

fn with_force_conflicts(env: &Env, hcl: &str) {
    let provider = env.provider_block().replacen(
        "provider \"kargo\" {\n",
        "provider \"kargo\" {\n  force_conflicts = true\n",
        1,
    );
    assert!(provider.contains("force_conflicts = true"));
    env.tf.write_main(&format!("{provider}\n{hcl}"));
}

#[test]
fn kubernetes_manifest_objects_are_adopted_with_import_blocks_and_an_empty_plan() {
    let env = Env::new();
    seed_as_kubernetes_manifest(&env);

    // The guide's configuration, as it is.
    let typed = read_example("main.tf");
    env.config(&typed);

    let plan = env.tf.plan_json();
    let changes = plan["resource_changes"]
        .as_array()
        .expect("resource changes");
    let mut imported: Vec<(String, String)> = changes
        .iter()
        .map(|c| {
            assert_eq!(
                c["change"]["actions"],
                serde_json::json!(["no-op"]),
                "{} must only be imported, not changed: {}",
                c["address"],
                c["change"]
            );
            (
                c["address"].as_str().unwrap_or_default().to_string(),
                c["change"]["importing"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    imported.sort();
    assert_eq!(
        imported,
        vec![
            ("kargo_project.guestbook".into(), "guestbook".into()),
            (
                "kargo_promotion_task.update_image".into(),
                "guestbook/update-image".into()
            ),
            ("kargo_stage.dev".into(), "guestbook/dev".into()),
            (
                "kargo_warehouse.guestbook".into(),
                "guestbook/guestbook".into()
            ),
        ]
    );
    let shown = env.tf.run(&["plan"]).ok();
    assert!(
        shown
            .flat()
            .contains("Plan: 4 to import, 0 to add, 0 to change, 0 to destroy."),
        "{}",
        shown.stdout
    );

    env.sandbox.reset_requests();
    let applied = env.tf.apply().ok();
    assert!(
        applied
            .flat()
            .contains("Apply complete! Resources: 4 imported, 0 added, 0 changed, 0 destroyed."),
        "{}",
        applied.stdout
    );
    let counts = env.sandbox.request_counts();
    assert_eq!(
        counts.verb("patch") + counts.verb("create") + counts.verb("delete"),
        0,
        "adopting objects writes nothing: {:?}",
        env.sandbox.requests()
    );
    env.tf.assert_no_changes();
    let state = env.tf.resource("kargo_warehouse.guestbook");
    assert_eq!(
        state["interval"], "5m0s",
        "imported as Kargo stores it, which means the same as the configuration's 5m"
    );
    let project = env.tf.resource("kargo_project.guestbook");
    assert_eq!(
        project["promotion_policies"][0]["stage_selector"]["name"], "dev",
        "the ProjectConfig is adopted with the project"
    );

    // The first change to a field the old manager still owns conflicts, naming it — the
    // situation the guide describes.
    // kubernetes_manifest is a server-side applier, so the plan reports it (dry run).
    let changed = typed.replace("interval = \"5m\"", "interval = \"10m\"");
    assert_ne!(changed, typed);
    env.config(&changed);
    for refused in [env.tf.run(&["plan"]).failed(), env.tf.apply().failed()] {
        let text = refused.flat();
        assert!(
            text.contains("Failed to update the Warehouse (server-side dry run)"),
            "at plan:\n{text}"
        );
        assert!(
            text.contains(&format!("(\"{OLD_MANAGER}\")")) && text.contains(".spec.interval"),
            "the conflict names the old manager and the field:\n{text}"
        );
        assert!(text.contains("force_conflicts"), "{text}");
    }
    assert_eq!(
        env.get("warehouses", Some("guestbook"), "guestbook")
            .expect("warehouse")["spec"]["interval"],
        "5m0s",
        "nothing was written"
    );

    // The guide's remedy: force_conflicts in the provider block. The change is in place.
    with_force_conflicts(&env, &changed);
    let plan = env.tf.plan_json();
    assert_eq!(
        planned_actions(&plan, "kargo_warehouse.guestbook"),
        actions(&["update"])
    );
    let applied = env.tf.apply().ok();
    assert!(
        applied
            .flat()
            .contains("Resources: 0 added, 1 changed, 0 destroyed."),
        "{}",
        applied.stdout
    );
    env.tf.assert_no_changes();
    assert_eq!(
        env.get("warehouses", Some("guestbook"), "guestbook")
            .expect("warehouse")["spec"]["interval"],
        "10m0s"
    );
    assert!(owns_interval(&env, PROVIDER_MANAGER));
    assert!(
        !owns_interval(&env, OLD_MANAGER),
        "forcing moves the field away from the old manager"
    );

    // The field now belongs to the provider alone: without forcing, it changes again.
    let again = changed.replace("interval = \"10m\"", "interval = \"15m\"");
    env.config(&again);
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    assert_eq!(
        env.get("warehouses", Some("guestbook"), "guestbook")
            .expect("warehouse")["spec"]["interval"],
        "15m0s"
    );

    // A field the old manager still shares conflicts the first time it changes, which is
    // why the guide keeps force_conflicts on after migrating.
    let other = again.replace("discovery_limit = 5", "discovery_limit = 10");
    assert_ne!(other, again);
    env.config(&other);
    let refused = env.tf.apply().failed();
    assert!(
        refused.flat().contains(&format!("(\"{OLD_MANAGER}\")")),
        "{}",
        refused.all()
    );
    with_force_conflicts(&env, &other);
    env.tf.apply().ok();
    env.tf.assert_no_changes();
}
