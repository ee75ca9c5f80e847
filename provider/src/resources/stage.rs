//! `kargo_stage`: a Kargo Stage — which Freight it requests and from where, how it is promoted
//! and verified — plus the freight it currently holds and its health, read from its status.

use std::collections::BTreeMap;

use super::common::kargo_duration;
use super::convert::{ObjectResource, PipelineKind, Rules};
use super::promotion_task::{steps_block, validate_steps, vars_block};
use super::templates::{self, Pipeline};
use super::validators::{naming_path, object_name, removed, report};
use crate::duration::duration_eq;
use crate::kargo::{self, KargoClient};
use crate::plugin::schema::Validator;
use crate::plugin::validate::validators::{one_of, unique_strings};
use crate::plugin::{Attribute, AttributePath, Block, Diagnostics, NestedBlock, Value};
use crate::resolve::stage::{status_attributes, status_values};
use async_trait::async_trait;

/// The `kargo_stage` resource; construct with `StageResource::new(provider_data)`.
pub type StageResource = ObjectResource<Stage>;

/// Marker type describing Stages to [`ObjectResource`].
pub struct Stage;

static RULES: Rules = Rules {
    json: &["promotion_template.steps.config"],
    skip: &["promotion_mechanisms", "promotion_policy"],
    wrap: &[("promotion_template", "spec")],
    // Kargo reads a task reference without `kind` as a PromotionTask and stores it so.
    implied_default: &["promotion_template.steps.task.kind"],
    catch_all: &[],
    report: false,
};

/// `origin.kind`: Warehouse is the only origin Kargo v1 knows; the pre-v1 habit of naming
/// an upstream Stage here gets a pointer to `sources.stages`.
fn origin_kind() -> Validator {
    Validator::new("must be `Warehouse`", |v, path, diags| match v.as_str() {
        Some("Warehouse") | None => {}
        Some("Stage") => report(
            diags,
            path.clone(),
            "Invalid freight origin",
            "Freight always originates in a warehouse: set `kind = \"Warehouse\"` in the `origin` \
             block (or leave it unset) with the warehouse's name, and name the upstream stages the \
             freight must pass through in `sources.stages`.",
        ),
        Some(other) => report(
            diags,
            path.clone(),
            "Invalid freight origin",
            format!("{other:?} is not a freight origin; the only origin kind is \"Warehouse\"."),
        ),
    })
}

fn requested_freight() -> NestedBlock {
    let origin = Block::new(vec![
        Attribute::string("kind")
            .default(Value::string("Warehouse"))
            .validate(origin_kind())
            .description("Kind of the origin; always `Warehouse`. Default `Warehouse`."),
        Attribute::string("name")
            .required()
            .validate(object_name())
            .description("Name of the warehouse the freight comes from."),
    ]);
    let sources = Block::new(vec![
        Attribute::bool("direct").optional().description(
            "Accept freight straight from the warehouse, without it passing through another \
             stage. Default `false`.",
        ),
        Attribute::string_list("stages")
            .optional()
            .validate(unique_strings())
            .description("Upstream stages the freight must have been verified in first."),
        Attribute::string("required_soak_time")
            .optional()
            .validate(naming_path(kargo_duration()))
            .semantic_eq(duration_eq)
            .description(
                "How long freight must have stayed in an upstream stage (after verification) \
                 before it is available here, e.g. `1h` or `30m`. Equivalent spellings never \
                 show as changes.",
            ),
        Attribute::string("availability_strategy")
            .optional()
            .validate(one_of(&["All", "OneOf"]))
            .description(
                "With several upstream stages: `OneOf` (verified in any of them) or `All` \
                 (verified in all). Unset means `OneOf`.",
            ),
    ])
    .block(
        NestedBlock::single(
            "auto_promotion_options",
            Block::new(vec![
                Attribute::string("selection_policy")
                    .optional()
                    .validate(one_of(&["NewestFreight", "MatchUpstream"]))
                    .description(
                        "`NewestFreight` (promote the newest available freight) or \
                         `MatchUpstream` (promote what the single upstream stage holds; needs \
                         exactly one entry in `stages` and `direct` unset). Unset means \
                         `NewestFreight`.",
                    ),
            ]),
        )
        .description(
            "How auto-promotion picks freight, when the project's promotion policies enable it \
             for this stage.",
        ),
    );
    NestedBlock::list(
        "requested_freight",
        Block::default()
            .block(
                NestedBlock::single("origin", origin)
                    .required()
                    .description("Where the freight is produced."),
            )
            .block(
                NestedBlock::single("sources", sources)
                    .required()
                    .description(
                        "Where the stage may take this freight from: directly from the warehouse \
                         and/or from upstream stages.",
                    ),
            ),
    )
    .required()
    .description(
        "The freight this stage accepts: one block per warehouse, at least one. Together the \
         blocks describe the stage's place in the pipeline.",
    )
}

fn promotion_template() -> NestedBlock {
    NestedBlock::single(
        "promotion_template",
        Block::default()
            .block(vars_block(
                "Variables available to the steps as `vars.<name>`.",
                "Value; may contain expressions (write `$${{ ... }}` in HCL).",
            ))
            .block(steps_block(
                true,
                "The promotion steps, in order: one block per step, at least one. Each either \
                 names a step kind (`uses`) or runs a promotion task (a `task` block).",
            )),
    )
    .description(
        "How freight is promoted into this stage. A stage without one is a control-flow stage: \
         it only groups freight for the stages downstream and cannot be promoted to.",
    )
}

fn verification() -> NestedBlock {
    NestedBlock::single(
        "verification",
        Block::default()
            .block(
                NestedBlock::list(
                    "analysis_templates",
                    Block::new(vec![
                        Attribute::string("name")
                            .required()
                            .validate(object_name())
                            .description("Name of the Argo Rollouts analysis template."),
                        Attribute::string("kind")
                            .optional()
                            .validate(one_of(&["AnalysisTemplate", "ClusterAnalysisTemplate"]))
                            .description(
                                "`AnalysisTemplate` (in the project namespace) or \
                                 `ClusterAnalysisTemplate`. Unset means `AnalysisTemplate`.",
                            ),
                    ]),
                )
                .description(
                    "The Argo Rollouts analysis templates that verify freight in this stage, one \
                     block each.",
                ),
            )
            .block(
                NestedBlock::single(
                    "analysis_run_metadata",
                    Block::new(vec![
                        Attribute::string_map("labels")
                            .optional()
                            .description("Labels for the analysis runs."),
                        Attribute::string_map("annotations")
                            .optional()
                            .description("Annotations for the analysis runs."),
                    ]),
                )
                .description("Metadata added to the analysis runs Kargo creates."),
            )
            .block(
                NestedBlock::list(
                    "args",
                    Block::new(vec![
                        Attribute::string("name")
                            .required()
                            .description("Argument name."),
                        Attribute::string("value")
                            .required()
                            .description("Argument value."),
                    ]),
                )
                .description("Arguments passed to the analysis templates, one block each."),
            ),
    )
    .description(
        "How freight is verified after promotion, with Argo Rollouts analysis (which must be \
         installed).",
    )
}

#[async_trait]
impl PipelineKind for Stage {
    const TYPE_NAME: &'static str = "kargo_stage";
    type Object = kargo::Stage;

    fn description() -> String {
        "A Kargo stage: a step of the promotion pipeline (an environment such as `dev` or \
         `prod`). It requests freight from warehouses, directly or through upstream stages, and \
         promotes it with its promotion template.\n\nKargo's rules (each origin requested once, \
         `MatchUpstream` with exactly one upstream stage, unique step aliases, task steps \
         without `if`/`config`) are checked at plan time. Destroy waits until Kargo has \
         finished cleaning up the stage (its finalizer), bounded by `timeouts.delete`."
            .into()
    }

    fn spec() -> Block {
        let attributes = vec![
            Attribute::string("shard").optional().description(
                "The Kargo controller shard that reconciles this stage. Kargo mirrors it into the \
                 `kargo.akuity.io/shard` label. Unset: the default controller.",
            ),
            Attribute::dynamic("promotion_mechanisms")
                .optional()
                .deprecated("Removed in Kargo v1.0: use `promotion_template` steps.")
                .validate(removed(
                    "Removed attribute",
                    "Promotion mechanisms were removed in Kargo v1.0; use promotion_template steps \
                     (for example `git-clone`, `kustomize-set-image`, `git-commit`, `git-push` and \
                     `argocd-update`).",
                ))
                .description(
                    "Removed in Kargo v1.0: use `promotion_template` steps. Setting it is an error.",
                ),
            Attribute::dynamic("promotion_policy")
                .optional()
                .deprecated("Not a Kargo stage field: use `kargo_project.promotion_policies`.")
                .validate(removed(
                    "Not a stage setting",
                    "Auto-promotion is not configured on the stage: declare it in the project's \
                     promotion policies (`kargo_project.promotion_policies` blocks, stored in the \
                     ProjectConfig), and tune selection with \
                     `requested_freight[*].sources.auto_promotion_options`.",
                ))
                .description(
                    "Not a Kargo stage field: auto-promotion is set with \
                     `kargo_project.promotion_policies`. Setting it is an error.",
                ),
        ]
        .into_iter()
        .chain(status_attributes(
            "The freight the stage currently holds, as Kargo reports it (for a stage requesting \
             from several warehouses, the freight of the first `requested_freight` block). Null \
             until something has been promoted.",
        ))
        .collect();
        Block::new(attributes)
            .block(vars_block(
                "Variables available to the promotion steps as `vars.<name>`, one block each; the \
                 template's `vars` override them.",
                "Value; may contain expressions (write `$${{ ... }}` in HCL).",
            ))
            .block(requested_freight())
            .block(promotion_template())
            .block(verification())
    }

    fn rules() -> &'static Rules {
        &RULES
    }

    fn validate(config: &Value, diags: &mut Diagnostics) {
        validate_requested_freight(config.get("requested_freight"), diags);
        validate_steps(
            config.get("promotion_template").get("steps"),
            &AttributePath::attr("promotion_template").join_attr("steps"),
            diags,
        );
    }

    fn validate_in_pipeline(config: &Value, pipeline: &Pipeline, diags: &mut Diagnostics) {
        templates::validate_stage(config, pipeline, diags);
    }

    async fn status(
        client: &KargoClient,
        live: &kargo::Stage,
        prior: &Value,
    ) -> Vec<(&'static str, Value)> {
        status_values(client, live, prior).await
    }
}

/// Kargo's webhook rules for `requested_freight`: each origin once, and `MatchUpstream`
/// only with exactly one upstream stage and without `direct`. Unknown values are skipped.
fn validate_requested_freight(requests: &Value, diags: &mut Diagnostics) {
    let base = AttributePath::attr("requested_freight");
    let mut origins: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (i, request) in requests.elements().iter().enumerate() {
        let at = base.join_index(i);
        let origin = request.get("origin");
        let kind = match origin.get("kind") {
            Value::Null => Some("Warehouse"),
            k => k.as_str(),
        };
        if let (Some(kind), Some(name)) = (kind, origin.get("name").as_str()) {
            let key = (kind.to_string(), name.to_string());
            if let Some(first) = origins.get(&key) {
                report(
                    diags,
                    at.join_attr("origin"),
                    "Duplicate freight origin",
                    format!(
                        "Freight from {kind} {name:?} is already requested by \
                         `requested_freight[{first}]`; request each origin once and list all its \
                         sources there."
                    ),
                );
            } else {
                origins.insert(key, i);
            }
        }
        let sources = request.get("sources");
        let at = at.join_attr("sources");
        let policy = sources
            .get("auto_promotion_options")
            .get("selection_policy");
        if policy.as_str() != Some("MatchUpstream") {
            continue;
        }
        if sources.get("direct").as_bool() == Some(true) {
            report(
                diags,
                at.join_attr("direct"),
                "Conflicting freight sources",
                "The `MatchUpstream` selection policy promotes what the upstream stage holds, so it \
                 cannot be combined with `direct = true`.",
            );
        }
        let stages = sources.get("stages");
        if !stages.is_unknown() && stages.elements().len() != 1 {
            report(
                diags,
                at.join_attr("stages"),
                "MatchUpstream needs one upstream stage",
                format!(
                    "The `MatchUpstream` selection policy needs exactly one upstream stage in \
                     `stages`; {} listed.",
                    match stages.elements().len() {
                        0 => "none is".to_string(),
                        n => format!("{n} are"),
                    }
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value as Json, json};

    use super::*;
    use crate::kargo::types::test_support::stage;
    use crate::plugin::Resource as _;
    use crate::resolve::values::stage_freight_value;
    use crate::resources::convert::test_support::*;

    /// `kargo_stage.current_freight` of `live` as a refresh after `prior` reads it.
    async fn current_freight_value(client: &KargoClient, live: &Json, prior: &Value) -> Value {
        stage_freight_value(client, &stage(live.clone()), None, prior).await
    }

    const QUICKSTART: &str = "akuity_kargo__docs_docs_20-quickstart_index.yaml";
    const DOKA: &str = "thatmlopsguy_dokaseca-addons__kargo_rustfs_stages.yaml";
    const LEGACY: &str = "thatmlopsguy_dokaseca-control-plane__docs_rfc_0001-gitops-promotion-with-kargo.LEGACY.yaml";

    /// Plans `config`, checks the object sent equals the fixture's (after Kargo's defaults)
    /// and that nothing drifts afterwards.
    async fn assert_matches_fixture(
        r: &StageResource,
        config: Json,
        file: &str,
        project: &str,
        name: &str,
    ) {
        let config = super::super::convert::test_support::config(r, config);
        assert!(
            validate(r, &config).is_empty(),
            "{name}: {:?}",
            validate(r, &config)
        );
        let planned = plan(r, &config, &Value::Null).await.planned_state;
        let body = r.body(&planned).unwrap();
        let expected = fixture(file, "Stage", name);
        assert_eq!(
            body["spec"],
            with_kargo_defaults("Stage", &expected["spec"]),
            "{name}"
        );
        let expected_annotations = expected["metadata"].get("annotations").cloned();
        assert_eq!(
            body["metadata"].get("annotations").cloned(),
            expected_annotations,
            "{name}"
        );
        let live = stored("Stage", Some(project), name, &body, json!({}));
        assert_no_drift(r, &config, &live, &format!("{project}/{name}")).await;
    }

    #[tokio::test]
    async fn quickstart_stages_match_the_fixture() {
        if !crate::resources::convert::test_support::fixtures_present() {
            return;
        }
        let r = resource::<Stage>();
        for (name, sources) in [
            ("test", json!({"direct": true})),
            ("uat", json!({"stages": ["test"]})),
            ("prod", json!({"stages": ["uat"]})),
        ] {
            let config = json!({
                "project": "kargo-demo",
                "name": name,
                "requested_freight": [{"origin": {"name": "kargo-demo"}, "sources": sources}],
                "promotion_template": {"steps": [{"task": {"name": "demo-promo-process"}, "as": "promo-process"}]},
            });
            assert_matches_fixture(&r, config, QUICKSTART, "kargo-demo", name).await;
        }
    }

    #[tokio::test]
    async fn dokaseca_stages_match_the_fixture() {
        if !crate::resources::convert::test_support::fixtures_present() {
            return;
        }
        let r = resource::<Stage>();
        let stages = [
            (
                "dev",
                "green",
                None,
                ("environment", "dev"),
                "addon-version-promote",
            ),
            (
                "stg",
                "yellow",
                Some("dev"),
                ("environment", "stg"),
                "addon-version-promote",
            ),
            (
                "prod",
                "red",
                Some("stg"),
                ("environment", "prod"),
                "addon-version-promote",
            ),
            (
                "prod-apac",
                "red",
                Some("prod"),
                ("region", "apac"),
                "addon-version-promote-region",
            ),
            (
                "prod-eu",
                "red",
                Some("prod"),
                ("region", "eu"),
                "addon-version-promote-region",
            ),
            (
                "prod-us",
                "red",
                Some("prod"),
                ("region", "us"),
                "addon-version-promote-region",
            ),
            (
                "prod-local",
                "red",
                Some("prod"),
                ("region", "local"),
                "addon-version-promote-region",
            ),
        ];
        for (name, color, upstream, (var, value), task) in stages {
            let sources = match upstream {
                None => json!({"direct": true}),
                Some(stage) => json!({"stages": [stage]}),
            };
            let config = json!({
                "project": "rustfs-addon",
                "name": name,
                "annotations": {"kargo.akuity.io/color": color},
                "requested_freight": [{
                    "origin": {"kind": "Warehouse", "name": "rustfs-charts"},
                    "sources": sources,
                }],
                "promotion_template": {
                    "vars": [{"name": "openPR", "value": "true"}, {"name": var, "value": value}],
                    "steps": [{"task": {"name": task}}],
                },
            });
            assert_matches_fixture(&r, config, DOKA, "rustfs-addon", name).await;
        }
    }

    fn full_config() -> Json {
        json!({
            "project": "shop",
            "name": "prod",
            "labels": {"tier": "production"},
            "shard": "eu-1",
            "vars": [{"name": "gitRepo", "value": "https://github.com/acme/deploy.git"}],
            "requested_freight": [
                {
                    "origin": {"name": "api"},
                    "sources": {
                        "stages": ["staging"],
                        "required_soak_time": "1h",
                        "availability_strategy": "All",
                        "auto_promotion_options": {"selection_policy": "MatchUpstream"},
                    },
                },
                {"origin": {"name": "web"}, "sources": {"direct": true, "stages": ["staging", "qa"]}},
            ],
            "promotion_template": {
                "vars": [{"name": "branch", "value": "stage/${{ ctx.stage }}"}],
                "steps": [
                    {
                        "uses": "git-clone",
                        "as": "clone",
                        "config": jsonencode(json!({
                            "repoURL": "${{ vars.gitRepo }}",
                            "checkout": [{"branch": "main", "path": "./src"}],
                        })),
                    },
                    {
                        "uses": "argocd-update",
                        "if": "${{ outputs.clone != nil }}",
                        "continue_on_error": true,
                        "retry": {"timeout": "90s", "error_threshold": 3},
                        "vars": [{"name": "app", "value": "shop-prod"}],
                        "config": jsonencode(json!({"apps": [{"name": "${{ vars.app }}"}]})),
                    },
                    {"task": {"name": "notify", "kind": "ClusterPromotionTask"}, "as": "notify", "vars": [{"name": "channel"}]},
                ],
            },
            "verification": {
                "analysis_templates": [{"name": "smoke"}, {"name": "slo", "kind": "ClusterAnalysisTemplate"}],
                "analysis_run_metadata": {"labels": {"team": "shop"}, "annotations": {"owner": "sre"}},
                "args": [{"name": "service", "value": "api"}],
            },
        })
    }

    #[tokio::test]
    async fn every_field_round_trips_and_durations_keep_their_spelling() {
        let r = resource::<Stage>();
        let config = config(&r, full_config());
        assert!(
            validate(&r, &config).is_empty(),
            "{:?}",
            validate(&r, &config)
        );
        let planned = plan(&r, &config, &Value::Null).await.planned_state;
        let body = r.body(&planned).unwrap();
        assert_eq!(
            body["spec"],
            json!({
                "shard": "eu-1",
                "vars": [{"name": "gitRepo", "value": "https://github.com/acme/deploy.git"}],
                "requestedFreight": [
                    {
                        "origin": {"kind": "Warehouse", "name": "api"},
                        "sources": {
                            "stages": ["staging"],
                            "requiredSoakTime": "1h",
                            "availabilityStrategy": "All",
                            "autoPromotionOptions": {"selectionPolicy": "MatchUpstream"},
                        },
                    },
                    {"origin": {"kind": "Warehouse", "name": "web"}, "sources": {"direct": true, "stages": ["staging", "qa"]}},
                ],
                "promotionTemplate": {"spec": {
                    "vars": [{"name": "branch", "value": "stage/${{ ctx.stage }}"}],
                    "steps": [
                        {
                            "uses": "git-clone",
                            "as": "clone",
                            "config": {"repoURL": "${{ vars.gitRepo }}", "checkout": [{"branch": "main", "path": "./src"}]},
                        },
                        {
                            "uses": "argocd-update",
                            "if": "${{ outputs.clone != nil }}",
                            "continueOnError": true,
                            "retry": {"timeout": "90s", "errorThreshold": 3},
                            "vars": [{"name": "app", "value": "shop-prod"}],
                            "config": {"apps": [{"name": "${{ vars.app }}"}]},
                        },
                        {"task": {"name": "notify", "kind": "ClusterPromotionTask"}, "as": "notify", "vars": [{"name": "channel"}]},
                    ],
                }},
                "verification": {
                    "analysisTemplates": [{"name": "smoke"}, {"name": "slo", "kind": "ClusterAnalysisTemplate"}],
                    "analysisRunMetadata": {"labels": {"team": "shop"}, "annotations": {"owner": "sre"}},
                    "args": [{"name": "service", "value": "api"}],
                },
            })
        );
        let status = json!({
            "health": {"status": "Healthy"},
            "autoPromotionEnabled": true,
            "freightHistory": [{
                "id": "c0ffee",
                "items": {
                    "Warehouse/web": {"name": "f-web", "origin": {"kind": "Warehouse", "name": "web"}},
                    "Warehouse/api": {
                        "name": "f-api",
                        "origin": {"kind": "Warehouse", "name": "api"},
                        "images": [{"repoURL": "ghcr.io/acme/api", "tag": "1.4.0", "digest": "sha256:abc"}],
                        "commits": [{"repoURL": "https://github.com/acme/deploy.git", "id": "deadbeef", "branch": "main"}],
                    },
                },
            }],
        });
        let live = stored("Stage", Some("shop"), "prod", &body, status);
        assert_eq!(
            live["spec"]["requestedFreight"][0]["sources"]["requiredSoakTime"],
            "1h0m0s"
        );
        assert_eq!(
            live["spec"]["promotionTemplate"]["spec"]["steps"][1]["retry"]["timeout"],
            "1m30s"
        );
        let state = assert_no_drift(&r, &config, &live, "shop/prod").await;
        let soak = state.get("requested_freight").elements()[0]
            .get("sources")
            .get("required_soak_time");
        assert_eq!(soak, &s("1h"));
        assert_eq!(state.get("health"), &s("Healthy"));
        assert_eq!(state.get("auto_promotion_enabled"), &Value::Bool(true));
        let current = state.get("current_freight");
        assert_eq!(
            current.get("name"),
            &s("f-api"),
            "the first requested origin's freight"
        );
        assert_eq!(current.get("warehouse"), &s("api"));
        // The offline client cannot fetch the Freight, so its alias stays unknown to us.
        assert_eq!(current.get("alias"), &Value::Null);
        let image = &current.get("artifacts").get("images").elements()[0];
        assert_eq!(image.get("tag"), &s("1.4.0"));
        assert_eq!(image.get("repo_url"), &s("ghcr.io/acme/api"));
        let commit = &current.get("artifacts").get("commits").elements()[0];
        assert_eq!(commit.get("id"), &s("deadbeef"));
        assert_eq!(commit.get("tag"), &Value::Null);
    }

    #[tokio::test]
    async fn the_freight_alias_is_reused_while_the_freight_is_unchanged() {
        let client = offline_client();
        let live = json!({
            "metadata": {"namespace": "shop", "name": "prod"},
            "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "api"}}]},
            "status": {"freightHistory": [{"items": {"Warehouse/api": {"name": "f1", "origin": {"kind": "Warehouse", "name": "api"}}}}]},
        });
        let prior = Value::object([("name", s("f1")), ("alias", s("frozen-fox"))]);
        let current = current_freight_value(&client, &live, &prior).await;
        assert_eq!(current.get("alias"), &s("frozen-fox"));
        let other = Value::object([("name", s("f0")), ("alias", s("old-owl"))]);
        let current = current_freight_value(&client, &live, &other).await;
        assert_eq!(current.get("name"), &s("f1"));
        assert_eq!(
            current.get("alias"),
            &Value::Null,
            "a different freight's alias is not reused"
        );
        let empty = json!({"metadata": {"namespace": "shop"}, "status": {"freightHistory": []}});
        assert_eq!(
            current_freight_value(&client, &empty, &prior).await,
            Value::Null
        );
    }

    fn stage_errors(changes: &[(&str, Json)]) -> Vec<(String, String, String)> {
        let r = resource::<Stage>();
        let mut base = json!({
            "project": "p",
            "name": "s",
            "requested_freight": [{"origin": {"name": "w"}, "sources": {"direct": true}}],
            "promotion_template": {"steps": [{"uses": "git-clear", "config": jsonencode(json!({"path": "./out"}))}]},
        });
        for (pointer, value) in changes {
            *base.pointer_mut(pointer).unwrap() = value.clone();
        }
        errors(&validate(&r, &config(&r, base)))
    }

    fn paths(errors: &[(String, String, String)]) -> Vec<&str> {
        errors.iter().map(|(p, _, _)| p.as_str()).collect()
    }

    #[test]
    fn a_step_runs_exactly_one_of_uses_and_task() {
        let found = stage_errors(&[(
            "/promotion_template/steps",
            json!([{"uses": "git-clone", "task": {"name": "t"}}, {"as": "nothing"}, {"uses": ""}]),
        )]);
        assert_eq!(
            paths(&found),
            vec![
                "promotion_template.steps[0].task",
                "promotion_template.steps[1]",
                "promotion_template.steps[2].uses",
            ]
        );
        assert!(found[0].2.contains("\"uses\", \"task\""), "{}", found[0].2);
    }

    #[test]
    fn task_steps_refuse_step_settings() {
        let found = stage_errors(&[(
            "/promotion_template/steps",
            json!([{
                "task": {"name": "t", "kind": "Task"},
                "if": "${{ true }}",
                "config": "{}",
                "continue_on_error": false,
                "retry": {"timeout": "soon"},
            }]),
        )]);
        assert_eq!(
            paths(&found),
            vec![
                "promotion_template.steps[0].task.kind",
                "promotion_template.steps[0].retry.timeout",
                "promotion_template.steps[0].if",
                "promotion_template.steps[0].config",
                "promotion_template.steps[0].continue_on_error",
                "promotion_template.steps[0].retry",
            ]
        );
        assert!(found[2].2.contains("cannot have an `if` condition"));
    }

    #[test]
    fn aliases_are_unique_and_not_reserved() {
        let found = stage_errors(&[(
            "/promotion_template/steps",
            json!([
                {"uses": "git-clear", "as": "clone", "config": jsonencode(json!({"path": "./out"}))},
                {"uses": "git-push", "as": "clone", "config": jsonencode(json!({"path": "./out"}))},
                {"uses": "git-commit", "as": "step-3", "config": jsonencode(json!({"path": "./out", "message": "m"}))},
                {"task": {"name": "t"}, "as": "task-0"},
            ]),
        )]);
        assert_eq!(
            paths(&found),
            vec![
                "promotion_template.steps[1].as",
                "promotion_template.steps[2].as",
                "promotion_template.steps[3].as",
            ]
        );
        assert!(found[0].2.contains("already the alias of step 0"));
        assert_eq!(found[1].1, "Reserved step alias");
    }

    #[test]
    fn freight_requests_follow_kargo_rules() {
        let found = stage_errors(&[(
            "/requested_freight",
            json!([
                {"origin": {"name": "w"}, "sources": {"direct": true, "auto_promotion_options": {"selection_policy": "MatchUpstream"}}},
                {"origin": {"kind": "Warehouse", "name": "w"}, "sources": {"stages": ["a", "b"], "auto_promotion_options": {"selection_policy": "MatchUpstream"}}},
                {"origin": {"name": "x"}, "sources": {"stages": ["a", "a"], "required_soak_time": "1d", "availability_strategy": "Any"}},
            ]),
        )]);
        assert_eq!(
            paths(&found),
            vec![
                "requested_freight[2].sources.stages[1]",
                "requested_freight[2].sources.required_soak_time",
                "requested_freight[2].sources.availability_strategy",
                "requested_freight[0].sources.direct",
                "requested_freight[0].sources.stages",
                "requested_freight[1].origin",
                "requested_freight[1].sources.stages",
            ]
        );
        assert!(
            found[5]
                .2
                .contains("already requested by `requested_freight[0]`")
        );
        assert!(found[6].2.contains("2 are listed"), "{}", found[6].2);
        let found = stage_errors(&[("/requested_freight", json!([]))]);
        assert_eq!(paths(&found), vec!["requested_freight"]);
    }

    #[test]
    fn unknown_values_are_accepted_at_plan() {
        let r = resource::<Stage>();
        let mut config = config(
            &r,
            json!({
                "project": "p",
                "name": "s",
                "requested_freight": [{
                    "origin": {"name": "w"},
                    "sources": {"direct": true, "auto_promotion_options": {"selection_policy": "MatchUpstream"}},
                }],
                "promotion_template": {"steps": [{"task": {"name": "t"}}, {"uses": "git-push"}]},
            }),
        );
        // `direct` and the steps' aliases are only known at apply.
        let mut request = config.get("requested_freight").elements()[0].clone();
        let mut sources = request.get("sources").clone();
        sources.set("direct", Value::Unknown);
        sources.set("stages", Value::Unknown);
        request.set("sources", sources);
        config.set("requested_freight", Value::List(vec![request]));
        let mut template = config.get("promotion_template").clone();
        let mut steps = template.get("steps").elements().to_vec();
        steps[0].set("if", Value::Unknown);
        steps[1].set("as", Value::Unknown);
        steps[1].set("uses", Value::Unknown);
        template.set("steps", Value::List(steps));
        config.set("promotion_template", template);
        assert!(
            validate(&r, &config).is_empty(),
            "{:?}",
            validate(&r, &config)
        );
        config.set("promotion_template", Value::Unknown);
        config.set("requested_freight", Value::Unknown);
        assert!(validate(&r, &config).is_empty());
    }

    #[test]
    fn a_stage_without_a_template_is_a_valid_control_flow_stage() {
        let r = resource::<Stage>();
        let config = config(
            &r,
            json!({"project": "p", "name": "gate", "requested_freight": [{"origin": {"name": "w"}, "sources": {"stages": ["dev"]}}]}),
        );
        assert!(validate(&r, &config).is_empty());
    }

    #[test]
    fn the_legacy_stages_are_rejected_with_their_replacements() {
        if !crate::resources::convert::test_support::fixtures_present() {
            return;
        }
        let r = resource::<Stage>();
        let mechanisms = |path: &str| {
            json!({"gitRepoUpdates": [{
                "repoURL": "https://github.com/dokaseca/manifests",
                "writeBranch": "main",
                "kustomize": {"images": [{"image": "ghcr.io/dokaseca/my-app", "path": path}]},
            }]})
        };
        for name in ["dev", "staging", "production"] {
            let legacy = fixture(LEGACY, "Stage", name);
            assert!(
                legacy["spec"].get("promotionMechanisms").is_some(),
                "{name}"
            );
        }
        // dev: promotion mechanisms.
        let dev = config(
            &r,
            json!({
                "name": "dev",
                "requested_freight": [{"origin": {"kind": "Warehouse", "name": "my-app-warehouse"}, "sources": {"direct": true}}],
                "promotion_mechanisms": mechanisms("apps/my-app/envs/dev"),
            }),
        );
        let found = errors(&validate(&r, &dev));
        assert_eq!(paths(&found), vec!["project", "promotion_mechanisms"]);
        assert!(
            found[1].2.to_lowercase().contains(
                "promotion mechanisms were removed in kargo v1.0; use promotion_template steps"
            ),
            "{}",
            found[1].2
        );
        // staging: freight "from a Stage", plus mechanisms.
        let staging = config(
            &r,
            json!({
                "project": "my-app",
                "name": "staging",
                "requested_freight": [{"origin": {"kind": "Stage", "name": "dev"}, "sources": {"stages": ["dev"]}}],
                "verification": {"analysis_templates": [{"name": "dev-health-check"}]},
                "promotion_mechanisms": mechanisms("apps/my-app/envs/staging"),
            }),
        );
        let found = errors(&validate(&r, &staging));
        // Attributes are checked before blocks.
        assert_eq!(
            paths(&found),
            vec!["promotion_mechanisms", "requested_freight[0].origin.kind"]
        );
        assert!(found[1].2.contains("sources.stages"), "{}", found[1].2);
        // production: a promotion policy on the stage.
        let production = config(
            &r,
            json!({
                "project": "my-app",
                "name": "production",
                "requested_freight": [{"origin": {"kind": "Stage", "name": "staging"}, "sources": {"stages": ["staging"]}}],
                "promotion_policy": {"autoPromotionEnabled": false},
                "promotion_mechanisms": mechanisms("apps/my-app/envs/production"),
            }),
        );
        let found = errors(&validate(&r, &production));
        assert_eq!(
            paths(&found),
            vec![
                "promotion_mechanisms",
                "promotion_policy",
                "requested_freight[0].origin.kind",
            ]
        );
        assert!(
            found[1].2.contains("kargo_project.promotion_policies"),
            "{}",
            found[1].2
        );
    }

    #[test]
    fn kargo_errors_land_on_the_attribute_they_name() {
        let r = resource::<Stage>();
        for (field, expected) in [
            (
                "spec.requestedFreight[0].sources.stages",
                "requested_freight[0].sources.stages",
            ),
            ("spec.requestedFreight", "requested_freight"),
            (
                "spec.promotionTemplate.spec.steps[1].task.name",
                "promotion_template.steps[1].task.name",
            ),
            (
                "spec.promotionTemplate.spec.steps[0].config",
                "promotion_template.steps[0].config",
            ),
            (
                "spec.promotionTemplate.spec.steps[2].if",
                "promotion_template.steps[2].if",
            ),
            (
                "spec.promotionTemplate.spec.steps[0].retry.errorThreshold",
                "promotion_template.steps[0].retry.error_threshold",
            ),
            (
                "spec.verification.analysisRunMetadata.labels",
                "verification.analysis_run_metadata.labels",
            ),
            ("spec.vars[0].name", "vars[0].name"),
            ("metadata.name", "name"),
        ] {
            assert_eq!(
                r.attribute_for_field(field)
                    .map(|p| p.to_string())
                    .as_deref(),
                Some(expected),
                "{field}"
            );
        }
    }

    #[tokio::test]
    async fn a_kargo_denial_becomes_a_diagnostic_on_the_attribute() {
        use crate::kargo::Error as KargoError;
        use crate::kargo::error::Cause;
        let r = resource::<Stage>();
        let err = KargoError::Invalid {
            what: "Stage \"shop/prod\"".into(),
            message: "admission webhook \"stage.kargo.akuity.io\" denied the request: ...".into(),
            causes: vec![Cause {
                field: "spec.requestedFreight[1].sources.stages".into(),
                message: "MatchUpstream requires exactly one upstream stage".into(),
                reason: "FieldValueInvalid".into(),
            }],
        };
        let diags = r.error("update the Stage", &err);
        let found = errors(&diags);
        assert_eq!(paths(&found), vec!["requested_freight[1].sources.stages"]);
        assert_eq!(found[0].1, "Failed to update the Stage");
        assert!(
            found[0]
                .2
                .contains("MatchUpstream requires exactly one upstream stage")
        );
    }

    #[test]
    fn schema_describes_every_attribute() {
        crate::resources::common::assert_described(&resource::<Stage>().schema().block);
    }
}
