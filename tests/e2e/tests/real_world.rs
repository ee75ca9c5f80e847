//! Real-world Kargo pipelines written as Terraform (tests/e2e/real-world/*.tf), applied with the
//! real terraform, compared object by object with the original manifests as Kargo stores them.
//!
//! The original manifests live in `../shared/fixtures/real-world`; they are applied, as
//! `kubectl apply --server-side` would, to a second sandbox, so both sides get the same
//! defaults from the same emulated Kargo. The HCL is the project's own and needs nothing from
//! `../shared`; without it each configuration is still applied, planned and destroyed and the
//! pre-v1 one still rejected, and only the comparisons with the manifests say SKIPPED.

mod server_side;

use kargo_e2e::{Env, Terraform};
use serde::Deserialize as _;
use serde_json::Value as Json;

const QUICKSTART: &str = "akuity_kargo__docs_docs_20-quickstart_index.yaml";
const DOKA_PROJECT: &str = "thatmlopsguy_dokaseca-addons__kargo_rustfs_project.yaml";
const DOKA_WAREHOUSE: &str = "thatmlopsguy_dokaseca-addons__kargo_rustfs_warehouse.yaml";
const DOKA_STAGES: &str = "thatmlopsguy_dokaseca-addons__kargo_rustfs_stages.yaml";
/// Despite its name, this file holds the pipeline's two PromotionTasks (no Promotion).
const DOKA_TASKS: &str = "thatmlopsguy_dokaseca-addons__kargo_rustfs_promotion.yaml";
const LEGACY: &str =
    "thatmlopsguy_dokaseca-control-plane__docs_rfc_0001-gitops-promotion-with-kargo.LEGACY.yaml";

/// The objects of the fixture files, or `None` (saying SKIPPED, or failing under CI) when
/// `../shared` is absent.
fn fixtures(files: &[&str]) -> Option<Vec<Json>> {
    let dir = kargo_sandbox::reference::for_test("fixtures/real-world")?;
    let mut objects = Vec::new();
    for file in files {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} cannot be read: {e}", path.display()));
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let object = Json::deserialize(doc).expect("the fixture is valid YAML");
            if object.is_object() {
                objects.push(object);
            }
        }
    }
    Some(objects)
}

/// The plural under which the sandbox stores a kind, for the kinds that describe a pipeline.
/// Everything else in the fixtures is not pipeline spec: the quickstart's Secret holds Git
/// credentials and is the kubernetes provider's business (`kubernetes_secret`), not this one's.
fn pipeline_plural(kind: &str) -> Option<&'static str> {
    PIPELINE_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, plural)| *plural)
}

/// The kinds that describe a pipeline, with their plurals.
const PIPELINE_KINDS: [(&str, &str); 6] = [
    ("Project", "projects"),
    ("ProjectConfig", "projectconfigs"),
    ("Warehouse", "warehouses"),
    ("Stage", "stages"),
    ("PromotionTask", "promotiontasks"),
    ("ClusterPromotionTask", "clusterpromotiontasks"),
];

/// The names of every stored object of the pipeline kind `plural`, in every namespace.
fn stored_names(env: &Env, plural: &str) -> Vec<String> {
    env.sandbox.with_txn(|txn| {
        txn.list(kargo_e2e::env::KARGO, plural, None)
            .iter()
            .map(|o| str_at(o, "/metadata/name").to_string())
            .collect()
    })
}

fn str_at<'a>(object: &'a Json, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Json::as_str).unwrap_or("")
}

/// Applies `hcl` with terraform, checks that an immediate plan is empty, compares with
/// `manifests` when the fixtures are present ([`assert_terraform_matches_manifests`]) and checks
/// that destroy leaves no pipeline object and no project namespace behind.
fn apply_compare_destroy(env: &Env, hcl: &str, manifests: Option<&[Json]>) {
    env.config("");
    env.tf.write("pipeline.tf", hcl);
    env.tf.apply().ok();
    env.tf.assert_no_changes();

    let projects = stored_names(env, "projects");
    assert!(!projects.is_empty(), "the configuration declares a project");
    if let Some(manifests) = manifests {
        assert_terraform_matches_manifests(env, manifests);
    }

    env.tf.destroy().ok();
    for (_, plural) in PIPELINE_KINDS {
        let left = stored_names(env, plural);
        assert!(left.is_empty(), "{plural} left after destroy: {left:?}");
    }
    for project in projects {
        assert!(
            env.get("namespaces", None, &project).is_none(),
            "namespace {project} left after destroy"
        );
    }
}

/// Checks that every pipeline object of `manifests` is stored by the applied configuration
/// with the spec (and the labels and annotations) Kargo stores for the original, and that
/// nothing else was created.
fn assert_terraform_matches_manifests(env: &Env, manifests: &[Json]) {
    let reference = Env::new();
    let in_scope: Vec<(&Json, &'static str)> = manifests
        .iter()
        .filter_map(|m| pipeline_plural(str_at(m, "/kind")).map(|p| (m, p)))
        .collect();
    assert!(!in_scope.is_empty(), "the fixture describes a pipeline");
    for (manifest, _) in &in_scope {
        // As `kubectl apply --server-side` does.
        server_side::apply(&reference, "kubectl", manifest);
    }

    for (manifest, plural) in &in_scope {
        let name = str_at(manifest, "/metadata/name");
        let ns = manifest
            .pointer("/metadata/namespace")
            .and_then(Json::as_str);
        let what = format!("{} {}/{name}", str_at(manifest, "/kind"), ns.unwrap_or(""));
        let expected = reference
            .get(plural, ns, name)
            .unwrap_or_else(|| panic!("{what}: the original manifest was not stored"));
        let actual = env
            .get(plural, ns, name)
            .unwrap_or_else(|| panic!("{what}: terraform did not create it"));
        assert_eq!(actual.get("spec"), expected.get("spec"), "{what}: spec");
        for meta in ["labels", "annotations"] {
            let declared = manifest["metadata"][meta].as_object().cloned();
            for (key, value) in declared.into_iter().flatten() {
                assert_eq!(
                    actual["metadata"][meta][&key], value,
                    "{what}: {meta} {key}"
                );
            }
        }
    }

    // Nothing beyond the manifests: the same objects of each kind in each namespace.
    let mut seen: Vec<(String, &str)> = in_scope
        .iter()
        .map(|(m, p)| (str_at(m, "/metadata/namespace").to_string(), *p))
        .collect();
    seen.sort();
    seen.dedup();
    for (ns, plural) in seen {
        let ns = (!ns.is_empty()).then_some(ns.as_str());
        let names = |env: &Env| {
            let mut names: Vec<String> = env.sandbox.with_txn(|txn| {
                txn.list(kargo_e2e::env::KARGO, plural, ns)
                    .iter()
                    .map(|o| str_at(o, "/metadata/name").to_string())
                    .collect()
            });
            names.sort();
            names
        };
        assert_eq!(names(env), names(&reference), "{plural} in {ns:?}");
    }
}

#[test]
fn kargo_quickstart() {
    let manifests = fixtures(&[QUICKSTART]);
    let mut env = Env::new();
    // The quickstart's manifests keep the shell placeholder the reader substitutes.
    env.tf.env("TF_VAR_gitops_repo_url", "${GITOPS_REPO_URL}");
    apply_compare_destroy(
        &env,
        include_str!("../real-world/quickstart.tf"),
        manifests.as_deref(),
    );
}

/// The comparison for one of the ProjectConfig examples of Kargo's docs (`variant`: `basic`,
/// `labels` or `patterns`), written as `hcl`.
fn compare_docs_project_config(variant: &str, hcl: &str) {
    let fixture = format!("akuity_kargo__docs_working-with-projects__projectconfig-{variant}.yaml");
    let manifests = fixtures(&[&fixture]);
    apply_compare_destroy(&Env::new(), hcl, manifests.as_deref());
}

#[test]
fn kargo_docs_project_config_with_exact_stage_names() {
    compare_docs_project_config(
        "basic",
        include_str!("../real-world/projectconfig-basic.tf"),
    );
}

#[test]
fn kargo_docs_project_config_with_label_selectors() {
    compare_docs_project_config(
        "labels",
        include_str!("../real-world/projectconfig-labels.tf"),
    );
}

#[test]
fn kargo_docs_project_config_with_name_patterns() {
    compare_docs_project_config(
        "patterns",
        include_str!("../real-world/projectconfig-patterns.tf"),
    );
}

#[test]
fn dokaseca_rustfs_addon_pipeline() {
    let manifests = fixtures(&[DOKA_PROJECT, DOKA_WAREHOUSE, DOKA_TASKS, DOKA_STAGES]);
    if let Some(manifests) = &manifests {
        assert_eq!(
            manifests
                .iter()
                .filter(|m| m["kind"] == "PromotionTask")
                .count(),
            2,
            "the promotion file holds the two tasks"
        );
    }
    let env = Env::new();
    apply_compare_destroy(
        &env,
        include_str!("../real-world/dokaseca-rustfs.tf"),
        manifests.as_deref(),
    );
}

#[test]
fn the_pre_v1_manifests_written_as_terraform_are_rejected_with_their_replacements() {
    // The HCL below is this fixture translated field by field; keep them in step (checked
    // when the fixture is present; the rejections are checked either way).
    if let Some(manifests) = fixtures(&[LEGACY]) {
        assert!(
            manifests
                .iter()
                .all(|m| m.pointer("/metadata/namespace").is_none())
        );
        let stages_with = |field: &str| {
            manifests
                .iter()
                .filter(|m| m["kind"] == "Stage" && m["spec"].get(field).is_some())
                .count()
        };
        assert_eq!(stages_with("promotionMechanisms"), 3);
        assert_eq!(stages_with("promotionPolicy"), 1);
    }

    let env = Env::new();
    let legacy = include_str!("../real-world/legacy-dokaseca-rfc.tf");
    env.config("");
    env.tf.write("pipeline.tf", legacy);

    // As written: the manifests have no namespace, so no project; Terraform asks for it on
    // every resource before anything else.
    let out = env.tf.run(&["validate"]).failed();
    let found = out.errors();
    for resource in [
        "kargo_warehouse.my_app",
        "kargo_stage.dev",
        "kargo_stage.staging",
        "kargo_stage.production",
    ] {
        assert!(
            found.iter().any(|e| e.contains("Missing required argument")
                && e.contains("\"project\" is required")
                && e.contains(&format!("\"{}\"", resource.split('.').nth(1).unwrap_or("")))),
            "project is required on {resource}:\n{}",
            found.join("\n---\n")
        );
    }

    // With the project the user is asked for, each removed construct is rejected on its own
    // attribute, naming what replaced it.
    let fixed = legacy
        .replace(
            "{\n  name = \"my-app-warehouse\"\n",
            "{\n  project = \"my-app\"\n  name    = \"my-app-warehouse\"\n",
        )
        .replace(
            "{\n  name = \"dev\"\n",
            "{\n  project = \"my-app\"\n  name    = \"dev\"\n",
        )
        .replace(
            "{\n  name = \"staging\"\n",
            "{\n  project = \"my-app\"\n  name    = \"staging\"\n",
        )
        .replace(
            "{\n  name = \"production\"\n",
            "{\n  project = \"my-app\"\n  name    = \"production\"\n",
        );
    assert_eq!(fixed.matches("project = \"my-app\"").count(), 4, "{fixed}");
    env.tf.write("pipeline.tf", &fixed);
    let out = env.tf.run(&["plan"]).failed();
    for stage in ["dev", "staging", "production"] {
        out.assert_error(
            &format!("kargo_stage.{stage}"),
            &[
                "promotion_mechanisms",
                "Promotion mechanisms were removed in Kargo v1.0; use promotion_template steps",
                "git-clone",
                "argocd-update",
            ],
        );
    }
    for stage in ["staging", "production"] {
        out.assert_error(
            &format!("kargo_stage.{stage}"),
            &["`requested_freight[0].origin.kind`", "sources.stages"],
        );
    }
    out.assert_error(
        "kargo_stage.production",
        &["promotion_policy", "kargo_project.promotion_policies"],
    );
    // The RFC's `tagSelectionStrategy` is not a Kargo field. Terraform would drop an attribute
    // the schema lacks without a word, so the schema keeps it just to reject it, naming what
    // replaces it.
    assert!(legacy.contains("tag_selection_strategy = {"), "{legacy}");
    out.assert_error(
        "kargo_warehouse.my_app",
        &[
            "tag_selection_strategy",
            "image_selection_strategy",
            "`constraint`",
            "strict_semvers",
        ],
    );
    env.assert_no_requests("validation needs no cluster");
}

/// The blocks a configuration generated on import must use (never the `name = { … }` or
/// `name = [{ … }]` attribute syntax).
const BLOCKS: [&str; 12] = [
    "subscriptions",
    "image",
    "chart",
    "requested_freight",
    "origin",
    "sources",
    "promotion_template",
    "steps",
    "vars",
    "promotion_policies",
    "stage_selector",
    "stage_links",
];

/// Adopts every pipeline object in the sandbox with import blocks and
/// `plan -generate-config-out` ([`Env::adopt_with_generated_config`]), then checks what the
/// user sees: the configuration is written with blocks; applying it imports each object,
/// changes and writes nothing; the next plan is empty. Returns the adopting directory.
fn assert_generated_configuration_adopts_everything(env: &Env) -> Terraform {
    let (adopter, generated, count) = env.adopt_with_generated_config();
    assert!(count > 0, "nothing to adopt");
    for line in outside_jsonencode(&generated) {
        let line = line.trim_start();
        assert!(
            !BLOCKS.iter().any(|b| line.starts_with(&format!("{b} ="))),
            "written as an attribute, not a block: {line:?} in\n{generated}"
        );
    }
    assert!(
        BLOCKS
            .iter()
            .any(|b| generated.contains(&format!("  {b} {{"))),
        "{generated}"
    );
    env.sandbox.reset_requests();
    let out = adopter.apply().ok();
    assert!(
        out.stdout.contains(&format!(
            "Apply complete! Resources: {count} imported, 0 added, 0 changed, 0 destroyed."
        )),
        "{}",
        out.all()
    );
    let writes: Vec<_> = env
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| !matches!(r.verb.as_str(), "get" | "list" | "watch"))
        .collect();
    assert!(writes.is_empty(), "adopting writes nothing: {writes:?}");
    adopter.assert_no_changes();
    adopter
}

/// The lines of `hcl` that are not inside a `jsonencode(…)` call (step configurations, whose
/// keys are Kargo's and may look like block names).
fn outside_jsonencode(hcl: &str) -> Vec<&str> {
    let mut depth = 0usize;
    let mut lines = Vec::new();
    for line in hcl.lines() {
        let opens = line.contains("jsonencode(");
        if depth == 0 {
            lines.push(line);
        }
        if opens || depth > 0 {
            let parens = |c: char| line.chars().filter(|x| *x == c).count();
            depth = (depth + parens('(')).saturating_sub(parens(')'));
        }
    }
    lines
}

/// Applies `hcl` with one working directory, then adopts what it created from another.
fn created_by_terraform(env: &Env, hcl: &str) {
    env.config("");
    env.tf.write("pipeline.tf", hcl);
    env.tf.apply().ok();
}

#[test]
fn generated_configuration_adopts_the_dokaseca_pipeline_with_its_empty_strings() {
    let env = Env::new();
    created_by_terraform(&env, include_str!("../real-world/dokaseca-rustfs.tf"));
    let adopter = assert_generated_configuration_adopts_everything(&env);
    // The regional task's `region` variable is "" in Kargo (DoKa Seca's own manifest): it
    // stays "", though Terraform writes `null` for an empty string in the configuration it
    // generates.
    let task = adopter.resource("kargo_promotion_task.o_rustfs_addon_addon_version_promote_region");
    let region: Vec<&Json> = task["vars"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["name"] == "region")
        .collect();
    assert_eq!(
        region,
        [&serde_json::json!({"name": "region", "value": ""})]
    );
    let stored = env
        .get(
            "promotiontasks",
            Some("rustfs-addon"),
            "addon-version-promote-region",
        )
        .expect("the task");
    assert_eq!(
        stored["spec"]["vars"][2],
        serde_json::json!({"name": "region", "value": ""})
    );

    // Changing an adopted value in its block then applies, and the plan is empty again.
    let stored = change_adopted_region(&env, &adopter);
    assert_eq!(
        stored["spec"]["vars"][2],
        serde_json::json!({"name": "region", "value": "eu"})
    );
}

/// `kubectl apply` (client-side, as most people run it) of `manifest` to the sandbox of `env`:
/// the fields belong to `kubectl-client-side-apply`, and the object carries kubectl's
/// last-applied annotation.
fn kubectl_apply(env: &Env, manifest: &Json) {
    use std::io::Write as _;
    let mut child = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(env.sandbox.kubeconfig_path())
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl runs (it must be on PATH for the end-to-end tests)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(manifest.to_string().as_bytes())
        .expect("manifest written to kubectl");
    let out = child.wait_with_output().expect("kubectl finishes");
    assert!(
        out.status.success(),
        "kubectl apply of {} {}: {}",
        str_at(manifest, "/kind"),
        str_at(manifest, "/metadata/name"),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sets the adopted DoKa Seca task's `region` variable to "eu" in the generated
/// configuration, applies (one change) and plans empty; returns the stored task.
fn change_adopted_region(env: &Env, adopter: &Terraform) -> Json {
    let generated =
        std::fs::read_to_string(adopter.path().join("generated.tf")).expect("generated.tf");
    let changed = replace_after(
        &generated,
        "name  = \"region\"\n",
        "value = null",
        "value = \"eu\"",
    );
    adopter.write("generated.tf", &changed);
    let out = adopter.apply().ok();
    assert!(
        out.stdout
            .contains("Apply complete! Resources: 0 added, 1 changed, 0 destroyed."),
        "{}",
        out.all()
    );
    adopter.assert_no_changes();
    env.get(
        "promotiontasks",
        Some("rustfs-addon"),
        "addon-version-promote-region",
    )
    .expect("the task")
}

/// `text` with the first `old` that follows the first `marker` replaced by `new`.
fn replace_after(text: &str, marker: &str, old: &str, new: &str) -> String {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not in:\n{text}"));
    let at = start
        + text[start..]
            .find(old)
            .unwrap_or_else(|| panic!("{old:?} not after {marker:?} in:\n{text}"));
    format!("{}{new}{}", &text[..at], &text[at + old.len()..])
}

#[test]
fn generated_configuration_adopts_the_quickstart_and_the_project_configs() {
    for hcl in [
        include_str!("../real-world/quickstart.tf"),
        include_str!("../real-world/projectconfig-basic.tf"),
        include_str!("../real-world/projectconfig-labels.tf"),
        include_str!("../real-world/projectconfig-patterns.tf"),
    ] {
        let mut env = Env::new();
        env.tf.env(
            "TF_VAR_gitops_repo_url",
            "https://github.com/example/kargo-demo.git",
        );
        created_by_terraform(&env, hcl);
        let adopter = assert_generated_configuration_adopts_everything(&env);
        let projects = env
            .sandbox
            .with_txn(|txn| txn.list(kargo_e2e::env::KARGO, "projects", None));
        for project in projects {
            let name = str_at(&project, "/metadata/name");
            let adopted = adopter.resource(&format!("kargo_project.o_{}", name.replace('-', "_")));
            let stored = env
                .get("projectconfigs", Some(name), name)
                .map(|pc| pc["spec"]["promotionPolicies"].clone())
                .unwrap_or(Json::Null);
            assert_eq!(
                adopted["promotion_policies"].as_array().map(Vec::len),
                Some(stored.as_array().map_or(0, Vec::len)),
                "the ProjectConfig's policies are adopted with the project: {stored}"
            );
        }
    }
}

#[test]
fn generated_configuration_adopts_what_kubectl_applied_from_every_fixture() {
    if fixtures(&[QUICKSTART]).is_none() {
        return;
    }
    // One sandbox per pipeline: the three ProjectConfig examples all configure "example".
    let groups: [&[&str]; 5] = [
        &[QUICKSTART],
        &[DOKA_PROJECT, DOKA_WAREHOUSE, DOKA_TASKS, DOKA_STAGES],
        &["akuity_kargo__docs_working-with-projects__projectconfig-basic.yaml"],
        &["akuity_kargo__docs_working-with-projects__projectconfig-labels.yaml"],
        &["akuity_kargo__docs_working-with-projects__projectconfig-patterns.yaml"],
    ];
    let mut kinds = std::collections::BTreeSet::new();
    for group in groups {
        let manifests = fixtures(group).unwrap_or_default();
        let in_scope: Vec<&Json> = manifests
            .iter()
            .filter(|m| pipeline_plural(str_at(m, "/kind")).is_some())
            .collect();
        let env = Env::new();
        // Projects first: their namespaces appear once Kargo has reconciled them.
        for manifest in in_scope.iter().filter(|m| m["kind"] == "Project") {
            kubectl_apply(&env, manifest);
            let name = str_at(manifest, "/metadata/name").to_string();
            env.eventually(
                &format!("namespace {name}"),
                std::time::Duration::from_secs(30),
                |env| env.get("namespaces", None, &name).is_some(),
            );
        }
        for manifest in in_scope.iter().filter(|m| m["kind"] != "Project") {
            kubectl_apply(&env, manifest);
        }
        kinds.extend(in_scope.iter().map(|m| str_at(m, "/kind").to_string()));
        let first = in_scope[0];
        let stored = env
            .get(
                pipeline_plural(str_at(first, "/kind")).expect("a pipeline kind"),
                first["metadata"]["namespace"].as_str(),
                str_at(first, "/metadata/name"),
            )
            .expect("applied");
        assert!(
            stored["metadata"]["managedFields"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["manager"] == "kubectl-client-side-apply" && e["operation"] == "Update"),
            "written as kubectl apply writes: {stored}"
        );
        let adopter = assert_generated_configuration_adopts_everything(&env);
        if group.contains(&DOKA_TASKS) {
            let task = adopter
                .resource("kargo_promotion_task.o_rustfs_addon_addon_version_promote_region");
            assert!(
                task["vars"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|v| v["name"] == "region" && v["value"] == ""),
                "{task}"
            );
            // The adopted value is owned by `kubectl-client-side-apply`, an imperative
            // writer: changing it in its block applies, and the plan is empty again.
            let stored = change_adopted_region(&env, &adopter);
            assert!(
                stored["spec"]["vars"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|v| *v == serde_json::json!({"name": "region", "value": "eu"})),
                "{stored}"
            );
        }
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "Project",
            "ProjectConfig",
            "PromotionTask",
            "Stage",
            "Warehouse"
        ]
    );
}
