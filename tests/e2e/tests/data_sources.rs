//! The kargo_freight, kargo_stage and kargo_warehouse data sources end to end: what they
//! report after real discovery and promotion, their filters, and every way they fail.

use std::time::Duration;

use kargo_e2e::pipeline::{Hcl, Pipeline, Sources, applied_over, promote, publish, wait_verified};
use kargo_e2e::{Env, Transport, explicit_provider};
use serde_json::{Value as Json, json};

/// One image warehouse; `dev` takes its freight directly, `prod` after `dev`, and `gate` is
/// a control-flow stage (no promotion steps) after `dev`.
static PIPELINE: Hcl = Hcl::new(|| {
    Pipeline::new()
        .stage("dev", Sources::direct())
        .stage("prod", Sources::after("dev").soak("1h"))
        .control_flow_stage("gate", Sources::after("dev"))
        .hcl()
});

kargo_e2e::over_both_transports!(
    stage_reports_its_freight_health_promotion_and_sources,
    freight_is_found_by_name_alias_and_selector_with_filters,
    warehouse_reports_discovered_artifacts_and_its_latest_freight
);

/// The pipeline with two freights, the older one promoted into (and verified in) dev.
fn world(transport: Transport) -> (Env, (String, String), (String, String)) {
    let env = applied_over(&PIPELINE, transport);
    let f1 = publish(&env, "1.0.0");
    let f2 = publish(&env, "1.1.0");
    promote(&env, "dev", &f1.0);
    wait_verified(&env, &f1.0, "dev");
    (env, f1, f2)
}

/// Applies the pipeline plus `extra` and returns the outputs' values.
fn outputs(env: &Env, extra: &str) -> Json {
    env.config(&format!("{PIPELINE}{extra}"));
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    env.assert_went_through_transport();
    env.tf.outputs()
}

/// Plans the pipeline plus `extra`, expecting failure; returns the output, flattened.
fn plan_fails(env: &Env, extra: &str) -> String {
    env.config(&format!("{PIPELINE}{extra}"));
    env.tf.run(&["plan"]).failed().flat()
}

fn strings(v: &Json) -> Vec<&str> {
    v.as_array()
        .expect("a list")
        .iter()
        .filter_map(Json::as_str)
        .collect()
}

fn stage_reports_its_freight_health_promotion_and_sources(transport: Transport) {
    let (env, (f1, alias1), _) = world(transport);
    let out = outputs(
        &env,
        r#"
data "kargo_stage" "dev" {
  project = "shop"
  name    = "dev"
}

data "kargo_stage" "gate" {
  project = "shop"
  name    = "gate"
}

output "dev" {
  value = data.kargo_stage.dev
}

output "gate" {
  value = data.kargo_stage.gate
}

output "dev_tag" {
  value = data.kargo_stage.dev.current_freight.artifacts.images[0].tag
}
"#,
    );
    let dev = &out["dev"];
    assert_eq!(dev["id"], "shop/dev");
    assert_eq!(dev["current_freight"]["name"], f1.as_str());
    assert_eq!(dev["current_freight"]["alias"], alias1.as_str());
    assert_eq!(dev["current_freight"]["warehouse"], "app");
    assert_eq!(out["dev_tag"], "1.0.0");
    assert_eq!(dev["health"], "Healthy");
    assert_eq!(dev["auto_promotion_enabled"], false);
    assert_eq!(dev["last_promotion"]["phase"], "Succeeded");
    assert_eq!(dev["last_promotion"]["freight"], f1.as_str());
    assert!(dev["last_promotion"]["finished_at"].is_string(), "{dev}");
    assert_eq!(dev["control_flow"], false);
    assert_eq!(dev["requested_freight"][0]["origin"]["name"], "app");
    assert_eq!(dev["requested_freight"][0]["sources"]["direct"], true);

    // The same shape as the resource's current_freight.
    let resource = env.tf.resource("kargo_stage.dev");
    assert_eq!(resource["current_freight"], dev["current_freight"]);

    let gate = &out["gate"];
    assert_eq!(gate["control_flow"], true);
    assert!(gate["current_freight"].is_null());
    assert!(gate["last_promotion"].is_null());
    assert_eq!(
        strings(&gate["requested_freight"][0]["sources"]["stages"]),
        ["dev"]
    );

    // A stage that does not exist: the error says what exists and what to do.
    let text = plan_fails(
        &env,
        "data \"kargo_stage\" \"x\" {\n  project = \"shop\"\n  name    = \"qa\"\n}\n",
    );
    assert!(text.contains("Stage not found"), "{text}");
    assert!(text.contains("Stage \"shop/qa\" does not exist"), "{text}");
    assert!(
        text.contains("\"dev\", \"gate\", \"prod\""),
        "names the stages that exist: {text}"
    );
}

fn freight_is_found_by_name_alias_and_selector_with_filters(transport: Transport) {
    let (env, (f1, alias1), (f2, alias2)) = world(transport);
    let out = outputs(
        &env,
        &format!(
            r#"
data "kargo_freight" "by_name" {{
  project = "shop"
  name    = "{f1}"
}}

data "kargo_freight" "by_alias" {{
  project = "shop"
  alias   = "{alias2}"
}}

data "kargo_freight" "newest" {{
  project = "shop"
  freight_selector {{
    warehouse          = "app"
    version_constraint = "^1.0"
    image {{ repo_url = "ghcr.io/acme/app" }}
  }}
}}

data "kargo_freight" "verified" {{
  project           = "shop"
  verified_in_stage = "dev"
  freight_selector {{
    warehouse = "app"
    image {{ repo_url = "ghcr.io/acme/app" }}
  }}
}}

output "by_name" {{
  value = data.kargo_freight.by_name
}}

output "by_alias" {{
  value = data.kargo_freight.by_alias
}}

output "newest" {{
  value = data.kargo_freight.newest.name
}}

output "verified" {{
  value = data.kargo_freight.verified.name
}}
"#
        ),
    );
    let by_name = &out["by_name"];
    assert_eq!(by_name["id"], format!("shop/{f1}"));
    assert_eq!(by_name["alias"], alias1.as_str());
    assert_eq!(
        by_name["origin"],
        json!({"kind": "Warehouse", "name": "app"})
    );
    assert_eq!(by_name["artifacts"]["images"][0]["tag"], "1.0.0");
    // Kargo passes freight verified upstream of a control-flow stage through it as verified.
    assert_eq!(strings(&by_name["verified_in"]), ["dev", "gate"]);
    assert_eq!(strings(&by_name["currently_in"]), ["dev"]);
    assert!(strings(&by_name["approved_for"]).is_empty());
    assert!(by_name["created_at"].is_string());
    assert_eq!(out["by_alias"]["name"], f2.as_str());
    assert!(strings(&out["by_alias"]["verified_in"]).is_empty());
    assert_eq!(out["newest"], f2.as_str(), "the highest matching version");
    assert_eq!(out["verified"], f1.as_str(), "the newest verified in dev");

    // prod needs an hour of soak in dev: nothing is available yet, and the error says why.
    let available = |choice: &str| {
        format!(
            "data \"kargo_freight\" \"prod\" {{\n  project            = \"shop\"\n  available_to_stage = \"prod\"\n  {choice}\n}}\n"
        )
    };
    let selector = "freight_selector {\n    warehouse = \"app\"\n    image { repo_url = \"ghcr.io/acme/app\" }\n  }";
    let text = plan_fails(&env, &available(selector));
    assert!(
        text.contains("No freight matches the selector and the filter"),
        "{text}"
    );
    assert!(text.contains("available to stage \"prod\""), "{text}");
    assert!(
        text.contains("not soaked long enough in stage \"dev\""),
        "{text}"
    );
    env.sandbox.advance_clock(Duration::from_secs(2 * 3600));
    let out = outputs(
        &env,
        &format!(
            "{}output \"available\" {{\n  value = data.kargo_freight.prod.name\n}}\n",
            available(selector)
        ),
    );
    assert_eq!(
        out["available"],
        f1.as_str(),
        "soaked now; f2 never went to dev"
    );

    // By name, a filter the freight fails is an error on the filter, with the reason.
    let text = plan_fails(&env, &available(&format!("name = \"{f2}\"")));
    assert!(text.contains("Freight does not match the filter"), "{text}");
    assert!(
        text.contains("not been verified in stage \"dev\""),
        "{text}"
    );
    assert!(text.contains("available_to_stage = \"prod\""), "{text}");

    // Nothing by that alias: what was searched and what exists.
    let text = plan_fails(
        &env,
        "data \"kargo_freight\" \"x\" {\n  project = \"shop\"\n  alias   = \"sad-cat\"\n}\n",
    );
    assert!(
        text.contains("has no freight with alias \"sad-cat\""),
        "{text}"
    );
    assert!(
        text.contains(&format!("freight {f2:?} (alias {alias2:?})")),
        "{text}"
    );
    assert!(text.contains("ghcr.io/acme/app:1.0.0"), "{text}");

    // Exactly one way of finding it.
    let text = plan_fails(
        &env,
        &format!(
            "data \"kargo_freight\" \"x\" {{\n  project = \"shop\"\n  name    = \"{f1}\"\n  alias   = \"{alias1}\"\n}}\n"
        ),
    );
    assert!(
        text.contains("\"name\", \"alias\", \"freight_selector\""),
        "{text}"
    );
}

fn warehouse_reports_discovered_artifacts_and_its_latest_freight(transport: Transport) {
    let (env, _, (f2, alias2)) = world(transport);
    let out = outputs(
        &env,
        r#"
data "kargo_warehouse" "app" {
  project = "shop"
  name    = "app"
}

output "app" {
  value = data.kargo_warehouse.app
}
"#,
    );
    let app = &out["app"];
    assert_eq!(app["id"], "shop/app");
    let images = &app["discovered_artifacts"]["images"];
    assert_eq!(images[0]["repo_url"], "ghcr.io/acme/app");
    let tags: Vec<&str> = images[0]["references"]
        .as_array()
        .expect("references")
        .iter()
        .filter_map(|r| r["tag"].as_str())
        .collect();
    assert_eq!(tags, ["1.1.0", "1.0.0"], "newest first");
    assert!(
        images[0]["references"][0]["digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:"))
    );
    assert!(app["discovered_artifacts"]["discovered_at"].is_string());
    assert_eq!(app["latest_freight"]["name"], f2.as_str());
    assert_eq!(app["latest_freight"]["alias"], alias2.as_str());
    assert_eq!(
        app["latest_freight"]["artifacts"]["images"][0]["tag"],
        "1.1.0"
    );
    assert_eq!(app["last_freight_id"], f2.as_str());
    assert_eq!(app["ready"], true);

    let text = plan_fails(
        &env,
        "data \"kargo_warehouse\" \"x\" {\n  project = \"shop\"\n  name    = \"nope\"\n}\n",
    );
    assert!(text.contains("Warehouse not found"), "{text}");
    assert!(
        text.contains("Warehouse \"shop/nope\" does not exist"),
        "{text}"
    );
    assert!(text.contains("in project \"shop\": \"app\""), "{text}");
}

#[test]
fn an_unreachable_cluster_or_missing_kargo_fails_with_what_to_do() {
    let env = Env::new();
    env.tf.write_main(&format!(
        "{}\ndata \"kargo_stage\" \"dev\" {{\n  project = \"shop\"\n  name    = \"dev\"\n}}\n",
        explicit_provider(&env, "https://127.0.0.1:1", "t")
    ));
    let text = env.tf.run(&["plan"]).failed().flat();
    assert!(
        text.contains("Cannot read Stage \"shop/dev\": the cluster is unreachable"),
        "{text}"
    );
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(text.contains("Check the provider's `host`"), "{text}");

    let env = Env::without_kargo();
    env.config(
        "data \"kargo_warehouse\" \"app\" {\n  project = \"shop\"\n  name    = \"app\"\n}\n",
    );
    let text = env.tf.run(&["plan"]).failed().flat();
    assert!(
        text.contains("Cannot read Warehouse \"shop/app\": Kargo is not installed"),
        "{text}"
    );
    assert!(text.contains("Install Kargo"), "{text}");
}
