//! The hub-cluster flow end to end: examples/hub-cluster applied against a sandbox that
//! starts without Kargo, with `enable_kargo` switching Kargo and its pipeline in one apply.

use kargo_e2e::env::KARGO;
use kargo_e2e::pipeline::{held_in, publish_image};
use kargo_e2e::terraform::sandbox_bin;
use kargo_e2e::{Env, Output, Transport, actions, example_dir, planned_actions};

const PROJECT: &str = "my-app";

/// What the pipeline consists of in the sandbox once it is created.
const PIPELINE_OBJECTS: &[&str] = &[
    "projectconfigs/my-app/my-app",
    "projects/my-app",
    "promotiontasks/my-app/update-image",
    "stages/my-app/dev",
    "stages/my-app/production",
    "stages/my-app/staging",
    "warehouses/my-app/my-app",
];

/// Stands in for the Kargo Helm release that the add-on mechanism (Argo CD on the
/// `enable_kargo` label, or a `helm_release` on the same flag) installs. Nothing in the
/// pipeline depends on it, as in real life. It installs Kargo only once the provider has
/// asked for the Kargo API and found it missing, so the apply always has to wait for it
/// (a fixed sleep would race with the provider on a busy machine); the loop is bounded.
const KARGO_CHART: &str = r#"
resource "terraform_data" "kargo_chart" {
  count = local.enable_kargo ? 1 : 0

  provisioner "local-exec" {
    command = <<-EOT
      for attempt in $(seq 1 600); do
        "@SANDBOX@" stats --kubeconfig "@KUBECONFIG@" | grep -q '"@PROBE@"' && break
        sleep 0.1
      done
      "@SANDBOX@" install-kargo --kubeconfig "@KUBECONFIG@"
    EOT
  }
}
"#;

/// Removes Kargo when the flag goes off, before the pipeline: it depends on the last stage,
/// so Terraform destroys it (running the uninstall) first. This is the case where Argo CD
/// prunes the chart faster than Terraform deletes the pipeline.
const KARGO_REMOVAL: &str = r#"
resource "terraform_data" "kargo_removal" {
  count = local.enable_kargo ? 1 : 0

  provisioner "local-exec" {
    when    = destroy
    command = "'@SANDBOX@' uninstall-kargo --kubeconfig '@KUBECONFIG@'"
  }

  depends_on = [kargo_stage.production]
}
"#;

/// Puts the example's configuration (every `.tf` file) into the test's working directory.
fn use_example(env: &Env) {
    let entries = std::fs::read_dir(example_dir("hub-cluster")).expect("read examples/hub-cluster");
    let mut copied = 0;
    for entry in entries {
        let path = entry.expect("list examples/hub-cluster").path();
        if path.extension().is_some_and(|e| e == "tf") {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            let name = path.file_name().expect("file name").to_string_lossy();
            env.tf.write(&name, &text);
            copied += 1;
        }
    }
    assert!(
        copied >= 5,
        "examples/hub-cluster has its configuration files"
    );
}

/// What the provider asks first to learn whether Kargo is served: discovery of its API group,
/// or, through Kargo's API server, the admin login that precedes everything else.
fn kargo_probe(env: &Env) -> &'static str {
    match env.transport {
        Transport::Kubernetes => "/apis/kargo.akuity.io/v1alpha1",
        Transport::ApiServer => "/v1beta1/login",
    }
}

fn with_paths(env: &Env, hcl: &str) -> String {
    hcl.replace("@SANDBOX@", &sandbox_bin().display().to_string())
        .replace("@PROBE@", kargo_probe(env))
        .replace(
            "@KUBECONFIG@",
            &env.sandbox.kubeconfig_path().display().to_string(),
        )
}

/// The variables a platform team sets: the hub cluster's kubeconfig, the add-on flags and
/// the freight production should run.
fn set_variables(env: &Env, enable_kargo: bool, production_freight: Option<&str>) {
    let mut tfvars = format!(
        "kubeconfig_path    = \"{}\"\nkubeconfig_context = \"sandbox\"\naddons = {{\n  enable_argocd = true\n  enable_kargo  = {enable_kargo}\n}}\n",
        env.sandbox.kubeconfig_path().display()
    );
    if let Some(alias) = production_freight {
        tfvars.push_str(&format!("production_freight = \"{alias}\"\n"));
    }
    env.tf.write("terraform.tfvars", &tfvars);
}

/// Runs `terraform apply` with the provider's INFO logs on stderr.
fn apply_with_provider_logs(env: &Env) -> Output {
    env.tf
        .command(&["apply", "-auto-approve"])
        .env("TF_LOG_PROVIDER", "INFO")
        .output()
        .expect("run terraform")
        .into()
}

fn kargo_objects(env: &Env) -> Vec<String> {
    env.sandbox.object_names(KARGO)
}

/// Asserts the provider found the Kargo API missing, waited, and then found it served.
#[track_caller]
fn assert_waited_for_kargo(env: &Env, out: &Output) {
    let probe = kargo_probe(env);
    let discovery: Vec<u16> = env
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.path == probe)
        .map(|r| r.code)
        .collect();
    let missing = match env.transport {
        Transport::Kubernetes => 404,
        // Kargo's API server is not there yet: whatever fronts its address answers 503.
        Transport::ApiServer => 503,
    };
    assert_eq!(
        discovery.first(),
        Some(&missing),
        "the provider asked before Kargo was installed: {discovery:?}"
    );
    assert_eq!(
        discovery.last(),
        Some(&200),
        "and carried on once it was: {discovery:?}"
    );
    let log = out.flat();
    assert!(
        log.contains("waiting for the Kargo API (kargo.akuity.io/v1alpha1) to be served by"),
        "the wait is logged with what it waits for: {log}"
    );
    assert!(
        log.contains("timeout_s=900"),
        "the wait is bounded by the example's api_wait_timeout (15m): {log}"
    );
    assert!(
        log.contains("done waiting for the Kargo API"),
        "the end of the wait is logged: {log}"
    );
}

kargo_e2e::over_both_transports!(
    enable_kargo_off_on_off_installs_creates_and_destroys_the_pipeline
);

fn enable_kargo_off_on_off_installs_creates_and_destroys_the_pipeline(transport: Transport) {
    let env = Env::without_kargo_over(transport);
    use_example(&env);
    env.connect_example();
    env.tf
        .write("kargo_chart.tf", &with_paths(&env, KARGO_CHART));

    // Off: nothing to create, and the cluster is never contacted.
    set_variables(&env, false, None);
    let plan = env.tf.plan_json();
    assert!(
        plan["resource_changes"]
            .as_array()
            .is_none_or(|c| c.is_empty()),
        "nothing is planned while Kargo is off: {}",
        plan["resource_changes"]
    );
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    env.assert_no_requests("with enable_kargo = false the provider sends nothing");
    assert!(env.tf.state_list().is_empty());
    assert!(
        env.get("namespaces", None, PROJECT).is_none() && kargo_objects(&env).is_empty(),
        "nothing was created"
    );

    // On, in the same apply that installs Kargo: the plan needs no CRDs.
    set_variables(&env, true, None);
    let plan = env.tf.plan_json();
    for address in [
        "kargo_project.app[0]",
        "kargo_warehouse.app[0]",
        "kargo_promotion_task.update_image[0]",
        "kargo_stage.dev[0]",
        "kargo_stage.staging[0]",
        "kargo_stage.production[0]",
        "terraform_data.kargo_chart[0]",
    ] {
        assert_eq!(
            planned_actions(&plan, address),
            actions(&["create"]),
            "{address}"
        );
    }
    env.assert_no_requests("planning the pipeline needs no cluster");

    let out = apply_with_provider_logs(&env).ok();
    assert_waited_for_kargo(&env, &out);
    env.tf.assert_no_changes();

    assert_eq!(kargo_objects(&env), PIPELINE_OBJECTS);
    let ns = env
        .get("namespaces", None, PROJECT)
        .expect("Kargo created the project namespace");
    assert_eq!(ns["metadata"]["labels"]["kargo.akuity.io/project"], "true");
    let config = env
        .get("projectconfigs", Some(PROJECT), PROJECT)
        .expect("promotion policies stored");
    let auto: Vec<(String, bool)> = config["spec"]["promotionPolicies"]
        .as_array()
        .expect("policies")
        .iter()
        .map(|p| {
            (
                p["stageSelector"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                p["autoPromotionEnabled"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        auto,
        [
            ("dev".to_string(), true),
            ("staging".to_string(), true),
            ("production".to_string(), false)
        ]
    );
    let warehouse = env
        .get("warehouses", Some(PROJECT), PROJECT)
        .expect("warehouse stored");
    let image = &warehouse["spec"]["subscriptions"][0]["image"];
    assert_eq!(image["repoURL"], "ghcr.io/dokaseca/my-app");
    assert_eq!(image["imageSelectionStrategy"], "SemVer");
    assert_eq!(image["constraint"], "^1.0.0");
    let staging = env
        .get("stages", Some(PROJECT), "staging")
        .expect("staging stored");
    assert_eq!(
        staging["spec"]["requestedFreight"][0]["sources"],
        serde_json::json!({"stages": ["dev"], "requiredSoakTime": "30m0s"}),
        "Kargo re-marshals the duration; the plan stays empty"
    );
    assert_eq!(
        staging["spec"]["verification"]["analysisTemplates"][0]["name"],
        "my-app-smoke-test"
    );
    let production = env
        .get("stages", Some(PROJECT), "production")
        .expect("production stored");
    let uses: Vec<&str> = production["spec"]["promotionTemplate"]["spec"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["uses"].as_str())
        .collect();
    assert_eq!(
        uses,
        [
            "git-clone",
            "kustomize-set-image",
            "git-commit",
            "git-push",
            "git-open-pr",
            "git-wait-for-pr",
            "argocd-update"
        ]
    );
    assert_eq!(
        production["spec"]["promotionTemplate"]["spec"]["steps"][4]["config"]["sourceBranch"],
        "${{ outputs.push.branch }}",
        "expressions reach Kargo untouched"
    );
    let dev = env.get("stages", Some(PROJECT), "dev").expect("dev stored");
    assert_eq!(
        dev["spec"]["promotionTemplate"]["spec"]["steps"][0]["task"]["name"],
        "update-image"
    );
    let outputs = env.tf.outputs();
    assert_eq!(outputs["kargo_project_namespace"], PROJECT);
    assert_eq!(outputs["addon_labels"]["enable_kargo"], "true");

    // GHCR gets my-app 1.2.0; the team pins production to it through `production_freight`.
    let (freight, alias) =
        publish_image(&env, PROJECT, PROJECT, "ghcr.io/dokaseca/my-app", "1.2.0");
    set_variables(&env, true, Some(&alias));
    let plan = env.tf.plan_json();
    for address in [
        "kargo_freight_approval.production[0]",
        "kargo_promotion.production[0]",
    ] {
        assert_eq!(
            planned_actions(&plan, address),
            actions(&["create"]),
            "{address}"
        );
    }
    let promotion = kargo_e2e::planned_after(&plan, "kargo_promotion.production[0]")
        .expect("the promotion is planned");
    assert_eq!(
        promotion["freight_name"], freight,
        "the plan names the freight"
    );
    assert_eq!(
        promotion["changes"][0]["to"], "1.2.0",
        "and what it changes"
    );
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    let approved = env
        .get("freights", Some(PROJECT), &freight)
        .expect("freight stored");
    assert!(
        approved["status"]["approvedFor"]["production"].is_object(),
        "approved for production: {}",
        approved["status"]
    );
    assert_eq!(
        held_in(&env, PROJECT, "my-app", "production").as_deref(),
        Some(freight.as_str()),
        "production runs the pinned freight"
    );
    assert_eq!(
        env.tf.resource("kargo_promotion.production[0]")["phase"],
        "Succeeded"
    );

    // Off again: the pipeline is destroyed in dependency order and nothing is left behind.
    set_variables(&env, false, Some(&alias));
    let plan = env.tf.plan_json();
    assert_eq!(
        planned_actions(&plan, "kargo_project.app[0]"),
        actions(&["delete"])
    );
    env.sandbox.reset_requests();
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    assert!(env.tf.state_list().is_empty());
    assert_eq!(
        kargo_objects(&env),
        Vec::<String>::new(),
        "no Kargo objects remain"
    );
    assert!(
        env.get("namespaces", None, PROJECT).is_none(),
        "the project namespace is gone"
    );

    let deletes = deletions(&env);
    let position = |object: &str| {
        deletes
            .iter()
            .position(|d| d == object)
            .unwrap_or_else(|| panic!("{object} was never deleted: {deletes:?}"))
    };
    assert!(position("stages/production") < position("stages/staging"));
    assert!(position("stages/staging") < position("stages/dev"));
    for later in [
        "warehouses/my-app",
        "promotiontasks/update-image",
        "projects/my-app",
    ] {
        assert!(
            position("stages/dev") < position(later),
            "stages go before {later}: {deletes:?}"
        );
    }
    assert!(position("warehouses/my-app") < position("projects/my-app"));
    assert!(position("promotiontasks/update-image") < position("projects/my-app"));
    env.assert_went_through_transport();
}

/// The deletions the provider requested, in order, as `plural/name`: from the Kubernetes
/// API's DELETE requests, or Kargo's routes (`DELETE …/stages/{stage}`, and for kinds without
/// one, `DELETE /v1beta1/resources`, which names no object in its path: those are told apart
/// by which of their objects disappeared, here only the promotion task).
fn deletions(env: &Env) -> Vec<String> {
    let requests = env.sandbox.requests();
    match env.transport {
        Transport::Kubernetes => requests
            .iter()
            .filter(|r| r.verb == "delete")
            .map(|r| format!("{}/{}", r.resource, r.name.as_deref().unwrap_or_default()))
            .collect(),
        Transport::ApiServer => {
            let generic = requests
                .iter()
                .filter(|r| r.method == "DELETE" && r.path == "/v1beta1/resources")
                .count();
            assert_eq!(
                generic, 1,
                "only the promotion task is deleted through /resources"
            );
            requests
                .iter()
                .filter(|r| r.method == "DELETE")
                .map(|r| {
                    let parts: Vec<&str> =
                        r.path.trim_start_matches("/v1beta1/").split('/').collect();
                    match parts.as_slice() {
                        ["projects", p] => format!("projects/{p}"),
                        ["projects", _, plural, name] => format!("{plural}/{name}"),
                        ["resources"] => "promotiontasks/update-image".to_string(),
                        _ => r.path.clone(),
                    }
                })
                .collect()
        }
    }
}

#[test]
fn kargo_removed_in_the_same_apply_fails_the_destroy_in_time_and_a_later_apply_finishes() {
    let env = Env::without_kargo();
    use_example(&env);
    env.tf
        .write("kargo_chart.tf", &with_paths(&env, KARGO_CHART));
    env.tf
        .write("kargo_removal.tf", &with_paths(&env, KARGO_REMOVAL));
    // A short delete timeout on the stage that is destroyed first, so the stuck delete is
    // reported quickly. Override files are merged into the example's own blocks.
    env.tf.write(
        "timeouts_override.tf",
        "resource \"kargo_stage\" \"production\" {\n  timeouts { delete = \"3s\" }\n}\n",
    );
    set_variables(&env, true, None);
    let out = apply_with_provider_logs(&env).ok();
    assert_waited_for_kargo(&env, &out);
    env.tf.assert_no_changes();
    assert_eq!(kargo_objects(&env), PIPELINE_OBJECTS);

    // Off: Kargo is removed first, so nobody processes the stages' finalizers any more.
    set_variables(&env, false, None);
    let out = env.tf.apply().failed();
    let text = out.flat();
    assert!(
        text.contains("The Stage was not deleted in time"),
        "the failure says what did not finish: {text}"
    );
    assert!(
        text.contains("timed out waiting for Stage \"my-app/production\" to be deleted")
            && text.contains("waiting on finalizers kargo.akuity.io/finalizer"),
        "it names the stuck object and its finalizer: {text}"
    );
    assert!(
        text.contains("check that the Kargo controller is running"),
        "it says what to do: {text}"
    );
    let state = env.tf.state_list();
    for address in ["kargo_stage.production[0]", "kargo_project.app[0]"] {
        assert!(
            state.contains(&address.to_string()),
            "{address} stays in state until it is really gone: {state:?}"
        );
    }
    assert!(
        !state.contains(&"terraform_data.kargo_removal[0]".to_string()),
        "the removal ran: {state:?}"
    );
    assert!(
        env.get("stages", Some(PROJECT), "production")
            .is_some_and(|s| s["metadata"]["deletionTimestamp"].is_string()),
        "the stage is stuck terminating"
    );

    // Kargo back (reinstalled by hand): the same apply now finishes the destroy.
    let install = std::process::Command::new(sandbox_bin())
        .args(["install-kargo", "--kubeconfig"])
        .arg(env.sandbox.kubeconfig_path())
        .output()
        .expect("run kargo-sandbox");
    assert!(
        install.status.success(),
        "{}",
        String::from_utf8_lossy(&install.stderr)
    );
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    assert!(env.tf.state_list().is_empty());
    assert_eq!(kargo_objects(&env), Vec::<String>::new());
    assert!(env.get("namespaces", None, PROJECT).is_none());
}

/// Stands in for the hub cluster created in the same run: its endpoint and credentials are
/// known only after apply.
const CLUSTER: &str = r#"
resource "terraform_data" "cluster" {
  input = {
    endpoint = "@SERVER@"
    token    = sensitive("@TOKEN@")
    ca       = <<-PEM
@CA@
PEM
  }
}
"#;

/// Replaces the example's kubeconfig settings (an override file is merged into its
/// provider block) with the cluster's outputs.
const CLUSTER_PROVIDER: &str = r#"
provider "kargo" {
  config_path            = null
  config_context         = null
  host                   = terraform_data.cluster.output.endpoint
  token                  = terraform_data.cluster.output.token
  cluster_ca_certificate = terraform_data.cluster.output.ca
}
"#;

#[test]
fn provider_configured_from_a_cluster_created_in_the_same_apply_plans_and_applies() {
    let env = Env::without_kargo();
    use_example(&env);
    env.tf
        .write("kargo_chart.tf", &with_paths(&env, KARGO_CHART));
    env.tf.write(
        "cluster.tf",
        &CLUSTER
            .replace("@SERVER@", env.sandbox.server_url())
            .replace("@TOKEN@", env.sandbox.token())
            .replace("@CA@", env.sandbox.ca_pem().trim_end()),
    );
    env.tf
        .write("cluster_provider_override.tf", CLUSTER_PROVIDER);
    set_variables(&env, true, None);

    let plan = env.tf.plan_json();
    let cluster = plan["resource_changes"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["address"] == "terraform_data.cluster"))
        .expect("the cluster stand-in is planned");
    assert_eq!(
        cluster["change"]["after_unknown"]["output"], true,
        "the provider's endpoint is unknown while planning"
    );
    assert_eq!(
        planned_actions(&plan, "kargo_stage.production[0]"),
        actions(&["create"])
    );
    env.assert_no_requests("nothing is asked of a cluster that does not exist yet");

    let out = apply_with_provider_logs(&env).ok();
    assert_waited_for_kargo(&env, &out);
    env.tf.assert_no_changes();
    assert_eq!(kargo_objects(&env), PIPELINE_OBJECTS);
    assert_eq!(
        env.tf.resource("kargo_warehouse.app[0]")["id"],
        "my-app/my-app"
    );
    assert!(
        !out.all().contains(env.sandbox.token()),
        "the token is never printed"
    );

    env.tf.destroy().ok();
    assert_eq!(kargo_objects(&env), Vec::<String>::new());
    assert!(env.get("namespaces", None, PROJECT).is_none());
}
