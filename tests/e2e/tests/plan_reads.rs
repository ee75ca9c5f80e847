//! What one plan reads: each managed object once, and what many resources need (a stage, a
//! warehouse, the project's freight, the cluster's clock) once for all of them, counted in
//! the sandbox's request log; writes in an apply drop what they change.

use kargo_e2e::pipeline::{Pipeline, Sources, applied, held, promote, publish, wait_holds};
use kargo_e2e::{actions, planned_actions, planned_after};
use kargo_sandbox::RequestCounts;
use serde_json::json;

const STAGES: usize = 5;

fn stage(i: usize) -> String {
    format!("s{i}")
}

/// The project, its warehouse `app` and stages `s0`..`s4`, each taking freight from the
/// warehouse directly.
fn pipeline() -> String {
    (0..STAGES)
        .fold(Pipeline::new(), |p, i| {
            p.stage(&stage(i), Sources::direct())
        })
        .hcl()
}

/// One `kargo_promotion` per stage, each of the newest `^1.0` freight (a selector: it reads
/// the warehouse's subscriptions too). No preview: its Git repository is fictional.
fn promotions() -> String {
    (0..STAGES)
        .map(|i| {
            let s = stage(i);
            format!(
                r#"
resource "kargo_promotion" "{s}" {{
  project = kargo_project.p.name
  stage   = kargo_stage.{s}.name
  preview = false
  freight_selector {{
    warehouse          = kargo_warehouse.app.name
    version_constraint = "^1.0"
    image {{ repo_url = "ghcr.io/acme/app" }}
  }}
}}
"#
            )
        })
        .collect()
}

/// The requests by verb and resource, for failure messages.
fn table(counts: &RequestCounts) -> String {
    format!("{:?}", counts.0)
}

#[test]
fn a_plan_of_five_promotions_reads_each_shared_object_once() {
    let env = applied(&pipeline());
    let (f1, _) = publish(&env, "1.0.0");
    env.config(&format!("{}\n{}", pipeline(), promotions()));
    env.tf.apply().ok();
    for i in 0..STAGES {
        let state = env.tf.resource(&format!("kargo_promotion.{}", stage(i)));
        assert_eq!(state["freight_name"], json!(f1));
        assert_eq!(state["phase"], "Succeeded");
    }
    env.tf.assert_no_changes();

    // New freight appears: every promotion plans to move its stage to it.
    let (f2, _) = publish(&env, "1.1.0");
    env.sandbox.reset_requests();
    let plan = env.tf.plan_json();
    let counts = env.sandbox.request_counts();
    for i in 0..STAGES {
        let address = format!("kargo_promotion.{}", stage(i));
        assert_eq!(
            planned_actions(&plan, &address),
            actions(&["delete", "create"]),
            "{address}"
        );
        assert_eq!(
            planned_after(&plan, &address).unwrap()["freight_name"],
            json!(f2)
        );
    }
    let reads = [
        // Each managed object once: the project, the warehouse, the stages, the promotions.
        // The promotions plan against the stages those refreshes read.
        ("get", "projects", 1),
        ("get", "warehouses", 1),
        ("get", "stages", STAGES as u64),
        ("get", "promotions", STAGES as u64),
        // What the promotions need besides: the project's freight listed once, the alias of
        // the freight the stages hold read once, the promotions listed once (is one of the
        // replacements already created?), and no request for the cluster's clock.
        ("list", "freights", 1),
        ("get", "freights", 1),
        ("list", "promotions", 1),
        ("get", "/version", 0),
    ];
    for (verb, resource, expected) in reads {
        assert_eq!(
            counts.get(verb, resource),
            expected,
            "{verb} {resource}: {}",
            table(&counts)
        );
    }
    let expected: u64 = reads.iter().map(|(_, _, n)| n).sum();
    assert_eq!(
        counts.verb("get") + counts.verb("list"),
        expected,
        "no other reads: {}",
        table(&counts)
    );
    assert_eq!(counts.verb("watch"), 0, "a plan waits for nothing");
}

/// `dev` takes freight from the warehouse, `prod` from `dev`.
fn two_stages() -> String {
    Pipeline::new()
        .stage("dev", Sources::direct())
        .stage("prod", Sources::after("dev"))
        .hcl()
}

#[test]
fn an_apply_reads_what_its_writes_changed_afresh() {
    let env = applied(&two_stages());
    let (f1, _) = publish(&env, "1.0.0");
    let (f2, _) = publish(&env, "1.1.0");
    promote(&env, "dev", &f1);
    wait_holds(&env, "dev", &f1);
    // In the apply, the promotion and the approval are planned again (reading the stage and
    // the freight list) before they write; the data sources read after the writes and must
    // see what the writes did, not what was read before them.
    env.config(&format!(
        r#"{}
resource "kargo_promotion" "dev" {{
  project = kargo_project.p.name
  stage   = kargo_stage.dev.name
  freight = "{f2}"
  preview = false
}}

data "kargo_stage" "dev" {{
  project    = kargo_project.p.name
  name       = kargo_stage.dev.name
  depends_on = [kargo_promotion.dev]
}}

resource "kargo_freight_approval" "prod" {{
  project = kargo_project.p.name
  stage   = kargo_stage.prod.name
  freight = "{f2}"
}}

data "kargo_freight" "for_prod" {{
  project            = kargo_project.p.name
  name               = "{f2}"
  available_to_stage = kargo_stage.prod.name
  depends_on         = [kargo_freight_approval.prod]
}}

output "dev_holds" {{
  value = data.kargo_stage.dev.current_freight.name
}}

output "available_to_prod" {{
  value = data.kargo_freight.for_prod.name
}}
"#,
        two_stages()
    ));
    env.sandbox.reset_requests();
    env.tf.apply().ok();
    let outputs = env.tf.outputs();
    assert_eq!(
        outputs["dev_holds"],
        json!(f2),
        "the stage read after the promotion, not the one read before it"
    );
    assert_eq!(
        outputs["available_to_prod"],
        json!(f2),
        "the freight read after the approval"
    );
    assert_eq!(held(&env, "dev").as_deref(), Some(f2.as_str()));
    env.tf.assert_no_changes();
}
