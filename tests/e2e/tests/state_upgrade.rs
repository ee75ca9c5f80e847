//! State written before nested configuration became blocks (schema version 0, nested
//! attributes, null for lists not set), read by today's provider: UpgradeResourceState brings
//! every resource to the block shape, and the same configuration rewritten as blocks plans
//! nothing, with or without refreshing. The state and the sandbox objects it describes were
//! written by that older provider (see tests/e2e/fixtures/state-v0/README.md).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kargo_e2e::Env;
use serde_json::{Value as Json, json};

/// Every managed resource type the provider has.
const RESOURCE_TYPES: [&str; 7] = [
    "kargo_cluster_promotion_task",
    "kargo_freight_approval",
    "kargo_project",
    "kargo_promotion",
    "kargo_promotion_task",
    "kargo_stage",
    "kargo_warehouse",
];

fn fixture(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/state-v0")
        .join(file)
}

fn read_json(path: &Path) -> Json {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} cannot be read: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (type, name) → (schema version, attributes) of every managed instance in a state file.
fn instances(state: &Json) -> Vec<(String, String, i64, Json)> {
    state["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["mode"] == "managed")
        .flat_map(|r| {
            r["instances"].as_array().into_iter().flatten().map(|i| {
                (
                    r["type"].as_str().unwrap_or_default().to_string(),
                    r["name"].as_str().unwrap_or_default().to_string(),
                    i["schema_version"].as_i64().unwrap_or(-1),
                    i["attributes"].clone(),
                )
            })
        })
        .collect()
}

fn attributes<'a>(all: &'a [(String, String, i64, Json)], ty: &str, name: &str) -> &'a Json {
    all.iter()
        .find(|(t, n, _, _)| t == ty && n == name)
        .map(|(_, _, _, a)| a)
        .unwrap_or_else(|| panic!("{ty}.{name} is not in state"))
}

#[test]
fn state_of_schema_version_0_upgrades_and_the_block_configuration_plans_empty() {
    let saved = read_json(&fixture("state.tfstate.json"));
    let old = instances(&saved);
    let types: BTreeSet<&str> = old.iter().map(|(t, _, _, _)| t.as_str()).collect();
    assert_eq!(
        types,
        RESOURCE_TYPES.into_iter().collect(),
        "the saved state has every resource type"
    );
    assert!(old.iter().all(|(_, _, v, _)| *v == 0), "all of version 0");
    // What makes it version 0: lists not set are null, not empty.
    assert_eq!(
        attributes(&old, "kargo_stage", "dev")["verification"],
        Json::Null
    );
    assert_eq!(
        attributes(&old, "kargo_stage", "dev")["requested_freight"][0]["sources"]["stages"],
        Json::Null
    );
    assert_eq!(
        attributes(&old, "kargo_project", "guestbook")["promotion_policies"][0]["stage_selector"]["match_expressions"],
        Json::Null
    );

    let sandbox_state = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        fixture("sandbox/state.json"),
        sandbox_state.path().join("state.json"),
    )
    .expect("copy the sandbox's saved objects");
    let env = Env::from_state_dir(sandbox_state.path());
    env.config("");
    let config = std::fs::read_to_string(fixture("after.tf")).expect("after.tf");
    env.tf.write("pipeline.tf", &config);
    std::fs::copy(
        fixture("state.tfstate.json"),
        env.tf.path().join("terraform.tfstate"),
    )
    .expect("copy the saved state");

    // The upgraded state on its own already matches the configuration.
    let out = env
        .tf
        .run(&["plan", "-refresh=false", "-detailed-exitcode"]);
    assert_eq!(out.code, 0, "plan without refresh:\n{}", out.all());
    // And so does what the objects it describes read back as.
    env.tf.assert_no_changes();

    // Written back, every resource is at the current version, with no null where a block is
    // absent and the empty strings kept.
    env.tf
        .run(&["apply", "-refresh-only", "-auto-approve"])
        .ok();
    let upgraded = instances(&read_json(&env.tf.path().join("terraform.tfstate")));
    assert_eq!(upgraded.len(), old.len());
    for (ty, name, version, _) in &upgraded {
        assert_eq!(*version, 1, "{ty}.{name}");
    }
    let dev = attributes(&upgraded, "kargo_stage", "dev");
    assert_eq!(
        dev["verification"],
        Json::Null,
        "a single block not written"
    );
    assert_eq!(dev["requested_freight"][0]["sources"]["stages"], Json::Null);
    let qa = attributes(&upgraded, "kargo_stage", "qa");
    assert_eq!(qa["vars"], json!([]), "a list block not written");
    assert_eq!(qa["verification"]["args"], json!([]));
    assert_eq!(
        qa["promotion_template"]["vars"],
        json!([{"name": "region", "value": ""}])
    );
    assert_eq!(qa["promotion_template"]["steps"][2]["vars"], json!([]));
    let hooks = attributes(&upgraded, "kargo_project", "hooks");
    assert_eq!(hooks["freight_links"], json!([]));
    assert_eq!(hooks["stage_links"][0]["description"], "");
    let guestbook = attributes(&upgraded, "kargo_project", "guestbook");
    assert_eq!(
        guestbook["promotion_policies"][0]["stage_selector"]["match_expressions"],
        json!([])
    );

    // Nothing was written to the cluster along the way.
    let writes: Vec<_> = env
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| !matches!(r.verb.as_str(), "get" | "list" | "watch"))
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
}
