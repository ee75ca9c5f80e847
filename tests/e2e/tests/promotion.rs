//! kargo_promotion end to end: the plan shows which freight moves and what changes, refuses
//! freight the stage cannot take, and apply waits; drift, failure, interruption, RBAC, import.

use std::time::Duration;

use kargo_e2e::pipeline::{
    Hcl, Pipeline, Sources, WAIT, applied, applied_over, held, promote, publish, set_approval,
    wait_holds, wait_verified,
};
use kargo_e2e::{
    At, Env, Terraform, Transport, actions, explicit_provider, planned_actions, planned_after,
    state_entry,
};
use kargo_sandbox::{HttpFault, User};
use serde_json::{Value as Json, json};

/// A project without auto-promotion (so the tests decide what each stage holds), one image
/// warehouse, `dev` taking freight directly, `staging` from `dev` after a 10 minute soak, and
/// `production` from `staging`.
static PIPELINE: Hcl = Hcl::new(|| {
    Pipeline::new()
        .stage("dev", Sources::direct())
        .stage("staging", Sources::after("dev").soak("10m"))
        .stage("production", Sources::after("staging"))
        .hcl()
});

/// Applies the pipeline and returns the environment.
fn pipeline() -> Env {
    applied(&PIPELINE)
}

/// Promotes as Kargo's UI would, and waits until the stage holds the freight.
fn promote_in_ui(env: &Env, stage: &str, freight: &str) -> String {
    let name = promote(env, stage, freight);
    wait_holds(env, stage, freight);
    name
}

fn promotions(env: &Env) -> Vec<Json> {
    env.sandbox
        .with_txn(|t| t.list("kargo.akuity.io", "promotions", Some("shop")))
}

fn phase(env: &Env, promotion: &str) -> String {
    env.get("promotions", Some("shop"), promotion)
        .and_then(|p| p["status"]["phase"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn hold(env: &Env, stage: &str) {
    env.sandbox
        .control(
            "hold-promotion",
            &json!({"project": "shop", "stage": stage, "step": "push"}),
        )
        .expect("hold");
}

fn promotion(stage: &str, choice: &str, extra: &str) -> String {
    format!(
        "resource \"kargo_promotion\" \"{stage}\" {{\n  project = kargo_project.p.name\n  stage   = kargo_stage.{stage}.name\n  {choice}\n  {extra}\n}}\n"
    )
}

const SELECTOR: &str = r#"freight_selector {
    warehouse          = "app"
    version_constraint = "^1.0"
    image { repo_url = "ghcr.io/acme/app" }
  }"#;

kargo_e2e::over_both_transports!(
    plan_shows_the_change_apply_waits_drift_is_undone_and_import_and_gc_plan_empty
);

fn plan_shows_the_change_apply_waits_drift_is_undone_and_import_and_gc_plan_empty(
    transport: Transport,
) {
    let env = applied_over(&PIPELINE, transport);
    let (f1, alias1) = publish(&env, "1.0.0");
    let (f2, alias2) = publish(&env, "1.1.0");
    promote_in_ui(&env, "dev", &f1);

    env.config(&format!("{PIPELINE}\n{}", promotion("dev", SELECTOR, "")));
    let plan = env.tf.plan_json();
    assert_eq!(
        planned_actions(&plan, "kargo_promotion.dev"),
        actions(&["create"])
    );
    let after = planned_after(&plan, "kargo_promotion.dev").unwrap();
    assert_eq!(after["freight_name"], json!(f2), "the newest ^1.0 freight");
    assert_eq!(after["freight_alias"], json!(alias2));
    assert_eq!(after["artifacts"]["images"][0]["tag"], "1.1.0");
    assert_eq!(after["stage_freight"]["name"], json!(f1));
    assert_eq!(after["stage_freight"]["alias"], json!(alias1));
    assert_eq!(after["stage_freight"]["warehouse"], "app");
    assert_eq!(
        after["changes"],
        json!([{"kind": "image", "repo_url": "ghcr.io/acme/app", "name": null, "from": "1.0.0", "to": "1.1.0"}])
    );
    assert_eq!(
        after["summary"],
        json!(format!(
            "dev: freight {alias1} (ghcr.io/acme/app 1.0.0) → {alias2} (ghcr.io/acme/app 1.1.0)"
        )),
        "the one-line summary the plan shows"
    );

    env.tf.apply().ok();
    let state = env.tf.resource("kargo_promotion.dev");
    assert_eq!(state["phase"], "Succeeded", "apply waited for it");
    let name = state["promotion_name"].as_str().unwrap().to_string();
    assert!(name.starts_with("dev."), "Kargo's generated name: {name}");
    assert_eq!(state["id"], json!(format!("shop/{name}")));
    assert_eq!(held(&env, "dev").as_deref(), Some(f2.as_str()));
    env.tf.assert_no_changes();

    // Someone promotes 1.0.0 from the UI: the plan shows the stage moved and promotes back.
    promote_in_ui(&env, "dev", &f1);
    let plan = env.tf.plan_json();
    assert_eq!(
        planned_actions(&plan, "kargo_promotion.dev"),
        actions(&["delete", "create"])
    );
    let after = planned_after(&plan, "kargo_promotion.dev").unwrap();
    assert_eq!(after["stage_freight"]["name"], json!(f1));
    assert_eq!(after["freight_name"], json!(f2));
    assert_eq!(after["changes"][0]["from"], "1.0.0");
    env.tf.apply().ok();
    assert_eq!(held(&env, "dev").as_deref(), Some(f2.as_str()));
    env.tf.assert_no_changes();
    let name = env.tf.resource("kargo_promotion.dev")["promotion_name"]
        .as_str()
        .unwrap()
        .to_string();

    // Import by `<project>/<promotion name>` with the freight named explicitly.
    env.tf.run(&["state", "rm", "kargo_promotion.dev"]).ok();
    env.config(&format!(
        "{PIPELINE}\n{}\nimport {{\n  to = kargo_promotion.dev\n  id = \"shop/{name}\"\n}}\n",
        promotion("dev", &format!("freight = \"{f2}\""), "")
    ));
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    let imported = env.tf.resource("kargo_promotion.dev");
    assert_eq!(imported["freight_name"], json!(f2));
    assert_eq!(imported["freight_alias"], json!(alias2));
    assert_eq!(imported["stage_freight"]["name"], json!(f2));

    // Kargo garbage-collects the Promotion: the stage still holds the freight, so nothing to do.
    env.sandbox
        .with_txn(|t| {
            t.delete("kargo.akuity.io", "promotions", Some("shop"), &name)
                .map_err(|e| e.message)
        })
        .expect("delete the promotion");
    env.tf.assert_no_changes();
    env.tf
        .run(&["apply", "-refresh-only", "-auto-approve"])
        .ok();
    let state = env.tf.resource("kargo_promotion.dev");
    assert!(
        state["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no longer exists"),
        "{state}"
    );
    env.tf.assert_no_changes();
    env.assert_went_through_transport();
}

#[test]
fn plan_refuses_freight_that_is_not_verified_soaked_or_approved() {
    let env = pipeline();
    let (f1, alias1) = publish(&env, "1.0.0");
    let staging = promotion("staging", &format!("freight = \"{f1}\""), "");
    env.config(&format!("{PIPELINE}\n{staging}"));
    let out = env.tf.run(&["plan"]).failed();
    let text = out.flat();
    assert!(
        text.contains("Freight not available to the stage"),
        "{text}"
    );
    assert!(
        text.contains("has not been verified in stage \"dev\""),
        "{text}"
    );

    promote_in_ui(&env, "dev", &f1);
    wait_verified(&env, &f1, "dev");
    let text = env.tf.run(&["plan"]).failed().flat();
    assert!(
        text.contains("has not soaked long enough in stage \"dev\""),
        "{text}"
    );
    assert!(
        text.contains("remaining of the required soak time of 10m0s"),
        "{text}"
    );

    // Production takes freight from staging, where this freight has not been.
    let production = promotion("production", &format!("freight_alias = \"{alias1}\""), "");
    env.config(&format!("{PIPELINE}\n{production}"));
    let text = env.tf.run(&["plan"]).failed().flat();
    assert!(
        text.contains("has not been verified in stage \"staging\""),
        "{text}"
    );
    assert!(text.contains("kargo_freight_approval"), "{text}");
    // Approved for production (as `kargo approve` would record it): the plan accepts it.
    let approve = |approved: bool| set_approval(&env, &f1, "production", approved);
    approve(true);
    let plan = env.tf.plan_json();
    assert_eq!(
        planned_after(&plan, "kargo_promotion.production").unwrap()["freight_name"],
        json!(f1)
    );
    // The approval is withdrawn before the saved plan is applied: apply refuses, saying why.
    approve(false);
    let text = env.tf.run(&["apply", "e2e.tfplan"]).failed().flat();
    assert!(
        text.contains("Freight not available to the stage"),
        "{text}"
    );
    assert!(text.contains("kargo_freight_approval"), "{text}");
    assert!(
        promotions(&env)
            .iter()
            .all(|p| p["spec"]["stage"] != "production")
    );
    assert!(
        !env.tf
            .state_list()
            .contains(&"kargo_promotion.production".to_string()),
        "nothing recorded"
    );
    approve(true);
    env.sandbox.advance_clock(Duration::from_secs(10 * 60));
    env.config(&format!("{PIPELINE}\n{staging}\n{production}"));
    let plan = env.tf.plan_json();
    for address in ["kargo_promotion.staging", "kargo_promotion.production"] {
        assert_eq!(
            planned_actions(&plan, address),
            actions(&["create"]),
            "{address}"
        );
        assert_eq!(
            planned_after(&plan, address).unwrap()["freight_name"],
            json!(f1)
        );
    }
    env.tf.apply().ok();
    assert_eq!(held(&env, "staging").as_deref(), Some(f1.as_str()));
    assert_eq!(held(&env, "production").as_deref(), Some(f1.as_str()));
    env.tf.assert_no_changes();
}

#[test]
fn a_failed_promotion_fails_the_apply_taints_and_the_next_apply_promotes_again() {
    let env = pipeline();
    let (f1, _) = publish(&env, "1.0.0");
    env.sandbox
        .control(
            "fail-promotion",
            &json!({"project": "shop", "stage": "dev", "step": "push", "message": "remote rejected the push"}),
        )
        .expect("arm the fault");
    env.config(&format!(
        "{PIPELINE}\n{}",
        promotion("dev", &format!("freight = \"{f1}\""), "")
    ));
    let text = env.tf.apply().failed().flat();
    assert!(text.contains("Promotion failed"), "{text}");
    assert!(text.contains("ended Failed at step \"push\""), "{text}");
    assert!(text.contains("remote rejected the push"), "{text}");
    let entry = state_entry(&env.tf, "kargo_promotion.dev");
    assert_eq!(entry["tainted"], true, "{entry}");
    assert_eq!(entry["values"]["phase"], "Failed");

    let plan = env.tf.plan_json();
    assert_eq!(
        planned_actions(&plan, "kargo_promotion.dev"),
        actions(&["delete", "create"])
    );
    env.tf.apply().ok();
    assert_eq!(env.tf.resource("kargo_promotion.dev")["phase"], "Succeeded");
    assert_eq!(held(&env, "dev").as_deref(), Some(f1.as_str()));
    assert_eq!(promotions(&env).len(), 2, "the failed one and the new one");
    env.tf.assert_no_changes();
}

#[test]
fn a_wait_that_times_out_or_is_interrupted_keeps_the_promotion_and_converges() {
    let env = pipeline();
    let (f1, _) = publish(&env, "1.0.0");
    hold(&env, "dev");
    env.config(&format!(
        "{PIPELINE}\n{}",
        promotion(
            "dev",
            &format!("freight = \"{f1}\""),
            "timeouts { create = \"1s\" }"
        )
    ));
    let out = env.tf.apply().ok();
    let text = out.flat();
    assert!(text.contains("Promotion still running"), "{text}");
    assert!(text.contains("`timeouts.create`"), "{text}");
    let state = env.tf.resource("kargo_promotion.dev");
    let name = state["promotion_name"].as_str().unwrap().to_string();
    assert!(
        ["Pending", "Running"].contains(&state["phase"].as_str().unwrap_or_default()),
        "{state}"
    );
    assert!(
        text.contains(&name),
        "the warning names the promotion: {text}"
    );
    let out = env.tf.plan_code();
    assert_eq!(out.code, 0, "nothing to do while it runs:\n{}", out.all());
    assert!(out.flat().contains("is still Running"), "{}", out.all());

    env.sandbox.clear_faults().unwrap();
    wait_holds(&env, "dev", &f1);
    env.tf.assert_no_changes();
    env.tf
        .run(&["apply", "-refresh-only", "-auto-approve"])
        .ok();
    assert_eq!(env.tf.resource("kargo_promotion.dev")["phase"], "Succeeded");
    assert_eq!(promotions(&env).len(), 1, "no second Promotion");

    // Ctrl-C during the wait for the next freight.
    let (f2, _) = publish(&env, "1.1.0");
    hold(&env, "dev");
    env.config(&format!(
        "{PIPELINE}\n{}",
        promotion("dev", &format!("freight = \"{f2}\""), "")
    ));
    env.sandbox.reset_requests();
    let mut child = env
        .tf
        .command(&["apply", "-auto-approve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start terraform");
    env.eventually("the new promotion to run", WAIT, |e| {
        promotions(e)
            .iter()
            .any(|p| p["spec"]["freight"] == json!(f2) && p["status"]["phase"] == "Running")
    });
    // The provider is waiting once it watches the Promotion it created.
    env.eventually("apply to watch the promotion", WAIT, |e| {
        e.sandbox
            .requests()
            .iter()
            .any(|r| r.verb == "watch" && r.resource == "promotions")
    });
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = std::time::Instant::now();
    let _ = child.wait().expect("terraform exits");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the wait stops promptly"
    );
    let state = env.tf.resource("kargo_promotion.dev");
    let second = state["promotion_name"].as_str().unwrap().to_string();
    assert_ne!(second, name);
    assert_eq!(state["freight_name"], json!(f2));
    assert_eq!(phase(&env, &second), "Running", "it keeps running in Kargo");
    assert!(
        ["Pending", "Running"].contains(&state["phase"].as_str().unwrap_or_default()),
        "{state}"
    );

    env.sandbox.clear_faults().unwrap();
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    assert_eq!(held(&env, "dev").as_deref(), Some(f2.as_str()));
    assert_eq!(promotions(&env).len(), 2, "no third Promotion");
}

#[test]
fn an_unreachable_cluster_plans_with_values_known_after_apply() {
    let env = Env::new();
    let hcl = explicit_provider(&env, "https://127.0.0.1:1", env.sandbox.token());
    env.tf.write_main(&format!(
        "{hcl}\nresource \"kargo_promotion\" \"dev\" {{\n  project = \"shop\"\n  stage   = \"dev\"\n  {SELECTOR}\n}}\n"
    ));
    let text = env.tf.run(&["plan"]).ok().flat();
    assert!(
        text.contains("Warning: Freight to promote not resolved at plan time"),
        "{text}"
    );
    assert!(text.contains("127.0.0.1:1"), "the warning says why: {text}");
    let plan = env.tf.plan_json();
    let change = plan["resource_changes"][0]["change"].clone();
    for attribute in ["freight_name", "stage_freight", "changes", "artifacts"] {
        assert_eq!(change["after_unknown"][attribute], true, "{attribute}");
    }
}

#[test]
fn without_kargo_the_plan_succeeds_and_says_why() {
    let env = Env::without_kargo();
    env.config(
        "resource \"kargo_promotion\" \"dev\" {\n  project = \"shop\"\n  stage   = \"dev\"\n  origin_warehouse = \"app\"\n}\n",
    );
    let text = env.tf.run(&["plan"]).ok().flat();
    assert!(
        text.contains("Freight to promote not resolved at plan time"),
        "{text}"
    );
    assert!(text.contains("not served by this cluster"), "{text}");
    let plan = env.tf.plan_json();
    assert_eq!(
        plan["resource_changes"][0]["change"]["after_unknown"]["freight_name"],
        true
    );
}

#[test]
fn promoting_without_the_promote_verb_names_what_to_grant() {
    let env = pipeline();
    let (f1, _) = publish(&env, "1.0.0");
    env.sandbox
        .add_user(User::new("ci", "ci-token").deny("promote", "stages"));
    let tf = Terraform::new();
    tf.write_main(&format!(
        "{}\nresource \"kargo_promotion\" \"dev\" {{\n  project = \"shop\"\n  stage   = \"dev\"\n  freight = \"{f1}\"\n}}\n",
        explicit_provider(&env, env.sandbox.server_url(), "ci-token")
    ));
    tf.run(&["plan"]).ok();
    let text = tf.apply().failed().flat();
    assert!(text.contains("Not permitted to promote"), "{text}");
    assert!(text.contains("`promote` verb on `stages`"), "{text}");
    assert!(
        text.contains("`stages/dev` in namespace \"shop\""),
        "{text}"
    );
    assert!(text.contains("kargo-promoter"), "{text}");
    assert!(promotions(&env).is_empty());
    assert!(tf.state_list().is_empty(), "nothing recorded");
}

/// The names of the Promotions patched or updated through the API since the request log was
/// last reset.
fn promotion_writes(env: &Env) -> Vec<String> {
    env.sandbox
        .requests()
        .into_iter()
        .filter(|r| r.resource == "promotions" && matches!(r.verb.as_str(), "patch" | "update"))
        .map(|r| r.name.unwrap_or_default())
        .collect()
}

#[test]
fn destroy_aborts_a_running_promotion_unless_told_not_to() {
    let env = pipeline();
    let (f1, _) = publish(&env, "1.0.0");
    hold(&env, "dev");
    // A configuration of its own, so destroying it leaves the pipeline alone.
    let tf = Terraform::new();
    let config = |extra: &str| {
        format!(
            "{}\nresource \"kargo_promotion\" \"dev\" {{\n  project = \"shop\"\n  stage   = \"dev\"\n  freight = \"{f1}\"\n  wait    = false\n  {extra}\n}}\n",
            env.provider_block()
        )
    };
    tf.write_main(&config(""));
    tf.apply().ok();
    let first = tf.resource("kargo_promotion.dev")["promotion_name"]
        .as_str()
        .unwrap()
        .to_string();
    env.eventually("the promotion to run", WAIT, |e| {
        phase(e, &first) == "Running"
    });
    env.sandbox.reset_requests();
    tf.destroy().ok();
    assert!(
        promotion_writes(&env).contains(&first),
        "destroy asked Kargo to abort it: {:?}",
        env.sandbox.requests()
    );
    assert_eq!(phase(&env, &first), "Aborted", "destroy aborted it");
    assert!(
        env.get("promotions", Some("shop"), &first).is_some(),
        "the Promotion object is left to Kargo"
    );

    tf.write_main(&config("abort_on_destroy = false"));
    tf.apply().ok();
    let second = tf.resource("kargo_promotion.dev")["promotion_name"]
        .as_str()
        .unwrap()
        .to_string();
    env.eventually("the promotion to run", WAIT, |e| {
        phase(e, &second) == "Running"
    });
    env.sandbox.reset_requests();
    tf.destroy().ok();
    let written = promotion_writes(&env);
    assert!(
        written.is_empty(),
        "destroy wrote to no Promotion, got {written:?}"
    );
    let promotion = env
        .get("promotions", Some("shop"), &second)
        .expect("the Promotion is left to Kargo");
    assert!(
        promotion["metadata"]["annotations"]
            .get("kargo.akuity.io/abort")
            .is_none(),
        "no abort requested: {promotion}"
    );
    assert_eq!(phase(&env, &second), "Running", "left running");
    env.sandbox.clear_faults().unwrap();
    wait_holds(&env, "dev", &f1);
}

#[test]
fn a_selector_reads_versions_as_the_warehouse_subscription_does() {
    // Partial versions such as `1.2` count only when the subscription turns strict semvers
    // off; the selector learns that from the warehouse in the cluster.
    let strict = r#"image { repo_url = "ghcr.io/acme/app" }"#;
    assert!(PIPELINE.contains(strict), "{}", &*PIPELINE);
    let lenient = PIPELINE.replace(
        strict,
        "image {\n      repo_url       = \"ghcr.io/acme/app\"\n      strict_semvers = false\n    }",
    );
    let env = applied(&lenient);
    let (f110, _) = publish(&env, "1.1.0");
    let (f12, _) = publish(&env, "1.2");
    assert_ne!(f110, f12);
    let selector = r#"freight_selector {
    warehouse          = "app"
    version_constraint = ">=1.0"
    image { repo_url = "ghcr.io/acme/app" }
  }"#;

    env.config(&format!("{lenient}\n{}", promotion("dev", selector, "")));
    let plan = env.tf.plan_json();
    let after = planned_after(&plan, "kargo_promotion.dev").unwrap();
    assert_eq!(
        after["freight_name"],
        json!(f12),
        "1.2 is 1.2.0, the highest"
    );
    assert_eq!(after["artifacts"]["images"][0]["tag"], "1.2");

    // Back to strict semvers: once the warehouse says so, `1.2` no longer counts.
    env.config(&PIPELINE);
    env.tf.apply().ok();
    env.config(&format!("{PIPELINE}\n{}", promotion("dev", selector, "")));
    let plan = env.tf.plan_json();
    let after = planned_after(&plan, "kargo_promotion.dev").unwrap();
    assert_eq!(
        after["freight_name"],
        json!(f110),
        "only complete versions count"
    );
    assert_eq!(after["artifacts"]["images"][0]["tag"], "1.1.0");
}

/// The pipeline with Kargo auto-promoting `dev` and `qa`, both taking freight straight from
/// the warehouse: `qa` is never held, so it shows when auto-promotion has acted on new freight.
static AUTO: Hcl = Hcl::new(|| {
    Pipeline::new()
        .stage("dev", Sources::direct())
        .stage("qa", Sources::direct())
        .hcl()
        .replacen(
            "  name = \"shop\"\n}",
            "  name = \"shop\"\n  promotion_policies {\n    auto_promotion_enabled = true\n    stage_selector { name = \"regex:^(dev|qa)$\" }\n  }\n}",
            1,
        )
});

/// An auto-promoted `dev` that Kargo moved to 1.0.0 and then 1.1.0 by itself; returns the
/// (name, alias) of both freight.
fn auto_promoted() -> (Env, (String, String), (String, String)) {
    let env = applied(&AUTO);
    let f1 = publish(&env, "1.0.0");
    wait_holds(&env, "dev", &f1.0);
    let f2 = publish(&env, "1.1.0");
    wait_holds(&env, "dev", &f2.0);
    wait_holds(&env, "qa", &f2.0);
    (env, f1, f2)
}

/// `status.autoPromotionHolds["Warehouse/app"]` of `stage`, null when there is none.
fn auto_promotion_hold(env: &Env, stage: &str) -> Json {
    env.get("stages", Some("shop"), stage)
        .map(|s| s["status"]["autoPromotionHolds"]["Warehouse/app"].clone())
        .unwrap_or(Json::Null)
}

/// New freight arrives; waits until Kargo auto-promoted it into `qa`, which it reconciles
/// along with `dev`, so `dev` had its chance too.
fn new_freight_reaches_qa(env: &Env, tag: &str) -> (String, String) {
    let f = publish(env, tag);
    wait_holds(env, "qa", &f.0);
    f
}

fn hold_warning(freight: &(String, String), candidate: &(String, String)) -> String {
    format!(
        "Kargo auto-promotes into stage \"dev\", and freight {:?} (alias {:?}) is not its \
         auto-promotion candidate from warehouse \"app\" (the candidate is freight {:?} (alias \
         {:?})). Kargo will place an auto-promotion hold on Warehouse/app (annotation \
         kargo.akuity.io/auto-promotion-hold on the Promotion), so the stage stays at this \
         freight and is not auto-promoted from warehouse \"app\" until the hold is released. \
         Promoting the candidate releases it: a promotion chosen with `origin_warehouse`, \
         Kargo's UI or CLI, or destroying this resource with \
         `resume_auto_promotion_on_destroy = true`.",
        freight.0, freight.1, candidate.0, candidate.1
    )
}

/// A promotion into the auto-promoted pipeline. Its stages' steps name a repository that does
/// not exist, so the plan-time preview is off: these tests are about holds.
fn auto_promotion(stage: &str, choice: &str, extra: &str) -> String {
    promotion(stage, choice, &format!("{extra}\n  preview = false"))
}

/// The one warning of a promotion of `freight` that holds auto-promotion away from `candidate`.
fn holds(freight: &(String, String), candidate: &(String, String)) -> Vec<(String, String)> {
    vec![(
        "Promotion will hold auto-promotion".to_string(),
        hold_warning(freight, candidate),
    )]
}

fn promotion_warnings(out: &kargo_e2e::Output) -> Vec<(String, String)> {
    out.json_diagnostics()
        .into_iter()
        .filter(|d| d.severity == "warning" && d.address == "kargo_promotion.dev")
        .map(|d| (d.summary, d.detail))
        .collect()
}

#[test]
fn a_rollback_of_an_auto_promoted_stage_sticks_and_destroy_can_resume_auto_promotion() {
    let (env, f1, f2) = auto_promoted();
    let stage_data = "data \"kargo_stage\" \"dev\" {\n  project = kargo_project.p.name\n  name = kargo_stage.dev.name\n}\n";
    env.config(&format!(
        "{AUTO}\n{stage_data}\n{}",
        auto_promotion(
            "dev",
            &format!("freight = \"{}\"", f1.0),
            "resume_auto_promotion_on_destroy = true"
        )
    ));
    let plan = env.tf.run(&["plan", "-json"]).ok();
    assert_eq!(promotion_warnings(&plan), holds(&f1, &f2));

    env.tf.apply().ok();
    let state = env.tf.resource("kargo_promotion.dev");
    assert_eq!(state["phase"], "Succeeded");
    let name = state["promotion_name"].as_str().unwrap().to_string();
    assert_eq!(held(&env, "dev").as_deref(), Some(f1.0.as_str()));
    let promo = env.get("promotions", Some("shop"), &name).unwrap();
    assert_eq!(
        promo["metadata"]["annotations"]["kargo.akuity.io/auto-promotion-hold"],
        "Warehouse/app"
    );
    env.eventually("dev to record the hold", WAIT, |e| {
        auto_promotion_hold(e, "dev")["promotionName"] == json!(name)
    });
    assert_eq!(auto_promotion_hold(&env, "dev")["freightName"], json!(f1.0));
    env.tf.assert_no_changes();

    // The stage and its data source show the hold.
    env.tf
        .run(&["apply", "-refresh-only", "-auto-approve"])
        .ok();
    for address in ["kargo_stage.dev", "data.kargo_stage.dev"] {
        let holds = &env.tf.resource(address)["auto_promotion_holds"];
        assert_eq!(holds["app"]["freight"], json!(f1.0), "{address}: {holds}");
        assert_eq!(holds["app"]["promotion"], json!(name), "{address}");
        assert!(
            holds["app"]["actor"]
                .as_str()
                .is_some_and(|a| a.starts_with("kubernetes:"))
        );
        assert!(holds["app"]["created_at"].is_string(), "{address}: {holds}");
    }
    assert_eq!(
        env.tf.resource("kargo_stage.qa")["auto_promotion_holds"],
        json!({}),
        "no hold on qa"
    );

    // Newer freight: auto-promotion takes qa there but leaves the held dev where it is.
    let f3 = new_freight_reaches_qa(&env, "1.2.0");
    assert_eq!(held(&env, "dev").as_deref(), Some(f1.0.as_str()));
    env.tf.assert_no_changes();

    // Destroying the promotion resumes auto-promotion: the candidate is promoted and the
    // hold released.
    env.config(&format!("{AUTO}\n{stage_data}"));
    env.tf.apply().ok();
    assert_eq!(held(&env, "dev").as_deref(), Some(f3.0.as_str()));
    let resume = promotions(&env)
        .into_iter()
        .find(|p| p["spec"]["stage"] == "dev" && p["spec"]["freight"] == json!(f3.0))
        .expect("a promotion of the candidate into dev");
    assert_eq!(
        resume["metadata"]["annotations"]["kargo.akuity.io/auto-promotion-resume"],
        "Warehouse/app"
    );
    assert_eq!(
        resume["status"]["phase"], "Succeeded",
        "destroy waited for it"
    );
    env.eventually("dev to release the hold", WAIT, |e| {
        auto_promotion_hold(e, "dev").is_null()
    });
    env.tf.assert_no_changes();
    let f4 = new_freight_reaches_qa(&env, "1.3.0");
    wait_holds(&env, "dev", &f4.0);
}

#[test]
fn replacing_a_rollback_holds_again_or_resumes_and_destroy_keeps_the_hold_by_default() {
    let (env, f1, f2) = auto_promoted();
    let f3 = new_freight_reaches_qa(&env, "1.2.0");
    wait_holds(&env, "dev", &f3.0);
    let pinned = |freight: &str| {
        auto_promotion(
            "dev",
            &format!("freight = \"{freight}\""),
            "resume_auto_promotion_on_destroy = true",
        )
    };
    env.config(&format!("{AUTO}\n{}", pinned(&f1.0)));
    env.tf.apply().ok();
    assert_eq!(held(&env, "dev").as_deref(), Some(f1.0.as_str()));
    env.tf.assert_no_changes();

    // Another rollback replaces this one: the destroy half promotes nothing, the new
    // promotion holds again.
    env.config(&format!("{AUTO}\n{}", pinned(&f2.0)));
    let plan = env.tf.run(&["plan", "-json"]).ok();
    assert_eq!(promotion_warnings(&plan), holds(&f2, &f3));
    env.tf.apply().ok();
    assert_eq!(held(&env, "dev").as_deref(), Some(f2.0.as_str()));
    let to_candidate = promotions(&env)
        .into_iter()
        .filter(|p| p["spec"]["stage"] == "dev" && p["spec"]["freight"] == json!(f3.0))
        .count();
    assert_eq!(
        to_candidate, 1,
        "only the auto-promotion before the rollback"
    );
    let name = env.tf.resource("kargo_promotion.dev")["promotion_name"]
        .as_str()
        .unwrap()
        .to_string();
    env.eventually("dev to record the new hold", WAIT, |e| {
        auto_promotion_hold(e, "dev")["promotionName"] == json!(name)
    });
    env.tf.assert_no_changes();

    // Replaced by a promotion of the candidate: Kargo releases the hold, the plan says so.
    env.config(&format!(
        "{AUTO}\n{}",
        auto_promotion("dev", "origin_warehouse = \"app\"", "")
    ));
    let plan = env.tf.run(&["plan", "-json"]).ok();
    assert_eq!(
        promotion_warnings(&plan),
        vec![(
            "Promotion will resume auto-promotion".to_string(),
            format!(
                "freight {:?} (alias {:?}) is the auto-promotion candidate of stage \"dev\" from \
                 warehouse \"app\", so this promotion releases the auto-promotion hold on \
                 Warehouse/app placed by promotion {name:?} (Kargo marks it \
                 kargo.akuity.io/auto-promotion-resume): afterwards Kargo auto-promotes new \
                 freight from warehouse \"app\" into the stage again.",
                f3.0, f3.1
            )
        )]
    );
    env.tf.apply().ok();
    assert_eq!(held(&env, "dev").as_deref(), Some(f3.0.as_str()));
    env.eventually("dev to release the hold", WAIT, |e| {
        auto_promotion_hold(e, "dev").is_null()
    });
    env.tf.assert_no_changes();

    // A rollback with the default: destroy leaves the stage and the hold alone.
    env.config(&format!(
        "{AUTO}\n{}",
        auto_promotion("dev", &format!("freight = \"{}\"", f1.0), "")
    ));
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    let name = env.tf.resource("kargo_promotion.dev")["promotion_name"]
        .as_str()
        .unwrap()
        .to_string();
    env.eventually("dev to record the hold", WAIT, |e| {
        auto_promotion_hold(e, "dev")["promotionName"] == json!(name)
    });
    let before = promotions(&env).len();
    env.config(&AUTO);
    env.tf.apply().ok();
    assert_eq!(promotions(&env).len(), before, "destroy promoted nothing");
    assert_eq!(
        auto_promotion_hold(&env, "dev")["promotionName"],
        json!(name)
    );
    new_freight_reaches_qa(&env, "1.3.0");
    assert_eq!(held(&env, "dev").as_deref(), Some(f1.0.as_str()));
    env.tf.assert_no_changes();
}

#[test]
fn a_released_hold_lets_auto_promotion_move_the_stage_and_the_plan_shows_the_drift() {
    let (env, f1, f2) = auto_promoted();
    env.config(&format!(
        "{AUTO}\n{}",
        auto_promotion("dev", &format!("freight = \"{}\"", f1.0), "")
    ));
    env.tf.apply().ok();
    let name = env.tf.resource("kargo_promotion.dev")["promotion_name"]
        .as_str()
        .unwrap()
        .to_string();
    env.eventually("dev to record the hold", WAIT, |e| {
        auto_promotion_hold(e, "dev")["promotionName"] == json!(name)
    });

    // Someone promotes the candidate in Kargo's UI: the hold is released and auto-promotion
    // carries dev on to newer freight.
    let resume = promote_in_ui(&env, "dev", &f2.0);
    assert_eq!(
        env.get("promotions", Some("shop"), &resume).unwrap()["metadata"]["annotations"]["kargo.akuity.io/auto-promotion-resume"],
        "Warehouse/app"
    );
    env.eventually("dev to release the hold", WAIT, |e| {
        auto_promotion_hold(e, "dev").is_null()
    });
    let f3 = new_freight_reaches_qa(&env, "1.2.0");
    wait_holds(&env, "dev", &f3.0);

    // The configuration still pins 1.0.0: the plan promotes it again, holding again.
    let plan = env.tf.plan_json();
    assert_eq!(
        planned_actions(&plan, "kargo_promotion.dev"),
        actions(&["delete", "create"])
    );
    let after = planned_after(&plan, "kargo_promotion.dev").unwrap();
    assert_eq!(after["stage_freight"]["name"], json!(f3.0));
    assert_eq!(after["freight_name"], json!(f1.0));
    env.tf.apply().ok();
    assert_eq!(held(&env, "dev").as_deref(), Some(f1.0.as_str()));
    env.tf.assert_no_changes();

    // A configuration that follows the candidate instead has nothing to do once dev is there.
    env.config(&format!(
        "{AUTO}\n{}",
        auto_promotion("dev", "origin_warehouse = \"app\"", "")
    ));
    env.tf.apply().ok();
    assert_eq!(held(&env, "dev").as_deref(), Some(f3.0.as_str()));
    env.tf.assert_no_changes();
}

#[test]
fn a_destroy_whose_resume_promotion_fails_says_so_and_the_next_destroy_finishes() {
    let (env, f1, f2) = auto_promoted();
    env.config(&format!(
        "{AUTO}\n{}",
        auto_promotion(
            "dev",
            &format!("freight = \"{}\"", f1.0),
            "resume_auto_promotion_on_destroy = true"
        )
    ));
    env.tf.apply().ok();
    let name = env.tf.resource("kargo_promotion.dev")["promotion_name"]
        .as_str()
        .unwrap()
        .to_string();
    env.eventually("dev to record the hold", WAIT, |e| {
        auto_promotion_hold(e, "dev")["promotionName"] == json!(name)
    });
    env.sandbox
        .control(
            "fail-promotion",
            &json!({"project": "shop", "stage": "dev", "step": "push", "message": "remote rejected the push"}),
        )
        .expect("arm the fault");

    env.config(&AUTO);
    let out = env.tf.apply().failed();
    // The resource is no longer in the configuration, so Terraform names no block.
    let texts = [
        "Auto-promotion resumed, but its promotion failed",
        "The auto-promotion hold on Warehouse/app is released, but Promotion \"dev.",
        "into stage \"dev\" ended Failed at step \"push\": step \"push\": remote rejected the push.",
    ];
    assert!(
        out.errors()
            .iter()
            .any(|e| texts.iter().all(|t| e.contains(t))),
        "{}",
        out.all()
    );
    assert_eq!(held(&env, "dev").as_deref(), Some(f1.0.as_str()));
    let resume = promotions(&env)
        .into_iter()
        .find(|p| {
            p["spec"]["stage"] == "dev"
                && p["metadata"]["annotations"]["kargo.akuity.io/auto-promotion-resume"]
                    == "Warehouse/app"
        })
        .expect("the resume promotion");
    assert_eq!(resume["spec"]["freight"], json!(f2.0), "the candidate");
    assert_eq!(resume["status"]["phase"], "Failed");
    // Kargo applies a failed promotion's intent too: the hold is gone, so the next destroy
    // has nothing to release and finishes.
    env.eventually("dev to release the hold", WAIT, |e| {
        auto_promotion_hold(e, "dev").is_null()
    });
    let before = promotions(&env).len();
    env.tf.apply().ok();
    assert_eq!(promotions(&env).len(), before, "nothing promoted again");
    assert!(
        env.tf.state_list().is_empty()
            || !env
                .tf
                .state_list()
                .contains(&"kargo_promotion.dev".to_string())
    );
    env.tf.assert_no_changes();
}

/// The Promotions of freight `freight` in project `shop`.
fn promotions_of(env: &Env, freight: &str) -> Vec<Json> {
    promotions(env)
        .into_iter()
        .filter(|p| p["spec"]["freight"] == json!(freight))
        .collect()
}

/// How many times a Promotion create reached the API server since the log was last reset.
fn promotion_creates(env: &Env) -> usize {
    env.sandbox
        .requests()
        .iter()
        .filter(|r| r.verb == "create" && r.resource == "promotions")
        .count()
}

const IDEMPOTENCY_KEY: &str = "terraform-provider-kargo/idempotency-key";

/// Asserts a Promotion into `dev` of `freight` carries a key of the documented form
/// `dev/<freight>/<12 hexadecimal digits>`, and returns the key.
#[track_caller]
fn assert_key(promotion: &Json, freight: &str) -> String {
    let key = promotion["metadata"]["annotations"][IDEMPOTENCY_KEY]
        .as_str()
        .unwrap_or_else(|| panic!("no idempotency key on {promotion}"))
        .to_string();
    let digest = key
        .strip_prefix(&format!("dev/{freight}/"))
        .unwrap_or_else(|| panic!("{key:?} names the stage and the freight"));
    assert!(
        digest.len() == 12 && digest.chars().all(|c| c.is_ascii_hexdigit()),
        "{key:?} ends in the digest of the freight choice"
    );
    key
}

/// A promotion into `dev` as resource `name`, choosing its freight by `choice`.
fn promotion_named(name: &str, choice: &str) -> String {
    format!(
        "resource \"kargo_promotion\" \"{name}\" {{\n  project = kargo_project.p.name\n  stage   = kargo_stage.dev.name\n  {choice}\n}}\n"
    )
}

#[test]
fn two_resources_choosing_the_same_freight_differently_make_two_promotions() {
    let env = pipeline();
    let (freight, alias) = publish(&env, "1.0.0");
    env.config(&format!(
        "{PIPELINE}\n{}\n{}",
        promotion_named("by_name", &format!("freight = \"{freight}\"")),
        promotion_named("by_alias", &format!("freight_alias = \"{alias}\"")),
    ));
    env.sandbox.reset_requests();
    env.tf.apply().ok();
    assert_eq!(promotion_creates(&env), 2, "one create for each resource");
    let created = promotions_of(&env, &freight);
    assert_eq!(created.len(), 2, "{created:?}");
    let keys: Vec<String> = created.iter().map(|p| assert_key(p, &freight)).collect();
    assert_ne!(keys[0], keys[1], "each resource has its own key");
    let mut names: Vec<Json> = created
        .iter()
        .map(|p| p["metadata"]["name"].clone())
        .collect();
    let mut recorded = vec![
        env.tf.resource("kargo_promotion.by_name")["promotion_name"].clone(),
        env.tf.resource("kargo_promotion.by_alias")["promotion_name"].clone(),
    ];
    names.sort_by_key(Json::to_string);
    recorded.sort_by_key(Json::to_string);
    assert_eq!(recorded, names, "each state names its own Promotion");
    wait_holds(&env, "dev", &freight);
    env.tf.assert_no_changes();
    assert_eq!(promotions_of(&env, &freight).len(), 2);
}

#[test]
fn a_promotion_declared_twice_fails_the_plan_and_creates_nothing_more() {
    let env = pipeline();
    let (freight, _) = publish(&env, "1.0.0");
    let choice = format!("freight = \"{freight}\"");
    env.config(&format!("{PIPELINE}\n{}", promotion_named("a", &choice)));
    env.tf.apply().ok();
    let created = promotions_of(&env, &freight);
    assert_eq!(created.len(), 1);
    let key = assert_key(&created[0], &freight);

    // The same promotion copied under another name.
    env.config(&format!(
        "{PIPELINE}\n{}\n{}",
        promotion_named("a", &choice),
        promotion_named("b", &choice)
    ));
    env.sandbox.reset_requests();
    let out = env.tf.run(&["plan", "-json"]).failed();
    let (errors, others): (Vec<_>, Vec<_>) = out
        .json_diagnostics_at()
        .into_iter()
        .partition(|(d, _)| d.severity == "error");
    assert_eq!(errors.len(), 1, "one of the two is refused:\n{}", out.all());
    let (diagnostic, at) = &errors[0];
    // Terraform plans the two at the same time: whichever comes second is refused. When that
    // is `a`, `b` planned first took `a`'s Promotion for one an interrupted apply left behind.
    let nth = match diagnostic.address.as_str() {
        "kargo_promotion.a" => 1,
        "kargo_promotion.b" => 2,
        other => panic!("the error is on {other:?}, not on one of the two"),
    };
    for (other, _) in &others {
        assert_eq!(
            (
                other.severity.as_str(),
                other.address.as_str(),
                other.summary.as_str()
            ),
            ("warning", "kargo_promotion.b", "Promotion already created"),
            "{}",
            out.all()
        );
    }
    assert_eq!(
        (
            diagnostic.severity.as_str(),
            diagnostic.summary.as_str(),
            diagnostic.detail.clone()
        ),
        (
            "error",
            "Promotion declared twice",
            format!(
                "Another kargo_promotion in this configuration promotes freight \"{freight}\" \
                 into stage \"dev\", choosing it the same way. A Promotion is found again after \
                 an interrupted apply by its idempotency key \
                 ({IDEMPOTENCY_KEY}=\"{key}\"), made of the stage, the freight and how the \
                 configuration chooses it, so these two would share one. Remove one of them."
            )
        )
    );
    assert_eq!(
        *at,
        At::nth(env.tf.path(), "main.tf", &format!("\"{freight}\""), nth),
        "on the freight choice"
    );
    let out = env.tf.run(&["apply", "-auto-approve"]).failed();
    assert!(
        out.flat().contains("Promotion declared twice"),
        "{}",
        out.all()
    );
    assert_eq!(promotion_creates(&env), 0, "nothing created");
    assert_eq!(promotions_of(&env, &freight).len(), 1);

    env.config(&format!("{PIPELINE}\n{}", promotion_named("a", &choice)));
    env.tf.assert_no_changes();
}

#[test]
fn a_lost_answer_to_the_promotion_create_never_makes_a_second_promotion() {
    let env = pipeline();
    let cases: [(&str, HttpFault, &str, usize); 4] = [
        // Refused before anything was stored: the create is sent again.
        ("503 before the write", HttpFault::unavailable(), "", 2),
        // Stored, then the answer is lost: found by its key, not sent again.
        (
            "504 after the write",
            HttpFault::timeout_after_write(),
            "",
            1,
        ),
        (
            "reset after the write",
            HttpFault::reset_after_write(),
            "",
            1,
        ),
        (
            "an answer past the deadline",
            HttpFault::delay_response(Duration::from_secs(30)),
            "timeouts { create = \"2s\" }",
            1,
        ),
    ];
    for (i, (case, fault, extra, posts)) in cases.into_iter().enumerate() {
        let (freight, _) = publish(&env, &format!("1.{i}.0"));
        env.config(&format!(
            "{PIPELINE}\n{}",
            promotion("dev", &format!("freight = \"{freight}\""), extra)
        ));
        env.sandbox.reset_requests();
        env.sandbox
            .inject_fault(fault.verb("create").resource("promotions").times(1))
            .expect("inject fault");
        let started = std::time::Instant::now();
        env.tf.apply().ok();
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "{case}: the apply did not wait for the held answer"
        );
        assert_eq!(promotion_creates(&env), posts, "{case}: creates sent");
        let created = promotions_of(&env, &freight);
        assert_eq!(
            created.len(),
            1,
            "{case}: exactly one Promotion: {created:?}"
        );
        let name = created[0]["metadata"]["name"].as_str().unwrap().to_string();
        assert_key(&created[0], &freight);
        let state = env.tf.resource("kargo_promotion.dev");
        assert_eq!(
            state["promotion_name"],
            json!(name),
            "{case}: state names it"
        );
        wait_holds(&env, "dev", &freight);
        env.tf
            .run(&["apply", "-refresh-only", "-auto-approve"])
            .ok();
        env.tf.assert_no_changes();
        assert_eq!(promotions_of(&env, &freight).len(), 1, "{case}: still one");
    }
}

#[test]
fn ctrl_c_during_the_promotion_create_records_it_and_a_lost_record_is_adopted() {
    let env = pipeline();
    let (f1, _) = publish(&env, "1.0.0");
    hold(&env, "dev");
    env.config(&format!(
        "{PIPELINE}\n{}",
        promotion("dev", &format!("freight = \"{f1}\""), "")
    ));
    // Kargo stores the Promotion at once; its answer is held back until after the Ctrl-C.
    env.sandbox
        .inject_fault(
            HttpFault::delay_response(Duration::from_secs(60))
                .verb("create")
                .resource("promotions")
                .times(1),
        )
        .expect("inject fault");
    env.sandbox.reset_requests();
    let mut child = env
        .tf
        .command(&["apply", "-auto-approve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start terraform");
    env.eventually("the promotion create to reach the API server", WAIT, |e| {
        promotion_creates(e) == 1
    });
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = std::time::Instant::now();
    let _ = child.wait().expect("terraform exits");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the interrupted apply ends promptly"
    );
    let created = promotions_of(&env, &f1);
    assert_eq!(created.len(), 1, "{created:?}");
    let name = created[0]["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(
        env.tf.resource("kargo_promotion.dev")["promotion_name"],
        json!(name),
        "the interrupted apply recorded the Promotion it created"
    );
    let out = env.tf.plan_code();
    assert_eq!(out.code, 0, "nothing to do while it runs:\n{}", out.all());
    assert!(out.flat().contains("is still Running"), "{}", out.all());

    // Had the interruption lost the record, the next plan finds the Promotion by its key.
    env.tf.run(&["state", "rm", "kargo_promotion.dev"]).ok();
    let plan = env.tf.plan_json();
    assert_eq!(
        planned_after(&plan, "kargo_promotion.dev").unwrap()["promotion_name"],
        json!(name),
        "the plan adopts the running Promotion"
    );
    let text = env.tf.run(&["plan"]).ok().flat();
    assert!(text.contains("Promotion already created"), "{text}");
    assert!(text.contains(&name), "{text}");
    // Released, it finishes; the apply records it and waits for nothing more.
    env.sandbox.clear_faults().unwrap();
    wait_holds(&env, "dev", &f1);
    env.sandbox.reset_requests();
    env.tf.apply().ok();
    assert_eq!(promotion_creates(&env), 0, "adopted, not created again");
    assert_eq!(promotions_of(&env, &f1).len(), 1);
    let state = env.tf.resource("kargo_promotion.dev");
    assert_eq!(state["promotion_name"], json!(name));
    assert_eq!(state["phase"], "Succeeded");
    env.tf.assert_no_changes();
    assert_eq!(promotions(&env).len(), 1, "one Promotion for it all");
}
