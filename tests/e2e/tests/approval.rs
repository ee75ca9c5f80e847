//! kargo_freight_approval end to end: approve → Kargo sees it → replace on a new target →
//! import → withdraw; used approvals only forgotten; refusals; promotions that need approval.

use kargo_e2e::pipeline::{
    Hcl, Pipeline, Sources, WAIT, applied, applied_over, publish, set_approval,
};
use kargo_e2e::{Env, Transport, actions, explicit_provider, planned_actions, planned_after};
use serde_json::{Value as Json, json};

/// One image warehouse and one Git warehouse; `dev` takes the image freight directly,
/// `prod` only after `dev`, `ops` takes only the Git freight.
static PIPELINE: Hcl = Hcl::new(|| {
    Pipeline::new()
        .git_warehouse("config", "https://github.com/acme/config.git")
        .stage("dev", Sources::direct())
        .stage("prod", Sources::after("dev"))
        .stage("ops", Sources::direct().from_warehouse("config"))
        .hcl()
});

const ADDR: &str = "kargo_freight_approval.prod";

fn pipeline() -> Env {
    applied(&PIPELINE)
}

fn approval(name: &str, stage: &str, choice: &str) -> String {
    format!(
        "resource \"kargo_freight_approval\" \"{name}\" {{\n  project = kargo_project.p.name\n  stage   = \"{stage}\"\n  {choice}\n}}\n"
    )
}

fn freight(env: &Env, name: &str) -> Json {
    env.get("freights", Some("shop"), name)
        .unwrap_or_else(|| panic!("freight {name} not in the sandbox"))
}

/// `status.approvedFor[stage].approvedAt` of a freight in the sandbox.
fn approved_at(env: &Env, name: &str, stage: &str) -> Option<String> {
    freight(env, name)["status"]["approvedFor"][stage]["approvedAt"]
        .as_str()
        .map(str::to_string)
}

fn available(env: &Env, stage: &str, freight: &str) -> bool {
    env.sandbox
        .control(
            "available",
            &json!({"project": "shop", "stage": stage, "freight": freight}),
        )
        .expect("available")["available"]
        == true
}

kargo_e2e::over_both_transports!(approval_lifecycle);

/// Through Kargo's API server an approval cannot be withdrawn: what the plan warns of and
/// the apply then does instead.
const KEPT: &str = "Approval will be kept: Kargo's API server cannot withdraw it";

fn approval_lifecycle(transport: Transport) {
    let env = applied_over(&PIPELINE, transport);
    let withdraws = transport == Transport::Kubernetes;
    let (f1, alias1) = publish(&env, "1.0.0");
    let (f2, _) = publish(&env, "1.1.0");
    assert!(
        !available(&env, "prod", &f1),
        "prod takes freight only after dev"
    );

    // The plan shows which freight is approved, before anything is written.
    env.config(&format!(
        "{PIPELINE}{}",
        approval("prod", "prod", &format!("freight = \"{f1}\""))
    ));
    let plan = env.tf.plan_json();
    assert_eq!(planned_actions(&plan, ADDR), actions(&["create"]));
    let after = planned_after(&plan, ADDR).expect("planned");
    assert_eq!(after["freight_name"], f1.as_str());
    assert_eq!(after["freight_alias"], alias1.as_str());
    assert_eq!(after["artifacts"]["images"][0]["tag"], "1.0.0");
    assert_eq!(after["id"], format!("shop/prod/{f1}"));
    env.tf.apply().ok();
    let at = approved_at(&env, &f1, "prod").expect("approved in Kargo");
    assert!(
        available(&env, "prod", &f1),
        "the approval makes it available"
    );
    env.tf.assert_no_changes();
    let state = env.tf.resource(ADDR);
    assert_eq!(state["id"], format!("shop/prod/{f1}"));
    assert_eq!(state["approved_at"], at.as_str());

    // A selector resolves at plan to the newest matching freight: another target, a
    // replacement; the old approval was never used, so it is withdrawn.
    let selector = r#"freight_selector {
    warehouse          = kargo_warehouse.app.name
    version_constraint = "^1.0"
    image { repo_url = "ghcr.io/acme/app" }
  }"#;
    env.config(&format!("{PIPELINE}{}", approval("prod", "prod", selector)));
    let plan = env.tf.plan_json();
    assert_eq!(planned_actions(&plan, ADDR), actions(&["delete", "create"]));
    assert_eq!(
        planned_after(&plan, ADDR).unwrap()["freight_name"],
        f2.as_str()
    );
    let shown = env.tf.run(&["plan"]).ok();
    assert_eq!(shown.flat().contains(KEPT), !withdraws, "{}", shown.all());
    env.tf.apply().ok();
    if withdraws {
        assert_eq!(approved_at(&env, &f1, "prod"), None, "withdrawn");
    } else {
        assert_eq!(
            approved_at(&env, &f1, "prod").as_deref(),
            Some(at.as_str()),
            "kept, as the plan said"
        );
        // As `kargo` would be used to withdraw it, for the rest of the story.
        set_approval(&env, &f1, "prod", false);
    }
    assert!(approved_at(&env, &f2, "prod").is_some());
    env.tf.assert_no_changes();

    // Withdrawn outside Terraform: the next plan approves again.
    set_approval(&env, &f2, "prod", false);
    let plan = env.tf.plan_json();
    assert_eq!(planned_actions(&plan, ADDR), actions(&["create"]));
    env.tf.apply().ok();
    let at2 = approved_at(&env, &f2, "prod").expect("approved again");
    env.tf.assert_no_changes();

    // Import round trip by <project>/<stage>/<freight name>.
    env.import_round_trip(
        ADDR,
        &format!("shop/prod/{f2}"),
        &format!("{PIPELINE}{}", approval("prod", "prod", selector)),
    );
    let state = env.tf.resource(ADDR);
    assert_eq!(state["freight_name"], f2.as_str());
    assert_eq!(
        state["approved_at"],
        at2.as_str(),
        "import approves nothing"
    );
    assert_eq!(
        approved_at(&env, &f2, "prod").as_deref(),
        Some(at2.as_str())
    );

    // The freight is deleted (garbage-collected): the approval is gone from state, and the
    // selector now designates the newest freight that is left.
    env.sandbox.with_txn(|txn| {
        txn.delete("kargo.akuity.io", "freights", Some("shop"), &f2)
            .expect("delete the freight");
    });
    let plan = env.tf.plan_json();
    assert_eq!(planned_actions(&plan, ADDR), actions(&["create"]));
    assert_eq!(
        planned_after(&plan, ADDR).unwrap()["freight_name"],
        f1.as_str()
    );
    env.tf.apply().ok();
    assert!(approved_at(&env, &f1, "prod").is_some());
    env.tf.assert_no_changes();

    // Destroying the approval withdraws it, since prod never took the freight; through
    // Kargo's API server it is kept, and both the plan and the apply say so.
    env.config(&PIPELINE);
    let out = env.tf.apply().ok();
    if withdraws {
        assert!(!out.all().contains("Approval kept"), "{}", out.all());
        assert_eq!(approved_at(&env, &f1, "prod"), None);
        assert!(!available(&env, "prod", &f1));
    } else {
        let text = out.flat();
        assert!(text.contains(KEPT), "{text}");
        assert!(
            text.contains("Approval kept: Kargo's API server cannot withdraw it"),
            "{text}"
        );
        assert!(approved_at(&env, &f1, "prod").is_some());
        assert!(available(&env, "prod", &f1));
    }
    env.tf.assert_no_changes();
    env.assert_went_through_transport();
}

#[test]
fn a_promotion_needs_the_approval_and_gets_it_in_the_same_apply() {
    let env = pipeline();
    let (f1, _) = publish(&env, "1.0.0");
    let promotion = format!(
        "resource \"kargo_promotion\" \"prod\" {{\n  project = kargo_project.p.name\n  stage   = kargo_stage.prod.name\n  freight = \"{f1}\"\n  depends_on = [kargo_freight_approval.prod]\n}}\n"
    );
    let without_approval = promotion.replace("  depends_on = [kargo_freight_approval.prod]\n", "");
    env.config(&format!("{PIPELINE}{without_approval}"));
    let out = env.tf.run(&["plan"]).failed();
    let text = out.flat();
    assert!(
        text.contains("Freight not available to the stage"),
        "{text}"
    );
    assert!(
        text.contains("kargo_freight_approval"),
        "names the remedy: {text}"
    );

    // Declared together, the approval is planned first and the promotion counts on it.
    env.config(&format!(
        "{PIPELINE}{}{promotion}",
        approval("prod", "prod", &format!("freight = \"{f1}\""))
    ));
    let plan = env.tf.plan_json();
    assert_eq!(planned_actions(&plan, ADDR), actions(&["create"]));
    assert_eq!(
        planned_actions(&plan, "kargo_promotion.prod"),
        actions(&["create"])
    );
    assert_eq!(
        planned_after(&plan, "kargo_promotion.prod").unwrap()["freight_name"],
        f1.as_str()
    );
    env.tf.apply().ok();
    assert_eq!(
        env.tf.resource("kargo_promotion.prod")["phase"],
        "Succeeded"
    );
    env.eventually("prod to hold the freight", WAIT, |e| {
        freight(e, &f1)["status"]["currentlyIn"]
            .get("prod")
            .is_some()
    });
    env.tf.assert_no_changes();

    // The freight was promoted with the approval: destroy cannot undo that, so it only
    // forgets the approval, and says so.
    env.config(&PIPELINE);
    let out = env.tf.apply().ok();
    let text = out.flat();
    assert!(
        text.contains("Approval kept: the freight has been used"),
        "{text}"
    );
    assert!(text.contains("A promotion cannot be undone"), "{text}");
    assert!(approved_at(&env, &f1, "prod").is_some(), "still approved");
    let listed = env.tf.state_list();
    assert!(
        !listed.iter().any(|a| a.contains("kargo_freight_approval")),
        "{listed:?}"
    );
    env.tf.assert_no_changes();
}

#[test]
fn refusals_name_the_attribute_and_write_nothing() {
    let env = pipeline();
    let (f1, _) = publish(&env, "1.0.0");

    // ops takes freight only from the config warehouse.
    env.config(&format!(
        "{PIPELINE}{}",
        approval("ops", "ops", &format!("freight = \"{f1}\""))
    ));
    let out = env.tf.run(&["plan"]).failed();
    let text = out.flat();
    assert!(
        text.contains("Stage does not request this freight"),
        "{text}"
    );
    assert!(
        text.contains("Stage \"ops\" does not request freight from warehouse \"app\""),
        "{text}"
    );
    assert!(
        text.contains("stage = \"ops\""),
        "shown at the stage attribute: {text}"
    );

    // A stage that does not exist: a warning at plan, an error at apply, nothing written.
    env.config(&format!(
        "{PIPELINE}{}",
        approval("qa", "qa", &format!("freight = \"{f1}\""))
    ));
    let out = env.tf.run(&["plan"]).ok();
    assert!(out.flat().contains("Stage not found yet"), "{}", out.all());
    let out = env.tf.apply().failed();
    let text = out.flat();
    assert!(
        text.contains("Stage \"qa\" does not exist in project \"shop\""),
        "{text}"
    );
    assert!(
        freight(&env, &f1)["status"]["approvedFor"]
            .get("qa")
            .is_none()
    );

    // Freight that is not there, by alias, names the mix-up.
    env.config(&format!(
        "{PIPELINE}{}",
        approval("prod", "prod", &format!("freight_alias = \"{f1}\""))
    ));
    let text = env.tf.run(&["plan"]).failed().flat();
    assert!(
        text.contains(&format!("{f1:?} is a freight name: use `freight`")),
        "{text}"
    );

    // available_only has no meaning for an approval.
    env.config(&format!(
        "{PIPELINE}{}",
        approval(
            "prod",
            "prod",
            "freight_selector {\n    warehouse      = \"app\"\n    available_only = true\n    image { repo_url = \"ghcr.io/acme/app\" }\n  }"
        )
    ));
    let text = env.tf.run(&["validate"]).failed().flat();
    assert!(text.contains("Not applicable to approvals"), "{text}");
    assert!(text.contains("always considers all freight"), "{text}");
    let listed = env.tf.state_list();
    assert!(
        !listed.iter().any(|a| a.contains("kargo_freight_approval")),
        "{listed:?}"
    );
}

#[test]
fn an_unreachable_cluster_plans_with_a_warning() {
    let env = Env::new();
    env.tf.write_main(&format!(
        "{}\n{}",
        explicit_provider(&env, "https://127.0.0.1:1", "t"),
        "resource \"kargo_freight_approval\" \"prod\" {\n  project       = \"shop\"\n  stage         = \"prod\"\n  freight_alias = \"tall-fox\"\n}\n"
    ));
    let out = env.tf.run(&["plan"]).ok();
    let text = out.flat();
    assert!(text.contains("Freight to approve not resolved"), "{text}");
    assert!(text.contains("127.0.0.1:1"), "says why: {text}");
    assert!(
        text.contains("freight_name = (known after apply)"),
        "{text}"
    );
    let out = env.tf.apply().failed();
    assert!(out.flat().contains("127.0.0.1:1"), "{}", out.all());
}

#[test]
fn without_rbac_on_freight_status_the_error_says_what_to_grant() {
    let env = pipeline();
    let (f1, _) = publish(&env, "1.0.0");
    env.sandbox
        .add_user(kargo_sandbox::User::new("ci", "ci-token").deny("patch", "freights/status"));
    let provider = explicit_provider(&env, env.sandbox.server_url(), "ci-token");
    let resources =
        PIPELINE.to_string() + &approval("prod", "prod", &format!("freight = \"{f1}\""));
    env.tf.write_main(&format!("{provider}{resources}"));
    env.tf.run(&["plan"]).ok();
    let text = env.tf.apply().failed().flat();
    assert!(text.contains("Failed to approve the freight"), "{text}");
    assert!(text.contains("403 Forbidden"), "{text}");
    assert!(
        text.contains("grant `patch` on `freights/status`"),
        "{text}"
    );
    assert!(!text.contains("ci-token"), "the token is never shown");
    assert_eq!(approved_at(&env, &f1, "prod"), None);
    let listed = env.tf.state_list();
    assert!(
        !listed.iter().any(|a| a.contains("kargo_freight_approval")),
        "{listed:?}"
    );
}
