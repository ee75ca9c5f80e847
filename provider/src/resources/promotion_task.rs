//! `kargo_promotion_task` and `kargo_cluster_promotion_task`: reusable sequences of promotion
//! steps, plus the step and variable schema (and its checks) that stages share with them.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::common::timeout_duration;
use super::convert::{ObjectResource, PipelineKind, Rules};
use super::templates::{self, Pipeline};
use super::validators::{
    is_reserved_alias, json_object, naming_path, not_empty, object_name, report, var_name,
};
use crate::duration::duration_eq;
use crate::kargo;
use crate::plugin::plan::semantic::json_eq;
use crate::plugin::validate::validators::{exactly_one_of, int_between, one_of};
use crate::plugin::{Attribute, AttributePath, Block, Diagnostics, NestedBlock, Value};
use crate::steps::template::TaskKind;

/// The `kargo_promotion_task` resource; construct with `PromotionTaskResource::new(provider_data)`.
pub type PromotionTaskResource = ObjectResource<PromotionTask>;
/// The `kargo_cluster_promotion_task` resource; construct with
/// `ClusterPromotionTaskResource::new(provider_data)`.
pub type ClusterPromotionTaskResource = ObjectResource<ClusterPromotionTask>;

/// Marker type describing PromotionTasks to [`ObjectResource`].
pub struct PromotionTask;
/// Marker type describing ClusterPromotionTasks to [`ObjectResource`].
pub struct ClusterPromotionTask;

static RULES: Rules = Rules {
    json: &["steps.config"],
    skip: &[],
    wrap: &[],
    implied_default: &[],
    catch_all: &[],
    report: false,
};

const CONFIG_DESCRIPTION: &str = "The step's configuration, a JSON object: write \
`config = jsonencode({ ... })`. Kargo expressions such as `${{ vars.gitRepo }}` pass through \
untouched; inside HCL strings write them as `$${{ vars.gitRepo }}` so that Terraform does not \
treat them as its own interpolation. Each step kind takes a different configuration, so \
configuration is a JSON string rather than nested blocks: it is compared as JSON (key order, \
spacing and re-encoding never show as changes), and Terraform renders changes to JSON strings \
structurally, so diffs stay small.";

/// `vars` blocks: `{ name, value }`, one block per variable.
pub(super) fn vars_block(description: &str, value_description: &str) -> NestedBlock {
    NestedBlock::list(
        "vars",
        Block::new(vec![
            Attribute::string("name")
                .required()
                .validate(var_name())
                .description("Variable name, referenced as `vars.<name>` in expressions."),
            Attribute::string("value")
                .optional()
                .description(value_description.to_string()),
        ]),
    )
    .description(description.to_string())
}

/// One promotion step. Stage steps may instead run a task (a `task` block); task steps
/// always name a step kind with `uses`.
pub(super) fn step_block(in_stage: bool) -> Block {
    let mut attrs = Vec::new();
    let uses = Attribute::string("uses").validate(not_empty());
    if in_stage {
        attrs.push(uses.optional().description(
            "The step to run, e.g. `git-clone`, `kustomize-set-image` or `argocd-update`. Exactly \
             one of `uses` and a `task` block is set.",
        ));
    } else {
        attrs.push(uses.required().description(
            "The step to run, e.g. `git-clone`, `kustomize-set-image` or `argocd-update`.",
        ));
    }
    let outputs = if in_stage {
        "`outputs.<alias>`"
    } else {
        "`task.outputs.<alias>`"
    };
    attrs.extend([
        Attribute::string("as").optional().description(format!(
            "Alias of the step, unique among the steps; later steps read its outputs as \
             {outputs}. Must not have the form `step-<n>` or `task-<n>`, which Kargo gives to \
             steps without an alias."
        )),
        Attribute::string("if").optional().description(
            "An expression deciding whether the step runs, e.g. `${{ vars.openPR == 'true' }}` \
             (write `$${{ ... }}` in HCL). Unset: the step runs when all previous steps succeeded.",
        ),
        Attribute::bool("continue_on_error")
            .optional()
            .description("Let the promotion continue when this step fails. Default `false`."),
        Attribute::string("config")
            .optional()
            .validate(json_object())
            .semantic_eq(json_eq)
            .description(CONFIG_DESCRIPTION),
    ]);
    let mut step = Block::new(attrs);
    if in_stage {
        step = step.block(
            NestedBlock::single(
                "task",
                Block::new(vec![
                    Attribute::string("name")
                        .required()
                        .validate(object_name())
                        .description("Name of the promotion task to run."),
                    Attribute::string("kind")
                        .default(Value::string("PromotionTask"))
                        .validate(one_of(&["PromotionTask", "ClusterPromotionTask"]))
                        .description(
                            "`PromotionTask` (in the stage's project) or `ClusterPromotionTask` \
                             (shared by all projects). Default `PromotionTask`.",
                        ),
                ]),
            )
            .description(
                "Run the steps of a promotion task instead of a single step. A task step may set \
                 `as` and `vars`, but not `if`, `config`, `continue_on_error` or `retry`.",
            ),
        );
    }
    step.block(
        NestedBlock::single(
            "retry",
            Block::new(vec![
                Attribute::string("timeout")
                    .optional()
                    .validate(naming_path(timeout_duration()))
                    .semantic_eq(duration_eq)
                    .description(
                        "How long Kargo keeps retrying the step, e.g. `10m`. Unset: the step's \
                         own default.",
                    ),
                Attribute::number("error_threshold")
                    .optional()
                    .validate(int_between(0, i64::from(i32::MAX)))
                    .description(
                        "How many consecutive errors fail the step. Unset: the step's own default.",
                    ),
            ]),
        )
        .description("How Kargo retries the step when it errors."),
    )
    .block(vars_block(
        "Variables for this step only, overriding those of the template or task; one block each.",
        "Value; may contain expressions (write `$${{ ... }}` in HCL).",
    ))
}

/// What `terraform validate` checks in steps, for the docs.
const STEP_CHECKS: &str = "`terraform validate` checks the steps without a cluster: the \
    `config` of every built-in step of Kargo v1.11 against that step's schema (keys, with the \
    likely intended one for a misspelt key, types, required keys, allowed values, mutually \
    exclusive keys), the syntax of every `${{ ... }}` expression (in `config` and `if`), that \
    `outputs.<alias>` names an earlier step, `task.outputs` is only used inside a task, and \
    `vars.<name>` is defined (by the stage, its template, the task or the step); a step that is \
    not a built-in gets a warning that its config cannot be checked. With the warehouses in the \
    same configuration, `imageFrom`, `chartFrom` and `commitFrom` of a repository none of them \
    subscribes to is a warning. `KARGO_STEP_CHECKS=off` in Terraform's environment turns \
    these checks off (for templates written for a Kargo release whose steps differ).";

/// The `steps` blocks: at least one.
pub(super) fn steps_block(in_stage: bool, description: &str) -> NestedBlock {
    let steps = NestedBlock::list("steps", step_block(in_stage))
        .required()
        .description(format!("{description} {STEP_CHECKS}"));
    if in_stage {
        steps.validate(naming_path(exactly_one_of(&["uses", "task"])))
    } else {
        steps
    }
}

/// Kargo's webhook rules for a list of steps: aliases unique and not of the reserved
/// `step-<n>`/`task-<n>` form, and steps that run a task without `if`, `config`,
/// `continue_on_error` or `retry`. Unknown values are skipped.
pub(super) fn validate_steps(steps: &Value, at: &AttributePath, diags: &mut Diagnostics) {
    let mut aliases: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, step) in steps.elements().iter().enumerate() {
        let step_at = at.join_index(i);
        if let Some(alias) = step.get("as").as_str() {
            let alias_at = step_at.join_attr("as");
            if is_reserved_alias(alias) {
                report(
                    diags,
                    alias_at.clone(),
                    "Reserved step alias",
                    format!(
                        "{alias:?} has the form Kargo gives to steps without an alias \
                         (`step-<n>`, `task-<n>`); choose another alias."
                    ),
                );
            }
            if let Some(first) = aliases.get(alias) {
                report(
                    diags,
                    alias_at,
                    "Duplicate step alias",
                    format!(
                        "{alias:?} is already the alias of step {first}; aliases must be unique."
                    ),
                );
            } else {
                aliases.insert(alias, i);
            }
        }
        let task = step.get("task");
        if task.is_null() || task.is_unknown() {
            continue;
        }
        for (attr, why) in [
            ("if", "an `if` condition"),
            ("config", "a `config`"),
            ("continue_on_error", "`continue_on_error`"),
            ("retry", "`retry`"),
        ] {
            let v = step.get(attr);
            if !v.is_null() && !v.is_unknown() {
                report(
                    diags,
                    step_at.join_attr(attr),
                    "Not allowed on a task step",
                    format!(
                        "A step that runs a task cannot have {why}: set it on the task's own \
                         steps instead, or pass values to the task through `vars`."
                    ),
                );
            }
        }
    }
}

fn task_spec() -> Block {
    Block::default()
        .block(vars_block(
            "Variables of the task, available to its steps as `vars.<name>`, one block each. The \
             stage step that runs the task can override them with its own `vars`.",
            "Default value. A variable without one must be supplied by the stage step that runs \
             the task. May contain expressions (write `$${{ ... }}` in HCL).",
        ))
        .block(steps_block(
            false,
            "The steps the task runs, in order: one block per step, at least one. Each names a \
             step kind with `uses`.",
        ))
}

fn validate_task(config: &Value, diags: &mut Diagnostics) {
    validate_steps(config.get("steps"), &AttributePath::attr("steps"), diags);
}

#[async_trait]
impl PipelineKind for PromotionTask {
    const TYPE_NAME: &'static str = "kargo_promotion_task";
    type Object = kargo::PromotionTask;

    fn description() -> String {
        "A Kargo promotion task: a named, reusable sequence of promotion steps in a project. \
         Stages run it from a step with a `task { name = \"...\" }` block, passing `vars` \
         blocks that override the task's defaults."
            .into()
    }

    fn spec() -> Block {
        task_spec()
    }

    fn rules() -> &'static Rules {
        &RULES
    }

    fn validate(config: &Value, diags: &mut Diagnostics) {
        validate_task(config, diags);
    }

    fn validate_in_pipeline(config: &Value, pipeline: &Pipeline, diags: &mut Diagnostics) {
        templates::validate_task(config, TaskKind::PromotionTask, pipeline, diags);
    }
}

#[async_trait]
impl PipelineKind for ClusterPromotionTask {
    const TYPE_NAME: &'static str = "kargo_cluster_promotion_task";
    type Object = kargo::ClusterPromotionTask;

    fn description() -> String {
        "A Kargo cluster promotion task: a reusable sequence of promotion steps shared by all \
         projects. Stages run it from a step with a `task` block that sets its `name` and \
         `kind = \"ClusterPromotionTask\"`. It is cluster-scoped, so it has no `project` and is \
         imported by its name."
            .into()
    }

    fn spec() -> Block {
        task_spec()
    }

    fn rules() -> &'static Rules {
        &RULES
    }

    fn validate(config: &Value, diags: &mut Diagnostics) {
        validate_task(config, diags);
    }

    fn validate_in_pipeline(config: &Value, pipeline: &Pipeline, diags: &mut Diagnostics) {
        templates::validate_task(config, TaskKind::ClusterPromotionTask, pipeline, diags);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value as Json, json};

    use super::*;
    use crate::plugin::{Context, Resource as _};
    use crate::resources::convert::test_support::*;

    const QUICKSTART: &str = "akuity_kargo__docs_docs_20-quickstart_index.yaml";
    const DOKA: &str = "thatmlopsguy_dokaseca-addons__kargo_rustfs_promotion.yaml";

    async fn assert_matches_fixture(config: Json, file: &str, project: &str, name: &str) {
        let r = resource::<PromotionTask>();
        let config = super::super::convert::test_support::config(&r, config);
        assert!(
            validate(&r, &config).is_empty(),
            "{name}: {:?}",
            validate(&r, &config)
        );
        let planned = plan(&r, &config, &Value::Null).await.planned_state;
        let body = r.body(&planned).unwrap();
        let expected = fixture(file, "PromotionTask", name);
        assert_eq!(
            body["spec"],
            with_kargo_defaults("PromotionTask", &expected["spec"]),
            "{name}"
        );
        let live = stored("PromotionTask", Some(project), name, &body, Json::Null);
        assert_no_drift(&r, &config, &live, &format!("{project}/{name}")).await;
    }

    #[tokio::test]
    async fn quickstart_task_matches_the_fixture() {
        if !crate::resources::convert::test_support::fixtures_present() {
            return;
        }
        let steps = json!([
            {"uses": "git-clone", "config": jsonencode(json!({
                "repoURL": "${{ vars.gitopsRepo }}",
                "checkout": [
                    {"branch": "main", "path": "./src"},
                    {"branch": "stage/${{ ctx.stage }}", "create": true, "path": "./out"},
                ],
            }))},
            {"uses": "git-clear", "config": jsonencode(json!({"path": "./out"}))},
            {"uses": "kustomize-set-image", "as": "update", "config": jsonencode(json!({
                "path": "./src/base",
                "images": [{"image": "${{ vars.imageRepo }}", "tag": "${{ imageFrom(vars.imageRepo).Tag }}"}],
            }))},
            {"uses": "kustomize-build", "config": jsonencode(json!({"path": "./src/stages/${{ ctx.stage }}", "outPath": "./out"}))},
            {"uses": "git-commit", "as": "commit", "config": jsonencode(json!({
                "path": "./out",
                "message": "${{ task.outputs.update.commitMessage }}",
            }))},
            {"uses": "git-push", "config": jsonencode(json!({"path": "./out"}))},
            {"uses": "argocd-update", "config": jsonencode(json!({"apps": [{
                "name": "kargo-demo-${{ ctx.stage }}",
                "sources": [{"repoURL": "${{ vars.gitopsRepo }}", "desiredRevision": "${{ task.outputs.commit.commit }}"}],
            }]}))},
        ]);
        let config = json!({
            "project": "kargo-demo",
            "name": "demo-promo-process",
            "vars": [
                {"name": "gitopsRepo", "value": "${GITOPS_REPO_URL}"},
                {"name": "imageRepo", "value": "public.ecr.aws/nginx/nginx"},
            ],
            "steps": steps,
        });
        assert_matches_fixture(config, QUICKSTART, "kargo-demo", "demo-promo-process").await;
    }

    /// The DoKa Seca addon task; `path` is where the addon's settings live and `suffix` the
    /// text identifying the target in commit messages, titles and labels.
    fn dokaseca_task(
        name: &str,
        extra_var: Option<(&str, &str)>,
        path: &str,
        suffix: &str,
        label: &str,
    ) -> Json {
        let version = "${{ chartFrom('https://charts.rustfs.com', 'rustfs', warehouse('rustfs-charts')).Version }}";
        let when = "${{ vars.openPR == 'true' }}";
        let mut vars = vec![
            json!({"name": "gitRepoURL", "value": "https://github.com/thatmlopsguy/dokaseca-addons.git"}),
            json!({"name": "openPR", "value": "true"}),
        ];
        if let Some((n, v)) = extra_var {
            vars.push(json!({"name": n, "value": v}));
        }
        json!({
            "project": "rustfs-addon",
            "name": name,
            "vars": vars,
            "steps": [
                {"uses": "git-clone", "as": "clone-repo", "config": jsonencode(json!({
                    "repoURL": "${{ vars.gitRepoURL }}",
                    "checkout": [{"branch": "main", "path": "./out"}],
                }))},
                {"uses": "json-parse", "as": "current-version", "config": jsonencode(json!({
                    "path": path,
                    "outputs": [{"name": "addonChartVersion", "fromExpression": "addonChartVersion"}],
                }))},
                {"uses": "json-update", "as": "update-settings", "config": jsonencode(json!({
                    "path": path,
                    "updates": [{"key": "addonChartVersion", "value": version}],
                }))},
                {"uses": "git-commit", "as": "commit", "config": jsonencode(json!({
                    "path": "./out",
                    "message": format!("kargo: promote RustFS addon to {version} ({suffix})"),
                }))},
                {"uses": "git-push", "as": "push", "if": when, "config": jsonencode(json!({
                    "path": "./out",
                    "generateTargetBranch": true,
                }))},
                {"uses": "git-open-pr", "as": "open-pr", "if": when, "config": jsonencode(json!({
                    "repoURL": "${{ vars.gitRepoURL }}",
                    "provider": "github",
                    "sourceBranch": "${{ task.outputs['push'].branch }}",
                    "targetBranch": "main",
                    "title": format!("kargo: promote RustFS addon to {version} ({suffix})"),
                    "labels": ["kargo", "addon-promotion", "rustfs", label],
                }))},
                {"uses": "git-wait-for-pr", "as": "wait-for-pr", "if": when, "config": jsonencode(json!({
                    "repoURL": "${{ vars.gitRepoURL }}",
                    "prNumber": "${{ task.outputs['open-pr'].pr.id }}",
                }))},
            ],
        })
    }

    #[tokio::test]
    async fn dokaseca_tasks_match_the_fixture() {
        if !crate::resources::convert::test_support::fixtures_present() {
            return;
        }
        let per_stage = dokaseca_task(
            "addon-version-promote",
            None,
            "./out/configs/appsets/environments/${{ ctx.stage }}/rustfs.json",
            "${{ ctx.stage }}",
            "${{ ctx.stage }}",
        );
        assert_matches_fixture(per_stage, DOKA, "rustfs-addon", "addon-version-promote").await;
        let per_region = dokaseca_task(
            "addon-version-promote-region",
            Some(("region", "")),
            "./out/configs/appsets/regions/${{ vars.region }}/rustfs.json",
            "region: ${{ vars.region }}",
            "${{ vars.region }}",
        );
        assert_matches_fixture(
            per_region,
            DOKA,
            "rustfs-addon",
            "addon-version-promote-region",
        )
        .await;
    }

    #[tokio::test]
    async fn cluster_tasks_have_no_project() {
        let r = resource::<ClusterPromotionTask>();
        assert!(r.schema().block.attribute("project").is_none());
        let config = config(
            &r,
            json!({
                "name": "notify",
                "vars": [{"name": "channel"}],
                "steps": [{"uses": "http", "as": "post", "retry": {"error_threshold": 2}, "config": jsonencode(json!({"url": "https://hooks.example.com/${{ vars.channel }}"}))}],
            }),
        );
        assert!(
            validate(&r, &config).is_empty(),
            "{:?}",
            validate(&r, &config)
        );
        let planned = plan(&r, &config, &Value::Null).await.planned_state;
        assert_eq!(planned.get("id"), &s("notify"));
        let body = r.body(&planned).unwrap();
        assert_eq!(
            body["spec"],
            json!({
                "vars": [{"name": "channel"}],
                "steps": [{"uses": "http", "as": "post", "retry": {"errorThreshold": 2}, "config": {"url": "https://hooks.example.com/${{ vars.channel }}"}}],
            })
        );
        let live = stored("ClusterPromotionTask", None, "notify", &body, Json::Null);
        assert!(live["metadata"].get("namespace").is_none());
        let state = assert_no_drift(&r, &config, &live, "notify").await;
        assert_eq!(state.get("id"), &s("notify"));
        let bad = r.import(&Context::default(), "Not/Valid").await;
        assert_eq!(errors(&bad.diagnostics).len(), 1);
    }

    #[test]
    fn task_steps_name_a_step_kind_and_keep_aliases_unique() {
        let r = resource::<PromotionTask>();
        assert!(
            step_block(false).nested_block("task").is_none(),
            "a task cannot run another task"
        );
        let config = config(
            &r,
            json!({
                "project": "p",
                "name": "t",
                "vars": [{"name": "1bad"}],
                "steps": [
                    {"as": "a"},
                    {"uses": "git-push", "as": "a", "config": "\"not an object\""},
                    {"uses": "git-push", "as": "step-1", "retry": {"timeout": "10 minutes", "error_threshold": -1}, "config": jsonencode(json!({"path": "./out"}))},
                ],
            }),
        );
        let found = errors(&validate(&r, &config));
        assert_eq!(
            found.iter().map(|(p, _, _)| p.as_str()).collect::<Vec<_>>(),
            vec![
                "vars[0].name",
                "steps[0].uses",
                "steps[1].config",
                "steps[2].retry.timeout",
                "steps[2].retry.error_threshold",
                "steps[1].as",
                "steps[2].as",
            ]
        );
        // At least one step: a block minimum, which Terraform itself enforces.
        let steps = r.schema().block.nested_block("steps").unwrap().clone();
        assert_eq!((steps.min_items, steps.max_items), (1, 0));
    }

    fn config_for_steps(r: &PromotionTaskResource, steps: Json) -> Value {
        config(r, json!({"project": "p", "name": "t", "steps": steps}))
    }

    #[tokio::test]
    async fn reordered_or_reformatted_config_is_no_change() {
        let r = resource::<PromotionTask>();
        let written = config_for_steps(
            &r,
            json!([{"uses": "git-clear", "config": "{\"path\": \"./out\", \"keep\": [1, 2]}"}]),
        );
        let prior = plan(&r, &written, &Value::Null).await.planned_state;
        let rewritten = config_for_steps(
            &r,
            json!([{"uses": "git-clear", "config": "{\"keep\":[1,2],\"path\":\"./out\"}"}]),
        );
        let p = plan(&r, &rewritten, &prior).await;
        assert_eq!(p.planned_state, prior);
        let changed = config_for_steps(
            &r,
            json!([{"uses": "git-clear", "config": "{\"keep\":[2,1],\"path\":\"./out\"}"}]),
        );
        let p = plan(&r, &changed, &prior).await;
        assert_ne!(p.planned_state, prior, "a real change is planned");
        assert!(p.requires_replace.is_empty());
    }

    #[test]
    fn schemas_describe_every_attribute() {
        crate::resources::common::assert_described(&resource::<PromotionTask>().schema().block);
        crate::resources::common::assert_described(
            &resource::<ClusterPromotionTask>().schema().block,
        );
        let config = resource::<PromotionTask>().schema();
        let config_attr = config
            .block
            .nested_block("steps")
            .and_then(|b| b.block.attribute("config"))
            .unwrap();
        assert!(
            config_attr.description.contains("$${{"),
            "how to write expressions in HCL"
        );
        assert!(
            config_attr
                .description
                .contains("rather than nested blocks"),
            "why it is a JSON string"
        );
    }

    #[test]
    fn kargo_errors_land_on_the_attribute_they_name() {
        let r = resource::<PromotionTask>();
        assert_eq!(
            r.attribute_for_field("spec.steps[3].config")
                .map(|p| p.to_string())
                .as_deref(),
            Some("steps[3].config")
        );
        assert_eq!(
            r.attribute_for_field("spec.vars[1].name")
                .map(|p| p.to_string())
                .as_deref(),
            Some("vars[1].name")
        );
    }
}
