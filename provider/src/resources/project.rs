//! `kargo_project`: a Kargo Project (cluster-scoped, owns a namespace) and the parts of its
//! ProjectConfig a pipeline needs (promotion policies, webhook receivers, deep links).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value as Json, json};

use super::common::{
    self, IMPORTING, PROJECT_LABEL, dns_label, explain, fail, managed_map, no_field,
    object_timeouts_block, timeout,
};
use super::convert::{
    ConvertError, FieldStep, Rules, empty_strings_are_unset, field_to_attribute_path,
    object_from_json, object_to_json, parse_field,
};
use super::validators::{naming_path, not_empty, object_name, report};
use crate::config::ProviderData;
use crate::kargo::{
    Error as KargoError, JsonObject, KargoClient, Namespace, Object as _, ObjectMeta, Project,
    ProjectConfig, condition,
};
use crate::plugin::plan::{changed_ignoring_computed, plan_from_schema, values_equal};
use crate::plugin::schema::Validator;
use crate::plugin::validate::validators::{exactly_one_of, one_of};
use crate::plugin::{
    ApplyResult, Attribute, AttributePath, Block, Context, Diagnostic, Diagnostics, ImportResult,
    NestedBlock, PlanRequest, PlanResponse, ReadResult, Resource, Schema, Value,
};

const KEEP_NAMESPACE_ANNOTATION: &str = "kargo.akuity.io/keep-namespace";
const CREATE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How long an apply waits for Kargo to publish the receivers' URLs. Kargo computes them in
/// seconds once the Secrets exist; longer means something is missing, which a warning names.
const RECEIVER_URL_TIMEOUT: Duration = Duration::from_secs(60);

/// The ProjectConfig's blocks map onto its fields one to one.
static RULES: Rules = Rules {
    json: &[],
    skip: &[],
    wrap: &[],
    implied_default: &[],
    catch_all: &[],
    report: false,
};

/// The ProjectConfig lists, in schema order; each is managed only when written.
const CONFIG_BLOCKS: [&str; 4] = [
    "promotion_policies",
    "webhook_receivers",
    "freight_links",
    "stage_links",
];

/// One kind of webhook receiver: its attribute (and Kargo key), the platform, the data key of
/// the Secret Kargo reads and what that value is for.
struct ReceiverType {
    key: &'static str,
    platform: &'static str,
    secret_key: &'static str,
    secret_use: &'static str,
}

const SIGNING: &str = "the shared secret the platform signs its deliveries with; enter the same \
value when registering the webhook there";
const URL_ONLY: &str = "any hard-to-guess value: it is never sent to the platform, Kargo only \
mixes it into the receiver's URL, which then acts as the shared secret";

const RECEIVER_TYPES: [ReceiverType; 10] = [
    ReceiverType {
        key: "github",
        platform: "GitHub (repository and organization push events, and packages published to \
                   GitHub Container Registry)",
        secret_key: "secret",
        secret_use: SIGNING,
    },
    ReceiverType {
        key: "gitlab",
        platform: "GitLab",
        secret_key: "secret-token",
        secret_use: "the secret token entered when registering the webhook in GitLab",
    },
    ReceiverType {
        key: "bitbucket",
        platform: "Bitbucket",
        secret_key: "secret",
        secret_use: SIGNING,
    },
    ReceiverType {
        key: "dockerhub",
        platform: "Docker Hub",
        secret_key: "secret",
        secret_use: URL_ONLY,
    },
    ReceiverType {
        key: "quay",
        platform: "Quay",
        secret_key: "secret",
        secret_use: URL_ONLY,
    },
    ReceiverType {
        key: "harbor",
        platform: "Harbor",
        secret_key: "auth-header",
        secret_use: "the auth header value entered when registering the webhook in Harbor",
    },
    ReceiverType {
        key: "artifactory",
        platform: "JFrog Artifactory",
        secret_key: "secret-token",
        secret_use: "the secret token entered when registering the webhook in Artifactory",
    },
    ReceiverType {
        key: "azure",
        platform: "Azure Container Registry and Azure DevOps",
        secret_key: "secret",
        secret_use: URL_ONLY,
    },
    ReceiverType {
        key: "gitea",
        platform: "Gitea",
        secret_key: "secret",
        secret_use: SIGNING,
    },
    ReceiverType {
        key: "generic",
        platform: "any sender that can POST JSON",
        secret_key: "secret",
        secret_use: URL_ONLY,
    },
];

pub struct ProjectResource {
    data: ProviderData,
}

impl ProjectResource {
    pub fn new(data: ProviderData) -> Self {
        Self { data }
    }
}

/// `match_labels` and `match_expressions` blocks, as in a Kubernetes label selector.
fn label_selector(what: &str) -> Block {
    Block::new(vec![
        Attribute::string_map("match_labels")
            .optional()
            .description(format!("{what} whose labels include all of these match.")),
    ])
    .block(
        NestedBlock::list(
            "match_expressions",
            Block::new(vec![
                Attribute::string("key")
                    .required()
                    .description("Label key."),
                Attribute::string("operator")
                    .required()
                    .description("One of `In`, `NotIn`, `Exists`, `DoesNotExist`.")
                    .validate(one_of(&["In", "NotIn", "Exists", "DoesNotExist"])),
                Attribute::string_list("values").optional().description(
                    "Values for `In` and `NotIn`; must be empty for `Exists` and `DoesNotExist`.",
                ),
            ]),
        )
        .validate(match_expression_values())
        .description("Label selector requirements, one block each; all must hold."),
    )
}

fn stage_selector() -> NestedBlock {
    let mut selector = label_selector("Stages");
    selector.attributes.insert(
        0,
        Attribute::string("name").optional().description(
            "Stage name to match: an exact name, `regex:<expression>` or `glob:<pattern>`.",
        ),
    );
    NestedBlock::single("stage_selector", selector)
        .required()
        .description("Which stages this policy applies to.")
}

fn promotion_policies_block() -> NestedBlock {
    NestedBlock::list(
        "promotion_policies",
        Block::new(vec![
            Attribute::bool("auto_promotion_enabled")
                .default(Value::Bool(false))
                .description("Whether Kargo promotes new freight into the matching stages automatically. Default `false`."),
        ])
        .block(stage_selector()),
    )
    .description("Auto-promotion policies, one block each, stored in the project's ProjectConfig. Without any, the ProjectConfig's policies are left to whoever else sets them.")
}

fn secret_ref_block(t: &ReceiverType) -> NestedBlock {
    NestedBlock::single(
        "secret_ref",
        Block::new(vec![
            Attribute::string("name")
                .required()
                .validate(object_name())
                .description("Name of the Secret, in the project's namespace."),
        ]),
    )
    .required()
    .description(format!(
        "The Secret Kargo reads this receiver's token from. It must be in the project's \
         namespace (create it yourself, e.g. with `kubernetes_secret`) and hold, under the data \
         key `{}`, {}. Its value is part of the receiver's URL: changing it changes the URL.",
        t.secret_key, t.secret_use
    ))
}

fn receiver_type_block(t: &ReceiverType) -> NestedBlock {
    let mut block = Block::default().block(secret_ref_block(t));
    let what = match t.key {
        "artifactory" => {
            block.attributes.push(Attribute::string("virtual_repo_name").optional().description(
                "The virtual repository warehouses subscribe through. Artifactory reports the \
                 local repository an artifact was pushed to; when warehouses use a virtual \
                 repository that aggregates it, set its name here so the receiver finds them.",
            ));
            "it refreshes the warehouses subscribed to the repository the event names"
        }
        "generic" => {
            block = block.block(generic_actions_block());
            "`actions` say which warehouses to refresh and when"
        }
        _ => "it refreshes the warehouses subscribed to the repository the event names",
    };
    NestedBlock::single(t.key, block).description(format!(
        "A receiver for webhooks from {}: {what}. Exactly one receiver type is set per \
         receiver.",
        t.platform
    ))
}

fn generic_actions_block() -> NestedBlock {
    let target = Block::new(vec![
        Attribute::string("kind")
            .default(Value::string("Warehouse"))
            .validate(one_of(&["Warehouse"]))
            .description("Kind of the objects to act on: `Warehouse` (the only kind Kargo v1.11 accepts). Default `Warehouse`."),
        Attribute::string("name").optional().description(
            "Name of the warehouse; static or an expression on the request such as \
             `$${{ request.body.repository.name }}`.",
        ),
    ])
    .block(
        NestedBlock::single("label_selector", label_selector("Warehouses"))
            .description("Selects warehouses by their labels."),
    )
    .block(
        NestedBlock::single(
            "index_selector",
            Block::default().block(
                NestedBlock::list(
                    "match_indices",
                    Block::new(vec![
                        Attribute::string("key")
                            .required()
                            .validate(one_of(&["subscribedURLs", "receiverPaths"]))
                            .description("The index: `subscribedURLs` (warehouses by the repository URLs they subscribe to) or `receiverPaths`."),
                        Attribute::string("operator")
                            .required()
                            .validate(one_of(&["Equals", "NotEquals"]))
                            .description("`Equals` or `NotEquals`."),
                        Attribute::string("value").required().description(
                            "The value to compare with; static or an expression such as \
                             `$${{ normalizeGit(request.body.repository.url) }}`.",
                        ),
                    ]),
                )
                .required()
                .description("Index requirements, one block each, at least one; all must hold."),
            ),
        )
        .description("Selects warehouses by values in indices Kargo maintains."),
    )
    .validate(target_selects_something());
    NestedBlock::list(
        "actions",
        Block::new(vec![
            Attribute::string("action")
                .default(Value::string("Refresh"))
                .validate(one_of(&["Refresh"]))
                .description("What to do: `Refresh` (the only action Kargo has) makes the selected warehouses look for new artifacts at once. Default `Refresh`."),
            Attribute::string("when_expression").optional().description(
                "An expression on the request that must be true for the action to run, e.g. \
                 `request.header('X-Event-Type') == 'push'`. Unset: the action always runs.",
            ),
            Attribute::string_map("parameters").optional().description(
                "Action-specific parameters; values are static or expressions on the request \
                 (write `$${{ ... }}` in HCL).",
            ),
        ])
        .block(
            NestedBlock::list("target_selection_criteria", target).description(
                "Which objects the action applies to, one block per criterion. Within one \
                 criterion, `name`, `label_selector` and `index_selector` must all match; at \
                 least one is set.",
            ),
        ),
    )
    .description(
        "What the receiver does with a request, one block per action. Expressions (Kargo's \
         `${{ ... }}`, written `$${{ ... }}` in HCL) can read `request.body`, \
         `request.header(name)`, `request.headers(name)` and `request.params(name)`.",
    )
}

fn webhook_receivers_block() -> NestedBlock {
    let mut block = Block::new(vec![
        Attribute::string("name")
            .required()
            .validate(object_name())
            .description("Name of the receiver, unique within the project: a DNS-1123 subdomain. Part of its URL."),
        Attribute::string("path")
            .computed()
            .sensitive()
            .description("The path of the receiver's endpoint on Kargo's webhook server, as Kargo publishes it. Sensitive: for most receiver types knowing it is enough to trigger the receiver."),
        Attribute::string("url")
            .computed()
            .sensitive()
            .description("The full URL to register with the platform, as Kargo publishes it. Known after apply once the Secret exists (null until then); it changes when the receiver's name, type, Secret or Secret value changes. Sensitive: for most receiver types knowing it is enough to trigger the receiver."),
    ]);
    for t in &RECEIVER_TYPES {
        block = block.block(receiver_type_block(t));
    }
    let keys: Vec<&str> = RECEIVER_TYPES.iter().map(|t| t.key).collect();
    NestedBlock::list("webhook_receivers", block)
        .validate(naming_path(exactly_one_of(&keys)))
        .description(
            "Webhook receivers, one block each, stored in the project's ProjectConfig: endpoints \
             on Kargo's webhook server that platforms (GitHub, GHCR, Docker Hub, …) call on a \
             push so the warehouses subscribed to the pushed repository look for new freight at \
             once instead of at their next interval. Each receiver has a `name` and exactly one \
             type block. Each reads a token from a Secret you create in the project's namespace; \
             `url` (and `webhook_receiver_urls`) give the address to register once Kargo has \
             published it.",
        )
}

fn link_block(name: &str, object: &str) -> NestedBlock {
    NestedBlock::list(
        name,
        Block::new(vec![
            Attribute::string("title")
                .required()
                .validate(not_empty())
                .description("The link's label."),
            Attribute::string("url")
                .required()
                .validate(not_empty())
                .description(format!(
                    "The link's address: a Go template evaluated against the {object} as \
                     `.{object}`, e.g. `https://ci.example.com/{{{{ .{object}.metadata.name }}}}`."
                )),
            Attribute::string("description")
                .optional()
                .description("A short description shown with the link."),
            Attribute::string("if").optional().description(format!(
                "An expression on `{object}`; the link is shown only when it is true, e.g. \
                 `{object}.metadata.namespace == \"shop\"`. Unset: always shown."
            )),
        ]),
    )
    .description(format!(
        "Links Kargo's UI shows on each {object} of the project (besides the cluster-wide ones), \
         one block each, stored in the project's ProjectConfig."
    ))
}

impl ProjectResource {
    /// The update as server-side dry runs (`dryRun=All`) of the writes apply would make: the
    /// Project when its metadata changes, the ProjectConfig when its lists do. What the
    /// cluster would refuse (Kargo's webhooks, validation) and fields another applier owns
    /// show in the plan on their attribute.
    async fn dry_run_update(&self, prior: &Value, planned: &Value) -> Diagnostics {
        let (Ok(client), Some(name)) = (self.data.client(), planned.get("name").as_str()) else {
            return Diagnostics::default();
        };
        let changed = |attrs: &[&str]| {
            attrs
                .iter()
                .any(|a| !values_equal(prior.get(a), planned.get(a)))
        };
        let mut diags = Diagnostics::default();
        if changed(&["labels", "annotations", "keep_namespace"]) {
            let result = client
                .dry_run_apply(None, name, &project_body(planned))
                .await;
            diags.extend(common::dry_run_findings(result, |e| {
                common::diagnostics(
                    "update the project (server-side dry run)",
                    e,
                    &project_field,
                )
            }));
        }
        if changed(&CONFIG_BLOCKS) && manages_config(planned) {
            let Ok(spec) = project_config_spec(planned) else {
                return diags;
            };
            let body = project_config_body(name, spec);
            let result = client.dry_run_apply(Some(name), name, &body).await;
            diags.extend(common::dry_run_findings(result, |e| {
                common::diagnostics(
                    "write the project's ProjectConfig (server-side dry run)",
                    e,
                    &config_field,
                )
            }));
        }
        diags
    }

    /// The ProjectConfig lists, as blocks, in schema order; each is managed only when written.
    fn config_block() -> Block {
        empty_strings_are_unset(
            Block::default()
                .block(promotion_policies_block())
                .block(webhook_receivers_block())
                .block(link_block("freight_links", "freight"))
                .block(link_block("stage_links", "stage")),
        )
    }

    fn schema_block() -> Block {
        let mut block = Block::new(vec![
            Attribute::string("id").computed().use_state_for_unknown().description("The project name."),
            Attribute::string("name")
                .required()
                .requires_replace()
                .validate(dns_label())
                .description("Name of the project and of the namespace Kargo creates for it. A DNS-1123 label. Changing it replaces the project (and its namespace)."),
            Attribute::string_map("labels")
                .optional()
                .description("Labels on the Project. Only the keys set here are managed; labels Kargo or others add are left alone."),
            Attribute::string_map("annotations")
                .optional()
                .description("Annotations on the Project. Only the keys set here are managed; annotations Kargo or others add are left alone."),
            Attribute::bool("keep_namespace")
                .default(Value::Bool(false))
                .description("Keep the project's namespace (and everything in it) when the project is destroyed. Sets Kargo's `kargo.akuity.io/keep-namespace` annotation. Default `false`."),
            Attribute::string_map("webhook_receiver_urls")
                .computed()
                .sensitive()
                .description("The URL of each webhook receiver by receiver name (null for a receiver whose URL Kargo has not published, e.g. while its Secret is missing), for registering them with the platforms. Null when no receivers are declared."),
            Attribute::string("namespace")
                .computed()
                .use_state_for_unknown()
                .description("The namespace that holds the project's warehouses, stages and freight."),
            Attribute::bool("ready").computed().description("Whether Kargo reports the project Ready."),
        ])
        .description("A Kargo project: the unit of tenancy that holds a promotion pipeline. Kargo creates a namespace of the same name for it.\n\nCreate waits until the project is Ready and its namespace exists. An existing namespace is adopted only when it carries the label `kargo.akuity.io/project: \"true\"`. Destroy waits until the namespace is gone (unless `keep_namespace`).\n\n`promotion_policies`, `webhook_receivers`, `freight_links` and `stage_links` blocks live in the project's ProjectConfig, which is written by server-side apply: only the kinds of block written here are managed, and settings others add are left alone. The ProjectConfig is created when one of them is written and removed when none are (unless others still set something in it). After writing receivers, apply waits (up to a minute) for Kargo to publish their URLs.\n\nAn update is first run at plan as a server-side dry run of the Project and ProjectConfig writes, so what Kargo would refuse (for example two promotion policies for the same stage) and fields another server-side applier owns fail the plan on their attribute.");
        block.blocks = Self::config_block().blocks;
        block.block(object_timeouts_block("5m", "10m"))
    }
}

#[async_trait]
impl Resource for ProjectResource {
    fn type_name(&self) -> &'static str {
        "kargo_project"
    }

    fn schema(&self) -> Schema {
        Schema::new(common::SCHEMA_VERSION, Self::schema_block())
    }

    fn upgrade_state(&self, version: i64, state: &mut Json) -> Diagnostics {
        common::upgrade_state(&self.schema(), version, state)
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::default();
        for (i, policy) in config
            .get("promotion_policies")
            .elements()
            .iter()
            .enumerate()
        {
            let path = AttributePath::attr("promotion_policies")
                .join_index(i)
                .join_attr("stage_selector");
            let sel = policy.get("stage_selector");
            if sel.is_unknown() {
                continue;
            }
            check_selector_name(sel.get("name"), &path.join_attr("name"), &mut diags);
            if sel.is_wholly_known()
                && sel.get("name").is_null()
                && sel.get("match_labels").is_null()
                && sel.get("match_expressions").elements().is_empty()
            {
                diags.error_at(path, "Empty stage selector", "Set `name`, `match_labels` or `match_expressions` so the policy selects some stages.");
            }
        }
        check_unique_receiver_names(config.get("webhook_receivers"), &mut diags);
        diags
    }

    async fn plan(&self, _ctx: &Context, req: PlanRequest) -> PlanResponse {
        let schema = self.schema();
        let mut resp = plan_from_schema(&schema, &req);
        let planned = &mut resp.planned_state;
        if planned.is_null() || planned.is_unknown() {
            return resp;
        }
        let prior = &req.prior_state;
        // Without a change nothing is applied, so the prior URLs must stand as they are.
        let changed = prior.is_null() || changed_ignoring_computed(&schema.block, planned, prior);
        if changed {
            plan_receiver_urls(planned, prior);
        }
        let updates = changed
            && !prior.is_null()
            && resp.requires_replace.is_empty()
            && req.config.is_wholly_known();
        if updates {
            let diags = self.dry_run_update(prior, &resp.planned_state).await;
            resp.diagnostics.extend(diags);
        }
        resp
    }

    async fn create(&self, ctx: &Context, planned: Value, _config: Value) -> ApplyResult {
        let name = planned.get("name").as_str().unwrap_or_default().to_string();
        let client = match common::write_client(&self.data, ctx).await {
            Ok(c) => c,
            Err(e) => return fail(common::diagnostics("connect to the cluster", &e, &no_field)),
        };
        let body = project_body(&planned);
        let wait = timeout(&planned, "create", CREATE_TIMEOUT);
        let apply = || {
            client.retry_while_kargo_starting("the project", &ctx.cancel, || {
                client.apply(None, &name, &body)
            })
        };
        let applied = match apply().await {
            // An earlier project of this name is still being deleted (a terminating object is
            // gone to the refresh): wait until it is, then create the new one.
            Ok(live) if live.is_terminating() => {
                tracing::info!(project = %name, "an earlier project of this name is still being deleted; waiting for it to go");
                match client
                    .wait_deleted::<Project>(None, &name, wait, &ctx.cancel)
                    .await
                {
                    Ok(()) => apply().await,
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        if let Err(e) = applied {
            return fail(project_error("create the project", &name, &e).into());
        }
        // From here on the object exists: always hand Terraform a state for it.
        let mut diags = Diagnostics::default();
        let what = format!("project {name:?} to become Ready");
        match client
            .wait_until(
                None,
                &name,
                &what,
                wait,
                &ctx.cancel,
                |p: Option<&Project>| p.is_some_and(Project::is_ready),
            )
            .await
            .map(|_| ())
        {
            Ok(()) => {}
            Err(KargoError::Cancelled) => {
                diags.push(Diagnostic::warning(
                    "Stopped waiting for the project",
                    format!("Project {name:?} was created; the wait for it to become Ready was interrupted. The next plan refreshes its state."),
                ));
                return ApplyResult {
                    new_state: state_from_planned(&planned, false),
                    private: Vec::new(),
                    diagnostics: diags,
                };
            }
            Err(e) => {
                diags.push(Diagnostic::error(
                    "Project did not become ready",
                    format!("Project {name:?} was created but {}. It is kept in state as tainted; the next apply replaces it.", explain(&e)),
                ));
                return ApplyResult {
                    new_state: state_from_planned(&planned, false),
                    private: Vec::new(),
                    diagnostics: diags,
                };
            }
        }
        // The ProjectConfig needs the namespace Kargo just created; the project itself exists,
        // so a failure here keeps it in state (tainted) rather than losing track of it.
        let mut state = state_from_planned(&planned, true);
        match write_project_config(&client, &name, &planned, &Value::Null).await {
            Ok(written) => {
                let (urls, warnings) =
                    published_urls_after_write(&client, ctx, &name, &planned, written).await;
                diags.extend(warnings);
                fill_receiver_urls(&mut state, &planned, urls.as_ref());
            }
            Err(d) => diags.push(d),
        }
        ApplyResult {
            new_state: state,
            private: Vec::new(),
            diagnostics: diags,
        }
    }

    async fn update(
        &self,
        ctx: &Context,
        prior: Value,
        planned: Value,
        _config: Value,
        private: Vec<u8>,
    ) -> ApplyResult {
        let name = planned.get("name").as_str().unwrap_or_default().to_string();
        let keep = |diags: Diagnostics| ApplyResult {
            new_state: prior.clone(),
            private: private.clone(),
            diagnostics: diags,
        };
        let client = match common::write_client(&self.data, ctx).await {
            Ok(c) => c,
            Err(e) => return keep(common::diagnostics("connect to the cluster", &e, &no_field)),
        };
        let limit = timeout(&planned, "update", CREATE_TIMEOUT);
        let what = format!("the update of project {name:?}");
        let body = project_body(&planned);
        let write = client.apply(None, &name, &body);
        if let Err(e) = common::within(limit, &what, write).await {
            return keep(project_error("update the project", &name, &e).into());
        }
        let ready = prior.get("ready").as_bool().unwrap_or(false);
        let config_write = write_project_config(&client, &name, &planned, &prior);
        let config_written = match tokio::time::timeout(limit, config_write).await {
            Ok(result) => result,
            Err(_) => Err(common::diagnostic(
                "write the project's ProjectConfig",
                &KargoError::Timeout {
                    what: format!("{what} (`timeouts.update`)"),
                    last_seen: "the ProjectConfig write had not finished".into(),
                },
                &no_field,
            )),
        };
        let written = match config_written {
            Ok(written) => written,
            Err(d) => {
                // The Project was written, the ProjectConfig was not: the state says exactly
                // that, so the next plan shows only what is still to be written.
                return ApplyResult {
                    new_state: project_written_config_not(&planned, &prior, ready),
                    private: private.clone(),
                    diagnostics: d.into(),
                };
            }
        };
        let (urls, diagnostics) =
            published_urls_after_write(&client, ctx, &name, &planned, written).await;
        let mut state = state_from_planned(&planned, ready);
        fill_receiver_urls(&mut state, &planned, urls.as_ref());
        ApplyResult {
            new_state: state,
            private: Vec::new(),
            diagnostics,
        }
    }

    async fn delete(&self, ctx: &Context, prior: Value, _private: Vec<u8>) -> Diagnostics {
        let name = prior.get("name").as_str().unwrap_or_default().to_string();
        let client = match self.data.client() {
            Ok(c) => c,
            Err(e) => return common::diagnostics("connect to the cluster", &e, &no_field),
        };
        if let Err(e) = client.delete::<Project>(None, &name).await {
            return project_error("delete the project", &name, &e).into();
        }
        let wait = timeout(&prior, "delete", DELETE_TIMEOUT);
        let keep_namespace = prior.get("keep_namespace").as_bool().unwrap_or(false);
        let started = std::time::Instant::now();
        let mut result = client
            .wait_deleted::<Project>(None, &name, wait, &ctx.cancel)
            .await;
        if result.is_ok() && !keep_namespace {
            let left = wait.saturating_sub(started.elapsed());
            result = client
                .wait_deleted::<Namespace>(None, &name, left, &ctx.cancel)
                .await;
        }
        match result {
            Ok(()) => Diagnostics::default(),
            Err(KargoError::Cancelled) => Diagnostic::error(
                "Stopped waiting for the project to be deleted",
                format!("Deletion of project {name:?} was requested and continues in the cluster. Run destroy again to confirm it is gone."),
            )
            .into(),
            Err(KargoError::Timeout { .. }) => {
                let stuck = common::describe_stuck_project(&client, &name).await;
                Diagnostic::error(
                    "Project deletion did not finish",
                    format!(
                        "Project {name:?} is still being deleted after {}: {stuck}. Kargo's controller removes its finalizers; check that Kargo is running, then run destroy again.",
                        humanize(wait)
                    ),
                )
                .into()
            }
            Err(e) => project_error("delete the project", &name, &e).into(),
        }
    }

    async fn read(&self, _ctx: &Context, state: Value, private: Vec<u8>) -> ReadResult {
        let importing = private == IMPORTING;
        let name = state.get("name").as_str().unwrap_or_default().to_string();
        let what = format!("project {name:?}");
        let failed = |e: &KargoError, state: Value, private: Vec<u8>| {
            common::refresh_failed("Project", &what, e, state, private, importing, &no_field)
        };
        let client = match self.data.client() {
            Ok(c) => c,
            Err(e) => return failed(&e, state, private),
        };
        let project = match client.get::<Project>(None, &name).await {
            // A project on its way out is gone: Terraform plans to create it again.
            Ok(Some(p)) if p.is_terminating() && !importing => {
                return ReadResult {
                    new_state: Value::Null,
                    private: Vec::new(),
                    diagnostics: Diagnostics::default(),
                };
            }
            Ok(Some(p)) => p,
            Ok(None) if importing => {
                return ReadResult {
                    new_state: Value::Null,
                    private: Vec::new(),
                    diagnostics: Diagnostic::error(
                        "Cannot import project",
                        format!("No Kargo project named {name:?} exists."),
                    )
                    .into(),
                };
            }
            Ok(None) => {
                return ReadResult {
                    new_state: Value::Null,
                    private: Vec::new(),
                    diagnostics: Diagnostics::default(),
                };
            }
            Err(e) => return failed(&e, state, private),
        };
        let config = if importing || manages_config(&state) {
            match client.get::<ProjectConfig>(Some(&name), &name).await {
                Ok(c) => c,
                Err(e) => return failed(&e, state, private),
            }
        } else {
            None
        };
        let new_state = state_from_live(&state, &project, config.as_ref(), importing);
        ReadResult {
            new_state,
            private: Vec::new(),
            diagnostics: Diagnostics::default(),
        }
    }

    async fn import(&self, _ctx: &Context, id: &str) -> ImportResult {
        let mut diags = Diagnostics::default();
        if let Some(problem) = common::dns_label_problem(id) {
            diags.error(
                "Invalid import ID",
                format!("Import a project by its name; {id:?} {problem}."),
            );
            return ImportResult {
                diagnostics: diags,
                ..Default::default()
            };
        }
        let mut state = null_state();
        state.set("name", Value::string(id));
        state.set("id", Value::string(id));
        ImportResult {
            state,
            private: IMPORTING.to_vec(),
            diagnostics: diags,
        }
    }
}

/// The block for a ProjectConfig field Kargo named in an error, e.g.
/// `spec.webhookReceivers[1].name` → `webhook_receivers[1].name`.
fn config_field(field: &str) -> Option<AttributePath> {
    let steps = parse_field(field);
    match steps.split_first() {
        // Kargo names a whole policy for a stage named twice; what is wrong is its stage name,
        // and Terraform can point at an attribute but not at a block.
        Some((FieldStep::Key(k), [FieldStep::Key(p), FieldStep::Index(i)]))
            if k == "spec" && p == "promotionPolicies" =>
        {
            Some(
                AttributePath::attr("promotion_policies")
                    .join_index(*i)
                    .join_attr("stage_selector")
                    .join_attr("name"),
            )
        }
        Some((FieldStep::Key(k), rest)) if k == "spec" => field_to_attribute_path(
            ProjectResource::config_block().shape(),
            rest,
            &RULES,
            "",
            AttributePath::root(),
        ),
        _ => None,
    }
}

fn check_selector_name(name: &Value, path: &AttributePath, diags: &mut Diagnostics) {
    let Some(name) = name.as_str() else { return };
    if let Some(expr) = name.strip_prefix("regex:") {
        if let Err(e) = regex::Regex::new(expr) {
            diags.error_at(
                path.clone(),
                "Invalid regular expression",
                format!("{expr:?} does not compile: {e}"),
            );
        }
    } else if !name.starts_with("glob:")
        && let Some(problem) = common::dns_subdomain_problem(name)
    {
        diags.error_at(
            path.clone(),
            "Invalid stage name",
            format!("{name:?} is neither `regex:…`, `glob:…` nor a stage name: it {problem}."),
        );
    }
}

/// `In`/`NotIn` need values, `Exists`/`DoesNotExist` take none (Kubernetes' selector rules);
/// run on each `match_expressions` block.
fn match_expression_values() -> Validator {
    Validator::new(
        "`In` and `NotIn` need values; `Exists` and `DoesNotExist` take none",
        |expr, path, diags| {
            let values = expr.get("values");
            if values.is_unknown() {
                return;
            }
            let at = path.join_attr("values");
            match expr.get("operator").as_str() {
                Some("In" | "NotIn") if values.elements().is_empty() => report(
                    diags,
                    at,
                    "Missing values",
                    "Operators In and NotIn need at least one value.",
                ),
                Some("Exists" | "DoesNotExist") if !values.elements().is_empty() => report(
                    diags,
                    at,
                    "Unexpected values",
                    "Operators Exists and DoesNotExist take no values.",
                ),
                _ => {}
            }
        },
    )
}

/// Whether an attribute may select something: `Some(true)` it does, `None` it is not known yet.
fn selects(v: &Value, non_empty: impl Fn(&Value) -> Option<bool>) -> Option<bool> {
    match v {
        Value::Unknown => None,
        Value::Null => Some(false),
        _ => non_empty(v),
    }
}

fn has_elements(v: &Value) -> Option<bool> {
    match v {
        Value::Unknown => None,
        Value::Null => Some(false),
        Value::Map(m) | Value::Object(m) => Some(!m.is_empty()),
        _ => Some(!v.elements().is_empty()),
    }
}

/// A target selection criterion must narrow the targets down (Kargo refuses an empty one).
fn target_selects_something() -> Validator {
    Validator::new(
        "at least one of `name`, `label_selector` or `index_selector` selects something",
        |target, path, diags| {
            let name = selects(target.get("name"), |n| {
                Some(n.as_str().is_some_and(|s| !s.is_empty()))
            });
            let labels = selects(target.get("label_selector"), |s| {
                match (
                    has_elements(s.get("match_labels")),
                    has_elements(s.get("match_expressions")),
                ) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                }
            });
            let index = selects(target.get("index_selector"), |s| {
                has_elements(s.get("match_indices"))
            });
            if [name, labels, index].iter().all(|s| *s == Some(false)) {
                report(
                    diags,
                    path.clone(),
                    "Empty target selection",
                    "Set `name`, `label_selector` or `index_selector` so the action knows which \
                     warehouses to refresh; Kargo rejects a criterion that selects nothing.",
                );
            }
        },
    )
}

/// Receiver names identify receivers (and their URLs) within the project.
fn check_unique_receiver_names(receivers: &Value, diags: &mut Diagnostics) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, receiver) in receivers.elements().iter().enumerate() {
        let Some(name) = receiver.get("name").as_str() else {
            continue;
        };
        match seen.get(name) {
            Some(first) => report(
                diags,
                AttributePath::attr("webhook_receivers")
                    .join_index(i)
                    .join_attr("name"),
                "Duplicate webhook receiver name",
                format!(
                    "{name:?} is already the name of webhook_receivers[{first}]; receiver names \
                     must be unique within the project."
                ),
            ),
            None => {
                seen.insert(name, i);
            }
        }
    }
}

fn project_error(action: &str, name: &str, err: &KargoError) -> Diagnostic {
    let msg = err.to_string();
    if msg.contains("not labeled as a Project namespace") {
        return Diagnostic::error(
            "Namespace exists without the Kargo project label",
            format!(
                "Namespace {name:?} already exists and is not labeled as a Kargo project namespace, so Kargo refuses to adopt it. To adopt it, add the label: kubectl label namespace {name} {PROJECT_LABEL}=true — or choose another project name.",
            ),
        )
        .at(AttributePath::attr("name"));
    }
    if msg.contains("terminating") || msg.contains("being terminated") {
        return Diagnostic::error(
            "Namespace is still being deleted",
            format!(
                "Namespace {name:?} is terminating. Wait until it is gone and apply again. ({msg})"
            ),
        )
        .at(AttributePath::attr("name"));
    }
    common::diagnostic(action, err, &project_field)
}

/// The attribute for a field of the Project Kargo named in an error, e.g.
/// `metadata.labels.team` → `labels`.
fn project_field(field: &str) -> Option<AttributePath> {
    let keep = format!("metadata.annotations.{KEEP_NAMESPACE_ANNOTATION}");
    let attr = if field.starts_with("metadata.name") {
        "name"
    } else if field.starts_with(&keep) {
        "keep_namespace"
    } else if field.starts_with("metadata.labels") {
        "labels"
    } else if field.starts_with("metadata.annotations") {
        "annotations"
    } else {
        return None;
    };
    Some(AttributePath::attr(attr))
}

fn humanize(d: Duration) -> String {
    crate::duration::format_go_duration(d)
}

fn project_body(planned: &Value) -> Project {
    let name = planned.get("name").as_str().unwrap_or_default();
    let strings = |v: &Value| -> BTreeMap<String, String> {
        v.entries()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect()
    };
    let mut labels = strings(planned.get("labels"));
    let mut annotations = strings(planned.get("annotations"));
    labels.retain(|k, _| !k.is_empty());
    if planned.get("keep_namespace").as_bool() == Some(true) {
        annotations.insert(KEEP_NAMESPACE_ANNOTATION.into(), "true".into());
    }
    Project {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..ObjectMeta::default()
        },
        ..Project::default()
    }
}

/// Whether a ProjectConfig list is written in `v` (a list that is not known yet may be).
fn written(list: &Value) -> bool {
    list.is_unknown() || !list.elements().is_empty()
}

/// Whether the state declares anything that lives in the ProjectConfig.
fn manages_config(v: &Value) -> bool {
    CONFIG_BLOCKS.iter().any(|b| written(v.get(b)))
}

/// The ProjectConfig spec to write: only the lists the configuration writes, so that
/// server-side apply leaves everything else in the ProjectConfig to its other owners.
fn project_config_spec(v: &Value) -> Result<Map<String, Json>, ConvertError> {
    object_to_json(
        ProjectResource::config_block().shape(),
        v,
        &RULES,
        "",
        &AttributePath::root(),
    )
}

fn project_config_body(name: &str, spec: JsonObject) -> ProjectConfig {
    ProjectConfig {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        spec,
        ..ProjectConfig::default()
    }
}

/// Writes the ProjectConfig lists `planned` declares and returns the stored object. When it
/// declares none but `prior` did, the lists are released (an apply of nothing) and the
/// ProjectConfig is deleted if nobody else set anything in it.
async fn write_project_config(
    client: &KargoClient,
    name: &str,
    planned: &Value,
    prior: &Value,
) -> Result<Option<ProjectConfig>, Diagnostic> {
    let failed =
        |e: KargoError| common::diagnostic("write the project's ProjectConfig", &e, &config_field);
    if manages_config(planned) {
        let spec = project_config_spec(planned).map_err(|e| e.diagnostic())?;
        return client
            .apply(Some(name), name, &project_config_body(name, spec))
            .await
            .map(Some)
            .map_err(failed);
    }
    if !manages_config(prior) {
        return Ok(None);
    }
    let released = match client
        .apply(Some(name), name, &project_config_body(name, Map::new()))
        .await
    {
        Ok(object) => object,
        // Already gone (e.g. deleted by hand): nothing left to release.
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(failed(e)),
    };
    let others_remain = !released.spec.is_empty();
    if !others_remain {
        client
            .delete::<ProjectConfig>(Some(name), name)
            .await
            .map_err(failed)?;
    }
    Ok(None)
}

/// Whether Kargo has processed the ProjectConfig's current generation: its Ready condition
/// is for that generation and no longer says the receivers are being synced.
fn receivers_settled(pc: Option<&ProjectConfig>) -> bool {
    let Some(pc) = pc else { return false };
    condition(&pc.status.conditions, "Ready").is_some_and(|c| {
        c.observed_generation == pc.metadata.generation && c.reason != "SyncingWebhooks"
    })
}

/// `status.webhookReceivers` by receiver name: (path, url). Kargo leaves out what it has
/// not published (Go's `omitempty`), so empty fields count as absent.
fn published_receivers(pc: &ProjectConfig) -> BTreeMap<String, (String, String)> {
    pc.status
        .webhook_receivers
        .iter()
        .filter(|r| !r.name.is_empty() && !r.path.is_empty() && !r.url.is_empty())
        .map(|r| (r.name.clone(), (r.path.clone(), r.url.clone())))
        .collect()
}

/// After a write that leaves some receiver URL to be learnt, waits (bounded) until Kargo has
/// synced the receivers and returns what it published; what is missing becomes a warning
/// that says why (Kargo's own message, usually a missing Secret or data key).
async fn published_urls_after_write(
    client: &KargoClient,
    ctx: &Context,
    name: &str,
    planned: &Value,
    written: Option<ProjectConfig>,
) -> (Option<BTreeMap<String, (String, String)>>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let receivers = planned.get("webhook_receivers").elements();
    let needed = receivers
        .iter()
        .any(|r| r.get("url").is_unknown() || r.get("path").is_unknown());
    if written.is_none() || !needed {
        return (None, diags);
    }
    let what = format!("Kargo to publish the webhook receiver URLs of project {name:?}");
    let settled = client
        .wait_until(
            Some(name),
            name,
            &what,
            RECEIVER_URL_TIMEOUT,
            &ctx.cancel,
            receivers_settled,
        )
        .await;
    let pc = match settled {
        Ok(Some(pc)) => pc,
        Ok(None) => return (None, diags),
        Err(e) => {
            diags.push(Diagnostic::warning(
                "Webhook receiver URLs not known yet",
                format!(
                    "The receivers were written, but their URLs could not be read: {}. They \
                     appear in state at the next refresh (the next plan or apply).",
                    explain(&e)
                ),
            ));
            return (None, diags);
        }
    };
    let published = published_receivers(&pc);
    let missing: Vec<&str> = receivers
        .iter()
        .filter_map(|r| r.get("name").as_str())
        .filter(|n| !published.contains_key(*n))
        .collect();
    if !missing.is_empty() {
        let kargo_says = condition(&pc.status.conditions, "Ready")
            .map(|c| c.message.as_str())
            .unwrap_or("no reason given");
        let keys: Vec<String> = RECEIVER_TYPES
            .iter()
            .map(|t| format!("{} reads `{}`", t.key, t.secret_key))
            .collect();
        diags.push(
            Diagnostic::warning(
                "Webhook receivers without a URL",
                format!(
                    "Kargo has not published a URL for {} in project {name:?}: {kargo_says}. \
                     Each receiver needs its Secret in namespace {name:?} with the data key its \
                     type reads ({}). Once the Secret exists, the URL appears in state at the \
                     next refresh.",
                    missing
                        .iter()
                        .map(|n| format!("{n:?}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    keys.join(", ")
                ),
            )
            .at(AttributePath::attr("webhook_receivers")),
        );
    }
    (Some(published), diags)
}

/// The identity a receiver's URL is derived from: its name, type and Secret (Kargo hashes the
/// project, the name and the Secret's value into the path, under the type).
fn receiver_identity(r: &Value) -> Option<(String, &'static str, String)> {
    let name = r.get("name").as_str()?;
    let t = RECEIVER_TYPES.iter().find(|t| !r.get(t.key).is_null())?;
    let secret = r.get(t.key).get("secret_ref").get("name").as_str()?;
    Some((name.to_string(), t.key, secret.to_string()))
}

/// Sets the `path` and `url` of each receiver of `state` to what `urls` gives for it, and
/// `webhook_receiver_urls` to match: how receivers get their URLs when planned, applied and
/// read alike.
fn set_receiver_urls(state: &mut Value, mut urls: impl FnMut(&Value) -> (Value, Value)) {
    let receivers = match state.get("webhook_receivers").clone() {
        Value::List(items) => Value::List(
            items
                .into_iter()
                .map(|mut r| {
                    if !r.is_null() && !r.is_unknown() {
                        let (path, url) = urls(&r);
                        r.set("path", path);
                        r.set("url", url);
                    }
                    r
                })
                .collect(),
        ),
        other => other,
    };
    state.set("webhook_receiver_urls", urls_by_name(&receivers));
    state.set("webhook_receivers", receivers);
}

/// Plans the receivers' `path`/`url` and `webhook_receiver_urls` when the resource changes:
/// a receiver whose name, type and Secret are unchanged keeps its published URL; others (and
/// those without one yet) are known only after apply. The map's keys are the receiver names,
/// known at plan time so that `webhook_receiver_urls["name"]` can be referenced.
fn plan_receiver_urls(planned: &mut Value, prior: &Value) {
    let prior_receivers = prior.get("webhook_receivers").elements();
    set_receiver_urls(planned, |r| {
        let same = receiver_identity(r).and_then(|id| {
            prior_receivers
                .iter()
                .find(|p| receiver_identity(p).as_ref() == Some(&id))
        });
        let kept = |key: &str| {
            same.map(|p| p.get(key))
                .filter(|v| v.as_str().is_some())
                .cloned()
                .unwrap_or(Value::Unknown)
        };
        (kept("path"), kept("url"))
    });
}

/// `webhook_receiver_urls` for a receivers list: name → url; null without receivers, unknown
/// when a name is.
fn urls_by_name(receivers: &Value) -> Value {
    match receivers {
        Value::Null => Value::Null,
        Value::List(items) if items.is_empty() => Value::Null,
        Value::List(items) => {
            let mut map = BTreeMap::new();
            for r in items {
                let Some(name) = r.get("name").as_str() else {
                    return Value::Unknown;
                };
                map.insert(name.to_string(), r.get("url").clone());
            }
            Value::Map(map)
        }
        _ => Value::Unknown,
    }
}

/// The published (path, url) of receiver `r`, as values: null for one Kargo has not published.
fn published_urls(
    published: Option<&BTreeMap<String, (String, String)>>,
    r: &Value,
) -> (Value, Value) {
    let found = r
        .get("name")
        .as_str()
        .and_then(|n| published.and_then(|p| p.get(n)));
    match found {
        Some((path, url)) => (Value::string(path), Value::string(url)),
        None => (Value::Null, Value::Null),
    }
}

/// Sets the receivers of `state` to `planned`'s, with the URLs the plan left unknown filled
/// from what Kargo published (null for receivers it has not), never contradicting a planned
/// value.
fn fill_receiver_urls(
    state: &mut Value,
    planned: &Value,
    published: Option<&BTreeMap<String, (String, String)>>,
) {
    state.set(
        "webhook_receivers",
        planned.get("webhook_receivers").clone(),
    );
    set_receiver_urls(state, |r| {
        let (path, url) = published_urls(published, r);
        let keep = |key: &str, found: Value| match r.get(key) {
            Value::Unknown => found,
            planned => planned.clone(),
        };
        (keep("path", path), keep("url", url))
    });
}

/// Kargo's pre-v1.1 `stage` field of a promotion policy selects one stage by exact name:
/// read it as the `stage_selector`'s `name` it stands for.
fn with_legacy_policy_stages(spec: &Map<String, Json>) -> Map<String, Json> {
    let mut spec = spec.clone();
    if let Some(Json::Array(policies)) = spec.get_mut("promotionPolicies") {
        for p in policies.iter_mut().filter_map(Json::as_object_mut) {
            let Some(stage) = p.remove("stage") else {
                continue;
            };
            let selector = p.entry("stageSelector").or_insert_with(|| json!({}));
            if let Some(sel) = selector.as_object_mut()
                && !sel.contains_key("name")
            {
                sel.insert("name".into(), stage);
            }
        }
    }
    spec
}

fn null_state() -> Value {
    ProjectResource::schema_block().shape().empty_value()
}

/// The state after a successful write: what was planned plus the computed attributes.
/// Receiver URLs still unknown become null; [`fill_receiver_urls`] supplies known ones.
/// The state after an update that wrote the Project but not its ProjectConfig: the Project's
/// attributes as planned, the ProjectConfig's (and the receiver URLs) as they were.
fn project_written_config_not(planned: &Value, prior: &Value, ready: bool) -> Value {
    let mut state = state_from_planned(planned, ready);
    let config = ProjectResource::config_block();
    let names = config
        .attributes
        .iter()
        .map(|a| a.name.as_str())
        .chain(config.blocks.iter().map(|b| b.type_name.as_str()))
        .chain(["webhook_receiver_urls"]);
    for name in names {
        state.set(name, prior.get(name).clone());
    }
    state
}

fn state_from_planned(planned: &Value, ready: bool) -> Value {
    let mut s = planned.clone();
    let name = planned.get("name").clone();
    s.set("id", name.clone());
    s.set("namespace", name);
    s.set("ready", Value::Bool(ready));
    fill_receiver_urls(&mut s, planned, None);
    s
}

/// The ProjectConfig lists for a live `spec`, in the spelling of `prior` where equivalent.
/// Lists the prior state does not write stay empty (they belong to whoever set them), except
/// on import, which adopts every list.
fn config_lists_from_live(
    prior: &Value,
    spec: Option<&Map<String, Json>>,
    importing: bool,
) -> Vec<(&'static str, Value)> {
    let spec = spec.map(with_legacy_policy_stages);
    let read = object_from_json(
        ProjectResource::config_block().shape(),
        spec.as_ref(),
        prior,
        &RULES,
        "",
    );
    CONFIG_BLOCKS
        .iter()
        .map(|name| {
            let v = if importing || written(prior.get(name)) {
                read.get(name).clone()
            } else {
                Value::List(Vec::new())
            };
            (*name, v)
        })
        .collect()
}

fn state_from_live(
    prior: &Value,
    project: &Project,
    config: Option<&ProjectConfig>,
    importing: bool,
) -> Value {
    let name = project.name();
    let labels = project.metadata.labels.as_ref();
    let annotations = project.metadata.annotations.as_ref();
    let keep_namespace = annotations
        .and_then(|a| a.get(KEEP_NAMESPACE_ANNOTATION))
        .is_some_and(|v| v == "true");
    let mut s = prior.clone();
    if s.is_null() {
        s = null_state();
    }
    s.set("id", Value::string(name));
    s.set("name", Value::string(name));
    s.set(
        "labels",
        managed_map(labels, prior.get("labels"), importing),
    );
    s.set(
        "annotations",
        managed_map(annotations, prior.get("annotations"), importing)
            .filter_key(KEEP_NAMESPACE_ANNOTATION),
    );
    s.set("keep_namespace", Value::Bool(keep_namespace));
    let spec = config.map(|c| &c.spec);
    for (attr, v) in config_lists_from_live(prior, spec, importing) {
        s.set(attr, v);
    }
    // Receivers read from the ProjectConfig carry Kargo's current URLs.
    let published = config.map(published_receivers);
    set_receiver_urls(&mut s, |r| published_urls(published.as_ref(), r));
    s.set("namespace", Value::string(name));
    s.set("ready", Value::Bool(project.is_ready()));
    if importing {
        s.set("timeouts", Value::Null);
    }
    s
}

trait FilterKey {
    fn filter_key(self, key: &str) -> Value;
}

impl FilterKey for Value {
    /// Drops one key from a map value (the keep-namespace annotation is modelled by its own attribute).
    fn filter_key(self, key: &str) -> Value {
        match self {
            Value::Map(mut m) => {
                m.remove(key);
                if m.is_empty() {
                    Value::Null
                } else {
                    Value::Map(m)
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kargo::decode;

    fn planned(name: &str) -> Value {
        let mut v = null_state();
        v.set("name", Value::string(name));
        v.set("keep_namespace", Value::Bool(false));
        v
    }

    #[test]
    fn project_body_has_only_declared_metadata() {
        let mut p = planned("demo");
        p.set(
            "labels",
            Value::Map([("team".to_string(), Value::string("platform"))].into()),
        );
        p.set("keep_namespace", Value::Bool(true));
        let body = serde_json::to_value(project_body(&p)).unwrap();
        assert_eq!(body["metadata"]["labels"], json!({"team": "platform"}));
        assert_eq!(
            body["metadata"]["annotations"],
            json!({KEEP_NAMESPACE_ANNOTATION: "true"})
        );
        assert!(
            body.get("spec").is_none(),
            "Kargo v1.7+ Projects have no spec"
        );
    }

    #[test]
    fn policies_round_trip_through_kargo_json() {
        let policy = Value::object([
            (
                "stage_selector",
                Value::object([
                    ("name", Value::string("glob:dev-*")),
                    (
                        "match_labels",
                        Value::Map([("tier".to_string(), Value::string("lower"))].into()),
                    ),
                    ("match_expressions", Value::List(vec![])),
                ]),
            ),
            ("auto_promotion_enabled", Value::Bool(true)),
        ]);
        let mut state = null_state();
        state.set("promotion_policies", Value::List(vec![policy.clone()]));
        let spec = project_config_spec(&state).unwrap();
        assert_eq!(
            Json::Object(spec.clone()),
            json!({"promotionPolicies": [{"stageSelector": {"name": "glob:dev-*", "matchLabels": {"tier": "lower"}}, "autoPromotionEnabled": true}]})
        );
        let read = config_lists_from_live(&state, Some(&spec), false);
        assert_eq!(read[0], ("promotion_policies", Value::List(vec![policy])));
    }

    #[test]
    fn empty_selector_maps_and_values_survive_the_round_trip() {
        let spec = json!({"promotionPolicies": [{"stageSelector": {
            "matchLabels": {},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": []}],
        }}]});
        let read = config_lists_from_live(&Value::Null, spec.as_object(), true);
        let selector = read[0].1.elements()[0].get("stage_selector").clone();
        assert_eq!(selector.get("match_labels"), &Value::Map(BTreeMap::new()));
        assert_eq!(
            selector.get("match_expressions").elements()[0].get("values"),
            &Value::List(vec![])
        );
        let mut state = null_state();
        state.set("promotion_policies", read[0].1.clone());
        assert_eq!(
            Json::Object(project_config_spec(&state).unwrap()),
            json!({"promotionPolicies": [{"stageSelector": {
                "matchLabels": {},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": []}],
            }, "autoPromotionEnabled": false}]})
        );
    }

    #[test]
    fn deprecated_stage_field_reads_as_exact_name() {
        let spec = json!({"promotionPolicies": [{"stage": "prod", "autoPromotionEnabled": false}]});
        let read = config_lists_from_live(&Value::Null, spec.as_object(), true);
        let policy = &read[0].1.elements()[0];
        assert_eq!(
            policy.get("stage_selector").get("name"),
            &Value::string("prod")
        );
        let spec =
            json!({"promotionPolicies": [{"stage": "old", "stageSelector": {"name": "new"}}]});
        let read = config_lists_from_live(&Value::Null, spec.as_object(), true);
        assert_eq!(
            read[0].1.elements()[0].get("stage_selector").get("name"),
            &Value::string("new"),
            "the selector wins over the deprecated field"
        );
    }

    #[test]
    fn read_ignores_kargo_labels_and_keeps_managed_ones() {
        let mut prior = planned("demo");
        prior.set(
            "labels",
            Value::Map([("team".to_string(), Value::string("a"))].into()),
        );
        let live: Project = decode(json!({
            "metadata": {"name": "demo", "labels": {"team": "b", "kargo.akuity.io/migrated": "true", "other": "x"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        let s = state_from_live(&prior, &live, None, false);
        assert_eq!(
            s.get("labels"),
            &Value::Map([("team".to_string(), Value::string("b"))].into())
        );
        assert_eq!(s.get("ready"), &Value::Bool(true));
        let imported = state_from_live(&Value::Null, &live, None, true);
        assert_eq!(
            imported.get("labels"),
            &Value::Map(
                [
                    ("team".to_string(), Value::string("b")),
                    ("other".to_string(), Value::string("x"))
                ]
                .into()
            )
        );
    }

    #[test]
    fn validation_reports_bad_selectors_on_their_paths() {
        let r_cfg = Value::object([(
            "promotion_policies",
            Value::List(vec![Value::object([
                (
                    "stage_selector",
                    Value::object([
                        ("name", Value::string("regex:([")),
                        ("match_labels", Value::Null),
                        ("match_expressions", Value::Null),
                    ]),
                ),
                ("auto_promotion_enabled", Value::Bool(true)),
            ])]),
        )]);
        let diags = ProjectResource::new(ProviderData::default()).validate(&r_cfg);
        assert_eq!(diags.0.len(), 1);
        assert_eq!(
            diags.0[0]
                .attribute
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("promotion_policies[0].stage_selector.name")
        );
    }

    use crate::plugin::diagnostics::Severity;
    use crate::plugin::validate::validate_config;

    /// A configuration written as JSON in HCL's shape, typed by the schema.
    /// A configuration as Terraform sends it: blocks not written are empty lists.
    fn config(mut j: Json) -> Value {
        let block = ProjectResource::schema_block();
        block.shape().fill_absent_blocks(&mut j);
        Value::from_json(&j, &block.implied_type())
    }

    fn resource() -> ProjectResource {
        ProjectResource::new(ProviderData::default())
    }

    /// All validation Terraform runs: the schema's rules, then the resource's.
    fn errors(config: &Value) -> Vec<(String, String)> {
        let mut diags = validate_config(&ProjectResource::schema_block(), config);
        diags.extend(resource().validate(config));
        diags
            .0
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| {
                (
                    d.attribute.map(|a| a.to_string()).unwrap_or_default(),
                    d.detail,
                )
            })
            .collect()
    }

    async fn plan(config: &Value, prior: &Value) -> Value {
        let schema = ProjectResource::schema_block();
        let mut proposed = config.clone();
        // Terraform proposes the configuration with prior computed values filled in.
        if !prior.is_null() {
            proposed = crate::plugin::plan::plan_block(&schema, config, prior, false);
        }
        let req = PlanRequest {
            prior_state: prior.clone(),
            proposed_new_state: proposed,
            config: config.clone(),
            prior_private: Vec::new(),
        };
        resource()
            .plan(&Context::default(), req)
            .await
            .planned_state
    }

    fn receivers_config() -> Json {
        json!({
            "name": "shop",
            "webhook_receivers": [
                {"name": "ghcr", "github": {"secret_ref": {"name": "gh"}}},
                {"name": "jfrog", "artifactory": {"secret_ref": {"name": "jf"}, "virtual_repo_name": "virtual"}},
                {"name": "ci", "generic": {"secret_ref": {"name": "ci"}, "actions": [{
                    "action": "Refresh",
                    "when_expression": "request.header('X-Event') == 'push'",
                    "parameters": {"p": "${{ request.body.p }}"},
                    "target_selection_criteria": [
                        {"kind": "Warehouse", "name": "api"},
                        {"kind": "Warehouse", "label_selector": {"match_labels": {"team": "shop"}},
                         "index_selector": {"match_indices": [{"key": "subscribedURLs", "operator": "NotEquals", "value": "x"}]}},
                    ],
                }]}},
            ],
            "freight_links": [{"title": "CI", "url": "https://ci/{{ .freight.metadata.name }}"}],
            "stage_links": [{"title": "Logs", "url": "https://logs/", "description": "d", "if": "true"}],
            "keep_namespace": false,
        })
    }

    fn live_config(spec: Json, published: &[(&str, &str)]) -> ProjectConfig {
        let receivers: Vec<Json> = published
            .iter()
            .map(|(n, u)| json!({"name": n, "path": format!("/{u}"), "url": format!("https://hooks/{u}")}))
            .collect();
        decode(
            json!({"metadata": {"name": "shop", "namespace": "shop", "generation": 1},
               "spec": spec, "status": {"webhookReceivers": receivers}}),
        )
        .unwrap()
    }

    fn live_project() -> Project {
        decode(json!({"metadata": {"name": "shop"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
        .unwrap()
    }

    #[test]
    fn receivers_and_links_convert_to_kargo_and_back() {
        let planned = state_from_planned(&config(receivers_config()), true);
        let spec = project_config_spec(&planned).unwrap();
        assert_eq!(
            Json::Object(spec.clone()),
            json!({
                "webhookReceivers": [
                    {"name": "ghcr", "github": {"secretRef": {"name": "gh"}}},
                    {"name": "jfrog", "artifactory": {"secretRef": {"name": "jf"}, "virtualRepoName": "virtual"}},
                    {"name": "ci", "generic": {"secretRef": {"name": "ci"}, "actions": [{
                        "action": "Refresh",
                        "whenExpression": "request.header('X-Event') == 'push'",
                        "parameters": {"p": "${{ request.body.p }}"},
                        "targetSelectionCriteria": [
                            {"kind": "Warehouse", "name": "api"},
                            {"kind": "Warehouse", "labelSelector": {"matchLabels": {"team": "shop"}},
                             "indexSelector": {"matchIndices": [{"key": "subscribedURLs", "operator": "NotEquals", "value": "x"}]}},
                        ],
                    }]}},
                ],
                "freightLinks": [{"title": "CI", "url": "https://ci/{{ .freight.metadata.name }}"}],
                "stageLinks": [{"title": "Logs", "url": "https://logs/", "description": "d", "if": "true"}],
            }),
            "only declared lists, in Kargo's spelling; computed URLs are never sent"
        );
        let live = live_config(
            Json::Object(spec),
            &[
                ("ghcr", "github/1"),
                ("jfrog", "artifactory/2"),
                ("ci", "generic/3"),
            ],
        );
        let read = state_from_live(&planned, &live_project(), Some(&live), false);
        let receivers = read.get("webhook_receivers").elements();
        assert_eq!(
            receivers[1].get("url"),
            &Value::string("https://hooks/artifactory/2")
        );
        assert_eq!(receivers[1].get("path"), &Value::string("/artifactory/2"));
        assert_eq!(
            read.get("webhook_receiver_urls").get("ci"),
            &Value::string("https://hooks/generic/3")
        );
        // Apart from the URLs Kargo published, the read state is what was planned.
        let mut expected = planned.clone();
        fill_receiver_urls(
            &mut expected,
            &plan_receiver_urls_for_test(&planned),
            Some(&published_receivers(&live)),
        );
        assert_eq!(read, expected);
    }

    #[test]
    fn every_receiver_type_converts_to_kargo_and_back() {
        let planned = state_from_planned(
            &config(json!({
                "name": "shop",
                "keep_namespace": false,
                "webhook_receivers": [
                    {"name": "gh", "github": {"secret_ref": {"name": "s-gh"}}},
                    {"name": "gl", "gitlab": {"secret_ref": {"name": "s-gl"}}},
                    {"name": "bb", "bitbucket": {"secret_ref": {"name": "s-bb"}}},
                    {"name": "hub", "dockerhub": {"secret_ref": {"name": "s-hub"}}},
                    {"name": "quay", "quay": {"secret_ref": {"name": "s-quay"}}},
                    {"name": "harbor", "harbor": {"secret_ref": {"name": "s-harbor"}}},
                    {"name": "jfrog", "artifactory": {"secret_ref": {"name": "s-jfrog"}}},
                    {"name": "acr", "azure": {"secret_ref": {"name": "s-acr"}}},
                    {"name": "gitea", "gitea": {"secret_ref": {"name": "s-gitea"}}},
                    {"name": "ci", "generic": {"secret_ref": {"name": "s-ci"}}},
                ],
            })),
            true,
        );
        let spec = project_config_spec(&planned).unwrap();
        assert_eq!(
            Json::Object(spec.clone()),
            json!({"webhookReceivers": [
                {"name": "gh", "github": {"secretRef": {"name": "s-gh"}}},
                {"name": "gl", "gitlab": {"secretRef": {"name": "s-gl"}}},
                {"name": "bb", "bitbucket": {"secretRef": {"name": "s-bb"}}},
                {"name": "hub", "dockerhub": {"secretRef": {"name": "s-hub"}}},
                {"name": "quay", "quay": {"secretRef": {"name": "s-quay"}}},
                {"name": "harbor", "harbor": {"secretRef": {"name": "s-harbor"}}},
                {"name": "jfrog", "artifactory": {"secretRef": {"name": "s-jfrog"}}},
                {"name": "acr", "azure": {"secretRef": {"name": "s-acr"}}},
                {"name": "gitea", "gitea": {"secretRef": {"name": "s-gitea"}}},
                {"name": "ci", "generic": {"secretRef": {"name": "s-ci"}}},
            ]})
        );
        let published = [
            ("gh", "github/1"),
            ("gl", "gitlab/2"),
            ("bb", "bitbucket/3"),
            ("hub", "dockerhub/4"),
            ("quay", "quay/5"),
            ("harbor", "harbor/6"),
            ("jfrog", "artifactory/7"),
            ("acr", "azure/8"),
            ("gitea", "gitea/9"),
            ("ci", "generic/10"),
        ];
        let live = live_config(Json::Object(spec), &published);
        let read = state_from_live(&planned, &live_project(), Some(&live), false);
        let mut expected = planned.clone();
        fill_receiver_urls(
            &mut expected,
            &plan_receiver_urls_for_test(&planned),
            Some(&published_receivers(&live)),
        );
        assert_eq!(read, expected);
        for (receiver, (name, path)) in read
            .get("webhook_receivers")
            .elements()
            .iter()
            .zip(published)
        {
            assert_eq!(receiver.get("name"), &Value::string(name));
            assert_eq!(
                receiver.get("url"),
                &Value::string(format!("https://hooks/{path}"))
            );
        }
        // Imported from Kargo alone, every type comes back the same.
        let imported = state_from_live(&Value::Null, &live_project(), Some(&live), true);
        assert_eq!(
            imported.get("webhook_receivers"),
            read.get("webhook_receivers")
        );
        assert_eq!(
            imported.get("webhook_receiver_urls"),
            read.get("webhook_receiver_urls")
        );
    }

    /// `planned` with every receiver URL unknown, as a plan for a new receiver list has them.
    fn plan_receiver_urls_for_test(planned: &Value) -> Value {
        let mut p = planned.clone();
        plan_receiver_urls(&mut p, &Value::Null);
        p
    }

    #[test]
    fn a_receiver_kargo_has_not_published_reads_as_null_and_keeps_its_key() {
        let planned = state_from_planned(&config(receivers_config()), true);
        let live = live_config(
            Json::Object(project_config_spec(&planned).unwrap()),
            &[("ghcr", "github/1")],
        );
        let read = state_from_live(&planned, &live_project(), Some(&live), false);
        assert_eq!(
            read.get("webhook_receivers").elements()[2].get("url"),
            &Value::Null
        );
        let urls = read.get("webhook_receiver_urls").entries().unwrap();
        assert_eq!(urls.keys().collect::<Vec<_>>(), vec!["ci", "ghcr", "jfrog"]);
        assert_eq!(urls["jfrog"], Value::Null);
    }

    #[test]
    fn lists_the_state_does_not_declare_stay_unread_except_on_import() {
        let mut prior = state_from_planned(
            &config(json!({"name": "shop", "keep_namespace": false,
            "stage_links": [{"title": "Logs", "url": "https://logs/"}]})),
            true,
        );
        prior.set("timeouts", Value::Null);
        let live = live_config(
            json!({"stageLinks": [{"title": "Logs", "url": "https://logs/"}],
                   "freightLinks": [{"title": "Theirs", "url": "https://x/"}],
                   "webhookReceivers": [{"name": "gh", "github": {"secretRef": {"name": "s"}}}],
                   "promotionPolicies": [{"stageSelector": {"name": "dev"}, "autoPromotionEnabled": true}]}),
            &[("gh", "github/1")],
        );
        let read = state_from_live(&prior, &live_project(), Some(&live), false);
        // Lists nobody wrote here are no blocks, whatever others put in the ProjectConfig.
        let none = Value::List(vec![]);
        assert_eq!(read.get("freight_links"), &none);
        assert_eq!(read.get("webhook_receivers"), &none);
        assert_eq!(read.get("promotion_policies"), &none);
        assert_eq!(read.get("webhook_receiver_urls"), &Value::Null);
        assert_eq!(read, prior);

        let imported = state_from_live(&Value::Null, &live_project(), Some(&live), true);
        assert_eq!(imported.get("freight_links").elements().len(), 1);
        assert_eq!(
            imported.get("webhook_receiver_urls"),
            &Value::Map([("gh".to_string(), Value::string("https://hooks/github/1"))].into())
        );
        assert_eq!(imported.get("promotion_policies").elements().len(), 1);
        // An empty list in Kargo is nothing to adopt.
        let empty = live_config(json!({"stageLinks": []}), &[]);
        let imported = state_from_live(&Value::Null, &live_project(), Some(&empty), true);
        assert_eq!(imported.get("stage_links"), &Value::List(vec![]));
    }

    #[test]
    fn removing_a_declared_list_out_of_band_shows_as_drift() {
        let planned = state_from_planned(&config(receivers_config()), true);
        let live = live_config(
            json!({"freightLinks": [{"title": "CI", "url": "https://ci/{{ .freight.metadata.name }}"}]}),
            &[],
        );
        let read = state_from_live(&planned, &live_project(), Some(&live), false);
        // No blocks where the configuration has some: a difference the plan puts back.
        assert_eq!(read.get("webhook_receivers"), &Value::List(vec![]));
        assert_eq!(read.get("stage_links"), &Value::List(vec![]));
        assert_eq!(read.get("freight_links"), planned.get("freight_links"));
    }

    #[tokio::test]
    async fn plan_keeps_urls_of_unchanged_receivers_and_knows_names_up_front() {
        // Create: every URL is known only after apply, but the map's keys are known.
        let created = plan(&config(receivers_config()), &Value::Null).await;
        assert!(
            created.get("webhook_receivers").elements()[0]
                .get("url")
                .is_unknown()
        );
        let urls = created.get("webhook_receiver_urls").entries().unwrap();
        assert_eq!(urls.keys().collect::<Vec<_>>(), vec!["ci", "ghcr", "jfrog"]);
        assert!(urls.values().all(Value::is_unknown));

        let mut prior = state_from_planned(&config(receivers_config()), true);
        let live = live_config(
            Json::Object(project_config_spec(&prior).unwrap()),
            &[("ghcr", "github/1"), ("jfrog", "artifactory/2")],
        );
        prior = state_from_live(&prior, &live_project(), Some(&live), false);

        // Nothing changes: the plan is the prior state, null URL included.
        assert_eq!(plan(&config(receivers_config()), &prior).await, prior);

        // A label changes: published URLs stay known; the one Kargo has not published yet
        // may arrive with this apply, so it is unknown.
        let mut labelled = receivers_config();
        labelled["labels"] = json!({"team": "shop"});
        let planned = plan(&config(labelled), &prior).await;
        let receivers = planned.get("webhook_receivers").elements();
        assert_eq!(
            receivers[0].get("url"),
            &Value::string("https://hooks/github/1")
        );
        assert_eq!(receivers[1].get("path"), &Value::string("/artifactory/2"));
        assert!(receivers[2].get("url").is_unknown());
        assert_eq!(
            planned.get("webhook_receiver_urls").get("ghcr"),
            &Value::string("https://hooks/github/1")
        );
        assert!(planned.get("webhook_receiver_urls").get("ci").is_unknown());

        // The receiver's Secret changes: its URL changes too. Reordering keeps the others.
        let mut changed = receivers_config();
        let list = changed["webhook_receivers"].as_array_mut().unwrap();
        list.swap(0, 1);
        list[1]["github"]["secret_ref"]["name"] = json!("gh-rotated");
        let planned = plan(&config(changed), &prior).await;
        let receivers = planned.get("webhook_receivers").elements();
        assert_eq!(
            receivers[0].get("url"),
            &Value::string("https://hooks/artifactory/2")
        );
        assert!(receivers[1].get("url").is_unknown());
        assert!(receivers[1].get("path").is_unknown());

        // Receivers removed: no map.
        let mut none = receivers_config();
        none.as_object_mut().unwrap().remove("webhook_receivers");
        let planned = plan(&config(none), &prior).await;
        assert_eq!(planned.get("webhook_receiver_urls"), &Value::Null);
    }

    #[test]
    fn after_apply_unknown_urls_are_filled_and_known_ones_never_contradicted() {
        let mut planned = state_from_planned(&config(receivers_config()), true);
        plan_receiver_urls(&mut planned, &Value::Null);
        let mut ghcr = planned.get("webhook_receivers").elements()[0].clone();
        ghcr.set("url", Value::string("https://planned/ghcr"));
        ghcr.set("path", Value::string("/planned/ghcr"));
        let mut receivers = planned.get("webhook_receivers").elements().to_vec();
        receivers[0] = ghcr;
        planned.set("webhook_receivers", Value::List(receivers));
        let published: BTreeMap<String, (String, String)> = [
            (
                "ghcr".to_string(),
                ("/new".to_string(), "https://new".to_string()),
            ),
            (
                "jfrog".to_string(),
                ("/j".to_string(), "https://j".to_string()),
            ),
        ]
        .into();
        let mut state = state_from_planned(&planned, true);
        fill_receiver_urls(&mut state, &planned, Some(&published));
        let receivers = state.get("webhook_receivers").elements();
        assert_eq!(
            receivers[0].get("url"),
            &Value::string("https://planned/ghcr")
        );
        assert_eq!(receivers[1].get("url"), &Value::string("https://j"));
        assert_eq!(receivers[2].get("url"), &Value::Null);
        assert!(state.is_wholly_known(), "no unknown value survives apply");
        assert_eq!(
            state.get("webhook_receiver_urls").get("jfrog"),
            &Value::string("https://j")
        );
        // Without anything published (e.g. the write failed), unknowns become null.
        let bare = state_from_planned(&planned, true);
        assert!(bare.is_wholly_known());
        assert_eq!(
            bare.get("webhook_receivers").elements()[1].get("url"),
            &Value::Null
        );
    }

    #[test]
    fn receivers_settle_once_kargo_has_handled_the_current_generation() {
        let pc = |generation: i64, reason: &str, observed: i64| -> ProjectConfig {
            decode(
                json!({"metadata": {"generation": generation}, "status": {"conditions": [
                {"type": "Ready", "status": if reason == "Synced" {"True"} else {"False"},
                 "reason": reason, "observedGeneration": observed}]}}),
            )
            .unwrap()
        };
        assert!(!receivers_settled(None));
        assert!(!receivers_settled(Some(
            &decode(json!({"metadata": {"generation": 1}})).unwrap()
        )));
        assert!(
            !receivers_settled(Some(&pc(2, "Synced", 1))),
            "stale condition"
        );
        assert!(!receivers_settled(Some(&pc(2, "SyncingWebhooks", 2))));
        assert!(receivers_settled(Some(&pc(2, "Synced", 2))));
        assert!(
            receivers_settled(Some(&pc(2, "SyncWebhookReceiversFailed", 2))),
            "a failure is final for this generation: waiting longer changes nothing"
        );
    }

    #[test]
    fn receiver_validation_reports_each_problem_on_its_attribute() {
        let c = config(json!({
            "name": "shop",
            "webhook_receivers": [
                {"name": "a", "github": {"secret_ref": {"name": "s"}}},
                {"name": "a", "gitea": {"secret_ref": {"name": "s"}}},
                {"name": "b", "github": {"secret_ref": {"name": "s"}}, "harbor": {"secret_ref": {"name": "s"}}},
                {"name": "c"},
                {"name": "d", "generic": {"secret_ref": {"name": "s"}, "actions": [{
                    "target_selection_criteria": [
                        {"label_selector": {"match_labels": {}}},
                        {"label_selector": {"match_expressions": [{"key": "k", "operator": "In"}]}},
                    ],
                }]}},
                // No `actions` blocks: Kargo's field is absent, which it accepts.
                {"name": "e", "generic": {"secret_ref": {"name": "s"}, "actions": []}},
            ],
            "stage_links": [{"title": "t", "url": ""}],
        }));
        let found = errors(&c);
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "webhook_receivers[2].harbor",
                "webhook_receivers[3]",
                "webhook_receivers[4].generic.actions[0].target_selection_criteria[0]",
                "webhook_receivers[4].generic.actions[0].target_selection_criteria[1].label_selector.match_expressions[0].values",
                "stage_links[0].url",
                "webhook_receivers[1].name",
            ],
            "{found:#?}"
        );
        assert!(
            found[0].1.contains("\"github\", \"harbor\" are set"),
            "{}",
            found[0].1
        );
        assert!(found[5].1.contains("unique"), "{}", found[5].1);
        // Unknown values are checked at apply, not guessed at.
        let mut unknown = c.clone();
        let mut receivers = unknown.get("webhook_receivers").elements().to_vec();
        receivers[1].set("name", Value::Unknown);
        receivers[3].set("github", Value::Unknown);
        unknown.set("webhook_receivers", Value::List(receivers));
        let paths: Vec<String> = errors(&unknown).into_iter().map(|(p, _)| p).collect();
        assert!(!paths.contains(&"webhook_receivers[1].name".to_string()));
        assert!(!paths.contains(&"webhook_receivers[3]".to_string()));
    }

    #[test]
    fn kargo_errors_land_on_the_configuration_attribute() {
        for (field, expected) in [
            (
                "spec.webhookReceivers[1].name",
                Some("webhook_receivers[1].name"),
            ),
            (
                "spec.webhookReceivers[0].generic.actions[0].targetSelectionCriteria[2]",
                Some("webhook_receivers[0].generic.actions[0].target_selection_criteria[2]"),
            ),
            ("spec.stageLinks[0].url", Some("stage_links[0].url")),
            (
                "spec.promotionPolicies[1]",
                Some("promotion_policies[1].stage_selector.name"),
            ),
            ("metadata.name", None),
        ] {
            assert_eq!(
                config_field(field).map(|p| p.to_string()).as_deref(),
                expected,
                "{field}"
            );
        }
    }

    #[test]
    fn schema_documents_every_attribute_and_each_secret_key() {
        let block = ProjectResource::schema_block();
        common::assert_described(&block);
        let receivers = &block.nested_block("webhook_receivers").unwrap().block;
        for t in &RECEIVER_TYPES {
            let secret = receivers
                .nested_block(t.key)
                .and_then(|b| b.block.nested_block("secret_ref"))
                .unwrap();
            assert!(
                secret
                    .block
                    .description
                    .contains(&format!("`{}`", t.secret_key)),
                "{}: {}",
                t.key,
                secret.block.description
            );
        }
    }
}
